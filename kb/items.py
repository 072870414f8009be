"""Task items as the workspace holds them: D (split train, gold kept) and D* (split at random into
validation and prediction, whose gold is not in the workspace at all). Importing items and the
answer key are kb/item_import.py's."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from kb.db import marks

SPLITS = ("train", "validation", "prediction")


def item_counts(conn: sqlite3.Connection) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    counts.update({row[0]: row[1] for row in conn.execute("SELECT split, COUNT(*) FROM items GROUP BY split")})
    return counts


@dataclass(frozen=True)
class Item:
    """An item as a labeler sees it: never with gold (`y` stays in the table for train)."""

    id: int
    uid: str
    task: str
    x: str
    options: tuple[str, ...]
    split: str


def _item(row: sqlite3.Row) -> Item:
    return Item(row["id"], row["uid"], row["task"], row["x"], tuple(json.loads(row["options"])), row["split"])


def item_by_uid(conn: sqlite3.Connection, uid: str) -> Item | None:
    row = conn.execute("SELECT id, uid, task, x, options, split FROM items WHERE uid = ?", (uid,)).fetchone()
    return _item(row) if row else None


def items_in(conn: sqlite3.Connection, splits: tuple[str, ...]) -> list[Item]:
    """Every item in the given splits, in a stable order (items number in the thousands, not millions)."""
    rows = conn.execute(
        f"SELECT id, uid, task, x, options, split FROM items WHERE split IN ({marks(len(splits))}) ORDER BY id", splits
    )
    return [_item(row) for row in rows]


def gold(conn: sqlite3.Connection, item: Item) -> str | None:
    """Gold y for a train item; D* gold is not in the workspace at all."""
    row = conn.execute("SELECT y FROM items WHERE id = ?", (item.id,)).fetchone()
    return row[0] if row else None


def train_gold(conn: sqlite3.Connection) -> dict[int, str]:
    """item id → gold y for every train item that has one, in one query."""
    return {row[0]: row[1] for row in conn.execute("SELECT id, y FROM items WHERE split = 'train' AND y IS NOT NULL")}
