"""Libraries: the candidate Zs a workspace holds. Each has exactly one root node."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kb.db import WorkspaceError, transaction, utc_now


@dataclass(frozen=True)
class Library:
    id: int
    uid: str
    name: str
    parent_id: int | None
    root_id: int
    description: str


_SELECT = (
    "SELECT l.id, l.uid, l.name, l.parent_id, n.id AS root_id, l.description "
    "FROM libraries l JOIN nodes n ON n.library_id = l.id AND n.parent_id IS NULL"
)


def _library(row: sqlite3.Row) -> Library:
    return Library(row["id"], row["uid"], row["name"], row["parent_id"], row["root_id"], row["description"])


def list_libraries(conn: sqlite3.Connection) -> list[Library]:
    return [_library(row) for row in conn.execute(_SELECT + " ORDER BY l.id")]


def find_library(conn: sqlite3.Connection, name: str) -> Library | None:
    row = conn.execute(_SELECT + " WHERE l.name = ? OR l.uid = ?", (name, name)).fetchone()
    return _library(row) if row else None


def get_library(conn: sqlite3.Connection, name: str) -> Library:
    library = find_library(conn, name)
    if library is None:
        known = ", ".join(lib.name for lib in list_libraries(conn)) or "none yet"
        raise WorkspaceError(f"no library named {name!r} (libraries: {known})")
    return library


def library_by_id(conn: sqlite3.Connection, library_id: int) -> Library:
    row = conn.execute(_SELECT + " WHERE l.id = ?", (library_id,)).fetchone()
    if row is None:
        raise WorkspaceError(f"no library with id {library_id}")
    return _library(row)


def check_new_name(conn: sqlite3.Connection, name: str, what: str = "a library") -> None:
    """The one rule for a new library's name (created or forked): not blank, not taken. Call it inside
    the transaction that inserts the library, so no one takes the name in between."""
    if not name.strip():
        raise WorkspaceError(f"{what} needs a non-empty name")
    if conn.execute("SELECT 1 FROM libraries WHERE name = ?", (name,)).fetchone():
        raise WorkspaceError(f"a library named {name!r} already exists")


def create_library(conn: sqlite3.Connection, name: str, *, description: str = "", uid: str | None = None) -> Library:
    now = utc_now()
    uid = uid or f"lib_{uuid.uuid4().hex}"
    with transaction(conn):
        check_new_name(conn, name)
        library_id = conn.execute(
            "INSERT INTO libraries (uid, name, description, created_at) VALUES (?, ?, ?, ?)",
            (uid, name, description, now),
        ).lastrowid
        conn.execute(
            "INSERT INTO nodes (uid, library_id, parent_id, position, depth, kind, title, body,"
            " origin, created_at) VALUES (?, ?, NULL, 0, 0, 'library', ?, ?, 'import', ?)",
            (f"root_{uid}", library_id, name, description, now),
        )
    assert library_id is not None
    return library_by_id(conn, library_id)


def get_or_create_library(conn: sqlite3.Connection, name: str) -> Library:
    return find_library(conn, name) or create_library(conn, name)


@contextmanager
def library_for_import(conn: sqlite3.Connection, name: str) -> Iterator[Library]:
    """The library called `name`, created when there is none, for the block to fill.

    When the block raises, a library this created is removed again (it holds only its root), so a
    failed first import leaves no empty library behind.
    """
    existed = find_library(conn, name) is not None
    library = get_or_create_library(conn, name)
    try:
        yield library
    except Exception:
        if not existed:
            with transaction(conn):
                conn.execute("DELETE FROM nodes WHERE library_id = ? AND parent_id IS NULL", (library.id,))
                conn.execute("DELETE FROM libraries WHERE id = ?", (library.id,))
        raise
