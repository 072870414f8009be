"""Writing a library's search index: whole segments built from SQLite with numpy.

Nodes are append-only, so an index is a list of segments, each holding the nodes of
one id range, and an update writes one new segment for the nodes added since the
last. A segment is built in three steps: read the nodes in id order and split their
text into raw tokens (one `findall` per field), turn the tokens of a batch into
term numbers and positions with numpy (`kb.search.text.TermCoder`), and at the end
sort every field's postings by term once and write them (`kb.search.codec`).
That is about 20 times less Python per token than whoosh's writer; a large build
also splits the id range across processes, one segment each.

Small segments are merged when there are many of the same size (like a log-structured
merge): an index that grows by a few unpacked nodes at a time keeps a handful of
segments, and a merge costs about as much as the segments it merges.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from whoosh.filedb.filestore import FileStorage

from kb.errors import Cancelled
from kb.search.codec import (
    ArrayCodec,
    ArraySegment,
    FieldPostings,
    UIntArray,
    read_postings,
    write_segment,
)
from kb.search.safe_unpickle import INDEX_NAME
from kb.search.safe_unpickle import whoosh_index as safe_whoosh_index
from kb.search.text import FIELD_BOOSTS, FIELDS, SPELLING, STOPPED, TOKEN, TermCoder, schema, spelling_of

WRITTEN = (*FIELDS, SPELLING)

BATCH = 20_000  # nodes tokenized before their tokens become arrays
PARALLEL_FROM = 50_000  # below this many nodes one process is faster than starting others
# The most nodes one segment holds, built or merged: a segment is built in memory (a build process
# peaked at about 2 GB on 500 000 nodes, bench/search.py), so this caps each process's memory
# whatever the library's size; a larger library is more segments, built one after another.
MAX_SEGMENT = 500_000
LEVEL_WIDTH = 6  # merge once this many segments have the same order of magnitude


class BuildCancelled(Cancelled):
    """The person cancelled; the index is as it was before."""


@dataclass
class _FieldTokens:
    """One field's kept tokens so far: term numbers, local doc numbers, positions."""

    terms: list[NDArray[np.int32]] = field(default_factory=list)
    docs: list[UIntArray] = field(default_factory=list)
    positions: list[UIntArray] = field(default_factory=list)
    lengths: list[UIntArray] = field(default_factory=list)


