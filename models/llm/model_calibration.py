"""`navigator llm calibrate`: how well M_Z's true/false judgements are calibrated, measured honestly.

The model judges n Factbook statements of known truth (models.llm.truth_set). The calibration that
unpacking will use is fitted on all of them; the figures reported are *out of fold*: the set is
split in two by country, each half is scored by a calibration fitted on the other half, so no
statement is scored by numbers fitted on itself (or on its own country's other facts). Reported
with n: accuracy at 0.5, expected calibration error before and after calibration, Brier score,
AUC of the raw score, a reliability table, and accuracy per kind of statement.
"""

from __future__ import annotations

import random
import sqlite3
import time
from dataclasses import dataclass

import numpy as np

from kb.errors import Cancelled
from kb.importing import NoProgress, Progress
from models.llm.calibration import (
    Calibration,
    auc,
    fit_platt,
    sigmoid,
)
from models.llm.generation import logged_judgement
from models.llm.judge import PROMPT_VERSION
from models.llm.model import LLM
from models.llm.truth_set import TruthStatement, truth_statements
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
    auc: float  # of the raw score: how well it ranks, whatever the calibration
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
    """Judge n truth-set statements with `llm`, fit Platt scaling, and report out-of-fold calibration.

    Every judgement is a row in `log`'s call log (purpose 'calibrate'), with the statement's kind,
    its truth and the run's seed, so a calibration can be traced to the exact judgements behind it.
    """
    progress = progress or NoProgress()
    statements = truth_statements(n, seed)
    progress.start(f"judging {n} Factbook statements", n)
    started = time.perf_counter()
    scores = np.empty(n)
    for index, statement in enumerate(statements):
        if progress.cancelled:
            raise CalibrationCancelled("calibration cancelled; nothing was saved")
        about = {"seed": seed, "index": index, "kind": statement.kind, "true": statement.true}
        found = logged_judgement(
            log, llm, statement.source, statement.statement, purpose="calibrate", extra_params=about
        )
        scores[index] = found.score
        progress.advance(1)
    seconds = time.perf_counter() - started
    truth = np.array([1.0 if s.true else 0.0 for s in statements])
    fold = country_folds(statements, seed)
    calibrated = np.empty(n)
    for k in range(FOLDS):
        train, test = fold != k, fold == k
        if not test.any():
            continue
        a, b = fit_platt(scores[train], truth[train])
        calibrated[test] = sigmoid(a * scores[test] + b)
    a, b = fit_platt(scores, truth)
    identity = llm.identity
    calibration = Calibration(identity.name, identity.sha256, PROMPT_VERSION, a, b, n, seed)
    kinds = []
    for kind in sorted({s.kind for s in statements}):
        mine = np.array([s.kind == kind for s in statements])
        kinds.append(
            KindScore(
                kind,
                int(mine.sum()),
                float(np.mean((calibrated[mine] >= 0.5) == (truth[mine] == 1))),
                float(calibrated[mine].mean()),
            )
        )
    return CalibrationReport(
        calibration=calibration,
        n=n,
        n_true=int(truth.sum()),
        folds=FOLDS,
        accuracy=float(np.mean((calibrated >= 0.5) == (truth == 1))),
        ece=expected_calibration_error(calibrated, truth),
        ece_uncalibrated=expected_calibration_error(sigmoid(scores), truth),
        brier=float(np.mean((calibrated - truth) ** 2)),
        auc=auc(scores, truth),
        reliability=reliability(calibrated, truth),
        by_kind=kinds,
        seconds=seconds,
    )
