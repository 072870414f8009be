"""JSONL node files through kb.importing: the tree they build and every way they can be wrong."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import kb.db as db
import kb.importing as importing
from kb.db import WorkspaceError, connect
from kb.formats.jsonl import read_jsonl_nodes
from kb.importing import ImportProblem, ImportReport, import_staged
from kb.libraries import Library, create_library
from kb.progress import ImportCancelled, NoProgress
from kb.tree import children

BOOK = [
    {"id": "book", "title": "The Book", "kind": "book", "author": "anon"},
    {"id": "ch1", "parent": "book", "title": "Chapter 1", "kind": "chapter"},
    {"id": "s1", "parent": "ch1", "title": "First", "body": "The first statement."},
    {"id": "s2", "parent": "ch1", "title": "Second"},
    {"id": "ch2", "parent": "book", "title": "Chapter 2", "kind": "chapter"},
    {"id": "s3", "parent": "ch1", "title": "Third"},
    {"id": "s4", "parent": "ch2", "title": "Fourth"},
    {"id": "appendix", "title": "Appendix", "kind": "book"},
]


def run(conn: sqlite3.Connection, library: Library, path: Path, *, skip_bad: bool = False) -> ImportReport:
    return import_staged(
        conn, library, read_jsonl_nodes(path, NoProgress()), source=str(path), importer="jsonl", skip_bad=skip_bad
    )


def node(conn: sqlite3.Connection, uid: str, library: Library) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM nodes WHERE uid = ? AND library_id = ?", (uid, library.id)).fetchone()
    assert row is not None, f"node {uid!r} missing"
    return row


def root(conn: sqlite3.Connection, library: Library) -> sqlite3.Row:
    return conn.execute("SELECT * FROM nodes WHERE id = ?", (library.root_id,)).fetchone()


def child_uids(conn: sqlite3.Connection, node_id: int) -> list[str]:
    return [kid.uid for kid in children(conn, node_id)]


# -- good input --------------------------------------------------------------


def test_good_file_builds_the_tree(conn, library, write_jsonl, check_tree):
    path = write_jsonl("book.jsonl", BOOK)
    report = run(conn, library, path)

    assert report.added == 8 and report.skipped == 0 and report.problems == []
    top = root(conn, library)
    assert child_uids(conn, top["id"]) == ["book", "appendix"]
    assert (top["child_count"], top["subtree_size"]) == (2, 9)

    book, ch1, ch2 = (node(conn, uid, library) for uid in ("book", "ch1", "ch2"))
    assert (book["title"], book["kind"], book["depth"], book["position"]) == ("The Book", "book", 1, 0)
    assert (book["child_count"], book["subtree_size"]) == (2, 7)
    assert child_uids(conn, book["id"]) == ["ch1", "ch2"]
    assert (ch1["child_count"], ch1["subtree_size"], ch1["parent_id"]) == (3, 4, book["id"])
    assert (ch2["child_count"], ch2["subtree_size"]) == (1, 2)
    assert child_uids(conn, ch1["id"]) == ["s1", "s2", "s3"]
    assert [node(conn, uid, library)["position"] for uid in ("s1", "s2", "s3")] == [0, 1, 2]

    s1 = node(conn, "s1", library)
    assert (s1["title"], s1["body"], s1["kind"], s1["depth"]) == ("First", "The first statement.", "statement", 3)
    assert (s1["child_count"], s1["subtree_size"], s1["origin"]) == (0, 1, "import")
    assert json.loads(s1["provenance"]) == {"importer": "jsonl", "source": str(path), "line": 3}
    assert json.loads(book["provenance"])["line"] == 1
    assert json.loads(book["extra"]) == {"author": "anon"}
    check_tree()


def test_children_before_parents(conn, library, write_jsonl, check_tree):
    path = write_jsonl("reversed.jsonl", list(reversed(BOOK)))
    assert run(conn, library, path).added == 8

    book = node(conn, "book", library)
    assert (book["child_count"], book["subtree_size"], book["depth"]) == (2, 7, 1)
    # siblings keep the order they have in the file
    assert child_uids(conn, node(conn, "ch1", library)["id"]) == ["s3", "s2", "s1"]
    assert child_uids(conn, root(conn, library)["id"]) == ["appendix", "book"]
    check_tree()


def test_deep_chain_listed_leaf_first(conn, library, write_jsonl, check_tree):
    chain = [{"id": f"n{i}", "parent": f"n{i - 1}" if i else None, "title": f"level {i}"} for i in range(40)]
    run(conn, library, write_jsonl("chain.jsonl", list(reversed(chain))))

    assert node(conn, "n39", library)["depth"] == 40
    assert node(conn, "n0", library)["subtree_size"] == 40
    assert root(conn, library)["subtree_size"] == 41
    check_tree()


def test_blank_lines_are_skipped_but_keep_line_numbers(conn, library, write_jsonl):
    path = write_jsonl("blank.jsonl", ["", {"id": "a", "title": "A"}, "   ", {"id": "b", "title": "B"}])
    run(conn, library, path)
    assert json.loads(node(conn, "b", library)["provenance"])["line"] == 4


def test_import_into_existing_library_attaches_under_existing_nodes(conn, library, write_jsonl, check_tree):
    run(conn, library, write_jsonl("first.jsonl", BOOK))
    more = [
        {"id": "s5", "parent": "ch1", "title": "Fifth"},
        {"id": "s6", "parent": "ch3", "title": "Sixth"},  # parent comes later in this file
        {"id": "ch3", "parent": "book", "title": "Chapter 3"},
        {"id": "s7", "parent": "s4", "title": "Under a leaf"},
        {"id": "extra", "title": "Extra top-level"},
    ]
    report = run(conn, library, write_jsonl("second.jsonl", more))

    assert report.added == 5
    ch1, ch3, s4, book = (node(conn, uid, library) for uid in ("ch1", "ch3", "s4", "book"))
    assert child_uids(conn, ch1["id"]) == ["s1", "s2", "s3", "s5"]
    assert node(conn, "s5", library)["position"] == 3 and node(conn, "s5", library)["depth"] == 3
    assert (ch1["child_count"], ch1["subtree_size"]) == (4, 5)
    assert child_uids(conn, book["id"]) == ["ch1", "ch2", "ch3"]
    assert (ch3["position"], ch3["child_count"], ch3["subtree_size"]) == (2, 1, 2)
    assert (s4["child_count"], s4["subtree_size"]) == (1, 2)
    assert node(conn, "ch2", library)["subtree_size"] == 3
    assert (book["child_count"], book["subtree_size"]) == (3, 11)
    top = root(conn, library)
    assert child_uids(conn, top["id"]) == ["book", "appendix", "extra"]
    assert (top["child_count"], top["subtree_size"]) == (3, 14)
    check_tree()


def test_same_ids_in_another_library_are_independent(conn, library, write_jsonl, check_tree):
    run(conn, library, write_jsonl("book.jsonl", BOOK))
    other = create_library(conn, "other")
    assert run(conn, other, write_jsonl("book2.jsonl", BOOK)).added == 8
    assert root(conn, other)["subtree_size"] == 9 and root(conn, library)["subtree_size"] == 9
    check_tree()


def test_parent_in_another_library_is_missing(conn, library, write_jsonl, db_dump):
    run(conn, library, write_jsonl("book.jsonl", BOOK))
    other = create_library(conn, "other")
    path = write_jsonl("orphan.jsonl", [{"id": "x", "parent": "ch1", "title": "X"}])
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        run(conn, other, path)
    assert (caught.value.line, caught.value.field) == (1, "parent")
    assert "'ch1' is neither in this input nor in library 'other'" in caught.value.reason
    assert db_dump() == before


# -- bad input: one problem, reported precisely, nothing written --------------

GOOD = {"id": "ok", "title": "fine"}
BAD_CASES = {
    "invalid json": ([GOOD, '{"id": "b", "title": }'], 2, "-", "invalid JSON"),
    "truncated json": ([GOOD, GOOD | {"id": "c"}, '{"id": "b"'], 3, "-", "invalid JSON"),
    "not an object": ([GOOD, "[1, 2]"], 2, "-", "expected a JSON object, got list"),
    "missing parent": (
        [GOOD, {"id": "b", "parent": "nowhere", "title": "B"}],
        2,
        "parent",
        "'nowhere' is neither in this input nor in library 'lib'",
    ),
    "two-node cycle": (
        [GOOD, {"id": "a", "parent": "b", "title": "A"}, {"id": "b", "parent": "a", "title": "B"}],
        2,
        "parent",
        "cycle",
    ),
    "long cycle": (
        [
            GOOD,
            {"id": "a", "parent": "d", "title": "A"},
            {"id": "b", "parent": "a", "title": "B"},
            {"id": "c", "parent": "b", "title": "C"},
            {"id": "d", "parent": "c", "title": "D"},
            {"id": "leaf", "parent": "c", "title": "hangs off the cycle"},
        ],
        2,
        "parent",
        "cycle",
    ),
    "duplicate id": (
        [GOOD, {"id": "b", "title": "B"}, {"id": "ok", "title": "again"}],
        3,
        "id",
        "duplicate id 'ok' (first on line 1)",
    ),
    "title is a number": ([GOOD, {"id": "b", "title": 5}], 2, "title", "valid string"),
    "title missing": ([GOOD, {"id": "b"}], 2, "title", "Field required"),
    "title empty": ([GOOD, {"id": "b", "title": ""}], 2, "title", "at least 1 character"),
    "id missing": ([{"title": "no id"}], 1, "id", "Field required"),
    "id is a number": ([{"id": 7, "title": "T"}], 1, "id", "valid string"),
    "parent is a list": ([GOOD, {"id": "b", "parent": ["ok"], "title": "B"}], 2, "parent", "valid string"),
    "body is an object": ([GOOD, {"id": "b", "title": "B", "body": {"a": 1}}], 2, "body", "valid string"),
    "kind is a bool": ([GOOD, {"id": "b", "title": "B", "kind": True}], 2, "kind", "valid string"),
    "empty file": ([], 0, "-", "empty"),
    "only blank lines": (["", "  ", ""], 0, "-", "empty"),
}


@pytest.mark.parametrize(("lines", "line", "field", "reason"), BAD_CASES.values(), ids=BAD_CASES.keys())
def test_bad_input_is_reported_and_nothing_is_written(conn, library, write_jsonl, db_dump, lines, line, field, reason):
    run(conn, library, write_jsonl("existing.jsonl", [{"id": "old", "title": "Already here"}]))
    path = write_jsonl("bad.jsonl", lines)
    before = db_dump()

    with pytest.raises(ImportProblem) as caught:
        run(conn, library, path)

    problem = caught.value
    assert (problem.source, problem.line, problem.field) == (str(path), line, field)
    assert reason in problem.reason
    assert str(problem).startswith(f"{path}:{line}: {field}: " if line else f"{path}: {field}: ")
    after = db_dump()
    assert after == before
    assert after["integrity_check"] == ["ok"]


def test_non_utf8_bytes(conn, library, tmp_path, db_dump):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "a", "title": "A"}\n{"id": "b", "title": "caf\xe9"}\n')
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        run(conn, library, path)
    assert (caught.value.source, caught.value.line, caught.value.field) == (str(path), 2, "-")
    assert "not valid UTF-8" in caught.value.reason
    assert db_dump() == before


def test_id_colliding_with_a_node_in_the_library(conn, library, write_jsonl, db_dump):
    run(conn, library, write_jsonl("book.jsonl", BOOK))
    path = write_jsonl("again.jsonl", [{"id": "new", "title": "New"}, {"id": "ch2", "parent": "new", "title": "X"}])
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        run(conn, library, path)
    assert (caught.value.line, caught.value.field) == (2, "id")
    assert caught.value.reason == "id 'ch2' already exists in library 'lib'"
    assert db_dump() == before


def test_the_library_root_id_cannot_be_reused(conn, library, write_jsonl, db_dump):
    root_uid = root(conn, library)["uid"]
    path = write_jsonl("root.jsonl", [{"id": root_uid, "title": "impostor"}])
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        run(conn, library, path)
    assert caught.value.field == "id"
    assert db_dump() == before


def test_own_parent_names_the_parent_field(conn, library, write_jsonl):
    path = write_jsonl("self.jsonl", [{"id": "a", "parent": "a", "title": "A"}])
    with pytest.raises(ImportProblem) as caught:
        run(conn, library, path)
    assert (caught.value.line, caught.value.field) == (1, "parent")


def test_own_parent_is_rejected(conn, library, write_jsonl, db_dump):
    path = write_jsonl("self.jsonl", [GOOD, {"id": "a", "parent": "a", "title": "A"}])
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        run(conn, library, path)
    assert caught.value.line == 2 and "own parent" in caught.value.reason
    assert db_dump() == before


def test_cancelled_import_writes_nothing(conn, library, write_jsonl, db_dump):
    class Cancelled(NoProgress):
        @property
        def cancelled(self) -> bool:
            return True

    path = write_jsonl("book.jsonl", BOOK)
    before = db_dump()
    with pytest.raises(ImportCancelled):
        import_staged(
            conn,
            library,
            read_jsonl_nodes(path, NoProgress()),
            source=str(path),
            importer="jsonl",
            progress=Cancelled(),
        )
    assert db_dump() == before


def test_failed_import_does_not_block_the_next(conn, library, write_jsonl, check_tree):
    with pytest.raises(ImportProblem):
        run(conn, library, write_jsonl("bad.jsonl", [GOOD, "{"]))
    assert run(conn, library, write_jsonl("book.jsonl", BOOK)).added == 8
    check_tree()


def test_an_import_leaves_the_connection_as_it_found_it(conn, library, write_jsonl):
    """The stage's temp tables go and the temp journal (off while staging) comes back, failed or not."""
    journal = conn.execute("PRAGMA temp.journal_mode").fetchone()[0]
    with pytest.raises(ImportProblem):
        run(conn, library, write_jsonl("bad.jsonl", [GOOD, '{"id": "b1", "parent": "nowhere", "title": "x"}']))
    assert run(conn, library, write_jsonl("book.jsonl", BOOK)).added == 8
    assert conn.execute("SELECT name FROM temp.sqlite_master").fetchall() == []
    assert conn.execute("PRAGMA temp.journal_mode").fetchone()[0] == journal


