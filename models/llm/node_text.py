"""How a node's text reaches a prompt: as quoted data on one line, with the path above it.

Shared by every prompt M_Z sees (unpack, ask, and the true/false judgement behind model
credences), so a node can never close its fence or open a new few-shot block in any of them.
"""

from __future__ import annotations

import re
import sqlite3

from kb.tree import PATH_SEPARATOR, Node, ancestors

FENCE_OPEN, FENCE_CLOSE = "<<<", ">>>"
MAX_DATA_CHARS = 1200
MAX_CONTEXT_CHARS = 300


def quote_data(text: str, limit: int = MAX_DATA_CHARS) -> str:
    """One line of text that cannot close its fence or start a new few-shot block."""
    flat = " ".join(text.split())
    flat = re.sub(r"<{3,}", "<<", flat)
    flat = re.sub(r">{3,}", ">>", flat)
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


def node_text(node: Node) -> str:
    """What a reader of the node sees: its title, and its body after a colon."""
    title, body = node.title.strip(), node.body.strip()
    if body and body != title:
        return f"{title}: {body}"
    return title


def context_path(conn: sqlite3.Connection, node: Node) -> str:
    """Ancestor titles (without the library root and the node), nearest last, trimmed from the far end."""
    trail = [quote_data(n.title, 80) for n in ancestors(conn, node.id)[1:-1]]
    path = PATH_SEPARATOR.join(trail)
    while len(path) > MAX_CONTEXT_CHARS and len(trail) > 1:
        trail = trail[1:]
        path = "…" + PATH_SEPARATOR + PATH_SEPARATOR.join(trail)
    return path or "(top level)"
