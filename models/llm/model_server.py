"""The model process's side: `python -m models.llm.model_server`, started by models.llm.model_process.

It loads one GGUF model with models.llm.model.LocalLLM and answers requests one at a time, as
JSON lines on stdin and stdout. A second thread reads stdin so that a cancel reaches a
generation between two tokens. The protocol's stdout is a private copy of file descriptor 1;
descriptor 1 itself is pointed at stderr, so anything llama.cpp prints can never corrupt an
answer. faulthandler writes a traceback to stderr if llama.cpp crashes, and the parent keeps
the last lines of stderr to say what happened. When stdin closes (the parent is gone), the
process stops.
"""

from __future__ import annotations

import faulthandler
import json
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from models.llm.model import GenerationCancelled, GenerationParams, LoadOptions, LocalLLM, Request, system_info
from models.llm.model_file import ModelUnavailable

Message = dict[str, Any]


def request_from_json(record: Message) -> Request:
    """The inverse of models.llm.model_process.request_json."""
    return Request(
        prompt=record["prompt"],
        params=GenerationParams(**record["params"]),
        stop=tuple(record["stop"]),
        messages=record["messages"],
        json_schema=record["json_schema"],
        continues=bool(record.get("continues", False)),
    )


class ModelServer:
    def __init__(self, send: Callable[[Message], None]) -> None:
        self.send = send
        self.llm: LocalLLM | None = None
        self.requests: queue.Queue[Message | None] = queue.Queue()
        self.cancelled: set[int] = set()
        self.closing = threading.Event()

    def read(self, stream: BinaryIO) -> None:
        """Runs in its own thread: cancels take effect at once, everything else waits its turn."""
        for raw in stream:
            message = json.loads(raw)
            if message.get("op") == "cancel":
                self.cancelled.add(int(message["id"]))
            else:
                self.requests.put(message)
        self.closing.set()
        self.requests.put(None)

    def serve(self) -> None:
        while (message := self.requests.get()) is not None:
            self.handle(message)

    def handle(self, message: Message) -> None:
        call = int(message.get("id", 0))
        try:
            self.answer(call, message)
        except GenerationCancelled:
            self.send({"event": "cancelled", "id": call})
        except ModelUnavailable as error:
            self.send({"event": "error", "id": call, "kind": "unavailable", "message": error.reason, "hint": error.fix})
        except ValueError as error:
            self.send({"event": "error", "id": call, "kind": "value", "message": str(error)})
        except Exception as error:  # reported to the caller, which raises it; the process stays up
            self.send({"event": "error", "id": call, "kind": "error", "message": f"{type(error).__name__}: {error}"})
        finally:
            self.cancelled.discard(call)

    def answer(self, call: int, message: Message) -> None:
        op = message["op"]
        if op == "load":
            self.load(call, message)
            return
        if op == "system":
            self.send({"event": "result", "id": call, "value": system_info()})
            return
        if self.llm is None:
            raise ValueError("the model process has not loaded a model")
        if op == "stream":
            self.stream(call, request_from_json(message["request"]))
        elif op == "count_tokens":
            self.send({"event": "result", "id": call, "value": self.llm.count_tokens(message["text"])})
        elif op == "choice_logprobs":
            value = self.llm.choice_logprobs(message["head"], message["tail"], message["choices"])
            self.send({"event": "result", "id": call, "value": value})
        else:
            raise ValueError(f"unknown request {op!r}")

    def load(self, call: int, message: Message) -> None:
        path = Path(message["path"])
        if self.llm is None or self.llm.path != path:
            self.llm = LocalLLM(path, bundled=bool(message["bundled"]), options=LoadOptions(**message["options"]))
            self.llm.load()
        identity = self.llm.identity
        self.send(
            {
                "event": "loaded",
                "id": call,
                "identity": {
                    "name": identity.name,
                    "sha256": identity.sha256,
                    "path": identity.path,
                    "chat": identity.chat,
                    "bundled": identity.bundled,
                    "runtime": identity.runtime,
                },
                "system": self.llm.system,
                "load_ms": self.llm.timing.load_ms,
                "pid": os.getpid(),
            }
        )

    def stream(self, call: int, request: Request) -> None:
        assert self.llm is not None

        def cancel() -> bool:
            return call in self.cancelled or self.closing.is_set()

        for piece in self.llm.stream(request, cancel):
            self.send({"event": "token", "id": call, "text": piece})
        timing = self.llm.timing
        self.send(
            {
                "event": "end",
                "id": call,
                "first_token_ms": timing.first_token_ms,
                "tokens": timing.tokens,
                "generate_ms": timing.generate_ms,
            }
        )


def _sender(channel: TextIO) -> Callable[[Message], None]:
    lock = threading.Lock()

    def send(message: Message) -> None:
        line = json.dumps(message, ensure_ascii=False)
        with lock:
            channel.write(line + "\n")
            channel.flush()

    return send


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the terminal is for the parent to handle
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    faulthandler.enable(file=sys.stderr)
    server = ModelServer(_sender(channel))
    threading.Thread(target=server.read, args=(sys.stdin.buffer,), daemon=True, name="requests").start()
    server.serve()
    channel.flush()
    os._exit(0)  # skip interpreter teardown: llama.cpp's destructors have nothing left to save


if __name__ == "__main__":
    main()
