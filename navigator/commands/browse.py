"""`navigator search`, `show` and `tree`: reading a library from the terminal, as plain text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from kb.tree import PATH_SEPARATOR, Node, ancestors, children, resolve_node
from navigator.commands.support import (
    emit_json,
    guard,
    json_option,
    library_option,
    open_workspace,
    pick_library,
    workspace_option,
)
from navigator.display import visible


@click.command()
@workspace_option
@click.argument("query")
@library_option
@click.option("--limit", default=10, show_default=True)
@json_option
def search(workspace: Path, query: str, library_name: str | None, limit: int, as_json: bool) -> None:
    """Search a library: words, "phrases", title:/body:/path:word, -word, prefix*.

    Nodes with all the words come first, then those with most of them; each hit says which
    words it has. The same query gives the same hits every time."""
    from kb.search import SearchIndex  # whoosh and numpy load only when searching

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


@click.command()
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
    click.echo(visible(PATH_SEPARATOR.join(n.title for n in trail)))
    click.echo(visible(f"[{found.kind}, {found.origin}] {found.title}"))
    if found.body:
        click.echo(visible(found.body))
    click.echo(f"{found.child_count:,} children, {found.subtree_size:,} nodes in subtree")
    for kid in kids:
        click.echo(visible(f"  - {kid.title}  ({kid.uid})"))
    if found.child_count > len(kids):
        click.echo(f"  ... {found.child_count - len(kids):,} more")


@click.command()
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
