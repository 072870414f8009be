"""`navigator study`: its numbers, checked against an independent computation on a tiny study; the same
results twice; a study of a workspace that is not the demo, built from a protocol file; the report's files.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kb.db import connect
from kb.exchange import export_labels
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items, read_answer_key
from kb.items import items_in
from kb.labelers import add_labeler
from kb.labels import LabelStore
from kb.libraries import create_library
from kb.records import ItemRecord
from kb.search import SearchIndex
from models.bootstrap import paired_difference
from models.imitation.study import run_study
from models.imitation.study_records import schema_document
from models.scoring import score_answer

COLOURS = ("red", "green", "blue")


def _tiny(path: Path) -> Path:
    """A library of fruit, a task "colour": D about some fruit, D* about others; two people label D*_validation.

    The nodes say each fruit's colour; D's gold is mostly "red" (the shortcut), D*'s is not."""
    conn = connect(path, create=True)
    library = create_library(conn, "fruit")
    fruit = [(f"fruit{n}", COLOURS[0] if n < 30 else COLOURS[n % 3]) for n in range(60)]
    nodes = [StagedNode(1, "shop", None, "book", "Fruit shop")]
    nodes += [
        StagedNode(i + 2, name, "shop", "statement", f"{name} colour", body=colour)
        for i, (name, colour) in enumerate(fruit)
    ]
    import_staged(conn, library, iter(nodes), source="t", importer="t")
    SearchIndex(conn, path, library).update()
    records = [
        ItemRecord(id=f"q:{name}", x=f"What colour is {name}?", options=list(COLOURS), y=colour, task="colour")
        for name, colour in fruit
    ]
    add_items(conn, list(enumerate(records[:30], 1)), source="t", dstar=False)
    add_items(
        conn,
        list(enumerate(records[30:], 1)),
        source="t",
        dstar=True,
        seed=0,
        answers=path.with_name(path.name + ".answers.jsonl"),
    )
    truth = dict(fruit)
    for labeler, wrong in (("ann", 0), ("bob", 3)):
        store = LabelStore(conn, labeler)
        for index, item in enumerate(items_in(conn, ("validation",))):
            answer = truth[item.uid[2:]]
            if index < wrong:  # bob errs on a few
                answer = next(c for c in COLOURS if c != answer)
            probs = {c: (0.8 if c == answer else 0.1) for c in COLOURS}
            store.record_prediction(item, library.id, probs, cited=[item.uid[2:]])
    add_labeler(conn, "ann", lead=True)
    conn.close()
    return path.with_name(path.name + ".answers.jsonl")


def _bootstrap(values: list[float], seed: int, resamples: int = 2000) -> tuple[float, float]:
    data = np.array(values)
    draws = np.random.default_rng(seed).integers(0, len(data), size=(resamples, len(data)))
    low, high = np.quantile(data[draws].mean(axis=1), [0.025, 0.975])
    return float(low), float(high)


def test_the_numbers_of_a_tiny_study_computed_independently(tmp_path: Path) -> None:
    path = tmp_path / "fruit.db"
    answers = _tiny(path)
    conn = connect(path)
    library = conn.execute("SELECT * FROM libraries").fetchone()
    from kb.libraries import get_library

    results = run_study(conn, path, get_library(conn, "fruit"), answers, seed=7)
    gold = {uid: record.y for uid, record in read_answer_key(answers).items()}
    validation = {item.uid: item for item in items_in(conn, ("validation",))}
    # ann on D*_validation: accuracy, log loss and Brier by hand, and the interval from its own bootstrap
    ann = next(system for system in results.systems if system.labeler == "ann")
    store = LabelStore(conn, "ann").current_predictions(library["id"])
    by_id = {item.id: item for item in validation.values()}
    correct, losses, briers = [], [], []
    for item_id, label in sorted(store.items(), key=lambda pair: by_id[pair[0]].uid):
        item = by_id[item_id]
        right = gold[item.uid]
        top = max(label.probs.values())
        tied = [c for c in COLOURS if math.isclose(label.probs[c], top)]
        correct.append(1 / len(tied) if right in tied else 0.0)
        losses.append(-math.log(label.probs[right]))
        briers.append(sum((label.probs[c] - (c == right)) ** 2 for c in COLOURS))
    assert ann.overall.accuracy.n == len(correct) == 15
    assert ann.overall.accuracy.value == pytest.approx(sum(correct) / 15)
    assert ann.overall.log_loss.value == pytest.approx(sum(losses) / 15)
    assert ann.overall.brier.value == pytest.approx(sum(briers) / 15)
    name = ann.name
    seed = zlib.crc32("\x1f".join(["7", name, "(all tasks)", "correct"]).encode())
    assert (ann.overall.accuracy.low, ann.overall.accuracy.high) == pytest.approx(_bootstrap(correct, seed))
    # the paired difference imitation − naive, on the same D*_prediction items
    imitation = next(s for s in results.systems if s.kind == "imitation")
    naive = next(s for s in results.systems if s.kind == "naive baseline")
    difference = next(d for d in results.differences if d.task == "(all tasks)" and d.against == "naive baseline")
    assert difference.accuracy.value == pytest.approx(imitation.overall.accuracy.value - naive.overall.accuracy.value)
    assert difference.accuracy.n == imitation.overall.accuracy.n == 15
    assert difference.verdict.startswith(("imitation above", "imitation below", "no difference", "all tasks: too few"))
    # the shortcut: D says red, D* mostly does not
    (shortcut,) = results.shortcuts
    assert shortcut.answer == "red" and shortcut.on_d.value == 1.0
    assert shortcut.on_dstar.value == pytest.approx(sum(g == "red" for g in gold.values()) / len(gold))
    assert results.independence.labels == 30 and results.independence.leads == ["ann"]
    assert results.labelers == {"ann": "human", "bob": "human"}
    conn.close()


