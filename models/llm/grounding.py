"""What a generated statement rests on, and whether it says more than that: evidence, checked by rule.

A grounded statement restates part of a node. Its *evidence* is the span of the node's text it
restates (`parts` cuts a node's text into such spans) plus the ancestor titles it names (the
subject "Chad" comes from the breadcrumbs). `unsupported` lists what a statement says that its
evidence does not: a figure that is not there, a capitalised name that is not there, a unit that
differs from the one the evidence gives the same figure, a negation the evidence does not make.
Unpack regenerates or drops a statement with anything unsupported; the model's credence uses the
same list (`support`), so a statement that changes a number or a country is believed less.

The rules are deliberately plain — tokens compared after folding case and thousands separators —
so a person can check any verdict by reading the two texts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kb.tree import PATH_SEPARATOR

_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_NEGATIONS = frozenset({"not", "no", "never", "none", "neither", "nor", "without", "cannot"})
# Words that start sentences or stand capitalised without naming anything in particular.
_COMMON = frozenset(
    """
    the a an in on at along its it this that these those there their they he she his her for from with
    of by about and or but as to is are was were has have had be been its also both each every all some
    most many more less than however while when where which who what whose how why yes true false note
    notes into onto over under within also only very such other same about after before between during
    per includes include including given gives make makes made said says like
    """.split()  # noqa: SIM905
)
MIN_PART_CHARS = 10  # a clause shorter than this is kept with its neighbour
NEW_WORDS_ALLOWED = 1  # content words a restatement may add ("became", "long"): more is saying something else
_STEM = 5  # words that share their first letters count as one ("independence", "independent")


def figures(text: str) -> list[str]:
    """The numbers a text states, thousands separators removed ("1,284,000" → "1284000")."""
    return [match.replace(",", "") for match in _NUMBER.findall(text)]


_UNIT_MODIFIERS = frozenset({"sq", "square", "cubic", "metric", "thousand", "million", "billion", "trillion"})


def _unit_after(text: str, end: int) -> str | None:
    """The unit right after a figure ("km", "sq km", "million kW", "%"), if one follows."""
    rest = text[end : end + 40]
    if rest.startswith("%"):
        return "%"
    words = re.match(r"\s+([^\W\d_][\w/]*)(?:\s+([^\W\d_][\w/]*))?", rest)
    if not words:
        return None
    first = words.group(1).lower()
    if first in _UNIT_MODIFIERS and words.group(2):
        return f"{first} {words.group(2).lower()}"
    return first


def _units(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for match in _NUMBER.finditer(text):
        unit = _unit_after(text, match.end())
        if unit is not None:
            found.setdefault(match.group().replace(",", ""), set()).add(unit)
    return found


def names(text: str) -> list[str]:
    """Capitalised words that are not common words at the start of a sentence: the names a text uses."""
    found = []
    for match in _WORD.finditer(text):
        word = match.group().strip("'’-")
        if len(word) < 2 or not word[0].isupper():
            continue
        bare = re.sub(r"['’]s$", "", word)
        if bare.lower() in _COMMON:
            continue
        found.append(bare)
    return found


def _pieces(word: str) -> set[str]:
    """A word, lower-cased, whole and cut at hyphens and apostrophes ("N'Djamena" → n'djamena, n, djamena)."""
    lower = re.sub(r"['’]s$", "", word.lower())
    return {lower, *(piece for piece in re.split(r"[-'’]", lower) if piece)}


def content_words(text: str) -> list[str]:
    """Lower-case words of four letters or more that are not common words: what a sentence is about."""
    words = [re.sub(r"['’]s$", "", word.lower()) for word in _WORD.findall(text)]
    return [word for word in words if len(word) >= 4 and word not in _COMMON and word not in _NEGATIONS]


def terms(text: str) -> set[str]:
    """The figures and content words a text states: what a statement and a part must share to be about
    the same thing."""
    return set(figures(text)) | set(content_words(text))


def _known(word: str, stems: set[str], short: set[str]) -> bool:
    """A word the evidence has: the same first letters ("rain" in "rainy"), or an abbreviation ("est." for
    "estimate")."""
    return (
        word[:_STEM] in stems
        or (len(word) < _STEM and any(stem.startswith(word) for stem in stems))
        or any(word.startswith(prefix) for prefix in short)
    )


_UNIT_WORDS = {
    "square": "sq",
    "kilometres": "km",
    "kilometers": "km",
    "kilometre": "km",
    "kilometer": "km",
    "metres": "m",
    "meters": "m",
    "metre": "m",
    "meter": "m",
    "miles": "mi",
    "mile": "mi",
    "percent": "%",
    "per": "/",
}


def _unit_key(unit: str) -> str:
    return " ".join(_UNIT_WORDS.get(word, word) for word in unit.split())


def _same_unit(ours: str, theirs: str) -> bool:
    ours, theirs = _unit_key(ours), _unit_key(theirs)
    return ours == theirs or ours.startswith(theirs) or theirs.startswith(ours)


def _negated(text: str) -> bool:
    words = {word.lower() for word in _WORD.findall(text)}
    return bool(words & _NEGATIONS) or "n't" in text.lower()


def unsupported(statement: str, evidence: str) -> list[str]:
    """What `statement` says that `evidence` does not, each as a short phrase ("figure 495755", "name Sudan")."""
    have_figures = set(figures(evidence))
    have_words = {piece for word in _WORD.findall(evidence) for piece in _pieces(word)}
    have_units = _units(evidence)
    missing = [f"figure {number}" for number in figures(statement) if number not in have_figures]
    for number, units in _units(statement).items():
        stated = have_units.get(number)
        if not stated or units <= _COMMON or any(_same_unit(a, b) for a in units for b in stated):
            continue
        missing.append(f"unit {'/'.join(sorted(units))} (the evidence: {'/'.join(sorted(stated))})")
    for name in names(statement):
        if not all(piece in have_words for piece in _pieces(name)):
            missing.append(f"name {name}")
    if _negated(statement) and not _negated(evidence):
        missing.append("a negation")
    stems = {word[:_STEM] for word in content_words(evidence)}
    short = {piece for word in _WORD.findall(evidence) for piece in _pieces(word) if 3 <= len(piece) <= 4} - _COMMON
    said = {name.lower() for name in names(statement)}
    added = [
        word
        for word in content_words(statement)
        if not _known(word, stems, short) and word not in said and _UNIT_WORDS.get(word) not in have_words
    ]
    if len(added) > NEW_WORDS_ALLOWED:
        missing.append(f"words {', '.join(dict.fromkeys(added))}")
    return list(dict.fromkeys(missing))


def support(statement: str, evidence: str) -> float:
    """+1 when the evidence covers everything the statement says, −1 for each thing it does not.

    Antisymmetric under models.llm.judge.negation: "It is false that S" gets minus S's support, so
    credences built on it give a statement and its negation probabilities that add up to one.
    """
    prefix = "It is false that "
    if statement.startswith(prefix):
        return -support(statement[len(prefix) :], evidence)
    missing = unsupported(statement, evidence)
    return -float(len(missing)) if missing else 1.0


# -- the parts of a node a grounded statement restates ------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A span of a node's text: which field of the node (title or body), where, and what it says."""

    field: str
    start: int
    end: int
    text: str


def _split_top_level(text: str, separators: str) -> list[tuple[int, int]]:
    """(start, end) of the pieces of `text` between separators outside parentheses, brackets and quotes.

    "," and "." count only before white space (not in "1,284,000" or "2.5"); "(" opens a piece of
    its own when it is a separator (a parenthetical said after the main clause).
    """
    pieces, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
            continue
        if quoted:
            continue
        if char == "(" and "(" in separators and depth == 0 and index > start:
            pieces.append((start, index))
            start = index
        if char in "([":
            depth += 1
            continue
        if char in ")]":
            depth = max(0, depth - 1)
            continue
        if depth or char not in separators:
            continue
        if char in ",." and not (index + 1 == len(text) or text[index + 1].isspace()):
            continue
        pieces.append((start, index))
        start = index + 1
    pieces.append((start, len(text)))
    return pieces


def _trimmed(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans without the separators and spaces at their ends (a parenthetical keeps its parentheses)."""
    kept = []
    for start, end in spans:
        while start < end and text[start] in " \t\n,;:-–":
            start += 1
        while end > start and text[end - 1] in " \t\n,;-–":
            end -= 1
        if end > start:
            kept.append((start, end))
    return kept


def _merged_small(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Clauses too short to restate on their own ("hot", "humid") are joined until a group is long enough."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and merged[-1][1] - merged[-1][0] < MIN_PART_CHARS:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    if len(merged) > 1 and merged[-1][1] - merged[-1][0] < MIN_PART_CHARS:
        last = merged.pop()
        merged[-1] = (merged[-1][0], last[1])
    return merged


def _grouped(spans: list[tuple[int, int]], k: int) -> list[tuple[int, int]]:
    """At most k spans: neighbours are joined, the shortest pair first, so each part keeps a similar size."""
    spans = list(spans)
    while len(spans) > k:
        sizes = [spans[i + 1][1] - spans[i][0] for i in range(len(spans) - 1)]
        i = sizes.index(min(sizes))
        spans[i : i + 2] = [(spans[i][0], spans[i + 1][1])]
    return spans


# Finer cuts, tried in turn while a long text still gives fewer than two parts. The last two cut a
# single clause before a modifying phrase: first one that clearly starts a new thing said ("civil
# law system | with European influences"), then before a preposition or "and" ("Council of
# Ministers appointed | by the prime minister"). A phrase keeps its first word, so a quoted part
# still reads as what it is.
_PHRASE, _PREPOSITION = "\x1e", "\x1f"
_CUTS = (";.\n", ";.\n,–", ";.\n,–(", ";.\n,–(" + _PHRASE, ";.\n,–(" + _PHRASE + _PREPOSITION)
_PHRASE_STARTS = re.compile(
    r" (?=(?:with|without|based on|including|excluding|except|between|among|due to|because|which|whereas|"
    r"while|who|as well as|such as) )"
)
_PREPOSITION_STARTS = re.compile(r" (?=(?:by|for|on|in|at|and) )")
LONG_TEXT = 40


def parts(title: str, body: str, k: int) -> list[Part]:
    """Up to k spans of a node's text to restate, in reading order.

    The text is the body (the title when there is none). It is cut at semicolons, sentence ends and
    line breaks outside parentheses; a long text that gives one part is cut at commas and dashes,
    then before a parenthetical, then before a modifying phrase ("with …", "based on …"), then before
    a preposition or "and". Short clauses stay with a neighbour, and neighbours are joined
    until at most k remain.
    """
    field, text = ("body", body) if body.strip() else ("title", title)
    # A spaced hyphen ("balance of payments - net trade …") separates like a dash, and the space before
    # a phrase becomes a mark of its own; one character for another, so spans of `scan` are spans of `text`.
    scan = _PREPOSITION_STARTS.sub(_PREPOSITION, _PHRASE_STARTS.sub(_PHRASE, text.replace(" - ", " – ")))
    spans: list[tuple[int, int]] = []
    for cut in _CUTS:
        spans = _merged_small(_trimmed(text, _split_top_level(scan, cut)))
        if len(spans) >= 2 or len(text.strip()) < LONG_TEXT:
            break
    return [Part(field, start, end, text[start:end]) for start, end in _grouped(spans, max(1, k))]


def evidence_text(context: str, title: str, chosen: Sequence[Part]) -> str:
    """What a statement may draw on: the breadcrumbs, the node's title, and the parts it restates."""
    return PATH_SEPARATOR.join(filter(None, [context, title])) + ": " + " ".join(part.text for part in chosen)
