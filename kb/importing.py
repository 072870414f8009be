"""The one path every node importer takes into the workspace.

Format readers only parse: they yield `StagedNode`s (or `ImportProblem`s for
records they cannot read). This module stages them in TEMP tables, which
need no write lock on the workspace, checks the whole batch with set-based
SQL (duplicate ids, missing parents, cycles), and only then writes every node
in one short transaction. So an import either commits whole or reports the
first bad record and leaves the workspace untouched; with `skip_bad` it
reports and skips instead. Parents may come after their children in the input.

The stage is two tables: `stage` holds each node's place in the tree (uid, parent, depth,
position, sizes), which the checks rewrite several times over, and `stage_text` its text,
written once and read once. Kept in one table, every check rewrote the text too: a
ten-million-node import wrote 121 GB to disk for a 7 GB workspace; split, 62 GB, and the
checks take a third less time.

A large write leaves the write-ahead log while it runs (`kb.db.journal_for_write`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kb.db import journal_for_write, transaction, utc_now
from kb.errors import ZNavigatorError
from kb.libraries import Library
from kb.progress import ImportCancelled, NoProgress, Progress
from kb.tree import grow_ancestors

STAGE_BATCH = 5_000
IMPORT_CACHE_KIB = -262_144  # negative: KiB, i.e. 256 MiB of page cache while importing
PlaceRow = tuple[int, int, str, str | None]  # seq, line, uid, parent uid: a row of `stage`
TextRow = tuple[int, str, str, str, str, str | None]  # seq, kind, title, body, extra, source: of `stage_text`
MAX_REPORTED = 50
WRITE_CHUNK = 250_000
UID_INDEX_REBUILT_FROM = 200_000  # nodes written, when they at least double the table


@dataclass(frozen=True)
class StagedNode:
    """A node as a reader produced it; `parent_uid` None means under the library root."""

    line: int
    uid: str
    parent_uid: str | None
    kind: str
    title: str
    body: str = ""
    extra: str = "{}"
    source: str | None = None  # the file within a folder import; None means the import's own source


class ImportProblem(ZNavigatorError):
    """One bad record: where it is, which field, and why."""

    def __init__(self, source: str, line: int, field: str, reason: str) -> None:
        self.source, self.line, self.field, self.reason = source, line, field, reason
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.field}: {self.reason}"


@dataclass
class ImportReport:
    library: str
    source: str
    added: int
    skipped: int = 0
    problems: list[ImportProblem] = field(default_factory=list)
    seconds: float = 0.0
    first_node_id: int | None = None


def import_staged(
    conn: sqlite3.Connection,
    library: Library,
    records: Iterable[StagedNode | ImportProblem],
    *,
    source: str,
    importer: str,
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    progress = progress or NoProgress()
    started = time.perf_counter()
    report = ImportReport(library=library.name, source=source, added=0)
    previous_cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = {IMPORT_CACHE_KIB}")  # big imports touch two random-order indexes
    # The stage is dropped whatever happens, so a rollback journal for it would only be written, never read.
    previous_journal = conn.execute("PRAGMA temp.journal_mode").fetchone()[0]
    conn.execute("PRAGMA temp.journal_mode = OFF")
    _create_stage(conn)
    try:
        staged = _stage(conn, records, report, skip_bad, progress)
        if staged == 0 and not report.problems:
            raise ImportProblem(source, 0, "-", "no nodes found: the input is empty")
        progress.start("checking", None)
        _reject_duplicates(conn, library, source, report, skip_bad)
        _resolve_depths(conn, library, source, report, skip_bad)
        _compute_positions_and_sizes(conn, library)
        if progress.cancelled:
            raise ImportCancelled()
        report.first_node_id, report.added = _write(conn, library, source, importer, progress)
    finally:
        _drop_stage(conn)
        conn.execute(f"PRAGMA temp.journal_mode = {previous_journal}")
        conn.execute(f"PRAGMA cache_size = {int(previous_cache)}")
    report.seconds = time.perf_counter() - started
    return report


def _create_stage(conn: sqlite3.Connection) -> None:
    _drop_stage(conn)
    conn.execute(
        "CREATE TEMP TABLE stage ("
        " seq INTEGER PRIMARY KEY, line INTEGER NOT NULL, uid TEXT NOT NULL, parent_uid TEXT,"
        " depth INTEGER, position INTEGER, child_count INTEGER NOT NULL DEFAULT 0,"
        " subtree_size INTEGER NOT NULL DEFAULT 1, attach INTEGER NOT NULL DEFAULT 0)"
    )
    conn.execute(
        "CREATE TEMP TABLE stage_text ("
        " seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,"
        " extra TEXT NOT NULL, source TEXT)"
    )


def _drop_stage(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS temp.stage")
    conn.execute("DROP TABLE IF EXISTS temp.stage_text")


def _note(report: ImportReport, problem: ImportProblem, skip_bad: bool) -> None:
    """Fail on the first problem, or (skip_bad) count it and keep the first few to show."""
    if not skip_bad:
        raise problem
    report.skipped += 1
    if len(report.problems) < MAX_REPORTED:
        report.problems.append(problem)


def _stage(
    conn: sqlite3.Connection,
    records: Iterable[StagedNode | ImportProblem],
    report: ImportReport,
    skip_bad: bool,
    progress: Progress,
) -> int:
    places: list[PlaceRow] = []
    texts: list[TextRow] = []
    staged = 0
    for record in records:
        if isinstance(record, ImportProblem):
            _note(report, record, skip_bad)
            continue
        seq = staged + len(places) + 1
        places.append((seq, record.line, record.uid, record.parent_uid))
        texts.append((seq, record.kind, record.title, record.body, record.extra, record.source))
        if len(places) >= STAGE_BATCH:
            staged += _flush(conn, places, texts)
            if progress.cancelled:
                raise ImportCancelled()
    staged += _flush(conn, places, texts)
    conn.execute("CREATE INDEX temp.stage_uid ON stage(uid)")
    conn.execute("CREATE INDEX temp.stage_parent ON stage(parent_uid)")
    conn.execute("CREATE INDEX temp.stage_depth ON stage(depth)")
    return staged


def _flush(conn: sqlite3.Connection, places: list[PlaceRow], texts: list[TextRow]) -> int:
    # The import's hot path stays raw executemany on tuples: sqlite-utils' insert_all on the same rows
    # took 4.9× as long (`python3 -m bench.sqlite_utils_fit`).
    count = len(places)
    if count:
        conn.executemany("INSERT INTO stage (seq, line, uid, parent_uid) VALUES (?, ?, ?, ?)", places)
        conn.executemany(
            "INSERT INTO stage_text (seq, kind, title, body, extra, source) VALUES (?, ?, ?, ?, ?, ?)", texts
        )
        places.clear()
        texts.clear()
    return count


def _drop(conn: sqlite3.Connection, seqs: list[int]) -> None:
    conn.executemany("DELETE FROM stage WHERE seq = ?", [(seq,) for seq in seqs])


def _reject_duplicates(
    conn: sqlite3.Connection, library: Library, source: str, report: ImportReport, skip_bad: bool
) -> None:
    repeated = conn.execute(
        "SELECT s.seq, s.line, s.uid, (SELECT MIN(t.line) FROM stage t WHERE t.uid = s.uid) AS first"
        " FROM stage s WHERE EXISTS (SELECT 1 FROM stage t WHERE t.uid = s.uid AND t.seq < s.seq)"
        " ORDER BY s.seq"
    ).fetchall()
    for row in repeated:
        _note(
            report,
            ImportProblem(source, row["line"], "id", f"duplicate id {row['uid']!r} (first on line {row['first']})"),
            skip_bad,
        )
    _drop(conn, [row["seq"] for row in repeated])
    existing = conn.execute(
        "SELECT s.seq, s.line, s.uid FROM stage s JOIN nodes n ON n.library_id = ? AND n.uid = s.uid ORDER BY s.seq",
        (library.id,),
    ).fetchall()
    for row in existing:
        _note(
            report,
            ImportProblem(source, row["line"], "id", f"id {row['uid']!r} already exists in library {library.name!r}"),
            skip_bad,
        )
    _drop(conn, [row["seq"] for row in existing])


def _resolve_depths(
    conn: sqlite3.Connection, library: Library, source: str, report: ImportReport, skip_bad: bool
) -> None:
    """Give every staged node its depth, level by level from nodes already placed.

    A node never reached has a parent that is missing or lies on a cycle.
    """
    conn.execute(
        "UPDATE stage SET depth = 1, attach = 1, parent_uid = (SELECT uid FROM nodes WHERE id = ?)"
        " WHERE parent_uid IS NULL",
        (library.root_id,),
    )
    conn.execute(
        "UPDATE stage SET depth = n.depth + 1, attach = 1 FROM nodes n"
        " WHERE n.library_id = ? AND n.uid = stage.parent_uid AND stage.depth IS NULL",
        (library.id,),
    )
    level = conn.execute("SELECT MIN(depth) FROM stage").fetchone()[0]
    while level is not None:
        changed = conn.execute(
            "UPDATE stage SET depth = ? WHERE depth IS NULL AND parent_uid IN (SELECT uid FROM stage WHERE depth = ?)",
            (level + 1, level),
        ).rowcount
        if changed == 0 and not conn.execute("SELECT 1 FROM stage WHERE depth > ? LIMIT 1", (level,)).fetchone():
            break
        level += 1
    unplaced = conn.execute(
        "SELECT s.seq, s.line, s.uid, s.parent_uid, EXISTS (SELECT 1 FROM stage p WHERE p.uid = s.parent_uid) AS staged"
        " FROM stage s WHERE s.depth IS NULL ORDER BY s.seq"
    ).fetchall()
    for row in unplaced:
        if row["staged"]:
            reason = f"parent {row['parent_uid']!r} is part of a cycle or below a node that could not be placed"
        else:
            reason = f"parent {row['parent_uid']!r} is neither in this input nor in library {library.name!r}"
        _note(report, ImportProblem(source, row["line"], "parent", reason), skip_bad)
    _drop(conn, [row["seq"] for row in unplaced])


def _compute_positions_and_sizes(conn: sqlite3.Connection, library: Library) -> None:
    conn.execute(
        "UPDATE stage SET position = ranked.position FROM ("
        "  SELECT s.seq, ROW_NUMBER() OVER (PARTITION BY s.parent_uid ORDER BY s.seq)"
        "   + COALESCE((SELECT MAX(c.position) FROM nodes p JOIN nodes c ON c.parent_id = p.id"
        "               WHERE p.library_id = ? AND p.uid = s.parent_uid AND s.attach = 1), -1) AS position"
        "  FROM stage s) AS ranked WHERE ranked.seq = stage.seq",
        (library.id,),
    )
    conn.execute(
        "UPDATE stage SET child_count = counts.n FROM ("
        " SELECT parent_uid, COUNT(*) AS n FROM stage GROUP BY parent_uid) AS counts"
        " WHERE counts.parent_uid = stage.uid"
    )
    deepest = conn.execute("SELECT MAX(depth) FROM stage").fetchone()[0] or 0
    for depth in range(deepest, 0, -1):
        conn.execute(
            "UPDATE stage SET subtree_size = 1 + sizes.total FROM ("
            " SELECT parent_uid, SUM(subtree_size) AS total FROM stage WHERE depth = ? GROUP BY parent_uid) AS sizes"
            " WHERE sizes.parent_uid = stage.uid AND stage.depth = ?",
            (depth + 1, depth),
        )


def _write(
    conn: sqlite3.Connection, library: Library, source: str, importer: str, progress: Progress
) -> tuple[int | None, int]:
    """Insert the stage depth by depth (a parent before its children), in input order within a depth,
    in chunks of WRITE_CHUNK that report progress and can be cancelled (the transaction then rolls back).
    Ids follow the input, so search's ties (broken by node id) come out in the source's order."""
    now = utc_now()
    total = conn.execute("SELECT COUNT(*) FROM stage").fetchone()[0]
    if total == 0:
        return None, 0
    with journal_for_write(conn, total), transaction(conn):
        progress.start("writing", total)
        first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM nodes").fetchone()[0]
        rebuilt = _uid_index_to_rebuild(conn, total, first)
        for depth, start, stop in _chunks(conn):
            written = conn.execute(
                "INSERT INTO nodes (uid, library_id, parent_id, position, depth, kind, title, body,"
                " origin, provenance, extra, child_count, subtree_size, created_at)"
                " SELECT s.uid, ?, p.id, s.position, s.depth, t.kind, t.title, t.body, 'import',"
                " json_object('importer', ?, 'source', COALESCE(t.source, ?), 'line', s.line),"
                " t.extra, s.child_count, s.subtree_size, ?"
                " FROM stage s JOIN stage_text t ON t.seq = s.seq"
                " JOIN nodes p ON p.library_id = ? AND p.uid = s.parent_uid"
                " WHERE s.depth = ? AND s.seq >= ?" + ("" if stop is None else " AND s.seq < ?") + " ORDER BY s.seq",
                (library.id, importer, source, now, library.id, depth, start, *(() if stop is None else (stop,))),
            ).rowcount
            progress.advance(written)
            if progress.cancelled:
                raise ImportCancelled()
        if rebuilt:
            conn.execute(rebuilt)
        attach_points = conn.execute(
            "SELECT p.id, COUNT(*) AS n, SUM(s.subtree_size) AS size FROM stage s"
            " JOIN nodes p ON p.library_id = ? AND p.uid = s.parent_uid WHERE s.attach = 1 GROUP BY p.id",
            (library.id,),
        ).fetchall()
        for point in attach_points:
            conn.execute("UPDATE nodes SET child_count = child_count + ? WHERE id = ?", (point["n"], point["id"]))
            grow_ancestors(conn, point["id"], point["size"])
    return first, total


def _chunks(conn: sqlite3.Connection) -> Iterator[tuple[int, int, int | None]]:
    """(depth, first seq, seq the chunk stops before or None for the rest of the depth): each depth's
    staged rows, shallowest first, WRITE_CHUNK at a time. Read from stage_depth, whose entries end in
    seq (the rowid), so a depth's seq ranges need no index of their own."""
    shallowest = conn.execute("SELECT MIN(depth) FROM stage").fetchone()[0]
    deepest = conn.execute("SELECT MAX(depth) FROM stage").fetchone()[0]
    for depth in range(shallowest, deepest + 1):
        start = conn.execute("SELECT MIN(seq) FROM stage WHERE depth = ?", (depth,)).fetchone()[0]
        while start is not None:
            stop = conn.execute(
                "SELECT seq FROM stage WHERE depth = ? AND seq >= ? ORDER BY seq LIMIT 1 OFFSET ?",
                (depth, start, WRITE_CHUNK),
            ).fetchone()
            yield depth, int(start), None if stop is None else int(stop[0])
            start = None if stop is None else stop[0]


def _uid_index_to_rebuild(conn: sqlite3.Connection, total: int, first_id: int) -> str | None:
    """Drops the workspace-wide uid index when this write at least doubles the nodes table, and
    returns the statement that makes it again: one sort after the insert beats keeping it up to
    date row by row. Inside the write's transaction, so a rollback puts it back."""
    if total < UID_INDEX_REBUILT_FROM or first_id > total:
        return None
    found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'nodes_by_uid'").fetchone()
    if found is None:
        return None
    conn.execute("DROP INDEX nodes_by_uid")
    return str(found[0])
