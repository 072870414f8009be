"""The running app processes of a served workspace, and the limits on them.

One process per signed-in labeler: a second tab takes over the first (whose app quits, so its
place is saved as on any exit). A ceiling on processes keeps a crowd from exhausting the machine:
by default, half the memory available at start, at `SESSION_MEMORY` each. Measured on the demo
(`python3 -m bench.serve`): an app process holds about 55 MB (PSS); once its labeler unpacks, its
model process adds about 105 MB of its own, and the model file (245 MB) is shared by every model
process. A session with no input for the idle time is closed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

log = logging.getLogger("navigator.serve")

SESSION_MEMORY = 200 * 1024 * 1024
STOP_SECONDS = 10.0


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes, or None where the system does not say (not Linux)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_cap(available: int | None) -> int:
    """Half the available memory in app processes; 8 where the memory is unknown."""
    if available is None:
        return 8
    return max(1, available // 2 // SESSION_MEMORY)


class AppProcess(AppService):
    """textual-serve's app process (its packet protocol), with a stop that cannot hang: an app that
    does not quit within STOP_SECONDS of being asked is killed."""

    async def stop_within(self, seconds: float = STOP_SECONDS) -> None:
        try:
            await asyncio.wait_for(self.stop(), seconds)
        except TimeoutError:
            process = self._process
            if process is not None and process.returncode is None:
                log.warning("an app process did not quit in %s s; killing it", seconds)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


@dataclass(eq=False)
class Session:
    """One browser tab's app. `labeler` is None only without sign-in (`serve --no-auth`)."""

    labeler: str | None
    token: str | None
    process: AppProcess
    close_websocket: Callable[[], Awaitable[object]]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    last_input: float = field(default_factory=time.monotonic)
    ending: bool = False

    def touch(self) -> None:
        self.last_input = time.monotonic()

    def idle_for(self) -> float:
        return time.monotonic() - self.last_input


class Sessions:
    """The live sessions, at most `cap`, at most one per labeler, and why each labeler's last one ended."""

    def __init__(self, cap: int, idle_seconds: float) -> None:
        self.cap = cap
        self.idle_seconds = idle_seconds
        self.live: dict[str, Session] = {}
        self.ended_because: dict[str | None, str] = {}
        self.downloads = DownloadManager()

    def __len__(self) -> int:
        return len(self.live)

    def of(self, labeler: str | None) -> Session | None:
        if labeler is None:
            return None
        return next((s for s in self.live.values() if s.labeler == labeler and not s.ending), None)

    def has_room_for(self, labeler: str | None) -> bool:
        """A labeler who has a session may always replace it; anyone else needs a free place."""
        return self.of(labeler) is not None or len(self.live) < self.cap

    def add(self, session: Session) -> None:
        self.live[session.id] = session

    async def end(self, session: Session, reason: str) -> None:
        """Quit the session's app (its place is saved as on any exit), then close its websocket."""
        if session.ending:
            return
        session.ending = True
        self.ended_because[session.labeler] = reason
        log.info("ending the session of %s: %s", session.labeler or "an unnamed labeler", reason)
        try:
            await session.process.stop_within()
        finally:
            self.live.pop(session.id, None)
            with contextlib.suppress(Exception):
                await session.close_websocket()
