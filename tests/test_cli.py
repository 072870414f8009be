"""The `navigator` command line through click's CliRunner, with workspaces in tmp_path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from kb.db import connect
from kb.libraries import list_libraries
from navigator.cli import main

ANSI = re.compile(r"\x1b\[[0-9;]*m")
MARKUP_TITLE = "[bold]x[/]"
MARKUP_BODY = "see [link=http://e]y[/link] landlocked"
NODES = [
    {"id": "geo", "title": "Geography"},
    {"id": "mg", "parent": "geo", "title": "Mongolia", "body": "Mongolia is landlocked."},
    {"id": "fr", "parent": "geo", "title": "France", "body": "France has a coastline."},
    {"id": "mk", "parent": "geo", "title": MARKUP_TITLE, "body": MARKUP_BODY},
    {"id": "a1", "parent": "fr", "title": "Paris"},
]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace path that does not exist yet (the CLI creates it)."""
    return tmp_path / "cli.db"


def cli(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, [str(arg) for arg in args], env=env, catch_exceptions=False)
    return result


def ok(*args: str | Path, env: dict[str, str] | None = None) -> str:
    result = cli(*args, env=env)
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.stdout)


@pytest.fixture
def geo(ws: Path, write_jsonl) -> Path:
    """A workspace with library 'geo' imported (and indexed) from NODES."""
    ok("import", "--workspace", ws, write_jsonl("geo.jsonl", NODES))
    return ws


def libraries(ws: Path) -> dict[str, int]:
    conn = connect(ws)
    try:
        return {
            lib.name: conn.execute("SELECT subtree_size - 1 FROM nodes WHERE id = ?", (lib.root_id,)).fetchone()[0]
            for lib in list_libraries(conn)
        }
    finally:
        conn.close()


def importer_of(ws: Path, library: str) -> set[str]:
    conn = connect(ws)
    try:
        rows = conn.execute(
            "SELECT DISTINCT json_extract(n.provenance, '$.importer') FROM nodes n JOIN libraries l"
            " ON l.id = n.library_id WHERE l.name = ? AND n.parent_id IS NOT NULL",
            (library,),
        )
        return {row[0] for row in rows}
    finally:
        conn.close()


# -- init, env -------------------------------------------------------------


def test_init_creates_a_workspace_once(ws):
    assert "created workspace" in ok("init", "--workspace", ws)
    assert ws.exists()
    again = cli("init", "--workspace", ws)
    assert again.exit_code == 1 and again.stderr.startswith("error: ") and "already exists" in again.stderr


def test_workspace_from_environment(ws, write_jsonl):
    env = {"NAVIGATOR_WORKSPACE": str(ws)}
    ok("init", env=env)
    assert ws.exists()
    ok("import", write_jsonl("geo.jsonl", NODES), env=env)
    assert json.loads(ok("stats", "--json", env=env))["nodes"] == len(NODES)


def test_missing_workspace_is_a_one_line_error(ws):
    result = cli("stats", "--workspace", ws)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no workspace at") and len(result.stderr.strip().splitlines()) == 1


# -- import ----------------------------------------------------------------


def test_import_detects_formats(ws, tmp_path, write_jsonl):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# A\nText.\n", encoding="utf-8")
    (tmp_path / "paper.txt").write_text("INTRO\n\nHello.\n", encoding="utf-8")
    (tmp_path / "single.md").write_text("# One\nTwo.\n", encoding="utf-8")

    assert "imported 3 nodes into library 'notes'" in ok("import", "--workspace", ws, folder)
    ok("import", "--workspace", ws, write_jsonl("geo.jsonl", NODES))
    ok("import", "--workspace", ws, tmp_path / "paper.txt")
    ok("import", "--workspace", ws, tmp_path / "single.md")

    assert libraries(ws) == {"notes": 3, "geo": len(NODES), "paper": 2, "single": 2}
    assert importer_of(ws, "notes") == {"markdown"}
    assert importer_of(ws, "geo") == {"jsonl"}
    assert importer_of(ws, "paper") == {"text"}
    assert importer_of(ws, "single") == {"text"}
    # plain text turned the capitalised line into a section; Markdown read `# One` as one
    assert "INTRO  [1]" in ok("tree", "--workspace", ws, "--library", "paper")
    assert "One  [1]" in ok("tree", "--workspace", ws, "--library", "single")


