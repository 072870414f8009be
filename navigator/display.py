"""Text from Z, imports and the LLM, made safe to put on a terminal.

Rich drops some control characters but passes ESC through, so a title holding an
escape sequence would recolour, retitle or rewrite the labeler's terminal. Every
control character except newline and tab is shown as its visible Unicode
"control picture" instead (ESC becomes ␛), so it is seen, not obeyed.
"""

from __future__ import annotations

from kb.errors import Cancelled, ZNavigatorError

_PICTURES = {code: chr(0x2400 + code) for code in range(0x20) if chr(code) not in "\n\t"}
_PICTURES[0x7F] = "\u2421"
_PICTURES.update({code: "\ufffd" for code in range(0x80, 0xA0)})


def visible(text: str) -> str:
    return text.translate(_PICTURES)


def describe_error(error: ZNavigatorError | Cancelled) -> str:
    """What a person reads for one of the project's errors, in the CLI and the app alike:
    the message and what to do (a cancellation says what was kept). Plain text — show it
    with markup off, since a message can quote a node's title."""
    return visible(str(error))
