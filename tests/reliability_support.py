"""Helpers the reliability tests share: a small workspace to label, reading a driver's
acknowledgements, checking a workspace after a fault, and printing tallies.

Tallies are printed with output capture suspended so they reach the CI log
whether or not pytest runs with -s: the acceptance criterion is that the suite
*prints* kills survived, writes checked and fuzz cases tried.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.libraries import create_library
from kb.records import ItemRecord

DRIVER = Path(__file__).with_name("labeling_driver.py")
ROOT = Path(__file__).resolve().parent.parent


def subprocess_env() -> dict[str, str]:
    """The environment for child processes: they must import kb from this checkout, the code under
    test, whatever an editable install elsewhere on the machine points at."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def make_labeling_workspace(path: Path, *, statements: int = 12, items: int = 20) -> None:
    """A workspace with one library of `statements` top-level nodes and `items` train items."""
    conn = connect(path, create=True)
    library = create_library(conn, "z")
    nodes = [StagedNode(n, f"s{n}", None, "statement", f"Statement {n}") for n in range(1, statements + 1)]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    records = [ItemRecord(id=f"i{n}", x=f"Question {n}?", options=["yes", "no", "maybe"]) for n in range(items)]
    add_items(conn, list(enumerate(records, 1)), source="t", dstar=False)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def start_importer(
    workspace: Path, nodes: int, library: str = "big", *, big_write: int | None = None
) -> subprocess.Popen[str]:
    """`big_write` lowers kb.db.BIG_WRITE in the importer, so a small import writes as a big one does."""
    extra = [] if big_write is None else [str(big_write)]
    return subprocess.Popen(
        [sys.executable, "-c", IMPORTER, str(workspace), str(nodes), str(ROOT), library, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def start_driver(
    workspace: Path, labeler: str, *, seed: int, count: int = 0, go: Path | None = None
) -> subprocess.Popen[str]:
    barrier = ["--go", str(go)] if go else []
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(workspace), labeler, "--seed", str(seed), "--count", str(count), *barrier],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


# A generated import (IMPORT_NODES nodes, 100 under the root, the rest 100 to a parent) through
# kb.importing.import_staged in its own process: it prints each phase as it starts and `done N` at the end.
# argv: workspace, node count, the checkout kb must come from, library name (made if missing), and
# optionally a BIG_WRITE for kb.db (the write then goes in chunks of 1 000 nodes). As it starts writing it
# prints the journal the write goes through, and `wrote N` after each chunk.
IMPORTER = """
import sys
import kb.db
import kb.importing
from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.progress import NoProgress
from kb.libraries import get_or_create_library

if len(sys.argv) > 5:
    kb.db.BIG_WRITE = kb.importing.UID_INDEX_REBUILT_FROM = int(sys.argv[5])
    kb.importing.WRITE_CHUNK = 1_000

class Announce(NoProgress):
    def start(self, phase, total):
        print(phase, flush=True)
        if phase == "writing":
            print("journal", conn.execute("PRAGMA main.journal_mode").fetchone()[0], flush=True)

    def advance(self, amount):
        print("wrote", amount, flush=True)

import kb
assert kb.__file__.startswith(sys.argv[3]), kb.__file__
conn = connect(sys.argv[1])
library = get_or_create_library(conn, sys.argv[4] if len(sys.argv) > 4 else "big")
count = int(sys.argv[2])
nodes = (
    StagedNode(n + 1, f"n{n}", None if n < 100 else f"n{n // 100 - 1}", "statement", f"Title {n} " + "word " * 20)
    for n in range(count)
)
report = import_staged(conn, library, nodes, source="generated", importer="test", progress=Announce())
print("done", report.added, flush=True)
"""


def acknowledged(stdout: str) -> list[str]:
    """The uids the driver reported as committed; a line cut off by the kill has no newline and does not count."""
    complete = stdout.split("\n")[:-1]
    return [line.removeprefix("ack ") for line in complete if line.startswith("ack ")]


def stored_label_uids(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT uid FROM predictions UNION ALL SELECT uid FROM credences").fetchall()
    return [str(row[0]) for row in rows]


def check_workspace(path: Path) -> sqlite3.Connection:
    """Open the workspace the way the app does and demand a clean integrity check."""
    conn = connect(path)
    result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    assert result == ["ok"], result
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    return conn


def announce(config: pytest.Config, line: str) -> None:
    """Print one tally line to the real terminal, past pytest's output capture."""
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
