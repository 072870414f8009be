"""Benchmark the P(Z) engine against anchors and references measured in the same run.

Why: issue 16 asks for the exact interval and coherence check of one linked component of 20
statements with singles and pairs in under 5 s, and 24 in under 30 s, equal to the same LP solved
densely (every truth assignment a column) to 1e-6. Absolute times depend on the machine, so each is
printed beside an anchor — one tiny HiGHS solve (the seed's die LP) — and the dense solve of the
same LP, up to 18 statements (HiGHS's simplex: about 4 minutes per instance at 18). Beyond that
the dense LP is out of reach here: at 20 statements it has a million columns and 61 million
non-zeros (HiGHS's simplex had not finished after 60 CPU minutes; its interior point ran 18 minutes
in 9 GB and failed on the maximum); at 24, 16.8 million columns and about 1.4 billion non-zeros.
There, and at every size, the optimality certificate is printed: the primal solution matches
every credence, no atom of the 2^m has a negative reduced cost (checked by a plain subset-sum,
not the fast pricing), and the primal and dual objectives agree.

Two families of instances: `random` (mass on a few hundred assignments near "all true", the
original bench) and `latent` (statements in four clusters of near-duplicates driven by a hidden
coin each: the dependent case the seed is about). "What each speed-up buys" switches one off at a
time; the scalable bounds (10^6 statements), clustering and tightness tables follow.

    python -m bench.prior                  # everything; writes bench/prior.out.txt (about 15 minutes)
    python -m bench.prior --quick          # m = 16 and 20, dense only at 16, 10^5 statements

Instances are seeded; credences come from a true distribution, so they are coherent.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linprog
from scipy.optimize._highspy import _core as highs

from models.prior.bounds import PairwiseCredences, clustered, frechet, hunter, independence, pair_minimum
from models.prior.exact import MAX_EXACT_STATEMENTS, Credence, exact_interval
from models.prior.lp import AtomLP, AtomPricer, LPSettings, zeta
from models.prior.report import prior_report
from models.prior.similarity import cluster_texts

OUT = Path(__file__).with_name("prior.out.txt")
_lines: list[str] = []


def say(text: str = "") -> None:
    """Print a line and keep it for bench/prior.out.txt."""
    print(text, flush=True)
    _lines.append(text)


def timed(action: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def die_lp() -> float:
    """The anchor: the seed's die as a dense 8-atom LP, solved once by HiGHS."""
    atoms = np.array(list(itertools.product([0, 1], repeat=3)), dtype=float)
    rows = [atoms[:, 0], atoms[:, 1], atoms[:, 2], atoms[:, 0] * atoms[:, 1], atoms[:, 0] * atoms[:, 2]]
    rows += [atoms[:, 1] * atoms[:, 2], np.ones(8)]
    b = [0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 1.0]
    return float(linprog(atoms.prod(axis=1), A_eq=np.array(rows), b_eq=b, method="highs").fun)


