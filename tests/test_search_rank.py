"""Our ranking against whoosh's own searcher on the same index, and its invariants.

whoosh reads the same segments through ArrayMatcher, so for plain words it is an
independent implementation of the matching set and of BM25F; phrases and prefixes must
match the same nodes.
"""

from __future__ import annotations

import functools
import importlib
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from whoosh import scoring
from whoosh.qparser import MultifieldParser, OrGroup

from kb.importing import StagedNode, import_staged
from kb.libraries import Library
from kb.search import SearchIndex
from kb.search.text import FIELDS

ranking = importlib.import_module("kb.search.rank")  # the package exports a function of that name

VOCABULARY = [
    "river",
    "delta",
    "mountain",
    "coastline",
    "population",
    "border",
    "capital",
    "island",
    "desert",
    "climate",
    "harbour",
    "railway",
    "treaty",
    "export",
    "import",
    "copper",
    "tin",
    "gold",
    "forest",
    "valley",
    "lake",
    "volcano",
    "tropical",
    "arid",
    "temperate",
    "northern",
    "southern",
    "landlocked",
]


def random_library(conn: sqlite3.Connection, library: Library, seed: int, count: int) -> None:
    rng = random.Random(seed)
    nodes: list[StagedNode] = []
    for number in range(count):
        parent = None if number < 5 or rng.random() < 0.1 else nodes[rng.randrange(len(nodes))].uid
        title = " ".join(rng.choices(VOCABULARY, k=rng.randint(1, 4)))
        body = " ".join(rng.choices(VOCABULARY + ["the", "of", "is", "and"], k=rng.randint(0, 30)))
        nodes.append(StagedNode(number + 1, f"n{number}", parent, "statement", title.capitalize(), body))
    import_staged(conn, library, iter(nodes), source="random", importer="test")


@pytest.fixture
def ranked_index(conn: sqlite3.Connection, library: Library, workspace: Path) -> SearchIndex:
    random_library(conn, library, seed=11, count=600)
    search = SearchIndex(conn, workspace, library)
    search.rebuild()
    return search


def whoosh_scores(search: SearchIndex, text: str) -> dict[int, float]:
    view = search._current_view()
    searcher = view.searcher
    assert isinstance(searcher.weighting, scoring.BM25F)
    parsed = MultifieldParser(list(FIELDS), searcher.schema, group=OrGroup).parse(text)
    results = searcher.search(parsed, limit=None)
    return {int(hit["node_id"]): float(hit.score) for hit in results}


@pytest.mark.parametrize("seed", range(8))
def test_plain_words_match_and_score_as_whoosh_does(ranked_index: SearchIndex, seed: int) -> None:
    rng = random.Random(seed)
    text = " ".join(rng.sample(VOCABULARY, rng.randint(1, 5)))
    ours = ranked_index.search(text, limit=10_000)
    theirs = whoosh_scores(ranked_index, text)
    assert ours.total == len(theirs) > 0
    assert {hit.node_id for hit in ours.hits} == set(theirs)
    for hit in ours.hits:
        assert hit.score == pytest.approx(theirs[hit.node_id], rel=1e-5)


@pytest.mark.parametrize(
    "text",
    ['"river delta"', '"river delta"~3', '"the river of"', 'title:"copper tin"', "volc*", "body:lake", "path:railway"],
)
def test_phrases_prefixes_and_fields_match_the_nodes_whoosh_finds(ranked_index: SearchIndex, text: str) -> None:
    ours = ranked_index.search(text, limit=10_000)
    theirs = whoosh_scores(ranked_index, text)
    assert {hit.node_id for hit in ours.hits} == set(theirs) and theirs


@pytest.mark.parametrize("seed", range(5))
def test_more_words_matched_always_rank_first_then_score_then_node(ranked_index: SearchIndex, seed: int) -> None:
    rng = random.Random(100 + seed)
    words = rng.sample(VOCABULARY, 4)
    result = ranked_index.search(" ".join(words), limit=10_000)
    keys = [(-hit.coverage, -hit.score, hit.node_id) for hit in result.hits]
    assert keys == sorted(keys)
    assert all(set(hit.matched) <= set(result.words) for hit in result.hits)
    top = result.hits[0]
    assert top.coverage == max(hit.coverage for hit in result.hits)


