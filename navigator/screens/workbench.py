"""The labeler's workbench: Z on the left, the open node in the middle, the task on the right.

The screen composes the widgets (navigator/widgets/), routes keys and their
messages, and keeps where the labeler is: the open node and the history of
nodes visited. What is being labeled (queue, draft, marks) is navigator.labeling,
which writes every label through LabelStore the moment it is submitted; where the
labeler is gets saved on every move, so reopening resumes exactly there.
"""

from __future__ import annotations

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

from kb.db import utc_now
from kb.items import Item
from kb.labelers import is_lead
from kb.labels import LabelError
from kb.libraries import Library
from kb.sessions import bookmarks, load_state, save_state, toggle_bookmark
from kb.tree import Node, ancestors, node_by_id, node_by_uid
from navigator.display import describe_error, visible
from navigator.history import History
from navigator.labeling import MAX_MARKED, Labeling
from navigator.model_worker import ModelWorker
from navigator.palette_exchange import export_mine, export_path, merge_export
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
from navigator.widgets.z_tree import TreeData, ZTree, node_label, reveal

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
        Binding("U", "unpack(True)", "Elaborate (LLM's own knowledge)", show=False),
        Binding("a", "ask", "Ask the LLM"),
        Binding("A", "ask(True)", "Ask (LLM's own knowledge)", show=False),
        Binding("escape", "cancel_generation", "Cancel LLM", show=False),
        Binding("M", "metrics", "Metrics"),
        Binding("D", "disagreements", "Disagreements", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self, conn: sqlite3.Connection, workspace: Path, library: Library, labeler: str, generation: ModelWorker
    ) -> None:
        super().__init__()
        self.conn = conn
        self.workspace = workspace
        self.library = library
        self.labeler = labeler
        self.generation = generation
        self.tokens_per_second = 0.0
        self.labeling = Labeling(conn, library, labeler)
        self.open_node: Node | None = None
        self.history = History()
        self.last_save = "—"

    @property
    def queue(self) -> list[Item]:
        return self.labeling.queue

    @property
    def draft(self) -> Draft | None:
        return self.labeling.draft

    @property
    def mode(self) -> str:
        return self.labeling.mode

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
        if self.labeling.ordering.how != "as listed":
            self.notify(f"Queue: {self.labeling.ordering.how}", markup=False)

    def resume(self) -> None:
        state = load_state(self.conn, self.labeler)
        self.labeling.resume(state)
        opened = node_by_uid(self.conn, state["open_node"], self.library.id) if "open_node" in state else None
        if opened is not None and opened.id != self.library.root_id:
            reveal(self.query_one(ZTree), ancestors(self.conn, opened.id))
        else:
            root = node_by_id(self.conn, self.library.root_id)
            assert root is not None
            self.open(root)
        self.refresh_task()

    # -- the open node ------------------------------------------------------

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[TreeData]) -> None:
        if isinstance(event.node.data, Node):
            self.open(event.node.data)

    def open(self, node: Node, *, from_history: bool = False) -> None:
        self.open_node = node
        if not from_history:
            self.history.visit(node.id)
        if self.draft is not None:
            self.draft.visit(node.uid)
        self.show_node(node)
        save_state(self.conn, self.labeler, open_node=node.uid)

    def show_node(self, node: Node) -> None:
        cited = self.draft is not None and node.uid in self.draft.cited
        self.query_one(NodePane).show(node, cited=cited, marked=self.labeling.is_marked(node))

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
        self.jump_to(self.history.back(), from_history=True)

    def action_forward(self) -> None:
        self.jump_to(self.history.forward(), from_history=True)

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
        lead = is_lead(self.conn, self.labeler)
        screen = DisagreementsScreen(self.workspace, self.library, self.labeler, lead=lead)
        self.app.push_screen(screen, self.chosen_in_disagreements)

    def chosen_in_disagreements(self, choice: Choice | None) -> None:
        """Jump to a cited node, or make the item the draft as an adjudication."""
        if choice is None:
            return
        if choice.node_id is not None:
            self.jump_to(choice.node_id)
        if choice.adjudicate is not None:
            self.labeling.adjudicate(choice.adjudicate, self.open_node)
            self.refresh_task()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen([*self.BINDINGS, *self.app.BINDINGS]))  # type: ignore[list-item]

    # -- the task ------------------------------------------------------------

    def action_toggle_mode(self) -> None:
        self.labeling.toggle_mode()
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
        try:
            self.labeling.submit(self.open_node)
        except LabelError as error:
            self.feedback(describe_error(error), error=True)
            return
        self.saved()
        self.refresh_task()

    def action_undo(self) -> None:
        undone = self.labeling.undo()
        if undone is None:
            self.notify("Nothing to undo.")
            return
        self.saved()
        self.notify(visible(f"Undone: {undone.description} (kept, marked as withdrawn)"), markup=False)
        self.refresh_task()

    def action_mark(self) -> None:
        if self.open_node is None or self.mode != "credence":
            return
        if not self.labeling.toggle_mark(self.open_node):
            self.notify(f"A credence covers at most {MAX_MARKED} statements.", severity="warning")
            return
        self.show_node(self.open_node)
        self.refresh_task()

    def action_whole_library(self) -> None:
        if self.mode == "credence":
            self.labeling.toggle_whole_library()
            self.refresh_task()

    def credence_target(self) -> list[Node]:
        return self.labeling.credence_target(self.open_node)

    def action_type_credence(self) -> None:
        if self.mode == "credence":
            self.query_one(TaskPanel).open_input()

    def on_task_panel_credence_typed(self, event: TaskPanel.CredenceTyped) -> None:
        """At a glance on every keystroke; the exact check over every credence in a worker."""
        conflicts, every_credence = self.labeling.check(self.credence_target(), event.value)
        if conflicts:
            self.feedback(
                "Incoherent with your earlier credences:\n" + "\n".join(f"• {c}" for c in conflicts), error=True
            )
        else:
            self.feedback("nothing contradicts it at a glance")
        if every_credence:
            self.query_one(CoherenceCheck).check(every_credence)

    def on_task_panel_credence_entered(self, event: TaskPanel.CredenceEntered) -> None:
        target = self.credence_target()
        if not target and not self.labeling.whole_library:
            self.feedback("Open or mark a statement first (x marks, w for the whole library).", error=True)
            return
        try:
            self.labeling.record_credence(target, event.value)
        except LabelError as error:
            self.feedback(describe_error(error), error=True)
            return
        self.query_one(TaskPanel).close_input()
        self.query_one(ZTree).focus()
        self.saved()
        self.refresh_task()
        self.feedback(f"Saved P = {event.value:g}.")

    def key_escape(self) -> None:
        box = self.query_one(TaskPanel).credence_input
        if box.has_focus:
            box.display = False
            self.query_one(ZTree).focus()

    # -- export and merge (command palette) --------------------------------------

    def export_path(self) -> Path:
        return export_path(self.workspace, self.labeler)

    @work(thread=True, exclusive=True, group="exchange")
    def export_labels(self) -> None:
        message, written = export_mine(self.workspace, self.labeler)
        self.app.call_from_thread(self.notify, message, severity="information" if written else "error", markup=False)

    def merge_labels(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_merge(Path(path).expanduser())

        self.app.push_screen(PromptScreen("Path of a labels export to merge into this workspace"), chosen)

    @work(thread=True, exclusive=True, group="exchange")
    def run_merge(self, path: Path) -> None:
        message, merged = merge_export(self.workspace, path)
        if merged:
            self.app.call_from_thread(self.merged, message)
        else:
            self.app.call_from_thread(self.notify, message, severity="error", markup=False)

    def merged(self, message: str) -> None:
        self.labeling.merged()
        self.refresh_task()
        self.notify(message, markup=False)

    # -- the local LLM ---------------------------------------------------------

    @work(thread=True, group="llm-check")
    def check_model(self) -> None:
        self.generation.check()
        self.app.call_from_thread(self.refresh_status)

    def action_unpack(self, elaborate: bool = False) -> None:
        """Grounded statements with their evidence; with `elaborate` (U), the model's own knowledge, marked."""
        node = self.open_node
        if node is not None and self.ready_to_generate():
            doing = "Elaborating on" if elaborate else "Unpacking"
            self.query_one(GenerationStream).stream(
                f"{doing} “{node.title[:60]}” …", partial(self.generation.unpack, node, elaborate=elaborate)
            )

    def action_ask(self, elaborate: bool = False) -> None:
        """An answer from the node, or "the node does not say"; with `elaborate` (A), from the model's knowledge."""
        node = self.open_node
        if node is None or not self.ready_to_generate():
            return

        def asked(question: str | None) -> None:
            if question:
                self.query_one(GenerationStream).stream(
                    f"Asking about “{node.title[:60]}”: {question}",
                    partial(self.generation.ask, node, question, elaborate=elaborate),
                )

        known = " (its own knowledge allowed)" if elaborate else ""
        self.app.push_screen(PromptScreen(f"Ask the LLM{known} about: {node.title[:80]}"), asked)

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
        """New children appear in place: the tree re-reads the node, and the pane redraws it if open."""
        if event.outcome is not None and event.outcome.added:
            fresh = node_by_id(self.conn, event.outcome.node_id)
            if fresh is not None:
                self.query_one(ZTree).reload_children(fresh)
                if self.open_node is not None and self.open_node.id == fresh.id:
                    self.open_node = fresh
                    self.show_node(fresh)
        outcome = event.outcome
        severity = "error" if outcome is None else "warning" if outcome.warning else "information"
        self.notify(visible(event.message), severity=severity, markup=False)
        self.refresh_status()

    # -- drawing -------------------------------------------------------------

    def feedback(self, message: str, *, error: bool = False) -> None:
        self.query_one(TaskPanel).feedback(message, error=error)

    def saved(self) -> None:
        self.last_save = utc_now()[11:19]
        self.refresh_status()

    def refresh_task(self) -> None:
        panel = self.query_one(TaskPanel)
        if self.mode == "predict":
            panel.show_prediction(self.draft, adjudicating=self.labeling.adjudicating)
        else:
            target = self.credence_target()
            earlier = self.labeling.current_credences().get(tuple(sorted(n.uid for n in target)))
            whole = self.library.name if self.labeling.whole_library else None
            panel.show_credence(target, whole_library=whole, earlier=earlier)
        self.refresh_status()

    def refresh_status(self) -> None:
        status = Text(
            f" {self.labeler} · {self.workspace.name} · {self.library.name} · {self.mode} · "
            f"{self.labeling.labeled}/{len(self.queue)} items · last save {self.last_save}"
        )
        availability = self.generation.availability
        stopped = self.generation.stopped
        if availability is not None and not availability.ok:
            status.append(f" · unpacking off: {availability.reason}", style="red")
        elif stopped is not None:
            why = f"the model process stopped ({stopped.cause})"
            status.append(f" · unpacking off: {why}; u starts it again", style="red")
        elif self.tokens_per_second:
            status.append(f" · LLM {self.tokens_per_second:.1f} tokens/s")
        if self.generation.running:
            status.append(" · generating (Esc cancels)", style="magenta")
        self.query_one("#status", Static).update(status)
