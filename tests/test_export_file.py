"""kb.export_file: an export reaches its path whole or not at all, for the CLI and the app alike."""

from __future__ import annotations

import errno
import io
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.db import WorkspaceError, connect
from kb.exchange import export_labels
from kb.export_file import export_to_path
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import item_by_uid
from kb.labels import LabelStore
from kb.libraries import create_library
from kb.records import ItemRecord
from kb.tree import node_by_uid


@pytest.fixture
def labelled(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A workspace where ann has one prediction and one credence."""
    conn = connect(tmp_path / "w.db", create=True)
    library = create_library(conn, "z")
    import_staged(
        conn, library, iter([StagedNode(1, "s", None, "statement", "Rivers flow")]), source="t", importer="test"
    )
    add_items(conn, [(1, ItemRecord(id="q1", x="Do rivers flow?", options=["yes", "no"]))], source="t", dstar=False)
    item = item_by_uid(conn, "q1")
    assert item is not None
    store = LabelStore(conn, "ann")
    store.record_prediction(item, library.id, {"yes": 0.8, "no": 0.2}, cited=["s"])
    statement = node_by_uid(conn, "s", library.id)
    assert statement is not None
    store.record_credence(library.id, [statement], 0.7)
    yield conn
    conn.close()


def streamed(conn: sqlite3.Connection, labeler: str | None = None) -> str:
    buffer = io.StringIO()
    export_labels(conn, buffer, labeler=labeler)
    return buffer.getvalue()


def test_export_to_path_writes_what_the_stream_export_writes(labelled: sqlite3.Connection, tmp_path: Path) -> None:
    out = tmp_path / "out" / "ann.jsonl"
    out.parent.mkdir()
    out.write_text("an older export\n", encoding="utf-8")
    report = export_to_path(labelled, out, labeler="ann")
    assert out.read_text(encoding="utf-8") == streamed(labelled, "ann")
    assert report.written["prediction"] == 1 and report.written["credence"] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["ann.jsonl"]


def test_a_failed_write_keeps_the_old_export_and_leaves_no_temp_file(
    labelled: sqlite3.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up after the records are written but before they reach it."""
    out = tmp_path / "out" / "ann.jsonl"
    out.parent.mkdir()
    out.write_text("the export ann already sent\n", encoding="utf-8")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("kb.atomic_file.os.fsync", disk_full)
    with pytest.raises(WorkspaceError) as raised:
        export_to_path(labelled, out, labeler="ann")
    assert str(raised.value) == f"cannot write {out}: No space left on device"
    assert out.read_text(encoding="utf-8") == "the export ann already sent\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["ann.jsonl"]


def test_a_failed_write_to_a_new_path_leaves_no_file(labelled: sqlite3.Connection, tmp_path: Path) -> None:
    """A real failure: the path is a folder, so the finished file cannot be renamed onto it."""
    folder = tmp_path / "out" / "ann.jsonl"
    folder.mkdir(parents=True)
    with pytest.raises(WorkspaceError, match=f"cannot write {folder}"):
        export_to_path(labelled, folder)
    assert folder.is_dir() and list(folder.iterdir()) == []
    assert [p.name for p in folder.parent.iterdir()] == ["ann.jsonl"]
    with pytest.raises(WorkspaceError, match="cannot write .*missing.*: No such file or directory"):
        export_to_path(labelled, tmp_path / "missing" / "ann.jsonl")
    assert not (tmp_path / "missing").exists()


def test_a_link_is_followed_and_a_pipe_is_written_through(labelled: sqlite3.Connection, tmp_path: Path) -> None:
    """As writing to --out always did: `--out latest.jsonl` (a link) and `--out >(gzip …)` (a pipe)."""
    real = tmp_path / "exports" / "2026-12.jsonl"
    real.parent.mkdir()
    real.write_text("last month\n", encoding="utf-8")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(real)
    export_to_path(labelled, link)
    assert link.is_symlink() and real.read_text(encoding="utf-8") == streamed(labelled)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()))
    reader.start()
    export_to_path(labelled, pipe)
    reader.join(timeout=10)
    assert received == [streamed(labelled).encode("utf-8")]
    assert pipe.exists() and not pipe.is_file()
