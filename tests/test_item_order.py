"""Which item next: uncertainty order with a random stream kept for the IID guard, on hand-made
items, then on the demo with the simulated labeler, the CLI and the app."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from scipy.stats import chisquare

from kb.db import connect
from kb.items import Item, items_in
from kb.libraries import Library, get_library
from models.imitation.evaluation import iid_check, two_sample_test
from models.imitation.item_order import (
    RANDOM_EVERY,
    by_random_rank,
    disagreement,
    entropy,
    iid_sample,
    interleave,
    label_disagreement,
    order_items,
    priorities,
)
from models.imitation.retrieval import Retriever
from models.imitation.simulated_labeler import SimulatedLabeler
from models.imitation.trainer import train
from navigator.app import NavigatorApp
from navigator.labeling import QUEUE_SPLITS
from navigator.screens.workbench import WorkbenchScreen


def items(n: int) -> list[Item]:
    return [Item(i, f"item:{i:03d}", "t", f"question {i}?", ("yes", "no"), "validation") for i in range(n)]


def test_entropy_and_disagreement_match_hand_computed_values() -> None:
    assert entropy([1.0, 0.0]) == 0.0 and entropy([0.5, 0.5]) == pytest.approx(1.0)
    assert entropy([0.25] * 4) == pytest.approx(1.0)
    assert disagreement([[0.9, 0.1]]) == 0.0  # one labeler cannot disagree
    assert disagreement([[0.9, 0.1], [0.9, 0.1]]) == pytest.approx(0.0, abs=1e-12)
    assert disagreement([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(1.0)  # opposite and certain


def test_priority_is_model_uncertainty_or_labeler_disagreement_and_unknown_items_come_first() -> None:
    sure, torn, unknown = items(3)
    priority = priorities([sure, torn, unknown], {sure.uid: [0.99, 0.01], torn.uid: [0.99, 0.01]}, {torn.uid: 0.7})
    assert priority[unknown.uid] == 1.0  # its task had no model yet: it must not be starved
    assert priority[torn.uid] == 0.7 and priority[sure.uid] == pytest.approx(entropy([0.99, 0.01]))
    assert [item.uid for item in interleave([sure, torn, unknown], priority, seed=0)][:2] == [unknown.uid, torn.uid]


def test_one_slot_in_three_takes_the_random_stream_the_rest_go_by_priority() -> None:
    given = items(12)
    priority = {item.uid: item.id / 100 for item in given}  # the last item is the least sure
    ordered = interleave(given, priority, seed=5)
    assert sorted(item.uid for item in ordered) == sorted(item.uid for item in given)
    rank = by_random_rank(given, 5)
    placed: set[str] = set()
    by_priority = iter(sorted(given, key=lambda item: -priority[item.uid]))
    for slot, item in enumerate(ordered):
        source = rank if slot % RANDOM_EVERY == RANDOM_EVERY - 1 else by_priority
        expected = next(i for i in source if i.uid not in placed)
        assert item == expected, slot
        placed.add(item.uid)
    assert interleave(given, priority, seed=5) == ordered  # deterministic


def test_however_far_labelers_get_the_labelled_items_hold_a_uniform_random_sample() -> None:
    """After the first n items of any uncertainty order, the longest fully-labelled prefix of the
    random order has at least n // RANDOM_EVERY items, whatever the priorities were; and that
    prefix is uniform: over 600 seeds, each of 12 items comes first equally often."""
    given = items(30)
    rng = random.Random(0)
    for trial in range(50):
        priority = {item.uid: rng.random() for item in given}
        ordered = interleave(given, priority, seed=trial)
        for n in range(len(given) + 1):
            sample = iid_sample(given, {item.uid for item in ordered[:n]}, seed=trial)
            assert len(sample) >= n // RANDOM_EVERY
            assert sample == by_random_rank(given, trial)[: len(sample)]
    few = items(12)
    firsts = [by_random_rank(few, seed)[0].id for seed in range(600)]
    counts = [firsts.count(i) for i in range(12)]
    assert chisquare(counts).pvalue > 0.001, counts


@pytest.fixture(scope="module")
def labelled_demo(demo_build: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory):
    """A demo copy where a simulated labeler labelled 120 D*_validation items in random order
    and a model was trained on them."""
    import shutil

    master = demo_build[0]
    workspace = tmp_path_factory.mktemp("order") / master.name
    source, target = sqlite3.connect(master), sqlite3.connect(workspace)
    source.backup(target)
    source.close()
    target.close()
    shutil.copytree(master.with_name(master.name + ".index"), workspace.with_name(workspace.name + ".index"))
    conn = connect(workspace)
    library = get_library(conn, "factbook")
    validation = items_in(conn, ("validation",))
    iid_before = iid_check(conn, workspace, library, permutations=10)
    first = order_items(conn, library, validation, order="random").items[:120]
    SimulatedLabeler(conn, workspace, library, "first", noise=0.1, seed=1).label(first)
    train(conn, workspace, library, seed=0)
    yield conn, workspace, library, iid_before
    conn.close()


def test_the_queue_puts_what_the_model_is_least_sure_of_first_and_keeps_train_items_in_place(labelled_demo) -> None:
    conn, _, library, _ = labelled_demo
    queue = items_in(conn, QUEUE_SPLITS)
    ordering = order_items(conn, library, queue)  # "auto": the library has a model now
    assert "uncertainty (model v1)" in ordering.how and f"1 in {RANDOM_EVERY} at random" in ordering.how
    assert [item.split for item in ordering.items] == [item.split for item in queue]
    assert [i for i in ordering.items if i.split == "train"] == [i for i in queue if i.split == "train"]
    row = conn.execute("SELECT model FROM trained_models ORDER BY version DESC LIMIT 1").fetchone()
    from models.imitation.model_store import load_validation_predictions

    stored = load_validation_predictions(bytes(row[0]), library.name)
    validation = [item for item in ordering.items if item.split == "validation"]
    assert set(stored) == {item.uid for item in validation}
    priority_slots = [item for slot, item in enumerate(validation) if slot % RANDOM_EVERY != RANDOM_EVERY - 1]
    uncertainty = [entropy(stored[item.uid]) for item in priority_slots]
    assert uncertainty[:10] == sorted(uncertainty, reverse=True)[:10]
    assert uncertainty[0] > uncertainty[-1]
    assert order_items(conn, library, queue, order="given").items == queue


def test_simulate_follows_the_order_and_the_iid_guard_keeps_seeing_an_iid_sample(labelled_demo) -> None:
    from navigator.commands.train import simulate

    conn, workspace, library, iid_before = labelled_demo
    validation = items_in(conn, ("validation",))
    expected = [
        item
        for item in order_items(conn, library, validation, order="uncertain").items
        if item.uid not in labelled_uids(conn, library, "simulated:second")
    ][:30]
    group = click.Group(commands={"simulate": simulate})
    result = CliRunner().invoke(
        group,
        ["simulate", "-w", str(workspace), "--labeler", "second", "--order", "uncertain", "--limit", "30", "--json"],
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["labelled"] == 30 and "uncertainty (model v1)" in shown["order"]
    assert labelled_uids(conn, library, "simulated:second") == {item.uid for item in expected}
    # The split-level guard compares all of D*_validation with D*_prediction: the order changes nothing.
    after = iid_check(conn, workspace, library, permutations=10)
    assert (after.auc, after.p_value) == (iid_before.auc, iid_before.p_value) and after.iid
    # The labelled random stream is an IID sample of D*_validation: the guard passes on it too.
    sample = iid_sample(validation, labelled_uids(conn, library, "simulated:second"), seed=0)
    assert len(sample) >= 30 // RANDOM_EVERY
    retriever = Retriever(conn, workspace, library)
    try:
        texts = [retriever.view(item).text() for item in sample]
        prediction = [retriever.view(item).text() for item in items_in(conn, ("prediction",))]
    finally:
        retriever.close()
    assert two_sample_test(texts, prediction, permutations=20).iid


def labelled_uids(conn: sqlite3.Connection, library: Library, labeler: str) -> set[str]:
    from kb.labels import LabelStore

    by_id = {item.id: item.uid for item in items_in(conn, ("validation",))}
    return {by_id[i] for i in LabelStore(conn, labeler).current_predictions(library.id) if i in by_id}


async def test_the_app_orders_its_queue_by_the_model_and_says_so(labelled_demo) -> None:
    conn, workspace, library, _ = labelled_demo
    app = NavigatorApp(workspace=workspace, labeler="carol")
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WorkbenchScreen)
        expected = order_items(conn, library, items_in(conn, QUEUE_SPLITS)).items
        assert [item.uid for item in screen.queue] == [item.uid for item in expected]
        shown = " ".join(str(n.message) for n in app._notifications)
        assert "Queue: D*_validation by uncertainty (model v1)" in shown


def test_assignment_filters_and_the_order_orders_what_is_left(labelled_demo) -> None:
    """Who gets which items (kb.assignments) and in which order (models.imitation.item_order) compose: the
    queue holds exactly the labeler's share, with D*_validation in uncertainty order."""
    from kb.assignments import assign, items_for

    conn, _, library, _ = labelled_demo
    assign(conn, ["erin", "frank"], 1, split="validation", seed=0)
    queue = items_in(conn, QUEUE_SPLITS)
    share = items_for(conn, "erin", queue)
    ordering = order_items(conn, library, share)
    assert sorted(i.uid for i in ordering.items) == sorted(i.uid for i in share)
    assert 0 < sum(i.split == "validation" for i in share) < sum(i.split == "validation" for i in queue)
    validation = [i for i in share if i.split == "validation"]
    predictions = {i.uid: p for i, p in zip(validation, stored_predictions(conn, library, validation), strict=True)}
    disagreements = label_disagreement(conn, library, validation)
    expected = interleave(validation, priorities(validation, predictions, disagreements), seed=0)
    assert [i for i in ordering.items if i.split == "validation"] == expected


def stored_predictions(conn: sqlite3.Connection, library: Library, items: list[Item]) -> list[list[float]]:
    from models.imitation.model_store import latest_validation_predictions

    stored = latest_validation_predictions(conn, library.id, library.name)
    assert stored is not None
    return [stored[1][item.uid] for item in items]


def test_labelers_who_disagree_raise_an_item_until_the_lead_rules_on_it(labelled_demo) -> None:
    from kb.labels import LabelStore

    conn, _, library, _ = labelled_demo
    item = items_in(conn, ("validation",))[-1]
    first, second = item.options[0], item.options[1]
    for labeler, option in (("pat", first), ("quinn", second)):
        probs = {o: (0.97 if o == option else 0.03 / (len(item.options) - 1)) for o in item.options}
        LabelStore(conn, labeler).record_prediction(item, library.id, probs)
    assert label_disagreement(conn, library, [item])[item.uid] > 0.5
    LabelStore(conn, "lead").record_prediction(
        item, library.id, {o: 1 / len(item.options) for o in item.options}, adjudication=True
    )
    assert item.uid not in label_disagreement(conn, library, [item])
