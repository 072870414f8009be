"""`navigator train`, `predict`, `evaluate` and `simulate`: the imitation trainer from the command line.

Loaded by navigator/cli.py (LAZY_COMMANDS) only when run. All four print plain text by
default and JSON with --json; failures are one line on stderr, exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kb.db import utc_now
from kb.items import SPLITS, items_in
from kb.labels import SIMULATED
from models.imitation.evaluation import EvaluationReport, iid_check
from models.imitation.item_order import ORDERS
from models.imitation.learners import DEFAULT_LEARNER, LEARNERS
from models.imitation.trainer import TrainReport
from navigator.commands.support import (
    Failure,
    emit_json,
    guard,
    json_option,
    library_option,
    open_workspace,
    pick_library,
    workspace_option,
)
from navigator.json_output import json_lines
from navigator.tables import evaluation_table

PREDICTION_SCHEMA_VERSION = 1


def _report_lines(report: TrainReport) -> list[str]:
    params = ", ".join(f"{name}={value}" for name, value in report.learner_params.items())
    lines = [
        f"model v{report.model_version} trained on {report.n_labels} labels "
        f"({report.n_items} items, {report.n_labelers} labelers); data hash {report.data_hash[:16]}",
        f"learner {report.learner!r}" + (f" ({params})" if params else ""),
        f"{report.folds}-fold cross-validation over items (seed {report.seed}), per label:",
        f"  cross-entropy vs the labelers' distributions  {report.cross_entropy:.4f}",
        f"  agreement with the labelers' top choice       {report.top_choice_agreement:.3f}",
        f"  Brier score                                   {report.brier:.4f}",
        f"  expected calibration error                    {report.ece:.4f}",
        "  learning curve (training labels → CV cross-entropy): "
        + ", ".join(f"{size} → {loss:.3f}" for size, loss in report.learning_curve),
        "  labels per task: " + ", ".join(f"{task} {count}" for task, count in report.tasks.items()),
    ]
    for task, reason in report.skipped_tasks.items():
        lines.append(f"  skipped task {task!r}: {reason}")
    for task, fields in report.reading.items():
        lines.append(f"  reads for {task}, where labelers looked: " + "; ".join(fields))
    if report.labeler_weights:
        lines.append(
            "  labels weighted by skill on train gold: "
            + ", ".join(f"{name} {weight:.2f}" for name, weight in report.labeler_weights.items())
        )
    return lines


@click.command()
@workspace_option
@library_option
@click.option("--seed", default=0, show_default=True, help="Seed of the CV folds and the learner.")
@click.option("--folds", default=5, show_default=True, help="Folds of the cross-validation.")
@click.option(
    "--learner",
    type=click.Choice(sorted(LEARNERS)),
    default=DEFAULT_LEARNER,
    show_default=True,
    help="bow: TF-IDF words → logistic regression; reader: fields and figures read → conditional logit.",
)
@click.option(
    "--weight-by-skill", is_flag=True, help="Weigh each labeler by their skill on train gold (navigator agreement)."
)
@json_option
def train(
    workspace: Path,
    library_name: str | None,
    seed: int,
    folds: int,
    learner: str,
    weight_by_skill: bool,
    as_json: bool,
) -> None:
    """Fit the imitation model on the current prediction labels and save it as a new version."""
    from models.imitation.agreement import agreement, skill_weights
    from models.imitation.trainer import train as fit

    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    weights = skill_weights(agreement(conn, library)) if weight_by_skill else None
    report: TrainReport = guard(
        lambda: fit(conn, workspace, library, seed=seed, folds=folds, learner=learner, labeler_weights=weights)
    )
    if as_json:
        emit_json({"library": library.name, **report.as_json()})
    else:
        click.echo(f"library {library.name!r}")
        for line in _report_lines(report):
            click.echo(line)


@click.command()
@workspace_option
@library_option
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSONL here (default: standard output)."
)
@click.option("--split", type=click.Choice(SPLITS), default="prediction", show_default=True, help="Items to predict.")
@json_option
def predict(workspace: Path, library_name: str | None, out: Path | None, split: str, as_json: bool) -> None:
    """Predict every D*_prediction item with the latest model; JSONL, one model_prediction a line."""
    from models.imitation.trainer import load_model, predict_items

    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    items = items_in(conn, (split,))
    if not items:
        raise Failure(f"no {split} items in this workspace")
    fitted, report = guard(lambda: load_model(conn, library))
    probs = guard(lambda: predict_items(conn, workspace, library, items))
    now = utc_now()
    records = [
        {
            "type": "model_prediction",
            "id": f"{report.data_hash[:12]}:v{report.model_version}:{item.uid}",
            "item": item.uid,
            "library": library.name,
            "probs": probs[item.uid],
            "model_version": report.model_version,
            "data_hash": report.data_hash,
            "timestamp": now,
            "schema_version": PREDICTION_SCHEMA_VERSION,
        }
        for item in items
    ]
    if split == "prediction":
        _warn_if_not_iid(guard(lambda: iid_check(conn, workspace, library, plan=fitted.plan)))
    text = json_lines(records)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        summary = {"written": len(records), "out": str(out), "model_version": report.model_version}
        if as_json:
            emit_json(summary)
        else:
            click.echo(f"wrote {len(records)} predictions of model v{report.model_version} to {out}", err=True)


def _warn_if_not_iid(iid: Any) -> None:
    if not iid.iid:
        click.secho("!" * 78, fg="red", err=True)
        click.secho(iid.message, fg="red", bold=True, err=True)
        click.secho("!" * 78, fg="red", err=True)


def _evaluation_json(report: EvaluationReport) -> dict[str, Any]:
    """A score over no items is NaN, and null in the output (emit_json's one rule)."""
    return {
        "answers": report.answers,
        "model_version": report.model_version,
        "scores": [
            {
                "name": s.name,
                "kind": s.kind,
                "split": s.split,
                "n": s.n,
                "accuracy": s.accuracy,
                "log_loss": s.log_loss,
                "per_task": {task: {"n": n, "accuracy": acc} for task, (n, acc) in s.per_task.items()},
            }
            for s in report.scores
        ],
        "iid": {
            "iid": report.iid.iid,
            "auc": report.iid.auc,
            "p_value": report.iid.p_value,
            "n_validation": report.iid.n_a,
            "n_prediction": report.iid.n_b,
            "permutations": report.iid.permutations,
            "message": report.iid.message,
        },
    }


@click.command()
@workspace_option
@library_option
@click.option(
    "--answers",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The answer key written when D* was imported (WORKSPACE.answers.jsonl for the demo).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the baseline and the IID check.")
@json_option
def evaluate(workspace: Path, library_name: str | None, answers: Path, seed: int, as_json: bool) -> None:
    """Accuracy and log loss on D*_prediction: imitation model vs naive baseline (and simulated labelers)."""
    from models.imitation.evaluation import evaluate as run

    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    report: EvaluationReport = guard(lambda: run(conn, workspace, library, answers, seed=seed))
    if as_json:
        emit_json(_evaluation_json(report))
    else:
        for line in evaluation_table(report):
            click.echo(line)
        if report.iid.iid:
            click.echo(report.iid.message)
    _warn_if_not_iid(report.iid)


@click.command()
@workspace_option
@library_option
@click.option("--labeler", required=True, help="A name; stored as simulated:NAME so it never passes for a person.")
@click.option("--split", type=click.Choice(("validation", "train")), default="validation", show_default=True)
@click.option("--noise", default=0.1, show_default=True, type=click.FloatRange(0.0, 1.0), help="P(wrong or hesitant).")
@click.option("--seed", default=0, show_default=True, help="Seed of the noise.")
@click.option("--relabel", is_flag=True, help="Label items this labeler already labelled again.")
@click.option(
    "--order",
    type=click.Choice(ORDERS),
    default="given",
    show_default=True,
    help="Queue order: given; random; uncertain (least sure first, 1 in 3 at random); auto (uncertain with a model).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Label only the next N items of the queue.")
@json_option
def simulate(
    workspace: Path,
    library_name: str | None,
    labeler: str,
    split: str,
    noise: float,
    seed: int,
    relabel: bool,
    order: str,
    limit: int | None,
    as_json: bool,
) -> None:
    """A SIMULATED labeler answers the demo questions by reading the library, and records its labels."""
    from models.imitation.item_order import labeler_queue
    from models.imitation.simulated_labeler import SimulatedLabeler, simulated_name

    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    ordering = guard(lambda: labeler_queue(conn, library, simulated_name(labeler), (split,), order=order))
    if not ordering.items:
        raise Failure(f"no {split} items in this workspace for {simulated_name(labeler)}")
    simulated = SimulatedLabeler(conn, workspace, library, labeler, noise=noise, seed=seed)
    queue = ordering.items
    if limit is not None:
        done = set() if relabel else set(simulated.store.current_predictions(library.id))
        queue = [item for item in queue if item.id not in done][:limit]
    report = guard(lambda: simulated.label(queue, relabel=relabel))
    if as_json:
        emit_json(
            {
                "labeler": report.labeler,
                "source": SIMULATED,
                "split": split,
                "order": ordering.how,
                "labelled": report.labelled,
                "skipped": report.skipped,
                "not_found": report.not_found,
                "noisy": report.noisy,
                "seconds": round(report.seconds, 3),
            }
        )
    else:
        click.echo(
            f"SIMULATED labeler {report.labeler!r}: labelled {report.labelled} {split} items "
            f"({report.noisy} noisy, {report.not_found} not found in the library, {report.skipped} already labelled) "
            f"in {report.seconds:.1f} s; order: {ordering.how}"
        )
        for problem in report.problems[:10]:
            click.echo(f"  {problem}")
