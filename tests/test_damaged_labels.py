"""A label whose stored JSON is damaged is never passed on as an empty one.

The readers may carry on (a damaged citation list reads as none), but the export refuses the
file, naming it, the row and what is wrong, and writes nothing; `navigator doctor` finds every
such row and says what to do. A valid empty `[]` is a label citing nothing, not damage.
The damage is done the way it happens: a raw UPDATE outside the app.
"""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from reliability_support import make_labeling_workspace

import models.llm.model_check as doctor_module
from kb.db import connect
from kb.exchange import export_labels
from kb.items import item_by_uid
from kb.labels import (
    DamagedLabelError,
    LabelStore,
    current_credences_in_library,
    current_predictions_in_library,
    damaged_labels,
)
from kb.libraries import list_libraries
from kb.search import SearchIndex
from kb.tree import node_by_uid
from models.llm.model import ModelIdentity
from models.llm.model_process import ProbeResult
from navigator.commands.doctor import doctor
from navigator.commands.exchange import export
from navigator.palette_exchange import export_mine, export_path

OLD_EXPORT = '{"an": "earlier export, already sent"}\n'


@dataclass(frozen=True)
class Labelled:
    path: Path
    ann_row: int  # ann's prediction, citing s1 and s2
    ann_uid: str
    bob_row: int  # bob's prediction, citing nothing (`[]`)
    credence_row: int  # ann's credence on s1 and s2


@pytest.fixture(autouse=True)
def model_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """The doctor's model check answers at once: what is examined here is the workspace."""
    identity = ModelIdentity("m.gguf", "0" * 64, "/models/m.gguf", False, False, {"repack": False})
    works = ProbeResult(True, identity=identity, tokens=8, generate_ms=200.0)
    monkeypatch.setattr(doctor_module, "probe_model", lambda model, options, timeout: works)


@pytest.fixture
def labelled(tmp_path: Path) -> Labelled:
    """ann cites two statements and rates them; bob cites nothing; the search index is current."""
    path = tmp_path / "w.db"
    make_labeling_workspace(path, statements=3, items=2)
    conn = connect(path)
    library = list_libraries(conn)[0]
    first, second = item_by_uid(conn, "i0"), item_by_uid(conn, "i1")
    assert first is not None and second is not None
    ann = LabelStore(conn, "ann")
    cited = ann.record_prediction(first, library.id, {"yes": 0.6, "no": 0.3, "maybe": 0.1}, cited=["s1", "s2"])
    LabelStore(conn, "bob").record_prediction(second, library.id, {"yes": 0.2, "no": 0.7, "maybe": 0.1})
    statements = [node_by_uid(conn, uid, library.id) for uid in ("s1", "s2")]
    credence = ann.record_credence(library.id, [node for node in statements if node is not None], 0.4)
    ids = {
        str(row[0]): int(row[1])
        for row in conn.execute("SELECT uid, id FROM predictions UNION ALL SELECT uid, id FROM credences")
    }
    bob_row = conn.execute("SELECT id FROM predictions WHERE labeler = 'bob'").fetchone()[0]
    SearchIndex(conn, path, library).update()  # so that a healthy file passes every check
    conn.close()
    return Labelled(path, ids[cited.uid], cited.uid, int(bob_row), ids[credence.uid])


def damage(path: Path, sql: str, *args: Any) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute(sql, args)
    raw.close()


def run_export(path: Path, *args: str) -> Result:
    group = click.Group()
    group.add_command(export)
    return CliRunner().invoke(group, ["export", "-w", str(path), *args], catch_exceptions=False)


