"""The browsing app, driven through Textual's Pilot on a real workspace file."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.libraries import create_library
from navigator.app import NavigatorApp
from navigator.widgets import MoreChildren, ZTree

HOSTILE = "[bold]not bold[/] [link=http://example.com]a link[/link] [/]"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    conn = connect(path, create=True)
    library = create_library(conn, "z")
    records = [StagedNode(1, "book", None, "book", HOSTILE, body=f"body {HOSTILE}")]
    records += [StagedNode(2 + n, f"s{n}", "book", "statement", f"Statement {n}") for n in range(450)]
    import_staged(conn, library, iter(records), source="test", importer="test")
    conn.close()
    return path


def rendered(static: Static) -> str:
    return str(static.render())


async def test_tree_opens_lazily_and_pages_huge_fan_out(workspace: Path) -> None:
    app = NavigatorApp(workspace=workspace, labeler="ann")
    async with app.run_test() as pilot:
        tree = app.screen.query_one(ZTree)
        book = tree.root.children[0]
        assert str(book.label).startswith(HOSTILE)
        assert not book.children, "children are read only when the node opens"
        await pilot.press("down", "enter")
        await pilot.pause()
        assert len(book.children) == 201  # one page of 200, then "load more"
        more = book.children[-1]
        assert isinstance(more.data, MoreChildren)
        assert "250 left" in str(more.label)
        tree.move_cursor(more)
        await pilot.press("enter")
        await pilot.pause()
        statements = [child for child in book.children if not isinstance(child.data, MoreChildren)]
        assert [str(child.label) for child in statements] == [f"Statement {n}" for n in range(400)]


async def test_markup_in_workspace_text_is_shown_literally(workspace: Path) -> None:
    app = NavigatorApp(workspace=workspace, labeler="ann")
    async with app.run_test() as pilot:
        await pilot.press("down")
        await pilot.pause()
        assert rendered(app.screen.query_one("#node-title", Static)) == HOSTILE
        assert rendered(app.screen.query_one("#node-body", Static)) == f"body {HOSTILE}"


async def test_vim_keys_and_backspace_move_through_the_tree(workspace: Path) -> None:
    app = NavigatorApp(workspace=workspace, labeler="ann")
    async with app.run_test() as pilot:
        tree = app.screen.query_one(ZTree)
        await pilot.press("j", "enter", "j", "j")
        await pilot.pause()
        assert str(tree.cursor_node.label) == "Statement 1"
        assert rendered(app.screen.query_one("#node-title", Static)) == "Statement 1"
        await pilot.press("backspace")
        assert tree.cursor_node is tree.root.children[0]
        await pilot.press("k")
        assert tree.cursor_node is tree.root
