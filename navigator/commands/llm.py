"""Command-line access to the local LLM: `unpack`, `ask`, and the `llm` group (logs, status, review).

Loaded by navigator/cli.py (LAZY_COMMANDS) only when one of them runs; they share their model
options and failure handling with navigator.commands.model_credences (llm_support.py).
A coordinator's batch (`unpack --depth`) is resumable because already
unpacked nodes are cache hits, and the search index is brought up to date
afterwards so new statements are findable at once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import click

from kb.libraries import library_by_id
from kb.review import provenance, replace_node, set_review
from kb.tree import Node, resolve_node
from models.llm.ask import ask_stream
from models.llm.calls import CallRecord, recent_calls
from models.llm.generation import TokenEvent
from models.llm.model import GenerationParams, LoadOptions
from models.llm.model_credences import CreditReport
from models.llm.model_process import ProbeResult, probe_model
from models.llm.repack import RepackMode
from models.llm.unpack import GROUNDED_TEMPERATURE, plan_calls, unpack_tree
from models.llm.unpack_batch import UnpackedNode, model_p, read_back
from models.llm.unpack_text import DEFAULT_K
from navigator.commands.llm_support import load_options, model_options, model_process
from navigator.commands.support import (
    Failure,
    emit_json,
    guard,
    index_new_nodes,
    json_option,
    library_option,
    open_workspace,
    pick_library,
    workspace_option,
)
from navigator.display import describe_error, visible
from navigator.progress import TerminalProgress


def _node(conn: sqlite3.Connection, ref: str, library_name: str | None) -> Node:
    library_id = pick_library(conn, library_name).id if library_name else None
    node: Node = guard(lambda: resolve_node(conn, ref, library_id))
    return node


def _child_json(conn: sqlite3.Connection, node: Node, model_p: float | None = None) -> dict[str, Any]:
    record = provenance(conn, node.id)
    return {
        "id": node.uid,
        "title": node.title,
        "body": node.body,
        "kind": node.kind,
        "origin": node.origin,
        "form": record.get("form"),
        "evidence": record.get("evidence", []),
        "unsupported": record.get("unsupported", []),
        "model_credence": model_p,
    }


def _form_note(conn: sqlite3.Connection, node: Node) -> str:
    record = provenance(conn, node.id)
    if record.get("unsupported"):
        return f"  [not in its node: {'; '.join(map(str, record['unsupported']))}]"
    return {"quoted": "  [quoted]", "not said": "  [the node does not say]", "elaborated": "  [own knowledge]"}.get(
        str(record.get("form")), ""
    )


@click.command()
@workspace_option
@click.argument("node")
@library_option
@click.option("--depth", default=1, show_default=True, help="Levels to unpack below NODE.")
@click.option("--k", "k", default=DEFAULT_K, show_default=True, help="Child statements per node.")
@click.option("--dry-run", is_flag=True, help="Print how many model calls it would make, and stop.")
@click.option("--regenerate", is_flag=True, help="Add a new set of children to NODE beside the stored one.")
@click.option(
    "--elaborate",
    is_flag=True,
    help="Statements from the model's own knowledge (kind elaboration, marked), not restatements of NODE.",
)
@click.option("--no-index", is_flag=True, help="Do not update the search index afterwards.")
@model_options
@json_option
def unpack(
    workspace: Path,
    node: str,
    library_name: str | None,
    depth: int,
    k: int,
    dry_run: bool,
    regenerate: bool,
    elaborate: bool,
    no_index: bool,
    model: Path | None,
    n_ctx: int,
    threads: int | None,
    repack: RepackMode | None,
    temperature: float,
    seed: int,
    labeler: str | None,
    as_json: bool,
) -> None:
    """Unpack NODE into K simpler generated statements, DEPTH levels deep.

    By default each statement restates part of the node, names its subject, and is stored with
    its evidence (the span it rests on); statements that say more than the node are regenerated
    or dropped. Resumable: nodes that already have generated children are skipped, so an
    interrupted batch continues where it stopped. The new statements are marked as generated
    and carry their model, prompt, parameters and seed.
    """
    if depth < 1 or k < 1:
        raise Failure("--depth and --k must be at least 1")
    conn = open_workspace(workspace)
    start = _node(conn, node, library_name)
    if dry_run:
        planned = plan_calls(conn, start, depth=depth, k=k, regenerate=regenerate, elaborate=elaborate)
        _print_plan(start, planned, depth, k, as_json)
        return
    llm = model_process(model, n_ctx, threads, repack, seed)
    default = 0.7 if elaborate else GROUNDED_TEMPERATURE
    params = GenerationParams(temperature=default if temperature is None else temperature, seed=seed)
    with llm, TerminalProgress(enabled=not as_json) as progress:
        try:
            report = guard(
                lambda: unpack_tree(
                    conn,
                    llm,
                    start,
                    depth=depth,
                    k=k,
                    params=params,
                    regenerate=regenerate,
                    elaborate=elaborate,
                    progress=progress,
                    labeler=labeler,
                )
            )
        except KeyboardInterrupt:
            raise Failure("interrupted; finished nodes are kept, run the same command again to resume") from None
        indexed = _index_library_of(conn, workspace, start, progress) if report.created and not no_index else 0
        done = guard(lambda: read_back(conn, start, report, elaborate=elaborate))
    _print_unpacked(conn, done, indexed, as_json)
    if done.report.stopped is not None:
        raise Failure(describe_error(done.report.stopped))
    failed = done.report.failed
    if failed:
        raise Failure(failed[0][1] + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))


def _print_plan(start: Node, planned: int, depth: int, k: int, as_json: bool) -> None:
    if as_json:
        emit_json({"node": start.uid, "depth": depth, "k": k, "calls": planned})
    else:
        click.echo(f"would make {planned} model call{'s' if planned != 1 else ''} (depth {depth}, k {k})")


def _index_library_of(conn: sqlite3.Connection, workspace: Path, node: Node, progress: Any = None) -> int:
    """How many new nodes of `node`'s library the index took in (a warning, if it could not)."""
    return index_new_nodes(conn, workspace, library_by_id(conn, node.library_id), progress).indexed


