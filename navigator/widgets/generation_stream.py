"""What the local LLM writes about the open node, shown token by token, and the worker that runs the call.

The call itself (navigator.model_worker) runs in a thread worker with its own
workspace connection; tokens and notes hop back to the UI thread. The widget
says what happened with messages: Rate while tokens arrive (for the status line)
and Finished when the call ends (the screen then shows new children in the tree).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.message import Message
from textual.widgets import Static

from kb.errors import Cancelled, ZNavigatorError
from navigator.display import describe_error, visible
from navigator.model_worker import ModelWorker, Outcome

TokenSink = Callable[[str, float], None]
NoteSink = Callable[[str], None]
Call = Callable[[TokenSink, NoteSink], Outcome]


class GenerationStream(Static):
    """One model call at a time (ModelWorker.running); Esc sets ModelWorker.cancel."""

    class Rate(Message):
        """A token arrived; the model is writing this fast."""

        def __init__(self, tokens_per_second: float) -> None:
            super().__init__()
            self.tokens_per_second = tokens_per_second

    class Finished(Message):
        """The call ended: `outcome` is None when it failed or was cancelled, and `message` says which."""

        def __init__(self, message: str, outcome: Outcome | None) -> None:
            super().__init__()
            self.message = message
            self.outcome = outcome

    def __init__(self, generation: ModelWorker, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.generation = generation
        self.streamed = Text()

    def stream(self, heading: str, call: Call) -> None:
        """Show `heading`, then run `call(on_token, on_note)` in a worker, showing what it writes."""
        self.streamed = Text(heading + "\n", style="bold magenta")
        self.update(self.streamed)
        self.run_call(call)

    @work(thread=True, exclusive=True, group="llm")
    def run_call(self, call: Call) -> None:
        self.generation.cancel.clear()
        self.generation.running = True
        outcome: Outcome | None = None
        try:
            outcome = call(self.token_threadsafe, self.note_threadsafe)
            message = outcome.message
        except (ZNavigatorError, Cancelled) as error:
            message = describe_error(error)
        finally:
            self.generation.running = False  # before the screen hears of the end, so its status line is right
        self.app.call_from_thread(self.end, message, outcome)

    def token_threadsafe(self, text: str, tokens_per_second: float) -> None:
        self.app.call_from_thread(self.token, text, tokens_per_second)

    def note_threadsafe(self, message: str) -> None:
        self.app.call_from_thread(self.note, message)

    def token(self, text: str, tokens_per_second: float) -> None:
        self.streamed.append(visible(text))
        self.update(self.streamed)
        self.post_message(self.Rate(tokens_per_second))

    def note(self, message: str) -> None:
        self.streamed.append(visible(f"\n[{message}]\n"), style="italic")
        self.update(self.streamed)

    def end(self, message: str, outcome: Outcome | None) -> None:
        style = "red" if outcome is None else "yellow" if outcome.warning else "green"
        self.streamed.append(visible(f"\n{message}"), style=style)
        self.update(self.streamed)
        self.post_message(self.Finished(message, outcome))
