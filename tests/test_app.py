"""The browsing app, driven through Textual's Pilot on a real workspace file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas
import pytest
from textual.widgets import Input, Static

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.libraries import create_library
from kb.records import ItemRecord
from navigator.app import NavigatorApp
from navigator.widgets.z_tree import MoreChildren, ZTree

HOSTILE = "[bold]not bold[/] [link=http://example.com]a link[/link] [/]"


def build(path: Path) -> Path:
    """A library with a 450-child node and markup in its text, and one item whose text is markup too."""
    conn = connect(path, create=True)
    library = create_library(conn, "z")
    records = [StagedNode(1, "book", None, "book", HOSTILE, body=f"body {HOSTILE}")]
    records += [StagedNode(2 + n, f"s{n}", "book", "statement", f"Statement {n}") for n in range(450)]
    import_staged(conn, library, iter(records), source="test", importer="test")
    item = ItemRecord(id="q1", x=f"Is it true? {HOSTILE}", options=["yes", "no"], y="yes")
    add_items(conn, [(1, item)], source="test", dstar=False)
    conn.close()
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return build(tmp_path / "w.db")


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


async def test_the_exact_engine_catches_what_no_pairwise_glance_can(workspace: Path) -> None:
    """P(A)=P(B)=P(C)=.5 and P(A∧B)=P(B∧C)=.5 force A=B=C, so P(A∧C)=0 is incoherent,
    though no single earlier credence contradicts it."""
    app = NavigatorApp(workspace=workspace, labeler="ann")
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("down", "enter", "down", "t")

        async def credence(*moves: str, value: str) -> None:
            await pilot.press(*moves, "i", *value, "enter")

        await credence(value="0.5")  # Statement 0
        await credence("down", value="0.5")  # Statement 1
        await credence("down", value="0.5")  # Statement 2
        await credence("up", "up", "x", "down", "x", value="0.5")  # 0 ∧ 1
        await credence("x", "down", "x", value="0.5")  # 1 ∧ 2
        await pilot.press("up", "up", "x", "down", "down", "x", "i", "0")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert "nothing contradicts it at a glance" in str(screen.query_one("#task-feedback", Static).render())
        exact = str(screen.query_one("#coherence", Static).render())
        assert "incoherent" in exact and "nearest coherent value for this credence: 0.5" in exact


async def test_item_text_with_markup_is_shown_literally(workspace: Path) -> None:
    app = NavigatorApp(workspace=workspace, labeler="ann")
    async with app.run_test(size=(180, 50)):
        assert f"Is it true? {HOSTILE}" in rendered(app.screen.query_one("#task-body", Static))


async def label_and_export(workspace: Path) -> list[str]:
    """Ann labels the item citing the book, exports from the command palette; what she was told."""
    app = NavigatorApp(workspace=workspace, labeler="ann")
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("down", "c", "1", "s")
        commands = {command.title: command for command in app.get_system_commands(app.screen)}
        commands["Export my labels"].callback()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.is_running
        return [str(n.message) for n in app._notifications]


async def test_export_and_merge_from_the_command_palette(workspace: Path, tmp_path: Path) -> None:
    await label_and_export(workspace)
    exported = workspace.with_name("w.ann.labels.jsonl")
    frame = pandas.read_json(exported, lines=True)
    assert sorted(frame["type"]) == ["item", "prediction"]

    other = build(tmp_path / "other" / "b.db")
    second = NavigatorApp(workspace=other, labeler="bob")
    async with second.run_test(size=(180, 50)) as pilot:
        commands = {command.title: command for command in second.get_system_commands(second.screen)}
        commands["Merge a labels export…"].callback()
        await pilot.pause()
        second.screen.query_one(Input).value = str(exported)
        await pilot.press("enter")
        await second.workers.wait_for_complete()
        await pilot.pause()
    conn = connect(other)
    rows = conn.execute("SELECT labeler, probs, cited FROM predictions").fetchall()
    conn.close()
    assert [(row[0], json.loads(row[1]), json.loads(row[2])) for row in rows] == [
        ("ann", {"yes": 0.9, "no": 0.1}, ["book"])
    ]


async def test_an_export_that_cannot_be_written_is_reported_and_leaves_nothing(workspace: Path) -> None:
    """The export path is taken by a folder: the labeler is told, the app keeps running, no file is left."""
    blocked = workspace.with_name("w.ann.labels.jsonl")
    blocked.mkdir()
    shown = await label_and_export(workspace)
    assert any(m.startswith(f"Nothing exported: cannot write {blocked}") for m in shown), shown
    assert blocked.is_dir() and not any(blocked.iterdir())
    assert not [p.name for p in workspace.parent.iterdir() if p.name.endswith(".tmp")]


ESCAPES = "red\x1b[31m title\x1b]0;pwned\x07 end\x08"


async def test_control_characters_from_z_are_shown_not_sent_to_the_terminal(tmp_path: Path) -> None:
    """Rich drops BEL and backspace but passes ESC through: a title could restyle or retitle the terminal."""
    path = tmp_path / "esc.db"
    conn = connect(path, create=True)
    library = create_library(conn, "z")
    import_staged(
        conn, library, iter([StagedNode(1, "e", None, "statement", ESCAPES, body=ESCAPES)]), source="t", importer="test"
    )
    conn.close()
    app = NavigatorApp(workspace=path, labeler="ann")
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("down")
        await pilot.pause()
        screen = app.export_screenshot()
        for shown in (
            rendered(app.screen.query_one("#node-title", Static)),
            str(app.screen.query_one(ZTree).root.children[0].label),
            screen,
        ):
            assert "\x1b" not in shown and "\x07" not in shown
        assert "red␛[31m title␛]0;pwned␇ end␈" in rendered(app.screen.query_one("#node-body", Static))
