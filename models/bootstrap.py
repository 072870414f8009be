"""95 % intervals for a mean over items, by the percentile bootstrap, reproducible from a seed.

Items are the unit that was sampled (D* was split into validation and prediction at random), so
items are what is resampled. A paired difference (imitation − naive on the same items) is
resampled as pairs: the interval then reflects that both systems answered the same questions.
With too few items for an interval to mean anything (MIN_ITEMS), there is none, and reports say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000
MIN_ITEMS = 5


@dataclass(frozen=True)
class Estimate:
    """A mean over n items and its 95 % bootstrap interval (None when n < MIN_ITEMS)."""

    value: float
    low: float | None
    high: float | None
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def text(self, digits: int = 3, signed: bool = False) -> str:
        sign = "+" if signed else ""
        if self.low is None or self.high is None:
            return f"{self.value:{sign}.{digits}f} (no interval at n = {self.n})"
        low, high = f"{self.low:{sign}.{digits}f}", f"{self.high:{sign}.{digits}f}"
        return f"{self.value:{sign}.{digits}f} [{low}, {high}], n = {self.n}"


def mean_interval(values: Sequence[float] | np.ndarray, *, seed: int, resamples: int = RESAMPLES) -> Estimate:
    """The mean of `values` with its percentile bootstrap interval; the same seed gives the same interval."""
    data = np.asarray(values, dtype=np.float64)
    n = len(data)
    if n == 0:
        return Estimate(float("nan"), None, None, 0)
    mean = float(data.mean())
    if n < MIN_ITEMS:
        return Estimate(mean, None, None, n)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    means = data[draws].mean(axis=1)
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Estimate(mean, float(low), float(high), n)


def paired_difference(
    first: Sequence[float], second: Sequence[float], *, seed: int, resamples: int = RESAMPLES
) -> Estimate:
    """mean(first − second) over the same items, with the interval of the paired bootstrap."""
    if len(first) != len(second):
        raise ValueError(f"a paired difference needs the same items on both sides, got {len(first)} and {len(second)}")
    differences = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    return mean_interval(differences, seed=seed, resamples=resamples)
