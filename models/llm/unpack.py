"""Unpacking: the LLM writes k simpler child statements under a node (DESIGN §1.5).

Two modes. *Grounded*, the default (models/llm/unpack_grounded.py): statements that
restate parts of the node, each stored with its evidence; kind `statement`.
*Elaboration* (`elaborate=True`): statements from the model's own knowledge, kind
`elaboration`, with whatever they say that the node does not listed in their
provenance (`unsupported`), so it can be marked, not hidden.

The flow for one node is: build a prompt from the node and its ancestors
(models/llm/unpack_text.py), run the call through models/llm/generation.py (streamed,
logged, retried once, cancellable between tokens), parse the answer into
statements, and only then write the children in one transaction. So a
cancelled or failed unpack leaves no children, and every attempt — ok, failed
or cancelled — is a row in the call log.

`unpack_stream` is the API for the app (a generator of events, for a thread
worker); `unpack` drains it for scripts; `unpack_tree` is the batch.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

from kb.db import WorkspaceError
from kb.errors import ZNavigatorError
from kb.progress import NoProgress, Progress
from kb.review import generated_children, provenance
from kb.tree import Node
from models.llm.calls import CallOutcome, mark_failed
from models.llm.generation import ATTEMPTS, CallSpec, RetryEvent, TokenEvent, final, store_generated, until_usable
from models.llm.grounding import evidence_text, parts, unsupported
from models.llm.model import LLM, CancelCheck, GenerationCancelled, GenerationParams, Request, as_cancel_check
from models.llm.model_credences import CreditReport, credit_safely
from models.llm.model_process import ModelProcessStopped
from models.llm.node_text import context_path, node_text
from models.llm.unpack_grounded import Statement, grounded_statements
from models.llm.unpack_text import DEFAULT_K, build_request, parse_statements, why_unusable

UNPACK_KIND = "statement"  # grounded statements
ELABORATION_KIND = "elaboration"  # statements from the model's own knowledge
GROUNDED_TEMPERATURE = 0.2  # restating wants the likeliest words; --temperature overrides it


def kind_for(elaborate: bool) -> str:
    return ELABORATION_KIND if elaborate else UNPACK_KIND


class UnpackFailed(ZNavigatorError):
    """The model gave nothing usable (after the retry); the message says what happened and what to try."""


@dataclass(frozen=True)
class UnpackResult:
    node: Node
    children: list[Node]
    cached: bool
    call_uid: str | None
    ms: float
    credit: CreditReport | None = None  # the model's credence in each new child (None for stored children)
    attempts: int = 1  # model calls made (a grounded unpack asks again when an answer said too much)


@dataclass(frozen=True)
class DoneEvent:
    result: UnpackResult


UnpackEvent = TokenEvent | RetryEvent | DoneEvent


def stored_children(conn: sqlite3.Connection, node: Node, *, elaborate: bool = False) -> list[Node]:
    """The generated children of one mode a reader should see (not rejected; edits included)."""
    return generated_children(conn, node.id, kind=kind_for(elaborate))


def _previous_sets(conn: sqlite3.Connection, node: Node, kind: str) -> int:
    sets = {
        provenance(conn, child.id).get("set") or provenance(conn, child.id).get("llm_call")
        for child in generated_children(conn, node.id, kind=kind, include_rejected=True)
    }
    sets.discard(None)
    return len(sets)


def unpack_stream(
    conn: sqlite3.Connection,
    llm: LLM,
    node: Node,
    *,
    k: int = DEFAULT_K,
    params: GenerationParams | None = None,
    regenerate: bool = False,
    elaborate: bool = False,
    cancel: threading.Event | CancelCheck | None = None,
    labeler: str | None = None,
) -> Iterator[UnpackEvent]:
    """Unpack `node`, yielding TokenEvents as text arrives and a final DoneEvent.

    Without `regenerate`, a node that already has generated children of this mode is a
    cache hit: its stored children come back at once and the model is not
    touched. With it, a new set is added beside the old. Raises
    GenerationCancelled (nothing written), UnpackFailed (nothing usable after
    one retry) or model_file.ModelUnavailable.
    """
    if k < 1:
        raise WorkspaceError("k must be at least 1")
    started = time.perf_counter()
    kind = kind_for(elaborate)
    if not regenerate:
        cached = stored_children(conn, node, elaborate=elaborate)
        if cached:
            yield DoneEvent(UnpackResult(node, cached, True, None, (time.perf_counter() - started) * 1000))
            return
    params = params or GenerationParams(temperature=0.7 if elaborate else GROUNDED_TEMPERATURE)
    params = GenerationParams(**{**params.as_dict(), "max_tokens": max(params.max_tokens, 40 * k + 20)})
    existing = [child.title for child in stored_children(conn, node, elaborate=elaborate)]
    base_seed = params.seed + 10 * _previous_sets(conn, node, kind)
    mode = "elaboration" if elaborate else "grounded"
    spec = CallSpec("unpack", node, as_cancel_check(cancel), labeler, {"k": k, "mode": mode})
    if elaborate:
        made = yield from _elaborations(
            conn, llm, node, spec, k=k, params=params, base_seed=base_seed, existing=existing
        )
    else:
        made = yield from _grounded(conn, llm, node, spec, k=k, params=params, base_seed=base_seed, existing=existing)
    record = {"purpose": "unpack", "mode": mode, "seed": made.seed, "k": k, "attempt": made.attempt, "set": made.set}
    new = [(statement.text, "", kind) for statement in made.statements]
    each = [statement.provenance for statement in made.statements]
    children = store_generated(conn, llm, node, new, made.call, record, what="the children", each=each)
    credit = credit_safely(conn, llm, node, children, labeler=labeler)
    ms = (time.perf_counter() - started) * 1000
    yield DoneEvent(UnpackResult(node, children, False, made.call.uid, ms, credit, made.attempt))


@dataclass(frozen=True)
class _Made:
    """What one unpack's calls made: the statements to store, the call they are credited to, and its seed."""

    statements: list[Statement]
    call: CallOutcome
    attempt: int
    seed: int
    set: str  # the first call's uid: the set these children form, however many calls made them


