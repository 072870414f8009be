"""Predictions and credences: the labels people give, append-only.

Each label is committed by itself the moment it is given. Nothing is updated
or deleted: a relabel is a new row that `supersedes` the old one, and an undo
is a retraction row (`retracted` = 1) naming the label it withdraws. The
*current* label for a key is the newest row that is not a retraction and has
not been retracted, so undoing a relabel brings the earlier label back.
"""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from kb.db import transaction, utc_now
from kb.items import Item
from kb.tree import Node

PROBABILITY_TOLERANCE = 1e-6
MAX_CONJUNCTION = 4
MODEL_SOURCE_PREFIX = "model:"


def model_source_sql(column: str = "source") -> str:
    """SQL true for model credences (M_Z's own P(statement true), source `model:<name>`).

    They share the credences table under their own labeler and source; a range rather than LIKE,
    so SQLite can use the index on (library_id, source).
    """
    return f"({column} >= 'model:' AND {column} < 'model;')"


def human_source_sql(column: str = "source") -> str:
    """SQL true for credences people gave (or a simulated labeler): what every human-facing reader keeps."""
    return f"NOT {model_source_sql(column)}"


MODEL_CREDENCES = model_source_sql()
HUMAN_CREDENCES = human_source_sql()


class LabelError(ValueError):
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
    adjudication: bool = False  # the lead's ruling on a disagreement (kb.labels.LabelStore.record_prediction)


@dataclass(frozen=True)
class Credence:
    uid: str
    library_id: int
    labeler: str
    statements: tuple[str, ...]  # node uids, sorted; empty for the whole library
    p: float
    created_at: str

    @property
    def is_library(self) -> bool:
        return not self.statements


@dataclass(frozen=True)
class Retraction:
    table: str
    uid: str
    description: str


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


def statements_key(uids: Sequence[str]) -> str:
    return " ".join(sorted(uids))


_CURRENT = "retracted = 0 AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.supersedes = {table}.uid AND r.retracted = 1)"
_PREDICTION_COLUMNS = (
    "uid, item_id, library_id, labeler, probs, cited, trail, seconds, note, created_at, source, adjudication"
)


def _prediction(row: sqlite3.Row) -> Prediction:
    return Prediction(
        row["uid"],
        row["item_id"],
        row["library_id"],
        row["labeler"],
        json.loads(row["probs"]),
        json.loads(row["cited"]),
        json.loads(row["trail"]),
        row["seconds"],
        row["note"],
        row["created_at"],
        row["source"],
        bool(row["adjudication"]),
    )


def current_predictions_in_library(
    conn: sqlite3.Connection, library_id: int, item_ids: Collection[int] | None = None
) -> list[Prediction]:
    """Every labeler's current prediction made with one library, ordered by item then labeler.

    The same rule as `LabelStore.current_predictions` (the newest row per item and labeler
    that is not a retraction and was not retracted), computed in one pass over the library's
    rows rather than per labeler, for readers that compare labelers (agreement, disagreements).
    `item_ids` keeps only those items' rows (a retraction carries its label's item), so a
    reader about a few items does not decode the whole library's labels.
    """
    where, args = "library_id = ?", [library_id]
    if item_ids is not None:
        wanted = sorted(set(item_ids))
        where += f" AND item_id IN ({','.join('?' * len(wanted))})"
        args += wanted
    rows = conn.execute(
        f"SELECT {_PREDICTION_COLUMNS}, retracted, supersedes FROM predictions WHERE {where} ORDER BY id", args
    ).fetchall()
    withdrawn = {row["supersedes"] for row in rows if row["retracted"]}
    current: dict[tuple[int, str], sqlite3.Row] = {}
    for row in rows:
        if not row["retracted"] and row["uid"] not in withdrawn:
            current[(row["item_id"], row["labeler"])] = row  # in id order: the newest one stays
    return [_prediction(current[key]) for key in sorted(current)]


def current_credences_in_library(
    conn: sqlite3.Connection, library_id: int, *, labeler: str | None = None
) -> list[Credence]:
    """People's current credences in one library (every labeler's, or one's), ordered by labeler then statements.

    The same rule as `LabelStore.current_credences` (the newest row per labeler and statement
    set that is not a retraction and was not retracted), so a credence changed and then undone
    is the earlier one again. Model credences (source `model:…`) are M_Z's, not a labeler's,
    and are left out (see `model_credences`).
    """
    where = f"library_id = ? AND {HUMAN_CREDENCES}"
    args: list[Any] = [library_id]
    if labeler is not None:
        where += " AND labeler = ?"
        args.append(labeler)
    rows = conn.execute(
        f"SELECT uid, library_id, labeler, statements, statements_key, p, created_at FROM credences"
        f" WHERE {where} AND {_CURRENT.format(table='credences')} ORDER BY id",
        args,
    )
    current: dict[tuple[str, str], sqlite3.Row] = {}
    for row in rows:
        current[(row["labeler"], row["statements_key"])] = row  # in id order: the newest one stays
    return [
        Credence(
            row["uid"],
            row["library_id"],
            row["labeler"],
            tuple(json.loads(row["statements"])),
            row["p"],
            row["created_at"],
        )
        for _, row in sorted(current.items())
    ]


