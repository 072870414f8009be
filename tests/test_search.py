"""Full-text search over a small library: building, hits, stemming, updates, damage and repair."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.formats.jsonl import read_jsonl_nodes
from kb.importing import import_staged
from kb.libraries import Library, create_library
from kb.progress import NoProgress
from kb.search import SearchError, SearchIndex
from kb.tree import PATH_SEPARATOR, add_children, node_by_uid

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


def test_path_words_are_searchable_and_all_words_rank_first(small):
    small.rebuild()
    result = small.search("europe landlocked")
    assert uids(result)[0] == "ch" and result.hits[0].matched == ("europe", "landlocked")
    assert set(uids(result)[1:]) == {"europe", "fr", "mg"}  # each has one of the two words
    assert all(hit.coverage == 1 for hit in result.hits[1:])
    assert result.total == 4 and result.words == ("europe", "landlocked")
    assert result.missing(result.hits[-1]) in (("landlocked",), ("europe",))


@pytest.mark.parametrize(
    ("question", "first"),
    [
        ("Is Switzerland landlocked?", "ch"),
        ("Which country is landlocked, Mongolia or France?", "mg"),
        ("What is the coastline of France?", "fr"),
        ("france's coastline!!", "fr"),
    ],
)
def test_questions_as_people_type_them(small, question, first):
    small.rebuild()
    result = small.search(question)
    assert result.hits and result.hits[0].uid == first
    assert result.hits[0].coverage == 2


def test_question_words_and_punctuation_alone_never_empty_a_result(small):
    small.rebuild()
    assert sorted(uids(small.search("what is landlocked?"))) == ["ch", "mg"]
    assert small.search("what is the?").hits == [] and small.search("?!").hits == []


def test_phrases_fields_negation_required_and_prefix_keep_working(small):
    small.rebuild()
    assert uids(small.search('"long coastline"')) == ["fr"]
    assert uids(small.search('"coastline long"')) == []
    assert uids(small.search("title:france")) == ["fr"]
    assert uids(small.search("body:france")) == ["fr"]
    assert sorted(uids(small.search("path:europe"))) == ["ch", "europe", "fr"]
    assert uids(small.search("landlocked -europe")) == ["mg"]
    assert uids(small.search("landlocked NOT europe")) == ["mg"]
    assert uids(small.search("+europe landlocked"))[0] == "ch"
    assert "mg" not in uids(small.search("+europe landlocked"))
    assert sorted(uids(small.search("landl*"))) == ["ch", "mg"]
    assert small.search("landl*").words == ("landl*",)


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


def test_spelling_suggestion_for_the_word_nothing_has_even_when_others_match(small):
    small.rebuild()
    result = small.search("Is Swizterland landlocked?")
    assert sorted(uids(result)) == ["ch", "mg"]
    assert result.suggestion == "Is Switzerland landlocked?"


def _delete(directory: Path) -> None:
    shutil.rmtree(directory)


def _garble(suffix: str):
    def garble(directory: Path) -> None:
        for path in directory.iterdir():
            if path.name.endswith(suffix):
                path.write_bytes(b"garbage")

    return garble


def _garble_segments(directory: Path) -> None:
    for path in directory.iterdir():
        if path.suffix in (".doc", ".pst", ".trm"):
            path.write_bytes(b"garbage")


DAMAGE = [
    pytest.param(_garble_segments, id="garbled-segment"),
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


@pytest.mark.parametrize("damage", [_garble_segments, _garble(".toc"), _delete], ids=["segment", "toc", "deleted"])
def test_rebuild_repairs_a_damaged_index(small, damage):
    small.rebuild()
    damage(small.directory)
    assert small.rebuild() == len(NODES)
    assert uids(small.search("coastline")) == ["fr"]
    assert not small.directory.with_name(small.directory.name + ".building").exists()


def _river_library(tmp_path: Path, count: int):
    from kb.db import connect
    from kb.importing import StagedNode, import_staged
    from kb.libraries import create_library

    workspace = tmp_path / "rivers.db"
    conn = connect(workspace, create=True)
    library = create_library(conn, "z")
    nodes = (
        StagedNode(n, f"s{n}", None, "statement", f"river delta number {n}", "river water " * (1 + n % 7))
        for n in range(count)
    )
    import_staged(conn, library, nodes, source="t", importer="test")
    return workspace, conn, library


def _page(result) -> list[tuple[str, float, tuple[str, ...]]]:
    return [(hit.uid, round(hit.score, 9), hit.matched) for hit in result.hits]


def test_results_never_depend_on_segment_layout(tmp_path: Path) -> None:
    """Grown one small update at a time (with merges), or rebuilt whole: the same hits, in the
    same order, with the same scores; ties go to the lower node id."""
    from kb.search.build import LEVEL_WIDTH
    from kb.tree import add_children, node_by_uid

    workspace, conn, library = _river_library(tmp_path, 300)
    search = SearchIndex(conn, workspace, library)
    search.rebuild()
    top = node_by_uid(conn, "s0", library.id)
    for batch in range(LEVEL_WIDTH + 3):
        add_children(
            conn, top, [(f"river delta added {batch} {n}", "water", "statement") for n in range(3)], origin="human"
        )
        assert search.update() == 3
    segments = len(search._current_view().leaves)
    assert segments < LEVEL_WIDTH + 3  # small segments were merged
    queries = ["river", "delta number 7", "water river", '"river delta"', "added", "number -water"]
    grown = [_page(search.search(query, limit=50)) for query in queries]
    search.rebuild()
    assert len(search._current_view().leaves) == 1
    assert [_page(search.search(query, limit=50)) for query in queries] == grown
    ties = search.search("river", limit=300).hits
    assert [hit.node_id for hit in ties if hit.score == ties[0].score] == sorted(
        hit.node_id for hit in ties if hit.score == ties[0].score
    )


def test_every_match_is_counted_and_ranked_with_no_time_budget(tmp_path: Path) -> None:
    workspace, conn, library = _river_library(tmp_path, 3000)
    search = SearchIndex(conn, workspace, library)
    search.rebuild()
    result = search.search("river", limit=5)
    assert result.total == 3000 and len(result.hits) == 5
    assert result.count_text() == "5 shown of 3,000 matches"
    everything = search.search("river", limit=3000)
    assert [hit.uid for hit in everything.hits[:5]] == [hit.uid for hit in result.hits]


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


def test_an_index_from_an_older_release_is_named_on_search_and_rebuilt_on_update(small):
    """Indexes written by whoosh's own writer (releases before this format) are not misread."""
    from whoosh import index as whoosh_index

    from kb.search.text import schema

    small.directory.mkdir(parents=True)
    old = whoosh_index.create_in(str(small.directory), schema(), indexname="MAIN")
    writer = old.writer()
    writer.add_document(node_id=1, title="France", body="coastline", path="France")
    writer.commit()
    small._record(10**6, 1, replace=True)
    with pytest.raises(SearchError, match="older release.*navigator index --rebuild"):
        small.search("france")
    small.close()
    assert small.update() == len(NODES)
    assert uids(small.search("coastline")) == ["fr"]


