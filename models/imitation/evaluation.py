"""Evaluation against the answer key, and the IID guard.

The comparison the whole method exists for (DESIGN.md §1): on D*_prediction, does the
imitation model (trained on labels people gave on D*_validation while reading Z) beat
the naive baseline (the same learner trained on D's gold labels, i.e. trusting the
learner to generalise out of distribution)? Both are scored with accuracy and log loss
against the answer key, with sample sizes. Simulated labelers' own accuracy on
D*_validation is reported beside them, named as simulated.

The naive baseline learns from D's gold alone, and gold cites no nodes, so it reads Z
through search (no reading plan). A second row gives the same baseline the labelers'
reading plan: what D's gold teaches a learner that already knows where to look — the
part of the imitation model's lead that comes from reading where people read rather
than from training on D*'s own distribution.

The IID guard checks the method's one assumption: D*_prediction must look like
D*_validation. A classifier two-sample test (can a classifier tell the two sets apart
from the trainer's own features?) gives a cross-validated AUC and a permutation p-value.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, permutation_test_score

from kb.item_import import read_answer_key
from kb.items import Item, gold, items_in
from kb.labels import current_predictions_in_library, is_simulated, prediction_labelers
from kb.libraries import Library
from models.imitation.errors import TrainerError
from models.imitation.learners import get_learner
from models.imitation.reading_plan import ReadingPlan
from models.imitation.trainer import (
    FEATURES_VERSION,
    FittedModel,
    Retriever,
    fit_task,
    load_model,
    one_thread,
    predict_with,
    task_key,
)
from models.scoring import score_answer

IID_PERMUTATIONS = 30
GUIDED_BASELINE = "baseline reading the labelers' fields"
IID_ALPHA = 0.05
LOG_LOSS_FLOOR = 1e-6


@dataclass(frozen=True)
class IIDReport:
    auc: float
    p_value: float
    n_a: int
    n_b: int
    permutations: int

    @property
    def iid(self) -> bool:
        return self.p_value >= IID_ALPHA

    @property
    def message(self) -> str:
        if self.iid:
            return (
                f"IID check passed: a classifier tells validation from prediction items no better than chance "
                f"(AUC {self.auc:.3f}, permutation p = {self.p_value:.3f}, n = {self.n_a} + {self.n_b})"
            )
        return (
            f"WARNING: D*_prediction does NOT look like D*_validation (classifier AUC {self.auc:.3f}, "
            f"permutation p = {self.p_value:.3f}, n = {self.n_a} + {self.n_b}). The imitation model would be "
            "extrapolating, which is exactly what learning the prior must avoid: re-split D* at random."
        )


def two_sample_test(
    texts_a: Sequence[str], texts_b: Sequence[str], *, seed: int = 0, permutations: int = IID_PERMUTATIONS
) -> IIDReport:
    """Classifier two-sample test: cross-validated ROC AUC of telling a from b, and the
    share of label permutations that do at least as well (p-value, +1 smoothed)."""
    if min(len(texts_a), len(texts_b)) < 5:
        raise TrainerError(f"the IID check needs at least 5 items on each side, got {len(texts_a)} and {len(texts_b)}")
    texts = list(texts_a) + list(texts_b)
    target = np.array([0] * len(texts_a) + [1] * len(texts_b))
    matrix = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), max_features=50_000).fit_transform(texts)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    with one_thread():
        auc, _, p_value = permutation_test_score(
            LogisticRegression(max_iter=1000),
            matrix,
            target,
            cv=folds,
            scoring="roc_auc",
            n_permutations=permutations,
            random_state=seed,
        )
    return IIDReport(float(auc), float(p_value), len(texts_a), len(texts_b), permutations)


def iid_check(
    conn: sqlite3.Connection,
    workspace: Path,
    library: Library,
    a: Sequence[Item] | None = None,
    b: Sequence[Item] | None = None,
    *,
    seed: int = 0,
    permutations: int = IID_PERMUTATIONS,
    plan: ReadingPlan | None = None,
) -> IIDReport:
    """D*_validation vs D*_prediction (or any two item sets), on the trainer's view of them
    (read with a model's reading plan when given)."""
    a = items_in(conn, ("validation",)) if a is None else a
    b = items_in(conn, ("prediction",)) if b is None else b
    retriever = Retriever(conn, workspace, library, plan=plan)
    try:
        texts_a = [retriever.view(item).text() for item in a]
        texts_b = [retriever.view(item).text() for item in b]
    finally:
        retriever.close()
    return two_sample_test(texts_a, texts_b, seed=seed, permutations=permutations)


@dataclass(frozen=True)
class Score:
    """Accuracy and mean log loss over n items, by models.scoring's rules (a tie earns its share)."""

    name: str
    kind: str  # 'imitation' | 'baseline' | GUIDED_BASELINE | 'simulated labeler' | 'human labeler'
    split: str
    n: int
    accuracy: float
    log_loss: float
    per_task: dict[str, tuple[int, float]] = field(default_factory=dict)  # task → (n, accuracy)


def score(
    name: str, kind: str, split: str, probs: dict[str, dict[str, float]], answers: dict[str, str], tasks: dict[str, str]
) -> Score:
    scored = [uid for uid in probs if uid in answers]
    if not scored:
        return Score(name, kind, split, 0, math.nan, math.nan)
    each = {uid: score_answer(probs[uid], answers[uid]) for uid in scored}
    per_task: dict[str, list[float]] = {}
    for uid in scored:
        per_task.setdefault(tasks[uid], []).append(each[uid].correct)
    return Score(
        name,
        kind,
        split,
        len(scored),
        sum(found.correct for found in each.values()) / len(scored),
        sum(found.log_loss for found in each.values()) / len(scored),
        {task: (len(hits), sum(hits) / len(hits)) for task, hits in sorted(per_task.items())},
    )


@dataclass(frozen=True)
class SystemAnswers:
    """What one system answered: probabilities per item uid, on one split (a model's or a labeler's)."""

    name: str
    kind: str  # 'imitation' | 'baseline' | GUIDED_BASELINE | 'simulated labeler' | 'human labeler'
    split: str  # 'prediction' for the models, 'validation' for the labelers
    probs: dict[str, dict[str, float]]
    labeler: str | None = None


@dataclass(frozen=True)
class Predictions:
    """Every system's answers on D* and the gold they are scored against: what evaluation and the study read."""

    systems: list[SystemAnswers]
    gold: dict[str, str]  # item uid → gold, for the D* items the answer key covers
    tasks: dict[str, str]  # item uid → task
    iid: IIDReport
    model_version: int
    n_model_labels: int
    n_baseline_items: int
    learner: str
    answers: str


@dataclass(frozen=True)
class EvaluationReport:
    scores: list[Score]
    iid: IIDReport
    model_version: int
    n_model_labels: int
    n_baseline_items: int
    answers: str


def naive_baseline(
    conn: sqlite3.Connection, retriever: Retriever, *, seed: int = 0, learner: str = "bow"
) -> tuple[FittedModel, int]:
    """The learner fitted on D's gold (train split, one-hot targets), reading Z as `retriever`
    does: what a model trusted to generalise out of distribution would predict."""
    chosen = get_learner(learner)
    train_items = [item for item in items_in(conn, ("train",)) if gold(conn, item) is not None]
    grouped: dict[str, list[Item]] = {}
    for item in train_items:
        grouped.setdefault(task_key(item), []).append(item)
    tasks = {}
    for key, group in grouped.items():
        options = group[0].options
        targets = np.zeros((len(group), len(options)))
        for row, item in enumerate(group):
            targets[row, options.index(str(gold(conn, item)))] = 1.0
        views = [retriever.view(item) for item in group]
        with one_thread():
            tasks[key] = fit_task(chosen, options, views, targets, seed=seed)
    fitted = FittedModel(retriever.library.uid, retriever.k, FEATURES_VERSION, tasks, chosen.name, retriever.plan)
    return fitted, len(train_items)


def predictions(
    conn: sqlite3.Connection, workspace: Path, library: Library, answers: Path, *, seed: int = 0
) -> Predictions:
    """The trained imitation model's, the naive baselines' and each labeler's answers on D*, with gold."""
    key = read_answer_key(answers)
    if not key:
        raise TrainerError(f"no answers in {answers}; name the answer key written when D* was imported")
    prediction_items = items_in(conn, ("prediction",))
    validation_items = items_in(conn, ("validation",))
    gold = {item.uid: key[item.uid].y for item in prediction_items + validation_items if item.uid in key}
    if not any(item.uid in gold for item in prediction_items):
        raise TrainerError(f"{answers} holds no answers for this workspace's D*_prediction items")
    tasks = {item.uid: item.task or task_key(item) for item in prediction_items + validation_items}
    fitted, report = load_model(conn, library)
    reading = Retriever(conn, workspace, library, fitted.retrieved_nodes, fitted.plan)
    searching = Retriever(conn, workspace, library, fitted.retrieved_nodes)  # D's gold cites nothing
    try:
        imitation = predict_with(fitted, prediction_items, reading.view)
        baseline_model, n_train = naive_baseline(conn, searching, seed=seed, learner=fitted.learner)
        baseline = predict_with(baseline_model, prediction_items, searching.view)
        guided = None
        if fitted.plan:
            guided_model, _ = naive_baseline(conn, reading, seed=seed, learner=fitted.learner)
            guided = predict_with(guided_model, prediction_items, reading.view)
        validation_texts = [reading.view(item).text() for item in validation_items]
        prediction_texts = [reading.view(item).text() for item in prediction_items]
    finally:
        reading.close()
        searching.close()
    learner = fitted.learner
    systems = [
        SystemAnswers(
            f"naive baseline ({learner}, trained on D gold, n={n_train}, reads Z by search)",
            "baseline",
            "prediction",
            baseline,
        )
    ]
    if guided is not None:
        name = f"naive baseline ({learner}, trained on D gold, n={n_train}, reads the labelers' fields)"
        systems.append(SystemAnswers(name, GUIDED_BASELINE, "prediction", guided))
    name = f"imitation model v{report.model_version} ({learner}, trained on n={report.n_labels} labels)"
    systems.append(SystemAnswers(name, "imitation", "prediction", imitation))
    systems += _labeler_answers(conn, library, validation_items)
    iid = two_sample_test(validation_texts, prediction_texts, seed=seed)
    return Predictions(
        systems, gold, tasks, iid, report.model_version, report.n_labels, n_train, learner, str(answers)
    )


def evaluate(
    conn: sqlite3.Connection, workspace: Path, library: Library, answers: Path, *, seed: int = 0
) -> EvaluationReport:
    found = predictions(conn, workspace, library, answers, seed=seed)
    scores = [
        score(system.name, system.kind, system.split, system.probs, found.gold, found.tasks)
        for system in found.systems
    ]
    return EvaluationReport(
        scores, found.iid, found.model_version, found.n_model_labels, found.n_baseline_items, found.answers
    )


def _labeler_answers(conn: sqlite3.Connection, library: Library, validation_items: list[Item]) -> list[SystemAnswers]:
    """Each labeler's current predictions on D*_validation, simulated ones named so."""
    by_uid = {item.id: item for item in validation_items}
    current: dict[str, dict[str, dict[str, float]]] = {}
    for label in current_predictions_in_library(conn, library.id, by_uid):
        current.setdefault(label.labeler, {})[by_uid[label.item_id].uid] = label.probs
    systems = []
    for labeler, source in prediction_labelers(conn, library.id):
        probs = current.get(labeler, {})
        if probs:
            kind = "simulated labeler" if is_simulated(source) else "human labeler"
            systems.append(SystemAnswers(f"{kind} {labeler}", kind, "validation", probs, labeler))
    return systems
