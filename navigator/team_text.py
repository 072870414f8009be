"""Agreement and disagreements as plain text lines and JSON, shared by the command line and the screens.

Labeler names, notes and node titles come from the workspace: callers print these lines as
plain text (click.echo, rich.text.Text), never as markup, after `visible`.
"""

from __future__ import annotations

from typing import Any

from kb.labels import Prediction, is_simulated
from models.imitation.agreement import Agreement, AgreementReport, Disagreement, LabelerScore
from navigator.display import visible


def number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def labeler_name(name: str, source: str) -> str:
    """Simulated labelers are always named as such."""
    return f"{name} (SIMULATED)" if is_simulated(source) else name


def agreement_lines(report: AgreementReport) -> list[str]:
    lines = [
        f"Agreement in library {report.library!r} on {' + '.join(report.splits)} items"
        f" ({report.n_adjudications} adjudications left out)",
        f"  {'task':<16} {'items':>5} {'labels':>6}  {'alpha':>6} {'(n)':>5}  {'JS dist':>7} {'pairs':>6}",
    ]
    for row in [*report.tasks, report.overall]:
        lines.append(_agreement_row(row))
    if report.pairs:
        lines.append("  pairs of labelers (items shared: mean JS distance, same top choice):")
        for pair in report.pairs:
            lines.append(
                visible(
                    f"    {pair.first} × {pair.second}: {pair.n_items} items, JS {pair.js_distance:.3f},"
                    f" same top choice {pair.same_top_choice:.0%}"
                )
            )
    lines.append("Labelers against gold on train items, best log score first:")
    lines.append(
        f"  {'rank':>4}  {'labeler':<28} {'n':>5}  {'log score':>9}  {'accuracy':>8}  {'Brier':>6}"
        f"  {'ECE':>6} {'(n)':>6}"
    )
    for score in report.labelers:
        lines.append(_labeler_row(score))
    return lines


def _agreement_row(row: Agreement) -> str:
    text = (
        f"  {visible(row.task)[:16]:<16} {row.n_items:>5} {row.n_labels:>6}  {number(row.alpha):>6}"
        f" {row.alpha_items:>5}  {number(row.js_distance):>7} {row.js_pairs:>6}"
    )
    if row.no_top_choice:
        text += f"  ({row.no_top_choice} tied labels have no top choice)"
    if row.note:
        text += f"  ({row.note})"
    return text


def _labeler_row(score: LabelerScore) -> str:
    rank = str(score.rank) if score.rank else "—"
    name = visible(labeler_name(score.labeler, score.source))
    if score.n_train == 0:
        return f"  {rank:>4}  {name:<28} {0:>5}  no labels on train items ({score.n_labels} labels elsewhere)"
    return (
        f"  {rank:>4}  {name:<28} {score.n_train:>5}  {number(score.log_score):>9}  {number(score.accuracy):>8}"
        f"  {number(score.brier):>6}  {number(score.calibration_error):>6} {score.n_probabilities:>6}"
    )


def _agreement_json(row: Agreement) -> dict[str, Any]:
    return {
        "task": row.task,
        "n_items": row.n_items,
        "n_labels": row.n_labels,
        "n_labelers": row.n_labelers,
        "alpha": row.alpha,
        "alpha_n_items": row.alpha_items,
        "labels_without_top_choice": row.no_top_choice,
        "js_distance": row.js_distance,
        "js_n_pairs": row.js_pairs,
        "note": row.note,
    }


def agreement_json(report: AgreementReport) -> dict[str, Any]:
    return {
        "library": report.library,
        "splits": list(report.splits),
        "adjudications_left_out": report.n_adjudications,
        "tasks": {row.task: _agreement_json(row) for row in report.tasks},
        "overall": _agreement_json(report.overall),
        "pairs": [
            {
                "labelers": [pair.first, pair.second],
                "n_items": pair.n_items,
                "js_distance": pair.js_distance,
                "same_top_choice": pair.same_top_choice,
            }
            for pair in report.pairs
        ],
        "labelers": [
            {
                "labeler": score.labeler,
                "source": score.source,
                "simulated": score.simulated,
                "rank_by_log_score": score.rank,
                "n_labels": score.n_labels,
                "n_train": score.n_train,
                "log_score": score.log_score,
                "accuracy": score.accuracy,
                "brier": score.brier,
                "calibration_error": score.calibration_error,
                "calibration_n_probabilities": score.n_probabilities,
            }
            for score in report.labelers
        ],
    }


def probabilities(label: Prediction, options: tuple[str, ...]) -> str:
    return ", ".join(f"{option} {label.probs.get(option, 0.0):.2f}" for option in options)


def disagreement_lines(found: list[Disagreement], node_path: Any) -> list[str]:
    """`node_path(uid)` gives a cited node's path for the reader (or the uid when it is gone)."""
    lines: list[str] = []
    for rank, entry in enumerate(found, start=1):
        item = entry.item
        lines.append(visible(f"{rank}. {item.uid} [{item.split} · {item.task}] JS {entry.js_distance:.3f}: {item.x}"))
        for label in entry.labels:
            top = entry.top_choices[label.labeler] or "tied"
            lines.append(
                visible(
                    f"   {labeler_name(label.labeler, label.source)}: {probabilities(label, item.options)}  → {top}"
                )
            )
            for uid in label.cited:
                lines.append(visible(f"      cites {node_path(uid)}  ({uid})"))
            if label.note:
                lines.append(visible(f"      note: {label.note}"))
        if entry.adjudication is not None:
            ruling = entry.adjudication
            lines.append(visible(f"   ADJUDICATED by {ruling.labeler}: {probabilities(ruling, item.options)}"))
    return lines


def disagreement_json(entry: Disagreement, node_path: Any) -> dict[str, Any]:
    def label_json(label: Prediction) -> dict[str, Any]:
        return {
            "id": label.uid,
            "labeler": label.labeler,
            "source": label.source,
            "probs": label.probs,
            "top_choice": entry.top_choices.get(label.labeler),
            "cited": [{"id": uid, "path": node_path(uid)} for uid in label.cited],
            "note": label.note,
            "created_at": label.created_at,
        }

    ruling = entry.adjudication
    return {
        "item": entry.item.uid,
        "split": entry.item.split,
        "task": entry.item.task,
        "x": entry.item.x,
        "options": list(entry.item.options),
        "js_distance": entry.js_distance,
        "top_choice_split": entry.split_top_choice,
        "labels": [label_json(label) for label in entry.labels],
        "adjudication": None
        if ruling is None
        else {"id": ruling.uid, "labeler": ruling.labeler, "probs": ruling.probs, "created_at": ruling.created_at},
    }
