"""`navigator assign`, `agreement` and `disagreements`: running a labeling team.

Loaded by navigator/cli.py (LAZY_COMMANDS) only when run. The work is in kb.assignments and
models.imitation.agreement; `navigator serve` is in navigator/commands/serve.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click

from kb.assignments import Plan
from kb.assignments import assign as make_plan
from kb.items import SPLITS
from kb.tree import node_by_uid, node_path
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
from navigator.display import visible
from navigator.team_text import agreement_json, agreement_lines, disagreement_json, disagreement_lines

splits_option = click.option(
    "--split",
    "splits",
    multiple=True,
    type=click.Choice(("train", "validation")),
    help="Items to measure (repeatable; default: train and validation).",
)


def _labelers(value: str) -> list[str]:
    return [name.strip() for name in value.split(",")] if value.strip() else []


def _plan_json(plan: Plan) -> dict[str, object]:
    return {
        "plan": plan.uid,
        "split": plan.split,
        "items": len(plan.items),
        "labelers": list(plan.labelers),
        "overlap": plan.overlap,
        "seed": plan.seed,
        "load": plan.load(),
        "shared": {f"{a} × {b}": n for (a, b), n in plan.shared().items()},
    }


@click.command()
@workspace_option
@click.option("--labelers", required=True, help="Comma-separated names, as they label (e.g. ann,bob,simulated:c).")
@click.option("--overlap", "-k", default=2, show_default=True, help="Distinct labelers per item.")
@click.option("--split", type=click.Choice(SPLITS), default="validation", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed of the plan: the same seed gives the same plan.")
@click.option("--by", "created_by", help="Who makes the plan (recorded with it).")
@json_option
def assign(
    workspace: Path, labelers: str, overlap: int, split: str, seed: int, created_by: str | None, as_json: bool
) -> None:
    """Give every item of a split OVERLAP distinct labelers, balanced; the app's queue and
    `navigator simulate` follow it. Assigning again puts a new plan in force (the old one is kept)."""
    conn = open_workspace(workspace)
    plan: Plan = guard(
        lambda: make_plan(conn, _labelers(labelers), overlap, split=split, seed=seed, created_by=created_by)
    )
    if as_json:
        emit_json(_plan_json(plan))
        return
    click.echo(
        f"assigned {len(plan.items)} {plan.split} items, {plan.overlap} labelers each (seed {plan.seed}); "
        f"plan {plan.uid} is in force"
    )
    click.echo(visible("  items per labeler: " + ", ".join(f"{name} {n}" for name, n in plan.load().items())))
    shared = plan.shared()
    if shared:
        click.echo(visible("  items shared: " + ", ".join(f"{a} × {b} {n}" for (a, b), n in shared.items())))
    click.echo("  labelers not named here still see every item, as before")


@click.command()
@workspace_option
@library_option
@click.option("--task", help="Only this task (default: every task, and all together).")
@splits_option
@json_option
def agreement(
    workspace: Path, library_name: str | None, task: str | None, splits: tuple[str, ...], as_json: bool
) -> None:
    """Inter-labeler agreement (Krippendorff's alpha, Jensen–Shannon distance) per task and overall,
    and each labeler's log score and calibration on train gold, all with sample sizes."""
    from models.imitation.agreement import LABELLED_SPLITS
    from models.imitation.agreement import agreement as measure

    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    report = guard(lambda: measure(conn, library, splits=splits or LABELLED_SPLITS, task=task))
    if task is not None and report.overall.n_items == 0 and not report.labelers:
        raise Failure(f"no labels on task {task!r} in library {library.name!r}")
    if as_json:
        emit_json(agreement_json(report))
        return
    for line in agreement_lines(report):
        click.echo(line)


def cited_path(conn: sqlite3.Connection, library_id: int, uid: str) -> str:
    node = node_by_uid(conn, uid, library_id)
    return node_path(conn, node.id) if node else f"{uid} (not in this library)"


@click.command()
@workspace_option
@library_option
@click.option("--task", help="Only this task.")
@splits_option
@click.option("--limit", "-n", default=20, show_default=True, help="How many items to list.")
@json_option
def disagreements(
    workspace: Path, library_name: str | None, task: str | None, splits: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """Items where labelers disagree most (mean pairwise Jensen–Shannon distance), each labeler's
    probabilities, citations and notes side by side; adjudicated items come last."""
    from models.imitation.agreement import LABELLED_SPLITS
    from models.imitation.agreement import disagreements as find

    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    found = guard(lambda: find(conn, library, splits=splits or LABELLED_SPLITS, task=task, limit=limit))

    def path(uid: str) -> str:
        return cited_path(conn, library.id, uid)

    if as_json:
        emit_json({"library": library.name, "items": [disagreement_json(entry, path) for entry in found]})
        return
    if not found:
        click.echo("no item has labels from two labelers that differ")
        return
    for line in disagreement_lines(found, path):
        click.echo(line)
