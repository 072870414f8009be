"""Disagreements: the items labelers disagree on most, each labeler's answer side by side.

For the selected item the screen shows, per labeler, the probabilities, the top choice, the
note and the nodes they cited, so a lead sees which part of Z each answer came from; `enter`
on a citation jumps there in the workbench, and `a` makes the item the workbench's draft as
an adjudication (a normal label, flagged; see kb.labels). Only a lead (kb/labelers.py) sees
every disagreement and adjudicates; anyone else sees only the items they have answered
themselves, so no one reads another's answer before giving their own (agreement and the study
assume independent judgements). The list is computed in a thread worker on its own connection.
Labeler names, notes, questions and node titles are workspace
text: rendered as rich.text.Text through `visible`, never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import HorizontalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from kb.db import connect
from kb.items import Item
from kb.libraries import Library
from kb.tree import PATH_SEPARATOR, node_by_uid, node_path
from models.imitation.agreement import Disagreement, disagreements
from navigator.display import visible
from navigator.team_text import labeler_name

LIMIT = 200
BAR_WIDTH = 16


@dataclass(frozen=True)
class Choice:
    """What the lead picked: a cited node to open, or an item to adjudicate."""

    node_id: int | None = None
    adjudicate: Item | None = None


@dataclass(frozen=True)
class Citation:
    labeler: str
    uid: str
    node_id: int | None  # None: the node is not in this library (any more)
    path: str


@dataclass(frozen=True)
class Found:
    entries: list[Disagreement]
    citations: dict[str, list[Citation]]  # item uid → every label's citations, in label order


def label_card(entry: Disagreement, index: int, citations: list[Citation]) -> Text:
    """One labeler's answer: name, probabilities as bars, top choice, the nodes cited (numbered as
    in the list of cited nodes below the cards, where enter opens one) and the note."""
    label = entry.labels[index]
    item = entry.item
    text = Text(visible(labeler_name(label.labeler, label.source)), style="bold")
    for option in item.options:
        p = label.probs.get(option, 0.0)
        text.append(f"\n{visible(option)[:14]:<14} {p:6.1%} ")
        text.append("█" * round(p * BAR_WIDTH), style="cyan")
    text.append(f"\ntop choice: {visible(entry.top_choices[label.labeler] or 'tied')}")
    text.append(f"\ntrail: {len(label.trail)} nodes visited", style="dim")
    mine = [(number, cited) for number, cited in enumerate(citations, start=1) if cited.labeler == label.labeler]
    text.append("\ncited: " + ("none" if not mine else ""))
    for number, cited in mine:
        text.append(f"\n {number}. ", style="bold")
        text.append(visible(cited.path.split(PATH_SEPARATOR)[-1] if cited.node_id is not None else cited.uid))
    if label.note:
        text.append("\nnote: " + visible(label.note), style="italic")
    return text


class DisagreementsScreen(Screen[Choice | None]):
    BINDINGS = [
        Binding("escape,q", "close", "Back"),
        Binding("a", "adjudicate", "Adjudicate this item"),
        Binding("r", "reload", "Recompute"),
    ]

    def __init__(self, workspace: Path, library: Library, viewer: str, *, lead: bool) -> None:
        super().__init__()
        self.workspace = workspace
        self.library = library
        self.viewer = viewer
        self.lead = lead
        self.found: Found | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("computing…"), id="disagreement-summary")
        table: DataTable[Text] = DataTable(id="disagreement-items", cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "JS", "item", "question", "top choices", "adjudicated")
        yield table
        yield Static(Text(""), id="disagreement-question")
        yield HorizontalScroll(id="disagreement-labels")
        yield Static(Text("Cited nodes — enter opens one in the workbench", style="bold"), classes="metrics-heading")
        yield OptionList(id="disagreement-citations")
        yield Footer()

    def on_mount(self) -> None:
        self.compute()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.query_one("#disagreement-summary", Static).update(Text("computing…"))
        self.compute()

    @work(thread=True, exclusive=True, group="disagreements")
    def compute(self) -> None:
        conn = connect(self.workspace)
        try:
            entries = disagreements(conn, self.library, limit=None if not self.lead else LIMIT)
            if not self.lead:  # only the items this labeler has answered: their answer is already given
                entries = [e for e in entries if any(label.labeler == self.viewer for label in e.labels)][:LIMIT]
            citations: dict[str, list[Citation]] = {}
            for entry in entries:
                cited = citations.setdefault(entry.item.uid, [])
                for label in entry.labels:
                    for uid in label.cited:
                        node = node_by_uid(conn, uid, self.library.id)
                        path = node_path(conn, node.id) if node else uid
                        cited.append(Citation(label.labeler, uid, node.id if node else None, path))
        finally:
            conn.close()
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show, Found(entries, citations))

    def show(self, found: Found) -> None:
        self.found = found
        open_ones = sum(1 for entry in found.entries if entry.adjudication is None)
        scope = "" if self.lead else " among the items you have answered (a lead sees them all)"
        what_to_do = " a adjudicates the selected item." if self.lead else ""
        self.query_one("#disagreement-summary", Static).update(
            Text(
                f"{len(found.entries)} items where labelers disagree in library {visible(self.library.name)}{scope}"
                f" ({open_ones} not yet adjudicated), most disagreement first (mean pairwise Jensen–Shannon"
                f" distance; adjudicated items last).{what_to_do}"
            )
        )
        table: DataTable[Text] = self.query_one("#disagreement-items", DataTable)
        table.clear()
        for rank, entry in enumerate(found.entries, start=1):
            tops = ", ".join(f"{who}: {top or 'tied'}" for who, top in entry.top_choices.items())
            ruling = entry.adjudication
            table.add_row(
                Text(str(rank)),
                Text(f"{entry.js_distance:.3f}"),
                Text(visible(f"{entry.item.uid} · {entry.item.task}")),
                Text(visible(entry.item.x[:60])),
                Text(visible(tops[:60])),
                Text(visible(ruling.labeler) if ruling else "—"),
                key=entry.item.uid,
            )
        if found.entries:
            table.focus()
            self.show_item(0)
        else:
            self.query_one("#disagreement-question", Static).update(
                Text("No item has labels from two labelers that differ.", style="dim")
            )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.found is not None and 0 <= event.cursor_row < len(self.found.entries):
            self.show_item(event.cursor_row)

    def selected(self) -> Disagreement | None:
        if self.found is None or not self.found.entries:
            return None
        row = self.query_one("#disagreement-items", DataTable).cursor_row
        return self.found.entries[row] if 0 <= row < len(self.found.entries) else None

    def show_item(self, row: int) -> None:
        assert self.found is not None
        entry = self.found.entries[row]
        item = entry.item
        question = Text(visible(f"{item.uid} · {item.split} · {item.task}\n"), style="dim")
        question.append(visible(item.x), style="bold")
        question.append(f"   (JS distance {entry.js_distance:.3f} over {len(entry.labels)} labelers)")
        if entry.adjudication is not None:
            ruling = entry.adjudication
            chosen = ", ".join(f"{visible(o)} {ruling.probs.get(o, 0.0):.2f}" for o in item.options)
            question.append(f"\nadjudicated by {visible(ruling.labeler)}: {chosen}", style="yellow")
        self.query_one("#disagreement-question", Static).update(question)
        cards = self.query_one("#disagreement-labels", HorizontalScroll)
        cards.remove_children()
        cited_here = self.found.citations.get(item.uid, [])
        cards.mount_all(
            Static(label_card(entry, i, cited_here), classes="labeler-card") for i in range(len(entry.labels))
        )
        citations = self.query_one("#disagreement-citations", OptionList)
        citations.clear_options()
        for number, cited in enumerate(cited_here, start=1):
            where = cited.path if cited.node_id is not None else f"{cited.uid} (not in this library)"
            prompt = Text(f"{number}. ")
            prompt.append(visible(cited.labeler), style="bold")
            prompt.append(visible(f" cites {where}"))
            # Option ids must be unique, and two labelers may cite one node: number them.
            citations.add_option(Option(prompt, id=f"{number}:{'' if cited.node_id is None else cited.node_id}"))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        node_id = (event.option.id or ":").split(":", 1)[1]
        if node_id:
            self.dismiss(Choice(node_id=int(node_id)))
        else:
            self.notify("That node is not in this library.", severity="warning")

    def action_adjudicate(self) -> None:
        if not self.lead:
            self.notify("Only a lead adjudicates (navigator labelers add NAME --lead).", severity="warning")
            return
        entry = self.selected()
        if entry is None:
            self.notify("Nothing to adjudicate.")
            return
        self.dismiss(Choice(adjudicate=entry.item))
