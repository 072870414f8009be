"""What the commands that run the local LLM share: its options and loading it (failures go through support.guard).

Kept apart from navigator.commands.llm (which registers navigator.commands.model_credences under
its group) so both can import it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from models.llm.model import DEFAULT_N_CTX, LoadOptions
from models.llm.model_file import MODEL_ENV
from models.llm.model_process import ModelProcess
from models.llm.repack import MODES, REPACK_ENV, RepackMode


def _add_options(command: Callable[..., Any], options: list[Callable[[Any], Any]]) -> Callable[..., Any]:
    for option in reversed(options):
        command = option(command)
    return command


def repack_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--repack",
        type=click.Choice(MODES),
        help=f"Let llama.cpp repack weights for this CPU (env: {REPACK_ENV}; default auto: off where AMX is).",
    )(command)


def load_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --n-ctx, --threads and --repack: which model to load and how (every command that runs the model)."""
    return _add_options(
        command,
        [
            click.option(
                "--model",
                "model",
                type=click.Path(path_type=Path),
                envvar=MODEL_ENV,
                help=f"A GGUF model file (env: {MODEL_ENV}; default: the bundled Gemma 3 270M).",
            ),
            click.option("--n-ctx", default=DEFAULT_N_CTX, show_default=True, help="Context size in tokens."),
            click.option("--threads", type=int, help="CPU threads (default: up to 4)."),
            repack_option,
        ],
    )


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The load options plus sampling and who asked (the commands that generate text)."""
    options = [
        click.option(
            "--temperature", type=float, help="Sampling temperature (default 0.2 grounded, 0.7 with --elaborate)."
        ),
        click.option("--seed", default=0, show_default=True, help="Sampling seed (recorded in provenance)."),
        click.option("--labeler", help="Who asked for this (recorded in the call log)."),
    ]
    return load_options(_add_options(command, options))


def model_process(
    model: Path | None, n_ctx: int, threads: int | None, repack: RepackMode | None, seed: int = 0
) -> ModelProcess:
    """The model in its own process, started on first use (a dry run or a cache hit never starts it).

    When the command's process ends, the model process stops with it (its stdin closes).
    """
    return ModelProcess(model, LoadOptions(n_ctx=n_ctx, n_threads=threads, seed=seed, repack=repack))
