"""The served HTML, from two templates: the app page (the terminal that textual.js draws) and a
message page (login, full, signed out). Every value is HTML-escaped here; the pages fetch nothing
from outside the server, so they work on a machine with no internet."""

from __future__ import annotations

import html
from importlib import resources
from string import Template

TITLE = "Z Navigator"


def _template(name: str) -> Template:
    return Template(resources.files("navigator.web").joinpath("pages", name).read_text(encoding="utf-8"))


def app_page(*, base: str, static: str, websocket: str) -> str:
    values = {"title": TITLE, "base": base, "static": static, "websocket": websocket}
    return _template("app.html").substitute({key: html.escape(value) for key, value in values.items()})


def message_page(title: str, text: str, *, form: str = "") -> str:
    """`form` is trusted markup made in this module (the login form); title and text are escaped."""
    return _template("message.html").substitute(title=html.escape(title), text=html.escape(text), form=form)


def login_page(base: str, problem: str | None = None) -> str:
    text = problem or "Open the link your lead gave you, or paste its token here."
    form = (
        f'<form method="post" action="{html.escape(base)}/login">'
        '<label for="token">Token</label>'
        '<input id="token" name="token" type="password" autocomplete="off" autofocus required />'
        '<button type="submit">Sign in</button></form>'
    )
    return message_page(f"{TITLE}: sign in", text, form=form)


def full_page(cap: int) -> str:
    return message_page(
        f"{TITLE}: full",
        f"All {cap} places on this server are in use. Try again in a few minutes; your labels and your"
        " place are saved. (The lead sets the number with `navigator serve --max-sessions`.)",
    )
