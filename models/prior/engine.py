"""Which P(Z) engine answers, chosen here and nowhere else: the exact LP when it fits, else scalable bounds.

Both `navigator prior` (models.prior.report.prior_report) and the F(Z) score (models.imitation.score) ask this module,
so the same credences get the same method, interval and coherence verdict wherever they are shown.
The exact LP (models.prior.exact) is tried unless the caller caps the number of statements; when a
linked group is too big for it, or over the cap, the singles-and-pairs bounds (models.prior.bounds)
answer instead and coherence is checked on pairs only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.prior.bounds import Estimate, PairwiseCredences, pairwise_violations, scalable_bounds
from models.prior.exact import (
    COHERENCE_TOL,
    Coherence,
    Credence,
    ExactResult,
    Interval,
    TooManyStatements,
    exact_interval,
)

EXACT_METHOD = "exact LP"
BOUNDS_METHOD = "scalable bounds"


@dataclass(frozen=True)
class EngineAnswer:
    """The interval for P(all of the statements true), the method that gave it, and what the bounds used.

    `bounds` lists the exact interval first (when the LP answered) and then every scalable bound;
    `pairwise` holds the singles and pairs they read (of the nearest coherent credences when the LP
    found the credences incoherent); `unused` counts credences on 3+ statements the bounds cannot read.
    """

    method: str
    interval: Interval
    coherence: Coherence
    pairwise: PairwiseCredences
    bounds: list[Estimate]
    unused: int


def pairwise_credences(credences: Sequence[Credence], names: Sequence[str]) -> tuple[PairwiseCredences, int]:
    """The singles and pairs among `names` as flat arrays, and how many credences on 3+ of them were left out.

    Credences naming a statement outside `names` are skipped; two credences on one statement keep the lower.
    """
    index = {name: i for i, name in enumerate(names)}
    single = np.full(len(names), np.nan)
    pairs: list[tuple[int, int, float]] = []
    larger = 0
    for credence in credences:
        if not credence.statements <= index.keys():
            continue
        members = sorted(index[s] for s in credence.statements)
        if len(members) == 1:
            single[members[0]] = credence.p if np.isnan(single[members[0]]) else min(single[members[0]], credence.p)
        elif len(members) == 2:
            pairs.append((members[0], members[1], credence.p))
        else:
            larger += 1
    i, j, p = (np.array(column) for column in zip(*pairs, strict=True)) if pairs else ([], [], [])
    data = PairwiseCredences(
        single, np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), np.asarray(p, dtype=np.float64)
    )
    return data, larger


def _pairwise_coherence(credences: Sequence[Credence], data: PairwiseCredences, names: Sequence[str]) -> Coherence:
    bad = pairwise_violations(data)
    if len(bad) == 0:
        return Coherence(True, 0.0, nearest=tuple(credences))
    first = int(bad[0])
    involved = {frozenset({names[data.pair_i[first]], names[data.pair_j[first]]})}
    involved |= {frozenset({names[data.pair_i[first]]}), frozenset({names[data.pair_j[first]]})}
    conflict = tuple(c for c in credences if c.statements in involved)
    return Coherence(False, math.nan, conflict, False, ())


def choose_engine(
    credences: Sequence[Credence],
    wanted: frozenset[str],
    *,
    tol: float = COHERENCE_TOL,
    exact_limit: int | None = None,
) -> EngineAnswer:
    """P(all of `wanted` true): the exact LP unless it cannot run (or `wanted` has more than `exact_limit`
    statements), then the tightest scalable bounds."""
    names = sorted(wanted)
    exact: ExactResult | None = None
    if exact_limit is None or len(names) <= exact_limit:
        try:
            exact = exact_interval(credences, wanted, tol=tol)
        except TooManyStatements:
            exact = None
    # Bounds on incoherent credences would contradict the exact answer; use the repair.
    usable = exact.coherence.nearest if exact is not None and not exact.coherence.coherent else credences
    data, unused = pairwise_credences(usable, names)
    bounds = scalable_bounds(data)
    if exact is None:
        best = bounds[-1]
        coherence = _pairwise_coherence(credences, data, names)
        return EngineAnswer(BOUNDS_METHOD, Interval(best.lower, best.upper), coherence, data, bounds, unused)
    note = "" if exact.coherence.coherent else "computed on the nearest coherent credences"
    everything = "none (every distribution over truth assignments that matches the credences)"
    exact_bound = Estimate("exact", "bound", everything, exact.interval.lower, exact.interval.upper, note=note)
    return EngineAnswer(EXACT_METHOD, exact.interval, exact.coherence, data, [exact_bound, *bounds], unused)
