"""What M_Z's credence in a statement is computed from: two judgements and an evidence check.

The judge (models.llm.judge) scores the statement and its negation against the statement's source;
their difference, the *contrast*, cancels the model's lean towards one answer whatever it reads.
The *support* (models.llm.grounding) says whether the source covers every figure, name, unit and
negation the statement states. models.llm.calibration turns the two into a probability. Both
judgements are logged as calls, like every model call.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from kb.tree import Node
from models.llm.generation import logged_judgement
from models.llm.grounding import support, unsupported
from models.llm.judge import Judgement, negation
from models.llm.model import LLM


@dataclass(frozen=True)
class Features:
    statement: Judgement
    negation: Judgement
    support: float
    unsupported: list[str]

    @property
    def contrast(self) -> float:
        return self.statement.score - self.negation.score


def credence_features(
    conn: sqlite3.Connection,
    llm: LLM,
    source: str,
    statement: str,
    *,
    purpose: str,
    node: Node | None = None,
    labeler: str | None = None,
    extra_params: dict[str, Any] | None = None,
    given: str = "",
) -> Features:
    """Judge `statement` and its negation against `source` (both logged) and check its evidence.

    `given` is text the statement may repeat without claiming it (an answer's question)."""

    def judged(text: str) -> Judgement:
        return logged_judgement(
            conn, llm, source, text, purpose=purpose, node=node, labeler=labeler, extra_params=extra_params
        )

    yes = judged(statement)
    no = judged(negation(statement))
    evidence = f"{source} {given}".strip()
    return Features(yes, no, support(statement, evidence), unsupported(statement, evidence))
