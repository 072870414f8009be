"""The demo study end to end, per learner — a thin caller of `navigator study` — and the trainer at 100 000 labels.

Why: the method's claim is that imitating people on D*_validation carries what they read in Z to
D*_prediction, where a learner fitted on D's gold takes D's shortcut. The demo's D asks about some
world regions and D* about held-out ones; a SIMULATED labeler (it reads the Factbook, with 10 % noise)
labels D*_validation. For each learner, `models.imitation.study.run_study` fits the imitation model,
scores it and the naive baselines on D*_prediction and the labeler on D*_validation, with 95 %
bootstrap intervals over items, and says which differences the paired intervals support. The
membership task is the one D underdetermines (kb/demo.py); the other four are controls.

The last part times `navigator train` on 100 000 synthetic labels (under a minute is the goal)
beside an anchor measured in the same run: one fit per task on features already read.

    python -m bench.experiment                 # about 3 minutes on two cores
    python -m bench.experiment --learners reader --skip-large
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bench.tee import tee
from kb.db import utc_now
from kb.demo import build_demo
from kb.item_import import answer_key_path
from kb.items import items_in
from kb.labels import SIMULATED, Prediction, replace_all_predictions
from kb.libraries import Library, get_library
from kb.progress import NoProgress
from models.imitation import trainer
from models.imitation.learners import DEFAULT_LEARNER, LEARNERS
from models.imitation.simulated_labeler import SimulatedLabeler
from models.imitation.study import OVERALL, run_study
from models.imitation.study_records import Interval, StudyResults, System

NOISE = 0.1
SYNTHETIC_LABELS = 100_000


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 90 - len(title)))


def _cell(value: Interval | None) -> str:
    if value is None or value.value is None:
        return "—"
    if value.low is None or value.high is None:
        return f"{value.value:.3f} ({value.n})"
    return f"{value.value:.3f} [{value.low:.2f},{value.high:.2f}] ({value.n})"


def _row(system: System, tasks: list[str]) -> str:
    cells = [system.per_task[t].accuracy if t in system.per_task else None for t in tasks]
    return "".join(f"{_cell(c):>27}" for c in [*cells, system.overall.accuracy])


def table(learner: str, results: StudyResults) -> None:
    """Accuracy per task and overall with 95 % intervals and n: the naive baselines, imitation, the labeler."""
    section(f"learner {learner!r}: accuracy per task and overall, [95 % interval] (n)")
    tasks = sorted({task for system in results.systems for task in system.per_task})
    print(f"{'':46}" + "".join(f"{task:>27}" for task in [*tasks, "overall"]))
    for system in results.systems:
        who = system.kind if system.labeler is None else f"SIMULATED labeler {system.labeler} (D*_validation)"
        print(f"{who[:46]:46}" + _row(system, tasks))
    print("(the labeler is scored on D*_validation, the items it labelled; the models on D*_prediction)")
    print("verdicts (paired 95 % intervals, imitation − naive, accuracy):")
    for line in results.verdicts:
        print(f"  {line}")
    print("the shortcut D allows — its commonest answer per task, right on D and on D*:")
    for shortcut in results.shortcuts:
        on_d, on_dstar = _cell(shortcut.on_d), _cell(shortcut.on_dstar)
        print(f"  {shortcut.task:<12} {shortcut.answer!r:<22} D {on_d:>26}   D* {on_dstar}")
    print(results.iid.message)


def verdict(results: dict[str, StudyResults]) -> None:
    section("verdict")
    overall = {
        learner: next(s for s in r.systems if s.kind == "imitation").overall.accuracy for learner, r in results.items()
    }
    best = max(overall, key=lambda learner: overall[learner].value or 0.0)
    print(f"best imitation model: {best!r} ({_cell(overall[best])}); the trainer's default is {DEFAULT_LEARNER!r}")
    for difference in results[best].differences:
        if difference.task in (OVERALL, "membership"):
            print(f"  {difference.verdict}")


def synthetic_labels(conn: sqlite3.Connection, workspace: Path, library: Library, count: int, seed: int = 0) -> int:
    """`count` current labels straight into the predictions table (one per labeler and item,
    Dirichlet probabilities, citing the node the simulated labeler reads for the item, so the
    reading plan is learned and read as with real labels): the app's one-transaction-per-label
    path is not what is timed."""
    items = items_in(conn, ("train", "validation"))
    reader = SimulatedLabeler(conn, workspace, library, "citations", noise=0.0)
    cited = {item.uid: list(reader.read(item).cited) for item in items}
    reader.search.close()
    rng = np.random.default_rng(seed)
    now = utc_now()
    rows = []
    labeler = 0
    while len(rows) < count:
        name = f"simulated:synthetic-{labeler:04d}"
        for item in items:
            if len(rows) == count:
                break
            probs = rng.dirichlet(np.ones(len(item.options)))
            rows.append(
                Prediction(
                    f"pred_{uuid.uuid4().hex}",
                    item.id,
                    library.id,
                    name,
                    dict(zip(item.options, probs.tolist(), strict=True)),
                    cited[item.uid],
                    [],
                    None,
                    "",
                    now,
                    SIMULATED,
                )
            )
        labeler += 1
    replace_all_predictions(conn, rows)
    return labeler


def time_large(conn: sqlite3.Connection, workspace: Path, library: Library, learners: list[str]) -> None:
    section(f"train on {SYNTHETIC_LABELS:,} labels")
    labelers = synthetic_labels(conn, workspace, library, SYNTHETIC_LABELS)
    for learner in learners:
        trainer.clear_cache()  # time reading Z too, as a fresh `navigator train` would
        started = time.perf_counter()
        report = trainer.train(conn, workspace, library, seed=0, learner=learner)
        elapsed = time.perf_counter() - started
        # Anchor: the same learner, one fit per task, on views already read.
        labels = trainer.current_labels(conn, library)
        retriever = trainer.Retriever(conn, workspace, library, plan=trainer.reading_plan(conn, library, labels))
        views = retriever.views(list({label.item.uid: label.item for label in labels}.values()))
        retriever.close()
        tasks = trainer._tasks(labels, views)
        started = time.perf_counter()
        with trainer.one_thread():
            for task in tasks.values():
                trainer.fit_task(LEARNERS[learner], task.options, task.views, task.sums, seed=0)
        anchor = time.perf_counter() - started
        print(
            f"{learner}: {report.n_labels:,} labels from {labelers} synthetic labelers on {report.n_items} items: "
            f"train {elapsed:.1f} s ({'under' if elapsed < 60 else 'OVER'} the one-minute budget; "
            f"cited fields read for {len(report.reading)} tasks); "
            f"anchor (one fit per task on views already read) {anchor:.2f} s; ratio {elapsed / anchor:.1f}"
        )
    print(
        "(train = reading Z for every item + 5-fold CV x 4 learning-curve sizes + the final fit + the model's\n"
        " predictions on D*_validation for the queue; labels on one item share features, so they are summed into\n"
        " one weighted row per (item, option) and cost no extra fitting)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", default=",".join(sorted(LEARNERS)), help="comma-separated learner names")
    parser.add_argument("--skip-large", action="store_true", help="skip the 100 000-label timing")
    args = parser.parse_args()
    learners = [name for name in args.learners.split(",") if name]
    with tee("experiment"), tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder) / "demo.db"
        started = time.perf_counter()
        conn, _ = build_demo(workspace, lambda _: NoProgress(), index_procs=2)
        library = get_library(conn, "factbook")
        answers = answer_key_path(workspace)
        print(f"built the demo in {time.perf_counter() - started:.0f} s")
        counts = {split: len(items_in(conn, (split,))) for split in ("train", "validation", "prediction")}
        print(
            f"items: D (train) {counts['train']}, D*_validation {counts['validation']}, "
            f"D*_prediction {counts['prediction']}"
        )
        started = time.perf_counter()
        first = SimulatedLabeler(conn, workspace, library, "bench", noise=NOISE, seed=1).label(
            items_in(conn, ("validation",))
        )
        print(
            f"SIMULATED labeler {first.labeler!r} (noise {NOISE}) labelled {first.labelled} D*_validation items "
            f"in {time.perf_counter() - started:.1f} s ({first.noisy} noisy, {first.not_found} not found)"
        )
        results = {}
        for learner in learners:
            started = time.perf_counter()
            results[learner] = run_study(conn, workspace, library, answers, seed=0, learner=learner)
            print(f"\nstudy with learner {learner!r}: {time.perf_counter() - started:.1f} s (`navigator study`)")
            table(learner, results[learner])
        verdict(results)
        if not args.skip_large:
            time_large(conn, workspace, library, learners)
        conn.close()


if __name__ == "__main__":
    main()
