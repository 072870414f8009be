"""Importing task items (JSONL): D keeps its gold; D* is split at random into validation and
prediction, and its gold goes to an answer key file beside the workspace that labelers never see."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from kb.atomic_file import StagedFile
from kb.db import WorkspaceError, in_chunks, marks, transaction, utc_now
from kb.formats.jsonl import first_validation_problem, read_jsonl_lines
from kb.importing import ImportProblem
from kb.items import SPLITS
from kb.progress import NoProgress, Progress
from kb.records import AnswerKeyRecord, ItemRecord


@dataclass
class ItemsReport:
    source: str
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    answer_key: Path | None = None
    answers_written: int = 0
    skipped: int = 0
    problems: list[ImportProblem] = field(default_factory=list)


def read_item_records(
    path: Path, *, skip_bad: bool = False, progress: Progress | None = None
) -> tuple[list[tuple[int, ItemRecord]], list[ImportProblem]]:
    """Parse every line first: items are few enough to hold, and nothing is written
    until the whole file has been read."""
    records: list[tuple[int, ItemRecord]] = []
    problems: list[ImportProblem] = []
    seen: dict[str, int] = {}
    for parsed in read_jsonl_lines(path, progress or NoProgress(), f"reading {path.name}"):
        problem: ImportProblem | None = None
        if isinstance(parsed, ImportProblem):
            problem = parsed
        else:
            number, value = parsed
            if not isinstance(value, dict):
                problem = ImportProblem(str(path), number, "-", f"expected a JSON object, got {type(value).__name__}")
            else:
                try:
                    record = ItemRecord.model_validate(value)
                except ValidationError as error:
                    problem = first_validation_problem(str(path), number, error)
                else:
                    if record.id in seen:
                        problem = ImportProblem(
                            str(path), number, "id", f"duplicate id {record.id!r} (first on line {seen[record.id]})"
                        )
                    else:
                        seen[record.id] = number
                        records.append((number, record))
        if problem is not None:
            if not skip_bad:
                raise problem
            problems.append(problem)
    if not records and not problems:
        raise ImportProblem(str(path), 0, "-", "no items found: the file is empty")
    return records, problems


def assign_splits(ids: list[str], *, dstar: bool, validation_fraction: float, seed: int) -> dict[str, str]:
    """D is all train. D* is shuffled with a seeded generator (order-independent:
    ids are sorted first) and its first fraction becomes validation."""
    if not dstar:
        return dict.fromkeys(ids, "train")
    if not 0.0 < validation_fraction < 1.0:
        raise WorkspaceError(f"--validation-fraction must be between 0 and 1, got {validation_fraction}")
    shuffled = sorted(ids)
    random.Random(seed).shuffle(shuffled)
    cut = round(len(shuffled) * validation_fraction)
    return {item_id: ("validation" if index < cut else "prediction") for index, item_id in enumerate(shuffled)}


def add_items(
    conn: sqlite3.Connection,
    records: list[tuple[int, ItemRecord]],
    *,
    source: str,
    dstar: bool,
    answers: Path | None = None,
    validation_fraction: float = 0.5,
    seed: int = 0,
    skip_bad: bool = False,
) -> ItemsReport:
    report = ItemsReport(source=source)
    kept = _new_records(conn, records, report, skip_bad)
    splits = assign_splits(
        [record.id for _, record in kept], dstar=dstar, validation_fraction=validation_fraction, seed=seed
    )
    gold = [
        AnswerKeyRecord(id=record.id, split=splits[record.id], y=record.y)
        for _, record in kept
        if dstar and record.y is not None
    ]
    if gold and answers is None:
        raise WorkspaceError("these D* items carry gold answers; name an answer key file to keep them in (--answers)")
    staged_key = _stage_answer_key(answers, gold) if gold and answers else None
    now = utc_now()
    try:
        with transaction(conn):
            conn.executemany(
                "INSERT INTO items (uid, task, x, options, split, y, extra, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        record.id,
                        record.task,
                        record.x,
                        json.dumps(record.options, ensure_ascii=False),
                        splits[record.id],
                        None if dstar else record.y,
                        json.dumps(record.extra_fields(), ensure_ascii=False),
                        now,
                    )
                    for _, record in kept
                ],
            )
    except BaseException:
        if staged_key:
            staged_key.discard()
        raise
    if staged_key and answers:
        staged_key.commit()
        report.answer_key, report.answers_written = answers, len(gold)
    for _, record in kept:
        report.added[splits[record.id]] += 1
    return report


def _new_records(
    conn: sqlite3.Connection, records: list[tuple[int, ItemRecord]], report: ItemsReport, skip_bad: bool
) -> list[tuple[int, ItemRecord]]:
    """The records whose id this workspace does not hold yet; a repeat fails, or (skip_bad) is counted."""
    existing = _existing_ids(conn, [record.id for _, record in records])
    kept = []
    for line, record in records:
        if record.id in existing:
            problem = ImportProblem(report.source, line, "id", f"item {record.id!r} already exists in this workspace")
            if not skip_bad:
                raise problem
            report.skipped += 1
            report.problems.append(problem)
        else:
            kept.append((line, record))
    return kept


def _existing_ids(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in in_chunks(ids):
        found.update(row[0] for row in conn.execute(f"SELECT uid FROM items WHERE uid IN ({marks(len(chunk))})", chunk))
    return found


def answer_key_path(workspace: Path) -> Path:
    """Where D*'s gold goes when items are imported for a workspace: beside it, never inside it."""
    return workspace.with_name(workspace.name + ".answers.jsonl")


def read_answer_key(path: Path) -> dict[str, AnswerKeyRecord]:
    key: dict[str, AnswerKeyRecord] = {}
    if not path.exists():
        return key
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                record = AnswerKeyRecord.model_validate_json(line)
            except ValidationError as error:
                raise first_validation_problem(str(path), number, error) from error
            key[record.id] = record
    return key


def _stage_answer_key(path: Path, gold: list[AnswerKeyRecord]) -> StagedFile:
    """Write old and new answers to a temporary file beside the key; renamed into
    place only after the items commit, so a failed import leaves the key as it was."""
    merged = read_answer_key(path)
    for record in gold:
        if record.id in merged and merged[record.id].y != record.y:
            raise WorkspaceError(f"{path} already holds a different answer for item {record.id!r}")
        merged[record.id] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = StagedFile(path)
    staged.write_text("".join(record.model_dump_json() + "\n" for record in merged.values()))
    return staged


def import_items(
    conn: sqlite3.Connection,
    path: Path,
    *,
    dstar: bool,
    answers: Path | None = None,
    validation_fraction: float = 0.5,
    seed: int = 0,
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> ItemsReport:
    records, problems = read_item_records(path, skip_bad=skip_bad, progress=progress)
    report = add_items(
        conn,
        records,
        source=str(path),
        dstar=dstar,
        answers=answers,
        validation_fraction=validation_fraction,
        seed=seed,
        skip_bad=skip_bad,
    )
    report.skipped += len(problems)
    report.problems = problems + report.problems
    return report
