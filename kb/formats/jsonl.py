"""JSONL node files: one `{"id", "parent", "title", "body", "kind", ...}` object a line."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kb.importing import ImportProblem, Progress, StagedNode
from kb.records import NodeRecord


class _NotJSONNumber(ValueError):
    """NaN, Infinity or a number too large for a float: Python's json accepts them, JSON does not."""


def _refuse_constant(name: str) -> float:
    raise _NotJSONNumber(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotJSONNumber(f"{text} is too large for a number")
    return value


def read_jsonl_lines(path: Path, progress: Progress, phase: str) -> Iterator[tuple[int, Any] | ImportProblem]:
    """Yield (line number, parsed JSON) per non-blank line, or a problem naming the line.

    Shared by every JSONL reader so a broken line reads the same everywhere. NaN and
    infinities are refused here: stored in a JSON column or written to an export
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
                yield number, json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
            except _NotJSONNumber as error:
                yield ImportProblem(str(path), number, "-", f"invalid JSON: {error}")
            except json.JSONDecodeError as error:
                yield ImportProblem(str(path), number, "-", f"invalid JSON: {error.msg} at column {error.colno}")
            except RecursionError:
                yield ImportProblem(str(path), number, "-", "invalid JSON: nested too deeply")


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
