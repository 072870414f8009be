"""SIGKILL a labeling process at random moments: no acknowledged label is ever lost.

The driver (tests/labeling_driver.py) prints `ack <uid>` only after a label's
transaction commits, which is when the app tells the labeler the label is
saved. Killing it without warning, many times at seeded random moments, must
leave a workspace that opens, passes `PRAGMA integrity_check` and holds every
acknowledged label, or the product's central promise is broken.
"""

from __future__ import annotations

import random
import signal
import time
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

KILLS = 30
IMPORT_KILLS = 8
IMPORT_NODES = 40_000
SEED = 20261124


def test_sigkill_at_random_points_loses_no_acknowledged_label(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    workspace = tmp_path / "w.db"
    make_labeling_workspace(workspace)
    rng = random.Random(SEED)
    acked: list[str] = []
    runs_that_labeled = 0
    for kill in range(KILLS):
        driver = start_driver(workspace, f"labeler{kill % 3}", seed=rng.randrange(2**31))
        assert driver.stdout is not None
        first = driver.stdout.readline()
        assert first == "ready\n", first + (driver.stderr.read() if driver.stderr else "")
        time.sleep(rng.uniform(0.0, 0.4))
        driver.send_signal(signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=30)
        assert driver.returncode == -signal.SIGKILL, f"the driver ended on its own: {stderr}"
        this_run = acknowledged(stdout)
        runs_that_labeled += bool(this_run)
        acked += this_run
        conn = check_workspace(workspace)
        stored = stored_label_uids(conn)
        conn.close()
        missing = set(acked) - set(stored)
        assert not missing, f"kill {kill + 1}: {len(missing)} acknowledged labels lost, e.g. {sorted(missing)[:3]}"
        assert len(stored) == len(set(stored)), "a label was stored twice"
    # The test proves something only if the kills landed while labels were being written.
    assert len(acked) >= KILLS * 5, f"only {len(acked)} labels acknowledged in {KILLS} runs"
    assert runs_that_labeled >= KILLS // 2, f"only {runs_that_labeled} of {KILLS} runs labeled before the kill"
    announce(request.config, f"crash-safety: {KILLS} kills survived, {len(acked)} acknowledged labels, 0 lost")


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_sigkill_during_an_import_leaves_all_or_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, journal: str
) -> None:
    """An import is one transaction: killed anywhere, its library holds none of the new nodes or all of them,
    and the labels already in the workspace are untouched. Half the kills wait for the write phase. A big
    import ("delete": it writes through a rollback journal, kb.db.journal_for_write) leaves a hot journal
    when killed, which the next open rolls back before it returns the workspace to the write-ahead log;
    its write is fast, so it is killed after a random number of its chunks rather than after a pause."""
    workspace = tmp_path / "w.db"
    make_labeling_workspace(workspace)
    labeler = start_driver(workspace, "ann", seed=1, count=50)
    labels, _ = labeler.communicate(timeout=60)
    acked = acknowledged(labels)
    assert len(acked) == 50
    rng = random.Random(SEED)
    outcomes: list[str] = []
    journals: set[str] = set()
    for kill in range(IMPORT_KILLS):
        importer = start_importer(
            workspace, IMPORT_NODES, library=f"big{kill}", big_write=None if journal == "wal" else 1_000
        )
        assert importer.stdout is not None
        read: list[str] = []
        if journal == "delete":  # a fast write: kill it after a random number of its 40 chunks
            chunks = rng.randint(1, 30)
            while chunks and (line := importer.stdout.readline()):
                read.append(line)
                chunks -= line.startswith("wrote")
        elif kill % 2:
            while (line := importer.stdout.readline()) and not line.startswith("writing"):
                read.append(line)
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            time.sleep(rng.uniform(0.3, 1.5))
        importer.send_signal(signal.SIGKILL)
        stdout, _ = importer.communicate(timeout=30)
        lines = read + stdout.splitlines()
        journals.update(line.split()[1] for line in lines if line.startswith("journal "))
        conn = check_workspace(workspace)
        assert conn.execute("PRAGMA main.journal_mode").fetchone()[0] == "wal"
        sizes = conn.execute(
            "SELECT l.name, COUNT(n.id) - 1 FROM libraries l LEFT JOIN nodes n ON n.library_id = l.id"
            " WHERE l.name = ? GROUP BY l.id",
            (f"big{kill}",),
        ).fetchall()
        assert set(stored_label_uids(conn)) == set(acked)
        conn.close()
        imported = sizes[0][1] if sizes else 0
        assert imported in (0, IMPORT_NODES), f"kill {kill + 1}: a half-written import of {imported} nodes"
        writing = kill % 2 or journal == "delete"
        outcomes.append("done" if "done" in stdout else ("killed writing" if writing else "killed"))
    killed = sum(outcome.startswith("killed") for outcome in outcomes)
    writing = outcomes.count("killed writing")
    assert killed >= IMPORT_KILLS // 2, f"most imports finished before the kill: {outcomes}"
    assert writing >= 1, f"no kill landed inside the write transaction: {outcomes}"
    assert journals == {journal}, f"the writes went through {journals}, not {journal}"
    assert not Path(f"{workspace}-journal").exists()
    announce(
        request.config,
        f"crash-safety ({journal}): {IMPORT_KILLS} imports SIGKILLed ({killed} mid-way, {writing} of them while"
        f" writing, {IMPORT_KILLS - killed} after commit),"
        " 0 partial imports, 0 labels lost",
    )
