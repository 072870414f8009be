"""Fitted imitation models, stored in `trained_models` as bytes that cannot run code when read.

A workspace is a file people send each other, and `trained_models.model` used to hold a
pickle: opening someone's workspace and predicting ran whatever that pickle said. Now a
model is a versioned container of data only:

    MAGIC, then a NumPy .npz archive (a zip of .npy arrays) holding
      manifest — UTF-8 JSON: format version, learner, reading plan, each task's parameters
      t{i}.NAME — numeric arrays (coefficients, intercepts, classes, idf weights)

Reading uses `np.load(..., allow_pickle=False)`, which refuses object arrays, validates the
manifest with pydantic, rebuilds each task from the named learner's fixed parameters plus
these numbers (models.imitation.learners.restore_task), and checks sizes before anything is
decompressed. A blob that is not in this format is never unpickled: an old pickled model
gets "retrain with `navigator train`", anything else "damaged".

This module is the one reader and writer of the `trained_models` table. It imports the
learners only to rebuild a model, so reading a model's stored predictions (the labelling
queue does, models.imitation.item_order) does not load scikit-learn.
"""

from __future__ import annotations

import io
import json
import sqlite3
import uuid
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from kb.db import transaction
from models.imitation.errors import TrainerError
from models.imitation.reading_plan import ReadingPlan, plan_as_json, plan_from_json

if TYPE_CHECKING:
    from models.imitation.learners import TaskModel

MODEL_KIND = "prediction"
MAGIC = b"z-navigator model\n"
FORMAT_VERSION = 1
MAX_UNPACKED_BYTES = 1 << 30
_MANIFEST = "manifest"
# Pickle streams start with PROTO (0x80) for protocols 2+, or an opcode such as '(' or ']' for 0 and 1.
_PICKLE_STARTS = (b"\x80", b"(", b"]", b"}", b"c")


class ModelFormatError(TrainerError):
    """A stored model that will not be loaded; the message says what to do."""


@dataclass
class FittedModel:
    """What `train` stores: one fitted learner per task key, and how Z was read for it."""

    library_uid: str
    retrieved_nodes: int
    features_version: int
    tasks: dict[str, TaskModel]
    learner: str = "bow"
    plan: ReadingPlan = field(default_factory=dict)
    validation_predictions: dict[str, list[float]] = field(default_factory=dict)


class _TaskEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: dict[str, Any]
    arrays: list[str]


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int
    learner: str
    library_uid: str
    retrieved_nodes: int
    features_version: int
    plan: dict[str, Any]
    tasks: dict[str, _TaskEntry]
    validation_predictions: dict[str, list[float]] = {}


def dump_model(fitted: FittedModel) -> bytes:
    from models.imitation.learners import task_state

    arrays: dict[str, NDArray[Any]] = {}
    entries: dict[str, _TaskEntry] = {}
    for index, (key, model) in enumerate(sorted(fitted.tasks.items())):
        state, task_arrays = task_state(model)
        names = []
        for name, value in sorted(task_arrays.items()):
            stored = f"t{index}.{name}"
            arrays[stored] = np.ascontiguousarray(value)
            names.append(stored)
        entries[key] = _TaskEntry(state=state, arrays=names)
    manifest = _Manifest(
        format_version=FORMAT_VERSION,
        learner=fitted.learner,
        library_uid=fitted.library_uid,
        retrieved_nodes=fitted.retrieved_nodes,
        features_version=fitted.features_version,
        plan=plan_as_json(fitted.plan),
        tasks=entries,
        validation_predictions=fitted.validation_predictions,
    )
    text = json.dumps(manifest.model_dump(), ensure_ascii=False, sort_keys=True).encode("utf-8")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{_MANIFEST: np.frombuffer(text, dtype=np.uint8)}, **arrays)  # type: ignore[arg-type]
    return MAGIC + buffer.getvalue()


def _refuse(blob: bytes, library: str) -> None:
    if blob.startswith(MAGIC):
        return
    if blob[:1] in _PICKLE_STARTS:
        raise ModelFormatError(
            f"the saved model for library {library!r} is in the old pickle format, which could run code when "
            "loaded, so it was not loaded: retrain with `navigator train`"
        )
    raise ModelFormatError(
        f"the saved model for library {library!r} is not in a format this version reads; retrain with `navigator train`"
    )


