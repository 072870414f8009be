"""Running the local LLM for the app: unpack and ask in a worker thread, streaming to the UI.

The model work never touches the UI thread: it runs with its own workspace
connection, reports through callbacks the screen passes in (which hop back to
the UI thread), and is cancelled through a threading.Event that Esc sets.
Children are committed only when a call completes, so a cancel writes nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kb.db import connect
from kb.libraries import Library
from kb.search import SearchError, SearchIndex
from kb.tree import Node
from models.llm.ask import AskFailed, ask_stream
from models.llm.generation import RetryEvent, TokenEvent
from models.llm.model import LLM, LazyLLM
from models.llm.model_credences import CreditReport
from models.llm.model_file import Availability, check_available
from models.llm.unpack import DoneEvent, UnpackFailed, unpack_stream


@dataclass(frozen=True)
class Outcome:
    """What a finished call left behind: the node whose children changed, and a sentence for the labeler."""

    node_id: int
    message: str
    added: int


class Generation:
    """One model per app, one call at a time; the screen renders what the callbacks report."""

    def __init__(self, workspace: Path, library: Library, labeler: str, llm: LLM | None = None) -> None:
        self.workspace = workspace
        self.library = library
        self.labeler = labeler
        self.llm: LLM = llm if llm is not None else LazyLLM()
        self.cancel = threading.Event()
        self.availability: Availability | None = Availability(True, None) if llm is not None else None
        self.running = False

    def check(self) -> Availability:
        """Cheap (no weights loaded), but assembles the bundled model on first use: call from a worker."""
        if self.availability is None:
            self.availability = check_available()
        return self.availability

    def unpack(self, node: Node, on_token: Callable[[str, float], None], on_note: Callable[[str], None]) -> Outcome:
        conn = connect(self.workspace)
        try:
            for event in unpack_stream(conn, self.llm, node, cancel=self.cancel, labeler=self.labeler):
                if isinstance(event, TokenEvent):
                    on_token(event.text, event.tokens_per_second)
                elif isinstance(event, RetryEvent):
                    on_note(f"nothing usable yet ({event.reason}); trying once more")
                elif isinstance(event, DoneEvent):
                    result = event.result
                    if result.cached:
                        return Outcome(node.id, f"{len(result.children)} stored children (no model call)", 0)
                    self._index(conn)
                    credit = f"; {result.credit.summary()}" if result.credit is not None else ""
                    return Outcome(
                        node.id,
                        f"{len(result.children)} generated children in {result.ms:,.0f} ms{credit}",
                        len(result.children),
                    )
            raise UnpackFailed("the model stopped without a result")
        finally:
            conn.close()

    def ask(
        self, node: Node, question: str, on_token: Callable[[str, float], None], on_note: Callable[[str], None]
    ) -> Outcome:
        conn = connect(self.workspace)
        credit = ""
        try:
            for event in ask_stream(conn, self.llm, node, question, cancel=self.cancel, labeler=self.labeler):
                if isinstance(event, TokenEvent):
                    on_token(event.text, event.tokens_per_second)
                elif isinstance(event, RetryEvent):
                    on_note(f"nothing usable yet ({event.reason}); trying once more")
                elif isinstance(event, CreditReport):
                    credit = f"; {event.summary()}"
                elif isinstance(event, Node):
                    self._index(conn)
                    return Outcome(node.id, f"answer stored as a child: {event.title}{credit}", 1)
            raise AskFailed("the model stopped without an answer")
        finally:
            conn.close()

    def _index(self, conn: sqlite3.Connection) -> None:
        """New nodes become searchable at once; a missing index is the labeler's to rebuild, not a failure here."""
        with contextlib.suppress(SearchError):
            SearchIndex(conn, self.workspace, self.library).update()