def test_import_format_override_and_library_name(ws, tmp_path):
    path = tmp_path / "nodes.data"
    path.write_text(json.dumps({"id": "a", "title": "A"}) + "\n", encoding="utf-8")
    unknown = cli("import", "--workspace", ws, path)
    assert unknown.exit_code == 1 and "--format" in unknown.stderr

    out = ok("import", "--workspace", ws, path, "--format", "jsonl", "--library", "mine")
    assert "imported 1 nodes into library 'mine'" in out
    assert importer_of(ws, "mine") == {"jsonl"}

    text = tmp_path / "notes.jsonl"
    text.write_text("HEADING\n\nbody\n", encoding="utf-8")
    ok("import", "--workspace", ws, text, "--format", "text", "--library", "mine")
    assert libraries(ws) == {"mine": 3}


def test_import_json_output(ws, write_jsonl):
    report = json.loads(ok("import", "--workspace", ws, write_jsonl("geo.jsonl", NODES), "--json"))
    assert report["library"] == "geo" and report["added"] == len(NODES) and report["skipped"] == 0
    assert report["indexed"] == len(NODES) and report["problems"] == []


def test_failing_import_reports_file_line_field_reason(ws, write_jsonl):
    path = write_jsonl("bad.jsonl", [NODES[0], {"id": "b", "parent": "geo", "title": 5}])
    result = cli("import", "--workspace", ws, path)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {path}:2: title: Input should be a valid string"
    assert libraries(ws) == {}


def test_failing_import_into_an_existing_library_keeps_it(geo, write_jsonl):
    path = write_jsonl("more.jsonl", [{"id": "x", "parent": "nowhere", "title": "X"}])
    result = cli("import", "--workspace", geo, path, "--library", "geo")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}:1: parent: ")
    assert libraries(geo) == {"geo": len(NODES)}


def test_import_of_a_missing_path(ws, tmp_path):
    result = cli("import", "--workspace", ws, tmp_path / "nope.jsonl")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    assert libraries(ws) == {}


def test_import_skip_bad(ws, write_jsonl):
    path = write_jsonl("mixed.jsonl", [NODES[0], "{bad", {"id": "c", "parent": "geo", "title": "C"}])
    result = cli("import", "--workspace", ws, path, "--skip-bad")
    assert result.exit_code == 0
    assert f"skipped {path}:2: -: invalid JSON" in result.stderr
    assert "imported 2 nodes" in result.stdout and "skipped 1" in result.stdout


# -- items -----------------------------------------------------------------


def items_file(write_jsonl, name: str = "items.jsonl", count: int = 10) -> Path:
    return write_jsonl(
        name, [{"id": f"q{i}", "x": f"Q{i}?", "options": ["yes", "no"], "y": "yes"} for i in range(count)]
    )


def test_items_import_train_and_dstar(ws, write_jsonl, tmp_path):
    out = ok("items", "import", "--workspace", ws, items_file(write_jsonl), "--split", "train")
    assert out.strip() == "added 10 train"

    answers = tmp_path / "key.jsonl"
    dstar = write_jsonl("dstar.jsonl", [{"id": f"d{i}", "x": "?", "options": ["a", "b"], "y": "b"} for i in range(8)])
    report = json.loads(
        ok(
            "items",
            "import",
            "--workspace",
            ws,
            dstar,
            "--split",
            "dstar",
            "--answers",
            answers,
            "--validation-fraction",
            "0.25",
            "--seed",
            "3",
            "--json",
        )
    )
    assert report["added"] == {"train": 0, "validation": 2, "prediction": 6}
    assert report["answer_key"] == str(answers) and report["answers_written"] == 8
    assert len(answers.read_text(encoding="utf-8").splitlines()) == 8
    conn = connect(ws)
    try:
        assert conn.execute("SELECT COUNT(*) FROM items WHERE split != 'train' AND y IS NOT NULL").fetchone()[0] == 0
    finally:
        conn.close()


def test_items_import_dstar_default_answer_key(ws, write_jsonl):
    path = write_jsonl("dstar.jsonl", [{"id": f"d{i}", "x": "?", "options": ["a", "b"], "y": "a"} for i in range(8)])
    report = json.loads(
        ok("items", "import", "--workspace", ws, path, "--split", "dstar", "--validation-fraction", "0.25", "--json")
    )
    assert report["added"] == {"train": 0, "validation": 2, "prediction": 6}
    assert report["answers_written"] == 8
    assert Path(report["answer_key"]) == ws.with_name(ws.name + ".answers.jsonl")
    assert Path(report["answer_key"]).exists()
    stats = json.loads(ok("stats", "--workspace", ws, "--json"))
    assert stats["items"] == {"train": 0, "validation": 2, "prediction": 6}


