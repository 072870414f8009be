"""`navigator study`: the analysis at the end of a learning-the-prior study, every figure with its n and interval.

On any workspace with a library, items (D with gold, D* split into validation and prediction with its
answer key) and prediction labels, the study fits the imitation model with the study's seed, then
scores on D*_prediction the imitation model and the two naive baselines (the same learner fitted on
D's gold, reading Z by search or by the labelers' reading plan), and on D*_validation each labeler —
accuracy, log loss and Brier (models/scoring.py), each with a 95 % bootstrap interval over items
(models/bootstrap.py), per task and overall. The paired difference imitation − naive on the same
items says whether the method helped, and the verdicts say only what those intervals support.

Beside it: how often D's commonest answer per task is right on D and on D* (the shortcut a learner
fitted on D can take), the IID guard, agreement, each labeler's calibration, the learning curve,
F(Z) per library, how many labels were given after their author could see another's, and the
provenance a reader needs to reproduce the numbers. The same workspace and seed give the same
results, to the byte: there is no clock in them.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import zlib
from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from kb.item_import import read_answer_key
from kb.items import Item, gold, items_in
from kb.labelers import leads
from kb.labels import (
    HUMAN,
    SIMULATED,
    current_predictions_in_library,
    is_simulated,
    prediction_history,
    prediction_labelers,
)
from kb.libraries import Library, list_libraries
from kb.tree import content_rows
from models.bootstrap import RESAMPLES, Estimate, mean_interval, paired_difference
from models.imitation import trainer
from models.imitation.agreement import agreement
from models.imitation.evaluation import GUIDED_BASELINE, Predictions, SystemAnswers, predictions
from models.imitation.learners import DEFAULT_LEARNER
from models.imitation.score import score_libraries
from models.imitation.study_records import (
    IID,
    Calibration,
    CurvePoint,
    Difference,
    Independence,
    Interval,
    LibraryScore,
    Metrics,
    Provenance,
    ReliabilityRow,
    Shortcut,
    StudyResults,
    System,
    TaskAgreement,
)
from models.imitation.study_store import save_study
from models.reliability import calibration_error, reliability
from models.scoring import ItemScore, score_answer

OVERALL = "(all tasks)"
PACKAGES = ("z-navigator", "numpy", "scipy", "scikit-learn", "whoosh-reloaded", "llama-cpp-python", "matplotlib")
KINDS = {
    "imitation": "imitation",
    "baseline": "naive baseline",
    GUIDED_BASELINE: "naive baseline with the reading plan",
    "simulated labeler": "labeler",
    "human labeler": "labeler",
}


def run_study(
    conn: sqlite3.Connection,
    workspace: Path,
    library: Library,
    answers: Path,
    *,
    seed: int = 0,
    learner: str = DEFAULT_LEARNER,
    resamples: int = RESAMPLES,
    protocol: dict[str, Any] | None = None,
) -> StudyResults:
    """Fit the imitation model (saved as the library's next version, as `navigator train` does) and study it.

    The results name the model by the sha256 of what it was fitted on, not by its version number, so a
    second run on the same workspace and seed gives the same results."""
    report = trainer.train(conn, workspace, library, seed=seed, learner=learner)
    found = predictions(conn, workspace, library, answers, seed=seed)
    results = _results(conn, workspace, library, answers, report, found, seed, resamples, protocol)
    save_study(conn, library, seed, results)  # for the app's metrics screen
    return results


def _results(
    conn: sqlite3.Connection,
    workspace: Path,
    library: Library,
    answers: Path,
    report: trainer.TrainReport,
    found: Predictions,
    seed: int,
    resamples: int,
    protocol: dict[str, Any] | None,
) -> StudyResults:
    items = {item.uid: item for item in items_in(conn, ("train", "validation", "prediction"))}
    systems = [_system(answer, found, items, seed, resamples) for answer in found.systems]
    differences = _differences(found, items, seed, resamples)
    labelers = {name: source for name, source in prediction_labelers(conn, library.id)}
    agreed = agreement(conn, library)
    return StudyResults(
        library=library.name,
        items={
            split: sum(item.split == split for item in items.values())
            for split in ("train", "validation", "prediction")
        },
        labelers={name: SIMULATED if is_simulated(source) else HUMAN for name, source in labelers.items()},
        systems=systems,
        differences=differences,
        shortcuts=_shortcuts(conn, items, found, seed, resamples),
        iid=IID(
            auc=found.iid.auc,
            p_value=found.iid.p_value,
            n_validation=found.iid.n_a,
            n_prediction=found.iid.n_b,
            passed=found.iid.iid,
            message=found.iid.message,
        ),
        agreement=[
            TaskAgreement(
                task=entry.task,
                alpha=entry.alpha,
                n_items=entry.n_items,
                n_labels=entry.n_labels,
                n_labelers=entry.n_labelers,
                js_distance=entry.js_distance,
                note=entry.note,
            )
            for entry in [*agreed.tasks, agreed.overall]
        ],
        calibration=_calibration(found, items, labelers),
        learning_curve=[CurvePoint(labels=size, cross_entropy=loss) for size, loss in report.learning_curve],
        scores=_scores(conn, workspace),
        independence=_independence(conn, library, items),
        verdicts=[difference.verdict for difference in differences],
        provenance=Provenance(
            seed=seed,
            bootstrap_resamples=resamples,
            learner=found.learner,
            packages=_packages(),
            hashes=_hashes(conn, library, items, answers, learner=found.learner, seed=seed),
            answers=Path(answers).name,
            protocol=protocol,
        ),
    )


def seed_for(seed: int, *names: str) -> int:
    """A bootstrap seed per figure, from the study's seed and the figure's name (not Python's salted hash)."""
    return zlib.crc32("\x1f".join([str(seed), *names]).encode("utf-8"))


def interval(estimate: Estimate) -> Interval:
    value = None if estimate.n == 0 else estimate.value
    return Interval(value=value, low=estimate.low, high=estimate.high, n=estimate.n)


def _scored(answer: SystemAnswers, found: Predictions, items: dict[str, Item]) -> dict[str, ItemScore]:
    return {
        uid: score_answer(probs, found.gold[uid], items[uid].options)
        for uid, probs in sorted(answer.probs.items())
        if uid in found.gold and uid in items
    }


def _metrics(scores: Sequence[ItemScore], seed: int, resamples: int, *names: str) -> Metrics:
    def of(metric: str) -> Interval:
        values = [float(getattr(score, metric)) for score in scores]
        return interval(mean_interval(values, seed=seed_for(seed, *names, metric), resamples=resamples))

    return Metrics(accuracy=of("correct"), log_loss=of("log_loss"), brier=of("brier"))


def _system(answer: SystemAnswers, found: Predictions, items: dict[str, Item], seed: int, resamples: int) -> System:
    scored = _scored(answer, found, items)
    by_task: dict[str, list[ItemScore]] = {}
    for uid, score in scored.items():
        by_task.setdefault(found.tasks[uid], []).append(score)
    name = re.sub(r"^imitation model v\d+ ", "imitation model ", answer.name)  # the same study, the same name
    return System(
        name=name,
        kind=KINDS.get(answer.kind, answer.kind),
        split=answer.split,
        labeler=answer.labeler,
        simulated=None if answer.labeler is None else answer.kind == "simulated labeler",
        overall=_metrics(list(scored.values()), seed, resamples, name, OVERALL),
        per_task={task: _metrics(scores, seed, resamples, name, task) for task, scores in sorted(by_task.items())},
    )


def verdict(task: str, against: str, estimate: Estimate) -> str:
    """What the paired interval supports, and nothing more."""
    where = "all tasks" if task == OVERALL else task
    if estimate.low is None:
        return f"{where}: too few items (n = {estimate.n}) to compare imitation with the {against}"
    if estimate.low > 0:
        return f"imitation above the {against} on {where}: {estimate.text(signed=True)}"
    if estimate.high is not None and estimate.high < 0:
        return f"imitation below the {against} on {where}: {estimate.text(signed=True)}"
    return f"no difference between imitation and the {against} detectable on {where}: {estimate.text(signed=True)}"


def _differences(found: Predictions, items: dict[str, Item], seed: int, resamples: int) -> list[Difference]:
    by_kind = {answer.kind: answer for answer in found.systems}
    imitation = _scored(by_kind["imitation"], found, items)
    results = []
    for kind in ("baseline", GUIDED_BASELINE):
        if kind not in by_kind:
            continue
        naive = _scored(by_kind[kind], found, items)
        shared = [uid for uid in imitation if uid in naive]
        against = KINDS[kind]
        for task in [OVERALL, *sorted({found.tasks[uid] for uid in shared})]:
            chosen = [uid for uid in shared if task == OVERALL or found.tasks[uid] == task]
            estimate = paired_difference(
                [imitation[uid].correct for uid in chosen],
                [naive[uid].correct for uid in chosen],
                seed=seed_for(seed, "difference", kind, task),
                resamples=resamples,
            )
            results.append(
                Difference(
                    task=task, against=against, accuracy=interval(estimate), verdict=verdict(task, against, estimate)
                )
            )
    return results


def _shortcuts(
    conn: sqlite3.Connection, items: dict[str, Item], found: Predictions, seed: int, resamples: int
) -> list[Shortcut]:
    """Per task, the answer D gives most often, scored as a rule on D and on D*."""
    train_gold = {item.uid: y for item in items.values() if item.split == "train" and (y := gold(conn, item))}
    shortcuts = []
    for task in sorted({items[uid].task for uid in train_gold}):
        on_d = [uid for uid in train_gold if items[uid].task == task]
        answer = Counter(train_gold[uid] for uid in on_d).most_common(1)[0][0]
        on_dstar = [uid for uid in found.gold if uid in items and items[uid].task == task]
        right_d = [float(train_gold[uid] == answer) for uid in on_d]
        right_dstar = [float(found.gold[uid] == answer) for uid in on_dstar]
        shortcuts.append(
            Shortcut(
                task=task,
                answer=answer,
                on_d=interval(mean_interval(right_d, seed=seed_for(seed, "shortcut D", task), resamples=resamples)),
                on_dstar=interval(
                    mean_interval(right_dstar, seed=seed_for(seed, "shortcut D*", task), resamples=resamples)
                ),
            )
        )
    return shortcuts


def _calibration(found: Predictions, items: dict[str, Item], labelers: dict[str, str]) -> list[Calibration]:
    """Every probability each labeler (on D*_validation) and the imitation model (on D*_prediction) put on
    an option, against whether that option was the answer."""
    tables = []
    for answer in found.systems:
        if answer.kind not in ("imitation", "simulated labeler", "human labeler"):
            continue
        stated: list[float] = []
        observed: list[float] = []
        scored = [uid for uid in sorted(answer.probs) if uid in found.gold and uid in items]
        for uid in scored:
            for option in items[uid].options:
                stated.append(float(answer.probs[uid].get(option, 0.0)))
                observed.append(1.0 if option == found.gold[uid] else 0.0)
        bins = reliability(stated, observed)
        tables.append(
            Calibration(
                who=answer.labeler or "imitation model",
                simulated=None if answer.labeler is None else is_simulated(labelers.get(answer.labeler, "")),
                items=f"D*_{answer.split}",
                n_items=len(scored),
                n_probabilities=len(stated),
                ece=calibration_error(bins),
                bins=[ReliabilityRow(low=b.low, high=b.high, n=b.n, stated=b.stated, observed=b.true) for b in bins],
            )
        )
    return tables


def _scores(conn: sqlite3.Connection, workspace: Path) -> list[LibraryScore]:
    results = []
    for entry in score_libraries(conn, workspace, list_libraries(conn)):
        log_prior = entry.prior.point_log
        results.append(
            LibraryScore(
                library=entry.library.name,
                f=entry.f,
                log_likelihood=entry.likelihood.total if entry.likelihood.complete else None,
                log_prior=log_prior,
                n_items=entry.likelihood.n_items,
                rank=entry.rank,
                note=entry.reason,
            )
        )
    return results


def _independence(conn: sqlite3.Connection, library: Library, items: dict[str, Item]) -> Independence:
    """A current label counts as given after its author could see another's answer when another labeler had
    answered the item before it, and its author was a lead or was changing an answer of their own (the app
    shows a labeler other answers only to items they have answered)."""
    ids = {item.id for item in items.values()}
    history: dict[int, list[tuple[str, str]]] = {}
    for row in prediction_history(conn):
        if row.library_id == library.id and row.item_id in ids and not row.retracted:
            history.setdefault(row.item_id, []).append((row.created_at, row.labeler))
    coordinators = set(leads(conn))
    current = [label for label in current_predictions_in_library(conn, library.id) if label.item_id in ids]
    seen = 0
    for label in current:
        before = [(at, who) for at, who in history.get(label.item_id, []) if at < label.created_at]
        others = any(who != label.labeler for _, who in before)
        changed_own = any(who == label.labeler for _, who in before)
        seen += others and (label.labeler in coordinators or changed_own)
    note = (
        "leads may see others' answers before answering; everyone else sees them only for items they have answered"
        if coordinators
        else "no lead is recorded (`navigator labelers add NAME --lead`): no one sees another's answer before answering"
    )
    return Independence(
        labels=len(current),
        after_seeing_another=seen,
        adjudications=sum(label.adjudication for label in current),
        leads=sorted(coordinators),
        note=note,
    )


def _packages() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _digest(rows: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _hashes(
    conn: sqlite3.Connection, library: Library, items: dict[str, Item], answers: Path, *, learner: str, seed: int
) -> dict[str, str]:
    """sha256 of what the numbers come from: the library's nodes, the items, the current labels, the answer
    key, and what the model was fitted from (all of these, the learner and the seed) — content, never ids a
    fresh workspace would draw anew, so the same study built twice names the same inputs."""
    nodes = hashlib.sha256()
    for row in content_rows(conn, library.id):
        nodes.update(json.dumps(list(row), ensure_ascii=False).encode("utf-8"))
    by_id = {item.id: item.uid for item in items.values()}
    labels = sorted(
        (label.labeler, by_id.get(label.item_id, ""), sorted(label.probs.items()), label.cited)
        for label in current_predictions_in_library(conn, library.id)
    )
    key = read_answer_key(answers)
    found = {
        "library": nodes.hexdigest(),
        "items": _digest(sorted((i.uid, i.split, i.task, i.x, list(i.options)) for i in items.values())),
        "labels": _digest(labels),
        "answers": _digest(sorted((uid, record.y) for uid, record in key.items())),
    }
    found["model"] = _digest([found["library"], found["labels"], learner, seed, trainer.FEATURES_VERSION])
    return found
