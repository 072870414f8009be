"""Export and merge of labels: how labelers' work travels between workspaces.

An export is JSONL, one record a line (models in kb.records, JSON Schemas in
kb/schemas). It holds every prediction and credence row, including superseded
and retraction rows, so undo history survives a merge; the nodes people or the
LLM made that the labels cite, rate or passed through (with their non-imported
ancestors, so they can be placed); and the items the predictions answer.

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

Records come in an order a merge applies in one pass: items, nodes (by
internal id, which is parent-first and original-before-edit because nodes are
append-only), then predictions and credences (by id, so a superseding row
follows the row it supersedes and the newest stays newest after a merge), then
assignment plans (kb.assignments), each whole in one record. Every plan is
exported, whatever --labeler says: plans are the team's, a few hundred rows,
and merging a plan that is already there changes nothing. An adjudication
(kb.labels) is a prediction record with `adjudication: true`.

A merge validates every record of every file against the workspace and the
records before it, then writes everything in the same transaction, or reports
the first bad record as FILE:LINE: FIELD: REASON and writes nothing.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from kb.assignments import Plan, all_plans, plan_by_uid, store_plan
from kb.db import WorkspaceError, transaction
from kb.formats.jsonl import first_validation_problem, read_jsonl_lines
from kb.importing import ImportProblem, NoProgress
from kb.labels import (
    Credence,
    LabelError,
    Prediction,
    checked_distribution,
    credence_by_uid,
    credence_history,
    insert_credence,
    insert_predictions,
    prediction_by_uid,
    prediction_history,
)
from kb.libraries import Library, library_by_id, list_libraries
from kb.records import (
    EXPORT_MODELS,
    EXPORT_TYPES,
    SCHEMA_VERSION,
    AssignmentExport,
    CredenceExport,
    ExportRecord,
    ItemExport,
    NodeExport,
    PredictionExport,
)
from kb.tree import NewNode, append_nodes

SCHEMA_DIR = Path(__file__).parent / "schemas"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Who made a node is not a column. Provenance says it: `labeler`, or `edited_by` for a human edit
# (kb.review), or `llm_call`, the logged LLM call (models.llm.unpack, models.llm.ask) that names its labeler.
_CREATOR = (
    "COALESCE(json_extract(n.provenance, '$.labeler'), json_extract(n.provenance, '$.edited_by'),"
    " (SELECT c.labeler FROM llm_calls c WHERE c.uid = json_extract(n.provenance, '$.llm_call')))"
)
_NODE_SQL = (
    "SELECT n.id, n.uid, n.library_id, n.parent_id, n.replaces_id, n.kind, n.title, n.body, n.origin, n.review,"
    " n.provenance, n.extra, n.created_at, p.uid AS parent_uid, p.parent_id IS NULL AS parent_is_root,"
    f" r.uid AS replaces_uid, l.uid AS library_uid, l.name AS library_name, {_CREATOR} AS creator"
    " FROM nodes n JOIN libraries l ON l.id = n.library_id"
    " LEFT JOIN nodes p ON p.id = n.parent_id LEFT JOIN nodes r ON r.id = n.replaces_id"
)


# -- export ------------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EXPORT_TYPES, 0))


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so an export taken while the app commits labels is consistent."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def export_labels(conn: sqlite3.Connection, out: TextIO, *, labeler: str | None = None) -> ExportReport:
    """Write the labels (of one labeler, or everyone's) and what they refer to as JSONL to `out`."""
    return write_export(collect_export(conn, labeler=labeler), out)


def collect_export(conn: sqlite3.Connection, *, labeler: str | None = None) -> list[ExportRecord]:
    """Every record of an export, in merge order, read from one snapshot and checked by its model.

    Separate from writing so a caller can fail before it opens (and truncates) the output file.
    """
    with _snapshot(conn):
        predictions = prediction_history(conn, labeler=labeler)
        credences = credence_history(conn, labeler=labeler)  # model credences stay in their workspace
        libraries = {library.id: library for library in list_libraries(conn)}
        nodes = _exported_nodes(conn, predictions, credences, labeler)
        plans = all_plans(conn)
        planned = {uid for plan in plans for uid in plan.items}
        item_ids = {prediction.item_id for prediction in predictions}
        item_ids |= {row[0] for row in _rows_by_uid(conn, "SELECT id FROM items WHERE uid IN ({})", planned)}
        items = [conn.execute("SELECT * FROM items WHERE id = ?", (i,)).fetchone() for i in sorted(item_ids)]
    item_uids = {row["id"]: row["uid"] for row in items}
    records: list[ExportRecord] = []
    records += [_checked(ItemExport, _item_fields(row)) for row in items]
    records += [_checked(NodeExport, _node_fields(row)) for row in nodes]
    records += [
        _checked(PredictionExport, _prediction_fields(p, item_uids[p.item_id], libraries[p.library_id]))
        for p in predictions
    ]
    records += [_checked(CredenceExport, _credence_fields(c, libraries[c.library_id])) for c in credences]
    records += [_checked(AssignmentExport, _assignment_fields(plan)) for plan in plans]
    return records


def _rows_by_uid(conn: sqlite3.Connection, sql: str, uids: set[str]) -> list[sqlite3.Row]:
    """`sql` with its `IN ({})` filled for every uid, 500 at a time (SQLite's parameter limit)."""
    names = sorted(uids)
    rows: list[sqlite3.Row] = []
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        rows += conn.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
    return rows


def write_export(records: list[ExportRecord], out: TextIO) -> ExportReport:
    report = ExportReport()
    for record in records:
        out.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False, allow_nan=False) + "\n")
        report.written[record.type] += 1
    return report


