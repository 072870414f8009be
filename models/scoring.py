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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
