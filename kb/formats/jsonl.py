"""JSONL node files: one `{"id", "parent", "title", "body", "kind", ...}` object a line."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kb.importing import ImportProblem, StagedNode
from kb.progress import Progress
from kb.records import NodeRecord


def first_non_finite(value: Any) -> tuple[str, float] | None:
    """The path (as pydantic names fields: `probs.yes`, `cited.0`) and value of the first NaN or
    infinity in parsed JSON. Walked without recursion: the input may be nested as deep as json allows."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, current = stack.pop()
        if isinstance(current, float) and not math.isfinite(current):
            return path or "-", current
        if isinstance(current, dict):
            stack.extend((f"{path}.{key}" if path else str(key), item) for key, item in reversed(current.items()))
        elif isinstance(current, list):
            stack.extend(
                (f"{path}.{index}" if path else str(index), item) for index, item in reversed(list(enumerate(current)))
            )
    return None


def read_jsonl_lines(path: Path, progress: Progress, phase: str) -> Iterator[tuple[int, Any] | ImportProblem]:
    """Yield (line number, parsed JSON) per non-blank line, or a problem naming the line.

    Shared by every JSONL reader so a broken line reads the same everywhere. NaN and
    infinities (Python's json reads `NaN`, `Infinity` and `1e999`; JSON has none of them)
    are refused here, naming the field: stored in a JSON column or written to an export
    they would make the workspace's own output unreadable by strict JSON readers.
    """
    progress.start(phase, path.stat().st_size)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            progress.advance(len(raw))
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield ImportProblem(str(path), number, "-", f"not valid UTF-8 (byte {error.start})")
                continue
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                yield ImportProblem(str(path), number, "-", f"invalid JSON: {error.msg} at column {error.colno}")
                continue
            except RecursionError:
                yield ImportProblem(str(path), number, "-", "invalid JSON: nested too deeply")
                continue
            bad = first_non_finite(value)
            if bad is None:
                yield number, value
            else:
                shown = "NaN" if math.isnan(bad[1]) else ("-" if bad[1] < 0 else "") + "Infinity"
                yield ImportProblem(str(path), number, bad[0], f"must be a finite number, got {shown}")


def first_validation_problem(source: str, line: int, error: ValidationError) -> ImportProblem:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "-"
    return ImportProblem(source, line, field, first["msg"])


def read_jsonl_nodes(path: Path, progress: Progress) -> Iterator[StagedNode | ImportProblem]:
    for parsed in read_jsonl_lines(path, progress, f"reading {path.name}"):
        if isinstance(parsed, ImportProblem):
            yield parsed
            continue
        number, value = parsed
        if not isinstance(value, dict):
            yield ImportProblem(str(path), number, "-", f"expected a JSON object, got {type(value).__name__}")
            continue
        try:
            record = NodeRecord.model_validate(value)
        except ValidationError as error:
            yield first_validation_problem(str(path), number, error)
            continue
        yield StagedNode(
            line=number,
            uid=record.id,
            parent_uid=record.parent,
            kind=record.kind,
            title=record.title,
            body=record.body,
            extra=json.dumps(record.extra_fields(), ensure_ascii=False),
        )
