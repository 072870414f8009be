"""How the labeler's app feels: start-up time on the demo, and expand / cursor moves on a
library of a million nodes, each against an anchor measured in the same run.

    python3 bench/app.py                  # 1 000 000 nodes, demo in a temp dir
    python3 bench/app.py --nodes 20000    # quick check

The budget (DESIGN.md §7) is one frame, 16 ms, per action. It is checked on the time spent
in our own handlers for each key press (tree expansion reading a page, opening the node under
the cursor: breadcrumbs, node pane, trail, saved position). The wall time of a whole Pilot
press, key to idle, is printed too, against the same press in a bare Textual app with one
small Tree: Pilot waits for idle and a refresh, so that anchor is far above 16 ms by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Tree

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workspace import generate_rows  # noqa: E402  (bench/workspace.py, beside this file)

from kb.db import connect  # noqa: E402
from kb.demo import build_demo  # noqa: E402
from kb.importing import StagedNode, import_staged  # noqa: E402
from kb.libraries import create_library  # noqa: E402
from kb.progress import NoProgress
from kb.tree import ancestors  # noqa: E402
from navigator.app import NavigatorApp  # noqa: E402
from navigator.screens.workbench import WorkbenchScreen  # noqa: E402
from navigator.widgets.z_tree import ZTree, reveal  # noqa: E402

FRAME_MS = 16.0
SIZE = (160, 48)


class BareTreeApp(App[None]):
    """The anchor: Textual with nothing of ours, one Tree of 100 children."""

    def compose(self) -> ComposeResult:
        tree: Tree[None] = Tree("root")
        for index in range(100):
            tree.root.add(f"node {index}").add_leaf("leaf")
        yield tree

    def on_mount(self) -> None:
        self.query_one(Tree).focus()
        self.query_one(Tree).root.expand()


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class HandlerClock:
    """Adds up the time spent inside our own handlers, which must fit in one frame.
    Wraps methods in place, so the app runs exactly its own code."""

    def __init__(self) -> None:
        self.spent_ms = 0.0

    def wrap(self, owner: type, name: str) -> None:
        original = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spent_ms += (time.perf_counter() - started) * 1000

        setattr(owner, name, timed)


CLOCK = HandlerClock()
for owner, method in [
    (WorkbenchScreen, "on_tree_node_highlighted"),
    (ZTree, "on_tree_node_expanded"),
    (ZTree, "on_tree_node_selected"),
]:
    CLOCK.wrap(owner, method)


async def timed_presses(pilot: Pilot[None], keys: list[str], handler_ms: list[float] | None = None) -> list[float]:
    """Wall time of each press; with `handler_ms`, also the time our handlers took for it."""
    samples = []
    for key in keys:
        CLOCK.spent_ms = 0.0
        started = time.perf_counter()
        await pilot.press(key)
        samples.append((time.perf_counter() - started) * 1000)
        if handler_ms is not None:
            handler_ms.append(CLOCK.spent_ms)
    return samples


Ready = Callable[[App[None], Pilot[None]], Awaitable[None]]


async def press_in(app: App[None], keys: list[str], ready: Ready) -> list[float]:
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        return await timed_presses(pilot, keys)


async def nothing(app: App[None], pilot: Pilot[None]) -> None:
    await pilot.pause()


def budget_line(name: str, samples: list[float]) -> str:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    verdict = "PASS" if p99 < FRAME_MS else "FAIL"
    return (
        f"     {name:<42} n={len(samples):<4} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  [{verdict} p99 < {FRAME_MS:g} ms]"
    )


def ratio_line(name: str, samples: list[float], anchor: list[float]) -> str:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return (
        f"     {name:<42} n={len(samples):<4} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"ratio p50 {p50 / statistics.median(anchor):4.1f}x"
    )


async def measure_startup(demo: Path, runs: int) -> tuple[list[float], list[float]]:
    async def start(make: Callable[[], App[None]], wait_for: type | None) -> float:
        started = time.perf_counter()
        app = make()
        async with app.run_test(size=SIZE) as pilot:
            while wait_for is not None and not isinstance(app.screen, wait_for):
                await pilot.pause()
            elapsed = (time.perf_counter() - started) * 1000
        return elapsed

    ours = [await start(lambda: NavigatorApp(workspace=demo, labeler="bench"), WorkbenchScreen) for _ in range(runs)]
    anchor = [await start(BareTreeApp, None) for _ in range(runs)]
    return ours, anchor


def build_million(path: Path, nodes: int) -> None:
    """A synthetic library with bench/workspace.py's shape (one node has 100 000 children)."""
    conn = connect(path, create=True)
    library = create_library(conn, "bench")
    rows = generate_rows(nodes, seed=7)
    staged = (StagedNode(n, uid, parent, kind, title, body) for n, (uid, parent, title, body, kind) in enumerate(rows))
    import_staged(conn, library, staged, source="synthetic", importer="bench")
    conn.close()


