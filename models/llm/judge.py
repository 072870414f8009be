"""M_Z's true/false judgement of a statement, read from the model's next-token log-probabilities.

The method this project serves asks a generator of Z to give a probability with every statement it
writes. A base model cannot be asked for a number, but it can be shown statements marked True or
False and asked to continue: log P(" True") − log P(" False") after the prompt is a score that
calibration (models.llm.calibration) turns into a probability. Nothing is sampled, so the same model,
prompt and statement always give the same score.

The statement is judged against its *source*: the path and text of the node it was unpacked from
(for the Factbook, the field it restates). That is what M_Z knew when it wrote the statement, and
it is what lets even a 270M model notice a changed number or a changed country. Both texts are
quoted data, as in every other prompt (models.llm.node_text).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

from kb.tree import Node
from models.llm.model import LLM
from models.llm.node_text import FENCE_CLOSE, FENCE_OPEN, context_path, node_text, quote_data

ANSWERS = (" True", " False")
QA_KIND = "qa"

_INSTRUCTIONS = (
    "Each statement below is checked against its source: True if the source supports it, False if it changes "
    f"a name or a number. The source and the statement are quoted data between {FENCE_OPEN} and {FENCE_CLOSE}."
)

# (source, statement, true?) — countries used here are left out of the calibration set (models.llm.truth_set).
EXAMPLES: tuple[tuple[str, str, bool], ...] = (
    (
        "East and Southeast Asia › Japan › Geography › Coastline: 29,751 km",
        "The coastline of Japan is 29,751 km long.",
        True,
    ),
    ("Europe › France › Government › Capital › name: Paris", "The capital of France is Lyon.", False),
    (
        "Europe › Iceland › People and Society › Population › total: 364,036 (2024 est.)",
        "The population of Iceland is 3,640,360.",
        False,
    ),
    (
        "South America › Peru › Geography › Area › total: 1,285,216 sq km",
        "The total area of Peru is 1,285,216 sq km.",
        True,
    ),
    ("Africa › Kenya › Government › Capital › name: Nairobi", "The capital of Uganda is Nairobi.", False),
    (
        "South America › Chile › People and Society › Population › total: 18,549,457 (2024 est.)",
        "Chile has about 18.5 million people.",
        True,
    ),
    ("Europe › Norway › Geography › Area › total: 323,802 sq km", "The total area of Sweden is 323,802 sq km.", False),
    ("Africa › Ghana › Government › Capital › name: Accra", "Accra is the capital of Ghana.", True),
)
EXAMPLE_COUNTRIES = frozenset(
    {"Japan", "France", "Iceland", "Peru", "Kenya", "Uganda", "Chile", "Norway", "Sweden", "Ghana"}
)


def _block(source: str, statement: str) -> str:
    return (
        f"Source: {FENCE_OPEN}{quote_data(source)}{FENCE_CLOSE}\n"
        f"Statement: {FENCE_OPEN}{quote_data(statement)}{FENCE_CLOSE}\nAnswer:"
    )


PROMPT_HEAD = (
    "\n\n".join(
        [
            _INSTRUCTIONS,
            *(
                f"{_block(source, statement)}{ANSWERS[0] if true else ANSWERS[1]}"
                for source, statement, true in EXAMPLES
            ),
        ]
    )
    + "\n\n"
)
# Calibrations are only valid for the prompt they were fitted with; this names it.
PROMPT_VERSION = hashlib.sha256((PROMPT_HEAD + "|".join(ANSWERS)).encode("utf-8")).hexdigest()[:12]


def judge_prompt(source: str, statement: str) -> str:
    return PROMPT_HEAD + _block(source, statement)


@dataclass(frozen=True)
class Judgement:
    """log P(" True") − log P(" False"): positive when the model leans to true. Not yet a probability."""

    score: float
    statement: str
    source: str
    logprobs: tuple[float, float] = (0.0, 0.0)  # log P(" True"), log P(" False")

    def described(self) -> str:
        """What the call log keeps as this judgement's response."""
        true, false = self.logprobs
        return f"log P(True) {true:.4f}, log P(False) {false:.4f}, score {self.score:+.4f}"


def judge(llm: LLM, source: str, statement: str) -> Judgement:
    true, false = llm.choice_logprobs(PROMPT_HEAD, _block(source, statement), ANSWERS)
    return Judgement(true - false, statement, source, (true, false))


_LOWERCASE_OPENERS = frozenset(
    {"the", "a", "an", "it", "there", "this", "these", "those", "its", "each", "every", "some", "most", "all"}
)


def negation(statement: str) -> str:
    """'It is false that …': the flip of a statement, for the consistency check P(s) + P(not s) ≈ 1."""
    text = " ".join(statement.split()).rstrip(".")
    first, _, rest = text.partition(" ")
    if first.lower() in _LOWERCASE_OPENERS:
        text = f"{first.lower()} {rest}".strip()
    return f"It is false that {text}."


def claim(node: Node) -> str:
    """The statement a node makes: its text, or for an answer node, the question and the answer together."""
    if node.kind == QA_KIND and node.title.startswith("Q: "):
        return f"{node.title[3:].strip()} {node.body.strip()}".strip()
    return node_text(node)


def source_of(conn: sqlite3.Connection, parent: Node) -> str:
    """Where a generated statement came from: its parent's path and text, as the Factbook fields read."""
    path = context_path(conn, parent)
    text = node_text(parent)
    return text if path == "(top level)" else f"{path} › {text}"
