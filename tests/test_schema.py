"""The schema check: a file migrated from empty or from any earlier version has exactly the
release's tables, columns and indexes; one that lost an index, a column or a table is named."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from kb.db import connect, migrate, migrations
from kb.schema import expected_shape, schema_drift, schema_shape


def test_a_new_workspace_matches_the_release(tmp_path: Path) -> None:
    conn = connect(tmp_path / "w.db", create=True)
    assert schema_drift(conn) == []
    assert set(expected_shape()) >= {"nodes", "items", "predictions", "credences", "credence_nodes"}


def test_every_earlier_version_upgrades_to_the_same_shape(tmp_path: Path) -> None:
    for previous in range(1, len(migrations())):
        path = tmp_path / f"v{previous}.db"
        raw = sqlite3.connect(path, isolation_level=None)
        migrate(raw, target=previous)
        assert schema_drift(raw), f"version {previous} should lack something of the latest schema"
        raw.close()
        upgraded = connect(path)
        assert schema_drift(upgraded) == []
        assert schema_shape(upgraded) == expected_shape()


def test_a_lost_index_column_or_table_is_named(tmp_path: Path) -> None:
    conn = connect(tmp_path / "w.db", create=True)
    conn.execute("DROP INDEX nodes_by_uid")
    conn.execute("DROP TABLE bookmarks")
    Database(conn).table("search_index_state").transform(drop={"built_at"})
    assert schema_drift(conn) == [
        "table nodes has no index nodes_by_uid",
        "table search_index_state has no column built_at",
        "table bookmarks is missing",
    ]


def test_extra_tables_are_allowed(tmp_path: Path) -> None:
    conn = connect(tmp_path / "w.db", create=True)
    conn.execute("CREATE TABLE my_notes (id INTEGER PRIMARY KEY, text TEXT)")
    assert schema_drift(conn) == []
