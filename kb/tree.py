"""Tree queries that cost O(page) or O(depth), never O(library).

Children come in keyset pages on the (parent_id, position) index, so a node
with 100 000 children is read a page at a time. Child counts and subtree sizes
are stored on each node and kept current by the writers, so nothing here has
to walk a subtree.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kb.db import WorkspaceError, in_chunks, marks, transaction, utc_now

DEFAULT_PAGE = 200
PATH_SEPARATOR = " › "  # between the titles of a node's path, wherever a path is shown or searched
VISIBLE = "review != 'rejected'"  # the one rule: a node is shown, searched and counted unless rejected


@dataclass(frozen=True)
class Node:
    id: int
    uid: str
    library_id: int
    parent_id: int | None
    position: int
    depth: int
    kind: str
    title: str
    body: str
    origin: str
    review: str
    child_count: int
    subtree_size: int

    @property
    def is_generated(self) -> bool:
        return self.origin == "llm"


_COLUMNS = (
    "id, uid, library_id, parent_id, position, depth, kind, title, body, origin, review, child_count, subtree_size"
)


def _node(row: sqlite3.Row | tuple[Any, ...]) -> Node:
    return Node(*row)


def node_by_id(conn: sqlite3.Connection, node_id: int) -> Node | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM nodes WHERE id = ?", (node_id,)).fetchone()
    return _node(row) if row else None


def node_by_uid(conn: sqlite3.Connection, uid: str, library_id: int | None = None) -> Node | None:
    """A uid names one node per library; without a library the oldest match wins."""
    if library_id is None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM nodes WHERE uid = ? ORDER BY library_id LIMIT 1", (uid,)).fetchone()
    else:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM nodes WHERE library_id = ? AND uid = ?", (library_id, uid)
        ).fetchone()
    return _node(row) if row else None


def resolve_node(conn: sqlite3.Connection, ref: str, library_id: int | None = None) -> Node:
    """Accept what a person types: a node uid, or `#123` for an internal id."""
    node = None
    if ref.startswith("#") and ref[1:].isdigit():
        node = node_by_id(conn, int(ref[1:]))
    if node is None:
        node = node_by_uid(conn, ref, library_id)
    if node is None:
        raise WorkspaceError(f"no node {ref!r}; give a node id as shown by `navigator search` or `tree`")
    return node


def children(
    conn: sqlite3.Connection,
    parent_id: int,
    *,
    after_position: int | None = None,
    limit: int = DEFAULT_PAGE,
    include_rejected: bool = False,
) -> list[Node]:
    """One page of children in order; pass the last position seen to get the next page."""
    where = "parent_id = ? AND position > ?"
    if not include_rejected:
        where += f" AND {VISIBLE}"
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM nodes WHERE {where} ORDER BY position LIMIT ?",
        (parent_id, -1 if after_position is None else after_position, limit),
    )
    return [_node(row) for row in rows]


def ancestors(conn: sqlite3.Connection, node_id: int) -> list[Node]:
    """Root first, the node itself last: the breadcrumb trail."""
    rows = conn.execute(
        f"""
        WITH RECURSIVE up(id, parent_id, n) AS (
            SELECT id, parent_id, 0 FROM nodes WHERE id = ?
            UNION ALL
            SELECT nodes.id, nodes.parent_id, up.n + 1 FROM nodes JOIN up ON nodes.id = up.parent_id
        )
        SELECT {", ".join("nodes." + c.strip() for c in _COLUMNS.split(","))}
        FROM up JOIN nodes ON nodes.id = up.id ORDER BY up.n DESC
        """,
        (node_id,),
    )
    return [_node(row) for row in rows]


def titles_at_depth(conn: sqlite3.Connection, library_id: int, depth: int) -> list[tuple[int, str]]:
    """(id, title) of every node of a library at one depth, in id order, rejected ones left out.
    One pass over the library: for callers that look many names up at one level (the trainer
    finds the subject a question names among a library's countries, say) and keep the result."""
    rows = conn.execute(
        f"SELECT id, title FROM nodes WHERE library_id = ? AND depth = ? AND {VISIBLE} ORDER BY id",
        (library_id, depth),
    )
    return [(int(row[0]), str(row[1])) for row in rows]


def path_titles(conn: sqlite3.Connection, node_id: int) -> list[str]:
    return [node.title for node in ancestors(conn, node_id)]


def node_path(conn: sqlite3.Connection, node_id: int) -> str:
    """The titles from below the root down to the node, as every surface shows a path."""
    return PATH_SEPARATOR.join(path_titles(conn, node_id)[1:])


def visible_uids(conn: sqlite3.Connection, library_id: int, uids: Iterable[str]) -> set[str]:
    """Which of these uids name a node of the library that is not rejected."""
    found: set[str] = set()
    for chunk in in_chunks(sorted(set(uids))):
        sql = f"SELECT uid FROM nodes WHERE library_id = ? AND {VISIBLE} AND uid IN ({marks(len(chunk))})"
        found.update(row[0] for row in conn.execute(sql, (library_id, *chunk)))
    return found


def node_texts(conn: sqlite3.Connection, library_id: int, uids: Iterable[str]) -> dict[str, str]:
    """uid → "title\nbody" (stripped) for the nodes of a library these uids name."""
    texts: dict[str, str] = {}
    for chunk in in_chunks(sorted(set(uids))):
        sql = f"SELECT uid, title, body FROM nodes WHERE library_id = ? AND uid IN ({marks(len(chunk))})"
        for uid, title, body in conn.execute(sql, (library_id, *chunk)):
            texts[uid] = f"{title}\n{body}".strip()
    return texts


def statement_texts(conn: sqlite3.Connection, library_id: int, root_id: int) -> dict[str, str]:
    """uid → "path › title: body" for every statement of a library, i.e. every node that makes a claim.

    A statement is a node other than the root that is visible, not replaced by an edit, and either
    is of kind 'statement' or 'elaboration' (M_Z's own) or carries text in its body (a heading alone
    claims nothing). One recursive query builds all paths, so 10^5 nodes take about a second.
    """
    rows = conn.execute(
        f"""
        WITH RECURSIVE walk(id, path) AS (
            SELECT id, '' FROM nodes WHERE id = :root
            UNION ALL
            SELECT n.id, CASE WHEN walk.path = '' THEN n.title ELSE walk.path || :sep || n.title END
            FROM nodes n JOIN walk ON n.parent_id = walk.id
        )
        SELECT n.id, n.uid, walk.path, n.body FROM walk JOIN nodes n ON n.id = walk.id
        WHERE n.parent_id IS NOT NULL AND n.{VISIBLE}
          AND (n.kind IN ('statement', 'elaboration') OR n.body != '')
        """,
        {"root": root_id, "sep": PATH_SEPARATOR},
    ).fetchall()
    # replaces_id has no index: one scan of the library for the replaced ids beats a subquery per node.
    replaced = {
        row[0]
        for row in conn.execute(
            f"SELECT replaces_id FROM nodes WHERE library_id = ? AND replaces_id IS NOT NULL AND {VISIBLE}",
            (library_id,),
        )
    }
    return {row[1]: f"{row[2]}: {row[3]}" if row[3] else row[2] for row in rows if row[0] not in replaced}


def sibling(conn: sqlite3.Connection, node: Node, step: int) -> Node | None:
    """The next (step=+1) or previous (step=-1) sibling, or None at either end."""
    if node.parent_id is None:
        return None
    if step > 0:
        sql = f"SELECT {_COLUMNS} FROM nodes WHERE parent_id = ? AND position > ? ORDER BY position LIMIT 1"
    else:
        sql = f"SELECT {_COLUMNS} FROM nodes WHERE parent_id = ? AND position < ? ORDER BY position DESC LIMIT 1"
    row = conn.execute(sql, (node.parent_id, node.position)).fetchone()
    return _node(row) if row else None


def subtree_size(conn: sqlite3.Connection, node_id: int) -> int:
    row = conn.execute("SELECT subtree_size FROM nodes WHERE id = ?", (node_id,)).fetchone()
    if row is None:
        raise WorkspaceError(f"no node with id {node_id}")
    return int(row[0])


def add_child(
    conn: sqlite3.Connection,
    parent: Node,
    *,
    title: str,
    body: str = "",
    kind: str = "statement",
    origin: str = "human",
    provenance: dict[str, Any] | None = None,
    uid: str | None = None,
) -> Node:
    """Append one node under `parent`, keeping counts on the parent and sizes on every ancestor."""
    return add_children(
        conn, parent, [(title, body, kind)], origin=origin, provenance=provenance, uids=[uid] if uid else None
    )[0]


def add_children(
    conn: sqlite3.Connection,
    parent: Node,
    new: list[tuple[str, str, str]],
    *,
    origin: str,
    provenance: dict[str, Any] | None = None,
    uids: list[str] | None = None,
    each: list[dict[str, Any]] | None = None,
) -> list[Node]:
    """Append (title, body, kind) children in one transaction: all of them or none.

    `provenance` is shared by all of them; `each`, one dict a child, adds what is particular to it
    (a generated statement's evidence)."""
    if not new:
        return []
    if any(not title.strip() for title, _, _ in new):
        raise WorkspaceError("a node needs a non-empty title")
    uids = uids or [f"n_{uuid.uuid4().hex}" for _ in new]
    own = each or [{} for _ in new]
    now = utc_now()
    rows = [
        NewNode(uid, kind, title, body, origin, {**(provenance or {}), **extra}, now)
        for (title, body, kind), uid, extra in zip(new, uids, own, strict=True)
    ]
    with transaction(conn):
        ids = append_nodes(conn, parent.id, rows)
    found = [node_by_id(conn, node_id) for node_id in ids]
    return [node for node in found if node is not None]


@dataclass(frozen=True)
class NewNode:
    """A node to append: what it says and where it came from; its place in the tree is computed."""

    uid: str
    kind: str
    title: str
    body: str
    origin: str
    provenance: dict[str, Any]
    created_at: str
    review: str = "none"
    replaces_id: int | None = None
    extra: dict[str, Any] | None = None


def append_nodes(conn: sqlite3.Connection, parent_id: int, rows: Sequence[NewNode]) -> list[int]:
    """Append rows as the last children of a parent, inside the caller's transaction; their ids.

    The one place that knows what appending means here: the next positions under the parent, one
    level deeper, the parent's child count and every ancestor's subtree size grown by as many.
    Unpack, ask, edits and merges all come through it; an import or a fork, which build whole
    subtrees at once, compute the same columns in set-based SQL instead.
    """
    parent = conn.execute("SELECT library_id, depth FROM nodes WHERE id = ?", (parent_id,)).fetchone()
    if parent is None:
        raise WorkspaceError(f"no node with id {parent_id}")
    top = conn.execute("SELECT COALESCE(MAX(position), -1) FROM nodes WHERE parent_id = ?", (parent_id,)).fetchone()[0]
    ids = []
    for offset, row in enumerate(rows, start=1):
        node_id = conn.execute(
            "INSERT INTO nodes (uid, library_id, parent_id, position, depth, kind, title, body, origin, review,"
            " replaces_id, provenance, extra, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.uid,
                parent[0],
                parent_id,
                top + offset,
                parent[1] + 1,
                row.kind,
                row.title,
                row.body,
                row.origin,
                row.review,
                row.replaces_id,
                json.dumps(row.provenance, ensure_ascii=False),
                json.dumps(row.extra or {}, ensure_ascii=False),
                row.created_at,
            ),
        ).lastrowid
        assert node_id is not None
        ids.append(node_id)
    conn.execute("UPDATE nodes SET child_count = child_count + ? WHERE id = ?", (len(rows), parent_id))
    grow_ancestors(conn, parent_id, len(rows))
    return ids