def _exported_nodes(
    conn: sqlite3.Connection, predictions: list[Prediction], credences: list[Credence], labeler: str | None
) -> list[sqlite3.Row]:
    """Non-imported nodes the labeler made or the labels name, closed under non-imported
    parents and edited originals so that each one can be placed by a merge."""
    if labeler is None:
        chosen = {row["id"]: row for row in conn.execute(_NODE_SQL + " WHERE n.origin != 'import'")}
    else:
        chosen = {
            row["id"]: row
            for row in conn.execute(_NODE_SQL + f" WHERE n.origin != 'import' AND {_CREATOR} = ?", (labeler,))
        }
    named: set[tuple[int, str]] = set()
    for prediction in predictions:
        named.update((prediction.library_id, uid) for uid in prediction.cited + prediction.trail)
    for credence in credences:
        named.update((credence.library_id, uid) for uid in credence.statements)
    for library_id, uid in named:
        found = conn.execute(
            _NODE_SQL + " WHERE n.library_id = ? AND n.uid = ? AND n.origin != 'import'", (library_id, uid)
        ).fetchone()
        if found is not None:
            chosen[found["id"]] = found
    pending = list(chosen.values())
    while pending:
        row = pending.pop()
        for needed in (row["parent_id"], row["replaces_id"]):
            if needed is None or needed in chosen:
                continue
            found = conn.execute(_NODE_SQL + " WHERE n.id = ? AND n.origin != 'import'", (needed,)).fetchone()
            if found is not None:
                chosen[needed] = found
                pending.append(found)
    return [chosen[node_id] for node_id in sorted(chosen)]


