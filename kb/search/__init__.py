"""Full-text search over a library: a whoosh index in a folder beside the workspace file.

SQLite stays the source of truth; the index can always be rebuilt from it. People,
the imitation trainer and the simulated labeler all read Z through `SearchIndex.search`,
so it answers the way a person expects and the same way every time:

- every word or quoted phrase is a clause; nodes matching all clauses rank first, then
  those matching most of them, then by BM25F, then by node id (`kb.search.query`,
  `kb.search.rank`). Question words and punctuation never empty a result;
- every match is found and counted, and the page is exact: every document that can reach
  it is scored in full, and one is left unscored only when it provably cannot (it matches
  fewer words than the page's last, or its block's bound is below it). No clock and no
  cut-off anywhere in ranking, so the same query on the same index returns the same hits in
  the same order, whatever the load;
- the index is written in whole segments from numpy arrays (`kb.search.build`,
  `kb.search.codec`), so a million nodes index in minutes and opening one costs
  milliseconds.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.db import in_chunks, marks, transaction, utc_now
from kb.errors import CHECK_CANCELLED, Cancelled, ZNavigatorError
from kb.libraries import Library
from kb.progress import ImportCancelled, NoProgress, Progress
from kb.search.build import BuildCancelled, add_segments, create_index, remove_tree
from kb.search.codec import format_problem, read_postings
from kb.search.query import QuerySyntaxError, plan
from kb.search.rank import IndexView, rank
from kb.search.safe_unpickle import INDEX_NAME, whoosh_index
from kb.search.snippet import snippet
from kb.search.text import FIELDS, SPELLING, TOKEN, spelling_of, term_of
from kb.tree import node_path

WRITE_LOCK_SECONDS = 60.0
SUGGESTION_TERMS = 20_000  # spelling candidates examined per word, in dictionary order
SUGGESTION_DISTANCE = 2


class SearchError(ZNavigatorError):
    """A query or an index that cannot be used; the message says what to do."""


Snippet = list[tuple[str, bool]]  # (piece of text, is it a match); kb.search.snippet makes them


@dataclass(frozen=True)
class SearchHit:
    node_id: int
    uid: str
    title: str
    path: str
    snippet: Snippet
    score: float
    matched: tuple[str, ...] = ()  # the query's words and phrases this node contains
    coverage: int = 0  # how many of them


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: list[SearchHit]
    total: int  # every node that matched, exactly
    suggestion: str | None
    milliseconds: float
    limit: int = 20
    words: tuple[str, ...] = ()  # the clauses the query was read as, in order
    notes: tuple[str, ...] = field(default_factory=tuple)

    def count_text(self) -> str:
        if len(self.hits) < self.total:
            return f"{len(self.hits)} shown of {self.total:,} matches"
        return f"{self.total} match" + ("" if self.total == 1 else "es")

    def missing(self, hit: SearchHit) -> tuple[str, ...]:
        return tuple(word for word in self.words if word not in hit.matched)


def index_dir(workspace: Path, library: Library) -> Path:
    return workspace.parent / f"{workspace.name}.index" / library.uid


class SearchIndex:
    def __init__(self, conn: sqlite3.Connection, workspace: Path, library: Library) -> None:
        self.conn = conn
        self.workspace = workspace
        self.library = library
        self.directory = index_dir(workspace, library)
        self._searcher: Any = None
        self._view: Any = None

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

        index = whoosh_index()
        try:
            present = index.exists_in(str(self.directory), indexname=INDEX_NAME)
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
        return self._count_after(-1 if seen is None else seen)

    def _count_after(self, after_id: int) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM nodes WHERE library_id = ? AND id > ? AND parent_id IS NOT NULL",
            (self.library.id, after_id),
        ).fetchone()
        return int(row[0])

    # -- writing ---------------------------------------------------------

    def rebuild(self, progress: Progress | None = None, *, procs: int = 1) -> int:
        """Index the whole library from SQLite into a fresh folder, then swap it in: the old
        index answers until the new one is complete."""

        progress = progress or NoProgress()
        fresh = self.directory.with_name(self.directory.name + ".building")
        remove_tree(fresh)
        create_index(fresh)
        total = self._count_after(-1)
        progress.start(f"indexing {self.library.name}", total)
        try:
            result = add_segments(self.conn, self.workspace, fresh, self.library.id, -1, total, progress, procs)
        except BuildCancelled as error:
            remove_tree(fresh)
            raise ImportCancelled() from error
        self.close()
        remove_tree(self.directory)
        fresh.rename(self.directory)
        self._record(result.top, result.count, replace=True)
        return result.count

    def update(self, progress: Progress | None = None, *, procs: int = 1) -> int:
        """Index the nodes added since the last update; builds from scratch when there is no index.

        Holds the index's write lock, so two processes updating at once index each node once."""

        index = whoosh_index()

        try:
            seen = self.indexed_up_to()
        except SearchError:
            seen = None
        if seen is None:
            return self.rebuild(progress, procs=procs)
        progress = progress or NoProgress()
        try:
            ix = index.open_dir(str(self.directory), indexname=INDEX_NAME)
            lock = ix.lock("WRITELOCK")
            stale = format_problem(ix._segments(), ix.schema)
        except Exception as error:
            raise self._damaged(error) from error
        if stale:
            return self.rebuild(progress, procs=procs)  # an older release's index: rewrite it whole
        deadline = time.monotonic() + WRITE_LOCK_SECONDS
        while not lock.acquire(blocking=False):
            if time.monotonic() > deadline:
                raise SearchError(f"the search index at {self.directory} is being written by another process")
            time.sleep(0.05)
        try:
            seen = max(self.indexed_up_to() or -1, self._segments_top(ix))
            total = self._count_after(seen)
            if not total:
                return 0
            progress.start(f"indexing {self.library.name}", total)
            try:
                result = add_segments(
                    self.conn, self.workspace, self.directory, self.library.id, seen, total, progress, procs
                )
            except BuildCancelled as error:
                raise ImportCancelled() from error
            self._record(result.top, result.count, replace=False)
            return result.count
        finally:
            lock.release()

    @staticmethod
    def _segments_top(ix: Any) -> int:
        """The highest node id any committed segment holds: the index's own record, which a
        crash between committing segments and recording them in SQLite cannot lose."""
        return max((int(getattr(s, "last_node_id", -1)) for s in ix._segments() if s.doc_count_all()), default=-1)

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

    # -- reading ---------------------------------------------------------

    def search(self, text: str, *, limit: int = 20) -> SearchResult:
        """The best `limit` nodes for `text`, ranked by how many of its words they match and
        then by BM25F, and the exact number of nodes that matched."""

        started = time.perf_counter()
        text = text.strip()
        if not text:
            return SearchResult(text, [], 0, None, 0.0, limit)
        # Once a searcher is open, its refresh notices a missing or damaged index itself.
        if self._searcher is None and self.indexed_up_to() is None:
            raise SearchError(f"library {self.library.name!r} has no search index yet; build it with `navigator index`")
        view = self._current_view()
        try:
            wanted = plan(text, view.searcher.schema)
        except QuerySyntaxError as error:
            raise SearchError(
                f'cannot read the query {text!r} ({error}); search plain words, "a phrase", title:, body:, path: '
                "words, -word to leave a word out"
            ) from error
        try:
            ranked = rank(view, wanted, limit)
            hits = self._hits(ranked, [clause.label for clause in wanted.clauses])
            suggestion = self._suggest(view, text)
        except SearchError:
            raise
        except Exception as error:
            raise self._damaged(error) from error
        elapsed = (time.perf_counter() - started) * 1000
        words = tuple(clause.label for clause in wanted.clauses)
        return SearchResult(
            text, hits, ranked.total, suggestion, elapsed, limit, words, tuple(wanted.notes + ranked.notes)
        )

    def _current_view(self) -> Any:
        """Opening an index costs more than a query, so one searcher serves every query and
        is refreshed (cheaply, only if the index changed) each time."""

        index = whoosh_index()

        try:
            if self._searcher is None:
                searcher = index.open_dir(str(self.directory), indexname=INDEX_NAME).searcher()
                self._searcher = searcher
            else:
                searcher = self._searcher.refresh()
            if searcher is not self._searcher or self._view is None:
                problem = format_problem(
                    searcher.reader().segments() if searcher.doc_count_all() else [], searcher.schema
                )
                if problem:
                    searcher.close()
                    self._searcher = self._view = None
                    raise SearchError(
                        f"the search index for library {self.library.name!r} cannot be read: {problem}; rebuild it"
                        " with `navigator index --rebuild`"
                    )
                self._searcher = searcher
                self._view = IndexView(searcher)
        except SearchError:
            raise
        except Exception as error:
            self._searcher = None
            raise self._damaged(error) from error
        return self._view

    def verify(self, *, thorough: bool = False, progress: Progress | None = None) -> int:
        """Open every segment and read its per-node arrays; `thorough` also reads every
        posting list and checks it is in order and inside its segment (minutes at ten million
        nodes: the bar counts the nodes of the segments read, and a cancel stops between two
        lists). Returns the number of nodes indexed; raises SearchError naming the fix when
        something is damaged."""

        if self.indexed_up_to() is None:
            raise SearchError(f"library {self.library.name!r} has no search index yet; build it with `navigator index`")
        progress = progress or NoProgress()
        view = self._current_view()
        if thorough:
            progress.start(f"reading the search index of {self.library.name}, segment by segment", int(view.count))
        try:
            for leaf, _ in view.leaves:
                count = leaf.doc_count_all()
                docs_reader = leaf._perdoc
                if len(docs_reader.node_ids()) != count:
                    raise ValueError(f"segment {leaf.segment()} lists {count} nodes but stores another number")
                if not thorough:
                    continue
                terms = leaf._terms
                for field_name in (*FIELDS, SPELLING):
                    for (found, text), info in terms.items_from(field_name, b""):
                        if found != field_name:
                            break
                        if progress.cancelled:
                            raise Cancelled(CHECK_CANCELLED)
                        offset, _ = info.extent()
                        postings, positions = read_postings(
                            terms._postfile, offset, info.doc_frequency(), with_positions=True
                        )
                        docs = postings.docs.astype("int64")
                        if len(docs) and (docs[-1] >= count or (len(docs) > 1 and (docs[1:] <= docs[:-1]).any())):
                            raise ValueError(f"postings of {field_name}:{text!r} are out of order or out of range")
                progress.advance(count)
            return int(view.count)
        except (SearchError, Cancelled):
            raise
        except Exception as error:
            raise self._damaged(error) from error

    def close(self) -> None:
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None
            self._view = None

    def _hits(self, ranked: Any, labels: list[str]) -> list[SearchHit]:
        if not ranked.node_ids:
            return []
        rows = {
            row[0]: row[1:]
            for chunk in in_chunks(ranked.node_ids)
            for row in self.conn.execute(
                f"SELECT id, uid, title, body FROM nodes WHERE id IN ({marks(len(chunk))})", chunk
            )
        }
        words = {term for field, term in ranked.terms if field in ("title", "body", "path")}
        hits = []
        for node_id, score, hit_clauses in zip(ranked.node_ids, ranked.scores, ranked.clause_hits, strict=True):
            uid, title, body = rows.get(node_id, ("", "", ""))
            # A node matched by its title or path shows its own text: it says more than the title again.
            shown = snippet(body, words) if body else snippet(title, words)
            path = node_path(self.conn, node_id)
            matched = tuple(label for label, hit in zip(labels, hit_clauses, strict=True) if hit)
            hits.append(SearchHit(node_id, uid, title, path, shown, score, matched, len(matched)))
        return hits

    def _suggest(self, view: Any, text: str) -> str | None:
        """The query with each word that is nowhere in the library replaced by the closest
        title word (edit distance ≤ 2, same first two letters, most frequent first)."""

        reader = view.searcher.reader()
        replaced = text
        changed = False
        for match in TOKEN.finditer(text):
            word = match.group()
            term = term_of(word)
            spelled = spelling_of(word)
            if term is None or spelled is None or "*" in word:
                continue
            if any(view.doc_frequency(field, term.encode("utf-8")) for field in ("title", "body", "path")):
                continue
            better = _closest(reader, spelled)
            if better is not None:
                if word[:1].isupper():
                    better = better[:1].upper() + better[1:]
                replaced = replaced.replace(word, better, 1)
                changed = True
        return replaced if changed else None


