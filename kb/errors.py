"""The two roots every exception of the project grows from.

`ZNavigatorError` is something a person must act on: its message says what
went wrong and its hint (optional) what to do. The CLI turns any of them into
one line on stderr (navigator/commands/support.py `guard`) and the app into one
notification or status line (navigator/display.py `describe_error`), so a new
error class needs no new translation code — only a clear message.

`Cancelled` is deliberately not a ZNavigatorError: the person asked for the
work to stop, so there is nothing to fix. Its message says what was kept
(usually nothing), and callers that count or report cancellations can tell
them from failures with one `except`.

Errors that are also a ValueError (or RuntimeError, …) by contract keep that
base too, so existing `except ValueError` callers go on working.
"""

from __future__ import annotations


class ZNavigatorError(Exception):
    """What went wrong (`message`) and, where there is one, what to do about it (`hint`)."""

    def __init__(self, message: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}" if self.message else self.hint
        return self.message


CHECK_CANCELLED = "cancelled; the doctor only reads, so nothing was changed"


class Cancelled(Exception):
    """The person stopped the work; the message says what was kept."""

    def __init__(self, message: str = "cancelled; nothing was written") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
