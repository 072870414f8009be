"""Turning M_Z's judgement and the evidence check into a probability that means what it says, and measuring it.

P(true) = σ(a · contrast + b · support), two weights fitted by logistic regression on statements
whose truth is known (models.llm.truth_set):

- contrast: the judge's score for the statement minus its score for the statement's negation
  ("It is false that …"), so the model's lean towards " False" whatever it reads cancels out;
- support: +1 when the statement's evidence covers every figure, name, unit and negation it states,
  minus one for each it does not (models.llm.grounding `support`).

Both features change sign when the statement is negated and there is no intercept, so a statement and
its negation always get probabilities that add up to one. Two numbers cannot overfit 600 statements,
and they are stored as plain JSON — nothing that runs code when read.

A calibration belongs to one model file (its sha256) and one judgement prompt (its version); a
different model or a changed prompt needs its own. `navigator llm calibrate` writes one to the
user's cache; the bundled model ships with one made by the same command, so generated statements get
calibrated credences without anyone running it first.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kb.atomic_file import write_atomically
from models.llm.model import ModelIdentity
from models.llm.model_file import cache_dir

METHOD = "contrast+support"
FORMAT = 2  # format 1 held Platt's σ(a · score + b) on the judge's score alone
UNCALIBRATED = (1.0, 1.0)  # the weights used before a model has a calibration of its own
RIDGE = 1.0  # a weak prior on the weights (a Gaussian with variance 1) keeps them finite when the support separates


@dataclass(frozen=True)
class Calibration:
    """σ(a · contrast + b · support) for one model file and one judgement prompt, fitted on n statements
    drawn with `seed`."""

    model: str
    model_sha256: str
    prompt_version: str
    a: float
    b: float
    n: int
    seed: int
    method: str = METHOD

    def probability(self, contrast: float, support: float) -> float:
        return _sigmoid(self.a * contrast + self.b * support)

    @property
    def key(self) -> str:
        return calibration_key(self.model_sha256, self.prompt_version)


def probability(calibration: Calibration | None, contrast: float, support: float) -> float:
    """The credence: calibrated when there is a calibration, else with UNCALIBRATED weights."""
    a, b = (calibration.a, calibration.b) if calibration is not None else UNCALIBRATED
    return _sigmoid(a * contrast + b * support)


def calibration_key(model_sha256: str, prompt_version: str) -> str:
    return f"{model_sha256[:16]}-{prompt_version}-{METHOD.replace('+', '-')}"


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def fit_weights(
    features: NDArray[np.float64], truth: NDArray[np.float64], iterations: int = 100
) -> tuple[float, float]:
    """(a, b) maximising the likelihood of `truth` under σ(a · contrast + b · support), by Newton's method.

    `features` has one row a statement: (contrast, support). No intercept, so the fitted credence
    keeps the features' antisymmetry under negation. Deterministic; RIDGE keeps the weights finite
    when the support alone separates the statements, as it nearly does on the truth set.
    """
    if len(features) == 0 or len(np.unique(truth)) < 2:
        raise ValueError("a calibration needs both true and false statements")
    weights = np.array([1.0, 1.0])
    ridge = RIDGE
    for _ in range(iterations):
        p = sigmoid(features @ weights)
        gradient = features.T @ (p - truth) + ridge * weights
        hessian = (features * np.maximum(p * (1 - p), 1e-12)[:, None]).T @ features + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        weights = weights - step
        if float(np.max(np.abs(step))) < 1e-12:
            break
    return float(weights[0]), float(weights[1])


# -- how good probabilities are ---------------------------------------------------------------------


def auc(scores: NDArray[np.float64], truth: NDArray[np.float64]) -> float:
    """Probability that a random true statement scores above a random false one (ties count half)."""
    positive, negative = scores[truth == 1], scores[truth == 0]
    if len(positive) == 0 or len(negative) == 0:
        return math.nan
    order = np.argsort(np.concatenate([positive, negative]), kind="stable")
    ranks = np.empty(len(order))
    values = np.concatenate([positive, negative])[order]
    ranks[order] = np.arange(1, len(order) + 1)
    for value in np.unique(values):  # average ranks over ties
        tied = order[values == value]
        ranks[tied] = ranks[tied].mean()
    return float(
        (ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative))
    )


# -- stored calibrations ------------------------------------------------------------------------------


class CalibrationFile(BaseModel):
    """The JSON a calibration is stored as: plain numbers, checked when read."""

    model_config = ConfigDict(extra="ignore")

    format: int = Field(FORMAT, ge=FORMAT, le=FORMAT)
    model: str = Field(min_length=1)
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    prompt_version: str = Field(min_length=1)
    method: str = Field(pattern=f"^{re.escape(METHOD)}$")
    a: float
    b: float
    n: int = Field(ge=2)
    seed: int

    @field_validator("a", "b")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


def user_calibration_dir() -> Path:
    return cache_dir() / "calibrations"


def shipped_calibration_path(key: str) -> Path:
    return Path(str(resources.files("models.llm") / "calibrations" / f"{key}.json"))


def save_calibration(calibration: Calibration, directory: Path | None = None) -> Path:
    """Write atomically (a reader never sees half a file); same calibration, same bytes."""
    folder = directory or user_calibration_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{calibration.key}.json"
    write_atomically(target, json.dumps({"format": FORMAT, **asdict(calibration)}, indent=2, sort_keys=True) + "\n")
    return target


def read_calibration(path: Path) -> Calibration:
    """The calibration in `path`, or ValueError saying what is wrong with the file."""
    try:
        record = CalibrationFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as error:
        raise ValueError(f"{path} is not a usable calibration: {error}") from error
    return Calibration(
        record.model,
        record.model_sha256,
        record.prompt_version,
        record.a,
        record.b,
        record.n,
        record.seed,
        record.method,
    )


def find_calibration(identity: ModelIdentity, prompt_version: str) -> tuple[Calibration | None, str]:
    """The calibration for this model file and prompt (the user's own first, else the shipped one), and its origin.

    A damaged or mismatched file is skipped (the reason is returned) rather than trusted.
    """
    key = calibration_key(identity.sha256, prompt_version)
    notes = []
    for where, path in (("user", user_calibration_dir() / f"{key}.json"), ("shipped", shipped_calibration_path(key))):
        if not path.exists():
            continue
        try:
            found = read_calibration(path)
        except ValueError as error:
            notes.append(str(error))
            continue
        if found.model_sha256 != identity.sha256 or found.prompt_version != prompt_version:
            notes.append(f"{path} belongs to another model or prompt")
            continue
        return found, f"{where} calibration {path.name}"
    return None, "; ".join(notes) or f"no calibration for {identity.name} with judgement prompt {prompt_version}"
