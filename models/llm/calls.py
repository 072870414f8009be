"""The call log: every generation the model makes for a node (unpack, ask, their retries) and every
judgement behind a model credence is a row in `llm_calls`, whatever its outcome.

This is the only module that writes that table and the only one in models/ that reads it, so what a
log row means (and which outcomes exist) is decided in one place; kb cannot import models, so two kb
readers name it in SQL (the export's node creator in kb/exchange.py, the count in kb/stats.py). A row
is written when a call ends — ok, failed or cancelled — so the log also shows the work that produced
nothing. The model's health probes (`llm status`, `doctor`) are not logged: they make nothing.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from kb.db import transaction, utc_now
from models.llm.model import ModelIdentity

Outcome = Literal["ok", "failed", "cancelled"]


@dataclass(frozen=True)
class CallRecord:
    uid: str
    node_id: int | None
    node_uid: str | None
    purpose: str
    model: str
    model_sha256: str | None
    prompt: str
    response: str | None
    params: dict[str, Any]
    tokens_in: int | None
    tokens_out: int | None
    ms: float | None
    outcome: str
    error: str | None
    labeler: str | None
    created_at: str
    checks: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.uid,
            "node": self.node_uid,
            "purpose": self.purpose,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "prompt": self.prompt,
            "response": self.response,
            "params": self.params,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "ms": self.ms,
            "outcome": self.outcome,
            "error": self.error,
            "labeler": self.labeler,
            "created_at": self.created_at,
            "checks": self.checks,
        }


def new_call_uid() -> str:
    return f"call_{uuid.uuid4().hex}"


@dataclass
class CallOutcome:
    """What one finished call sent and got back, as the log and the provenance of its children keep it."""

    uid: str
    response: str
    prompt: str
    ms: float
    tokens_in: int
    tokens_out: int
    params: dict[str, Any] = field(default_factory=dict)


def log_call(
    conn: sqlite3.Connection,
    call: CallOutcome,
    node_id: int | None,
    purpose: str,
    model: ModelIdentity,
    outcome: Outcome,
    error: str | None = None,
    labeler: str | None = None,
) -> str:
    """Write one finished call; its `uid` is chosen by the caller so provenance can name it before it is written."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO llm_calls (uid, node_id, purpose, model, model_sha256, prompt, response, params,"
            " tokens_in, tokens_out, ms, outcome, error, labeler, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                call.uid,
                node_id,
                purpose,
                model.name,
                model.sha256,
                call.prompt,
                call.response,
                json.dumps(call.params, ensure_ascii=False, sort_keys=True),
                call.tokens_in,
                call.tokens_out,
                call.ms,
                outcome,
                error,
                labeler,
                utc_now(),
            ),
        )
    return call.uid


def record_checks(conn: sqlite3.Connection, uid: str, checks: dict[str, Any]) -> None:
    """Add what was checked in a call's answer (kept, dropped and why, quoted) to its row; keys merge."""
    with transaction(conn):
        row = conn.execute("SELECT checks FROM llm_calls WHERE uid = ?", (uid,)).fetchone()
        merged = {**json.loads(row[0] or "{}"), **checks} if row else checks
        conn.execute(
            "UPDATE llm_calls SET checks = ? WHERE uid = ?",
            (json.dumps(merged, ensure_ascii=False, sort_keys=True), uid),
        )


def mark_failed(conn: sqlite3.Connection, uid: str, error: str) -> None:
    """A call whose output could not be stored afterwards is not 'ok' after all."""
    with transaction(conn):
        conn.execute("UPDATE llm_calls SET outcome = 'failed', error = ? WHERE uid = ?", (error, uid))


_SELECT = (
    "SELECT c.uid, c.node_id, n.uid, c.purpose, c.model, c.model_sha256, c.prompt, c.response, c.params,"
    " c.tokens_in, c.tokens_out, c.ms, c.outcome, c.error, c.labeler, c.created_at, c.checks"
    " FROM llm_calls c LEFT JOIN nodes n ON n.id = c.node_id"
)


def _record(row: sqlite3.Row | tuple[Any, ...]) -> CallRecord:
    values = list(row)
    values[8] = json.loads(values[8] or "{}")
    values[16] = json.loads(values[16] or "{}")
    return CallRecord(*values)


def recent_calls(
    conn: sqlite3.Connection, *, limit: int | None = 3, node_id: int | None = None, purpose: str | None = None
) -> list[CallRecord]:
    """Newest first, like `llm logs`; limit=None lists them all."""
    where, args = _where({"c.node_id": node_id, "c.purpose": purpose})
    sql = _SELECT + where + " ORDER BY c.id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_record(row) for row in conn.execute(sql, args)]


def count_calls(conn: sqlite3.Connection, *, node_id: int | None = None, outcome: Outcome | None = None) -> int:
    where, args = _where({"node_id": node_id, "outcome": outcome})
    return int(conn.execute("SELECT COUNT(*) FROM llm_calls" + where, args).fetchone()[0])


def _where(conditions: dict[str, Any]) -> tuple[str, list[Any]]:
    """' WHERE column = ? AND …' for the conditions that are set (column names are ours, values bound)."""
    chosen = {column: value for column, value in conditions.items() if value is not None}
    if not chosen:
        return "", []
    return " WHERE " + " AND ".join(f"{column} = ?" for column in chosen), list(chosen.values())
