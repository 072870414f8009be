"""Numbers as a person reads them in a question, its options and the text of a node.

Labelers answer "what is the population of X?" by reading "19,091,343 (2025 est.)" and
seeing which band it falls in; "low (under $9,900), middle, or high ($32,300 and over)"
by comparing a figure with the cut points the question states. A bag of words sees
"19" and "091" and cannot compare anything, so the reader learner gets these numbers
as values: the first figure of a node's text, the cut points stated in the question and
its options, and the range of values each option stands for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_FIGURE = r"\d[\d,]*(?:\.\d+)?"
_SCALE_WORD = r"(?:\s*(thousand|million|billion|trillion)\b)?"
# "1 to 10 million": the scale word after the second figure applies to both.
_RANGE = re.compile(rf"({_FIGURE})\s*(?:to|-|–)\s*({_FIGURE})\s*(thousand|million|billion|trillion)\b", re.IGNORECASE)
_NUMBER = re.compile(rf"(?<![\w.])({_FIGURE}){_SCALE_WORD}", re.IGNORECASE)
_BELOW = re.compile(r"\b(under|below|less than|fewer than|up to)\b", re.IGNORECASE)
_ABOVE = re.compile(r"\b(over|above|more than|at least|or more|and over|and above)\b", re.IGNORECASE)

Range = tuple[float, float]  # [low, high)


def _value(figure: str, scale: str | None) -> float | None:
    digits = figure.replace(",", "")
    try:
        value = float(digits)
    except ValueError:
        return None
    value *= _SCALE[scale.lower()] if scale else 1.0
    return value if math.isfinite(value) else None


def numbers(text: str) -> list[float]:
    """Every figure in `text`, in order, with thousand/million/billion/trillion applied."""
    found: list[tuple[int, float]] = []
    covered: list[tuple[int, int]] = []
    for match in _RANGE.finditer(text):
        low, high = _value(match[1], match[3]), _value(match[2], match[3])
        found += [(match.start(1), v) for v in (low,) if v is not None]
        found += [(match.start(2), v) for v in (high,) if v is not None]
        covered.append(match.span())
    for match in _NUMBER.finditer(text):
        if any(start <= match.start() < end for start, end in covered):
            continue
        value = _value(match[1], match[2])
        if value is not None:
            found.append((match.start(), value))
    return [value for _, value in sorted(found, key=lambda pair: pair[0])]


def first_number(text: str) -> float | None:
    """The figure a field leads with ("$30,200 (2024 est.)" → 30200), or None."""
    found = numbers(text)
    return found[0] if found else None


def cut_points(x: str, options: Sequence[str]) -> list[float]:
    """The thresholds stated in the question and its options, ascending, without repeats."""
    values = set(numbers(x))
    for option in options:
        values.update(numbers(option))
    return sorted(values)


def option_ranges(x: str, options: Sequence[str]) -> list[Range] | None:
    """The range of values each option stands for, or None when the item does not say.

    Options that carry their own figures say it themselves ("under 1 million", "1 to 10
    million", "over 100 million"). Otherwise, when the question states one cut point fewer
    than there are options ("low (under $9,900), middle, or high ($32,300 and over)"), the
    options are read as consecutive bands in the order listed, lowest first.
    """
    own: list[Range] = []
    for option in options:
        figures = numbers(option)
        if not figures:
            break
        if len(figures) >= 2:
            own.append((min(figures[:2]), max(figures[:2])))
        elif _BELOW.search(option):
            own.append((-math.inf, figures[0]))
        elif _ABOVE.search(option):
            own.append((figures[0], math.inf))
        else:
            break
    if len(own) == len(options):
        return own
    cuts = sorted(set(numbers(x)))
    if len(options) >= 2 and len(cuts) == len(options) - 1:
        edges = [-math.inf, *cuts, math.inf]
        return [(edges[i], edges[i + 1]) for i in range(len(options))]
    return None


def band(value: float, cuts: Sequence[float]) -> int:
    """How many cut points `value` reaches: 0 below them all, len(cuts) at or above them all."""
    return sum(value >= cut for cut in cuts)
