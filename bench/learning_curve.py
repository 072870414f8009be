"""Learning curves on the demo: imitation accuracy on D*_prediction against the number of labels,
with D*_validation labelled in random order or in the order the model chooses.

Why: issue 13 asks whether letting the model pick the next item (models.imitation.item_order: least sure
first, one slot in three from a fixed random order for the IID sample) reaches the accuracy of
random order with fewer labels, and by how much. A SIMULATED labeler (10 % noise) labels
D*_validation in batches through the same ordering the app's queue and `navigator simulate`
use; after each batch the model is retrained (as a coordinator would) and scored on the answer
key. Both orders start alike: until a model exists for every task, "uncertain" has nothing to
be uncertain with and follows the same random order. With every item labelled both orders
hold the same labels, so they end at the same model; the question is how early each gets there.

    python -m bench.learning_curve                          # about 7 minutes on two cores
    python -m bench.learning_curve --learners reader --seeds 0,1
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.tee import tee
from kb.demo import build_demo
from kb.item_import import answer_key_path, read_answer_key
from kb.items import items_in
from kb.labels import replace_all_predictions
from kb.libraries import Library, get_library
from kb.progress import NoProgress
from models.imitation import trainer
from models.imitation.evaluation import LOG_LOSS_FLOOR
from models.imitation.item_order import RANDOM_EVERY, iid_sample, order_items
from models.imitation.model_store import discard_all_models
from models.imitation.simulated_labeler import SimulatedLabeler

NOISE = 0.1
BATCH = 10
ORDERS = ("random", "uncertain")


@dataclass(frozen=True)
class Point:
    labels: int
    accuracy: float
    log_loss: float
    iid_sample: int  # labelled items forming a uniform random sample of D*_validation


def run(
    conn: sqlite3.Connection,
    workspace: Path,
    library: Library,
    answers: dict[str, str],
    order: str,
    seed: int,
    learner: str,
) -> list[Point]:
    # A fresh start for each run, in this bench's own temporary workspace.
    replace_all_predictions(conn, [])
    discard_all_models(conn)
    validation = items_in(conn, ("validation",))
    prediction = items_in(conn, ("prediction",))
    labeler = SimulatedLabeler(conn, workspace, library, f"curve-{order}", noise=NOISE, seed=seed)
    labelled: set[str] = set()
    points = []
    while len(labelled) < len(validation):
        ordering = order_items(conn, library, validation, order=order, seed=seed)
        batch = [item for item in ordering.items if item.uid not in labelled][:BATCH]
        labeler.label(batch)
        labelled.update(item.uid for item in batch)
        try:
            report = trainer.train(conn, workspace, library, seed=0, learner=learner)
        except trainer.TrainerError:
            continue  # no task has enough labels yet
        if report.skipped_tasks:
            continue  # a model that cannot answer every task is not on the curve
        probs = trainer.predict_items(conn, workspace, library, prediction)
        right = [max(probs[i.uid], key=probs[i.uid].__getitem__) == answers[i.uid] for i in prediction]
        losses = [-math.log(max(probs[i.uid][answers[i.uid]], LOG_LOSS_FLOOR)) for i in prediction]
        sample = iid_sample(validation, labelled, seed=seed)
        points.append(Point(len(labelled), sum(right) / len(right), sum(losses) / len(losses), len(sample)))
    return points


def reached(points: list[Point], target: float) -> int:
    """Labels at which the curve first reaches `target` accuracy."""
    return next(point.labels for point in points if point.accuracy >= target - 1e-12)


def stays(points: list[Point], target: float) -> int:
    """Labels from which the curve never drops below `target` again."""
    below = [point.labels for point in points if point.accuracy < target - 1e-12]
    later = [point.labels for point in points if not below or point.labels > below[-1]]
    return later[0]


def report(learner: str, curves: dict[tuple[str, int], list[Point]], seeds: list[int], n_prediction: int) -> None:
    print(
        f"\n== learner {learner!r}: accuracy on D*_prediction (n = {n_prediction}) by labels, "
        f"mean of {len(seeds)} seeds"
    )
    sizes = sorted({point.labels for curve in curves.values() for point in curve})
    print("(mean over the seeds that have a model for every task at that size; how many in brackets)")
    print(f"{'labels':>7} " + "".join(f"{order:>14}" for order in ORDERS) + f"{'IID sample (uncertain)':>26}")
    for size in sizes:
        cells = []
        for order in ORDERS:
            values = [p.accuracy for s in seeds for p in curves[(order, s)] if p.labels == size]
            cells.append(f"{statistics.mean(values):9.3f} ({len(values)})" if values else f"{'—':>14}")
        sample = [p.iid_sample for s in seeds for p in curves[("uncertain", s)] if p.labels == size]
        shown = f"{statistics.mean(sample):.1f} items" if sample else "—"
        print(f"{size:>7} " + "".join(cells) + f"{shown:>26}")
    print(
        f"per seed: labels needed to reach the final accuracy (all {n_prediction} labelled: the same model for both "
        "orders)"
    )
    savings, lasting = [], []
    for seed in seeds:
        random_curve, chosen_curve = curves[("random", seed)], curves[("uncertain", seed)]
        final = random_curve[-1].accuracy
        first = (reached(random_curve, final), reached(chosen_curve, final))
        kept = (stays(random_curve, final), stays(chosen_curve, final))
        savings.append(first[0] - first[1])
        lasting.append(kept[0] - kept[1])
        print(
            f"  seed {seed}: final accuracy {final:.3f}; first reached at {first[0]} labels in random order, "
            f"{first[1]} model-chosen; held from {kept[0]} and {kept[1]} (first model at {random_curve[0].labels})"
        )
    for what, differences in (("first reaches", savings), ("holds", lasting)):
        mean = statistics.mean(differences)
        verdict = "fewer" if mean > 0 else "more" if mean < 0 else "as many"
        print(
            f"model-chosen order {what} the random order's final accuracy with {verdict} labels: "
            f"{abs(mean):.1f} on average over {len(seeds)} seeds "
            f"(random minus model-chosen: {', '.join(f'{d:+d}' for d in differences)})"
        )
    print(f"(one queue slot in {RANDOM_EVERY} stays random: the IID sample column counts what it has gathered)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", default="reader,bow")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args()
    learners = [name for name in args.learners.split(",") if name]
    seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    with tee("learning_curve"), tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder) / "demo.db"
        started = time.perf_counter()
        conn, _ = build_demo(workspace, lambda _: NoProgress(), index_procs=2)
        library = get_library(conn, "factbook")
        answers = {uid: record.y for uid, record in read_answer_key(answer_key_path(workspace)).items()}
        print(
            f"built the demo in {time.perf_counter() - started:.0f} s; "
            f"SIMULATED labeler, noise {NOISE}, batches of {BATCH}"
        )
        n_prediction = len(items_in(conn, ("prediction",)))
        for learner in learners:
            started = time.perf_counter()
            curves = {
                (order, seed): run(conn, workspace, library, answers, order, seed, learner)
                for seed in seeds
                for order in ORDERS
            }
            report(learner, curves, seeds, n_prediction)
            print(f"({time.perf_counter() - started:.0f} s for {len(curves)} runs)")
        conn.close()


if __name__ == "__main__":
    main()
