"""The labeler's app: who is labelling, which library, then the workbench."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from kb.db import connect
from kb.libraries import Library, find_library, list_libraries
from kb.sessions import last_labeler, load_state, save_state
from models.llm.model import LLM
from navigator.model_worker import ModelWorker
from navigator.screens.prompt import PromptScreen
from navigator.screens.workbench import WorkbenchScreen


class NavigatorApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "Z Navigator"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit"), Binding("ctrl+p", "command_palette", "Commands")]

    def __init__(
        self,
        workspace: Path,
        labeler: str | None = None,
        library: str | None = None,
        llm: LLM | None = None,
        *,
        ask: bool = False,
        served: bool = False,
    ) -> None:
        """`ask`: always ask who is labelling (a browser tab of `navigator serve --no-auth` may be
        anyone), instead of resuming as the labeler who used this workspace last. `served`: the
        labeler signed in to `navigator serve`; nothing in the app may act under another name, so
        merging another labeler's export (which writes their labels) is not offered."""
        super().__init__()
        self.served = served
        self.llm = llm
        self.workspace = workspace
        self.conn = connect(workspace)
        self.labeler = labeler or (None if ask else last_labeler(self.conn))
        self.library_name = library
        self.generation: ModelWorker | None = None

    def on_mount(self) -> None:
        if self.labeler:
            self.start(self.labeler)
        else:
            self.push_screen(PromptScreen("Who is labelling? (your name, remembered next time)"), self.start)

    def start(self, labeler: str | None) -> None:
        if not labeler:
            self.exit(message="A labeler name is needed to record labels.")
            return
        self.labeler = labeler
        library = self.choose_library(labeler)
        if library is None:
            self.notify("This workspace has no library yet: add one with `navigator import PATH`.", markup=False)
            return
        save_state(self.conn, labeler, library=library.name)
        self.sub_title = f"{labeler} · {library.name}"
        self.generation = ModelWorker(self.workspace, library, labeler, self.llm)
        self.push_screen(WorkbenchScreen(self.conn, self.workspace, library, labeler, self.generation))

    def on_unmount(self) -> None:
        """The model process ends with the app (it would also stop by itself once the app's pipes close)."""
        if self.generation is not None:
            self.generation.close()

    def choose_library(self, labeler: str) -> Library | None:
        wanted = self.library_name or load_state(self.conn, labeler).get("library")
        found = find_library(self.conn, wanted) if wanted else None
        libraries = list_libraries(self.conn)
        return found or (libraries[0] if libraries else None)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every workbench binding is also a command-palette entry."""
        yield from super().get_system_commands(screen)
        if isinstance(screen, WorkbenchScreen):
            for binding in screen.BINDINGS:
                assert isinstance(binding, Binding)
                yield SystemCommand(
                    binding.description,
                    f"key: {binding.key_display or binding.key}",
                    partial(screen.run_action, binding.action),
                )
            where = f"as JSONL to {screen.export_path().name}, beside the workspace"
            yield SystemCommand("Export my labels", where, screen.export_labels)
            if not self.served:
                yield SystemCommand("Merge a labels export…", "another labeler’s export", screen.merge_labels)
