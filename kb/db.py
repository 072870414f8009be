"""Opening a workspace file and keeping its schema current.

A workspace is one SQLite file. Every connection gets the same pragmas
(WAL so the app can read while an import writes, foreign keys, a busy
timeout so concurrent writers wait instead of failing).

A write of BIG_WRITE rows or more (an import, a fork) leaves the write-ahead log for a
rollback journal while it runs, when nothing else has the workspace open. One transaction
of ten million nodes made a 7.6 GB log: each page the insert read back was first looked up
in the log's index, which grows with the log (a fifth of the write's time at 10M, sampled
with perf), and every finished page was then copied a second time into the file. A rollback
journal keeps only the old pages the write changes; new pages go straight to the file, and a
crash still rolls the write back whole. With another connection open the log stays.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TypeVar

from kb.errors import ZNavigatorError

BUSY_TIMEOUT_MS = 10_000
BIG_WRITE = 200_000  # rows one transaction writes, from which it goes without the write-ahead log
SQL_CHUNK = 500  # values bound per IN (…) list: SQLite caps bound parameters (999 before 3.32)
log = logging.getLogger(__name__)
T = TypeVar("T")
_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


def in_chunks(values: Iterable[T], size: int = SQL_CHUNK) -> Iterator[list[T]]:
    """Values to bind in an `IN (…)` list, at most SQL_CHUNK at a time, in the order given."""
    chunk: list[T] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def marks(count: int) -> str:
    """`?, ?, …` for an `IN (…)` list of `count` bound values."""
    return ",".join("?" * count)


class WorkspaceError(ZNavigatorError):
    """A workspace cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def utc_now() -> str:
    """UTC ISO-8601 with a trailing Z, the one timestamp format the product writes."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("kb.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 001.. without gaps, found {versions}")
    return found


def latest_version() -> int:
    return migrations()[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'").fetchone()
    if not has_table:
        return 0
    row = conn.execute("SELECT MAX(version) FROM _migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, *, target: int | None = None) -> list[int]:
    """Apply the migrations this file lacks (up to `target`), each in its own transaction.

    Returns the versions applied; an up-to-date file gets none (re-running is a
    no-op). A file written by a newer release is refused rather than touched.
    Before upgrading a file that already has a schema, a copy is taken beside it
    (see `backup_before_upgrade`): a migration that goes wrong must not cost the
    labels in it.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    current = schema_version(conn)
    known = migrations()
    if current > known[-1].version:
        raise WorkspaceError(
            f"this workspace has schema version {current}, newer than this release "
            f"understands ({known[-1].version}); upgrade z-navigator to open it"
        )
    pending = [m for m in known if m.version > current and (target is None or m.version <= target)]
    if pending and current > 0:
        backup_before_upgrade(conn, current)
    applied = []
    for migration in pending:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO _migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utc_now()),
            )
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied


def backup_before_upgrade(conn: sqlite3.Connection, version: int) -> Path | None:
    """Copy the workspace to `WORKSPACE.backup-v{version}-{UTC timestamp}` with SQLite's backup API
    (consistent even while others write) and log where it went; in-memory databases have nothing to keep."""
    row = conn.execute("PRAGMA database_list").fetchone()
    if row is None or not row[2]:
        return None
    source = Path(row[2])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = source.with_name(f"{source.name}.backup-v{version}-{stamp}")
    copy = sqlite3.connect(target)
    try:
        conn.backup(copy)
    finally:
        copy.close()
    log.warning("upgrading %s from schema version %d; a copy of it as it was is at %s", source, version, target)
    return target


def _split_statements(sql: str) -> list[str]:
    """executescript() would commit on its own; running statements one by one
    keeps each migration inside the transaction we opened."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def connect(path: Path | str, *, create: bool = False) -> sqlite3.Connection:
    """Open (and with create=True, make) a workspace and bring it up to date."""
    path = Path(path)
    if str(path) != ":memory:" and not path.exists():
        if not create:
            raise WorkspaceError(
                f"no workspace at {path}; create one with `navigator init --workspace {path}` or `navigator demo`"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
    except sqlite3.OperationalError as error:
        if "locked" in str(error):
            raise WorkspaceError(
                f"{path} is busy: another process is writing to it (a large import holds it for minutes);"
                " try again when it has finished"
            ) from error
        raise WorkspaceError(f"{path} is not a usable workspace: {error}") from error
    except sqlite3.DatabaseError as error:
        raise WorkspaceError(f"{path} is not a usable workspace: {error}") from error
    return conn


@contextmanager
def journal_for_write(conn: sqlite3.Connection, rows: int) -> Iterator[None]:
    """Around a `transaction` of `rows` rows: a rollback journal from BIG_WRITE rows when no other
    connection is open, and the write-ahead log again afterwards, whatever happens."""
    if rows < BIG_WRITE or conn.in_transaction:
        yield
        return
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        left = _set_journal(conn, "DELETE") == "delete"
    except sqlite3.OperationalError:  # "database is locked": another connection has the file open
        left = False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")
    try:
        yield
    finally:
        if left:
            with suppress(sqlite3.OperationalError):  # a connection opened meanwhile; each connect() sets WAL
                _set_journal(conn, "WAL")
            # SQLite 3.40 fails the first checkpoint back in WAL on a connection that has renamed a
            # table (migration 006 does) with "database table is locked"; take that one here, where
            # the log is empty, so the caller's next checkpoint works.
            with suppress(sqlite3.OperationalError):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _set_journal(conn: sqlite3.Connection, mode: str) -> str:
    """The main file's journal mode after asking for `mode` (the statement closed at once)."""
    cursor = conn.execute(f"PRAGMA main.journal_mode = {mode}")
    try:
        return str(cursor.fetchone()[0])
    finally:
        cursor.close()


class transaction:
    """`with transaction(conn):` — BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error.

    IMMEDIATE takes the write lock up front, so two writers queue on the busy
    timeout instead of one failing half-way with "database is locked".
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
