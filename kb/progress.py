"""What long work reports as it goes, and how it is cancelled: the one protocol every long job
(import, index, fork, unpack batches, the demo build) takes, so the CLI's bars and the app's
progress widget can drive any of them."""

from __future__ import annotations

from typing import Protocol

from kb.errors import Cancelled


class ImportCancelled(Cancelled):
    """The user cancelled long work (an import, an index build); nothing was written."""


class Progress(Protocol):
    def start(self, phase: str, total: int | None) -> None: ...
    def advance(self, amount: int) -> None: ...
    @property
    def cancelled(self) -> bool: ...


class NoProgress:
    """Progress nobody watches and nobody cancels."""

    def start(self, phase: str, total: int | None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    @property
    def cancelled(self) -> bool:
        return False
