"""Who may open the served app: links made, replaced and revoked in the real workspace file (only a
hash kept), the commands a lead runs, the rules the server applies before any app process starts
(origin, ceiling, escaping), and the served app offering no way to act under another name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from click.testing import CliRunner
from serve_support import small_team

from kb.db import WorkspaceError, connect
from kb.labelers import add_labeler, issue_link, labeler, labeler_for_token, list_labelers, revoke_link, token_hash
from navigator.app import NavigatorApp
from navigator.cli import main
from navigator.screens.workbench import WorkbenchScreen
from navigator.web.pages import app_page, login_page, message_page
from navigator.web.server import ServeConfig, app_command, host_is_known, same_origin
from navigator.web.sessions import SESSION_MEMORY, available_memory, default_cap


def test_a_link_is_kept_only_as_its_hash_and_a_new_one_or_a_revoke_ends_the_old(tmp_path: Path) -> None:
    path = small_team(tmp_path)
    conn = connect(path)
    first = issue_link(conn, "ann")
    assert labeler_for_token(conn, first).name == "ann"  # type: ignore[union-attr]
    stored = [row[0] for row in conn.execute("SELECT token_hash FROM labelers WHERE name = 'ann'")]
    written = b"".join(file.read_bytes() for file in path.parent.glob(path.name + "*") if file.is_file())
    assert stored == [token_hash(first)] and token_hash(first).encode() in written and first.encode() not in written

    second = issue_link(conn, "ann")
    assert second != first and labeler_for_token(conn, first) is None
    assert labeler_for_token(conn, second).name == "ann"  # type: ignore[union-attr]
    assert labeler_for_token(conn, "") is None and labeler_for_token(conn, "guess") is None

    revoked = revoke_link(conn, "ann")
    assert revoked.access == "revoked" and labeler_for_token(conn, second) is None
    assert labeler(conn, "ann").lead is False  # type: ignore[union-attr]
    add_labeler(conn, "ann", lead=True)  # a role change leaves access as it was
    assert labeler(conn, "ann").access == "revoked"  # type: ignore[union-attr]
    third = issue_link(conn, "ann")
    assert labeler(conn, "ann").access == "link" and labeler_for_token(conn, third).lead  # type: ignore[union-attr]

    with pytest.raises(WorkspaceError, match="no labeler 'zed'"):
        issue_link(conn, "zed")
    with pytest.raises(WorkspaceError, match="no labeler 'zed'"):
        revoke_link(conn, "zed")
    assert [entry.access for entry in list_labelers(conn)] == ["link", "none", "none"]


def test_the_lead_adds_lists_links_and_revokes_labelers_from_the_command_line(tmp_path: Path) -> None:
    path = small_team(tmp_path)
    runner = CliRunner()

    added = runner.invoke(main, ["labelers", "add", "dee", "-w", str(path), "--url", "https://label.example.org/"])
    assert added.exit_code == 0, added.output
    link = next(line.strip() for line in added.output.splitlines() if "/login?token=" in line)
    assert link.startswith("https://label.example.org/login?token=")
    token = link.split("token=", 1)[1]
    conn = connect(path)
    assert labeler_for_token(conn, token).name == "dee"  # type: ignore[union-attr]

    again = runner.invoke(main, ["labelers", "add", "dee", "--lead", "-w", str(path)])
    assert again.exit_code == 0 and "their link still works" in again.output and "token=" not in again.output
    assert labeler_for_token(conn, token).lead  # type: ignore[union-attr]

    replaced = runner.invoke(main, ["labelers", "link", "dee", "-w", str(path), "--json"])
    fresh = json.loads(replaced.output)
    assert fresh["name"] == "dee" and fresh["link"] == f"http://127.0.0.1:8000/login?token={fresh['token']}"
    assert labeler_for_token(conn, token) is None

    revoked = runner.invoke(main, ["labelers", "revoke", "dee", "-w", str(path)])
    assert revoked.exit_code == 0 and "link revoked; their labels stay" in revoked.output
    listed = json.loads(runner.invoke(main, ["labelers", "list", "-w", str(path), "--json"]).output)
    assert {entry["name"]: entry["access"] for entry in listed} == {
        "ann": "none",
        "bob": "none",
        "cy": "none",
        "dee": "revoked",
    }

    missing = runner.invoke(main, ["labelers", "revoke", "zed", "-w", str(path)])
    assert missing.exit_code == 1 and "no labeler 'zed'" in missing.output


def config(**changes: object) -> ServeConfig:
    values: dict[str, object] = {
        "workspace": Path("w.db"),
        "library": None,
        "host": "127.0.0.1",
        "port": 8000,
        "public_url": None,
        "auth": True,
        "max_sessions": 4,
        "idle_seconds": 60.0,
    }
    values.update(changes)
    return ServeConfig(**values)  # type: ignore[arg-type]


def test_only_the_servers_own_pages_may_open_a_websocket() -> None:
    request = make_mocked_request("GET", "/ws", headers={"Host": "127.0.0.1:8000"})
    plain = config()
    assert same_origin("http://127.0.0.1:8000", request, plain)
    assert same_origin(None, request, plain)  # not a browser page; a token is still needed
    for foreign in ("http://evil.example", "http://127.0.0.1:8001", "null", "https://127.0.0.1.evil.example:8000"):
        assert not same_origin(foreign, request, plain), foreign

    proxied = config(public_url="https://label.example.org/navigator")
    behind = make_mocked_request("GET", "/ws", headers={"Host": "127.0.0.1:8000"})
    assert same_origin("https://label.example.org", behind, proxied)
    assert not same_origin("http://label.example.org", behind, proxied)  # not the scheme browsers use
    assert proxied.base_path == "/navigator" and proxied.secure and config().cookie == "znav_token_8000"


def test_without_sign_in_only_the_servers_own_names_are_answered() -> None:
    local = config(auth=False)
    assert all(host_is_known(host, local) for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"))
    assert not any(host_is_known(host, local) for host in ("evil.example:8000", "127.0.0.1.evil.example:8000"))
    assert host_is_known("label.example.org", config(auth=False, public_url="https://label.example.org"))
    assert host_is_known("any.name:8000", config(auth=False, host="0.0.0.0"))


def test_the_app_command_runs_as_the_signed_in_labeler_whatever_the_name_holds() -> None:
    command = app_command(config(), "ann'; rm -rf / #")
    assert command.startswith("exec ") and "--served-as 'ann'\"'\"'; rm -rf / #'" in command
    assert "--ask-labeler" in app_command(config(auth=False), None)


def test_the_ceiling_is_half_the_available_memory_in_app_processes(tmp_path: Path) -> None:
    assert default_cap(None) == 8
    assert default_cap(0) == 1
    assert default_cap(24 * 2**30) == 24 * 2**30 // 2 // SESSION_MEMORY == 61
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n")
    assert available_memory(meminfo) == 20000000 * 1024
    assert available_memory(tmp_path / "absent") is None


def test_pages_escape_what_they_show() -> None:
    page = message_page("<b>title</b>", "<script>alert(1)</script>")
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "&lt;b&gt;title" in page
    assert 'action="/x&quot;/login"' in login_page('/x"')
    assert 'data-session-websocket-url="ws://h/ws?a=1&amp;b=2"' in app_page(
        base="", static="/static", websocket="ws://h/ws?a=1&b=2"
    )


async def test_the_served_app_asks_no_name_and_offers_no_merge_of_anothers_labels(tmp_path: Path) -> None:
    path = small_team(tmp_path)
    for served in (False, True):
        app = NavigatorApp(workspace=path, labeler="ann", served=served)
        async with app.run_test() as pilot:
            await pilot.pause()
            assert isinstance(app.screen, WorkbenchScreen) and app.labeler == "ann"
            titles = [command.title for command in app.get_system_commands(app.screen)]
            assert "Export my labels" in titles
            assert ("Merge a labels export…" in titles) is not served
