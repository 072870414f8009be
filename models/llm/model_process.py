"""The model process: every model call runs in a child process that this module starts, talks to and stops.

A crash inside llama.cpp — a segfault in a matmul kernel, an abort on a damaged file, the
kernel's out-of-memory killer — ends that process, not the app or the command that asked. The
call raises `ModelProcessStopped`, which says how the process stopped and what to try, and the
next call starts a fresh process. `ModelProcess` is an `LLM` (models.llm.model), so unpack,
ask, the judge and calibration use it unchanged.

The child runs models.llm.model_server; the two speak JSON lines over its stdin and stdout, so
only plain data crosses. A reader thread here routes each answer to the call that asked for it;
a call waits in short steps so that its cancel check (Esc in the app) ends it within a fraction
of a second, telling the child to stop generating. The child's stderr is drained into a short
buffer: llama.cpp's output never reaches a terminal the app is drawing, and the last lines are
kept to show what a crashed process said.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from kb.errors import ZNavigatorError
from models.llm.model import CancelCheck, GenerationCancelled, LoadOptions, ModelIdentity, Request, Timing
from models.llm.model_file import ModelUnavailable, check_file, resolve_model_path
from models.llm.repack import REPACK_ENV

POLL_SECONDS = 0.05  # how often a waiting call looks at its cancel check
STOP_SECONDS = 10.0  # how long a cancelled call may keep the process busy before the process is replaced
EXIT_SECONDS = 5.0  # how long a process whose output ended may take to exit before it is killed
STDERR_LINES = 40

Message = dict[str, Any]
_EOF: Message = {"event": "eof"}


class ModelProcessStopped(ZNavigatorError):
    """The model process ended (or stopped answering) in the middle of a call; nothing that call made was stored.

    `cause` is how it ended ("signal 11, SIGSEGV", "exit code 1", "no answer within 60 s");
    `doing` what it was doing, as the caller words it (`during`); `last_words` the end of its stderr.
    """

    def __init__(
        self, cause: str, *, returncode: int | None, last_words: str = "", doing: str = "", kept: str = ""
    ) -> None:
        self.cause = cause
        self.returncode = returncode
        self.last_words = last_words
        self.doing = doing
        self.kept = kept or "nothing was written"
        while_ = f" while {doing}" if doing else ""
        super().__init__(f"the model process stopped ({cause}){while_}; {self.kept}", hint=_hint(returncode, cause))

    @property
    def signal_number(self) -> int | None:
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None

    def during(self, doing: str, kept: str = "") -> ModelProcessStopped:
        """The same stop, worded for the caller that knows what was being done and what was kept."""
        return ModelProcessStopped(
            self.cause, returncode=self.returncode, last_words=self.last_words, doing=doing, kept=kept or self.kept
        )

    def for_the_log(self) -> str:
        """What the call log keeps: how it stopped and the process's last words."""
        said = f" — its last output: {self.last_words}" if self.last_words else ""
        return f"model process stopped ({self.cause}){said}"


def _hint(returncode: int | None, cause: str) -> str:
    fresh = "the next call starts a fresh model process"
    if cause.startswith("no answer"):
        return f"it was stopped; {fresh}. A larger --n-ctx or a smaller model may need less time"
    if returncode is not None and returncode == -signal.SIGKILL:
        return f"it was killed — by the system when memory runs out, or by hand; {fresh}"
    if returncode is not None and returncode < 0:
        return (
            f"llama.cpp crashed; {fresh}. If it happens again, check the model with `navigator llm status`, "
            f"or turn weight repacking off with --repack off (or {REPACK_ENV}=off)"
        )
    return f"{fresh}; `navigator llm status` checks the model"


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"signal {-returncode}, {name}"
    return f"exit code {returncode}"


def last_words(lines: list[str]) -> str:
    """The telling part of a crashed process's stderr: the fatal error and where it happened, else its last lines.

    faulthandler writes "Fatal Python error: Segmentation fault", then each thread's frames, most
    recent first, the crashing thread marked "Current thread"; llama.cpp writes GGML_ASSERT or
    GGML_ABORT lines before it aborts.
    """
    telling = [line.strip() for line in lines if "Fatal Python error" in line or "GGML_A" in line]
    for index, line in enumerate(lines):
        if line.startswith("Current thread") and index + 1 < len(lines):
            telling.append(f"in {lines[index + 1].strip()}")
            break
    return " | ".join(telling or [line.strip() for line in lines[-3:]])


