"""What follows a batch unpack (`navigator unpack`): read back the node's children with M_Z's credence
in each. (The command brings the search index up to date first, by kb.search.index_new_nodes.) A
coordinator's batch is resumable because already unpacked nodes are cache hits (models.llm.unpack).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from kb.labels import model_credences
from kb.tree import Node
from models.llm.unpack import BatchReport, stored_children


@dataclass(frozen=True)
class UnpackedNode:
    """A finished batch: what it did, and the node's children as stored now."""

    node: Node
    report: BatchReport
    children: list[Node]
    model_p: dict[str, float]  # child uid -> M_Z's credence, where it gave one


def model_p(conn: sqlite3.Connection, nodes: list[Node]) -> dict[str, float]:
    """M_Z's credence in each of these generated statements (all of one library), where it gave one."""
    if not nodes:
        return {}
    found = model_credences(conn, nodes[0].library_id, [node.uid for node in nodes])
    return {uid: credence.p for uid, credence in found.items()}


def read_back(conn: sqlite3.Connection, node: Node, report: BatchReport, *, elaborate: bool = False) -> UnpackedNode:
    """After models.llm.unpack.unpack_tree on `node`: its children as stored, with M_Z's credences."""
    children = stored_children(conn, node, elaborate=elaborate)
    return UnpackedNode(node, report, children, model_p(conn, children))
