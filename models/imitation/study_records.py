"""What `navigator study` writes to results.json: the boundary models, and the JSON Schema made from them.

Every figure is an `Interval` — a value with its n and, where n allows, its 95 % bootstrap
interval over items — so no number leaves the study without its sample size. The schema ships in
kb/schemas/study_results.schema.json beside the export schemas (a test keeps it equal to these
models), so a researcher can validate a results.json with any JSON Schema tool.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
SCHEMA_NAME = "study_results"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Interval(Record):
    """A mean over n items; low and high bound its 95 % bootstrap interval (null when n is too small)."""

    value: float | None
    low: float | None
    high: float | None
    n: int = Field(ge=0)


class Metrics(Record):
    """Accuracy (a tie earns its share), log loss (−ln P(gold), floored) and Brier, each over the same items."""

    accuracy: Interval
    log_loss: Interval
    brier: Interval


class System(Record):
    """One thing that answered items: the imitation model, a naive baseline, or a labeler."""

    name: str
    kind: str  # imitation | naive baseline | naive baseline with the reading plan | labeler
    split: str  # the items it is scored on: prediction (models) or validation (labelers)
    labeler: str | None = None
    simulated: bool | None = None
    overall: Metrics
    per_task: dict[str, Metrics]


class Difference(Record):
    """Imitation minus a naive baseline on the same items, accuracy, paired bootstrap; and what it supports."""

    task: str
    against: str
    accuracy: Interval
    verdict: str


class Shortcut(Record):
    """The answer D gives most often for a task, taken as a rule: how often it is right on D and on D*."""

    task: str
    answer: str
    on_d: Interval
    on_dstar: Interval


class IID(Record):
    auc: float
    p_value: float
    n_validation: int
    n_prediction: int
    passed: bool
    message: str


class TaskAgreement(Record):
    task: str
    alpha: float | None
    n_items: int
    n_labels: int
    n_labelers: int
    js_distance: float | None
    note: str


class ReliabilityRow(Record):
    low: float
    high: float
    n: int
    stated: float
    observed: float


class Calibration(Record):
    """One labeler's (or the model's) stated probabilities against what came true, on the items named."""

    who: str
    simulated: bool | None
    items: str
    n_items: int
    n_probabilities: int
    ece: float | None
    bins: list[ReliabilityRow]


class CurvePoint(Record):
    labels: int
    cross_entropy: float


class LibraryScore(Record):
    library: str
    f: float | None
    log_likelihood: float | None
    log_prior: float | None
    n_items: int
    rank: int | None
    note: str


class Independence(Record):
    """How many labels were given by someone who could already see another labeler's answer to the item."""

    labels: int
    after_seeing_another: int
    adjudications: int
    leads: list[str]
    note: str


class Provenance(Record):
    seed: int
    bootstrap_resamples: int
    learner: str
    packages: dict[str, str]
    hashes: dict[str, str]
    answers: str
    protocol: dict[str, Any] | None = None


class StudyResults(Record):
    schema_version: int = SCHEMA_VERSION
    library: str
    items: dict[str, int]
    labelers: dict[str, str]  # name → human | simulated
    systems: list[System]
    differences: list[Difference]
    shortcuts: list[Shortcut]
    iid: IID
    agreement: list[TaskAgreement]
    calibration: list[Calibration]
    learning_curve: list[CurvePoint]
    scores: list[LibraryScore]
    independence: Independence
    verdicts: list[str]
    provenance: Provenance


def schema_document() -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **StudyResults.model_json_schema()}


def schema_text() -> str:
    return json.dumps(schema_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m models.imitation.study_records: rewrite the shipped schema
    from pathlib import Path

    target = Path(__file__).resolve().parents[2] / "kb" / "schemas" / f"{SCHEMA_NAME}.schema.json"
    target.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {target}")
