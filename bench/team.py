"""A labeling team on the demo: assignment with overlap, agreement, and whether weighting labelers by skill helps.

Four SIMULATED labelers (noise 0.05, 0.1, 0.2, 0.4; models.imitation.simulated_labeler) are assigned the
D*_validation items with overlap 2 and the D (train) items with overlap 2, and label their shares.
The script checks that every validation item has exactly two labels, prints `navigator agreement`
(alpha and Jensen–Shannon distance per task with sample sizes, each labeler's log score on train
gold), and times the agreement report against reading the labels alone in the same run.

Then, for several draws of the simulated noise (a fresh copy of the demo each), it trains the
imitation model twice on the same labels, once counting every label once and once weighting each
labeler by skill on train gold (models.imitation.agreement.skill_weights), and scores both on the
D*_prediction answer key (accuracy and log loss, n = the D*_prediction items per draw). Whether weighting helps is the
mean paired difference over the draws, with every draw shown.

    python -m bench.team        # about 2 minutes on two cores; also writes bench/team.out.txt
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.tee import tee
from kb.assignments import assign
from kb.db import connect
from kb.demo import build_demo
from kb.item_import import answer_key_path, read_answer_key
from kb.items import items_in
from kb.labels import current_predictions_in_library
from kb.libraries import Library, get_library
from kb.progress import NoProgress
from models.imitation import trainer
from models.imitation.agreement import agreement, skill_weights
from models.imitation.evaluation import Score, score
from models.imitation.item_order import labeler_queue
from models.imitation.simulated_labeler import SimulatedLabeler, simulated_name
from navigator.team_text import agreement_lines

NOISE = {"n05": 0.05, "n10": 0.1, "n20": 0.2, "n40": 0.4}
OVERLAP = 2
DRAWS = 5


def copy_demo(master: Path, target: Path) -> sqlite3.Connection:
    source, copy = sqlite3.connect(master), sqlite3.connect(target)
    source.backup(copy)
    source.close()
    copy.close()
    shutil.copytree(master.with_name(master.name + ".index"), target.with_name(target.name + ".index"))
    shutil.copy(answer_key_path(master), answer_key_path(target))
    return connect(target)


def run_team(conn: sqlite3.Connection, workspace: Path, library: Library, draw: int) -> float:
    """Assign both splits with overlap 2 and let every simulated labeler label its share; seconds taken."""
    names = [simulated_name(name) for name in NOISE]
    assign(conn, names, OVERLAP, split="validation", seed=draw)
    assign(conn, names, OVERLAP, split="train", seed=100 + draw)
    started = time.perf_counter()
    for index, (name, noise) in enumerate(NOISE.items(), start=1):
        for split in ("validation", "train"):  # one labeler per run: `label` closes its search index
            labeler = SimulatedLabeler(conn, workspace, library, name, noise=noise, seed=10 * draw + index)
            labeler.label(labeler_queue(conn, library, labeler.name, (split,), order="given").items)
    return time.perf_counter() - started


def imitation_score(conn: sqlite3.Connection, workspace: Path, library: Library, name: str) -> Score:
    items = items_in(conn, ("prediction",))
    answers = {uid: record.y for uid, record in read_answer_key(answer_key_path(workspace)).items()}
    probs = trainer.predict_items(conn, workspace, library, items)
    return score(name, "imitation", "prediction", probs, answers, {item.uid: item.task for item in items})


def best_of(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def first_draw_report(conn: sqlite3.Connection, library: Library) -> None:
    validation = items_in(conn, ("validation",))
    per_item = Counter(p.item_id for p in current_predictions_in_library(conn, library.id))
    counts = Counter(per_item[item.id] for item in validation)
    print(f"labels per D*_validation item: {dict(counts)} over {len(validation)} items (want {{2: {len(validation)}}})")
    anchor = best_of(3, lambda: current_predictions_in_library(conn, library.id))
    took = best_of(3, lambda: agreement(conn, library))
    report = agreement(conn, library)
    for line in agreement_lines(report):
        print(line)
    print(
        f"agreement report in {took * 1000:.0f} ms; reading the library's current labels alone "
        f"{anchor * 1000:.0f} ms ({took / anchor:.1f}×; best of 3 each)"
    )
    ranking = [score.labeler for score in report.labelers]
    print(f"noisiest labeler ranks last on log score: {ranking[-1] == simulated_name('n40')} ({ranking})")


def main() -> None:
    with tee("team"):
        run()


def run() -> None:
    print("SIMULATED labelers " + ", ".join(f"{simulated_name(n)} (noise {v})" for n, v in NOISE.items()))
    with tempfile.TemporaryDirectory() as folder:
        master = Path(folder) / "demo.db"
        started = time.perf_counter()
        built, _ = build_demo(master, lambda _: NoProgress(), index_procs=2)
        built.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        built.close()
        print(f"built the demo in {time.perf_counter() - started:.0f} s")
        rows = []
        for draw in range(DRAWS):
            workspace = Path(folder) / f"draw{draw}.db"
            conn = copy_demo(master, workspace)
            library = get_library(conn, "factbook")
            took = run_team(conn, workspace, library, draw)
            print(
                f"\n== draw {draw}: assignment seeds {draw} (validation) and {100 + draw} (train);"
                f" labelled in {took:.1f} s"
            )
            if draw == 0:
                first_draw_report(conn, library)
            started = time.perf_counter()
            trainer.train(conn, workspace, library, seed=0)
            plain = imitation_score(conn, workspace, library, "every label once")
            weights = skill_weights(agreement(conn, library))
            trainer.train(conn, workspace, library, seed=0, labeler_weights=weights)
            weighted = imitation_score(conn, workspace, library, "weighted by skill")
            print(
                "skill weights: "
                + ", ".join(f"{name} {weight:.2f}" for name, weight in weights.items())
                + f"; two trainings and scorings in {time.perf_counter() - started:.0f} s"
            )
            for result in (plain, weighted):
                print(
                    f"  imitation model, {result.name:<17} on D*_prediction n={result.n}: "
                    f"accuracy {result.accuracy:.3f}, log loss {result.log_loss:.3f}"
                )
            rows.append((plain, weighted))
            conn.close()
        accuracy = [w.accuracy - p.accuracy for p, w in rows]
        log_loss = [w.log_loss - p.log_loss for p, w in rows]
        n = rows[0][0].n
        print(f"\n== weighting by skill vs every label once, paired over {DRAWS} draws of the noise (n={n} each)")
        for what, changes in (("accuracy", accuracy), ("log loss", log_loss)):
            each = ", ".join(f"{change:+.3f}" for change in changes)
            print(f"  {what} change: mean {statistics.mean(changes):+.4f}, per draw {each}")
        better = sum(change < 0 for change in log_loss)
        print(f"  log loss lower with weighting in {better} of {DRAWS} draws (lower is better)")
        print(
            f"  accuracy higher in {sum(c > 0 for c in accuracy)}, equal in {sum(c == 0 for c in accuracy)},"
            f" lower in {sum(c < 0 for c in accuracy)} of {DRAWS} draws (one item of {n} is {1 / n:.3f})"
        )


if __name__ == "__main__":
    main()
