"""`navigator score` (F(Z) per library, ranked) and `navigator fork` (copy a library to diverge from).

Loaded by navigator/cli.py (LAZY_COMMANDS) only when run. The work is models.imitation.score and kb.fork;
this module only prints, and every number it prints carries the count it rests on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from models.imitation.score import LibraryScore, score_libraries
from models.scoring import LOG_FLOOR
from navigator.commands.support import emit_json, guard, json_option, open_workspace, workspace_option


def _score_json(entry: LibraryScore) -> dict[str, Any]:
    """One library's F(Z) with the counts it rests on. A log of probability 0 (-inf) prints as null,
    beside the probability itself (emit_json's one rule for numbers that are not finite)."""
    part, prior = entry.likelihood, entry.prior
    low, high = prior.log_interval
    return {
        "library": entry.library.name,
        "parent": entry.library.parent_id,
        "rank": entry.rank,
        "f": entry.f,
        "reason": entry.reason or None,
        "likelihood": {
            "log_sum": part.total,
            "n_items": part.n_items,
            "n_labelled": part.n_labelled,
            "n_imitated": part.n_imitated,
            "n_missing": part.n_missing,
            "n_labels": part.n_labels,
            "n_labelers": part.n_labelers,
            "n_simulated_labels": part.n_simulated_labels,
            "log_labelled": part.log_labelled,
            "log_imitated": part.log_imitated,
            "log_floor": LOG_FLOOR,
            "pooling": "mean over labelers of P(gold)",
            "note": part.note or None,
        },
        "prior": {
            "p_lower": prior.lower,
            "p_upper": prior.upper,
            "log_lower": low,
            "log_upper": high,
            "method": prior.method,
            "point_log": prior.point_log,
            "point": prior.point_name,
            "coherent": prior.coherent,
            "n_statements": prior.n_statements,
            "n_rated": prior.n_rated,
            "n_imitated": prior.n_imitated,
            "n_model": prior.n_model,
            "terms": {"people": prior.n_rated, "imitator": prior.n_imitated, "model": prior.n_model},
            "n_credences": prior.n_credences,
            "n_shared_from_forks": prior.n_shared,
            "n_labelers": prior.n_labelers,
            "direct_library_credences": {"n": prior.direct_n, "mean": prior.direct_mean},
            "notes": list(prior.notes),
        },
    }


def _log_text(value: float | None) -> str:
    if value is None:
        return "undefined"
    return "-inf" if value == -math.inf else f"{value:.4g}"


def _print_score(entry: LibraryScore) -> None:
    part, prior = entry.likelihood, entry.prior
    head = f"#{entry.rank}" if entry.rank else "unranked"
    click.echo(
        f"{head}  {entry.library.name}  F(Z) = {_log_text(entry.f)}" + (f"  ({entry.reason})" if entry.reason else "")
    )
    click.echo(
        f"    Σ log P(y|x,Z) = {_log_text(part.total)} over n={part.n_items} items: {part.n_labelled} from "
        f"{part.n_labels} labels by {part.n_labelers} labelers ({part.n_simulated_labels} simulated labels; "
        f"{_log_text(part.log_labelled)}), {part.n_imitated} imitated ({_log_text(part.log_imitated)}), "
        f"{part.n_missing} missing; P clamped at ≥ {LOG_FLOOR:g}"
    )
    if part.note and part.note not in entry.reason:
        click.echo(f"    {part.note}")
    click.echo(
        f"    log P(Z) = {_log_text(prior.point_log)} ({prior.point_name}); "
        f"P(Z) ∈ [{prior.lower:.4g}, {prior.upper:.4g}] "
        f"({prior.method}{'' if prior.coherent else ', on the nearest coherent credences'}) from n={prior.n_credences} "
        f"credences by {prior.n_labelers} labelers ({prior.n_shared} shared from fork relatives) on {prior.n_rated} of "
        f"{prior.n_statements} statements; terms from people {prior.n_rated}, from the credence imitator "
        f"{prior.n_imitated}, from the model {prior.n_model}"
    )
    if prior.direct_n:
        click.echo(
            f"    direct credences on the whole library (not used): n={prior.direct_n}, mean {prior.direct_mean:.4g}"
        )
    for note in prior.notes:
        click.echo(f"    note: {note}")


@click.command()
@workspace_option
@json_option
@click.option(
    "--use-imitated-credences",
    is_flag=True,
    help="Give statements nobody rated an imitated credence (flagged) instead of leaving them unconstrained.",
)
@click.option(
    "--use-model-credences",
    is_flag=True,
    help="Give statements no person (nor, with the option above, the imitator) covers the model's own stored "
    "credence (flagged).",
)
def score(workspace: Path, as_json: bool, use_imitated_credences: bool, use_model_credences: bool) -> None:
    """Rank the libraries by F(Z) = Σ log P(y|x,Z) over D (train items with gold) + log P(Z).

    P(y|x,Z) is the labelers' pooled prediction made with the library where there is one and the
    imitation model's (`navigator train`) otherwise; log P(Z) is a point inside the interval the
    credences allow. A library is unranked when some item has neither or it has no credences.
    """
    conn = open_workspace(workspace)
    try:
        scores = guard(
            lambda: score_libraries(
                conn,
                workspace,
                use_imitated_credences=use_imitated_credences,
                use_model_credences=use_model_credences,
            )
        )
    finally:
        conn.close()
    if as_json:
        emit_json({"log_floor": LOG_FLOOR, "libraries": [_score_json(entry) for entry in scores]})
        return
    if not scores:
        click.echo("no libraries in this workspace")
    for entry in scores:
        _print_score(entry)
