"""`navigator doctor` finds each kind of problem, says what to do, and changes nothing.

The command is exercised through click on its own (it is registered on the main
group by cli.py); in this file the model check is replaced by a fixed answer so the
result does not depend on whether this machine has the model. The real check — a
short generation in a model process — is tested in tests/test_model_process.py.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from reliability_support import make_labeling_workspace

import models.llm.model_check as doctor_module
from kb.db import connect, latest_version, migrate
from kb.importing import StagedNode, import_staged
from kb.items import item_by_uid
from kb.labels import LabelStore
from kb.libraries import list_libraries
from kb.search import SearchIndex, index_dir
from kb.tree import node_by_uid
from models.llm.model import ModelIdentity
from models.llm.model_process import ProbeResult
from navigator.commands.doctor import doctor

WORKS = ProbeResult(
    True,
    identity=ModelIdentity("m.gguf", "0" * 64, "/models/m.gguf", False, False, {"repack": False}),
    tokens=8,
    generate_ms=200.0,
)


@pytest.fixture(autouse=True)
def model_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_module, "probe_model", lambda model, options, timeout: WORKS)


@pytest.fixture
def healthy(tmp_path: Path) -> Path:
    """A labelled workspace whose search index is up to date."""
    path = tmp_path / "w.db"
    make_labeling_workspace(path, statements=5, items=3)
    conn = connect(path)
    library = list_libraries(conn)[0]
    item = item_by_uid(conn, "i1")
    assert item is not None
    store = LabelStore(conn, "ann")
    store.record_prediction(item, library.id, {"yes": 0.5, "no": 0.25, "maybe": 0.25}, cited=["s1", "s2"])
    statements = [node_by_uid(conn, uid, library.id) for uid in ("s1", "s2")]
    store.record_credence(library.id, [node for node in statements if node is not None], 0.4)
    SearchIndex(conn, path, library).update()
    conn.close()
    return path


def run(path: Path, *args: str) -> Result:
    return CliRunner().invoke(doctor, ["--workspace", str(path), *args], catch_exceptions=False)


def findings(path: Path) -> dict[str, dict[str, Any]]:
    result = run(path, "--json")
    payload = json.loads(result.output)
    assert result.exit_code == (0 if payload["ok"] else 1)
    return {finding["check"]: finding for finding in payload["findings"]}


def test_a_healthy_workspace_passes_and_is_not_changed(healthy: Path) -> None:
    before = healthy.read_bytes()
    result = run(healthy)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("all checks passed")
    found = findings(healthy)
    assert {f["status"] for f in found.values()} == {"ok"}
    assert set(found) == {"integrity", "schema", "orphans", "index z", "packages", "model"}
    assert healthy.read_bytes() == before


def test_a_missing_index_a_stale_one_and_a_damaged_one_are_told_apart(healthy: Path) -> None:
    conn = connect(healthy)
    library = list_libraries(conn)[0]
    import_staged(conn, library, iter([StagedNode(1, "new", None, "statement", "New")]), source="t", importer="t")
    conn.close()
    stale = findings(healthy)["index z"]
    assert stale["status"] == "warning" and "1 nodes are not searchable" in stale["message"]
    assert stale["fix"] == "`navigator index --library z`"

    directory = index_dir(healthy, library)
    for file in directory.iterdir():
        if file.suffix == ".seg" or file.name.startswith("_MAIN"):
            file.write_bytes(b"\x00garbage" * 10)
    damaged = findings(healthy)["index z"]
    assert damaged["status"] == "error" and "--rebuild --library z" in damaged["fix"]

    shutil.rmtree(directory)
    gone = findings(healthy)["index z"]
    assert gone["status"] == "error" and "missing or damaged" in gone["message"]


def test_an_unindexed_library_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    make_labeling_workspace(path, statements=4, items=1)
    found = findings(path)["index z"]
    assert found["status"] == "warning" and "no search index yet for 4 nodes" in found["message"]


def test_orphan_nodes_and_labels_citing_missing_nodes_are_found(healthy: Path) -> None:
    raw = sqlite3.connect(healthy, isolation_level=None)
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute(
        "INSERT INTO nodes (uid, library_id, parent_id, position, depth, kind, title, origin, created_at)"
        " VALUES ('lost', 1, 9999, 0, 2, 'statement', 'Lost', 'import', 'now')"
    )
    raw.execute('UPDATE predictions SET cited = \'["s1", "gone"]\'')
    raw.execute("UPDATE credence_nodes SET node_uid = 'vanished' WHERE rowid = (SELECT MIN(rowid) FROM credence_nodes)")
    raw.close()
    result = run(healthy)
    assert result.exit_code == 1
    assert "fix:" in result.output
    found = findings(healthy)
    assert found["orphan nodes"]["status"] == "error" and "lost" in found["orphan nodes"]["message"]
    labels = found["orphan labels"]
    assert "2 labels cite nodes missing" in labels["message"]
    assert "gone" in labels["message"] and "vanished" in labels["message"]
    assert found["integrity"]["status"] == "error"  # the dangling parent_id is also a foreign-key violation


def test_an_older_schema_is_reported_not_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    migrate(raw, target=1)
    raw.close()
    before = path.read_bytes()
    found = findings(path)
    assert found["schema"]["status"] == "warning" and "older" in found["schema"]["message"]
    assert "backup" in found["schema"]["fix"]
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("old.db.backup-*"))


def test_a_newer_schema_is_an_error(healthy: Path) -> None:
    raw = sqlite3.connect(healthy, isolation_level=None)
    raw.execute("INSERT INTO _migrations VALUES (?, 'future', 'later')", (latest_version() + 1,))
    raw.close()
    found = findings(healthy)
    assert found["schema"]["status"] == "error" and "upgrade z-navigator" in found["schema"]["fix"]
    assert "orphans" not in found  # a schema this release does not know is not examined further


def test_a_lost_index_or_column_under_a_current_version_is_named(healthy: Path) -> None:
    raw = sqlite3.connect(healthy, isolation_level=None)
    raw.execute("DROP INDEX nodes_by_uid")
    raw.close()
    before = healthy.read_bytes()
    found = findings(healthy)
    assert found["schema"]["status"] == "warning"
    assert "table nodes has no index nodes_by_uid" in found["schema"]["message"]
    assert "navigator export" in found["schema"]["fix"]
    assert healthy.read_bytes() == before
    raw = sqlite3.connect(healthy, isolation_level=None)
    raw.execute("ALTER TABLE bookmarks DROP COLUMN created_at")
    raw.close()
    found = findings(healthy)
    assert found["schema"]["status"] == "error"
    assert "table bookmarks has no column created_at" in found["schema"]["message"]
    raw = sqlite3.connect(healthy, isolation_level=None)
    raw.execute("DROP TABLE search_index_state")
    raw.close()
    assert findings(healthy)["schema"]["status"] == "error"  # a lost table named like an index is no index


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b""])
def test_a_file_that_is_not_a_workspace_gets_findings_not_a_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(content)
    result = run(path)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "fix:" in result.output
    assert "XX" in result.output  # an error, not merely a warning
    assert path.read_bytes() == content


def test_a_missing_workspace_and_a_missing_model_say_what_to_do(
    tmp_path: Path, healthy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = findings(tmp_path / "nothing.db")["workspace"]
    assert missing["status"] == "error" and "navigator init" in missing["fix"]
    broken = ProbeResult(False, "no model file", "download it")
    monkeypatch.setattr(doctor_module, "probe_model", lambda model, options, timeout: broken)
    model = findings(healthy)["model"]
    assert model == {
        "check": "model",
        "status": "warning",
        "message": "unpack and ask cannot run: no model file",
        "fix": "download it",
        "needs_action": True,
    }


def test_a_flipped_posting_is_found_by_the_thorough_check_not_the_quick_one(tmp_path: Path) -> None:
    from kb.db import connect
    from kb.importing import StagedNode, import_staged
    from kb.libraries import create_library
    from kb.search import SearchError, SearchIndex

    path = tmp_path / "w.db"
    conn = connect(path, create=True)
    library = create_library(conn, "z")
    nodes = (StagedNode(n, f"s{n}", None, "statement", f"river {n}", "delta water") for n in range(1, 200))
    import_staged(conn, library, nodes, source="t", importer="t")
    search = SearchIndex(conn, path, library)
    search.rebuild()
    (leaf, _), *_ = search._current_view().leaves
    offset, _ = leaf._terms.term_info("body", b"delta").extent()
    search.close()
    (postings,) = index_dir(path, library).glob("*.pst")
    data = bytearray(postings.read_bytes())
    data[offset + 8 : offset + 12] = b"\xff" * 4  # the second doc number, far past the segment's end
    postings.write_bytes(bytes(data))
    assert SearchIndex(conn, path, library).verify(thorough=False) == 199
    with pytest.raises(SearchError, match="navigator index --rebuild"):
        SearchIndex(conn, path, library).verify(thorough=True)


def _break_page_of(path: Path, table: str) -> None:
    """Overwrite the type byte of `table`'s root page, as a torn write would."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    conn.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff")


