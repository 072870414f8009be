"""Agreement and disagreements: figures checked by hand on small cases, the command line, and the
acceptance run on the demo (four simulated labelers of different noise, overlap 2)."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kb.assignments import assign
from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import item_by_uid, items_in
from kb.labels import LabelStore, current_predictions_in_library
from kb.libraries import Library, create_library, get_library
from kb.records import ItemRecord
from models.imitation.agreement import OVERALL, agreement, disagreements, js_distance, nominal_alpha, top_choice
from models.imitation.score import calibration
from navigator.commands.team import agreement as agreement_command
from navigator.commands.team import disagreements as disagreements_command

YES_NO = ("yes", "no")


def two_way(p: float) -> dict[str, float]:
    return {"yes": p, "no": round(1.0 - p, 10)}


@pytest.fixture
def small(conn: sqlite3.Connection) -> Library:
    """Library 'z' with one statement; train items t0..t3 (gold yes); D* items of which four are validation."""
    library = create_library(conn, "z", uid="lib_z")
    nodes = [StagedNode(1, "s1", None, "statement", "Chad is [bold]landlocked[/bold]")]
    import_staged(conn, library, iter(nodes), source="t", importer="t")
    train = [ItemRecord(id=f"t{n}", x=f"Train {n}?", options=list(YES_NO), y="yes", task="land") for n in range(4)]
    add_items(conn, list(enumerate(train, 1)), source="t", dstar=False)
    held = [ItemRecord(id=f"v{n}", x=f"Held {n}?", options=list(YES_NO), task="land") for n in range(8)]
    add_items(conn, list(enumerate(held, 1)), source="d", dstar=True, seed=0, validation_fraction=0.5)
    return library


def held(conn: sqlite3.Connection) -> list[str]:
    """The uids of the validation items (the D* split is drawn at random), sorted."""
    return sorted(item.uid for item in items_in(conn, ("validation",)))


def label(conn: sqlite3.Connection, library: Library, who: str, uid: str, p: float, **extra: object) -> None:
    item = item_by_uid(conn, uid)
    assert item is not None
    LabelStore(conn, who, source="simulated" if who.startswith("simulated:") else "human").record_prediction(
        item, library.id, two_way(p), **extra
    )


def test_alpha_and_js_distance_match_the_hand_computation(conn: sqlite3.Connection, small: Library) -> None:
    # t0: both yes · t1: both no · t2: ann yes, bob no. Coincidences: o(yes,yes) = 2, o(no,no) = 2,
    # o(yes,no) = o(no,yes) = 1; n = 6, n_yes = n_no = 3. D_o = 2/6, D_e = 2·3·3/(6·5) = 0.6.
    for uid, ann, bob in (("t0", 0.9, 0.8), ("t1", 0.2, 0.1), ("t2", 0.9, 0.1)):
        label(conn, small, "ann", uid, ann)
        label(conn, small, "bob", uid, bob)
    label(conn, small, "ann", "t3", 0.7)  # only one labeler: no part of agreement
    report = agreement(conn, small)
    [task] = report.tasks
    assert task.task == "land" and (task.n_items, task.n_labels, task.n_labelers) == (3, 6, 2)
    assert task.alpha == pytest.approx(1 - (2 / 6) / 0.6) and task.alpha_items == 3
    assert report.overall.alpha == pytest.approx(task.alpha) and report.overall.task == OVERALL

    def js(p: float, q: float) -> float:
        def kl(a: list[float], m: list[float]) -> float:
            return sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)

        first, second = [p, 1 - p], [q, 1 - q]
        middle = [(x + y) / 2 for x, y in zip(first, second, strict=True)]
        return math.sqrt((kl(first, middle) + kl(second, middle)) / 2)

    expected = (js(0.9, 0.8) + js(0.2, 0.1) + js(0.9, 0.1)) / 3
    assert task.js_distance == pytest.approx(expected) and task.js_pairs == 3
    assert js_distance(two_way(1.0), two_way(0.0), YES_NO) == pytest.approx(1.0)
    [pair] = report.pairs
    assert (pair.first, pair.second, pair.n_items) == ("ann", "bob", 3)
    assert pair.same_top_choice == pytest.approx(2 / 3)


def test_ties_have_no_top_choice_and_alpha_needs_variation() -> None:
    assert top_choice({"a": 0.5, "b": 0.5}, ("a", "b")) is None
    assert top_choice({"a": 0.2, "b": 0.5, "c": 0.3}, ("a", "b", "c")) == "b"
    assert nominal_alpha([["a", "a"], ["a", "a"]]) == (
        None,
        2,
        "every top choice is 'a': alpha is undefined without variation",
    )
    assert nominal_alpha([["a", None], ["b"]])[:2] == (None, 0)
    alpha, units, _ = nominal_alpha([["a", "a"], ["b", "b"], ["a", "b"], ["a", None]])
    assert units == 3 and alpha == pytest.approx(1 - (2 / 6) / 0.6)


def test_undone_labels_adjudications_and_ties_are_treated_as_documented(
    conn: sqlite3.Connection, small: Library
) -> None:
    v0, v1, *_ = held(conn)
    label(conn, small, "ann", v0, 0.9)
    label(conn, small, "bob", v0, 0.2)
    label(conn, small, "cy", v0, 0.5)  # tied: no top choice
    label(conn, small, "ann", v1, 0.9)
    label(conn, small, "bob", v1, 0.1)
    assert LabelStore(conn, "bob").undo_last() is not None  # bob's v1 label is withdrawn
    label(conn, small, "lead", v0, 0.95, adjudication=True)
    current = current_predictions_in_library(conn, small.id)
    assert {(p.labeler, p.adjudication) for p in current} >= {("lead", True), ("ann", False)}
    report = agreement(conn, small)
    assert report.n_adjudications == 1
    assert (report.overall.n_items, report.overall.n_labels, report.overall.no_top_choice) == (1, 3, 1)
    assert report.overall.js_pairs == 3 and report.overall.alpha_items == 1
    assert "lead" not in {score.labeler for score in report.labelers}

    found = disagreements(conn, small)
    assert [entry.item.uid for entry in found] == [v0]
    assert found[0].adjudication is not None and found[0].adjudication.labeler == "lead"
    assert found[0].top_choices == {"ann": "yes", "bob": "no", "cy": None} and found[0].split_top_choice


def test_disagreements_most_first_open_before_adjudicated_identical_left_out(
    conn: sqlite3.Connection, small: Library
) -> None:
    v0, v1, v2, v3 = held(conn)
    for uid, ann, bob in ((v0, 0.9, 0.6), (v1, 0.9, 0.1), (v2, 0.7, 0.7), (v3, 0.8, 0.3)):
        label(conn, small, "ann", uid, ann, cited=["s1"], note=f"ann on {uid}")
        label(conn, small, "bob", uid, bob)
    assert [entry.item.uid for entry in disagreements(conn, small)] == [v1, v3, v0]
    label(conn, small, "lead", v1, 0.9, adjudication=True)
    found = disagreements(conn, small)
    assert [entry.item.uid for entry in found] == [v3, v0, v1]
    assert [entry.item.uid for entry in disagreements(conn, small, limit=1)] == [v3]
    assert disagreements(conn, small, splits=("train",)) == []
    assert [label.labeler for label in found[0].labels] == ["ann", "bob"]
    assert found[0].labels[0].cited == ["s1"] and found[0].labels[0].note == f"ann on {v3}"


def test_labelers_against_train_gold(conn: sqlite3.Connection, small: Library) -> None:
    label(conn, small, "ann", "t0", 0.9)
    label(conn, small, "ann", "t1", 0.6)
    label(conn, small, "simulated:bob", "t0", 0.2)
    label(conn, small, "simulated:bob", "t1", 0.0)  # floored at models.scoring.LOG_FLOOR, as F(Z) is
    label(conn, small, "cy", held(conn)[0], 0.5)  # no train labels: not ranked
    scores = {score.labeler: score for score in agreement(conn, small).labelers}
    ann, bob, cy = scores["ann"], scores["simulated:bob"], scores["cy"]
    assert (ann.rank, bob.rank, cy.rank) == (1, 2, None)
    assert ann.log_score == pytest.approx((math.log(0.9) + math.log(0.6)) / 2) and ann.n_train == 2
    assert bob.log_score == pytest.approx((math.log(0.2) + math.log(1e-6)) / 2)
    assert (ann.accuracy, bob.accuracy) == (1.0, 0.0)
    assert ann.brier == pytest.approx(((0.1**2) * 2 + (0.4**2) * 2) / 2)
    assert bob.simulated and bob.source == "simulated" and not ann.simulated
    # The same bins as the metrics screen's calibration plot, so the two never disagree.
    assert ann.bins == calibration(conn, small, "ann") and ann.n_probabilities == 4
    expected = sum(b.n * abs(b.stated - b.true) for b in ann.bins) / 4
    assert ann.calibration_error == pytest.approx(expected)
    assert (cy.n_train, cy.n_labels, cy.log_score) == (0, 1, None)


def test_the_commands_print_text_and_json(workspace: Path, conn: sqlite3.Connection, small: Library) -> None:
    for uid, ann, bob in (("t0", 0.9, 0.8), ("t1", 0.2, 0.1), ("t2", 0.9, 0.1)):
        label(conn, small, "ann", uid, ann, cited=["s1"], note="read [bold]it[/bold]")
        label(conn, small, "simulated:bob", uid, bob)
    group = click.Group(commands={"agreement": agreement_command, "disagreements": disagreements_command})
    runner = CliRunner()
    shown = runner.invoke(group, ["agreement", "-w", str(workspace), "--json"])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    assert payload["tasks"]["land"]["alpha"] == pytest.approx(1 - (2 / 6) / 0.6)
    assert payload["tasks"]["land"]["n_items"] == 3 and payload["tasks"]["land"]["js_n_pairs"] == 3
    assert [entry["labeler"] for entry in payload["labelers"]] == ["ann", "simulated:bob"]
    assert payload["labelers"][1]["simulated"] is True and payload["labelers"][1]["rank_by_log_score"] == 2
    text = runner.invoke(group, ["agreement", "-w", str(workspace)])
    assert "simulated:bob (SIMULATED)" in text.stdout and "land" in text.stdout
    unknown = runner.invoke(group, ["agreement", "-w", str(workspace), "--task", "nope"])
    assert unknown.exit_code == 1 and "no labels on task 'nope'" in unknown.stderr

    listed = runner.invoke(group, ["disagreements", "-w", str(workspace), "--json"])
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)["items"]
    # t0 (0.9 vs 0.8) and t1 (0.2 vs 0.1) are mirror images, equally far apart: the uid breaks the tie.
    assert [entry["item"] for entry in items] == ["t2", "t0", "t1"]
    ann_label = items[0]["labels"][0]
    assert ann_label["cited"] == [{"id": "s1", "path": "Chad is [bold]landlocked[/bold]"}]
    plain = runner.invoke(group, ["disagreements", "-w", str(workspace), "-n", "1"])
    assert (
        "cites Chad is [bold]landlocked[/bold]  (s1)" in plain.stdout and "note: read [bold]it[/bold]" in plain.stdout
    )
    assert "simulated:bob (SIMULATED): yes 0.10, no 0.90  → no" in plain.stdout


def test_acceptance_four_simulated_labelers_with_overlap_two_on_the_demo(demo_workspace: Path) -> None:
    """Noise 0.05/0.1/0.2/0.4, overlap 2 on validation (and on train, for the log scores): every
    validation item has exactly two labels, alpha and JS come per task with n, the noisiest ranks last."""
    from navigator.commands.train import simulate

    conn = connect(demo_workspace)
    library = get_library(conn, "factbook")
    names = {"n05": 0.05, "n10": 0.1, "n20": 0.2, "n40": 0.4}
    labelers = [f"simulated:{name}" for name in names]
    assign(conn, labelers, 2, split="validation", seed=0)
    assign(conn, labelers, 2, split="train", seed=1)
    group = click.Group(commands={"simulate": simulate, "agreement": agreement_command})
    runner = CliRunner()
    for seed, (name, noise) in enumerate(names.items(), start=1):
        for split in ("validation", "train"):
            args = ["--labeler", name, "--noise", str(noise), "--seed", str(seed), "--split", split]
            result = runner.invoke(group, ["simulate", "-w", str(demo_workspace), *args])
            assert result.exit_code == 0, result.output
    validation = items_in(conn, ("validation",))
    per_item = Counter(p.item_id for p in current_predictions_in_library(conn, library.id))
    assert {per_item[item.id] for item in validation} == {2}

    shown = runner.invoke(group, ["agreement", "-w", str(demo_workspace), "--json"])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    assert set(payload["tasks"]) == {"landlocked", "hemisphere", "population", "gdp_tercile", "membership"}
    for task in payload["tasks"].values():
        assert task["n_items"] > 100 and task["js_n_pairs"] == task["n_items"]
        assert 0.0 < task["alpha"] < 1.0 and 0.0 < task["js_distance"] < 1.0
    ranking = [entry["labeler"] for entry in payload["labelers"]]
    assert ranking[-1] == "simulated:n40" and ranking[0] == "simulated:n05"
    n_train = len(items_in(conn, ("train",)))  # each train item has two of the four labelers
    assert all(entry["simulated"] and entry["n_train"] == n_train // 2 for entry in payload["labelers"])
    conn.close()


def test_skill_weights_and_how_the_trainer_uses_them(conn: sqlite3.Connection, small: Library) -> None:
    from models.imitation.agreement import skill_weights
    from models.imitation.trainer import Label, _tasks, data_hash

    for uid in ("t0", "t1", "t2", "t3"):
        label(conn, small, "ann", uid, 0.9)
        label(conn, small, "simulated:bob", uid, 0.6)
    label(conn, small, "cy", "t0", 0.9)  # one train label: too few to judge, left at weight 1
    weights = skill_weights(agreement(conn, small), minimum_train=2)
    assert set(weights) == {"ann", "simulated:bob"}
    assert weights["ann"] == pytest.approx(0.9 / 0.75) and weights["simulated:bob"] == pytest.approx(0.6 / 0.75)
    assert skill_weights(agreement(conn, small, splits=("validation",))) == {}

    item = item_by_uid(conn, "t0")
    assert item is not None
    labels = [Label(item, "ann", (0.9, 0.1)), Label(item, "simulated:bob", (0.6, 0.4)), Label(item, "cy", (0.5, 0.5))]
    plain = _tasks(labels, {"t0": "text"})["land"]
    weighted = _tasks(labels, {"t0": "text"}, weights)["land"]
    assert plain.sums[0] == pytest.approx([2.0, 1.0])
    assert weighted.sums[0] == pytest.approx(
        [
            0.9 * weights["ann"] + 0.6 * weights["simulated:bob"] + 0.5,
            0.1 * weights["ann"] + 0.4 * weights["simulated:bob"] + 0.5,
        ]
    )
    assert weighted.label_rows.tolist() == plain.label_rows.tolist()  # CV still scores against the labels as given
    assert data_hash(labels, small, 1, 5) != data_hash(labels, small, 1, 5, weights)


def test_a_tied_label_is_scored_the_same_by_agreement_evaluate_and_the_trainers_report(
    conn: sqlite3.Connection, small: Library
) -> None:
    """models.scoring is the one rule: a tied top choice earns its share (here 1/2) and log P(gold)
    has one floor, whether the agreement screen, `navigator evaluate` or the trainer's report asks."""
    import numpy as np

    from models.imitation.evaluation import score
    from models.imitation.trainer import label_metrics
    from models.scoring import LOG_FLOOR

    for uid, p in (("t0", 0.5), ("t1", 0.0)):  # a tie with gold among the tied; a certain miss
        label(conn, small, "ann", uid, p)
    mine = next(entry for entry in agreement(conn, small).labelers if entry.labeler == "ann")
    assert mine.n_train == 2
    assert mine.accuracy == pytest.approx(0.25)
    assert mine.log_score == pytest.approx((math.log(0.5) + math.log(LOG_FLOOR)) / 2)

    evaluated = score(
        "ann",
        "human labeler",
        "train",
        {"t0": two_way(0.5), "t1": two_way(0.0)},
        {"t0": "yes", "t1": "yes"},
        {"t0": "land", "t1": "land"},
    )
    assert evaluated.accuracy == pytest.approx(mine.accuracy)
    assert evaluated.log_loss == pytest.approx(-(mine.log_score or 0.0))

    # The trainer's report compares the model with labels: a tied row scores the same share either way.
    reported = label_metrics(np.array([[0.5, 0.5], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert reported["top_choice_agreement"] == pytest.approx(mine.accuracy)
    assert reported["cross_entropy"] == pytest.approx(-(mine.log_score or 0.0))
