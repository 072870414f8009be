"""A real `navigator serve` process on a small workspace, and what its tests need around it: tabs
that speak textual-serve's websocket protocol, the app processes under the server, the labels stored."""

from __future__ import annotations

import asyncio
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.labelers import add_labeler, issue_link
from kb.libraries import create_library
from kb.records import ItemRecord

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])")
TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every process started under `pid`, from /proc (the app processes and their shells)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def small_team(tmp_path: Path) -> Path:
    """A small workspace with three items, and three recorded labelers (ann, bob, cy) without links."""
    path = tmp_path / "team.db"
    conn = connect(path, create=True)
    library = create_library(conn, "z")
    import_staged(
        conn, library, iter([StagedNode(1, "s1", None, "statement", "Chad is landlocked")]), source="t", importer="t"
    )
    items = [ItemRecord(id=f"q{n}", x=f"Is place {n} landlocked?", options=["yes", "no"], y="yes") for n in range(3)]
    add_items(conn, list(enumerate(items, 1)), source="t", dstar=False)
    for name in ("ann", "bob", "cy"):
        add_labeler(conn, name)
    conn.close()
    return path


def token_of(workspace: Path, name: str) -> str:
    conn = connect(workspace)
    try:
        return issue_link(conn, name)
    finally:
        conn.close()


@dataclass
class Served:
    port: int
    process: subprocess.Popen[bytes]
    output: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cookie(self) -> str:
        return f"znav_token_{self.port}"

    def app_pids(self) -> list[int]:
        """The app processes running under the server (one python process per session)."""
        return [pid for pid in descendants(self.process.pid) if b"navigator.cli" in _cmdline(pid)]

    def apps(self) -> int:
        return len(self.app_pids())


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@contextmanager
def serving(workspace: Path, *options: str) -> Iterator[Served]:
    port = free_port()
    output = workspace.parent / f"serve-{port}.out"
    with output.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "navigator.cli", "serve", "-w", str(workspace), "--port", str(port), *options],
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
        yield Served(port, server, output)
    finally:
        stop(server)


def stop(process: subprocess.Popen[Any], seconds: float = 30.0) -> None:
    """Ask a process to stop (SIGTERM), and kill it if it has not within `seconds`."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Tab:
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

    async def wait_closed(self, within: float) -> float:
        """Seconds until the server closed this tab's websocket."""
        start = time.monotonic()
        while time.monotonic() - start < within:
            try:
                message = await self.socket.receive(timeout=within)
            except TimeoutError:
                break
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return time.monotonic() - start
        raise AssertionError(f"the tab was still open after {within} s")


async def open_tab(http: aiohttp.ClientSession, served: Served, token: str | None, query: str = "") -> Tab:
    headers = {"Origin": served.base}
    if token is not None:
        headers["Cookie"] = f"{served.cookie}={token}"
    socket_ = await http.ws_connect(f"ws://127.0.0.1:{served.port}/ws?width=140&height=40{query}", headers=headers)
    await socket_.send_json(["resize", {"width": 140, "height": 40}])
    return Tab(socket_)


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
