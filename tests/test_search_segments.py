"""A large build is cut into segments of at most MAX_SEGMENT nodes, built one at a time per process,
and merges never make a bigger one: the index's memory is bounded whatever the library's size. The
hits are the same, in the same order with the same scores, however the library is cut."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

import kb.search.build as build
from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.libraries import create_library
from kb.search import SearchIndex
from kb.tree import add_children, node_by_uid

WORDS = [f"w{n}" for n in range(300)] + ["river", "desert", "coast", "island", "mountain"]
QUERIES = ["river", "desert coast", "w7 w12", '"river desert"', "island -coast", "w250*", "mountain title:w3"]


def library(path: Path, size: int) -> Path:
    rng = random.Random(5)
    conn = connect(path, create=True)
    made = create_library(conn, "z")
    nodes = [StagedNode(1, "top", None, "book", "Top")]
    for n in range(2, size + 1):
        parent = "top" if n < 40 else f"n{rng.randrange(2, 40)}"
        text = " ".join(rng.choices(WORDS, k=8))
        nodes.append(StagedNode(n, f"n{n}", parent, "statement", text.split()[0], text))
    import_staged(conn, made, iter(nodes), source="t", importer="t")
    conn.close()
    return path


def answers(index: SearchIndex) -> list[list[tuple[str, float]]]:
    return [[(hit.uid, round(hit.score, 9)) for hit in index.search(q, limit=50).hits] for q in QUERIES]


@pytest.mark.parametrize("procs", [1, 2])
def test_a_build_is_cut_into_bounded_segments_and_answers_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: int
) -> None:
    whole = library(tmp_path / "whole.db", 4_000)
    cut = library(tmp_path / "cut.db", 4_000)
    conn_whole, conn_cut = connect(whole), connect(cut)
    one = SearchIndex(conn_whole, whole, _z(conn_whole))
    one.rebuild()

    monkeypatch.setattr(build, "MAX_SEGMENT", 700)
    monkeypatch.setattr(build, "PARALLEL_FROM", 1_000)
    many = SearchIndex(conn_cut, cut, _z(conn_cut))
    many.rebuild(procs=procs)
    sizes = [segment.doc_count_all() for segment in _segments(many)]
    assert len(sizes) == 6 and max(sizes) <= 700 and sum(sizes) == 4_000
    assert answers(many) == answers(one)

    # Updates add small segments; merges gather them but never past MAX_SEGMENT.
    for round_ in range(8):
        parent = node_by_uid(conn_cut, "n2", _z(conn_cut).id)
        assert parent is not None
        add_children(conn_cut, parent, [(f"river w{round_}", "", "statement")] * 30, origin="human")
        many.update()
    sizes = [segment.doc_count_all() for segment in _segments(many)]
    assert max(sizes) <= 700 and sum(sizes) == 4_000 + 8 * 30 and len(sizes) < 6 + 8
    added = [hit for hit in many.search('title:"river w3"', limit=100).hits if hit.title == "river w3"]
    assert len(added) == 30  # every node added after the build is found, whichever segment holds it


def _z(conn):  # type: ignore[no-untyped-def]
    from kb.libraries import get_library

    return get_library(conn, "z")


def _segments(index: SearchIndex) -> list:  # type: ignore[type-arg]
    from kb.search.safe_unpickle import INDEX_NAME, whoosh_index

    return list(whoosh_index().open_dir(str(index.directory), indexname=INDEX_NAME)._segments())


def test_lengths_and_node_ids_are_read_segment_by_segment_for_any_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranking reads a matched document's length and node id from its own segment (nothing the size
    of the library is built); any docs, in any order, across segment borders, give what the segment
    itself stores."""
    path = library(tmp_path / "cut.db", 2_000)
    conn = connect(path)
    monkeypatch.setattr(build, "MAX_SEGMENT", 300)
    index = SearchIndex(conn, path, _z(conn))
    index.rebuild()
    view = index._current_view()
    assert len(view.leaves) == 7

    def stored(doc: int, what: str) -> int:
        at = max(n for n, (_, base) in enumerate(view.leaves) if base <= doc)
        leaf, base = view.leaves[at]
        docs = leaf._perdoc
        return int(docs.node_ids()[doc - base] if what == "id" else docs.lengths("body")[doc - base])

    rng = random.Random(3)
    everything = np.arange(view.count, dtype=np.int64)
    ascending = np.sort(rng.sample(range(view.count), 500)).astype(np.int64)
    shuffled = np.array(rng.sample(range(view.count), 300), dtype=np.int64)
    assert view.lengths_of("body", everything).tolist() == [stored(doc, "length") for doc in range(view.count)]
    assert view.lengths_of("body", ascending).tolist() == [stored(int(doc), "length") for doc in ascending]
    assert view.node_ids_of(shuffled).tolist() == [stored(int(doc), "id") for doc in shuffled]
    assert sorted(view.node_ids_of(everything).tolist()) == [
        row[0]
        for row in conn.execute(
            "SELECT id FROM nodes WHERE library_id = ? AND parent_id IS NOT NULL ORDER BY id", (_z(conn).id,)
        )
    ]
    assert view.node_ids_of(np.zeros(0, dtype=np.int64)).tolist() == []


def test_documents_are_looked_up_in_their_own_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring a page's documents looks each one up in its segment's postings, by binary search or
    through a table; across segment borders either gives what an uncut index gives."""
    import importlib

    ranking = importlib.import_module("kb.search.rank")
    whole = library(tmp_path / "whole.db", 3_000)
    conn_whole = connect(whole)
    one = SearchIndex(conn_whole, whole, _z(conn_whole))
    one.rebuild()
    expected = answers(one)
    cut = library(tmp_path / "cut.db", 3_000)
    conn = connect(cut)
    monkeypatch.setattr(build, "MAX_SEGMENT", 290)  # not a multiple of 64: bitmap words straddle borders
    index = SearchIndex(conn, cut, _z(conn))
    index.rebuild()
    assert len(index._current_view().leaves) == 11
    for share in (10**9, 0):  # through a table always, never
        monkeypatch.setattr(ranking, "TABLE_SHARE", share)
        assert answers(index) == expected
