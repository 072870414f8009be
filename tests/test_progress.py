"""Long builds show how far they are, how fast they go and how long is left."""

from __future__ import annotations

import io
import time

from rich.console import Console

from navigator.progress import TerminalProgress


def a_terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=140, color_system=None), out


def test_a_bar_shows_count_rate_and_time_left() -> None:
    console, out = a_terminal()
    with TerminalProgress(console=console) as progress:
        progress.start("indexing factbook", 10_000)
        for _ in range(5):
            progress.advance(1_000)
            time.sleep(0.05)
    shown = out.getvalue()
    assert "indexing factbook" in shown and "5000/10000" in shown
    assert "/s" in shown and "left" in shown


def test_many_small_advances_add_up_exactly() -> None:
    """A reader advances once a record; the bar takes them in sums, and none is lost."""
    console, out = a_terminal()
    with TerminalProgress(console=console) as progress:
        progress.start("reading", None)
        for _ in range(30_000):
            progress.advance(3)
    assert [task.completed for task in progress._bars.tasks] == [90_000]


def test_a_finished_phase_stops_its_clock() -> None:
    """A phase without a total (the import's checks, the doctor's integrity check) ends when the
    next begins; its time must stop there, not keep counting beside the next phase."""
    console, _ = a_terminal()
    with TerminalProgress(console=console) as progress:
        progress.start("checking", None)
        progress.start("writing", 10)
        progress.start("reading", 100)
        for _ in range(3):
            progress.advance(10)
            time.sleep(0.12)
        progress.advance(10)
        assert progress._bars.tasks[-1].fields["left"].endswith(" left")
        progress.start("checking", None)
        first, second, third, fourth = progress._bars.tasks
        assert first.finished_time is not None or first.stop_time is not None
        assert second.stop_time is not None and fourth.stop_time is None
        assert third.fields["left"] == ""  # a finished phase has no time left


def test_a_phase_without_a_total_shows_no_time_left() -> None:
    """Its time so far must not read as time left ("0:00:05 left" for a check that runs minutes)."""
    console, out = a_terminal()
    with TerminalProgress(console=console) as progress:
        progress.start("integrity_check of 14,222 MiB", None)
        for _ in range(3):
            progress.advance(1)
            time.sleep(0.12)
    shown = out.getvalue()
    assert "integrity_check" in shown and "left" not in shown
