"""Metrics: how well the trainer imitates the labelers, how calibrated this labeler is, how far the
labelers agree (models.imitation.agreement), F(Z) per library, and the figures of the latest
`navigator study` — accuracy per task with its 95 % interval and the learning curve — drawn in the
terminal, where a plot reads better than a table.

Everything here can take seconds on a large library (F(Z) reads every credence and asks the
trainer for predictions), so it is computed in a thread worker on its own connection and the
screen shows "computing…" until it arrives. Text that comes from the workspace (library names,
notes) is rendered as rich.text.Text, never parsed as markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import get_current_worker

from kb.db import WorkspaceError, connect
from kb.libraries import Library
from models.imitation.agreement import AgreementReport, agreement
from models.imitation.score import LibraryScore, calibration, score_libraries
from models.imitation.study_records import StudyResults
from models.imitation.study_store import latest_study
from models.reliability import ReliabilityBin
from navigator.display import describe_error
from navigator.team_text import agreement_lines

BAR_WIDTH = 30


@dataclass(frozen=True)
class Metrics:
    trainer: Any  # models.imitation.trainer.TrainReport, or None when no model is trained yet
    trainer_note: str
    bins: list[ReliabilityBin]
    scores: list[LibraryScore]
    score_note: str
    agreement: AgreementReport | None = None
    study: tuple[StudyResults, str] | None = None  # the latest `navigator study` and when it ran


def interval_bar(value: float, low: float | None, high: float | None, width: int = BAR_WIDTH) -> Text:
    """█ up to the value on a 0–1 scale, with ├ and ┤ at the ends of its interval."""
    cells = ["█" if i < round(value * width) else "·" for i in range(width)]
    for end, mark in ((low, "├"), (high, "┤")):
        if end is not None:
            cells[min(width - 1, max(0, round(end * width) - (mark == "┤")))] = mark
    return Text("".join(cells), style="cyan")


def study_text(study: tuple[StudyResults, str] | None) -> Text:
    if study is None:
        return Text("No study yet: `navigator study --out DIR` writes one (and this screen draws it).", style="dim")
    results, when = study
    text = Text(f"Latest study ({when[:16].replace('T', ' ')} UTC, seed {results.provenance.seed}): ", style="bold")
    text.append("accuracy per task, 95 % interval ├─┤, n items\n")
    tasks = sorted({task for system in results.systems for task in system.per_task})
    shown = [s for s in results.systems if s.labeler is None] + [s for s in results.systems if s.labeler][:2]
    for task in tasks:
        text.append(f"  {task}\n", style="bold")
        for system in shown:
            metric = system.per_task.get(task)
            if metric is None or metric.accuracy.value is None:
                continue
            who = (
                system.kind if system.labeler is None else f"{'SIMULATED ' if system.simulated else ''}{system.labeler}"
            )
            acc = metric.accuracy
            text.append(f"    {who[:36]:<36} ")
            text.append(interval_bar(acc.value or 0.0, acc.low, acc.high))
            text.append(f" {acc.value:.2f} (n={acc.n})\n")
    for line in results.verdicts:
        if "above" in line or "below" in line:
            text.append(f"  {line}\n", style="green" if "above" in line else "red")
    if results.learning_curve:
        text.append("  learning curve (labels: CV cross-entropy)\n", style="bold")
        top = max(point.cross_entropy for point in results.learning_curve) or 1.0
        for point in results.learning_curve:
            text.append(f"    {point.labels:>6} ")
            text.append("█" * max(1, round(point.cross_entropy / top * BAR_WIDTH)), style="magenta")
            text.append(f" {point.cross_entropy:.3f}\n")
    return text


def trainer_text(report: Any, note: str) -> Text:
    if report is None:
        return Text(f"Imitation trainer: {note or 'no model trained for this library yet (navigator train)'}")
    text = Text(
        f"Imitation trainer, model v{report.model_version} (learner {report.learner}, data {report.data_hash[:10]}), ",
        style="bold",
    )
    text.append(
        f"{report.n_labels} labels on {report.n_items} items by {report.n_labelers} labelers, cross-validated:\n",
        style="",
    )
    text.append(f"  cross-entropy {report.cross_entropy:.4f} · top-choice agreement {report.top_choice_agreement:.1%}")
    text.append(f" · Brier {report.brier:.4f} · ECE {report.ece:.4f}   (n = {report.n_labels} labels)\n")
    curve = "  ".join(f"n={size}: {loss:.3f}" for size, loss in report.learning_curve)
    text.append(f"  learning curve (training labels: cross-entropy): {curve or 'none'}")
    return text


def calibration_text(bins: list[ReliabilityBin], labeler: str) -> Text:
    """One row per bin: the observed frequency as a bar, '│' where perfect calibration would put it."""
    total = sum(b.n for b in bins)
    text = Text(f"Calibration of {labeler} on train items (n = {total} stated probabilities)\n", style="bold")
    if not bins:
        text.append("  no predictions on train items with this library yet")
        return text
    for b in bins:
        filled = round(b.true * BAR_WIDTH)
        marker = min(BAR_WIDTH - 1, round(b.stated * BAR_WIDTH))
        bar = "".join("│" if i == marker else ("█" if i < filled else "·") for i in range(BAR_WIDTH))
        text.append(f"  {b.low:.1f}–{b.high:.1f}  n={b.n:<5} stated {b.stated:.2f}  right {b.true:.2f}  ")
        text.append(bar, style="green" if abs(b.true - b.stated) <= 0.1 else "yellow")
        text.append("\n")
    text.append("  █ how often right · │ the stated probability (on the line = calibrated)", style="dim")
    return text


def _cell(value: float | None) -> Text:
    if value is None:
        return Text("—")
    return Text("-inf" if value == -math.inf else f"{value:.3f}")


class MetricsScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "close", "Back"), Binding("r", "refresh_metrics", "Recompute")]

    def __init__(self, workspace: Path, library: Library, labeler: str) -> None:
        super().__init__()
        self.workspace = workspace
        self.library = library
        self.labeler = labeler
        self.metrics: Metrics | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="metrics-pane"):
            yield Static(Text("computing…"), id="metrics-trainer")
            yield Static(Text(""), id="metrics-calibration")
            yield Static(Text(""), id="metrics-study")
            yield Static(Text(""), id="metrics-agreement")
            yield Static(Text("F(Z) by library", style="bold"), classes="metrics-heading")
            table: DataTable[Text] = DataTable(id="metrics-scores", cursor_type="row", zebra_stripes=True)
            table.add_columns(
                "rank",
                "library",
                "F(Z)",
                "Σ log P(y|x,Z)",
                "items (labelled/imitated/missing)",
                "log P(Z)",
                "P(Z) interval",
                "credences (labelers)",
            )
            yield table
            yield Static(Text(""), id="metrics-notes")
        yield Footer()

    def on_mount(self) -> None:
        self.compute()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_refresh_metrics(self) -> None:
        self.query_one("#metrics-trainer", Static).update(Text("computing…"))
        self.compute()

    @work(thread=True, exclusive=True, group="metrics")
    def compute(self) -> None:
        conn = connect(self.workspace)
        try:
            report, trainer_note = None, ""
            try:
                from models.imitation.trainer import latest_report

                report = latest_report(conn, self.library)
            except ImportError:
                trainer_note = "the imitation trainer (models.imitation.trainer) is not installed"
            bins = calibration(conn, self.library, self.labeler)
            team = agreement(conn, self.library)
            study = latest_study(conn, self.library)
            try:
                scores, score_note = score_libraries(conn, self.workspace), ""
            except WorkspaceError as error:
                scores, score_note = [], f"F(Z) could not be computed: {describe_error(error)}"
        finally:
            conn.close()
        if not get_current_worker().is_cancelled:
            found = Metrics(report, trainer_note, bins, scores, score_note, team, study)
            self.app.call_from_thread(self.show, found)

    def show(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.query_one("#metrics-trainer", Static).update(trainer_text(metrics.trainer, metrics.trainer_note))
        self.query_one("#metrics-calibration", Static).update(calibration_text(metrics.bins, self.labeler))
        self.query_one("#metrics-study", Static).update(study_text(metrics.study))
        if metrics.agreement is not None:
            heading, *lines = agreement_lines(metrics.agreement)
            text = Text(heading + "\n", style="bold")
            text.append("\n".join(lines))
            self.query_one("#metrics-agreement", Static).update(text)
        table: DataTable[Text] = self.query_one("#metrics-scores", DataTable)
        table.clear()
        notes = Text()
        for entry in metrics.scores:
            part, prior = entry.likelihood, entry.prior
            table.add_row(
                Text(str(entry.rank) if entry.rank else "—"),
                Text(entry.library.name),
                _cell(entry.f),
                Text(f"{part.total:.3f} (n={part.n_items})"),
                Text(f"{part.n_labelled}/{part.n_imitated}/{part.n_missing} ({part.n_labels} labels)"),
                _cell(prior.point_log),
                Text(f"[{prior.lower:.3g}, {prior.upper:.3g}] {prior.method}"),
                Text(f"{prior.n_credences} on {prior.n_rated}/{prior.n_statements} ({prior.n_labelers})"),
            )
            for why in ([entry.reason] if entry.reason else []) + list(prior.notes):
                notes.append(f"{entry.library.name}: {why}\n")
        if metrics.score_note:
            notes.append(metrics.score_note + "\n")
        notes.append(f"log P(Z) point: {metrics.scores[0].prior.point_name}" if metrics.scores else "no libraries")
        self.query_one("#metrics-notes", Static).update(notes)
