"""Where each labeler was and what they bookmarked, so reopening resumes exactly there."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from kb.db import utc_now
from kb.tree import Node, node_by_id


def save_state(conn: sqlite3.Connection, labeler: str, **values: Any) -> None:
    """One autocommitted upsert per call: cheap enough to run on every move."""
    now = utc_now()
    conn.executemany(
        "INSERT INTO labeler_state (labeler, key, value, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (labeler, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        [(labeler, key, json.dumps(value), now) for key, value in values.items()],
    )


def load_state(conn: sqlite3.Connection, labeler: str) -> dict[str, Any]:
    rows = conn.execute("SELECT key, value FROM labeler_state WHERE labeler = ?", (labeler,))
    return {key: json.loads(value) for key, value in rows}


def last_labeler(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT labeler FROM labeler_state ORDER BY updated_at DESC LIMIT 1").fetchone()
    return str(row[0]) if row else None


def toggle_bookmark(conn: sqlite3.Connection, labeler: str, node: Node) -> bool:
    """Returns True when the node is bookmarked afterwards."""
    removed = conn.execute("DELETE FROM bookmarks WHERE labeler = ? AND node_id = ?", (labeler, node.id)).rowcount
    if removed:
        return False
    conn.execute("INSERT INTO bookmarks (labeler, node_id, created_at) VALUES (?, ?, ?)", (labeler, node.id, utc_now()))
    return True


def bookmarks(conn: sqlite3.Connection, labeler: str) -> list[Node]:
    rows = conn.execute("SELECT node_id FROM bookmarks WHERE labeler = ? ORDER BY id", (labeler,)).fetchall()
    found = [node_by_id(conn, row[0]) for row in rows]
    return [node for node in found if node is not None]
