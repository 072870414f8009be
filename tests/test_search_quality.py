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
# all 0.744 / 0.137 / 0.399; landlocked 1.00 / 0.20 / 0.21; population 1.00 / 0.01 / 0.97.
FLOORS = {
    ("all", "country_top5"): 0.72,
    ("all", "answer_top5"): 0.12,
    ("all", "answer_top20"): 0.38,
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
    assert table["all"].n == 958
    shortfalls = []
    for (task, measure), floor in FLOORS.items():
        row = table[task]
        value = row.share(getattr(row, measure))
        if value < floor:
            shortfalls.append(f"{task} {measure}: {value:.3f} < {floor}")
    assert not shortfalls, shortfalls
    conn.close()
