"""Forking a library: a full copy that candidate Zs can diverge from.

F(Z) compares candidate backgrounds, so a coordinator needs to copy a library and
edit the copy. The copy keeps every node uid (DESIGN §2, schema 001: a credence on
a shared statement applies to both libraries) and gets its own integer ids, so the
two trees can grow apart without touching each other.

The copy is set-based: new ids are the source ids shifted by one offset, so the
parent (and `replaces_id`) mapping is arithmetic and the tree is copied by
INSERT … SELECT over ranges of FORK_CHUNK ids, in one transaction. Stored counts,
sizes, positions and depths are copied as they are, because the tree is the same
shape. A million-node library is ten statements rather than a million Python round
trips; between them the progress moves and a cancel rolls everything back.

What is not copied: labels (predictions are about the source Z; credences apply
through shared uids instead, see models.imitation.score), bookmarks, and the search index,
which is per library and built with `navigator index --library NAME`.
"""

from __future__ import annotations

import json
import sqlite3
import uuid

from kb.db import WorkspaceError, journal_for_write, transaction, utc_now
from kb.libraries import Library, check_new_name, library_by_id
from kb.progress import ImportCancelled, NoProgress, Progress
from kb.tree import library_node_count, subtree_size

FORK_CHUNK = 100_000  # source ids a statement copies: a progress step and a chance to cancel

_NODE_COLUMNS = (
    "uid, library_id, parent_id, position, depth, kind, title, body, origin, review, replaces_id,"
    " provenance, extra, child_count, subtree_size, created_at"
)


def fork_library(
    conn: sqlite3.Connection,
    source: Library,
    name: str,
    *,
    description: str | None = None,
    progress: Progress | None = None,
) -> Library:
    """Copy `source` whole into a new library `name` whose parent is `source`; all or nothing."""
    progress = progress or NoProgress()
    now = utc_now()
    uid = f"lib_{uuid.uuid4().hex}"
    try:
        size = subtree_size(conn, source.root_id)
    except WorkspaceError:
        raise WorkspaceError(f"no library {source.name!r} to fork") from None
    with journal_for_write(conn, size), transaction(conn):
        check_new_name(conn, name, "a fork")
        if not conn.execute("SELECT 1 FROM libraries WHERE id = ?", (source.id,)).fetchone():
            raise WorkspaceError(f"no library {source.name!r} to fork")
        # Parents and replaced nodes may be copied by a later statement; check references at COMMIT.
        conn.execute("PRAGMA defer_foreign_keys = ON")
        library_id = conn.execute(
            "INSERT INTO libraries (uid, name, parent_id, description, created_at) VALUES (?, ?, ?, ?, ?)",
            (uid, name, source.id, source.description if description is None else description, now),
        ).lastrowid
        assert library_id is not None
        # Two statements, not MIN and MAX in one: only a lone MIN or MAX is answered from the index's ends.
        low = conn.execute("SELECT MIN(id) FROM nodes WHERE library_id = ?", (source.id,)).fetchone()[0]
        last = conn.execute("SELECT MAX(id) FROM nodes WHERE library_id = ?", (source.id,)).fetchone()[0]
        top = conn.execute("SELECT MAX(id) FROM nodes").fetchone()[0]
        offset = int(top) - int(low) + 1
        provenance = json.dumps(
            {"forked_from": {"library": source.uid, "name": source.name, "root": source.root_id}, "forked_at": now},
            ensure_ascii=False,
        )
        progress.start("copying", size)
        for start in range(int(low), int(last) + 1, FORK_CHUNK):
            if progress.cancelled:
                raise ImportCancelled(f"fork of {source.name!r} cancelled; nothing was written")
            progress.advance(_copy_nodes(conn, source, library_id, name, offset, provenance, start))
        copied, original = library_node_count(conn, library_id), library_node_count(conn, source.id)
        if copied != original:
            raise WorkspaceError(f"fork copied {copied} of {original} nodes; nothing was written")
    return library_by_id(conn, library_id)


def _copy_nodes(
    conn: sqlite3.Connection, source: Library, library_id: int, name: str, offset: int, provenance: str, start: int
) -> int:
    """Copy the source's nodes with ids in [start, start + FORK_CHUNK); how many were copied."""
    return int(
        conn.execute(
            f"INSERT INTO nodes (id, {_NODE_COLUMNS})"
            " SELECT n.id + :offset, n.uid, :library, n.parent_id + :offset, n.position, n.depth, n.kind,"
            "  CASE WHEN n.parent_id IS NULL THEN :name ELSE n.title END, n.body, n.origin, n.review,"
            "  CASE WHEN r.id IS NULL THEN n.replaces_id ELSE n.replaces_id + :offset END,"
            "  CASE WHEN n.parent_id IS NULL THEN json_patch(n.provenance, :provenance) ELSE n.provenance END,"
            "  n.extra, n.child_count, n.subtree_size, n.created_at"
            " FROM nodes n LEFT JOIN nodes r ON r.id = n.replaces_id AND r.library_id = n.library_id"
            " WHERE n.library_id = :source AND n.id >= :start AND n.id < :end ORDER BY n.id",
            {
                "offset": offset,
                "library": library_id,
                "name": name,
                "provenance": provenance,
                "source": source.id,
                "start": start,
                "end": start + FORK_CHUNK,
            },
        ).rowcount
    )


def fork_family(conn: sqlite3.Connection, library: Library) -> list[Library]:
    """Every library linked to `library` by forking (ancestors, descendants, siblings), itself first.

    These share node uids, so a credence given in one applies to the same statement in the others.
    """
    parents = {int(row[0]): row[1] for row in conn.execute("SELECT id, parent_id FROM libraries")}

    def top(library_id: int) -> int:
        seen = {library_id}
        while parents.get(library_id) is not None and parents[library_id] not in seen:
            library_id = int(parents[library_id])
            seen.add(library_id)
        return library_id

    root = top(library.id)
    others = sorted(other for other in parents if other != library.id and top(other) == root)
    return [library, *(library_by_id(conn, other) for other in others)]
