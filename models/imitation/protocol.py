"""A study protocol: one TOML file that reproduces a whole study from an empty workspace.

    navigator study run PROTOCOL --out DIR

The file names the library (the demo, or a path to import), the items (D with gold, D* split at random
with a seed), who labels (people's exports to merge, and simulated labelers for the rest), the
learner and the seeds. Running it makes DIR/workspace.db, fills it as the protocol says, runs the
study (models/imitation/study.py) and writes the report, which records the protocol it came from.
Paths in the file are relative to the file. docs/protocols/demo.toml is the demo's.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kb.assignments import assign
from kb.db import connect
from kb.demo import DEMO_LIBRARY, build_demo
from kb.errors import ZNavigatorError
from kb.formats import detect_format, read_nodes
from kb.importing import import_staged
from kb.item_import import answer_key_path, import_items
from kb.libraries import get_library, library_for_import
from kb.merge import merge_files
from kb.progress import NoProgress, Progress
from kb.search import SearchIndex
from models.bootstrap import RESAMPLES
from models.imitation.item_order import labeler_queue
from models.imitation.learners import DEFAULT_LEARNER
from models.imitation.simulated_labeler import SimulatedLabeler
from models.imitation.study import run_study
from models.imitation.study_records import StudyResults


class ProtocolError(ZNavigatorError, ValueError):
    """The protocol file cannot be read or does not say enough; nothing was built."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LibrarySection(Section):
    demo: bool = False  # the bundled Factbook demo: its library and its items
    name: str | None = None
    path: str | None = Field(default=None, alias="import")  # a path to import, relative to the protocol file
    format: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> LibrarySection:
        if not self.demo and not self.path:
            raise ValueError("name a library to import (import = PATH) or use the demo (demo = true)")
        return self


class ItemsSection(Section):
    train: str | None = None  # D: items with gold
    dstar: str | None = None  # D*: items whose gold goes to the answer key
    validation_fraction: float = Field(default=0.5, gt=0.0, lt=1.0)
    split_seed: int = 0


class LabelersSection(Section):
    labels: list[str] = []  # exports to merge (`navigator export`), relative to the protocol file
    simulated: list[str] = []  # SIMULATED labelers, who label their share of D*_validation by reading Z
    noise: float = Field(default=0.1, ge=0.0, le=1.0)
    overlap: int = Field(default=1, ge=1)
    assignment_seed: int = 0


class ModelSection(Section):
    learner: str = DEFAULT_LEARNER


class StudySection(Section):
    seed: int = 0
    resamples: int = Field(default=RESAMPLES, ge=100)


class Protocol(Section):
    library: LibrarySection
    items: ItemsSection = ItemsSection()
    labelers: LabelersSection = LabelersSection()
    model: ModelSection = ModelSection()
    study: StudySection = StudySection()

    @model_validator(mode="after")
    def _someone_labels(self) -> Protocol:
        if not self.labelers.labels and not self.labelers.simulated:
            raise ValueError("name who labels: labels = [exports to merge] or simulated = [names]")
        if not self.library.demo and not self.items.dstar:
            raise ValueError("name the D* items (items.dstar = PATH): a study needs held-out items")
        return self


def load_protocol(path: Path) -> Protocol:
    """The protocol in `path`; ProtocolError names the file and what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ProtocolError(f"cannot read the protocol {path}: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ProtocolError(f"{path}: not valid TOML: {error}") from error
    try:
        return Protocol.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'protocol'}: {e['msg']}" for e in error.errors())
        raise ProtocolError(f"{path}: {problems}") from error


def run_protocol(
    protocol: Protocol, source: Path, workspace: Path, *, progress_for: Any = None
) -> tuple[StudyResults, Path]:
    """Build `workspace` (which must not exist yet) as the protocol says and study it; (results, answer key)."""
    if workspace.exists():
        raise ProtocolError(f"{workspace} exists already; a protocol builds its study from an empty workspace")
    folder = source.parent
    progress_for = progress_for or (lambda _name: NoProgress())
    if protocol.library.demo:
        conn, _ = build_demo(workspace, progress_for, seed=protocol.items.split_seed, index_procs=2)
        library = get_library(conn, DEMO_LIBRARY)
    else:
        conn = connect(workspace, create=True)
        library = _import_library(conn, workspace, protocol, folder, progress_for("library"))
        _import_items(conn, workspace, protocol, folder)
    answers = answer_key_path(workspace)
    if protocol.labelers.labels:
        merge_files(conn, [folder / path for path in protocol.labelers.labels])
    _simulate(conn, workspace, library, protocol)
    record = protocol.model_dump(by_alias=True, exclude_none=True)
    record["file"] = source.name
    results = run_study(
        conn,
        workspace,
        library,
        answers,
        seed=protocol.study.seed,
        learner=protocol.model.learner,
        resamples=protocol.study.resamples,
        protocol=record,
    )
    conn.close()
    return results, answers


def _import_library(conn: Any, workspace: Path, protocol: Protocol, folder: Path, progress: Progress) -> Any:
    path = folder / str(protocol.library.path)
    fmt = protocol.library.format or detect_format(path)
    name = protocol.library.name or path.stem
    with library_for_import(conn, name) as library:
        import_staged(conn, library, read_nodes(fmt, path, progress), source=str(path), importer=fmt)
    SearchIndex(conn, workspace, library).update()
    return library


def _import_items(conn: Any, workspace: Path, protocol: Protocol, folder: Path) -> None:
    section = protocol.items
    if section.train:
        import_items(conn, folder / section.train, dstar=False)
    assert section.dstar is not None
    import_items(
        conn,
        folder / section.dstar,
        dstar=True,
        answers=answer_key_path(workspace),
        validation_fraction=section.validation_fraction,
        seed=section.split_seed,
    )


def _simulate(conn: Any, workspace: Path, library: Any, protocol: Protocol) -> None:
    """Each simulated labeler labels their share of D*_validation (all of it with one labeler)."""
    names = protocol.labelers.simulated
    if not names:
        return
    labelers = [
        SimulatedLabeler(conn, workspace, library, name, noise=protocol.labelers.noise, seed=index + 1)
        for index, name in enumerate(names)
    ]
    if len(labelers) > 1:
        assign(
            conn,
            [labeler.name for labeler in labelers],
            min(protocol.labelers.overlap, len(labelers)),
            seed=protocol.labelers.assignment_seed,
        )
    for labeler in labelers:
        labeler.label(labeler_queue(conn, library, labeler.name, ("validation",), order="given").items)