def doctor_findings(path: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    result = CliRunner().invoke(doctor, ["--workspace", str(path), "--json"], catch_exceptions=False)
    return result.exit_code, {finding["check"]: finding for finding in json.loads(result.output)["findings"]}


def test_an_empty_cited_is_a_label_citing_nothing_not_damage(labelled: Labelled) -> None:
    conn = connect(labelled.path)
    assert damaged_labels(conn) == []
    buffer = io.StringIO()
    export_labels(conn, buffer)
    conn.close()
    predictions = [json.loads(line) for line in buffer.getvalue().splitlines() if '"prediction"' in line]
    assert sorted(record["cited"] for record in predictions) == [[], ["s1", "s2"]]
    status, found = doctor_findings(labelled.path)
    assert status == 0
    assert found["orphans"]["status"] == "ok" and "every label can be read" in found["orphans"]["message"]
    assert not [check for check in found if check.startswith("damaged")]


def test_an_export_refuses_a_damaged_cited_naming_file_row_and_problem_and_writes_nothing(
    labelled: Labelled, tmp_path: Path
) -> None:
    damage(labelled.path, "UPDATE predictions SET cited = '[oops' WHERE id = ?", labelled.ann_row)
    out = tmp_path / "sent" / "labels.jsonl"
    out.parent.mkdir()
    out.write_text(OLD_EXPORT, encoding="utf-8")

    to_file = run_export(labelled.path, "--out", str(out))
    assert to_file.exit_code == 1
    message = to_file.stderr
    assert message.startswith(f"error: cannot export {labelled.path}: ")
    assert f"predictions row {labelled.ann_row} ({labelled.ann_uid}): cited is not JSON" in message
    assert "'[oops'" in message
    assert "nothing was written" in message and f"navigator doctor --workspace {labelled.path}" in message
    assert out.read_text(encoding="utf-8") == OLD_EXPORT  # the earlier export is kept whole
    assert [path.name for path in out.parent.iterdir()] == ["labels.jsonl"]  # no staged file left behind

    to_stdout = run_export(labelled.path)
    assert to_stdout.exit_code == 1 and to_stdout.stdout == ""  # not one record before the refusal
    assert f"predictions row {labelled.ann_row}" in to_stdout.stderr

    # The app's "Export my labels" says the same and leaves no file.
    told, written = export_mine(labelled.path, "ann")
    assert not written and told.startswith("Nothing exported: cannot export")
    assert f"predictions row {labelled.ann_row}" in told
    assert not export_path(labelled.path, "ann").exists()


def test_an_export_of_labels_that_are_not_damaged_goes_ahead(labelled: Labelled, tmp_path: Path) -> None:
    damage(labelled.path, "UPDATE predictions SET cited = '[oops' WHERE id = ?", labelled.ann_row)
    out = tmp_path / "bob.jsonl"
    result = run_export(labelled.path, "--out", str(out), "--labeler", "bob")
    assert result.exit_code == 0, result.output
    assert "1 predictions" in result.stderr  # bob's own label; ann's damaged row is not carried


def test_readers_carry_on_without_the_damaged_citations(labelled: Labelled) -> None:
    damage(labelled.path, "UPDATE predictions SET cited = '[oops' WHERE id = ?", labelled.ann_row)
    conn = connect(labelled.path)
    library = list_libraries(conn)[0]
    current = {p.labeler: p for p in current_predictions_in_library(conn, library.id)}
    assert current["ann"].cited == [] and current["ann"].probs == {"yes": 0.6, "no": 0.3, "maybe": 0.1}
    conn.close()


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        ("[oops", "is not JSON (Expecting"),
        ('{"s1": true}', "is a JSON object, not a list of node uids"),
        ('"s1"', "is a JSON string, not a list of node uids"),
        ('["s1", 7]', "holds 1 entries that are not node uids (e.g. 7)"),
        ('["s1", ""]', 'holds 1 entries that are not node uids (e.g. "")'),
        ("", "is not JSON"),
    ],
)
def test_the_doctor_finds_every_damaged_cited_and_says_what_to_do(
    labelled: Labelled, stored: str, problem: str
) -> None:
    damage(labelled.path, "UPDATE predictions SET cited = ? WHERE id = ?", stored, labelled.ann_row)
    conn = connect(labelled.path)
    [found] = damaged_labels(conn)
    conn.close()
    assert (found.table, found.row_id, found.uid, found.column) == (
        "predictions",
        labelled.ann_row,
        labelled.ann_uid,
        "cited",
    )
    assert found.problem.startswith(problem)

    status, findings = doctor_findings(labelled.path)
    assert status == 1
    finding = findings["damaged predictions.cited"]
    assert finding["status"] == "error" and finding["needs_action"]
    assert finding["message"].startswith("1 predictions row holds a cited that cannot be read")
    assert f"row {labelled.ann_row} ({labelled.ann_uid}): cited {problem}" in finding["message"]
    assert "citing nothing" in finding["message"] and "`navigator export` refuses" in finding["message"]
    assert "WORKSPACE.backup-*" in finding["fix"]
    assert f"UPDATE predictions SET cited = '[]' WHERE id IN ({labelled.ann_row})" in finding["fix"]
    assert "orphans" not in findings  # its ok would say every label can be read


