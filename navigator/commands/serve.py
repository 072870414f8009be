"""`navigator serve`: the app in web browsers, for invited labelers only (navigator/web)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from kb.labelers import list_labelers
from navigator.commands.support import Failure, library_option, open_workspace, pick_library, workspace_option
from navigator.web.sessions import SESSION_MEMORY, available_memory, default_cap


@click.command()
@workspace_option
@library_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; 0.0.0.0 for every one.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--public-url",
    help="The URL browsers use, when it is not http://HOST:PORT (a reverse proxy with TLS, another host name).",
)
@click.option(
    "--max-sessions",
    type=click.IntRange(1),
    help="App processes at once (about 180 MB each); default: half the available memory's worth.",
)
@click.option(
    "--idle-minutes",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Close a session after this long without input (its labels and place are saved).",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Let anyone who can reach the address in, under any name they type (a one-person laptop only).",
)
def serve(
    workspace: Path,
    library_name: str | None,
    host: str,
    port: int,
    public_url: str | None,
    max_sessions: int | None,
    idle_minutes: float,
    no_auth: bool,
) -> None:
    """Serve the app to web browsers: each invited labeler signs in with their link (`navigator
    labelers add NAME`) and gets their own app, writing to this workspace as them."""
    from aiohttp import web

    from navigator.web.server import LOOPBACK, LabelingServer, ServeConfig

    conn = open_workspace(workspace)  # refuse a missing or unusable workspace here, not in every tab
    if library_name:
        pick_library(conn, library_name)
    invited = [entry.name for entry in list_labelers(conn) if entry.access == "link"]
    conn.close()
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise Failure(f"--public-url must start with http:// or https://, not {public_url!r}")
    available = available_memory()
    cap = max_sessions or default_cap(available)
    config = ServeConfig(
        workspace=workspace,
        library=library_name,
        host=host,
        port=port,
        public_url=public_url,
        auth=not no_auth,
        max_sessions=cap,
        idle_seconds=idle_minutes * 60,
    )
    reach = "this machine only" if host in LOOPBACK else "every machine that can reach this one"
    click.echo(f"Serving Z Navigator at {config.url} to {reach} (listening on {host}:{port}).")
    if no_auth:
        click.echo(
            "--no-auth: anyone who can open that address can label here under any name they type; on a shared"
            " machine that is every local user."
        )
    else:
        names = ", ".join(invited) if invited else "no one yet: `navigator labelers add NAME` prints a link"
        click.echo(f"Only invited labelers get in, each with their link: {names}.")
    if host not in LOOPBACK and public_url is None:
        click.echo("Give --public-url http://THIS-MACHINE:PORT (or the proxy's https:// address) for other browsers.")
    if max_sessions is None:
        memory = f"{available / 2**30:.1f} GB available" if available is not None else "memory unknown"
        click.echo(
            f"At most {cap} app processes at once ({memory}, {SESSION_MEMORY // 2**20} MB each; --max-sessions"
            f" sets it); sessions idle for {idle_minutes:g} minutes close."
        )
    else:
        click.echo(f"At most {cap} app processes at once; sessions idle for {idle_minutes:g} minutes close.")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("navigator.serve").setLevel(logging.INFO)  # who opened and closed sessions, and why
    server = LabelingServer(config)
    web.run_app(server.application(), host=host, port=port, print=None, access_log=None)
