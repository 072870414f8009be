"""Exact consequences of n-way credences: the interval for P(a conjunction), coherence, conflicts, repair.

A credence says P(all of S true) = p. Over m statements the distributions that agree with a set of
credences form a polytope in the 2^m-simplex of truth assignments ("atoms"), so the probability of
any conjunction Q ranges over an interval whose ends are two linear programs. The credences only
determine a point when they happen to pin Q down (the seed's four-sided die is the standard example
where every pair agrees yet the triple is anywhere in [0, 1/4]).

Three things keep this fast enough to run while a labeler types, and exact up to 24 linked statements:

* Statements that no credence links fall into separate components. The polytope is then a product,
  any coupling of the components is allowed, and the Fréchet bounds combine the per-component
  intervals exactly; a labeler's handful of statements is usually several tiny LPs.
* A component of up to ``FULL_ENUMERATION_MAX`` statements lists every atom as an LP column.
  Larger components use column generation (models.prior.lp): the restricted LP carries only the
  atoms it needs, pricing scores all 2^m atoms at once (split into two halves joined by one matrix
  product), and one warm-started HiGHS model serves the coherence, minimum and maximum solves, so
  a 24-statement LP never materialises its billion-entry constraint matrix.
* Coherence is the same LP with slack columns: the least total absolute change to the credences
  that makes them satisfiable. Zero means coherent; otherwise the changed values are the nearest
  coherent set, and a deletion filter over small sub-LPs names a conflict no subset of which fails.

Use from the app (the labeler's live coherence check)::

    from models.prior.exact import Credence, check_coherence, exact_interval

    mine = [Credence(frozenset({"a"}), 0.5), Credence(frozenset({"a", "b"}), 0.7, label="row 2")]
    result = check_coherence(mine)            # result.coherent is False: P(a and b) > P(a)
    result.conflict                            # the two credences above, as given
    result.nearest                             # one Credence per input, in input order, coherent
    exact_interval(mine, query={"a", "b"})     # Interval(lower=0.5 - ..., upper=...) on the repaired set

For a few statements both calls take a few milliseconds (one to three small HiGHS solves); a
conflict search adds one tiny LP per credence. ``TooManyStatements`` is raised when one linked
component exceeds ``MAX_EXACT_STATEMENTS``; callers then fall back to models.prior.bounds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kb.errors import ZNavigatorError
from models.prior.lp import DEFAULT_SETTINGS, AtomLP, LPSettings

FULL_ENUMERATION_MAX = 10
MAX_EXACT_STATEMENTS = 24
COHERENCE_TOL = 1e-7
_CONFLICT_SEARCH_BUDGET = 200
_DUAL_TOL = 1e-9


class TooManyStatements(ZNavigatorError, ValueError):
    """One linked group of statements is too large for the exact LP (2^m atoms)."""


@dataclass(frozen=True)
class Credence:
    """P(every statement in `statements` is true) = p. `label` says where it came from, for messages."""

    statements: frozenset[str]
    p: float
    label: str = ""

    def describe(self) -> str:
        names = " ∧ ".join(sorted(self.statements))
        return f"P({names}) = {self.p:.4g}" + (f" [{self.label}]" if self.label else "")


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def contains(self, value: float, tol: float = 1e-7) -> bool:
        return self.lower - tol <= value <= self.upper + tol


@dataclass(frozen=True)
class Coherence:
    """Whether some distribution fits all the credences, and if not, what conflicts and how to repair it.

    `distance` is the least total absolute change that makes the set coherent (0 when it is).
    `conflict` is a set that fails on its own while every proper subset is fine; `conflict_is_smallest`
    says whether no smaller failing set exists (searched exhaustively within a budget).
    `nearest` has one credence per input, in input order, with the repaired value.
    """

    coherent: bool
    distance: float
    conflict: tuple[Credence, ...] = ()
    conflict_is_smallest: bool = True
    nearest: tuple[Credence, ...] = ()


@dataclass(frozen=True)
class ExactResult:
    """The exact interval for P(all of `query` true), computed on the nearest coherent credences."""

    query: frozenset[str]
    interval: Interval
    coherence: Coherence


@dataclass
class _Component:
    """One group of statements linked by credences, in bitmask form."""

    statements: list[str]
    members: list[int]  # indices into the caller's credence list
    masks: NDArray[np.int64]
    p: NDArray[np.float64]
    lp: AtomLP | None = None

    @property
    def n(self) -> int:
        return len(self.statements)


def _components(credences: Sequence[Credence], extra: Iterable[str] = ()) -> list[_Component]:
    """Union statements that share a credence; each component becomes an independent LP."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for name in itertools.chain((s for c in credences for s in c.statements), extra):
        parent.setdefault(name, name)
    for credence in credences:
        first, *rest = sorted(credence.statements)
        for other in rest:
            a, b = find(first), find(other)
            if a != b:
                parent[b] = a
    groups: dict[str, list[str]] = {}
    for name in sorted(parent):
        groups.setdefault(find(name), []).append(name)
    members: dict[str, list[int]] = {root: [] for root in groups}
    for index, credence in enumerate(credences):
        members[find(next(iter(credence.statements)))].append(index)
    result = []
    for root, names in groups.items():
        position = {name: bit for bit, name in enumerate(names)}
        mine = members[root]
        masks = np.array([_mask(credences[i].statements, position) for i in mine], dtype=np.int64)
        p = np.array([credences[i].p for i in mine], dtype=np.float64)
        result.append(_Component(names, mine, masks, p))
    return result


