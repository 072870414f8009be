"""The local LLM: loading a GGUF file (found and verified by models/llm/model_file.py) and streaming text from it.

Everything that touches llama-cpp-python lives here, so the rest of the code
talks to the small `LLM` protocol and can be tested with a fake. `LocalLLM`
runs in the model process (models/llm/model_server.py); the surfaces reach it
through models/llm/model_process.py, so a crash in llama.cpp cannot take them
down. The default
model is the bundled Gemma 3 270M *base* model: it has no chat template, so it
is driven with few-shot completion prompts and stop sequences (a chat format
or a JSON grammar makes it produce garbage). A GGUF that carries a chat
template is driven through that template instead, with JSON-schema-constrained
output where the caller asks for it.

A model is identified by its file name and sha256, which go into every call
log and every generated node's provenance, so a result can be traced to the
exact weights that produced it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kb.errors import Cancelled
from models.llm.model_file import ModelUnavailable, cached_sha256, check_file, resolve_model_path
from models.llm.repack import RepackChoice, RepackMode, choose_repack, repack_mode

DEFAULT_N_CTX = 2048

CancelCheck = Callable[[], bool]


class GenerationCancelled(Cancelled):
    """The caller's cancel check fired while a model call ran (unpack, ask, …); nothing was written."""


@dataclass(frozen=True)
class ModelIdentity:
    """What provenance records about a model: enough to find the exact same weights again."""

    name: str
    sha256: str
    path: str
    chat: bool
    bundled: bool
    runtime: dict[str, Any] = field(default_factory=dict, compare=False)  # how it ran: see LocalLLM.runtime


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int = DEFAULT_N_CTX
    n_threads: int | None = None
    seed: int = 0
    repack: RepackMode | None = None  # models/llm/repack.py; None: $NAVIGATOR_REPACK, else auto

    def threads(self) -> int:
        return self.n_threads or max(1, min(os.cpu_count() or 1, 4))


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings; stored verbatim with each call so a result can be reproduced."""

    max_tokens: int = 200
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.15
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Exactly llama-cpp-python's sampling keywords: passed as is, and logged as is."""
        return asdict(self)

    def with_seed(self, seed: int) -> GenerationParams:
        return GenerationParams(**{**asdict(self), "seed": seed})


@dataclass(frozen=True)
class Request:
    """One generation. Base models read `prompt`; chat models read `messages` (and `json_schema` if set)."""

    prompt: str
    params: GenerationParams
    stop: tuple[str, ...] = ()
    messages: list[dict[str, str]] | None = None
    json_schema: dict[str, Any] | None = None
    # The request right before this one had the same prompt, and nothing ran in between: its evaluated
    # prompt may be reused (a second attempt). Otherwise every prompt is evaluated from the start.
    continues: bool = False

    def logged_prompt(self, chat: bool) -> str:
        """The text the model actually saw, as stored in the call log and provenance."""
        if chat and self.messages is not None:
            return json.dumps(self.messages, ensure_ascii=False, indent=1)
        return self.prompt


