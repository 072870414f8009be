"""The imitation trainer on tiny hand-made data: soft targets, metrics, refusals, determinism, storage."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import items_in
from kb.labels import LabelStore
from kb.libraries import Library, create_library
from kb.records import ItemRecord
from kb.search import SearchIndex
from models.imitation.learners import DEFAULT_LEARNER, LEARNERS
from models.imitation.trainer import (
    MIN_ITEMS_PER_TASK,
    TrainerError,
    _pooled_metrics,
    clear_cache,
    label_metrics,
    latest_report,
    predict_items,
    train,
)

FRUITS = {
    "apple": "red",
    "cherry": "red",
    "strawberry": "red",
    "raspberry": "red",
    "tomato": "red",
    "pomegranate": "red",
    "cranberry": "red",
    "banana": "yellow",
    "lemon": "yellow",
    "pineapple": "yellow",
    "mango": "yellow",
    "quince": "yellow",
    "papaya": "yellow",
    "grapefruit": "yellow",
}


def build(tmp_path: Path) -> tuple[sqlite3.Connection, Path, Library]:
    workspace = tmp_path / "w.db"
    conn = connect(workspace, create=True)
    library = create_library(conn, "fruit")
    nodes = [
        StagedNode(n, f"f:{name}", None, "statement", name.title(), f"The {name} is {colour} when ripe.")
        for n, (name, colour) in enumerate(FRUITS.items(), 1)
    ]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    SearchIndex(conn, workspace, library).rebuild()
    records = [
        ItemRecord.model_validate(
            {"id": f"red:{name}", "x": f"Is the {name} red?", "options": ["yes", "no"], "task": "red"}
        )
        for name in FRUITS
    ]
    add_items(conn, list(enumerate(records, 1)), source="t", dstar=False)
    return conn, workspace, library


def label_all(conn: sqlite3.Connection, library: Library, labeler: str, confidence: float) -> None:
    store = LabelStore(conn, labeler, source="simulated")
    for item in items_in(conn, ("train",)):
        red = FRUITS[item.uid.split(":")[1]] == "red"
        p = confidence if red else 1 - confidence
        store.record_prediction(item, library.id, {"yes": p, "no": 1 - p})


@pytest.fixture
def fruit(tmp_path: Path) -> tuple[sqlite3.Connection, Path, Library]:
    return build(tmp_path)


def test_label_metrics_match_hand_computed_values() -> None:
    predicted = np.array([[0.8, 0.2], [0.4, 0.6]])
    targets = np.array([[1.0, 0.0], [0.5, 0.5]])
    metrics = label_metrics(predicted, targets)
    assert metrics["cross_entropy"] == pytest.approx((-math.log(0.8) - 0.5 * math.log(0.4) - 0.5 * math.log(0.6)) / 2)
    assert metrics["top_choice_agreement"] == pytest.approx(0.75)  # the target's tie in row 2 earns half
    assert metrics["brier"] == pytest.approx((0.04 + 0.04 + 0.01 + 0.01) / 2)
    # confidences 0.8 and 0.6 fall in different bins: |0.8 − 1| and |0.6 − 0.5|, each weighted 1/2
    assert metrics["ece"] == pytest.approx(0.15)


def test_pooling_tasks_with_different_option_counts_is_a_label_weighted_mean() -> None:
    two = (np.array([[0.7, 0.3]]), np.array([[1.0, 0.0]]))
    three = (np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]), np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    pooled = _pooled_metrics([two[0], three[0]], [two[1], three[1]])
    expected = (-math.log(0.7) - math.log(0.5) - math.log(0.8)) / 3
    assert pooled["cross_entropy"] == pytest.approx(expected)
    assert pooled["top_choice_agreement"] == 1.0


@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_training_uses_the_probability_vectors_not_only_their_argmax(tmp_path: Path, learner: str) -> None:
    """Same argmax everywhere, different confidence: a model fitted to 0.6/0.4 labels must be
    less sure than one fitted to 0.95/0.05 labels; an argmax-only learner would give equal fits."""
    sure: dict[str, dict[str, float]] = {}
    for name, confidence in (("hesitant", 0.6), ("sure", 0.95)):
        conn, workspace, library = build(tmp_path / name)
        label_all(conn, library, "simulated:a", confidence)
        report = train(conn, workspace, library, folds=3, learner=learner)
        assert report.n_labels == len(FRUITS) and report.n_items == len(FRUITS) and report.n_labelers == 1
        assert report.model_version == 1 and latest_report(conn, library) == report
        probs = predict_items(conn, workspace, library, items_in(conn, ("train",)))
        sure[name] = {uid: max(p.values()) for uid, p in probs.items()}
        red = [p["yes"] for uid, p in probs.items() if FRUITS[uid.split(":")[1]] == "red"]
        yellow = [p["yes"] for uid, p in probs.items() if FRUITS[uid.split(":")[1]] == "yellow"]
        assert min(red) > max(yellow)  # the body text is read: "red when ripe"
    assert all(sure["hesitant"][uid] < sure["sure"][uid] for uid in sure["sure"])
    assert max(sure["hesitant"].values()) < 0.75


def test_too_few_labels_are_refused_with_the_minimum_and_nothing_is_saved(fruit) -> None:
    conn, workspace, library = fruit
    with pytest.raises(TrainerError, match="no prediction labels"):
        train(conn, workspace, library)
    store = LabelStore(conn, "ann")
    for item in items_in(conn, ("train",))[: MIN_ITEMS_PER_TASK - 1]:
        store.record_prediction(
            item, library.id, {"yes": 0.7, "no": 0.3} if "apple" in item.uid else {"yes": 0.2, "no": 0.8}
        )
    with pytest.raises(
        TrainerError, match=f"{MIN_ITEMS_PER_TASK - 1} labelled items, need at least {MIN_ITEMS_PER_TASK}"
    ):
        train(conn, workspace, library)
    assert latest_report(conn, library) is None
    with pytest.raises(TrainerError, match="run `navigator train` first"):
        predict_items(conn, workspace, library, items_in(conn, ("train",)))


def test_a_single_option_is_refused(fruit) -> None:
    conn, workspace, library = fruit
    store = LabelStore(conn, "ann")
    for item in items_in(conn, ("train",)):
        store.record_prediction(item, library.id, {"yes": 0.9, "no": 0.1})
    with pytest.raises(TrainerError, match="only one option was ever used"):
        train(conn, workspace, library)


@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_fixed_seed_gives_identical_results_and_versions_count_up(fruit, learner: str) -> None:
    conn, workspace, library = fruit
    label_all(conn, library, "simulated:a", 0.9)
    label_all(conn, library, "simulated:b", 0.7)
    first = train(conn, workspace, library, seed=3, folds=4, learner=learner)
    p1 = predict_items(conn, workspace, library, items_in(conn, ("train",)))
    clear_cache()  # the second run reads Z again, as a fresh process would
    second = train(conn, workspace, library, seed=3, folds=4, learner=learner)
    p2 = predict_items(conn, workspace, library, items_in(conn, ("train",)))
    assert (first.model_version, second.model_version) == (1, 2)
    assert first.learner == second.learner == learner and first.learner_params == LEARNERS[learner].params
    assert first.data_hash == second.data_hash and first.n_labels == 2 * len(FRUITS) and first.n_labelers == 2
    for field in ("cross_entropy", "top_choice_agreement", "brier", "ece", "learning_curve"):
        assert getattr(first, field) == getattr(second, field)
    assert p1 == p2
    sizes = [size for size, _ in first.learning_curve]
    assert sizes == sorted(sizes) and sizes[-1] <= first.n_labels
    row = conn.execute("SELECT n_labels, data_hash, length(model) FROM trained_models WHERE version = 2").fetchone()
    assert tuple(row[:2]) == (first.n_labels, first.data_hash) and row[2] > 0


def test_cli_train_and_predict_write_model_predictions(fruit, tmp_path: Path) -> None:
    from navigator.commands.train import predict
    from navigator.commands.train import train as train_command

    conn, workspace, library = fruit
    label_all(conn, library, "simulated:a", 0.9)
    group = click.Group(commands={"train": train_command, "predict": predict})
    runner = CliRunner()
    result = runner.invoke(group, ["train", "-w", str(workspace), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["n_labels"] == len(FRUITS) and shown["learner"] == DEFAULT_LEARNER
    result = runner.invoke(group, ["train", "-w", str(workspace), "--learner", "bow"])
    assert result.exit_code == 0 and "model v2" in result.output and "learner 'bow' (tfidf=" in result.output
    result = runner.invoke(group, ["train", "-w", str(workspace), "--learner", "nonsense"])
    assert result.exit_code == 2 and "'nonsense' is not one of 'bow', 'reader'" in result.output
    out = tmp_path / "preds.jsonl"
    result = runner.invoke(group, ["predict", "-w", str(workspace), "--split", "train", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == len(FRUITS)
    assert {r["type"] for r in records} == {"model_prediction"} and records[0]["model_version"] == 2
    assert set(records[0]) >= {"id", "item", "probs", "timestamp", "schema_version"}
    assert all(abs(sum(r["probs"].values()) - 1) < 1e-9 for r in records)
    result = runner.invoke(group, ["predict", "-w", str(workspace), "--split", "validation"])
    assert result.exit_code == 1 and "no validation items" in result.output


def test_the_reading_plan_is_learned_from_citations_and_read_for_items_nobody_labelled(tmp_path: Path) -> None:
    """Labelers cite each fruit's "colour" field; the model then reads that field for every fruit,
    and says where it read in its report."""
    workspace = tmp_path / "w.db"
    conn = connect(workspace, create=True)
    library = create_library(conn, "fruit")
    nodes = []
    for n, (name, colour) in enumerate(FRUITS.items(), 1):
        nodes.append(StagedNode(n, f"f:{name}", None, "fruit", name.title(), "A fruit that grows on plants."))
        nodes.append(StagedNode(n, f"f:{name}/colour", f"f:{name}", "field", "Colour", f"{colour} when ripe"))
        nodes.append(StagedNode(n, f"f:{name}/taste", f"f:{name}", "field", "Taste", "sweet"))
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    SearchIndex(conn, workspace, library).rebuild()
    records = [
        ItemRecord.model_validate(
            {"id": f"red:{name}", "x": f"Is the {name} red?", "options": ["yes", "no"], "task": "red"}
        )
        for name in FRUITS
    ]
    add_items(conn, list(enumerate(records, 1)), source="t", dstar=False)
    held_out = {"red:apple", "red:grapefruit"}  # one red, one yellow: nobody labels them
    store = LabelStore(conn, "ann")
    for item in items_in(conn, ("train",)):
        if item.uid in held_out:
            continue
        name = item.uid.split(":")[1]
        red = FRUITS[name] == "red"
        store.record_prediction(
            item, library.id, {"yes": 0.9 if red else 0.1, "no": 0.1 if red else 0.9}, cited=[f"f:{name}/colour"]
        )
    report = train(conn, workspace, library, folds=3)
    assert report.reading == {"red": ["colour (12 cited)"]}
    unlabelled = [item for item in items_in(conn, ("train",)) if item.uid in held_out]
    probs = predict_items(conn, workspace, library, unlabelled)
    for item in unlabelled:
        red = FRUITS[item.uid.split(":")[1]] == "red"
        assert (probs[item.uid]["yes"] > 0.5) == red, item.uid