def request_json(request: Request) -> Message:
    """A Request as plain data; models.llm.model_server.request_from_json reads it back."""
    return {
        "prompt": request.prompt,
        "params": request.params.as_dict(),
        "stop": list(request.stop),
        "messages": request.messages,
        "json_schema": request.json_schema,
        "continues": request.continues,
    }


@dataclass
class _Call:
    id: int
    box: queue.Queue[Message] = field(default_factory=queue.Queue)
    done: bool = False


class _Child:
    """One running model process: its pipes, the thread that routes its answers, and the end of its stderr."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # where `models` lives, for a child started elsewhere
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "models.llm.model_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # terminal signals (Ctrl+C, Ctrl+Z) go to the parent, which decides
        )
        self.calls: dict[int, _Call] = {}
        self.lock = threading.Lock()
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.stopped: ModelProcessStopped | None = None
        self.loaded: Message | None = None
        self.stopping: dict[int, float] = {}  # cancelled calls the child has not yet finished: id -> when
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._route, args=(self.proc.stdout,), daemon=True, name="model-answers").start()
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True, name="model-stderr").start()

    @property
    def alive(self) -> bool:
        return self.stopped is None and self.proc.poll() is None

    def _route(self, stream: IO[bytes]) -> None:
        for raw in stream:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            with self.lock:
                call = self.calls.get(int(message.get("id", 0)))
                if message.get("event") in ("end", "cancelled", "error", "result", "loaded"):
                    self.stopping.pop(int(message.get("id", 0)), None)
            if call is not None:
                call.box.put(message)
        with self.lock:
            waiting = list(self.calls.values())
        for call in waiting:
            call.box.put(_EOF)

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.stderr.append(line)

    @property
    def stuck(self) -> bool:
        """A cancelled call has kept the process busy for longer than any token takes: it will not come back."""
        with self.lock:
            oldest = min(self.stopping.values(), default=None)
        return oldest is not None and time.monotonic() - oldest > STOP_SECONDS

    def open(self, call_id: int) -> _Call:
        call = _Call(call_id)
        with self.lock:
            self.calls[call_id] = call
        return call

    def close_call(self, call: _Call) -> None:
        with self.lock:
            self.calls.pop(call.id, None)

    def send(self, message: Message) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self.ended() from None

    def ended(self, cause: str | None = None) -> ModelProcessStopped:
        """Why this process is gone: waits for its exit status (killing it if it lingers), remembered once known."""
        if self.stopped is None:
            if cause is not None:
                self.kill()
            try:
                returncode = self.proc.wait(timeout=EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
                returncode = self.proc.wait()
            said = last_words(list(self.stderr))
            how = cause or describe_exit(returncode)
            self.stopped = ModelProcessStopped(how, returncode=returncode, last_words=said)
        return self.stopped

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def shut(self) -> None:
        """Close stdin (the child stops by itself), and kill it if it has not within a moment."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()