def test_items_import_failure(ws, write_jsonl):
    path = write_jsonl("bad.jsonl", [{"id": "q", "x": "?", "options": "yes/no"}])
    result = cli("items", "import", "--workspace", ws, path, "--split", "train")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {path}:1: options: Input should be a valid list"


# -- search, show, tree, stats, index ---------------------------------------


def test_search_text_output(geo):
    out = ok("search", "--workspace", geo, "landlocked")
    assert "Geography › Mongolia" in out and "  mg" in out
    assert "Mongolia is landlocked." in out
    assert "2 matches in" in out


def test_search_json(geo):
    result = json.loads(ok("search", "--workspace", geo, "coastline", "--json"))
    assert result["query"] == "coastline" and result["total"] == 1 and result["suggestion"] is None
    (hit,) = result["hits"]
    assert hit["id"] == "fr" and hit["title"] == "France" and hit["path"] == "Geography › France"
    assert hit["snippet"] == "France has a coastline."


def test_search_no_results_suggests(geo):
    out = ok("search", "--workspace", geo, "mongolai")
    assert out.strip() == "no results for 'mongolai'; did you mean: mongolia"
    assert json.loads(ok("search", "--workspace", geo, "mongolai", "--json"))["suggestion"] == "mongolia"


def test_search_damaged_index_then_index_rebuild(geo):
    index_root = geo.with_name(geo.name + ".index")
    for segment in (*index_root.rglob("*.pst"), *index_root.rglob("*.doc")):
        segment.write_bytes(b"garbage")
    broken = cli("search", "--workspace", geo, "coastline")
    assert broken.exit_code == 1 and "navigator index --rebuild" in broken.stderr
    assert "Traceback" not in broken.output

    assert "library geo: indexed 5 nodes (rebuilt)" in ok("index", "--workspace", geo, "--rebuild")
    assert "France" in ok("search", "--workspace", geo, "coastline")


def test_index_json_and_incremental(geo):
    assert json.loads(ok("index", "--workspace", geo, "--json")) == {"indexed": {"geo": 0}}
    assert json.loads(ok("index", "--workspace", geo, "--rebuild", "--json")) == {"indexed": {"geo": 5}}


def test_import_no_index_then_index(ws, write_jsonl):
    ok("import", "--workspace", ws, write_jsonl("geo.jsonl", NODES), "--no-index")
    assert cli("search", "--workspace", ws, "coastline").exit_code == 1
    assert "indexed 5 nodes" in ok("index", "--workspace", ws)
    assert "France" in ok("search", "--workspace", ws, "coastline")


def test_index_unknown_library_is_a_one_line_error(geo):
    result = CliRunner().invoke(main, ["index", "--workspace", str(geo), "--library", "nope"])
    assert result.exit_code == 1 and result.stderr.startswith("error: no library named 'nope'")


def test_show(geo):
    out = ok("show", "--workspace", geo, "fr")
    lines = out.splitlines()
    assert lines[0] == "geo › Geography › France"
    assert lines[1] == "[statement, import] France"
    assert "France has a coastline." in lines
    assert "1 children, 2 nodes in subtree" in lines
    assert "  - Paris  (a1)" in lines
    data = json.loads(ok("show", "--workspace", geo, "geo", "--json"))
    assert data["path"] == ["geo", "Geography"] and data["children"] == 3 and data["subtree_size"] == 5
    assert [kid["id"] for kid in data["first_children"]] == ["mg", "fr", "mk"]


def test_show_unknown_node(geo):
    result = cli("show", "--workspace", geo, "nope")
    assert result.exit_code == 1 and result.stderr.startswith("error: no node 'nope'")


def test_tree_depth(geo):
    shallow = ok("tree", "--workspace", geo, "--depth", "1").splitlines()
    assert shallow[0].startswith("geo  [1]  (root_lib_")
    assert shallow[1:] == ["  Geography  [3]  (geo)"]
    deep = ok("tree", "--workspace", geo, "--depth", "3").splitlines()
    assert deep[1:] == [
        "  Geography  [3]  (geo)",
        "    Mongolia  (mg)",
        "    France  [1]  (fr)",
        "      Paris  (a1)",
        f"    {MARKUP_TITLE}  (mk)",
    ]
    below = json.loads(ok("tree", "--workspace", geo, "fr", "--depth", "1", "--json"))
    assert below["title"] == "France" and [kid["id"] for kid in below["first_children"]] == ["a1"]


