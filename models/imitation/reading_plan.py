"""Where labelers look: the fields they cite for a task, learned from their labels.

A person asked "What is the population of Chile?" does not read the top search hits: they
find Chile and open People and Society › Population › total. Search for the question
rarely returns that node (nothing in it says "population of Chile"), and for "does most
of Chile lie in the northern or the southern hemisphere?" it never does: the answer is
"30 00 S, 71 00 W" under Geographic coordinates. The labels say where people looked:
each prediction records the nodes cited (and the trail of nodes visited). So the trainer
learns, per task, the *relative* path people read — from the node the question names
(its **subject**: the shallowest ancestor of the cited node whose title the question
contains) down to the cited node — and reads the same path under the subject of every
other item of the task, including D*_prediction items nobody labelled.

Titles are compared case-insensitively with digits masked ("Real GDP per capita 2024"
and "… 2023" are one field), and a path step takes the first child, in the library's
order, whose masked title matches.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kb.tree import PATH_SEPARATOR, Node, ancestors, children, node_by_uid

FIELDS_PER_TASK = 3
MIN_FIELD_SHARE = 0.1  # a field read for fewer than this share of a task's citations is noise
MAX_STEPS = 6
MAX_CHILDREN_SCANNED = 2_000
SEPARATOR = PATH_SEPARATOR
_DIGITS = re.compile(r"\d+")
_WORDS = re.compile(r"\w+")


def masked(title: str) -> str:
    return _DIGITS.sub("#", " ".join(title.lower().split()))


def name_key(text: str) -> str:
    """Words only, lower case: "Cocos (Keeling) Islands" and "cocos keeling islands" are one name."""
    return " ".join(_WORDS.findall(text.lower()))


def names_subject(title: str, x: str) -> bool:
    """Whether the question contains `title` as a whole phrase of words (case-insensitive)."""
    key = name_key(title)
    return len(key) >= 3 and f" {key} " in f" {name_key(x)} "


@dataclass(frozen=True)
class Field:
    """A path people read under the subject: the subject's depth, then masked titles down."""

    subject_depth: int
    steps: tuple[str, ...]
    citations: int

    @property
    def name(self) -> str:
        return SEPARATOR.join(self.steps)

    def as_json(self) -> dict[str, object]:
        return {"subject_depth": self.subject_depth, "steps": list(self.steps), "citations": self.citations}

    @classmethod
    def from_json(cls, value: dict[str, object]) -> Field:
        depth, steps, citations = value["subject_depth"], value["steps"], value["citations"]
        if not isinstance(depth, int) or not isinstance(citations, int) or not isinstance(steps, list):
            raise ValueError(f"not a reading-plan field: {value!r}")
        return cls(depth, tuple(str(step) for step in steps), citations)


ReadingPlan = dict[str, tuple[Field, ...]]  # task key → the fields people read, most cited first


def subject_of_cited(path: Sequence[Node], x: str) -> int | None:
    """Index in `path` (root first) of the shallowest non-root node the question names."""
    for index, node in enumerate(path):
        if node.parent_id is not None and names_subject(node.title, x):
            return index
    return None


def learn_plan(
    conn: sqlite3.Connection, library_id: int, cited: Iterable[tuple[str, str, Sequence[str]]]
) -> ReadingPlan:
    """The reading plan from (task key, question, node uids a labeler read) triples.

    Each (question, node) pair counts once however many labelers cited it, so one item
    labelled a hundred times does not outvote the rest of the task.
    """
    pairs: dict[str, set[tuple[str, str]]] = {}
    for task, x, uids in cited:
        pairs.setdefault(task, set()).update((x, uid) for uid in uids)
    plan: ReadingPlan = {}
    for task, seen in sorted(pairs.items()):
        counts: Counter[tuple[int, tuple[str, ...]]] = Counter()
        for x, uid in sorted(seen):
            node = node_by_uid(conn, uid, library_id)
            if node is None:
                continue
            path = ancestors(conn, node.id)
            at = subject_of_cited(path, x)
            if at is None or at == len(path) - 1 or len(path) - 1 - at > MAX_STEPS:
                continue
            counts[(path[at].depth, tuple(masked(n.title) for n in path[at + 1 :]))] += 1
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
        fields = tuple(
            Field(depth, steps, count)
            for (depth, steps), count in ranked[:FIELDS_PER_TASK]
            if count >= MIN_FIELD_SHARE * total
        )
        if fields:
            plan[task] = fields
    return plan


def walk(conn: sqlite3.Connection, subject: Node, steps: Sequence[str]) -> Node | None:
    """Follow masked titles down from `subject`; None when a step is missing."""
    node = subject
    for step in steps:
        found, after, scanned = None, None, 0
        while found is None and scanned < MAX_CHILDREN_SCANNED:
            page = children(conn, node.id, after_position=after)
            if not page:
                break
            found = next((child for child in page if masked(child.title) == step), None)
            scanned += len(page)
            after = page[-1].position
        if found is None:
            return None
        node = found
    return node


def plan_as_json(plan: ReadingPlan) -> dict[str, list[dict[str, object]]]:
    return {task: [field.as_json() for field in fields] for task, fields in plan.items()}


def plan_from_json(value: object) -> ReadingPlan:
    if not isinstance(value, dict):
        raise ValueError("the reading plan is not an object")
    return {str(task): tuple(Field.from_json(field) for field in fields) for task, fields in value.items()}


def describe(plan: ReadingPlan) -> dict[str, list[str]]:
    """Per task, the fields read with their citation counts, for reports."""
    return {task: [f"{field.name} ({field.citations} cited)" for field in fields] for task, fields in plan.items()}
