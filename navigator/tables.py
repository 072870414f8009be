"""Text tables that a command and a bench both print, kept out of the command modules so a bench
can show the same table without importing a CLI command."""

from __future__ import annotations

from models.imitation.evaluation import EvaluationReport


def evaluation_table(report: EvaluationReport) -> list[str]:
    """The comparison as text lines: `navigator evaluate` prints it, and so does bench/experiment.py."""
    width = max(len(s.name) for s in report.scores)
    lines = [f"{'':{width}}  {'on':<11} {'n':>4}  {'accuracy':>8}  {'log loss':>8}"]
    for s in report.scores:
        lines.append(f"{s.name:{width}}  {'D*_' + s.split:<11} {s.n:>4}  {s.accuracy:8.3f}  {s.log_loss:8.3f}")
    lines.append("")
    tasks = sorted({task for s in report.scores for task in s.per_task})
    lines.append("accuracy by task (n):")
    for s in report.scores:
        cells = ", ".join(
            f"{task} {s.per_task[task][1]:.2f} ({s.per_task[task][0]})" for task in tasks if task in s.per_task
        )
        lines.append(f"  {s.name}: {cells}")
    return lines