def _print_unpacked(conn: sqlite3.Connection, done: UnpackedNode, indexed: int, as_json: bool) -> None:
    report, start = done.report, done.node
    if as_json:
        emit_json(
            {
                "node": start.uid,
                "calls": report.calls,
                "cached": report.cached,
                "created": report.created,
                "indexed": indexed,
                "failed": [{"node": uid, "error": message} for uid, message in report.failed],
                "cancelled": report.cancelled,
                "stopped": describe_error(report.stopped) if report.stopped is not None else None,
                "children": [_child_json(conn, child, done.model_p.get(child.uid)) for child in done.children],
            }
        )
        return
    click.echo(f"{start.title}  ({start.uid})")
    for child in done.children:
        p = done.model_p.get(child.uid)
        believed = f"  model P(true) {p:.2f}" if p is not None else ""
        click.echo(visible(f"  + {child.title}  ({child.uid}){believed}{_form_note(conn, child)}"))
    click.echo(
        f"{report.calls} model call{'s' if report.calls != 1 else ''}, {report.cached} cached, "
        f"{report.created} new statement{'s' if report.created != 1 else ''}"
        + (f", {len(report.failed)} failed" if report.failed else "")
    )


@click.command()
@workspace_option
@click.argument("node")
@click.argument("question")
@library_option
@click.option("--elaborate", is_flag=True, help="Let the model answer from its own knowledge (marked as such).")
@model_options
@json_option
def ask(
    workspace: Path,
    node: str,
    question: str,
    library_name: str | None,
    elaborate: bool,
    model: Path | None,
    n_ctx: int,
    threads: int | None,
    repack: RepackMode | None,
    temperature: float,
    seed: int,
    labeler: str | None,
    as_json: bool,
) -> None:
    """Ask the LLM a QUESTION about NODE; the answer is stored as a `qa` child.

    By default the answer comes from NODE and cites the parts it rests on, or says "The node does
    not say."; --elaborate lets the model draw on its own knowledge, marked as such.
    """
    conn = open_workspace(workspace)
    target = _node(conn, node, library_name)
    llm = model_process(model, n_ctx, threads, repack, seed)
    params = GenerationParams(
        max_tokens=120, temperature=min(0.3 if temperature is None else temperature, 0.3), seed=seed
    )
    streamed = not as_json

    def run() -> Node:
        answer: Node | None = None
        for event in ask_stream(conn, llm, target, question, params=params, elaborate=elaborate, labeler=labeler):
            if isinstance(event, TokenEvent) and streamed:
                click.echo(event.text, nl=False, err=True)
            elif isinstance(event, CreditReport) and streamed and not event.credences:
                click.echo(f"\n{event.summary()}", err=True)
            elif isinstance(event, Node):
                answer = event
        assert answer is not None
        return answer

    try:
        with llm:
            answer = guard(run)
    except KeyboardInterrupt:
        raise Failure("interrupted; nothing was written") from None
    indexed = _index_library_of(conn, workspace, target)
    p = model_p(conn, [answer]).get(answer.uid)
    if as_json:
        payload = {"node": target.uid, "question": question, "answer": _child_json(conn, answer, p), "indexed": indexed}
        emit_json(payload)
        return
    click.echo("", err=True)
    believed = f"; model P(true) {p:.2f}" if p is not None else ""
    click.echo(visible(f"{answer.title}\n{answer.body}\n(stored as {answer.uid}{believed}){_form_note(conn, answer)}"))


