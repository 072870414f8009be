"""A terminal progress bar for the `kb.progress.Progress` protocol."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from types import TracebackType
from typing import Any

REDRAW_SECONDS = 0.1


class TerminalProgress:
    """One bar per phase (count, rate, time so far and time left), on stderr so `--json`
    output on stdout stays clean. Rich is imported only when a bar is made: commands that
    never show one (and `navigator --help`) do not pay for it.

    Advances are summed and handed to rich at most every REDRAW_SECONDS: a reader advances once
    a record, and rich's bookkeeping per call cost a ten-million-line import minutes."""

    def __init__(self, *, enabled: bool = True, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bars = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}", markup=False),
            console=console or Console(stderr=True),
            disable=not enabled or (console is None and not sys.stderr.isatty()),
            transient=False,
        )
        self._task: Any = None
        self._pending = 0
        self._handed = time.monotonic()

    def __enter__(self) -> TerminalProgress:
        self._bars.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._hand_over()
        self._bars.stop()

    def start(self, phase: str, total: int | None) -> None:
        if self._task is not None:
            self._hand_over()
            self._bars.update(self._task, completed=self._bars.tasks[-1].total or 0, left="")  # done: none left
            self._bars.stop_task(self._task)  # a phase without a total would keep counting its time
        self._task = self._bars.add_task(phase, total=total, rate="", left="")

    def advance(self, amount: int) -> None:
        self._pending += amount
        if time.monotonic() - self._handed >= REDRAW_SECONDS:
            self._hand_over()

    def _hand_over(self) -> None:
        self._handed = time.monotonic()
        if self._task is not None and self._pending:
            self._bars.advance(self._task, self._pending)
            task = self._bars.tasks[-1]
            left = task.time_remaining if task.total else None  # a phase without a total has no time left to show
            self._bars.update(
                self._task,
                rate=f"{task.speed:,.0f}/s" if task.speed else "",
                left=f"{timedelta(seconds=round(left))} left" if left is not None else "",
            )
        self._pending = 0

    @property
    def cancelled(self) -> bool:
        return False
