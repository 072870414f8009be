"""Unpack and ask from the app: tokens stream in, the app stays usable, Esc cancels,
a missing model turns unpacking off with a reason. One test runs the real bundled model."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_llm_unit import FakeLLM  # the scripted model the LLM unit tests use
from textual.widgets import Input, Static

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.libraries import create_library
from models.llm import CancelCheck, GenerationCancelled, Request
from navigator.app import NavigatorApp
from navigator.screens.prompt import PromptScreen
from navigator.screens.workbench import WorkbenchScreen
from navigator.widgets import ZTree

ANSWER = "- Madagascar has a coastline.\n- The coastline is 4,828 km long.\n- Madagascar is an island.\nEND"


@pytest.fixture
def island(tmp_path: Path) -> Path:
    path = tmp_path / "island.db"
    conn = connect(path, create=True)
    library = create_library(conn, "factbook")
    nodes = [
        StagedNode(1, "ma", None, "country", "Madagascar"),
        StagedNode(2, "ma/coast", "ma", "field", "Coastline", body="4,828 km"),
    ]
    import_staged(conn, library, iter(nodes), source="test", importer="test")
    conn.close()
    return path


class GatedLLM(FakeLLM):
    """Streams one token, then waits for the test to let it go on (or to cancel)."""

    def __init__(self) -> None:
        super().__init__([ANSWER])
        self.gate = threading.Event()
        self.started = threading.Event()

    def stream(self, request: Request, cancel: CancelCheck) -> Iterator[str]:
        yield "- Madagascar "
        self.started.set()
        while not self.gate.wait(0.01):
            if cancel():
                raise GenerationCancelled
        yield from super().stream(request, cancel)


def workbench(app: NavigatorApp) -> WorkbenchScreen:
    assert isinstance(app.screen, WorkbenchScreen)
    return app.screen


def generated(path: Path) -> list[tuple[str, str]]:
    conn = connect(path)
    rows = conn.execute("SELECT title, origin FROM nodes WHERE origin = 'llm' ORDER BY id").fetchall()
    conn.close()
    return [(row[0], row[1]) for row in rows]


async def open_coastline(app: NavigatorApp, pilot: object) -> None:
    await pilot.press("down", "enter", "down")  # type: ignore[attr-defined]
    assert workbench(app).open_node is not None and workbench(app).open_node.title == "Coastline"  # type: ignore[union-attr]


async def wait_until(pilot: object, condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await pilot.pause(0.01)  # type: ignore[attr-defined]
    raise AssertionError("condition not reached")


async def test_unpack_streams_and_shows_generated_children(island: Path) -> None:
    app = NavigatorApp(workspace=island, labeler="ann", llm=FakeLLM([ANSWER]))
    async with app.run_test(size=(160, 40)) as pilot:
        await open_coastline(app, pilot)
        await pilot.press("u")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = workbench(app)
        assert "tokens/s" in str(screen.query_one("#status", Static).render())
        assert "generated children" in str(screen.query_one("#llm-stream", Static).render())
        cursor = screen.query_one(ZTree).cursor_node
        assert cursor is not None
        labels = [str(child.label) for child in cursor.children]
        assert labels and all("generated" in label for label in labels)
    assert [title for title, _ in generated(island)] == [
        "Madagascar has a coastline.",
        "The coastline is 4,828 km long.",
        "Madagascar is an island.",
    ]


async def test_escape_cancels_and_writes_nothing_while_the_app_stays_responsive(island: Path) -> None:
    llm = GatedLLM()
    app = NavigatorApp(workspace=island, labeler="ann", llm=llm)
    async with app.run_test(size=(160, 40)) as pilot:
        await open_coastline(app, pilot)
        await pilot.press("u")
        await wait_until(pilot, llm.started.is_set)
        await pilot.press("up")  # the UI keeps working while the model runs
        assert workbench(app).open_node.title == "Madagascar"  # type: ignore[union-attr]
        assert "generating" in str(workbench(app).query_one("#status", Static).render())
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "cancelled; nothing was written" in str(workbench(app).query_one("#llm-stream", Static).render())
    assert generated(island) == []


async def test_ask_stores_the_answer_as_a_child(island: Path) -> None:
    app = NavigatorApp(workspace=island, labeler="ann", llm=FakeLLM(["About 4,828 km of coast.\nEND"]))
    async with app.run_test(size=(160, 40)) as pilot:
        await open_coastline(app, pilot)
        await pilot.press("a")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one(Input).value = "How long is the coast?"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
    conn = connect(island)
    row = conn.execute("SELECT kind, origin, title FROM nodes WHERE kind = 'qa'").fetchone()
    conn.close()
    assert row is not None and row["origin"] == "llm"


async def test_without_a_model_unpacking_is_off_and_says_why(island: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAVIGATOR_MODEL", str(island.parent / "no-such-model.gguf"))
    app = NavigatorApp(workspace=island, labeler="ann")
    async with app.run_test(size=(160, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = str(workbench(app).query_one("#status", Static).render())
        assert "unpacking off" in status
        await open_coastline(app, pilot)
        await pilot.press("u")
        await pilot.press("down")
        assert workbench(app).open_node is not None
    assert generated(island) == []


async def test_unpack_with_the_real_bundled_model(island: Path) -> None:
    app = NavigatorApp(workspace=island, labeler="ann")
    async with app.run_test(size=(160, 40)) as pilot:
        await open_coastline(app, pilot)
        await app.workers.wait_for_complete()
        await pilot.press("u")
        await app.workers.wait_for_complete()
        await pilot.pause()
        message = str(workbench(app).query_one("#llm-stream", Static).render())
    rows = generated(island)
    assert rows or "nothing usable" in message, message
    conn = connect(island)
    calls = conn.execute("SELECT outcome, model FROM llm_calls").fetchall()
    conn.close()
    assert calls and calls[-1]["model"].startswith("gemma-3-270m")