@click.group()
def llm() -> None:
    """The local LLM: call logs, model status, and review of generated nodes."""


HIDDEN = ("stop", "runtime")


def _runtime_line(runtime: dict[str, Any]) -> str:
    repack = "on" if runtime.get("repack") else "off"
    return (
        f"Runtime: llama-cpp-python {runtime.get('llama_cpp_python')}, weight repacking {repack} "
        f"({runtime.get('repack_asked')}), {runtime.get('n_threads')} threads, context {runtime.get('n_ctx')}"
    )


def _render_call(call: CallRecord) -> str:
    sha = f" (sha256 {call.model_sha256[:12]}…)" if call.model_sha256 else ""
    lines = [
        f"# {call.created_at}    {call.uid}",
        "",
        f"Model: **{call.model}**{sha}",
        f"Purpose: {call.purpose}    Node: {call.node_uid or '-'}    Outcome: {call.outcome}"
        + (f" ({call.error})" if call.error else ""),
        f"Tokens: {call.tokens_in} in, {call.tokens_out} out    Time: {call.ms or 0:.0f} ms",
        f"Params: {', '.join(f'{key}={value}' for key, value in sorted(call.params.items()) if key not in HIDDEN)}",
        *([_runtime_line(call.params["runtime"])] if isinstance(call.params.get("runtime"), dict) else []),
        "",
        "## Prompt",
        "",
        call.prompt,
        "",
        "## Response",
        "",
        call.response or "",
        "",
    ]
    return "\n".join(lines)


@llm.command()
@workspace_option
@click.option("-n", "--count", default=3, show_default=True, help="How many calls to show (0 for all).")
@click.option("--node", "node_ref", help="Only calls about this node.")
@library_option
@json_option
def logs(workspace: Path, count: int, node_ref: str | None, library_name: str | None, as_json: bool) -> None:
    """Show logged LLM calls, newest first (prompt, response, model, tokens, time, outcome)."""
    conn = open_workspace(workspace)
    node_id = _node(conn, node_ref, library_name).id if node_ref else None
    calls = recent_calls(conn, limit=count or None, node_id=node_id)
    if as_json:
        emit_json([call.as_json() for call in calls])
        return
    if not calls:
        click.echo("no LLM calls logged yet")
        return
    click.echo("\n".join(_render_call(call) for call in calls))


