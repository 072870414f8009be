"""Document bitmaps against plain numpy sets: membership, counting, and the tally of how many
sets hold each document, which decides the clause-count tiers of a ranking."""

from __future__ import annotations

import numpy as np
import pytest

from kb.search import docsets


def random_sets(seed: int, count: int, how_many: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.flatnonzero(rng.random(count) < rng.choice([0.001, 0.05, 0.5, 0.97])) for _ in range(how_many)]


@pytest.mark.parametrize("count", [1, 63, 64, 65, 1_000, 4_099])
def test_a_set_holds_exactly_its_documents(count: int) -> None:
    for docs in random_sets(count, count, 6):
        bits = docsets.of_docs(docs, count)
        flags = np.zeros(count, dtype=bool)
        flags[docs] = True
        assert docsets.packed(flags).tolist() == bits.tolist()
        assert docsets.docs_in(bits).tolist() == docs.tolist()
        assert docsets.size(bits) == len(docs)
        everything = np.arange(count, dtype=np.int64)
        assert docsets.holds(bits, everything).tolist() == np.isin(everything, docs).tolist()


def test_documents_added_by_segment_land_at_their_base() -> None:
    bits = docsets.empty(200)
    docsets.add(bits, np.array([0, 5, 60], dtype=np.uint32), base=0)
    docsets.add(bits, np.array([0, 3, 70], dtype=np.uint32), base=61)  # shares a word with the first
    assert docsets.docs_in(bits).tolist() == [0, 5, 60, 61, 64, 131]


@pytest.mark.parametrize("how_many", [1, 2, 3, 7, 8, 32])
def test_the_tally_counts_how_many_sets_hold_each_document(how_many: int) -> None:
    count = 3_001
    sets = random_sets(how_many, count, how_many)
    expected = np.zeros(count, dtype=np.int64)
    for docs in sets:
        expected[docs] += 1
    planes = docsets.tally([docsets.of_docs(docs, count) for docs in sets])
    everything = docsets.of_docs(np.arange(count, dtype=np.int64), count)
    within = docsets.of_docs(np.flatnonzero(np.random.default_rng(1).random(count) < 0.7), count)
    for held in range(how_many + 1):
        assert docsets.docs_in(docsets.held_by(planes, held, everything)).tolist() == np.flatnonzero(
            expected == held
        ).tolist()
        inside = docsets.docs_in(within)
        assert docsets.docs_in(docsets.held_by(planes, held, within)).tolist() == inside[
            expected[inside] == held
        ].tolist()