class LabelStore:
    """All label writes and reads for one labeler. `source` names who labels:
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

    # -- predictions -------------------------------------------------------

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
        uid = f"pred_{uuid.uuid4().hex}"
        now = utc_now()
        with transaction(self.conn):
            previous = self._current_prediction_uid(item.id, library_id)
            self.conn.execute(
                "INSERT INTO predictions (uid, item_id, library_id, labeler, source, probs, cited, trail, seconds,"
                " note, supersedes, adjudication, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uid,
                    item.id,
                    library_id,
                    self.labeler,
                    self.source,
                    json.dumps(checked),
                    json.dumps(list(cited)),
                    json.dumps(list(trail)),
                    seconds,
                    note,
                    previous,
                    int(adjudication),
                    now,
                ),
            )
        return Prediction(
            uid,
            item.id,
            library_id,
            self.labeler,
            checked,
            list(cited),
            list(trail),
            seconds,
            note,
            now,
            self.source,
            adjudication,
        )

    def _current_prediction_uid(self, item_id: int, library_id: int) -> str | None:
        row = self.conn.execute(
            f"SELECT uid FROM predictions WHERE item_id = ? AND library_id = ? AND labeler = ?"
            f" AND {_CURRENT.format(table='predictions')} ORDER BY id DESC LIMIT 1",
            (item_id, library_id, self.labeler),
        ).fetchone()
        return str(row[0]) if row else None

    def current_predictions(self, library_id: int) -> dict[int, Prediction]:
        """item id → this labeler's current prediction."""
        rows = self.conn.execute(
            f"SELECT {_PREDICTION_COLUMNS} FROM predictions"
            f" WHERE library_id = ? AND labeler = ? AND {_CURRENT.format(table='predictions')} ORDER BY id",
            (library_id, self.labeler),
        )
        current: dict[int, Prediction] = {}
        for row in rows:
            current[row["item_id"]] = _prediction(row)
        return current

    # -- credences ---------------------------------------------------------

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
        uids = sorted({node.uid for node in statements})
        if len(uids) > MAX_CONJUNCTION:
            raise LabelError(f"a credence covers at most {MAX_CONJUNCTION} statements, got {len(uids)}")
        if any(node.library_id != library_id for node in statements):
            raise LabelError("every statement of a credence must belong to its library")
        uid = f"cred_{uuid.uuid4().hex}"
        now = utc_now()
        key = statements_key(uids)
        with transaction(self.conn):
            previous = self.conn.execute(
                f"SELECT uid FROM credences WHERE library_id = ? AND labeler = ? AND statements_key = ?"
                f" AND {_CURRENT.format(table='credences')} ORDER BY id DESC LIMIT 1",
                (library_id, self.labeler, key),
            ).fetchone()
            credence_id = self.conn.execute(
                "INSERT INTO credences (uid, library_id, labeler, source, scope, statements, statements_key, p,"
                " seconds, note, supersedes, created_at, provenance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uid,
                    library_id,
                    self.labeler,
                    self.source,
                    "statements" if uids else "library",
                    json.dumps(uids),
                    key,
                    value,
                    seconds,
                    note,
                    previous[0] if previous else None,
                    now,
                    json.dumps(provenance or {}, ensure_ascii=False, sort_keys=True),
                ),
            ).lastrowid
            self.conn.executemany(
                "INSERT INTO credence_nodes (credence_id, node_uid) VALUES (?, ?)",
                [(credence_id, node_uid) for node_uid in uids],
            )
        return Credence(uid, library_id, self.labeler, tuple(uids), value, now)

    def current_credences(self, library_id: int) -> dict[tuple[str, ...], Credence]:
        """statement uids (sorted; () for the library) → this labeler's current credence."""
        rows = self.conn.execute(
            f"SELECT uid, library_id, labeler, statements, p, created_at FROM credences"
            f" WHERE library_id = ? AND labeler = ? AND {_CURRENT.format(table='credences')} ORDER BY id",
            (library_id, self.labeler),
        )
        current: dict[tuple[str, ...], Credence] = {}
        for row in rows:
            statements = tuple(json.loads(row["statements"]))
            current[statements] = Credence(
                row["uid"], row["library_id"], row["labeler"], statements, row["p"], row["created_at"]
            )
        return current

    # -- undo --------------------------------------------------------------

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
        return Retraction(table, target, f"withdrew the {what} {target}")


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
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
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
