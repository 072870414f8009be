"""Ranking the matches of a query exactly, with numpy, the same way every time.

A node's rank key is (how many clauses it matches, BM25F score, node order): nodes matching all
the words come first, then those matching most of them. The score of a term in a field is
whoosh's BM25F (B = 0.75, K1 = 1.2, idf = log(N / (df + 1)) + 1, weights scaled by the field's
boost), so for plain words our scores equal whoosh's own; tests/test_search_rank.py checks that
against whoosh's searcher.

Every match is found and counted, and the page is exact: no clock, no sampling, no cut-off.
Which documents a clause matches is a bitmap (`kb.search.docsets`), kept by the view for words
common enough to be asked for again, so joining and counting the millions of matches of common
words costs passes over N/64 words. How many clauses each document matches comes from adding
those bitmaps. A document is scored only if it could reach the page: one that matches fewer
clauses than the page's last ranks below it whatever its score, and in a tier of many documents,
a block of the library whose bound (each clause's best score in the block, added up) cannot beat
the page's last entry is counted but not scored, nor is a document of a block let in whose own
bound (the block's best of each piece it holds) cannot. A clause's bounds cost a scoring of all
its documents, kept for the next query: a view's first query (a one-shot search in a new
process) scores its tiers whole instead. The bounds are exact maxima, added in the order the
scores are, so no document that belongs on the page is ever skipped (`_tier_best`;
tests/test_search_rank.py compares pages with pruning on and off). Documents that are scored are
scored by every term they hold; a batch of many is looked up in the terms' postings on two
threads and the scores added in order afterwards, so the floats are the same on one core or two.
`kb.search.query` caps a query at 32 clauses and a `prefix*` at 200 words.
"""

from __future__ import annotations

import math
import mmap
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from whoosh import query

from kb.search import docsets
from kb.search.codec import (
    ArrayDocsReader,
    Postings,
    SegmentDamaged,
    map_file,
    positions_in,
    postings_in,
    read_postings,
    release_pages,
)
from kb.search.docsets import Bits
from kb.search.query import QueryPlan
from kb.search.text import FIELD_BOOSTS

B, K1 = 0.75, 1.2
MAX_EXPANSION = 200
DENSE_SHARE = 64  # below N / 64 matches, sparse set operations beat dense arrays; above, a word's bitmap is kept
TABLE_SHARE = 10  # documents a tenth of a posting list or more are looked up through a table
KEPT_SETS_BYTES = 128 * 2**20  # the bitmaps of common words a view keeps for the next query
MAPPED_BYTES = 64 * 2**20  # read through mapped files before their pages are let go
BLOCK_DOCS = 128  # documents per block of the library that a clause's best score is kept for (a multiple of 64)
PRUNED_FROM = 50_000  # a tier of more documents is scored block by block, best bound first
FIRST_BATCH, BATCH_GROWTH = 4_096, 4  # documents scored in the first batch of blocks, and how batches grow
SCORING_THREADS = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 2)
PARALLEL_FROM = 100_000  # documents in a batch before its posting lists are looked up on several threads
# The block bounds of clauses and of their pieces a view keeps for the next query (8 bytes a block
# each): at 10M, the 36 words of the dense library's queries take 90 MB; 64 MB kept evicted them.
KEPT_BOUNDS_BYTES = 192 * 2**20

