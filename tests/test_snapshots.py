"""SVG snapshots of the main screens, on a small workspace with fixed ids so the pictures are stable.

After an intended change of the look: `python3 -m pytest tests/test_snapshots.py --snapshot-update`,
then look at the new SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import item_by_uid
from kb.labelers import add_labeler
from kb.labels import LabelStore
from kb.libraries import create_library
from kb.records import ItemRecord
from kb.tree import add_children, node_by_uid
from navigator.app import NavigatorApp

SIZE = (150, 32)


@pytest.fixture
def small_workspace(tmp_path: Path) -> Path:
    path = tmp_path / "snap.db"
    conn = connect(path, create=True)
    library = create_library(conn, "planets", uid="lib_planets", description="A small library for snapshots")
    nodes = [
        StagedNode(1, "inner", None, "book", "Inner planets"),
        StagedNode(2, "mercury", "inner", "statement", "Mercury has no moons", body="Neither natural nor captured."),
        StagedNode(3, "venus", "inner", "statement", "Venus rotates backwards"),
        StagedNode(4, "outer", None, "book", "Outer planets [bold]not bold[/]"),
        StagedNode(5, "jupiter", "outer", "statement", "Jupiter is the largest planet"),
    ]
    import_staged(conn, library, iter(nodes), source="snapshot", importer="test")
    items = [
        ItemRecord(id="q1", x="Does Mercury have a moon?", options=["yes", "no"], y="no", task="moons"),
        ItemRecord(id="q2", x="How many moons has Mars?", options=["0", "1", "2"], task="moons"),
    ]
    add_items(conn, list(enumerate(items, 1)), source="snapshot", dstar=False)
    conn.close()
    return path


def test_workbench_predicting(snap_compare: Callable[..., bool], small_workspace: Path) -> None:
    app = NavigatorApp(workspace=small_workspace, labeler="ann")
    assert snap_compare(app, terminal_size=SIZE, press=["down", "enter", "down", "c", "2", "o", "plus"])


def test_workbench_credence_with_incoherence(
    snap_compare: Callable[..., bool], small_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("navigator.screens.workbench.utc_now", lambda: "2026-01-01T09:30:00.000000Z")
    app = NavigatorApp(workspace=small_workspace, labeler="ann")
    keys = ["down", "enter", "down", "t", "i", "0", ".", "3", "enter", "x", "down", "x", "i", "0", ".", "5"]

    async def type_and_wait_for_the_exact_check(pilot: Pilot[None]) -> None:
        await pilot.press(*keys)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=type_and_wait_for_the_exact_check)


def test_a_generated_statement_shows_its_evidence_highlighted(
    snap_compare: Callable[..., bool], small_workspace: Path
) -> None:
    """A grounded statement's evidence lit up in its source node's text; an elaboration's additions marked."""
    conn = connect(small_workspace)
    mercury = node_by_uid(conn, "mercury")
    assert mercury is not None
    span = {"node": "mercury", "field": "body", "start": 0, "end": 15, "text": "Neither natural"}
    add_children(
        conn,
        mercury,
        [("Mercury has no natural moons.", "", "statement"), ("Mercury had 4 moons long ago.", "", "elaboration")],
        origin="llm",
        provenance={"purpose": "unpack", "model": "m.gguf"},
        uids=["n_grounded", "n_elaborated"],
        each=[
            {"form": "restated", "evidence": [span]},
            {"form": "elaborated", "evidence": [], "unsupported": ["figure 4", "words long, ago"]},
        ],
    )
    conn.close()
    app = NavigatorApp(workspace=small_workspace, labeler="ann")
    assert snap_compare(app, terminal_size=SIZE, press=["down", "enter", "down", "enter", "down"])


def test_help_screen(snap_compare: Callable[..., bool], small_workspace: Path) -> None:
    app = NavigatorApp(workspace=small_workspace, labeler="ann")
    assert snap_compare(app, terminal_size=(150, 48), press=["question_mark"])


def test_disagreements_screen(snap_compare: Callable[..., bool], small_workspace: Path) -> None:
    """Two labelers (one simulated) disagree on both items; the lead opens the disagreements screen."""
    conn = connect(small_workspace)
    labels = {
        "ann": ({"yes": 0.9, "no": 0.1}, ["mercury"], "read [bold]Mercury[/bold] first"),
        "simulated:bob": ({"yes": 0.2, "no": 0.8}, ["mercury", "venus"], "simulated labeler (noise 0.2, seed 1)"),
    }
    library_id = conn.execute("SELECT id FROM libraries WHERE name = 'planets'").fetchone()[0]
    for labeler, (probs, cited, note) in labels.items():
        store = LabelStore(conn, labeler, source="simulated" if labeler.startswith("simulated:") else "human")
        q1, q2 = item_by_uid(conn, "q1"), item_by_uid(conn, "q2")
        assert q1 is not None and q2 is not None
        store.record_prediction(q1, library_id, probs, cited=cited, note=note)
        store.record_prediction(q2, library_id, {"0": probs["yes"], "1": probs["no"], "2": 0.0})
    add_labeler(conn, "lead", lead=True)
    conn.close()
    app = NavigatorApp(workspace=small_workspace, labeler="lead")

    async def open_and_wait(pilot: Pilot[None]) -> None:
        await pilot.press("D")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(150, 44), run_before=open_and_wait)
