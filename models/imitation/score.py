"""F(Z) = Σ_i log P(y_i | x_i, Z) + log P(Z): the score that ranks candidate libraries (DESIGN §1).

Likelihood over D (train items with gold). For each item, the labelers' current prediction labels
made *with this library* are pooled linearly — P(gold) is the mean over labelers of the probability
each put on gold — because a mixture of people is what "a human with Z" is when several answered.
Items nobody labelled with this library take the imitation model's probability (models.imitation.trainer,
trained on that library's labels). Labels from the simulated labeler count as labels but are counted
apart. Every log P is floored as models.scoring floors it (at 1e-6, as every report does), so one
confident mistake costs ln(1e-6) ≈ -13.8 rather than -∞. If an item has neither a label nor an imitation, the sum is
incomplete and the library is not ranked: comparing sums over different item sets is meaningless.

Prior. Credences come from the library and from its fork relatives on statements this library still
holds (a fork keeps node uids, so a credence on a shared statement applies to both; the library's
own credence wins when both exist). Each statement set's credence is the mean over labelers. The
P(Z) engine (models.prior.engine, the one place that chooses it) gives the interval for P(all rated
statements true) — the exact LP when few statements are rated, the scalable singles-and-pairs bounds
otherwise. Statements nobody rated
are unconstrained, so the interval for the whole library has lower end 0 whenever one exists. The
point estimate used for F is the independence estimate (product of single credences, unrated
statements counted as certain) clipped into the interval. With `use_imitated_credences`, statements
nobody rated get imitated credences (models.prior.credence_imitation, averaged over the labelers it can
imitate) and enter as singles — counted and flagged, never stored, never mixed into the human counts.
With `use_model_credences`, statements that neither a person nor (when asked) the imitator covers
take M_Z's own stored credence (models.llm.model_credences; the library's or a fork relative's), so
F(Z) is defined for a library the model grew; they are counted apart as the model's terms.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kb.errors import ZNavigatorError
from kb.fork import fork_family
from kb.items import Item, items_in, train_gold
from kb.labels import current_predictions_in_library, is_simulated, model_credences
from kb.libraries import Library, list_libraries
from kb.tree import visible_uids
from models.prior.bounds import Estimate, independence
from models.prior.credence_imitation import ImitationRefused, imitate, library_statements
from models.prior.engine import choose_engine
from models.prior.exact import Credence
from models.prior.report import load_workspace_credences
from models.reliability import BINS, ReliabilityBin, reliability
from models.scoring import log_score

EXACT_LIMIT = 100  # more rated statements than this: scalable bounds instead of the LP
POINT_NAME = "independence, clipped into the interval"

Predict = Callable[[sqlite3.Connection, Path, Library, list[Item]], dict[str, dict[str, float]]]


class ImitationUnavailable(ZNavigatorError, RuntimeError):
    """No imitation model can answer for this library (raised by a `predict` that has none)."""


@dataclass(frozen=True)
class Likelihood:
    """Σ log P(gold) over D, split by where each probability came from."""

    n_items: int
    n_labelled: int  # items scored from labels made with this library
    n_imitated: int  # items scored by the imitation model
    n_missing: int  # items with neither: the sum is incomplete
    n_labels: int
    n_labelers: int
    n_simulated_labels: int  # of n_labels, from the simulated labeler
    log_labelled: float
    log_imitated: float
    note: str = ""

    @property
    def total(self) -> float:
        return self.log_labelled + self.log_imitated

    @property
    def complete(self) -> bool:
        return self.n_missing == 0 and self.n_items > 0


@dataclass(frozen=True)
class Prior:
    """What the credences say about P(Z) for the whole library, and the point used in F."""

    n_statements: int
    n_rated: int  # statements in at least one human credence
    n_imitated: int  # statements given an imitated credence (only when asked)
    n_credences: int  # pooled statement sets (single statements and conjunctions)
    n_labelers: int
    n_shared: int  # of n_credences, from a fork relative through shared uids
    method: str
    lower: float  # P(Z) interval
    upper: float
    point_log: float | None  # natural log of the point estimate; None when there are no credences
    coherent: bool
    direct_n: int = 0  # labelers' direct credences on the whole library (reported, not used)
    direct_mean: float | None = None
    notes: tuple[str, ...] = ()
    n_model: int = 0  # statements given the model's own credence (only when asked)

    @property
    def point_name(self) -> str:
        return POINT_NAME

    @property
    def log_interval(self) -> tuple[float, float]:
        return (_ln(self.lower), _ln(self.upper))


@dataclass(frozen=True)
class LibraryScore:
    library: Library
    likelihood: Likelihood
    prior: Prior
    rank: int | None = None
    reason: str = ""  # why there is no rank

    @property
    def f(self) -> float | None:
        if not self.likelihood.complete or self.prior.point_log is None:
            return None
        return self.likelihood.total + self.prior.point_log


@dataclass
class _Pooled:
    sums: dict[frozenset[str], float] = field(default_factory=dict)
    counts: dict[frozenset[str], int] = field(default_factory=dict)
    shared: set[frozenset[str]] = field(default_factory=set)

    @classmethod
    def of(cls, per_labeler: Mapping[str, Mapping[frozenset[str], tuple[float, bool]]]) -> _Pooled:
        """Every labeler's credence on each statement set, pooled."""
        pooled = cls()
        for sets in per_labeler.values():
            for statement_set, (p, shared) in sets.items():
                pooled.add(statement_set, p, shared)
        return pooled

    def add(self, statements: frozenset[str], p: float, shared: bool) -> None:
        self.sums[statements] = self.sums.get(statements, 0.0) + p
        self.counts[statements] = self.counts.get(statements, 0) + 1
        if shared:
            self.shared.add(statements)

    def credences(self) -> list[Credence]:
        return [
            Credence(s, min(1.0, max(0.0, self.sums[s] / self.counts[s])), label=f"mean of {self.counts[s]}")
            for s in sorted(self.sums, key=sorted)
        ]