DocArray = NDArray[np.int64]
ScoreArray = NDArray[np.float64]
_NOTHING: DocArray = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Matches:
    """Documents (global doc numbers, ascending, unique) and their scores."""

    docs: DocArray
    scores: ScoreArray

    @staticmethod
    def none() -> Matches:
        return Matches(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


@dataclass(frozen=True)
class TermRef:
    """A word in one field, not yet read: its bitmap may be kept by the view, and its scores are
    read only for the documents that can reach the page."""

    field: str
    term: bytes
    boost: float


Piece = Matches | TermRef


@dataclass(frozen=True)
class ClauseBounds:
    """A clause's best score in each block of the library, and each of its pieces' best there."""

    whole: ScoreArray
    parts: list[ScoreArray]


@dataclass(frozen=True)
class Ranked:
    docs: DocArray  # the page, best first
    node_ids: list[int]
    scores: list[float]
    clause_hits: list[list[bool]]  # per page entry, per clause: did it match
    total: int  # every document that matched
    terms: set[tuple[str, str]]  # (field, term) pairs that matched something: for highlighting
    notes: list[str]


class Scratch:
    """Arrays with a slot per document, kept from query to query and handed back zeroed.

    A fresh zeroed array the size of the library costs its pages faulting in again on every
    query (at ten million nodes, a plain four-word query asked for ~470 MB of them); these are
    allocated once, and whoever takes one zeroes the slots it touched before giving it back."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._free: dict[str, list[NDArray[Any]]] = {}

    def take(self, dtype: Any) -> NDArray[Any]:
        kept = self._free.get(np.dtype(dtype).str)
        return kept.pop() if kept else np.zeros(self.count, dtype=dtype)

    def give_back(self, array: NDArray[Any], touched: DocArray) -> None:
        array[touched] = 0
        self._free.setdefault(array.dtype.str, []).append(array)


class IndexView:
    """One open whoosh searcher seen as arrays: segments laid end to end."""

    def __init__(self, searcher: Any) -> None:
        self.searcher = searcher
        self.leaves: list[tuple[Any, int]] = list(searcher.reader().leaf_readers())
        self.count = int(searcher.doc_count_all())
        self._bases = np.array([base for _, base in self.leaves], dtype=np.int64)
        self._term_infos: dict[tuple[str, bytes], list[tuple[Any, int, Any]]] = {}
        self._single: dict[str, ScoreArray] = {}
        self._maps: dict[int, tuple[mmap.mmap, NDArray[np.uint8]] | None] = {}
        self._mapped_bytes = 0
        self._slots = threading.local()  # for `_places`, see `slots`
        self._mapping = threading.Lock()
        self._sets: dict[tuple[str, bytes], Bits] = {}
        self._kept_sets = max(8, KEPT_SETS_BYTES // max(8 * docsets.words(self.count), 1))
        self._bounds: dict[tuple[TermRef, ...], ClauseBounds] = {}
        self._kept_bounds = max(8, KEPT_BOUNDS_BYTES // max(8 * self.blocks(), 1))  # arrays of one float a block
        self._bound_arrays = 0
        self._first_nodes: DocArray | None = None
        self.scratch = Scratch(self.count)
        self.searches = 0
        self._averages = {
            field: (searcher.field_length(field) / self.count if self.count else 0.0) or 1.0 for field in FIELD_BOOSTS
        }

    def _docs_reader(self, leaf: Any) -> ArrayDocsReader:
        reader: ArrayDocsReader = leaf._perdoc
        return reader

    def _gather(self, docs: DocArray, per_segment: Any, dtype: Any) -> NDArray[Any]:
        """`per_segment(reader)[doc − base]` for each of the ascending global `docs`, read from each
        segment's own array: nothing the size of the library is concatenated."""
        found = np.empty(len(docs), dtype=dtype)
        cuts = np.searchsorted(docs, self._bases)
        for (leaf, base), start, end in zip(self.leaves, cuts, [*cuts[1:], len(docs)], strict=True):
            if end > start:
                found[start:end] = per_segment(self._docs_reader(leaf))[docs[start:end] - base]
        return found

    def lengths_of(self, field: str, docs: DocArray) -> NDArray[np.float64]:
        return self._gather(docs, lambda reader: reader.lengths(field), np.float64)

    def node_ids_of(self, docs: DocArray) -> DocArray:
        """Node ids of any `docs` (in their order, ascending or not)."""
        order = np.argsort(docs, kind="stable")
        found: DocArray = np.empty(len(docs), dtype=np.int64)
        found[order] = self._gather(docs[order], lambda reader: reader.node_ids(), np.int64)
        return found

    def _infos(self, field: str, term: bytes) -> list[tuple[Any, int, Any]]:
        """(segment reader, doc base, term info) for every segment holding the term; cached,
        since a query asks for a term's frequency and its postings."""
        key = (field, term)
        found = self._term_infos.get(key)
        if found is None:
            found = []
            for leaf, base in self.leaves:
                try:
                    info = leaf._terms.term_info(field, term)
                except Exception:  # whoosh's TermNotFound, or a field this segment lacks
                    continue
                found.append((leaf, base, info))
            if len(self._term_infos) > 4_096:
                self._term_infos.clear()
            self._term_infos[key] = found
        return found

    def _segment_postings(self, leaf: Any, info: Any, *, positions: bool = False) -> tuple[Postings, Any]:
        """One segment's postings of a term, read in place through the mapped file (a lookup of a few
        documents touches a few pages of a long list)."""
        offset, _ = info.extent()
        places = None
        if id(leaf) not in self._maps:
            with self._mapping:
                if id(leaf) not in self._maps:
                    mapped = map_file(leaf._terms._postfile)
                    self._maps[id(leaf)] = None if mapped is None else (mapped, np.frombuffer(mapped, dtype=np.uint8))
        kept = self._maps[id(leaf)]
        if kept is None:
            found, places = read_postings(leaf._terms._postfile, offset, info.doc_frequency(), with_positions=positions)
        else:
            found = postings_in(kept[1], offset, info.doc_frequency())
            places = positions_in(kept[1], offset, found) if positions else None
            self._mapped_bytes += 8 * len(found.docs) + (4 * len(places) if places is not None else 0)
        if len(found.docs) and int(found.docs[-1]) >= leaf.doc_count_all():
            raise SegmentDamaged(f"postings at offset {offset} point past the end of their segment")
        return found, places

    def postings(self, field: str, term: bytes) -> tuple[DocArray, NDArray[Any]]:
        """(global docs, freqs) for one term."""
        docs, freqs = [], []
        for leaf, base, info in self._infos(field, term):
            found = self._segment_postings(leaf, info)[0]
            docs.append(np.add(found.docs, base, dtype=np.int64))
            freqs.append(found.freqs)
        if not docs:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32)
        if len(docs) == 1:
            return docs[0], freqs[0]
        return np.concatenate(docs), np.concatenate(freqs)

    @staticmethod
    def _in_segment(docs: DocArray, leaf: Any, base: int, split: dict[int, Any]) -> tuple[int, int, NDArray[Any]]:
        """(low, high, local): where a segment's documents lie in the ascending `docs`, and their numbers
        within the segment; kept in `split` for the next term looked up at the same documents."""
        if base not in split:
            low, high = np.searchsorted(docs, [base, base + leaf.doc_count_all()])
            split[base] = (int(low), int(high), (docs[low:high] - base).astype(np.uint32))
        found: tuple[int, int, NDArray[Any]] = split[base]
        return found

    def positions_at(self, field: str, term: bytes, docs: DocArray, split: dict[int, Any]) -> NDArray[np.int64]:
        """(doc << 32 | position) for every position of the term in `docs` (ascending, each holding
        the term): only those documents' positions are read."""
        keys: list[NDArray[np.int64]] = []
        for leaf, base, info in self._infos(field, term):
            low, high, local = self._in_segment(docs, leaf, base, split)
            if high == low:
                continue
            found, places = self._segment_postings(leaf, info, positions=True)
            at = _places(found.docs, local, self.slots(leaf.doc_count_all()))
            counts = found.freqs[at].astype(np.int64)
            firsts = np.cumsum(found.freqs, dtype=np.int64)[at] - counts
            index = np.repeat(firsts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
            keys.append((np.repeat(docs[low:high], counts) << 32) | places[index].astype(np.int64))
        return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)

    def release_pages(self) -> None:
        """Once queries have read more than MAPPED_BYTES through the mapped files, let go of those
        pages: they stay in the page cache, but no longer count as this process's memory, which
        would otherwise grow towards the size of the index over a long session."""
        if self._mapped_bytes < MAPPED_BYTES:
            return
        for kept in self._maps.values():
            if kept is not None:
                release_pages(kept[0])
        self._mapped_bytes = 0

    def slots(self, size: int) -> NDArray[np.int32]:
        """A table of at least `size` slots for `_places`, which tolerates what they held before;
        one per thread."""
        table: NDArray[np.int32] | None = getattr(self._slots, "table", None)
        if table is None or len(table) < size:
            table = self._slots.table = np.empty(size, dtype=np.int32)
        return table

    def blocks(self) -> int:
        return (self.count + BLOCK_DOCS - 1) // BLOCK_DOCS

    def first_nodes(self) -> DocArray:
        """The smallest node id in each block: ties in score go to the smaller node id, so a block
        whose bound only equals the page's last score can matter only if it holds a smaller one."""
        if self._first_nodes is None:
            found = np.full(self.blocks(), np.iinfo(np.int64).max, dtype=np.int64)
            for leaf, base in self.leaves:
                ids = self._docs_reader(leaf).node_ids()
                _fold_into_blocks(np.minimum, found, base + np.arange(len(ids), dtype=np.int64), ids)
            self._first_nodes = found
        return self._first_nodes

    def clause_bounds(self, pieces: list[Piece], members: Bits) -> ClauseBounds:
        """The clause's best score in each block, and each of its pieces' (0 where none holds it, or
        where all score below 0): every one of its documents (`members`, the clause's set) is scored
        once, and the bounds are kept for clauses of plain words, which the next query is likely to
        ask again."""
        key = tuple(piece for piece in pieces if isinstance(piece, TermRef))
        plain = len(key) == len(pieces)
        found = self._bounds.get(key) if plain else None
        if found is not None:
            return found
        docs = docsets.docs_in(members)
        clause = np.zeros(len(docs), dtype=np.float64)
        parts = []
        for at, part in _piece_parts(self, pieces, docs):
            clause[at] += part
            parts.append(np.zeros(self.blocks(), dtype=np.float64))
            _fold_into_blocks(np.maximum, parts[-1], docs[at], part)
        whole = np.zeros(self.blocks(), dtype=np.float64)
        _fold_into_blocks(np.maximum, whole, docs, clause)
        found = ClauseBounds(whole, parts)
        if plain:
            while self._bounds and self._bound_arrays + 1 + len(parts) > self._kept_bounds:
                self._bound_arrays -= 1 + len(self._bounds.pop(next(iter(self._bounds))).parts)
            self._bounds[key] = found
            self._bound_arrays += 1 + len(parts)
        return found

    def piece_set(self, piece: Piece) -> Bits:
        """The documents holding one piece, as a bitmap (a word's may be the one the view keeps: read it only)."""
        return self.term_set(piece.field, piece.term) if isinstance(piece, TermRef) else self.set_of([piece])

    def term_matches(self, field: str, term: bytes, boost: float) -> Matches:
        docs, freqs = self.postings(field, term)
        if not len(docs):
            return Matches.none()
        return Matches(docs, self.bm25(field, term, docs, freqs, boost))

    def term_set(self, field: str, term: bytes) -> Bits:
        """The documents holding a term, as a bitmap; kept for the next query when the term is
        common (the oldest kept one makes room)."""
        key = (field, term)
        found = self._sets.get(key)
        if found is not None:
            return found
        infos = self._infos(field, term)
        parts = [(self._segment_postings(leaf, info)[0].docs, base) for leaf, base, info in infos]
        if self.doc_frequency(field, term) * DENSE_SHARE < self.count:
            found = docsets.empty(self.count)
            for docs, base in parts:
                docsets.add(found, docs, base)
            return found
        flags = self.scratch.take(np.bool_)
        for docs, base in parts:
            flags[base:][docs] = True
        found = docsets.packed(flags)
        flags.fill(False)
        self.scratch.give_back(flags, _NOTHING)
        while len(self._sets) >= self._kept_sets:
            del self._sets[next(iter(self._sets))]
        self._sets[key] = found
        return found

    def set_of(self, pieces: list[Piece]) -> Bits:
        found = docsets.empty(self.count)
        for piece in pieces:
            if isinstance(piece, TermRef):
                found |= self.term_set(piece.field, piece.term)
            else:
                docsets.add(found, piece.docs)
        return found

    def term_scores_at(
        self, field: str, term: bytes, docs: DocArray, boost: float, split: dict[int, Any]
    ) -> tuple[DocArray, ScoreArray]:
        """(positions in `docs` of those holding the term, their scores); `docs` ascending. Each is
        looked up in its segment's postings, and only the documents found are scored. `split` keeps
        where each segment's documents are in `docs`, for the next term looked up at the same."""
        where, freqs = [], []
        for leaf, base, info in self._infos(field, term):
            low, high, local = self._in_segment(docs, leaf, base, split)
            if high == low:
                continue
            found = self._segment_postings(leaf, info)[0]
            at = _places(found.docs, local, self.slots(leaf.doc_count_all()))
            held = found.docs[at] == local
            where.append(low + np.flatnonzero(held))
            freqs.append(found.freqs[at[held]])
        if not where:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        positions = np.concatenate(where)
        return positions, self.bm25(field, term, docs[positions], np.concatenate(freqs), boost)

    def doc_frequency(self, field: str, term: bytes) -> int:
        return sum(int(info.doc_frequency()) for _, _, info in self._infos(field, term))

    def idf(self, field: str, term: bytes) -> float:
        return math.log(self.count / (self.doc_frequency(field, term) + 1)) + 1

    def bm25(self, field: str, term: bytes, docs: DocArray, tf: NDArray[Any], boost: float) -> ScoreArray:
        """whoosh's BM25F for one term in one field: idf · w(K1 + 1) / (w + norm), w = tf · boost,
        norm = K1 · (1 − B + B · length / average length); `docs` ascending."""
        scale = self.idf(field, term) * boost
        once = self._once(field)
        if once is None:
            scores = self._tf_part(field, self.lengths_of(field, docs), self._weights(field, tf))
        else:
            scores = once[docs]
            several = np.flatnonzero(tf != 1)
            if len(several):
                lengths = self.lengths_of(field, docs[several])
                scores[several] = self._tf_part(field, lengths, self._weights(field, tf[several]))
        scores *= scale
        return scores

    @staticmethod
    def _weights(field: str, tf: NDArray[Any]) -> ScoreArray:
        weights: ScoreArray = tf.astype(np.float64)
        weights *= FIELD_BOOSTS.get(field, 1.0)
        return weights

    def _tf_part(self, field: str, lengths: ScoreArray, weight: float | ScoreArray) -> ScoreArray:
        """w(K1 + 1) / (w + norm) from the documents' lengths, computed in `lengths` itself."""
        lengths *= B
        lengths /= self._averages.get(field, 1.0)
        lengths += 1 - B
        lengths *= K1
        lengths += weight
        return np.divide(weight * (K1 + 1), lengths, out=lengths)

    def _once(self, field: str) -> ScoreArray | None:
        """The tf part for a term found once (most postings), for every document of the field,
        once the view answers its second query: a long-lived view (the app) trades one float per
        document and field for a gather per posting, and a one-shot search (a new process at ten
        million nodes) computes only the documents it matched and holds nothing that size."""
        found = self._single.get(field)
        if found is None and self.searches >= 2:
            lengths = np.empty(self.count, dtype=np.float64)
            for leaf, base in self.leaves:
                segment = self._docs_reader(leaf).lengths(field)
                lengths[base : base + len(segment)] = segment
            found = self._single[field] = self._tf_part(field, lengths, FIELD_BOOSTS.get(field, 1.0))
        return found


