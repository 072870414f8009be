"""`navigator doctor`: print what kb.doctor and models.llm.model_check find, each with what to do.

The exit status is non-zero when any finding needs action, so scripts and CI can call it.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from kb.doctor import ERROR, OK, WARNING
from models.llm.model import LoadOptions
from models.llm.model_check import examine_with_model
from models.llm.model_file import MODEL_ENV
from models.llm.repack import RepackMode
from navigator.commands.llm_support import repack_option
from navigator.commands.support import emit_json, json_option, workspace_option
from navigator.progress import TerminalProgress

MARKS = {OK: "ok", WARNING: "!!", ERROR: "XX"}


@click.command()
@workspace_option
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    envvar=MODEL_ENV,
    help=f"The GGUF model to check (env: {MODEL_ENV}; default: the bundled one).",
)
@repack_option
@click.option(
    "--quick",
    is_flag=True,
    help="PRAGMA quick_check instead of the full integrity_check; past 512 MiB, of every table but nodes.",
)
@json_option
def doctor(workspace: Path, model: Path | None, repack: RepackMode | None, quick: bool, as_json: bool) -> None:
    """Check a workspace (integrity, schema, search indexes, orphans), the installed packages and the model.

    The model is run for a few tokens in its own process, as unpack runs it. Read-only: nothing
    is upgraded, repaired or rebuilt, and Ctrl+C stops it at once. Exits 1 when a finding needs action.
    """
    with TerminalProgress(enabled=not as_json) as progress:
        findings = examine_with_model(
            workspace, model=model, options=LoadOptions(repack=repack), quick=quick, progress=progress
        )
    needs_action = [finding for finding in findings if finding.needs_action]
    if as_json:
        emit_json(
            {
                "workspace": str(workspace),
                "ok": not needs_action,
                "findings": [asdict(finding) | {"needs_action": finding.needs_action} for finding in findings],
            }
        )
    else:
        click.echo(f"workspace {workspace}")
        for finding in findings:
            click.echo(f"  {MARKS[finding.status]} {finding.check}: {finding.message}")
            if finding.fix:
                click.echo(f"     fix: {finding.fix}")
        click.echo(f"{len(needs_action)} findings need action" if needs_action else "all checks passed")
    if needs_action:
        click.get_current_context().exit(1)
