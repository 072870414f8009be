"""`navigator serve` against a real server process with real websocket clients, driven the way
textual-serve's browser client drives it (JSON text frames ["stdin", keys] and ["resize", size]; the
app's screen comes back as terminal output in binary frames).

What is checked is what a crowd or a stranger could do: connect without a token (no app process
starts, however many try), connect from another site's page, label under another's name, keep a
revoked link, go past the ceiling on processes, or leave a session open forever."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest
from serve_support import Tab, open_tab, serving, small_team, token_of, wait_for_labels

from kb.db import connect
from kb.labelers import revoke_link


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return small_team(tmp_path)


async def label_once(tab: Tab, name: str, key: str) -> None:
    await tab.wait_for(f"{name} · team.db · z")  # the workbench's status line
    await tab.type(key)
    await tab.type("s")


async def status(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, str]:
    async with http.get(url, headers=headers, allow_redirects=False) as answer:
        return answer.status, (await answer.read()).decode("utf-8", errors="replace")


async def test_a_link_signs_in_and_the_app_runs_as_that_labeler_only(workspace: Path) -> None:
    ann = token_of(workspace, "ann")
    with serving(workspace) as served:
        async with aiohttp.ClientSession() as http:
            code, page = await status(http, served.base + "/")
            assert code == 401 and "sign in" in page and served.apps() == 0

            async with http.get(f"{served.base}/login?token={ann}", allow_redirects=False) as signed:
                assert signed.status == 303 and signed.headers["Location"] == "/"
                cookie = signed.headers["Set-Cookie"]
            assert f"{served.cookie}={ann}" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie

            code, page = await status(http, served.base + "/", Cookie=f"{served.cookie}={ann}")
            assert code == 200 and f"ws://127.0.0.1:{served.port}/ws" in page
            # Offline: the page names nothing outside this server but the websocket.
            assert re.findall(r"(?:src|href)=\"([^\"]+)\"", page) == [
                "/static/css/xterm.css",
                "/static/js/textual.js",
                "/",
                "/logout",
            ]
            assert "googleapis" not in page and page.count("http") == 0
            for asset in ("/static/js/textual.js", "/static/fonts/RobotoMono-VariableFont_wght.ttf"):
                assert (await status(http, served.base + asset))[0] == 200

            # Asking to be bob changes nothing: the app runs as the token's labeler and asks no name.
            tab = await open_tab(http, served, ann, query="&labeler=bob")
            await label_once(tab, "ann", "1")
            assert "Who is labelling" not in tab.screen
            assert [who for who, _ in await wait_for_labels(workspace, 1)] == ["ann"]
            await tab.socket.close()
    assert "Only invited labelers get in, each with their link: ann." in served.output.read_text()


async def test_connections_without_a_token_start_no_process_and_the_server_keeps_answering(
    workspace: Path,
) -> None:
    ann = token_of(workspace, "ann")
    with serving(workspace) as served:
        async with aiohttp.ClientSession() as http:

            async def attempt(n: int) -> int:
                headers = {"Origin": served.base}
                if n % 3 == 1:
                    headers["Cookie"] = f"{served.cookie}=not-a-token-{n}"
                if n % 3 == 2:
                    async with http.get(f"{served.base}/login?token=guess{n}", allow_redirects=False) as page:
                        return page.status
                try:
                    async with http.ws_connect(f"ws://127.0.0.1:{served.port}/ws", headers=headers):
                        return 101
                except aiohttp.WSServerHandshakeError as refused:
                    return refused.status

            codes = await asyncio.gather(*(attempt(n) for n in range(200)))
            assert set(codes) == {401} and len(codes) == 200
            assert served.apps() == 0
            start = time.monotonic()
            code, _ = await status(http, served.base + "/", Cookie=f"{served.cookie}={ann}")
            assert code == 200 and time.monotonic() - start < 2.0
            assert served.apps() == 0  # a page load starts nothing either; only the websocket does


async def test_a_websocket_from_another_sites_page_is_refused(workspace: Path) -> None:
    ann = token_of(workspace, "ann")
    with serving(workspace) as served:
        async with aiohttp.ClientSession() as http:
            for origin in ("http://evil.example", f"http://127.0.0.1:{served.port + 1}", "null"):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(
                        f"ws://127.0.0.1:{served.port}/ws",
                        headers={"Origin": origin, "Cookie": f"{served.cookie}={ann}"},
                    )
                assert refused.value.status == 403
            async with http.post(
                served.base + "/login", data={"token": ann}, headers={"Origin": "http://evil.example"}
            ) as form:
                assert form.status == 403
            assert served.apps() == 0


async def test_sessions_up_to_the_cap_label_a_second_tab_takes_over_and_the_next_labeler_gets_the_full_page(
    workspace: Path,
) -> None:
    tokens = {name: token_of(workspace, name) for name in ("ann", "bob", "cy")}
    with serving(workspace, "--max-sessions", "2") as served:
        async with aiohttp.ClientSession() as http:
            ann, bob = await asyncio.gather(
                open_tab(http, served, tokens["ann"]), open_tab(http, served, tokens["bob"])
            )
            await asyncio.gather(label_once(ann, "ann", "1"), label_once(bob, "bob", "2"))
            assert sorted(who for who, _ in await wait_for_labels(workspace, 2)) == ["ann", "bob"]
            assert served.apps() == 2

            code, page = await status(http, served.base + "/", Cookie=f"{served.cookie}={tokens['cy']}")
            assert code == 503 and "All 2 places on this server are in use" in page
            with pytest.raises(aiohttp.WSServerHandshakeError) as full:
                await open_tab(http, served, tokens["cy"])
            assert full.value.status == 503 and served.apps() == 2

            # ann opens a second tab: the first closes (its app quits), the second goes on as ann.
            again = await open_tab(http, served, tokens["ann"])
            await ann.wait_closed(within=20)
            code, reason = await status(http, served.base + "/ended", Cookie=f"{served.cookie}={tokens['ann']}")
            assert code == 200 and "another tab" in reason
            await again.wait_for("ann · team.db · z")
            assert served.apps() == 2

            # bob leaves, and cy finds a place.
            await bob.socket.close()
            deadline = time.monotonic() + 20
            while (await status(http, served.base + "/", Cookie=f"{served.cookie}={tokens['cy']}"))[0] != 200:
                assert time.monotonic() < deadline, "bob's place was never freed"
                await asyncio.sleep(0.2)


async def test_a_revoked_link_stops_at_once(workspace: Path) -> None:
    ann = token_of(workspace, "ann")
    with serving(workspace) as served:
        async with aiohttp.ClientSession() as http:
            tab = await open_tab(http, served, ann)
            await tab.wait_for("ann · team.db · z")
            conn = connect(workspace)
            revoke_link(conn, "ann")
            conn.close()
            assert await tab.wait_closed(within=10) < 5
            assert (await status(http, served.base + "/", Cookie=f"{served.cookie}={ann}"))[0] == 401
            assert (await status(http, f"{served.base}/login?token={ann}"))[0] == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await open_tab(http, served, ann)
            assert refused.value.status == 401
            deadline = time.monotonic() + 20
            while served.apps():
                assert time.monotonic() < deadline, "the revoked labeler's app kept running"
                await asyncio.sleep(0.2)


async def test_an_idle_session_closes_and_says_why(workspace: Path) -> None:
    ann = token_of(workspace, "ann")
    with serving(workspace, "--idle-minutes", "0.1") as served:
        async with aiohttp.ClientSession() as http:
            tab = await open_tab(http, served, ann)
            await tab.wait_for("ann · team.db · z")
            assert await tab.wait_closed(within=20) > 0
            code, reason = await status(http, served.base + "/ended", Cookie=f"{served.cookie}={ann}")
            assert code == 200 and "Closed after 0.1 minutes without input" in reason


async def test_without_auth_anyone_is_asked_their_name_and_told_what_that_opens(workspace: Path) -> None:
    with serving(workspace, "--no-auth") as served:
        async with aiohttp.ClientSession() as http:
            assert (await status(http, served.base + "/"))[0] == 200
            # A page under another name that resolves to 127.0.0.1 (DNS rebinding) gets nothing.
            assert (await status(http, served.base + "/", Host=f"evil.example:{served.port}"))[0] == 403
            tab = await open_tab(http, served, None)
            await tab.wait_for("Who is labelling?")
            await tab.type("dee")
            await tab.type("\r")
            await label_once(tab, "dee", "1")
            assert [who for who, _ in await wait_for_labels(workspace, 1)] == ["dee"]
    said = served.output.read_text()
    assert "--no-auth: anyone who can open that address can label here under any name" in said