class Evaluator:
    """Turns whoosh query trees into Matches over one IndexView."""

    def __init__(self, view: IndexView) -> None:
        self.view = view
        self.terms: set[tuple[str, str]] = set()
        self.notes: list[str] = []

    def evaluate(self, node: query.Query) -> Matches:
        boost = float(getattr(node, "boost", 1.0))
        if isinstance(node, query.Term):
            return self._term(node.fieldname, node.text, boost)
        if isinstance(node, query.Phrase):
            return self._phrase(node, boost)
        if isinstance(node, query.Or):
            return _scaled(_union([self.evaluate(child) for child in node.children()], self.view.scratch), boost)
        if isinstance(node, query.And):
            found = [self.evaluate(child) for child in node.children() if not isinstance(child, query.Not)]
            result = _intersection(found) if found else Matches.none()
            for child in node.children():
                if isinstance(child, query.Not):
                    result = _without(result, self.evaluate(child.query))
            return _scaled(result, boost)
        if isinstance(node, query.AndNot):
            return _scaled(_without(self.evaluate(node.a), self.evaluate(node.b)), boost)
        if isinstance(node, query.AndMaybe):
            kept = self.evaluate(node.a)
            return _scaled(_add_where_present(kept, self.evaluate(node.b)), boost)
        if isinstance(node, query.Not):
            return Matches.none()  # a clause cannot be "everything but": the planner excludes instead
        if isinstance(node, query.MultiTerm):
            return self._expanded(node, boost)
        if node is query.NullQuery or isinstance(node, query.Every):
            return Matches.none()
        return self._with_whoosh(node)

    def pieces(self, node: query.Query) -> list[Piece]:
        """A clause as the parts whose scores add up to its own: the words of a plain `a OR b`
        stay references, anything else is evaluated."""
        if isinstance(node, query.Or) and float(getattr(node, "boost", 1.0)) == 1.0:
            return [piece for child in node.children() for piece in self.pieces(child)]
        if isinstance(node, query.Term):
            term = _encoded(node.text)
            if not self.view.doc_frequency(node.fieldname, term):
                return []
            self.terms.add((node.fieldname, term.decode("utf-8")))
            return [TermRef(node.fieldname, term, float(getattr(node, "boost", 1.0)))]
        found = self.evaluate(node)
        return [found] if len(found.docs) else []

    def _term(self, field: str, text: Any, boost: float) -> Matches:
        term = _encoded(text)
        found = self.view.term_matches(field, term, boost)
        if len(found.docs):
            self.terms.add((field, term.decode("utf-8")))
        return found

    def _phrase(self, node: query.Phrase, boost: float) -> Matches:
        """Docs where the words occur in order, at most `slop` apart; scored as BM25 of each
        word with the phrase's occurrences as its frequency."""
        words = [str(word).encode("utf-8") for word in node.words]
        if not words:
            return Matches.none()
        if len(words) == 1:
            return self._term(node.fieldname, words[0], boost)
        field = node.fieldname
        if any(not self.view.doc_frequency(field, word) for word in words):
            return Matches.none()
        together = self.view.term_set(field, words[0]).copy()
        for word in words[1:]:
            together &= self.view.term_set(field, word)
        common = docsets.docs_in(together)
        if not len(common):
            return Matches.none()
        split: dict[int, Any] = {}
        starts = self.view.positions_at(field, words[0], common, split)
        for offset, word in enumerate(words[1:], start=1):
            starts = _follow(starts, self.view.positions_at(field, word, common, split), offset, int(node.slop))
            if not len(starts):
                return Matches.none()
        docs, counts = np.unique(starts >> 32, return_counts=True)
        score = np.zeros(len(docs))
        for word in words:
            score += self.view.bm25(node.fieldname, word, docs, counts, boost)
            self.terms.add((node.fieldname, word.decode("utf-8")))
        return Matches(docs, score)

    def _expanded(self, node: query.MultiTerm, boost: float) -> Matches:
        words = []
        for number, word in enumerate(node._btexts(self.view.searcher.reader())):
            if number == MAX_EXPANSION:
                self.notes.append(
                    f"{node} matches more than {MAX_EXPANSION} words; the first {MAX_EXPANSION} in alphabetical"
                    " order were searched"
                )
                break
            words.append(word)
        parts = [self._term(node.fieldname, word, 1.0) for word in words]
        return _scaled(_union(parts, self.view.scratch), boost)

    def _with_whoosh(self, node: query.Query) -> Matches:
        """Query kinds our arrays do not evaluate (spans, ranges over numbers) go through
        whoosh's own matchers, which read the same segments through ArrayMatcher."""
        matcher = node.matcher(self.view.searcher)
        docs, scores = [], []
        while matcher.is_active():
            docs.append(matcher.id())
            scores.append(matcher.score())
            matcher.next()
        for leaf in node.leaves():
            if hasattr(leaf, "fieldname") and hasattr(leaf, "text"):
                self.terms.add((leaf.fieldname, str(leaf.text)))
        order = np.argsort(np.asarray(docs, dtype=np.int64), kind="stable")
        return Matches(np.asarray(docs, dtype=np.int64)[order], np.asarray(scores, dtype=np.float64)[order])


