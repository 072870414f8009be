"""Who labels in a workspace, and who is a lead: the one module that reads and writes `labelers`.

A lead coordinates the team, adjudicates disagreements, and alone may see other labelers' answers to
an item before giving one; everyone else sees another's answer only to an item they have answered
themselves, so their labels stay independent judgements (what agreement and the study assume). A
name the table does not list is an ordinary labeler.

A listed labeler may also hold a secret link for the served app (`navigator serve`). Only the token's
SHA-256 is stored: the token has 256 random bits, so a plain hash is as strong as a slow one and lets
the server find its labeler with one indexed lookup. Issuing a new link or revoking ends the old one
at once, because every request and every open session checks the hash again.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from kb.db import WorkspaceError, transaction, utc_now

LEAD, LABELER = "lead", "labeler"
COLUMNS = "name, role, created_at, token_hash IS NOT NULL, token_issued_at, revoked_at"


@dataclass(frozen=True)
class Labeler:
    name: str
    role: str
    created_at: str
    has_link: bool = False
    link_issued_at: str | None = None
    revoked_at: str | None = None

    @property
    def lead(self) -> bool:
        return self.role == LEAD

    @property
    def access(self) -> str:
        """What the served app lets this labeler do: "link" (a live link), "revoked", or "none"."""
        if self.has_link:
            return "link"
        return "revoked" if self.revoked_at else "none"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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
    row = conn.execute(f"SELECT {COLUMNS} FROM labelers WHERE name = ?", (name,)).fetchone()
    return _labeler(row) if row else None


def list_labelers(conn: sqlite3.Connection) -> list[Labeler]:
    return [_labeler(row) for row in conn.execute(f"SELECT {COLUMNS} FROM labelers ORDER BY name")]


def _labeler(row: tuple[Any, ...]) -> Labeler:
    name, role, created_at, has_link, issued_at, revoked_at = row
    return Labeler(name, role, created_at, bool(has_link), issued_at, revoked_at)


def issue_link(conn: sqlite3.Connection, name: str) -> str:
    """A new secret token for a recorded labeler; any earlier one stops working. Returns the token,
    which is shown once and never stored."""
    token = secrets.token_urlsafe(32)
    with transaction(conn):
        changed = conn.execute(
            "UPDATE labelers SET token_hash = ?, token_issued_at = ?, revoked_at = NULL WHERE name = ?",
            (token_hash(token), utc_now(), name),
        ).rowcount
    if not changed:
        raise WorkspaceError(f"no labeler {name!r} in this workspace: add them with `navigator labelers add {name}`")
    return token


def revoke_link(conn: sqlite3.Connection, name: str) -> Labeler:
    """Take away a labeler's served access; their labels stay. Open sessions close within a second."""
    with transaction(conn):
        changed = conn.execute(
            "UPDATE labelers SET token_hash = NULL, revoked_at = ? WHERE name = ?", (utc_now(), name)
        ).rowcount
    found = labeler(conn, name)
    if not changed or found is None:
        raise WorkspaceError(f"no labeler {name!r} in this workspace (`navigator labelers list` shows who is)")
    return found


def labeler_for_token(conn: sqlite3.Connection, token: str) -> Labeler | None:
    """The labeler whose live link this token is, or None (unknown, replaced or revoked)."""
    if not token:
        return None
    row = conn.execute(f"SELECT {COLUMNS} FROM labelers WHERE token_hash = ?", (token_hash(token),)).fetchone()
    return _labeler(row) if row else None


def is_lead(conn: sqlite3.Connection, name: str) -> bool:
    found = labeler(conn, name)
    return found is not None and found.lead


def leads(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM labelers WHERE role = ? ORDER BY name", (LEAD,))]
