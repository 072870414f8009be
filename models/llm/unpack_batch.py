"""What follows a batch unpack (`navigator unpack`): make what it created searchable, and read back the
node's children with M_Z's credence in each.

The search index is brought up to date straight after a batch so new statements are findable at once;
a coordinator's batch is resumable because already unpacked nodes are cache hits (models.llm.unpack).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from kb.importing import Progress
from kb.labels import model_credences
from kb.libraries import library_by_id
from kb.search import SearchIndex
from kb.tree import Node
from models.llm.unpack import BatchReport, stored_children


@dataclass(frozen=True)
class UnpackedNode:
    """A finished batch: what it did, how many nodes it indexed, and the node's children as stored now."""

    node: Node
    report: BatchReport
    indexed: int
    children: list[Node]
    model_p: dict[str, float]  # child uid -> M_Z's credence, where it gave one


def model_p(conn: sqlite3.Connection, nodes: list[Node]) -> dict[str, float]:
    """M_Z's credence in each of these generated statements (all of one library), where it gave one."""
    if not nodes:
        return {}
    found = model_credences(conn, nodes[0].library_id, [node.uid for node in nodes])
    return {uid: credence.p for uid, credence in found.items()}


def index_library_of(conn: sqlite3.Connection, workspace: Path, node: Node, progress: Progress) -> int:
    """Bring the search index of `node`'s library up to date; how many nodes it indexed."""
    return SearchIndex(conn, workspace, library_by_id(conn, node.library_id)).update(progress)


def index_and_read_back(
    conn: sqlite3.Connection,
    workspace: Path,
    node: Node,
    report: BatchReport,
    *,
    index: bool,
    progress: Progress,
    elaborate: bool = False,
) -> UnpackedNode:
    """After models.llm.unpack.unpack_tree on `node`: index what it created (when asked), read back the children."""
    indexed = index_library_of(conn, workspace, node, progress) if report.created and index else 0
    children = stored_children(conn, node, elaborate=elaborate)
    return UnpackedNode(node, report, indexed, children, model_p(conn, children))
