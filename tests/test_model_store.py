"""Stored models cannot run code: planted pickles and poisoned archives are refused, nothing they
carry executes, and everything around the model keeps working and says what to do."""

from __future__ import annotations

import builtins
import io
import json
import pickle
import sqlite3
import zipfile
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from test_trainer import FRUITS, build, label_all

from kb.items import items_in
from kb.libraries import Library
from models.imitation.errors import TrainerError
from models.imitation.item_order import order_items
from models.imitation.model_store import MAGIC, ModelFormatError, load_model_bytes
from models.imitation.trainer import latest_report, load_model, predict_items, train

ROOT = Path(__file__).resolve().parent.parent


class Plant:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (builtins.open, (str(self.marker), "w"))


def live_pickle(marker: Path, tmp_path: Path) -> bytes:
    blob = pickle.dumps(Plant(marker))
    witness = tmp_path / "witness"
    pickle.loads(pickle.dumps(Plant(witness)))  # the same kind of blob does run code when unpickled
    assert witness.exists()
    return blob


@pytest.fixture
def trained(tmp_path: Path) -> tuple[sqlite3.Connection, Path, Library]:
    conn, workspace, library = build(tmp_path / "w")
    label_all(conn, library, "simulated:a", 0.9)
    train(conn, workspace, library, folds=3)
    return conn, workspace, library


def plant(conn: sqlite3.Connection, blob: bytes) -> None:
    with conn:
        conn.execute(
            "UPDATE trained_models SET model = ? WHERE version = (SELECT MAX(version) FROM trained_models)", (blob,)
        )


def test_a_planted_pickle_never_runs_and_every_reader_says_retrain(trained, tmp_path: Path) -> None:
    from navigator.commands.train import predict

    conn, workspace, library = trained
    marker = tmp_path / "code-ran"
    plant(conn, live_pickle(marker, tmp_path))
    items = items_in(conn, ("train",))
    for attempt in (lambda: load_model(conn, library), lambda: predict_items(conn, workspace, library, items)):
        with pytest.raises(ModelFormatError, match=r"old pickle format.*retrain with `navigator train`"):
            attempt()
    assert isinstance(ModelFormatError("x"), TrainerError)  # so F(Z) treats it as "no imitation model"
    # The report is JSON and still shows; one stored before learners had names was a bag of words.
    metrics = json.loads(conn.execute("SELECT metrics FROM trained_models").fetchone()[0])
    for key in ("learner", "learner_params", "reading"):
        del metrics[key]
    with conn:
        conn.execute("UPDATE trained_models SET metrics = ?", (json.dumps(metrics),))
    old = latest_report(conn, library)
    assert old is not None and old.learner == "bow" and old.n_labels == len(FRUITS)
    result = CliRunner().invoke(
        click.Group(commands={"predict": predict}), ["predict", "-w", str(workspace), "--split", "train"]
    )
    assert result.exit_code == 1 and "retrain with `navigator train`" in result.output
    ordering = order_items(conn, library, items, order="auto")
    assert ordering.items == items and "retrain with `navigator train`" in ordering.how
    assert not marker.exists()


def archive_of(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob[len(MAGIC) :])) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rebuilt(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return MAGIC + buffer.getvalue()


def npy(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=True)
    return buffer.getvalue()


def current_blob(conn: sqlite3.Connection) -> bytes:
    return bytes(conn.execute("SELECT model FROM trained_models ORDER BY version DESC LIMIT 1").fetchone()[0])


@pytest.mark.parametrize("poisoned", ["an array", "the manifest"])
def test_pickles_hidden_inside_the_new_format_are_refused(trained, tmp_path: Path, poisoned: str) -> None:
    conn, _, library = trained
    entries = archive_of(current_blob(conn))
    assert all(name.endswith(".npy") for name in entries) and "manifest.npy" in entries
    marker = tmp_path / "code-ran"
    live_pickle(marker, tmp_path)
    evil = npy(np.array([Plant(marker)], dtype=object))
    target = "manifest.npy" if poisoned == "the manifest" else next(n for n in entries if n.endswith(".coef.npy"))
    entries[target] = evil
    plant(conn, rebuilt(entries))
    with pytest.raises(ModelFormatError, match="damaged and was not loaded.*retrain with `navigator train`"):
        load_model(conn, library)
    assert not marker.exists()


def test_a_model_from_a_newer_version_and_a_malformed_one_are_refused(trained) -> None:
    conn, workspace, library = trained
    entries = archive_of(current_blob(conn))
    manifest = json.loads(np.load(io.BytesIO(entries["manifest.npy"])).tobytes())
    newer = {
        **entries,
        "manifest.npy": npy(np.frombuffer(json.dumps({**manifest, "format_version": 99}).encode(), np.uint8)),
    }
    with pytest.raises(ModelFormatError, match="newer version"):
        load_model_bytes(rebuilt(newer), library.name)
    wrong_shape = {**entries}
    coef = next(n for n in entries if n.endswith(".coef.npy"))
    wrong_shape[coef] = npy(np.zeros(3))
    plant(conn, rebuilt(wrong_shape))
    with pytest.raises(ModelFormatError, match="damaged"):
        predict_items(conn, workspace, library, items_in(conn, ("train",)))
    for junk in (b"", b"not a model", MAGIC + b"PK\x03\x04 truncated"):
        with pytest.raises(ModelFormatError, match="retrain with `navigator train`"):
            load_model_bytes(junk, library.name)


def test_the_stored_model_predicts_what_the_fitted_one_did(trained) -> None:
    conn, workspace, library = trained
    fitted, report = load_model(conn, library)
    assert report.learner == "reader" and fitted.learner == "reader" and fitted.plan == {}
    first = predict_items(conn, workspace, library, items_in(conn, ("train",)))
    assert len(first) == len(FRUITS)
    assert predict_items(conn, workspace, library, items_in(conn, ("train",))) == first


def test_no_code_that_opens_workspaces_unpickles() -> None:
    """Workspaces, imports and exports are read by kb/, models/ and navigator/: none of them may
    use pickle, joblib or numpy's allow_pickle. The one exception is kb/search/safe_unpickle.py, the
    restricted unpickler that whoosh's own index files are read through (tests/test_search_safety.py)."""
    offenders = []
    for package in ("kb", "models", "navigator"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "kb" / "search" / "safe_unpickle.py":
                continue
            text = path.read_text(encoding="utf-8")
            for word in ("import pickle", "pickle.load", "joblib", "dill", "allow_pickle=True", "cloudpickle"):
                if word in text:
                    offenders.append(f"{path.relative_to(ROOT)}: {word}")
    assert offenders == []
