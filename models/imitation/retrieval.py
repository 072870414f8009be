"""How the trainer reads Z for an item: the fields labelers read, and what search returns.

All retrieval lives in `Retriever` so that it changes in one place. For an item it
returns a `View`: the question, its options, and the nodes read — first the fields of
the reading plan (models.imitation.reading_plan) under the item's subject, then the top search
hits for the question. Each node carries a key saying which field it is relative to the
subject ("cited:people and society › population › total", "hit:geography › location",
"hit:elsewhere"), so learners can tell a population figure from a GDP figure whichever
nodes search happens to return. A node without text of its own is read as a person sees
it opened: its first children's titles and texts.

Search results and reads are cached per process by (library, index state, question,
hits, plan fields): evaluation and the IID guard ask for the same items again, and a
changed index changes the key.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kb.items import Item
from kb.libraries import Library
from kb.search import SearchError, SearchIndex
from kb.tree import Node, ancestors, children, node_by_id, titles_at_depth
from models.imitation.errors import TrainerError
from models.imitation.reading_plan import SEPARATOR, Field, ReadingPlan, masked, name_key, names_subject, walk

RETRIEVED_NODES = 5  # measured on the demo: 10, 20 and 40 hits gave a worse CV cross-entropy (bench notes in README)
BODY_CHARS = 400
CHILDREN_READ = 3
MAX_NAME_WORDS = 8
_CACHE_LIMIT = 50_000


def task_key(item: Item) -> str:
    """Items of one task share their options; items without a task are grouped by their options."""
    return item.task or "options:" + json.dumps(list(item.options), ensure_ascii=False)


@dataclass(frozen=True)
class ReadNode:
    key: str  # "cited:FIELD", "hit:FIELD" (relative to the subject) or "hit:elsewhere"
    title: str
    path: str
    text: str


@dataclass(frozen=True)
class View:
    """What the learners see of one item."""

    x: str
    options: tuple[str, ...]
    nodes: tuple[ReadNode, ...]

    def text(self) -> str:
        """Question and nodes as one text (the bag-of-words learner and the IID check read this)."""
        pieces = [self.x]
        pieces += [f"{node.title}\n{node.path}\n{node.text[:BODY_CHARS]}" for node in self.nodes]
        return "\n".join(pieces)


_HITS: dict[tuple[str, int, str, int], tuple[int, ...]] = {}
_VIEWS: dict[tuple[str, int, str, int, tuple[Field, ...]], tuple[ReadNode, ...]] = {}


def clear_cache() -> None:
    """Forget cached searches and reads (benches time a cold `train`)."""
    _HITS.clear()
    _VIEWS.clear()


class Retriever:
    """Reads Z for items of one library: search hits for the question, and the reading plan's
    fields under the subject the question names (`plan`: task key → fields, from labels)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        workspace: Path,
        library: Library,
        k: int = RETRIEVED_NODES,
        plan: ReadingPlan | None = None,
    ) -> None:
        self.conn = conn
        self.library = library
        self.k = k
        self.plan: ReadingPlan = plan or {}
        self.search = SearchIndex(conn, workspace, library)
        try:
            seen = self.search.indexed_up_to()
        except SearchError as error:
            raise TrainerError(str(error)) from error
        if seen is None:
            raise TrainerError(
                f"library {library.name!r} has no search index, which the trainer reads Z through; "
                "build it with `navigator index`"
            )
        self.state = seen
        self._paths: dict[int, list[Node]] = {}
        self._names: dict[int, dict[str, int]] = {}  # depth → name key → first node id

    # -- search -------------------------------------------------------------

    def hits(self, x: str) -> tuple[int, ...]:
        """Node ids of the top k search hits for the question as typed: the one place the
        trainer asks search. Search ranks deterministically (nodes matching all words first,
        then most of them), so the same index gives the same hits under any load."""
        key = (self.library.uid, self.state, x, self.k)
        cached = _HITS.get(key)
        if cached is not None:
            return cached
        try:
            found = tuple(hit.node_id for hit in self.search.search(x, limit=self.k).hits)
        except SearchError as error:
            raise TrainerError(str(error)) from error
        if len(_HITS) >= _CACHE_LIMIT:
            _HITS.clear()
        _HITS[key] = found
        return found

    # -- reading ------------------------------------------------------------

    def _path(self, node_id: int) -> list[Node]:
        path = self._paths.get(node_id)
        if path is None:
            path = ancestors(self.conn, node_id)
            self._paths[node_id] = path
        return path

    def _subject_in_hits(self, x: str, paths: Sequence[list[Node]]) -> Node | None:
        """The node the question names among the hits and their ancestors: the longest
        title first, then the best-ranked hit."""
        best: Node | None = None
        for path in paths:
            for node in path:
                if node.parent_id is None:
                    continue
                if (best is None or len(node.title) > len(best.title)) and names_subject(node.title, x):
                    best = node
        return best

    def _subject_at(self, x: str, depth: int) -> Node | None:
        """The node at `depth` (where labelers' subjects were) whose title the question names,
        the longest name first: found by name, as a person finds "Chile" before opening its
        fields, whichever nodes the question's search returns."""
        names = self._names.get(depth)
        if names is None:
            names = {}
            for node_id, title in titles_at_depth(self.conn, self.library.id, depth):
                if len(key := name_key(title)) >= 3:
                    names.setdefault(key, node_id)
            self._names[depth] = names
        words = name_key(x).split()
        for size in range(min(len(words), MAX_NAME_WORDS), 0, -1):
            found = sorted(
                names[key]
                for start in range(len(words) - size + 1)
                if (key := " ".join(words[start : start + size])) in names
            )
            if found:
                return node_by_id(self.conn, found[0])
        return None

    def _read(self, node: Node, key: str) -> ReadNode:
        text = node.body
        if not text.strip():
            text = "\n".join(
                f"{child.title}: {child.body}" for child in children(self.conn, node.id, limit=CHILDREN_READ)
            )
        path = SEPARATOR.join(n.title for n in self._path(node.id)[1:])
        return ReadNode(key, node.title, path, text)

    def view(self, item: Item) -> View:
        """The item as the learners see it."""
        fields = self.plan.get(task_key(item), ())
        key = (self.library.uid, self.state, item.x, self.k, fields)
        nodes = _VIEWS.get(key)
        if nodes is None:
            nodes = self._nodes(item.x, fields)
            if len(_VIEWS) >= _CACHE_LIMIT:
                _VIEWS.clear()
            _VIEWS[key] = nodes
        return View(item.x, item.options, nodes)

    def _nodes(self, x: str, fields: Sequence[Field]) -> tuple[ReadNode, ...]:
        hit_ids = self.hits(x)
        paths = [self._path(node_id) for node_id in hit_ids]
        read: list[ReadNode] = []
        subject: Node | None = None
        for field in fields:
            found = self._subject_at(x, field.subject_depth)
            subject = subject or found
            node = walk(self.conn, found, field.steps) if found is not None else None
            if node is not None:
                read.append(self._read(node, "cited:" + field.name))
        subject = subject or self._subject_in_hits(x, paths)
        for node_id, path in zip(hit_ids, paths, strict=True):
            if not path or path[-1].id != node_id:
                continue
            ids = [n.id for n in path]
            if subject is not None and subject.id in ids:
                below = path[ids.index(subject.id) + 1 :]
                where = SEPARATOR.join(masked(n.title) for n in below) or "subject"
            else:
                where = "elsewhere"
            read.append(self._read(path[-1], "hit:" + where))
        return tuple(read)

    def views(self, items: Sequence[Item]) -> dict[str, View]:
        return {item.uid: self.view(item) for item in items}

    def close(self) -> None:
        self.search.close()
