"""Upgrading a workspace made by an older release: data survives, a backup is taken first.

A workspace holds labels people spent hours on, so an upgrade copies the file
before the first migration touches it, and a file from a newer release is
refused without being changed (or copied: nothing was at risk).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from kb.db import WorkspaceError, connect, latest_version, migrate, schema_version
from kb.items import item_by_uid
from kb.labels import LabelStore
from kb.libraries import list_libraries

T = "2026-01-01T00:00:00.000000Z"
CHECKED = {
    "libraries": "uid, name",
    "nodes": "uid, library_id, parent_id, position, depth, title",
    "items": "uid, x, options, split, y",
    "predictions": "uid, item_id, labeler, probs, supersedes",
    "credences": "uid, labeler, statements, p",
}


def make_version_1(path: Path) -> None:
    """A workspace exactly as release 1 left it, written with plain SQL against schema 1."""
    raw = sqlite3.connect(path, isolation_level=None)
    migrate(raw, target=1)
    assert schema_version(raw) == 1
    raw.executescript(
        f"""
        BEGIN;
        INSERT INTO libraries (id, uid, name, created_at) VALUES (1, 'lib-1', 'old', '{T}');
        INSERT INTO nodes (id, uid, library_id, parent_id, position, depth, kind, title, origin, child_count,
                           subtree_size, created_at)
            VALUES (1, 'root', 1, NULL, 0, 0, 'library', 'old', 'import', 2, 3, '{T}'),
                   (2, 's1', 1, 1, 0, 1, 'statement', 'Water is wet', 'import', 0, 1, '{T}'),
                   (3, 's2', 1, 1, 1, 1, 'statement', 'Fire is hot', 'import', 0, 1, '{T}');
        INSERT INTO items (id, uid, x, options, split, y, created_at)
            VALUES (1, 'i1', 'Is it?', '["yes", "no"]', 'train', 'yes', '{T}');
        INSERT INTO predictions (uid, item_id, library_id, labeler, probs, created_at)
            VALUES ('pred_1', 1, 1, 'ann', '{{"yes": 0.7, "no": 0.3}}', '{T}');
        INSERT INTO predictions (uid, item_id, library_id, labeler, probs, supersedes, created_at)
            VALUES ('pred_2', 1, 1, 'ann', '{{"yes": 0.9, "no": 0.1}}', 'pred_1', '{T}');
        INSERT INTO credences (id, uid, library_id, labeler, scope, statements, statements_key, p, created_at)
            VALUES (1, 'cred_1', 1, 'ann', 'statements', '["s1"]', 's1', 0.8, '{T}');
        INSERT INTO credence_nodes (credence_id, node_uid) VALUES (1, 's1');
        COMMIT;
        """
    )
    raw.close()


def contents(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: [tuple(row) for row in conn.execute(f"SELECT {columns} FROM {table} ORDER BY uid")]
        for table, columns in CHECKED.items()
    }


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".backup-*"))


def test_a_version_1_workspace_upgrades_in_place_after_a_backup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "w.db"
    make_version_1(path)
    raw = sqlite3.connect(path)
    before = contents(raw)
    raw.close()
    assert before["predictions"] and before["credences"]

    with caplog.at_level(logging.WARNING, logger="kb.db"):
        conn = connect(path)
    assert schema_version(conn) == latest_version()
    assert contents(conn) == before
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    [backup] = backups(path)
    assert backup.name.startswith("w.db.backup-v1-")
    assert str(backup) in caplog.text and "schema version 1" in caplog.text
    old = sqlite3.connect(backup)
    assert schema_version(old) == 1
    assert contents(old) == before
    assert old.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    old.close()

    # The upgraded workspace is fully usable: a new label supersedes the migrated one.
    library = list_libraries(conn)[0]
    item = item_by_uid(conn, "i1")
    assert item is not None
    label = LabelStore(conn, "ann").record_prediction(item, library.id, {"yes": 0.5, "no": 0.5})
    assert conn.execute("SELECT supersedes FROM predictions WHERE uid = ?", (label.uid,)).fetchone()[0] == "pred_2"
    conn.close()

    connect(path).close()
    assert len(backups(path)) == 1, "an up-to-date workspace must not be copied again"


def test_new_workspaces_get_no_backup(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    connect(path, create=True).close()
    connect(path).close()
    assert backups(path) == []


def test_a_newer_workspace_is_refused_unchanged_and_not_copied(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn = connect(path, create=True)
    conn.execute("INSERT INTO _migrations VALUES (?, 'from_the_future', ?)", (latest_version() + 1, T))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(WorkspaceError, match="newer than this release"):
        connect(path)
    assert path.read_bytes() == before
    assert backups(path) == []