def _encoded(text: Any) -> bytes:
    return text if isinstance(text, bytes) else str(text).encode("utf-8")


def _follow(starts: NDArray[np.int64], following: NDArray[np.int64], offset: int, slop: int) -> NDArray[np.int64]:
    """The phrase starts from which the next word lies `offset` further on (± slop − 1). Both
    arrays are ascending (documents in order, positions in order within each), so each wanted key
    is found by binary search: sorting millions of keys again, as a set membership test does, was
    most of a phrase of two common words."""
    kept = np.zeros(len(starts), dtype=bool)
    if not len(following):
        return starts[kept]
    for shift in range(offset, offset + max(slop, 1)):
        wanted = starts + shift
        at = np.minimum(np.searchsorted(following, wanted), len(following) - 1)
        kept |= following[at] == wanted
    return starts[kept]


def _scaled(found: Matches, boost: float) -> Matches:
    return found if boost == 1.0 else Matches(found.docs, found.scores * boost)


def _union(parts: list[Matches], scratch: Scratch) -> Matches:
    parts = [part for part in parts if len(part.docs)]
    if not parts:
        return Matches.none()
    if len(parts) == 1:
        return parts[0]
    size = sum(len(part.docs) for part in parts)
    if size * DENSE_SHARE < scratch.count:
        docs = np.concatenate([part.docs for part in parts])
        unique, inverse = np.unique(docs, return_inverse=True)
        sums = np.bincount(inverse, weights=np.concatenate([p.scores for p in parts])).astype(np.float64)
        return Matches(unique, sums)
    score, hit = scratch.take(np.float64), scratch.take(np.bool_)
    for part in parts:
        score[part.docs] += part.scores
        hit[part.docs] = True
    docs = np.flatnonzero(hit)
    found = Matches(docs, score[docs])
    scratch.give_back(score, docs)
    scratch.give_back(hit, docs)
    return found


