"""Predictions and credences: the labels people give, append-only, and the one owner of their rows.

Each label is committed by itself the moment it is given. Nothing is updated or deleted: a
relabel is a new row that `supersedes` the old one, and an undo is a retraction row
(`retracted` = 1) naming the label it withdraws. The *current* label for a key (item and
labeler; statement set and labeler) is the newest row, by id, that is not a retraction and
has not been retracted, so undoing a relabel brings the earlier label back.

That rule is written once here (`_CURRENT`, then the newest row per key in id order), and this
is the only module that reads or writes `predictions`, `credences` and `credence_nodes`: the
app, the trainer, F(Z), P(Z), agreement, evaluation, the doctor and export read current labels
(or the whole history) through it, and the app, a merge and the benchmarks write through it.

A label's JSON columns are read by one parser each (`_uid_list`, `_probs`), which tells a value
that is empty (`[]`) from one that is damaged. A reader passes over a damaged citation list or
trail (as none) but stops at damaged probabilities or statements, which have no safe reading;
`damaged_labels` names every damaged row, so the export refuses it and `navigator doctor` finds it.

Longer than most modules (about 700 lines) on purpose: a grep for the label tables must find
one file, so their readers, writers and the current-label rule stay together.
"""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kb.db import WorkspaceError, in_chunks, marks, transaction, utc_now
from kb.errors import ZNavigatorError
from kb.items import Item
from kb.tree import Node

PROBABILITY_TOLERANCE = 1e-6
MAX_CONJUNCTION = 4
MODEL_SOURCE_PREFIX = "model:"

# M_Z's own credences (source `model:<name>`) share the credences table under their own labeler and
# source; a range rather than LIKE, so SQLite can use the index on (library_id, source).
HUMAN, SIMULATED = "human", "simulated"  # a label's source: a person, or the simulated labeler
MODEL_CREDENCES = "(source >= 'model:' AND source < 'model;')"
HUMAN_CREDENCES = f"NOT {MODEL_CREDENCES}"  # people's (or a simulated labeler's): what human-facing readers keep

_CURRENT = "retracted = 0 AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.supersedes = {table}.uid AND r.retracted = 1)"
_PREDICTION_COLUMNS = (
    "uid, item_id, library_id, labeler, source, probs, cited, trail, seconds, note, supersedes, retracted,"
    " adjudication, created_at"
)
_CREDENCE_COLUMNS = "uid, library_id, labeler, source, statements, p, seconds, note, supersedes, retracted, created_at"


class LabelError(ZNavigatorError, ValueError):
    """A label that cannot be stored as given; nothing was written."""


class DamagedLabelError(WorkspaceError, ValueError):
    """A stored label that cannot be read or exported as it is; `navigator doctor` lists every one."""


@dataclass(frozen=True)
class DamagedLabel:
    """One stored value of a label row that cannot be read as what its column holds.

    A reader carries on past a damaged citation list or trail (the label still says what the
    labeler believed), so the export and the doctor ask for these by name (`damaged_labels`)
    instead of meeting an empty list that looks like a label citing nothing.
    """

    table: str
    row_id: int
    uid: str
    column: str
    problem: str  # what is wrong, e.g. "is not JSON (Expecting value: line 1 column 2 (char 1)): '[oops'"

    def __str__(self) -> str:
        return f"{self.table} row {self.row_id} ({self.uid}): {self.column} {self.problem}"


@dataclass(frozen=True)
class Prediction:
    uid: str
    item_id: int
    library_id: int
    labeler: str
    probs: dict[str, float]
    cited: list[str]
    trail: list[str]
    seconds: float | None
    note: str
    created_at: str
    source: str = "human"
    adjudication: bool = False  # the lead's ruling on a disagreement (LabelStore.record_prediction)
    supersedes: str | None = None
    retracted: bool = False  # an undo: this row withdraws the one it supersedes


