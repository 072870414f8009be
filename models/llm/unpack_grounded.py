"""Grounded unpacking, the default: statements that restate parts of a node, each with its evidence.

The node's text is cut into parts by rule (models/llm/grounding.py `parts`); the model restates
them as simple sentences that name their subject from the breadcrumbs and cite the part they
restate (models/llm/unpack_text.py `grounded_prompt`). Every sentence is checked against its
evidence — the cited part, the node's title and the breadcrumbs — and one that says a figure, name,
unit, negation or more than one content word its evidence lacks is dropped. If a call's answer had
drops, or left parts unrestated, the call is made once more with the next seed and the two answers
are pooled. A part no kept sentence restates is then *quoted*: its breadcrumbs, the node's title and
the part itself, a statement that cannot say more than the node. Every drop and quote is recorded in
the call log (`checks`) and in each child's provenance, so the counts can be read back.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any

from kb.tree import PATH_SEPARATOR, Node, ancestors
from models.llm.calls import CallOutcome, record_checks
from models.llm.generation import ATTEMPTS, CallSpec, RetryEvent, TokenEvent, run_call
from models.llm.grounding import Part, content_words, names, terms
from models.llm.model import LLM, GenerationParams
from models.llm.node_text import node_text
from models.llm.unpack_text import Dropped, Grounded, GroundedRequest, build_grounded_request, parse_grounded

RESTATED, QUOTED = "restated", "quoted"


@dataclass(frozen=True)
class Statement:
    """A child to store: its text, and what its provenance adds to the unpack's (evidence, form, call)."""

    text: str
    provenance: dict[str, Any]


@dataclass
class GroundedAnswer:
    statements: list[Statement] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    calls: list[CallOutcome] = field(default_factory=list)
    attempts: int = 0

    @property
    def last_call(self) -> CallOutcome:
        return self.calls[-1]


def grounded_statements(
    conn: sqlite3.Connection,
    llm: LLM,
    node: Node,
    spec: CallSpec,
    *,
    k: int,
    params: GenerationParams,
    base_seed: int,
    existing: list[str],
) -> Generator[TokenEvent | RetryEvent, None, GroundedAnswer]:
    """Up to k grounded statements about `node`, from at most ATTEMPTS calls and then quoted parts."""
    parent = [node.title, node.body, node_text(node)]
    answer = GroundedAnswer()
    kept: list[tuple[Grounded, CallOutcome]] = []
    built: GroundedRequest | None = None
    for attempt in range(ATTEMPTS):
        built = build_grounded_request(
            conn, node, k=k, params=params.with_seed(base_seed + attempt), chat=llm.identity.chat
        )
        if attempt:  # the same prompt straight after the first attempt: its evaluation can be reused
            built = GroundedRequest(replace(built.request, continues=True), built.context, built.parts)
        known = existing + [statement.text for statement, _ in kept]
        request = built

        def enough(text: str, request: GroundedRequest = request, known: list[str] = known) -> bool:
            complete = text[: text.rfind("\n") + 1] if "\n" in text else ""
            found, _ = parse_grounded(complete, request, title=node.title, parent=parent, existing=known, k=k)
            return len(known) - len(existing) + len(found) >= k

        outcome = yield from run_call(conn, llm, spec, built.request, attempt=attempt + 1, enough=enough)
        answer.calls.append(outcome)
        answer.attempts = attempt + 1
        found, dropped = parse_grounded(
            outcome.response, built, title=node.title, parent=parent, existing=known, k=k - len(kept)
        )
        kept += [(statement, outcome) for statement in found]
        answer.dropped += dropped
        record_checks(
            conn,
            outcome.uid,
            {
                "kept": [statement.text for statement in found],
                "dropped": [{"text": gone.text, "unsupported": gone.why} for gone in dropped],
            },
        )
        covered = _restated_parts(built.parts, [statement for statement, _ in kept])
        enough_said = covered >= set(range(len(built.parts))) and len(kept) >= min(k, _wanted(node))
        if len(kept) >= k or (not dropped and enough_said):
            break
        if attempt + 1 < ATTEMPTS:
            if dropped:
                why = f"{len(dropped)} statement{'s' if len(dropped) != 1 else ''} said more than the node"
            else:
                why = "the node has more to restate" if kept else "no statement restated the node"
            yield RetryEvent(why, attempt + 2)
    assert built is not None
    answer.statements = [_restated(conn, node, built, statement, outcome) for statement, outcome in kept]
    covered = _restated_parts(built.parts, [statement for statement, _ in kept])
    quoted = _quoted(built, node, covered, room=k - len(kept))
    answer.statements += quoted
    if quoted:
        record_checks(conn, answer.last_call.uid, {"quoted": [statement.text for statement in quoted]})
    return answer