def grow_ancestors(conn: sqlite3.Connection, node_id: int, added: int) -> None:
    """Add `added` to the subtree size of a node and of every ancestor: O(depth)."""
    conn.execute(
        """
        WITH RECURSIVE up(id) AS (
            SELECT ? UNION ALL SELECT nodes.parent_id FROM nodes JOIN up ON nodes.id = up.id
            WHERE nodes.parent_id IS NOT NULL
        )
        UPDATE nodes SET subtree_size = subtree_size + ? WHERE id IN (SELECT id FROM up)
        """,
        (node_id, added),
    )


def nodes_without_parent(conn: sqlite3.Connection) -> list[str]:
    """Uids of nodes whose parent row is gone, oldest first: foreign keys prevent it, so it means damage."""
    rows = conn.execute(
        "SELECT n.uid FROM nodes n WHERE n.parent_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM nodes p WHERE p.id = n.parent_id) ORDER BY n.id"
    ).fetchall()
    return [str(row[0]) for row in rows]


def library_node_count(conn: sqlite3.Connection, library_id: int) -> int:
    """Every node row of a library, its root included (counted, not read from the stored sizes)."""
    return int(conn.execute("SELECT COUNT(*) FROM nodes WHERE library_id = ?", (library_id,)).fetchone()[0])


def content_rows(conn: sqlite3.Connection, library_id: int) -> Iterator[tuple[str, str, str, str, str]]:
    """(uid, parent's uid — '' under the root, kind, title, body) of every node below the root, in uid
    order: what a library says, with none of the ids a fresh workspace draws anew (a study hashes it)."""
    rows = conn.execute(
        "SELECT n.uid, CASE WHEN p.parent_id IS NULL THEN '' ELSE p.uid END, n.kind, n.title, n.body"
        " FROM nodes n JOIN nodes p ON p.id = n.parent_id"
        " WHERE n.library_id = ? AND n.parent_id IS NOT NULL ORDER BY n.uid",
        (library_id,),
    )
    for row in rows:
        yield (row[0], row[1], row[2], row[3], row[4])
