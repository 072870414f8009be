"""The P(Z) engine: exact intervals, coherence and repair, scalable bounds, clusters, input and workspace reading.

Reference answers come from a plain dense LP over every truth assignment written here, independent
of the engine's components and column generation.
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import models.prior.exact as prior_exact
from kb.importing import ImportProblem
from kb.libraries import Library
from models.prior.bounds import (
    PairwiseCredences,
    clustered,
    frechet,
    hunter,
    independence,
    pair_minimum,
    pairwise_violations,
    scalable_bounds,
)
from models.prior.engine import choose_engine
from models.prior.exact import (
    Credence,
    TooManyStatements,
    check_coherence,
    distance_to_coherence,
    exact_interval,
)
from models.prior.report import load_workspace_credences, prior_report, read_credences
from models.prior.similarity import cluster_texts

LP_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cred(names: str, p: float) -> Credence:
    return Credence(frozenset(names.split()), p)


# -- a reference LP, deliberately naive ---------------------------------------------------------


def reference(credences: Sequence[Credence], query: Sequence[str]) -> tuple[float, float, float]:
    """(least L1 change to coherence, min, max of P(query)) by one dense LP over all atoms."""
    names = sorted({s for c in credences for s in c.statements} | set(query))
    m = len(names)
    atoms = np.array(list(itertools.product([0, 1], repeat=m)), dtype=bool)
    rows = np.array([[all(a[names.index(s)] for s in c.statements) for a in atoms] for c in credences], dtype=float)
    p = np.array([c.p for c in credences])
    k = len(credences)
    a_eq = np.vstack([np.hstack([rows, np.eye(k), -np.eye(k)]), np.hstack([np.ones(len(atoms)), np.zeros(2 * k)])])
    cost = np.concatenate([np.zeros(len(atoms)), np.ones(2 * k)])
    gap = linprog(cost, A_eq=a_eq, b_eq=np.append(p, 1.0), method="highs")
    x = gap.x[: len(atoms)]
    rhs = np.append(rows @ x, 1.0)
    target = np.array([all(a[names.index(s)] for s in query) for a in atoms], dtype=float)
    plain = np.vstack([rows, np.ones(len(atoms))])
    low = linprog(target, A_eq=plain, b_eq=rhs, method="highs")
    high = linprog(-target, A_eq=plain, b_eq=rhs, method="highs")
    return float(gap.fun), float(low.fun), float(-high.fun)


# -- random true distributions ------------------------------------------------------------------


@st.composite
def worlds(draw: st.DrawFn, max_m: int = 5) -> tuple[list[str], np.ndarray]:
    m = draw(st.integers(1, max_m))
    weights = draw(st.lists(st.floats(0.0, 1.0), min_size=2**m, max_size=2**m))
    total = sum(weights)
    probabilities = np.array(weights) / total if total > 0 else np.eye(2**m)[draw(st.integers(0, 2**m - 1))]
    return [f"s{i}" for i in range(m)], probabilities


def truth(names: list[str], probabilities: np.ndarray, statements: frozenset[str]) -> float:
    """P(all of `statements` true) where atom index bit i is statement i."""
    mask = sum(1 << names.index(s) for s in statements)
    atoms = np.arange(len(probabilities))
    return float(probabilities[(atoms & mask) == mask].sum())


def credences_from(names: list[str], probabilities: np.ndarray, sets: list[frozenset[str]]) -> list[Credence]:
    return [Credence(s, truth(names, probabilities, s)) for s in sets]


@st.composite
def credence_sets(draw: st.DrawFn, names: list[str]) -> list[frozenset[str]]:
    subsets = [frozenset(c) for r in range(1, len(names) + 1) for c in itertools.combinations(names, r)]
    return draw(st.lists(st.sampled_from(subsets), min_size=1, max_size=12, unique=True))


# -- the seed's die -------------------------------------------------------------------------------


def die_credences(events: dict[str, set[int]], sets: list[str]) -> list[Credence]:
    """Credences a fair four-sided die implies for the named conjunctions."""
    result = []
    for names in sets:
        faces = set.intersection(*(events[n] for n in names.split()))
        result.append(cred(names, len(faces) / 4))
    return result


DIE = {"A": {1, 2}, "B": {1, 3}, "C": {2, 3}}
DIE_PRIME = {"A": {1, 2}, "B": {1, 3}, "C": {1}}
PAIRS = ["A B", "A C", "B C"]


def test_die_singles_and_pairs_give_an_interval_not_a_point() -> None:
    """Singles 1/2 and pairs 1/4 allow P(A∧B∧C) anywhere in [0, 1/4]; the true value (0) is inside."""
    result = exact_interval(die_credences(DIE, ["A", "B", "C", *PAIRS]))
    assert result.coherence.coherent
    assert result.interval.lower == pytest.approx(0.0, abs=1e-9)
    assert result.interval.upper == pytest.approx(0.25, abs=1e-9)


def test_die_shared_pieces_cannot_tell_c_from_c_prime() -> None:
    """Both dice give P(A) = P(B) = 1/2 and every pair 1/4, so both answers get the same [0, 1/4]."""
    for events, true_value in ((DIE, 0.0), (DIE_PRIME, 0.25)):
        credences = die_credences(events, ["A", "B", *PAIRS])
        assert [c.p for c in credences] == [0.5, 0.5, 0.25, 0.25, 0.25]
        interval = exact_interval(credences).interval
        assert (interval.lower, interval.upper) == pytest.approx((0.0, 0.25), abs=1e-9)
        assert interval.contains(true_value)


@pytest.mark.parametrize(("events", "expected"), [(DIE, 0.0), (DIE_PRIME, 0.25)])
def test_die_triple_credence_tightens_to_the_exact_value(events: dict[str, set[int]], expected: float) -> None:
    credences = die_credences(events, ["A", "B", *PAIRS, "A B C"])
    interval = exact_interval(credences).interval
    assert interval.lower == pytest.approx(expected, abs=1e-9)
    assert interval.upper == pytest.approx(expected, abs=1e-9)


def test_die_c_prime_own_single_pins_the_triple() -> None:
    """P(C') = 1/4 = P(A∧C') = P(B∧C') forces C' inside A and B, so the triple is exactly 1/4."""
    interval = exact_interval(die_credences(DIE_PRIME, ["A", "B", "C", *PAIRS])).interval
    assert (interval.lower, interval.upper) == pytest.approx((0.25, 0.25), abs=1e-9)


# -- exact engine -------------------------------------------------------------------------------


@LP_SETTINGS
@given(st.data())
def test_exact_interval_contains_the_truth(data: st.DataObject) -> None:
    names, probabilities = data.draw(worlds())
    sets = data.draw(credence_sets(names))
    credences = credences_from(names, probabilities, sets)
    result = exact_interval(credences, names)
    assert result.coherence.coherent
    assert result.interval.contains(truth(names, probabilities, frozenset(names)), tol=1e-6)
    _, low, high = reference(credences, names)
    assert result.interval.lower == pytest.approx(low, abs=1e-6)
    assert result.interval.upper == pytest.approx(high, abs=1e-6)


@LP_SETTINGS
@given(st.data())
def test_column_generation_agrees_with_full_enumeration(data: st.DataObject) -> None:
    names, probabilities = data.draw(worlds(max_m=6))
    credences = credences_from(names, probabilities, data.draw(credence_sets(names)))
    query = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    full = exact_interval(credences, query).interval
    original = prior_exact.FULL_ENUMERATION_MAX
    prior_exact.FULL_ENUMERATION_MAX = 0
    try:
        generated = exact_interval(credences, query).interval
    finally:
        prior_exact.FULL_ENUMERATION_MAX = original
    assert generated.lower == pytest.approx(full.lower, abs=1e-6)
    assert generated.upper == pytest.approx(full.upper, abs=1e-6)


def test_column_generation_on_sixteen_statements_matches_a_known_answer() -> None:
    """Independent fair coins: singles 1/2, pairs 1/4; P(all 16) ∈ [0, 1/4] is what pairs allow... checked by LP."""
    names = [f"s{i}" for i in range(16)]
    credences = [cred(n, 0.5) for n in names] + [cred(f"{a} {b}", 0.25) for a, b in itertools.combinations(names, 2)]
    interval = exact_interval(credences).interval
    # Fréchet-style: P(all) ≤ P(any pair) = 1/4; the lower end is 0 (16 fair bits can avoid all-ones).
    assert interval.lower == pytest.approx(0.0, abs=1e-7)
    assert 0.0 < interval.upper <= 0.25 + 1e-9
    triples = exact_interval(credences, names[:3]).interval
    # Pairwise-independent bits: the triple can be anything in [0, 1/4] (parity construction reaches 0).
    assert (triples.lower, triples.upper) == pytest.approx((0.0, 0.25), abs=1e-7)


def test_unlinked_groups_combine_exactly() -> None:
    credences = [cred("a", 0.9), cred("b", 0.8), cred("a b", 0.75), cred("c", 0.7), cred("d", 0.6), cred("c d", 0.5)]
    result = exact_interval(credences).interval
    _, low, high = reference(credences, ["a", "b", "c", "d"])
    assert (result.lower, result.upper) == pytest.approx((low, high), abs=1e-7)
    assert (result.lower, result.upper) == pytest.approx((0.25, 0.5), abs=1e-7)


def test_unrated_statement_in_the_query_is_unconstrained() -> None:
    result = exact_interval([cred("a", 0.9)], ["a", "never rated"]).interval
    assert (result.lower, result.upper) == pytest.approx((0.0, 0.9))


def test_too_many_linked_statements_is_refused() -> None:
    names = [f"s{i}" for i in range(prior_exact.MAX_EXACT_STATEMENTS + 1)]
    chain = [cred(f"{a} {b}", 0.5) for a, b in itertools.pairwise(names)]
    with pytest.raises(TooManyStatements):
        exact_interval(chain)


# -- coherence, conflicts, repair ------------------------------------------------------------------


def assert_minimal_conflict(conflict: Sequence[Credence]) -> None:
    assert reference(conflict, sorted({s for c in conflict for s in c.statements}))[0] > 1e-7
    for size in range(1, len(conflict)):
        for subset in itertools.combinations(conflict, size):
            assert reference(subset, sorted({s for c in subset for s in c.statements}))[0] <= 1e-7


@LP_SETTINGS
@given(st.data())
def test_monotonicity_violation_is_detected_and_repaired(data: st.DataObject) -> None:
    names, probabilities = data.draw(worlds(max_m=4))
    credences = credences_from(names, probabilities, data.draw(credence_sets(names)))
    small = data.draw(st.sampled_from(names))
    big = frozenset({small, data.draw(st.sampled_from(names))}) | {"extra"}
    single = truth(names, probabilities, frozenset({small}))
    credences = [*credences, Credence(frozenset({small}), single), Credence(big, 0.0)]
    delta = data.draw(st.floats(1e-3, 1.0))
    if single + delta > 1.0:
        credences[-2] = Credence(frozenset({small}), max(0.0, 1.0 - delta - 1e-3))
        delta = 1.0 - credences[-2].p
    credences[-1] = Credence(big, min(1.0, credences[-2].p + delta))
    result = check_coherence(credences)
    assert not result.coherent
    assert result.distance == pytest.approx(reference(credences, names)[0], abs=1e-6)
    assert check_coherence(result.nearest).coherent
    assert_minimal_conflict(result.conflict)


@LP_SETTINGS
@given(st.data())
def test_random_perturbation_is_judged_like_the_reference(data: st.DataObject) -> None:
    names, probabilities = data.draw(worlds(max_m=4))
    credences = credences_from(names, probabilities, data.draw(credence_sets(names)))
    noise = data.draw(st.lists(st.floats(-0.3, 0.3), min_size=len(credences), max_size=len(credences)))
    perturbed = [Credence(c.statements, min(1.0, max(0.0, c.p + e))) for c, e in zip(credences, noise, strict=True)]
    gap = reference(perturbed, names)[0]
    result = check_coherence(perturbed)
    assert result.distance == pytest.approx(gap, abs=1e-6)
    if gap > 1e-5:
        assert not result.coherent
        repaired = result.nearest
        assert sum(abs(a.p - b.p) for a, b in zip(perturbed, repaired, strict=True)) == pytest.approx(gap, abs=1e-6)
        assert reference(repaired, names)[0] <= 1e-7
        assert_minimal_conflict(result.conflict)
    elif gap < 1e-9:
        assert result.coherent and result.conflict == ()


def test_three_mutually_exclusive_halves_conflict_only_together() -> None:
    credences = [cred("a", 0.5), cred("b", 0.5), cred("c", 0.5), cred("a b", 0), cred("a c", 0), cred("b c", 0)]
    result = check_coherence(credences)
    assert not result.coherent
    assert result.distance == pytest.approx(0.5, abs=1e-7)
    assert set(result.conflict) == set(credences)
    assert result.conflict_is_smallest


def test_conflict_ignores_unrelated_credences() -> None:
    credences = [cred("x", 0.3), cred("a", 0.5), cred("y z", 0.2), cred("a b", 0.7), cred("b", 0.9)]
    result = check_coherence(credences)
    assert set(result.conflict) == {cred("a", 0.5), cred("a b", 0.7)}
    assert [c.p for c in result.nearest][0] == 0.3
    assert distance_to_coherence(result.nearest) <= 1e-7


def test_same_statements_given_twice_with_different_values_conflict() -> None:
    result = check_coherence([cred("a b", 0.2), cred("b a", 0.4)])
    assert not result.coherent
    assert result.distance == pytest.approx(0.2)


# -- scalable bounds ----------------------------------------------------------------------------


def pairwise_from(names: list[str], probabilities: np.ndarray, pairs: list[tuple[int, int]]) -> PairwiseCredences:
    single = np.array([truth(names, probabilities, frozenset({n})) for n in names])
    pair_p = [truth(names, probabilities, frozenset({names[i], names[j]})) for i, j in pairs]
    return PairwiseCredences(
        single,
        np.array([i for i, _ in pairs], dtype=np.int64),
        np.array([j for _, j in pairs], dtype=np.int64),
        np.array(pair_p, dtype=np.float64),
    )


@LP_SETTINGS
@given(st.data())
def test_scalable_bounds_contain_the_exact_interval(data: st.DataObject) -> None:
    names, probabilities = data.draw(worlds(max_m=6))
    all_pairs = list(itertools.combinations(range(len(names)), 2))
    pairs = data.draw(st.lists(st.sampled_from(all_pairs), unique=True)) if all_pairs else []
    pairwise = pairwise_from(names, probabilities, pairs)
    credences = [Credence(frozenset({n}), float(p)) for n, p in zip(names, pairwise.single, strict=True)]
    for (i, j), p in zip(pairs, pairwise.pair_p, strict=True):
        credences.append(Credence(frozenset({names[i], names[j]}), float(p)))
    exact = exact_interval(credences, names).interval
    for bound in scalable_bounds(pairwise):
        assert bound.lower <= exact.lower + 1e-7, bound.name
        assert bound.upper >= exact.upper - 1e-7, bound.name


def test_hunter_is_exact_on_a_nested_chain() -> None:
    """A ⊇ B ⊇ C: P(all) = P(C); Fréchet misses it, Hunter's tree of (¬A_i ∧ ¬A_j) finds it."""
    data = PairwiseCredences(
        np.array([0.9, 0.7, 0.6]), np.array([0, 1, 0]), np.array([1, 2, 2]), np.array([0.7, 0.6, 0.6])
    )
    assert frechet(data).lower == pytest.approx(0.2)
    assert hunter(data).lower == pytest.approx(0.6)
    assert pair_minimum(data).upper == pytest.approx(0.6)


def test_hunter_uses_the_best_of_duplicate_pairs_and_ignores_unknown_singles() -> None:
    data = PairwiseCredences(
        np.array([0.9, 0.7, np.nan]),
        np.array([0, 1, 1, 2]),
        np.array([1, 0, 2, 0]),
        np.array([0.6, 0.7, 0.5, 0.5]),
    )
    # One usable edge (0,1) with the larger weight 1 - .9 - .7 + .7 = .1; statement 2's P(¬A) ≤ 1 - .5.
    assert hunter(data).lower == pytest.approx(max(0.0, 1 - (0.1 + 0.3 + 0.5) + 0.1))
    assert frechet(data).upper == pytest.approx(0.7)


def test_point_estimates_state_and_apply_their_assumptions() -> None:
    data = PairwiseCredences(np.array([0.5, 0.4, 0.9, np.nan]), *(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0))
    product = independence(data)
    assert product.lower == pytest.approx(0.18)
    assert "independent" in product.assumption
    assert "1 statements without" in product.note
    grouped = clustered(data, np.array([0, 0, 1, 2]), 0.8)
    assert grouped.lower == pytest.approx(0.4 * 0.9)
    assert "one claim" in grouped.assumption


def test_products_of_a_million_factors_keep_their_log() -> None:
    data = PairwiseCredences(np.full(10**6, 0.99), *(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0))
    estimate = independence(data)
    assert estimate.lower == 0.0
    assert estimate.log10 == pytest.approx(10**6 * math.log10(0.99))


def test_pairwise_violations_find_impossible_pairs() -> None:
    data = PairwiseCredences(
        np.array([0.5, 0.9, 0.2]), np.array([0, 1, 0]), np.array([1, 2, 2]), np.array([0.6, 0.05, 0.1])
    )
    assert pairwise_violations(data).tolist() == [0, 1]


# -- near-duplicate clusters --------------------------------------------------------------------


def test_near_duplicates_cluster_and_different_claims_do_not() -> None:
    texts = [
        "Mongolia is a landlocked country in East Asia.",
        "Mongolia is a landlocked country in east Asia",
        "Chile has a long Pacific coastline.",
        "The capital of Peru is Lima.",
        "Lima is the capital of Peru, on the coast.",
        "Peru exports copper, gold and zinc.",
    ]
    labels = cluster_texts(texts)
    assert labels[0] == labels[1]
    assert len({labels[0], labels[2], labels[3]}) == 3
    assert labels[4] == labels[3], "the same claim with a clause added is a near-duplicate"
    assert labels[5] not in (labels[0], labels[2], labels[3])


def test_extra_pairs_are_checked_not_trusted() -> None:
    texts = ["alpha beta gamma", "completely different words here"]
    labels = cluster_texts(texts, extra_pairs=(np.array([0]), np.array([1])))
    assert labels[0] != labels[1]


def test_clustered_estimate_in_the_report_uses_texts() -> None:
    credences = [cred("a", 0.8), cred("b", 0.9), cred("c", 0.5)]
    texts = {"a": "Water boils at 100 C at sea level.", "b": "Water boils at 100 C at sea level", "c": "Cats purr."}
    report = prior_report(credences, texts=texts)
    by_name = {e.name: e for e in report.estimates}
    assert by_name["independence"].lower == pytest.approx(0.8 * 0.9 * 0.5)
    assert by_name["near_duplicate_clusters"].lower == pytest.approx(0.8 * 0.5)


def test_report_on_incoherent_credences_uses_the_repair_everywhere() -> None:
    report = prior_report([cred("a", 0.5), cred("a b", 0.7), cred("b", 0.9)])
    assert not report.coherence.coherent
    assert report.method == "exact LP"
    for estimate in report.estimates:
        if estimate.kind == "bound":
            assert estimate.lower <= report.interval.lower + 1e-7 and estimate.upper >= report.interval.upper - 1e-7


def test_the_report_and_the_score_take_one_engine_choice() -> None:
    """`navigator prior` and the F(Z) score both ask choose_engine; a cap on statements (the score's) only
    swaps the exact interval for scalable bounds that contain it, with the same coherence verdict."""
    credences = [cred("a", 0.9), cred("b", 0.8), cred("a b", 0.75), cred("a b c", 0.7), cred("c", 0.95)]
    wanted = frozenset("abc")
    report = prior_report(credences)
    answer = choose_engine(credences, wanted)
    assert (report.method, report.interval, report.coherence.coherent) == (
        "exact LP",
        answer.interval,
        answer.coherence.coherent,
    )
    capped = choose_engine(credences, wanted, exact_limit=2)
    assert capped.method == "scalable bounds" and capped.unused == 1
    assert capped.coherence.coherent == answer.coherence.coherent
    assert capped.interval.lower <= answer.interval.lower + 1e-9
    assert answer.interval.upper <= capped.interval.upper + 1e-9
    assert [e.name for e in capped.bounds] == [e.name for e in answer.bounds[1:]]


def test_report_falls_back_to_scalable_bounds_when_too_large() -> None:
    names = [f"s{i}" for i in range(30)]
    credences = [cred(n, 0.99) for n in names] + [cred(f"{a} {b}", 0.985) for a, b in itertools.pairwise(names)]
    report = prior_report(credences)
    assert report.method == "scalable bounds"
    assert report.coherence.coherent
    assert report.interval.lower == pytest.approx(1 - 30 * 0.01 + 29 * (1 - 2 * 0.99 + 0.985), abs=1e-9)
    assert report.interval.upper == pytest.approx(0.985)
    broken = prior_report([*credences, cred("s0 s1", 0.999)])
    assert not broken.coherence.coherent


# -- reading credence files ---------------------------------------------------------------------


def test_read_credences_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"statements": ["A", "B"], "p": 0.25}\n\n{"statements": ["A"], "p": 1, "note": "x"}\n')
    assert read_credences(path) == [
        Credence(frozenset({"A", "B"}), 0.25, "line 1"),
        Credence(frozenset({"A"}), 1.0, "line 3"),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"statements": ["A"], "p": 1.5}', ":2: p: "),
        ('{"statements": ["A"], "p": NaN}', ":2: p: "),
        ('{"statements": ["A"], "p": -0.1}', ":2: p: "),
        ('{"statements": ["A"], "p": true}', ":2: p: "),
        ('{"statements": ["A"], "p": "high"}', ":2: p: "),
        ('{"statements": [], "p": 0.5}', ":2: statements: "),
        ('{"statements": "A", "p": 0.5}', ":2: statements: "),
        ('{"statements": ["A", 3], "p": 0.5}', ":2: statements.1: "),
        ('{"statements": [" "], "p": 0.5}', ":2: statements: "),
        ('{"p": 0.5}', ":2: statements: "),
        ('["A", 0.5]', ":2: -: expected a JSON object"),
        ('{"statements": ["A"], "p": 0.5', ":2: -: invalid JSON"),
    ],
)
def test_read_credences_names_the_bad_line_and_field(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"statements": ["A"], "p": 0.5}\n' + line + "\n")
    with pytest.raises(ImportProblem) as raised:
        read_credences(path)
    assert str(raised.value).startswith(str(path) + expected)