class LLM(Protocol):
    """What unpack and ask need from a model; `LocalLLM` is the real one, tests pass fakes."""

    @property
    def identity(self) -> ModelIdentity: ...

    def stream(self, request: Request, cancel: CancelCheck) -> Iterator[str]:
        """Yield text pieces (about one token each); raise GenerationCancelled when cancel() turns true."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def choice_logprobs(self, head: str, tail: str, choices: Sequence[str]) -> list[float]:
        """log P(next token = the first token of each choice | head + tail), over the whole vocabulary.

        `head` is the part many calls share (a few-shot prompt); a model may keep it evaluated.
        Deterministic (no sampling): the basis of the model's own credence in a statement
        (models.llm.judge asks for " True" and " False").
        """
        ...


def as_cancel_check(cancel: threading.Event | CancelCheck | None) -> CancelCheck:
    """Accept what a caller has at hand: a threading.Event (a Textual worker), a callable, or nothing."""
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


# -- the real model -----------------------------------------------------------

_quiet_callback: Any = None


def _silence_llama_cpp() -> None:
    """llama.cpp logs to stderr even with verbose=False; that would scribble over a terminal UI."""
    global _quiet_callback
    if _quiet_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def quiet(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        return None

    _quiet_callback = quiet
    llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))


def extra_buffer_types() -> list[str]:
    """The CPU buffer types this llama.cpp build would repack weights into on this machine ("AMX", "CPU_REPACK").

    Read from ggml's backend registry, the list llama.cpp itself consults when it loads a model
    with extra buffer types on. Falls back to the CPU features in llama.cpp's system info if the
    registry cannot be asked (another build of ggml).
    """
    import llama_cpp

    try:
        from llama_cpp._ggml import libggml

        libggml.ggml_backend_dev_by_type.restype = ctypes.c_void_p
        libggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
        libggml.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
        libggml.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
        libggml.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
        libggml.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        libggml.ggml_backend_buft_name.restype = ctypes.c_char_p
        libggml.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
        cpu = libggml.ggml_backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
        registry = libggml.ggml_backend_dev_backend_reg(cpu) if cpu else None
        address = (
            libggml.ggml_backend_reg_get_proc_address(registry, b"ggml_backend_dev_get_extra_bufts")
            if registry
            else None
        )
        if address:
            listed = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)(cpu)
            names: list[str] = []
            while listed and listed[len(names)]:
                names.append(libggml.ggml_backend_buft_name(listed[len(names)]).decode())
            return names
    except (AttributeError, OSError, ImportError):
        pass
    features = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return [name for flag, name in (("AMX_INT8 = 1", "AMX"), ("REPACK = 1", "CPU_REPACK")) if flag in features]


def system_info() -> dict[str, Any]:
    """What about this machine and build decides how the model runs: for `llm status`, `doctor` and provenance."""
    import llama_cpp

    features = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip().strip("|").strip()
    return {
        "llama_cpp_python": str(getattr(llama_cpp, "__version__", "unknown")),
        "cpu_features": features,
        "amx": "AMX_INT8 = 1" in features,
        "extra_buffer_types": extra_buffer_types(),
    }


def chosen_repack(asked: RepackMode | None) -> tuple[RepackChoice, dict[str, Any]]:
    """The repacking rule (models/llm/repack.py) applied to this machine: the choice, and the system info it read."""
    system = system_info()
    try:
        mode = repack_mode(asked)
    except ValueError as error:
        raise ModelUnavailable(str(error), "use auto, on or off") from error
    return choose_repack(mode, system["extra_buffer_types"]), system


@contextlib.contextmanager
def repacking(on: bool) -> Iterator[None]:
    """Load with llama.cpp's extra buffer types on or off.

    `Llama()` has no argument for `use_extra_bufts`; it builds its model parameters from
    `llama_model_default_params()`, so that one function is wrapped for the duration of the load.
    """
    import llama_cpp.llama_cpp as bindings

    original = bindings.llama_model_default_params

    def params() -> Any:
        chosen = original()
        chosen.use_extra_bufts = on
        return chosen

    bindings.llama_model_default_params = params
    try:
        yield
    finally:
        bindings.llama_model_default_params = original


@dataclass
class Timing:
    """Filled in by LocalLLM as it generates; the bench and the status line read it."""

    load_ms: float = 0.0
    first_token_ms: float | None = None
    tokens: int = 0
    generate_ms: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / (self.generate_ms / 1000) if self.generate_ms else 0.0


class LocalLLM:
    """A GGUF model run by llama-cpp-python; the weights load on first use (or `load()`).

    One Llama context is not safe to use from two threads at once, so
    generation holds a lock: a second caller waits rather than corrupting the
    first one's state.
    """

    def __init__(self, path: Path, *, bundled: bool = False, options: LoadOptions | None = None) -> None:
        check_file(path)
        self.path = path
        self.bundled = bundled
        self.options = options or LoadOptions()
        self._llama: Any = None
        self._lock = threading.Lock()
        self._identity: ModelIdentity | None = None
        self._cached_head: tuple[int, ...] | None = None  # tokens of the judgement head held in the KV cache
        self._last_prompt: str | None = None  # the prompt of the last generation, while the cache still holds it
        self.timing = Timing()
        self.repack: RepackChoice | None = None
        self.system: dict[str, Any] = {}

    @classmethod
    def open(cls, model: Path | str | None = None, options: LoadOptions | None = None) -> LocalLLM:
        """The model a user asked for (or the bundled one), checked but not loaded yet."""
        path, bundled = resolve_model_path(model)
        return cls(path, bundled=bundled, options=options)

    def load(self) -> LocalLLM:
        if self._llama is not None:
            return self
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise ModelUnavailable(
                "llama-cpp-python is not installed", "install it with `pip install llama-cpp-python`"
            ) from error
        _silence_llama_cpp()
        started = time.perf_counter()
        self.repack, self.system = chosen_repack(self.options.repack)
        try:
            with repacking(self.repack.on):
                self._llama = Llama(
                    model_path=str(self.path),
                    n_ctx=self.options.n_ctx,
                    n_threads=self.options.threads(),
                    seed=self.options.seed,
                    verbose=False,
                )
        except Exception as error:
            raise ModelUnavailable(
                f"cannot load the model {self.path}: {error}",
                "the file may be truncated or not a llama.cpp GGUF model; download it again, "
                "or omit --model to use the bundled one",
            ) from error
        self.timing.load_ms = (time.perf_counter() - started) * 1000
        return self

    @property
    def chat_template(self) -> str | None:
        template = self.load()._llama.metadata.get("tokenizer.chat_template")
        return str(template) if template else None

    @property
    def runtime(self) -> dict[str, Any]:
        """How the weights run here, recorded with every call: the library, the repack choice and why, threads."""
        self.load()
        assert self.repack is not None
        return {
            "llama_cpp_python": self.system["llama_cpp_python"],
            "repack": self.repack.on,
            "repack_asked": self.repack.asked,
            "repack_reason": self.repack.reason,
            "n_threads": self.options.threads(),
            "n_ctx": self.options.n_ctx,
        }

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            self._identity = ModelIdentity(
                name=self.path.name,
                sha256=cached_sha256(self.path),
                path=str(self.path),
                chat=self.chat_template is not None,
                bundled=self.bundled,
                runtime=self.runtime,
            )
        return self._identity

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self.load()._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def choice_logprobs(self, head: str, tail: str, choices: Sequence[str]) -> list[float]:
        """Next-token log-probabilities of each choice's first token after `head` + `tail`.

        The head (the judgement's few-shot examples) is evaluated from position 0 in one go and
        kept in llama.cpp's KV cache; each call truncates the cache back to exactly the head and
        evaluates only its tail. Always the same two evaluations, so a statement gets the same
        score whatever the model did before (reusing whatever prefix happened to match would
        batch the tokens differently and move the score in the second decimal). With logits_all
        off (the logits of every position would take gigabytes for Gemma's 262k vocabulary) only
        the last position's logits exist, which is all a next-token judgement needs.
        """
        import numpy as np

        llama = self.load()._llama
        with self._lock:
            head_tokens = llama.tokenize(head.encode("utf-8"), add_bos=True, special=False)
            tail_tokens = llama.tokenize(tail.encode("utf-8"), add_bos=False, special=False)
            if not tail_tokens:
                raise ValueError("nothing to judge: the text after the shared head is empty")
            if len(head_tokens) + len(tail_tokens) >= self.options.n_ctx:
                total = len(head_tokens) + len(tail_tokens)
                raise ValueError(f"the prompt has {total} tokens; the context holds {self.options.n_ctx}")
            self._last_prompt = None
            if self._cached_head != tuple(head_tokens):
                llama.n_tokens = 0
                llama.eval(head_tokens)
                self._cached_head = tuple(head_tokens)
            llama.n_tokens = len(head_tokens)
            llama.eval(tail_tokens)
            logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(llama.n_vocab(),)).astype(np.float64)
            top = float(logits.max())
            normaliser = top + float(np.log(np.exp(logits - top).sum()))
            ids = [llama.tokenize(choice.encode("utf-8"), add_bos=False, special=False)[0] for choice in choices]
            return [float(logits[token]) - normaliser for token in ids]

    def stream(self, request: Request, cancel: CancelCheck) -> Iterator[str]:
        llama = self.load()._llama
        params = request.params
        with self._lock:
            # A generation evaluates its prompt from position 0. llama-cpp-python would otherwise reuse
            # whatever prefix the KV cache shares with the last prompt and evaluate only the rest, in other
            # batches, which moves the logits enough to change a sampled token: the same request would not
            # give the same text twice. The one exception is a request that says it `continues` the one
            # before with the same prompt: what precedes it is then always the same, and so is its text.
            if not (request.continues and request.prompt == self._last_prompt):
                llama.reset()
            self._cached_head = None
            self._last_prompt = request.prompt
            started = time.perf_counter()
            self.timing.first_token_ms = None
            self.timing.tokens = 0
            if self.identity.chat and request.messages is not None:
                pieces = self._chat_pieces(llama, request)
            else:
                pieces = (
                    chunk["choices"][0]["text"]
                    for chunk in llama.create_completion(
                        request.prompt,
                        **params.as_dict(),
                        stop=list(request.stop),
                        stream=True,
                    )
                )
            try:
                for piece in pieces:
                    if cancel():
                        raise GenerationCancelled
                    if self.timing.first_token_ms is None:
                        self.timing.first_token_ms = (time.perf_counter() - started) * 1000
                    self.timing.tokens += 1
                    self.timing.generate_ms = (time.perf_counter() - started) * 1000
                    if piece:
                        yield piece
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
                self.timing.generate_ms = (time.perf_counter() - started) * 1000

    def _chat_pieces(self, llama: Any, request: Request) -> Iterator[str]:
        params = request.params
        extra: dict[str, Any] = {}
        if request.json_schema is not None:
            extra["response_format"] = {"type": "json_object", "schema": request.json_schema}
        for chunk in llama.create_chat_completion(
            messages=request.messages,
            **params.as_dict(),
            stop=list(request.stop) or None,
            stream=True,
            **extra,
        ):
            content = chunk["choices"][0].get("delta", {}).get("content")
            if content:
                yield str(content)
