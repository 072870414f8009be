"""Every reader of labels sees the same current labels, whatever sequence of record, change, undo and merge.

The current-label rule lives in kb.labels alone; this property test holds every reader to it
(the app's LabelStore, the library-wide readers, F(Z)'s, the trainer's, P(Z)'s and the counts)
and to a plain model of what a labeler did: per key a stack of labels, a label pushes, an undo
pops the labeler's newest. Two copies of one workspace are labelled by different labelers (ann
on the lead's copy, bob offline on his) and merged back and forth, as a team does.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.db import connect
from kb.exchange import export_labels
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import item_by_uid
from kb.labels import (
    LabelStore,
    current_credences_in_library,
    current_predictions_in_library,
    label_counts,
)
from kb.libraries import Library, create_library, find_library
from kb.merge import merge_files
from kb.records import ItemRecord
from kb.tree import node_by_uid
from models.imitation.score import current_predictions
from models.imitation.trainer import current_labels
from models.prior.report import load_workspace_credences

ITEMS = ("i1", "i2")
STATEMENT_SETS = ((), ("s1",), ("s2",), ("s1", "s2"))
HOME = {"lead": "ann", "copy": "bob"}  # who labels on which copy
VALUES = st.sampled_from([0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9])

Key = tuple[str, str, tuple[str, ...]]  # (kind, item uid or "", statement uids)


@dataclass
class Expected:
    """What each labeler did, as a person would tell it: per key, the labels still standing, oldest first."""

    stacks: dict[str, dict[Key, list[float]]] = field(default_factory=lambda: {"ann": {}, "bob": {}})
    order: dict[str, list[Key]] = field(default_factory=lambda: {"ann": [], "bob": []})

    def label(self, labeler: str, key: Key, p: float) -> None:
        self.stacks[labeler].setdefault(key, []).append(p)
        self.order[labeler].append(key)

    def undo(self, labeler: str) -> None:
        """The newest label still standing goes; the one it replaced (if any) stands again."""
        while self.order[labeler]:
            key = self.order[labeler].pop()
            if self.stacks[labeler].get(key):
                self.stacks[labeler][key].pop()
                return

    def current(self, labelers: tuple[str, ...]) -> dict[tuple[str, Key], float]:
        return {
            (labeler, key): stack[-1] for labeler in labelers for key, stack in self.stacks[labeler].items() if stack
        }


def build(folder: Path) -> Path:
    path = folder / "lead.db"
    conn = connect(path, create=True)
    library = create_library(conn, "z")
    nodes = [
        StagedNode(1, "s1", None, "statement", "Water is wet."),
        StagedNode(2, "s2", None, "statement", "Ice is cold."),
    ]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    records = [ItemRecord(id=uid, x=f"Question {uid}?", options=["yes", "no"], y="yes") for uid in ITEMS]
    add_items(conn, list(enumerate(records, 1)), source="t", dstar=False)
    conn.close()
    shutil.copy(path, folder / "copy.db")
    return path


def record(conn: sqlite3.Connection, library: Library, labeler: str, key: Key, p: float) -> None:
    store = LabelStore(conn, labeler)
    kind, item_uid, statements = key
    if kind == "prediction":
        item = item_by_uid(conn, item_uid)
        assert item is not None
        store.record_prediction(item, library.id, {"yes": p, "no": 1.0 - p}, cited=["s1"])
    else:
        nodes = [node_by_uid(conn, uid, library.id) for uid in statements]
        store.record_credence(library.id, [node for node in nodes if node is not None], p)


def every_reader(
    conn: sqlite3.Connection, library: Library, labelers: tuple[str, ...]
) -> list[dict[tuple[str, Key], float]]:
    """The current labels as each reader reports them, in one shape: (labeler, key) → p."""
    uid_of = {item_by_uid(conn, uid).id: uid for uid in ITEMS}  # type: ignore[union-attr]
    by_store: dict[tuple[str, Key], float] = {}
    for labeler in labelers:
        store = LabelStore(conn, labeler)
        for item_id, label in store.current_predictions(library.id).items():
            by_store[(labeler, ("prediction", uid_of[item_id], ()))] = label.probs["yes"]
        for statements, credence in store.current_credences(library.id).items():
            by_store[(labeler, ("credence", "", statements))] = credence.p
    library_wide = {
        (label.labeler, ("prediction", uid_of[label.item_id], ())): label.probs["yes"]
        for label in current_predictions_in_library(conn, library.id)
    } | {
        (credence.labeler, ("credence", "", credence.statements)): credence.p
        for credence in current_credences_in_library(conn, library.id)
    }
    score_and_prior = {
        (labeler, ("prediction", uid_of[item_id], ())): probs["yes"]
        for item_id, given in current_predictions(conn, library.id).items()
        for labeler, (_, probs) in given.items()
    }
    for stored in load_workspace_credences(conn, library.id):
        for credence in stored.credences:
            score_and_prior[(stored.labeler, ("credence", "", tuple(sorted(credence.statements))))] = credence.p
        if stored.library_credence is not None:
            score_and_prior[(stored.labeler, ("credence", "", ()))] = stored.library_credence
    trainer = {
        (label.labeler, ("prediction", label.item.uid, ())): label.probs[0] for label in current_labels(conn, library)
    } | {key: p for key, p in library_wide.items() if key[1][0] == "credence"}  # the trainer reads predictions only
    return [by_store, library_wide, score_and_prior, trainer]


Step = tuple[str, str, int, float]  # (action, copy, choice, value)

STEPS = st.lists(
    st.tuples(
        st.sampled_from(["label", "label", "label", "undo", "merge"]),
        st.sampled_from(["lead", "copy"]),
        st.integers(min_value=0, max_value=len(ITEMS) + len(STATEMENT_SETS) - 1),
        VALUES,
    ),
    min_size=4,
    max_size=30,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_every_reader_agrees_with_what_the_labelers_did(steps: list[Step]) -> None:
    keys: list[Key] = [("prediction", uid, ()) for uid in ITEMS] + [("credence", "", s) for s in STATEMENT_SETS]
    with tempfile.TemporaryDirectory() as folder:
        build(Path(folder))
        paths = {copy: Path(folder) / f"{copy}.db" for copy in HOME}
        conns = {copy: connect(path) for copy, path in paths.items()}
        libraries = {copy: find_library(conn, "z") for copy, conn in conns.items()}
        expected = {copy: Expected() for copy in HOME}
        merged_in: dict[str, set[str]] = {"lead": {"ann"}, "copy": {"bob"}}  # whose labels each copy holds
        try:
            for action, copy, choice, value in steps:
                conn, library, labeler = conns[copy], libraries[copy], HOME[copy]
                assert library is not None
                if action == "label":
                    record(conn, library, labeler, keys[choice], value)
                    expected[copy].label(labeler, keys[choice], value)
                elif action == "undo":
                    LabelStore(conn, labeler).undo_last()
                    expected[copy].undo(labeler)
                else:  # the other copy's labels are merged into this one, twice: the second changes nothing
                    other = "copy" if copy == "lead" else "lead"
                    export = Path(folder) / f"{other}.labels.jsonl"
                    with export.open("w", encoding="utf-8") as out:
                        export_labels(conns[other], out, labeler=HOME[other])
                    merge_files(conn, [export])
                    again = merge_files(conn, [export])
                    assert sum(again.added.values()) == 0
                    merged_in[copy].add(HOME[other])
                    expected[copy].stacks[HOME[other]] = {
                        key: list(stack) for key, stack in expected[other].stacks[HOME[other]].items()
                    }
                for where in HOME:
                    want = expected[where].current(tuple(sorted(merged_in[where])))
                    where_library = libraries[where]
                    assert where_library is not None
                    readers = every_reader(conns[where], where_library, ("ann", "bob"))
                    for reader in readers:
                        assert reader == want
                    counts = label_counts(conns[where])
                    assert counts["predictions"] == sum(1 for _, key in want if key[0] == "prediction")
                    assert counts["credences"] == sum(1 for _, key in want if key[0] == "credence")
        finally:
            for conn in conns.values():
                conn.close()
