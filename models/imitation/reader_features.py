"""Features of the reader learner: what a labeler takes from the nodes they read.

Per item, named values of two kinds (models.imitation.learners lays them out for the conditional
logit). *Item* features describe the item; the model learns a separate weight per option
for each, as multinomial regression does. *Shared* features have a value per option and
one weight for all options — the way one rule ("the figure falls in this option's range")
is learned from labels on any option.

- question words (the task's wording and its place names);
- for each node read, keyed by which field it is relative to the subject
  (models.imitation.retrieval): its first words, so "landlocked" under Coastline or "S" under
  Geographic coordinates count as what they are;
- the node's first figure (models.imitation.quantities) compared with every cut point the item
  states (≥ cut j), its band among them, its order of magnitude, and — shared — whether it
  falls in each option's range;
- for each cited field, whether its whole text holds one of the question's own words ("Is
  Jamaica a full member of Petrocaribe?" and a participation list naming Petrocaribe;
  "landlocked" in a Coastline): one rule, learned once, for every organisation or term asked about.

Words are weighted so each source (the question, each cited field, the hits under the
subject, the hits elsewhere) has unit length: dozens of words from incidental search hits
would otherwise outweigh the one figure the labeler read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from models.imitation.quantities import band, cut_points, first_number, option_ranges
from models.imitation.retrieval import View

WORDS_PER_NODE = 40
_WORD = re.compile(r"[^\W\d_]+")
ELSEWHERE = "hit:elsewhere"
# Words of a question too common to be what it asks about.
_ASKING = frozenset(
    "what which does most lie there with from that this have full member members part".split()  # noqa: SIM905
)


def _group(key: str) -> str:
    if key.startswith("cited:") or key == ELSEWHERE:
        return key
    return "hit:subject"


@dataclass(frozen=True)
class ReaderFeatures:
    item: dict[str, float]
    shared: tuple[dict[str, float], ...]  # one per option


def _holds(key: str, text: str, terms: set[str]) -> dict[str, float]:
    """Whether a cited field holds a word the question asks about, and the qualifier a parenthesis puts
    right after it ("Caricom (observer)"): what a reader checks before answering yes."""
    lower = text.lower()
    for term in sorted(terms):
        found = re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])\s*(?:\(\s*([^\W\d_]+))?", lower)
        if found:
            qualifier = found.group(1)
            return {f"holds:{key}": 1.0, **({f"holds:{key}:then={qualifier}": 1.0} if qualifier else {})}
    return {}


@lru_cache(maxsize=50_000)
def reader_features(view: View) -> ReaderFeatures:
    """The item's features (cached: cross-validation asks for the same views many times;
    callers must not change the dicts)."""
    k = len(view.options)
    asked = _WORD.findall(view.x.lower())
    words: dict[str, dict[str, float]] = {"question": {f"q:{w}": 1.0 for w in asked}}
    terms = {w for w in asked if len(w) >= 4 and w not in _ASKING}
    item: dict[str, float] = {"bias": 1.0}
    shared: list[dict[str, float]] = [{} for _ in range(k)]
    cuts = cut_points(view.x, view.options)
    ranges = option_ranges(view.x, view.options)
    for node in view.nodes:
        if node.key.startswith("cited:"):
            item.update(_holds(node.key, node.text, terms))
        group = words.setdefault(_group(node.key), {})
        for word in _WORD.findall(node.text.lower())[:WORDS_PER_NODE]:
            group[f"t:{node.key}={word}"] = 1.0
        value = first_number(node.text)
        if value is None or node.key == ELSEWHERE:
            continue
        name = f"n:{node.key}"
        item[f"{name}:band={band(value, cuts)}"] = 1.0
        item[f"{name}:magnitude={math.floor(math.log10(abs(value))) if value else 'zero'}"] = 1.0
        for j, cut in enumerate(cuts):
            if value >= cut:
                item[f"{name}>=cut{j}"] = 1.0
        for j, (low, high) in enumerate(ranges or ()):
            if low <= value < high:
                shared[j][f"in:{node.key}"] = 1.0
    for group in words.values():
        norm = math.sqrt(len(group))
        item.update({name: value / norm for name, value in group.items()})
    return ReaderFeatures(item, tuple(shared))