class ModelProcess:
    """The `LLM` every surface uses: the model runs in a child process, started on the first call that needs it.

    Cache hits never start it, so showing stored children costs nothing and works without a
    model. After the process stops, the next call starts a new one (and loads the model again).
    """

    def __init__(self, model: Path | str | None = None, options: LoadOptions | None = None) -> None:
        self.model = model
        self.options = options or LoadOptions()
        self.timing = Timing()
        self._child: _Child | None = None
        self._identity: ModelIdentity | None = None
        self._system: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._start_lock = threading.Lock()
        self.starts = 0  # processes started so far, for tests and the bench

    # -- the LLM protocol ----------------------------------------------------------------------

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            self._ensure_loaded(None)
        assert self._identity is not None
        return self._identity

    def stream(self, request: Request, cancel: CancelCheck) -> Iterator[str]:
        child, call = self._begin({"op": "stream", "request": request_json(request)}, cancel)
        started = time.perf_counter()
        self.timing = Timing(load_ms=self.timing.load_ms)
        try:
            while True:
                event = self._wait(child, call, cancel)
                kind = event["event"]
                if kind == "token":
                    if self.timing.first_token_ms is None:
                        self.timing.first_token_ms = (time.perf_counter() - started) * 1000
                    self.timing.tokens += 1
                    self.timing.generate_ms = (time.perf_counter() - started) * 1000
                    yield str(event["text"])
                elif kind == "end":
                    call.done = True
                    self.timing.generate_ms = (time.perf_counter() - started) * 1000
                    return
                else:
                    call.done = True
                    self._raise(event)
        finally:
            self._end(child, call)

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return int(self._ask({"op": "count_tokens", "text": text}))

    def choice_logprobs(self, head: str, tail: str, choices: Sequence[str]) -> list[float]:
        value = self._ask({"op": "choice_logprobs", "head": head, "tail": tail, "choices": list(choices)})
        return [float(number) for number in value]

    # -- what else a caller may want ---------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._child is not None and self._child.alive and self._child.loaded is not None

    @property
    def pid(self) -> int | None:
        """The running model process's pid (None before the first call and after it stopped)."""
        return self._child.proc.pid if self._child is not None and self._child.alive else None

    @property
    def system(self) -> dict[str, Any]:
        """llama.cpp's view of this machine, as the model process saw it when it loaded the model."""
        self._ensure_loaded(None)
        return self._system

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.shut()

    def __enter__(self) -> ModelProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, cancel: CancelCheck | None = None, timeout: float | None = None) -> ModelProcess:
        """Start the process and load the model now (a call does this by itself when it needs to)."""
        self._ensure_loaded(cancel, timeout)
        return self

    # -- inside ------------------------------------------------------------------------------

    def _ensure_loaded(self, cancel: CancelCheck | None, timeout: float | None = None) -> _Child:
        with self._start_lock:
            child = self._child
            if child is not None and child.alive and child.stuck:
                child.kill()  # still busy with a call cancelled long ago: a fresh process answers sooner
                child.ended()
                self._child = child = None
            if child is not None and child.alive and child.loaded is not None:
                return child
            path, bundled = resolve_model_path(self.model)
            check_file(path)  # the usual mistakes get their message without starting a process
            if child is None or not child.alive:
                child = self._child = _Child()
                self.starts += 1
            started = time.perf_counter()
            loading = child.open(0)
            try:
                # Sent again after a cancelled wait: the child answers at once if the model is already in.
                options = asdict(self.options)
                child.send({"op": "load", "id": 0, "path": str(path), "bundled": bundled, "options": options})
                event = self._wait(child, loading, cancel, timeout)
            finally:
                child.close_call(loading)
            if event["event"] != "loaded":
                self.close()
                self._raise(event)
            child.loaded = event
            self._identity = ModelIdentity(**event["identity"])
            self._system = dict(event["system"])
            self.timing = Timing(load_ms=(time.perf_counter() - started) * 1000)
            return child

    def _begin(self, message: Message, cancel: CancelCheck | None) -> tuple[_Child, _Call]:
        child = self._ensure_loaded(cancel)
        call = child.open(next(self._ids))
        try:
            child.send({**message, "id": call.id})
        except ModelProcessStopped:
            child.close_call(call)
            self._forget(child)
            raise
        return child, call

    def _ask(self, message: Message) -> Any:
        child, call = self._begin(message, None)
        try:
            event = self._wait(child, call, None)
            call.done = True
            if event["event"] != "result":
                self._raise(event)
            return event["value"]
        finally:
            self._end(child, call)

    def _wait(self, child: _Child, call: _Call, cancel: CancelCheck | None, timeout: float | None = None) -> Message:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if cancel is not None and cancel():
                raise GenerationCancelled
            try:
                event = call.box.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if deadline is not None and time.monotonic() > deadline:
                    self._forget(child)
                    raise child.ended(f"no answer within {timeout:g} s") from None
                continue
            if event is _EOF:
                self._forget(child)
                raise child.ended()
            return event

    def _end(self, child: _Child, call: _Call) -> None:
        """A call that did not run to its end (cancelled, or its stream closed early) is stopped in the child too."""
        child.close_call(call)
        if not call.done and child.alive:
            with child.lock:
                child.stopping[call.id] = time.monotonic()
            try:
                child.send({"op": "cancel", "id": call.id})
            except ModelProcessStopped:
                self._forget(child)

    def _forget(self, child: _Child) -> None:
        """A stopped process is dropped: the next call starts a new one."""
        if self._child is child:
            self._child = None

    def _raise(self, event: Message) -> None:
        kind = event.get("event")
        if kind == "cancelled":
            raise GenerationCancelled
        if event.get("kind") == "unavailable":
            raise ModelUnavailable(str(event.get("message")), str(event.get("hint") or ""))
        if event.get("kind") == "value":
            raise ValueError(str(event.get("message")))
        raise ModelProcessError(f"the model process failed: {event.get('message')}")


