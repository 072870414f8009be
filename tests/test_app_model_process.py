"""The app with the real bundled model in its own process: a crash or kill of that process mid-generation
leaves the app answering keys, says why on the status line and in a notification, writes nothing, and
the next `u` starts a fresh process; Esc cancels a real generation at once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_app_llm import generated, island, open_coastline, workbench  # noqa: F401  (island is a fixture)
from textual.widgets import Static

from kb.db import connect
from models.llm.calls import recent_calls
from models.llm.model_process import ModelProcess
from navigator.app import NavigatorApp

pytestmark = pytest.mark.slow


async def wait_for(pilot: object, condition: Callable[[], bool], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await pilot.pause(0.02)  # type: ignore[attr-defined]


def shown(app: NavigatorApp, selector: str) -> str:
    return str(workbench(app).query_one(selector, Static).render())


@pytest.mark.parametrize("sent", [signal.SIGSEGV, signal.SIGKILL])
async def test_a_model_process_stopped_mid_generation_leaves_the_app_working(
    island: Path,  # noqa: F811
    sent: signal.Signals,
) -> None:
    app = NavigatorApp(workspace=island, labeler="ann")
    async with app.run_test(size=(160, 40)) as pilot:
        await open_coastline(app, pilot)
        await app.workers.wait_for_complete()
        generation = workbench(app).generation
        assert isinstance(generation.llm, ModelProcess)
        await pilot.press("u")
        await wait_for(pilot, lambda: workbench(app).tokens_per_second > 0)  # tokens are streaming in
        assert generation.llm.pid is not None
        os.kill(generation.llm.pid, sent)
        await app.workers.wait_for_complete()
        await pilot.pause()
        why = f"the model process stopped (signal {sent.value}, {sent.name})"
        assert f"unpacking off: {why}" in shown(app, "#status") and "u starts it again" in shown(app, "#status")
        assert f"{why} while unpacking" in shown(app, "#llm-stream") and "nothing was written" in shown(
            app, "#llm-stream"
        )
        assert any(why in str(note.message) for note in app._notifications)
        assert generated(island) == []
        await pilot.press("up")  # the app still answers keys
        assert workbench(app).open_node is not None and workbench(app).open_node.title == "Madagascar"
        await pilot.press("down")
        await pilot.press("u")  # a fresh model process
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert generation.llm.starts == 2
        assert "unpacking off" not in shown(app, "#status")
        message = shown(app, "#llm-stream")
    assert generated(island) or "nothing usable" in message, message


async def test_escape_cancels_a_real_generation_at_once(island: Path) -> None:  # noqa: F811
    app = NavigatorApp(workspace=island, labeler="ann")
    async with app.run_test(size=(160, 40)) as pilot:
        await open_coastline(app, pilot)
        await app.workers.wait_for_complete()
        await pilot.press("u")
        await wait_for(pilot, lambda: workbench(app).tokens_per_second > 0)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not workbench(app).generation.running, seconds=10)
        await pilot.pause()
        assert "cancelled; nothing was written" in shown(app, "#llm-stream")
    assert generated(island) == []
    # Cut short, not run out: the call is logged as cancelled with fewer tokens than it was allowed. How fast
    # Esc gets back to idle is a figure for bench/llm.py (23 ms), not a clock in a test on a shared machine.
    conn = connect(island)
    call = recent_calls(conn, limit=1, purpose="unpack")[0]
    assert call.outcome == "cancelled", call
    assert call.tokens_out is not None and call.tokens_out < call.params["max_tokens"], call
