"""The whole examination `navigator doctor` prints: the workspace's checks (kb.doctor), then the model's."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from kb.doctor import OK, WARNING, Finding
from kb.doctor import examine as examine_workspace
from models.llm.model_file import check_available


def check_model(model: Path | None) -> Finding:
    found = check_available(model)
    if found.ok:
        return Finding("model", OK, f"model available at {found.path}")
    return Finding("model", WARNING, f"unpack and ask cannot run: {found.reason}", found.fix)


def examine(workspace: Path, *, model: Path | None = None, quick: bool = False) -> list[Finding]:
    """Every finding, in the order a user should act on them (see kb.doctor.examine)."""
    return examine_workspace(workspace, quick=quick, then=[partial(check_model, model)])