def _archive(blob: bytes, library: str) -> Any:
    payload = io.BytesIO(blob[len(MAGIC) :])
    try:
        with zipfile.ZipFile(payload) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise _damaged(library, error) from error
    if unpacked > MAX_UNPACKED_BYTES:
        raise _damaged(library, ValueError(f"it would unpack to {unpacked:,} bytes"))
    payload.seek(0)
    try:
        return np.load(payload, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise _damaged(library, error) from error


def _damaged(library: str, error: BaseException) -> ModelFormatError:
    return ModelFormatError(
        f"the saved model for library {library!r} is damaged and was not loaded ({error}); "
        "retrain with `navigator train`"
    )


def _manifest(archive: Any, library: str) -> _Manifest:
    try:
        raw = archive[_MANIFEST]
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("the manifest is not UTF-8 bytes")
        manifest = _Manifest.model_validate(json.loads(raw.tobytes().decode("utf-8")))
    except (KeyError, ValueError, ValidationError, UnicodeDecodeError, OSError) as error:
        raise _damaged(library, error) from error
    if manifest.format_version > FORMAT_VERSION:
        raise ModelFormatError(
            f"the saved model for library {library!r} was written by a newer version of Z Navigator "
            f"(model format {manifest.format_version}); upgrade, or retrain with `navigator train`"
        )
    return manifest


def load_model_bytes(blob: bytes, library: str) -> FittedModel:
    """The stored model, rebuilt from data alone; ModelFormatError says why not."""
    from models.imitation.learners import get_learner, restore_task

    _refuse(blob, library)
    with _archive(blob, library) as archive:
        manifest = _manifest(archive, library)
        try:
            learner = get_learner(manifest.learner)
            tasks = {}
            for key, entry in manifest.tasks.items():
                arrays = {name.split(".", 1)[1]: archive[name] for name in entry.arrays}
                tasks[key] = restore_task(learner, entry.state, arrays)
            plan = plan_from_json(manifest.plan)
        except ModelFormatError:
            raise
        except (TrainerError, KeyError, ValueError, TypeError, IndexError, OSError) as error:
            raise _damaged(library, error) from error
    return FittedModel(
        manifest.library_uid,
        manifest.retrieved_nodes,
        manifest.features_version,
        tasks,
        manifest.learner,
        plan,
        manifest.validation_predictions,
    )


def load_validation_predictions(blob: bytes, library: str) -> dict[str, list[float]]:
    """Only the model's stored predictions on D*_validation (cheap: no task is rebuilt)."""
    _refuse(blob, library)
    with _archive(blob, library) as archive:
        return _manifest(archive, library).validation_predictions


# -- the trained_models table ---------------------------------------------------------


def store_model(conn: sqlite3.Connection, library_id: int, fitted: FittedModel, report: dict[str, Any]) -> int:
    """Insert the model as the library's next version, in one transaction (two trainers running
    at once get different versions, never the same one); `report` is stored with that version."""
    blob = dump_model(fitted)
    with transaction(conn):
        row = conn.execute(
            "SELECT COALESCE(MAX(version), 0) FROM trained_models WHERE library_id = ? AND kind = ?",
            (library_id, MODEL_KIND),
        ).fetchone()
        version = int(row[0]) + 1
        conn.execute(
            "INSERT INTO trained_models (uid, library_id, kind, version, data_hash, n_labels, n_items, n_labelers,"
            " metrics, model, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"model_{uuid.uuid4().hex}",
                library_id,
                MODEL_KIND,
                version,
                report["data_hash"],
                report["n_labels"],
                report["n_items"],
                report["n_labelers"],
                json.dumps({**report, "model_version": version}),
                blob,
                report["created_at"],
            ),
        )
    return version


def discard_all_models(conn: sqlite3.Connection) -> None:
    """Drop every stored model: only for a benchmark's own scratch workspace (a fresh start per run)."""
    with transaction(conn):
        conn.execute("DELETE FROM trained_models")


def latest_metrics(conn: sqlite3.Connection, library_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT metrics FROM trained_models WHERE library_id = ? AND kind = ? ORDER BY version DESC LIMIT 1",
        (library_id, MODEL_KIND),
    ).fetchone()
    return dict(json.loads(row[0])) if row else None


def latest_model_row(conn: sqlite3.Connection, library_id: int) -> tuple[bytes, dict[str, Any]] | None:
    """The latest model's bytes (not yet read) and its stored report."""
    row = conn.execute(
        "SELECT model, metrics FROM trained_models WHERE library_id = ? AND kind = ? ORDER BY version DESC LIMIT 1",
        (library_id, MODEL_KIND),
    ).fetchone()
    return (bytes(row[0]), dict(json.loads(row[1]))) if row else None


def latest_validation_predictions(
    conn: sqlite3.Connection, library_id: int, library: str
) -> tuple[int, dict[str, list[float]]] | None:
    """(version, the latest model's probabilities on D*_validation items when it was trained),
    or None when the library has no model."""
    row = latest_model_row(conn, library_id)
    if row is None:
        return None
    blob, report = row
    return int(report.get("model_version", 0)), load_validation_predictions(blob, library)