@pytest.fixture
def big_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five nodes make a big write (rollback journal, uid index rebuilt), written two at a time."""
    monkeypatch.setattr(db, "BIG_WRITE", 5)
    monkeypatch.setattr(importing, "UID_INDEX_REBUILT_FROM", 5)
    monkeypatch.setattr(importing, "WRITE_CHUNK", 2)


class JournalWatch(NoProgress):
    """Notes the workspace's journal mode while the nodes are written; `fail` stops the write."""

    def __init__(self, conn: sqlite3.Connection, *, fail: bool = False) -> None:
        self.conn, self.fail, self.seen = conn, fail, set()

    def advance(self, amount: int) -> None:
        self.seen.add(self.conn.execute("PRAGMA main.journal_mode").fetchone()[0])
        if self.fail:
            raise RuntimeError("the disk is full")


def watched(conn, library, path, progress):  # type: ignore[no-untyped-def]
    return import_staged(
        conn, library, read_jsonl_nodes(path, NoProgress()), source=str(path), importer="jsonl", progress=progress
    )


def test_a_big_write_leaves_the_write_ahead_log_while_it_runs(conn, library, write_jsonl, check_tree, big_write):
    small = JournalWatch(conn)
    watched(conn, library, write_jsonl("one.jsonl", [GOOD]), small)
    assert small.seen == {"wal"}  # under BIG_WRITE nodes: the log, as every other write

    big = JournalWatch(conn)
    assert watched(conn, library, write_jsonl("book.jsonl", BOOK), big).added == 8
    assert big.seen == {"delete"}
    assert conn.execute("PRAGMA main.journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not "database table is locked"
    assert conn.execute("PRAGMA temp.journal_mode").fetchone()[0] != "wal"
    check_tree()


def test_a_big_write_that_fails_writes_nothing_and_restores_the_log(conn, library, write_jsonl, db_dump, big_write):
    before = db_dump()
    failing = JournalWatch(conn, fail=True)
    with pytest.raises(RuntimeError, match="disk is full"):
        watched(conn, library, write_jsonl("book.jsonl", BOOK), failing)
    assert failing.seen == {"delete"}
    assert db_dump() == before
    assert conn.execute("PRAGMA main.journal_mode").fetchone()[0] == "wal"
    assert not Path(f"{conn.execute('PRAGMA database_list').fetchone()['file']}-journal").exists()


def test_a_big_write_keeps_the_log_while_another_connection_is_open(
    conn, library, workspace, write_jsonl, check_tree, big_write
):
    reader = connect(workspace)  # the app, open on the same workspace
    try:
        seen = JournalWatch(conn)
        assert watched(conn, library, write_jsonl("book.jsonl", BOOK), seen).added == 8
        assert seen.seen == {"wal"}
        assert reader.execute("SELECT COUNT(*) FROM nodes WHERE library_id = ?", (library.id,)).fetchone()[0] == 9
    finally:
        reader.close()
    check_tree()


class Steps(NoProgress):
    """Counts what the write reports; cancels after `cancel_after` steps."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.steps: list[int] = []
        self.cancel_after = cancel_after

    def advance(self, amount: int) -> None:
        self.steps.append(amount)

    @property
    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.steps) >= self.cancel_after


def uid_index(conn: sqlite3.Connection) -> str | None:
    found = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'nodes_by_uid'").fetchone()
    return None if found is None else str(found[0])


def test_the_write_goes_in_chunks_of_a_depth_each_reported(conn, library, write_jsonl, check_tree, big_write):
    index = uid_index(conn)
    steps = Steps()
    assert watched(conn, library, write_jsonl("book.jsonl", BOOK), steps).added == 8
    # depth 1: book, appendix; depth 2: ch1, ch2; depth 3: s1 s2 s3 s4 in two chunks
    assert steps.steps == [2, 2, 2, 2]
    assert uid_index(conn) == index  # dropped for the big write and made again, the same
    assert child_uids(conn, node(conn, "ch1", library)["id"]) == ["s1", "s2", "s3"]
    check_tree()


def test_a_write_cancelled_between_chunks_writes_nothing(conn, library, write_jsonl, db_dump, big_write):
    index = uid_index(conn)
    before = db_dump()
    steps = Steps(cancel_after=3)
    with pytest.raises(ImportCancelled):
        watched(conn, library, write_jsonl("book.jsonl", BOOK), steps)
    assert steps.steps == [2, 2, 2]
    assert db_dump() == before
    assert uid_index(conn) == index


def test_opening_a_workspace_held_by_a_big_write_says_it_is_busy(workspace, monkeypatch):
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 50)
    writer = connect(workspace)
    writer.execute("PRAGMA main.journal_mode = DELETE")
    writer.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(WorkspaceError, match="is busy: another process is writing to it"):
            connect(workspace)
    finally:
        writer.execute("ROLLBACK")
        writer.execute("PRAGMA main.journal_mode = WAL")
        writer.close()


# -- skip_bad --------------------------------------------------------------


def test_skip_bad_imports_the_good_and_reports_the_bad(conn, library, write_jsonl, check_tree):
    run(conn, library, write_jsonl("existing.jsonl", [{"id": "old", "title": "Already here"}]))
    lines = [
        {"id": "top", "title": "Top"},  # 1 good
        "{not json",  # 2 invalid JSON
        {"id": "a", "parent": "top", "title": "A"},  # 3 good
        {"id": "b", "parent": "top", "title": 12},  # 4 wrong type
        {"id": "c", "parent": "missing", "title": "C"},  # 5 missing parent
        {"id": "x", "parent": "y", "title": "X"},  # 6 cycle
        {"id": "y", "parent": "x", "title": "Y"},  # 7 cycle
        {"id": "a", "parent": "top", "title": "A again"},  # 8 duplicate
        {"id": "old", "title": "collides"},  # 9 exists in library
        {"id": "d", "parent": "a", "title": "D"},  # 10 good
        {"id": "e", "parent": "old", "title": "under existing"},  # 11 good
    ]
    report = run(conn, library, write_jsonl("mixed.jsonl", lines), skip_bad=True)

    assert report.added == 4
    assert report.skipped == 7
    assert sorted((p.line, p.field) for p in report.problems) == [
        (2, "-"),
        (4, "title"),
        (5, "parent"),
        (6, "parent"),
        (7, "parent"),
        (8, "id"),
        (9, "id"),
    ]
    uids = {row[0] for row in conn.execute("SELECT uid FROM nodes WHERE library_id = ?", (library.id,))}
    assert uids - {root(conn, library)["uid"]} == {"old", "top", "a", "d", "e"}
    assert node(conn, "a", library)["title"] == "A"
    assert node(conn, "top", library)["subtree_size"] == 3
    assert node(conn, "old", library)["child_count"] == 1
    assert root(conn, library)["subtree_size"] == 6
    check_tree()


def test_skip_bad_with_nothing_good_writes_nothing(conn, library, write_jsonl, db_dump):
    before = db_dump()
    report = run(
        conn, library, write_jsonl("allbad.jsonl", ["nope", {"id": "a", "parent": "zz", "title": "A"}]), skip_bad=True
    )
    assert (report.added, report.skipped, report.first_node_id) == (0, 2, None)
    assert db_dump() == before