def _checked(model: type[ExportRecord], values: dict[str, Any]) -> ExportRecord:
    """Every exported line goes through its model, so an export always merges."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "-"
        raise WorkspaceError(
            f"cannot export {values['type']} {values['id']!r}: {where}: {first['msg']} (the workspace holds a bad row)"
        ) from error


def _base(kind: str, uid: str, labeler: str | None, created_at: str) -> dict[str, Any]:
    return {"type": kind, "id": uid, "schema_version": SCHEMA_VERSION, "labeler": labeler, "created_at": created_at}


def _item_fields(row: sqlite3.Row) -> dict[str, Any]:
    return {
        **_base("item", row["uid"], None, row["created_at"]),
        "task": row["task"],
        "x": row["x"],
        "options": json.loads(row["options"]),
        "split": row["split"],
    }


def _node_fields(row: sqlite3.Row) -> dict[str, Any]:
    creator = row["creator"]
    return {
        **_base("node", row["uid"], creator if isinstance(creator, str) and creator else None, row["created_at"]),
        "library": row["library_uid"],
        "library_name": row["library_name"],
        "parent": None if row["parent_is_root"] else row["parent_uid"],
        "kind": row["kind"],
        "title": row["title"],
        "body": row["body"],
        "origin": row["origin"],
        "review": row["review"],
        "replaces": row["replaces_uid"],
        "provenance": json.loads(row["provenance"] or "{}"),
        "extra": json.loads(row["extra"] or "{}"),
    }


def _label_fields(kind: str, label: Prediction | Credence, library: Library) -> dict[str, Any]:
    return {
        **_base(kind, label.uid, label.labeler, label.created_at),
        "library": library.uid,
        "library_name": library.name,
        "source": label.source,
        "seconds": label.seconds,
        "note": label.note,
        "supersedes": label.supersedes,
        "retracted": label.retracted,
    }


def _prediction_fields(prediction: Prediction, item_uid: str, library: Library) -> dict[str, Any]:
    return {
        **_label_fields("prediction", prediction, library),
        "item": item_uid,
        "probs": prediction.probs,
        "cited": prediction.cited,
        "trail": prediction.trail,
        "adjudication": prediction.adjudication,
    }


def _credence_fields(credence: Credence, library: Library) -> dict[str, Any]:
    return {
        **_label_fields("credence", credence, library),
        "scope": credence.scope,
        "statements": list(credence.statements),
        "p": credence.p,
    }


def _assignment_fields(plan: Plan) -> dict[str, Any]:
    return {
        "type": "assignment",
        "id": plan.uid,
        "schema_version": SCHEMA_VERSION,
        "labeler": plan.created_by,
        "created_at": plan.created_at,
        "split": plan.split,
        "labelers": list(plan.labelers),
        "overlap": plan.overlap,
        "seed": plan.seed,
        "assignments": [{"item": uid, "labelers": list(assigned)} for uid, assigned in plan.items.items()],
    }


# -- merge -------------------------------------------------------------------------------------------


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
        row = self.conn.execute(_NODE_SQL + " WHERE n.library_id = ? AND n.uid = ?", (library.id, record.id)).fetchone()
        if row is None and (library.id, record.id) not in self.new_nodes:
            if record.parent is not None and not self._node_known(library, record.parent):
                raise line.problem(
                    "parent",
                    f"parent {record.parent!r} is neither in library {library.name!r} nor earlier in this merge",
                )
            if record.replaces is not None:
                self._require_nodes(line, "replaces", library, [record.replaces])
        stored = None if row is None else _node_fields(row)
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
            for row in _rows_by_uid(
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
        label = Credence(
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


# -- JSON Schemas ------------------------------------------------------------------------------------


def schema_documents() -> dict[str, dict[str, Any]]:
    """record type → its JSON Schema, generated from the pydantic model."""
    return {
        kind: {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema()} for kind, model in EXPORT_MODELS.items()
    }


def schema_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Regenerate kb/schemas/<type>.schema.json (run `python -m kb.exchange` after changing a model)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, document in schema_documents().items():
        path = directory / f"{kind}.schema.json"
        path.write_text(schema_text(document), encoding="utf-8")
        written.append(path)
    return written


def shipped_schema(kind: str) -> dict[str, Any]:
    """The schema file installed with the package (what outside tools are given)."""
    text = (resources.files("kb") / "schemas" / f"{kind}.schema.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


if __name__ == "__main__":
    for written_path in write_schemas():
        sys.stdout.write(f"wrote {written_path}\n")
