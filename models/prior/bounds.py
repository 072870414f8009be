"""Bounds and estimates for P(all statements true) from singles and pairs, for 10^4–10^6 statements.

The exact LP needs 2^m atoms, so for a whole library we use only what scales: one credence per
statement and some pair credences, held in flat NumPy arrays. Every function is a few vectorised
passes (plus one sparse spanning tree), so 10^6 statements with 10^6 pairs take seconds.

Bounds assume nothing beyond the credences; each is valid for every distribution that matches them:

* Fréchet: ``max(0, 1 - Σ(1 - p_i)) ≤ P ≤ min p_i`` (Boole's inequality on the negations).
* Pairwise minimum: ``P ≤ min p_ij`` — any conjunction of some statements bounds the whole above.
* Hunter: ``P(∪ ¬A_i) ≤ Σ P(¬A_i) - Σ_{(i,j) ∈ T} P(¬A_i ∧ ¬A_j)`` for any spanning tree T; the
  maximum spanning tree on weights ``1 - p_i - p_j + p_ij`` gives the best such lower bound on P.
  With only some pairs known the tree is a forest, which is still valid (dropped edges weigh ≥ 0).

Point estimates state their assumption, because the credences alone never give a point:
independence (the product of singles), and near-duplicate clusters treated as one statement each
(see models.prior.similarity). Products of 10^6 factors underflow, so estimates carry log10 too.

A statement without its own credence gets ``p_i ≥ max_j p_ij`` where that is needed for a valid
lower bound, is left out of upper bounds, and is left out of point estimates (the count is reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class PairwiseCredences:
    """Singles (`single[i]`, NaN when statement i has none) and pair credences P(A_i ∧ A_j) = pair_p."""

    single: NDArray[np.float64]
    pair_i: NDArray[np.int64]
    pair_j: NDArray[np.int64]
    pair_p: NDArray[np.float64]

    @property
    def m(self) -> int:
        return len(self.single)


@dataclass(frozen=True)
class Estimate:
    """A bound (lower < upper in general) or a point (lower == upper) with the assumption it rests on."""

    name: str
    kind: str  # "bound" or "point"
    assumption: str
    lower: float
    upper: float
    log10: float | None = None  # log10 of a point estimate, which may underflow to 0.0
    note: str = ""


def _lower_singles(data: PairwiseCredences) -> NDArray[np.float64]:
    """Per-statement values safe for lower bounds: the credence, else the largest pair it is in, else 0."""
    known = np.where(np.isnan(data.single), 0.0, data.single)
    if len(data.pair_p):
        np.maximum.at(known, data.pair_i, data.pair_p)
        np.maximum.at(known, data.pair_j, data.pair_p)
    return np.where(np.isnan(data.single), known, data.single)


def frechet(data: PairwiseCredences) -> Estimate:
    low = max(0.0, 1.0 - float(np.sum(1.0 - _lower_singles(data))))
    known = data.single[~np.isnan(data.single)]
    high = float(known.min()) if len(known) else 1.0
    return Estimate("frechet", "bound", "none (singles only)", min(low, high), high)


def pair_minimum(data: PairwiseCredences) -> Estimate:
    known = data.single[~np.isnan(data.single)]
    candidates = [float(data.pair_p.min())] if len(data.pair_p) else []
    candidates += [float(known.min())] if len(known) else []
    high = min(candidates, default=1.0)
    return Estimate("pair_minimum", "bound", "none (the smallest pair or single credence)", 0.0, high)


def hunter_weight(data: PairwiseCredences) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Deduplicated edges i < j with weight P(¬A_i ∧ ¬A_j) > 0; edges touching an unknown single are dropped."""
    i, j, p = data.pair_i, data.pair_j, data.pair_p
    keep = (i != j) & ~np.isnan(data.single[i]) & ~np.isnan(data.single[j])
    i, j, p = np.minimum(i, j)[keep], np.maximum(i, j)[keep], p[keep]
    weight = 1.0 - data.single[i] - data.single[j] + p
    # Incoherent pairs can claim more than a negation holds; cap so no edge over-counts.
    weight = np.minimum(weight, np.minimum(1.0 - data.single[i], 1.0 - data.single[j]))
    positive = weight > 0
    i, j, weight = i[positive], j[positive], weight[positive]
    if len(weight) == 0:
        return i, j, weight
    order = np.lexsort((-weight, j, i))
    i, j, weight = i[order], j[order], weight[order]
    first = np.ones(len(i), dtype=bool)
    first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    return i[first], j[first], weight[first]


