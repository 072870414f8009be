"""One model call, start to end: stream it, log it, retry it once, store what it wrote.

Unpack and ask differ only in their prompt and in what counts as a usable
answer; everything else about a call is the same rule and lives here:

- every attempt — ok, failed or cancelled — is a row in the call log
  (models/llm/calls.py), written when the attempt ends, whatever ended it;
  so is every true/false judgement (`logged_judgement`), with the same
  provenance: the model, its sha256 and how it ran (the repack choice);
- if the model process stops mid-call, the log row says how and what the
  process last said, and the error names what was being done;
- a cancel between tokens raises `GenerationCancelled` and writes nothing
  under the node;
- an attempt that gives nothing usable is marked failed in the log and
  tried once more with the next seed (`ATTEMPTS` in all);
- what the model wrote is stored as children of the node in one
  transaction, with the model's identity, prompt, parameters and call id
  as provenance, so a result can be traced to the exact weights.

The generators here yield `TokenEvent`s (and `RetryEvent`s) for a UI or
a progress line; callers write `result = yield from …` to get the value.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kb.tree import Node, add_children, node_by_id
from models.llm.calls import CallOutcome, Outcome, log_call, mark_failed, new_call_uid
from models.llm.judge import ANSWERS, PROMPT_VERSION, Judgement, judge, judge_prompt
from models.llm.model import LLM, CancelCheck, GenerationCancelled, Request
from models.llm.model_process import ModelProcessStopped

ATTEMPTS = 2

T = TypeVar("T")


@dataclass(frozen=True)
class TokenEvent:
    """A piece of generated text; `tokens_per_second` is for a status line."""

    text: str
    attempt: int
    tokens_out: int
    elapsed_ms: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_out / (self.elapsed_ms / 1000) if self.elapsed_ms > 0 else 0.0


@dataclass(frozen=True)
class RetryEvent:
    """The first attempt gave nothing usable; a second one (another seed) starts."""

    reason: str
    attempt: int


@dataclass(frozen=True)
class CallSpec:
    """What is particular to one kind of call (unpack, ask): its log purpose and what the log keeps."""

    purpose: str
    node: Node
    cancel: CancelCheck
    labeler: str | None
    extra_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Usable(Generic[T]):
    """The first attempt whose answer was usable: the parsed value, its call and its seed."""

    value: T
    outcome: CallOutcome
    attempt: int
    seed: int


DOING = {"unpack": "unpacking", "ask": "answering a question about", "judge": "judging"}


def cancelled(spec: CallSpec) -> GenerationCancelled:
    return GenerationCancelled(f"{spec.purpose} of {spec.node.uid!r} was cancelled; nothing was written")


def doing(purpose: str, node: Node | None) -> str:
    """'unpacking 'fb:fr/geography'': what a stopped model process was doing, for its error message."""
    verb = DOING.get(purpose, purpose)
    return f"{verb} {node.uid!r}" if node is not None else verb


def run_call(
    conn: sqlite3.Connection,
    llm: LLM,
    spec: CallSpec,
    request: Request,
    *,
    attempt: int,
    enough: Callable[[str], bool],
) -> Generator[TokenEvent, None, CallOutcome]:
    """Stream one call, yield its tokens, log it, and return its CallOutcome.

    `enough(text)` lets the caller stop generation early (k lines are in);
    a cancel or an error is logged before it propagates.
    """
    identity = llm.identity
    prompt = request.logged_prompt(identity.chat)
    params = {**request.params.as_dict(), **spec.extra_params, "stop": list(request.stop), "runtime": identity.runtime}
    uid = new_call_uid()
    started = time.perf_counter()
    pieces: list[str] = []
    outcome: Outcome = "failed"
    error: str | None = None
    stopped = False
    try:
        yield from _stream(llm, request, spec.cancel, attempt, enough, pieces, started)
        outcome = "ok"
    except GenerationCancelled:
        outcome, error = "cancelled", "cancelled by the user"
        raise cancelled(spec) from None
    except (GeneratorExit, KeyboardInterrupt):
        outcome, error = "cancelled", "interrupted"
        raise
    except ModelProcessStopped as exc:
        error, stopped = exc.for_the_log(), True
        raise exc.during(doing(spec.purpose, spec.node)) from None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        response = "".join(pieces)
        ms = (time.perf_counter() - started) * 1000
        count = _word_count if stopped else llm.count_tokens  # a stopped process is not restarted to count
        finished = CallOutcome(uid, response, prompt, ms, _safe(count, prompt), _safe(count, response), params)
        log_call(conn, finished, spec.node.id, spec.purpose, identity, outcome, error, spec.labeler)
    return finished


def _stream(
    llm: LLM,
    request: Request,
    cancel: CancelCheck,
    attempt: int,
    enough: Callable[[str], bool],
    pieces: list[str],
    started: float,
) -> Generator[TokenEvent, None, None]:
    """The model's tokens, appended to `pieces` as they come; the stream is closed however this ends."""
    stream = llm.stream(request, cancel)
    try:
        for piece in stream:
            pieces.append(piece)
            yield TokenEvent(piece, attempt, len(pieces), (time.perf_counter() - started) * 1000)
            if cancel():
                raise GenerationCancelled
            if enough("".join(pieces)):
                break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _word_count(text: str) -> int:
    return len(text.split())


