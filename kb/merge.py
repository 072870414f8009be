"""Merging exports into a workspace: every record checked first, then all written in one transaction.

Identity is the uid. Library uids are minted per workspace (two machines that
import the same library get different ones), so a library is found by uid and
else by name; a node is (library, uid), and every imported node a label names
must exist in the receiving library, which catches a same-named but different
library. A library root's uid is derived from its library's uid, so a root is
never referenced by uid: a node directly under the root has `parent` null, and
a label naming the sending library's root is translated to the receiving one's.

Items are not created by a merge. They define the experiment (the D/D* split is
drawn by `navigator items import`, which also keeps D* gold out of the
workspace), so an item missing from the receiving workspace is a clear error
that says to import the items first. Exported items are checked against the
receiving workspace's (same question, options and split), so labels never
attach to a different question that happens to share a uid, and they make an
export a self-contained dataset (x and options beside the labels).

A merge validates every record of every file against the workspace and the
records before it, then writes everything in the same transaction, or reports
the first bad record as FILE:LINE: FIELD: REASON and writes nothing.

Longer than most modules (about 500 lines) on purpose: the checks and the writes share one
planner's state (the nodes and labels new in this merge), which splitting would pass across modules.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kb.assignments import Plan, plan_by_uid, store_plan
from kb.db import WorkspaceError, transaction
from kb.exchange import NODE_SQL, node_fields, rows_by_uid
from kb.formats.jsonl import first_validation_problem, read_jsonl_lines
from kb.importing import ImportProblem
from kb.labels import (
    CredenceLabel,
    LabelError,
    Prediction,
    checked_distribution,
    credence_by_uid,
    insert_credence,
    insert_predictions,
    prediction_by_uid,
)
from kb.libraries import Library, library_by_id
from kb.progress import NoProgress
from kb.records import (
    EXPORT_MODELS,
    EXPORT_TYPES,
    AssignmentExport,
    CredenceExport,
    ExportRecord,
    ItemExport,
    NodeExport,
    PredictionExport,
)
from kb.tree import NewNode, append_nodes


@dataclass
class MergeReport:
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EXPORT_TYPES, 0))
    present: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EXPORT_TYPES, 0))
    libraries: list[Library] = field(default_factory=list)  # those that got new nodes: update their search index


@dataclass(frozen=True)
class _Line:
    source: str
    line: int
    record: ExportRecord

    def problem(self, field_name: str, reason: str) -> ImportProblem:
        return ImportProblem(self.source, self.line, field_name, reason)


def read_export(path: Path) -> list[_Line]:
    """Parse and validate every line of one export file (no workspace needed)."""
    source = str(path)
    if not path.is_file():
        raise WorkspaceError(f"{path} is not a file")
    lines: list[_Line] = []
    for parsed in read_jsonl_lines(path, NoProgress(), f"reading {path.name}"):
        if isinstance(parsed, ImportProblem):
            raise parsed
        number, value = parsed
        if not isinstance(value, dict):
            raise ImportProblem(source, number, "-", f"expected a JSON object, got {type(value).__name__}")
        kind = value.get("type")
        model = EXPORT_MODELS.get(kind) if isinstance(kind, str) else None
        if model is None:
            raise ImportProblem(
                source, number, "type", f"unknown record type {kind!r} (expected {', '.join(EXPORT_TYPES)})"
            )
        try:
            lines.append(_Line(source, number, model.model_validate(value)))
        except ValidationError as error:
            raise first_validation_problem(source, number, error) from error
    return lines


def merge_files(conn: sqlite3.Connection, paths: Sequence[Path]) -> MergeReport:
    """Merge exports into the workspace: all of them or nothing, and merging again changes nothing."""
    lines = [line for path in paths for line in read_export(path)]
    with transaction(conn):
        planner = _Planner(conn)
        for line in lines:
            planner.check(line)
        return planner.apply()


@dataclass
class _Place:
    """What a checked record needs at write time, resolved against the receiving workspace."""

    line: _Line
    library: Library | None = None
    item_id: int | None = None
    probs: dict[str, float] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)  # cited (predictions) or statements (credences), translated
    trail: list[str] = field(default_factory=list)
    assigned: dict[int, tuple[str, ...]] = field(default_factory=dict)  # an assignment plan: item id → labelers


class _Planner:
    """Checks records in order against the workspace plus the records already checked, so a
    record may refer to anything earlier in the same merge; writes only once all pass."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.libraries: dict[tuple[str, str], Library] = {}
        self.new_nodes: dict[tuple[int, str], _Line] = {}
        self.new_labels: dict[str, _Line] = {}  # predictions and credences: uids are unique per table
        self.seen: dict[tuple[str, str], _Line] = {}  # (type, identity) of items and present records
        self.places: list[_Place] = []
        self.report = MergeReport()

    # -- checking ----------------------------------------------------------------------------------

    def check(self, line: _Line) -> None:
        record = line.record
        if isinstance(record, ItemExport):
            self._check_item(line, record)
        elif isinstance(record, NodeExport):
            self._check_node(line, record)
        elif isinstance(record, PredictionExport):
            self._check_prediction(line, record)
        elif isinstance(record, CredenceExport):
            self._check_credence(line, record)
        elif isinstance(record, AssignmentExport):
            self._check_assignment(line, record)
        else:  # pragma: no cover - EXPORT_MODELS names every model
            raise line.problem("type", f"cannot merge {record.type!r} records")

    def _library(self, line: _Line, uid: str, name: str) -> Library:
        key = (uid, name)
        if key not in self.libraries:
            row = self.conn.execute("SELECT id FROM libraries WHERE uid = ?", (uid,)).fetchone()
            row = row or self.conn.execute("SELECT id FROM libraries WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise line.problem(
                    "library", f"no library {name!r} (uid {uid!r}) in this workspace; import that library first"
                )
            self.libraries[key] = library_by_id(self.conn, int(row[0]))
        return self.libraries[key]

    def _translate(self, library: Library, source_library_uid: str, uid: str) -> str:
        """The sending library's root is the receiving library's root."""
        if uid == f"root_{source_library_uid}":
            return str(self.conn.execute("SELECT uid FROM nodes WHERE id = ?", (library.root_id,)).fetchone()[0])
        return uid

    def _node_known(self, library: Library, uid: str) -> bool:
        if (library.id, uid) in self.new_nodes:
            return True
        found = self.conn.execute("SELECT 1 FROM nodes WHERE library_id = ? AND uid = ?", (library.id, uid))
        return found.fetchone() is not None

    def _require_nodes(self, line: _Line, field_name: str, library: Library, uids: list[str]) -> None:
        for uid in uids:
            if not self._node_known(library, uid):
                raise line.problem(
                    field_name, f"node {uid!r} is neither in library {library.name!r} nor earlier in this merge"
                )

    def _compare(self, line: _Line, what: str, mine: dict[str, Any], theirs: dict[str, Any], where: str) -> None:
        for key, value in mine.items():
            if theirs[key] != value:
                raise line.problem(
                    key,
                    f"conflict: {what} already exists {where} with a different {key}"
                    f" ({theirs[key]!r}, not {value!r}); nothing was merged",
                )

    def _present(self, line: _Line, kind: str, identity: str, mine: dict[str, Any], row: Any) -> bool:
        """True when the record is already in the workspace or earlier in this merge (and equal)."""
        earlier = self.seen.get((kind, identity))
        if earlier is not None:
            self._compare(line, f"{kind} {line.record.id!r}", mine, self._comparable(earlier), _at(earlier))
            self.report.present[kind] += 1
            return True
        if row is not None:
            self._compare(line, f"{kind} {line.record.id!r}", mine, row, "in this workspace")
            self.report.present[kind] += 1
            self.seen[(kind, identity)] = line
            return True
        self.seen[(kind, identity)] = line
        return False

    def _comparable(self, line: _Line) -> dict[str, Any]:
        """The fields that make two records with one uid the same record, as a merge stores them."""
        record = line.record
        if isinstance(record, ItemExport):
            return {"task": record.task, "x": record.x, "options": record.options, "split": record.split}
        if isinstance(record, AssignmentExport):
            return {
                "split": record.split,
                "labelers": record.labelers,
                "overlap": record.overlap,
                "seed": record.seed,
                "created_by": record.labeler,
                "created_at": record.created_at,
                "assignments": {entry.item: sorted(entry.labelers) for entry in record.assignments},
            }
        if isinstance(record, NodeExport):
            return {
                "parent": record.parent,
                "kind": record.kind,
                "title": record.title,
                "body": record.body,
                "origin": record.origin,
                "replaces": record.replaces,
                "provenance": record.provenance,
                "extra": record.extra,
                "created_at": record.created_at,
            }
        assert isinstance(record, PredictionExport | CredenceExport)
        library = self._library(line, record.library, record.library_name)
        common = {
            "library": library.name,
            "labeler": record.labeler,
            "source": record.source,
            "seconds": record.seconds,
            "note": record.note,
            "supersedes": record.supersedes,
            "retracted": record.retracted,
            "created_at": record.created_at,
        }
        translate = [self._translate(library, record.library, uid) for uid in self._uids(record)]
        if isinstance(record, PredictionExport):
            return {
                "item": record.item,
                "probs": record.probs,
                "cited": translate,
                "trail": [self._translate(library, record.library, uid) for uid in record.trail],
                "adjudication": record.adjudication,
                **common,
            }
        return {"scope": record.scope, "statements": sorted(translate), "p": record.p, **common}

    @staticmethod
    def _uids(record: PredictionExport | CredenceExport) -> list[str]:
        return record.cited if isinstance(record, PredictionExport) else record.statements

    def _check_item(self, line: _Line, record: ItemExport) -> None:
        row = self.conn.execute("SELECT task, x, options, split FROM items WHERE uid = ?", (record.id,)).fetchone()
        if row is None and ("item", record.id) not in self.seen:
            raise line.problem(
                "id",
                f"item {record.id!r} is not in this workspace; a merge adds labels, not items:"
                " import the items first (navigator items import)",
            )
        stored = None if row is None else {**dict(row), "options": json.loads(row["options"])}
        self._present(line, "item", record.id, self._comparable(line), stored)

    def _check_node(self, line: _Line, record: NodeExport) -> None:
        library = self._library(line, record.library, record.library_name)
        row = self.conn.execute(NODE_SQL + " WHERE n.library_id = ? AND n.uid = ?", (library.id, record.id)).fetchone()
        if row is None and (library.id, record.id) not in self.new_nodes:
            if record.parent is not None and not self._node_known(library, record.parent):
                raise line.problem(
                    "parent",
                    f"parent {record.parent!r} is neither in library {library.name!r} nor earlier in this merge",
                )
            if record.replaces is not None:
                self._require_nodes(line, "replaces", library, [record.replaces])
        stored = None if row is None else node_fields(row)
        if not self._present(line, "node", f"{library.id} {record.id}", self._comparable(line), stored):
            self.new_nodes[(library.id, record.id)] = line
            self.places.append(_Place(line, library=library))

    def _check_prediction(self, line: _Line, record: PredictionExport) -> None:
        item = self.conn.execute("SELECT id, options FROM items WHERE uid = ?", (record.item,)).fetchone()
        if item is None:
            raise line.problem(
                "item",
                f"item {record.item!r} is not in this workspace; import the items first (navigator items import)",
            )
        try:
            probs = checked_distribution(record.probs, json.loads(item["options"]))
        except LabelError as error:
            raise line.problem("probs", str(error)) from error
        library = self._library(line, record.library, record.library_name)
        cited = [self._translate(library, record.library, uid) for uid in record.cited]
        self._require_nodes(line, "cited", library, cited)
        if self._present_label(line, record):
            return
        trail = [self._translate(library, record.library, uid) for uid in record.trail]
        self.new_labels[record.id] = line
        self.places.append(
            _Place(line, library=library, item_id=int(item["id"]), probs=probs, nodes=cited, trail=trail)
        )

    def _check_credence(self, line: _Line, record: CredenceExport) -> None:
        library = self._library(line, record.library, record.library_name)
        statements = sorted(self._translate(library, record.library, uid) for uid in record.statements)
        self._require_nodes(line, "statements", library, statements)
        if self._present_label(line, record):
            return
        self.new_labels[record.id] = line
        self.places.append(_Place(line, library=library, nodes=statements))

    def _check_assignment(self, line: _Line, record: AssignmentExport) -> None:
        """Every item of the plan must be here, in the plan's split; a plan already here must be equal."""
        found = {
            row["uid"]: row
            for row in rows_by_uid(
                self.conn, "SELECT id, uid, split FROM items WHERE uid IN ({})", {e.item for e in record.assignments}
            )
        }
        assigned: dict[int, tuple[str, ...]] = {}
        for entry in record.assignments:
            row = found.get(entry.item)
            if row is None:
                raise line.problem(
                    "assignments",
                    f"item {entry.item!r} is not in this workspace; a merge adds labels, not items:"
                    " import the items first (navigator items import)",
                )
            if row["split"] != record.split:
                raise line.problem(
                    "assignments", f"item {entry.item!r} is a {row['split']} item here, not {record.split}"
                )
            assigned[int(row["id"])] = tuple(sorted(entry.labelers))
        stored = plan_by_uid(self.conn, record.id)
        theirs = None if stored is None else self._comparable_plan(stored)
        if not self._present(line, "assignment", record.id, self._comparable(line), theirs):
            self.places.append(_Place(line, assigned=assigned))

    @staticmethod
    def _comparable_plan(plan: Plan) -> dict[str, Any]:
        return {
            "split": plan.split,
            "labelers": list(plan.labelers),
            "overlap": plan.overlap,
            "seed": plan.seed,
            "created_by": plan.created_by,
            "created_at": plan.created_at,
            "assignments": {uid: list(assigned) for uid, assigned in plan.items.items()},
        }

    def _present_label(self, line: _Line, record: PredictionExport | CredenceExport) -> bool:
        """Already here (equal, else a conflict), or new; a new row's `supersedes` must resolve."""
        stored = self._stored_label(record.type, record.id)
        if self._present(line, record.type, record.id, self._comparable(line), stored):
            return True
        if record.supersedes is not None:
            earlier = self.new_labels.get(record.supersedes)
            exists = self._stored_label(record.type, record.supersedes) is not None
            if not exists and (earlier is None or earlier.record.type != record.type):
                raise line.problem(
                    "supersedes",
                    f"{record.type} {record.supersedes!r} is neither in this workspace nor earlier in this merge",
                )
        return False

    def _stored_label(self, kind: str, uid: str) -> dict[str, Any] | None:
        """A stored label row in the shape of `_comparable`, or None when this workspace has no such label."""
        label = prediction_by_uid(self.conn, uid) if kind == "prediction" else credence_by_uid(self.conn, uid)
        if label is None:
            return None
        common = {
            "library": library_by_id(self.conn, label.library_id).name,
            "labeler": label.labeler,
            "source": label.source,
            "seconds": label.seconds,
            "note": label.note,
            "supersedes": label.supersedes,
            "retracted": label.retracted,
            "created_at": label.created_at,
        }
        if isinstance(label, Prediction):
            item = self.conn.execute("SELECT uid FROM items WHERE id = ?", (label.item_id,)).fetchone()
            return {
                "item": item[0],
                "probs": label.probs,
                "cited": label.cited,
                "trail": label.trail,
                "adjudication": label.adjudication,
                **common,
            }
        return {"scope": label.scope, "statements": list(label.statements), "p": label.p, **common}

    # -- writing -----------------------------------------------------------------------------------

    def apply(self) -> MergeReport:
        grown: dict[int, Library] = {}
        for place in self.places:
            record = place.line.record
            if isinstance(record, AssignmentExport):
                store_plan(
                    self.conn,
                    uid=record.id,
                    split=record.split,
                    labelers=record.labelers,
                    overlap=record.overlap,
                    seed=record.seed,
                    created_by=record.labeler,
                    created_at=record.created_at,
                    items=place.assigned,
                )
                self.report.added[record.type] += 1
                continue
            assert place.library is not None
            if isinstance(record, NodeExport):
                self._insert_node(place.library, record)
                grown[place.library.id] = place.library
            elif isinstance(record, PredictionExport):
                self._insert_prediction(place, record)
            elif isinstance(record, CredenceExport):
                self._insert_credence(place, record)
            self.report.added[record.type] += 1
        self.report.libraries = list(grown.values())
        return self.report

    def _insert_node(self, library: Library, record: NodeExport) -> None:
        """Appended as kb.tree appends every node, under its parent or the library's root."""
        if record.parent is None:
            parent = self.conn.execute("SELECT id, depth FROM nodes WHERE id = ?", (library.root_id,)).fetchone()
        else:
            parent = self.conn.execute(
                "SELECT id, depth FROM nodes WHERE library_id = ? AND uid = ?", (library.id, record.parent)
            ).fetchone()
        replaces = None
        if record.replaces is not None:
            replaces = self.conn.execute(
                "SELECT id FROM nodes WHERE library_id = ? AND uid = ?", (library.id, record.replaces)
            ).fetchone()[0]
        row = NewNode(
            record.id,
            record.kind,
            record.title,
            record.body,
            record.origin,
            record.provenance,
            record.created_at,
            review=record.review,
            replaces_id=replaces,
            extra=record.extra,
        )
        append_nodes(self.conn, parent["id"], [row])
        if replaces is not None:
            # As in an edit made here: the original is rejected unless someone already reviewed it.
            self.conn.execute("UPDATE nodes SET review = 'rejected' WHERE id = ? AND review = 'none'", (replaces,))

    def _insert_prediction(self, place: _Place, record: PredictionExport) -> None:
        assert place.library is not None and place.item_id is not None
        label = Prediction(
            record.id,
            place.item_id,
            place.library.id,
            record.labeler,
            place.probs,
            place.nodes,
            place.trail,
            record.seconds,
            record.note,
            record.created_at,
            record.source,
            record.adjudication,
            record.supersedes,
            record.retracted,
        )
        insert_predictions(self.conn, [label])

    def _insert_credence(self, place: _Place, record: CredenceExport) -> None:
        assert place.library is not None
        label = CredenceLabel(
            record.id,
            place.library.id,
            record.labeler,
            tuple(place.nodes),
            record.p,
            record.created_at,
            record.source,
            record.seconds,
            record.note,
            record.supersedes,
            record.retracted,
        )
        insert_credence(self.conn, label)


def _at(line: _Line) -> str:
    return f"at {line.source}:{line.line}"
