"""The model runs in its own process, and nothing it does can take the caller down.

With the real bundled model: a SIGSEGV or SIGKILL sent to the model process in the middle of a
generation becomes a clear error naming what was being done, writes nothing, is logged, and the
next call starts a fresh process — from the library, from `navigator unpack --depth 2` in a
subprocess, and (tests/test_app_model_process.py) in the app. On a CPU with AMX the model loads
with weight repacking off and generates; forced on, any crash stays in the model process.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from reliability_support import subprocess_env

from kb.db import connect
from kb.review import provenance
from kb.tree import Node, children
from models.llm.calls import recent_calls
from models.llm.generation import TokenEvent
from models.llm.judge import judge
from models.llm.model import GenerationCancelled, GenerationParams, LoadOptions, Request
from models.llm.model_process import (
    ModelProcess,
    ModelProcessStopped,
    describe_exit,
    last_words,
    probe_model,
)
from models.llm.repack import REPACK_ENV, choose_repack, repack_mode
from models.llm.unpack import unpack, unpack_stream

PROMPT = "Madagascar is an island in the Indian Ocean. Its coastline is"
PROVENANCE_KEYS = {"purpose", "seed", "k", "attempt", "model", "model_sha256", "prompt", "params", "llm_call"}


def long_request(seed: int = 0) -> Request:
    return Request(PROMPT, GenerationParams(max_tokens=400, temperature=0.7, seed=seed))


# -- the rule for weight repacking, and how a stop is worded (plain values) -------------------------


def test_auto_turns_repacking_off_only_where_amx_is() -> None:
    amx = choose_repack("auto", ["AMX", "CPU_REPACK"])
    assert not amx.on and "AMX" in amx.reason
    assert choose_repack("auto", ["CPU_REPACK"]).on and choose_repack("auto", []).on
    forced = choose_repack("on", ["AMX", "CPU_REPACK"])
    assert forced.on and "known to crash" in forced.reason
    assert not choose_repack("off", ["CPU_REPACK"]).on


def test_the_repack_mode_comes_from_the_option_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REPACK_ENV, raising=False)
    assert repack_mode(None) == "auto" and repack_mode("OFF") == "off"
    monkeypatch.setenv(REPACK_ENV, "on")
    assert repack_mode(None) == "on" and repack_mode("off") == "off"
    monkeypatch.setenv(REPACK_ENV, "yes")
    with pytest.raises(ValueError, match=f"repack must be one of auto, on, off, not 'yes'.*{REPACK_ENV}"):
        repack_mode(None)


def test_a_stop_names_the_signal_what_was_being_done_and_what_to_try() -> None:
    assert describe_exit(-11) == "signal 11, SIGSEGV" and describe_exit(-9) == "signal 9, SIGKILL"
    assert describe_exit(3) == "exit code 3"
    crash = ModelProcessStopped(describe_exit(-11), returncode=-11).during("unpacking 'fb:fr/climate'")
    assert crash.message == (
        "the model process stopped (signal 11, SIGSEGV) while unpacking 'fb:fr/climate'; nothing was written"
    )
    assert "--repack off" in (crash.hint or "") and "fresh model process" in (crash.hint or "")
    killed = ModelProcessStopped(describe_exit(-9), returncode=-9)
    assert "memory" in (killed.hint or "") and killed.signal_number == 9
    said = [
        "Fatal Python error: Segmentation fault",
        "",
        "Thread 0x1 (most recent call first):",
        "Current thread 0x2 (most recent call first):",
        '  File "llama_cpp/_internals.py", line 300 in decode',
        '  File "llama_cpp/llama.py", line 600 in eval',
    ]
    assert last_words(said) == (
        'Fatal Python error: Segmentation fault | in File "llama_cpp/_internals.py", line 300 in decode'
    )
    assert last_words(["a", "b", "c", "d"]) == "b | c | d"


# -- the real model, through its process ---------------------------------------------------------------


@pytest.mark.slow
def test_the_process_answers_as_the_model_does(model: ModelProcess) -> None:
    """Streaming, token counts and judgements cross the process boundary intact (and deterministically)."""
    first = "".join(model.stream(Request(PROMPT, GenerationParams(max_tokens=12, temperature=0.0)), lambda: False))
    again = "".join(model.stream(Request(PROMPT, GenerationParams(max_tokens=12, temperature=0.0)), lambda: False))
    assert first and first == again and model.timing.tokens > 0 and model.timing.first_token_ms is not None
    assert model.count_tokens("Madagascar is an island.") > 2
    one = judge(model, "Africa › Madagascar › Coastline: 4,828 km", "Madagascar has a coastline of 4,828 km.")
    two = judge(model, "Africa › Madagascar › Coastline: 4,828 km", "Madagascar has a coastline of 4,828 km.")
    assert one.score == two.score and one.logprobs[0] < 0 and one.logprobs[1] < 0
    assert model.identity.runtime["repack_reason"] and model.pid is not None and model.pid != os.getpid()


@pytest.mark.slow
def test_a_cancel_returns_at_once_and_the_process_stops_generating(model: ModelProcess) -> None:
    seen: list[str] = []
    with pytest.raises(GenerationCancelled):
        for piece in model.stream(long_request(), lambda: len(seen) >= 3):
            seen.append(piece)
    started = time.perf_counter()
    assert model.count_tokens("still here") > 0  # answered only once the child stopped the cancelled stream
    assert time.perf_counter() - started < 5.0  # a generous bound; bench/llm.py measures it
    assert len(seen) == 3 and model.starts >= 1


@pytest.mark.slow
@pytest.mark.parametrize("sent", [signal.SIGSEGV, signal.SIGKILL])
def test_a_signal_mid_generation_is_an_error_that_writes_nothing(
    conn: sqlite3.Connection, coastline: Node, sent: signal.Signals, db_dump
) -> None:
    before = db_dump()
    with ModelProcess(options=LoadOptions(n_ctx=1024, n_threads=2)) as llm:
        with pytest.raises(ModelProcessStopped) as raised:
            for event in unpack_stream(conn, llm, coastline, k=3):
                if isinstance(event, TokenEvent) and event.tokens_out == 1:
                    assert llm.pid is not None
                    os.kill(llm.pid, sent)
        stopped = raised.value
        assert stopped.message == (
            f"the model process stopped (signal {sent.value}, {sent.name}) while unpacking {coastline.uid!r}; "
            "nothing was written"
        )
        assert stopped.hint and "fresh model process" in stopped.hint
        assert db_dump() == before and children(conn, coastline.id) == []
        (call,) = recent_calls(conn, purpose="unpack")
        assert call.outcome == "failed" and f"model process stopped (signal {sent.value}" in (call.error or "")
        result = unpack(conn, llm, coastline, k=3)  # the next call starts a fresh process
        assert llm.starts == 2 and not result.cached
    assert [row[0] for row in conn.execute("PRAGMA integrity_check")] == ["ok"]


@pytest.mark.slow
def test_a_process_that_ignores_a_cancel_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model process that hangs (here: stopped with SIGSTOP mid-generation) costs the caller nothing: the
    cancel returns at once, and once the hung call is overdue the next call gets a fresh process."""
    monkeypatch.setattr("models.llm.model_process.STOP_SECONDS", 0.5)
    with ModelProcess(options=LoadOptions(n_ctx=1024, n_threads=2)) as llm:
        seen: list[str] = []
        with pytest.raises(GenerationCancelled):
            for piece in llm.stream(long_request(), lambda: bool(seen)):  # Esc once the process hangs
                assert llm.pid is not None
                hung = llm.pid
                os.kill(hung, signal.SIGSTOP)
                seen.append(piece)
        time.sleep(0.6)
        assert llm.count_tokens("a fresh process answers") > 0
        assert llm.starts == 2 and llm.pid != hung
    assert not Path(f"/proc/{hung}").exists() or "zombie" in _state(hung)


