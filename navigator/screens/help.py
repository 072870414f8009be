"""Every key binding of the screen underneath, and the app's own, in one table."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss(None)", "Close")]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(Text("Keys — also in the command palette (ctrl+p)"), classes="dialog-title")
            table: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("key", "action")
            for binding in self.bindings:
                table.add_row(Text(self.keys_of(binding)), Text(binding.description or binding.action))
            yield table

    def keys_of(self, binding: Binding) -> str:
        """How the footer would show each key of the binding, e.g. "[ / alt+←"."""
        keys = [key.strip() for key in binding.key.split(",")]
        return " / ".join(self.app.get_key_display(Binding(key, binding.action)) for key in keys)
