"""The served workspace: an aiohttp application in front of one app process per signed-in labeler.

Every request is checked before anything costs memory: the sign-in (a cookie holding the labeler's
token, checked against the hash in the workspace on every request), the origin of a websocket
(a page on another site cannot drive a labeler's app), and the ceiling on processes. Only then does
a websocket start an app, running as that labeler (`navigator --served-as NAME`), which offers no
way to act under another name. A watcher ends sessions whose link was revoked or replaced and
sessions left idle. The browser side is textual-serve's client (textual.js, xterm.css and the
font, served from its package), so the page needs nothing from the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import textual_serve
from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from kb.db import connect
from kb.labelers import Labeler, labeler_for_token
from navigator.web.pages import app_page, full_page, login_page, message_page
from navigator.web.sessions import AppProcess, Session, Sessions

log = logging.getLogger("navigator.serve")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
STATIC = Path(textual_serve.__file__).parent / "static"
COOKIE_DAYS = 14


@dataclass(frozen=True)
class ServeConfig:
    workspace: Path
    library: str | None
    host: str
    port: int
    public_url: str | None
    auth: bool
    max_sessions: int
    idle_seconds: float
    check_seconds: float = 1.0

    @property
    def url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def base_path(self) -> str:
        """The path the server is mounted at behind a proxy ("" at the root)."""
        return urlsplit(self.url).path.rstrip("/")

    @property
    def secure(self) -> bool:
        return self.url.startswith("https:")

    @property
    def cookie(self) -> str:
        """One cookie name per port: browsers share cookies between ports of a host."""
        return f"znav_token_{self.port}"


def app_command(config: ServeConfig, labeler: str | None) -> str:
    """The shell command for one app process: as the signed-in labeler, or asking (--no-auth). `exec`
    replaces the shell textual-serve starts it with, so each session is one process."""
    arguments = [sys.executable, "-m", "navigator.cli", "--workspace", str(config.workspace.resolve())]
    arguments += ["--served-as", labeler] if labeler is not None else ["--ask-labeler"]
    if config.library:
        arguments += ["--library", config.library]
    return "exec " + shlex.join(arguments)


def host_is_known(host: str, config: ServeConfig) -> bool:
    """The Host a request names is this server's: a loopback name, the listening address or the
    public URL's host. Listening on every address, any name is the server's."""
    if config.host in ("0.0.0.0", "::"):
        return True
    name = urlsplit(f"http://{host}").hostname or ""
    return name in LOOPBACK or name == config.host or name == (urlsplit(config.url).hostname or "")


def same_origin(origin: str | None, request: web.Request, config: ServeConfig) -> bool:
    """A browser's websocket or form must come from this server's own pages: the Origin is the
    public URL's, or names the host the request was sent to (as Jupyter and Tornado check). A client
    that sends no Origin is not a browser page; it still needs a token."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    public = urlsplit(config.url)
    if (parts.scheme, parts.netloc.lower()) == (public.scheme, public.netloc.lower()):
        return True
    return parts.netloc.lower() == request.host.lower()


