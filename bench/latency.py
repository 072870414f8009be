"""Tree latency again, on files that `bench/workspace.py --keep DIR` left behind.

Building a million nodes takes minutes; the latencies take one minute. This re-measures
them with bench/workspace.py's own functions, e.g. on a quiet machine or after a change
to the tree queries (search has its own bench: `python3 -m bench.search`):

    python3 -m bench.workspace --keep /tmp/bench1m     # once
    python3 -m bench.latency /tmp/bench1m              # any time after
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from bench.workspace import latency_lines, measure_tree, verdicts
from kb.db import connect
from kb.libraries import get_library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a folder written by `bench.workspace --keep`")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--samples", type=int, default=2_000)
    args = parser.parse_args()
    workspace = args.directory / "workspace.db"
    conn = connect(workspace)
    library = get_library(conn, "bench")
    tree = measure_tree(conn, library, random.Random(args.seed), args.samples)
    print("\n".join(latency_lines(2, "tree latency (library 'bench')", tree)))
    print("\n".join(verdicts(tree)))


if __name__ == "__main__":
    main()
