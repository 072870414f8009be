"""Benchmark of `navigator serve` on a small workspace: what a session costs, how fast the first screen
comes with 1 and with 20 labelers at once, and what a flood of connections without a token does.

Run: python3 -m bench.serve [--sessions 20] [--flood 1000] [--rounds 3]
(about a minute on two cores; also writes bench/serve.out.txt)

A real server process and real websocket clients, as tests/test_serve.py drives them (the same
harness, tests/serve_support.py). Time to the first screen is from opening the websocket to the
workbench's status line drawn; its anchor is the same time for one session alone, measured in the
same run. Memory is each app process's proportional set size (PSS: shared pages split between the
processes that share them), beside the server's own, read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from serve_support import Served, open_tab, serving, small_team, token_of  # noqa: E402

from bench.tee import tee  # noqa: E402
from kb.db import connect  # noqa: E402
from kb.labelers import add_labeler  # noqa: E402

MB = 2**20


def memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in bytes, from /proc/PID/smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in ("Pss:", "Rss:"):
            values[parts[0]] = int(parts[1]) * 1024
    return values["Pss:"], values["Rss:"]


async def first_screen(http: aiohttp.ClientSession, served: Served, name: str, token: str) -> tuple[float, object]:
    start = time.monotonic()
    tab = await open_tab(http, served, token)
    await tab.wait_for(f"{name} · team.db · z")
    return time.monotonic() - start, tab


async def sessions_at_once(served: Served, tokens: dict[str, str]) -> tuple[list[float], list[tuple[int, int]]]:
    async with aiohttp.ClientSession() as http:
        opened = await asyncio.gather(*(first_screen(http, served, name, token) for name, token in tokens.items()))
        await asyncio.sleep(1.0)
        sizes = [memory(pid) for pid in served.app_pids()]
        for _, tab in opened:
            await tab.socket.close()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while served.app_pids() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return [seconds for seconds, _ in opened], sizes


async def flood(served: Served, attempts: int) -> tuple[float, int, dict[int, int]]:
    """`attempts` websocket upgrades without a token, 50 at a time; the most app processes seen."""
    codes: dict[int, int] = {}
    most = 0
    start = time.monotonic()
    async with aiohttp.ClientSession() as http:

        async def attempt() -> None:
            try:
                async with http.ws_connect(f"ws://127.0.0.1:{served.port}/ws", headers={"Origin": served.base}):
                    codes[101] = codes.get(101, 0) + 1
            except aiohttp.WSServerHandshakeError as refused:
                codes[refused.status] = codes.get(refused.status, 0) + 1

        for batch in range(0, attempts, 50):
            await asyncio.gather(*(attempt() for _ in range(min(50, attempts - batch))))
            most = max(most, len(served.app_pids()))
    return time.monotonic() - start, most, codes


async def run(sessions: int, attempts: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        workspace = small_team(Path(folder))
        names = [f"labeler{n:02d}" for n in range(sessions)]
        conn = connect(workspace)
        for name in names:
            add_labeler(conn, name)
        conn.close()
        tokens = {name: token_of(workspace, name) for name in names}
        with serving(workspace, "--max-sessions", str(sessions)) as served:
            await asyncio.sleep(1.0)
            server_pss, server_rss = memory(served.process.pid)
            print(f"server alone: PSS {server_pss / MB:.0f} MB, RSS {server_rss / MB:.0f} MB")

            seconds, processes, codes = await flood(served, attempts)
            after_pss, _ = memory(served.process.pid)
            print(
                f"flood: {attempts} websocket connections without a token in {seconds:.1f} s"
                f" ({seconds / attempts * 1000:.1f} ms each); answers {codes}; app processes started: {processes};"
                f" server PSS after {after_pss / MB:.0f} MB"
            )

            single: list[float] = []
            sizes: list[tuple[int, int]] = []
            for round_ in range(rounds):
                name = names[round_ % len(names)]
                times, measured = await sessions_at_once(served, {name: tokens[name]})
                single += times
                sizes += measured
            alone = statistics.median(single)
            pss = statistics.median(size[0] for size in sizes)
            rss = statistics.median(size[1] for size in sizes)
            print(
                f"1 session: first screen {alone:.2f} s (median of {len(single)}); app process PSS {pss / MB:.0f} MB,"
                f" RSS {rss / MB:.0f} MB"
            )

            crowd, crowd_sizes = await sessions_at_once(served, tokens)
            total = sum(size[0] for size in crowd_sizes)
            print(
                f"{sessions} sessions at once: first screen median {statistics.median(crowd):.2f} s, slowest"
                f" {max(crowd):.2f} s (×{statistics.median(crowd) / alone:.1f} and ×{max(crowd) / alone:.1f} the"
                f" single session); {len(crowd_sizes)} app processes, PSS {total / MB:.0f} MB in all,"
                f" {total / len(crowd_sizes) / MB:.0f} MB each"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    with tee("serve"):
        asyncio.run(run(arguments.sessions, arguments.flood, arguments.rounds))


if __name__ == "__main__":
    main()
