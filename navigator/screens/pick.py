"""Choose one of a list of nodes (bookmarks, history): Enter picks, Esc closes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from navigator.display import visible


class PickScreen(ModalScreen[int | None]):
    """Returns the chosen node id."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, title: str, choices: list[tuple[int, Text]], *, empty: str) -> None:
        super().__init__()
        self.heading = title
        self.choices = choices
        self.empty = empty

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(visible(self.heading)), classes="dialog-title")
            if self.choices:
                yield OptionList(*(Option(label, id=str(node_id)) for node_id, label in self.choices))
            else:
                yield Static(Text(self.empty), classes="muted")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(int(event.option.id) if event.option.id else None)
