"""P(Z) from credences: read them (a JSONL file or the workspace), then report every estimate honestly.

The engine lives in three small modules — models.prior.exact (the LP: exact intervals, coherence,
conflicts, repair), models.prior.bounds (singles-and-pairs bounds and assumption-stating point
estimates that scale to 10^6 statements) and models.prior.similarity (near-duplicate clusters).
This module is the boundary: pydantic validates outside input here and nowhere else, and
`prior_report` asks models.prior.engine which engine applies (the one place that chooses), so the CLI
and the F(Z) score get one answer.

Why a report rather than a number: credences on small pieces do not determine P(Z); they bound it.
The exact interval is the honest answer when the linked groups are small enough; the scalable
bounds are always shown beside the point estimates so a reader sees how much an assumption adds.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kb.formats.jsonl import first_validation_problem, read_jsonl_lines
from kb.importing import ImportProblem
from kb.labels import current_credences_in_library
from kb.progress import NoProgress
from kb.tree import node_texts
from models.prior.bounds import Estimate, clustered, independence
from models.prior.engine import choose_engine
from models.prior.exact import COHERENCE_TOL, Coherence, Credence, Interval
from models.prior.similarity import DEFAULT_THRESHOLD, cluster_texts


class CredenceRecord(BaseModel):
    """One line of a credence file: P(all of `statements` true) = p."""

    model_config = ConfigDict(extra="allow")

    statements: list[str] = Field(min_length=1)
    p: float

    @field_validator("statements")
    @classmethod
    def _named(cls, statements: list[str]) -> list[str]:
        if any(not name.strip() for name in statements):
            raise ValueError("statement names must be non-empty strings")
        return statements

    @field_validator("p")
    @classmethod
    def _probability(cls, p: float) -> float:
        if not math.isfinite(p) or not 0.0 <= p <= 1.0:
            raise ValueError("must be a finite probability in [0, 1]")
        return p


def read_credences(path: Path) -> list[Credence]:
    """All credences in a JSONL file, or ImportProblem naming the first bad line (FILE:LINE: FIELD: REASON)."""
    credences = []
    for parsed in read_jsonl_lines(path, NoProgress(), f"reading {path.name}"):
        if isinstance(parsed, ImportProblem):
            raise parsed
        number, value = parsed
        if not isinstance(value, dict):
            raise ImportProblem(str(path), number, "-", f"expected a JSON object, got {type(value).__name__}")
        try:
            record = CredenceRecord.model_validate(value, strict=False)
        except ValidationError as error:
            raise first_validation_problem(str(path), number, error) from error
        if isinstance(value.get("p"), bool):
            raise ImportProblem(str(path), number, "p", "must be a number, not true/false")
        credences.append(Credence(frozenset(record.statements), record.p, label=f"line {number}"))
    if not credences:
        raise ImportProblem(str(path), 0, "-", "no credences found: the file is empty")
    return credences


@dataclass(frozen=True)
class StoredCredences:
    """One labeler's current credences in a library, plus their direct credence on the whole library."""

    labeler: str
    credences: list[Credence]
    library_credence: float | None
    texts: dict[str, str]


def load_workspace_credences(
    conn: sqlite3.Connection, library_id: int, labeler: str | None = None
) -> list[StoredCredences]:
    """People's current credences per labeler (kb.labels decides which are current; model credences stay out)."""
    by_labeler: dict[str, StoredCredences] = {}
    for credence in current_credences_in_library(conn, library_id, labeler=labeler):
        who = credence.labeler
        entry = by_labeler.setdefault(who, StoredCredences(who, [], None, {}))
        if credence.is_library:
            by_labeler[who] = StoredCredences(who, entry.credences, float(credence.p), entry.texts)
            continue
        entry.credences.append(Credence(frozenset(credence.statements), float(credence.p), label=credence.uid))
    for who, entry in by_labeler.items():
        texts = node_texts(conn, library_id, {s for c in entry.credences for s in c.statements})
        by_labeler[who] = StoredCredences(who, entry.credences, entry.library_credence, texts)
    return [by_labeler[who] for who in sorted(by_labeler)]


@dataclass(frozen=True)
class PriorReport:
    """What the credences imply about P(all of `query` true).

    `interval` is exact when `method` is "exact LP", otherwise the tightest scalable bounds.
    `coherence` is exact with the LP; with scalable bounds it checks pairwise necessary conditions
    only and `nearest` is left empty.
    """

    query: frozenset[str]
    method: str
    interval: Interval
    coherence: Coherence
    estimates: list[Estimate] = field(default_factory=list)


def prior_report(
    credences: Sequence[Credence],
    query: Iterable[str] | None = None,
    *,
    texts: dict[str, str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    tol: float = COHERENCE_TOL,
) -> PriorReport:
    """Every estimate of P(all of `query` true): the exact interval when it fits, scalable bounds, point estimates.

    Scalable bounds and point estimates use the singles and pairs inside the query (of the nearest
    coherent set when the LP finds the credences incoherent). The clustered
    estimate needs `texts` (statement -> text); without them statement names are compared instead.
    """
    wanted = frozenset(query) if query is not None else frozenset(s for c in credences for s in c.statements)
    names = sorted(wanted)
    answer = choose_engine(credences, wanted, tol=tol)
    data = answer.pairwise
    estimates = [*answer.bounds, independence(data)]
    labels_text = [(texts or {}).get(name, name) for name in names]
    pair_edges = (data.pair_i, data.pair_j)
    estimates.append(
        clustered(data, cluster_texts(labels_text, threshold=threshold, extra_pairs=pair_edges), threshold)
    )
    return PriorReport(wanted, answer.method, answer.interval, answer.coherence, estimates)