def test_the_caller_never_loads_llama_cpp() -> None:
    """Checking that a model is available finds llama-cpp-python without importing it: its native code
    runs only in the model process."""
    script = (
        "import sys; from models.llm.model_file import check_available; found = check_available(); "
        "print(found.ok, 'llama_cpp' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=subprocess_env())
    assert done.stdout.split() == ["True", "False"], done.stderr


@pytest.mark.slow
def test_the_model_process_goes_when_its_owner_does(tmp_path: Path) -> None:
    """A command killed outright leaves no model process behind: the child stops when its stdin closes."""
    script = (
        "import sys, time; from models.llm.model_process import ModelProcess; "
        "m = ModelProcess(); m.count_tokens('x'); print(m.pid, flush=True); time.sleep(60)"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    assert owner.stdout is not None
    child = int(owner.stdout.readline())
    owner.kill()
    owner.wait()
    for _ in range(100):
        if not Path(f"/proc/{child}").exists() or "zombie" in _state(child):
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the model process outlived its owner")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "zombie"


# -- this machine's CPU -------------------------------------------------------------------------------


def _has_amx() -> bool:
    try:
        return "amx_int8" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _has_amx(), reason="needs a CPU with AMX (this project's machines have it)")
def test_on_an_amx_cpu_the_model_loads_with_repacking_off_and_generates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REPACK_ENV, raising=False)
    found = probe_model(options=LoadOptions(n_threads=2))
    assert found.ok, found.reason
    assert found.system["amx"] and "AMX" in found.system["extra_buffer_types"]
    assert found.identity is not None and found.identity.runtime["repack"] is False
    assert "AMX" in found.identity.runtime["repack_reason"] and found.tokens > 0 and found.sample


@pytest.mark.slow
@pytest.mark.skipif(not _has_amx(), reason="needs a CPU with AMX (this project's machines have it)")
def test_repacking_forced_on_an_amx_cpu_cannot_take_the_caller_down() -> None:
    """On this project's machines llama.cpp's AMX matmul segfaults; elsewhere it may work. Either way, the
    caller gets an answer."""
    found = probe_model(options=LoadOptions(n_threads=2, repack="on"))
    assert found.identity is not None and found.identity.runtime["repack"] is True
    if not found.ok:
        assert found.reason.startswith("the model process stopped (signal") and "checking the model" in found.reason
        assert "--repack off" in found.fix


