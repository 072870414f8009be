"""Labels are validated, committed one by one, never deleted; undo restores the previous label."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import item_by_uid
from kb.labels import LabelError, LabelStore, current_predictions_in_library
from kb.libraries import Library, create_library
from kb.records import ItemRecord
from kb.tree import node_by_uid


@pytest.fixture
def setup(tmp_path: Path) -> tuple[sqlite3.Connection, Library]:
    conn = connect(tmp_path / "w.db", create=True)
    library = create_library(conn, "z")
    nodes = [StagedNode(n, f"s{n}", None, "statement", f"Statement {n}") for n in range(1, 6)]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    records = [
        ItemRecord(id="i1", x="Is it?", options=["yes", "no"], y="yes"),
        ItemRecord(id="i2", x="Which?", options=["a", "b", "c"]),
    ]
    add_items(conn, list(enumerate(records, 1)), source="t", dstar=False)
    return conn, library


def rows(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.mark.parametrize(
    "probs, message",
    [
        ({"yes": 1.3, "no": -0.3}, "between 0 and 1"),
        ({"yes": 0.5, "no": 0.4}, "sum to 1"),
        ({"yes": float("nan"), "no": 0.5}, "must be a number"),
        ({"yes": 1.0}, "exactly the options"),
        ({"yes": 0.5, "no": 0.5, "maybe": 0.0}, "exactly the options"),
        ({"yes": True, "no": 0.0}, "must be a number"),
    ],
)
def test_bad_predictions_are_refused_and_write_nothing(setup, probs, message) -> None:
    conn, library = setup
    item = item_by_uid(conn, "i1")
    assert item is not None
    with pytest.raises(LabelError, match=message):
        LabelStore(conn, "ann").record_prediction(item, library.id, probs)
    assert rows(conn, "predictions") == 0


def test_relabel_supersedes_and_undo_brings_the_earlier_label_back(setup) -> None:
    conn, library = setup
    store = LabelStore(conn, "ann")
    item = item_by_uid(conn, "i1")
    assert item is not None
    first = store.record_prediction(item, library.id, {"yes": 0.8, "no": 0.2}, cited=["s1"], trail=["s1", "s2"])
    second = store.record_prediction(item, library.id, {"yes": 0.3, "no": 0.7}, seconds=4.5)
    assert store.current_predictions(library.id)[item.id].uid == second.uid
    assert conn.execute("SELECT supersedes FROM predictions WHERE uid = ?", (second.uid,)).fetchone()[0] == first.uid
    undone = store.undo_last()
    assert undone is not None and undone.uid == second.uid
    current = store.current_predictions(library.id)[item.id]
    assert current.uid == first.uid and current.cited == ["s1"] and current.trail == ["s1", "s2"]
    assert rows(conn, "predictions") == 3, "nothing is deleted: two labels and one retraction"
    store.undo_last()
    assert store.current_predictions(library.id) == {}
    assert store.undo_last() is None


def test_current_predictions_for_more_items_than_sqlite_binds_at_once(setup) -> None:
    """Evaluation asks about every D*_validation item; SQLite binds at most 32 766 values a statement
    by default (some builds allow more: the limit is set to that default here)."""
    conn, library = setup
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)
    item = item_by_uid(conn, "i1")
    assert item is not None
    LabelStore(conn, "ann").record_prediction(item, library.id, {"yes": 0.8, "no": 0.2})
    current = current_predictions_in_library(conn, library.id, range(1, 40_001))
    assert [(label.item_id, label.probs) for label in current] == [(item.id, {"yes": 0.8, "no": 0.2})]


def test_other_labelers_labels_are_separate(setup) -> None:
    conn, library = setup
    item = item_by_uid(conn, "i2")
    assert item is not None
    LabelStore(conn, "ann").record_prediction(item, library.id, {"a": 1.0, "b": 0.0, "c": 0.0})
    bob = LabelStore(conn, "bob")
    assert bob.current_predictions(library.id) == {}
    assert bob.undo_last() is None


def test_credences_on_statements_conjunctions_and_the_library(setup) -> None:
    conn, library = setup
    store = LabelStore(conn, "ann")
    a, b = node_by_uid(conn, "s1", library.id), node_by_uid(conn, "s2", library.id)
    assert a is not None and b is not None
    store.record_credence(library.id, [a], 0.9)
    store.record_credence(library.id, [b, a], 0.6)
    store.record_credence(library.id, [], 0.2)
    store.record_credence(library.id, [a, b], 0.5)
    current = store.current_credences(library.id)
    assert {key: credence.p for key, credence in current.items()} == {("s1",): 0.9, ("s1", "s2"): 0.5, (): 0.2}
    assert current[()].is_library
    nodes = conn.execute("SELECT COUNT(*) FROM credence_nodes").fetchone()[0]
    assert nodes == 1 + 2 + 0 + 2
    with pytest.raises(LabelError, match="between 0 and 1"):
        store.record_credence(library.id, [a], 1.3)
    too_many = [node_by_uid(conn, f"s{n}", library.id) for n in range(1, 6)]
    with pytest.raises(LabelError, match="at most 4"):
        store.record_credence(library.id, [node for node in too_many if node], 0.1)
    assert rows(conn, "credences") == 4


def test_a_labelers_credences_come_in_the_order_they_were_first_given(setup) -> None:
    """The app's exact coherence check reads this order as oldest first; a change keeps a set's place."""
    conn, library = setup
    store = LabelStore(conn, "ann")
    a, b = node_by_uid(conn, "s1", library.id), node_by_uid(conn, "s2", library.id)
    assert a is not None and b is not None
    store.record_credence(library.id, [b], 0.7)
    store.record_credence(library.id, [a], 0.9)
    store.record_credence(library.id, [b], 0.6)
    current = store.current_credences(library.id)
    assert [(key, credence.p) for key, credence in current.items()] == [(("s2",), 0.6), (("s1",), 0.9)]


def test_undo_takes_the_newest_label_of_either_kind(setup) -> None:
    conn, library = setup
    store = LabelStore(conn, "ann")
    item = item_by_uid(conn, "i1")
    a = node_by_uid(conn, "s1", library.id)
    assert item is not None and a is not None
    store.record_prediction(item, library.id, {"yes": 0.5, "no": 0.5})
    credence = store.record_credence(library.id, [a], 0.7)
    undone = store.undo_last()
    assert undone is not None and undone.uid == credence.uid
    assert store.current_credences(library.id) == {}
    assert len(store.current_predictions(library.id)) == 1


def test_counts_are_of_current_labels_with_rows_beside_them(setup) -> None:
    from kb.labels import label_counts

    conn, library = setup
    store = LabelStore(conn, "ann")
    item = item_by_uid(conn, "i1")
    a = node_by_uid(conn, "s1", library.id)
    assert item is not None and a is not None
    store.record_prediction(item, library.id, {"yes": 0.5, "no": 0.5})
    store.record_prediction(item, library.id, {"yes": 0.6, "no": 0.4})
    LabelStore(conn, "bob").record_prediction(item, library.id, {"yes": 1.0, "no": 0.0})
    store.record_credence(library.id, [a], 0.7)
    store.undo_last()
    assert label_counts(conn) == {
        "predictions": 2,
        "prediction_rows": 3,
        "credences": 0,
        "credence_rows": 2,
        "model_credences": 0,
    }
