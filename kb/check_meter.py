"""How far SQLite's integrity_check (or quick_check) has got, so the doctor's bar can show a rate
and the time left on a file of gigabytes.

The check is one statement in two parts. It first walks every b-tree page of the file inside one C
call that reports nothing; the pages it has read show as the bytes this process has read
(`/proc/self/io`, Linux). It then runs a loop of bytecode per table that checks each row's columns
and index entries, and SQLite's progress handler sees those steps. How many steps a row takes
depends on its table's columns and indexes, not on the table's size, so a copy of the schema
holding a sample of rows measures it. The copy is opened read-only, as the doctor opens a
workspace: a read-only connection runs a shorter check.

Everything here only estimates how far the check is. A measurement that cannot be made (no
`/proc`, a table that cannot be read or copied) leaves that part of the bar without a total, never
the check itself undone.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.progress import Progress

STEPS_PER_CALL = 1000  # SQLite steps between two calls of the progress handler
SAMPLE_ROWS = (200, 400)  # two sample sizes: steps per row is the difference between them


@dataclass(frozen=True)
class CheckCost:
    rows: int  # rows the check's loops will visit
    steps: float  # progress-handler steps it will take to visit them


def bytes_read() -> int | None:
    """Bytes this process has read so far, page cache included; None where the kernel does not say."""
    try:
        with open("/proc/self/io", encoding="ascii") as io:
            for line in io:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def measure_cost(conn: sqlite3.Connection, pragma: str) -> CheckCost | None:
    """The rows and steps of `PRAGMA <pragma>` on `conn`'s file; None when they cannot be measured."""
    try:
        schema = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'index') AND sql IS NOT NULL"
            " AND name NOT LIKE 'sqlite%' ORDER BY type = 'index'"
        ).fetchall()
        if any(str(sql).upper().startswith("CREATE VIRTUAL") for _, _, sql in schema):
            return None
        tables = [str(name) for kind, name, _ in schema if kind == "table"]
        with tempfile.TemporaryDirectory(prefix="navigator-check-") as folder:
            samples = [
                _sample_steps(conn, pragma, schema, tables, Path(folder) / f"{size}.db", size) for size in SAMPLE_ROWS
            ]
        rows = steps = 0.0
        (small_rows, small_steps), (large_rows, large_steps) = samples
        for table in tables:
            if large_rows[table] < SAMPLE_ROWS[1]:  # the copy held the whole table
                rows, steps = rows + large_rows[table], steps + large_steps[table]
                continue
            per_row = (large_steps[table] - small_steps[table]) / (large_rows[table] - small_rows[table])
            count = int(conn.execute(f"SELECT count(*) FROM {_quoted(table)}").fetchone()[0])
            rows, steps = rows + count, steps + small_steps[table] + per_row * (count - small_rows[table])
    except (sqlite3.Error, OSError):
        return None
    return CheckCost(int(rows), steps) if steps > 0 else None


def _sample_steps(
    conn: sqlite3.Connection, pragma: str, schema: list[Any], tables: list[str], path: Path, rows: int
) -> tuple[dict[str, int], dict[str, int]]:
    """Rows copied and steps taken per table, checking a copy of the schema with `rows` rows of each."""
    copy = sqlite3.connect(path)
    try:
        for _, _, sql in schema:
            copy.execute(sql)
        for table in tables:
            sample = conn.execute(f"SELECT * FROM {_quoted(table)} LIMIT {rows}").fetchall()
            if sample:
                marks = ", ".join("?" * len(sample[0]))
                copy.executemany(f"INSERT INTO {_quoted(table)} VALUES ({marks})", [tuple(row) for row in sample])
        copy.commit()
    finally:
        copy.close()
    copied: dict[str, int] = {}
    steps: dict[str, int] = {}
    reader = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        for table in tables:
            counted = [0]

            def step(counted: list[int] = counted) -> int:
                counted[0] += 1
                return 0

            reader.set_progress_handler(step, 1)
            reader.execute(f"PRAGMA {pragma}({_quoted(table)})").fetchall()
            reader.set_progress_handler(None, 1)
            steps[table] = counted[0]
            copied[table] = int(reader.execute(f"SELECT count(*) FROM {_quoted(table)}").fetchone()[0])
    finally:
        reader.close()
    return copied, steps


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class CheckMeter:
    """Drives a bar for one running check: pages read while SQLite walks the file, then rows.

    SQLite's thread only counts steps (`install`); the thread that waits for the check calls
    `report` between its waits and is the only one that touches `progress`."""

    def __init__(self, conn: sqlite3.Connection, pragma: str, size: int, progress: Progress) -> None:
        self._conn, self._pragma, self._progress = conn, pragma, progress
        self._size_mib = max(1, size // 2**20)
        self._cost = measure_cost(conn, pragma)
        self._steps = 0
        self._first_read = bytes_read()
        self._shown = 0
        self._walking = True

    def install(self) -> None:
        total = self._size_mib if self._first_read is not None else None
        self._progress.start(f"{self._pragma} (1 of 2): reading {self._size_mib:,} MiB", total)
        self._conn.set_progress_handler(self._step, STEPS_PER_CALL)

    def remove(self) -> None:
        self._conn.set_progress_handler(None, STEPS_PER_CALL)

    def _step(self) -> int:
        self._steps += STEPS_PER_CALL
        return 0

    def report(self) -> None:
        if self._walking and self._steps == 0:
            read = bytes_read()
            if self._first_read is not None and read is not None:
                self._advance_to(min(self._size_mib, (read - self._first_read) // 2**20))
            return
        if self._walking:
            self._walking, self._shown = False, 0
            cost = self._cost
            rows = f"{cost.rows:,} rows" if cost else "every row"
            self._progress.start(f"{self._pragma} (2 of 2): checking {rows}", cost.rows if cost else None)
        if self._cost is not None:
            self._advance_to(min(self._cost.rows, int(self._steps / self._cost.steps * self._cost.rows)))

    def _advance_to(self, done: int) -> None:
        if done > self._shown:
            self._progress.advance(done - self._shown)
            self._shown = done
