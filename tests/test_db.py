"""Migrations: from an empty file, re-run as a no-op, from a previous version, and refusing newer files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kb.db import WorkspaceError, connect, latest_version, migrate, migrations, schema_version

EXPECTED_TABLES = {
    "libraries",
    "nodes",
    "items",
    "predictions",
    "credences",
    "credence_nodes",
    "llm_calls",
    "search_index_state",
    "_migrations",
}


def tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def schema_dump(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return sorted((row[0], row[1] or "") for row in conn.execute("SELECT name, sql FROM sqlite_master"))


def test_empty_file_migrates_to_latest(tmp_path: Path) -> None:
    conn = connect(tmp_path / "w.db", create=True)
    assert schema_version(conn) == latest_version()
    assert tables(conn) >= EXPECTED_TABLES
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_rerunning_migrations_is_a_no_op(tmp_path: Path) -> None:
    conn = connect(tmp_path / "w.db", create=True)
    before = schema_dump(conn)
    rows_before = conn.execute("SELECT version, applied_at FROM _migrations").fetchall()
    assert migrate(conn) == []
    conn.close()
    again = connect(tmp_path / "w.db")
    assert schema_dump(again) == before
    assert again.execute("SELECT version, applied_at FROM _migrations").fetchall() == rows_before


def test_each_version_upgrades_from_the_previous_one(tmp_path: Path) -> None:
    """Apply migrations one at a time by hand, then let connect() finish: the
    result must equal a file migrated in one go."""
    for previous in range(len(migrations())):
        path = tmp_path / f"v{previous}.db"
        raw = sqlite3.connect(path, isolation_level=None)
        migrate(raw, target=previous)
        assert schema_version(raw) == previous
        raw.close()
        upgraded = connect(path)
        assert schema_version(upgraded) == latest_version()
        fresh = connect(tmp_path / f"fresh{previous}.db", create=True)
        assert schema_dump(upgraded) == schema_dump(fresh)


def test_a_newer_workspace_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    connect(path, create=True).execute(
        "INSERT INTO _migrations VALUES (?, 'from_the_future', 'later')", (latest_version() + 1,)
    )
    before = path.read_bytes()
    with pytest.raises(WorkspaceError, match="newer than this release"):
        connect(path)
    assert path.read_bytes() == before


def test_missing_and_corrupt_files_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no workspace at"):
        connect(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(WorkspaceError, match="not a usable workspace"):
        connect(junk)


def test_gold_for_held_out_items_is_refused_by_the_schema(tmp_path: Path) -> None:
    conn = connect(tmp_path / "w.db", create=True)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO items (uid, x, options, split, y, created_at)"
            " VALUES ('i', 'x', '[]', 'validation', 'yes', 'now')"
        )
