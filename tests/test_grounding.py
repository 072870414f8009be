"""Grounded unpacking and answers: what a statement may say is what its evidence says.

The rules (models/llm/grounding.py) on plain text, then the flow with the scripted model of the
LLM unit tests: tagged statements kept with their evidence, drops logged and asked again, parts
quoted, headings refused, answers grounded or "the node does not say", elaborations marked.
tests/test_llm_model.py runs grounded unpacking and asking with the real bundled model.
"""

from __future__ import annotations

import sqlite3

import pytest
from test_llm_unit import FakeLLM

from kb.libraries import Library
from kb.review import provenance
from kb.tree import Node, add_children, node_by_id
from models.llm.ask import NOT_SAID, ask
from models.llm.calls import recent_calls
from models.llm.grounding import parts, support, unsupported
from models.llm.unpack import UnpackFailed, stored_children, unpack
from models.llm.unpack_text import claim_key

CHAD = "Africa › Chad › Geography › Area › total: 1,284,000 sq km"


@pytest.mark.parametrize(
    ("statement", "missing"),
    [
        ("Chad's total area is 1,284,000 sq km.", []),
        ("The total area of Chad is 1,284,000 sq km.", []),
        ("Chad's total area is 1,284,001 sq km.", ["figure 1284001"]),
        ("Sudan's total area is 1,284,000 sq km.", ["name Sudan"]),
        ("Chad's total area is 1,284,000 sq mi.", ["unit sq mi (the evidence: sq km)"]),
        ("Chad's total area is not 1,284,000 sq km.", ["a negation"]),
        ("Chad's total area is 1,284,000 sq km, mostly desert and savanna.", ["words mostly, desert, savanna"]),
        ("Chad's area is about 1,284,000 square kilometres.", []),  # one new word is a restatement's allowance
    ],
)
def test_what_a_statement_says_beyond_its_evidence(statement: str, missing: list[str]) -> None:
    assert unsupported(statement, CHAD) == missing


def test_support_changes_sign_under_negation() -> None:
    assert support("Chad's total area is 1,284,000 sq km.", CHAD) == 1.0
    assert support("It is false that Chad's total area is 1,284,000 sq km.", CHAD) == -1.0
    assert support("Sudan's total area is 1,284,001 sq km.", CHAD) == -2.0
    assert support("It is false that Sudan's total area is 1,284,001 sq km.", CHAD) == 2.0


def test_a_node_is_cut_into_parts_at_its_clauses() -> None:
    climate = "tropical in south to desert in north; hot, humid; little seasonal temperature variation"
    assert [p.text for p in parts("Climate", climate, 4)] == [
        "tropical in south to desert in north",
        "hot, humid",
        "little seasonal temperature variation",
    ]
    assert [p.text for p in parts("Climate", "temperate; mild winters; rainy", 4)] == [
        "temperate; mild winters; rainy"  # clauses under ten characters stay with a neighbour
    ]
    listed = "cassava, rice, oil palm fruit, vegetables, sweet potatoes, milk, citrus fruits, groundnuts"
    assert len(parts("Agricultural products", listed, 3)) == 3  # a long list is cut at its commas
    assert [p.text for p in parts("Coastline", "4,828 km", 4)] == ["4,828 km"]  # one thing to say
    assert [p.text for p in parts("note: data in 2021 dollars", "", 4)] == ["note: data in 2021 dollars"]
    gdp = "$1.227 billion (2022 est.); 3.5% growth"
    assert [p.text for p in parts("GDP", gdp, 4)] == ["$1.227 billion (2022 est.)", "3.5% growth"]  # not "1." "227"
    for part in parts("GDP", gdp, 4):
        assert gdp[part.start : part.end] == part.text


def test_the_same_claim_in_other_words_is_one_claim() -> None:
    assert claim_key("Belgium's climate is temperate.") == claim_key("The climate of Belgium is temperate.")
    assert claim_key("Belgium's climate is temperate.") != claim_key("Belgium's climate is mild.")


@pytest.fixture
def climate(conn: sqlite3.Connection, library: Library) -> Node:
    root = node_by_id(conn, library.root_id)
    assert root is not None
    (europe,) = add_children(conn, root, [("Europe", "", "region")], origin="import")
    (belgium,) = add_children(conn, europe, [("Belgium", "", "country")], origin="import")
    body = "temperate; mild winters, cool summers; rainy, humid, cloudy"
    (node,) = add_children(conn, belgium, [("Climate", body, "field")], origin="import")
    return node