def _intersection(parts: list[Matches]) -> Matches:
    result = parts[0]
    for part in parts[1:]:
        docs, left, right = np.intersect1d(result.docs, part.docs, assume_unique=True, return_indices=True)
        result = Matches(docs, result.scores[left] + part.scores[right])
    return result


def _without(kept: Matches, removed: Matches) -> Matches:
    mask = ~np.isin(kept.docs, removed.docs, assume_unique=True)
    return Matches(kept.docs[mask], kept.scores[mask])


def _add_where_present(kept: Matches, extra: Matches) -> Matches:
    _, left, right = np.intersect1d(kept.docs, extra.docs, assume_unique=True, return_indices=True)
    scores = kept.scores.copy()
    scores[left] += extra.scores[right]
    return Matches(kept.docs, scores)


def rank(view: IndexView, plan: QueryPlan, limit: int) -> Ranked:
    """The best `limit` documents for the plan, best first, with what each matched.

    Ties are broken by node id, so the order never depends on segment layout."""
    view.searches += 1
    try:
        return _ranked(view, plan, limit)
    finally:
        view.release_pages()


def _ranked(view: IndexView, plan: QueryPlan, limit: int) -> Ranked:
    evaluator = Evaluator(view)
    clauses = [evaluator.pieces(clause.query) for clause in plan.clauses]
    sets = [view.set_of(pieces) for pieces in clauses]
    eligible = docsets.empty(view.count)
    for found in sets:
        eligible |= found
    for clause, found in zip(plan.clauses, sets, strict=True):
        if clause.required:
            eligible &= found
    if plan.excluded:
        eligible &= ~view.set_of([piece for node in plan.excluded for piece in evaluator.pieces(node)])
    docs, tiers, scores = _candidates(view, clauses, sets, eligible, limit)
    chosen = _best(docs, tiers, scores, view, limit)
    page = docs[chosen]
    held = [docsets.holds(found, page).tolist() for found in sets]
    return Ranked(
        page,
        view.node_ids_of(page).tolist(),
        scores[chosen].tolist(),
        [list(row) for row in zip(*held, strict=True)] if held else [[] for _ in page],
        docsets.size(eligible),
        evaluator.terms,
        evaluator.notes,
    )