def _grounded(
    conn: sqlite3.Connection,
    llm: LLM,
    node: Node,
    spec: CallSpec,
    *,
    k: int,
    params: GenerationParams,
    base_seed: int,
    existing: list[str],
) -> Generator[TokenEvent | RetryEvent, None, _Made]:
    answer = yield from grounded_statements(
        conn, llm, node, spec, k=k, params=params, base_seed=base_seed, existing=existing
    )
    if not answer.statements:
        for call in answer.calls:
            mark_failed(conn, call.uid, "nothing usable: no statement its evidence supports")
        dropped = f"; {len(answer.dropped)} said more than the node" if answer.dropped else ""
        raise UnpackFailed(
            f"the model restated nothing of {node.uid!r} that its text supports in {answer.attempts} "
            f"attempt{'s' if answer.attempts != 1 else ''}{dropped}; nothing was written",
            hint="a node that is only a heading has nothing to restate; `--elaborate` asks for the model's own "
            "statements, marked as such",
        )
    seed = base_seed + answer.attempts - 1
    return _Made(answer.statements, answer.last_call, answer.attempts, seed, answer.calls[0].uid)


def _elaborations(
    conn: sqlite3.Connection,
    llm: LLM,
    node: Node,
    spec: CallSpec,
    *,
    k: int,
    params: GenerationParams,
    base_seed: int,
    existing: list[str],
) -> Generator[TokenEvent | RetryEvent, None, _Made]:
    parent = [node.title, node.body, node_text(node)]

    def parse(text: str) -> list[str]:
        return parse_statements(text, parent=parent, existing=existing, k=k)

    def enough(text: str) -> bool:
        return len(parse(text[: text.rfind("\n") + 1] if "\n" in text else "")) >= k

    def request_for(attempt: int) -> Request:
        return build_request(conn, node, k=k, params=params.with_seed(base_seed + attempt), chat=llm.identity.chat)

    reasons: list[str] = []
    usable = yield from until_usable(conn, llm, spec, request_for, parse, why_unusable, enough=enough, reasons=reasons)
    if usable is None:
        raise UnpackFailed(
            f"the model gave no usable statements for {node.uid!r} in {ATTEMPTS} attempts ({'; '.join(reasons)}); "
            "nothing was written",
            hint="try again with --regenerate or another --seed, or a larger model via --model",
        )
    said_by_node = evidence_text(context_path(conn, node), node.title, parts(node.title, node.body, 1))
    statements = [
        Statement(line, {"form": "elaborated", "evidence": [], "unsupported": unsupported(line, said_by_node)})
        for line in usable.value
    ]
    return _Made(statements, usable.outcome, usable.attempt, usable.seed, usable.outcome.uid)


