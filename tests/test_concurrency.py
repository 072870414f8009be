"""Several labelers on one workspace file at once, and the app reading while an import writes.

WAL plus BEGIN IMMEDIATE plus the busy timeout (kb.db) should make concurrent
labelers queue rather than fail. These tests would catch a lost or doubled
label, a broken supersede chain (two relabels both replacing the same label,
which happens if the "previous label" lookup runs outside the write lock), a
"database is locked" reaching a labeler, and a reader stalled behind a writer.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from reliability_support import (
    acknowledged,
    announce,
    check_workspace,
    make_labeling_workspace,
    start_driver,
    start_importer,
    stored_label_uids,
)

from kb.db import connect
from kb.items import items_in
from kb.labels import label_counts
from kb.libraries import list_libraries
from kb.tree import children, node_by_uid

LABELERS = ("ann", "ann", "bob", "cy")  # two processes share a name so their relabels race on one chain
LABELS_EACH = 1000
IMPORT_NODES = 120_000
READ_BUDGET_S = 0.25  # far below the import's write transaction, which a blocked reader would wait out


def test_concurrent_labelers_lose_and_double_nothing(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    workspace = tmp_path / "w.db"
    make_labeling_workspace(workspace)
    drivers = [start_driver(workspace, labeler, seed=seed, count=LABELS_EACH) for seed, labeler in enumerate(LABELERS)]
    acked: list[str] = []
    for driver in drivers:
        stdout, stderr = driver.communicate(timeout=120)
        assert driver.returncode == 0, stderr
        assert "locked" not in stderr and stderr == "", stderr
        this_run = acknowledged(stdout)
        assert len(this_run) == LABELS_EACH
        acked += this_run
    conn = check_workspace(workspace)
    stored = stored_label_uids(conn)
    assert len(stored) == len(acked) == len(LABELERS) * LABELS_EACH
    assert sorted(stored) == sorted(acked)
    for table in ("predictions", "credences"):
        doubled = conn.execute(
            f"SELECT supersedes, COUNT(*) FROM {table} WHERE supersedes IS NOT NULL"
            " GROUP BY supersedes HAVING COUNT(*) > 1"
        ).fetchall()
        assert doubled == [], f"{table}: two labels replace the same earlier one: {[tuple(row) for row in doubled]}"
    per_key = Counter(
        (row[0], row[1])
        for row in conn.execute(
            "SELECT item_id, labeler FROM predictions p WHERE NOT EXISTS"
            " (SELECT 1 FROM predictions q WHERE q.supersedes = p.uid)"
        )
    )
    assert per_key and max(per_key.values()) == 1, "a labeler has two current predictions for one item"
    # Only a real interleaving of the writers makes this a concurrency test.
    order = [
        row[0]
        for row in conn.execute(
            "SELECT note FROM (SELECT note, created_at FROM predictions"
            " UNION ALL SELECT note, created_at FROM credences) ORDER BY created_at"
        )
    ]
    switches = sum(a != b for a, b in zip(order, order[1:], strict=False))
    assert switches >= len(order) // 100, f"the writers hardly overlapped ({switches} switches)"
    counts = label_counts(conn)
    conn.close()
    announce(
        request.config,
        f"concurrency: {len(LABELERS)} processes, {len(acked)} concurrent label writes checked, 0 lost, 0 duplicated,"
        f" 0 'database is locked'; {switches} writer switches, {counts['predictions']} current predictions",
    )


def test_reader_stays_responsive_while_an_import_writes(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    workspace = tmp_path / "w.db"
    make_labeling_workspace(workspace)
    reader = connect(workspace)
    library = list_libraries(reader)[0]
    importer = start_importer(workspace, IMPORT_NODES)
    phases: dict[str, float] = {}

    def watch() -> None:
        assert importer.stdout is not None
        for line in importer.stdout:
            phases[line.split()[0]] = time.perf_counter()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    reads: list[tuple[float, float]] = []  # (start, seconds)
    while importer.poll() is None:
        started = time.perf_counter()
        assert len(children(reader, library.root_id)) == 12
        assert node_by_uid(reader, "s3", library.id) is not None
        assert len(items_in(reader, ("train",))) == 20
        label_counts(reader)
        reads.append((started, time.perf_counter() - started))
        time.sleep(0.002)
    watcher.join(timeout=10)
    assert importer.returncode == 0, importer.stderr.read() if importer.stderr else ""
    assert "done" in phases and "writing" in phases, phases
    during_write = [seconds for started, seconds in reads if phases["writing"] <= started <= phases["done"]]
    write_seconds = phases["done"] - phases["writing"]
    assert during_write, f"no read overlapped the {write_seconds:.2f} s write transaction"
    slowest = max(seconds for _, seconds in reads)
    assert slowest < READ_BUDGET_S, f"a read took {slowest * 1000:.0f} ms while the import wrote"
    assert reader.execute("SELECT COUNT(*) FROM nodes WHERE library_id != ?", (library.id,)).fetchone()[0] > (
        IMPORT_NODES
    )
    reader.close()
    check_workspace(workspace).close()
    announce(
        request.config,
        f"concurrency: {len(reads)} reads during a {IMPORT_NODES:,}-node import ({len(during_write)} inside its"
        f" {write_seconds:.2f} s write transaction), slowest {slowest * 1000:.1f} ms",
    )