@dataclass(frozen=True)
class CredenceLabel:
    uid: str
    library_id: int
    labeler: str
    statements: tuple[str, ...]  # node uids, sorted; empty for the whole library
    p: float
    created_at: str
    source: str = "human"
    seconds: float | None = None
    note: str = ""
    supersedes: str | None = None
    retracted: bool = False

    @property
    def is_library(self) -> bool:
        return not self.statements

    @property
    def scope(self) -> str:
        return "library" if self.is_library else "statements"


@dataclass(frozen=True)
class ModelCredence:
    """M_Z's P(statement true) for one node: never a person's, so kept out of every human reader."""

    uid: str
    library_id: int
    node_uid: str
    source: str  # model:<name>
    p: float
    provenance: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class Retraction:
    table: str
    uid: str
    description: str
    item_id: int | None = None  # the withdrawn prediction's item (None for a credence)


def checked_probability(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
        raise LabelError(f"{what} must be a number, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise LabelError(f"{what} must be between 0 and 1, got {value}")
    return float(value)


def checked_distribution(probs: dict[str, Any], options: Sequence[str]) -> dict[str, float]:
    """Probabilities over exactly the item's options, each in [0, 1], summing to 1."""
    if set(probs) != set(options):
        raise LabelError(f"probabilities must cover exactly the options {list(options)}, got {sorted(probs)}")
    checked = {option: checked_probability(probs[option], f"P({option})") for option in options}
    total = sum(checked.values())
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        raise LabelError(f"probabilities must sum to 1, they sum to {total:.6g}")
    return checked


def is_simulated(source: str) -> bool:
    """The one test for a simulated labeler's label: every report names those as simulated."""
    return source == SIMULATED


def is_model_source(source: str) -> bool:
    return source.startswith(MODEL_SOURCE_PREFIX)


def statements_key(uids: Sequence[str]) -> str:
    return " ".join(sorted(uids))


# -- rows to values ------------------------------------------------------------------------


_SHOWN_TEXT = 60  # characters of a damaged value quoted in a problem


def _quoted(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_TEXT else text[: _SHOWN_TEXT - 1] + "…")


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, bool) or value is None:
        return f"JSON {json.dumps(value)}"
    return "a JSON number"


def _parsed(text: object) -> tuple[Any, str | None]:
    """The stored JSON text's value, or what keeps it from being one."""
    if not isinstance(text, str):  # SQLite keeps whatever a raw UPDATE put there
        return None, f"is stored as {'NULL' if text is None else type(text).__name__}, not JSON text"
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as error:
        return None, f"is not JSON ({error}): {_quoted(text)}"


def _uid_list(text: object) -> tuple[list[str], str | None]:
    """The one reading of a stored list of node uids (`cited`, `trail`, a credence's `statements`):
    the uids, and what is wrong with the stored text (None when nothing is).

    `[]` is a label citing nothing; text that is not a JSON list of uids is damage, which a reader
    may pass over (the uids it could read) but the export and the doctor must report.
    """
    if text == "[]":
        return [], None
    value, problem = _parsed(text)
    if problem is not None:
        return [], problem
    if not isinstance(value, list):
        return [], f"is {_json_kind(value)}, not a list of node uids: {_quoted(str(text))}"
    uids = [entry for entry in value if isinstance(entry, str) and entry]
    if len(uids) != len(value):
        stray = next(entry for entry in value if not (isinstance(entry, str) and entry))
        strays = len(value) - len(uids)
        return uids, f"holds {strays} entries that are not node uids (e.g. {json.dumps(stray)}): {_quoted(str(text))}"
    return uids, None


def _probs(text: object) -> tuple[dict[str, Any] | None, str | None]:
    """The one reading of a prediction's stored `probs`: the object (None when there is none to read)
    and what is wrong with it. Whether it is a distribution is `checked_distribution`'s rule,
    which `damaged_labels` applies; a reader only needs the object."""
    value, problem = _parsed(text)
    if problem is not None:
        return None, problem
    if not isinstance(value, dict):
        return None, f"is {_json_kind(value)}, not an object of probabilities: {_quoted(str(text))}"
    return value, None


def _unreadable(uid: str, column: str, problem: str) -> DamagedLabelError:
    """What a reader raises for a value it cannot do without (a prediction's probs, a credence's statements)."""
    hint = "`navigator doctor` lists every damaged label and what to do"
    return DamagedLabelError(f"cannot read the label {uid}: {column} {problem}", hint)


def _prediction(row: sqlite3.Row) -> Prediction:
    """A damaged `cited` or `trail` reads as the uids it holds (usually none): see `damaged_labels`."""
    probs, problem = _probs(row["probs"])
    if probs is None:
        raise _unreadable(row["uid"], "probs", problem or "")
    return Prediction(
        row["uid"],
        row["item_id"],
        row["library_id"],
        row["labeler"],
        probs,
        _uid_list(row["cited"])[0],
        _uid_list(row["trail"])[0],
        row["seconds"],
        row["note"],
        row["created_at"],
        row["source"],
        bool(row["adjudication"]),
        row["supersedes"],
        bool(row["retracted"]),
    )


def _statements(row: sqlite3.Row) -> list[str]:
    """A credence's statements, or an error: read as none, a damaged list would turn into a credence on the library."""
    uids, problem = _uid_list(row["statements"])
    if problem is not None:
        raise _unreadable(row["uid"], "statements", problem)
    return uids


def _credence(row: sqlite3.Row) -> CredenceLabel:
    return CredenceLabel(
        row["uid"],
        row["library_id"],
        row["labeler"],
        tuple(_statements(row)),
        row["p"],
        row["created_at"],
        row["source"],
        row["seconds"],
        row["note"],
        row["supersedes"],
        bool(row["retracted"]),
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# -- current labels ------------------------------------------------------------------------


def current_predictions_in_library(
    conn: sqlite3.Connection,
    library_id: int,
    item_ids: Collection[int] | None = None,
    *,
    labeler: str | None = None,
) -> list[Prediction]:
    """Every labeler's (or one labeler's) current prediction made with one library, ordered by item then labeler.

    One pass over the library's rows, for every reader: the app, the trainer, F(Z), agreement,
    evaluation. `item_ids` keeps only those items' rows (a retraction carries its label's item),
    so a reader about a few items does not decode the whole library's labels.
    """
    where = f"library_id = ? AND {_CURRENT.format(table='predictions')}"
    args: list[Any] = [library_id]
    if labeler is not None:
        where += " AND labeler = ?"
        args.append(labeler)
    sql = f"SELECT {_PREDICTION_COLUMNS} FROM predictions WHERE {where}"
    if item_ids is None:
        batches = [conn.execute(sql + " ORDER BY id", args)]
    else:  # in chunks: SQLite binds at most 32 766 parameters; items are disjoint across chunks
        batches = [
            conn.execute(sql + f" AND item_id IN ({marks(len(chunk))}) ORDER BY id", [*args, *chunk])
            for chunk in in_chunks(sorted(set(item_ids)))
        ]
    current: dict[tuple[int, str], sqlite3.Row] = {}
    for rows in batches:
        for row in rows:
            current[(row["item_id"], row["labeler"])] = row  # in id order: the newest one stays
    return [_prediction(current[key]) for key in sorted(current)]


def prediction_labelers(conn: sqlite3.Connection, library_id: int) -> list[tuple[str, str]]:
    """(labeler, source) of everyone who ever predicted with this library: simulated first, then people, by name."""
    rows = conn.execute(
        "SELECT DISTINCT labeler, source FROM predictions WHERE library_id = ? ORDER BY source DESC, labeler",
        (library_id,),
    )
    return [(str(row[0]), str(row[1])) for row in rows]


def current_credences_in_library(
    conn: sqlite3.Connection,
    library_id: int,
    *,
    labeler: str | None = None,
    statements: Sequence[str] | None = None,
    people_only: bool = True,
    rating_order: bool = False,
) -> list[CredenceLabel]:
    """Current credences in one library (every labeler's, or one's), ordered by labeler then statements,
    or (`rating_order`) in the order each statement set was first rated, which the exact check's
    tie-break reads as oldest first.

    `statements` keeps only credences on exactly that set (one indexed lookup). With `people_only`
    (the default), model credences (source `model:…`) are left out: they are M_Z's, not a
    labeler's (see `model_credences`).
    """
    where = f"library_id = ? AND {HUMAN_CREDENCES}" if people_only else "library_id = ?"
    args: list[Any] = [library_id]
    if labeler is not None:
        where += " AND labeler = ?"
        args.append(labeler)
    if statements is not None:
        where += " AND statements_key = ?"
        args.append(statements_key(statements))
    rows = conn.execute(
        f"SELECT {_CREDENCE_COLUMNS}, statements_key FROM credences"
        f" WHERE {where} AND {_CURRENT.format(table='credences')} ORDER BY id",
        args,
    )
    current: dict[tuple[str, str], sqlite3.Row] = {}
    for row in rows:
        current[(row["labeler"], row["statements_key"])] = row  # in id order: the newest one stays
    keys = list(current) if rating_order else sorted(current)
    return [_credence(current[key]) for key in keys]


def model_credences(
    conn: sqlite3.Connection, library_id: int, node_uids: Sequence[str] | None = None, *, source: str | None = None
) -> dict[str, ModelCredence]:
    """node uid → the newest current model credence on that single statement (of `source`, or of any model).

    These are M_Z's, not a person's: callers that use them for P(Z) or F(Z) say so and count them apart.
    With `node_uids`, the lookup walks credence_nodes by node (the app asks for one node per cursor move).
    """
    columns = "credences.uid, library_id, statements, source, p, provenance, created_at, credences.id"
    where = f"library_id = ? AND {MODEL_CREDENCES} AND scope = 'statements' AND {_CURRENT.format(table='credences')}"
    args: list[Any] = [library_id]
    if source is not None:
        where += " AND source = ?"
        args.append(source)
    if node_uids is None:
        return _model_rows(conn, f"SELECT {columns} FROM credences WHERE {where}", args)
    found: dict[str, ModelCredence] = {}
    for chunk in in_chunks(sorted(set(node_uids))):
        # CROSS JOIN keeps credence_nodes (indexed by node) as the outer loop.
        sql = (
            f"SELECT {columns} FROM credence_nodes CROSS JOIN credences ON credences.id = credence_nodes.credence_id"
            f" WHERE credence_nodes.node_uid IN ({marks(len(chunk))}) AND {where}"
        )
        found.update(_model_rows(conn, sql, [*chunk, *args]))
    return found


def _model_rows(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> dict[str, ModelCredence]:
    found: dict[str, ModelCredence] = {}
    for row in conn.execute(sql + " ORDER BY credences.id", tuple(args)):
        statements = _statements(row)
        if len(statements) != 1:
            continue
        found[statements[0]] = ModelCredence(
            row["uid"],
            row["library_id"],
            statements[0],
            row["source"],
            float(row["p"]),
            json.loads(row["provenance"] or "{}"),
            row["created_at"],
        )
    return found


def label_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Current labels (one per labeler and item, or per labeler and statement set) and all rows.

    An undo adds a row but removes a current label, so the two differ; a researcher
    counting labels wants the first, an audit the second. Model credences are not labels
    anyone gave: they are counted apart (`model_credences`, current ones).
    """
    counts = {}
    for table, key, people in (
        ("predictions", "item_id, labeler, library_id", "1"),
        ("credences", "statements_key, labeler, library_id", HUMAN_CREDENCES),
    ):
        live = conn.execute(
            f"SELECT COUNT(*) FROM (SELECT DISTINCT {key} FROM {table}"
            f" WHERE {people} AND {_CURRENT.format(table=table)})"
        ).fetchone()[0]
        counts[table] = int(live)
        counts[f"{table[:-1]}_rows"] = int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {people}").fetchone()[0])
    counts["model_credences"] = int(
        conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT statements_key, labeler, library_id FROM credences"
            f" WHERE {MODEL_CREDENCES} AND {_CURRENT.format(table='credences')})"
        ).fetchone()[0]
    )
    return counts


# -- every row: export, merge, the doctor ---------------------------------------------------


def prediction_history(conn: sqlite3.Connection, *, labeler: str | None = None) -> list[Prediction]:
    """Every prediction row (of one labeler, or everyone's), current or not, in id order: what an export carries."""
    where, args = ("WHERE labeler = ?", (labeler,)) if labeler is not None else ("", ())
    rows = conn.execute(f"SELECT {_PREDICTION_COLUMNS} FROM predictions {where} ORDER BY id", args)
    return [_prediction(row) for row in rows]


def credence_history(conn: sqlite3.Connection, *, labeler: str | None = None) -> list[CredenceLabel]:
    """Every credence row people gave (of one labeler, or everyone's), current or not, in id order.

    Model credences stay in the workspace that judged them: they are not a labeler's work to carry.
    """
    where, args = f"WHERE {HUMAN_CREDENCES}", tuple[str, ...]()
    if labeler is not None:
        where, args = f"WHERE labeler = ? AND {HUMAN_CREDENCES}", (labeler,)
    rows = conn.execute(f"SELECT {_CREDENCE_COLUMNS} FROM credences {where} ORDER BY id", args)
    return [_credence(row) for row in rows]


def prediction_by_uid(conn: sqlite3.Connection, uid: str) -> Prediction | None:
    row = conn.execute(f"SELECT {_PREDICTION_COLUMNS} FROM predictions WHERE uid = ?", (uid,)).fetchone()
    return _prediction(row) if row is not None else None


def credence_by_uid(conn: sqlite3.Connection, uid: str) -> CredenceLabel | None:
    row = conn.execute(f"SELECT {_CREDENCE_COLUMNS} FROM credences WHERE uid = ?", (uid,)).fetchone()
    return _credence(row) if row is not None else None


def labels_citing_missing_nodes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(label uid, node uid) for every cited or rated node that its label's library does not have.

    Labels name nodes by uid, with no foreign key (so they survive export and merge); a label
    pointing at nothing means the file was changed outside the app, or a bug.
    """
    rows = conn.execute(
        "SELECT p.uid, c.value FROM predictions p, json_each(p.cited) c WHERE json_valid(p.cited)"
        " AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.library_id = p.library_id AND n.uid = c.value)"
        " UNION ALL SELECT c.uid, cn.node_uid FROM credence_nodes cn JOIN credences c ON c.id = cn.credence_id"
        " WHERE NOT EXISTS (SELECT 1 FROM nodes n WHERE n.library_id = c.library_id AND n.uid = cn.node_uid)"
    ).fetchall()
    return [(str(row[0]), str(row[1])) for row in rows]


def damaged_labels(
    conn: sqlite3.Connection, *, labeler: str | None = None, people_only: bool = False
) -> list[DamagedLabel]:
    """Every label row (of one labeler, or everyone's) with a stored value that cannot be read as
    what its column holds, predictions then credences, each in id order: what `navigator doctor`
    reports and what stops an export.

    Read with the readers' own parsers, so "damaged" means exactly what they pass over or stop at;
    `probs` must also be a distribution (`checked_distribution`, the rule a new label is held to).
    `people_only` leaves model credences out, as the export does.
    """
    where, args = ("WHERE labeler = ?", (labeler,)) if labeler is not None else ("", ())
    found: list[DamagedLabel] = []
    for row_id, uid, stored_probs, cited, trail in conn.execute(
        f"SELECT id, uid, probs, cited, trail FROM predictions {where} ORDER BY id", args
    ):
        probs, problem = _probs(stored_probs)
        if probs is not None:
            try:
                checked_distribution(probs, list(probs))
            except LabelError as error:
                problem = f"is not a distribution ({error.message}): {_quoted(str(stored_probs))}"
        if problem is not None:
            found.append(DamagedLabel("predictions", int(row_id), str(uid), "probs", problem))
        for column, stored in (("cited", cited), ("trail", trail)):
            problem = _uid_list(stored)[1]
            if problem is not None:
                found.append(DamagedLabel("predictions", int(row_id), str(uid), column, problem))
    conditions = [*(["labeler = ?"] if labeler is not None else []), *([HUMAN_CREDENCES] if people_only else [])]
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    for row_id, uid, statements in conn.execute(f"SELECT id, uid, statements FROM credences {where} ORDER BY id", args):
        problem = _uid_list(statements)[1]
        if problem is not None:
            found.append(DamagedLabel("credences", int(row_id), str(uid), "statements", problem))
    return found


# -- writing --------------------------------------------------------------------------------


def insert_predictions(conn: sqlite3.Connection, predictions: Iterable[Prediction]) -> None:
    """Write prediction rows exactly as given (uids, history and timestamps kept), in the caller's transaction.

    The one INSERT into `predictions`: the app's labels (LabelStore), a merge, and a benchmark's
    synthetic labels all come through here, executemany on the benchmark's 100 000 rows.
    """
    conn.executemany(
        f"INSERT INTO predictions ({_PREDICTION_COLUMNS}) VALUES ({', '.join('?' * 14)})",
        (
            (
                p.uid,
                p.item_id,
                p.library_id,
                p.labeler,
                p.source,
                _json(p.probs),
                _json(p.cited),
                _json(p.trail),
                p.seconds,
                p.note,
                p.supersedes,
                int(p.retracted),
                int(p.adjudication),
                p.created_at,
            )
            for p in predictions
        ),
    )


def insert_credence(
    conn: sqlite3.Connection, credence: CredenceLabel, *, provenance: dict[str, Any] | None = None
) -> None:
    """Write one credence row exactly as given, with its statement links, in the caller's transaction.

    The one INSERT into `credences` (the app's labels, model credences, a merge). `provenance`
    says what produced a credence that is not a person's; a retraction row links no nodes.
    """
    credence_id = conn.execute(
        f"INSERT INTO credences ({_CREDENCE_COLUMNS}, scope, statements_key, provenance)"
        f" VALUES ({', '.join('?' * 14)})",
        (
            credence.uid,
            credence.library_id,
            credence.labeler,
            credence.source,
            _json(list(credence.statements)),
            credence.p,
            credence.seconds,
            credence.note,
            credence.supersedes,
            int(credence.retracted),
            credence.created_at,
            credence.scope,
            statements_key(credence.statements),
            json.dumps(provenance or {}, ensure_ascii=False, sort_keys=True),
        ),
    ).lastrowid
    if not credence.retracted:
        conn.executemany(
            "INSERT INTO credence_nodes (credence_id, node_uid) VALUES (?, ?)",
            [(credence_id, node_uid) for node_uid in credence.statements],
        )


def replace_all_predictions(conn: sqlite3.Connection, predictions: Iterable[Prediction]) -> None:
    """Drop every prediction row and write `predictions` instead, in one transaction.

    Only for a benchmark's own scratch workspace (a fresh start per run, or synthetic labels):
    the app and merges never delete a label.
    """
    with transaction(conn):
        conn.execute("DELETE FROM predictions")
        insert_predictions(conn, predictions)


class LabelStore:
    """All label writes and one labeler's reads. `source` names who labels:
    'human' from the app, 'simulated' for the simulated labeler, `model:<name>` for M_Z's own
    credences (whose labeler is the source itself, so they can never pass for a person's)."""

    def __init__(self, conn: sqlite3.Connection, labeler: str, *, source: str = "human") -> None:
        if not labeler.strip():
            raise LabelError("a labeler needs a name")
        if is_model_source(labeler) != is_model_source(source) or (is_model_source(source) and labeler != source):
            raise LabelError(
                f"labeler {labeler!r} with source {source!r}: names starting with {MODEL_SOURCE_PREFIX!r} are "
                "kept for model credences, whose labeler and source are the same"
            )
        self.conn = conn
        self.labeler = labeler
        self.source = source

    def record_prediction(
        self,
        item: Item,
        library_id: int,
        probs: dict[str, Any],
        *,
        cited: Sequence[str] = (),
        trail: Sequence[str] = (),
        seconds: float | None = None,
        note: str = "",
        adjudication: bool = False,
    ) -> Prediction:
        """Commit one prediction; it supersedes this labeler's current one on the item. An
        `adjudication` is the same kind of row, flagged: the lead's ruling after reading
        the labelers' disagreement, so agreement figures can leave it out."""
        checked = checked_distribution(probs, item.options)
        label = Prediction(
            f"pred_{uuid.uuid4().hex}",
            item.id,
            library_id,
            self.labeler,
            checked,
            list(cited),
            list(trail),
            seconds,
            note,
            utc_now(),
            self.source,
            adjudication,
        )
        with transaction(self.conn):
            previous = current_predictions_in_library(self.conn, library_id, [item.id], labeler=self.labeler)
            label = replace(label, supersedes=previous[0].uid if previous else None)
            insert_predictions(self.conn, [label])
        return label

    def current_predictions(self, library_id: int) -> dict[int, Prediction]:
        """item id → this labeler's current prediction."""
        return {p.item_id: p for p in current_predictions_in_library(self.conn, library_id, labeler=self.labeler)}

    def record_credence(
        self,
        library_id: int,
        statements: Sequence[Node],
        p: Any,
        *,
        seconds: float | None = None,
        note: str = "",
        provenance: dict[str, Any] | None = None,
    ) -> CredenceLabel:
        """P(all `statements` true); no statements means P(the whole library is true).

        `provenance` says what produced a credence that is not a person's (a model's name, raw
        score and calibration); people's credences leave it empty.
        """
        value = checked_probability(p, "the credence")
        uids = tuple(sorted({node.uid for node in statements}))
        if len(uids) > MAX_CONJUNCTION:
            raise LabelError(f"a credence covers at most {MAX_CONJUNCTION} statements, got {len(uids)}")
        if any(node.library_id != library_id for node in statements):
            raise LabelError("every statement of a credence must belong to its library")
        credence = CredenceLabel(
            f"cred_{uuid.uuid4().hex}", library_id, self.labeler, uids, value, utc_now(), self.source, seconds, note
        )
        with transaction(self.conn):
            previous = next(
                iter(
                    current_credences_in_library(
                        self.conn, library_id, labeler=self.labeler, statements=uids, people_only=False
                    )
                ),
                None,
            )
            credence = replace(credence, supersedes=previous.uid if previous else None)
            insert_credence(self.conn, credence, provenance=provenance)
        return credence

    def current_credences(self, library_id: int) -> dict[tuple[str, ...], CredenceLabel]:
        """statement uids (sorted; () for the library) → this labeler's current credence."""
        current = current_credences_in_library(
            self.conn, library_id, labeler=self.labeler, people_only=False, rating_order=True
        )
        return {credence.statements: credence for credence in current}

    def undo_last(self) -> Retraction | None:
        """Retract this labeler's newest current label, prediction or credence."""
        newest: tuple[str, str, str] | None = None
        for table in ("predictions", "credences"):
            row = self.conn.execute(
                f"SELECT uid, created_at FROM {table} WHERE labeler = ? AND {_CURRENT.format(table=table)}"
                f" ORDER BY id DESC LIMIT 1",
                (self.labeler,),
            ).fetchone()
            if row and (newest is None or row["created_at"] > newest[2]):
                newest = (table, row["uid"], row["created_at"])
        if newest is None:
            return None
        table, target, _ = newest
        with transaction(self.conn):
            original = self.conn.execute(f"SELECT * FROM {table} WHERE uid = ?", (target,)).fetchone()
            values = dict(original)
            values.update(
                uid=f"{'pred' if table == 'predictions' else 'cred'}_{uuid.uuid4().hex}",
                supersedes=target,
                retracted=1,
                created_at=utc_now(),
                note="undo",
            )
            del values["id"]
            columns = ", ".join(values)
            self.conn.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})", tuple(values.values())
            )
        what = "prediction" if table == "predictions" else "credence"
        item_id = int(original["item_id"]) if table == "predictions" else None
        return Retraction(table, target, f"withdrew the {what} {target}", item_id)
