"""How well search finds what a question needs, measured on the demo's items.

The trainer's view of Z is the top hits of `SearchIndex.search(x)` for an item's question
x, so whether those hits hold the answer bounds what the imitation model can learn. For
each item: is a node of the item's country among the top 5 hits, and is the node the
answer is read from (the field the simulated labeler opens) in the top 5 and the top 20.
`bench/search.py` prints the table; tests/test_search_quality.py keeps a floor under it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from kb.items import items_in
from kb.libraries import Library
from kb.search import SearchIndex
from models.imitation.simulated_labeler import SimulatedLabeler

SPLITS = ("train", "validation", "prediction")


@dataclass
class Retrieval:
    n: int = 0
    country_top5: int = 0
    answer_top5: int = 0
    answer_top20: int = 0

    def add(self, other: Retrieval) -> None:
        self.n += other.n
        self.country_top5 += other.country_top5
        self.answer_top5 += other.answer_top5
        self.answer_top20 += other.answer_top20

    def share(self, count: int) -> float:
        return count / self.n if self.n else float("nan")


def demo_retrieval(conn: sqlite3.Connection, workspace: Path, library: Library) -> dict[str, Retrieval]:
    """Per task (and "all"): the counts above. Demo items are named demo:TASK:CODE and their
    country's node fb:CODE, which is how a hit is known to be about the right country."""
    reader = SimulatedLabeler(conn, workspace, library, "retrieval-check", noise=0.0)
    search = SearchIndex(conn, workspace, library)
    table: dict[str, Retrieval] = {}
    try:
        for item in items_in(conn, SPLITS):
            if not item.uid.startswith("demo:"):
                continue
            country = "fb:" + item.uid.rsplit(":", 1)[1]
            row = table.setdefault(item.task or "?", Retrieval())
            row.n += 1
            uids = [hit.uid for hit in search.search(item.x, limit=20).hits]
            row.country_top5 += any(uid == country or uid.startswith(country + "/") for uid in uids[:5])
            cited = reader.read(item).cited
            if cited:
                row.answer_top5 += cited[0] in uids[:5]
                row.answer_top20 += cited[0] in uids
    finally:
        search.close()
        reader.search.close()
    total = Retrieval()
    for row in table.values():
        total.add(row)
    table["all"] = total
    return table


def retrieval_lines(table: dict[str, Retrieval]) -> list[str]:
    lines = [f"{'task':<14}{'n':>6}{'country in top 5':>20}{'answer in top 5':>18}{'answer in top 20':>19}"]
    for task in sorted(table, key=lambda name: (name == "all", name)):
        row = table[task]
        lines.append(
            f"{task:<14}{row.n:>6}{row.share(row.country_top5):>20.3f}{row.share(row.answer_top5):>18.3f}"
            f"{row.share(row.answer_top20):>19.3f}"
        )
    return lines