def test_tree_limit_shows_how_many_more(geo):
    out = ok("tree", "--workspace", geo, "geo", "--limit", "1")
    assert "Mongolia  (mg)" in out and "... 2 more" in out and "France" not in out


def test_stats_json(geo, write_jsonl):
    ok("items", "import", "--workspace", geo, items_file(write_jsonl), "--split", "train")
    stats = json.loads(ok("stats", "--workspace", geo, "--json"))
    assert {"libraries", "nodes", "items", "predictions", "credences"} <= stats.keys()
    assert [(lib["name"], lib["nodes"]) for lib in stats["libraries"]] == [("geo", 5)]
    assert stats["nodes"] == 5
    assert stats["items"] == {"train": 10, "validation": 0, "prediction": 0}
    assert (stats["predictions"], stats["credences"]) == (0, 0)
    text = ok("stats", "--workspace", geo)
    assert "library geo: 5 nodes" in text and "10 train" in text


def test_markup_is_printed_literally(geo):
    shown = ok("show", "--workspace", geo, "mk")
    assert f"[statement, import] {MARKUP_TITLE}" in shown and MARKUP_BODY in shown
    assert f"{MARKUP_TITLE}  (mk)" in ok("tree", "--workspace", geo)
    found = ok("search", "--workspace", geo, "link")
    assert f"Geography › {MARKUP_TITLE}" in found
    assert MARKUP_BODY in found


# -- help --------------------------------------------------------------------


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_command_list_is_what_we_expect():
    assert set(all_commands(main)) >= {
        (),
        ("init",),
        ("import",),
        ("items",),
        ("items", "import"),
        ("search",),
        ("show",),
        ("tree",),
        ("stats",),
        ("index",),
        ("demo",),
    }


@pytest.mark.parametrize("command", all_commands(main), ids=lambda c: " ".join(c) or "navigator")
def test_help(command):
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_control_characters_are_printed_as_visible_symbols(tmp_path: Path) -> None:
    from kb.db import connect
    from kb.importing import StagedNode, import_staged
    from kb.libraries import create_library

    workspace = tmp_path / "esc.db"
    conn = connect(workspace, create=True)
    library = create_library(conn, "z")
    nasty = "title\x1b]0;pwned\x07 x"
    import_staged(
        conn, library, iter([StagedNode(1, "e", None, "statement", nasty, body=nasty)]), source="t", importer="test"
    )
    conn.close()
    for args in (["show", "e"], ["tree"]):
        result = CliRunner().invoke(main, [*args, "--workspace", str(workspace)])
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\x07" not in result.output
        assert "title␛]0;pwned␇ x" in result.output


def test_help_lists_every_command_without_importing_the_heavy_ones() -> None:
    """`navigator --help` must not pay for scikit-learn, scipy, llama.cpp or Textual."""
    import subprocess
    import sys
    from importlib import import_module

    from navigator.cli import LAZY_COMMANDS

    for name, (module, line) in LAZY_COMMANDS.items():
        real = getattr(import_module(module), name).get_short_help_str(limit=1000)
        assert real.startswith(line.removesuffix("…")), (name, real)
    probe = (
        "import sys; from click.testing import CliRunner; from navigator.cli import main; "
        "result = CliRunner().invoke(main, ['--help']); assert result.exit_code == 0, result.output; "
        "print(result.output); print(sorted(m for m in "
        "('sklearn', 'scipy', 'llama_cpp', 'textual', 'numpy', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    *text, imported = done.stdout.strip().splitlines()
    assert imported == "[]"
    for name in LAZY_COMMANDS:
        assert any(row.strip().startswith(name + " ") for row in text), name


def test_every_command_module_imports_on_its_own() -> None:
    """Each module LAZY_COMMANDS names loads first in a fresh process (no import cycle between commands)."""
    import subprocess
    import sys

    from navigator.cli import LAZY_COMMANDS

    for module in sorted({module for module, _ in LAZY_COMMANDS.values()}):
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        assert done.returncode == 0, (module, done.stderr)


def test_the_app_starts_without_scikit_learn_scipy_or_pandas() -> None:
    """Every app start pays for what the app imports, and `navigator serve` starts one app per
    labeler: the fitting libraries load when something is fitted or estimated, not before."""
    import subprocess
    import sys

    probe = "import sys, navigator.app; print(sorted(m for m in ('sklearn', 'scipy', 'pandas') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