class _SegmentBuilder:
    """Accumulates the nodes of one segment; `finish` writes it."""

    def __init__(self) -> None:
        words, spelling = TermCoder(), TermCoder(spelling_of)
        self.coders = {name: words for name in FIELDS} | {SPELLING: spelling}
        self.node_ids: list[int] = []
        self.fields = {name: _FieldTokens() for name in WRITTEN}
        self._raw: dict[str, list[str]] = {name: [] for name in WRITTEN}
        self._counts: dict[str, list[int]] = {name: [] for name in WRITTEN}
        self._batch_start = 0

    def add(self, node_id: int, tokens: dict[str, list[str]]) -> None:
        self.node_ids.append(node_id)
        for name in WRITTEN:
            found = tokens[name]
            self._raw[name] += found
            self._counts[name].append(len(found))
        if len(self.node_ids) - self._batch_start >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Turn the batch's raw tokens into arrays, dropping stop words and renumbering
        positions exactly as whoosh's StopFilter does (the first kept token keeps its
        position, later ones count up from it)."""
        first_doc = self._batch_start
        for name in WRITTEN:
            raw, counts = self._raw[name], np.asarray(self._counts[name], dtype=np.int64)
            if not len(counts):
                continue
            codes = np.fromiter(map(self.coders[name].__getitem__, raw), dtype=np.int64, count=len(raw))
            starts = np.cumsum(counts) - counts
            doc_of_token = np.repeat(np.arange(len(counts)), counts)
            kept = codes != STOPPED
            kept_before = np.concatenate(([0], np.cumsum(kept)))
            rank = kept_before[1:] - kept_before[starts][doc_of_token] - 1
            original = np.arange(len(codes)) - starts[doc_of_token]
            lengths = kept_before[starts + counts] - kept_before[starts]
            terms, docs, rank, original = codes[kept], doc_of_token[kept], rank[kept], original[kept]
            first_position = np.zeros(len(counts), dtype=np.int64)
            leaders = rank == 0
            first_position[docs[leaders]] = original[leaders]
            target = self.fields[name]
            target.terms.append(terms.astype(np.int32))
            target.docs.append((docs + first_doc).astype(np.uint32))
            target.positions.append((first_position[docs] + rank).astype(np.uint32))
            target.lengths.append(lengths.astype(np.uint32))
            self._raw[name], self._counts[name] = [], []
        self._batch_start = len(self.node_ids)

    def finish(self, storage: Any, segment: ArraySegment) -> ArraySegment:
        self.flush()
        lengths: dict[str, UIntArray] = {}
        postings: list[tuple[str, FieldPostings]] = []
        for name in WRITTEN:
            names = self.coders[name].terms
            rank_of = np.empty(len(names), dtype=np.int64)
            rank_of[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
            tokens = self.fields[name]
            if name in FIELDS:
                lengths[name] = _concat(tokens.lengths, np.uint32)
            terms = _concat(tokens.terms, np.int32)
            docs = _concat(tokens.docs, np.uint32)
            positions = _concat(tokens.positions, np.uint32)
            self.fields[name] = _FieldTokens()
            sort = np.argsort(rank_of[terms], kind="stable")  # keeps doc and position order
            postings.append((name, _group(names, terms[sort], docs[sort], positions[sort], name)))
            del terms, docs, positions, sort
        write_segment(storage, segment, np.asarray(self.node_ids, dtype=np.int64), lengths, postings)
        return segment


def _concat(parts: Sequence[NDArray[Any]], dtype: Any) -> NDArray[Any]:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def _group(
    names: list[str], terms: NDArray[np.int32], docs: UIntArray, positions: UIntArray, field: str
) -> FieldPostings:
    """Split a field's sorted (term, doc, position) arrays into per-term postings."""
    result = FieldPostings(FIELD_BOOSTS.get(field, 1.0), [], [], [], [])
    if not len(terms):
        return result
    new_term = np.concatenate(([True], terms[1:] != terms[:-1]))
    new_posting = new_term | np.concatenate(([True], docs[1:] != docs[:-1]))
    posting_starts = np.flatnonzero(new_posting)
    freqs = np.diff(np.append(posting_starts, len(docs))).astype(np.uint32)
    posting_docs = docs[posting_starts]
    term_starts = np.flatnonzero(new_term[posting_starts])
    term_ends = np.append(term_starts[1:], len(posting_starts))
    token_starts = np.append(posting_starts, len(docs))
    for first, last in zip(term_starts.tolist(), term_ends.tolist(), strict=True):
        result.terms.append(names[int(terms[posting_starts[first]])])
        result.docs.append(posting_docs[first:last])
        result.freqs.append(freqs[first:last])
        result.positions.append(positions[token_starts[first] : token_starts[last]])
    return result


# -- reading nodes ------------------------------------------------------------------


def _rows(conn: sqlite3.Connection, library_id: int, after_id: int, upto_id: int | None) -> Iterator[tuple[Any, ...]]:
    sql = (
        "SELECT id, parent_id, depth, title, body, child_count FROM nodes"
        " WHERE library_id = ? AND id > ? AND parent_id IS NOT NULL"
    )
    params: list[Any] = [library_id, after_id]
    if upto_id is not None:
        sql += " AND id <= ?"
        params.append(upto_id)
    return conn.execute(sql + " ORDER BY id", params)


def _ancestor_tokens(conn: sqlite3.Connection, node_id: int) -> list[str]:
    """Tokens of the titles from the library's top level down to `node_id` (the root excluded)."""
    from kb.tree import path_titles

    tokens: list[str] = []
    for title in path_titles(conn, node_id)[1:]:
        tokens += TOKEN.findall(title)
    return tokens


def build_segment(
    workspace: Path,
    directory: Path,
    library_id: int,
    after_id: int,
    upto_id: int | None,
    segment_name: str,
    report: Any = None,
) -> ArraySegment:
    """Index the library's nodes with after_id < id <= upto_id into a new segment.

    Runs in the caller's process or in a worker process (so it opens its own
    connection). `report(n)` is called as nodes are read, for a progress bar; it may
    raise to cancel.
    """
    from kb.db import connect

    conn = connect(workspace)
    try:
        builder = _SegmentBuilder()
        paths: dict[int, list[str]] = {}  # inner nodes only: leaves are most of a library
        read = 0
        findall = TOKEN.findall
        for node_id, parent_id, depth, title, body, child_count in _rows(conn, library_id, after_id, upto_id):
            title_tokens = findall(title)
            parent_tokens = paths.get(parent_id)
            if parent_tokens is None:
                parent_tokens = [] if depth <= 1 else _ancestor_tokens(conn, parent_id)
                if depth > 1:
                    paths[parent_id] = parent_tokens
            path_tokens = parent_tokens + title_tokens
            if child_count:
                paths[node_id] = path_tokens
            builder.add(
                node_id, {"title": title_tokens, "body": findall(body), "path": path_tokens, SPELLING: title_tokens}
            )
            read += 1
            if report is not None and read % 1_000 == 0:
                report(1_000)
        if report is not None and read % 1_000:
            report(read % 1_000)
        storage = FileStorage(str(directory))
        segment = ArraySegment(ArrayCodec(), INDEX_NAME, segid=segment_name)
        return builder.finish(storage, segment)
    finally:
        conn.close()


