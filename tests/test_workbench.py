"""A whole labeling session on the demo workspace, driven by Pilot and checked in the database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from textual.widgets import Input, Static

from kb.db import connect
from kb.items import items_in
from navigator.app import NavigatorApp
from navigator.screens.help import HelpScreen
from navigator.screens.search import SearchScreen
from navigator.screens.workbench import WorkbenchScreen
from navigator.widgets.z_tree import ZTree


def workbench(app: NavigatorApp) -> WorkbenchScreen:
    screen = app.screen
    assert isinstance(screen, WorkbenchScreen)
    return screen


def text_of(screen: WorkbenchScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def search_and_open(app: NavigatorApp, pilot: object, query: str) -> None:
    await pilot.press("slash")  # type: ignore[attr-defined]
    assert isinstance(app.screen, SearchScreen)
    app.screen.query_one(Input).value = query
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
    await pilot.press("enter")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


def rows(conn: sqlite3.Connection, sql: str, *args: object) -> list[sqlite3.Row]:
    return conn.execute(sql, args).fetchall()


async def test_a_labeling_session_end_to_end(demo_workspace: Path) -> None:
    app = NavigatorApp(workspace=demo_workspace, labeler="ann")
    async with app.run_test(size=(180, 50)) as pilot:
        screen = workbench(app)
        first = screen.draft
        assert first is not None and first.item.uid == "demo:landlocked:ag"
        assert "Is Algeria landlocked?" in text_of(screen, "#task-body")
        assert "gold" not in text_of(screen, "#task-body")

        await search_and_open(app, pilot, "algeria coastline")
        screen = workbench(app)
        assert screen.open_node is not None and screen.open_node.uid == "fb:ag/geography/coastline"
        tree_cursor = screen.query_one(ZTree).cursor_node
        assert tree_cursor is not None and tree_cursor.data == screen.open_node
        await pilot.press("c", "2", "s")

        await search_and_open(app, pilot, "mongolia coastline")
        await pilot.press("1", "minus", "minus", "o", "greater_than_sign", "s")

        await pilot.press("m", "left_square_bracket")
        assert workbench(app).open_node is not None and workbench(app).open_node.uid == "fb:ag/geography/coastline"
        await pilot.press("right_square_bracket")
        assert workbench(app).open_node.uid == "fb:mg/geography/coastline"  # type: ignore[union-attr]

        await pilot.press("ctrl+z")
        assert workbench(app).draft is not None and workbench(app).draft.item.uid == "demo:hemisphere:ag"  # type: ignore[union-attr]

        await pilot.press("t", "x", "j", "x", "i")
        await pilot.press(*"0.2")
        await pilot.press("enter")
        await pilot.press("x", "i", *"0.1")
        await pilot.pause()
        assert "Incoherent" in text_of(workbench(app), "#task-feedback")
        await pilot.press("enter")
        last_open = workbench(app).open_node
        assert last_open is not None

    conn = connect(demo_workspace)
    predictions = rows(
        conn, "SELECT p.*, i.uid AS item FROM predictions p JOIN items i ON i.id = p.item_id ORDER BY p.id"
    )
    assert [(row["item"], row["retracted"]) for row in predictions] == [
        ("demo:landlocked:ag", 0),
        ("demo:hemisphere:ag", 0),
        ("demo:hemisphere:ag", 1),
    ]
    algeria = predictions[0]
    assert json.loads(algeria["probs"]) == {"yes": 0.1, "no": 0.9}
    assert json.loads(algeria["cited"]) == ["fb:ag/geography/coastline"]
    assert "fb:ag/geography/coastline" in json.loads(algeria["trail"])
    assert algeria["labeler"] == "ann" and algeria["source"] == "human" and algeria["seconds"] > 0
    nudged = json.loads(predictions[1]["probs"])
    assert abs(sum(nudged.values()) - 1) < 1e-9 and nudged["southern"] > 0.2
    assert predictions[2]["supersedes"] == predictions[1]["uid"]
    credences = rows(conn, "SELECT statements, p FROM credences ORDER BY id")
    assert [(len(json.loads(row["statements"])), row["p"]) for row in credences] == [(2, 0.2), (1, 0.1)]
    assert rows(conn, "SELECT COUNT(*) FROM bookmarks WHERE labeler = 'ann'")[0][0] == 1
    conn.close()

    again = NavigatorApp(workspace=demo_workspace)
    async with again.run_test(size=(180, 50)) as pilot:
        await pilot.pause()
        screen = workbench(again)
        assert again.labeler == "ann", "the last labeler is remembered"
        assert screen.mode == "credence"
        assert screen.open_node is not None and screen.open_node.uid == last_open.uid
        assert screen.draft is not None and screen.draft.item.uid == "demo:hemisphere:ag"
        cursor = screen.query_one(ZTree).cursor_node
        assert cursor is not None and cursor.data == screen.open_node
        conn = connect(demo_workspace)
        queue = len(items_in(conn, ("train", "validation")))  # D's items and D*_validation's, gold never shown
        conn.close()
        assert f"1/{queue} items" in text_of(screen, "#status")


async def test_help_lists_every_binding_and_the_palette_offers_them(demo_workspace: Path) -> None:
    app = NavigatorApp(workspace=demo_workspace, labeler="ann")
    async with app.run_test(size=(180, 50)) as pilot:
        commands = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Search", "Submit", "Undo", "Cite node", "Bookmark", "Predict/Credence"} <= commands
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        listed = {binding.description for binding in app.screen.bindings}
        assert {binding.description for binding in WorkbenchScreen.BINDINGS} <= listed
        await pilot.press("escape")
        assert isinstance(app.screen, WorkbenchScreen)


async def test_a_probability_out_of_range_is_refused_without_writing(demo_workspace: Path) -> None:
    app = NavigatorApp(workspace=demo_workspace, labeler="ann")
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("down", "t", "i", *"1.3")
        await pilot.pause()
        assert "between 0 and 1" in text_of(workbench(app), "#task-feedback")
        await pilot.press("enter")
        assert "between 0 and 1" in text_of(workbench(app), "#task-feedback")
    conn = connect(demo_workspace)
    assert conn.execute("SELECT COUNT(*) FROM credences").fetchone()[0] == 0