def random_distribution(m: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Mass on a few hundred atoms near 'all true', so the all-true event is neither 0 nor certain."""
    probabilities = np.zeros(1 << m)
    flips = rng.random((min(1 << m, 400), m)) < 0.85
    support = (flips * (1 << np.arange(m))).sum(axis=1)
    np.add.at(probabilities, support, rng.random(len(support)))
    normalised: NDArray[np.float64] = probabilities / probabilities.sum()
    return normalised


def marginal(probabilities: NDArray[np.float64], mask: int) -> float:
    atoms = np.arange(len(probabilities))
    return float(probabilities[(atoms & mask) == mask].sum())


def latent_distribution(
    m: int, rng: np.random.Generator, clusters: int = 4, draws: int = 20_000
) -> NDArray[np.float64]:
    """Statements in clusters of near-duplicates: each copies its cluster's hidden coin, flipped 5% of the time."""
    group = rng.integers(0, clusters, m)
    coins = rng.random((draws, clusters)) < rng.uniform(0.5, 0.95, clusters)
    truth = coins[:, group] ^ (rng.random((draws, m)) < 0.05)
    probabilities = np.zeros(1 << m)
    np.add.at(probabilities, (truth * (1 << np.arange(m))).sum(axis=1), 1.0)
    normalised: NDArray[np.float64] = probabilities / probabilities.sum()
    return normalised


FAMILIES: dict[str, Callable[[int, np.random.Generator], NDArray[np.float64]]] = {
    "random": random_distribution,
    "latent": latent_distribution,
}


def credences_for(probabilities: NDArray[np.float64], m: int, pairs: list[tuple[int, int]]) -> list[Credence]:
    names = [f"s{i}" for i in range(m)]
    result = [Credence(frozenset({names[i]}), marginal(probabilities, 1 << i)) for i in range(m)]
    result += [
        Credence(frozenset({names[i], names[j]}), marginal(probabilities, (1 << i) | (1 << j))) for i, j in pairs
    ]
    return result


def instance(family: str, m: int, seed: int) -> tuple[NDArray[np.float64], list[Credence]]:
    probabilities = FAMILIES[family](m, np.random.default_rng(seed))
    return probabilities, credences_for(probabilities, m, list(itertools.combinations(range(m), 2)))


def as_masks(credences: list[Credence], m: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    position = {f"s{i}": i for i in range(m)}
    masks = np.array([sum(1 << position[s] for s in c.statements) for c in credences], dtype=np.int64)
    return masks, np.array([c.p for c in credences])


def dense_interval(m: int, masks: NDArray[np.int64], p: NDArray[np.float64]) -> tuple[float, float, float, str]:
    """(min, max, seconds, problem) of P(all true) with every atom a column, by HiGHS's simplex from scratch;
    `problem` is empty unless HiGHS did not report both optimal. (Its interior point method is faster at
    16 statements but failed on the maximum at 18 here.)"""
    started = time.perf_counter()
    atoms = np.arange(1 << m, dtype=np.int64)
    rows = [np.flatnonzero((atoms & mask) == mask).astype(np.int32) for mask in masks]
    index = np.concatenate(
        [np.full(len(r), k, dtype=np.int32) for k, r in enumerate(rows)] + [np.full(1 << m, len(masks), dtype=np.int32)]
    )
    column = np.concatenate([*rows, atoms.astype(np.int32)])
    order = np.lexsort((index, column))
    index, column = index[order], column[order]
    lp = highs.HighsLp()
    lp.num_col_, lp.num_row_ = 1 << m, len(masks) + 1
    lp.col_lower_, lp.col_upper_ = np.zeros(1 << m), np.full(1 << m, np.inf)
    lp.row_lower_ = lp.row_upper_ = np.append(p, 1.0)
    lp.a_matrix_.format_ = highs.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.searchsorted(column, np.arange((1 << m) + 1)).astype(np.int32)
    lp.a_matrix_.index_, lp.a_matrix_.value_ = index, np.ones(len(index))
    del rows, order, column
    ends, problems = [], []
    for sign in (1.0, -1.0):
        cost = np.zeros(1 << m)
        cost[-1] = sign
        lp.col_cost_ = cost
        solver = highs._Highs()
        solver.setOptionValue("output_flag", False)
        solver.passModel(lp)
        solver.run()
        status = solver.getModelStatus()
        if status != highs.HighsModelStatus.kOptimal:
            problems.append(f"{'min' if sign > 0 else 'max'}: {solver.modelStatusToString(status)}")
        ends.append(sign * solver.getInfo().objective_function_value)
    return ends[0], ends[1], time.perf_counter() - started, "; ".join(problems)


def certificate(m: int, masks: NDArray[np.int64], p: NDArray[np.float64]) -> tuple[float, float, float]:
    """Worst (residual, reduced cost, duality gap) over the min and the max, from the LP's own solution."""
    lp = AtomLP(m, masks, p, enumerate_all=False)
    lp.nearest()
    lp.fix_rhs(p)
    worst = [0.0, 0.0, 0.0]
    for sign in (1.0, -1.0):
        lp.bound((1 << m) - 1, sign)
        found = lp.certificate()
        worst = [max(worst[0], found.residual), min(worst[1], found.min_reduced_cost), max(worst[2], found.gap)]
    return worst[0], worst[1], worst[2]


def bench_exact(sizes: list[int], dense_max: int, anchor: float) -> dict[tuple[str, int], float]:
    say("\nexact LP, one linked component: singles and all pairs; coherence check + min + max of P(all true)")
    say(
        f"{'family':<7} {'m':>3} {'cred.':>6} {'atoms':>11} {'seconds':>8} {'x die':>7} {'interval':>18} "
        f"{'dense s':>8} {'|Δ| dense':>10} {'certificate: residual, min rc, gap':>36}"
    )
    seconds: dict[tuple[str, int], float] = {}
    for family in FAMILIES:
        for m in sizes:
            probabilities, credences = instance(family, m, seed=m)
            spent, result = timed(lambda credences=credences: exact_interval(credences))  # type: ignore[misc]
            seconds[(family, m)] = spent
            interval = result.interval
            assert result.coherence.coherent and interval.contains(marginal(probabilities, (1 << m) - 1), 1e-6)
            masks, p = as_masks(credences, m)
            nonzeros = int(sum(1 << (m - bin(int(mask)).count("1")) for mask in masks)) + (1 << m)
            if m <= dense_max:
                low, high, dense_seconds, problem = dense_interval(m, masks, p)
                gap = max(abs(low - interval.lower), abs(high - interval.upper))
                if problem:
                    say(f"    (m = {m}: the dense solve did not finish: {problem}; the certificate stands in for it)")
                    dense = f"{dense_seconds:>8.1f} {'failed':>10}"
                else:
                    assert gap <= 1e-6, (family, m, interval, low, high)
                    dense = f"{dense_seconds:>8.1f} {gap:>10.1e}"
            else:
                dense = f"{'not run':>8} {'':>10}"
                if family == next(iter(FAMILIES)):
                    say(
                        f"    (m = {m}: the dense LP has {1 << m:,} columns and {nonzeros:,} non-zeros, about "
                        f"{nonzeros * 12 / 1e9:.1f} GB before HiGHS copies it; the certificate stands in for it)"
                    )
            residual, reduced, duality = certificate(m, masks, p)
            assert residual <= 1e-7 and reduced >= -1e-7 and duality <= 1e-7, (residual, reduced, duality)
            shown = f"[{interval.lower:.4f}, {interval.upper:.4f}]"
            cert = f"{residual:.0e}, {reduced:.0e}, {duality:.0e}"
            say(
                f"{family:<7} {m:>3} {len(credences):>6} {1 << m:>11,} {spent:>8.2f} {spent / anchor:>7.0f} "
                f"{shown:>18} {dense} {cert:>36}"
            )
    for m, goal in ((20, 5.0), (24, 30.0)):
        found = [seconds[(family, m)] for family in FAMILIES if (family, m) in seconds]
        if found:
            verdict = "PASS" if max(found) < goal else "FAIL"
            say(f"goal m = {m}: slowest family {max(found):.2f} s, goal < {goal:g} s: {verdict}")
    return seconds


def bench_speedups(m: int) -> None:
    """Each speed-up switched off on its own, on the same instances, beside everything on."""
    say(f"\nwhat each speed-up buys (m = {m}; seconds for coherence + min + max, everything else on)")
    variants = [
        ("all on", LPSettings()),
        ("no sampled starting columns", LPSettings(sampled_columns=False)),
        ("no warm starts (HiGHS restarts cold)", LPSettings(warm_start=False)),
        ("no split pricing (plain 2^m zeta)", LPSettings(split_pricing=False)),
    ]
    say(f"{'variant':<40} " + " ".join(f"{family:>9}" for family in FAMILIES))
    for name, settings in variants:
        row = []
        for family in FAMILIES:
            _, credences = instance(family, m, seed=m)
            spent, _ = timed(
                lambda credences=credences, settings=settings: exact_interval(credences, settings=settings)
            )  # type: ignore[misc]
            row.append(spent)
        say(f"{name:<40} " + " ".join(f"{value:>9.2f}" for value in row))
    # Implied atoms only matter when credences pin something: duplicate statements and a certain one.
    probabilities, credences = instance("latent", m, seed=m)
    twins = [Credence(frozenset({f"s{m}"}), credences[0].p), Credence(frozenset({"s0", f"s{m}"}), credences[0].p)]
    certain = [Credence(frozenset({f"s{m + 1}"}), 1.0)]
    pinned = credences + twins + certain + [Credence(frozenset({"s1", f"s{m + 1}"}), credences[1].p)]
    on, _ = timed(lambda: exact_interval(pinned))
    off, _ = timed(lambda: exact_interval(pinned, settings=LPSettings(implied_atoms=False)))
    say(
        f"implied-empty atoms on a latent instance with a duplicated and a certain statement (m = {m + 2}): "
        f"{on:.2f} s priced out, {off:.2f} s kept in"
    )
    pricer_m = 24
    masks = np.array(
        [1 << i for i in range(pricer_m)]
        + [(1 << i) | (1 << j) for i, j in itertools.combinations(range(pricer_m), 2)],
        dtype=np.int64,
    )
    duals = np.random.default_rng(0).normal(size=len(masks))
    pricer = AtomPricer(pricer_m, masks)
    split, grid = timed(lambda: pricer.coverage(duals), repeat=3)
    plain, flat = timed(lambda: zeta(pricer_m, masks, duals), repeat=3)
    assert np.allclose(grid.reshape(-1), flat)
    say(
        f"one pricing pass over all 2^{pricer_m} atoms ({len(masks)} credences): split {split:.2f} s, "
        f"plain subset-sum {plain:.2f} s ({plain / split:.1f}x)"
    )


def bench_above_exact(anchor: float) -> None:
    m = MAX_EXACT_STATEMENTS + 1
    _, credences = instance("random", m, seed=m)
    spent, report = timed(lambda: prior_report(credences))
    say(
        f"\nabove the exact limit: {m} linked statements -> method {report.method!r}, "
        f"[{report.interval.lower:.4f}, {report.interval.upper:.4f}] in {spent:.3f} s ({spent / anchor:.0f} x die LP)"
    )


def large_instance(m: int, pairs: int, rng: np.random.Generator) -> PairwiseCredences:
    """Coherent singles and pairs: each pair value lies inside its Fréchet range for the two singles."""
    single = 1.0 - rng.random(m) * 1e-5
    i = rng.integers(0, m, size=pairs)
    j = (i + 1 + rng.integers(0, m - 1, size=pairs)) % m
    low = np.maximum(0.0, single[i] + single[j] - 1.0)
    high = np.minimum(single[i], single[j])
    return PairwiseCredences(single, i.astype(np.int64), j.astype(np.int64), low + (high - low) * rng.random(pairs))


def bench_scalable(m: int, pairs: int) -> None:
    rng = np.random.default_rng(2)
    data = large_instance(m, pairs, rng)
    anchor, _ = timed(lambda: float(np.sum(1.0 - data.single)) + float(np.sum(data.pair_p)), repeat=5)
    say(f"\nscalable bounds: {m:,} statements, {pairs:,} pair credences")
    say(f"anchor: one NumPy pass over the singles and the pairs = {anchor * 1e3:.2f} ms")
    say(f"{'bound':<26} {'seconds':>9} {'x anchor':>10} {'result':>28}")
    labels = rng.integers(0, m // 3, size=m).astype(np.int64)
    rows: list[tuple[str, Callable[[], Any]]] = [
        ("frechet", lambda: frechet(data)),
        ("pair_minimum", lambda: pair_minimum(data)),
        ("hunter (max spanning tree)", lambda: hunter(data)),
        ("independence", lambda: independence(data)),
        ("clusters (given labels)", lambda: clustered(data, labels, 0.8)),
    ]
    for name, action in rows:
        seconds, estimate = timed(action)
        shown = (
            f"[{estimate.lower:.6f}, {estimate.upper:.6f}]" if estimate.kind == "bound" else f"10^{estimate.log10:.2f}"
        )
        say(f"{name:<26} {seconds:>9.3f} {seconds / anchor:>10.0f} {shown:>28}")


def bench_clustering(n: int) -> None:
    """Near-duplicate clustering of n synthetic statements, a third of them reworded copies."""
    rng = np.random.default_rng(3)
    words = np.array([f"w{k}" for k in range(50_000)])
    base = [" ".join(words[rng.integers(0, len(words), size=12)]) for _ in range(n - n // 3)]
    copies = [text.replace(text.split()[0], "the", 1) + " indeed" for text in base[: n // 3]]
    texts = base + copies
    anchor, _ = timed(lambda: [len(t) for t in texts])
    seconds, labels = timed(lambda: cluster_texts(texts))
    joined = int(np.sum(labels[len(base) :] == labels[: n // 3]))
    say(f"\nnear-duplicate clustering: {n:,} texts ({n // 3:,} reworded copies)")
    say(f"anchor: one Python pass computing len() of every text = {anchor * 1e3:.1f} ms")
    say(
        f"clustered in {seconds:.2f} s ({seconds / anchor:.0f} x anchor); {len(np.unique(labels)):,} clusters; "
        f"{joined:,} of {n // 3:,} copies joined their original"
    )


def bench_tightness(m: int, instances: int, pair_share: float) -> None:
    say(f"\ntightness on {instances} random instances, m = {m}, singles + {pair_share:.0%} of pairs")
    say(f"{'bound':<14} {'mean width':>11} {'mean width - exact':>19} {'contains exact':>15}")
    rng = np.random.default_rng(4)
    widths: dict[str, list[float]] = {"exact": [], "frechet": [], "pair_minimum": [], "hunter": [], "best": []}
    contains: dict[str, int] = dict.fromkeys(widths, 0)
    for _ in range(instances):
        probabilities = random_distribution(m, rng)
        all_pairs = list(itertools.combinations(range(m), 2))
        chosen = [all_pairs[k] for k in np.flatnonzero(rng.random(len(all_pairs)) < pair_share)]
        credences = credences_for(probabilities, m, chosen)
        exact = exact_interval(credences).interval
        data = PairwiseCredences(
            np.array([c.p for c in credences[:m]]),
            np.array([i for i, _ in chosen], dtype=np.int64),
            np.array([j for _, j in chosen], dtype=np.int64),
            np.array([c.p for c in credences[m:]]),
        )
        found = {"frechet": frechet(data), "pair_minimum": pair_minimum(data), "hunter": hunter(data)}
        low = max(e.lower for e in found.values())
        high = min(e.upper for e in found.values())
        intervals = {name: (e.lower, e.upper) for name, e in found.items()}
        intervals["best"] = (low, high)
        intervals["exact"] = (exact.lower, exact.upper)
        for name, (lower, upper) in intervals.items():
            widths[name].append(upper - lower)
            contains[name] += int(lower <= exact.lower + 1e-7 and upper >= exact.upper - 1e-7)
    exact_mean = float(np.mean(widths["exact"]))
    for name, values in widths.items():
        mean = float(np.mean(values))
        say(f"{name:<14} {mean:>11.4f} {mean - exact_mean:>19.4f} {contains[name]:>11}/{instances}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a sanity check")
    parser.add_argument(
        "--dense-max",
        type=int,
        help="largest m solved densely as the reference (default 18, about 4 minutes per instance here; "
        "20 had not finished after 60 CPU minutes)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the output (default bench/prior.out.txt)")
    args = parser.parse_args()
    load = os.getloadavg()
    say(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    anchor, _ = timed(die_lp, repeat=20)
    say(f"anchor: the seed's die as one dense 8-atom HiGHS LP = {anchor * 1e3:.2f} ms")
    sizes = [16, 20] if args.quick else [16, 18, 20, 24]
    dense_max = args.dense_max if args.dense_max is not None else (16 if args.quick else 18)
    bench_exact(sizes, dense_max, anchor)
    bench_speedups(20)
    bench_above_exact(anchor)
    size = 10**5 if args.quick else 10**6
    bench_scalable(size, size)
    bench_clustering(size // 10 if args.quick else 2 * 10**5)
    bench_tightness(8, 30, 0.5)
    bench_tightness(8, 30, 1.0)
    load = os.getloadavg()
    say(f"\nload average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    args.out.write_text("\n".join(_lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