# -- merging --------------------------------------------------------------------------


def merge_segments(storage: Any, segments: Sequence[ArraySegment], segment_name: str) -> ArraySegment:
    """One segment holding the documents of `segments`, in their order."""
    codec = ArrayCodec()
    readers = [
        (codec.terms_reader(storage, segment), codec.per_document_reader(storage, segment)) for segment in segments
    ]
    try:
        bases = np.cumsum([0] + [segment.doc_count_all() for segment in segments])
        node_ids = np.concatenate([docs.node_ids() for _, docs in readers])
        lengths = {name: np.concatenate([docs.lengths(name) for _, docs in readers]) for name in FIELDS}
        postings: list[tuple[str, FieldPostings]] = []
        for name in WRITTEN:
            merged: dict[str, list[tuple[Any, ...]]] = {}
            for number, (terms, _) in enumerate(readers):
                if name not in terms.indexed_field_names():
                    continue
                for (found_field, text), info in terms.items_from(name, b""):
                    if found_field != name:
                        break
                    merged.setdefault(text.decode("utf-8"), []).append((number, info))
            result = FieldPostings(FIELD_BOOSTS.get(name, 1.0), [], [], [], [])
            for text in sorted(merged):
                docs, freqs, positions = [], [], []
                for number, info in merged[text]:
                    offset, _length = info.extent()
                    found, where = read_postings(
                        readers[number][0]._postfile, offset, info.doc_frequency(), with_positions=True
                    )
                    docs.append(found.docs.astype(np.uint32) + np.uint32(bases[number]))
                    freqs.append(found.freqs)
                    assert where is not None
                    positions.append(where)
                result.terms.append(text)
                result.docs.append(np.concatenate(docs))
                result.freqs.append(np.concatenate(freqs))
                result.positions.append(np.concatenate(positions))
            postings.append((name, result))
        segment = ArraySegment(codec, INDEX_NAME, segid=segment_name)
        write_segment(storage, segment, node_ids, lengths, postings)
        return segment
    finally:
        for terms, docs in readers:
            terms.close()
            docs.close()


def merge_plan(segments: Sequence[ArraySegment]) -> list[int]:
    """Indexes of segments to merge now: the smallest order of magnitude holding at least
    LEVEL_WIDTH segments, with everything smaller; none if no level is that crowded. A merge never
    makes a segment of more than MAX_SEGMENT nodes (the largest candidates wait), so merging, like
    building, holds at most one bounded segment in memory."""
    sizes = [segment.doc_count_all() for segment in segments]
    levels = [int(math.log10(max(size, 1))) for size in sizes]
    for level in sorted(set(levels)):
        if (
            sum(1 for number, found in enumerate(levels) if found == level and sizes[number] < MAX_SEGMENT)
            < LEVEL_WIDTH
        ):
            continue
        chosen = sorted((number for number, found in enumerate(levels) if found <= level), key=lambda n: (sizes[n], n))
        while chosen and sum(sizes[n] for n in chosen) > MAX_SEGMENT:
            chosen.pop()
        if len(chosen) >= 2:
            return sorted(chosen)
    return []


# -- the whole build ------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    count: int
    top: int  # the highest node id now indexed


