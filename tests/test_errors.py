"""One error base: every exception class the project defines is a ZNavigatorError
(something to act on) or a Cancelled (the person stopped the work), and each is
translated for people in one place — the CLI's `guard` and the app's `describe_error`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sqlite3
from pathlib import Path

import click
import pytest

import kb
import models
import navigator
from kb.errors import Cancelled, ZNavigatorError

# The CLI's own exception is the translation itself: click prints it.
TRANSLATIONS = {"navigator.commands.support.Failure"}


def project_exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for package in (kb, models, navigator):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for _, value in inspect.getmembers(module, inspect.isclass):
                if value.__module__ == module.__name__ and issubclass(value, BaseException):
                    found.append(value)
    return found


def test_the_walk_sees_the_known_errors() -> None:
    names = {cls.__name__ for cls in project_exception_classes()}
    assert {"WorkspaceError", "SearchError", "LabelError", "ModelUnavailable", "GenerationCancelled"} <= names
    assert len(names) >= 20


def test_every_project_error_derives_from_one_base() -> None:
    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in project_exception_classes()
        if not issubclass(cls, ZNavigatorError | Cancelled)
        and f"{cls.__module__}.{cls.__qualname__}" not in TRANSLATIONS
    ]
    assert strays == []


def test_a_cancellation_is_not_an_error() -> None:
    assert not any(
        issubclass(cls, ZNavigatorError) and issubclass(cls, Cancelled) for cls in project_exception_classes()
    )


def test_errors_that_were_value_errors_still_are() -> None:
    from kb.labels import LabelError
    from kb.search.query import QuerySyntaxError
    from models.prior.credence_imitation import ImitationRefused
    from models.prior.exact import TooManyStatements

    for cls in (LabelError, QuerySyntaxError, ImitationRefused, TooManyStatements):
        assert issubclass(cls, ValueError)


def test_message_and_hint() -> None:
    assert str(ZNavigatorError("the file is locked", hint="close the other app")) == (
        "the file is locked; close the other app"
    )
    assert str(ZNavigatorError("the file is locked")) == "the file is locked"
    assert str(Cancelled()) == "cancelled; nothing was written"


def test_cli_translates_any_project_error_once(tmp_path: Path) -> None:
    from models.llm.model import GenerationCancelled
    from models.llm.model_file import ModelUnavailable
    from models.prior.exact import TooManyStatements
    from navigator.commands.support import Failure, guard

    def raising(error: BaseException):  # type: ignore[no-untyped-def]
        def action() -> None:
            raise error

        return action

    with pytest.raises(Failure) as failed:
        guard(raising(TooManyStatements("21 statements is more than the exact check takes")))
    assert failed.value.message == "21 statements is more than the exact check takes"
    with pytest.raises(Failure) as failed:
        guard(raising(ModelUnavailable("no model file at x.gguf", "pass --model")))
    assert failed.value.message == "no model file at x.gguf; pass --model"
    with pytest.raises(Failure) as failed:
        guard(raising(GenerationCancelled("ask on 'n1' was cancelled; nothing was written")))
    assert failed.value.message == "ask on 'n1' was cancelled; nothing was written"
    with pytest.raises(Failure) as failed:
        guard(raising(sqlite3.DatabaseError("file is not a database")))
    assert "could not be used" in failed.value.message
    with pytest.raises(KeyError):  # a bug is not dressed up as a user error
        guard(raising(KeyError("x")))


def test_cli_prints_one_line_and_exit_status_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kb.labels import LabelError
    from navigator.commands.support import guard

    @click.command()
    def broken() -> None:
        def action() -> None:
            raise LabelError("a probability must be between 0 and 1", hint="type 0.8, not 80")

        guard(action)

    result = CliRunner().invoke(broken, [])
    assert result.exit_code == 1
    assert result.output == "error: a probability must be between 0 and 1; type 0.8, not 80\n"


def test_app_translation_says_what_and_what_to_do() -> None:
    from models.llm.model import GenerationCancelled
    from models.llm.model_file import ModelUnavailable
    from navigator.display import describe_error

    assert describe_error(ModelUnavailable("no model file at x.gguf", "pass --model")) == (
        "no model file at x.gguf; pass --model"
    )
    assert describe_error(GenerationCancelled("unpack of 'n1' was cancelled; nothing was written")) == (
        "unpack of 'n1' was cancelled; nothing was written"
    )
    assert describe_error(GenerationCancelled()) == "cancelled; nothing was written"
    # untrusted text in a message stays plain text in the app
    assert describe_error(ZNavigatorError("[bold]x[/bold] is not a node")) == "[bold]x[/bold] is not a node"
