"""Scoring a probability vector against the right answer: accuracy, log loss and Brier, and the tie rule.

One rule for every report (the study, `navigator evaluate`), so the same labeler or model gets the
same numbers wherever they are shown:

- **accuracy** of one answer is 1 when the gold option alone has the highest probability, 1/k when
  it is one of k options tied for the highest (a tie is a coin the answerer did not toss, so it
  earns the coin's expected score), and 0 otherwise;
- **log loss** is −ln P(gold), with P floored at LOG_FLOOR so one confident miss stays finite;
- **Brier** is Σ over the options of (P(option) − 1[option is gold])², from 0 (certain and right)
  to 2 (certain and wrong).

Probabilities are read as given (a missing option is 0); ties are judged within TIE_TOLERANCE.

The same rules hold where the answer to match is itself a distribution (a labeler's label, which the
trainer's report compares the model with): `score_rows` splits a tie on both sides, takes log loss
as cross-entropy and Brier as the squared distance, and gives exactly `score_answer` on a one-hot
row. F(Z)'s log P(gold) (`log_score`) floors at the same LOG_FLOOR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

LOG_FLOOR = 1e-6
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ItemScore:
    correct: float  # 1, 1/k for a k-way tie that includes gold, or 0
    log_loss: float
    brier: float


def score_answer(probs: Mapping[str, float], gold: str, options: Sequence[str] | None = None) -> ItemScore:
    """One answer against gold, by the rules above; `options` defaults to the options `probs` names."""
    names = list(options) if options is not None else list(probs)
    if gold not in names:
        names.append(gold)
    values = {option: float(probs.get(option, 0.0)) for option in names}
    best = max(values.values())
    tied = [option for option, p in values.items() if math.isclose(p, best, abs_tol=TIE_TOLERANCE)]
    correct = 1.0 / len(tied) if gold in tied else 0.0
    log_loss = -math.log(max(values[gold], LOG_FLOOR))
    brier = sum((p - (1.0 if option == gold else 0.0)) ** 2 for option, p in values.items())
    return ItemScore(correct, log_loss, brier)


def log_score(p: float) -> float:
    """ln P(gold), floored at LOG_FLOOR: the log loss's negative, for sums such as F(Z)."""
    return math.log(max(float(p), LOG_FLOOR))


@dataclass(frozen=True)
class RowScores:
    correct: NDArray[np.float64]
    log_loss: NDArray[np.float64]
    brier: NDArray[np.float64]


def score_rows(predicted: NDArray[np.float64], targets: NDArray[np.float64]) -> RowScores:
    """Each row of `predicted` against the same row of `targets` (distributions over the same options).

    `correct` is the chance that the predicted top choice is the target's top choice when each tie is
    broken by a fair coin: |both tied sets| / (|predicted's| · |target's|)."""
    tied_predicted = np.isclose(predicted, predicted.max(axis=1, keepdims=True), rtol=0.0, atol=TIE_TOLERANCE)
    tied_target = np.isclose(targets, targets.max(axis=1, keepdims=True), rtol=0.0, atol=TIE_TOLERANCE)
    shared = (tied_predicted & tied_target).sum(axis=1)
    correct = shared / (tied_predicted.sum(axis=1) * tied_target.sum(axis=1))
    log_loss = -(targets * np.log(np.maximum(predicted, LOG_FLOOR))).sum(axis=1)
    brier = ((predicted - targets) ** 2).sum(axis=1)
    return RowScores(correct.astype(np.float64), log_loss.astype(np.float64), brier.astype(np.float64))