def _ln(value: float) -> float:
    return math.log(value) if value > 0 else -math.inf


def _default_predict(
    conn: sqlite3.Connection, workspace: Path, library: Library, items: list[Item]
) -> dict[str, dict[str, float]]:
    from models.imitation.trainer import predict_items  # the trainer is optional here; imported when first needed

    result: dict[str, dict[str, float]] = predict_items(conn, workspace, library, items)
    return result


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    try:
        from models.imitation.errors import TrainerError
    except ImportError:
        return (ImitationUnavailable, ImportError)
    return (ImitationUnavailable, TrainerError)


def current_predictions(
    conn: sqlite3.Connection, library_id: int
) -> dict[int, dict[str, tuple[str, dict[str, float]]]]:
    """item id → labeler → (source, probs) for every labeler's current prediction made with this library."""
    found: dict[int, dict[str, tuple[str, dict[str, float]]]] = {}
    for label in current_predictions_in_library(conn, library_id):
        found.setdefault(label.item_id, {})[label.labeler] = (label.source, label.probs)
    return found


def likelihood(
    conn: sqlite3.Connection,
    workspace: Path,
    library: Library,
    *,
    predict: Predict | None = None,
) -> Likelihood:
    """Σ_i log P(y_i | x_i, Z) over D (floored by models.scoring.log_score): pooled labels first, the
    imitation model for the rest."""
    gold = train_gold(conn)
    items = [item for item in items_in(conn, ("train",)) if item.id in gold]
    labels = current_predictions(conn, library.id)
    log_labelled = log_imitated = 0.0
    n_labels = n_simulated = 0
    labelers: set[str] = set()
    unlabelled: list[Item] = []
    for item in items:
        given = labels.get(item.id)
        if not given:
            unlabelled.append(item)
            continue
        pooled = sum(probs.get(gold[item.id], 0.0) for _, probs in given.values()) / len(given)
        log_labelled += log_score(pooled)
        n_labels += len(given)
        n_simulated += sum(1 for source, _ in given.values() if is_simulated(source))
        labelers.update(given)
    n_imitated, note = 0, ""
    if unlabelled:
        try:
            predicted = (predict or _default_predict)(conn, workspace, library, unlabelled)
        except _unavailable_errors() as error:
            predicted, note = {}, f"no imitation model: {error}"
        for item in unlabelled:
            probs = predicted.get(item.uid)
            if probs is None:
                continue
            log_imitated += log_score(probs.get(gold[item.id], 0.0))
            n_imitated += 1
    return Likelihood(
        n_items=len(items),
        n_labelled=len(items) - len(unlabelled),
        n_imitated=n_imitated,
        n_missing=len(unlabelled) - n_imitated,
        n_labels=n_labels,
        n_labelers=len(labelers),
        n_simulated_labels=n_simulated,
        log_labelled=log_labelled,
        log_imitated=log_imitated,
        note=note,
    )


