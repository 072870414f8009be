"""Benchmark the P(Z) engine against anchors measured in the same run.

Why: issue 6 promises an exact LP up to ~20 statements and singles-and-pairs bounds on 10^6
statements with 10^6 pair credences in seconds. Absolute times depend on the machine, so each
figure is printed beside an anchor — one tiny HiGHS solve (the seed's die LP) for the exact
engine, one NumPy pass over the same arrays for the scalable bounds — and the ratio between them.
The tightness table says what the cheap bounds cost in width against the exact interval.

    python -m bench.prior                  # everything (about a minute on two cores)
    python -m bench.prior --quick          # m up to 16, 10^5 statements

Instances are seeded; credences come from a random true distribution, so they are coherent.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linprog

from models.prior_bounds import PairwiseCredences, clustered, frechet, hunter, independence, pair_minimum
from models.prior_exact import Credence, exact_interval
from models.prior_similarity import cluster_texts


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


def credences_for(probabilities: NDArray[np.float64], m: int, pairs: list[tuple[int, int]]) -> list[Credence]:
    names = [f"s{i}" for i in range(m)]
    result = [Credence(frozenset({names[i]}), marginal(probabilities, 1 << i)) for i in range(m)]
    result += [
        Credence(frozenset({names[i], names[j]}), marginal(probabilities, (1 << i) | (1 << j))) for i, j in pairs
    ]
    return result


def bench_exact(sizes: list[int], anchor: float) -> None:
    print("\nexact LP: singles and all pairs from a random distribution; min and max of P(all true)")
    print(f"{'m':>4} {'credences':>10} {'atoms':>10} {'seconds':>9} {'x die LP':>10} {'interval':>22}")
    rng = np.random.default_rng(1)
    for m in sizes:
        probabilities = random_distribution(m, rng)
        credences = credences_for(probabilities, m, list(itertools.combinations(range(m), 2)))
        seconds, result = timed(lambda credences=credences: exact_interval(credences))  # type: ignore[misc]
        truth = marginal(probabilities, (1 << m) - 1)
        interval = result.interval
        assert interval.contains(truth, 1e-6), (m, interval, truth)
        shown = f"[{interval.lower:.4f}, {interval.upper:.4f}]"
        print(f"{m:>4} {len(credences):>10} {1 << m:>10,} {seconds:>9.3f} {seconds / anchor:>10.0f} {shown:>22}")


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
    print(f"\nscalable bounds: {m:,} statements, {pairs:,} pair credences")
    print(f"anchor: one NumPy pass over the singles and the pairs = {anchor * 1e3:.2f} ms")
    print(f"{'bound':<26} {'seconds':>9} {'x anchor':>10} {'result':>28}")
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
        print(f"{name:<26} {seconds:>9.3f} {seconds / anchor:>10.0f} {shown:>28}")


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
    print(f"\nnear-duplicate clustering: {n:,} texts ({n // 3:,} reworded copies)")
    print(f"anchor: one Python pass computing len() of every text = {anchor * 1e3:.1f} ms")
    print(
        f"clustered in {seconds:.2f} s ({seconds / anchor:.0f} x anchor); {len(np.unique(labels)):,} clusters; "
        f"{joined:,} of {n // 3:,} copies joined their original"
    )


def bench_tightness(m: int, instances: int, pair_share: float) -> None:
    print(f"\ntightness on {instances} random instances, m = {m}, singles + {pair_share:.0%} of pairs")
    print(f"{'bound':<14} {'mean width':>11} {'mean width - exact':>19} {'contains exact':>15}")
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
        print(f"{name:<14} {mean:>11.4f} {mean - exact_mean:>19.4f} {contains[name]:>11}/{instances}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a sanity check")
    args = parser.parse_args()
    anchor, _ = timed(die_lp, repeat=20)
    print(f"anchor: the seed's die as one dense 8-atom HiGHS LP = {anchor * 1e3:.2f} ms")
    bench_exact([8, 12, 16] if args.quick else [8, 12, 16, 20], anchor)
    size = 10**5 if args.quick else 10**6
    bench_scalable(size, size)
    bench_clustering(size // 10 if args.quick else 2 * 10**5)
    bench_tightness(8, 30, 0.5)
    bench_tightness(8, 30, 1.0)


if __name__ == "__main__":
    main()
