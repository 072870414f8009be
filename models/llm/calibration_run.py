"""`navigator llm calibrate`: how well M_Z's credences tell true from false, measured honestly.

The model judges n Factbook statements of known truth (models.llm.truth_set), each with its
negation, and each is checked against its source (models.llm.credence_features). The calibration
that unpacking will use is fitted on all of them; the figures reported are *out of fold*: the set is
split in two by country, each half is scored by a calibration fitted on the other half, so no
statement is scored by numbers fitted on itself (or on its own country's other facts). And *out of
kind*: for each kind of false statement, a calibration fitted without that kind scores it against
the true statements, so a kind the calibration never saw still has to be told from the truth.
Reported with n: accuracy at 0.5, expected calibration error before and after calibration, Brier
score, AUC of the credence and of each feature alone, a reliability table, and each kind.
"""

from __future__ import annotations

import random
import sqlite3
import time
from dataclasses import dataclass

import numpy as np

from kb.errors import Cancelled
from kb.progress import NoProgress, Progress
from models.llm.calibration import UNCALIBRATED, Calibration, auc, fit_weights, sigmoid
from models.llm.credence_features import credence_features
from models.llm.judge import PROMPT_VERSION
from models.llm.model import LLM
from models.llm.truth_set import FALSE_KINDS, TRUE, TruthStatement, truth_statements
from models.reliability import ReliabilityBin, expected_calibration_error, reliability

DEFAULT_N = 600
FOLDS = 2


class CalibrationCancelled(Cancelled):
    """The run was stopped; nothing was saved."""


@dataclass(frozen=True)
class KindScore:
    kind: str
    n: int
    accuracy: float
    mean_p: float
    auc_out_of_kind: float | None = None  # false kinds: fitted without this kind, this kind against the true ones


@dataclass(frozen=True)
class CalibrationReport:
    calibration: Calibration  # fitted on all n statements: what unpacking uses
    n: int
    n_true: int
    folds: int
    accuracy: float  # out of fold, calibrated P ≥ 0.5 against the truth
    ece: float  # out of fold, calibrated
    ece_uncalibrated: float  # σ(score) taken as a probability
    brier: float
    auc: float  # of the credence, out of fold: how well it ranks true above false
    auc_judgement: float  # of the contrast alone (the model's judgement, no evidence check)
    auc_support: float  # of the evidence check alone
    reliability: list[ReliabilityBin]
    by_kind: list[KindScore]
    seconds: float

    @property
    def statements_per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else 0.0


def country_folds(statements: list[TruthStatement], seed: int, folds: int = FOLDS) -> np.ndarray:
    """Fold index per statement; all statements about one country fall in the same fold."""
    countries = sorted({s.country for s in statements})
    random.Random(seed).shuffle(countries)
    fold_of = {country: index % folds for index, country in enumerate(countries)}
    return np.array([fold_of[s.country] for s in statements], dtype=np.int64)


def calibrate(
    llm: LLM,
    log: sqlite3.Connection,
    *,
    n: int = DEFAULT_N,
    seed: int = 0,
    progress: Progress | None = None,
) -> CalibrationReport:
    """Judge n truth-set statements (and their negations) with `llm`, fit the calibration, and report it.

    Every judgement is a row in `log`'s call log (purpose 'calibrate'), with the statement's kind,
    its truth and the run's seed, so a calibration can be traced to the exact judgements behind it.
    """
    progress = progress or NoProgress()
    statements = truth_statements(n, seed)
    progress.start(f"judging {n} Factbook statements", n)
    started = time.perf_counter()
    features = np.empty((n, 2))
    for index, statement in enumerate(statements):
        if progress.cancelled:
            raise CalibrationCancelled("calibration cancelled; nothing was saved")
        about = {"seed": seed, "index": index, "kind": statement.kind, "true": statement.true}
        found = credence_features(
            log, llm, statement.source, statement.statement, purpose="calibrate", extra_params=about
        )
        features[index] = (found.contrast, found.support)
        progress.advance(1)
    seconds = time.perf_counter() - started
    truth = np.array([1.0 if s.true else 0.0 for s in statements])
    kinds = np.array([s.kind for s in statements])
    fold = country_folds(statements, seed)
    calibrated = _out_of_fold(features, truth, fold)
    a, b = fit_weights(features, truth)
    identity = llm.identity
    calibration = Calibration(identity.name, identity.sha256, PROMPT_VERSION, a, b, n, seed)
    return CalibrationReport(
        calibration=calibration,
        n=n,
        n_true=int(truth.sum()),
        folds=FOLDS,
        accuracy=float(np.mean((calibrated >= 0.5) == (truth == 1))),
        ece=expected_calibration_error(calibrated, truth),
        ece_uncalibrated=expected_calibration_error(sigmoid(features @ np.array(UNCALIBRATED)), truth),
        brier=float(np.mean((calibrated - truth) ** 2)),
        auc=auc(calibrated, truth),
        auc_judgement=auc(features[:, 0], truth),
        auc_support=auc(features[:, 1], truth),
        reliability=reliability(calibrated, truth),
        by_kind=_by_kind(features, truth, kinds, fold, calibrated),
        seconds=seconds,
    )


def _out_of_fold(
    features: np.ndarray, truth: np.ndarray, fold: np.ndarray, used: np.ndarray | None = None
) -> np.ndarray:
    """Each statement's credence from weights fitted on the other folds (only on `used` statements, if given)."""
    used = np.ones(len(truth), dtype=bool) if used is None else used
    calibrated = np.full(len(truth), np.nan)
    for k in range(FOLDS):
        train, test = (fold != k) & used, fold == k
        if not test.any():
            continue
        weights = np.array(fit_weights(features[train], truth[train]))
        calibrated[test] = sigmoid(features[test] @ weights)
    return calibrated


def _by_kind(
    features: np.ndarray, truth: np.ndarray, kinds: np.ndarray, fold: np.ndarray, calibrated: np.ndarray
) -> list[KindScore]:
    """Each kind's n, accuracy and mean credence out of fold; for a false kind, its AUC against the true
    statements when the calibration never saw it (fitted out of fold without it)."""
    scores = []
    for kind in [TRUE, *FALSE_KINDS]:
        mine = kinds == kind
        if not mine.any():
            continue
        out_of_kind = None
        if kind != TRUE:
            held = _out_of_fold(features, truth, fold, used=kinds != kind)
            pair = mine | (kinds == TRUE)
            out_of_kind = auc(held[pair], truth[pair])
        scores.append(
            KindScore(
                kind,
                int(mine.sum()),
                float(np.mean((calibrated[mine] >= 0.5) == (truth[mine] == 1))),
                float(calibrated[mine].mean()),
                out_of_kind,
            )
        )
    return scores
