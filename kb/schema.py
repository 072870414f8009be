"""What a workspace's tables, columns and indexes should be, and where a file differs.

The schema version in `_migrations` says which migrations ran, not that their work is still
there: a file edited by hand, or restored from a partial copy, can carry the current version
and lack an index (every query still works, a million-node tree just stops feeling instant)
or a column. The reference is the schema the numbered migrations build in an empty database,
so it can never drift from them; the file's shape is read with sqlite-utils' introspection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlite_utils import Database

from kb.db import migrate


@dataclass(frozen=True)
class TableShape:
    columns: tuple[tuple[str, str, bool, bool], ...]  # (name, declared type, not null, primary key)
    indexes: tuple[tuple[str, tuple[str, ...], bool], ...]  # (name, columns, unique); automatic ones left out


Shape = dict[str, TableShape]


def schema_shape(conn: sqlite3.Connection) -> Shape:
    """Every table's columns and named indexes, as the file has them."""
    db = Database(conn, recursive_triggers=False)  # read only: leave the connection as it was
    shape: Shape = {}
    for name in db.table_names():
        table = db.table(name)
        columns = tuple((c.name, c.type.upper(), bool(c.notnull), bool(c.is_pk)) for c in table.columns)
        indexes = tuple(
            sorted(
                (index.name, tuple(str(column) for column in index.columns), bool(index.unique))
                for index in table.indexes
                if index.origin == "c"  # created by a migration, not by a UNIQUE or PRIMARY KEY constraint
            )
        )
        shape[name] = TableShape(columns, indexes)
    return shape


@cache
def expected_shape() -> Shape:
    """The shape every migration, run in order on an empty database, produces."""
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(memory)
        return schema_shape(memory)
    finally:
        memory.close()


def schema_drift(conn: sqlite3.Connection) -> list[str]:
    """How this file's tables differ from the current release's, one sentence each; empty when they match.

    Extra tables are allowed (a researcher's own notes tables do no harm); missing or changed
    ones, columns and indexes are named.
    """
    found = schema_shape(conn)
    problems: list[str] = []
    for table, want in expected_shape().items():
        have = found.get(table)
        if have is None:
            problems.append(f"table {table} is missing")
            continue
        problems += _differences(table, "column", want.columns, have.columns)
        problems += _differences(table, "index", want.indexes, have.indexes)
    return problems


def _differences(table: str, kind: str, want: Sequence[tuple[Any, ...]], have: Sequence[tuple[Any, ...]]) -> list[str]:
    """Entries are tuples named by their first field: a missing name, or the same name declared otherwise."""
    have_by_name = {entry[0]: entry for entry in have}
    problems = []
    for entry in want:
        name = entry[0]
        if name not in have_by_name:
            problems.append(f"table {table} has no {kind} {name}")
        elif have_by_name[name] != entry:
            problems.append(f"{kind} {table}.{name} is declared differently")
    return problems
