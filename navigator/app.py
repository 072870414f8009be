"""The labeler's app. For now it browses a library; labelling arrives with the app issue."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from kb.db import connect
from kb.libraries import list_libraries
from navigator.screens.browse import BrowseScreen


class NavigatorApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "Z Navigator"
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(self, workspace: Path, labeler: str | None = None) -> None:
        super().__init__()
        self.workspace = workspace
        self.labeler = labeler
        self.conn = connect(workspace)

    def on_mount(self) -> None:
        libraries = list_libraries(self.conn)
        self.sub_title = f"{self.workspace.name} · {libraries[0].name if libraries else 'no library'}"
        if libraries:
            self.push_screen(BrowseScreen(self.conn, libraries[0]))
        else:
            self.notify("This workspace has no library yet: add one with `navigator import PATH`.", markup=False)
