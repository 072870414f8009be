"""A search index from elsewhere cannot run code: whoosh's pickles are read by a restricted
unpickler that rebuilds only what an index is made of (kb/search/safe_unpickle.py)."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.importing import StagedNode, import_staged
from kb.libraries import Library
from kb.search import SearchError, SearchIndex
from kb.search.safe_unpickle import UnsafeIndex, safe_loads


class Planted:
    """Unpickling this runs a shell command: what a hostile index file would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def indexed(conn: sqlite3.Connection, library: Library, workspace: Path) -> SearchIndex:
    nodes = [StagedNode(n, f"n{n}", None, "statement", f"river {n}", "delta water") for n in range(1, 30)]
    import_staged(conn, library, iter(nodes), source="t", importer="t")
    search = SearchIndex(conn, workspace, library)
    search.rebuild()
    search.close()
    return search


def plant_toc(directory: Path, payload: object) -> None:
    """A newer table of contents whose schema is `payload`, written as whoosh writes one."""
    from whoosh.filedb.filestore import FileStorage
    from whoosh.index import _CURRENT_TOC_VERSION, _FLOAT_SIZE, _INT_SIZE, _LONG_SIZE, TOC

    storage = FileStorage(str(directory))
    generation = TOC._latest_generation(storage, "MAIN") + 1
    stream = storage.create_file(TOC._filename("MAIN", generation))
    for size in (_INT_SIZE, _LONG_SIZE, _FLOAT_SIZE):
        stream.write_varint(size)
    stream.write_int(-12345)
    stream.write_int(_CURRENT_TOC_VERSION)
    for number in (2, 7, 5):
        stream.write_varint(number)
    stream.write_string(pickle.dumps(payload, 2))
    stream.write_int(generation)
    stream.write_int(0)
    stream.write_pickle([])
    stream.close()


def test_a_planted_table_of_contents_runs_nothing_and_says_rebuild(indexed: SearchIndex, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    plant_toc(indexed.directory, Planted(marker))
    with pytest.raises(SearchError, match="navigator index --rebuild"):
        indexed.search("river")
    assert not marker.exists()
    assert indexed.update() == 29  # the damaged index is rebuilt from SQLite
    assert indexed.search("river").total == 29 and not marker.exists()


def test_a_planted_term_dictionary_runs_nothing(indexed: SearchIndex, tmp_path: Path) -> None:
    """The .trm file's extras are a pickle too."""
    from whoosh.filedb.filestore import FileStorage
    from whoosh.filedb.filetables import HashWriter

    marker = tmp_path / "ran"
    (terms,) = indexed.directory.glob("*.trm")
    writer = HashWriter(FileStorage(str(indexed.directory)).create_file(terms.name))
    writer.extras = {"fieldmap": Planted(marker)}
    writer.close()
    with pytest.raises(SearchError, match="navigator index --rebuild"):
        indexed.search("river")
    assert not marker.exists()


def test_the_doctor_reports_a_planted_index_without_running_it(indexed: SearchIndex, tmp_path: Path) -> None:
    from navigator.commands.doctor import doctor

    marker = tmp_path / "ran"
    plant_toc(indexed.directory, Planted(marker))
    result = CliRunner().invoke(doctor, ["-w", str(indexed.workspace), "--json"])
    assert "navigator index --rebuild" in result.output and not marker.exists()


def test_the_restricted_unpickler_refuses_callables_and_reads_an_index_schema() -> None:
    from kb.search.text import schema

    with pytest.raises(UnsafeIndex, match="posix.system|os.system"):
        safe_loads(pickle.dumps(Planted(Path("/nonexistent")), 2))
    with pytest.raises(UnsafeIndex):
        safe_loads(pickle.dumps(eval, 2))
    assert safe_loads(pickle.dumps(schema(), 2)).names() == schema().names()


def test_an_index_written_before_search_became_a_package_still_opens() -> None:
    """Earlier releases pickled the codec's classes as kb.search_codec.*; they resolve to kb.search.codec."""
    from kb.search.codec import ArraySegment

    assert safe_loads(b"ckb.search_codec\nArraySegment\n.") is ArraySegment
    with pytest.raises(UnsafeIndex):
        safe_loads(b"ckb.search_rank\nrank\n.")
