"""The command line's one JSON encoder (navigator.json_output): NaN, +inf and -inf are null at any
depth, and real commands print strict JSON where a NaN or an infinity occurs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from kb.db import connect
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import item_by_uid
from kb.labels import LabelStore
from kb.libraries import create_library
from kb.records import ItemRecord
from kb.tree import node_by_uid
from navigator.json_output import json_lines, json_text, plain

NOT_FINITE = (math.nan, math.inf, -math.inf)


def strict(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity, as strict JSON readers do."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@dataclass
class Inner:
    x: float
    values: list[float] = field(default_factory=list)


@dataclass
class Outer:
    name: str
    inner: Inner
    where: Path
    pair: tuple[float, float]


class Model(BaseModel):
    p: float
    scores: dict[str, float]


@pytest.mark.parametrize("value", NOT_FINITE)
def test_a_number_that_is_not_finite_is_null_at_any_depth(value: float) -> None:
    assert plain(value) is None
    assert strict(json_text(value)) is None
    nested = {
        "a": value,
        "b": [1.5, value, {"c": (value, 2)}],
        "d": Outer("o", Inner(value, [value, 0.25]), Path("/x/y"), (value, 1.0)),
    }
    assert strict(json_text(nested)) == {
        "a": None,
        "b": [1.5, None, {"c": [None, 2]}],
        "d": {"name": "o", "inner": {"x": None, "values": [None, 0.25]}, "where": "/x/y", "pair": [None, 1.0]},
    }
    assert strict(json_text([Model(p=value, scores={"s": value, "t": 0.5})])) == [
        {"p": None, "scores": {"s": None, "t": 0.5}}
    ]


def test_finite_values_are_kept_as_json_would_write_them() -> None:
    value = {"text": "Côte d’Ivoire", "n": 3, "ok": True, "none": None, "p": 0.1, "big": 1e300, "tiny": -5e-324}
    assert json_text(value) == json.dumps(value, ensure_ascii=False, indent=2)
    assert plain(True) is True and plain(3) == 3


def test_jsonl_is_one_compact_line_a_record() -> None:
    records = [{"id": "a", "probs": {"yes": 0.5, "no": math.nan}}, {"id": "b", "log": -math.inf}]
    text = json_lines(records)
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 2
    assert [strict(line) for line in lines] == [
        {"id": "a", "probs": {"yes": 0.5, "no": None}},
        {"id": "b", "log": None},
    ]
    assert lines[0] == json.dumps({"id": "a", "probs": {"yes": 0.5, "no": None}}, ensure_ascii=False)
    assert json_lines([]) == ""


def test_anything_else_is_a_bug_not_silently_written() -> None:
    with pytest.raises(TypeError, match="set"):
        json_text({"s": {1, 2}})
    with pytest.raises(TypeError, match="object"):
        json_text(object())


def test_prior_prints_null_for_the_log_of_a_probability_0(write_jsonl: Callable[..., Path], workspace: Path) -> None:
    """A credence of 0 makes the independence estimate's log10 -inf; it was printed as -Infinity."""
    from navigator.commands.prior import prior

    path = write_jsonl("zero.jsonl", [{"statements": ["A"], "p": 0}, {"statements": ["B"], "p": 0.5}])
    result = CliRunner().invoke(prior, ["--credences", str(path), "--json", "--workspace", str(workspace)])
    assert result.exit_code == 0, result.output
    shown = strict(result.output)
    assert shown["source"] == str(path) and shown["upper"] == 0.0
    points = [estimate for estimate in shown["estimates"] if estimate["kind"] == "point"]
    assert points and all(estimate["value"] == 0.0 for estimate in points)
    assert any(estimate["log10"] is None for estimate in points)


def test_score_prints_null_for_f_of_a_library_with_probability_0(workspace: Path) -> None:
    """A credence of 0 on one statement makes log P(Z) and F(Z) -inf: null beside p_upper = 0."""
    from navigator.commands.score import score

    conn = connect(workspace)
    library = create_library(conn, "lib")
    nodes = [StagedNode(1, "sec", None, "section", "Facts")]
    nodes += [StagedNode(2 + i, f"s{i + 1}", "sec", "statement", f"Country {i + 1} is landlocked") for i in range(2)]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    item = ItemRecord(id="i1", x="Is i1 landlocked?", options=["yes", "no"], y="yes")
    add_items(conn, [(1, item)], source="t", dstar=False)
    stored = item_by_uid(conn, "i1")
    statement = node_by_uid(conn, "s1", library.id)
    assert stored is not None and statement is not None
    LabelStore(conn, "ann").record_prediction(stored, library.id, {"yes": 0.8, "no": 0.2})
    LabelStore(conn, "ann").record_credence(library.id, [statement], 0.0)
    conn.close()
    result = CliRunner().invoke(score, ["--workspace", str(workspace), "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = strict(result.output)["libraries"]
    assert entry["prior"]["p_upper"] == 0.0
    assert entry["f"] is None and entry["prior"]["log_upper"] is None and entry["prior"]["point_log"] is None
    assert entry["likelihood"]["log_sum"] == pytest.approx(math.log(0.8))


def test_evaluate_json_says_null_for_a_score_over_no_items() -> None:
    """evaluate's JSON shaping leaves NaN (a mean over no items) to the encoder."""
    from models.imitation.evaluation import EvaluationReport, IIDReport, Score
    from navigator.commands.train import _evaluation_json

    report = EvaluationReport(
        scores=[Score("imitation model", "imitation", "prediction", 0, math.nan, math.nan, {"t": (0, math.nan)})],
        iid=IIDReport(auc=math.nan, p_value=1.0, n_a=0, n_b=0, permutations=0),
        model_version=1,
        n_model_labels=0,
        n_baseline_items=0,
        answers="key.jsonl",
    )
    shown = strict(json_text(_evaluation_json(report)))
    (scored,) = shown["scores"]
    assert (scored["accuracy"], scored["log_loss"], scored["per_task"]) == (
        None,
        None,
        {"t": {"n": 0, "accuracy": None}},
    )
    assert shown["iid"]["auc"] is None and shown["iid"]["iid"] is True
