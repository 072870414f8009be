"""A file replaced all at once: whoever reads it sees the old one or the whole new one.

Exports, the answer key and calibrations are files people send, merge and load later, so a full
disk or a crash half-way must never leave a truncated file in their place. The new content goes to
a fresh file in the same folder (so the rename stays on one file system) under a name no other
writer picks, opened with "x" so it is never shared; it is flushed to disk, and only then renamed
over the target. On any failure the fresh file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


class StagedFile:
    """The new content of `target`, written beside it; `commit` moves it into place, `discard`
    (also on leaving a `with` block) removes what was not committed. Two steps, so a caller can
    commit the file only after something else (a database transaction) has succeeded."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")

    @contextlib.contextmanager
    def writer(self) -> Iterator[TextIO]:
        with self.path.open("x", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())

    def write_text(self, text: str) -> None:
        with self.writer() as handle:
            handle.write(text)

    def commit(self) -> None:
        os.replace(self.path, self.target)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def write_atomically(target: Path, text: str) -> None:
    """Replace `target` with `text` all at once (OSError as raised: the caller names the file)."""
    with StagedFile(target) as staged:
        staged.write_text(text)
        staged.commit()
