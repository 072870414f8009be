"""The fast indexing path must produce exactly the terms and positions whoosh's analyzer
gives: queries go through whoosh's analyzer, the index through ours."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.search.build import _SegmentBuilder
from kb.search.text import FIELDS, SPELLING, TOKEN, query_terms, whoosh_terms

WORDS = st.sampled_from(
    ["The", "of", "Algeria", "landlocked", "İstanbul", "U.S.", "1,285,216", "km", "a", "I", "co-operation",
     "naïve", "São", "e.g.", "x*y", "don't", "NOT", "running", "ran", "Population", "ΑΘΗΝΑ", "日本", "_id", "…"]
)  # fmt: skip
TEXTS = st.lists(st.one_of(WORDS, st.text(max_size=8)), max_size=25).map(" ".join)


def fast_terms(text: str) -> list[tuple[str, int]]:
    """What the segment builder stores for `text` as a body: (term, position) in order."""
    builder = _SegmentBuilder()
    builder.add(7, {name: [] for name in FIELDS} | {"body": TOKEN.findall(text), SPELLING: []})
    builder.flush()
    tokens = builder.fields["body"]
    if not tokens.terms:
        return []
    terms = np.concatenate(tokens.terms)
    positions = np.concatenate(tokens.positions)
    names = builder.coders["body"].terms
    return [(names[term], int(position)) for term, position in zip(terms.tolist(), positions.tolist(), strict=True)]


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_builder_terms_and_positions_equal_whoosh_analyzer(text: str) -> None:
    assert fast_terms(text) == whoosh_terms(text)


def test_examples_with_stop_words_and_punctuation() -> None:
    text = "Is the total area of Peru more than 100,000 sq km?"
    assert fast_terms(text) == whoosh_terms(text)
    assert [term for term, _ in fast_terms(text)] == ["total", "area", "peru", "100", "000", "sq", "km"]
    assert query_terms("What is the population of Chile?") == ["popul", "chile"]


def test_document_lengths_count_kept_tokens() -> None:
    builder = _SegmentBuilder()
    for node_id, body in enumerate(["the of and", "Algeria is landlocked", ""]):
        builder.add(node_id, {"title": [], "body": TOKEN.findall(body), "path": [], SPELLING: []})
    builder.flush()
    assert np.concatenate(builder.fields["body"].lengths).tolist() == [0, 2, 0]