def test_quick_on_a_big_file_reads_every_table_but_the_nodes(healthy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the size, --quick names what it did not read and still finds a damaged label table."""
    import kb.doctor

    monkeypatch.setattr(kb.doctor, "QUICK_WHOLE_FILE_BYTES", 0)
    passed = findings_with(healthy, "--quick")["integrity"]
    assert passed["status"] == "ok" and "every table but nodes" in passed["message"]

    _break_page_of(healthy, "predictions")
    broken = findings_with(healthy, "--quick")["integrity"]
    assert broken["status"] == "error" and "malformed" in broken["message"] + broken["fix"]
    assert findings_with(healthy)["integrity"]["status"] == "error"


def findings_with(path: Path, *args: str) -> dict[str, dict[str, Any]]:
    payload = json.loads(run(path, "--json", *args).output)
    return {finding["check"]: finding for finding in payload["findings"]}


class Recorded:
    """A Progress that records what it was told and cancels when asked to."""

    def __init__(self, *, cancel: bool = False, interrupt: bool = False) -> None:
        self.phases: list[tuple[str, int | None]] = []
        self.advanced = 0
        self.polls = 0
        self._cancel, self._interrupt = cancel, interrupt

    def start(self, phase: str, total: int | None) -> None:
        self.phases.append((phase, total))

    def advance(self, amount: int) -> None:
        self.advanced += amount

    @property
    def cancelled(self) -> bool:
        self.polls += 1
        if self._interrupt:
            raise KeyboardInterrupt
        return self._cancel


ENDLESS = (  # hours of work for SQLite
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM (SELECT x FROM n LIMIT 1e12)"
)


def test_a_check_is_stopped_by_a_cancel_or_a_ctrl_c_and_the_connection_still_works(
    healthy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite runs a check inside one call, where Python sees no Ctrl+C until it returns; the
    doctor waits for it in short steps and interrupts SQLite. A statement of hours stops at once
    (were it not stopped, this test would not end)."""
    import kb.doctor

    conn = kb.doctor.open_read_only(healthy)
    with pytest.raises(kb.doctor.Cancelled, match="nothing was changed"):
        kb.doctor._interruptible(conn, ENDLESS, Recorded(cancel=True))
    with pytest.raises(KeyboardInterrupt):
        kb.doctor._interruptible(conn, ENDLESS, Recorded(interrupt=True))
    assert [tuple(row) for row in kb.doctor._interruptible(conn, "PRAGMA quick_check", Recorded())] == [("ok",)]
    conn.close()


def test_the_full_index_check_counts_its_nodes_and_stops_at_a_cancel(healthy: Path) -> None:
    """Reading every posting list is minutes at ten million nodes: the bar counts the nodes of
    the segments read, to the index's total, and a cancel stops it between two lists."""
    import kb.doctor

    conn = kb.doctor.open_read_only(healthy)
    library = list_libraries(conn)[0]
    shown = Recorded()
    assert kb.doctor.check_index(conn, healthy, library, quick=False, progress=shown).status == "ok"
    search = SearchIndex(conn, healthy, library)
    indexed = search.verify()
    search.close()
    assert shown.phases == [(f"reading the search index of {library.name}, segment by segment", indexed)]
    assert shown.advanced == indexed > 0
    with pytest.raises(kb.doctor.Cancelled, match="nothing was changed"):
        kb.doctor.check_index(conn, healthy, library, quick=False, progress=Recorded(cancel=True))
    quick = Recorded()
    assert kb.doctor.check_index(conn, healthy, library, quick=True, progress=quick).status == "ok"
    assert quick.phases == []
    conn.close()


def test_the_integrity_check_reports_its_phases(healthy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kb.doctor

    conn = kb.doctor.open_read_only(healthy)
    full = Recorded()
    assert kb.doctor.check_integrity(conn, quick=False, size=3 * 2**20, progress=full)[0].status == "ok"
    assert full.phases == [("integrity_check of 3 MiB", None)]
    monkeypatch.setattr(kb.doctor, "QUICK_WHOLE_FILE_BYTES", 0)
    quick = Recorded()
    assert kb.doctor.check_integrity(conn, quick=True, size=1, progress=quick)[0].status == "ok"
    tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name != 'nodes'").fetchone()[0]
    assert quick.phases == [("quick_check, table by table", tables)] and quick.advanced == tables > 5
    conn.close()