Figures = dict[str, list[float]]


async def measure_big_tree(path: Path, expands: int, moves: int) -> Figures:
    """Expand the widest nodes one by one (each reads its first page), then walk the cursor
    down through the widest one's children."""
    app = NavigatorApp(workspace=path, labeler="bench")
    figures: Figures = {"expand": [], "expand handlers": [], "cursor": [], "cursor handlers": []}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WorkbenchScreen)
        tree = screen.query_one(ZTree)
        widest = screen.conn.execute(
            "SELECT id FROM nodes WHERE child_count > 0 AND parent_id IS NOT NULL ORDER BY child_count DESC LIMIT ?",
            (expands,),
        ).fetchall()
        for (node_id,) in reversed(widest):
            reveal(tree, ancestors(screen.conn, node_id))
            await pilot.pause()
            await pilot.pause()
            figures["expand"] += await timed_presses(pilot, ["enter"], figures["expand handlers"])
        figures["cursor"] = await timed_presses(pilot, ["down"] * moves, figures["cursor handlers"])
    figures["anchor"] = await press_in(BareTreeApp(), ["down"] * moves, nothing)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--moves", type=int, default=300)
    parser.add_argument("--expands", type=int, default=100, help="how many of the widest nodes to expand")
    parser.add_argument("--demo", type=Path, help="an existing demo workspace (default: build one in a temp dir)")
    parser.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        build_million(args.build_only, args.nodes)
        return
    with tempfile.TemporaryDirectory() as scratch:
        demo = args.demo
        if demo is None:
            demo = Path(scratch) / "demo.db"
            print("building the demo workspace…", flush=True)
            build_demo(demo, lambda _: NoProgress(), index_procs=2)[0].close()
        startup, startup_anchor = await measure_startup(demo, runs=5)
        print(f"building a {args.nodes:,}-node library…", flush=True)
        big = Path(scratch) / "big.db"
        # In a child process: building leaves a million rows of garbage whose collection
        # would land inside the measured key presses; the app's process never holds them.
        subprocess.run([sys.executable, __file__, "--build-only", str(big), "--nodes", str(args.nodes)], check=True)
        figures = await measure_big_tree(big, args.expands, args.moves)

    print("\nZ Navigator app benchmark (wall time per Pilot key press, to idle)")
    print(
        f"1. start-up on the demo workspace, n={len(startup)}: median {statistics.median(startup):.0f} ms "
        f"(bare Textual app: {statistics.median(startup_anchor):.0f} ms, "
        f"ratio {statistics.median(startup) / statistics.median(startup_anchor):.1f}x)  "
        f"[{'PASS' if statistics.median(startup) < 1000 else 'FAIL'} < 1 s]"
    )
    print(f"2. {args.nodes:,}-node library")
    anchor = figures["anchor"]
    print("   our handlers' time per action (must fit one frame):")
    print(budget_line(f"expand one of the {args.expands} widest nodes", figures["expand handlers"]))
    print(budget_line("cursor down through the widest node", figures["cursor handlers"]))
    print("   whole Pilot press, key to idle (Pilot's own waits included), against the bare-Tree anchor:")
    print(ratio_line("expand", figures["expand"], anchor))
    print(ratio_line("cursor down", figures["cursor"], anchor))
    print(ratio_line("anchor: cursor down in a bare Tree", anchor, anchor))


if __name__ == "__main__":
    asyncio.run(main())