def test_the_first_query_and_the_cached_ones_score_to_the_same_bit(ranked_index: SearchIndex) -> None:
    """A view's first query computes the term-frequency part for its matches only; from the second
    on, the part for a term found once is kept for every document. Both give the same floats."""
    text = "river delta river mountain copper"
    first = ranked_index.search(text, limit=10_000)
    view = ranked_index._current_view()
    assert view._single == {}
    again = ranked_index.search(text, limit=10_000)
    assert set(view._single) == {"title", "body", "path"}
    assert [(hit.node_id, hit.score) for hit in again.hits] == [(hit.node_id, hit.score) for hit in first.hits]
    assert first.total == again.total > 0


def test_arrays_kept_between_queries_come_back_zeroed_and_change_no_answer(
    ranked_index: SearchIndex, conn: sqlite3.Connection, library: Library, workspace: Path
) -> None:
    """A view keeps its document-sized arrays from query to query; each query must give them back as
    it found them, or the next query's counts and scores would carry the last one's."""
    queries = ["river delta", "+river -delta mountain", '"river delta" copper', "volc* lake", "tin", "gold -gold"]
    for text in queries * 2:
        ranked_index.search(text, limit=50)
    kept = [array for arrays in ranked_index._current_view().scratch._free.values() for array in arrays]
    assert kept and not any(array.any() for array in kept)
    for text in queries:
        fresh = SearchIndex(conn, workspace, library)  # a new view: nothing kept
        assert [(hit.node_id, hit.score) for hit in ranked_index.search(text, limit=50).hits] == [
            (hit.node_id, hit.score) for hit in fresh.search(text, limit=50).hits
        ]
        fresh.close()


def test_a_page_is_the_head_of_the_complete_ranking(ranked_index: SearchIndex) -> None:
    everything = ranked_index.search("river mountain treaty copper", limit=10_000).hits
    for limit in (1, 5, 20):
        page = ranked_index.search("river mountain treaty copper", limit=limit).hits
        assert [hit.node_id for hit in page] == [hit.node_id for hit in everything[:limit]]


def test_excluded_and_required_words(ranked_index: SearchIndex) -> None:
    with_river = {hit.node_id for hit in ranked_index.search("river", limit=10_000).hits}
    without = ranked_index.search("delta -river", limit=10_000)
    assert without.hits and not ({hit.node_id for hit in without.hits} & with_river)
    required = ranked_index.search("+river delta", limit=10_000)
    assert {hit.node_id for hit in required.hits} <= with_river


QUERIES = [
    "river delta",
    "the of river",
    "+river -delta mountain",
    '"river delta" copper',
    "volc* lake the",
    "tin^3 gold",
    "title:copper body:tin",
    "river delta mountain coastline population border capital island",
]


def pages(search: SearchIndex, limit: int = 10_000) -> list[tuple[int, list[tuple[int, float, tuple[str, ...]]]]]:
    found = []
    for text in QUERIES:
        result = search.search(text, limit=limit)
        found.append((result.total, [(hit.node_id, hit.score, tuple(hit.matched)) for hit in result.hits]))
    return found


