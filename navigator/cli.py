"""The `navigator` command line: a thin layer over kb/ and models/.

Every command that reads or writes a workspace takes --workspace (or NAVIGATOR_WORKSPACE; `llm
status` checks only the model and takes none), exits non-zero with a one-line reason on failure,
and offers --json where a script would want it.
Text from the workspace is printed as plain text, never as markup.
"""

from __future__ import annotations

import sys
from importlib import import_module
from pathlib import Path

import click

from navigator.commands import browse
from navigator.commands import workspace as workspace_commands
from navigator.commands.support import guard, workspace_option

# Every command lives in navigator/commands/. These are imported only when run: their modules pull in
# scikit-learn, scipy, llama.cpp and Textual, which `navigator --help` and a one-shot
# `navigator search` never need. name (= the module's attribute): (module, the help line listed).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "unpack": ("navigator.commands.llm", "Unpack NODE into K simpler generated statements, DEPTH levels deep."),
    "ask": ("navigator.commands.llm", "Ask the LLM a QUESTION about NODE; the answer is stored as a `qa` child."),
    "llm": ("navigator.commands.llm", "The local LLM: call logs, model status, and review of generated nodes."),
    "export": ("navigator.commands.exchange", "Export predictions and credences (with undo history), the nodes…"),
    "merge": ("navigator.commands.exchange", "Merge exports (from `navigator export`) into this workspace."),
    "prior": ("navigator.commands.prior", "What credences imply about P(Z): exact interval, bounds, point estimates…"),
    "score": ("navigator.commands.score", "Rank the libraries by F(Z) = Σ log P(y|x,Z) over D (train items with…"),
    "train": ("navigator.commands.train", "Fit the imitation model on the current prediction labels and save it…"),
    "predict": ("navigator.commands.train", "Predict every D*_prediction item with the latest model; JSONL, one…"),
    "evaluate": ("navigator.commands.train", "Accuracy and log loss on D*_prediction: imitation model vs naive…"),
    "simulate": (
        "navigator.commands.train",
        "A SIMULATED labeler answers the demo questions by reading the library…",
    ),
    "doctor": ("navigator.commands.doctor", "Check a workspace (integrity, schema, search indexes, orphans), the…"),
    "assign": ("navigator.commands.team", "Give every item of a split OVERLAP distinct labelers, balanced; the app's…"),
    "agreement": ("navigator.commands.team", "Inter-labeler agreement (Krippendorff's alpha, Jensen–Shannon…"),
    "disagreements": ("navigator.commands.team", "Items where labelers disagree most (mean pairwise Jensen–Shannon…"),
    "serve": ("navigator.commands.serve", "Serve the app to web browsers: each invited labeler signs in with their…"),
    "study": ("navigator.commands.study", "The whole analysis of a study, every figure with its n and 95 % interval…"),
    "labelers": ("navigator.commands.labelers", "Who labels in this workspace, who is a lead (a lead alone sees…"),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            command: click.Command = getattr(import_module(LAZY_COMMANDS[cmd_name][0]), cmd_name)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][1]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, invoke_without_command=True)
@workspace_option
@click.option("--labeler", help="Who is labelling (remembered for next time).")
@click.option("--library", "library_name", help="Library to open (default: the one used last).")
@click.option("--ask-labeler", is_flag=True, help="Ask who is labelling even if a name is remembered (for serve).")
@click.option("--served-as", hidden=True, help="Run as this signed-in labeler of `navigator serve`, unchangeably.")
@click.version_option(package_name="z-navigator")
@click.pass_context
def main(
    ctx: click.Context,
    workspace: Path,
    labeler: str | None,
    library_name: str | None,
    ask_labeler: bool,
    served_as: str | None,
) -> None:
    """Z Navigator: browse, unpack and label a large background model Z.

    With no command, opens the app; on first run it builds the demo workspace.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not workspace.exists():
        click.echo(f"No workspace at {workspace}; building the demo workspace there first.", err=True)
        ctx.invoke(workspace_commands.demo, workspace=workspace, open_app=False)
    from navigator.app import NavigatorApp

    if served_as:
        app = guard(lambda: NavigatorApp(workspace=workspace, labeler=served_as, library=library_name, served=True))
    else:
        app = guard(lambda: NavigatorApp(workspace=workspace, labeler=labeler, library=library_name, ask=ask_labeler))
    app.run()


# The light commands (kb only; the search index loads inside the commands that use it) are registered at once.
for _command in (
    workspace_commands.init,
    workspace_commands.import_,
    workspace_commands.items,
    browse.search,
    browse.show,
    browse.tree,
    workspace_commands.stats,
    workspace_commands.index,
    workspace_commands.demo,
    workspace_commands.fork,
):
    main.add_command(_command)


def run() -> None:
    main(prog_name="navigator")


if __name__ == "__main__":
    sys.exit(main())