def labeler_credences(
    conn: sqlite3.Connection, library: Library
) -> tuple[dict[str, dict[frozenset[str], tuple[float, bool]]], list[float]]:
    """labeler → statement set → (p, came from a fork relative), and the direct credences on this library."""
    per_labeler: dict[str, dict[frozenset[str], tuple[float, bool]]] = {}
    direct: list[float] = []
    for relative in fork_family(conn, library):
        shared = relative.id != library.id
        stored = load_workspace_credences(conn, relative.id)
        mentioned = {s for entry in stored for c in entry.credences for s in c.statements}
        present = visible_uids(conn, library.id, mentioned) if shared else mentioned
        for entry in stored:
            if not shared and entry.library_credence is not None:
                direct.append(entry.library_credence)
            mine = per_labeler.setdefault(entry.labeler, {})
            for credence in entry.credences:
                if credence.statements <= present and credence.statements not in mine:
                    mine[credence.statements] = (credence.p, shared)
    return {who: sets for who, sets in per_labeler.items() if sets}, direct


def _engine(credences: Sequence[Credence]) -> tuple[str, float, float, Estimate, bool, str]:
    """(method, lower, upper, independence estimate, coherent, note) for P(all mentioned statements true)."""
    mentioned = frozenset(s for c in credences for s in c.statements)
    answer = choose_engine(credences, mentioned, exact_limit=EXACT_LIMIT)
    unused = answer.unused if len(mentioned) > EXACT_LIMIT else 0
    note = f"{unused} credences on 3+ statements not used by the scalable bounds" if unused else ""
    interval = answer.interval
    return answer.method, interval.lower, interval.upper, independence(answer.pairwise), answer.coherence.coherent, note


def prior(
    conn: sqlite3.Connection,
    library: Library,
    *,
    use_imitated_credences: bool = False,
    use_model_credences: bool = False,
) -> Prior:
    """The P(Z) interval for the whole library and the point estimate F uses (see the module docstring)."""
    statements = library_statements(conn, library)
    per_labeler, direct = labeler_credences(conn, library)
    pooled = _Pooled.of(per_labeler)
    human = pooled.credences()
    rated = {s for c in human for s in c.statements}
    n_statements = len(set(statements) | rated)
    imitated, modelled, notes = _unrated(
        conn, library, per_labeler, statements, rated, imitated=use_imitated_credences, model=use_model_credences
    )
    everything = human + imitated + modelled
    direct_mean = sum(direct) / len(direct) if direct else None
    if not everything:
        notes.append("no credences: log P(Z) unknown")
        return Prior(n_statements, 0, 0, 0, 0, 0, "none", 0.0, 1.0, None, True, len(direct), direct_mean, tuple(notes))
    method, lower, upper, point, coherent, note = _engine(everything)
    if note:
        notes.append(note)
    if point.note:
        notes.append(f"independence: {point.note}")
    unconstrained = n_statements - len(rated) - len(imitated) - len(modelled)
    if unconstrained > 0:
        lower = 0.0
        notes.append(f"{unconstrained} statements without any credence are unconstrained: P(Z) ≥ 0 only")
    point_log = (point.log10 or 0.0) * math.log(10) if point.log10 is not None else _ln(point.lower)
    point_log = min(max(point_log, _ln(lower)), _ln(upper))
    return Prior(
        n_statements=n_statements,
        n_rated=len(rated),
        n_imitated=len(imitated),
        n_credences=len(human),
        n_labelers=len(per_labeler),
        n_shared=len(pooled.shared),
        method=method,
        lower=lower,
        upper=upper,
        point_log=point_log,
        coherent=coherent,
        direct_n=len(direct),
        direct_mean=direct_mean,
        notes=tuple(notes),
        n_model=len(modelled),
    )


def _unrated(
    conn: sqlite3.Connection,
    library: Library,
    per_labeler: Mapping[str, Mapping[frozenset[str], tuple[float, bool]]],
    statements: Mapping[str, str],
    rated: set[str],
    *,
    imitated: bool,
    model: bool,
) -> tuple[list[Credence], list[Credence], list[str]]:
    """Credences for statements no person rated, when asked: imitated ones, then the model's own for the rest;
    flagged in the notes, never mixed into the human counts."""
    notes: list[str] = []
    guessed: list[Credence] = []
    if imitated:
        guessed, refused = _imitated(per_labeler, statements, rated)
        notes += refused
        if guessed:
            notes.append(f"{len(guessed)} statements have imitated credences (flagged, not human)")
    modelled: list[Credence] = []
    if model:
        covered = rated | {s for c in guessed for s in c.statements}
        modelled = _modelled(conn, library, [uid for uid in statements if uid not in covered])
        if modelled:
            notes.append(f"{len(modelled)} statements have the model's own credences (flagged, not human)")
    return guessed, modelled, notes


