"""`navigator prior` end to end through click: file mode, workspace mode, and failures."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from kb.libraries import Library
from navigator.commands.prior import prior

DIE = [
    {"statements": ["A"], "p": 0.5},
    {"statements": ["B"], "p": 0.5},
    {"statements": ["C"], "p": 0.5},
    {"statements": ["A", "B"], "p": 0.25},
    {"statements": ["A", "C"], "p": 0.25},
    {"statements": ["B", "C"], "p": 0.25},
]


def run(*args: str) -> Any:
    return CliRunner().invoke(prior, list(args), catch_exceptions=False)


def test_file_json_gives_the_die_interval(write_jsonl: Callable[..., Path], workspace: Path) -> None:
    path = write_jsonl("die.jsonl", DIE)
    result = run("--credences", str(path), "--json", "--workspace", str(workspace))
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["coherent"] is True
    assert (shown["lower"], shown["upper"]) == (0.0, 0.25)
    assert "conflict" not in shown and "nearest" not in shown
    names = {e["name"] for e in shown["estimates"]}
    assert {"exact", "frechet", "hunter", "pair_minimum", "independence", "near_duplicate_clusters"} <= names
    assert all(e["assumption"] for e in shown["estimates"])


def test_file_json_query_and_triple(write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl("die.jsonl", [*DIE, {"statements": ["C", "B", "A"], "p": 0.0}])
    shown = json.loads(run("--credences", str(path), "--json").output)
    assert (shown["lower"], shown["upper"]) == (0.0, 0.0)
    pair = json.loads(run("--credences", str(path), "--query", "A, B", "--json").output)
    assert pair["query"] == ["A", "B"]
    assert pair["lower"] == pair["upper"] == 0.25
    loose = json.loads(run("--credences", str(path), "--query", "A,Z", "--json").output)
    assert loose["unconstrained"] == ["Z"] and loose["lower"] == 0.0 and loose["upper"] == 0.5


def test_file_json_reports_conflict_and_nearest(write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl(
        "bad.jsonl",
        [{"statements": ["a"], "p": 0.5}, {"statements": ["a", "b"], "p": 0.7}, {"statements": ["b"], "p": 0.9}],
    )
    shown = json.loads(run("--credences", str(path), "--json").output)
    assert shown["coherent"] is False
    assert shown["distance"] == 0.2 or abs(shown["distance"] - 0.2) < 1e-9
    assert [(c["statements"], c["source"]) for c in shown["conflict"]] == [(["a"], "line 1"), (["a", "b"], "line 2")]
    nearest = {tuple(c["statements"]): c["p"] for c in shown["nearest"]}
    assert nearest[("a",)] >= nearest[("a", "b")] - 1e-9 and nearest[("b",)] >= nearest[("a", "b")] - 1e-9
    text = run("--credences", str(path)).output
    assert "INCOHERENT" in text and "P(a ∧ b) = 0.7 [line 2]" in text


def test_bad_file_fails_with_file_line_field(write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl("bad.jsonl", [{"statements": ["a"], "p": 0.5}, {"statements": ["a"], "p": 2}])
    result = CliRunner().invoke(prior, ["--credences", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {path}:2: p: ")


def test_file_mode_refuses_workspace_filters(write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl("die.jsonl", DIE)
    result = CliRunner().invoke(prior, ["--credences", str(path), "--labeler", "ann"])
    assert result.exit_code == 1 and "do not apply" in result.output


def _seed(conn: sqlite3.Connection, library: Library) -> None:
    for position, uid in enumerate(["A", "B", "C"]):
        conn.execute(
            "INSERT INTO nodes (uid, library_id, parent_id, position, depth, kind, title, origin, created_at)"
            " VALUES (?, ?, ?, ?, 1, 'statement', ?, 'import', 'now')",
            (uid, library.id, library.root_id, position, f"Statement {uid} about topic {position}"),
        )
    rows: list[tuple[str, str, list[str], float, str | None, int]] = [
        ("u1", "ann", ["A"], 0.5, None, 0),
        ("u2", "ann", ["B"], 0.5, None, 0),
        ("u3", "ann", ["C"], 0.5, None, 0),
        ("u4", "ann", ["A", "B"], 0.25, None, 0),
        ("u5", "ann", ["A", "C"], 0.25, None, 0),
        ("u6", "ann", ["B", "C"], 0.9, None, 0),
        ("u7", "ann", ["B", "C"], 0.25, "u6", 0),
        ("u8", "ann", [], 0.2, None, 0),
        ("u9", "bob", ["A"], 0.3, None, 0),
        ("u10", "bob", ["A", "B"], 0.6, None, 0),
    ]
    for uid, labeler, statements, p, supersedes, retracted in rows:
        conn.execute(
            "INSERT INTO credences (uid, library_id, labeler, scope, statements, statements_key, p, supersedes,"
            " retracted, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '2025-01-01T00:00:00Z')",
            (
                uid,
                library.id,
                labeler,
                "statements" if statements else "library",
                json.dumps(statements),
                " ".join(statements),
                p,
                supersedes,
                retracted,
            ),
        )


def test_workspace_report_per_labeler(conn: sqlite3.Connection, library: Library, workspace: Path) -> None:
    _seed(conn, library)
    shown = json.loads(run("--workspace", str(workspace), "--json").output)
    assert shown["library"] == "lib"
    ann, bob = shown["labelers"]
    assert ann["labeler"] == "ann" and ann["coherent"] is True
    assert (ann["lower"], ann["upper"]) == (0.0, 0.25)
    assert ann["library_credence"] == 0.2 and ann["p_z_upper"] == 0.25
    assert bob["labeler"] == "bob" and bob["coherent"] is False
    assert {tuple(c["statements"]) for c in bob["conflict"]} == {("A",), ("A", "B")}
    text = run("--workspace", str(workspace), "--labeler", "ann").output
    assert "labeler ann" in text and "labeler bob" not in text
    assert "P(Z) ≤ 0.2500" in text and "direct credence on the whole library: 0.2, within" in text
    assert "assumes: all statements are independent" in text


def test_workspace_without_credences_fails(library: Library, workspace: Path) -> None:
    result = CliRunner().invoke(prior, ["--workspace", str(workspace), "--labeler", "nobody"])
    assert result.exit_code == 1 and "no credences by nobody" in result.output


def test_missing_workspace_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(prior, ["--workspace", str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "no workspace" in result.output
