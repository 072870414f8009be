"""`navigator prior`: what credences imply about P(Z), as intervals, with every assumption named.

Two sources: a plain JSONL file (`--credences`, one `{"statements": [...], "p": ...}` a line), for
scripts and for checking a set of numbers before anyone labels; or the workspace's credence labels,
one report per labeler, because one person's credences can be incoherent while two people merely
disagree. The engine is chosen in models.prior.engine; this module only reads the input, asks
models.prior.report and prints.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from kb.db import connect
from kb.tree import subtree_size
from models.prior.bounds import Estimate
from models.prior.exact import Credence
from models.prior.report import PriorReport, load_workspace_credences, prior_report, read_credences
from models.prior.similarity import DEFAULT_THRESHOLD
from navigator.commands.support import (
    Failure,
    emit_json,
    guard,
    json_option,
    library_option,
    pick_library,
    workspace_option,
)


def _credence_json(credence: Credence) -> dict[str, Any]:
    return {"statements": sorted(credence.statements), "p": round(credence.p, 12), "source": credence.label}


def _estimate_json(estimate: Estimate) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "name": estimate.name,
        "kind": estimate.kind,
        "assumption": estimate.assumption,
        "lower": estimate.lower,
        "upper": estimate.upper,
    }
    if estimate.kind == "point":
        shown["value"] = estimate.lower
        shown["log10"] = estimate.log10
    if estimate.note:
        shown["note"] = estimate.note
    return shown


def _report_json(report: PriorReport, credences: list[Credence]) -> dict[str, Any]:
    """A distance that could not be computed (NaN) or a log10 of 0 (-inf) prints as null (emit_json's rule)."""
    mentioned = {s for c in credences for s in c.statements}
    coherence = report.coherence
    shown: dict[str, Any] = {
        "query": sorted(report.query),
        "unconstrained": sorted(report.query - mentioned),
        "credences": len(credences),
        "method": report.method,
        "coherent": coherence.coherent,
        "lower": report.interval.lower,
        "upper": report.interval.upper,
        "estimates": [_estimate_json(estimate) for estimate in report.estimates],
    }
    if not coherence.coherent:
        shown["distance"] = coherence.distance
        shown["conflict"] = [_credence_json(c) for c in coherence.conflict]
        shown["conflict_is_smallest"] = coherence.conflict_is_smallest
        shown["nearest"] = [_credence_json(c) for c in coherence.nearest] if coherence.nearest else None
    return shown


def _p_text(value: float) -> str:
    return f"{value:.4f}"


def _print_report(report: PriorReport, credences: list[Credence], indent: str = "") -> None:
    coherence = report.coherence
    click.echo(
        f"{indent}P(all of {len(report.query)} statements true) from {len(credences)} credences: "
        f"[{_p_text(report.interval.lower)}, {_p_text(report.interval.upper)}] ({report.method})"
    )
    if coherence.coherent:
        click.echo(f"{indent}coherent: some distribution matches every credence")
    else:
        change = "" if math.isnan(coherence.distance) else f"; least total change to fix: {coherence.distance:.4g}"
        click.echo(f"{indent}INCOHERENT: no distribution matches these credences{change}")
        kind = "smallest conflict" if coherence.conflict_is_smallest else "conflict (no subset conflicts)"
        click.echo(f"{indent}  {kind}:")
        for credence in coherence.conflict:
            click.echo(f"{indent}    {credence.describe()}")
        changed = [
            (old, new) for old, new in zip(credences, coherence.nearest, strict=False) if abs(old.p - new.p) > 1e-9
        ]
        if changed:
            click.echo(f"{indent}  nearest coherent set changes:")
            for old, new in changed:
                click.echo(f"{indent}    {old.describe()} -> {new.p:.4g}")
    for estimate in report.estimates:
        notes = [estimate.note] if estimate.note else []
        if estimate.kind == "point":
            exponent = estimate.log10 if estimate.log10 is not None else -math.inf
            shown = _p_text(estimate.lower) if estimate.lower > 0 or exponent == -math.inf else f"10^{exponent:.1f}"
            if not report.interval.contains(estimate.lower):
                notes.append("outside the assumption-free interval: the credences contradict this assumption")
        else:
            shown = f"[{_p_text(estimate.lower)}, {_p_text(estimate.upper)}]"
        click.echo(f"{indent}  {estimate.name:<24} {shown:<18} assumes: {estimate.assumption}")
        for note in notes:
            click.echo(f"{indent}  {'':<24} {'':<18} {note}")


def _query(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise Failure("--query names no statements; give them comma-separated, e.g. --query A,B")
    return names


def _from_file(path: Path, query: list[str] | None, threshold: float, as_json: bool) -> None:
    credences: list[Credence] = guard(lambda: read_credences(path))
    report = prior_report(credences, query, threshold=threshold)
    if as_json:
        emit_json({"source": path, **_report_json(report, credences)})
        return
    _print_report(report, credences)


def _from_workspace(
    workspace: Path,
    library_name: str | None,
    labeler: str | None,
    query: list[str] | None,
    threshold: float,
    as_json: bool,
) -> None:
    conn = guard(lambda: connect(workspace))
    library = pick_library(conn, library_name)
    stored = guard(lambda: load_workspace_credences(conn, library.id, labeler))
    size = subtree_size(conn, library.root_id) - 1
    if not stored:
        who = f" by {labeler}" if labeler else ""
        raise Failure(f"no credences{who} in library {library.name!r}; give some in the app's credence mode")
    results = []
    for entry in stored:
        report = (
            prior_report(entry.credences, query, texts=entry.texts, threshold=threshold) if entry.credences else None
        )
        results.append((entry, report))
    if as_json:
        labelers = []
        for entry, report in results:
            shown: dict[str, Any] = {"labeler": entry.labeler, "library_credence": entry.library_credence}
            if report is not None:
                shown.update(_report_json(report, entry.credences))
                shown["p_z_upper"] = report.interval.upper
            labelers.append(shown)
        payload = {"library": library.name, "library_nodes": size, "labelers": labelers}
        emit_json(payload)
        return
    for entry, report in results:
        click.echo(f"labeler {entry.labeler} — library {library.name!r} ({size:,} nodes)")
        if report is not None:
            _print_report(report, entry.credences, indent="  ")
            click.echo(
                f"  P(Z) ≤ {_p_text(report.interval.upper)}: Z includes the {len(report.query)} rated statements; "
                f"the other {max(size - len(report.query), 0):,} nodes have no credences, so P(Z)'s lower bound is 0"
            )
        if entry.library_credence is not None:
            upper = report.interval.upper if report is not None else 1.0
            verdict = "within" if entry.library_credence <= upper + 1e-9 else "ABOVE (incoherent with the pieces)"
            click.echo(f"  direct credence on the whole library: {entry.library_credence:.4g}, {verdict} that bound")


@click.command()
@workspace_option
@click.option(
    "--credences",
    "credences_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='A JSONL file, one {"statements": [...], "p": P} a line, instead of the workspace.',
)
@click.option("--query", help="Comma-separated statements whose conjunction to bound (default: all mentioned).")
@library_option
@click.option("--labeler", help="Only this labeler's credences (default: one report per labeler).")
@click.option(
    "--threshold",
    default=DEFAULT_THRESHOLD,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="TF-IDF cosine at which two statement texts count as one claim (clustered estimate).",
)
@click.option(
    "--model-check",
    is_flag=True,
    help="Check the model's own credences instead: flips (P(s) + P(not s) ≈ 1) and near-duplicates.",
)
@click.option("--limit", default=10, show_default=True, help="With --model-check: how many worst cases to list.")
@json_option
def prior(
    workspace: Path,
    credences_path: Path | None,
    query: str | None,
    library_name: str | None,
    labeler: str | None,
    threshold: float,
    model_check: bool,
    limit: int,
    as_json: bool,
) -> None:
    """What credences imply about P(Z): exact interval, bounds, point estimates, coherence.

    Credences on a few statements at a time bound P(all true) without fixing it; every estimate
    is printed with the assumption it needs. Incoherent credences are named with the nearest fix.
    With --model-check, the model's own credences on generated statements are checked instead.
    """
    if model_check:
        if credences_path is not None or labeler or query:
            raise Failure(
                "--model-check reads the model's credences in the workspace; drop --credences/--labeler/--query"
            )
        _model_check(workspace, library_name, threshold, limit, as_json)
        return
    names = _query(query)
    if credences_path is not None:
        if library_name or labeler:
            raise Failure("--library and --labeler read the workspace; they do not apply to --credences FILE")
        _from_file(credences_path, names, threshold, as_json)
    else:
        _from_workspace(workspace, library_name, labeler, names, threshold, as_json)


def _model_check(workspace: Path, library_name: str | None, threshold: float, limit: int, as_json: bool) -> None:
    from models.llm.model_credences import model_check
    from navigator.commands.model_credences import model_check_json, print_model_check

    conn = guard(lambda: connect(workspace))
    library = pick_library(conn, library_name)
    check = model_check(conn, library, limit=max(0, limit), threshold=threshold)
    if as_json:
        emit_json({"library": library.name, **model_check_json(check)})
        return
    print_model_check(check, library.name)