class LabelingServer:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.sessions = Sessions(config.max_sessions, config.idle_seconds)
        self.conn: sqlite3.Connection = connect(config.workspace)
        self._watcher: asyncio.Task[None] | None = None
        self._endings: set[asyncio.Task[None]] = set()

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._known_host] if not self.config.auth else [])
        app.add_routes(
            [
                web.get("/", self.index),
                web.get("/login", self.login_link),
                web.post("/login", self.login_form),
                web.get("/logout", self.logout),
                web.get("/ended", self.ended),
                web.get("/ws", self.websocket),
                web.get("/download/{key}", self.download),
                web.static("/static", STATIC),
            ]
        )
        app.on_startup.append(self._start_watching)
        app.on_shutdown.append(self._end_everything)
        return app

    # -- who is asking ------------------------------------------------------------

    @web.middleware
    async def _known_host(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Without sign-in, a page on another site could reach 127.0.0.1 under a name of its own that
        resolves there (DNS rebinding): only requests sent to this server's own names are answered."""
        if not host_is_known(request.host, self.config):
            return self._refuse(403, message_page("Refused", "This server answers only at its own address."))
        return await handler(request)

    def signed_in(self, request: web.Request) -> Labeler | None:
        return labeler_for_token(self.conn, request.cookies.get(self.config.cookie, ""))

    def _refuse(self, status: int, page: str) -> web.Response:
        return web.Response(status=status, text=page, content_type="text/html")

    def _signed_in_response(self, token: str) -> web.HTTPSeeOther:
        response = web.HTTPSeeOther(f"{self.config.base_path}/")
        response.set_cookie(
            self.config.cookie,
            token,
            max_age=COOKIE_DAYS * 86400,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.config.secure,
        )
        return response

    # -- pages ----------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        base = self.config.base_path
        who = self.signed_in(request) if self.config.auth else None
        if self.config.auth and who is None:
            return self._refuse(401, login_page(base))
        if not self.sessions.has_room_for(who.name if who is not None else None):
            return self._refuse(503, full_page(self.sessions.cap))
        page = app_page(base=base, static=f"{base}/static", websocket=self._websocket_url(request))
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    def _websocket_url(self, request: web.Request) -> str:
        if self.config.public_url:
            public = urlsplit(self.config.url)
            scheme = "wss" if public.scheme == "https" else "ws"
            return f"{scheme}://{public.netloc}{public.path.rstrip('/')}/ws"
        return f"ws://{request.host}/ws"

    async def login_link(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        if labeler_for_token(self.conn, token) is None:
            return self._refuse(
                401,
                login_page(
                    self.config.base_path,
                    "That link is not valid: it was revoked, "
                    "replaced by a newer one, or mistyped. Ask your lead for a new one.",
                ),
            )
        raise self._signed_in_response(token)

    async def login_form(self, request: web.Request) -> web.Response:
        if not same_origin(request.headers.get("Origin"), request, self.config):
            return self._refuse(403, message_page("Refused", "A sign-in from another site's page is refused."))
        token = str((await request.post()).get("token", "")).strip()
        if labeler_for_token(self.conn, token) is None:
            return self._refuse(
                401,
                login_page(
                    self.config.base_path,
                    "That token is not valid: it was revoked, replaced by a newer one, or mistyped.",
                ),
            )
        raise self._signed_in_response(token)

    async def logout(self, request: web.Request) -> web.Response:
        who = self.signed_in(request)
        if who is not None and (session := self.sessions.of(who.name)) is not None:
            await self.sessions.end(session, "You signed out. Your labels and your place are saved.")
        response = web.HTTPSeeOther(f"{self.config.base_path}/")
        response.del_cookie(self.config.cookie, path="/")
        raise response

    async def ended(self, request: web.Request) -> web.Response:
        who = self.signed_in(request) if self.config.auth else None
        if self.config.auth and who is None:
            return web.Response(status=401, text="Your link is no longer valid: ask your lead for a new one.")
        name = who.name if who is not None else None
        reason = self.sessions.ended_because.get(name, "The session ended. Your labels and your place are saved.")
        return web.Response(text=reason)

    async def download(self, request: web.Request) -> web.StreamResponse:
        if self.config.auth and self.signed_in(request) is None:
            return self._refuse(401, login_page(self.config.base_path))
        key = request.match_info["key"]
        try:
            meta = await self.sessions.downloads.get_download_metadata(key)
        except KeyError:
            raise web.HTTPNotFound(text="no such download") from None
        response = web.StreamResponse()
        response.headers["Content-Type"] = meta.mime_type + (f"; charset={meta.encoding}" if meta.encoding else "")
        disposition = "inline" if meta.open_method == "browser" else "attachment"
        response.headers["Content-Disposition"] = f"{disposition}; filename={json.dumps(meta.file_name)}"
        await response.prepare(request)
        async for chunk in self.sessions.downloads.download(key):
            await response.write(chunk)
        await response.write_eof()
        return response

    # -- the app's websocket ------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """Every check happens before the upgrade, so a refused connection costs one HTTP answer."""
        if not same_origin(request.headers.get("Origin"), request, self.config):
            return self._refuse(403, message_page("Refused", "A connection from another site's page is refused."))
        labeler: str | None = None
        token: str | None = None
        if self.config.auth:
            token = request.cookies.get(self.config.cookie, "")
            who = labeler_for_token(self.conn, token)
            if who is None:
                return self._refuse(401, login_page(self.config.base_path))
            labeler = who.name
        if not self.sessions.has_room_for(labeler):
            return self._refuse(503, full_page(self.sessions.cap))
        # The place is taken before the first await, so concurrent connections cannot overshoot the cap;
        # a takeover's old app quits before the new one starts.
        previous = self.sessions.of(labeler)
        websocket = web.WebSocketResponse(heartbeat=15)

        async def close() -> None:
            await websocket.close()

        process = AppProcess(
            app_command(self.config, labeler),
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=close,
            download_manager=self.sessions.downloads,
        )
        session = Session(labeler, token, process, close)
        self.sessions.add(session)
        log.info("%s opened a session (%d of %d)", labeler or "someone unnamed", len(self.sessions), self.sessions.cap)
        try:
            if previous is not None:
                await self.sessions.end(previous, "You opened Z Navigator in another tab or browser; it goes on there.")
            await websocket.prepare(request)
            await process.start(_size(request, "width", 80), _size(request, "height", 24))
            await self._relay(websocket, session)
        except asyncio.CancelledError:
            pass
        finally:
            await self.sessions.end(
                session, "The session ended (its tab closed or lost the connection). Your labels and place are saved."
            )
        return websocket

    async def _relay(self, websocket: web.WebSocketResponse, session: Session) -> None:
        """The browser's keys and sizes to the app (textual-serve's client protocol)."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                kind, data = json.loads(message.data)
            except (ValueError, TypeError):
                continue
            if kind == "stdin" and isinstance(data, str):
                session.touch()
                await session.process.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                width, height = data.get("width"), data.get("height")
                if isinstance(width, int) and isinstance(height, int):
                    await session.process.set_terminal_size(max(10, min(1000, width)), max(10, min(1000, height)))
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await session.process.blur()
            elif kind == "focus":
                session.touch()
                await session.process.focus()

    # -- the watcher -------------------------------------------------------------

    async def _start_watching(self, app: web.Application) -> None:
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """Revoked or replaced links and idle sessions end within `check_seconds`."""
        while True:
            await asyncio.sleep(self.config.check_seconds)
            for session in list(self.sessions.live.values()):
                if session.ending:
                    continue
                if session.token is not None and not self._still_valid(session):
                    self._end_soon(
                        session,
                        "Your link was revoked or replaced; ask your lead for a new one. Your labels are saved.",
                    )
                elif session.idle_for() > self.sessions.idle_seconds:
                    minutes = self.sessions.idle_seconds / 60
                    self._end_soon(
                        session,
                        f"Closed after {minutes:g} minutes without input. Your labels and your place are saved.",
                    )

    def _end_soon(self, session: Session, reason: str) -> None:
        """End a session without holding up the watcher (an app may take seconds to quit)."""
        task = asyncio.create_task(self.sessions.end(session, reason))
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    def _still_valid(self, session: Session) -> bool:
        who = labeler_for_token(self.conn, session.token or "")
        return who is not None and who.name == session.labeler

    async def _end_everything(self, app: web.Application) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await asyncio.gather(
            *(
                self.sessions.end(s, "The server stopped. Your labels and your place are saved.")
                for s in list(self.sessions.live.values())
            )
        )


def _size(request: web.Request, name: str, default: int) -> int:
    try:
        return max(10, min(1000, int(request.query.get(name, default))))
    except ValueError:
        return default