def _candidates(
    view: IndexView, clauses: list[list[Piece]], sets: list[Bits], eligible: Bits, limit: int
) -> tuple[DocArray, NDArray[np.int16], ScoreArray]:
    """The scored documents that can reach the page, tier by tier from those matching the most
    clauses until the page is full: (docs, how many clauses each matches, scores)."""
    planes = docsets.tally(sets)
    docs: list[DocArray] = []
    tiers: list[NDArray[np.int16]] = []
    scores: list[ScoreArray] = []
    wanted = limit
    for count in range(len(sets), 0, -1):
        if wanted <= 0:
            break
        tier = docsets.held_by(planes, count, eligible)
        size = docsets.size(tier)
        if not size:
            continue
        if size > max(PRUNED_FROM, wanted) and view.searches >= 2:
            found, scored = _tier_best(view, clauses, sets, tier, wanted)
        else:
            found = docsets.docs_in(tier)
            scored = _scores(view, clauses, found)
        docs.append(found)
        tiers.append(np.full(len(found), count, dtype=np.int16))
        scores.append(scored)
        wanted -= size
    if not docs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int16), np.zeros(0, dtype=np.float64)
    return np.concatenate(docs), np.concatenate(tiers), np.concatenate(scores)


def _tier_best(
    view: IndexView, clauses: list[list[Piece]], sets: list[Bits], tier: Bits, wanted: int
) -> tuple[DocArray, ScoreArray]:
    """The best `wanted` documents of a large tier by (score desc, node id asc), scored a batch of
    blocks at a time in order of their bounds. Once `wanted` are in hand, a block is read only if
    its bound beats the last of them, or equals it and the block holds a smaller node id; and of
    its documents, only those whose own bound reaches it are scored (`_doc_bounds`). The batches
    grow fourfold, so a tier whose block bounds prune nothing is still read in a few passes."""
    per_block = BLOCK_DOCS // 64
    counts = np.add.reduceat(np.bitwise_count(tier), np.arange(0, len(tier), per_block), dtype=np.int64)
    found_bounds = [view.clause_bounds(pieces, members) for pieces, members in zip(clauses, sets, strict=True)]
    bounds = np.zeros(view.blocks(), dtype=np.float64)
    for clause in found_bounds:
        bounds += clause.whole
    piece_sets = [[view.piece_set(piece) for piece in pieces] for pieces in clauses]
    first_nodes = view.first_nodes()
    waiting = np.flatnonzero(counts)
    waiting = waiting[np.argsort(-bounds[waiting], kind="stable")]
    docs, scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    step = max(wanted, FIRST_BATCH)
    last_score: float | None = None
    while len(waiting):
        batch = waiting[: int(np.searchsorted(np.cumsum(counts[waiting]), step)) + 1]
        waiting = waiting[len(batch) :]
        found = _docs_in_blocks(tier, np.sort(batch))
        if last_score is not None:
            found = found[_doc_bounds(found, found_bounds, piece_sets) >= last_score]
        docs = np.concatenate((docs, found))
        scores = np.concatenate((scores, _scores(view, clauses, found)))
        if len(docs) >= wanted:
            keep = _head(docs, scores, view, wanted)
            docs, scores = docs[keep], scores[keep]
            last_score, last_node = float(scores[-1]), int(view.node_ids_of(docs[-1:])[0])
            ahead = bounds[waiting]
            waiting = waiting[(ahead > last_score) | ((ahead == last_score) & (first_nodes[waiting] < last_node))]
        step *= BATCH_GROWTH
    return docs, scores


