"""How a typed query becomes clauses; the shortcut for plain words equals whoosh's parse."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kb.search.query import _parser_for, plain_words, plan
from kb.search.text import schema

SCHEMA = schema()
WORDS = st.sampled_from(
    ["Is", "the", "population", "of", "Chile?", "100,000", "sq", "km", "U.S.", "landlocked,", "co", "naïve", "é",
     "and", "or", "not", "What's", "$5,000", "(under", "over)", "x", "2024", "São", "Paulo!", "e.g.", "…", "—"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(WORDS, st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)), max_size=12)
)
def test_plain_words_parse_as_whoosh_parses_them(words: list[str]) -> None:
    text = " ".join(words)
    shortcut = plain_words(text)
    if shortcut is None:
        return  # the text has query syntax: whoosh's parser reads it
    assert repr(shortcut) == repr(_parser_for(SCHEMA).parse(text, normalize=False))


def test_questions_become_one_clause_per_word_that_is_not_a_stop_word() -> None:
    found = plan("Is the total area of Peru more than 100,000 sq km?", SCHEMA)
    assert [clause.label for clause in found.clauses] == ["total", "area", "Peru", "100,000", "sq", "km"]
    assert not found.excluded and not any(clause.required for clause in found.clauses)


def test_syntax_goes_through_whoosh() -> None:
    assert plain_words('"population of chile"') is None
    assert plain_words("title:chile") is None
    assert plain_words("chile -peru") is None
    assert plain_words("chile AND peru") is None
    found = plan('+chile "urban population" -peru volc*', SCHEMA)
    assert [(clause.label, clause.required) for clause in found.clauses] == [
        ("chile", True),
        ('"urban population"', False),
        ("volc*", False),
    ]
    assert len(found.excluded) == 1
