"""How the trainer reads Z: the reading plan learned from citations, the subject found by name,
fields walked with digits masked, empty nodes read through their children, hits keyed by field."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.items import Item
from kb.libraries import Library, create_library
from kb.search import SearchIndex
from kb.tree import node_by_uid
from models.imitation.reading_plan import Field, learn_plan, masked, name_key, names_subject, walk
from models.imitation.retrieval import Retriever, clear_cache

PLACES = {
    "sm": ("Samoa", "Oceania", "201,000 (2024 est.)", "$6,200 (2023 est.)", "$6,000 (2022 est.)"),
    "aq": ("American Samoa", "Oceania", "44,000 (2024 est.)", "$15,700 (2022 est.)", "$15,100 (2021 est.)"),
    "ci": ("Chile", "South America", "19,091,343 (2025 est.)", "$30,200 (2024 est.)", "$29,600 (2023 est.)"),
}


@pytest.fixture
def atlas(tmp_path: Path) -> tuple[sqlite3.Connection, Path, Library]:
    """region → place → section → field → yearly sub-fields, like the Factbook."""
    workspace = tmp_path / "w.db"
    conn = connect(workspace, create=True)
    library = create_library(conn, "atlas")
    nodes: list[StagedNode] = []
    regions: dict[str, str] = {}
    for code, (name, region, people, gdp_new, gdp_old) in PLACES.items():
        if region not in regions:
            regions[region] = f"a:{region.lower().replace(' ', '-')}"
            nodes.append(StagedNode(len(nodes), regions[region], None, "region", region, ""))
        place = f"a:{code}"
        nodes += [
            StagedNode(len(nodes), place, regions[region], "country", name, ""),
            StagedNode(len(nodes), f"{place}/people", place, "section", "People", ""),
            StagedNode(len(nodes), f"{place}/people/population", f"{place}/people", "field", "Population", ""),
            StagedNode(
                len(nodes), f"{place}/people/population/total", f"{place}/people/population", "x", "total", people
            ),
            StagedNode(len(nodes), f"{place}/economy", place, "section", "Economy", "Tourism matters a great deal."),
            StagedNode(len(nodes), f"{place}/economy/gdp", f"{place}/economy", "field", "Real GDP per capita", ""),
            StagedNode(len(nodes), f"{place}/economy/gdp/new", f"{place}/economy/gdp", "x", "Real GDP 2024", gdp_new),
            StagedNode(len(nodes), f"{place}/economy/gdp/old", f"{place}/economy/gdp", "x", "Real GDP 2023", gdp_old),
        ]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    SearchIndex(conn, workspace, library).rebuild()
    return conn, workspace, library


def item(uid: str, x: str, task: str) -> Item:
    return Item(0, uid, task, x, ("low", "high"), "validation")


def test_names_and_masked_titles() -> None:
    assert name_key("Cocos (Keeling) Islands") == "cocos keeling islands"
    assert names_subject("Samoa", "Does most of American Samoa lie south?")
    assert not names_subject("Niger", "What is the population of Nigeria?")
    assert masked("Real GDP per capita 2024") == masked("real  GDP per capita 2023") == "real gdp per capita #"


def test_the_plan_is_learned_from_citations_relative_to_the_subject_the_question_names(atlas) -> None:
    conn, _, library = atlas
    x = "Is the GDP of Chile low?"
    cited = [
        ("gdp", x, ["a:ci/economy/gdp/new"]),
        ("gdp", x, ["a:ci/economy/gdp/new"]),  # the same item and node twice count once
        ("gdp", "Is the GDP of Samoa low?", ["a:sm/economy/gdp/new"]),
        ("gdp", "Is the GDP of Samoa low?", ["a:sm/people/population/total"]),
        ("gdp", "A question naming nothing?", ["a:sm/economy/gdp/new"]),  # no subject: ignored
    ]
    plan = learn_plan(conn, library.id, cited)
    assert plan == {
        "gdp": (
            Field(2, ("economy", "real gdp per capita", "real gdp #"), 2),
            Field(2, ("people", "population", "total"), 1),
        )
    }
    chile = node_by_uid(conn, "a:ci", library.id)
    assert chile is not None
    found = walk(conn, chile, plan["gdp"][0].steps)
    assert found is not None and found.uid == "a:ci/economy/gdp/new"  # the first yearly figure, digits masked
    assert walk(conn, chile, ("economy", "no such field")) is None


def test_a_view_reads_the_plan_under_the_longest_name_and_keys_hits_by_field(atlas) -> None:
    conn, workspace, library = atlas
    clear_cache()
    plan = {"gdp": (Field(2, ("economy", "real gdp per capita"), 3),)}
    retriever = Retriever(conn, workspace, library, k=5, plan=plan)
    try:
        view = retriever.view(item("q1", "Is the real GDP per capita of American Samoa low?", "gdp"))
        unplanned = retriever.view(item("q2", "How much does tourism matter to American Samoa?", "tourism"))
    finally:
        retriever.close()
    cited = [node for node in view.nodes if node.key.startswith("cited:")]
    assert [node.key for node in cited] == ["cited:economy › real gdp per capita"]
    # American Samoa, not Samoa; the field has no text of its own, so its children are what is read
    assert cited[0].path.endswith("American Samoa › Economy › Real GDP per capita")
    assert cited[0].text.splitlines()[0] == "Real GDP 2024: $15,700 (2022 est.)"
    hits = [node for node in view.nodes if node.key.startswith("hit:")]
    assert 0 < len(hits) <= 5 and all(node.key.startswith("hit:") for node in hits)
    assert not any(node.key.startswith("cited:") for node in unplanned.nodes)
    keys = {node.path: node.key for node in unplanned.nodes if node.title == "Economy"}
    # keyed by field relative to the subject the question names; Samoa's economy is elsewhere
    assert keys["Oceania › American Samoa › Economy"] == "hit:economy"
    assert keys.get("Oceania › Samoa › Economy", "hit:elsewhere") == "hit:elsewhere"
    assert view.text().startswith("Is the real GDP per capita of American Samoa low?\n")
