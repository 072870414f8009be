"""`navigator llm calibrate` and `navigator llm credences`: M_Z's own credences, measured and filled in.

Registered under the `llm` group by navigator.commands.llm. Calibrate measures how well the model's
true/false judgements are calibrated and saves the fitted calibration that unpack and ask use;
credences gives a model credence to generated statements that have none (made before calibration
existed, or by a batch that was cancelled while judging). Every figure is printed with its n.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kb.tree import resolve_node
from models.llm.calibration_run import DEFAULT_N, CalibrationReport, calibrate
from models.llm.model_credences import FLIP_TOLERANCE, ModelCheck, credit_missing, forget_calibrations
from models.llm.repack import RepackMode
from navigator.commands.llm_support import load_options, model_process
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
from navigator.progress import TerminalProgress


def _report_json(report: CalibrationReport, saved: Path | None) -> dict[str, Any]:
    calibration = report.calibration
    return {
        "model": calibration.model,
        "model_sha256": calibration.model_sha256,
        "prompt_version": calibration.prompt_version,
        "n": report.n,
        "n_true": report.n_true,
        "seed": calibration.seed,
        "statements": "Factbook fields restated (true), or made false in one of six ways (by_kind)",
        "evaluation": f"out of fold: {report.folds} folds by country; out of kind: each false kind held out in turn",
        "features": "contrast (the judge's score for the statement minus its negation's) and support (evidence)",
        "accuracy": report.accuracy,
        "ece": report.ece,
        "ece_uncalibrated": report.ece_uncalibrated,
        "brier": report.brier,
        "auc": report.auc,
        "auc_judgement": report.auc_judgement,
        "auc_support": report.auc_support,
        "reliability": report.reliability,  # dataclasses: emit_json gives each its fields
        "by_kind": report.by_kind,
        "calibration": {"method": calibration.method, "a": calibration.a, "b": calibration.b},
        "saved_to": str(saved) if saved else None,
        "seconds": round(report.seconds, 2),
        "statements_per_second": round(report.statements_per_second, 2),
    }


def _print_report(report: CalibrationReport, saved: Path | None) -> None:
    calibration = report.calibration
    click.echo(
        f"model {calibration.model} (sha256 {calibration.model_sha256[:12]}…), "
        f"judgement prompt {calibration.prompt_version}"
    )
    click.echo(
        f"judged n={report.n} Factbook statements and their negations ({report.n_true} true; the false ones made "
        f"false in six ways) in {report.seconds:.0f} s ({report.statements_per_second:.1f} a second), "
        f"seed {calibration.seed}"
    )
    click.echo(
        f"out of fold ({report.folds} folds by country): accuracy {report.accuracy:.3f}, "
        f"ECE {report.ece:.3f} (uncalibrated {report.ece_uncalibrated:.3f}), Brier {report.brier:.3f}, "
        f"AUC {report.auc:.3f} (the judgement alone {report.auc_judgement:.3f}, the evidence check alone "
        f"{report.auc_support:.3f})"
    )
    click.echo("reliability (calibrated, out of fold):")
    click.echo(f"  {'stated P(true)':<16} {'n':>5} {'mean stated':>12} {'share true':>11}")
    for row in report.reliability:
        click.echo(f"  {row.low:.1f}–{row.high:.1f}{'':<9} {row.n:>5} {row.stated:>12.3f} {row.true:>11.3f}")
    click.echo("by kind (out of fold; AUC against the true statements when the calibration never saw the kind):")
    for kind in report.by_kind:
        held = f", AUC out of kind {kind.auc_out_of_kind:.3f}" if kind.auc_out_of_kind is not None else ""
        click.echo(f"  {kind.kind:<16} n={kind.n:<4} accuracy {kind.accuracy:.3f}, mean P {kind.mean_p:.3f}{held}")
    where = f"saved to {saved}" if saved else "not saved (--no-save)"
    click.echo(
        f"calibration P(true) = σ(a·contrast + b·support), a = {calibration.a:.4f}, b = {calibration.b:.4f}: {where}"
    )


@click.command(name="calibrate")
@click.option("--n", "n", default=DEFAULT_N, show_default=True, help="How many Factbook statements to judge.")
@click.option("--seed", default=0, show_default=True, help="Seed of the statement sample and the folds.")
@click.option("--save/--no-save", default=True, show_default=True, help="Save the calibration for unpack and ask.")
@click.option(
    "--save-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to save the calibration in (default: the user's cache).",
)
@workspace_option
@load_options
@json_option
def calibrate_command(
    n: int,
    seed: int,
    save: bool,
    save_dir: Path | None,
    workspace: Path,
    model: Path | None,
    n_ctx: int,
    threads: int | None,
    repack: RepackMode | None,
    as_json: bool,
) -> None:
    """Measure how well the model's true/false judgements are calibrated, and save the calibration.

    The model judges N statements made from the World Factbook (half true, half with a changed
    number or country). Accuracy, ECE and the reliability table are out of fold, with their n.
    Every judgement is logged in the workspace's call log (`navigator llm logs`).
    """
    from models.llm.calibration import save_calibration

    if n < 20:
        raise Failure("--n must be at least 20 (both folds need true and false statements)")
    conn = open_workspace(workspace)
    llm = model_process(model, n_ctx, threads, repack)
    with llm, TerminalProgress(enabled=not as_json) as progress:
        try:
            report = guard(lambda: calibrate(llm, conn, n=n, seed=seed, progress=progress))
        except KeyboardInterrupt:
            raise Failure("calibration interrupted; nothing was saved") from None
        except ValueError as error:
            raise Failure(str(error)) from error
    saved = save_calibration(report.calibration, save_dir) if save else None
    forget_calibrations()  # a judgement later in this process uses the new file
    if as_json:
        emit_json(_report_json(report, saved))
    else:
        _print_report(report, saved)


@click.command(name="credences")
@workspace_option
@click.argument("node", required=False)
@library_option
@load_options
@json_option
def credences_command(
    workspace: Path,
    node: str | None,
    library_name: str | None,
    model: Path | None,
    n_ctx: int,
    threads: int | None,
    repack: RepackMode | None,
    as_json: bool,
) -> None:
    """Give a model credence to every generated statement (below NODE, or in the library) that has none."""
    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    start = guard(lambda: resolve_node(conn, node, library.id)) if node else None
    llm = model_process(model, n_ctx, threads, repack)
    with llm, TerminalProgress(enabled=not as_json) as progress:
        try:
            report = guard(lambda: credit_missing(conn, llm, library, start, progress=progress))
        except KeyboardInterrupt:
            raise Failure("interrupted; the credences stored so far are kept") from None
    if as_json:
        emit_json(
            {
                "library": library.name,
                "judged": report.judged,
                "already": report.already,
                "calibrated": report.calibrated,
                "calibration": report.calibration_note,
            }
        )
        return
    click.echo(
        f"library {library.name}: {report.judged} generated statements given a model credence, "
        f"{report.already} already had one; {report.calibration_note}"
    )


# -- `navigator prior --model-check` ----------------------------------------------------------------------


def model_check_json(check: ModelCheck) -> dict[str, Any]:
    return {
        "n_statements": check.n_statements,
        "sources": check.sources,
        "flips": {
            "checked": check.n_flip_checked,
            "mean_abs_gap": check.mean_abs_gap,
            "within_tolerance": check.flips_within,
            "tolerance": FLIP_TOLERANCE,
            "worst": [
                {"id": f.node_uid, "text": f.text, "p": f.p, "p_negation": f.negation_p, "gap": f.gap}
                for f in check.flips
            ],
        },
        "near_duplicates": {
            "threshold": check.threshold,
            "clusters": check.n_clusters,
            "pairs": check.n_pairs,
            "clusters_cut": check.clusters_cut,
            "mean_difference": check.mean_difference,
            "worst": [
                {
                    "first": {"id": d.first_uid, "text": d.first_text, "p": d.first_p},
                    "second": {"id": d.second_uid, "text": d.second_text, "p": d.second_p},
                    "difference": d.difference,
                }
                for d in check.near_duplicates
            ],
        },
    }


def print_model_check(check: ModelCheck, library_name: str) -> None:
    click.echo(
        f"model credences in library {library_name!r}: n={check.n_statements} statements"
        + (f" ({', '.join(check.sources)})" if check.sources else "")
    )
    if not check.n_statements:
        click.echo("nothing to check: unpack or ask with the local model, or run `navigator llm credences`")
        return
    click.echo(
        f"flips, P(s) + P(not s) should be 1: n={check.n_flip_checked} checked, "
        f"{check.flips_within:.1%} within {FLIP_TOLERANCE}, mean |gap| {check.mean_abs_gap:.3f}; worst:"
    )
    for flip in check.flips:
        click.echo(
            visible(
                f"  gap {flip.gap:+.3f}  P(s) {flip.p:.3f}  P(not s) {flip.negation_p:.3f}  "
                f"{flip.text}  ({flip.node_uid})"
            )
        )
    click.echo(
        f"near-duplicates (TF-IDF cosine ≥ {check.threshold:g}), credences should be close: "
        f"{check.n_clusters} clusters, "
        f"n={check.n_pairs} pairs, mean difference {check.mean_difference:.3f}"
        + (f" ({check.clusters_cut} large clusters cut to their first members)" if check.clusters_cut else "")
        + ("; worst:" if check.near_duplicates else "")
    )
    for pair in check.near_duplicates:
        click.echo(visible(f"  difference {pair.difference:.3f}"))
        click.echo(visible(f"    P {pair.first_p:.3f}  {pair.first_text}  ({pair.first_uid})"))
        click.echo(visible(f"    P {pair.second_p:.3f}  {pair.second_text}  ({pair.second_uid})"))
