"""`navigator stats`: counts of what a workspace holds, each read from the module that owns its table.

The LLM call log is written by models.llm.calls, which kb cannot import; its row count is the one
figure read here directly (a COUNT(*), no rule about which rows count).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kb.db import schema_version
from kb.items import item_counts
from kb.labels import label_counts
from kb.libraries import list_libraries
from kb.records import LibraryStats, WorkspaceStats
from kb.tree import subtree_size


def workspace_stats(conn: sqlite3.Connection, workspace: Path) -> WorkspaceStats:
    """Libraries with their sizes (nodes below the root, read from the root's stored subtree size: O(1)),
    items per split, current labels and label rows, and LLM calls."""
    libraries = [
        LibraryStats(name=lib.name, uid=lib.uid, nodes=subtree_size(conn, lib.root_id) - 1)
        for lib in list_libraries(conn)
    ]
    return WorkspaceStats(
        workspace=str(workspace),
        schema_version=schema_version(conn),
        libraries=libraries,
        nodes=sum(lib.nodes for lib in libraries),
        items=item_counts(conn),
        **label_counts(conn),
        llm_calls=int(conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]),
    )
