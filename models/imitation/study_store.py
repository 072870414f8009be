"""The studies a workspace has run (`studies`): written when `navigator study` finishes, read by the metrics screen.

The one module that reads and writes that table. Results are stored as the JSON results.json holds
(models/imitation/study_records.py), checked by the same model when read back.
"""

from __future__ import annotations

import sqlite3

from pydantic import ValidationError

from kb.db import transaction, utc_now
from kb.libraries import Library
from models.imitation.study_records import StudyResults


def save_study(conn: sqlite3.Connection, library: Library, seed: int, results: StudyResults) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO studies (library_id, seed, results, created_at) VALUES (?, ?, ?, ?)",
            (library.id, seed, results.model_dump_json(), utc_now()),
        )


def latest_study(conn: sqlite3.Connection, library: Library) -> tuple[StudyResults, str] | None:
    """The library's latest study and when it ran; None if there is none (or it was written by another release)."""
    row = conn.execute(
        "SELECT results, created_at FROM studies WHERE library_id = ? ORDER BY id DESC LIMIT 1", (library.id,)
    ).fetchone()
    if row is None:
        return None
    try:
        return StudyResults.model_validate_json(row[0]), str(row[1])
    except ValidationError:
        return None