def _mask(statements: Iterable[str], position: dict[str, int]) -> int:
    mask = 0
    for name in statements:
        mask |= 1 << position[name]
    return mask


def _nearest_rhs(component: _Component, settings: LPSettings = DEFAULT_SETTINGS) -> tuple[float, NDArray[np.float64]]:
    """Least total absolute change to the component's credences, and the marginals that achieve it."""
    component.lp = AtomLP(
        component.n,
        component.masks,
        component.p,
        enumerate_all=component.n <= FULL_ENUMERATION_MAX,
        settings=settings,
    )
    if len(component.p) == 0:
        return 0.0, component.p
    return component.lp.nearest()


def _component_interval(component: _Component, rhs: NDArray[np.float64], query_mask: int) -> Interval:
    """Both ends from the LP the coherence solve left behind: same columns, same basis (warm starts)."""
    lp = component.lp
    assert lp is not None, "_nearest_rhs builds the component's LP first"
    lp.fix_rhs(rhs)
    low = lp.bound(query_mask, 1.0)
    high = lp.bound(query_mask, -1.0)
    return Interval(min(1.0, max(0.0, low)), min(1.0, max(0.0, high)))


def _check_size(components: Sequence[_Component]) -> None:
    for component in components:
        if component.n > MAX_EXACT_STATEMENTS:
            raise TooManyStatements(
                f"{component.n} statements are linked by credences; the exact LP handles up to "
                f"{MAX_EXACT_STATEMENTS} (use the scalable bounds)"
            )


def distance_to_coherence(credences: Sequence[Credence]) -> float:
    """The least total absolute change that makes `credences` coherent; 0 when they already are."""
    components = _components(credences)
    _check_size(components)
    return sum(_nearest_rhs(component)[0] for component in components)


def _is_coherent(credences: Sequence[Credence], tol: float) -> bool:
    return distance_to_coherence(credences) <= tol


def _pair_conflict(credences: Sequence[Credence], tol: float) -> tuple[int, int] | None:
    """Two credences conflict only when one set contains the other and claims more (or they differ on one set)."""
    for i, j in itertools.combinations(range(len(credences)), 2):
        a, b = credences[i], credences[j]
        if (a.statements <= b.statements and b.p > a.p + tol) or (b.statements <= a.statements and a.p > b.p + tol):
            return i, j
    return None


