"""Forking a library: a full, independent copy that keeps node uids."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

import pytest

from kb.db import WorkspaceError
from kb.fork import fork_family, fork_library
from kb.importing import StagedNode, import_staged
from kb.libraries import Library, create_library, get_library
from kb.tree import add_child, node_by_uid

SHAPE = "uid, position, depth, kind, title, body, origin, review, extra, child_count, subtree_size"


def _build(conn: sqlite3.Connection, library: Library) -> None:
    nodes = [StagedNode(1, "a", None, "chapter", "A"), StagedNode(2, "b", None, "chapter", "B")]
    nodes += [StagedNode(10 + i, f"a{i}", "a", "statement", f"A{i}", f"body {i}") for i in range(5)]
    nodes += [StagedNode(20 + i, f"a0.{i}", "a0", "statement", f"A0.{i}") for i in range(3)]
    import_staged(conn, library, iter(nodes), source="t", importer="test")


def _tree(conn: sqlite3.Connection, library_id: int) -> list[tuple[object, ...]]:
    """Every node with its parent's uid instead of its parent's id, root title aside."""
    rows = conn.execute(
        f"SELECT {', '.join('n.' + c.strip() for c in SHAPE.split(','))}, p.uid FROM nodes n"
        " LEFT JOIN nodes p ON p.id = n.parent_id WHERE n.library_id = ? AND n.parent_id IS NOT NULL ORDER BY n.uid",
        (library_id,),
    )
    return [tuple(row) for row in rows]


def test_fork_is_a_full_copy_with_the_same_uids_and_shape(
    conn: sqlite3.Connection, library: Library, check_tree: Callable[[], None]
) -> None:
    _build(conn, library)
    source = get_library(conn, "lib")
    fork = fork_library(conn, source, "lib-fork")
    assert fork.parent_id == source.id and fork.name == "lib-fork" and fork.uid != source.uid
    count = "SELECT COUNT(*) FROM nodes WHERE library_id = ?"
    assert conn.execute(count, (fork.id,)).fetchone()[0] == conn.execute(count, (source.id,)).fetchone()[0] == 11
    assert _tree(conn, fork.id) == _tree(conn, source.id)
    root = conn.execute("SELECT title, provenance, subtree_size FROM nodes WHERE id = ?", (fork.root_id,)).fetchone()
    assert root["title"] == "lib-fork" and root["subtree_size"] == 11
    assert json.loads(root["provenance"])["forked_from"]["library"] == source.uid
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    check_tree()


def test_editing_the_fork_leaves_the_source_alone(conn: sqlite3.Connection, library: Library) -> None:
    _build(conn, library)
    source = get_library(conn, "lib")
    before = _tree(conn, source.id)
    fork = fork_library(conn, source, "lib-fork")
    parent = node_by_uid(conn, "a0", fork.id)
    assert parent is not None and parent.library_id == fork.id
    add_child(conn, parent, title="only in the fork", uid="new")
    conn.execute("UPDATE nodes SET review = 'rejected' WHERE library_id = ? AND uid = 'a1'", (fork.id,))
    assert _tree(conn, source.id) == before
    assert node_by_uid(conn, "new", source.id) is None
    grown = node_by_uid(conn, "a", fork.id)
    unchanged = node_by_uid(conn, "a", source.id)
    assert grown is not None and unchanged is not None
    assert (grown.subtree_size, unchanged.subtree_size) == (10, 9)


def test_fork_refuses_a_taken_name_and_writes_nothing(conn: sqlite3.Connection, library: Library) -> None:
    _build(conn, library)
    create_library(conn, "taken")
    nodes = conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]
    with pytest.raises(WorkspaceError, match="already exists"):
        fork_library(conn, get_library(conn, "lib"), "taken")
    assert conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0] == nodes


def test_a_fork_of_a_fork_is_one_family(conn: sqlite3.Connection, library: Library) -> None:
    _build(conn, library)
    first = fork_library(conn, get_library(conn, "lib"), "one")
    second = fork_library(conn, first, "two")
    stranger = create_library(conn, "other")
    assert [lib.name for lib in fork_family(conn, second)] == ["two", "lib", "one"]
    assert [lib.name for lib in fork_family(conn, get_library(conn, "lib"))] == ["lib", "one", "two"]
    assert [lib.name for lib in fork_family(conn, stranger)] == ["other"]
    assert _tree(conn, second.id) == _tree(conn, library.id)


class _Watched:
    """Progress that records what it is told and cancels after `stop_after` steps (never when None)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after, self.total = stop_after, 0
        self.steps: list[int] = []

    def start(self, phase: str, total: int | None) -> None:
        self.total = total or 0

    def advance(self, amount: int) -> None:
        self.steps.append(amount)

    @property
    def cancelled(self) -> bool:
        return self.stop_after is not None and len(self.steps) >= self.stop_after


def test_a_fork_reports_progress_in_chunks_and_a_cancel_writes_nothing(
    conn: sqlite3.Connection, library: Library, monkeypatch: pytest.MonkeyPatch, db_dump: Callable[[], object]
) -> None:
    import kb.fork
    from kb.progress import ImportCancelled

    _build(conn, library)
    source = get_library(conn, "lib")
    other = create_library(conn, "other")  # ids of another library between the source's: ranges skip them
    import_staged(conn, other, iter([StagedNode(1, "x", None, "chapter", "X")]), source="t", importer="test")
    import_staged(conn, source, iter([StagedNode(1, "late", "b", "statement", "Late")]), source="t", importer="test")
    monkeypatch.setattr(kb.fork, "FORK_CHUNK", 4)

    before = db_dump()
    with pytest.raises(ImportCancelled, match="nothing was written"):
        fork_library(conn, source, "stopped", progress=_Watched(stop_after=1))
    assert db_dump() == before

    watched = _Watched()
    fork = fork_library(conn, source, "lib-fork", progress=watched)
    assert watched.total == sum(watched.steps) == 12 and len(watched.steps) > 3
    assert _tree(conn, fork.id) == _tree(conn, source.id)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_big_fork_goes_without_the_write_ahead_log_and_restores_it(
    conn: sqlite3.Connection, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kb.db

    _build(conn, library)
    monkeypatch.setattr(kb.db, "BIG_WRITE", 5)
    seen: set[str] = set()

    class Journal(_Watched):
        def advance(self, amount: int) -> None:
            seen.add(conn.execute("PRAGMA main.journal_mode").fetchone()[0])
            super().advance(amount)

    fork = fork_library(conn, get_library(conn, "lib"), "big", progress=Journal())
    assert seen == {"delete"}
    assert conn.execute("PRAGMA main.journal_mode").fetchone()[0] == "wal"
    assert _tree(conn, fork.id) == _tree(conn, library.id)
