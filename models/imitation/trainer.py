"""The imitation trainer: learn P(y | x, Z) from the labelers' prediction labels.

Learning the prior (DESIGN.md §1, step 4) only asks a model to *interpolate*: humans
who can read Z label D*_validation, and a model trained on those labels predicts
D*_prediction, an IID sample of the same distribution. What matters is that the model
sees what the labeler saw. Its view of an item (models.imitation.retrieval) is the question x, the
fields labelers cite for that task read under the item's subject (models.imitation.reading_plan),
and the top nodes the library's own search returns for x — so the same learner fitted
against two libraries estimates P(y | x, Z) for two different Zs.

Choices, and why:

- **One model per task, learner by name.** Items of one task share their options (yes/no,
  four population bands, …), so each task gets its own fitted learner (items with no task
  are grouped by their option list). The learner is chosen by name (models.imitation.learners);
  the default reads fields and figures the way labelers do.
- **Soft targets.** A label is a probability vector, not a class. Each label becomes one
  row per option with sample_weight = its probability, which is exactly the
  cross-entropy against the labeler's distribution. Labels on the same item have the
  same features, so rows are summed per (item, option) first: the objective is
  unchanged and 100 000 labels on a thousand items cost a thousand rows.
- **Cross-validation by item**, not by label: several labelers on one item must not be
  split between training and testing, or the report flatters the model.
- **Smoothing.** Predictions are mixed with the uniform distribution (weight
  `SMOOTHING`), so an option no labeler ever picked keeps a small probability and log
  losses stay finite.
- **Stored as numbers** (models.imitation.model_store): a workspace from anyone can be opened.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from kb.db import utc_now
from kb.items import Item, items_in
from kb.labels import current_predictions_in_library
from kb.libraries import Library
from models.imitation.errors import TrainerError
from models.imitation.learners import DEFAULT_LEARNER, SMOOTHING, Learner, TaskModel, fit_task, get_learner
from models.imitation.model_store import FittedModel, latest_metrics, latest_model_row, load_model_bytes, store_model
from models.imitation.reading_plan import ReadingPlan, describe, learn_plan
from models.imitation.retrieval import RETRIEVED_NODES, Retriever, View, clear_cache, task_key
from models.reliability import expected_calibration_error
from models.scoring import score_rows

__all__ = [
    "SMOOTHING",
    "FittedModel",
    "Retriever",
    "TaskModel",
    "TrainerError",
    "View",
    "clear_cache",
    "fit_task",
    "task_key",
]

MIN_ITEMS_PER_TASK = 10
LEARNING_CURVE_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
FEATURES_VERSION = 4  # 4: the reader sees whether a cited field holds the question's words (3: a reading plan)
LABELLED_SPLITS = ("train", "validation")

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrainReport:
    """What `train` fitted and how well it imitates the labelers, all by k-fold CV over items.

    cross_entropy: mean over labels of −Σ q log p (q the labeler's distribution, p the model's);
    top_choice_agreement: share of labels whose top option is the model's top option (a tie on
        either side earns its share, by models.scoring's rule);
    brier: mean over labels of Σ (p − q)²; ece: expected calibration error of the model's
    top choice against the probability the labeler gave that option (10 equal bins).
    """

    n_labels: int
    n_items: int
    n_labelers: int
    cross_entropy: float
    top_choice_agreement: float
    brier: float
    ece: float
    learning_curve: list[tuple[int, float]]
    model_version: int
    data_hash: str
    tasks: dict[str, int] = field(default_factory=dict)
    skipped_tasks: dict[str, str] = field(default_factory=dict)
    folds: int = 5
    seed: int = 0
    created_at: str = ""
    learner: str = "bow"  # reports stored before learners were named were all bag-of-words
    learner_params: dict[str, Any] = field(default_factory=dict)
    reading: dict[str, list[str]] = field(default_factory=dict)  # task → fields read (models.imitation.reading_plan)
    labeler_weights: dict[str, float] = field(default_factory=dict)  # empty: every label counts once

    def as_json(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["learning_curve"] = [list(point) for point in self.learning_curve]
        return shown

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> TrainReport:
        value = dict(value)
        value["learning_curve"] = [(int(size), float(loss)) for size, loss in value["learning_curve"]]
        return cls(**value)


@dataclass(frozen=True)
class Label:
    item: Item
    labeler: str
    probs: tuple[float, ...]  # in the order of item.options
    read: tuple[str, ...] = ()  # node uids the labeler cited, else the last node of their trail


# -- fitting ----------------------------------------------------------------------


def one_thread() -> Any:
    """BLAS with one thread. These fits are small (hundreds of rows): with two threads on a busy
    two-core machine, OpenBLAS spends its time waiting for the other thread, measured 15× slower."""
    return threadpool_limits(limits=1)


def label_metrics(predicted: FloatArray, targets: FloatArray) -> dict[str, float]:
    """Per-label metrics averaged over labels; rows of both arrays are distributions."""
    scored = score_rows(predicted, targets)  # models.scoring's rules: a tie earns its share, one log floor
    top = predicted.argmax(axis=1)
    ece = expected_calibration_error(predicted.max(axis=1), targets[np.arange(len(targets)), top])
    return {
        "cross_entropy": float(np.mean(scored.log_loss)),
        "top_choice_agreement": float(np.mean(scored.correct)),
        "brier": float(np.mean(scored.brier)),
        "ece": ece,
    }


@dataclass
class _Task:
    key: str
    options: tuple[str, ...]
    items: list[Item]  # distinct, sorted by uid
    views: list[View]
    sums: FloatArray  # item × option: total probability of the item's labels (weighted by labeler, if asked)
    label_rows: FloatArray  # label × option
    label_item: NDArray[np.int64]  # label → index into items


def _tasks(
    labels: Sequence[Label], views: dict[str, View], weights: Mapping[str, float] | None = None
) -> dict[str, _Task]:
    """Per task: the items, their views and the summed targets. With `weights` (labeler → weight),
    each label counts that much in the targets the learner fits; the per-label rows the
    cross-validation scores against stay as the labelers gave them."""
    grouped: dict[str, list[Label]] = {}
    for label in labels:
        grouped.setdefault(task_key(label.item), []).append(label)
    tasks = {}
    for key, group in sorted(grouped.items()):
        items = sorted({label.item.uid: label.item for label in group}.values(), key=lambda item: item.uid)
        index = {item.uid: position for position, item in enumerate(items)}
        options = items[0].options
        label_rows = np.array([label.probs for label in group], dtype=np.float64)
        label_item = np.array([index[label.item.uid] for label in group], dtype=np.int64)
        sums = np.zeros((len(items), len(options)))
        weight = np.array([1.0 if weights is None else weights.get(label.labeler, 1.0) for label in group])
        np.add.at(sums, label_item, label_rows * weight[:, None])
        tasks[key] = _Task(key, options, items, [views[item.uid] for item in items], sums, label_rows, label_item)
    return tasks


def _cross_validate(
    tasks: dict[str, _Task], learner: Learner, *, folds: int, seed: int
) -> tuple[dict[str, float], list[tuple[int, float]]]:
    """Out-of-fold predictions for every label (full training folds) and, for the learning
    curve, the same with each training fold subsampled to a fraction of its items."""
    rng = np.random.default_rng(seed)
    predicted: list[FloatArray] = []
    targets: list[FloatArray] = []
    curve_losses: dict[float, list[FloatArray]] = {fraction: [] for fraction in LEARNING_CURVE_FRACTIONS}
    curve_sizes: dict[float, int] = dict.fromkeys(LEARNING_CURVE_FRACTIONS, 0)
    for task in tasks.values():
        n = len(task.items)
        fold_of = np.empty(n, dtype=np.int64)
        fold_of[rng.permutation(n)] = np.arange(n) % folds
        labels_per_item = np.bincount(task.label_item, minlength=n)
        out_of_fold = {fraction: np.zeros((n, len(task.options))) for fraction in LEARNING_CURVE_FRACTIONS}
        for fold in range(folds):
            held = np.flatnonzero(fold_of == fold)
            training = rng.permutation(np.flatnonzero(fold_of != fold))
            for fraction in LEARNING_CURVE_FRACTIONS:
                chosen = np.sort(training[: max(2, math.ceil(fraction * len(training)))])
                model = fit_task(learner, task.options, [task.views[i] for i in chosen], task.sums[chosen], seed=seed)
                out_of_fold[fraction][held] = model.predict([task.views[i] for i in held])
                curve_sizes[fraction] += int(labels_per_item[chosen].sum())
        for fraction in LEARNING_CURVE_FRACTIONS:
            rows = out_of_fold[fraction][task.label_item]
            curve_losses[fraction].append(score_rows(rows, task.label_rows).log_loss)
        predicted.append(out_of_fold[1.0][task.label_item])
        targets.append(task.label_rows)
    metrics = _pooled_metrics(predicted, targets)
    curve = [
        (round(curve_sizes[fraction] / folds), float(np.mean(np.concatenate(curve_losses[fraction]))))
        for fraction in LEARNING_CURVE_FRACTIONS
    ]
    return metrics, curve


def _pooled_metrics(predicted: list[FloatArray], targets: list[FloatArray]) -> dict[str, float]:
    """Metrics over every label of every task; tasks have different option counts, so each
    is padded with zero columns (which change none of the four metrics)."""
    width = max(block.shape[1] for block in predicted)

    def pad(block: FloatArray) -> FloatArray:
        return np.pad(block, ((0, 0), (0, width - block.shape[1])))

    return label_metrics(np.vstack([pad(b) for b in predicted]), np.vstack([pad(b) for b in targets]))


# -- labels and storage -----------------------------------------------------------


def current_labels(conn: sqlite3.Connection, library: Library) -> list[Label]:
    """Every labeler's current prediction (human and simulated) on train and validation items (kb.labels).

    Labels on D*_prediction items are left out: those are the items the model is for. What a label
    read is the nodes its labeler cited, else the last node of their trail.
    """
    items = {item.id: item for item in items_in(conn, LABELLED_SPLITS)}
    labels = []
    for prediction in current_predictions_in_library(conn, library.id):
        item = items.get(prediction.item_id)
        if item is None:
            continue
        read = tuple(prediction.cited) or tuple(prediction.trail[-1:])
        probs = tuple(float(prediction.probs.get(option, 0.0)) for option in item.options)
        labels.append(Label(item, prediction.labeler, probs, read))
    labels.sort(key=lambda label: (label.item.uid, label.labeler))
    return labels


def reading_plan(conn: sqlite3.Connection, library: Library, labels: Sequence[Label]) -> ReadingPlan:
    """Where the labelers looked, per task (models.imitation.reading_plan)."""
    return learn_plan(conn, library.id, ((task_key(label.item), label.item.x, label.read) for label in labels))


def data_hash(
    labels: Sequence[Label],
    library: Library,
    index_state: int,
    k: int,
    weights: Mapping[str, float] | None = None,
) -> str:
    """Names the training data exactly: the labels, their weights, and the library state the features came from."""
    digest = hashlib.sha256()
    digest.update(json.dumps([library.uid, index_state, k, FEATURES_VERSION]).encode())
    if weights:
        digest.update(json.dumps(sorted(weights.items())).encode())
    for label in labels:
        digest.update(json.dumps([label.item.uid, label.labeler, label.probs]).encode())
    return digest.hexdigest()


def _check_enough(tasks: dict[str, _Task], folds: int) -> tuple[dict[str, _Task], dict[str, str]]:
    minimum = max(MIN_ITEMS_PER_TASK, folds)
    kept, skipped = {}, {}
    for key, task in tasks.items():
        used = [option for option, total in zip(task.options, task.sums.sum(axis=0), strict=True) if total > 0]
        top_used = {task.options[int(i)] for i in task.label_rows.argmax(axis=1)}
        if len(task.items) < minimum:
            skipped[key] = f"{len(task.items)} labelled items, need at least {minimum}"
        elif len(used) < 2 or len(top_used) < 2:
            only = sorted(top_used)[0]
            skipped[key] = f"every label chooses {only!r}: only one option was ever used, nothing to learn"
        else:
            kept[key] = task
    return kept, skipped


def train(
    conn: sqlite3.Connection,
    workspace: Path,
    library: Library,
    *,
    seed: int = 0,
    folds: int = 5,
    learner: str = DEFAULT_LEARNER,
    labeler_weights: Mapping[str, float] | None = None,
    hits: int = RETRIEVED_NODES,
) -> TrainReport:
    """Fit on the current prediction labels for `library`, report k-fold CV metrics, and save
    the model as the library's next version. Tasks with too few labels are skipped (and named
    in the report); when no task can be trained, nothing is saved and TrainerError says why.
    `labeler_weights` (labeler → weight, 1 for anyone not named) weighs each labeler's labels in
    the fitted targets, e.g. by skill on train gold (models.imitation.agreement.skill_weights). `hits`
    is how many search hits are read beside the labelers' fields (stored with the model)."""
    chosen = get_learner(learner)
    if folds < 2:
        raise TrainerError(f"cross-validation needs at least 2 folds, got {folds}")
    labels = current_labels(conn, library)
    if not labels:
        raise TrainerError(
            f"no prediction labels for library {library.name!r} yet; the trainer needs at least "
            f"{max(MIN_ITEMS_PER_TASK, folds)} labelled items of a task (label in the app or `navigator simulate`)"
        )
    plan = reading_plan(conn, library, labels)
    retriever = Retriever(conn, workspace, library, hits, plan)
    try:
        views = retriever.views(list({label.item.uid: label.item for label in labels}.values()))
        tasks, skipped = _check_enough(_tasks(labels, views, labeler_weights), folds)
        if not tasks:
            reasons = "; ".join(f"task {key!r}: {reason}" for key, reason in skipped.items())
            raise TrainerError(f"too few usable labels to train for library {library.name!r}: {reasons}")
        with one_thread():
            metrics, curve = _cross_validate(tasks, chosen, folds=folds, seed=seed)
            fitted = FittedModel(
                library.uid,
                retriever.k,
                FEATURES_VERSION,
                {key: fit_task(chosen, task.options, task.views, task.sums, seed=seed) for key, task in tasks.items()},
                chosen.name,
                plan,
            )
        # The model's view of every D*_validation item, so the labelling queue can put what it is
        # least sure of first (models.imitation.item_order) without loading the model or reading Z again.
        validation = [item for item in items_in(conn, ("validation",)) if task_key(item) in tasks]
        predicted = predict_with(fitted, validation, retriever.view)
    finally:
        retriever.close()
    fitted.validation_predictions = {
        item.uid: [predicted[item.uid][option] for option in item.options] for item in validation
    }
    report = _report(
        labels, tasks, skipped, metrics, curve, library, retriever, chosen, plan, folds, seed, labeler_weights
    )
    return save_model(conn, library, fitted, report)