def _doc_bounds(docs: DocArray, bounds: list[ClauseBounds], piece_sets: list[list[Bits]]) -> ScoreArray:
    """Each document's bound: for each clause, the best score in its block of each piece it holds,
    added in the order `_scores` adds them, or the clause's best in the block if that is lower;
    the clauses' then added in order. A piece it does not hold adds nothing (x + 0.0 is x), and
    rounded addition never decreases when a term grows, so no score can exceed its bound. A
    block's bound is met by its best node for each word, often not one node; a document that
    lacks a word in the field its best score came from is bounded far lower: on the dense 10M
    library, of the documents in the blocks a title query let in, about 1 in 800 is scored."""
    blocks, words, shifts = docs // BLOCK_DOCS, docs >> 6, (docs & 63).astype(np.uint64)
    total = np.zeros(len(docs), dtype=np.float64)
    for clause, sets in zip(bounds, piece_sets, strict=True):
        parts = np.zeros(len(docs), dtype=np.float64)
        for best, members in zip(clause.parts, sets, strict=True):
            parts += best[blocks] * ((members[words] >> shifts) & np.uint64(1))
        total += np.minimum(parts, clause.whole[blocks])
    return total


def _docs_in_blocks(tier: Bits, blocks: DocArray) -> DocArray:
    """The tier's documents in the ascending `blocks`, ascending."""
    per_block = BLOCK_DOCS // 64
    words = (blocks[:, None] * per_block + np.arange(per_block)).ravel()
    words = words[words < len(tier)]
    at = docsets.docs_in(tier[words])
    found: DocArray = words[at >> 6] * 64 + (at & 63)
    return found


