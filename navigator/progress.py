"""A terminal progress bar for the `kb.progress.Progress` protocol."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class TerminalProgress:
    """One bar per phase (count, rate, time so far and time left), on stderr so `--json`
    output on stdout stays clean. Rich is imported only when a bar is made: commands that
    never show one (and `navigator --help`) do not pay for it."""

    def __init__(self, *, enabled: bool = True, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bars = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            disable=not enabled or (console is None and not sys.stderr.isatty()),
            transient=False,
        )
        self._task: Any = None

    def __enter__(self) -> TerminalProgress:
        self._bars.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bars.stop()

    def start(self, phase: str, total: int | None) -> None:
        if self._task is not None:
            self._bars.update(self._task, completed=self._bars.tasks[-1].total or 0)
        self._task = self._bars.add_task(phase, total=total, rate="")

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._bars.advance(self._task, amount)
            speed = self._bars.tasks[-1].speed
            self._bars.update(self._task, rate=f"{speed:,.0f}/s" if speed else "")

    @property
    def cancelled(self) -> bool:
        return False
