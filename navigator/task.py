"""The labeler's draft answer for the current item: plain state, no widgets.

Kept apart from the screen so the arithmetic (quick picks, nudges that keep
the sum at exactly 1) is tested with plain values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kb.items import Item

CONFIDENT = 0.9


@dataclass
class Draft:
    item: Item
    probs: list[float]
    selected: int = 0
    cited: list[str] = field(default_factory=list)
    trail: list[str] = field(default_factory=list)
    note: str = ""
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def fresh(cls, item: Item) -> Draft:
        count = len(item.options)
        return cls(item, [1.0 / count] * count)

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.item.options, self.probs, strict=True))

    def pick(self, index: int, confidence: float = CONFIDENT) -> None:
        """A confident answer in one key: `confidence` on one option, the rest shared."""
        if not 0 <= index < len(self.probs):
            return
        rest = round((1.0 - confidence) / (len(self.probs) - 1), 9)
        self.probs = [confidence if i == index else rest for i in range(len(self.probs))]
        self.probs[index] = 1.0 - rest * (len(self.probs) - 1)
        self.selected = index

    def select(self, step: int) -> None:
        self.selected = (self.selected + step) % len(self.probs)

    def nudge(self, delta: float) -> None:
        """Move the selected option by `delta`; the others shrink or grow in proportion, so the sum stays 1."""
        old = self.probs[self.selected]
        new = min(1.0, max(0.0, round(old + delta, 6)))
        others = [i for i in range(len(self.probs)) if i != self.selected]
        old_rest, new_rest = 1.0 - old, 1.0 - new
        for i in others:
            self.probs[i] = self.probs[i] * new_rest / old_rest if old_rest > 1e-12 else new_rest / len(others)
        self.probs[self.selected] = new
        largest = max(range(len(self.probs)), key=self.probs.__getitem__)
        self.probs[largest] += 1.0 - sum(self.probs)  # rounding drift goes where it cannot cross 0 or 1
        self.probs = [min(1.0, max(0.0, p)) for p in self.probs]

    def visit(self, uid: str) -> None:
        if not self.trail or self.trail[-1] != uid:
            self.trail.append(uid)

    def toggle_citation(self, uid: str) -> bool:
        if uid in self.cited:
            self.cited.remove(uid)
            return False
        self.cited.append(uid)
        return True

    @property
    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 3)