LONG_TEXT = 40  # a node with this much text has more than one thing to say


def _wanted(node: Node) -> int:
    """How many statements a node's text calls for before a second answer is not worth asking for."""
    return 2 if len((node.body or node.title).strip()) >= LONG_TEXT else 1


def _span(node: Node, part: Part) -> dict[str, Any]:
    return {"node": node.uid, "field": part.field, "start": part.start, "end": part.end, "text": part.text}


def _restated(
    conn: sqlite3.Connection, node: Node, built: GroundedRequest, statement: Grounded, outcome: CallOutcome
) -> Statement:
    evidence = [_span(node, built.parts[index]) for index in statement.cites]
    said = {word.lower() for word in names(statement.text)} | set(content_words(statement.text))
    title_words = {word.lower() for word in re.findall(r"\w+", node.title)}
    if built.parts[0].field == "body" and said & title_words:
        evidence.insert(0, {"node": node.uid, "field": "title", "start": 0, "end": len(node.title), "text": node.title})
    for above in ancestors(conn, node.id)[1:-1]:
        if said & {word.lower() for word in re.findall(r"\w+", above.title)}:
            evidence.append(
                {"node": above.uid, "field": "title", "start": 0, "end": len(above.title), "text": above.title}
            )
    return Statement(statement.text, {"form": RESTATED, "llm_call": outcome.uid, "evidence": evidence})


def _restated_parts(parts: list[Part], kept: list[Grounded]) -> set[int]:
    """The parts some kept statement restates: it cites the part and says at least a third of the
    part's figures and content words. Citing alone is not enough — a short statement that shares one
    word with a long part ("broadcasting is available" beside a list of stations) leaves that part
    unsaid, to be quoted."""
    restated: set[int] = set()
    for statement in kept:
        said = terms(statement.text)
        for index in statement.cites:
            wanted = terms(parts[index].text)
            if len(said & wanted) * 3 >= len(wanted):
                restated.add(index)
    return restated


def _quoted(built: GroundedRequest, node: Node, covered: set[int], *, room: int) -> list[Statement]:
    """The parts no kept statement restates, quoted with their breadcrumbs (a lone part would copy the node)."""
    if len(built.parts) < 2:
        return []
    context = built.context if built.context != "(top level)" else ""
    quoted: list[Statement] = []
    for index, part in enumerate(built.parts):
        if index in covered or len(quoted) >= room:
            continue
        # A part cut from the title is the title's own text, and a title cut from the body ("French Guiana:
        # tropical; …") is the body's start: naming the title before the part would say it twice.
        named = part.field == "body" and not _title_is_body_start(node)
        subject = PATH_SEPARATOR.join(filter(None, [context, node.title if named else ""]))
        quoted.append(Statement(f"{subject}: {part.text}", {"form": QUOTED, "evidence": [_span(node, part)]}))
    return quoted


def _title_is_body_start(node: Node) -> bool:
    """A title made from the start of the body (Factbook notes: the text cut short with "…")."""
    start = node.title.rstrip("…").rstrip()
    return bool(start) and node.body.startswith(start)
