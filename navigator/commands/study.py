"""`navigator study` and `navigator study run PROTOCOL`: the analysis at the end of a study, and a study from a file.

Both print the verdicts (or the results as JSON) and, with --out DIR, write report.md, results.json
and figures/ there (models/imitation/study_report.py). The numbers are computed in
models/imitation/study.py; a protocol is read and run by models/imitation/protocol.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kb.item_import import answer_key_path
from models.bootstrap import RESAMPLES
from models.imitation.learners import DEFAULT_LEARNER, LEARNERS
from models.imitation.study_records import StudyResults
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


def _show(results: StudyResults, out: Path | None, as_json: bool) -> None:
    from models.imitation.study_report import write_report

    written = write_report(results, out) if out is not None else []
    if as_json:
        emit_json(results)
        return
    click.echo(
        visible(f"study of library {results.library}: " + ", ".join(f"{k} {v}" for k, v in results.items.items()))
    )
    for line in results.verdicts:
        click.echo(visible(f"  {line}"))
    click.echo(visible(results.iid.message))
    independence = results.independence
    click.echo(f"{independence.after_seeing_another} of {independence.labels} labels given after seeing another's")
    if written:
        click.echo(f"wrote {len(written)} files to {out} (report.md, results.json, figures/)")


@click.group(invoke_without_command=True)
@workspace_option
@library_option
@click.option(
    "--answers",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The D* answer key (default: WORKSPACE.answers.jsonl, where `items import` and the demo write it).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the model, the baselines and the bootstrap.")
@click.option("--learner", type=click.Choice(sorted(LEARNERS)), default=DEFAULT_LEARNER, show_default=True)
@click.option("--resamples", default=RESAMPLES, show_default=True, help="Bootstrap resamples per interval.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Write report.md, results.json, figures/."
)
@json_option
@click.pass_context
def study(
    ctx: click.Context,
    workspace: Path,
    library_name: str | None,
    answers: Path | None,
    seed: int,
    learner: str,
    resamples: int,
    out: Path | None,
    as_json: bool,
) -> None:
    """The whole analysis of a study, every figure with its n and 95 % interval: imitation vs naive baselines.

    Fits the imitation model (saved as the library's next version), scores it and the naive baselines on
    D*_prediction and each labeler on D*_validation — accuracy, log loss, Brier, per task and overall —
    and says only what the intervals support. Deterministic for a given --seed.
    """
    if ctx.invoked_subcommand is not None:
        return
    from models.imitation.study import run_study

    conn = open_workspace(workspace)
    library = pick_library(conn, library_name)
    key = answers or answer_key_path(workspace)
    if not key.exists():
        raise Failure(f"no answer key at {key}; pass --answers (the file `items import --answers` wrote)")
    results: StudyResults = guard(
        lambda: run_study(conn, workspace, library, key, seed=seed, learner=learner, resamples=resamples)
    )
    _show(results, out, as_json)


@study.command(name="run")
@click.argument("protocol", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for the study.")
@json_option
def run(protocol: Path, out: Path, as_json: bool) -> None:
    """Reproduce a study from a PROTOCOL file, from an empty workspace (OUT/workspace.db) to the report in OUT."""
    from models.imitation.protocol import load_protocol, run_protocol

    found = guard(lambda: load_protocol(protocol))
    out.mkdir(parents=True, exist_ok=True)

    def build() -> Any:
        return run_protocol(found, protocol, out / "workspace.db")

    results, _ = guard(build)
    _show(results, out, as_json)