class ModelProcessError(ZNavigatorError):
    """The model process answered with an error it did not expect (a bug there, reported here with its message)."""


# -- "the model works here", checked --------------------------------------------------------------

PROBE_PROMPT = "The capital of France is"
PROBE_TOKENS = 8


@dataclass(frozen=True)
class ProbeResult:
    """One short generation in a fresh model process: whether the model works on this machine, and how it runs."""

    ok: bool
    reason: str = ""
    fix: str = ""
    identity: ModelIdentity | None = None
    system: dict[str, Any] = field(default_factory=dict)
    start_ms: float | None = None  # process start and model load, as the caller waits for them
    first_token_ms: float | None = None
    tokens: int = 0
    generate_ms: float = 0.0
    sample: str = ""

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / (self.generate_ms / 1000) if self.generate_ms else 0.0

    def as_json(self) -> dict[str, Any]:
        identity = self.identity
        return {
            "ok": self.ok,
            "reason": self.reason,
            "fix": self.fix,
            "path": identity.path if identity else None,
            "sha256": identity.sha256 if identity else None,
            "chat": identity.chat if identity else None,
            "bundled": identity.bundled if identity else None,
            "runtime": identity.runtime if identity else None,
            "system": self.system,
            "start_ms": self.start_ms,
            "first_token_ms": self.first_token_ms,
            "tokens": self.tokens,
            "tokens_per_second": self.tokens_per_second,
            "sample": self.sample,
        }


def probe_model(
    model: Path | str | None = None, options: LoadOptions | None = None, timeout: float = 60.0
) -> ProbeResult:
    """Start a model process, load the model and generate a few tokens, all within `timeout` seconds.

    Used by `navigator llm status` and `navigator doctor`: a model that loads but crashes at its
    first decode (llama.cpp's AMX kernels on some hosts) is found here, not in a labeler's app.
    """
    from models.llm.model import GenerationParams  # the request is built here only

    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    with ModelProcess(model, options) as llm:
        try:
            llm.load(timeout=timeout)
            start_ms = (time.perf_counter() - started) * 1000
            request = Request(PROBE_PROMPT, GenerationParams(max_tokens=PROBE_TOKENS, temperature=0.0, seed=0))
            sample = "".join(llm.stream(request, lambda: time.monotonic() > deadline))
        except GenerationCancelled:
            return ProbeResult(
                False,
                f"the model process gave no answer within {timeout:g} s",
                "give it longer with --timeout, or try a smaller model or --threads",
                llm._identity,
                llm._system,
            )
        except ModelProcessStopped as stopped:
            stopped = stopped.during("checking the model", kept="")
            return ProbeResult(False, stopped.message, stopped.hint or "", llm._identity, llm._system)
        except ModelUnavailable as error:
            return ProbeResult(False, error.reason, error.fix)
        timing = llm.timing
        return ProbeResult(
            True,
            identity=llm.identity,
            system=llm.system,
            start_ms=start_ms,
            first_token_ms=timing.first_token_ms,
            tokens=timing.tokens,
            generate_ms=timing.generate_ms,
            sample=sample,
        )
