"""Running the local LLM for the app: unpack and ask in a worker thread, streaming to the UI.

The model work never touches the UI thread: it runs with its own workspace
connection, reports through callbacks the screen passes in (which hop back to
the UI thread), and is cancelled through a threading.Event that Esc sets.
Children are committed only when a call completes, so a cancel writes nothing.

The model itself runs in its own process (models.llm.model_process): if that
process crashes or is killed, the call fails with ModelProcessStopped, the app
says so on the status line, and the next `u` starts a fresh process.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kb.db import connect
from kb.libraries import Library
from kb.search import index_new_nodes
from kb.tree import Node
from models.llm.ask import AskFailed, ask_stream
from models.llm.generation import RetryEvent, TokenEvent
from models.llm.model import LLM
from models.llm.model_credences import CreditReport
from models.llm.model_file import Availability, check_available
from models.llm.model_process import ModelProcess, ModelProcessStopped
from models.llm.unpack import DoneEvent, UnpackFailed, unpack_stream


@dataclass(frozen=True)
class Outcome:
    """What a finished call left behind: the node whose children changed, and a sentence for the labeler.

    `warning`: the call stored what it made but something after it went wrong (the model process
    stopped while judging the new statements)."""

    node_id: int
    message: str
    added: int
    warning: bool = False


def _shown(event: object, on_token: Callable[[str, float], None], on_note: Callable[[str], None]) -> bool:
    """Tokens and retries go to the screen as they come, for unpack and ask alike; True when
    `event` was one of them."""
    if isinstance(event, TokenEvent):
        on_token(event.text, event.tokens_per_second)
        return True
    if isinstance(event, RetryEvent):
        on_note(f"asking again: {event.reason}")
        return True
    return False


class ModelWorker:
    """One model per app, one call at a time; the screen renders what the callbacks report."""

    def __init__(self, workspace: Path, library: Library, labeler: str, llm: LLM | None = None) -> None:
        self.workspace = workspace
        self.library = library
        self.labeler = labeler
        self.owned = llm is None
        self.llm: LLM = llm if llm is not None else ModelProcess()
        self.cancel = threading.Event()
        self.availability: Availability | None = Availability(True, None) if llm is not None else None
        self.running = False
        self.stopped: ModelProcessStopped | None = None  # the last call's model process stopped; u restarts it

    def check(self) -> Availability:
        """Cheap (no weights loaded), but assembles the bundled model on first use: call from a worker."""
        if self.availability is None:
            self.availability = check_available()
        return self.availability

    def close(self) -> None:
        """Stop the model process this app started (a model passed in belongs to the caller)."""
        if self.owned and isinstance(self.llm, ModelProcess):
            self.llm.close()

    @contextlib.contextmanager
    def _call(self) -> Iterator[sqlite3.Connection]:
        """A connection for one call; a stopped model process is remembered for the status line."""
        self.stopped = None
        conn = connect(self.workspace)
        try:
            yield conn
        except ModelProcessStopped as stopped:
            self.stopped = stopped
            raise
        finally:
            conn.close()

    def unpack(
        self,
        node: Node,
        on_token: Callable[[str, float], None],
        on_note: Callable[[str], None],
        *,
        elaborate: bool = False,
    ) -> Outcome:
        with self._call() as conn:
            stream = unpack_stream(conn, self.llm, node, elaborate=elaborate, cancel=self.cancel, labeler=self.labeler)
            for event in stream:
                if _shown(event, on_token, on_note):
                    continue
                if isinstance(event, DoneEvent):
                    result = event.result
                    what = "elaborations" if elaborate else "children"
                    if result.cached:
                        return Outcome(node.id, f"{len(result.children)} stored {what} (no model call)", 0)
                    behind = self._index(conn)
                    credit = self._credit(result.credit)
                    return Outcome(
                        node.id,
                        f"{len(result.children)} generated {what} in {result.ms:,.0f} ms{credit}{behind}",
                        len(result.children),
                        warning=self.stopped is not None or bool(behind),
                    )
            raise UnpackFailed("the model stopped without a result")

    def ask(
        self,
        node: Node,
        question: str,
        on_token: Callable[[str, float], None],
        on_note: Callable[[str], None],
        *,
        elaborate: bool = False,
    ) -> Outcome:
        credit = ""
        with self._call() as conn:
            answers = ask_stream(
                conn, self.llm, node, question, elaborate=elaborate, cancel=self.cancel, labeler=self.labeler
            )
            for event in answers:
                if _shown(event, on_token, on_note):
                    continue
                if isinstance(event, CreditReport):
                    credit = self._credit(event)
                elif isinstance(event, Node):
                    behind = self._index(conn)
                    message = f"answer stored as a child: {event.title}{credit}{behind}"
                    return Outcome(node.id, message, 1, warning=self.stopped is not None or bool(behind))
            raise AskFailed("the model stopped without an answer")

    def _credit(self, report: CreditReport | None) -> str:
        if report is None:
            return ""
        if report.stopped is not None:
            self.stopped = report.stopped
            return f"; {report.stopped}"
        return f"; {report.summary()}"

    def _index(self, conn: sqlite3.Connection) -> str:
        """New nodes become searchable at once; an index that cannot follow is said, not a failure."""
        update = index_new_nodes(conn, self.workspace, self.library)
        return "" if update.warning is None else f"; {update.warning}"
