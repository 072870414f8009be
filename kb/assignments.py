"""Who labels which item: assignment plans with overlap, and the queue filter that follows them.

A lead runs `navigator assign --labelers a,b,c --overlap K` for one split: every item of
the split gets K distinct labelers, each labeler's share differs from the others' by at
most one item, and labelers are paired as evenly as the greedy choice allows (so every pair
of labelers shares items and agreement can be measured between all of them). The plan is
a pure function of the split's item uids, the labelers, K and the seed.

Plans are append-only. Assigning again stores a newer plan; the newest plan of a split
(by creation time, then uid, so every workspace that holds the same plans agrees on it,
whatever order they were merged in) is *in force*. The filter is deliberately narrow: a
labeler named in the plan in force sees only their share of that split; everyone else,
and every item outside a plan (a split never assigned, an item imported after the plan),
is seen as before. So an unassigned labeler, such as a lead who adjudicates, keeps the
whole queue.

This module owns the `assignment_plans` and `assignments` tables. Plans travel in exports
as one record each (kb.exchange), found by uid, so offline copies merge back without
losing or doubling a plan.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from kb.db import WorkspaceError, transaction, utc_now
from kb.items import SPLITS, Item


class AssignmentError(WorkspaceError):
    """An assignment that cannot be made as asked; nothing was written."""


@dataclass(frozen=True)
class Plan:
    """One stored plan. `items` maps item uid → the labelers assigned to it (sorted)."""

    id: int
    uid: str
    split: str
    labelers: tuple[str, ...]
    overlap: int
    seed: int
    created_by: str | None
    created_at: str
    items: dict[str, tuple[str, ...]]

    def load(self) -> dict[str, int]:
        """labeler → how many items the plan gives them."""
        counts = dict.fromkeys(self.labelers, 0)
        for assigned in self.items.values():
            for labeler in assigned:
                counts[labeler] += 1
        return counts

    def shared(self) -> dict[tuple[str, str], int]:
        """(labeler, labeler) → how many items the pair both label."""
        counts = {pair: 0 for pair in combinations(self.labelers, 2)}
        for assigned in self.items.values():
            for pair in combinations(assigned, 2):
                counts[pair] += 1
        return counts


def checked_labelers(labelers: Sequence[str], overlap: int) -> tuple[str, ...]:
    """The labeler names, sorted (so the plan does not depend on the order they were typed in)."""
    names = [name.strip() for name in labelers]
    if not names or any(not name for name in names):
        raise AssignmentError("give the labelers as a comma-separated list of names, e.g. --labelers ann,bob")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise AssignmentError(f"labeler {repeated[0]!r} is named twice")
    if overlap < 1:
        raise AssignmentError(f"--overlap must be at least 1, got {overlap}")
    if overlap > len(names):
        raise AssignmentError(
            f"--overlap {overlap} needs at least {overlap} distinct labelers per item, only {len(names)} named"
        )
    return tuple(sorted(names))


def balanced_plan(
    item_uids: Sequence[str], labelers: Sequence[str], overlap: int, seed: int
) -> dict[str, tuple[str, ...]]:
    """item uid → `overlap` distinct labelers, balanced; the same for the same arguments.

    Items are visited in a seeded shuffle of their sorted uids. Each item takes, one at a
    time, the labeler with the fewest items so far, then the one it has shared the fewest
    items with among those already chosen for the item, then a seeded coin. Taking the
    least-loaded labeler first keeps every share within one item of every other.
    """
    names = checked_labelers(labelers, overlap)
    rng = random.Random(seed)
    order = sorted(set(item_uids))
    rng.shuffle(order)
    load = dict.fromkeys(names, 0)
    together = {pair: 0 for pair in combinations(names, 2)}

    def shared_with(name: str, chosen: list[str]) -> int:
        return sum(together[(min(name, other), max(name, other))] for other in chosen)

    plan: dict[str, tuple[str, ...]] = {}
    for uid in order:
        chosen: list[str] = []
        for _ in range(overlap):
            coin = {name: rng.random() for name in names}
            best = min(
                (name for name in names if name not in chosen),
                key=lambda name: (load[name], shared_with(name, chosen), coin[name]),
            )
            chosen.append(best)
        for name in chosen:
            load[name] += 1
        for pair in combinations(sorted(chosen), 2):
            together[pair] += 1
        plan[uid] = tuple(sorted(chosen))
    return plan


def assign(
    conn: sqlite3.Connection,
    labelers: Sequence[str],
    overlap: int,
    *,
    split: str = "validation",
    seed: int = 0,
    created_by: str | None = None,
) -> Plan:
    """Plan the split's items over the labelers and store the plan (it is then in force)."""
    if split not in SPLITS:
        raise AssignmentError(f"unknown split {split!r} (splits: {', '.join(SPLITS)})")
    rows = conn.execute("SELECT id, uid FROM items WHERE split = ? ORDER BY id", (split,)).fetchall()
    if not rows:
        raise AssignmentError(f"no {split} items in this workspace to assign; import items first")
    names = checked_labelers(labelers, overlap)
    plan = balanced_plan([row["uid"] for row in rows], names, overlap, seed)
    uid = f"plan_{uuid.uuid4().hex}"
    with transaction(conn):
        store_plan(
            conn,
            uid=uid,
            split=split,
            labelers=names,
            overlap=overlap,
            seed=seed,
            created_by=created_by,
            created_at=utc_now(),
            items={row["id"]: plan[row["uid"]] for row in rows},
        )
    found = plan_by_uid(conn, uid)
    assert found is not None
    return found


