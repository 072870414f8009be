"""The whole examination `navigator doctor` prints: the workspace's checks (kb.doctor), then the model's
and the installed packages'.

The model is checked the way it will be used: a short generation in its own process, with a
timeout (models.llm.model_process.probe_model), so a model that loads but crashes at its first
decode — llama.cpp's AMX kernels on some hosts — is found here rather than in a labeler's app.
"""

from __future__ import annotations

from functools import partial
from importlib import metadata
from pathlib import Path

from kb.doctor import OK, WARNING, Finding
from kb.doctor import examine as examine_workspace
from kb.progress import Progress
from models.llm.model import LoadOptions
from models.llm.model_process import probe_model

DISTRIBUTION = "z-navigator"
PROBE_SECONDS = 60.0


def check_model(model: Path | None, options: LoadOptions | None = None, timeout: float = PROBE_SECONDS) -> Finding:
    found = probe_model(model, options, timeout=timeout)
    if not found.ok:
        return Finding("model", WARNING, f"unpack and ask cannot run: {found.reason}", found.fix)
    assert found.identity is not None
    runtime = found.identity.runtime
    repack = "on" if runtime.get("repack") else "off"
    return Finding(
        "model",
        OK,
        f"the model works here: {found.identity.path} gave {found.tokens} tokens in its own process "
        f"({found.tokens_per_second:.1f} tokens/s); weight repacking {repack} ({runtime.get('repack_asked')}: "
        f"{runtime.get('repack_reason')})",
    )


def check_packages() -> Finding:
    """The native and numeric stack this release pins (the versions its tests ran on) against what is installed."""
    from packaging.requirements import Requirement

    try:
        declared = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return Finding("packages", WARNING, f"{DISTRIBUTION} is not installed", "install it with `pip install -e .`")
    pinned = [Requirement(text) for text in declared if "==" in text and "extra ==" not in text]
    outside = []
    for requirement in pinned:
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            outside.append(f"{requirement.name} is missing (tested: {requirement.specifier})")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            outside.append(f"{requirement.name} {installed} is installed (tested: {requirement.specifier})")
    if outside:
        return Finding(
            "packages",
            WARNING,
            "outside the versions this release was tested with: " + "; ".join(outside),
            f"reinstall the tested versions with `python3 -m pip install -e .` in {DISTRIBUTION}'s folder",
        )
    tested = ", ".join(f"{r.name} {r.specifier}".replace(" ==", " ") for r in pinned)
    return Finding("packages", OK, f"the versions this release was tested with: {tested}")


def examine_with_model(
    workspace: Path,
    *,
    model: Path | None = None,
    options: LoadOptions | None = None,
    quick: bool = False,
    progress: Progress | None = None,
) -> list[Finding]:
    """Every finding, in the order a user should act on them (see kb.doctor.examine)."""
    return examine_workspace(
        workspace, quick=quick, then=[check_packages, partial(check_model, model, options)], progress=progress
    )