def _modelled(conn: sqlite3.Connection, library: Library, targets: Sequence[str]) -> list[Credence]:
    """The model's stored credence on each target statement: this library's first, then a fork relative's."""
    found: dict[str, Credence] = {}
    for relative in fork_family(conn, library):
        missing = [uid for uid in targets if uid not in found]
        if not missing:
            break
        for uid, credence in model_credences(conn, relative.id, missing).items():
            found[uid] = Credence(frozenset({uid}), credence.p, label=f"model credence ({credence.source})")
    return [found[uid] for uid in targets if uid in found]


def _imitated(
    per_labeler: Mapping[str, Mapping[frozenset[str], tuple[float, bool]]],
    statements: Mapping[str, str],
    rated: set[str],
) -> tuple[list[Credence], list[str]]:
    """Imitated single credences on the statements nobody rated, averaged over the labelers that can be imitated."""
    targets = [uid for uid in statements if uid not in rated]
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    refused: list[str] = []
    for labeler, sets in sorted(per_labeler.items()):
        singles = {next(iter(s)): p for s, (p, _) in sets.items() if len(s) == 1 and next(iter(s)) in statements}
        try:
            guesses = imitate(singles, statements, targets, labeler=labeler)
        except ImitationRefused as error:
            refused.append(str(error))
            continue
        for guess in guesses:
            sums[guess.uid] = sums.get(guess.uid, 0.0) + guess.p
            counts[guess.uid] = counts.get(guess.uid, 0) + 1
    credences = [
        Credence(frozenset({uid}), sums[uid] / counts[uid], label=f"imitated ({counts[uid]} labelers)") for uid in sums
    ]
    return credences, refused


def score_libraries(
    conn: sqlite3.Connection,
    workspace: Path,
    libraries: Sequence[Library] | None = None,
    *,
    predict: Predict | None = None,
    use_imitated_credences: bool = False,
    use_model_credences: bool = False,
) -> list[LibraryScore]:
    """Score every library (or those given) and rank the ones whose F(Z) is defined, best first."""
    scored = []
    for library in libraries if libraries is not None else list_libraries(conn):
        part = likelihood(conn, workspace, library, predict=predict)
        prior_part = prior(
            conn, library, use_imitated_credences=use_imitated_credences, use_model_credences=use_model_credences
        )
        scored.append(LibraryScore(library, part, prior_part))
    ranked = sorted((s for s in scored if s.f is not None), key=lambda s: -(s.f or 0.0))
    ranks = {id(s): position for position, s in enumerate(ranked, start=1)}
    result = []
    for entry in scored:
        reason = ""
        if entry.f is None:
            if entry.likelihood.n_items == 0:
                reason = "no train items with gold"
            elif not entry.likelihood.complete:
                reason = f"{entry.likelihood.n_missing} items without a label or an imitation"
                reason += f" ({entry.likelihood.note})" if entry.likelihood.note else ""
            else:
                reason = "no credences, so no log P(Z)"
        result.append(LibraryScore(entry.library, entry.likelihood, entry.prior, ranks.get(id(entry)), reason))
    return sorted(result, key=lambda s: (s.rank is None, s.rank or 0, s.library.id))


def calibration(conn: sqlite3.Connection, library: Library, labeler: str, *, bins: int = BINS) -> list[ReliabilityBin]:
    """The labeler's reliability on D: every probability they put on an option of a train item (their current
    labels made with this library), binned, against whether that option was gold. Every option counts, not
    only the top one, so a well-calibrated labeler's points lie on the diagonal at every level of confidence."""
    gold = train_gold(conn)
    stated: list[float] = []
    right: list[float] = []
    for item_id, given in current_predictions(conn, library.id).items():
        if item_id not in gold or labeler not in given:
            continue
        for option, p in given[labeler][1].items():
            stated.append(float(p))
            right.append(1.0 if option == gold[item_id] else 0.0)
    return reliability(stated, right, bins)
