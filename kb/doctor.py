"""The doctor's checks of a workspace file, each finding with what to do about it.

The workspace is opened read-only and without migrating: a doctor that
upgraded, repaired or locked the file it was asked to examine would change
the evidence. Every finding carries a fix the user can run or follow;
`navigator doctor` prints them and exits non-zero when any needs action.
A check that cannot even read what it needs is itself a finding, never a traceback.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from kb.check_meter import CheckMeter
from kb.db import latest_version, schema_version
from kb.errors import CHECK_CANCELLED, Cancelled
from kb.labels import DamagedLabel, damaged_labels, labels_citing_missing_nodes
from kb.libraries import Library, list_libraries
from kb.progress import NoProgress, Progress
from kb.schema import schema_drift
from kb.search import SearchError, SearchIndex
from kb.tree import nodes_without_parent

OK, WARNING, ERROR = "ok", "warning", "error"
SHOWN_EXAMPLES = 3
SHOWN_ROWS = 50  # row ids named in a damaged column's fix
# Past this size `--quick` reads every table but `nodes` page by page: quick_check reads the whole file
# (114 s for a 10,000,000-node workspace here), and the nodes can be imported again where labels cannot.
QUICK_WHOLE_FILE_BYTES = 512 * 2**20
# From this size the bar of a whole-file check shows how far it is, its rate and the time left
# (kb.check_meter); below it the check takes a few seconds and measuring its cost is not worth it.
METERED_CHECK_BYTES = 128 * 2**20
WAIT_STEP_SECONDS = 0.1  # how soon a Ctrl+C or a cancel stops a check

# What a damaged stored column (kb.labels.damaged_labels) does to its labels; an export refuses every one.
_DAMAGE_EFFECTS = {
    "cited": "the app, training and agreement read these labels as citing nothing",
    "trail": "the app and training read these labels as having no reading trail",
    "probs": "their probabilities are not a distribution; readers stop at any that is not a JSON object",
    "statements": "readers stop at these credences: without their statements they have no meaning",
}
_LISTS = ("cited", "trail")  # a list a label can do without, so '[]' keeps the rest of it


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok, warning (works, but needs attention) or error (something is broken or at risk)
    message: str
    fix: str = ""

    @property
    def needs_action(self) -> bool:
        return self.status != OK


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write, migrate or create: `mode=ro` on the file URI. Its long
    checks run on a thread of their own (`_interruptible`), one statement at a time."""
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def check_integrity(
    conn: sqlite3.Connection, *, quick: bool, size: int = 0, progress: Progress | None = None
) -> list[Finding]:
    """SQLite's own check of the file. On a large file the bar follows the pages read and then the
    rows checked (kb.check_meter); either check can be cancelled (Ctrl+C, or `progress.cancelled`),
    which stops SQLite mid-check: the doctor only reads."""
    progress = progress or NoProgress()
    pragma = "quick_check" if quick else "integrity_check"
    skipped = ""
    if quick and size > QUICK_WHOLE_FILE_BYTES:
        problems = []
        tables = [str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = [table for table in tables if table != "nodes"]
        progress.start("quick_check, table by table", len(tables))
        for table in tables:
            quoted = table.replace('"', '""')
            problems += [str(row[0]) for row in _interruptible(conn, f'PRAGMA quick_check("{quoted}")', progress)]
            progress.advance(1)
        problems = [problem for problem in problems if problem != "ok"] or ["ok"]
        skipped = (
            f" on every table but nodes (a {size / 2**30:.1f} GiB file: run `navigator doctor` without --quick"
            " to read the nodes too)"
        )
    elif size >= METERED_CHECK_BYTES:
        meter = CheckMeter(conn, pragma, size, progress)
        meter.install()
        try:
            problems = [str(row[0]) for row in _interruptible(conn, f"PRAGMA {pragma}", progress, meter.report)]
        finally:
            meter.remove()
    else:
        progress.start(f"{pragma} of {size / 2**20:,.0f} MiB", None)
        problems = [str(row[0]) for row in _interruptible(conn, f"PRAGMA {pragma}", progress)]
    if problems != ["ok"]:
        return [
            Finding(
                "integrity",
                ERROR,
                f"SQLite reports damage ({len(problems)} problems), e.g. {'; '.join(problems[:SHOWN_EXAMPLES])}",
                "stop writing to it; restore the newest WORKSPACE.backup-* copy, or recover what is readable with "
                "`sqlite3 WORKSPACE .recover | sqlite3 repaired.db`, then `navigator export` your labels",
            )
        ]
    dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    if dangling:
        tables = sorted({str(row[0]) for row in dangling})
        return [
            Finding(
                "integrity",
                ERROR,
                f"{len(dangling)} rows refer to rows that do not exist (in {', '.join(tables)})",
                "the file was edited outside the app; restore the newest WORKSPACE.backup-* copy if you have one",
            )
        ]
    return [Finding("integrity", OK, f"{pragma} passed{skipped}; every reference resolves")]


def _schema_drift(conn: sqlite3.Connection, version: int) -> list[Finding]:
    """The version says which migrations ran; this says their tables, columns and indexes are still there."""
    drift = schema_drift(conn)
    if not drift:
        return [Finding("schema", OK, f"schema version {version}, current; tables, columns and indexes as expected")]
    # a lost index only slows queries down; a lost table or column breaks them
    broken = any(" has no index " not in problem and not problem.startswith("index ") for problem in drift)
    return [
        Finding(
            "schema",
            ERROR if broken else WARNING,
            f"schema version {version}, but the file was changed outside z-navigator: " + "; ".join(drift),
            "export the labels (`navigator export --out labels.jsonl`) and merge them into a new workspace "
            "(`navigator init`, `navigator merge`), or restore the newest WORKSPACE.backup-* beside this file",
        )
    ]


def check_schema(conn: sqlite3.Connection) -> list[Finding]:
    version, latest = schema_version(conn), latest_version()
    if version == latest:
        return _schema_drift(conn, version)
    if version == 0:
        return [
            Finding(
                "schema",
                ERROR,
                "this file has no workspace schema (empty, or not made by z-navigator)",
                "point --workspace at your workspace file, or create one with `navigator init`",
            )
        ]
    if version > latest:
        return [
            Finding(
                "schema",
                ERROR,
                f"schema version {version} is newer than this release understands ({latest})",
                "upgrade z-navigator (`pip install -U z-navigator`) before using this workspace",
            )
        ]
    return [
        Finding(
            "schema",
            WARNING,
            f"schema version {version} is older than this release's ({latest})",
            "run any navigator command on it (e.g. `navigator stats`): it upgrades in place after copying the "
            "file to WORKSPACE.backup-v{old}-{time}",
        )
    ]


def check_index(
    conn: sqlite3.Connection,
    workspace: Path,
    library: Library,
    *,
    quick: bool = False,
    progress: Progress | None = None,
) -> Finding:
    name = f"index {library.name}"
    rebuild = f"`navigator index --rebuild --library {library.name}` (search works again once it finishes)"
    search = SearchIndex(conn, workspace, library)
    try:
        seen = search.indexed_up_to()
        if seen is not None:
            search.verify(thorough=not quick, progress=progress)
    except SearchError as error:
        return Finding(name, ERROR, str(error), rebuild)
    finally:
        search.close()
    pending = search.pending()
    update = f"`navigator index --library {library.name}`"
    if seen is None and pending:
        return Finding(name, WARNING, f"no search index yet for {pending:,} nodes", update)
    if pending:
        return Finding(name, WARNING, f"{pending:,} nodes are not searchable yet (index behind)", update)
    return Finding(name, OK, "search index up to date")


def check_orphans(conn: sqlite3.Connection, *, references_checked: bool = False) -> list[Finding]:
    """Nodes under a parent that is gone, and labels naming nodes their library does not have.

    Foreign keys prevent the first in normal use and the second has no foreign key
    at all (labels name nodes by uid, so they survive export and merge); either
    means the file was changed outside the app or a bug, and a label pointing at
    nothing can no longer be shown with what the labeler saw. When the integrity check's
    foreign_key_check passed (`references_checked`), no node can lack its parent, and the scan
    for them (4 s at ten million nodes) is skipped.
    """
    findings = []
    lost_nodes = [] if references_checked else nodes_without_parent(conn)
    if lost_nodes:
        findings.append(
            Finding(
                "orphan nodes",
                ERROR,
                f"{len(lost_nodes)} nodes have a parent that does not exist, e.g. "
                f"{', '.join(lost_nodes[:SHOWN_EXAMPLES])}",
                "they cannot be reached in the tree; restore the newest WORKSPACE.backup-* copy, or export the "
                "labels (`navigator export`) and merge them into a freshly imported workspace",
            )
        )
    findings += check_damaged_labels(conn)
    cited = labels_citing_missing_nodes(conn)
    if cited:
        labels = sorted({str(row[0]) for row in cited})
        findings.append(
            Finding(
                "orphan labels",
                ERROR,
                f"{len(labels)} labels cite nodes missing from their library, e.g. "
                + ", ".join(f"{row[0]} → {row[1]}" for row in cited[:SHOWN_EXAMPLES]),
                "the labels are kept; merge the export that carried those nodes (`navigator merge FILE`) "
                "or restore the newest WORKSPACE.backup-* copy",
            )
        )
    if not findings:
        findings.append(
            Finding("orphans", OK, "every node has its parent, every cited node exists and every label can be read")
        )
    return findings


def check_damaged_labels(conn: sqlite3.Connection) -> list[Finding]:
    """One error per damaged label column (`damaged <table>.<column>`), nothing when every label can be read.

    The readers pass over a damaged citation list or trail as empty, so nothing else in the app
    would show it; `navigator export` refuses the file until each is dealt with. Part of the
    orphans check (labels that point at nothing, or cannot be read at all), whose ok covers both.
    """
    grouped: dict[tuple[str, str], list[DamagedLabel]] = {}
    for label in damaged_labels(conn):
        grouped.setdefault((label.table, label.column), []).append(label)
    return [_damaged_finding(table, column, rows) for (table, column), rows in grouped.items()]


def _damaged_finding(table: str, column: str, rows: list[DamagedLabel]) -> Finding:
    shown = "; ".join(f"row {row.row_id} ({row.uid}): {column} {row.problem}" for row in rows[:SHOWN_EXAMPLES])
    if len(rows) > SHOWN_EXAMPLES:
        shown += f"; and {len(rows) - SHOWN_EXAMPLES} more"
    ids = ", ".join(str(row.row_id) for row in rows[:SHOWN_ROWS])
    beyond = f" (the first {SHOWN_ROWS} of {len(rows)} rows)" if len(rows) > SHOWN_ROWS else ""
    restore = "restore the newest WORKSPACE.backup-* copy"
    if column in _LISTS:
        fix = (
            f"{restore}; or set each list to the node uids it should hold, '[]' for none, e.g. "
            f"`sqlite3 WORKSPACE \"UPDATE {table} SET {column} = '[]' WHERE id IN ({ids})\"`{beyond}"
        )
    else:
        fix = f"{restore}: the value cannot be rebuilt from this file (rows {ids}{beyond})"
    counted = f"1 {table} row holds" if len(rows) == 1 else f"{len(rows)} {table} rows hold"
    return Finding(
        f"damaged {table}.{column}",
        ERROR,
        f"{counted} a {column} that cannot be read ({_DAMAGE_EFFECTS[column]}; "
        f"`navigator export` refuses to carry them): {shown}",
        fix,
    )


def _interruptible(
    conn: sqlite3.Connection, sql: str, progress: Progress, between_waits: Callable[[], None] = lambda: None
) -> list[Any]:
    """The rows of `sql`, run on a thread of its own. SQLite's checks run inside one C call, where
    Python delivers no Ctrl+C until it returns (minutes at ten million nodes); this thread waits in
    short steps instead (calling `between_waits` after each), and a Ctrl+C or a cancel interrupts
    SQLite, which stops the statement."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["rows"] = conn.execute(sql).fetchall()
        except BaseException as error:  # handed to the waiting thread
            outcome["error"] = error

    worker = threading.Thread(target=run, name="doctor check", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(WAIT_STEP_SECONDS)
            between_waits()
            if progress.cancelled:
                conn.interrupt()
                worker.join()
                raise Cancelled(CHECK_CANCELLED)
    except KeyboardInterrupt:
        conn.interrupt()
        worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    rows: list[Any] = outcome["rows"]
    return rows


def examine(
    workspace: Path,
    *,
    quick: bool = False,
    then: Sequence[Callable[[], Finding]] = (),
    progress: Progress | None = None,
) -> list[Finding]:
    """Every check, in the order a user should act on them; later checks are skipped when an
    earlier finding makes them meaningless (no file, not SQLite, unknown schema).

    `then` are checks of things outside the workspace (the model, which kb cannot see), run last
    when the workspace file exists."""
    if not workspace.is_file():
        return [
            Finding(
                "workspace",
                ERROR,
                f"no workspace at {workspace}",
                f"create one with `navigator init --workspace {workspace}` or `navigator demo`",
            )
        ]
    findings: list[Finding] = []
    conn = open_read_only(workspace)
    try:
        size = workspace.stat().st_size
        integrity = _guarded("integrity", lambda: check_integrity(conn, quick=quick, size=size, progress=progress))
        findings += integrity
        schema = _guarded("schema", lambda: check_schema(conn))
        findings += schema
        if schema[0].status != ERROR:
            checked = integrity[0].status == OK
            findings += _guarded("orphans", lambda: check_orphans(conn, references_checked=checked))
            libraries = _guarded_libraries(conn, findings)
            for library in libraries:
                findings += _guarded(
                    f"index {library.name}", partial(_index_findings, conn, workspace, library, quick, progress)
                )
    finally:
        conn.close()
    findings += [check() for check in then]
    return findings


def _index_findings(
    conn: sqlite3.Connection, workspace: Path, library: Library, quick: bool, progress: Progress | None
) -> list[Finding]:
    return [check_index(conn, workspace, library, quick=quick, progress=progress)]


def _guarded(check: str, run: Callable[[], list[Finding]]) -> list[Finding]:
    """A check that cannot even read what it needs is itself a finding, never a traceback."""
    try:
        return run()
    except sqlite3.DatabaseError as error:
        return [
            Finding(
                check,
                ERROR,
                f"could not be checked: {error}",
                "if this is not a workspace file, point --workspace at the right one; otherwise restore the "
                "newest WORKSPACE.backup-* copy",
            )
        ]


def _guarded_libraries(conn: sqlite3.Connection, findings: list[Finding]) -> list[Library]:
    try:
        return list_libraries(conn)
    except sqlite3.DatabaseError as error:
        findings.append(Finding("libraries", ERROR, f"could not be listed: {error}", "see the integrity finding"))
        return []