# -- the command line ---------------------------------------------------------------------------------


def _children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the model process through /proc")
@pytest.mark.parametrize("sent", [signal.SIGKILL, signal.SIGSEGV])
def test_killing_the_model_process_mid_batch_exits_1_with_one_line(
    workspace: Path, conn: sqlite3.Connection, coastline: Node, sent: signal.Signals
) -> None:
    command = [sys.executable, "-m", "navigator.cli", "unpack", coastline.uid, "-w", str(workspace)]
    command += ["--depth", "2", "--k", "2", "--threads", "2", "--no-index"]
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    watcher = connect(workspace)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and cli.poll() is None:
        done = watcher.execute("SELECT COUNT(*) FROM llm_calls WHERE purpose = 'unpack' AND outcome = 'ok'").fetchone()
        if done[0] >= 1:  # the first node is unpacked: the batch is in the middle
            (killed,) = _children_of(cli.pid)
            os.kill(killed, sent)
        time.sleep(0.02)
    out, err = cli.communicate(timeout=120)
    assert killed is not None, (out, err)
    assert cli.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: the model process stopped (signal {sent.value}, "), err
    assert " while " in lines[0] and "run the same command to resume" in lines[0]
    assert [row[0] for row in watcher.execute("PRAGMA integrity_check")] == ["ok"]
    calls = {call.uid: call for call in recent_calls(watcher, limit=None)}
    stored = watcher.execute("SELECT id FROM nodes WHERE origin = 'llm'").fetchall()
    assert stored, "the first node's children were kept"
    for (node_id,) in stored:
        record = provenance(watcher, node_id)
        assert set(record) >= PROVENANCE_KEYS and "runtime" in record["params"], record
        assert calls[record["llm_call"]].outcome == "ok"
    assert any(f"signal {sent.value}" in (call.error or "") for call in calls.values())
    watcher.close()


@pytest.mark.slow
def test_one_unpack_logs_the_generation_and_every_judgement(workspace: Path, coastline: Node) -> None:
    from navigator.commands.llm import llm as llm_group
    from navigator.commands.llm import unpack as unpack_command

    runner = CliRunner()
    done = runner.invoke(unpack_command, ["-w", str(workspace), coastline.uid, "--k", "3", "--threads", "2", "--json"])
    assert done.exit_code == 0, done.output
    made = json.loads(done.output)["children"]
    logged = json.loads(runner.invoke(llm_group, ["logs", "-w", str(workspace), "--json", "-n", "0"]).output)
    assert [entry["purpose"] for entry in logged] == ["judge"] * (2 * len(made)) + ["unpack"]
    assert {entry["node"] for entry in logged[:-1]} == {child["id"] for child in made}
    for entry in logged:
        assert entry["outcome"] == "ok" and entry["model_sha256"] and entry["params"]["runtime"]["llama_cpp_python"]
    shown = runner.invoke(llm_group, ["logs", "-w", str(workspace), "-n", "1"]).output
    assert "Purpose: judge" in shown and "Runtime: llama-cpp-python" in shown and "weight repacking" in shown


@pytest.mark.slow
def test_status_checks_the_model_by_running_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from navigator.commands.llm import llm as llm_group

    monkeypatch.delenv(REPACK_ENV, raising=False)
    result = CliRunner().invoke(llm_group, ["status", "--threads", "2", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["ok"] and found["tokens"] > 0 and found["tokens_per_second"] > 0 and found["start_ms"] > 0
    assert found["runtime"]["repack"] == (not found["system"]["amx"])
    assert isinstance(found["system"]["extra_buffer_types"], list) and found["system"]["cpu_features"]
    text = CliRunner().invoke(llm_group, ["status", "--threads", "2"]).output
    assert "model ready:" in text and "weight repacking:" in text and "tokens/s" in text
    monkeypatch.setenv(REPACK_ENV, "sometimes")
    bad = CliRunner().invoke(llm_group, ["status"])
    assert bad.exit_code != 0 and "sometimes" in bad.output


@pytest.mark.slow
def test_doctor_runs_the_model_and_names_the_repack_choice(workspace: Path) -> None:
    from navigator.commands.doctor import doctor

    result = CliRunner().invoke(doctor, ["-w", str(workspace), "--json"])
    found = {finding["check"]: finding for finding in json.loads(result.output)["findings"]}
    assert found["model"]["status"] == "ok", found["model"]
    assert "works here" in found["model"]["message"] and "weight repacking" in found["model"]["message"]
    assert found["packages"]["status"] == "ok" and "llama-cpp-python 0.3" in found["packages"]["message"]


def test_doctor_warns_when_llama_cpp_python_is_not_the_tested_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.llm.model_check as doctor_module

    real = doctor_module.metadata.version
    monkeypatch.setattr(
        doctor_module.metadata, "version", lambda name: "0.2.90" if name == "llama-cpp-python" else real(name)
    )
    finding = doctor_module.check_packages()
    assert finding.status == "warning" and "llama-cpp-python 0.2.90 is installed (tested: ==0.3" in finding.message
    assert "pip install -e ." in finding.fix
