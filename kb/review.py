"""Reviewing generated nodes: accept, reject (hidden but kept) and edit (a new node that replaces one).

Nodes are append-only: nothing here deletes or rewrites a node's text. A
rejection only flips the `review` column, which `kb.tree.children` already
hides; an edit writes a new human node beside the old one, records the old
one in `replaces_id`, and rejects the old one in the same transaction, so the
tree never shows both or neither.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from kb.db import WorkspaceError, transaction, utc_now
from kb.tree import _COLUMNS, VISIBLE, NewNode, Node, _node, append_nodes, node_by_id

REVIEWS = ("none", "accepted", "rejected")


def set_review(conn: sqlite3.Connection, node: Node, review: str) -> Node:
    """Accept or reject a node (or reset it to 'none'); the row and its subtree stay."""
    if review not in REVIEWS:
        raise WorkspaceError(f"review must be one of {', '.join(REVIEWS)}, not {review!r}")
    if node.parent_id is None:
        raise WorkspaceError("a library root cannot be reviewed")
    with transaction(conn):
        conn.execute("UPDATE nodes SET review = ? WHERE id = ?", (review, node.id))
    updated = node_by_id(conn, node.id)
    assert updated is not None
    return updated


def replace_node(
    conn: sqlite3.Connection,
    node: Node,
    *,
    title: str,
    body: str = "",
    labeler: str | None = None,
) -> Node:
    """Write a human edit of `node` as a new sibling that names it in `replaces_id`; reject `node`."""
    if node.parent_id is None:
        raise WorkspaceError("a library root cannot be edited this way")
    if not title.strip():
        raise WorkspaceError("an edit needs a non-empty title")
    provenance: dict[str, Any] = {"edit_of": node.uid, "edited_by": labeler}
    row = NewNode(
        f"n_{uuid.uuid4().hex}", node.kind, title.strip(), body, "human", provenance, utc_now(), replaces_id=node.id
    )
    with transaction(conn):
        (new_id,) = append_nodes(conn, node.parent_id, [row])
        conn.execute("UPDATE nodes SET review = 'rejected' WHERE id = ?", (node.id,))
    assert new_id is not None
    created = node_by_id(conn, new_id)
    assert created is not None
    return created


def provenance(conn: sqlite3.Connection, node_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT provenance FROM nodes WHERE id = ?", (node_id,)).fetchone()
    if row is None:
        raise WorkspaceError(f"no node with id {node_id}")
    value = json.loads(row[0] or "{}")
    return value if isinstance(value, dict) else {}


def generated_children(
    conn: sqlite3.Connection, parent_id: int, *, kind: str, include_rejected: bool = False
) -> list[Node]:
    """Children an LLM wrote with this kind, plus human edits of them, in tree order.

    An edit keeps its original's kind and points at it, so it counts as part of
    the generated set it corrected.
    """
    where = "n.parent_id = ? AND n.kind = ? AND (n.origin = 'llm' OR EXISTS (SELECT 1 FROM nodes o"
    where += " WHERE o.id = n.replaces_id AND o.origin = 'llm'))"
    if not include_rejected:
        where += f" AND n.{VISIBLE}"
    columns = ", ".join("n." + column.strip() for column in _COLUMNS.split(","))
    rows = conn.execute(f"SELECT {columns} FROM nodes n WHERE {where} ORDER BY n.position", (parent_id, kind))
    return [_node(row) for row in rows]


def generated_nodes(conn: sqlite3.Connection, library_id: int, under_id: int | None = None) -> list[Node]:
    """Every node an LLM wrote in a library (or below `under_id`) that is not rejected, oldest first."""
    columns = ", ".join("n." + column.strip() for column in _COLUMNS.split(","))
    if under_id is None:
        rows = conn.execute(
            f"SELECT {columns} FROM nodes n WHERE n.library_id = ? AND n.origin = 'llm' AND n.{VISIBLE} ORDER BY n.id",
            (library_id,),
        )
    else:
        rows = conn.execute(
            "WITH RECURSIVE below(id) AS (SELECT id FROM nodes WHERE id = ?"
            " UNION ALL SELECT c.id FROM nodes c JOIN below ON c.parent_id = below.id)"
            f" SELECT {columns} FROM nodes n JOIN below ON below.id = n.id"
            f" WHERE n.library_id = ? AND n.origin = 'llm' AND n.{VISIBLE} ORDER BY n.id",
            (under_id, library_id),
        )
    return [_node(row) for row in rows]
