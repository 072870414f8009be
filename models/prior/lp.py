"""The credence LP over truth assignments ("atoms"), solved by column generation that stays exact.

One linked component of m statements has 2^m atoms; the LP keeps only the atoms it needs as
columns and proves optimality by pricing every atom. Four things make 20–24 statements take
seconds instead of minutes (bench/prior.py measures each against a dense solve):

* **Split pricing.** The reduced cost of an atom needs g(ω) = Σ_k y_k [S_k ⊆ ω] for all 2^m atoms.
  Cut the bits into a low half and a high half: a credence whose statements lie in one half is a
  subset-sum (zeta) transform over 2^(m/2) entries, and the credences that straddle the halves add
  a low-rank product U·Vᵀ (one column per distinct low part — at most m/2 for singles and pairs),
  which BLAS computes for 16.7 million atoms in a fraction of a second.
* **Warm starts.** One HiGHS model serves the coherence solve (elastic, with slack columns), the
  minimum and the maximum: columns are added in place and the simplex restarts from its last
  basis, so the max solve starts at the min's optimum instead of from scratch.
* **Sampled starting columns.** Before the first solve the LP gets a few thousand atoms drawn from
  a Gaussian copula that matches the single and pair credences roughly. They are only a start —
  pricing still proves optimality over every atom — but they usually contain a feasible support,
  so the coherence solve needs one or two pricing rounds instead of a dozen. The draw is seeded,
  so the same credences always give the same LP.
* **Implied atoms.** Credences at 0 or 1, and conjunctions equal to one of their parts, force some
  atoms to carry no mass whatever the distribution (on coherent credences). Those atoms are
  priced out; the interval is unchanged and the LP has fewer degenerate candidates.

The model is HiGHS through the bindings SciPy ships (scipy.optimize._highspy). They are the same
pybind11 classes as the `highspy` package, which prints a banner to stdout on first use — that
would corrupt `--json` output — so this module uses SciPy's copy and keeps every HiGHS call here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kb.errors import ZNavigatorError

RC_TOL = 1e-9
MAX_ROUNDS = 400
TIE_BREAK = 1e-6
SAMPLE_SEED = 0
_MIN_SAMPLES = 500


@dataclass(frozen=True)
class LPSettings:
    """Which speed-ups are on. All are, always, except when bench/prior.py switches one off to measure it."""

    split_pricing: bool = True
    warm_start: bool = True
    sampled_columns: bool = True
    implied_atoms: bool = True


DEFAULT_SETTINGS = LPSettings()


@dataclass(frozen=True)
class Certificate:
    """Why a bound is optimal, checked without the pricing shortcuts: the primal solution matches every
    credence (`residual`), no atom has a negative reduced cost under the duals (`min_reduced_cost`,
    from a plain subset-sum over all 2^m atoms), and primal and dual objectives agree (`gap`)."""

    residual: float
    min_reduced_cost: float
    gap: float


def _highs() -> Any:
    """SciPy's HiGHS bindings, loaded at the first LP rather than with the app (SciPy's optimize
    package costs ~0.3 s at import)."""
    try:
        from scipy.optimize._highspy import _core
    except ImportError as error:  # pragma: no cover - only with a SciPy older than pyproject.toml allows
        raise ImportError("the P(Z) LP needs SciPy 1.15.1 or newer (its bundled HiGHS bindings)") from error
    return _core


class LPFailure(ZNavigatorError, RuntimeError):
    """HiGHS could not solve a credence LP (it should always be feasible and bounded)."""


def zeta(n: int, masks: NDArray[np.int64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """g[ω] = Σ weights[k] over k with masks[k] ⊆ ω, for all 2^n atoms ω (subset-sum transform)."""
    g = np.zeros(1 << n, dtype=np.float64)
    np.add.at(g, masks, weights)
    for bit in range(n):
        view = g.reshape(-1, 2, 1 << bit)
        view[:, 1, :] += view[:, 0, :]
    return g


def covers(atoms: NDArray[np.int64], masks: NDArray[np.int64]) -> NDArray[np.bool_]:
    """[i, k] is True when atom i makes every statement of credence k true."""
    result: NDArray[np.bool_] = (atoms[:, None] & masks[None, :]) == masks[None, :]
    return result


class AtomPricer:
    """g(ω) = Σ_k y_k [S_k ⊆ ω] over every atom, as a (2^H, 2^L) grid whose flat index is ω itself."""

    def __init__(self, n: int, masks: NDArray[np.int64]) -> None:
        self.n = n
        self.low_bits = n // 2
        self.high_bits = n - self.low_bits
        self.low = masks & ((1 << self.low_bits) - 1)
        self.high = masks >> self.low_bits
        self.only_low = np.flatnonzero(self.high == 0)
        self.only_high = np.flatnonzero((self.low == 0) & (self.high != 0))
        self.cross = np.flatnonzero((self.low != 0) & (self.high != 0))
        groups, self.group_of = np.unique(self.low[self.cross], return_inverse=True)
        lows = np.arange(1 << self.low_bits, dtype=np.int64)
        self.u = ((lows[:, None] & groups[None, :]) == groups[None, :]).astype(np.float64)
        self.groups = len(groups)
        self.grid_shape = (1 << self.high_bits, 1 << self.low_bits)

    def coverage(self, y: NDArray[np.float64]) -> NDArray[np.float64]:
        grid = np.zeros((1 << self.high_bits, 1 << self.low_bits), dtype=np.float64)
        if self.groups:
            v = np.zeros((self.groups, 1 << self.high_bits), dtype=np.float64)
            np.add.at(v, (self.group_of, self.high[self.cross]), y[self.cross])
            for bit in range(self.high_bits):
                view = v.reshape(self.groups, -1, 2, 1 << bit)
                view[:, :, 1, :] += view[:, :, 0, :]
            np.matmul(v.T, self.u.T, out=grid)
        grid += zeta(self.low_bits, self.low[self.only_low], y[self.only_low])[None, :]
        grid += zeta(self.high_bits, self.high[self.only_high], y[self.only_high])[:, None]
        return grid

    def superset_grid(self, mask: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """(rows, columns) of the grid whose atoms contain every statement of `mask`."""
        low, high = mask & ((1 << self.low_bits) - 1), mask >> self.low_bits
        highs_ = np.arange(1 << self.high_bits, dtype=np.int64)
        lows = np.arange(1 << self.low_bits, dtype=np.int64)
        return (highs_ & high) == high, (lows & low) == low


@dataclass(frozen=True)
class Forbidden:
    """Atoms a coherent distribution must leave empty: those containing every statement of `contains`
    and, when `lacking` is set, missing at least one statement of `lacking`."""

    contains: int
    lacking: int | None = None


def implied_empty(masks: NDArray[np.int64], p: NDArray[np.float64], tol: float = 1e-12) -> list[Forbidden]:
    """Patterns of atoms that every distribution matching (coherent) credences leaves at zero mass.

    P(S) = 0 empties every atom ⊇ S; P(S) = 1 empties every atom missing a statement of S; and
    P(S) = P(T) for T ⊂ S empties the atoms that contain T but not all of S (T implies the rest).
    """
    found: list[Forbidden] = []
    values = {int(mask): float(value) for mask, value in zip(masks, p, strict=True)}
    for mask, value in values.items():
        if value <= tol:
            found.append(Forbidden(mask))
        elif value >= 1.0 - tol:
            found.append(Forbidden(0, mask))
    for mask, value in values.items():
        if not tol < value < 1.0 - tol:
            continue
        for other, other_value in values.items():
            if other != mask and other & mask == other and abs(other_value - value) <= tol:
                found.append(Forbidden(other, mask & ~other))
    return found


def copula_atoms(n: int, masks: NDArray[np.int64], p: NDArray[np.float64], count: int, seed: int) -> NDArray[np.int64]:
    """Distinct atoms drawn from a Gaussian copula fitted roughly to the single and pair credences.

    Only a warm start: a statement without a single credence gets ½, correlations are clipped
    into a valid matrix, and the draws are not meant to match anything exactly.
    """
    single = np.full(n, 0.5)
    pair = np.full((n, n), np.nan)
    bits = [np.flatnonzero([(int(mask) >> b) & 1 for b in range(n)]) for mask in masks]
    for members, value in zip(bits, p, strict=True):
        if len(members) == 1:
            single[members[0]] = value
    for members, value in zip(bits, p, strict=True):
        if len(members) == 2:
            pair[members[0], members[1]] = pair[members[1], members[0]] = value
    single = np.clip(single, 1e-6, 1 - 1e-6)
    spread = np.sqrt(single * (1 - single))
    correlation = (pair - np.outer(single, single)) / np.outer(spread, spread)
    correlation = np.clip(np.nan_to_num(correlation, nan=0.0), -0.999, 0.999)
    np.fill_diagonal(correlation, 1.0)
    values, vectors = np.linalg.eigh(correlation)
    root = vectors * np.sqrt(np.clip(values, 1e-6, None))
    rng = np.random.default_rng(seed)
    draws = rng.standard_normal((count, n)) @ root.T
    draws /= np.sqrt(np.sum(root * root, axis=1))[None, :]
    from scipy.special import ndtri  # SciPy loads when an LP is first solved, not with the app

    true_bits = draws < ndtri(single)[None, :]
    atoms = (true_bits.astype(np.int64) << np.arange(n, dtype=np.int64)).sum(axis=1)
    return np.unique(atoms)


class AtomLP:
    """One component's LP held in HiGHS across the coherence, minimum and maximum solves.

    Rows: one per credence (P(S_k) = rhs_k) and Σ x = 1. Columns: atoms (added as pricing finds
    them) and, for the coherence solve, a +/− slack per credence at cost 1. `nearest()` minimises
    total slack; `bound()` then fixes the slacks at 0, sets the rows to the repaired values and
    minimises ±P(query), restarting from the basis the previous solve left.
    """

    def __init__(
        self,
        n: int,
        masks: NDArray[np.int64],
        p: NDArray[np.float64],
        *,
        enumerate_all: bool,
        settings: LPSettings = DEFAULT_SETTINGS,
    ) -> None:
        self.settings = settings
        self.n = n
        self.masks = masks
        self.p = p
        self.k = len(masks)
        self.pricer = AtomPricer(n, masks)
        self.atoms: list[int] = []
        self.known: set[int] = set()
        self.forbidden: list[Forbidden] = []
        self.allowed: NDArray[np.bool_] | None = None
        self.rounds = 0
        self._objective_mask: int | None = None
        self._sign = 0.0
        self.sample_count = 0
        self.duals = np.zeros(self.k + 1)
        self._rhs = p
        highs = _highs()
        self._model = highs._Highs()
        for option, value in (("output_flag", False), ("presolve", "off"), ("simplex_strategy", 4)):
            self._model.setOptionValue(option, value)
        lp = highs.HighsLp()
        lp.num_col_ = 0
        lp.num_row_ = self.k + 1
        lp.row_lower_ = np.append(p, 1.0)
        lp.row_upper_ = np.append(p, 1.0)
        self._model.passModel(lp)
        self._add_slacks()
        if enumerate_all:
            self.add_atoms(np.arange(1 << n, dtype=np.int64))
        else:
            seeds = [0, (1 << n) - 1, *(int(mask) for mask in masks)]
            self.add_atoms(np.array(seeds, dtype=np.int64))
            if settings.sampled_columns:
                self.sample_count = min(1 << n, max(_MIN_SAMPLES, 10 * self.k))
                self.add_atoms(copula_atoms(n, masks, p, self.sample_count, SAMPLE_SEED))

    # -- building ---------------------------------------------------------------------------

    def _add_slacks(self) -> None:
        """A +/− slack per credence. Changing a credence costs 1 per unit, a hair less for later credences:
        when several coherent sets are equally near, the one that changes the newest credences wins (the
        app lists the credence being typed last, so it is told what that number should be)."""
        count = 2 * self.k
        rows = np.repeat(np.arange(self.k, dtype=np.int32), 2)
        values = np.tile(np.array([1.0, -1.0]), self.k)
        order = np.repeat(np.arange(self.k, dtype=np.float64), 2)
        self._model.addCols(
            count,
            1.0 + TIE_BREAK * (self.k - order) / max(1, self.k),
            np.zeros(count),
            np.full(count, np.inf),
            count,
            np.arange(count, dtype=np.int32),
            rows,
            values,
        )

    def add_atoms(self, atoms: NDArray[np.int64]) -> int:
        fresh = np.array([a for a in dict.fromkeys(int(a) for a in atoms) if a not in self.known], dtype=np.int64)
        if len(fresh) == 0:
            return 0
        covered = covers(fresh, self.masks)
        column, row = np.nonzero(np.hstack([covered, np.ones((len(fresh), 1), dtype=bool)]))
        starts = np.searchsorted(column, np.arange(len(fresh))).astype(np.int32)
        cost = self._sign * self._in_objective(fresh)
        self._model.addCols(
            len(fresh),
            cost,
            np.zeros(len(fresh)),
            np.full(len(fresh), np.inf),
            len(row),
            starts,
            row.astype(np.int32),
            np.ones(len(row)),
        )
        self.atoms.extend(int(a) for a in fresh)
        self.known.update(int(a) for a in fresh)
        return len(fresh)

    def _in_objective(self, atoms: NDArray[np.int64]) -> NDArray[np.float64]:
        if self._objective_mask is None:
            return np.zeros(len(atoms))
        mask = self._objective_mask
        inside: NDArray[np.float64] = ((atoms & mask) == mask).astype(np.float64)
        return inside

    # -- solving ----------------------------------------------------------------------------

    def _run(self) -> tuple[float, NDArray[np.float64]]:
        if not self.settings.warm_start:
            self._model.clearSolver()
        self._model.run()
        status = self._model.getModelStatus()
        if status != _highs().HighsModelStatus.kOptimal:
            raise LPFailure(f"HiGHS could not solve the credence LP: {self._model.modelStatusToString(status)}")
        duals = np.asarray(self._model.getSolution().row_dual, dtype=np.float64)
        return float(self._model.getInfo().objective_function_value), duals

    def _reduced_costs(self, duals: NDArray[np.float64]) -> NDArray[np.float64]:
        """Reduced cost of every atom as a (2^H, 2^L) grid (flat index = atom); forbidden atoms get +inf."""
        if self.settings.split_pricing:
            grid = self.pricer.coverage(duals[: self.k])
        else:
            grid = zeta(self.n, self.masks, duals[: self.k]).reshape(self.pricer.grid_shape)
        grid += duals[self.k]
        np.negative(grid, out=grid)
        if self._objective_mask is not None and self._sign != 0.0:
            rows, columns = self.pricer.superset_grid(self._objective_mask)
            grid[np.ix_(rows, columns)] += self._sign
        if self.allowed is not None:
            grid[~self.allowed] = np.inf
        return grid.reshape(-1)

    def _residual_atoms(self, query_mask: int) -> NDArray[np.int64]:
        """Starting columns for a maximum: most of a bound's mass t sits on atoms with the query true, and
        the rest has to carry the remaining credence; draw from a copula of those residual values."""
        inside = [value for mask, value in zip(self.masks, self._rhs, strict=True) if int(mask) & query_mask == mask]
        share = 0.9 * min(inside or [float(self._rhs.min()) if len(self._rhs) else 0.0])
        residual = np.clip((self._rhs - share) / max(1e-9, 1.0 - share), 0.0, 1.0)
        drawn = copula_atoms(self.n, self.masks, residual, self.sample_count, SAMPLE_SEED + 1)
        return np.concatenate([drawn, drawn | query_mask])

    def _generate(self) -> float:
        """Column generation to optimality; the value returned is a valid bound even if stopped early."""
        batch = 2 * self.k + 50
        value, duals = self._run()
        for _ in range(MAX_ROUNDS):
            self.rounds += 1
            reduced = self._reduced_costs(duals)
            most_negative = float(reduced.min())
            if most_negative >= -RC_TOL:
                return value
            take = min(batch, len(reduced) - 1)
            candidates = np.argpartition(reduced, take)[:take] if take < len(reduced) else np.arange(len(reduced))
            candidates = candidates[reduced[candidates] < -RC_TOL]
            if self.add_atoms(candidates.astype(np.int64)) == 0:
                return value
            value, duals = self._run()
        return value + min(0.0, most_negative)  # a Lagrangian bound: Σ x = 1

    def nearest(self) -> tuple[float, NDArray[np.float64]]:
        """Least total absolute change to the credences that makes them coherent, and the values it reaches.

        The row duals are kept in `duals`: by LP duality, the credences with a non-zero dual are
        by themselves incoherent whenever the distance is positive, so they seed the conflict search.
        """
        self._sign, self._objective_mask = 0.0, None
        self._generate()
        solution = self._model.getSolution()
        self.duals = np.asarray(solution.row_dual, dtype=np.float64)
        values = np.asarray(solution.col_value, dtype=np.float64)
        x = values[2 * self.k :]
        atoms = np.array(self.atoms, dtype=np.int64)
        achieved = covers(atoms, self.masks).T.astype(np.float64) @ x
        distance = float(np.sum(values[: 2 * self.k]))  # the change itself, not the tie-broken objective
        return max(0.0, distance), np.clip(achieved, 0.0, 1.0)

    def certificate(self) -> Certificate:
        """Optimality evidence for the last solve (see Certificate); for checks, not for the hot path."""
        solution = self._model.getSolution()
        x = np.asarray(solution.col_value, dtype=np.float64)[2 * self.k :]
        y = np.asarray(solution.row_dual, dtype=np.float64)
        atoms = np.array(self.atoms, dtype=np.int64)
        achieved = covers(atoms, self.masks).T.astype(np.float64) @ x
        rhs = np.append(self._rhs, 1.0)
        residual = float(np.max(np.abs(np.append(achieved, x.sum()) - rhs)))
        everything = np.arange(1 << self.n, dtype=np.int64)
        reduced = self._sign * self._in_objective(everything) - zeta(self.n, self.masks, y[: self.k]) - y[self.k]
        if self.allowed is not None:
            reduced[~self.allowed.reshape(-1)] = np.inf
        primal = float(self._sign * self._in_objective(atoms) @ x)
        return Certificate(residual, float(reduced.min()), abs(primal - float(rhs @ y)))

    def fix_rhs(self, rhs: NDArray[np.float64]) -> None:
        """From here on the rows hold `rhs` exactly (slacks fixed at 0) and implied-empty atoms are priced out."""
        count = 2 * self.k
        indices = np.arange(count, dtype=np.int32)
        self._model.changeColsBounds(count, indices, np.zeros(count), np.zeros(count))
        self._model.changeColsCost(count, indices, np.zeros(count))
        for row, value in enumerate(rhs):
            self._model.changeRowBounds(row, float(value), float(value))
        self._rhs = rhs
        self.forbidden = implied_empty(self.masks, rhs) if self.settings.implied_atoms else []
        self.allowed = self._allowed_grid() if self.forbidden else None

    def _allowed_grid(self) -> NDArray[np.bool_]:
        allowed = np.ones((1 << self.pricer.high_bits, 1 << self.pricer.low_bits), dtype=bool)
        for pattern in self.forbidden:
            rows, columns = self.pricer.superset_grid(pattern.contains)
            empty = np.outer(rows, columns)
            if pattern.lacking is not None:
                full_rows, full_columns = self.pricer.superset_grid(pattern.contains | pattern.lacking)
                empty &= ~np.outer(full_rows, full_columns)
            allowed &= ~empty
        return allowed

    def bound(self, query_mask: int, sign: float) -> float:
        """min (sign = 1) or max (sign = −1) of P(all statements in `query_mask` true); call fix_rhs first."""
        self._objective_mask, self._sign = query_mask, sign
        if sign < 0 and self.sample_count:
            self.add_atoms(self._residual_atoms(query_mask))
        atoms = np.array(self.atoms, dtype=np.int64)
        indices = np.arange(2 * self.k, 2 * self.k + len(atoms), dtype=np.int32)
        self._model.changeColsCost(len(atoms), indices, sign * self._in_objective(atoms))
        return sign * self._generate()
