"""A labeler in a separate process, for the crash-safety and concurrency tests.

It writes labels exactly the way the app does (kb.labels.LabelStore on a real
workspace file) and prints `ack <uid>` only after each label has committed,
flushing stdout, so the parent process knows which labels the user was told
were saved. A label must survive any kill that happens after its ack line.

    python tests/labeling_driver.py WORKSPACE LABELER [--count N] [--seed S] [--go PATH]

Prints `ready` once the workspace is open; with --go it then waits for PATH to
exist, so several drivers start writing at the same moment. With no --count it
labels until killed. Every label's note names the driver (`driver <seed>`).
Any exception reaches stderr and makes the exit status non-zero: the
tests treat that as a failure the user would have seen.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from kb.db import connect
from kb.items import items_in
from kb.labels import LabelStore
from kb.libraries import list_libraries
from kb.tree import children


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workspace", type=Path)
    parser.add_argument("labeler")
    parser.add_argument("--count", type=int, default=0, help="labels to write; 0 means until killed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--go", type=Path, help="wait for this file before labeling")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    conn = connect(args.workspace)
    library = list_libraries(conn)[0]
    statements = children(conn, library.root_id)
    items = items_in(conn, ("train", "validation", "prediction"))
    store = LabelStore(conn, args.labeler)
    note = f"driver {args.seed}"
    print("ready", flush=True)
    while args.go is not None and not args.go.exists():
        time.sleep(0.005)
    written = 0
    while args.count == 0 or written < args.count:
        if rng.random() < 0.7:
            item = rng.choice(items)
            weights = [rng.random() + 0.01 for _ in item.options]
            total = sum(weights)
            probs = {option: weight / total for option, weight in zip(item.options, weights, strict=True)}
            cited = [node.uid for node in rng.sample(statements, k=min(2, len(statements)))]
            uid = store.record_prediction(item, library.id, probs, cited=cited, seconds=rng.random(), note=note).uid
        else:
            chosen = rng.sample(statements, k=rng.randint(0, min(3, len(statements))))
            uid = store.record_credence(library.id, chosen, rng.random(), note=note).uid
        print(f"ack {uid}", flush=True)
        written += 1
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
