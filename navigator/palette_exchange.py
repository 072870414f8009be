"""Export and merge from the app's command palette: the work its worker does, as sentences for the labeler.

`navigator export` and `navigator merge` do the same from the command line; here
each call opens its own workspace connection (it runs in a worker thread) and
returns what to tell the labeler instead of an exit status.
"""

from __future__ import annotations

import re
from pathlib import Path

from kb.db import connect
from kb.errors import ZNavigatorError
from kb.export_file import export_to_path
from kb.merge import merge_files
from kb.search import index_new_nodes
from navigator.display import describe_error


def export_path(workspace: Path, labeler: str) -> Path:
    """Beside the workspace, named for the labeler, so an export never lands anywhere unexpected."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", labeler)
    return workspace.with_name(f"{workspace.stem}.{safe}.labels.jsonl")


def export_mine(workspace: Path, labeler: str) -> tuple[str, bool]:
    """(what to tell the labeler, whether the export was written)."""
    target = export_path(workspace, labeler)
    conn = connect(workspace)
    try:
        report = export_to_path(conn, target, labeler=labeler)
    except ZNavigatorError as error:
        return f"Nothing exported: {describe_error(error)}", False
    finally:
        conn.close()
    counts = ", ".join(f"{n} {kind}s" for kind, n in report.written.items() if n) or "nothing"
    return f"Exported {counts} to {target}", True


def merge_export(workspace: Path, path: Path) -> tuple[str, bool]:
    """(what to tell the labeler, whether anything was merged); merged nodes become searchable at once."""
    conn = connect(workspace)
    try:
        report = merge_files(conn, [path])
        updates = [index_new_nodes(conn, workspace, library) for library in report.libraries]
        behind = [update.warning for update in updates if update.warning]
    except ZNavigatorError as error:
        return f"Nothing merged: {describe_error(error)}", False
    finally:
        conn.close()
    added = ", ".join(f"{n} {kind}s" for kind, n in report.added.items() if n) or "nothing new"
    return "; ".join([f"Merged {path.name}: {added}", *behind]), True
