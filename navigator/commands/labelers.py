"""`navigator labelers`: who labels in this workspace, who is a lead, and who may open the served app
(kb/labelers.py). A link's token is printed once, when it is made; the workspace keeps only its hash."""

from __future__ import annotations

from pathlib import Path

import click

from kb.labelers import Labeler, add_labeler, issue_link, labeler, list_labelers, revoke_link
from navigator.commands.support import emit_json, guard, json_option, open_workspace, workspace_option
from navigator.display import visible

DEFAULT_URL = "http://127.0.0.1:8000"
url_option = click.option(
    "--url",
    default=DEFAULT_URL,
    show_default=True,
    help="Where browsers reach `navigator serve` (its --public-url), to print the whole link.",
)


def login_link(url: str, token: str) -> str:
    return f"{url.rstrip('/')}/login?token={token}"


def _show_link(entry: Labeler, token: str, url: str, as_json: bool) -> None:
    link = login_link(url, token)
    if as_json:
        emit_json({"name": entry.name, "role": entry.role, "token": token, "link": link})
        return
    click.echo(visible(f"{entry.name}: {entry.role}; their link to the served app (shown only now, keep it secret):"))
    click.echo(f"  {link}")
    click.echo(visible(f"  or the token alone, on the login page: {token}"))
    click.echo(visible(f"  `navigator labelers revoke {entry.name}` ends it; `labelers link {entry.name}` replaces it"))


@click.group()
def labelers() -> None:
    """Who labels in this workspace, who is a lead (a lead alone sees others' answers before answering),
    and who may open the served app (each with a secret link)."""


@labelers.command(name="add")
@workspace_option
@click.argument("name")
@click.option("--lead", is_flag=True, help="A lead coordinates, adjudicates and may see others' answers first.")
@url_option
@json_option
def add(workspace: Path, name: str, lead: bool, url: str, as_json: bool) -> None:
    """Record NAME as a labeler (or a lead) and print their secret link to the served app; run again to
    change the role (an existing link keeps working)."""
    conn = open_workspace(workspace)
    before = labeler(conn, name.strip())
    found = guard(lambda: add_labeler(conn, name, lead=lead))
    if before is not None and before.has_link:
        if as_json:
            emit_json({"name": found.name, "role": found.role, "token": None, "link": None})
            return
        kept = f"{found.name}: {found.role}; their link still works (a new one: `labelers link {found.name}`)"
        click.echo(visible(kept))
        return
    token = guard(lambda: issue_link(conn, found.name))
    _show_link(found, token, url, as_json)


@labelers.command(name="link")
@workspace_option
@click.argument("name")
@url_option
@json_option
def link(workspace: Path, name: str, url: str, as_json: bool) -> None:
    """A new secret link for NAME (after a revoke, or a lost link); the old one stops working at once."""
    conn = open_workspace(workspace)
    token = guard(lambda: issue_link(conn, name))
    found = labeler(conn, name)
    assert found is not None
    _show_link(found, token, url, as_json)


@labelers.command(name="revoke")
@workspace_option
@click.argument("name")
@json_option
def revoke(workspace: Path, name: str, as_json: bool) -> None:
    """End NAME's access to the served app at once (open sessions close within a second); labels stay."""
    conn = open_workspace(workspace)
    found = guard(lambda: revoke_link(conn, name))
    if as_json:
        emit_json({"name": found.name, "role": found.role, "access": found.access, "revoked_at": found.revoked_at})
        return
    click.echo(visible(f"{found.name}: link revoked; their labels stay (`labelers link {found.name}` lets them back)"))


@labelers.command(name="list")
@workspace_option
@json_option
def list_command(workspace: Path, as_json: bool) -> None:
    """The recorded labelers, their roles and their access to the served app."""
    conn = open_workspace(workspace)
    found = list_labelers(conn)
    if as_json:
        emit_json(
            [
                {
                    "name": entry.name,
                    "role": entry.role,
                    "access": entry.access,
                    "created_at": entry.created_at,
                    "link_issued_at": entry.link_issued_at,
                    "revoked_at": entry.revoked_at,
                }
                for entry in found
            ]
        )
        return
    for entry in found:
        since = {"link": entry.link_issued_at, "revoked": entry.revoked_at}.get(entry.access) or ""
        click.echo(visible(f"{entry.name}\t{entry.role}\t{entry.access}\t{since}"))
    if not found:
        click.echo("no labelers recorded; everyone is an ordinary labeler and no one sees others' answers first")
        click.echo("the served app lets in only recorded labelers: `navigator labelers add NAME` prints a link")