def _split(conn: sqlite3.Connection, library_id: int, after_id: int, total: int, parts: int) -> list[int | None]:
    """Upper node ids cutting the pending nodes into `parts` runs of equal size, in one pass over
    their ids (an OFFSET per cut would rescan the library once per segment)."""
    if parts == 1:
        return [None]
    cuts = [part * total // parts for part in range(1, parts)]  # the cut after the n-th pending node
    bounds: list[int | None] = []
    rows = conn.execute(
        "SELECT id FROM nodes WHERE library_id = ? AND id > ? AND parent_id IS NOT NULL ORDER BY id",
        (library_id, after_id),
    )
    for seen, (node_id,) in enumerate(rows, start=1):
        if seen == cuts[len(bounds)]:
            bounds.append(int(node_id))
            if len(bounds) == len(cuts):
                break
    bounds.append(None)
    return bounds


def _segment_name(generation: int, part: int) -> str:
    return f"g{generation}p{part}"


def add_segments(
    conn: sqlite3.Connection,
    workspace: Path,
    directory: Path,
    library_id: int,
    after_id: int,
    total: int,
    progress: Any,
    procs: int,
) -> BuildResult:
    """Index the pending nodes (id > after_id) as new segments and commit a new table of
    contents; the index is unchanged until that commit. Caller holds the write lock."""
    ix = safe_whoosh_index().open_dir(str(directory))
    storage = ix.storage
    toc = ix._read_toc()
    generation = toc.generation + 1
    workers = max(1, min(procs, total // PARALLEL_FROM or 1))
    parts = max(workers, math.ceil(total / MAX_SEGMENT))
    bounds = _split(conn, library_id, after_id, total, parts)
    parts = len(bounds)  # fewer when fewer nodes are pending than counted (another writer's race)
    lows = [after_id] + [bound for bound in bounds[:-1] if bound is not None]
    new: list[ArraySegment] = []
    names = [_segment_name(generation, part) for part in range(parts)]
    try:
        if workers == 1:
            report = _reporter(progress)
            for low, high, name in zip(lows, bounds, names, strict=True):
                new.append(build_segment(workspace, directory, library_id, low, high, name, report))
        else:
            new.extend(_build_in_processes(workspace, directory, library_id, lows, bounds, names, progress, workers))
        count = sum(segment.doc_count_all() for segment in new)
        segments = list(toc.segments) + [segment for segment in new if segment.doc_count_all()]
        plan = merge_plan(segments)
        if plan:
            merged = merge_segments(storage, [segments[n] for n in plan], _segment_name(generation, parts))
            segments = [merged] + [segment for n, segment in enumerate(segments) if n not in plan]
            segments.sort(key=lambda segment: segment.first_node_id)
        safe_whoosh_index().TOC(toc.schema, segments, generation).write(storage, INDEX_NAME)
    except BaseException:
        _remove_segment_files(directory, generation)
        raise
    safe_whoosh_index().clean_files(storage, INDEX_NAME, generation, segments)
    top = max((segment.last_node_id for segment in segments if segment.doc_count_all()), default=after_id)
    return BuildResult(count, top)


def _reporter(progress: Any) -> Any:
    def report(amount: int) -> None:
        progress.advance(amount)
        if progress.cancelled:
            raise BuildCancelled()

    return report


_shared_count: Any = None


def _count_into(counter: Any) -> None:
    global _shared_count
    _shared_count = counter


def _report_shared(amount: int) -> None:
    with _shared_count.get_lock():
        _shared_count.value += amount


def _build_part(
    workspace: Path, directory: Path, library_id: int, low: int, high: int | None, name: str
) -> ArraySegment:
    return build_segment(workspace, directory, library_id, low, high, name, _report_shared)


def _build_in_processes(
    workspace: Path,
    directory: Path,
    library_id: int,
    lows: list[int],
    bounds: list[int | None],
    names: list[str],
    progress: Any,
    workers: int,
) -> list[ArraySegment]:
    """The segments, built by `workers` processes, one segment at a time each. Workers are
    spawned, not forked: the app builds from a thread, and forking a process that has threads can
    deadlock the child. Workers count the nodes they read into shared memory; this process turns
    that into progress."""
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_count_into, initargs=(counter,))
    try:
        futures: list[Future[ArraySegment]] = [
            pool.submit(_build_part, workspace, directory, library_id, low, high, name)
            for low, high, name in zip(lows, bounds, names, strict=True)
        ]
        shown = 0
        while not all(future.done() for future in futures):
            wait(futures, timeout=0.2)
            seen = counter.value
            progress.advance(seen - shown)
            shown = seen
            if progress.cancelled:
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
                raise BuildCancelled()
        progress.advance(counter.value - shown)
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _remove_segment_files(directory: Path, generation: int) -> None:
    prefix = f"{INDEX_NAME}_{_segment_name(generation, 0)[:-1]}"
    for path in directory.glob(f"{prefix}*"):
        path.unlink(missing_ok=True)


def create_index(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    safe_whoosh_index().create_in(str(directory), schema(), indexname=INDEX_NAME)


def remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        os.unlink(path)
