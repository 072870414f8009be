"""What the labeler is doing on the workbench, apart from how it is drawn: the queue, the draft, the marks.

Plain state, no widgets, so the screen only routes keys to it and draws it.
Every label is written through LabelStore the moment it is given, and where the
labeler is (item, mode, marked statements) is saved on every change
(kb.sessions), so reopening the workspace resumes exactly there.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from kb.items import Item
from kb.labels import LabelStore, Retraction
from kb.libraries import Library
from kb.sessions import save_state
from kb.tree import Node, node_by_uid
from models.imitation.item_order import labeler_queue
from models.prior.credence_checks import visible_conflicts
from models.prior.exact import Credence as ExactCredence
from navigator.task import Draft

QUEUE_SPLITS = ("train", "validation")
MAX_MARKED = 4


class Labeling:
    def __init__(self, conn: sqlite3.Connection, library: Library, labeler: str) -> None:
        self.conn = conn
        self.library = library
        self.labeler = labeler
        self.labels = LabelStore(conn, labeler)
        self.ordering = labeler_queue(conn, library, labeler, QUEUE_SPLITS)
        self.queue: list[Item] = self.ordering.items
        self.done: set[int] = set(self.labels.current_predictions(library.id))
        self.adjudicating = False  # the draft is the lead's ruling on a disagreement (kb.labels: adjudication)
        self.draft: Draft | None = None
        self.mode = "predict"
        self.marked: list[Node] = []
        self.whole_library = False

    def resume(self, state: dict[str, Any]) -> None:
        self.mode = state.get("mode", "predict")
        self.marked = [n for uid in state.get("marked", []) if (n := node_by_uid(self.conn, uid, self.library.id))]
        self.whole_library = bool(state.get("whole_library", False))
        self.draft = self.next_draft(state.get("item"))

    def next_draft(self, preferred_uid: str | None = None) -> Draft | None:
        """The item to resume (if still unlabeled), else the first unlabeled one in the queue."""
        pending = [item for item in self.queue if item.id not in self.done]
        for item in pending:
            if item.uid == preferred_uid:
                return Draft.fresh(item)
        return Draft.fresh(pending[0]) if pending else None

    @property
    def labeled(self) -> int:
        return sum(1 for item in self.queue if item.id in self.done)

    def save(self, **where: Any) -> None:
        save_state(self.conn, self.labeler, **where)

    # -- predictions ----------------------------------------------------------------

    def toggle_mode(self) -> None:
        self.mode = "credence" if self.mode == "predict" else "predict"
        self.save(mode=self.mode)

    def adjudicate(self, item: Item, open_node: Node | None) -> None:
        """Make `item` the draft, as the lead's ruling on a disagreement about it."""
        self.draft = Draft.fresh(item)
        self.adjudicating = True
        self.mode = "predict"
        if open_node is not None:
            self.draft.visit(open_node.uid)

    def submit(self, open_node: Node | None) -> None:
        """Record the draft (LabelError: nothing written), then move on to the next unlabeled item."""
        draft = self.draft
        assert draft is not None
        self.labels.record_prediction(
            draft.item,
            self.library.id,
            draft.as_dict(),
            cited=draft.cited,
            trail=draft.trail,
            seconds=draft.seconds,
            note=draft.note,
            adjudication=self.adjudicating,
        )
        self.adjudicating = False
        self.done.add(draft.item.id)
        self.draft = self.next_draft()
        self.save(item=self.draft.item.uid if self.draft else None)
        if self.draft and open_node:
            self.draft.visit(open_node.uid)

    def undo(self) -> Retraction | None:
        """Withdraw the newest label; an undone prediction on a queued item becomes the draft again."""
        undone = self.labels.undo_last()
        if undone is None:
            return None
        self.reload_done()
        if undone.item_id is not None:
            # An adjudication, or a label given before an assignment, may be on an item outside the queue.
            item = next((i for i in self.queue if i.id == undone.item_id), None)
            if undone.item_id not in self.done and item is not None:
                self.draft = Draft.fresh(item)
                self.adjudicating = False
                self.save(item=item.uid)
        return undone

    def reload_done(self) -> None:
        self.done = set(self.labels.current_predictions(self.library.id))

    def merged(self) -> None:
        """Labels arrived from another workspace: what is done now, and a draft that is not done yet."""
        self.reload_done()
        if self.draft is not None and self.draft.item.id in self.done:
            self.draft = self.next_draft()

    # -- credences ------------------------------------------------------------------

    def toggle_mark(self, node: Node) -> bool:
        """Mark or unmark `node` for the next credence; False when the credence already covers MAX_MARKED."""
        if any(m.id == node.id for m in self.marked):
            self.marked = [m for m in self.marked if m.id != node.id]
        elif len(self.marked) >= MAX_MARKED:
            return False
        else:
            self.marked.append(node)
        self.whole_library = False
        self.save(marked=[m.uid for m in self.marked], whole_library=False)
        return True

    def is_marked(self, node: Node) -> bool:
        return any(m.id == node.id for m in self.marked)

    def toggle_whole_library(self) -> None:
        self.whole_library = not self.whole_library
        self.save(whole_library=self.whole_library)

    def credence_target(self, open_node: Node | None) -> list[Node]:
        if self.whole_library:
            return []
        if self.marked:
            return self.marked
        return [open_node] if open_node and open_node.id != self.library.root_id else []

    def record_credence(self, target: list[Node], value: float) -> None:
        """Record it (LabelError: nothing written) and start the next credence afresh."""
        self.labels.record_credence(self.library.id, target, value)
        self.marked = []
        self.whole_library = False
        self.save(marked=[], whole_library=False)

    def current_credences(self) -> dict[tuple[str, ...], float]:
        """statement uids (sorted; () for the whole library) → this labeler's current credence."""
        return {key: credence.p for key, credence in self.labels.current_credences(self.library.id).items()}

    def check(self, target: list[Node], value: float) -> tuple[list[str], list[ExactCredence]]:
        """What contradicts P(target) = `value` at a glance, and every credence the exact check must
        weigh with it (none when the credence is about the whole library, which cannot conflict)."""
        known = self.current_credences()
        key = tuple(sorted(node.uid for node in target))
        conflicts = visible_conflicts(key, value, known, self.describe_key)
        if not key:
            return conflicts, []
        exact = [ExactCredence(frozenset(k), p, label=self.describe_key(k)) for k, p in known.items() if k and k != key]
        return conflicts, [*exact, ExactCredence(frozenset(key), value, label="this credence")]

    def describe_key(self, key: tuple[str, ...]) -> str:
        titles = []
        for uid in key:
            node = node_by_uid(self.conn, uid, self.library.id)
            titles.append(node.title[:40] if node else uid)
        return " ∧ ".join(titles) if titles else "whole library"
