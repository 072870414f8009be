"""Benchmark of the bundled local LLM on this machine: load, first token, tokens/s, unpack, cache hit.

Run: python3 bench/llm.py [--runs N]. A fresh unpack includes the model's credence in each child
(two true/false judgements a child), reported on its own line. Each figure is the median of N runs
(fresh nodes, so every unpack is a real model call); the cache-hit/fresh
ratio is the anchor, measured in the same run so machine load cancels out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kb.db import connect  # noqa: E402
from kb.libraries import create_library  # noqa: E402
from kb.tree import add_children, node_by_id  # noqa: E402
from models.llm.model import GenerationParams, LoadOptions, LocalLLM, Request  # noqa: E402
from models.llm.unpack import unpack  # noqa: E402
from models.llm.unpack_text import completion_prompt  # noqa: E402

FIELDS = [
    ("Coastline", "4,828 km"),
    ("Natural hazards", "periodic cyclones; drought; and locust infestation"),
    ("Climate", "tropical along coast, temperate inland, arid in south"),
    ("Terrain", "narrow coastal plain, high plateau and mountains in center"),
    ("Irrigated land", "10,000 sq km (2012)"),
]


def raw_generation(llm: LocalLLM, runs: int) -> tuple[Request, list[float], list[float]]:
    """Time to first token and tokens/s on the unpack prompt, no early stop."""
    request = Request(
        completion_prompt("Africa › Madagascar › Geography", "Coastline: 4,828 km"),
        GenerationParams(max_tokens=64, seed=0),
        stop=(),
    )
    first_ms, rates = [], []
    for run in range(runs):
        t0 = time.perf_counter()
        first: float | None = None
        count = 0
        for _ in llm.stream(Request(request.prompt, request.params.with_seed(run)), lambda: False):
            if first is None:
                first = (time.perf_counter() - t0) * 1000
            count += 1
        total = time.perf_counter() - t0
        first_ms.append(first or 0.0)
        rates.append((count - 1) / (total - (first or 0) / 1000) if count > 1 else 0.0)

    return request, first_ms, rates


def unpacking(llm: LocalLLM, runs: int) -> tuple[list[float], list[float], list[int], list[float]]:
    """Fresh unpacks (with M_Z's credences) and cache hits, on Factbook-like fields."""
    with tempfile.TemporaryDirectory() as folder:
        conn = connect(Path(folder) / "bench.db", create=True)
        library = create_library(conn, "bench")
        root = node_by_id(conn, library.root_id)
        assert root is not None
        (country,) = add_children(conn, root, [("Madagascar", "", "country")], origin="import")
        fresh_ms, cached_ms, made, judging_ms = [], [], [], []
        for run in range(runs):
            title, body = FIELDS[run % len(FIELDS)]
            (node,) = add_children(conn, country, [(title, body, "field")], origin="import")
            t0 = time.perf_counter()
            result = unpack(conn, llm, node, k=3)
            fresh_ms.append((time.perf_counter() - t0) * 1000)
            made.append(len(result.children))
            assert result.credit is not None and len(result.credit.credences) == len(result.children)
            judging_ms.append(result.credit.ms)
            t0 = time.perf_counter()
            hit = unpack(conn, llm, node, k=3)
            cached_ms.append((time.perf_counter() - t0) * 1000)
            assert hit.cached
        conn.close()

    return fresh_ms, cached_ms, made, judging_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    started = time.perf_counter()
    llm = LocalLLM.open(options=LoadOptions(n_threads=args.threads))
    llm.load()
    load_ms = (time.perf_counter() - started) * 1000
    print(f"model: {llm.identity.name} sha256 {llm.identity.sha256[:12]}… threads {args.threads}")

    request, first_ms, rates = raw_generation(llm, args.runs)
    fresh_ms, cached_ms, made, judging_ms = unpacking(llm, args.runs)

    fresh, cached = statistics.median(fresh_ms), statistics.median(cached_ms)
    print(f"load time:            {load_ms:9.1f} ms")
    prompt_tokens = llm.count_tokens(request.prompt)
    print(f"time to first token:  {statistics.median(first_ms):9.1f} ms  (prompt of {prompt_tokens} tokens)")
    print(f"generation:           {statistics.median(rates):9.1f} tokens/s")
    print(f"unpack, fresh (k=3):  {fresh:9.1f} ms  (median of {args.runs}; {statistics.mean(made):.1f} children each)")
    judging = statistics.median(judging_ms)
    print(
        f"  of which judging:   {judging:9.1f} ms  (model credences: each child and its negation judged, "
        f"{judging / fresh:.0%} of the unpack)"
    )
    print(f"unpack, cache hit:    {cached:9.3f} ms")
    print(f"cache-hit / fresh:    {cached / fresh:9.2e}  ({fresh / cached:,.0f}x faster)")


if __name__ == "__main__":
    main()
