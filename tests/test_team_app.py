"""The team in the app: the queue follows the assignment, the disagreements screen jumps to what a
labeler cited, and an adjudication is recorded as a normal, flagged label and exported as such."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

from textual.widgets import DataTable, OptionList, Static

from kb.assignments import assign
from kb.db import connect
from kb.exchange import export_labels
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import item_by_uid, items_in
from kb.labelers import add_labeler
from kb.labels import LabelStore
from kb.libraries import Library, create_library
from kb.records import ItemRecord
from models.imitation.agreement import agreement
from navigator.app import NavigatorApp
from navigator.screens.disagreements import DisagreementsScreen
from navigator.screens.metrics import MetricsScreen
from navigator.screens.workbench import WorkbenchScreen


def build(path: Path) -> tuple[sqlite3.Connection, Library]:
    conn = connect(path, create=True)
    library = create_library(conn, "z", uid="lib_z")
    nodes = [
        StagedNode(1, "book", None, "book", "Book"),
        StagedNode(2, "chad", "book", "statement", "Chad is landlocked", body="No coast at all."),
        StagedNode(3, "peru", "book", "statement", "Peru has a coast"),
    ]
    import_staged(conn, library, iter(nodes), source="t", importer="t")
    train = [ItemRecord(id="t1", x="Is Chad landlocked?", options=["yes", "no"], y="yes", task="land")]
    held = [ItemRecord(id=f"d{n}", x=f"Is place {n} landlocked?", options=["yes", "no"], task="land") for n in range(8)]
    add_items(conn, list(enumerate(train, 1)), source="t", dstar=False)
    add_items(conn, list(enumerate(held, 1)), source="d", dstar=True, seed=0)
    return conn, library


def status(app: NavigatorApp) -> str:
    return str(app.screen.query_one("#status", Static).render())


async def test_the_queue_follows_the_assignment(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn, _ = build(path)
    plan = assign(conn, ["ann", "bob"], 1, seed=2)
    mine = sorted(uid for uid, who in plan.items.items() if who == ("ann",))
    conn.close()
    for labeler, expected in (("ann", ["t1", *mine]), ("lead", None)):
        app = NavigatorApp(workspace=path, labeler=labeler)
        async with app.run_test() as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, WorkbenchScreen)
            uids = [item.uid for item in screen.queue]
            if expected is None:  # not named in the plan: the whole queue, as before
                assert len(uids) == 1 + len(plan.items)
            else:
                assert sorted(uids) == sorted(expected) and len(uids) == 1 + len(plan.items) // 2
            assert f"0/{len(uids)} items" in status(app)


async def test_disagreements_jump_to_a_citation_and_adjudicate(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn, library = build(path)
    item = items_in(conn, ("validation",))[0]
    LabelStore(conn, "ann").record_prediction(item, library.id, {"yes": 0.9, "no": 0.1}, cited=["chad"], note="coast?")
    LabelStore(conn, "bob").record_prediction(item, library.id, {"yes": 0.2, "no": 0.8}, cited=["peru"])
    add_labeler(conn, "lead", lead=True)
    conn.close()

    app = NavigatorApp(workspace=path, labeler="lead")
    async with app.run_test(size=(150, 44)) as pilot:
        await pilot.press("D")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DisagreementsScreen) and screen.found is not None
        assert screen.query_one(DataTable).row_count == 1
        cards = [str(card.render()) for card in screen.query(".labeler-card").results(Static)]
        assert "ann" in cards[0] and "note: coast?" in cards[0] and "1. Chad is landlocked" in cards[0]
        assert "bob" in cards[1] and "2. Peru has a coast" in cards[1]
        citations = screen.query_one(OptionList)
        citations.focus()
        citations.highlighted = 1
        await pilot.press("enter")
        await pilot.pause()
        workbench = app.screen
        assert isinstance(workbench, WorkbenchScreen)
        assert workbench.open_node is not None and workbench.open_node.uid == "peru"

        await pilot.press("D")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        assert app.screen is workbench and workbench.labeling.adjudicating
        assert workbench.draft is not None and workbench.draft.item.uid == item.uid
        assert "ADJUDICATION" in str(workbench.query_one("#task-body", Static).render())
        await pilot.press("2", "s")
        await pilot.pause()
        assert not workbench.labeling.adjudicating

    conn = connect(path)
    [ruling] = conn.execute("SELECT labeler, item_id, probs, adjudication FROM predictions WHERE labeler = 'lead'")
    assert (ruling["item_id"], ruling["adjudication"]) == (item.id, 1)
    assert json.loads(ruling["probs"])["no"] > 0.8
    report = agreement(conn, library)
    assert report.n_adjudications == 1 and report.overall.n_labels == 2
    out = io.StringIO()
    export_labels(conn, out, labeler="lead")
    [exported] = [json.loads(line) for line in out.getvalue().splitlines() if '"prediction"' in line]
    assert exported["adjudication"] is True and exported["labeler"] == "lead"
    # An ordinary label stays unflagged.
    train_item = item_by_uid(conn, "t1")
    assert train_item is not None
    assert not LabelStore(conn, "lead").record_prediction(train_item, library.id, {"yes": 1.0, "no": 0.0}).adjudication
    conn.close()


async def test_the_metrics_screen_shows_the_teams_agreement(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn, library = build(path)
    item = item_by_uid(conn, "t1")
    assert item is not None
    LabelStore(conn, "ann").record_prediction(item, library.id, {"yes": 0.9, "no": 0.1})
    LabelStore(conn, "simulated:bob", source="simulated").record_prediction(item, library.id, {"yes": 0.3, "no": 0.7})
    conn.close()
    app = NavigatorApp(workspace=path, labeler="ann")
    async with app.run_test(size=(160, 60)) as pilot:
        await pilot.press("M")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, MetricsScreen)
        shown = str(app.screen.query_one("#metrics-agreement", Static).render())
        assert "Agreement in library 'z'" in shown and "land" in shown
        assert "simulated:bob (SIMULATED)" in shown and "(all tasks)" in shown


async def test_a_labeler_who_is_not_a_lead_sees_no_answer_before_giving_their_own(tmp_path: Path) -> None:
    """Independent judgements: carol opens every screen the app offers; ann's and bob's answers to an item
    appear only once carol has answered it, and she cannot adjudicate."""
    path = tmp_path / "w.db"
    conn, library = build(path)
    item = items_in(conn, ("validation",))[0]
    LabelStore(conn, "ann").record_prediction(item, library.id, {"yes": 0.9, "no": 0.1}, note="ann's secret note")
    LabelStore(conn, "bob").record_prediction(item, library.id, {"yes": 0.2, "no": 0.8})
    add_labeler(conn, "lead", lead=True)
    conn.close()

    def everything_shown(app: NavigatorApp) -> str:
        return " ".join(str(widget.render()) for widget in app.screen.query(Static).results(Static))

    app = NavigatorApp(workspace=path, labeler="carol")
    async with app.run_test(size=(150, 44)) as pilot:
        workbench = app.screen
        assert isinstance(workbench, WorkbenchScreen)
        for key in ("D", "M"):
            await pilot.press(key)
            await app.workers.wait_for_complete()
            await pilot.pause()
            shown = everything_shown(app)
            assert "ann's secret note" not in shown and "0.9" not in shown.replace("0.90", "")
            if isinstance(app.screen, DisagreementsScreen):
                assert app.screen.found is not None and app.screen.found.entries == []
                assert "among the items you have answered" in shown
                await pilot.press("a")  # no adjudication for a labeler who is not a lead
                assert isinstance(app.screen, DisagreementsScreen)
            await pilot.press("escape")
            await pilot.pause()

    conn = connect(path)
    LabelStore(conn, "carol").record_prediction(item, library.id, {"yes": 0.5, "no": 0.5})
    conn.close()
    app = NavigatorApp(workspace=path, labeler="carol")
    async with app.run_test(size=(150, 44)) as pilot:
        await pilot.press("D")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DisagreementsScreen) and screen.found is not None
        assert [entry.item.uid for entry in screen.found.entries] == [item.uid]  # now she may compare
        assert "ann's secret note" in everything_shown(app)
