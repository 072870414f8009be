"""The metrics screen: trainer metrics, the labeler's calibration plot and the F(Z) table, from a worker."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

from rich.text import Text
from textual.app import App
from textual.widgets import DataTable, Static

from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import item_by_uid
from kb.labels import LabelStore
from kb.libraries import Library
from kb.records import ItemRecord
from kb.tree import node_by_uid
from models.imitation.score import calibration
from navigator.screens.metrics import MetricsScreen, trainer_text


def _build(conn: sqlite3.Connection, library: Library) -> None:
    nodes = [StagedNode(1, "s1", None, "statement", "Chad is [bold]landlocked[/bold]")]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    records = [ItemRecord(id=f"i{n}", x=f"Q{n}?", options=["yes", "no"], y="yes") for n in range(4)]
    add_items(conn, [(n, r) for n, r in enumerate(records, 1)], source="t", dstar=False)
    store = LabelStore(conn, "ann")
    for n, p in enumerate((0.9, 0.9, 0.9, 0.3)):
        item = item_by_uid(conn, f"i{n}")
        assert item is not None
        store.record_prediction(item, library.id, {"yes": p, "no": round(1 - p, 10)})
    node = node_by_uid(conn, "s1", library.id)
    assert node is not None
    store.record_credence(library.id, [node], 0.5)


def test_calibration_bins_by_hand(conn: sqlite3.Connection, library: Library) -> None:
    _build(conn, library)
    bins = {round(b.low, 1): b for b in calibration(conn, library, "ann")}
    # 'yes' (gold) got 0.9 three times and 0.3 once; 'no' got 0.1 three times and 0.7 once.
    assert sorted(bins) == [0.1, 0.3, 0.7, 0.9]
    assert (bins[0.9].n, bins[0.9].true) == (3, 1.0)
    assert (bins[0.1].n, bins[0.1].true) == (3, 0.0)
    assert (bins[0.3].n, bins[0.3].true, bins[0.7].true) == (1, 1.0, 0.0)
    assert calibration(conn, library, "nobody") == []


class MetricsApp(App[None]):
    def __init__(self, workspace: Path, library: Library) -> None:
        super().__init__()
        self.workspace, self.library = workspace, library

    def on_mount(self) -> None:
        self.push_screen(MetricsScreen(self.workspace, self.library, "ann"))


async def test_the_screen_shows_calibration_and_the_score_table(
    conn: sqlite3.Connection, workspace: Path, library: Library
) -> None:
    _build(conn, library)
    conn.execute("UPDATE libraries SET name = 'lib [b]x[/b]' WHERE id = ?", (library.id,))
    app = MetricsApp(workspace, library)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MetricsScreen) and screen.metrics is not None
        trainer = str(screen.query_one("#metrics-trainer", Static).render())
        assert "no model trained" in trainer or "not installed" in trainer
        plot = str(screen.query_one("#metrics-calibration", Static).render())
        assert "n = 8 stated probabilities" in plot and "n=3" in plot and "█" in plot
        table = screen.query_one("#metrics-scores", DataTable)
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert all(isinstance(cell, Text) for cell in row)
        assert str(row[1]) == "lib [b]x[/b]" and "4/0/0" in str(row[4]) and "1 on 1/1" in str(row[7])
        assert row[0].plain == "1" and "independence" in str(screen.query_one("#metrics-notes", Static).render())
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, MetricsScreen)


def test_trainer_metrics_are_shown_with_their_sample_sizes() -> None:
    report = SimpleNamespace(
        model_version=3,
        data_hash="abcdef0123456789",
        n_labels=120,
        n_items=40,
        n_labelers=2,
        cross_entropy=0.4123,
        top_choice_agreement=0.875,
        brier=0.1234,
        ece=0.0456,
        learning_curve=[(30, 0.6), (120, 0.41)],
        learner="reader",
    )
    shown = str(trainer_text(report, ""))
    assert "model v3 (learner reader," in shown and "120 labels on 40 items by 2 labelers" in shown
    assert "cross-entropy 0.4123" in shown and "87.5%" in shown and "ECE 0.0456" in shown
    assert "n=30: 0.600" in shown and "n=120: 0.410" in shown
    assert "navigator train" in str(trainer_text(None, ""))