class UnpackOptions(TypedDict, total=False):
    """`unpack_stream`'s keywords, which `unpack` passes on as they are (mypy checks they match)."""

    k: int
    params: GenerationParams | None
    regenerate: bool
    elaborate: bool
    cancel: threading.Event | CancelCheck | None
    labeler: str | None


def unpack(
    conn: sqlite3.Connection,
    llm: LLM,
    node: Node,
    *,
    on_token: Callable[[TokenEvent], None] | None = None,
    **options: Unpack[UnpackOptions],
) -> UnpackResult:
    """`unpack_stream` for callers that only want the result."""
    return final(unpack_stream(conn, llm, node, **options), DoneEvent, on_token).result


# -- batch ----------------------------------------------------------------------------


def plan_calls(
    conn: sqlite3.Connection, node: Node, *, depth: int, k: int, regenerate: bool = False, elaborate: bool = False
) -> int:
    """How many nodes `unpack_tree` would call the model for: stored levels are walked, missing ones estimated at k.

    A grounded unpack may make a second call for a node (when the first answer said more than the
    node); the plan counts nodes, and the report counts the calls made."""

    def fresh(level: int) -> int:
        return 0 if level >= depth else 1 + k * fresh(level + 1)

    def walk(current: Node, level: int, force: bool) -> int:
        if level >= depth:
            return 0
        kids = [] if force else stored_children(conn, current, elaborate=elaborate)
        if not kids:
            return fresh(level)
        return sum(walk(kid, level + 1, False) for kid in kids)

    return walk(node, 0, regenerate)


@dataclass
class BatchReport:
    calls: int = 0
    cached: int = 0
    created: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    new_nodes: list[Node] = field(default_factory=list)
    stopped: ModelProcessStopped | None = None  # the model process stopped; the batch stopped with it


def unpack_tree(
    conn: sqlite3.Connection,
    llm: LLM,
    node: Node,
    *,
    depth: int,
    k: int = DEFAULT_K,
    params: GenerationParams | None = None,
    regenerate: bool = False,
    elaborate: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | CancelCheck | None = None,
    labeler: str | None = None,
) -> BatchReport:
    """Unpack `node` and its generated descendants, breadth first, `depth` levels deep.

    Resumable: a node with stored children is not called again (only `node`
    itself is regenerated when asked). Each node's children are committed as
    they come, so an interrupted batch keeps what it finished. A node that
    fails is reported and skipped; the batch goes on. If the model process
    stops (a crash, a kill), the batch stops too and `stopped` says why: the
    same fault would likely hit the next node, and a person should know.
    """
    progress = progress or NoProgress()
    check = as_cancel_check(cancel)
    report = BatchReport()
    planned = plan_calls(conn, node, depth=depth, k=k, regenerate=regenerate, elaborate=elaborate)
    progress.start(f"unpacking {node.title[:40]}", planned)
    queue: list[tuple[Node, int]] = [(node, 0)]
    while queue:
        current, level = queue.pop(0)
        if level >= depth:
            continue
        if check() or progress.cancelled:
            report.cancelled = True
            break
        try:
            result = unpack(
                conn,
                llm,
                current,
                k=k,
                params=params,
                regenerate=regenerate and level == 0,
                elaborate=elaborate,
                cancel=lambda: check() or progress.cancelled,
                labeler=labeler,
            )
        except GenerationCancelled:
            report.cancelled = True
            break
        except ModelProcessStopped as error:
            report.stopped = _kept_so_far(error, report) if report.created else error
            break
        except UnpackFailed as error:
            report.calls += ATTEMPTS
            report.failed.append((current.uid, str(error)))
            progress.advance(1)
            continue
        if result.cached:
            report.cached += 1
        else:
            report.calls += result.attempts
            report.created += len(result.children)
            report.new_nodes.extend(result.children)
            progress.advance(1)
        if result.credit is not None and result.credit.stopped is not None:
            stopped = result.credit.stopped
            judged = len(result.credit.credences)
            report.stopped = stopped.during(
                stopped.doing,
                kept=f"its {len(result.children)} statements are stored ({report.created} in all), {judged} with a "
                "model credence; run the same command to resume and `navigator llm credences` to judge the rest",
            )
            break
        queue.extend((child, level + 1) for child in result.children)
    return report


def _kept_so_far(error: ModelProcessStopped, report: BatchReport) -> ModelProcessStopped:
    made = f"{report.created} statement{'s' if report.created != 1 else ''}"
    return error.during(
        error.doing,
        kept=f"nothing was written for it; the {made} made before it are kept (run the same command to resume)",
    )