SYNTAX = st.sampled_from(
    ['"', "'", ":", "*", "(", ")", "[", "]", "{", "}", "^", "~", "+", "-", "AND", "OR", "NOT", "TO",
     "title:", "path:", "body:", "\\", "/", "?", "!", "landlocked", "europe", "  "]
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(SYNTAX, st.text(max_size=5)), max_size=10))
def test_any_text_gives_hits_or_a_message_naming_the_query(small, words):
    if small.indexed_up_to() is None:
        small.rebuild()
    text = " ".join(words)
    try:
        result = small.search(text)
    except SearchError as error:
        assert "cannot read the query" in str(error)
        return
    keys = [(-hit.coverage, -hit.score, hit.node_id) for hit in result.hits]
    assert keys == sorted(keys) and result.total >= len(result.hits)


def _update_in_process(workspace: str, library_name: str) -> int:
    from kb.db import connect
    from kb.libraries import get_library

    conn = connect(Path(workspace))
    try:
        return SearchIndex(conn, Path(workspace), get_library(conn, library_name)).update()
    finally:
        conn.close()


def test_two_processes_updating_at_once_index_each_node_once(tmp_path: Path) -> None:
    import multiprocessing

    from kb.tree import add_children, node_by_uid

    workspace, conn, library = _river_library(tmp_path, 200)
    search = SearchIndex(conn, workspace, library)
    search.rebuild()
    top = node_by_uid(conn, "s0", library.id)
    add_children(conn, top, [(f"lagoon {n}", "brackish water", "statement") for n in range(400)], origin="human")
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        counts = pool.starmap(_update_in_process, [(str(workspace), library.name)] * 2)
    assert sorted(counts) == [0, 400]
    assert search.search("lagoon", limit=1).total == 400
    assert search.verify(thorough=True) == 600


def test_a_word_repeated_seventy_thousand_times_in_one_node_is_counted_exactly(tmp_path: Path) -> None:
    """Frequencies are stored as 32-bit numbers: a hostile node cannot wrap one around."""
    from kb.db import connect
    from kb.importing import StagedNode, import_staged
    from kb.libraries import create_library

    workspace = tmp_path / "w.db"
    conn = connect(workspace, create=True)
    library = create_library(conn, "z")
    nodes = [
        StagedNode(1, "many", None, "statement", "Echo", "echo " * 70_000 + "canyon"),
        StagedNode(2, "one", None, "statement", "Valley", "echo canyon"),
    ]
    import_staged(conn, library, iter(nodes), source="t", importer="t")
    search = SearchIndex(conn, workspace, library)
    search.rebuild()
    assert search.verify(thorough=True) == 2
    assert [hit.uid for hit in search.search("echo").hits] == ["many", "one"]
    assert sorted(hit.uid for hit in search.search('"echo canyon"').hits) == ["many", "one"]