def _find_conflict(
    credences: Sequence[Credence], tol: float, suspects: Sequence[int] = ()
) -> tuple[tuple[int, ...], bool]:
    """A deletion filter gives an irreducible conflict; then look for a smaller one within a budget.

    `suspects` (the credences the coherence LP's duals single out) start the filter when they are
    incoherent on their own, so a 24-statement component needs a handful of small LPs, not hundreds.
    """
    pair = _pair_conflict(credences, tol)
    if pair is not None:
        return pair, True
    keep = list(range(len(credences)))
    if suspects and not _is_coherent([credences[i] for i in suspects], tol):
        keep = sorted(suspects)
    for index in list(keep):
        trial = [i for i in keep if i != index]
        if not _is_coherent([credences[i] for i in trial], tol):
            keep = trial
    if len(keep) <= 3:
        return tuple(keep), True
    budget = _CONFLICT_SEARCH_BUDGET
    for size in range(3, len(keep)):
        for subset in itertools.combinations(range(len(credences)), size):
            chosen = [credences[i] for i in subset]
            if len(_components(chosen)) > 1:
                continue
            budget -= 1
            if budget < 0:
                return tuple(keep), False
            if not _is_coherent(chosen, tol):
                return subset, True
    return tuple(keep), True


def check_coherence(credences: Sequence[Credence], *, tol: float = COHERENCE_TOL) -> Coherence:
    """Is there a distribution that matches every credence? If not: a conflict and the nearest coherent set.

    This is the call the labeling app makes after each credence a labeler enters; it sees only that
    labeler's credences, so the components are small and it answers in milliseconds.
    """
    components = _components(credences)
    _check_size(components)
    return _coherence(credences, components, [_nearest_rhs(component) for component in components], tol)


def _coherence(
    credences: Sequence[Credence],
    components: Sequence[_Component],
    repairs: Sequence[tuple[float, NDArray[np.float64]]],
    tol: float,
) -> Coherence:
    nearest_p = np.array([c.p for c in credences], dtype=np.float64)
    distance = 0.0
    suspects: list[int] = []
    for component, (gap, achieved) in zip(components, repairs, strict=True):
        distance += gap
        if gap > tol:
            nearest_p[component.members] = achieved
            if not suspects and component.lp is not None:
                duals = component.lp.duals[: len(component.members)]
                suspects = [component.members[i] for i in np.flatnonzero(np.abs(duals) > _DUAL_TOL)]
    if distance <= tol:
        return Coherence(True, distance, nearest=tuple(credences))
    indices, smallest = _find_conflict(credences, tol, suspects)
    nearest = tuple(
        Credence(c.statements, float(value), c.label) for c, value in zip(credences, nearest_p, strict=True)
    )
    return Coherence(False, distance, tuple(credences[i] for i in indices), smallest, nearest)


def exact_interval(
    credences: Sequence[Credence],
    query: Iterable[str] | None = None,
    *,
    tol: float = COHERENCE_TOL,
    settings: LPSettings = DEFAULT_SETTINGS,
) -> ExactResult:
    """The exact range of P(all of `query` true) over every distribution matching the credences.

    `query` defaults to every statement mentioned. Statements in the query that no credence mentions
    are unconstrained. When the credences are incoherent the interval is that of the nearest coherent
    set, and `coherence` says so. `settings` switches the LP's speed-ups off, for bench/prior.py only.
    """
    wanted = frozenset(query) if query is not None else frozenset(s for c in credences for s in c.statements)
    if not wanted:
        raise ValueError("the query names no statements")
    components = _components(credences, extra=wanted)
    _check_size(components)
    repairs = [_nearest_rhs(component, settings) for component in components]
    coherence = _coherence(credences, components, repairs, tol)
    lowers, uppers = [], []
    for component, (_, rhs) in zip(components, repairs, strict=True):
        position = {name: bit for bit, name in enumerate(component.statements)}
        query_mask = _mask((s for s in component.statements if s in wanted), position)
        if query_mask == 0:
            continue
        interval = _component_interval(component, rhs, query_mask)
        lowers.append(interval.lower)
        uppers.append(interval.upper)
    # Components may be coupled in any way, and for events with free coupling Fréchet's bounds are sharp.
    lower = max(0.0, sum(lowers) - (len(lowers) - 1))
    return ExactResult(wanted, Interval(min(lower, min(uppers)), min(uppers)), coherence)
