"""Shared fixtures: a fresh workspace file, a connection to it, and table snapshots.

Only generic helpers live here; anything specific to one module stays in that module.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kb.db import connect
from kb.libraries import Library, create_library
from kb.tree import Node, add_children, node_by_id

SNAPSHOT_TABLES = ("libraries", "nodes", "items", "search_index_state")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty, fully migrated workspace file in tmp_path."""
    path = tmp_path / "workspace.db"
    connect(path, create=True).close()
    return path


@pytest.fixture
def conn(workspace: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(workspace)
    yield connection
    connection.close()


@pytest.fixture
def library(conn: sqlite3.Connection) -> Library:
    """An empty library named 'lib'."""
    return create_library(conn, "lib")


@pytest.fixture
def coastline(conn: sqlite3.Connection, library: Library) -> Node:
    """World › Africa › Madagascar › Coastline (4,828 km), shaped as the Factbook import shapes a field."""
    root = node_by_id(conn, library.root_id)
    assert root is not None
    (africa,) = add_children(conn, root, [("Africa", "", "region")], origin="import")
    (madagascar,) = add_children(conn, africa, [("Madagascar", "", "country")], origin="import")
    (node,) = add_children(conn, madagascar, [("Coastline", "4,828 km", "field")], origin="import")
    return node


@pytest.fixture(scope="session")
def model() -> Iterator[Any]:
    """The real bundled model in its own process (models.llm.model_process), as every surface runs it;
    started on first use and shared by the tests that need the model, so it loads once per run."""
    from models.llm.model import LoadOptions
    from models.llm.model_process import ModelProcess

    with ModelProcess(options=LoadOptions(n_ctx=1024, n_threads=2)) as process:
        yield process


@pytest.fixture
def db_dump(conn: sqlite3.Connection) -> Callable[[], dict[str, Any]]:
    """A full dump of the data tables plus `PRAGMA integrity_check`, to prove nothing changed."""

    def take() -> dict[str, Any]:
        dump: dict[str, Any] = {
            table: [tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1")]
            for table in SNAPSHOT_TABLES
        }
        dump["integrity_check"] = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        return dump

    return take


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """write_jsonl("name.jsonl", [dict | str, ...]): dicts are dumped, strings written as is."""

    def write(name: str, lines: list[Any]) -> Path:
        path = tmp_path / name
        text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def check_tree(conn: sqlite3.Connection) -> Callable[[], None]:
    """Assert every stored child_count, subtree_size, depth and position agrees with the actual tree."""

    def check() -> None:
        rows = conn.execute("SELECT id, parent_id, position, depth, child_count, subtree_size FROM nodes").fetchall()
        by_id = {row["id"]: row for row in rows}
        kids: dict[int, list[sqlite3.Row]] = {}
        for row in rows:
            if row["parent_id"] is not None:
                kids.setdefault(row["parent_id"], []).append(row)
        sizes: dict[int, int] = {}
        for row in sorted(rows, key=lambda r: -r["depth"]):
            sizes[row["id"]] = 1 + sum(sizes[kid["id"]] for kid in kids.get(row["id"], []))
        for row in rows:
            mine = kids.get(row["id"], [])
            assert row["child_count"] == len(mine), f"child_count of node {row['id']}"
            assert row["subtree_size"] == sizes[row["id"]], f"subtree_size of node {row['id']}"
            assert sorted(kid["position"] for kid in mine) == list(range(len(mine))), f"positions under {row['id']}"
            if row["parent_id"] is not None:
                assert row["depth"] == by_id[row["parent_id"]]["depth"] + 1, f"depth of node {row['id']}"

    return check


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The real demo workspace, built once per test run (about a minute): (path, what the build did)."""
    from kb.demo import build_demo
    from kb.progress import NoProgress

    workspace = tmp_path_factory.mktemp("demo-master") / "demo.db"
    built, done = build_demo(workspace, lambda _: NoProgress(), index_procs=2)
    built.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    built.close()
    return workspace, done


@pytest.fixture
def demo_workspace(demo_build: tuple[Path, list[str]], tmp_path: Path) -> Path:
    """A private copy of the demo workspace (file, search index, answer key) that a test may change."""
    import shutil

    master = demo_build[0]
    copy = tmp_path / master.name
    source, target = sqlite3.connect(master), sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    shutil.copytree(master.with_name(master.name + ".index"), copy.with_name(copy.name + ".index"))
    shutil.copy(master.with_name(master.name + ".answers.jsonl"), copy.with_name(copy.name + ".answers.jsonl"))
    return copy
