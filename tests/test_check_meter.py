"""The doctor's bar on a large file: pages read while SQLite walks the file, then rows checked,
each with a total, so a rate and the time left can be shown. Measured on the real demo workspace
(97,000 nodes) with the size from which a check is metered lowered to zero."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import kb.check_meter
import kb.doctor
from kb.errors import Cancelled


class Phases:
    """A Progress that keeps each phase's total and how far it was advanced."""

    def __init__(self, *, cancel_after: int | None = None) -> None:
        self.phases: list[list[object]] = []  # [name, total, advanced]
        self._polls, self._cancel_after = 0, cancel_after

    def start(self, phase: str, total: int | None) -> None:
        self.phases.append([phase, total, 0])

    def advance(self, amount: int) -> None:
        assert amount > 0
        self.phases[-1][2] = int(str(self.phases[-1][2])) + amount

    @property
    def cancelled(self) -> bool:
        self._polls += 1
        return self._cancel_after is not None and self._polls > self._cancel_after


@pytest.fixture
def demo(demo_build: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(kb.doctor, "METERED_CHECK_BYTES", 0)
    monkeypatch.setattr(kb.doctor, "QUICK_WHOLE_FILE_BYTES", 2**40)
    return demo_build[0]


def every_row(path: Path) -> int:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    rows = sum(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables)
    conn.close()
    return int(rows)


@pytest.mark.parametrize("quick", [False, True])
def test_the_bar_reads_the_file_then_counts_rows_up_to_the_real_number(demo: Path, quick: bool) -> None:
    """The rows are estimated from steps per row measured on a 400-row sample of each table; on
    the demo the estimate ends within 1 % of the rows there are, and never above them."""
    conn = kb.doctor.open_read_only(demo)
    progress = Phases()
    found = kb.doctor.check_integrity(conn, quick=quick, size=demo.stat().st_size, progress=progress)
    conn.close()
    assert found[0].status == "ok", found
    pragma, mib, rows = ("quick_check" if quick else "integrity_check"), demo.stat().st_size // 2**20, every_row(demo)
    (reading, read_total, _), (checking, row_total, checked) = progress.phases
    assert (reading, read_total) == (f"{pragma} (1 of 2): reading {mib:,} MiB", mib)
    assert (checking, row_total) == (f"{pragma} (2 of 2): checking {rows:,} rows", rows)
    assert 0.99 * rows <= int(str(checked)) <= rows


def test_without_a_measure_the_bar_has_no_total_and_the_check_still_runs(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kb.check_meter, "bytes_read", lambda: None)
    monkeypatch.setattr(kb.check_meter, "measure_cost", lambda conn, pragma: None)
    conn = kb.doctor.open_read_only(demo)
    progress = Phases()
    assert kb.doctor.check_integrity(conn, quick=True, size=demo.stat().st_size, progress=progress)[0].status == "ok"
    conn.close()
    assert [(phase[1], phase[2]) for phase in progress.phases] == [(None, 0), (None, 0)]
    assert progress.phases[1][0] == "quick_check (2 of 2): checking every row"


def test_a_schema_that_cannot_be_copied_is_not_measured(tmp_path: Path) -> None:
    """A virtual table's rows live in other tables; copying its schema would copy the module too."""
    path = tmp_path / "v.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE VIRTUAL TABLE words USING fts5(text)")
    conn.execute("INSERT INTO words VALUES ('a b c')")
    conn.commit()
    assert kb.check_meter.measure_cost(conn, "integrity_check") is None
    conn.execute("CREATE TABLE plain (x INTEGER NOT NULL)")
    conn.executemany("INSERT INTO plain VALUES (?)", [(n,) for n in range(1000)])
    conn.execute("DROP TABLE words")
    conn.commit()
    cost = kb.check_meter.measure_cost(conn, "integrity_check")
    conn.close()
    assert cost is not None and cost.rows == 1000 and cost.steps > 1000


def test_a_metered_check_stops_at_a_cancel_and_leaves_the_connection_as_it_was(demo: Path) -> None:
    conn = kb.doctor.open_read_only(demo)
    with pytest.raises(Cancelled, match="nothing was changed"):
        kb.doctor.check_integrity(conn, quick=False, size=demo.stat().st_size, progress=Phases(cancel_after=0))
    progress = Phases()
    assert kb.doctor.check_integrity(conn, quick=True, size=demo.stat().st_size, progress=progress)[0].status == "ok"
    conn.close()
    assert len(progress.phases) == 2