def test_grounded_statements_keep_their_evidence_and_drop_what_says_more(
    conn: sqlite3.Connection, climate: Node
) -> None:
    answer = (  # the parts: "temperate; mild winters, cool summers" and "rainy, humid, cloudy"
        "[1] Belgium's climate is temperate.\n"
        "[2] Belgium has mild winters and cool summers.\n"  # the wrong part cited: the node still says it
        "[2] Belgium has 200 rainy days in Brussels.\nEND"
    )
    llm = FakeLLM([answer])
    result = unpack(conn, llm, climate, k=3)
    titles = [kid.title for kid in result.children]
    assert titles[:2] == ["Belgium's climate is temperate.", "Belgium has mild winters and cool summers."]
    records = [provenance(conn, kid.id) for kid in result.children]
    assert [record["form"] for record in records] == ["restated", "restated", "quoted"]
    assert titles[2] == "Europe › Belgium › Climate: rainy, humid, cloudy"  # part 2, which nothing restated
    body = climate.body
    for record in records:
        spans = [span for span in record["evidence"] if span["node"] == climate.uid and span["field"] == "body"]
        assert spans and all(body[span["start"] : span["end"]] == span["text"] for span in spans)
    assert len(llm.requests) == 2 and llm.requests[1].continues and not llm.requests[0].continues  # asked again
    first, second = reversed(recent_calls(conn, limit=None, purpose="unpack"))
    assert first.checks["dropped"][0]["text"] == "Belgium has 200 rainy days in Brussels."
    assert first.checks["dropped"][0]["unsupported"] == ["figure 200", "name Brussels"]
    assert second.checks["quoted"] == [titles[2]]
    assert all(kid.kind == "statement" for kid in result.children)


def test_a_heading_has_nothing_to_restate(conn: sqlite3.Connection, library: Library) -> None:
    root = node_by_id(conn, library.root_id)
    assert root is not None
    (heading,) = add_children(conn, root, [("Area", "", "field")], origin="import")
    with pytest.raises(UnpackFailed, match="restated nothing.*nothing was written") as raised:
        unpack(conn, FakeLLM(["[1] The area is 1,284,000 sq km.\nEND"]), heading, k=3)
    assert "--elaborate" in str(raised.value)
    assert [call.outcome for call in recent_calls(conn, limit=None, purpose="unpack")] == ["failed", "failed"]


def test_elaborations_are_their_own_kind_and_name_what_the_node_lacks(conn: sqlite3.Connection, climate: Node) -> None:
    llm = FakeLLM(["- Belgium has a temperate climate.\n- Brussels gets 200 days of rain.\nEND"])
    made = unpack(conn, llm, climate, k=2, elaborate=True).children
    assert [kid.kind for kid in made] == ["elaboration", "elaboration"]
    assert provenance(conn, made[0].id)["unsupported"] == []
    assert provenance(conn, made[1].id)["unsupported"][:2] == ["figure 200", "name Brussels"]
    assert provenance(conn, made[1].id)["mode"] == "elaboration" and not stored_children(conn, climate)


def test_an_answer_rests_on_its_part_or_says_the_node_does_not_say(conn: sqlite3.Connection, climate: Node) -> None:
    answer = ask(conn, FakeLLM(["Yes, Belgium has mild winters.\n\n"]), climate, "Are winters mild?")
    record = provenance(conn, answer.id)
    assert answer.body == "Yes, Belgium has mild winters." and record["form"] == "restated"
    assert [span["text"] for span in record["evidence"]] == ["temperate; mild winters, cool summers"]
    invented = FakeLLM(["It snows 40 days a year in Liège.\n\n"])
    unknown = ask(conn, invented, climate, "How often does it snow?")
    assert unknown.body == NOT_SAID and provenance(conn, unknown.id)["form"] == "not said"
    assert len(invented.requests) == 2  # asked once more before saying so
    dropped = provenance(conn, unknown.id)["dropped"]
    assert dropped[0]["answer"] == "It snows 40 days a year in Liège."
    assert "figure 40" in dropped[0]["unsupported"]
    free = ask(conn, FakeLLM(["It snows 40 days a year in Liège.\n\n"]), climate, "Snow?", elaborate=True)
    assert (
        provenance(conn, free.id)["form"] == "elaborated" and "name Liège" in provenance(conn, free.id)["unsupported"]
    )


