"""The same query on the same index gives the same hits in the same order whatever the load:
people, the trainer and the simulated labeler read Z through this one search.

Each check runs once on a quiet machine and once while two processes keep both cores
busy; a search whose ranking stopped on a clock would lose hits (or change their order)
under load, most of all in a fresh process that also pays for opening the index.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kb.db import connect
from kb.items import items_in
from kb.libraries import find_library
from kb.search import SearchIndex
from models.imitation.retrieval import Retriever, clear_cache
from models.imitation.simulated_labeler import SimulatedLabeler

QUESTIONS = 12


def _spin(stop: Any) -> None:
    while not stop.is_set():
        sum(range(10_000))


@contextmanager
def cpu_load(processes: int = 2) -> Iterator[None]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workers = [context.Process(target=_spin, args=(stop,)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)


def one_shot_searches(workspace: Path, questions: list[str]) -> list[Any]:
    """`navigator search --json` in a new process per question: start-up and opening included."""
    pages = []
    for question in questions:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "navigator.cli",
                "search",
                "-w",
                str(workspace),
                "--json",
                "--limit",
                "10",
                question,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(done.stdout)
        pages.append([(hit["id"], hit["score"], hit["matched"]) for hit in found["hits"]] + [found["total"]])
    return pages


def twice(measure: Callable[[], Any]) -> tuple[Any, Any]:
    quiet = measure()
    with cpu_load():
        loaded = measure()
    return quiet, loaded


def test_search_trainer_and_simulated_labeler_answer_the_same_under_cpu_load(demo_workspace: Path) -> None:
    conn = connect(demo_workspace)
    library = find_library(conn, "factbook")
    assert library is not None
    items = items_in(conn, ("validation",))[:QUESTIONS]
    questions = [item.x for item in items]

    quiet, loaded = twice(lambda: one_shot_searches(demo_workspace, questions))
    assert quiet == loaded
    assert all(page[-1] > 0 for page in quiet)  # every question found something

    def retrieved() -> list[str]:
        clear_cache()
        retriever = Retriever(conn, demo_workspace, library)
        try:
            return [retriever.view(item).text() for item in items]
        finally:
            retriever.close()

    quiet_texts, loaded_texts = twice(retrieved)
    assert quiet_texts == loaded_texts

    def readings() -> list[Any]:
        labeler = SimulatedLabeler(conn, demo_workspace, library, "determinism", noise=0.0)
        try:
            return [labeler.read(item) for item in items]
        finally:
            labeler.search.close()

    quiet_readings, loaded_readings = twice(readings)
    assert quiet_readings == loaded_readings
    assert sum(reading.answer is not None for reading in quiet_readings) == len(items)
    conn.close()


def test_a_fresh_searcher_and_a_long_lived_one_agree(demo_workspace: Path) -> None:
    conn = connect(demo_workspace)
    library = find_library(conn, "factbook")
    assert library is not None
    questions = [item.x for item in items_in(conn, ("train",))[:QUESTIONS]]
    long_lived = SearchIndex(conn, demo_workspace, library)
    kept = [[hit.uid for hit in long_lived.search(question).hits] for question in questions]
    fresh = []
    for question in questions:
        index = SearchIndex(conn, demo_workspace, library)
        fresh.append([hit.uid for hit in index.search(question).hits])
        index.close()
    assert kept == fresh
    long_lived.close()
    conn.close()
