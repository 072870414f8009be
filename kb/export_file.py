"""An export written to a path all at once: the file there is the old one or the whole new one.

The CLI (`navigator export --out`) and the app's "Export my labels" both write an
export to a file a labeler may already have sent or be about to merge, so a full
disk or a crash halfway must never leave a truncated export in its place. The
records are collected first (a workspace error fails before any file is touched),
then written through kb/atomic_file.py (a fresh file beside the target, flushed to
disk, renamed over it). A link is followed to the file it names; a pipe or a
device cannot be replaced, so an export to one is written straight through.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kb.atomic_file import StagedFile
from kb.db import WorkspaceError
from kb.exchange import ExportReport, collect_export, write_export
from kb.records import ExportRecord


def export_to_path(conn: sqlite3.Connection, path: Path, *, labeler: str | None = None) -> ExportReport:
    """Write the export (of one labeler, or everyone's) to `path`, replacing it only once complete.

    Raises WorkspaceError naming `path` when the file cannot be written.
    """
    records = collect_export(conn, labeler=labeler)
    target = path.resolve()  # a link is followed, as writing to it always did: the file it names is replaced
    if target.exists() and not target.is_file():  # a pipe or a device (`--out /dev/stdout`, `>(gzip …)`)
        return _write_through(records, target, path)
    try:
        with StagedFile(target) as staged:
            with staged.writer() as handle:
                report = write_export(records, handle)
            staged.commit()
    except OSError as error:
        raise WorkspaceError(f"cannot write {path}: {error.strerror or error}") from error
    return report


def _write_through(records: list[ExportRecord], target: Path, path: Path) -> ExportReport:
    try:
        with target.open("w", encoding="utf-8", newline="\n") as handle:
            return write_export(records, handle)
    except OSError as error:
        raise WorkspaceError(f"cannot write {path}: {error.strerror or error}") from error
