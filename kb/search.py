"""Full-text search over a library with whoosh, in a folder beside the workspace file.

SQLite stays the source of truth: the index holds title and path (stored, for
result lists) and body (indexed only; snippets read the body back from SQLite),
and can always be rebuilt from the file. Because nodes are append-only, an
incremental update indexes exactly the nodes above the highest id seen.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whoosh import highlight, index
from whoosh.analysis import StemmingAnalyzer
from whoosh.collectors import TimeLimit, TimeLimitCollector
from whoosh.fields import STORED, TEXT, Schema
from whoosh.lang.stopwords import stoplists
from whoosh.qparser import MultifieldParser
from whoosh.query import Query

from kb.db import transaction, utc_now
from kb.importing import ImportCancelled, NoProgress, Progress
from kb.libraries import Library

PATH_SEPARATOR = " › "
_MATCH_START, _MATCH_END = "\x02", "\x03"
SNIPPET_CHARS = 240
OWN_TEXT, WITH_PATH = ("title", "body"), ("title", "body", "path")
SEARCH_BUDGET_MS = 60.0  # for scoring; snippets come after it, and DESIGN.md §7 allows 100 ms in all
_WHOLE = highlight.WholeFragmenter()
_CONTEXT = highlight.ContextFragmenter(maxchars=SNIPPET_CHARS, surround=60)


class SearchError(Exception):
    """A query or an index that cannot be used; the message says what to do."""


Snippet = list[tuple[str, bool]]


@dataclass(frozen=True)
class SearchHit:
    node_id: int
    uid: str
    title: str
    path: str
    snippet: Snippet
    score: float


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: list[SearchHit]
    total: int  # exact when fewer hits than the limit were found, else whoosh's upper bound
    suggestion: str | None
    milliseconds: float
    limit: int = 20
    partial: bool = False  # the time budget ran out: the best hits among the documents scored so far

    def count_text(self) -> str:
        """ "3 matches", or "20 shown of at most 4,112" when the page is full (whoosh only bounds the count)."""
        if self.partial:
            return f"{len(self.hits)} shown; the search stopped at its time budget (add words to narrow it)"
        if len(self.hits) < self.limit:
            return f"{len(self.hits)} match" + ("" if len(self.hits) == 1 else "es")
        return f"{len(self.hits)} shown of at most {self.total:,}"


# Very common words match most of a large library and cost a search its budget while
# ranking nothing; negations stay searchable because in a library of claims they matter.
STOP_WORDS = frozenset(stoplists["en"]) - {"no", "not", "nor", "don", "t", "against"}


def schema() -> Schema:
    """Only what search needs: ids are stored, not indexed (nodes are append-only, so no
    updates by id), and spelling words come from titles alone, which halves the index."""
    stem = StemmingAnalyzer(stoplist=STOP_WORDS)
    return Schema(
        node_id=STORED(),
        uid=STORED(),
        title=TEXT(analyzer=stem, stored=True, spelling=True, field_boost=2.0),
        body=TEXT(analyzer=stem),
        path=TEXT(analyzer=stem, stored=True),
    )


def index_dir(workspace: Path, library: Library) -> Path:
    return workspace.parent / f"{workspace.name}.index" / library.uid


class _MarkFormatter(highlight.Formatter):  # type: ignore[misc]
    """Marks matches with control characters so callers style them without parsing markup."""

    between = " … "

    def format_token(self, text: str, token: object, replace: bool = False) -> str:
        return f"{_MATCH_START}{highlight.get_text(text, token, replace)}{_MATCH_END}"


def _segments(marked: str) -> Snippet:
    pieces: Snippet = []
    for chunk in marked.split(_MATCH_START):
        if _MATCH_END in chunk:
            match, rest = chunk.split(_MATCH_END, 1)
            pieces.append((match, True))
            if rest:
                pieces.append((rest, False))
        elif chunk:
            pieces.append((chunk, False))
    return pieces


def _clean(text: str) -> str:
    return text.replace(_MATCH_START, "").replace(_MATCH_END, "")


class SearchIndex:
    def __init__(self, conn: sqlite3.Connection, workspace: Path, library: Library) -> None:
        self.conn = conn
        self.library = library
        self.directory = index_dir(workspace, library)
        self._searcher: Any = None

    # -- state -----------------------------------------------------------

    def indexed_up_to(self) -> int | None:
        """The highest node id in the index, or None when there is no index yet.

        A recorded index whose folder is gone or unreadable is an error, not "none yet":
        the user has to be told to rebuild it.
        """
        row = self.conn.execute(
            "SELECT max_node_id FROM search_index_state WHERE library_id = ?", (self.library.id,)
        ).fetchone()
        if row is None:
            return None
        try:
            present = index.exists_in(str(self.directory))
        except Exception as error:
            raise self._damaged(error) from error
        if not present:
            raise self._damaged(FileNotFoundError("the index folder is missing"))
        return int(row[0])

    def _damaged(self, error: BaseException) -> SearchError:
        return SearchError(
            f"the search index for library {self.library.name!r} at {self.directory} is missing or damaged "
            f"({error}); rebuild it with `navigator index --rebuild`"
        )

    def pending(self) -> int:
        """How many of the library's nodes the index has not seen yet (all of them if it is damaged)."""
        try:
            seen = self.indexed_up_to()
        except SearchError:
            seen = None
        row = self.conn.execute(
            "SELECT COUNT(*) FROM nodes WHERE library_id = ? AND id > ? AND parent_id IS NOT NULL",
            (self.library.id, -1 if seen is None else seen),
        ).fetchone()
        return int(row[0])

    # -- writing ---------------------------------------------------------

    def rebuild(self, progress: Progress | None = None, *, procs: int = 1) -> int:
        """Index the whole library from SQLite into a fresh folder, then swap it in."""
        fresh = self.directory.with_name(self.directory.name + ".building")
        if fresh.exists():
            shutil.rmtree(fresh)
        fresh.mkdir(parents=True)
        ix = index.create_in(str(fresh), schema())
        count, top = self._write(ix, after_id=-1, progress=progress or NoProgress(), procs=procs)
        self.close()
        if self.directory.is_dir():
            shutil.rmtree(self.directory)
        elif self.directory.exists():
            self.directory.unlink()
        fresh.rename(self.directory)
        self._record(top, count, replace=True)
        return count

    def update(self, progress: Progress | None = None, *, procs: int = 1) -> int:
        """Index the nodes added since the last update; builds from scratch when there is no index."""
        try:
            seen = self.indexed_up_to()
        except SearchError:
            seen = None
        if seen is None:
            return self.rebuild(progress, procs=procs)
        ix = self._open()
        count, top = self._write(ix, after_id=seen, progress=progress or NoProgress(), procs=procs)
        if count:
            self._record(top, count, replace=False)
        return count

    def _record(self, top: int, count: int, *, replace: bool) -> None:
        with transaction(self.conn):
            if replace:
                self.conn.execute(
                    "INSERT OR REPLACE INTO search_index_state (library_id, max_node_id, doc_count, built_at)"
                    " VALUES (?, ?, ?, ?)",
                    (self.library.id, top, count, utc_now()),
                )
            else:
                self.conn.execute(
                    "UPDATE search_index_state SET max_node_id = ?, doc_count = doc_count + ?, built_at = ?"
                    " WHERE library_id = ?",
                    (top, count, utc_now(), self.library.id),
                )

    def _documents(self, after_id: int) -> Iterator[dict[str, object]]:
        """Nodes in id order with their paths. Parents precede children in id order,
        so paths come from a map of inner nodes instead of a query per node."""
        paths: dict[int, str] = {}
        rows = self.conn.execute(
            "SELECT id, uid, parent_id, depth, title, body, child_count FROM nodes"
            " WHERE library_id = ? AND id > ? AND parent_id IS NOT NULL ORDER BY id",
            (self.library.id, after_id),
        )
        for node_id, uid, parent_id, depth, title, body, child_count in rows:
            if parent_id in paths:
                parent_path = paths[parent_id]
            elif depth <= 1:
                parent_path = ""
            else:
                parent_path = self._path_of(parent_id)
            path = f"{parent_path}{PATH_SEPARATOR}{title}" if parent_path else title
            if child_count:
                paths[node_id] = path
            yield {"node_id": node_id, "uid": uid, "title": title, "body": body, "path": path}

    def _path_of(self, node_id: int) -> str:
        from kb.tree import path_titles

        return PATH_SEPARATOR.join(path_titles(self.conn, node_id)[1:])

    def _write(self, ix: index.Index, *, after_id: int, progress: Progress, procs: int) -> tuple[int, int]:
        total = self.conn.execute(
            "SELECT COUNT(*) FROM nodes WHERE library_id = ? AND id > ? AND parent_id IS NOT NULL",
            (self.library.id, after_id),
        ).fetchone()[0]
        progress.start(f"indexing {self.library.name}", total)
        options: dict[str, object] = {"limitmb": 1024}
        if procs > 1:
            # One merged segment at the end: slower to build, but a query then walks one
            # posting list per term instead of one per process.
            options.update(procs=procs, multisegment=False)
        writer = ix.writer(**options)
        count, top = 0, after_id
        try:
            for document in self._documents(after_id):
                writer.add_document(**document)
                count += 1
                top = int(document["node_id"])  # type: ignore[call-overload]
                if count % 1_000 == 0:
                    progress.advance(1_000)
                    if progress.cancelled:
                        raise ImportCancelled()
            writer.commit()
        except BaseException:
            writer.cancel()
            raise
        progress.advance(count % 1_000)
        return count, top

    def _open(self) -> index.Index:
        try:
            return index.open_dir(str(self.directory))
        except Exception as error:
            raise self._damaged(error) from error

    # -- reading ---------------------------------------------------------

    def search(self, text: str, *, limit: int = 20, budget_ms: float | None = SEARCH_BUDGET_MS) -> SearchResult:
        """Best hits for `text`. With a budget, whoosh stops scoring when it runs out and the
        result says it is partial: a labeler typing gets an answer within one budget, and
        one more word narrows the search. `budget_ms=None` always scores everything."""
        started = time.perf_counter()
        deadline = None if budget_ms is None else started + budget_ms / 1000
        text = text.strip()
        if not text:
            return SearchResult(text, [], 0, None, 0.0)
        # Once a searcher is open, its refresh notices a missing or damaged index itself.
        if self._searcher is None and self.indexed_up_to() is None:
            raise SearchError(f"library {self.library.name!r} has no search index yet; build it with `navigator index`")
        searcher = self._current_searcher()
        try:
            own, wide = (MultifieldParser(fields, searcher.schema).parse(text) for fields in (OWN_TEXT, WITH_PATH))
        except Exception as error:
            raise SearchError(
                f'cannot read the query {text!r}; search plain words, "a phrase", or title:, body:, path: words'
            ) from error
        try:
            hits, total, partial = self._collect(searcher, own, limit, deadline)
            if len(hits) < limit and not partial:
                # The wide query matches everything the first one did, so when it completes its
                # own ranking (BM25F over all three fields) orders the page; if it runs out of
                # time, the complete first-pass hits stay in front of its partial ones.
                wide_hits, wide_total, partial = self._collect(searcher, wide, limit, deadline)
                if partial:
                    seen = {hit.node_id for hit in hits}
                    hits = (hits + [hit for hit in wide_hits if hit.node_id not in seen])[:limit]
                    total = max(len(hits), wide_total)
                else:
                    hits, total = wide_hits, wide_total
            # A suggestion is a convenience: offered only while the search is within its budget.
            in_budget = deadline is None or time.perf_counter() < deadline
            suggestion = self._suggest(searcher, wide, text) if not hits and not partial and in_budget else None
        except SearchError:
            raise
        except Exception as error:
            raise self._damaged(error) from error
        elapsed = (time.perf_counter() - started) * 1000
        return SearchResult(text, hits, total, suggestion, elapsed, limit, partial)

    def _collect(
        self, searcher: Any, query: Query, limit: int, deadline: float | None
    ) -> tuple[list[SearchHit], int, bool]:
        """The best `limit` hits, the match count (exact when the page is not full), and
        whether the time budget cut scoring short."""
        collector = searcher.collector(limit=limit)
        partial = False
        if deadline is not None:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return [], 0, True
            collector = TimeLimitCollector(collector, timelimit=remaining, use_alarm=False)
        try:
            searcher.search_with_collector(query, collector)
        except TimeLimit:
            partial = True
        results = collector.results()
        results.formatter = _MarkFormatter()
        hits = self._hits(results)
        if len(hits) < limit and not partial:
            return hits, len(hits), False
        return hits, max(len(hits), results.estimated_length()), partial

    def _current_searcher(self) -> Any:
        """Opening an index costs far more than a query, so one searcher serves every
        query and is refreshed (cheaply, only if the index changed) each time."""
        try:
            if self._searcher is None:
                self._searcher = self._open().searcher()
            else:
                self._searcher = self._searcher.refresh()
        except SearchError:
            raise
        except Exception as error:
            self._searcher = None
            raise self._damaged(error) from error
        return self._searcher

    def close(self) -> None:
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None

    def _hits(self, results: Any) -> list[SearchHit]:
        # Not list(results): that asks for len(), which counts every match in the index.
        found = [results[index] for index in range(results.scored_length())]
        if not found:
            return []
        ids = [hit["node_id"] for hit in found]
        bodies = dict(
            self.conn.execute(f"SELECT id, body FROM nodes WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall()
        )
        hits = []
        for hit in found:
            body = _clean(bodies.get(hit["node_id"], ""))
            results.fragmenter = _WHOLE if len(body) <= SNIPPET_CHARS else _CONTEXT
            marked = hit.highlights("body", text=body) if body else ""
            if marked:
                snippet = _segments(marked)
            elif body:  # matched by title or path: the node's own text says more than its title again
                snippet = [(body[:SNIPPET_CHARS], False)]
            else:
                results.fragmenter = _WHOLE
                snippet = _segments(hit.highlights("title", text=_clean(hit["title"]))) or [(hit["title"], False)]
            hits.append(SearchHit(hit["node_id"], hit["uid"], hit["title"], hit["path"], snippet, hit.score))
        return hits

    def _suggest(self, searcher: Any, query: Query, text: str) -> str | None:
        """Spelling from title words only, and only among words sharing the first two letters:
        against every term of a large index a suggestion would cost most of a second."""
        titles = searcher.corrector("title")
        correctors = {field: titles for field in ("title", "body", "path")}
        correction = searcher.correct_query(query, text, correctors=correctors, prefix=2, maxdist=2)
        corrected = correction.string
        return corrected if corrected and corrected != text else None