def test_a_spaced_hyphen_separates_like_a_dash_but_a_word_hyphen_does_not() -> None:
    text = "balance of payments - net trade and primary/secondary income in current dollars"
    assert [part.text for part in parts("note", text, 3)] == [
        "balance of payments",
        "net trade and primary/secondary income in current dollars",
    ]
    media = parts("Broadcast media", "1 state-owned TV station and a Guinea-Bissau radio network", 3)
    assert [part.text for part in media] == ["1 state-owned TV station", "and a Guinea-Bissau radio network"]


def test_a_single_long_clause_is_cut_before_a_phrase_then_before_a_preposition() -> None:
    """One clause still has two things to say; the cut keeps each phrase's first word so a quote reads."""
    assert [part.text for part in parts("Legal system", "civil law system with European influences", 3)] == [
        "civil law system",
        "with European influences",
    ]
    defined = "note: personal transfers and compensation between resident and non-resident individuals"
    assert [part.text for part in parts(defined, "", 3)] == [  # a phrase first: "and" is not cut while "between" is
        "note: personal transfers and compensation",
        "between resident and non-resident individuals",
    ]
    assert [part.text for part in parts("cabinet", "Council of Ministers appointed by the prime minister", 3)] == [
        "Council of Ministers appointed",
        "by the prime minister",
    ]
    assert len(parts("note", "note: % of labor force seeking employment", 3)) == 1  # nothing to cut before
    assert len(parts("Climate", "tropical with rain", 3)) == 1  # short: one thing to say


def test_a_part_is_said_only_when_a_statement_says_a_third_of_it() -> None:
    """Citing is not saying: a short statement sharing one word with a long part leaves it to be quoted."""
    from models.llm.unpack_grounded import _restated_parts
    from models.llm.unpack_text import Grounded

    stations = parts(
        "Broadcast media",
        "1 state-owned TV station, Televisao da Guine-Bissau (TGB) and a second station, Radio e Televisao de"
        " Portugal (RTP) Africa, operated by Portuguese public broadcaster; multiple international broadcasters"
        " are available through satellite and cable",
        3,
    )
    assert len(stations) == 2
    loose = Grounded("multiple international broadcasting is available.", (0, 1))
    assert _restated_parts(stations, [loose]) == {1}
    full = Grounded("Guinea-Bissau has 1 state-owned TV station and a second station operated by Portugal.", (0,))
    assert _restated_parts(stations, [loose, full]) == {0, 1}


def test_a_part_quoted_from_the_title_does_not_repeat_the_title() -> None:
    """A node whose text is its title (Factbook notes) is quoted under its breadcrumbs only."""
    from models.llm.unpack_grounded import _quoted
    from models.llm.unpack_text import GroundedRequest

    title = "French Guiana: tropical; hot, humid; little seasonal temperature variation"
    note = Node(1, "n1", 1, None, 0, 3, "note", title, "", "import", "none", 0, 1)
    built = GroundedRequest(None, "Europe › France › Climate", parts(title, "", 3))  # type: ignore[arg-type]
    quoted = _quoted(built, note, set(), room=3)
    assert [statement.text for statement in quoted][0] == "Europe › France › Climate: French Guiana: tropical"
    assert all(title not in statement.text for statement in quoted)


def test_a_title_cut_from_the_body_is_not_quoted_before_a_part_of_that_body() -> None:
    """Factbook notes carry the text's start, cut short, as their title: a quote names only the breadcrumbs."""
    from models.llm.unpack_grounded import _quoted
    from models.llm.unpack_text import GroundedRequest

    body = "French Guiana: tropical; hot, humid; little seasonal temperature variation; Mayotte: tropical, marine"
    note = Node(1, "n1", 1, None, 0, 3, "note", body[:40] + "…", body, "import", "none", 0, 1)
    built = GroundedRequest(None, "Europe › France › Climate", parts(note.title, body, 3))  # type: ignore[arg-type]
    quoted = [statement.text for statement in _quoted(built, note, set(), room=3)]
    assert quoted == [f"Europe › France › Climate: {part.text}" for part in built.parts]
    assert quoted[0].startswith("Europe › France › Climate: French Guiana: tropical")
    climate = "tropical in south to desert in north; hot, humid; little seasonal temperature variation"
    field = Node(2, "n2", 1, None, 0, 3, "field", "Climate", climate, "import", "none", 0, 1)
    built = GroundedRequest(None, "Europe › Chad", parts(field.title, field.body, 3))  # type: ignore[arg-type]
    assert (
        _quoted(built, field, set(), room=3)[0].text == "Europe › Chad › Climate: tropical in south to desert in north"
    )
