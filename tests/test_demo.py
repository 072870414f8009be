"""The demo workspace is real: built from the installed Factbook, answerable from Z, split out of distribution."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kb.db import connect
from kb.demo import HELD_OUT_REGIONS, build_demo
from kb.item_import import answer_key_path, read_answer_key
from kb.libraries import get_library
from kb.progress import NoProgress
from kb.search import SearchIndex
from kb.tree import node_by_uid
from navigator.app import NavigatorApp
from navigator.widgets.z_tree import ZTree


@pytest.fixture(scope="module")
def demo(demo_build: tuple[Path, list[str]]) -> tuple[sqlite3.Connection, Path, list[str]]:
    workspace, done = demo_build
    return connect(workspace), workspace, done


def test_demo_builds_library_items_and_index(demo: tuple[sqlite3.Connection, Path, list[str]]) -> None:
    conn, workspace, done = demo
    assert len(done) == 3
    library = get_library(conn, "factbook")
    nodes = conn.execute("SELECT COUNT(*) FROM nodes WHERE library_id = ?", (library.id,)).fetchone()[0]
    assert 90_000 < nodes < 100_000
    splits = dict(conn.execute("SELECT split, COUNT(*) FROM items GROUP BY split").fetchall())
    assert splits["train"] > 500 and splits["validation"] > 100 and splits["prediction"] > 100
    assert abs(splits["validation"] - splits["prediction"]) <= 1
    tasks = {row[0] for row in conn.execute("SELECT DISTINCT task FROM items")}
    assert tasks == {"landlocked", "hemisphere", "population", "gdp_tercile", "membership"}
    hits = SearchIndex(conn, workspace, library).search("landlocked Mongolia")
    assert hits.hits and hits.hits[0].uid.startswith("fb:mg/")


def test_split_is_out_of_distribution_and_gold_stays_in_the_key(
    demo: tuple[sqlite3.Connection, Path, list[str]],
) -> None:
    conn, workspace, _ = demo
    rows = conn.execute("SELECT uid, split, y, extra FROM items").fetchall()
    for uid, split, y, extra in rows:
        held_out = json.loads(extra)["region"] in HELD_OUT_REGIONS
        assert held_out == (split != "train"), uid
        assert (y is None) == held_out, uid
    key = read_answer_key(answer_key_path(workspace))
    held = {uid: split for uid, split, _, _ in rows if split != "train"}
    assert {record.id: record.split for record in key.values()} == held


def test_landlocked_gold_agrees_with_what_z_says(demo: tuple[sqlite3.Connection, Path, list[str]]) -> None:
    """A person reading the coastline field must reach the gold answer, for D and D* alike."""
    conn, workspace, _ = demo
    gold = {uid: y for uid, y in conn.execute("SELECT uid, y FROM items WHERE split = 'train'")}
    gold.update({record.id: record.y for record in read_answer_key(answer_key_path(workspace)).values()})
    landlocked = {uid: y for uid, y in gold.items() if uid.startswith("demo:landlocked:")}
    assert len(landlocked) > 150
    for uid, y in landlocked.items():
        coastline = node_by_uid(conn, f"fb:{uid.rsplit(':', 1)[1]}/geography/coastline")
        assert coastline is not None, uid
        assert ("landlocked" in coastline.body.lower()) == (y == "yes"), uid


def test_building_again_changes_nothing(demo: tuple[sqlite3.Connection, Path, list[str]]) -> None:
    conn, workspace, _ = demo
    before = (
        conn.execute("SELECT COUNT(*), MAX(id) FROM nodes").fetchone(),
        conn.execute("SELECT COUNT(*) FROM items").fetchone(),
    )
    again, done = build_demo(workspace, lambda _: NoProgress())
    assert done == []
    after = (
        again.execute("SELECT COUNT(*), MAX(id) FROM nodes").fetchone(),
        again.execute("SELECT COUNT(*) FROM items").fetchone(),
    )
    assert tuple(before[0]) == tuple(after[0]) and tuple(before[1]) == tuple(after[1])


async def test_app_opens_on_the_demo(demo: tuple[sqlite3.Connection, Path, list[str]]) -> None:
    _, workspace, _ = demo
    app = NavigatorApp(workspace=workspace, labeler="ann")
    async with app.run_test():
        tree = app.screen.query_one(ZTree)
        regions = [str(node.label).split("  ")[0] for node in tree.root.children]
        assert "Europe" in regions and "South America" in regions and len(regions) == 12