def store_plan(
    conn: sqlite3.Connection,
    *,
    uid: str,
    split: str,
    labelers: Sequence[str],
    overlap: int,
    seed: int,
    created_by: str | None,
    created_at: str,
    items: dict[int, tuple[str, ...]],
) -> None:
    """Write one plan and its rows; the caller holds the transaction (assign, or a whole merge)."""
    plan_id = conn.execute(
        "INSERT INTO assignment_plans (uid, split, labelers, overlap, seed, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (uid, split, json.dumps(list(labelers), ensure_ascii=False), overlap, seed, created_by, created_at),
    ).lastrowid
    conn.executemany(
        "INSERT INTO assignments (plan_id, item_id, labeler) VALUES (?, ?, ?)",
        [(plan_id, item_id, labeler) for item_id, assigned in items.items() for labeler in assigned],
    )


_PLAN_COLUMNS = "id, uid, split, labelers, overlap, seed, created_by, created_at"


def _plan(conn: sqlite3.Connection, row: sqlite3.Row) -> Plan:
    items: dict[str, list[str]] = {}
    for item_uid, labeler in conn.execute(
        "SELECT i.uid, a.labeler FROM assignments a JOIN items i ON i.id = a.item_id"
        " WHERE a.plan_id = ? ORDER BY i.id, a.labeler",
        (row["id"],),
    ):
        items.setdefault(item_uid, []).append(labeler)
    return Plan(
        row["id"],
        row["uid"],
        row["split"],
        tuple(json.loads(row["labelers"])),
        row["overlap"],
        row["seed"],
        row["created_by"],
        row["created_at"],
        {item_uid: tuple(assigned) for item_uid, assigned in items.items()},
    )


def plan_by_uid(conn: sqlite3.Connection, uid: str) -> Plan | None:
    row = conn.execute(f"SELECT {_PLAN_COLUMNS} FROM assignment_plans WHERE uid = ?", (uid,)).fetchone()
    return _plan(conn, row) if row else None


def all_plans(conn: sqlite3.Connection) -> list[Plan]:
    """Every stored plan, oldest first (what an export carries)."""
    rows = conn.execute(f"SELECT {_PLAN_COLUMNS} FROM assignment_plans ORDER BY created_at, uid").fetchall()
    return [_plan(conn, row) for row in rows]


def _row_in_force(conn: sqlite3.Connection, split: str) -> sqlite3.Row | None:
    """The one rule for which plan is in force: the newest by creation time, uid breaking a tie."""
    row: sqlite3.Row | None = conn.execute(
        f"SELECT {_PLAN_COLUMNS} FROM assignment_plans WHERE split = ? ORDER BY created_at DESC, uid DESC LIMIT 1",
        (split,),
    ).fetchone()
    return row


def plan_in_force(conn: sqlite3.Connection, split: str) -> Plan | None:
    row = _row_in_force(conn, split)
    return _plan(conn, row) if row else None


def items_for(conn: sqlite3.Connection, labeler: str, items: Sequence[Item]) -> list[Item]:
    """The items of `items` (order kept) that `labeler` should label under the plans in force.

    Only a labeler named in the plan in force for an item's split loses items: those the plan
    gives to others. Everyone else, and items no plan covers, pass through unchanged.
    """
    hidden: set[int] = set()
    for split in sorted({item.split for item in items}):
        row = _row_in_force(conn, split)
        if row is None or labeler not in json.loads(row["labelers"]):
            continue
        covered = {
            r[0] for r in conn.execute("SELECT DISTINCT item_id FROM assignments WHERE plan_id = ?", (row["id"],))
        }
        mine = {
            r[0]
            for r in conn.execute(
                "SELECT item_id FROM assignments WHERE plan_id = ? AND labeler = ?", (row["id"], labeler)
            )
        }
        hidden |= covered - mine
    return [item for item in items if item.id not in hidden]