def test_a_paired_difference_is_one_bootstrap_of_the_differences() -> None:
    first, second = [1.0] * 20 + [0.0] * 10, [1.0] * 12 + [0.0] * 18
    found = paired_difference(first, second, seed=3)
    assert found.value == pytest.approx(8 / 30) and found.n == 30
    assert (found.low, found.high) == pytest.approx(_bootstrap([a - b for a, b in zip(first, second, strict=True)], 3))
    assert found.excludes_zero


def test_the_scoring_rule_gives_a_tie_its_share() -> None:
    tie = score_answer({"a": 0.5, "b": 0.5, "c": 0.0}, "a")
    assert tie.correct == 0.5 and tie.log_loss == pytest.approx(math.log(2)) and tie.brier == pytest.approx(0.5)
    assert score_answer({"a": 0.0, "b": 1.0}, "a").log_loss == pytest.approx(-math.log(1e-6))


def _protocol_study(tmp_path: Path) -> Path:
    """A study outside the demo: a Markdown library, items files, and people's labels merged from an export."""
    source = tmp_path / "source.db"
    _tiny(source)
    folder = tmp_path / "protocol"
    (folder / "notes").mkdir(parents=True)
    conn = connect(source)
    colours = {row[0]: row[1] for row in conn.execute("SELECT title, body FROM nodes WHERE kind = 'statement'")}
    (folder / "notes" / "fruit.md").write_text(
        "# Fruit shop\n\n" + "".join(f"## {title}\n\n{body}\n\n" for title, body in colours.items()), encoding="utf-8"
    )
    items = [
        dict(id=r["uid"], x=r["x"], options=json.loads(r["options"]), task=r["task"])
        for r in conn.execute("SELECT uid, x, options, task FROM items ORDER BY id")
    ]
    key = read_answer_key(source.with_name(source.name + ".answers.jsonl"))
    train_gold = dict(conn.execute("SELECT uid, y FROM items WHERE split = 'train'").fetchall())
    (folder / "d.jsonl").write_text(
        "".join(json.dumps({**i, "y": train_gold[i["id"]]}) + "\n" for i in items if i["id"] in train_gold),
        encoding="utf-8",
    )
    (folder / "dstar.jsonl").write_text(
        "".join(json.dumps({**i, "y": key[i["id"]].y}) + "\n" for i in items if i["id"] in key), encoding="utf-8"
    )
    conn.execute("UPDATE predictions SET cited = '[]'")  # the Markdown import names its nodes anew
    with (folder / "labels.jsonl").open("w", encoding="utf-8") as out:
        export_labels(conn, out)
    conn.close()
    (folder / "study.toml").write_text(
        '[library]\nimport = "notes"\nname = "fruit"\n\n[items]\ntrain = "d.jsonl"\ndstar = "dstar.jsonl"\n'
        'split_seed = 0\n\n[labelers]\nlabels = ["labels.jsonl"]\n\n[study]\nseed = 1\nresamples = 500\n',
        encoding="utf-8",
    )
    return folder / "study.toml"


def test_a_protocol_outside_the_demo_reproduces_its_study(tmp_path: Path) -> None:
    from navigator.commands.study import study

    jsonschema = pytest.importorskip("jsonschema")
    protocol = _protocol_study(tmp_path)
    runs = []
    for name in ("first", "second"):
        args = ["run", str(protocol), "--out", str(tmp_path / name)]
        result = CliRunner().invoke(study, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        runs.append((tmp_path / name / "results.json").read_bytes())
    assert runs[0] == runs[1]  # the same protocol and seed: the same results, to the byte
    out = tmp_path / "first"
    for figure in ("accuracy_by_task", "reliability", "learning_curve", "scores"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000
        assert (out / "figures" / f"{figure}.svg").read_text(encoding="utf-8").startswith("<?xml")
    results = json.loads(runs[0])
    jsonschema.validate(results, schema_document())
    assert results["library"] == "fruit" and results["labelers"] == {"ann": "human", "bob": "human"}
    assert results["provenance"]["protocol"]["file"] == "study.toml"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Verdicts" in report and "(n = 15)" in report and "study.toml" in report


def test_a_bad_protocol_is_named_with_what_is_wrong(tmp_path: Path) -> None:
    from navigator.commands.study import study

    broken = tmp_path / "broken.toml"
    broken.write_text("[library]\nname = 'x'\n\n[labelers]\nsimulated = ['ann']\n", encoding="utf-8")
    result = CliRunner().invoke(study, ["run", str(broken), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "broken.toml" in result.output and "import = PATH" in result.output
    assert not (tmp_path / "out" / "workspace.db").exists()
    broken.write_text("[library\n", encoding="utf-8")
    result = CliRunner().invoke(study, ["run", str(broken), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "not valid TOML" in result.output
