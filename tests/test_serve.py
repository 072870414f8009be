"""`navigator serve`: a real server process, a real page over HTTP, and the app's websocket driven the
way textual-serve's browser client drives it (JSON text frames ["stdin", keys] and ["resize", size];
the app's screen comes back as terminal output in binary frames). Each browser session asks who is
labelling, and a label typed through the websocket lands in the workspace."""

from __future__ import annotations

import asyncio
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.items import add_items
from kb.libraries import create_library
from kb.records import ItemRecord

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])")
TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    """(port, workspace, the server's output file) for a `navigator serve` process on a small workspace."""
    workspace = tmp_path / "team.db"
    conn = connect(workspace, create=True)
    library = create_library(conn, "z")
    import_staged(
        conn, library, iter([StagedNode(1, "s1", None, "statement", "Chad is landlocked")]), source="t", importer="t"
    )
    items = [ItemRecord(id=f"q{n}", x=f"Is place {n} landlocked?", options=["yes", "no"], y="yes") for n in range(3)]
    add_items(conn, list(enumerate(items, 1)), source="t", dstar=False)
    conn.close()
    port = free_port()
    output = tmp_path / "serve.out"
    with output.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "navigator.cli", "serve", "-w", str(workspace), "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert server.poll() is None, output.read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.2)
        yield port, workspace, output
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class Session:
    """One browser tab: a websocket to the server, and the text the app has drawn so far."""

    def __init__(self, socket_: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket_
        self.screen = ""

    async def type(self, keys: str) -> None:
        await self.socket.send_json(["stdin", keys])

    async def wait_for(self, text: str) -> None:
        """Read frames until `text` has been drawn (escape sequences removed)."""
        deadline = time.monotonic() + TIMEOUT
        while text not in self.screen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared; last drawn: {self.screen[-500:]!r}"
            try:
                message = await self.socket.receive(timeout=remaining)
            except TimeoutError:
                continue
            if message.type == aiohttp.WSMsgType.BINARY:
                self.screen += ANSI.sub("", message.data.decode("utf-8", errors="replace"))
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"the app's websocket closed while waiting for {text!r}")


def labels(workspace: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(workspace)
    try:
        return [(row[0], row[1]) for row in conn.execute("SELECT labeler, probs FROM predictions ORDER BY id")]
    finally:
        conn.close()


async def wait_for_labels(workspace: Path, count: int) -> list[tuple[str, str]]:
    deadline = time.monotonic() + TIMEOUT
    while len(found := labels(workspace)) < count:
        assert time.monotonic() < deadline, f"expected {count} labels, found {found}"
        await asyncio.sleep(0.2)
    return found


async def test_serve_page_websocket_and_a_label_typed_in_the_browser(served: tuple[int, Path, Path]) -> None:
    port, workspace, output = served
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/") as page:
            assert page.status == 200
            html = await page.text()
        assert f"ws://127.0.0.1:{port}/ws" in html and "Z Navigator" in html
        async with http.get(base + "/static/js/textual.js") as script:
            assert script.status == 200

        for name, keys in (("ann", "1"), ("bob", "2")):
            # Every session asks for a name, even though the workspace remembers the last labeler.
            async with http.ws_connect(f"ws://127.0.0.1:{port}/ws?width=140&height=40") as socket_:
                tab = Session(socket_)
                await socket_.send_json(["resize", {"width": 140, "height": 40}])
                await tab.wait_for("Who is labelling?")
                await tab.type(name)
                await tab.type("\r")
                await tab.wait_for(f"{name} · team.db · z")  # the workbench's status line
                await tab.type(keys)
                await tab.type("s")
                found = await wait_for_labels(workspace, 1 if name == "ann" else 2)
                assert found[-1][0] == name

    shown = labels(workspace)
    assert [who for who, _ in shown] == ["ann", "bob"]
    assert '"yes": 0.9' in shown[0][1] and '"no": 0.9' in shown[1][1]
    said = output.read_text()
    assert f"http://127.0.0.1:{port} to this machine only (listening on 127.0.0.1" in said