def _report(
    labels: list[Label],
    tasks: dict[str, _Task],
    skipped: dict[str, str],
    metrics: dict[str, float],
    curve: list[tuple[int, float]],
    library: Library,
    retriever: Retriever,
    chosen: Learner,
    plan: ReadingPlan,
    folds: int,
    seed: int,
    labeler_weights: Mapping[str, float] | None,
) -> TrainReport:
    """What a fit used and how well it cross-validated; the version is set when it is stored."""
    used = [label for label in labels if task_key(label.item) in tasks]
    return TrainReport(
        n_labels=len(used),
        n_items=sum(len(task.items) for task in tasks.values()),
        n_labelers=len({label.labeler for label in used}),
        learning_curve=curve,
        model_version=0,
        data_hash=data_hash(labels, library, retriever.state, retriever.k, labeler_weights),
        tasks={key: len(task.label_item) for key, task in tasks.items()},
        skipped_tasks=skipped,
        folds=folds,
        seed=seed,
        created_at=utc_now(),
        labeler_weights=dict(sorted((labeler_weights or {}).items())),
        cross_entropy=metrics["cross_entropy"],
        top_choice_agreement=metrics["top_choice_agreement"],
        brier=metrics["brier"],
        ece=metrics["ece"],
        learner=chosen.name,
        learner_params=chosen.params,
        reading=describe(plan),
    )


