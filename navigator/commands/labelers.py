"""`navigator labelers`: who labels in this workspace, and who is a lead (kb/labelers.py)."""

from __future__ import annotations

from pathlib import Path

import click

from kb.labelers import add_labeler, list_labelers
from navigator.commands.support import emit_json, guard, json_option, open_workspace, workspace_option
from navigator.display import visible


@click.group()
def labelers() -> None:
    """Who labels in this workspace, and who is a lead (a lead alone sees others' answers before answering)."""


@labelers.command(name="add")
@workspace_option
@click.argument("name")
@click.option("--lead", is_flag=True, help="A lead coordinates, adjudicates and may see others' answers first.")
def add(workspace: Path, name: str, lead: bool) -> None:
    """Record NAME as a labeler (or a lead); run again to change the role."""
    conn = open_workspace(workspace)
    found = guard(lambda: add_labeler(conn, name, lead=lead))
    click.echo(visible(f"{found.name}: {found.role}"))


@labelers.command(name="list")
@workspace_option
@json_option
def list_command(workspace: Path, as_json: bool) -> None:
    """The recorded labelers and their roles (anyone else who labels is an ordinary labeler)."""
    conn = open_workspace(workspace)
    found = list_labelers(conn)
    if as_json:
        emit_json([{"name": entry.name, "role": entry.role, "created_at": entry.created_at} for entry in found])
        return
    for entry in found:
        click.echo(visible(f"{entry.name}\t{entry.role}"))
    if not found:
        click.echo("no labelers recorded; everyone is an ordinary labeler and no one sees others' answers first")