def test_the_doctors_fix_makes_the_file_export_again(labelled: Labelled, tmp_path: Path) -> None:
    damage(labelled.path, "UPDATE predictions SET cited = '[oops' WHERE id = ?", labelled.ann_row)
    damage(labelled.path, "UPDATE predictions SET cited = '[]' WHERE id IN (?)", labelled.ann_row)
    assert doctor_findings(labelled.path)[0] == 0
    assert run_export(labelled.path, "--out", str(tmp_path / "all.jsonl")).exit_code == 0


def test_every_damaged_row_is_reported_not_only_the_first(labelled: Labelled) -> None:
    damage(labelled.path, "UPDATE predictions SET cited = '[oops', trail = '{}'")
    conn = connect(labelled.path)
    found = [(label.row_id, label.column) for label in damaged_labels(conn)]
    conn.close()
    rows = sorted([labelled.ann_row, labelled.bob_row])
    assert found == [(row, column) for row in rows for column in ("cited", "trail")]
    findings = doctor_findings(labelled.path)[1]
    assert findings["damaged predictions.cited"]["message"].startswith("2 predictions rows")
    assert f"WHERE id IN ({rows[0]}, {rows[1]})" in findings["damaged predictions.trail"]["fix"]


def test_damaged_probabilities_are_found_and_stop_readers_with_a_clear_error(labelled: Labelled) -> None:
    damage(labelled.path, """UPDATE predictions SET probs = '{"yes": 0.9}' WHERE id = ?""", labelled.ann_row)
    damage(labelled.path, "UPDATE predictions SET probs = '[oops' WHERE id = ?", labelled.bob_row)
    conn = connect(labelled.path)
    problems = {label.row_id: label.problem for label in damaged_labels(conn)}
    assert problems[labelled.ann_row].startswith("is not a distribution (probabilities must sum to 1")
    assert problems[labelled.bob_row].startswith("is not JSON")
    library = list_libraries(conn)[0]
    with pytest.raises(DamagedLabelError, match="probs is not JSON") as raised:
        current_predictions_in_library(conn, library.id)
    assert "navigator doctor" in str(raised.value)
    conn.close()
    finding = doctor_findings(labelled.path)[1]["damaged predictions.probs"]
    assert finding["status"] == "error" and "WORKSPACE.backup-*" in finding["fix"]
    assert "UPDATE" not in finding["fix"]  # probabilities cannot be made up


def test_a_credence_whose_statements_are_damaged_is_not_read_as_one_on_the_library(labelled: Labelled) -> None:
    damage(labelled.path, "UPDATE credences SET statements = '\"s1\"' WHERE id = ?", labelled.credence_row)
    conn = connect(labelled.path)
    library = list_libraries(conn)[0]
    with pytest.raises(DamagedLabelError, match="statements is a JSON string"):
        current_credences_in_library(conn, library.id)
    [found] = damaged_labels(conn)
    assert (found.table, found.row_id, found.column) == ("credences", labelled.credence_row, "statements")
    conn.close()
    result = run_export(labelled.path)
    assert result.exit_code == 1 and f"credences row {labelled.credence_row}" in result.stderr
    assert doctor_findings(labelled.path)[1]["damaged credences.statements"]["status"] == "error"
