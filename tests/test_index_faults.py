"""Index faults: indexing killed half-way, or the index gone, never costs the workspace or the app."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.libraries import create_library, get_library
from kb.search import SearchError, SearchIndex, index_dir
from kb.tree import add_children, node_by_uid
from navigator.app import NavigatorApp
from navigator.screens.search import SearchScreen
from navigator.widgets.z_tree import ZTree

ROOT = Path(__file__).resolve().parent.parent


def library_of(path: Path, size: int) -> Path:
    conn = connect(path, create=True)
    library = create_library(conn, "z")
    nodes = (
        StagedNode(n, f"s{n}", None, "statement", f"statement {n} about rivers", "a body of water") for n in range(size)
    )
    import_staged(conn, library, nodes, source="t", importer="test")
    conn.close()
    return path


def test_a_rebuild_killed_half_way_leaves_the_old_index_working_and_a_rebuild_restores_it(tmp_path: Path) -> None:
    workspace = library_of(tmp_path / "w.db", 40_000)
    conn = connect(workspace)
    library = get_library(conn, "z")
    SearchIndex(conn, workspace, library).rebuild()
    parent = node_by_uid(conn, "s0", library.id)
    assert parent is not None
    add_children(conn, parent, [("a freshly added quasar", "", "statement")], origin="human")
    building = index_dir(workspace, library).with_name(index_dir(workspace, library).name + ".building")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "navigator.cli",
        "index",
        "--rebuild",
        "--procs",
        "1",
        "--workspace",
        str(workspace),
    ]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not building.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.02)
    time.sleep(0.5)
    assert child.poll() is None, "the rebuild finished before it could be killed; make the library bigger"
    child.send_signal(signal.SIGKILL)
    child.wait()

    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    search = SearchIndex(conn, workspace, library)
    assert search.search("rivers").hits, "the old index still answers"
    assert not search.search("quasar").hits
    assert search.pending() == 1

    subprocess.run(command, env=env, check=True, capture_output=True)
    restored = SearchIndex(conn, workspace, library).search("quasar")
    assert [hit.title for hit in restored.hits] == ["a freshly added quasar"]
    assert not building.exists()


async def test_the_app_keeps_working_without_its_index_and_says_how_to_fix_it(tmp_path: Path) -> None:
    workspace = library_of(tmp_path / "w.db", 30)
    conn = connect(workspace)
    library = get_library(conn, "z")
    SearchIndex(conn, workspace, library).rebuild()
    shutil.rmtree(index_dir(workspace, library))
    app = NavigatorApp(workspace=workspace, labeler="ann")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("slash")
        assert isinstance(app.screen, SearchScreen)
        app.screen.query_one(Input).value = "rivers"
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = str(app.screen.query_one("#search-status", Static).render())
        assert "navigator index --rebuild" in status
        await pilot.press("escape", "down", "down")
        cursor = app.screen.query_one(ZTree).cursor_node
        assert cursor is not None and str(cursor.label) == "statement 1 about rivers"
    try:
        SearchIndex(conn, workspace, library).search("rivers")
    except SearchError as error:
        assert "--rebuild" in str(error)
    else:
        raise AssertionError("a deleted index must be reported")


def test_commands_write_only_the_workspace_its_siblings_and_the_paths_named(tmp_path: Path) -> None:
    """Run every writing command from an empty working directory: nothing may appear there or
    anywhere but beside the workspace (its index, answer key) and the output file named."""
    from click.testing import CliRunner

    from navigator.cli import main

    home, elsewhere, cwd = tmp_path / "ws", tmp_path / "inputs", tmp_path / "cwd"
    for folder in (home, elsewhere, cwd):
        folder.mkdir()
    workspace = home / "w.db"
    nodes = elsewhere / "nodes.jsonl"
    nodes.write_text('{"id": "a", "title": "alpha"}\n{"id": "b", "parent": "a", "title": "beta"}\n')
    items = elsewhere / "items.jsonl"
    items.write_text('{"id": "i1", "x": "alpha?", "options": ["yes", "no"], "y": "yes"}\n')
    out = elsewhere / "export.jsonl"
    before_inputs = sorted(p.name for p in elsewhere.iterdir())
    runner = CliRunner()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        for args in (
            ["init"],
            ["import", str(nodes)],
            ["items", "import", str(items), "--split", "dstar"],
            ["index", "--rebuild"],
            ["export", "--out", str(out)],
            ["stats", "--json"],
        ):
            result = runner.invoke(main, [*args, "--workspace", str(workspace)])
            assert result.exit_code == 0, (args, result.output)
    finally:
        os.chdir(old)
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted([*before_inputs, "export.jsonl"])
    allowed = {"w.db", "w.db-wal", "w.db-shm", "w.db.index", "w.db.answers.jsonl"}
    assert {p.name for p in home.iterdir()} <= allowed


def test_nodes_added_while_the_index_cannot_follow_are_kept_and_every_surface_says_how_to_catch_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One policy (kb.search.index_new_nodes) for every caller that adds nodes: the nodes are saved,
    the command succeeds, and it says the index is behind and what brings it up to date. Here another
    process holds the index's write lock past the wait."""
    from click.testing import CliRunner

    import kb.search
    from kb.search import index_new_nodes
    from kb.search.safe_unpickle import INDEX_NAME, whoosh_index
    from navigator.cli import main
    from navigator.palette_exchange import merge_export

    workspace = library_of(tmp_path / "w.db", 30)
    conn = connect(workspace)
    library = get_library(conn, "z")
    SearchIndex(conn, workspace, library).rebuild()
    monkeypatch.setattr(kb.search, "WRITE_LOCK_SECONDS", 0.2)
    lock = whoosh_index().open_dir(str(index_dir(workspace, library)), indexname=INDEX_NAME).lock("WRITELOCK")
    assert lock.acquire(blocking=False)

    parent = node_by_uid(conn, "s0", library.id)
    assert parent is not None
    add_children(conn, parent, [("a freshly added quasar", "", "statement")], origin="human")
    update = index_new_nodes(conn, workspace, library)
    assert update.indexed == 0 and update.problem and "navigator index --library z" in str(update.warning)

    notes = tmp_path / "more.md"
    notes.write_text("# More\n\nA pulsar spins fast.\n")
    result = CliRunner().invoke(main, ["import", str(notes), "--library", "z", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert "warning: the new nodes are saved, but the search index of 'z' is behind" in result.stderr
    assert conn.execute("SELECT COUNT(*) FROM nodes WHERE title LIKE '%pulsar%'").fetchone()[0] == 1

    exported = tmp_path / "nodes.jsonl"
    other = tmp_path / "copy.db"
    with sqlite3.connect(other) as copy:
        conn.backup(copy)
    copied = connect(other)
    add_children(copied, node_by_uid(copied, "s1", library.id), [("a merged nebula", "", "statement")], origin="human")  # type: ignore[arg-type]
    copied.close()
    assert CliRunner().invoke(main, ["export", "-o", str(exported), "-w", str(other)]).exit_code == 0
    message, merged = merge_export(workspace, exported)  # the app's palette
    assert merged and "the search index of 'z' is behind" in message, message

    lock.release()
    fixed = CliRunner().invoke(main, ["index", "--library", "z", "-w", str(workspace)])
    assert fixed.exit_code == 0, fixed.output
    found = SearchIndex(conn, workspace, library).search("quasar pulsar")
    assert {hit.title for hit in found.hits} >= {"a freshly added quasar", "A pulsar spins fast."}
    assert [hit.title for hit in SearchIndex(conn, workspace, library).search("nebula").hits] == ["a merged nebula"]
