"""What the commands that run the local LLM share: its options and loading it (failures go through support.guard).

Kept apart from navigator.commands.llm (which registers navigator.commands.model_credences under
its group) so both can import it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from models.llm.model import DEFAULT_N_CTX, LazyLLM, LoadOptions
from models.llm.model_file import MODEL_ENV


def _add_options(command: Callable[..., Any], options: list[Callable[[Any], Any]]) -> Callable[..., Any]:
    for option in reversed(options):
        command = option(command)
    return command


def load_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --n-ctx and --threads: which model to load and how (every command that runs the model)."""
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
        ],
    )


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The load options plus sampling and who asked (the commands that generate text)."""
    options = [
        click.option("--temperature", default=0.7, show_default=True, help="Sampling temperature."),
        click.option("--seed", default=0, show_default=True, help="Sampling seed (recorded in provenance)."),
        click.option("--labeler", help="Who asked for this (recorded in the call log)."),
    ]
    return load_options(_add_options(command, options))


def lazy_model(model: Path | None, n_ctx: int, threads: int | None, seed: int = 0) -> LazyLLM:
    """The model, loaded on first use (so a dry run or a bad argument never pays for loading it)."""
    return LazyLLM(model, LoadOptions(n_ctx=n_ctx, n_threads=threads, seed=seed))
