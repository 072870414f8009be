"""Full-text search over a small library: building, hits, stemming, updates, damage and repair."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from kb.formats.jsonl import read_jsonl_nodes
from kb.importing import NoProgress, import_staged
from kb.libraries import Library, create_library
from kb.search import PATH_SEPARATOR, SearchError, SearchIndex
from kb.tree import add_children, node_by_uid

NODES = [
    {"id": "geo", "title": "Geography"},
    {"id": "asia", "parent": "geo", "title": "Asia"},
    {"id": "mg", "parent": "asia", "title": "Mongolia", "body": "Mongolia is landlocked between Russia and China."},
    {"id": "europe", "parent": "geo", "title": "Europe"},
    {"id": "fr", "parent": "europe", "title": "France", "body": "France has a long coastline on the Atlantic."},
    {"id": "ch", "parent": "europe", "title": "Switzerland", "body": "Switzerland is landlocked and mountainous."},
    {"id": "econ", "title": "Economy", "body": "Trade and industry."},
]


@pytest.fixture
def small(conn: sqlite3.Connection, library: Library, workspace: Path, write_jsonl) -> SearchIndex:
    path = write_jsonl("geo.jsonl", NODES)
    import_staged(conn, library, read_jsonl_nodes(path, NoProgress()), source=str(path), importer="jsonl")
    return SearchIndex(conn, workspace, library)


def uids(result) -> list[str]:
    return [hit.uid for hit in result.hits]


def test_rebuild_indexes_every_node_but_the_root(small):
    assert small.indexed_up_to() is None
    assert small.pending() == len(NODES)
    assert small.rebuild() == len(NODES)
    assert small.pending() == 0
    assert small.directory.is_dir()
    assert small.update() == 0


def test_search_before_any_index_says_how_to_build_it(small):
    with pytest.raises(SearchError, match="navigator index"):
        small.search("france")


def test_hits_carry_path_and_snippet(small):
    small.rebuild()
    result = small.search("coastline")
    assert uids(result) == ["fr"]
    hit = result.hits[0]
    assert hit.title == "France"
    assert hit.path == PATH_SEPARATOR.join(["Geography", "Europe", "France"])
    assert hit.node_id == node_by_uid(small.conn, "fr", small.library.id).id
    assert ("coastline", True) in hit.snippet
    assert "".join(text for text, _ in hit.snippet) == "France has a long coastline on the Atlantic."
    assert result.total == 1 and result.suggestion is None


def test_title_only_hit_gets_a_title_snippet(small):
    small.rebuild()
    hits = small.search("asia").hits
    assert [hit.uid for hit in hits] == ["asia", "mg"]  # the title outranks the path
    assert hits[0].snippet == [("Asia", True)]


def test_stemming_finds_other_forms(small):
    small.rebuild()
    assert sorted(uids(small.search("landlock"))) == ["ch", "mg"]
    assert uids(small.search("mountain")) == ["ch"]
    assert uids(small.search("coastlines")) == ["fr"]


def test_path_words_are_searchable(small):
    small.rebuild()
    assert set(uids(small.search("europe landlocked"))) == {"ch"}


def test_empty_query_returns_nothing(small):
    small.rebuild()
    result = small.search("   ")
    assert result.hits == [] and result.total == 0


def test_incremental_update_makes_new_nodes_findable(small, conn):
    small.rebuild()
    before = small.indexed_up_to()
    asia = node_by_uid(conn, "asia", small.library.id)
    add_children(
        conn,
        asia,
        [
            ("Nepal", "Nepal is landlocked in the Himalaya.", "statement"),
            ("Bhutan", "A kingdom of monasteries.", "statement"),
        ],
        origin="human",
    )
    assert small.pending() == 2
    assert small.search("himalaya").hits == []

    assert small.update() == 2
    assert small.indexed_up_to() > before and small.pending() == 0
    (hit,) = small.search("himalaya").hits
    assert hit.title == "Nepal" and hit.path == PATH_SEPARATOR.join(["Geography", "Asia", "Nepal"])
    assert sorted(hit.title for hit in small.search("landlocked").hits) == ["Mongolia", "Nepal", "Switzerland"]
    count = small.conn.execute(
        "SELECT doc_count FROM search_index_state WHERE library_id = ?", (small.library.id,)
    ).fetchone()[0]
    assert count == len(NODES) + 2


def test_update_without_an_index_builds_one(small):
    assert small.update() == len(NODES)
    assert uids(small.search("coastline")) == ["fr"]


def test_libraries_have_separate_indexes(small, conn, workspace, write_jsonl):
    small.rebuild()
    other = create_library(conn, "other")
    path = write_jsonl("other.jsonl", [{"id": "x", "title": "Coastline of Norway"}])
    import_staged(conn, other, read_jsonl_nodes(path, NoProgress()), source=str(path), importer="jsonl")
    other_index = SearchIndex(conn, workspace, other)
    other_index.rebuild()
    assert uids(small.search("coastline")) == ["fr"]
    assert uids(other_index.search("coastline")) == ["x"]


def test_spelling_suggestion_when_nothing_matches(small):
    small.rebuild()
    result = small.search("mongolai")
    assert result.hits == [] and result.total == 0
    assert result.suggestion == "mongolia"
    assert small.search("zzzqqqxxx").suggestion is None


def _delete(directory: Path) -> None:
    shutil.rmtree(directory)


def _garble(suffix: str):
    def garble(directory: Path) -> None:
        for path in directory.iterdir():
            if path.name.endswith(suffix):
                path.write_bytes(b"garbage")

    return garble


DAMAGE = [
    pytest.param(_garble(".seg"), id="garbled-segment"),
    pytest.param(_garble(".toc"), id="garbled-toc"),
    pytest.param(_delete, id="deleted-directory"),
]


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_gives_search_error_naming_rebuild(small, damage):
    small.rebuild()
    damage(small.directory)
    with pytest.raises(SearchError) as caught:
        small.search("coastline")
    assert "navigator index --rebuild" in str(caught.value)


@pytest.mark.parametrize("damage", [_garble(".seg"), _garble(".toc"), _delete], ids=["segment", "toc", "deleted"])
def test_rebuild_repairs_a_damaged_index(small, damage):
    small.rebuild()
    damage(small.directory)
    assert small.rebuild() == len(NODES)
    assert uids(small.search("coastline")) == ["fr"]
    assert not small.directory.with_name(small.directory.name + ".building").exists()


def test_a_search_over_its_time_budget_is_flagged_partial_not_silently_cut(tmp_path: Path) -> None:
    from kb.db import connect
    from kb.importing import StagedNode, import_staged
    from kb.libraries import create_library
    from kb.search import SearchIndex

    workspace = tmp_path / "budget.db"
    conn = connect(workspace, create=True)
    library = create_library(conn, "z")
    nodes = (StagedNode(n, f"s{n}", None, "statement", f"river delta number {n}", "river water") for n in range(3000))
    import_staged(conn, library, nodes, source="t", importer="test")
    search = SearchIndex(conn, workspace, library)
    search.rebuild()
    complete = search.search("river", limit=5, budget_ms=None)
    assert not complete.partial and len(complete.hits) == 5
    spent = search.search("river", limit=5, budget_ms=0)
    assert spent.partial and spent.hits == [] and "stopped at its time budget" in spent.count_text()
    assert spent.suggestion is None


def test_an_index_deleted_under_an_open_searcher_is_still_reported(tmp_path: Path) -> None:
    """The first search checks the index exists; later ones rely on the open searcher's refresh."""
    from kb.db import connect
    from kb.importing import StagedNode, import_staged
    from kb.libraries import create_library
    from kb.search import SearchError, SearchIndex, index_dir

    workspace = tmp_path / "w.db"
    conn = connect(workspace, create=True)
    library = create_library(conn, "z")
    import_staged(conn, library, iter([StagedNode(1, "a", None, "statement", "river")]), source="t", importer="t")
    search = SearchIndex(conn, workspace, library)
    search.rebuild()
    assert search.search("river").hits
    shutil.rmtree(index_dir(workspace, library))
    with pytest.raises(SearchError, match="navigator index --rebuild"):
        search.search("river")
