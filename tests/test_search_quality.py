"""A floor under what search finds for the demo's questions (bench/search.py prints the table).

The trainer's view of Z is the top hits of its question, so these shares bound what the
imitation model can learn; a change to ranking that lowers them should fail here first.
"""

from __future__ import annotations

from pathlib import Path

from kb.db import connect
from kb.libraries import find_library
from models.imitation.retrieval_quality import demo_retrieval

# Measured on the demo when these floors were set (country top 5 / answer top 5 / answer top 20):
# all 0.618 / 0.079 / 0.253 (with the membership questions, which name an organisation as well as a
# country: 0.497 / 0.021 / 0.107); landlocked 0.99 / 0.20 / 0.21; population 0.99 / 0.01 / 0.96.
FLOORS = {
    ("all", "country_top5"): 0.60,
    ("all", "answer_top5"): 0.07,
    ("all", "answer_top20"): 0.24,
    ("membership", "country_top5"): 0.47,
    ("membership", "answer_top20"): 0.10,
    ("landlocked", "country_top5"): 0.95,
    ("population", "country_top5"): 0.95,
    ("population", "answer_top20"): 0.90,
    ("gdp_tercile", "answer_top5"): 0.30,
}


def test_demo_questions_find_their_country_and_answer(demo_workspace: Path) -> None:
    conn = connect(demo_workspace)
    library = find_library(conn, "factbook")
    assert library is not None
    table = demo_retrieval(conn, demo_workspace, library)
    assert table["all"].n == conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    shortfalls = []
    for (task, measure), floor in FLOORS.items():
        row = table[task]
        value = row.share(getattr(row, measure))
        if value < floor:
            shortfalls.append(f"{task} {measure}: {value:.3f} < {floor}")
    assert not shortfalls, shortfalls
    conn.close()
