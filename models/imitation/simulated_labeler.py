"""A simulated labeler for the demo: answers the Factbook questions by reading the library.

It is a stand-in for a person, so it works the way the app lets a person work: it reads
the question, searches the library for the country, opens the country's node, walks
into the section and field that answer the question (Coastline, Geographic
coordinates, Population › total, Real GDP per capita), reads the text, and records a
prediction with the nodes it visited (trail) and the node it relied on (cited), through
`LabelStore`, the app's own write path. Every label it writes has source 'simulated'
and a labeler name starting with ``simulated:``, so it can never pass for a human.

Noise makes it imperfect on purpose: with probability `noise` an answer is either wrong
(a random other option, stated confidently) or hesitant (correct, with less confidence),
half and half. The draw depends only on (seed, item), so results do not depend on the
order of items or on other simulated labelers writing to the same workspace at once.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kb.demo import full_member
from kb.items import Item
from kb.labels import SIMULATED, LabelStore
from kb.libraries import Library
from kb.search import SearchError, SearchIndex
from kb.tree import PATH_SEPARATOR, Node, children, node_by_id

SIMULATED_PREFIX = "simulated:"
DEFAULT_CONFIDENCE = 0.95
HESITANT_CONFIDENCE = 0.6

_QUESTIONS = {
    "landlocked": re.compile(r"^Is (?P<name>.+) landlocked\?$"),
    "hemisphere": re.compile(r"^Does most of (?P<name>.+) lie in the northern or the southern hemisphere\?$"),
    "population": re.compile(r"^What is the population of (?P<name>.+)\?$"),
    "gdp_tercile": re.compile(
        r"^Is the real GDP per capita of (?P<name>.+) low \(under \$(?P<low>[\d,]+)\), middle, "
        r"or high \(\$(?P<high>[\d,]+) and over\)\?$"
    ),
    "membership": re.compile(r"^Is (?P<name>.+) a full member of (?:.+ \((?P<abbreviation>[^)]+)\)|(?P<bare>\S+))\?$"),
}
# Which section and field a person opens for each question, and the sub-field if any.
_WHERE = {
    "landlocked": ("Geography", "Coastline", None),
    "hemisphere": ("Geography", "Geographic coordinates", None),
    "population": ("People and Society", "Population", "total"),
    "gdp_tercile": ("Economy", "Real GDP per capita", "Real GDP per capita"),
    "membership": ("Government", "International organization participation", None),
}
_NUMBER = re.compile(r"\$?(\d[\d,]*(?:\.\d+)?)")
_LATITUDE = re.compile(r"\d+\s+\d+\s+([NS])\b")
_POPULATION_LIMITS = (1e6, 1e7, 1e8)


def simulated_name(name: str) -> str:
    """The stored labeler name: always marked as simulated."""
    name = name.strip()
    return name if name.startswith(SIMULATED_PREFIX) else SIMULATED_PREFIX + name


@dataclass(frozen=True)
class Reading:
    """What the labeler found for one item before any noise: the answer (None if the
    library did not say), the nodes visited and the node that gave the answer."""

    answer: str | None
    trail: tuple[str, ...]
    cited: tuple[str, ...]
    note: str


@dataclass
class SimulationReport:
    labeler: str
    labelled: int = 0
    skipped: int = 0
    not_found: int = 0
    noisy: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


class SimulatedLabeler:
    def __init__(
        self,
        conn: sqlite3.Connection,
        workspace: Path,
        library: Library,
        name: str,
        *,
        noise: float = 0.1,
        seed: int = 0,
        confidence: float = DEFAULT_CONFIDENCE,
    ) -> None:
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must be between 0 and 1, got {noise}")
        if not 0.5 < confidence <= 1.0:
            raise ValueError(f"confidence must be in (0.5, 1], got {confidence}")
        self.conn = conn
        self.library = library
        self.name = simulated_name(name)
        self.noise = noise
        self.seed = seed
        self.confidence = confidence
        self.search = SearchIndex(conn, workspace, library)
        self.store = LabelStore(conn, self.name, source=SIMULATED)

    # -- reading the library like a person ----------------------------------------

    def find_country(self, name: str) -> tuple[Node | None, list[str]]:
        """Search for the name, and open the hit that is the country itself."""
        trail: list[str] = []
        phrase = name.replace('"', " ")
        for query in (f'title:"{phrase}"', phrase):
            try:
                hits = self.search.search(query, limit=20).hits
            except SearchError:
                continue
            for hit in hits:
                if hit.title.casefold() == name.casefold():
                    node = node_by_id(self.conn, hit.node_id)
                    if node is not None and node.kind == "country":
                        trail.append(node.uid)
                        return node, trail
        return None, trail

    def _child(self, parent: Node, title: str, *, prefix: bool = False) -> Node | None:
        after: int | None = None
        while True:
            page = children(self.conn, parent.id, after_position=after)
            for node in page:
                if node.title == title or (prefix and node.title.startswith(title) and _NUMBER.search(node.body)):
                    return node
            if len(page) == 0:
                return None
            after = page[-1].position

    def read(self, item: Item) -> Reading:
        pattern = _QUESTIONS.get(item.task)
        match = pattern.match(item.x) if pattern else None
        if match is None:
            return Reading(None, (), (), f"the simulated labeler cannot read task {item.task!r}")
        country, trail = self.find_country(match["name"])
        if country is None:
            return Reading(None, tuple(trail), (), f"no country named {match['name']!r} found by search")
        section_title, field_title, sub_title = _WHERE[item.task]
        node: Node | None = country
        for title, prefix in ((section_title, False), (field_title, False), (sub_title, item.task == "gdp_tercile")):
            if title is None or node is None:
                break
            found = self._child(node, title, prefix=prefix)
            if found is None:
                # Some fields hold their text directly instead of in a sub-field.
                if title == sub_title and node.body:
                    break
                return Reading(None, tuple(trail), (), f"{title!r} not found under {node.title!r}")
            node = found
            trail.append(node.uid)
        assert node is not None
        answer = _interpret(item, node.body, match)
        note = "read " + PATH_SEPARATOR.join(t for t in (section_title, field_title, sub_title) if t)
        return Reading(answer, tuple(trail), (node.uid,) if answer else (), note)

    # -- answering ----------------------------------------------------------------

    def answer(self, item: Item, reading: Reading) -> tuple[dict[str, float], bool]:
        """(probabilities, whether noise changed the answer)."""
        options = item.options
        if reading.answer is None:
            return {option: 1.0 / len(options) for option in options}, False
        rng = random.Random(f"{self.seed}:{item.uid}")
        chosen, confidence, noisy = reading.answer, self.confidence, False
        if rng.random() < self.noise:
            noisy = True
            if rng.random() < 0.5:
                chosen = rng.choice([option for option in options if option != reading.answer])
            else:
                confidence = HESITANT_CONFIDENCE
        rest = (1.0 - confidence) / (len(options) - 1)
        probs = {option: (confidence if option == chosen else rest) for option in options}
        total = sum(probs.values())
        return {option: p / total for option, p in probs.items()}, noisy

    def label(self, items: Sequence[Item], *, relabel: bool = False) -> SimulationReport:
        """Label every item through LabelStore (one committed label each); items this
        labeler already labelled in the library are skipped unless `relabel`."""
        report = SimulationReport(self.name)
        started = time.perf_counter()
        done = set() if relabel else set(self.store.current_predictions(self.library.id))
        for item in items:
            if item.id in done:
                report.skipped += 1
                continue
            began = time.perf_counter()
            reading = self.read(item)
            probs, noisy = self.answer(item, reading)
            if reading.answer is None:
                report.not_found += 1
                report.problems.append(f"{item.uid}: {reading.note}")
            report.noisy += noisy
            note = f"simulated labeler (noise {self.noise}, seed {self.seed}): {reading.note}"
            self.store.record_prediction(
                item,
                self.library.id,
                probs,
                cited=reading.cited,
                trail=reading.trail,
                seconds=time.perf_counter() - began,
                note=note,
            )
            report.labelled += 1
        report.seconds = time.perf_counter() - started
        self.search.close()
        return report


def _interpret(item: Item, body: str, match: re.Match[str]) -> str | None:
    """Read the field's text the way the question needs it."""
    if item.task == "landlocked":
        return "yes" if "landlocked" in body.lower() else "no"
    if item.task == "hemisphere":
        latitude = _LATITUDE.search(body)
        return None if latitude is None else "northern" if latitude[1] == "N" else "southern"
    if item.task == "membership":
        return "yes" if full_member(body, match["abbreviation"] or match["bare"]) else "no"
    number = _NUMBER.search(body)
    if number is None:
        return None
    value = float(number[1].replace(",", ""))
    if item.task == "population":
        for limit, option in zip(_POPULATION_LIMITS, item.options, strict=False):
            if value < limit:
                return option
        return item.options[-1]
    low, high = float(match["low"].replace(",", "")), float(match["high"].replace(",", ""))
    return "low" if value < low else "high" if value >= high else "middle"