def _head(docs: DocArray, scores: ScoreArray, view: IndexView, count: int) -> DocArray:
    """Positions of the first `count` by (score desc, node id asc), in that order."""
    at = np.arange(len(docs))
    if len(docs) > count:
        cut = np.partition(scores, len(docs) - count)[len(docs) - count]
        at = np.flatnonzero(scores >= cut)
    ordered: DocArray = at[np.lexsort((view.node_ids_of(docs[at]), -scores[at]))][:count]
    return ordered


def _fold_into_blocks(fold: np.ufunc, into: NDArray[Any], docs: DocArray, values: NDArray[Any]) -> None:
    """Fold each block's `values` (at the ascending `docs`) into its slot of `into`, which starts
    as the fold's identity there: the best score of each block, or its smallest node id."""
    if len(docs):
        block = docs // BLOCK_DOCS
        starts = np.flatnonzero(np.concatenate(([True], block[1:] != block[:-1])))
        fold.at(into, block[starts], fold.reduceat(values, starts))


def _scores(view: IndexView, clauses: list[list[Piece]], docs: DocArray) -> ScoreArray:
    """Each document's score: its clauses' scores added in order, as whoosh adds them, and as the
    block bounds are added, so no score can exceed its block's bound by a rounding."""
    looked = _piece_parts(view, [piece for found in clauses for piece in found], docs)
    scores = np.zeros(len(docs), dtype=np.float64)
    for found in clauses:
        clause = np.zeros(len(docs), dtype=np.float64)
        for _ in found:
            at, part = next(looked)
            clause[at] += part
        scores += clause
    return scores


def _piece_parts(view: IndexView, pieces: list[Piece], docs: DocArray) -> Iterator[tuple[DocArray, ScoreArray]]:
    """Each piece's (positions in `docs` of those it holds, their scores), in order. A large batch's
    pieces are looked up on several threads; taken in order, the floats do not change. They are
    meant to be consumed as they come, so a few pieces' lookups are held at once, and the mapped
    postings are let go after each (a query of common words reads hundreds of MB of them)."""
    pool = _scoring_pool() if len(docs) >= PARALLEL_FROM and len(pieces) > 1 else None
    split: dict[int, Any] = {}
    looked = (
        (_piece_scores(view, piece, docs, split) for piece in pieces)
        if pool is None
        else pool.map(lambda piece: _piece_scores(view, piece, docs, {}), pieces)
    )
    for found in looked:
        yield found
        view.release_pages()


_POOL: list[ThreadPoolExecutor] = []
_POOL_MADE = threading.Lock()


def _scoring_pool() -> ThreadPoolExecutor | None:
    """Threads to look a batch's documents up in several posting lists at once (numpy lets go of
    the interpreter while it searches and gathers); none on a machine with one core."""
    if SCORING_THREADS < 2:
        return None
    with _POOL_MADE:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="search-scoring"))
    return _POOL[0]


def _piece_scores(view: IndexView, piece: Piece, docs: DocArray, split: dict[int, Any]) -> tuple[DocArray, ScoreArray]:
    """(positions in the ascending `docs` of those the piece holds, their scores): the piece is
    looked up at the documents, so only those it holds are scored."""
    if isinstance(piece, TermRef):
        return view.term_scores_at(piece.field, piece.term, docs, piece.boost, split)
    places = _places(piece.docs, docs, view.slots(view.count))
    at = np.flatnonzero(piece.docs[places] == docs)
    return at, piece.scores[places[at]]


def _places(haystack: NDArray[Any], needles: NDArray[Any], slots: NDArray[np.int32]) -> DocArray:
    """Where each of the ascending `needles` is in the ascending `haystack`, if it is there at all
    (the caller checks `haystack[place] == needle`): by binary search when the needles are few;
    else the haystack is written once into `slots` (a slot per possible value, whatever they held
    before) and each needle reads its slot, which costs a pass, not a search per needle."""
    last = len(haystack) - 1
    if len(needles) * TABLE_SHARE < len(haystack):
        places: DocArray = np.minimum(np.searchsorted(haystack, needles), last)
    else:
        slots[haystack] = np.arange(len(haystack), dtype=np.int32)
        places = np.clip(slots[needles], 0, last).astype(np.int64)
    return places


def _best(docs: DocArray, tiers: NDArray[np.int16], scores: ScoreArray, view: IndexView, limit: int) -> DocArray:
    """Positions in `docs` of the first `limit` by (clauses matched desc, score desc, node id asc)."""
    if not len(docs) or limit <= 0:
        return np.zeros(0, dtype=np.int64)
    chosen: list[DocArray] = []
    left = limit
    for tier in sorted(np.unique(tiers).tolist(), reverse=True):
        at = np.flatnonzero(tiers == tier)
        at = at[_head(docs[at], scores[at], view, left)]
        chosen.append(at)
        left -= len(at)
        if not left:
            break
    return np.concatenate(chosen)
