"""Benchmark of the bundled local LLM on this machine: in-process against the model process, repacking on and off.

Run: python3 bench/llm.py [--rounds 3] [--runs 5] [--threads 2]

Each configuration runs in a fresh Python process of its own (so a configuration that crashes is
reported, not fatal), in rounds that alternate the configurations so that the machine's load
falls on all of them alike; each figure is the median over rounds × runs:

- in-process, repacking off — the anchor: LocalLLM in the measuring process;
- model process, repacking off — what every surface uses (models/llm/model_process.py): the
  same generation through a child process and its pipes;
- in-process, repacking on — llama.cpp's default (all extra buffer types: AMX where the CPU has
  it); on AMX hosts whose AMX matmul crashes, this row says so;
- in-process, repacking on with AMX denied (Linux x86-64) — the kernel refuses the process AMX
  permission, so llama.cpp repacks into its interleaved CPU_REPACK layout instead: what
  repacking gives where it is safe, measured on this same CPU.

Then, through the model process as the app runs it: how long Esc takes to get back to idle,
fresh unpacks (with M_Z's credences: two judgements a child) and cache hits; the cache-hit /
fresh ratio is the unpack's anchor.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tee import tee  # noqa: E402
from kb.db import connect  # noqa: E402
from kb.libraries import create_library  # noqa: E402
from kb.tree import add_children, node_by_id  # noqa: E402
from models.llm.model import GenerationCancelled, GenerationParams, LoadOptions, LocalLLM, Request  # noqa: E402
from models.llm.model_process import ModelProcess, describe_exit  # noqa: E402
from models.llm.unpack import unpack  # noqa: E402
from models.llm.unpack_text import completion_prompt  # noqa: E402

FIELDS = [
    ("Coastline", "4,828 km"),
    ("Natural hazards", "periodic cyclones; drought; and locust infestation"),
    ("Climate", "tropical along coast, temperate inland, arid in south"),
    ("Terrain", "narrow coastal plain, high plateau and mountains in center"),
    ("Irrigated land", "10,000 sq km (2012)"),
]
CONFIGS = {
    "in-process, repacking off": ("local", "off"),
    "model process, repacking off": ("process", "off"),
    "in-process, repacking on": ("local", "on"),
    "in-process, repacking on, AMX denied": ("local-no-amx", "on"),
}
REQUEST = Request(
    completion_prompt("Africa › Madagascar › Geography", "Coastline: 4,828 km"),
    GenerationParams(max_tokens=64, seed=0),
)


def deny_amx() -> None:
    """A seccomp filter that makes arch_prctl(ARCH_REQ_XCOMP_PERM) fail with EPERM in this process.

    ggml asks for AMX tile permission once, when it first lists its buffer types; refused, it
    leaves AMX out and repacks into CPU_REPACK. Linux x86-64 only; irreversible for the process.
    """

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    load, equal, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    allow, refuse = 0x7FFF0000, 0x00050000 | errno.EPERM
    rules = [
        (load, 0, 0, 4), (equal, 0, 5, 0xC000003E),  # seccomp_data.arch == AUDIT_ARCH_X86_64, else allow
        (load, 0, 0, 0), (equal, 0, 3, 158),  # seccomp_data.nr == __NR_arch_prctl
        (load, 0, 0, 16), (equal, 0, 1, 0x1023),  # args[0] == ARCH_REQ_XCOMP_PERM
        (ret, 0, 0, refuse),
        (ret, 0, 0, allow),
    ]  # fmt: skip
    table = (Filter * len(rules))(*[Filter(*rule) for rule in rules])
    program = Program(len(rules), table)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(program), 0, 0):  # NO_NEW_PRIVS, SECCOMP
        raise OSError(ctypes.get_errno(), "cannot install the seccomp filter")


def measure(config: str, runs: int, threads: int) -> dict[str, Any]:
    """One configuration, in this process: start/load time, then `runs` generations of the unpack prompt."""
    kind, repack = CONFIGS[config]
    if kind == "local-no-amx":
        deny_amx()
    options = LoadOptions(n_threads=threads, repack=repack)  # type: ignore[arg-type]
    started = time.perf_counter()
    llm: LocalLLM | ModelProcess = ModelProcess(options=options) if kind == "process" else LocalLLM.open(None, options)
    llm.load()
    start_ms = (time.perf_counter() - started) * 1000
    first_ms, rates = [], []
    for run in range(runs):
        t0 = time.perf_counter()
        first: float | None = None
        count = 0
        for _ in llm.stream(Request(REQUEST.prompt, REQUEST.params.with_seed(run)), lambda: False):
            if first is None:
                first = (time.perf_counter() - t0) * 1000
            count += 1
        total = time.perf_counter() - t0
        first_ms.append(first or 0.0)
        rates.append((count - 1) / (total - (first or 0) / 1000) if count > 1 else 0.0)
    runtime = llm.identity.runtime
    system = llm.system
    if isinstance(llm, ModelProcess):
        llm.close()
    return {
        "start_ms": start_ms,
        "first_ms": first_ms,
        "rates": rates,
        "repack": runtime["repack"],
        "extra_buffer_types": system["extra_buffer_types"],
        "prompt_tokens": llm.count_tokens(REQUEST.prompt) if isinstance(llm, LocalLLM) else None,
    }


def run_config(config: str, runs: int, threads: int) -> dict[str, Any]:
    """`measure` in a fresh process; a crash comes back as {"crashed": "signal 11, SIGSEGV"}."""
    command = [sys.executable, __file__, "--config", config, "--runs", str(runs), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        return {"crashed": describe_exit(done.returncode), "said": last[:200]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def cancel_to_idle(llm: ModelProcess, runs: int) -> list[float]:
    """Cancel after the third token, then time until the model process answers the next request."""
    times = []
    for run in range(runs):
        seen: list[str] = []

        def third(seen: list[str] = seen) -> bool:
            return len(seen) >= 3

        try:
            for piece in llm.stream(Request(REQUEST.prompt, REQUEST.params.with_seed(run)), third):
                seen.append(piece)
        except GenerationCancelled:
            pass
        t0 = time.perf_counter()
        llm.count_tokens("idle?")
        times.append((time.perf_counter() - t0) * 1000)
    return times


def unpacking(llm: ModelProcess, runs: int) -> tuple[list[float], list[float], list[int], list[float]]:
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


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.config:
        print(json.dumps(measure(args.config, args.runs, args.threads)))
        return

    configs = list(CONFIGS)
    if not (sys.platform == "linux" and platform.machine() == "x86_64"):
        configs.remove("in-process, repacking on, AMX denied")
    results: dict[str, list[dict[str, Any]]] = {config: [] for config in configs}
    for _ in range(args.rounds):
        for config in configs:
            results[config].append(run_config(config, args.runs, args.threads))

    print(f"threads {args.threads}; {args.rounds} rounds × {args.runs} generations of 64 tokens per configuration")
    anchor = results["in-process, repacking off"]
    prompt_tokens = next((r["prompt_tokens"] for r in anchor if r.get("prompt_tokens")), "?")
    print(f"prompt: the unpack prompt, {prompt_tokens} tokens, evaluated from the start each time")
    base_first = med([x for r in anchor if "crashed" not in r for x in r["first_ms"]])
    base_rate = med([x for r in anchor if "crashed" not in r for x in r["rates"]])
    print(f"{'configuration':<40} {'start+load':>11} {'first token':>12} {'tokens/s':>9}   vs anchor")
    for config in configs:
        rows = results[config]
        crashed = [r for r in rows if "crashed" in r]
        fine = [r for r in rows if "crashed" not in r]
        if not fine:
            print(f"{config:<40} crashed in {len(crashed)} of {len(rows)} runs ({crashed[0]['crashed']})")
            continue
        first = med([x for r in fine for x in r["first_ms"]])
        rate = med([x for r in fine for x in r["rates"]])
        start = med([r["start_ms"] for r in fine])
        buffers = ", ".join(fine[0]["extra_buffer_types"]) or "none"
        note = f"  (repack {'on' if fine[0]['repack'] else 'off'}; offered: {buffers})"
        if crashed:
            note += f"; crashed in {len(crashed)} of {len(rows)} runs"
        print(
            f"{config:<40} {start:8.0f} ms {first:9.1f} ms {rate:9.1f}   "
            f"first ×{first / base_first:.2f}, rate ×{rate / base_rate:.2f}{note}"
        )

    with ModelProcess(options=LoadOptions(n_threads=args.threads)) as llm:
        idle = cancel_to_idle(llm, args.runs)
        fresh_ms, cached_ms, made, judging_ms = unpacking(llm, args.runs)
        runtime = llm.identity.runtime
    print(f"\nthrough the model process (repack {'on' if runtime['repack'] else 'off'}, auto):")
    print(f"cancel → idle:        {med(idle):9.1f} ms  (median of {len(idle)}; max {max(idle):.1f} ms)")
    fresh, cached = med(fresh_ms), med(cached_ms)
    print(f"unpack, fresh (k=3):  {fresh:9.1f} ms  (median of {args.runs}; {statistics.mean(made):.1f} children each)")
    judging = med(judging_ms)
    print(
        f"  of which judging:   {judging:9.1f} ms  (model credences: each child and its negation judged, "
        f"{judging / fresh:.0%} of the unpack)"
    )
    print(f"unpack, cache hit:    {cached:9.3f} ms")
    print(f"cache-hit / fresh:    {cached / fresh:9.2e}  ({fresh / cached:,.0f}x faster)")


if __name__ == "__main__":
    if "--config" in sys.argv:
        main()
    else:
        with tee("llm"):
            main()
