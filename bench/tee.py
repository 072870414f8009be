"""Print a bench's output and keep a copy in bench/NAME.out.txt, with the machine's load beside it."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


class _Both(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


@contextlib.contextmanager
def tee(name: str) -> Iterator[None]:
    """Everything printed inside goes to the terminal and to bench/NAME.out.txt."""
    path = Path(__file__).resolve().parent / f"{name}.out.txt"
    with path.open("w", encoding="utf-8") as copy, contextlib.redirect_stdout(_Both(sys.stdout, copy)):
        print(f"[{load()} at the start]")
        yield
        print(f"[{load()} at the end]")
