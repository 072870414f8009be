"""What M_Z's unpacking says that Z does not: free generation (`--elaborate`) against grounded unpacking, same run.

    python -m bench.unpack_quality [--nodes 100] [--seed 0] [--k 3] [--calibrate 200]

On a fresh demo workspace, `--nodes` random Factbook field nodes (fields, sub-fields and notes,
drawn with `--seed`) are unpacked both ways with the bundled model in its own process, the two
modes alternating first so that the machine's load falls on both alike. For each mode:

- unsupported: the share of statements holding a figure or a capitalised name found nowhere in
  the node's text nor in its breadcrumbs (models/llm/grounding.py `figures` and `names`, checked
  here against the whole node and its path, whatever evidence a statement cites);
- nodes with ≥ 2 statements, among the nodes whose text has 40 characters or more;
- statements per node; seconds per unpack (median; it includes judging each statement twice);
- for grounded unpacking, how the statements came (restated by the model, or a part quoted), how
  many the checks dropped, and how many unpacks asked the model twice;
- how well the stored model credences tell the unsupported statements from the rest (AUC, n).

Then `--calibrate` statements of the truth set are judged and reported as `navigator llm calibrate`
does (0 skips it). The anchor for time is free generation, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.tee import tee
from kb.demo import build_demo
from kb.labels import model_credences
from kb.libraries import get_library
from kb.progress import NoProgress
from kb.review import provenance
from kb.tree import Node, node_by_uid
from models.llm.calibration import auc
from models.llm.calibration_run import calibrate
from models.llm.grounding import figures, names
from models.llm.model import LoadOptions
from models.llm.model_process import ModelProcess
from models.llm.node_text import context_path, node_text
from models.llm.unpack import UnpackFailed, unpack

LONG = 40


@dataclass
class Tally:
    seconds: list[float] = field(default_factory=list)
    statements: int = 0
    unsupported: int = 0
    long_nodes: int = 0
    long_with_two: int = 0
    failed: int = 0
    forms: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    asked_twice: int = 0
    credences: list[tuple[float, bool]] = field(default_factory=list)  # (model P(true), unsupported?)


def says_more(statement: str, node: Node, path: str) -> bool:
    """The issue's count: a figure or capitalised name found nowhere in the node's text nor its breadcrumbs."""
    said = f"{path} {node.title} {node.body}"
    have_figures = set(figures(said))
    have_words = {word.lower() for word in said.replace("›", " ").split()}
    have_text = said.lower()
    if any(number not in have_figures for number in figures(statement)):
        return True
    return any(name.lower() not in have_words and name.lower() not in have_text for name in names(statement))


def run_mode(conn, llm, node: Node, path: str, elaborate: bool, tally: Tally) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        result = unpack(conn, llm, node, k=ARGS.k, elaborate=elaborate)
    except UnpackFailed:
        tally.seconds.append(time.perf_counter() - started)
        tally.failed += 1
        made = []
    else:
        tally.seconds.append(time.perf_counter() - started)
        made = result.children
        if result.attempts > 1:
            tally.asked_twice += 1
    text = node.body or node.title
    if len(text.strip()) >= LONG:
        tally.long_nodes += 1
        tally.long_with_two += len(made) >= 2
    believed = model_credences(conn, node.library_id, [child.uid for child in made]) if made else {}
    for child in made:
        tally.statements += 1
        more = says_more(child.title, node, path)
        tally.unsupported += more
        tally.forms[str(provenance(conn, child.id).get("form", "?"))] += 1
        if child.uid in believed:
            tally.credences.append((believed[child.uid].p, more))


def dropped_by_checks(conn) -> Counter[str]:  # type: ignore[no-untyped-def]
    """Why the checks dropped statements: the kind of the first thing each said that its evidence did not."""
    why: Counter[str] = Counter()
    for (checks,) in conn.execute("SELECT checks FROM llm_calls WHERE purpose = 'unpack'"):
        for gone in json.loads(checks or "{}").get("dropped", []):
            why[gone["unsupported"][0].split(" ")[0] if gone["unsupported"] else "?"] += 1
    return why


def report(name: str, tally: Tally, anchor: float) -> None:
    n = tally.statements
    seconds = statistics.median(tally.seconds)
    share = tally.unsupported / n if n else float("nan")
    two = tally.long_with_two / tally.long_nodes if tally.long_nodes else float("nan")
    print(f"{name}:")
    print(f"  unsupported figure or name: {share:.1%} of n = {n} statements ({tally.unsupported})")
    print(f"  nodes with ≥ 2 statements: {two:.1%} of n = {tally.long_nodes} nodes with {LONG}+ characters")
    nodes = len(tally.seconds)
    print(f"  statements per node: {n / nodes:.2f} (n = {nodes} nodes; {tally.failed} gave none)")
    print(f"  seconds per unpack: median {seconds:.2f} (×{seconds / anchor:.2f} the free generation's)")
    if tally.forms:
        print(f"  how they came: {', '.join(f'{form} {count}' for form, count in tally.forms.most_common())}")
    scores = np.array([p for p, _ in tally.credences])
    truth = np.array([0.0 if more else 1.0 for _, more in tally.credences])
    unsupported = int((truth == 0).sum())
    if unsupported and unsupported < len(truth):
        print(
            f"  model credences, supported vs unsupported: AUC {auc(scores, truth):.3f} "
            f"(n = {len(truth)}, {unsupported} unsupported); mean P {scores[truth == 1].mean():.2f} vs "
            f"{scores[truth == 0].mean():.2f}"
        )
    elif len(truth):
        print(f"  model credences: mean P {scores.mean():.2f} (n = {len(truth)}; no unsupported statement to compare)")


def main() -> None:
    with tee("unpack_quality"), tempfile.TemporaryDirectory() as folder:
        workspace = Path(folder) / "demo.db"
        conn, _ = build_demo(workspace, lambda _: NoProgress(), index_procs=2)
        library = get_library(conn, "factbook")
        rows = conn.execute(
            "SELECT uid FROM nodes WHERE library_id = ? AND origin = 'import' AND kind IN ('field', 'subfield', 'note')"
            " ORDER BY id",
            (library.id,),
        ).fetchall()
        chosen = random.Random(ARGS.seed).sample([row[0] for row in rows], ARGS.nodes)
        free, grounded = Tally(), Tally()
        with ModelProcess(options=LoadOptions(n_threads=2)) as llm:
            llm.load()
            for index, uid in enumerate(chosen):
                node = node_by_uid(conn, uid, library.id)
                assert node is not None
                path = context_path(conn, node)
                order = [(True, free), (False, grounded)]
                for elaborate, tally in order if index % 2 == 0 else reversed(order):
                    run_mode(conn, llm, node, path, elaborate, tally)
            grounded.dropped = dropped_by_checks(conn)
            print(f"{ARGS.nodes} random Factbook field nodes (seed {ARGS.seed}), k = {ARGS.k}, bundled model")
            anchor = statistics.median(free.seconds)
            report("free generation (--elaborate)", free, anchor)
            report("grounded (the default)", grounded, anchor)
            reasons = ", ".join(f"{why} {count}" for why, count in grounded.dropped.most_common())
            print(
                f"  checks dropped {sum(grounded.dropped.values())} statements (first reason: {reasons}); "
                f"{grounded.asked_twice} of {len(grounded.seconds)} unpacks asked the model a second time"
            )
            shown = 0
            for (checks,) in conn.execute("SELECT checks FROM llm_calls WHERE purpose = 'unpack'"):
                for gone in json.loads(checks or "{}").get("dropped", []):
                    if shown < ARGS.dropped:
                        print(f"  dropped: {gone['text'][:120]}  ({'; '.join(gone['unsupported'])})")
                        shown += 1
            for uid in chosen[: ARGS.show]:
                node = node_by_uid(conn, uid, library.id)
                assert node is not None
                print(f"\n{context_path(conn, node)} › {node_text(node)[:160]}")
                for row in conn.execute(
                    "SELECT kind, title FROM nodes WHERE parent_id = ? AND origin = 'llm' ORDER BY kind, position",
                    (node.id,),
                ):
                    print(f"  {row[0]:<12} {row[1][:150]}")
            if ARGS.calibrate:
                started = time.perf_counter()
                found = calibrate(llm, conn, n=ARGS.calibrate, seed=ARGS.seed)
                took = time.perf_counter() - started
                print(
                    f"\ncalibration, n = {found.n} truth-set statements (seed {ARGS.seed}), out of fold: accuracy "
                    f"{found.accuracy:.3f}, ECE {found.ece:.3f}, AUC {found.auc:.3f} (judgement alone "
                    f"{found.auc_judgement:.3f}, evidence check alone {found.auc_support:.3f}; {took:.0f} s)"
                )
                for kind in found.by_kind:
                    held = f", AUC out of kind {kind.auc_out_of_kind:.3f}" if kind.auc_out_of_kind is not None else ""
                    print(f"  {kind.kind}: n = {kind.n}, accuracy {kind.accuracy:.3f}, mean P {kind.mean_p:.3f}{held}")
        conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--calibrate", type=int, default=200)
    parser.add_argument("--show", type=int, default=3, help="print the statements made for this many nodes")
    parser.add_argument("--dropped", type=int, default=0, help="print this many dropped statements, with why")
    ARGS = parser.parse_args()
    main()
