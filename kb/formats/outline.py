"""Markdown folders, Markdown files and plain text with headings, as node trees.

Folders and files become nodes, headings nest by level, and every paragraph or
list item becomes a statement. Plain text uses the same rules plus one more
heading form common in plain text: a standalone line in CAPITALS.
Node ids are derived from the file's relative path and the block's ordinal,
so importing the same files on two machines gives the same ids.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kb.importing import ImportProblem, StagedNode
from kb.progress import Progress

TITLE_LIMIT = 200
_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_LIST_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,9}[.)])\s+(.*)$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
MARKDOWN_SUFFIXES = (".md", ".markdown")


@dataclass(frozen=True)
class Block:
    line: int
    heading_level: int  # 0 for a statement
    text: str


def node_uid(*parts: str) -> str:
    return "n_" + hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=10).hexdigest()


def title_and_body(text: str) -> tuple[str, str]:
    """Short statements are their own title; long ones get a cut title and keep the whole text as body."""
    text = text.strip()
    if len(text) <= TITLE_LIMIT:
        return text, ""
    return text[: TITLE_LIMIT - 1].rstrip() + "…", text


def _is_caps_heading(line: str) -> bool:
    letters = [ch for ch in line if ch.isalpha()]
    return len(letters) >= 3 and len(line) <= 80 and all(ch.isupper() for ch in letters)


def parse_blocks(text: str, *, plain_text: bool) -> list[Block]:
    blocks: list[Block] = []
    paragraph: list[str] = []
    start = 0
    fence: list[str] | None = None

    def end_paragraph() -> None:
        if paragraph:
            blocks.append(Block(start, 0, " ".join(part.strip() for part in paragraph)))
            paragraph.clear()

    lines = text.splitlines()
    for index, line in enumerate(lines):
        number = index + 1
        if fence is not None:
            fence.append(line)
            if _FENCE.match(line):
                blocks.append(Block(start, 0, "\n".join(fence)))
                fence = None
            continue
        if _FENCE.match(line):
            end_paragraph()
            fence, start = [line], number
            continue
        if not line.strip():
            end_paragraph()
            continue
        atx = _ATX.match(line)
        if atx:
            end_paragraph()
            if atx[2]:
                blocks.append(Block(number, len(atx[1]), atx[2]))
            continue
        if _SETEXT.match(line) and len(line.strip()) >= 3:
            if len(paragraph) == 1:
                blocks.append(Block(start, 1 if line.strip()[0] == "=" else 2, paragraph.pop().strip()))
                continue
            if not paragraph:
                continue  # a horizontal rule

        item = _LIST_ITEM.match(line)
        if item:
            end_paragraph()
            start = number
            paragraph.append(item[1])
            continue
        next_is_blank = index + 1 >= len(lines) or not lines[index + 1].strip()
        if plain_text and not paragraph and next_is_blank and _is_caps_heading(line.strip()):
            blocks.append(Block(number, 1, line.strip()))
            continue
        if not paragraph:
            start = number
        paragraph.append(line)
    end_paragraph()
    if fence is not None:
        blocks.append(Block(start, 0, "\n".join(fence)))
    return blocks


def _file_nodes(
    path: Path, relative: str, parent_uid: str | None, *, plain_text: bool, include_file_node: bool
) -> Iterator[StagedNode | ImportProblem]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        yield ImportProblem(str(path), 0, "-", f"cannot read: {error.strerror}")
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        yield ImportProblem(str(path), line, "-", f"not valid UTF-8 (byte {error.start})")
        return
    top = parent_uid
    if include_file_node:
        top = node_uid(relative)
        yield StagedNode(0, top, parent_uid, "document", path.stem, source=str(path))
    stack: list[tuple[int, str | None]] = [(0, top)]
    for ordinal, block in enumerate(parse_blocks(text, plain_text=plain_text)):
        uid = node_uid(relative, str(ordinal))
        title, body = title_and_body(block.text)
        if block.heading_level:
            while stack[-1][0] >= block.heading_level:
                stack.pop()
            yield StagedNode(block.line, uid, stack[-1][1], "section", title, body, source=str(path))
            stack.append((block.heading_level, uid))
        else:
            yield StagedNode(block.line, uid, stack[-1][1], "statement", title, body, source=str(path))


def read_outline_file(path: Path, progress: Progress, *, plain_text: bool) -> Iterator[StagedNode | ImportProblem]:
    """One Markdown or text file; its headings hang directly under the library root."""
    progress.start(f"reading {path.name}", 1)
    yield from _file_nodes(path, path.name, None, plain_text=plain_text, include_file_node=False)
    progress.advance(1)


def read_markdown_folder(folder: Path, progress: Progress) -> Iterator[StagedNode | ImportProblem]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in MARKDOWN_SUFFIXES and not _hidden(p.relative_to(folder))
    )
    progress.start(f"reading {folder.name}/", len(files))
    folders_seen: set[Path] = set()
    for path in files:
        relative = path.relative_to(folder)
        parent_uid: str | None = None
        for depth in range(1, len(relative.parts)):
            sub = Path(*relative.parts[:depth])
            uid = node_uid(sub.as_posix() + "/")
            if sub not in folders_seen:
                folders_seen.add(sub)
                yield StagedNode(0, uid, parent_uid, "folder", sub.name)
            parent_uid = uid
        yield from _file_nodes(path, relative.as_posix(), parent_uid, plain_text=False, include_file_node=True)
        progress.advance(1)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
