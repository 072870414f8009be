"""The task on the right of the workbench: the draft prediction, or the credence being given.

The screen owns the labeling state (draft, mode, marked statements) and hands
the panel what to draw. The panel owns the credence box: it reads what is typed
and says it up as a probability (CredenceTyped while typing, CredenceEntered on
Enter), or explains in place why it is not one; the screen checks and records.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from kb.tree import Node
from navigator.display import visible
from navigator.task import Draft
from navigator.widgets.coherence import CoherenceCheck

PREDICTION_KEYS = "1–9 pick at 90% · o select · +/− 5% · </> 1% · c cite · n note · s submit"
CREDENCE_KEYS = "x mark/unmark · w whole library · i type the probability, Enter saves"


class Typed(Message):
    """A number read from the credence box."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value


class TaskPanel(Vertical):
    class CredenceTyped(Typed):
        """The credence box holds a probability in [0, 1]; nothing is recorded yet."""

    class CredenceEntered(Typed):
        """Enter was pressed on a number: the screen records it (the store rejects a non-probability)."""

    def compose(self) -> ComposeResult:
        yield Static(id="task-title")
        yield Static(id="task-body")
        yield Input(placeholder="probability, e.g. 0.8", id="credence-input")
        yield Static(id="task-feedback")
        yield CoherenceCheck(id="coherence")

    def on_mount(self) -> None:
        self.credence_input.display = False

    @property
    def credence_input(self) -> Input:
        return self.query_one("#credence-input", Input)

    @property
    def coherence(self) -> CoherenceCheck:
        return self.query_one(CoherenceCheck)

    # -- what the screen hands down ------------------------------------------------

    def show_prediction(self, draft: Draft | None, *, adjudicating: bool) -> None:
        self.credence_input.display = False
        self.query_one("#task-title", Static).update(Text("Prediction  P(y | x, Z)", style="bold"))
        self.query_one("#task-body", Static).update(prediction_text(draft, adjudicating=adjudicating))

    def show_credence(self, target: list[Node], *, whole_library: str | None, earlier: float | None) -> None:
        """`whole_library`: the library's name when the credence is about all of it."""
        self.query_one("#task-title", Static).update(Text("Credence  P(statements true)", style="bold"))
        self.query_one("#task-body", Static).update(credence_text(target, whole_library, earlier))

    def feedback(self, message: str, *, error: bool = False) -> None:
        self.query_one("#task-feedback", Static).update(Text(visible(message), style="red" if error else "green"))

    def open_input(self) -> None:
        self.credence_input.display = True
        self.credence_input.focus()

    def close_input(self) -> None:
        self.credence_input.value = ""
        self.credence_input.display = False

    # -- what the labeler types ---------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "credence-input":
            return
        event.stop()
        typed = event.value
        try:
            value = float(typed)
        except ValueError:
            self.feedback("type a probability between 0 and 1" if typed.strip() else "")
            return
        if not 0.0 <= value <= 1.0:
            self.feedback(f"{value:g} is not a probability: it must be between 0 and 1", error=True)
            return
        self.post_message(self.CredenceTyped(value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "credence-input":
            return
        event.stop()
        try:
            value = float(event.value)
        except ValueError:
            self.feedback(f"{event.value!r} is not a number; type a probability such as 0.8", error=True)
            return
        self.post_message(self.CredenceEntered(value))


def prediction_text(draft: Draft | None, *, adjudicating: bool) -> Text:
    if draft is None:
        return Text("Every item in the queue has your prediction. ctrl+z undoes the last one.")
    text = Text(f"{draft.item.split} · {draft.item.task}\n", style="dim")
    if adjudicating:
        text.append("ADJUDICATION: your ruling on a disagreement (D shows it again)\n", style="bold yellow")
    text.append(visible(draft.item.x) + "\n\n")
    for index, (option, p) in enumerate(zip(draft.item.options, draft.probs, strict=True)):
        pointer = "▶" if index == draft.selected else " "
        bar = "█" * round(p * 20)
        text.append(f"{pointer} {index + 1}. ", style="bold" if index == draft.selected else "")
        text.append(visible(option))
        text.append(f"  {p:6.1%} ", style="bold")
        text.append(bar + "\n", style="cyan")
    text.append(f"\ncited: {len(draft.cited)} · trail: {len(draft.trail)} nodes")
    if draft.note:
        text.append("\nnote: " + visible(draft.note))
    text.append(f"\n\n{PREDICTION_KEYS}", style="dim")
    return text


def credence_text(target: list[Node], whole_library: str | None, earlier: float | None) -> Text:
    text = Text("How likely is it that ")
    if whole_library is not None:
        text.append(f"everything in library {whole_library} is true", style="bold")
    elif not target:
        text.append("… (open a statement, or mark up to 4 with x)", style="dim")
    else:
        text.append("all of these are true" if len(target) > 1 else "this is true", style="bold")
        for node in target:
            text.append("\n• " + visible(node.title))
    if earlier is not None and (target or whole_library is not None):
        text.append(f"\n\nyour current credence: {earlier:g}", style="dim")
    text.append(f"\n\n{CREDENCE_KEYS}", style="dim")
    return text
