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

Longer than most modules (about 600 lines) on purpose: a grep for the label tables must find
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

from kb.db import transaction, utc_now
from kb.errors import ZNavigatorError
from kb.items import Item
from kb.tree import Node

PROBABILITY_TOLERANCE = 1e-6
MAX_CONJUNCTION = 4
MODEL_SOURCE_PREFIX = "model:"

# M_Z's own credences (source `model:<name>`) share the credences table under their own labeler and
# source; a range rather than LIKE, so SQLite can use the index on (library_id, source).
MODEL_CREDENCES = "(source >= 'model:' AND source < 'model;')"
HUMAN_CREDENCES = f"NOT {MODEL_CREDENCES}"  # people's (or a simulated labeler's): what human-facing readers keep

_CURRENT = "retracted = 0 AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.supersedes = {table}.uid AND r.retracted = 1)"
_PREDICTION_COLUMNS = (
    "uid, item_id, library_id, labeler, source, probs, cited, trail, seconds, note, supersedes, retracted,"
    " adjudication, created_at"
)
_IN_CHUNK = 500  # ids bound per IN (…) list
_CREDENCE_COLUMNS = "uid, library_id, labeler, source, statements, p, seconds, note, supersedes, retracted, created_at"


class LabelError(ZNavigatorError, ValueError):
    """A label that cannot be stored as given; nothing was written."""


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
class Credence:
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


def is_model_source(source: str) -> bool:
    return source.startswith(MODEL_SOURCE_PREFIX)


def statements_key(uids: Sequence[str]) -> str:
    return " ".join(sorted(uids))


# -- rows to values ------------------------------------------------------------------------


def _uids(text: str | None) -> list[str]:
    """A JSON list of node uids as stored with a label; anything else reads as none."""
    if not text or text == "[]":
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _prediction(row: sqlite3.Row) -> Prediction:
    return Prediction(
        row["uid"],
        row["item_id"],
        row["library_id"],
        row["labeler"],
        json.loads(row["probs"]),
        _uids(row["cited"]),
        _uids(row["trail"]),
        row["seconds"],
        row["note"],
        row["created_at"],
        row["source"],
        bool(row["adjudication"]),
        row["supersedes"],
        bool(row["retracted"]),
    )


def _credence(row: sqlite3.Row) -> Credence:
    return Credence(
        row["uid"],
        row["library_id"],
        row["labeler"],
        tuple(json.loads(row["statements"])),
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
        wanted = sorted(set(item_ids))
        batches = [
            conn.execute(sql + f" AND item_id IN ({','.join('?' * len(chunk))}) ORDER BY id", [*args, *chunk])
            for chunk in (wanted[start : start + _IN_CHUNK] for start in range(0, len(wanted), _IN_CHUNK))
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
) -> list[Credence]:
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
    wanted = sorted(set(node_uids))
    found: dict[str, ModelCredence] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        # CROSS JOIN keeps credence_nodes (indexed by node) as the outer loop.
        sql = (
            f"SELECT {columns} FROM credence_nodes CROSS JOIN credences ON credences.id = credence_nodes.credence_id"
            f" WHERE credence_nodes.node_uid IN ({','.join('?' * len(chunk))}) AND {where}"
        )
        found.update(_model_rows(conn, sql, [*chunk, *args]))
    return found


def _model_rows(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> dict[str, ModelCredence]:
    found: dict[str, ModelCredence] = {}
    for row in conn.execute(sql + " ORDER BY credences.id", tuple(args)):
        statements = json.loads(row["statements"])
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


def credence_history(conn: sqlite3.Connection, *, labeler: str | None = None) -> list[Credence]:
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


def credence_by_uid(conn: sqlite3.Connection, uid: str) -> Credence | None:
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


def insert_credence(conn: sqlite3.Connection, credence: Credence, *, provenance: dict[str, Any] | None = None) -> None:
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
    ) -> Credence:
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
        credence = Credence(
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

    def current_credences(self, library_id: int) -> dict[tuple[str, ...], Credence]:
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
