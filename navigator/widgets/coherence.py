"""The exact coherence check of a credence being typed, run off the UI thread and shown as one line.

The quick check (models.prior.credence_checks) answers on every keystroke; this one
solves the LP over all of the labeler's credences (models.prior.exact), which is
milliseconds for a handful but never on the UI thread, and a newer keystroke
cancels an older check.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.widgets import Static
from textual.worker import get_current_worker

from models.prior.exact import Coherence, TooManyStatements, check_coherence
from models.prior.exact import Credence as ExactCredence
from navigator.display import describe_error, visible


class CoherenceCheck(Static):
    @work(thread=True, exclusive=True, group="coherence")
    def check(self, credences: list[ExactCredence]) -> None:
        try:
            result: Coherence | str = check_coherence(credences)
        except TooManyStatements as error:
            result = f"exact check skipped: {describe_error(error)}"
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show, result, len(credences))

    def show(self, result: Coherence | str, count: int) -> None:
        if isinstance(result, str):
            self.update(Text(result, style="dim"))
        elif result.coherent:
            self.update(Text(f"exact check over your {count} credences: coherent", style="green"))
        else:
            text = Text(f"exact check over your {count} credences: incoherent. These cannot all hold:", style="red")
            for credence in result.conflict:
                text.append(visible(f"\n• {credence.label} = {credence.p:g}"), style="red")
            suggestion = result.nearest[-1].p if result.nearest else None
            if suggestion is not None:
                text.append(f"\nnearest coherent value for this credence: {suggestion:.3g}", style="yellow")
            self.update(text)
