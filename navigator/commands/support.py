"""What every `navigator` command shares: the workspace, library and --json options,
and turning expected failures into one line on stderr with exit status 1.

Kept apart from cli.py so command modules (llm, prior, exchange) can import it
while cli.py imports them: no import cycle.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from platformdirs import user_data_path

from kb.db import connect
from kb.errors import Cancelled, ZNavigatorError
from kb.libraries import Library, get_library, list_libraries
from navigator.display import describe_error
from navigator.json_output import json_text

if TYPE_CHECKING:
    from kb.search import IndexUpdate


def default_workspace() -> Path:
    return user_data_path("z-navigator", appauthor=False) / "workspace.db"


def workspace_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--workspace",
        "-w",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="NAVIGATOR_WORKSPACE",
        default=default_workspace,
        show_default="per-user data directory",
        help="The workspace file (env: NAVIGATOR_WORKSPACE).",
    )(command)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(command)


def library_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--library", "-l", "library_name", help="Library name (default: the first one).")(command)


class Failure(click.ClickException):
    """Any expected failure: printed as one line on stderr, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def guard(action: Callable[[], Any]) -> Any:
    """The CLI's one translation of the project's errors (and cancellations) into a message.

    Anything else — a KeyError, a TypeError — is a bug and keeps its traceback.
    """
    try:
        return action()
    except (ZNavigatorError, Cancelled) as error:
        raise Failure(describe_error(error)) from error
    except sqlite3.DatabaseError as error:
        raise Failure(f"the workspace could not be used: {error}") from error


def open_workspace(workspace: Path) -> sqlite3.Connection:
    conn: sqlite3.Connection = guard(lambda: connect(workspace))
    return conn


def pick_library(conn: sqlite3.Connection, name: str | None) -> Library:
    if name:
        library: Library = guard(lambda: get_library(conn, name))
        return library
    libraries = list_libraries(conn)
    if not libraries:
        raise Failure("this workspace has no library yet; add one with `navigator import PATH`")
    return libraries[0]


def emit_json(value: Any) -> None:
    """Print a command's --json output: the one encoder (navigator.json_output), where NaN, +inf
    and -inf are null at any depth and dataclasses, pydantic models and paths are taken as they are."""
    click.echo(json_text(value))


def index_new_nodes(
    conn: sqlite3.Connection, workspace: Path, library: Library, progress: Any = None, *, procs: int = 1
) -> IndexUpdate:
    """Bring a library's index up to date after a command added nodes (kb.search.index_new_nodes: an
    index that cannot follow is a warning on stderr, never the command's failure; a cancel still is)."""
    from kb.search import index_new_nodes as bring_up_to_date  # whoosh and numpy load only when indexing

    update: IndexUpdate = guard(lambda: bring_up_to_date(conn, workspace, library, progress, procs=procs))
    if update.warning is not None:
        click.echo(f"warning: {update.warning}", err=True)
    return update
