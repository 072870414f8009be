"""The simulated labeler on the demo: reads the library, is right at noise 0, is marked simulated,
and several can write to one workspace at once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click
from click.testing import CliRunner

from kb.db import connect
from kb.item_import import answer_key_path, read_answer_key
from kb.items import gold, items_in
from kb.libraries import get_library
from models.imitation.simulated_labeler import SimulatedLabeler, simulated_name


def test_simulated_labeler_on_the_demo(demo_workspace: Path) -> None:
    conn = connect(demo_workspace)
    library = get_library(conn, "factbook")
    key = read_answer_key(answer_key_path(demo_workspace))
    validation = items_in(conn, ("validation",))
    train_items = items_in(conn, ("train",))

    # noise 0: reads every answer from the library, right on (nearly) every item
    exact = SimulatedLabeler(conn, demo_workspace, library, "exact", noise=0.0)
    readings = {item.uid: exact.read(item) for item in validation + train_items}
    right = sum(readings[i.uid].answer == key[i.uid].y for i in validation) + sum(
        readings[i.uid].answer == gold(conn, i) for i in train_items
    )
    assert right / (len(validation) + len(train_items)) > 0.97
    landlocked = next(i for i in validation if i.uid == "demo:landlocked:bl")  # Bolivia
    reading = readings[landlocked.uid]
    assert reading.answer == "yes" and reading.cited == ("fb:bl/geography/coastline",)
    assert reading.trail == ("fb:bl", "fb:bl/geography", "fb:bl/geography/coastline")

    # two simulated labelers writing to one workspace at once, each with its own connection
    def run(name: str, noise: float) -> None:
        own = connect(demo_workspace)
        SimulatedLabeler(own, demo_workspace, library, name, noise=noise, seed=7).label(validation)
        own.close()

    threads = [threading.Thread(target=run, args=(name, noise)) for name, noise in (("zero", 0.0), ("noisy", 0.5))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = conn.execute("SELECT labeler, source, probs, cited, note FROM predictions").fetchall()
    assert len(rows) == 2 * len(validation)
    assert {row["labeler"] for row in rows} == {"simulated:zero", "simulated:noisy"}
    assert {row["source"] for row in rows} == {"simulated"}
    assert all(row["note"].startswith("simulated labeler") for row in rows)
    items_by_id = {i.id: i for i in validation}
    for labeler, low, high in (("simulated:zero", 0.97, 1.0), ("simulated:noisy", 0.6, 0.9)):
        store = SimulatedLabeler(conn, demo_workspace, library, labeler).store
        current = store.current_predictions(library.id)
        accuracy = sum(
            max(p.probs, key=p.probs.__getitem__) == key[items_by_id[item_id].uid].y for item_id, p in current.items()
        ) / len(current)
        assert low <= accuracy <= high, (labeler, accuracy)

    # the same seed draws the same noise; labelled items are skipped unless asked to relabel
    again = SimulatedLabeler(conn, demo_workspace, library, "noisy", noise=0.5, seed=7)
    assert again.label(validation).skipped == len(validation)
    assert [again.answer(i, readings[i.uid]) for i in validation[:20]] == [
        SimulatedLabeler(conn, demo_workspace, library, "other", noise=0.5, seed=7).answer(i, readings[i.uid])
        for i in validation[:20]
    ]

    # the command line says SIMULATED and stores the simulated: name
    from navigator.commands.train import simulate

    result = CliRunner().invoke(
        click.Group(commands={"simulate": simulate}),
        ["simulate", "-w", str(demo_workspace), "--labeler", "cli", "--split", "validation", "--noise", "0", "--json"],
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (
        shown["labeler"] == "simulated:cli" and shown["source"] == "simulated" and shown["labelled"] == len(validation)
    )
    assert simulated_name("simulated:x") == "simulated:x"
    conn.close()
