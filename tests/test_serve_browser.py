"""The served app in a real browser: Debian's headless Chromium, driven over its DevTools protocol
(a websocket, with the aiohttp client the other serve tests use), opens a labeler's link, signs in,
waits for the app, presses `1` and `s`, and the label is in the workspace under that labeler.

CI installs Chromium before the suite (.ci/run); where it is missing this test is skipped and says so."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from serve_support import serving, small_team, stop, token_of, wait_for_labels

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1400,900",
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return small_team(tmp_path)


class Page:
    """One browser tab, driven by DevTools commands."""

    def __init__(self, socket_: aiohttp.ClientWebSocketResponse, session: str) -> None:
        self.socket = socket_
        self.session = session
        self.sent = 0

    @staticmethod
    async def call(socket_: aiohttp.ClientWebSocketResponse, number: int, method: str, **params: Any) -> Any:
        await socket_.send_json({"id": number, "method": method, "params": params})
        return await Page.answer(socket_, number)

    @staticmethod
    async def answer(socket_: aiohttp.ClientWebSocketResponse, number: int) -> Any:
        while True:
            message = await socket_.receive_json(timeout=60)
            if message.get("id") == number:
                assert "error" not in message, message["error"]
                return message["result"]

    async def do(self, method: str, **params: Any) -> Any:
        self.sent += 1
        await self.socket.send_json(
            {"id": 1000 + self.sent, "method": method, "params": params, "sessionId": self.session}
        )
        return await self.answer(self.socket, 1000 + self.sent)

    async def evaluate(self, expression: str) -> Any:
        return (await self.do("Runtime.evaluate", expression=expression, returnByValue=True))["result"].get("value")


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    # Chromium leaves a singleton folder in TMPDIR when it is stopped: keep it beside the profile.
    browser = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(profile.parent)},
    )
    try:
        assert browser.stderr is not None
        endpoint = None
        for line in browser.stderr:
            if found := re.search(r"DevTools listening on (ws://\S+)", line):
                endpoint = found.group(1)
                break
        assert endpoint, "Chromium did not open its DevTools endpoint"
        async with aiohttp.ClientSession() as http, http.ws_connect(endpoint, max_msg_size=0) as socket_:
            target = await Page.call(socket_, 1, "Target.createTarget", url="about:blank")
            attached = await Page.call(socket_, 2, "Target.attachToTarget", targetId=target["targetId"], flatten=True)
            yield Page(socket_, attached["sessionId"])
    finally:
        stop(browser, 20.0)


def workbench_open(workspace: Path, labeler: str, since: str) -> bool:
    """The app saves where a labeler is as it opens the workbench: the sign of a ready app."""
    conn = sqlite3.connect(workspace)
    try:
        row = conn.execute(
            "SELECT 1 FROM labeler_state WHERE labeler = ? AND key = 'library' AND updated_at >= ?", (labeler, since)
        ).fetchone()
        return row is not None
    finally:
        conn.close()


async def test_a_labeler_opens_their_link_in_chromium_and_labels_an_item(workspace: Path, tmp_path: Path) -> None:
    token = token_of(workspace, "bob")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    with serving(workspace) as served:
        async with chromium(tmp_path / "profile") as page:
            await page.do("Page.navigate", url=f"{served.base}/login?token={token}")
            deadline = time.monotonic() + 60
            while not (
                workbench_open(workspace, "bob", since)
                and "-first-byte" in (await page.evaluate("document.body.className") or "")
            ):
                assert time.monotonic() < deadline, "the app never opened in the browser"
                await asyncio.sleep(0.3)
            assert await page.evaluate("location.pathname") == "/"  # the token left the address bar
            await asyncio.sleep(1.0)  # the workbench's first frame is on its way to the browser
            await page.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
            await page.do("Input.insertText", text="1")
            await page.do("Input.insertText", text="s")
            found = await wait_for_labels(workspace, 1)
    assert [who for who, _ in found] == ["bob"] and '"yes": 0.9' in found[0][1]
