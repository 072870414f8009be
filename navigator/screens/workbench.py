"""The labeler's workbench: Z on the left, the open node in the middle, the task on the right.

The screen owns the session state (open node, history, draft answer, marked
statements) and writes through LabelStore, so every label is committed the
moment it is submitted. Where the labeler is gets saved on every move, so
reopening resumes exactly there.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, Tree

from kb.assignments import items_for
from kb.db import WorkspaceError, connect, utc_now
from kb.exchange import merge_files
from kb.export_file import export_to_path
from kb.importing import ImportProblem
from kb.items import Item, items_in
from kb.labels import LabelError, LabelStore
from kb.libraries import Library
from kb.search import SearchError, SearchIndex
from kb.sessions import bookmarks, load_state, save_state, toggle_bookmark
from kb.tree import Node, ancestors, node_by_id, node_by_uid
from models.credence_checks import visible_conflicts
from models.item_order import order_items
from models.prior_exact import Credence as ExactCredence
from navigator.display import visible
from navigator.generation import Generation
from navigator.screens.disagreements import Choice, DisagreementsScreen
from navigator.screens.help import HelpScreen
from navigator.screens.metrics import MetricsScreen
from navigator.screens.pick import PickScreen
from navigator.screens.prompt import PromptScreen
from navigator.screens.search import SearchScreen
from navigator.task import Draft
from navigator.widgets.coherence import CoherenceCheck
from navigator.widgets.generation_stream import GenerationStream
from navigator.widgets.node_pane import NodePane
from navigator.widgets.task_panel import TaskPanel
from navigator.widgets.z_tree import TreeData, ZTree, find_tree_node, node_label, reveal

QUEUE_SPLITS = ("train", "validation")
MAX_MARKED = 4
NUDGE, FINE_NUDGE = 0.05, 0.01


class WorkbenchScreen(Screen[None]):
    BINDINGS = [
        Binding("slash", "search", "Search"),
        Binding("backspace", "parent", "Parent"),
        Binding("left_square_bracket,alt+left", "back", "Back"),
        Binding("right_square_bracket,alt+right", "forward", "Forward"),
        Binding("m", "bookmark", "Bookmark"),
        Binding("apostrophe", "bookmarks", "Bookmarks"),
        Binding("t", "toggle_mode", "Predict/Credence"),
        Binding("c", "cite", "Cite node"),
        *(Binding(str(n), f"pick({n - 1})", f"Option {n} at 90%", show=False) for n in range(1, 10)),
        Binding("o", "select_option(1)", "Next option", show=False),
        Binding("O", "select_option(-1)", "Previous option", show=False),
        Binding("plus,equals_sign", f"nudge({NUDGE})", "+5%", show=False),
        Binding("minus", f"nudge({-NUDGE})", "−5%", show=False),
        Binding("greater_than_sign", f"nudge({FINE_NUDGE})", "+1%", show=False),
        Binding("less_than_sign", f"nudge({-FINE_NUDGE})", "−1%", show=False),
        Binding("n", "note", "Note", show=False),
        Binding("s", "submit", "Submit"),
        Binding("x", "mark", "Mark statement", show=False),
        Binding("w", "whole_library", "Whole library", show=False),
        Binding("i", "type_credence", "Type credence", show=False),
        Binding("ctrl+z", "undo", "Undo"),
        Binding("u", "unpack", "Unpack (LLM)"),
        Binding("a", "ask", "Ask the LLM"),
        Binding("escape", "cancel_generation", "Cancel LLM", show=False),
        Binding("M", "metrics", "Metrics"),
        Binding("D", "disagreements", "Disagreements", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self, conn: sqlite3.Connection, workspace: Path, library: Library, labeler: str, generation: Generation
    ) -> None:
        super().__init__()
        self.generation = generation
        self.tokens_per_second = 0.0
        self.conn = conn
        self.workspace = workspace
        self.library = library
        self.labels = LabelStore(conn, labeler)
        self.labeler = labeler
        self.mode = "predict"
        self.open_node: Node | None = None
        self.history: list[int] = []
        self.history_at = -1
        # Assignment filters (kb.assignments), then the queue order (models.item_order) orders.
        self.ordering = order_items(conn, library, items_for(conn, labeler, items_in(conn, QUEUE_SPLITS)))
        self.queue: list[Item] = self.ordering.items
        self.adjudicating = False  # the draft is the lead's ruling on a disagreement (kb.labels: adjudication)
        self.done: set[int] = set(self.labels.current_predictions(library.id))
        self.draft: Draft | None = None
        self.marked: list[Node] = []
        self.whole_library = False
        self.last_save = "—"

    # -- layout ------------------------------------------------------------

    def compose(self) -> ComposeResult:
        root = node_by_id(self.conn, self.library.root_id)
        assert root is not None
        yield Header()
        with Horizontal(id="panes"):
            yield ZTree(self.conn, root, id="z-tree")
            yield NodePane(self.conn, self.library.id, self.generation, id="node-pane")
            yield TaskPanel(id="task-pane")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ZTree).focus()
        self.resume()
        self.check_model()
        if self.ordering.how != "as listed":
            self.notify(f"Queue: {self.ordering.how}", markup=False)

    def resume(self) -> None:
        state = load_state(self.conn, self.labeler)
        self.mode = state.get("mode", "predict")
        self.marked = [n for uid in state.get("marked", []) if (n := node_by_uid(self.conn, uid, self.library.id))]
        self.whole_library = bool(state.get("whole_library", False))
        self.draft = self.next_draft(state.get("item"))
        opened = node_by_uid(self.conn, state["open_node"], self.library.id) if "open_node" in state else None
        if opened is not None and opened.id != self.library.root_id:
            reveal(self.query_one(ZTree), ancestors(self.conn, opened.id))
        else:
            root = node_by_id(self.conn, self.library.root_id)
            assert root is not None
            self.open(root)
        self.refresh_task()

    def next_draft(self, preferred_uid: str | None = None) -> Draft | None:
        """The item to resume (if still unlabeled), else the first unlabeled one in the queue."""
        pending = [item for item in self.queue if item.id not in self.done]
        for item in pending:
            if item.uid == preferred_uid:
                return Draft.fresh(item)
        return Draft.fresh(pending[0]) if pending else None

    # -- the open node ------------------------------------------------------

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[TreeData]) -> None:
        if isinstance(event.node.data, Node):
            self.open(event.node.data)

    def open(self, node: Node, *, from_history: bool = False) -> None:
        self.open_node = node
        already_here = 0 <= self.history_at < len(self.history) and self.history[self.history_at] == node.id
        if not from_history and not already_here:
            del self.history[self.history_at + 1 :]
            self.history.append(node.id)
            self.history_at = len(self.history) - 1
        if self.draft is not None:
            self.draft.visit(node.uid)
        self.show_node(node)
        save_state(self.conn, self.labeler, open_node=node.uid)

    def show_node(self, node: Node) -> None:
        cited = self.draft is not None and node.uid in self.draft.cited
        marked = any(m.id == node.id for m in self.marked)
        self.query_one(NodePane).show(node, cited=cited, marked=marked)

    def jump_to(self, node_id: int | None, *, from_history: bool = False) -> None:
        node = node_by_id(self.conn, node_id) if node_id is not None else None
        if node is None:
            return
        reveal(self.query_one(ZTree), ancestors(self.conn, node.id))
        self.open(node, from_history=from_history)

    def action_cursor_down(self) -> None:
        self.query_one(ZTree).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(ZTree).action_cursor_up()

    def action_parent(self) -> None:
        tree = self.query_one(ZTree)
        current = tree.cursor_node
        if current is not None and current.parent is not None:
            tree.move_cursor(current.parent)

    def action_back(self) -> None:
        if self.history_at > 0:
            self.history_at -= 1
            self.jump_to(self.history[self.history_at], from_history=True)

    def action_forward(self) -> None:
        if self.history_at < len(self.history) - 1:
            self.history_at += 1
            self.jump_to(self.history[self.history_at], from_history=True)

    def action_search(self) -> None:
        self.app.push_screen(SearchScreen(self.workspace, self.library), self.jump_to)

    def action_bookmark(self) -> None:
        if self.open_node is None:
            return
        added = toggle_bookmark(self.conn, self.labeler, self.open_node)
        self.notify(visible(("Bookmarked " if added else "Removed bookmark ") + self.open_node.title), markup=False)

    def action_bookmarks(self) -> None:
        choices = [(node.id, node_label(node)) for node in bookmarks(self.conn, self.labeler)]
        self.app.push_screen(
            PickScreen("Bookmarks", choices, empty="No bookmarks yet: press m on a node."), self.jump_to
        )

    def action_metrics(self) -> None:
        self.app.push_screen(MetricsScreen(self.workspace, self.library, self.labeler))

    def action_disagreements(self) -> None:
        self.app.push_screen(DisagreementsScreen(self.workspace, self.library), self.chosen_in_disagreements)

    def chosen_in_disagreements(self, choice: Choice | None) -> None:
        """Jump to a cited node, or make the item the draft as an adjudication."""
        if choice is None:
            return
        if choice.node_id is not None:
            self.jump_to(choice.node_id)
        if choice.adjudicate is not None:
            self.draft = Draft.fresh(choice.adjudicate)
            self.adjudicating = True
            self.mode = "predict"
            if self.open_node is not None:
                self.draft.visit(self.open_node.uid)
            self.refresh_task()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen([*self.BINDINGS, *self.app.BINDINGS]))  # type: ignore[list-item]

    # -- the task ------------------------------------------------------------

    def action_toggle_mode(self) -> None:
        self.mode = "credence" if self.mode == "predict" else "predict"
        save_state(self.conn, self.labeler, mode=self.mode)
        self.refresh_task()

    def action_pick(self, index: int) -> None:
        if self.mode == "predict" and self.draft is not None:
            self.draft.pick(index)
            self.refresh_task()

    def action_select_option(self, step: int) -> None:
        if self.mode == "predict" and self.draft is not None:
            self.draft.select(step)
            self.refresh_task()

    def action_nudge(self, delta: float) -> None:
        if self.mode == "predict" and self.draft is not None:
            self.draft.nudge(delta)
            self.refresh_task()

    def action_cite(self) -> None:
        if self.draft is None or self.open_node is None:
            return
        cited = self.draft.toggle_citation(self.open_node.uid)
        self.show_node(self.open_node)
        self.refresh_task()
        self.notify(visible(("Cited " if cited else "Uncited ") + self.open_node.title), markup=False)

    def action_note(self) -> None:
        if self.draft is None:
            return

        def keep(note: str | None) -> None:
            if self.draft is not None and note is not None:
                self.draft.note = note
                self.refresh_task()

        self.app.push_screen(PromptScreen("Note for this item", value=self.draft.note), keep)

    def action_submit(self) -> None:
        if self.mode == "credence":
            self.action_type_credence()
            return
        if self.draft is None:
            self.notify("Nothing left to label in this queue.")
            return
        draft = self.draft
        try:
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
        except LabelError as error:
            self.feedback(str(error), error=True)
            return
        self.adjudicating = False
        self.done.add(draft.item.id)
        self.saved()
        self.draft = self.next_draft()
        save_state(self.conn, self.labeler, item=self.draft.item.uid if self.draft else None)
        if self.draft and self.open_node:
            self.draft.visit(self.open_node.uid)
        self.refresh_task()

    def action_undo(self) -> None:
        undone = self.labels.undo_last()
        if undone is None:
            self.notify("Nothing to undo.")
            return
        self.done = set(self.labels.current_predictions(self.library.id))
        if undone.item_id is not None:
            # An adjudication, or a label given before an assignment, may be on an item outside the queue.
            item = next((i for i in self.queue if i.id == undone.item_id), None)
            if undone.item_id not in self.done and item is not None:
                self.draft = Draft.fresh(item)
                self.adjudicating = False
                save_state(self.conn, self.labeler, item=item.uid)
        self.saved()
        self.notify(visible(f"Undone: {undone.description} (kept, marked as withdrawn)"), markup=False)
        self.refresh_task()

    def action_mark(self) -> None:
        if self.open_node is None or self.mode != "credence":
            return
        if any(m.id == self.open_node.id for m in self.marked):
            self.marked = [m for m in self.marked if m.id != self.open_node.id]
        elif len(self.marked) >= MAX_MARKED:
            self.notify(f"A credence covers at most {MAX_MARKED} statements.", severity="warning")
            return
        else:
            self.marked.append(self.open_node)
        self.whole_library = False
        save_state(self.conn, self.labeler, marked=[m.uid for m in self.marked], whole_library=False)
        self.show_node(self.open_node)
        self.refresh_task()

    def action_whole_library(self) -> None:
        if self.mode != "credence":
            return
        self.whole_library = not self.whole_library
        save_state(self.conn, self.labeler, whole_library=self.whole_library)
        self.refresh_task()

    def credence_target(self) -> list[Node]:
        if self.whole_library:
            return []
        if self.marked:
            return self.marked
        return [self.open_node] if self.open_node and self.open_node.id != self.library.root_id else []

    def action_type_credence(self) -> None:
        if self.mode != "credence":
            return
        self.query_one(TaskPanel).open_input()

    def on_task_panel_credence_typed(self, event: TaskPanel.CredenceTyped) -> None:
        self.check_credence(event.value)

    def on_task_panel_credence_entered(self, event: TaskPanel.CredenceEntered) -> None:
        target = self.credence_target()
        if not target and not self.whole_library:
            self.feedback("Open or mark a statement first (x marks, w for the whole library).", error=True)
            return
        try:
            self.labels.record_credence(self.library.id, target, event.value)
        except LabelError as error:
            self.feedback(str(error), error=True)
            return
        self.query_one(TaskPanel).close_input()
        self.marked = []
        self.whole_library = False
        save_state(self.conn, self.labeler, marked=[], whole_library=False)
        self.query_one(ZTree).focus()
        self.saved()
        self.refresh_task()
        self.feedback(f"Saved P = {event.value:g}.")

    def key_escape(self) -> None:
        box = self.query_one(TaskPanel).credence_input
        if box.has_focus:
            box.display = False
            self.query_one(ZTree).focus()

    def check_credence(self, value: float) -> None:
        """At a glance on every keystroke; the exact check over every credence in a worker."""
        known = {key: credence.p for key, credence in self.labels.current_credences(self.library.id).items()}
        key = tuple(sorted(node.uid for node in self.credence_target()))
        conflicts = visible_conflicts(key, value, known, self.describe_key)
        if conflicts:
            self.feedback(
                "Incoherent with your earlier credences:\n" + "\n".join(f"• {c}" for c in conflicts), error=True
            )
        else:
            self.feedback("nothing contradicts it at a glance")
        earlier = [
            ExactCredence(frozenset(other), p, label=self.describe_key(other))
            for other, p in known.items()
            if other and other != key
        ]
        if key:
            self.query_one(CoherenceCheck).check(
                [*earlier, ExactCredence(frozenset(key), value, label="this credence")]
            )

    def describe_key(self, key: tuple[str, ...]) -> str:
        titles = []
        for uid in key:
            node = node_by_uid(self.conn, uid, self.library.id)
            titles.append(node.title[:40] if node else uid)
        return " ∧ ".join(titles) if titles else "whole library"

    # -- export and merge (command palette) --------------------------------------

    def export_path(self) -> Path:
        """Beside the workspace, named for the labeler, so an export never lands anywhere unexpected."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.labeler)
        return self.workspace.with_name(f"{self.workspace.stem}.{safe}.labels.jsonl")

    @work(thread=True, exclusive=True, group="exchange")
    def export_labels(self) -> None:
        target = self.export_path()
        conn = connect(self.workspace)
        try:
            report = export_to_path(conn, target, labeler=self.labeler)
        except WorkspaceError as error:
            self.app.call_from_thread(self.notify, f"Nothing exported: {error}", severity="error", markup=False)
            return
        finally:
            conn.close()
        counts = ", ".join(f"{n} {kind}s" for kind, n in report.written.items() if n) or "nothing"
        self.app.call_from_thread(self.notify, f"Exported {counts} to {target}", markup=False)

    def merge_labels(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_merge(Path(path).expanduser())

        self.app.push_screen(PromptScreen("Path of a labels export to merge into this workspace"), chosen)

    @work(thread=True, exclusive=True, group="exchange")
    def run_merge(self, path: Path) -> None:
        conn = connect(self.workspace)
        try:
            report = merge_files(conn, [path])
            for library in report.libraries:
                with contextlib.suppress(SearchError):
                    SearchIndex(conn, self.workspace, library).update()
        except (ImportProblem, WorkspaceError) as error:
            self.app.call_from_thread(self.notify, f"Nothing merged: {error}", severity="error", markup=False)
            return
        finally:
            conn.close()
        added = ", ".join(f"{n} {kind}s" for kind, n in report.added.items() if n) or "nothing new"
        self.app.call_from_thread(self.merged, f"Merged {path.name}: {added}")

    def merged(self, message: str) -> None:
        self.done = set(self.labels.current_predictions(self.library.id))
        if self.draft is not None and self.draft.item.id in self.done:
            self.draft = self.next_draft()
        self.refresh_task()
        self.notify(message, markup=False)

    # -- the local LLM ---------------------------------------------------------

    @work(thread=True, group="llm-check")
    def check_model(self) -> None:
        self.generation.check()
        self.app.call_from_thread(self.refresh_status)

    def action_unpack(self) -> None:
        node = self.open_node
        if node is not None and self.ready_to_generate():
            self.query_one(GenerationStream).stream(
                f"Unpacking “{node.title[:60]}” …", partial(self.generation.unpack, node)
            )

    def action_ask(self) -> None:
        node = self.open_node
        if node is None or not self.ready_to_generate():
            return

        def asked(question: str | None) -> None:
            if question:
                self.query_one(GenerationStream).stream(
                    f"Asking about “{node.title[:60]}”: {question}", partial(self.generation.ask, node, question)
                )

        self.app.push_screen(PromptScreen(f"Ask the LLM about: {node.title[:80]}"), asked)

    def ready_to_generate(self) -> bool:
        availability = self.generation.availability
        if self.generation.running:
            self.notify("The model is busy; Esc cancels the running call.", severity="warning")
            return False
        if availability is not None and not availability.ok:
            self.notify(f"Unpacking is off: {availability.reason}. {availability.fix}", severity="error", markup=False)
            return False
        return True

    def action_cancel_generation(self) -> None:
        if self.generation.running:
            self.generation.cancel.set()

    def on_generation_stream_rate(self, event: GenerationStream.Rate) -> None:
        self.tokens_per_second = event.tokens_per_second
        self.refresh_status()

    def on_generation_stream_finished(self, event: GenerationStream.Finished) -> None:
        if event.outcome is not None and event.outcome.added:
            self.reload_children(event.outcome.node_id)
        self.notify(visible(event.message), severity="information" if event.outcome else "error", markup=False)

    def reload_children(self, node_id: int) -> None:
        """Show new children in place: re-read the node (counts changed) and its first page."""
        fresh = node_by_id(self.conn, node_id)
        tree = self.query_one(ZTree)
        if fresh is None:
            return
        holder = find_tree_node(tree, node_id)
        if holder is not None:
            holder.data = fresh
            holder.set_label(node_label(fresh))
            holder.remove_children()
            holder.allow_expand = True
            tree.load_page(holder, fresh.id, None)
            holder.expand()
        if self.open_node is not None and self.open_node.id == node_id:
            self.open_node = fresh
            self.show_node(fresh)

    # -- drawing -------------------------------------------------------------

    def feedback(self, message: str, *, error: bool = False) -> None:
        self.query_one(TaskPanel).feedback(message, error=error)

    def saved(self) -> None:
        self.last_save = utc_now()[11:19]
        self.refresh_status()

    def refresh_task(self) -> None:
        panel = self.query_one(TaskPanel)
        if self.mode == "predict":
            panel.show_prediction(self.draft, adjudicating=self.adjudicating)
        else:
            target = self.credence_target()
            earlier = self.labels.current_credences(self.library.id).get(tuple(sorted(n.uid for n in target)))
            whole = self.library.name if self.whole_library else None
            panel.show_credence(target, whole_library=whole, earlier=earlier.p if earlier else None)
        self.refresh_status()

    def refresh_status(self) -> None:
        labeled = sum(1 for item in self.queue if item.id in self.done)
        status = Text(
            f" {self.labeler} · {self.workspace.name} · {self.library.name} · {self.mode} · "
            f"{labeled}/{len(self.queue)} items · last save {self.last_save}"
        )
        availability = self.generation.availability
        if availability is not None and not availability.ok:
            status.append(f" · unpacking off: {availability.reason}", style="red")
        elif self.tokens_per_second:
            status.append(f" · LLM {self.tokens_per_second:.1f} tokens/s")
        if self.generation.running:
            status.append(" · generating (Esc cancels)", style="magenta")
        self.query_one("#status", Static).update(status)
