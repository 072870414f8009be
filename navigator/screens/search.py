"""Search as you type: results (path + highlighted snippet) update on each keystroke,
from a worker thread so typing never waits for the index."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from kb.db import connect
from kb.libraries import Library
from kb.search import SearchError, SearchIndex, SearchResult
from navigator.display import describe_error, visible


def hit_label(path: str, snippet: list[tuple[str, bool]], missing: tuple[str, ...] = ()) -> Text:
    label = Text(visible(path), style="bold")
    if missing:
        label.append(visible(f"  (without {', '.join(missing)})"), style="dim")
    label.append("\n  ")
    for text, is_match in snippet:
        label.append(visible(re.sub(r"\s+", " ", text)), style="reverse" if is_match else "")
    return label


class SearchScreen(ModalScreen[int | None]):
    """Returns the id of the node chosen, or None."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("down", "focus_results", "Results", show=False),
    ]

    def __init__(self, workspace: Path, library: Library, query: str = "") -> None:
        super().__init__()
        self.workspace = workspace
        self.library = library
        self.initial = query
        self.index: SearchIndex | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Text(f"Search {self.library.name}"), classes="dialog-title")
            yield Input(value=self.initial, placeholder='words, "a phrase", title:word', id="search-input")
            yield Static(id="search-status", classes="muted")
            yield OptionList(id="search-results")

    def on_mount(self) -> None:
        if self.initial:
            self.run_search(self.initial)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.run_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        results = self.query_one("#search-results", OptionList)
        if results.option_count:
            self.dismiss(int(results.get_option_at_index(results.highlighted or 0).id or 0))

    def action_focus_results(self) -> None:
        results = self.query_one("#search-results", OptionList)
        results.focus()
        if results.highlighted is None and results.option_count:
            results.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(int(event.option.id or 0))

    @work(thread=True, exclusive=True, group="search")
    def run_search(self, text: str) -> None:
        """Runs off the UI thread with its own connection and a searcher kept open between
        keystrokes. A newer keystroke cancels this worker; a cancelled worker's result is
        dropped, so the list always shows the latest query's complete answer."""
        if self.index is None:
            self.index = SearchIndex(connect(self.workspace), self.workspace, self.library)
        try:
            result: SearchResult | str = self.index.search(text, limit=30)
        except SearchError as error:
            result = describe_error(error)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_results, result)

    def on_unmount(self) -> None:
        if self.index is not None:
            self.index.close()
            self.index.conn.close()

    def show_results(self, result: SearchResult | str) -> None:
        status = self.query_one("#search-status", Static)
        results = self.query_one("#search-results", OptionList)
        results.clear_options()
        if isinstance(result, str):
            status.update(Text(visible(result), style="red"))
            return
        for hit in result.hits:
            missing = result.missing(hit) if len(result.words) > 1 else ()
            results.add_option(Option(hit_label(hit.path, hit.snippet, missing), id=str(hit.node_id)))
        hint = f" — did you mean: {result.suggestion}" if result.suggestion else ""
        notes = "".join(f" · {note}" for note in result.notes)
        if result.hits:
            status.update(Text(visible(f"{result.count_text()} · {result.milliseconds:.0f} ms{hint}{notes}")))
        elif result.query:
            status.update(Text(visible(f"no results{hint}{notes}")))
        else:
            status.update(Text(""))
