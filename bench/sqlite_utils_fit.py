"""Where sqlite-utils serves, measured: the import's staging rows, and the schema check.

The import's hot path stages every record of a file in a temporary table (kb.importing), a
batch of tuples at a time with `executemany`, before one INSERT … SELECT per depth writes the
nodes. sqlite-utils' `insert_all` would take the same rows as dicts. This times both on the
same rows in the same run (executemany is the anchor), and the schema check
(kb.schema.schema_drift, sqlite-utils' introspection), which runs once per `navigator doctor`:

    python3 -m bench.sqlite_utils_fit                  # 200 000 rows; writes bench/sqlite_utils_fit.out.txt
    python3 -m bench.sqlite_utils_fit --rows 1000000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlite_utils import Database

from bench.tee import tee
from kb.db import connect
from kb.importing import STAGE_BATCH, PlaceRow, TextRow, _create_stage, _flush
from kb.schema import expected_shape, schema_drift

PLACE_COLUMNS = ("seq", "line", "uid", "parent_uid")
TEXT_COLUMNS = ("seq", "kind", "title", "body", "extra", "source")
Rows = tuple[list[PlaceRow], list[TextRow]]  # the import's two stage tables


def staged_rows(count: int) -> Rows:
    """Rows shaped like a Factbook import: a short title, a sentence of body, no extra."""
    places: list[PlaceRow] = [(i + 1, i + 1, f"n{i}", f"n{i // 8}" if i else None) for i in range(count)]
    texts: list[TextRow] = [
        (i + 1, "statement", f"title {i}", f"body of node {i} " * 4, "{}", None) for i in range(count)
    ]
    return places, texts


def by_executemany(path: Path, rows: Rows) -> None:
    conn = connect(path)
    _create_stage(conn)
    conn.execute("BEGIN")
    places, texts = rows
    for start in range(0, len(places), STAGE_BATCH):
        _flush(conn, places[start : start + STAGE_BATCH], texts[start : start + STAGE_BATCH])
    conn.execute("COMMIT")
    conn.close()


def by_insert_all(path: Path, rows: Rows) -> None:
    conn = connect(path)
    _create_stage(conn)
    conn.execute("BEGIN")
    database = Database(conn)
    for table, columns, table_rows in (("stage", PLACE_COLUMNS, rows[0]), ("stage_text", TEXT_COLUMNS, rows[1])):
        database.table(table).insert_all(
            (dict(zip(columns, row, strict=True)) for row in table_rows), batch_size=STAGE_BATCH
        )
    conn.execute("COMMIT")
    conn.close()


def timed(run: Callable[[Path, Rows], None], folder: Path, rows: Rows, repeats: int) -> float:
    times = []
    for attempt in range(repeats):
        path = folder / f"{run.__name__}-{attempt}.db"
        connect(path, create=True).close()
        started = time.perf_counter()
        run(path, rows)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = staged_rows(args.rows)
    with tee("sqlite_utils_fit"), tempfile.TemporaryDirectory() as folder:
        anchor = timed(by_executemany, Path(folder), rows, args.repeats)
        other = timed(by_insert_all, Path(folder), rows, args.repeats)
        print(f"staging {args.rows:,} import rows, median of {args.repeats}:")
        print(f"  executemany (anchor)     {anchor:7.2f} s  {args.rows / anchor:10,.0f} rows/s")
        print(f"  sqlite-utils insert_all  {other:7.2f} s  {args.rows / other:10,.0f} rows/s  ×{other / anchor:.2f}")
        expected_shape.cache_clear()
        path = Path(folder) / "by_executemany-0.db"
        conn = connect(path)
        started = time.perf_counter()
        drift = schema_drift(conn)
        took = time.perf_counter() - started
        print(
            f"schema check (reference built from the migrations + this file read): {took * 1000:.0f} ms,"
            f" {len(drift)} differences"
        )
        conn.close()


if __name__ == "__main__":
    main()