def hunter(data: PairwiseCredences) -> Estimate:
    i, j, weight = hunter_weight(data)
    tree_weight = 0.0
    if len(weight):
        from scipy.sparse import coo_matrix  # SciPy loads at the first bound, not with the app
        from scipy.sparse.csgraph import minimum_spanning_tree

        graph = coo_matrix((-weight, (i, j)), shape=(data.m, data.m)).tocsr()
        tree_weight = -float(minimum_spanning_tree(graph).sum())
    low = max(0.0, 1.0 - float(np.sum(1.0 - _lower_singles(data))) + tree_weight)
    return Estimate(
        "hunter",
        "bound",
        "none (singles and pairs; maximum spanning tree of P(¬A_i ∧ ¬A_j))",
        low,
        1.0,
        note=f"tree over {len(weight):,} usable pairs",
    )


def _point(name: str, assumption: str, log_p: float, note: str) -> Estimate:
    value = math.exp(log_p) if log_p > -745 else 0.0
    return Estimate(name, "point", assumption, value, value, log10=log_p / math.log(10), note=note)


def _log(values: NDArray[np.float64]) -> float:
    with np.errstate(divide="ignore"):
        return float(np.sum(np.log(values)))


def independence(data: PairwiseCredences) -> Estimate:
    known = data.single[~np.isnan(data.single)]
    missing = data.m - len(known)
    return _point(
        "independence",
        "all statements are independent (product of the single credences)",
        _log(known),
        f"{missing:,} statements without a single credence left out" if missing else "",
    )


def clustered(data: PairwiseCredences, labels: NDArray[np.int64], threshold: float) -> Estimate:
    """Each cluster counts once, at its least credible member; clusters are independent of each other.

    Within a cluster the statements are taken as the same claim in other words (perfectly
    correlated), so P(all of them) is the smallest of their credences.
    """
    known = ~np.isnan(data.single)
    clusters = np.unique(labels[known], return_inverse=True)[1]
    least = np.ones(int(clusters.max()) + 1 if len(clusters) else 0)
    np.minimum.at(least, clusters, data.single[known])
    return _point(
        "near_duplicate_clusters",
        f"statements with near-duplicate texts (TF-IDF cosine ≥ {threshold:g}) are one claim; "
        "different clusters are independent",
        _log(least),
        f"{data.m:,} statements in {len(least):,} clusters",
    )


def pairwise_violations(data: PairwiseCredences, tol: float = 1e-7) -> NDArray[np.int64]:
    """Indices of pair credences that no distribution allows with their singles: p_ij ≤ min(p_i, p_j), ≥ p_i + p_j - 1.

    These are necessary conditions only; for large libraries they are the coherence check we can afford.
    """
    pi = np.where(np.isnan(data.single[data.pair_i]), 1.0, data.single[data.pair_i])
    pj = np.where(np.isnan(data.single[data.pair_j]), 1.0, data.single[data.pair_j])
    low_i = np.where(np.isnan(data.single[data.pair_i]), 0.0, data.single[data.pair_i])
    low_j = np.where(np.isnan(data.single[data.pair_j]), 0.0, data.single[data.pair_j])
    bad = (data.pair_p > np.minimum(pi, pj) + tol) | (data.pair_p < low_i + low_j - 1.0 - tol)
    return np.flatnonzero(bad).astype(np.int64)


def scalable_bounds(data: PairwiseCredences) -> list[Estimate]:
    """Every bound, tightest combination last: lower is Hunter's (≥ Fréchet's), upper the pairwise minimum."""
    bounds = [frechet(data), pair_minimum(data), hunter(data)]
    low = max(b.lower for b in bounds)
    high = min(b.upper for b in bounds)
    bounds.append(Estimate("best_scalable", "bound", "none (tightest of the bounds above)", min(low, high), high))
    return bounds