@llm.command()
@load_options
@click.option("--timeout", default=60.0, show_default=True, help="Seconds the check may take, load included.")
@json_option
def status(
    model: Path | None, n_ctx: int, threads: int | None, repack: RepackMode | None, timeout: float, as_json: bool
) -> None:
    """Check that the model works here: load it and generate a few tokens in a model process, with a timeout.

    Prints how it runs (llama-cpp-python, the CPU's AMX, weight repacking and why) and how fast;
    if it cannot work, why and what to do, with exit status 1.
    """
    options = LoadOptions(n_ctx=n_ctx, n_threads=threads, repack=repack)
    found = probe_model(model, options, timeout=timeout)
    if as_json:
        emit_json(found.as_json())
    else:
        for line in probe_lines(found):
            click.echo(visible(line))
    if not found.ok:
        raise Failure(f"unpacking is off: {found.reason}; {found.fix}")


def probe_lines(found: ProbeResult) -> list[str]:
    """What `llm status` (and the doctor's model finding) say about a check of the model."""
    identity, system = found.identity, found.system
    lines = []
    if identity is not None:
        sha = f"sha256 {identity.sha256[:12]}…" + (", bundled" if identity.bundled else "")
        lines.append(f"model {'ready' if found.ok else 'failed'}: {identity.path} ({sha})")
    if found.ok and found.start_ms is not None:
        lines.append(
            f"  checked in its own process: started and loaded in {found.start_ms / 1000:.2f} s, "
            f"{found.tokens} tokens in {found.generate_ms / 1000:.2f} s ({found.tokens_per_second:.1f} tokens/s)"
        )
    if system:
        buffers = ", ".join(system.get("extra_buffer_types") or []) or "none"
        amx = "AMX present" if system.get("amx") else "no AMX"
        lines.append(f"  llama-cpp-python {system.get('llama_cpp_python')}; CPU: {amx}; extra buffer types: {buffers}")
    if identity is not None and identity.runtime:
        runtime = identity.runtime
        state = "on" if runtime.get("repack") else "off"
        lines.append(f"  weight repacking: {state} ({runtime.get('repack_asked')}): {runtime.get('repack_reason')}")
    return lines


def _review(workspace: Path, ref: str, library_name: str | None, review: str) -> Node:
    conn = open_workspace(workspace)
    target = _node(conn, ref, library_name)
    node: Node = guard(lambda: set_review(conn, target, review))
    return node


@llm.command()
@workspace_option
@click.argument("node")
@library_option
def accept(workspace: Path, node: str, library_name: str | None) -> None:
    """Mark a generated node as accepted."""
    done = _review(workspace, node, library_name, "accepted")
    click.echo(f"accepted {done.uid}")


@llm.command()
@workspace_option
@click.argument("node")
@library_option
def reject(workspace: Path, node: str, library_name: str | None) -> None:
    """Hide a generated node from the tree (it is kept, with its provenance)."""
    done = _review(workspace, node, library_name, "rejected")
    click.echo(f"rejected {done.uid} (hidden, kept)")


@llm.command()
@workspace_option
@click.argument("node")
@click.argument("text")
@library_option
@click.option("--labeler", help="Who made the edit.")
def edit(workspace: Path, node: str, text: str, library_name: str | None, labeler: str | None) -> None:
    """Replace a generated node by TEXT: a new human node that records what it replaced."""
    conn = open_workspace(workspace)
    target = _node(conn, node, library_name)
    new: Node = guard(lambda: replace_node(conn, target, title=text, labeler=labeler))
    _index_library_of(conn, workspace, new)
    click.echo(f"{new.uid} replaces {target.uid}")


def _add_model_credence_commands() -> None:
    """`llm calibrate` and `llm credences` live in their own module, which uses this one's guard."""
    from navigator.commands.model_credences import calibrate_command, credences_command

    llm.add_command(calibrate_command)
    llm.add_command(credences_command)


_add_model_credence_commands()