def _safe(count: Callable[[str], int], text: str) -> int:
    try:
        return count(text)
    except Exception:
        return _word_count(text)


def logged_judgement(
    conn: sqlite3.Connection,
    llm: LLM,
    source: str,
    statement: str,
    *,
    purpose: str,
    node: Node | None = None,
    labeler: str | None = None,
    extra_params: dict[str, Any] | None = None,
) -> Judgement:
    """models.llm.judge.judge, logged as a call like any other (purpose 'judge', or 'calibrate' for a truth set).

    Nothing is sampled, so the log keeps the two log-probabilities and their difference as the
    response. If the model process stops, the row says so and the error names the statement's node.
    """
    identity = llm.identity
    prompt = judge_prompt(source, statement)
    params = {"answers": list(ANSWERS), "prompt_version": PROMPT_VERSION, **(extra_params or {})}
    params["runtime"] = identity.runtime
    started = time.perf_counter()
    found: Judgement | None = None
    outcome: Outcome = "failed"
    error: str | None = None
    stopped = False
    try:
        found = judge(llm, source, statement)
        outcome = "ok"
        return found
    except ModelProcessStopped as exc:
        error, stopped = exc.for_the_log(), True
        raise exc.during(doing("judge", node)) from None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        response = found.described() if found is not None else ""
        ms = (time.perf_counter() - started) * 1000
        tokens_in = _word_count(prompt) if stopped else _safe(llm.count_tokens, prompt)
        finished = CallOutcome(new_call_uid(), response, prompt, ms, tokens_in, 0, params)
        log_call(conn, finished, node.id if node is not None else None, purpose, identity, outcome, error, labeler)


def until_usable(
    conn: sqlite3.Connection,
    llm: LLM,
    spec: CallSpec,
    request_for: Callable[[int], Request],
    parse: Callable[[str], T | None],
    why_unusable: Callable[[str], str],
    *,
    enough: Callable[[str], bool],
    reasons: list[str],
) -> Generator[TokenEvent | RetryEvent, None, Usable[T] | None]:
    """Up to `ATTEMPTS` calls, `request_for(attempt)` each, until `parse` gives a usable value.

    An unusable answer is marked failed in the log, its reason appended to
    `reasons`, and a RetryEvent announces the next attempt. Returns None when
    every attempt was unusable, so the caller raises its own error.
    """
    for attempt in range(ATTEMPTS):
        if spec.cancel():
            raise cancelled(spec)
        request = request_for(attempt)
        outcome = yield from run_call(conn, llm, spec, request, attempt=attempt + 1, enough=enough)
        value = parse(outcome.response)
        if value:
            return Usable(value, outcome, attempt + 1, request.params.seed)
        reason = why_unusable(outcome.response)
        reasons.append(reason)
        mark_failed(conn, outcome.uid, f"nothing usable: {reason}")
        if attempt + 1 < ATTEMPTS:
            yield RetryEvent(reason, attempt + 2)
    return None


E = TypeVar("E")


def final(events: Iterable[object], kind: type[E], on_token: Callable[[TokenEvent], None] | None = None) -> E:
    """The result that ends an event stream (unpack_stream, ask_stream), for callers that only want it;
    tokens on the way go to `on_token`."""
    for event in events:
        if isinstance(event, kind):
            return event
        if on_token is not None and isinstance(event, TokenEvent):
            on_token(event)
    raise AssertionError(f"the stream ended without a {kind.__name__}")  # pragma: no cover


def store_generated(
    conn: sqlite3.Connection,
    llm: LLM,
    node: Node,
    new: list[tuple[str, str, str]],
    outcome: CallOutcome,
    record: dict[str, Any],
    *,
    what: str,
    each: list[dict[str, Any]] | None = None,
) -> list[Node]:
    """Store (title, body, kind) children the model wrote, each with its full provenance.

    `record` holds what is particular to the call (purpose, seed, …); the model's
    identity, prompt, parameters and call id are added here, and `each` adds what is
    particular to one child (its evidence). If storing fails, the logged call says so
    before the error propagates.
    """
    identity = llm.identity
    provenance = {
        **record,
        "model": identity.name,
        "model_sha256": identity.sha256,
        "prompt": outcome.prompt,
        "params": outcome.params,
        "llm_call": outcome.uid,
    }
    fresh = node_by_id(conn, node.id) or node
    try:
        return add_children(conn, fresh, new, origin="llm", provenance=provenance, each=each)
    except Exception as error:
        mark_failed(conn, outcome.uid, f"could not store {what}: {error}")
        raise
