"""Which reader reads a path into staged nodes: the one rule `navigator import` and a study protocol share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kb.errors import ZNavigatorError
from kb.importing import ImportProblem, StagedNode
from kb.progress import Progress

FORMATS = ("markdown", "jsonl", "text", "factbook")


class FormatError(ZNavigatorError, ValueError):
    """A path whose format cannot be told, or that the format cannot read; nothing was imported."""


def detect_format(path: Path | None) -> str:
    """The format a path's kind and name say: a folder is Markdown, .jsonl nodes, .txt/.md a text file."""
    if path is None:
        raise FormatError("give a PATH to import, or --format factbook")
    if path.is_dir():
        return "markdown"
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix in (".txt", ".md", ".markdown", ".text"):
        return "text"
    raise FormatError(f"cannot tell the format of {path} from its name; pass --format ({', '.join(FORMATS)})")


def read_nodes(fmt: str, path: Path | None, progress: Progress) -> Iterator[StagedNode | ImportProblem]:
    """The staged nodes of `path` read as `fmt` (the Factbook needs no path: it is the installed package)."""
    from kb.formats.factbook import read_factbook
    from kb.formats.jsonl import read_jsonl_nodes
    from kb.formats.outline import read_markdown_folder, read_outline_file

    if fmt == "factbook":
        return read_factbook(progress)
    if path is None:
        raise FormatError(f"--format {fmt} needs a PATH")
    if not path.exists():
        raise FormatError(f"{path} does not exist")
    if fmt == "markdown":
        if path.is_dir():
            return read_markdown_folder(path, progress)
        return read_outline_file(path, progress, plain_text=False)
    if path.is_dir():
        raise FormatError(f"{path} is a folder; --format {fmt} reads a file")
    if fmt == "jsonl":
        return read_jsonl_nodes(path, progress)
    return read_outline_file(path, progress, plain_text=path.suffix.lower() not in (".md", ".markdown"))