def test_read_credences_refuses_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("\n")
    with pytest.raises(ImportProblem, match="empty"):
        read_credences(path)


# -- the workspace's credence labels -------------------------------------------------------------


def add_credence(
    conn: sqlite3.Connection,
    library_id: int,
    uid: str,
    labeler: str,
    statements: list[str],
    p: float,
    *,
    supersedes: str | None = None,
    retracted: int = 0,
    created_at: str = "2025-01-01T00:00:00.000000Z",
) -> None:
    conn.execute(
        "INSERT INTO credences (uid, library_id, labeler, scope, statements, statements_key, p, supersedes,"
        " retracted, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            uid,
            library_id,
            labeler,
            "statements" if statements else "library",
            json.dumps(sorted(statements)),
            " ".join(sorted(statements)),
            p,
            supersedes,
            retracted,
            created_at,
        ),
    )


def test_workspace_credences_are_current_per_labeler(conn: sqlite3.Connection, library: Library) -> None:
    library_id = library.id
    root = library.root_id
    for position, (uid, title) in enumerate([("n1", "Water is wet."), ("n2", "Fire is hot.")]):
        conn.execute(
            "INSERT INTO nodes (uid, library_id, parent_id, position, depth, kind, title, origin, created_at)"
            " VALUES (?, ?, ?, ?, 1, 'statement', ?, 'import', 'now')",
            (uid, library_id, root, position, title),
        )
    add_credence(conn, library_id, "c1", "ann", ["n1"], 0.6)
    add_credence(conn, library_id, "c2", "ann", ["n1"], 0.7, supersedes="c1", created_at="2025-01-02T00:00:00Z")
    add_credence(conn, library_id, "c3", "ann", ["n1", "n2"], 0.5)
    add_credence(conn, library_id, "c4", "ann", ["n1", "n2"], 0.4, supersedes="c3", retracted=1)
    add_credence(conn, library_id, "c5", "ann", ["n2"], 0.8)
    add_credence(conn, library_id, "c6", "ann", [], 0.3)
    add_credence(conn, library_id, "c7", "bob", ["n2"], 0.1)
    stored = load_workspace_credences(conn, library_id)
    assert [s.labeler for s in stored] == ["ann", "bob"]
    ann = stored[0]
    assert sorted((sorted(c.statements), c.p) for c in ann.credences) == [(["n1"], 0.7), (["n2"], 0.8)]
    assert ann.library_credence == 0.3
    assert ann.texts == {"n1": "Water is wet.", "n2": "Fire is hot."}
    only_bob = load_workspace_credences(conn, library_id, "bob")
    assert [(s.labeler, [c.p for c in s.credences]) for s in only_bob] == [("bob", [0.1])]


def test_change_then_undo_brings_the_earlier_credence_back(conn: sqlite3.Connection, library: Library) -> None:
    """A credence changed and then undone (ctrl+z) is the earlier one again, in the P(Z) engine as in the app."""
    from kb.labels import LabelStore
    from kb.tree import node_by_uid

    conn.execute(
        "INSERT INTO nodes (uid, library_id, parent_id, position, depth, kind, title, origin, created_at)"
        " VALUES ('n1', ?, ?, 0, 1, 'statement', 'Water is wet.', 'import', 'now')",
        (library.id, library.root_id),
    )
    statement = node_by_uid(conn, "n1", library.id)
    assert statement is not None
    store = LabelStore(conn, "ann")
    store.record_credence(library.id, [statement], 0.6)
    store.record_credence(library.id, [statement], 0.9)  # changed …
    store.undo_last()  # … and the change undone
    assert {key: c.p for key, c in store.current_credences(library.id).items()} == {("n1",): 0.6}
    [ann] = load_workspace_credences(conn, library.id)
    assert [(sorted(c.statements), c.p) for c in ann.credences] == [(["n1"], 0.6)]
    report = prior_report(ann.credences)
    assert (report.interval.lower, report.interval.upper) == pytest.approx((0.6, 0.6))
