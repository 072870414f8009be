"""The study written down: report.md, results.json and figures (PNG and SVG), from one StudyResults.

The report says only what the numbers support: every figure carries its n, intervals are 95 %
bootstrap intervals over items, and the verdicts come from the paired intervals (models/imitation/study.py).
Figures are drawn with matplotlib's non-interactive backend, with the SVG's ids salted and its date
left out, so the same results draw the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.imitation.study_records import Interval, StudyResults, System

FIGURES = ("accuracy_by_task", "reliability", "learning_curve", "scores")


def write_report(results: StudyResults, out: Path) -> list[Path]:
    """report.md, results.json and figures/ under `out` (made if missing); the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [_write(out / "results.json", results.model_dump_json(indent=2) + "\n")]
    written += draw_figures(results, out / "figures")
    written.append(_write(out / "report.md", report_markdown(results)))
    return written


def _write(path: Path, text: str) -> Path:
    """All at once: a reader never sees half a report."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staged.write_text(text, encoding="utf-8")
    os.replace(staged, path)
    return path


def cell(value: Interval, digits: int = 3) -> str:
    if value.value is None:
        return f"— (n = {value.n})"
    if value.low is None or value.high is None:
        return f"{value.value:.{digits}f} (n = {value.n})"
    return f"{value.value:.{digits}f} [{value.low:.{digits}f}, {value.high:.{digits}f}] (n = {value.n})"


def _who(system: System) -> str:
    if system.labeler is not None:
        return f"{'SIMULATED ' if system.simulated else ''}labeler {system.labeler}"
    return system.name


def report_markdown(results: StudyResults) -> str:
    lines = [
        f"# Study of library {results.library}",
        "",
        "Items: " + ", ".join(f"{split} {count}" for split, count in results.items.items()) + ". Labelers: "
        + (", ".join(f"{name} ({kind})" for name, kind in sorted(results.labelers.items())) or "none") + ".",
        "Every interval is a 95 % bootstrap interval over items "
        f"({results.provenance.bootstrap_resamples} resamples, seed {results.provenance.seed}); "
        "the models are scored on D*_prediction, the labelers on D*_validation (the items they labelled).",
        "",
        "## Verdicts",
        "",
        *[f"- {text}" for text in results.verdicts],
        "",
        "## Accuracy, log loss and Brier",
        "",
        "| who | on | accuracy | log loss | Brier |",
        "|---|---|---|---|---|",
        *[
            f"| {_who(s)} | D*_{s.split} | {cell(s.overall.accuracy)} | {cell(s.overall.log_loss)} | "
            f"{cell(s.overall.brier)} |"
            for s in results.systems
        ],
        "",
        "Accuracy per task:",
        "",
    ]
    tasks = sorted({task for system in results.systems for task in system.per_task})
    lines += ["| who | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for system in results.systems:
        lines.append(
            f"| {_who(system)} | "
            + " | ".join(cell(system.per_task[t].accuracy) if t in system.per_task else "—" for t in tasks)
            + " |"
        )
    lines += [
        "",
        "![accuracy by task](figures/accuracy_by_task.png)",
        "",
        "## The shortcut D allows",
        "",
        "The answer D gives most often for each task, taken as a rule: how often it is right on D and on D*.",
        "A task where it holds on D but fails on D* is one that D underdetermines.",
        "",
        "| task | D's commonest answer | right on D | right on D* |",
        "|---|---|---|---|",
        *[f"| {s.task} | {s.answer} | {cell(s.on_d)} | {cell(s.on_dstar)} |" for s in results.shortcuts],
        "",
        "## The IID guard",
        "",
        results.iid.message,
        "",
        "## Agreement among labelers",
        "",
        "| task | Krippendorff's alpha | items | labels | labelers | mean JS distance | note |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {a.task} | {'—' if a.alpha is None else f'{a.alpha:.3f}'} | {a.n_items} | {a.n_labels} | "
            f"{a.n_labelers} | {'—' if a.js_distance is None else f'{a.js_distance:.3f}'} | {a.note} |"
            for a in results.agreement
        ],
        "",
        "## Calibration",
        "",
        "| who | on | items | probabilities | expected calibration error |",
        "|---|---|---|---|---|",
        *[
            f"| {'SIMULATED ' if c.simulated else ''}{c.who} | {c.items} | {c.n_items} | {c.n_probabilities} | "
            f"{'—' if c.ece is None else f'{c.ece:.3f}'} |"
            for c in results.calibration
        ],
        "",
        "![reliability diagrams](figures/reliability.png)",
        "",
        "## Learning curve",
        "",
        "Cross-validated cross-entropy of the imitation model against the labelers, by labels used:",
        "",
        "| labels | cross-entropy |",
        "|---|---|",
        *[f"| {p.labels} | {p.cross_entropy:.3f} |" for p in results.learning_curve],
        "",
        "![learning curve](figures/learning_curve.png)",
        "",
        "## F(Z) per library",
        "",
        "| library | F(Z) | log-likelihood | log P(Z) | D items | rank | note |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {s.library} | {_num(s.f)} | {_num(s.log_likelihood)} | {_num(s.log_prior)} | {s.n_items} | "
            f"{s.rank or '—'} | {s.note} |"
            for s in results.scores
        ],
        "",
        "![F(Z) per library](figures/scores.png)",
        "",
        "## Independent judgements",
        "",
        f"{results.independence.after_seeing_another} of {results.independence.labels} labels were given after their "
        f"author could see another labeler's answer to the item; {results.independence.adjudications} are a lead's "
        f"adjudications. Leads: {', '.join(results.independence.leads) or 'none'}. {results.independence.note}.",
        "",
        "## Provenance",
        "",
        f"Seed {results.provenance.seed}; learner {results.provenance.learner}; answer key "
        f"{results.provenance.answers}.",
        "",
        *[f"- {name} {version}" for name, version in results.provenance.packages.items()],
        *[f"- sha256 of the {what}: `{digest}`" for what, digest in results.provenance.hashes.items()],
    ]
    if results.provenance.protocol is not None:
        lines += ["", "From the protocol:", "", "```json", _json(results.provenance.protocol), "```"]
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _json(value: object) -> str:
    import json

    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


# -- figures ----------------------------------------------------------------------------------------------


def draw_figures(results: StudyResults, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "z-navigator", "font.size": 9})
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (
        ("accuracy_by_task", _accuracy_by_task),
        ("reliability", _reliability),
        ("learning_curve", _learning_curve),
        ("scores", _scores),
    ):
        figure = draw(plt, results)
        for suffix, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
            path = folder / f"{name}.{suffix}"
            staged = path.with_name(f".{path.name}.tmp")
            figure.savefig(staged, format=suffix, metadata=metadata, bbox_inches="tight", dpi=110)
            os.replace(staged, path)
            written.append(path)
        plt.close(figure)
    return written


def _accuracy_by_task(plt, results: StudyResults):  # type: ignore[no-untyped-def]
    tasks = sorted({task for system in results.systems for task in system.per_task})
    shown = [s for s in results.systems if s.labeler is None] + [s for s in results.systems if s.labeler][:3]
    figure, axes = plt.subplots(figsize=(max(6, 1.4 * len(tasks) + 2), 3.6))
    width = 0.8 / max(1, len(shown))
    for index, system in enumerate(shown):
        values, lows, highs = [], [], []
        for task in tasks:
            metric = system.per_task.get(task)
            value = metric.accuracy.value if metric and metric.accuracy.value is not None else float("nan")
            low = metric.accuracy.low if metric and metric.accuracy.low is not None else value
            high = metric.accuracy.high if metric and metric.accuracy.high is not None else value
            values.append(value)
            lows.append(value - low)
            highs.append(high - value)
        positions = [t + (index - (len(shown) - 1) / 2) * width for t in range(len(tasks))]
        name = system.kind if system.labeler is None else _who(system)
        axes.bar(positions, values, width, yerr=[lows, highs], capsize=2, label=_short(name))
    axes.set_xticks(range(len(tasks)), tasks)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("accuracy (95 % interval)")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.set_title("Accuracy per task: models on D*_prediction, labelers on D*_validation")
    return figure


def _reliability(plt, results: StudyResults):  # type: ignore[no-untyped-def]
    tables = results.calibration[:6] or []
    figure, grid = plt.subplots(1, max(1, len(tables)), figsize=(3 * max(1, len(tables)), 3), squeeze=False)
    for axes, table in zip(grid[0], tables, strict=False):
        axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        axes.plot([b.stated for b in table.bins], [b.observed for b in table.bins], marker="o")
        for b in table.bins:
            axes.annotate(str(b.n), (b.stated, b.observed), fontsize=6, xytext=(2, 2), textcoords="offset points")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_title(_short(("SIMULATED " if table.simulated else "") + table.who), fontsize=8)
        axes.set_xlabel(f"stated (n = {table.n_probabilities})")
    grid[0][0].set_ylabel("share that came true")
    return figure


def _learning_curve(plt, results: StudyResults):  # type: ignore[no-untyped-def]
    figure, axes = plt.subplots(figsize=(5, 3))
    points = results.learning_curve
    axes.plot([p.labels for p in points], [p.cross_entropy for p in points], marker="o")
    axes.set_xlabel("labels used to fit")
    axes.set_ylabel("CV cross-entropy")
    axes.set_title("Learning curve of the imitation model")
    return figure


def _scores(plt, results: StudyResults):  # type: ignore[no-untyped-def]
    figure, axes = plt.subplots(figsize=(5, 3))
    scored = [s for s in results.scores if s.f is not None]
    axes.bar([s.library for s in scored], [s.f for s in scored])
    axes.set_ylabel("F(Z) = log P(D | Z) + log P(Z)")
    if not scored:
        axes.text(0.5, 0.5, "no library has an F(Z) yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_title("F(Z) per library")
    return figure


def _short(text: str, limit: int = 42) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
