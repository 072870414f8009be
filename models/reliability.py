"""Reliability bins and expected calibration error, written once for every probability the project grades.

M_Z's true/false judgements (`navigator llm calibrate`), the imitation model's confidence (its
training report), each labeler against train gold (agreement) and the metrics screen all bin
stated probabilities into equal-width bins — [i/b, (i+1)/b), with 1.0 in the top bin — and
compare each bin's mean with how often what was stated came true. One rule, so their figures
can be compared with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

BINS = 10


@dataclass(frozen=True)
class ReliabilityBin:
    """Stated probabilities in [low, high): how many, their mean, and the share that came true."""

    low: float
    high: float
    n: int
    stated: float
    true: float


def reliability(stated: ArrayLike, true: ArrayLike, bins: int = BINS) -> list[ReliabilityBin]:
    """The non-empty bins of `stated` probabilities, each with the mean of `true` (1/0, or a share) inside it."""
    p = np.asarray(stated, dtype=np.float64)
    outcome = np.asarray(true, dtype=np.float64)
    index = np.clip((p * bins).astype(int), 0, bins - 1)
    table = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            table.append(
                ReliabilityBin(
                    b / bins, (b + 1) / bins, int(inside.sum()), float(p[inside].mean()), float(outcome[inside].mean())
                )
            )
    return table


def calibration_error(table: Sequence[ReliabilityBin]) -> float | None:
    """Σ_bins (n_bin / n) · |mean stated − share true|; None for an empty table (nothing to grade)."""
    total = sum(row.n for row in table)
    return sum(row.n * abs(row.stated - row.true) for row in table) / total if total else None


def expected_calibration_error(stated: ArrayLike, true: ArrayLike, bins: int = BINS) -> float:
    """The calibration error of these probabilities (0 when there are none)."""
    return calibration_error(reliability(stated, true, bins)) or 0.0