def test_documents_found_by_search_or_by_table_score_the_same(
    ranked_index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's documents are found in a posting list by binary search when they are few, and
    through a table of the list when they are many; both find the same postings."""
    monkeypatch.setattr(ranking, "TABLE_SHARE", 0)  # always searched
    searched = pages(ranked_index)
    monkeypatch.setattr(ranking, "TABLE_SHARE", 10**9)  # always through the table
    assert pages(ranked_index) == searched
    assert all(total for total, _ in searched[:2])


def test_postings_read_in_place_or_copied_rank_the_same(
    ranked_index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    mapped = pages(ranked_index, limit=30)
    assert any(found is not None for found in ranked_index._current_view()._maps.values())
    ranked_index.close()
    monkeypatch.setattr(ranking, "map_file", lambda dbfile: None)  # as for storage that is not a file
    assert pages(ranked_index, limit=30) == mapped


def test_a_view_keeps_a_bounded_number_of_word_sets(ranked_index: SearchIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bitmaps of common words are kept for the next query, the oldest making room, and keeping
    them changes no answer."""
    monkeypatch.setattr(ranking, "DENSE_SHARE", 10**9)  # every word counts as common here
    first = pages(ranked_index)
    view = ranked_index._current_view()
    assert len(view._sets) > 3
    view._kept_sets = 3
    for text in VOCABULARY:
        ranked_index.search(text)
    assert len(view._sets) == 3
    assert pages(ranked_index) == first


def test_large_tiers_scored_block_by_block_give_the_same_pages(
    ranked_index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large tier is scored a batch of blocks at a time, best bound first, and a block that
    cannot beat the page's last entry is skipped. Here every tier counts as large, a block is 64
    documents and the first batch is a block: pages must equal those of scoring every document,
    ties broken by node id, and some blocks must have been skipped, or the test shows nothing."""
    rng = random.Random(5)
    queries = [*QUERIES, "tin", "river", "the", "gold tin", '"river delta"', "copper OR tin^2"]
    queries += [" ".join(rng.sample(VOCABULARY, rng.randint(1, 3))) for _ in range(20)]

    def every_page() -> list[list[tuple[int, float]]]:
        return [
            [(hit.node_id, hit.score) for hit in ranked_index.search(text, limit=limit).hits]
            for text in queries
            for limit in (1, 3, 10, 40)
        ]

    monkeypatch.setattr(ranking, "PRUNED_FROM", 10**9)
    whole = every_page()
    ranked_index.close()
    monkeypatch.setattr(ranking, "PRUNED_FROM", 0)
    monkeypatch.setattr(ranking, "BLOCK_DOCS", 64)
    monkeypatch.setattr(ranking, "FIRST_BATCH", 1)
    sizes: list[int] = []
    read: list[int] = []
    scored: list[int] = []
    tier_best, docs_in_blocks, scores = ranking._tier_best, ranking._docs_in_blocks, ranking._scores

    def counted_tier(view: Any, clauses: Any, sets: Any, tier: Any, wanted: int) -> Any:
        sizes.append(ranking.docsets.size(tier))
        monkeypatch.setattr(ranking, "_scores", counted_scores)
        try:
            return tier_best(view, clauses, sets, tier, wanted)
        finally:
            monkeypatch.setattr(ranking, "_scores", scores)

    def counted_blocks(tier: Any, blocks: Any) -> Any:
        found = docs_in_blocks(tier, blocks)
        read.append(len(found))
        return found

    def counted_scores(view: Any, clauses: Any, docs: Any) -> Any:
        scored.append(len(docs))
        return scores(view, clauses, docs)

    monkeypatch.setattr(ranking, "_tier_best", counted_tier)
    monkeypatch.setattr(ranking, "_docs_in_blocks", counted_blocks)
    assert every_page() == whole
    assert sizes and sum(scored) < sum(read) < 0.8 * sum(sizes), (sum(scored), sum(read), sum(sizes))


def test_block_bounds_hold_every_score_of_their_block(
    ranked_index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clause's bound in a block is its best score there, to the bit: no document scores above
    it, and some document reaches it."""
    monkeypatch.setattr(ranking, "BLOCK_DOCS", 64)
    for text in ("river", "tin gold", "the"):
        ranked_index.search(text)  # the second query on a view scores through the kept tables
    view = ranked_index._current_view()
    evaluator = ranking.Evaluator(view)
    for word in ("river", "tin", "copper"):
        pieces = evaluator.pieces(ranking.query.Or([ranking.query.Term(field, word) for field in FIELDS]))
        members = view.set_of(pieces)
        bounds = view.clause_bounds(pieces, members)
        docs = ranking.docsets.docs_in(members)
        scores = ranking._scores(view, [pieces], docs)
        best = np.zeros(view.blocks())
        np.maximum.at(best, docs // 64, scores)
        assert np.array_equal(best, bounds.whole) and bounds.whole.any()
        assert len(bounds.parts) == len(pieces) > 1
        for piece, part in zip(pieces, bounds.parts, strict=True):
            at, piece_scores = ranking._piece_scores(view, piece, docs, {})
            best = np.zeros(view.blocks())
            np.maximum.at(best, docs[at] // 64, piece_scores)
            assert np.array_equal(best, part)


def test_a_documents_bound_holds_its_score_and_is_often_below_its_blocks(
    ranked_index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document's bound adds the block's best of only the pieces it holds: never below its
    score, to the bit, never above its block's bound, and below it for many documents, or it
    would prune nothing the blocks do not."""
    monkeypatch.setattr(ranking, "BLOCK_DOCS", 64)
    for text in ("river", "tin gold", "the"):
        ranked_index.search(text)
    view = ranked_index._current_view()
    evaluator = ranking.Evaluator(view)
    for words in (("tin", "gold"), ("river", "the", "copper"), ("delta",)):
        clauses = [
            evaluator.pieces(ranking.query.Or([ranking.query.Term(field, word) for field in FIELDS])) for word in words
        ]
        members = [view.set_of(pieces) for pieces in clauses]
        bounds = [view.clause_bounds(pieces, found) for pieces, found in zip(clauses, members, strict=True)]
        docs = ranking.docsets.docs_in(functools.reduce(np.bitwise_or, members))
        scores = ranking._scores(view, clauses, docs)
        found = ranking._doc_bounds(docs, bounds, [[view.piece_set(piece) for piece in pieces] for pieces in clauses])
        blocks = np.zeros(view.blocks())
        for clause in bounds:
            blocks += clause.whole
        assert (found >= scores).all() and (found <= blocks[docs // 64]).all()
        assert (found < blocks[docs // 64]).mean() > 0.5, words


def test_a_block_that_only_ties_the_page_is_scored_when_it_holds_smaller_node_ids(
    conn: sqlite3.Connection, library: Library, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 identical nodes and one that scores higher, in the fourth block: that block is scored
    first, and the page's second entry is then a tie, which the first node wins on its id. The
    blocks before it have only ties to offer, but smaller node ids, so they must be scored too."""
    nodes = [
        StagedNode(n + 1, f"n{n}", None, "statement", "Tin tin" if n == 250 else "Tin", "copper gold")
        for n in range(300)
    ]
    import_staged(conn, library, iter(nodes), source="ties", importer="test")
    search = SearchIndex(conn, workspace, library)
    search.rebuild()
    monkeypatch.setattr(ranking, "BLOCK_DOCS", 64)
    monkeypatch.setattr(ranking, "FIRST_BATCH", 1)
    whole = [hit.uid for hit in search.search("tin", limit=2).hits]
    monkeypatch.setattr(ranking, "PRUNED_FROM", 0)
    search.close()
    pruned: list[int] = []
    tier_best = ranking._tier_best
    monkeypatch.setattr(ranking, "_tier_best", lambda *arguments: pruned.append(1) or tier_best(*arguments))
    first = [hit.uid for hit in search.search("tin", limit=2).hits]
    assert not pruned  # a view's first query (a one-shot search) computes no bounds
    assert [hit.uid for hit in search.search("tin", limit=2).hits] == first == whole == ["n250", "n0"]
    assert pruned


def test_pieces_looked_up_on_threads_score_to_the_same_bit(
    ranked_index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large batch's posting lists are looked up on two threads; the scores are added in the
    same order afterwards, so the pages are the same to the bit."""
    alone = pages(ranked_index)
    monkeypatch.setattr(ranking, "SCORING_THREADS", 2)
    monkeypatch.setattr(ranking, "PARALLEL_FROM", 0)
    looked_up: list[str] = []
    piece_scores = ranking._piece_scores

    def recorded(*arguments: Any) -> Any:
        looked_up.append(threading.current_thread().name)
        return piece_scores(*arguments)

    monkeypatch.setattr(ranking, "_piece_scores", recorded)
    assert pages(ranked_index) == alone
    assert any(name.startswith("search-scoring") for name in looked_up)
