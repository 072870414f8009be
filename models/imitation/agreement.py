"""How far labelers agree, where they disagree, and how good each one is against gold.

A labeling team is only worth its labels if they are reproducible. This module measures it
on the labelers' current predictions made with one library (kb.labels is the only reader
of label rows), per task and overall, each figure with the sample it rests on:

- **Krippendorff's alpha** (nominal) on each label's top choice, from the maintained
  `krippendorff` package. A label whose top probability is tied has no top choice and is
  left out (counted). Overall, an option of one task is never the same value as an option of
  another, so tasks pool without mixing. Alpha is undefined when no item has two top
  choices or every top choice is the same option; it is then None with the reason.
- **Mean pairwise Jensen–Shannon distance** (base 2, so 0 = identical, 1 = disjoint) between
  the probability vectors of every pair of labelers on every item they both labelled: it sees
  disagreement in confidence that top choices hide.
- **Each labeler against gold** on train items, by models.scoring's rules (the ones `navigator
  evaluate`, the study and the trainer's report use): mean log score ln P(gold) (floored at
  1e-6, as F(Z) is), accuracy (a tied top choice earns its share), Brier score, and the expected calibration
  error over every stated probability in ten bins (the same bins as the metrics screen's
  calibration plot). Labelers are ranked by log score.

Adjudications (kb.labels: the lead's ruling after seeing the others' labels) are left out of
every figure here: they are not independent judgements. Simulated labelers keep their
`simulated:` names and are marked as simulated.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations

import krippendorff
import numpy as np

from kb.items import Item, gold, items_in
from kb.labels import HUMAN, SIMULATED, Prediction, current_predictions_in_library, is_simulated
from kb.libraries import Library
from models.reliability import ReliabilityBin, calibration_error, reliability
from models.scoring import score_answer

LABELLED_SPLITS = ("train", "validation")
OVERALL = "(all tasks)"


@dataclass(frozen=True)
class Agreement:
    """Agreement among labelers on the items of one task (or all tasks) that two or more labelled."""

    task: str
    n_items: int  # items with labels from at least two labelers
    n_labels: int  # labels on those items
    n_labelers: int
    alpha: float | None
    alpha_items: int  # items with at least two top choices: the units alpha is computed on
    no_top_choice: int  # labels on those items whose top probability is tied
    js_distance: float | None  # mean over pairs of labels on one item
    js_pairs: int
    note: str = ""


@dataclass(frozen=True)
class PairAgreement:
    """Two labelers on the items they both labelled."""

    first: str
    second: str
    n_items: int
    js_distance: float
    same_top_choice: float  # share of shared items where both top choices exist and are equal


@dataclass(frozen=True)
class LabelerScore:
    """One labeler against gold on train items; `n_train` is the sample size of every figure."""

    labeler: str
    source: str  # 'human' or 'simulated'
    n_labels: int  # current labels in the splits measured
    n_train: int
    log_score: float | None
    accuracy: float | None
    brier: float | None
    calibration_error: float | None
    n_probabilities: int  # stated probabilities behind the calibration error
    bins: list[ReliabilityBin] = field(default_factory=list)
    rank: int | None = None

    @property
    def simulated(self) -> bool:
        return is_simulated(self.source)


@dataclass(frozen=True)
class AgreementReport:
    library: str
    splits: tuple[str, ...]
    tasks: list[Agreement]
    overall: Agreement
    pairs: list[PairAgreement]
    labelers: list[LabelerScore]
    n_adjudications: int  # left out of every figure


@dataclass(frozen=True)
class Disagreement:
    """One item two or more labelers labelled differently, with everything needed to see why."""

    item: Item
    js_distance: float  # mean over pairs of labelers
    top_choices: dict[str, str | None]  # labeler → top choice (None: tied)
    labels: list[Prediction]  # one per labeler, sorted by labeler
    adjudication: Prediction | None

    @property
    def split_top_choice(self) -> bool:
        return len(set(self.top_choices.values())) > 1


def top_choice(probs: dict[str, float], options: Sequence[str]) -> str | None:
    """The option with the highest probability, or None when two share it."""
    best = max(probs.get(option, 0.0) for option in options)
    winners = [option for option in options if math.isclose(probs.get(option, 0.0), best, abs_tol=1e-9)]
    return winners[0] if len(winners) == 1 else None


def js_distance(first: dict[str, float], second: dict[str, float], options: Sequence[str]) -> float:
    p = np.array([first.get(option, 0.0) for option in options], dtype=np.float64)
    q = np.array([second.get(option, 0.0) for option in options], dtype=np.float64)
    from scipy.spatial.distance import jensenshannon  # SciPy's spatial package costs ~0.2 s at the app's start

    return float(jensenshannon(p, q, base=2.0))


def nominal_alpha(units: Sequence[Sequence[str | None]]) -> tuple[float | None, int, str]:
    """(alpha, pairable units, why None) for units of values given by different coders; None values are missing."""
    values = sorted({value for unit in units for value in unit if value is not None})
    index = {value: position for position, value in enumerate(values)}
    rows = []
    for unit in units:
        present = [value for value in unit if value is not None]
        if len(present) >= 2:
            counts = [0] * len(values)
            for value in present:
                counts[index[value]] += 1
            rows.append(counts)
    if not rows:
        return None, 0, "no item has two top choices"
    used = {value for row in rows for value, count in zip(values, row, strict=True) if count}
    if len(used) < 2:
        return None, len(rows), f"every top choice is {sorted(used)[0]!r}: alpha is undefined without variation"
    alpha = float(krippendorff.alpha(value_counts=np.array(rows), level_of_measurement="nominal"))
    return (None if math.isnan(alpha) else alpha), len(rows), ""


def _shared(labels: Iterable[Prediction]) -> dict[int, list[Prediction]]:
    """item id → its labels, for items with labels from at least two labelers."""
    by_item: dict[int, list[Prediction]] = {}
    for label in labels:
        by_item.setdefault(label.item_id, []).append(label)
    return {item_id: sorted(group, key=lambda p: p.labeler) for item_id, group in by_item.items() if len(group) >= 2}


def _agreement(task: str, shared: dict[int, list[Prediction]], items: dict[int, Item], key_of_value: bool) -> Agreement:
    units: list[list[str | None]] = []
    distances: list[float] = []
    no_top = 0
    labelers: set[str] = set()
    for item_id, group in shared.items():
        item = items[item_id]
        unit: list[str | None] = []
        for label in group:
            choice = top_choice(label.probs, item.options)
            no_top += choice is None
            # Overall, options of different tasks must never count as the same value.
            unit.append(None if choice is None else (f"{item.task}\x1f{choice}" if key_of_value else choice))
            labelers.add(label.labeler)
        units.append(unit)
        distances += [js_distance(a.probs, b.probs, item.options) for a, b in combinations(group, 2)]
    alpha, alpha_items, note = nominal_alpha(units)
    return Agreement(
        task=task,
        n_items=len(shared),
        n_labels=sum(len(group) for group in shared.values()),
        n_labelers=len(labelers),
        alpha=alpha,
        alpha_items=alpha_items,
        no_top_choice=no_top,
        js_distance=float(np.mean(distances)) if distances else None,
        js_pairs=len(distances),
        note=note if shared else "no item was labelled by two labelers",
    )


def _pairs(shared: dict[int, list[Prediction]], items: dict[int, Item]) -> list[PairAgreement]:
    found: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for item_id, group in shared.items():
        item = items[item_id]
        for a, b in combinations(group, 2):
            top_a, top_b = top_choice(a.probs, item.options), top_choice(b.probs, item.options)
            same = top_a is not None and top_a == top_b
            found.setdefault((a.labeler, b.labeler), []).append((js_distance(a.probs, b.probs, item.options), same))
    return [
        PairAgreement(
            first,
            second,
            len(values),
            float(np.mean([d for d, _ in values])),
            float(np.mean([same for _, same in values])),
        )
        for (first, second), values in sorted(found.items())
    ]


def _labeler_scores(
    conn: sqlite3.Connection, labels: Sequence[Prediction], items: dict[int, Item]
) -> list[LabelerScore]:
    golds = {item_id: gold(conn, item) for item_id, item in items.items() if item.split == "train"}
    by_labeler: dict[str, list[Prediction]] = {}
    for label in labels:
        by_labeler.setdefault(label.labeler, []).append(label)
    scores = []
    for labeler, own in sorted(by_labeler.items()):
        logs: list[float] = []
        hits: list[float] = []
        briers: list[float] = []
        stated: list[tuple[float, bool]] = []
        for label in own:
            answer = golds.get(label.item_id)
            if answer is None:
                continue
            options = items[label.item_id].options
            scored = score_answer(label.probs, answer, options)  # the one rule: a tie earns its share
            logs.append(-scored.log_loss)
            hits.append(scored.correct)
            briers.append(scored.brier)
            stated += [(label.probs.get(o, 0.0), o == answer) for o in options]
        bins = reliability([p for p, _ in stated], [float(gold) for _, gold in stated])
        scores.append(
            LabelerScore(
                labeler=labeler,
                source=SIMULATED if any(is_simulated(label.source) for label in own) else HUMAN,
                n_labels=len(own),
                n_train=len(logs),
                log_score=float(np.mean(logs)) if logs else None,
                accuracy=float(np.mean(hits)) if hits else None,
                brier=float(np.mean(briers)) if briers else None,
                calibration_error=calibration_error(bins),
                n_probabilities=len(stated),
                bins=bins,
            )
        )
    ranked = sorted((s for s in scores if s.log_score is not None), key=lambda s: (-(s.log_score or 0.0), s.labeler))
    ranks = {s.labeler: position for position, s in enumerate(ranked, start=1)}
    ordered = sorted(scores, key=lambda s: (s.labeler not in ranks, ranks.get(s.labeler, 0), s.labeler))
    return [replace(s, rank=ranks.get(s.labeler)) for s in ordered]


def _labels(
    conn: sqlite3.Connection, library: Library, splits: Sequence[str], task: str | None
) -> tuple[dict[int, Item], list[Prediction], list[Prediction]]:
    """(items of the splits, their independent labels, adjudications), optionally for one task."""
    items = {item.id: item for item in items_in(conn, tuple(splits)) if task is None or item.task == task}
    current = [label for label in current_predictions_in_library(conn, library.id) if label.item_id in items]
    return items, [p for p in current if not p.adjudication], [p for p in current if p.adjudication]


def agreement(
    conn: sqlite3.Connection, library: Library, *, splits: Sequence[str] = LABELLED_SPLITS, task: str | None = None
) -> AgreementReport:
    """Agreement per task and overall, per pair of labelers, and each labeler against train gold."""
    items, labels, adjudications = _labels(conn, library, splits, task)
    shared = _shared(labels)
    by_task: dict[str, dict[int, list[Prediction]]] = {}
    for item_id, group in shared.items():
        by_task.setdefault(items[item_id].task, {})[item_id] = group
    return AgreementReport(
        library=library.name,
        splits=tuple(splits),
        tasks=[_agreement(name, group, items, False) for name, group in sorted(by_task.items())],
        overall=_agreement(task or OVERALL, shared, items, True),
        pairs=_pairs(shared, items),
        labelers=_labeler_scores(conn, labels, items),
        n_adjudications=len(adjudications),
    )


def disagreements(
    conn: sqlite3.Connection,
    library: Library,
    *,
    splits: Sequence[str] = LABELLED_SPLITS,
    task: str | None = None,
    limit: int | None = None,
) -> list[Disagreement]:
    """Items whose labelers disagree (mean pairwise JS distance > 0), the most first; items the lead
    has already adjudicated come after the open ones. Ties go by item uid, so the list is stable."""
    items, labels, adjudications = _labels(conn, library, splits, task)
    ruled = {label.item_id: label for label in adjudications}
    found = []
    for item_id, group in _shared(labels).items():
        item = items[item_id]
        distances = [js_distance(a.probs, b.probs, item.options) for a, b in combinations(group, 2)]
        mean = float(np.mean(distances))
        if mean <= 1e-12:
            continue
        tops = {label.labeler: top_choice(label.probs, item.options) for label in group}
        found.append(Disagreement(item, mean, tops, group, ruled.get(item_id)))
    found.sort(key=lambda d: (d.adjudication is not None, -round(d.js_distance, 12), d.item.uid))
    return found[:limit] if limit is not None else found


def skill_weights(report: AgreementReport, *, minimum_train: int = 10) -> dict[str, float]:
    """labeler → weight for the trainer (models.imitation.trainer.train's `labeler_weights`), from skill on train gold.

    A labeler's skill is the geometric-mean probability they put on gold, exp(mean log score): a
    proper score, so it rewards calibration and sharpness and cannot be gamed by hedging. Weights are
    divided by their mean, so an average labeler counts once. Labelers with fewer than
    `minimum_train` train labels are not named (the trainer counts them once): too few to judge.
    """
    skill = {
        score.labeler: math.exp(score.log_score)
        for score in report.labelers
        if score.log_score is not None and score.n_train >= minimum_train
    }
    if not skill:
        return {}
    mean = sum(skill.values()) / len(skill)
    return {labeler: value / mean for labeler, value in sorted(skill.items())}
