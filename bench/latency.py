"""Tree and search latency again, on files that `bench/workspace.py --keep DIR` left behind.

Building and indexing a million nodes takes half an hour; the latencies take one minute.
This re-measures them with bench/workspace.py's own functions, e.g. on a quiet machine
or after a change to search:

    python3 -m bench.workspace --keep /tmp/bench1m     # once
    python3 -m bench.latency /tmp/bench1m              # any time after
"""

from __future__ import annotations

import argparse
import random
import sqlite3
from pathlib import Path

from bench.workspace import build_vocabulary, latency_lines, make_queries, measure_search, measure_tree, verdicts
from kb.db import connect
from kb.libraries import get_library
from kb.search import SearchIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a folder written by `bench.workspace --keep`")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--samples", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    workspace = args.directory / "workspace.db"
    conn = connect(workspace)
    library = get_library(conn, "bench")
    tree = measure_tree(conn, library, random.Random(args.seed), args.samples)
    print("\n".join(latency_lines(3, "tree latency (library 'bench')", tree)))
    queries = make_queries(build_vocabulary(random.Random(args.seed)), random.Random(args.seed + 1), args.queries)
    fts = sqlite3.connect(args.directory / "fts.db")
    search = measure_search(SearchIndex(conn, workspace, library), fts, queries)
    print("\n".join(latency_lines(4, f"search latency over {len(queries)} queries", search)))
    print("\n".join(verdicts(tree, search)))


if __name__ == "__main__":
    main()