def save_model(conn: sqlite3.Connection, library: Library, fitted: FittedModel, report: TrainReport) -> TrainReport:
    """Store the model as the library's next version (models.imitation.model_store)."""
    version = store_model(conn, library.id, fitted, report.as_json())
    return TrainReport.from_json({**report.as_json(), "model_version": version})


def latest_report(conn: sqlite3.Connection, library: Library) -> TrainReport | None:
    stored = latest_metrics(conn, library.id)
    return TrainReport.from_json(stored) if stored is not None else None


def load_model(conn: sqlite3.Connection, library: Library) -> tuple[FittedModel, TrainReport]:
    """The latest saved model, rebuilt from numbers alone (models.imitation.model_store): a workspace
    from anyone can be opened and predicted with; nothing stored in it runs as code."""
    row = latest_model_row(conn, library.id)
    if row is None:
        raise TrainerError(f"no trained model for library {library.name!r}; run `navigator train` first")
    fitted = load_model_bytes(row[0], library.name)
    if fitted.features_version != FEATURES_VERSION:
        raise TrainerError(
            f"the saved model for library {library.name!r} reads Z the way an earlier version did; "
            "retrain with `navigator train`"
        )
    return fitted, TrainReport.from_json(row[1])


def predict_with(
    fitted: FittedModel, items: Sequence[Item], view_of: Callable[[Item], View]
) -> dict[str, dict[str, float]]:
    by_task: dict[str, list[Item]] = {}
    for item in items:
        by_task.setdefault(task_key(item), []).append(item)
    missing = sorted(key for key in by_task if key not in fitted.tasks)
    if missing:
        raise TrainerError(
            f"the model was not trained on task(s) {', '.join(map(repr, missing))}: "
            "label some of those items and train again"
        )
    result: dict[str, dict[str, float]] = {}
    for key, group in by_task.items():
        model = fitted.tasks[key]
        for item in group:
            if item.options != model.options:
                raise TrainerError(
                    f"item {item.uid!r} has options {list(item.options)}, the model {list(model.options)}"
                )
        views = [view_of(item) for item in group]
        with one_thread():
            probs = model.predict(views)
        for item, row in zip(group, probs, strict=True):
            result[item.uid] = {option: float(p) for option, p in zip(item.options, row, strict=True)}
    return result


def predict_items(
    conn: sqlite3.Connection, workspace: Path, library: Library, items: list[Item]
) -> dict[str, dict[str, float]]:
    """item uid → probability over its options, from the latest model saved for `library`."""
    fitted, _ = load_model(conn, library)
    retriever = Retriever(conn, workspace, library, fitted.retrieved_nodes, fitted.plan)
    try:
        return predict_with(fitted, items, retriever.view)
    finally:
        retriever.close()
