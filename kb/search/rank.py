"""Ranking every match of a query, with numpy, the same way every time.

A node's rank key is (how many clauses it matches, BM25F score, node order): nodes
matching all the words come first, then those matching most of them. The score of
a term in a field is whoosh's BM25F (B = 0.75, K1 = 1.2, idf = log(N / (df + 1)) + 1,
weights scaled by the field's boost), so for plain words our scores equal whoosh's
own; tests/test_search_rank.py checks that against whoosh's searcher.

Every posting of every query term is read and scored: no clock, no sampling, no early
stop. The cost is bounded by the work itself, about (number of words) × (postings per
word), which numpy does at tens of millions of postings a second; `kb.search.query`
caps a query at 32 clauses and a `prefix*` at 200 words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from whoosh import query

from kb.search.codec import ArrayDocsReader, SegmentDamaged, read_postings
from kb.search.query import QueryPlan
from kb.search.text import FIELD_BOOSTS

B, K1 = 0.75, 1.2
MAX_EXPANSION = 200
DENSE_SHARE = 64  # below N / 64 matches, sparse set operations beat dense arrays

DocArray = NDArray[np.int64]
ScoreArray = NDArray[np.float64]


@dataclass(frozen=True)
class Matches:
    """Documents (global doc numbers, ascending, unique) and their scores."""

    docs: DocArray
    scores: ScoreArray

    @staticmethod
    def none() -> Matches:
        return Matches(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


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

    def postings(self, field: str, term: bytes, *, positions: bool = False) -> tuple[DocArray, NDArray[Any], list[Any]]:
        """(global docs, freqs, per-segment (starts, positions) or []) for one term."""
        docs, freqs, where = [], [], []
        for leaf, base, info in self._infos(field, term):
            offset, _ = info.extent()
            found, places = read_postings(leaf._terms._postfile, offset, info.doc_frequency(), with_positions=positions)
            if len(found.docs) and int(found.docs[-1]) >= leaf.doc_count_all():
                raise SegmentDamaged(f"postings of {field}:{term!r} point past the end of their segment")
            docs.append(found.docs.astype(np.int64) + base)
            freqs.append(found.freqs)
            if positions:
                starts = np.concatenate(([0], np.cumsum(found.freqs, dtype=np.int64)))
                where.append((starts, places))
        if not docs:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32), []
        if len(docs) == 1:
            return docs[0], freqs[0], where
        return np.concatenate(docs), np.concatenate(freqs), where

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

    def _term(self, field: str, text: Any, boost: float) -> Matches:
        term = text if isinstance(text, bytes) else str(text).encode("utf-8")
        docs, freqs, _ = self.view.postings(field, term)
        if not len(docs):
            return Matches.none()
        self.terms.add((field, term.decode("utf-8")))
        return Matches(docs, self.view.bm25(field, term, docs, freqs, boost))

    def _phrase(self, node: query.Phrase, boost: float) -> Matches:
        """Docs where the words occur in order, at most `slop` apart; scored as BM25 of each
        word with the phrase's occurrences as its frequency."""
        words = [str(word).encode("utf-8") for word in node.words]
        if not words:
            return Matches.none()
        if len(words) == 1:
            return self._term(node.fieldname, words[0], boost)
        lists = [self.view.postings(node.fieldname, word, positions=True) for word in words]
        if any(not len(docs) for docs, _, _ in lists):
            return Matches.none()
        common = lists[0][0]
        for docs, _, _ in lists[1:]:
            common = np.intersect1d(common, docs, assume_unique=True)
        if not len(common):
            return Matches.none()
        starts = _positions_in(lists[0], common)
        for offset, postings in enumerate(lists[1:], start=1):
            following = _positions_in(postings, common)
            starts = _follow(starts, following, offset, int(node.slop))
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


def _positions_in(postings: tuple[DocArray, NDArray[Any], list[Any]], keep: DocArray) -> NDArray[np.int64]:
    """(doc << 32 | position) for every position of the term in the docs `keep`."""
    docs, freqs, where = postings
    chosen = np.flatnonzero(np.isin(docs, keep, assume_unique=True))
    keys: list[NDArray[np.int64]] = []
    segment_starts = np.concatenate(([0], np.cumsum([len(starts) - 1 for starts, _ in where])))
    for segment, (starts, places) in enumerate(where):
        local = chosen[(chosen >= segment_starts[segment]) & (chosen < segment_starts[segment + 1])]
        local = local - segment_starts[segment]
        if not len(local):
            continue
        lows, highs = starts[local], starts[local + 1]
        counts = highs - lows
        index = np.repeat(lows - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        owner = np.repeat(docs[local + segment_starts[segment]], counts)
        keys.append((owner << 32) | places[index].astype(np.int64))
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)


def _follow(starts: NDArray[np.int64], following: NDArray[np.int64], offset: int, slop: int) -> NDArray[np.int64]:
    """The phrase starts from which the next word lies `offset` further on (± slop − 1)."""
    kept = np.zeros(len(starts), dtype=bool)
    for shift in range(offset, offset + max(slop, 1)):
        kept |= np.isin(starts + shift, following)
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
    evaluator = Evaluator(view)
    clause_matches = [evaluator.evaluate(clause.query) for clause in plan.clauses]
    excluded = _union([evaluator.evaluate(node) for node in plan.excluded], view.scratch).docs
    scratch = view.scratch
    matched, required, score = scratch.take(np.int16), scratch.take(np.int16), scratch.take(np.float64)
    eligible = scratch.take(np.bool_)
    for clause, found in zip(plan.clauses, clause_matches, strict=True):
        matched[found.docs] += 1
        score[found.docs] += found.scores
        if clause.required:
            required[found.docs] += 1
    np.greater(matched, 0, out=eligible)
    if needed := sum(clause.required for clause in plan.clauses):
        eligible &= required == needed
    eligible[excluded] = False
    candidates = np.flatnonzero(eligible)
    page = _best(candidates, matched, score, view, limit)
    hits = [[_contains(found.docs, doc) for found in clause_matches] for doc in page.tolist()]
    ranked = Ranked(
        page,
        view.node_ids_of(page).tolist(),
        [float(score[doc]) for doc in page.tolist()],
        hits,
        int(len(candidates)),
        evaluator.terms,
        evaluator.notes,
    )
    touched = np.concatenate([found.docs for found in clause_matches]) if clause_matches else candidates
    for array in (matched, required, score):
        scratch.give_back(array, touched)
    scratch.give_back(eligible, candidates)  # np.greater wrote every slot; only the candidates are True
    return ranked


def _contains(docs: DocArray, doc: int) -> bool:
    at = int(np.searchsorted(docs, doc))
    return at < len(docs) and int(docs[at]) == doc


def _best(candidates: DocArray, matched: NDArray[np.int16], score: ScoreArray, view: IndexView, limit: int) -> DocArray:
    """Candidates sorted by (clauses matched desc, score desc, node id asc), first `limit`."""
    if not len(candidates) or limit <= 0:
        return np.zeros(0, dtype=np.int64)
    chosen: list[DocArray] = []
    left = limit
    tiers = matched[candidates]
    for tier in sorted(set(np.unique(tiers).tolist()), reverse=True):
        docs = candidates[tiers == tier]
        if len(docs) > left:
            scores = score[docs]
            cut = np.partition(scores, len(scores) - left)[len(scores) - left]
            docs = docs[scores >= cut]
        order = np.lexsort((view.node_ids_of(docs), -score[docs]))
        docs = docs[order][:left]
        chosen.append(docs)
        left -= len(docs)
        if not left:
            break
    return np.concatenate(chosen)
