"""`navigator export` and `navigator merge`: labels travel between workspaces as JSONL.

Loaded only when one of them runs (navigator/cli.py LAZY_COMMANDS). The work itself is
kb.exchange (the records), kb.export_file (an export written to a path) and kb.merge.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kb.db import connect
from kb.exchange import export_labels
from kb.export_file import export_to_path
from kb.merge import merge_files
from kb.records import EXPORT_TYPES
from kb.search import IndexUpdate
from navigator.commands.support import emit_json, guard, index_new_nodes, json_option, workspace_option
from navigator.progress import TerminalProgress


@click.command()
@workspace_option
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the export to this file (default: standard output).",
)
@click.option("--labeler", help="Only this labeler's labels and the nodes they made or named (default: everyone).")
def export(workspace: Path, out: Path | None, labeler: str | None) -> None:
    """Export predictions and credences (with undo history), the nodes people or the LLM
    made that they name, and the items they answer, as JSONL one record a line.

    Only the file given with --out is written; a summary goes to standard error.
    """
    conn = guard(lambda: connect(workspace))
    if out is None:
        report = guard(lambda: export_labels(conn, sys.stdout, labeler=labeler))
    else:
        report = guard(lambda: export_to_path(conn, out, labeler=labeler))
    summary = ", ".join(f"{report.written[kind]} {kind}s" for kind in EXPORT_TYPES)
    click.echo(f"exported {summary}" + (f" to {out}" if out else ""), err=True)


@click.command()
@workspace_option
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-index", is_flag=True, help="Do not update the search index for merged nodes.")
@json_option
def merge(workspace: Path, files: tuple[Path, ...], no_index: bool, as_json: bool) -> None:
    """Merge exports (from `navigator export`) into this workspace.

    Idempotent: records already here are counted, not repeated. All or nothing:
    a bad record is reported as FILE:LINE: FIELD: REASON and nothing is written.
    """
    conn = guard(lambda: connect(workspace))
    report = guard(lambda: merge_files(conn, list(files)))
    updates: list[IndexUpdate] = []
    if not no_index and report.libraries:
        with TerminalProgress(enabled=not as_json) as progress:
            updates = [index_new_nodes(conn, workspace, library, progress) for library in report.libraries]
    indexed = {update.library: update.indexed for update in updates}
    if as_json:
        payload = {
            "added": report.added,
            "already_present": report.present,
            "indexed": indexed,
            "index_behind": {update.library: update.problem for update in updates if update.problem},
        }
        emit_json(payload)
        return
    for kind in EXPORT_TYPES:
        click.echo(f"{kind}s: {report.added[kind]} added, {report.present[kind]} already present")
    for name, count in indexed.items():
        click.echo(f"library {name}: indexed {count} new nodes")
