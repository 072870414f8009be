"""The export's records: what a labels export holds and in which order (kb/merge.py applies them).

An export is JSONL, one record a line (models in kb.records, JSON Schemas in
kb/schemas). It holds every prediction and credence row, including superseded
and retraction rows, so undo history survives a merge; the nodes people or the
LLM made that the labels cite, rate or passed through (with their non-imported
ancestors, so they can be placed); and the items the predictions answer.

Records come in an order a merge applies in one pass: items, nodes (by
internal id, which is parent-first and original-before-edit because nodes are
append-only), then predictions and credences (by id, so a superseding row
follows the row it supersedes and the newest stays newest after a merge), then
assignment plans (kb.assignments), each whole in one record. Every plan is
exported, whatever --labeler says: plans are the team's, a few hundred rows,
and merging a plan that is already there changes nothing. An adjudication
(kb.labels) is a prediction record with `adjudication: true`.

A merge (kb.merge) reads these records back.

A label whose stored values cannot be read (kb.labels `damaged_labels`) stops the export before
anything is written: carried on, a damaged citation list would arrive as `"cited": []`, a label
that looks whole.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from kb.assignments import Plan, all_plans
from kb.db import WorkspaceError, in_chunks, marks
from kb.labels import (
    CredenceLabel,
    DamagedLabelError,
    Prediction,
    credence_history,
    damaged_labels,
    prediction_history,
)
from kb.libraries import Library, list_libraries
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

SCHEMA_DIR = Path(__file__).parent / "schemas"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SHOWN_DAMAGED = 3  # damaged label rows named in an export's refusal (the doctor lists them all)

# Who made a node is not a column. Provenance says it: `labeler`, or `edited_by` for a human edit
# (kb.review), or `llm_call`, the logged LLM call (models.llm.unpack, models.llm.ask) that names its labeler.
_CREATOR = (
    "COALESCE(json_extract(n.provenance, '$.labeler'), json_extract(n.provenance, '$.edited_by'),"
    " (SELECT c.labeler FROM llm_calls c WHERE c.uid = json_extract(n.provenance, '$.llm_call')))"
)
NODE_SQL = (
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
        _refuse_damaged_labels(conn, labeler)
        predictions = prediction_history(conn, labeler=labeler)
        credences = credence_history(conn, labeler=labeler)  # model credences stay in their workspace
        libraries = {library.id: library for library in list_libraries(conn)}
        nodes = _exported_nodes(conn, predictions, credences, labeler)
        plans = all_plans(conn)
        planned = {uid for plan in plans for uid in plan.items}
        item_ids = {prediction.item_id for prediction in predictions}
        item_ids |= {row[0] for row in rows_by_uid(conn, "SELECT id FROM items WHERE uid IN ({})", planned)}
        items = [conn.execute("SELECT * FROM items WHERE id = ?", (i,)).fetchone() for i in sorted(item_ids)]
    item_uids = {row["id"]: row["uid"] for row in items}
    records: list[ExportRecord] = []
    records += [_checked(ItemExport, _item_fields(row)) for row in items]
    records += [_checked(NodeExport, node_fields(row)) for row in nodes]
    records += [
        _checked(PredictionExport, _prediction_fields(p, item_uids[p.item_id], libraries[p.library_id]))
        for p in predictions
    ]
    records += [_checked(CredenceExport, _credence_fields(c, libraries[c.library_id])) for c in credences]
    records += [_checked(AssignmentExport, _assignment_fields(plan)) for plan in plans]
    return records


def _refuse_damaged_labels(conn: sqlite3.Connection, labeler: str | None) -> None:
    """Raise DamagedLabelError naming the file and the first damaged rows the export would carry.

    A reader takes a damaged citation list as none, so exported it would arrive elsewhere as
    `"cited": []`, a label that looks whole; a researcher who trusts an export wants it refused
    instead, before any output is opened, so nothing at all is written.
    """
    damaged = damaged_labels(conn, labeler=labeler, people_only=True)
    if not damaged:
        return
    shown = "; ".join(str(label) for label in damaged[:SHOWN_DAMAGED])
    more = f"; and {len(damaged) - SHOWN_DAMAGED} more" if len(damaged) > SHOWN_DAMAGED else ""
    workspace = _workspace_file(conn)
    raise DamagedLabelError(
        f"cannot export {workspace or 'the workspace'}: {shown}{more}",
        "nothing was written; `navigator doctor"
        + (f" --workspace {shlex.quote(workspace)}" if workspace else "")
        + "` lists every damaged label and what to do",
    )


def _workspace_file(conn: sqlite3.Connection) -> str:
    """The file behind `conn` ("" in memory), so an error names the workspace it is about."""
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return str(row[2] or "")
    return ""


def rows_by_uid(conn: sqlite3.Connection, sql: str, uids: set[str]) -> list[sqlite3.Row]:
    """`sql` with its `IN ({})` filled for every uid, a chunk at a time (kb.db.in_chunks)."""
    rows: list[sqlite3.Row] = []
    for chunk in in_chunks(sorted(uids)):
        rows += conn.execute(sql.format(marks(len(chunk))), chunk).fetchall()
    return rows


def write_export(records: list[ExportRecord], out: TextIO) -> ExportReport:
    report = ExportReport()
    for record in records:
        out.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False, allow_nan=False) + "\n")
        report.written[record.type] += 1
    return report


def _exported_nodes(
    conn: sqlite3.Connection, predictions: list[Prediction], credences: list[CredenceLabel], labeler: str | None
) -> list[sqlite3.Row]:
    """Non-imported nodes the labeler made or the labels name, closed under non-imported
    parents and edited originals so that each one can be placed by a merge."""
    if labeler is None:
        chosen = {row["id"]: row for row in conn.execute(NODE_SQL + " WHERE n.origin != 'import'")}
    else:
        chosen = {
            row["id"]: row
            for row in conn.execute(NODE_SQL + f" WHERE n.origin != 'import' AND {_CREATOR} = ?", (labeler,))
        }
    named: set[tuple[int, str]] = set()
    for prediction in predictions:
        named.update((prediction.library_id, uid) for uid in prediction.cited + prediction.trail)
    for credence in credences:
        named.update((credence.library_id, uid) for uid in credence.statements)
    for library_id, uid in named:
        found = conn.execute(
            NODE_SQL + " WHERE n.library_id = ? AND n.uid = ? AND n.origin != 'import'", (library_id, uid)
        ).fetchone()
        if found is not None:
            chosen[found["id"]] = found
    pending = list(chosen.values())
    while pending:
        row = pending.pop()
        for needed in (row["parent_id"], row["replaces_id"]):
            if needed is None or needed in chosen:
                continue
            found = conn.execute(NODE_SQL + " WHERE n.id = ? AND n.origin != 'import'", (needed,)).fetchone()
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


def node_fields(row: sqlite3.Row) -> dict[str, Any]:
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


def _label_fields(kind: str, label: Prediction | CredenceLabel, library: Library) -> dict[str, Any]:
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


def _credence_fields(credence: CredenceLabel, library: Library) -> dict[str, Any]:
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
