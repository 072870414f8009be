"""Who labels in a workspace, and who is a lead: the one module that reads and writes `labelers`.

A lead coordinates the team, adjudicates disagreements, and alone may see other labelers' answers to
an item before giving one; everyone else sees another's answer only to an item they have answered
themselves, so their labels stay independent judgements (what agreement and the study assume). A
name the table does not list is an ordinary labeler.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from kb.db import WorkspaceError, transaction, utc_now

LEAD, LABELER = "lead", "labeler"


@dataclass(frozen=True)
class Labeler:
    name: str
    role: str
    created_at: str

    @property
    def lead(self) -> bool:
        return self.role == LEAD


def add_labeler(conn: sqlite3.Connection, name: str, *, lead: bool = False) -> Labeler:
    """Record a labeler (or change their role, if already recorded)."""
    name = name.strip()
    if not name:
        raise WorkspaceError("a labeler needs a name")
    role = LEAD if lead else LABELER
    with transaction(conn):
        conn.execute(
            "INSERT INTO labelers (name, role, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET role = excluded.role",
            (name, role, utc_now()),
        )
    found = labeler(conn, name)
    assert found is not None
    return found


def labeler(conn: sqlite3.Connection, name: str) -> Labeler | None:
    row = conn.execute("SELECT name, role, created_at FROM labelers WHERE name = ?", (name,)).fetchone()
    return Labeler(*row) if row else None


def list_labelers(conn: sqlite3.Connection) -> list[Labeler]:
    return [Labeler(*row) for row in conn.execute("SELECT name, role, created_at FROM labelers ORDER BY name")]


def is_lead(conn: sqlite3.Connection, name: str) -> bool:
    found = labeler(conn, name)
    return found is not None and found.lead


def leads(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM labelers WHERE role = ? ORDER BY name", (LEAD,))]
