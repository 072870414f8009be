"""Tree queries: keyset paging on a huge fan-out, breadcrumbs, siblings, stored sizes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.libraries import Library, create_library
from kb.tree import add_children, ancestors, children, node_by_id, node_by_uid, resolve_node, sibling, subtree_size

WIDE = 100_000


def synthetic(wide: int) -> Iterator[StagedNode]:
    """A book with a chapter of `wide` statements and a small nested chapter."""
    yield StagedNode(1, "book", None, "book", "The book")
    yield StagedNode(2, "wide", "book", "chapter", "A very wide chapter")
    for index in range(wide):
        yield StagedNode(3 + index, f"s{index}", "wide", "statement", f"Statement {index}")
    yield StagedNode(wide + 3, "deep", "book", "chapter", "A deep chapter")
    parent = "deep"
    for level in range(6):
        yield StagedNode(wide + 4 + level, f"d{level}", parent, "section", f"Level {level}")
        parent = f"d{level}"


@pytest.fixture(scope="module")
def tree_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[sqlite3.Connection, Library]:
    conn = connect(tmp_path_factory.mktemp("tree") / "w.db", create=True)
    library = create_library(conn, "z")
    import_staged(conn, library, synthetic(WIDE), source="synthetic", importer="test")
    return conn, library


def test_a_hundred_thousand_children_page_in_order_without_loading_all(
    tree_db: tuple[sqlite3.Connection, Library],
) -> None:
    conn, _ = tree_db
    wide = node_by_uid(conn, "wide")
    assert wide is not None and wide.child_count == WIDE
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = children(conn, wide.id, after_position=after, limit=500)
        if not page:
            break
        assert len(page) <= 500
        seen.extend(node.uid for node in page)
        after = page[-1].position
        pages += 1
    assert pages == WIDE // 500
    assert seen == [f"s{index}" for index in range(WIDE)]


def test_children_query_walks_the_parent_index(tree_db: tuple[sqlite3.Connection, Library]) -> None:
    """O(page) by construction: the plan must seek the (parent_id, position) index, not scan or sort."""
    conn, _ = tree_db
    plan = " ".join(
        row[3]
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM nodes WHERE parent_id = ? AND position > ? "
            "AND review != 'rejected' ORDER BY position LIMIT 200",
            (1, -1),
        )
    )
    assert "nodes_by_parent" in plan
    assert "TEMP B-TREE" not in plan


def test_breadcrumbs_run_root_first(tree_db: tuple[sqlite3.Connection, Library]) -> None:
    conn, library = tree_db
    leaf = node_by_uid(conn, "d5")
    assert leaf is not None
    trail = ancestors(conn, leaf.id)
    assert [node.title for node in trail] == ["z", "The book", "A deep chapter"] + [f"Level {n}" for n in range(6)]
    assert trail[0].id == library.root_id
    assert [node.depth for node in trail] == list(range(len(trail)))


def test_siblings_step_both_ways_and_stop_at_the_ends(tree_db: tuple[sqlite3.Connection, Library]) -> None:
    conn, _ = tree_db
    middle = node_by_uid(conn, "s500")
    assert middle is not None
    following, preceding = sibling(conn, middle, +1), sibling(conn, middle, -1)
    assert following is not None and following.uid == "s501"
    assert preceding is not None and preceding.uid == "s499"
    first = node_by_uid(conn, "s0")
    assert first is not None and sibling(conn, first, -1) is None


def test_stored_sizes_match_a_full_count(tree_db: tuple[sqlite3.Connection, Library]) -> None:
    conn, library = tree_db
    counted = conn.execute("SELECT COUNT(*) FROM nodes WHERE library_id = ?", (library.id,)).fetchone()[0]
    assert subtree_size(conn, library.root_id) == counted
    book = node_by_uid(conn, "book")
    assert book is not None and book.subtree_size == counted - 1 and book.child_count == 2


def test_adding_children_keeps_counts_on_every_ancestor(tmp_path: Path) -> None:
    conn = connect(tmp_path / "w.db", create=True)
    library = create_library(conn, "z")
    import_staged(conn, library, synthetic(10), source="synthetic", importer="test")
    leaf = node_by_uid(conn, "d5")
    assert leaf is not None
    before = [node.subtree_size for node in ancestors(conn, leaf.id)]
    added = add_children(conn, leaf, [("one", "", "statement"), ("two", "body", "statement")], origin="human")
    assert [node.position for node in added] == [0, 1]
    after = [node.subtree_size for node in ancestors(conn, leaf.id)]
    assert after == [size + 2 for size in before]
    refreshed = node_by_id(conn, leaf.id)
    assert refreshed is not None and refreshed.child_count == 2
    assert resolve_node(conn, f"#{added[0].id}").title == "one"
