"""A terminal progress bar for the `kb.importing.Progress` protocol."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class TerminalProgress:
    """One bar per phase, on stderr so `--json` output on stdout stays clean."""

    def __init__(self, *, enabled: bool = True) -> None:
        console = Console(stderr=True)
        self._bars = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled or not sys.stderr.isatty(),
            transient=False,
        )
        self._task: TaskID | None = None

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
        self._task = self._bars.add_task(phase, total=total)

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._bars.advance(self._task, amount)

    @property
    def cancelled(self) -> bool:
        return False
