"""Evaluation against the answer key and the IID guard: hand-computed scores on tiny data,
then one module-scoped flow on the demo (simulate → train → evaluate → predict)."""

from __future__ import annotations

import json
import math
import random
import shutil
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kb.db import connect
from kb.items import items_in
from kb.libraries import get_library
from models.imitation.errors import TrainerError
from models.imitation.evaluation import EvaluationReport, evaluate, iid_check, score, two_sample_test
from models.imitation.simulated_labeler import SimulatedLabeler
from models.imitation.trainer import train


def test_score_matches_hand_computed_accuracy_and_log_loss() -> None:
    probs = {
        "a": {"yes": 0.8, "no": 0.2},
        "b": {"yes": 0.3, "no": 0.7},
        "c": {"yes": 1.0, "no": 0.0},
        "z": {"yes": 1.0, "no": 0.0},
    }
    answers = {"a": "yes", "b": "yes", "c": "no"}  # z has no answer: not scored
    result = score("m", "imitation", "prediction", probs, answers, {"a": "t", "b": "t", "c": "u"})
    assert result.n == 3
    assert result.accuracy == pytest.approx(1 / 3)
    # P(gold) = 0.8, 0.3 and 0 (floored at 1e-6)
    assert result.log_loss == pytest.approx((-math.log(0.8) - math.log(0.3) - math.log(1e-6)) / 3)
    assert result.per_task == {"t": (2, 0.5), "u": (1, 0.0)}


def test_two_sample_test_passes_an_iid_split_and_flags_a_shifted_one() -> None:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    pool = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(120)]
    same = two_sample_test(pool[:60], pool[60:])
    assert same.iid and 0.3 < same.auc < 0.7 and "passed" in same.message
    shifted = two_sample_test(pool[:60], [text + " island ocean" for text in pool[60:]])
    assert not shifted.iid and shifted.auc > 0.95 and shifted.message.startswith("WARNING")
    with pytest.raises(TrainerError, match="at least 5 items"):
        two_sample_test(pool[:3], pool[3:10])


@pytest.fixture(scope="module")
def flow(demo_build: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory):
    """A private copy of the demo with simulated labels on D*_validation, a trained model and its evaluation."""
    master = demo_build[0]
    workspace = tmp_path_factory.mktemp("evaluation") / master.name
    source, target = sqlite3.connect(master), sqlite3.connect(workspace)
    source.backup(target)
    source.close()
    target.close()
    shutil.copytree(master.with_name(master.name + ".index"), workspace.with_name(workspace.name + ".index"))
    answers = workspace.with_name(workspace.name + ".answers.jsonl")
    shutil.copy(master.with_name(master.name + ".answers.jsonl"), answers)
    conn = connect(workspace)
    library = get_library(conn, "factbook")
    SimulatedLabeler(conn, workspace, library, "eval", noise=0.1, seed=1).label(items_in(conn, ("validation",)))
    report = train(conn, workspace, library, seed=0)
    evaluation = evaluate(conn, workspace, library, answers)
    yield conn, workspace, library, answers, report, evaluation
    conn.close()


def test_demo_evaluation_compares_imitation_and_baseline_with_sample_sizes(flow) -> None:
    conn, _, _, _, report, evaluation = flow
    assert isinstance(evaluation, EvaluationReport)
    n_validation, n_prediction = len(items_in(conn, ("validation",))), len(items_in(conn, ("prediction",)))
    tasks = {"gdp_tercile", "hemisphere", "landlocked", "population", "membership"}
    assert report.n_labels == n_validation and report.n_labelers == 1 and set(report.tasks) == tasks
    kinds = {s.kind: s for s in evaluation.scores}
    assert kinds["baseline"].n == kinds["imitation"].n == n_prediction
    assert evaluation.n_baseline_items == len(items_in(conn, ("train",)))
    simulated = kinds["simulated labeler"]
    assert simulated.name == "simulated labeler simulated:eval" and simulated.split == "validation"
    assert simulated.n == n_validation and simulated.accuracy > 0.85
    for s in evaluation.scores:
        assert 0.0 <= s.accuracy <= 1.0 and s.log_loss > 0 and sum(n for n, _ in s.per_task.values()) == s.n
    # The demo's point: on the held-out regions, imitating Z-readers beats trusting D's learner.
    assert kinds["imitation"].log_loss < kinds["baseline"].log_loss
    assert evaluation.iid.iid and evaluation.iid.n_a == n_validation and evaluation.iid.n_b == n_prediction


def test_the_iid_guard_flags_a_deliberately_non_iid_split(flow) -> None:
    conn, workspace, library, *_ = flow
    questions_about_places = [i for i in items_in(conn, ("validation",)) if i.task in ("landlocked", "hemisphere")]
    questions_about_numbers = [i for i in items_in(conn, ("prediction",)) if i.task in ("population", "gdp_tercile")]
    report = iid_check(conn, workspace, library, questions_about_places, questions_about_numbers)
    assert not report.iid and report.auc > 0.8 and "NOT look like" in report.message


def test_cli_evaluate_and_predict_on_the_demo(flow, tmp_path: Path) -> None:
    from navigator.commands.train import evaluate as evaluate_command
    from navigator.commands.train import predict

    conn, workspace, _, answers, report, _ = flow
    n_prediction = len(items_in(conn, ("prediction",)))
    group = click.Group(commands={"evaluate": evaluate_command, "predict": predict})
    runner = CliRunner()
    result = runner.invoke(group, ["evaluate", "-w", str(workspace), "--answers", str(answers)])
    assert result.exit_code == 0, result.output
    assert "naive baseline" in result.output and "imitation model" in result.output
    assert str(n_prediction) in result.output
    out = tmp_path / "p.jsonl"
    result = runner.invoke(group, ["predict", "-w", str(workspace), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == n_prediction and all(r["model_version"] == report.model_version for r in records)
    assert {r["item"] for r in records} == {item.uid for item in items_in(connect(workspace), ("prediction",))}