@dataclass(frozen=True)
class IndexUpdate:
    """What bringing a library's index up to date after new nodes did. `problem` is why it could
    not (a damaged index, another process holding it); the nodes are saved either way."""

    library: str
    indexed: int
    problem: str | None = None

    @property
    def warning(self) -> str | None:
        if self.problem is None:
            return None
        return (
            f"the new nodes are saved, but the search index of {self.library!r} is behind ({self.problem}); "
            f"`navigator index --library {self.library}` brings it up to date"
        )


def index_new_nodes(
    conn: sqlite3.Connection,
    workspace: Path,
    library: Library,
    progress: Progress | None = None,
    *,
    procs: int = 1,
) -> IndexUpdate:
    """The one policy for the index after nodes are added (import, unpack, ask, merge, edits), from
    every surface: SQLite already holds the nodes and stays the truth, so an index that cannot be
    updated never fails what added them; the caller shows `warning`, and `navigator index` (or the
    doctor) is the fix. A cancel is still a cancel."""
    try:
        indexed = SearchIndex(conn, workspace, library).update(progress, procs=procs)
    except SearchError as error:
        return IndexUpdate(library.name, 0, str(error))
    return IndexUpdate(library.name, indexed)


def _closest(reader: Any, word: str) -> str | None:
    from whoosh.support.levenshtein import distance

    best: tuple[int, int, str] | None = None
    for examined, found in enumerate(reader.expand_prefix(SPELLING, word[:2])):
        if examined >= SUGGESTION_TERMS:
            break
        candidate = found.decode("utf-8") if isinstance(found, bytes) else str(found)
        if candidate == word or abs(len(candidate) - len(word)) > SUGGESTION_DISTANCE:
            continue
        steps = distance(candidate, word, limit=SUGGESTION_DISTANCE)
        if steps > SUGGESTION_DISTANCE:
            continue
        key = (steps, -int(reader.doc_frequency(SPELLING, found)), candidate)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]
