"""Model credences in the workspace: the migration that makes room for them, and that no human reader sees them.

M_Z's own P(statement true) is a credence row whose labeler and source are both `model:<name>`.
The schema enforces that pairing; every reader of people's credences (the P(Z) engine, stats,
exports) leaves them out, and `model_credences` reads them on purpose.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from kb.db import connect, migrate, schema_version
from kb.exchange import export_labels
from kb.labels import LabelError, LabelStore, label_counts, model_credences
from kb.libraries import Library
from kb.tree import Node, add_children, node_by_id
from models.prior.report import load_workspace_credences

# The migration that widened credences.source; the lead renumbers migrations at merge, so this is the one place
# that names the number.
MODEL_CREDENCES_MIGRATION = 6
T = "2026-01-01T00:00:00.000000Z"
MODEL = "model:gemma-3-270m-q4_k_m"


def statements(conn: sqlite3.Connection, library: Library, *titles: str) -> list[Node]:
    root = node_by_id(conn, library.root_id)
    assert root is not None
    return add_children(conn, root, [(title, "", "statement") for title in titles], origin="llm")


def test_from_an_empty_file_model_credences_need_labeler_equal_to_source(
    conn: sqlite3.Connection, library: Library
) -> None:
    a, b = statements(conn, library, "A", "B")
    model = LabelStore(conn, MODEL, source=MODEL)
    stored = model.record_credence(library.id, [a], 0.7, provenance={"raw": 0.4, "calibration": "platt"})
    assert conn.execute("SELECT provenance FROM credences WHERE uid = ?", (stored.uid,)).fetchone()[0] == (
        '{"calibration": "platt", "raw": 0.4}'
    )
    with pytest.raises(LabelError, match="kept for model credences"):
        LabelStore(conn, "ann", source=MODEL)
    with pytest.raises(LabelError, match="kept for model credences"):
        LabelStore(conn, MODEL)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(
            "INSERT INTO credences (uid, library_id, labeler, source, scope, statements, statements_key, p, created_at)"
            " VALUES ('x', ?, 'ann', ?, 'statements', '[]', '', 0.5, ?)",
            (library.id, MODEL, T),
        )
    assert [row[0] for row in conn.execute("PRAGMA foreign_key_check")] == []


def test_upgrade_from_the_previous_version_keeps_every_credence_row_and_link(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    raw = sqlite3.connect(path, isolation_level=None)
    migrate(raw, target=MODEL_CREDENCES_MIGRATION - 1)
    raw.executescript(
        f"""
        BEGIN;
        INSERT INTO libraries (id, uid, name, created_at) VALUES (1, 'lib-1', 'old', '{T}');
        INSERT INTO nodes (id, uid, library_id, parent_id, position, depth, kind, title, origin, child_count,
                           subtree_size, created_at)
            VALUES (1, 'root', 1, NULL, 0, 0, 'library', 'old', 'import', 2, 3, '{T}'),
                   (2, 's1', 1, 1, 0, 1, 'statement', 'Water is wet', 'import', 0, 1, '{T}'),
                   (3, 's2', 1, 1, 1, 1, 'statement', 'Fire is hot', 'import', 0, 1, '{T}');
        INSERT INTO credences (id, uid, library_id, labeler, scope, statements, statements_key, p, created_at)
            VALUES (7, 'cred_1', 1, 'ann', 'statements', '["s1"]', 's1', 0.8, '{T}'),
                   (9, 'cred_3', 1, 'bob', 'statements', '["s1", "s2"]', 's1 s2', 0.5, '{T}');
        INSERT INTO credences (id, uid, library_id, labeler, scope, statements, statements_key, p, supersedes,
                               retracted, created_at)
            VALUES (8, 'cred_2', 1, 'ann', 'statements', '["s1"]', 's1', 0.8, 'cred_1', 1, '{T}');
        INSERT INTO credence_nodes (credence_id, node_uid) VALUES (7, 's1'), (8, 's1'), (9, 's1'), (9, 's2');
        COMMIT;
        """
    )
    columns = "id, uid, library_id, labeler, source, scope, statements, statements_key, p, supersedes, retracted"
    before = raw.execute(f"SELECT {columns} FROM credences ORDER BY id").fetchall()
    links = raw.execute("SELECT * FROM credence_nodes ORDER BY 1, 2").fetchall()
    raw.close()

    conn = connect(path)
    assert schema_version(conn) >= MODEL_CREDENCES_MIGRATION
    assert [tuple(row) for row in conn.execute(f"SELECT {columns} FROM credences ORDER BY id")] == before
    assert [tuple(row) for row in conn.execute("SELECT * FROM credence_nodes ORDER BY 1, 2")] == links
    assert {row[0] for row in conn.execute("SELECT provenance FROM credences")} == {"{}"}
    assert [row[0] for row in conn.execute("PRAGMA foreign_key_check")] == []
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    targets = {row[2] for row in conn.execute("PRAGMA foreign_key_list(credence_nodes)")}
    assert targets == {"credences"}
    # The undone credence stays undone and the old rows still work with the label store.
    [(library_id,)] = conn.execute("SELECT id FROM libraries").fetchall()
    assert LabelStore(conn, "ann").current_credences(library_id) == {}
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO credence_nodes (credence_id, node_uid) VALUES (99, 's1')")
    conn.close()


def test_human_readers_leave_model_credences_out(conn: sqlite3.Connection, library: Library) -> None:
    a, b = statements(conn, library, "A", "B")
    LabelStore(conn, "ann").record_credence(library.id, [a], 0.9)
    model = LabelStore(conn, MODEL, source=MODEL)
    model.record_credence(library.id, [a], 0.2, provenance={"raw": -1.0})
    model.record_credence(library.id, [b], 0.6)
    model.record_credence(library.id, [b], 0.65)  # a re-judgement supersedes the earlier one

    assert [entry.labeler for entry in load_workspace_credences(conn, library.id)] == ["ann"]
    counts = label_counts(conn)
    assert (counts["credences"], counts["credence_rows"], counts["model_credences"]) == (1, 1, 2)
    out = io.StringIO()
    export_labels(conn, out)
    exported = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["labeler"], r["p"]) for r in exported if r["type"] == "credence"] == [("ann", 0.9)]

    found = model_credences(conn, library.id)
    assert {uid: (c.p, c.source) for uid, c in found.items()} == {a.uid: (0.2, MODEL), b.uid: (0.65, MODEL)}
    assert found[a.uid].provenance == {"raw": -1.0}
    assert set(model_credences(conn, library.id, [b.uid])) == {b.uid}
    assert model_credences(conn, library.id, []) == {}
