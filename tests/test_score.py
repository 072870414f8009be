"""F(Z): pooled labels, imitation for the rest, log P(Z) from the engine, ranking, forks; and the commands."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.fork import fork_library
from kb.importing import StagedNode, import_staged
from kb.item_import import add_items
from kb.items import Item, item_by_uid
from kb.labels import LabelStore
from kb.libraries import Library, get_library
from kb.records import ItemRecord
from kb.tree import node_by_uid
from models.imitation.score import ImitationUnavailable, likelihood, prior, score_libraries
from models.scoring import LOG_FLOOR
from navigator.commands.score import score
from navigator.commands.workspace import fork


def _setup(conn: sqlite3.Connection, library: Library, statements: int = 3) -> None:
    nodes = [StagedNode(1, "sec", None, "section", "Facts")]
    nodes += [
        StagedNode(2 + i, f"s{i + 1}", "sec", "statement", f"Country {i + 1} is landlocked") for i in range(statements)
    ]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    records = [
        ItemRecord(id=uid, x=f"Is {uid} landlocked?", options=["yes", "no"], y=y)
        for uid, y in (("i1", "yes"), ("i2", "no"), ("i3", "yes"))
    ]
    add_items(conn, [(n, r) for n, r in enumerate(records, 1)], source="t", dstar=False)


def _item(conn: sqlite3.Connection, uid: str) -> Item:
    item = item_by_uid(conn, uid)
    assert item is not None
    return item


def _credence(conn: sqlite3.Connection, labeler: str, library: Library, uids: list[str], p: float) -> None:
    nodes = [node_by_uid(conn, uid, library.id) for uid in uids]
    LabelStore(conn, labeler).record_credence(library.id, [n for n in nodes if n is not None], p)


def _labels(conn: sqlite3.Connection, library: Library) -> None:
    LabelStore(conn, "ann").record_prediction(_item(conn, "i1"), library.id, {"yes": 0.8, "no": 0.2})
    LabelStore(conn, "bob").record_prediction(_item(conn, "i1"), library.id, {"yes": 0.6, "no": 0.4})
    LabelStore(conn, "ann").record_prediction(_item(conn, "i2"), library.id, {"yes": 1.0, "no": 0.0})
    _credence(conn, "ann", library, ["s1"], 0.9)
    _credence(conn, "ann", library, ["s2"], 0.8)
    _credence(conn, "bob", library, ["s1"], 0.7)


def fake_predict(
    conn: sqlite3.Connection, workspace: Path, library: Library, items: list[Item]
) -> dict[str, dict[str, float]]:
    """Half-and-half for the source library; 0.9 on 'yes' for anything else."""
    if library.name == "lib":
        return {item.uid: {"yes": 0.5, "no": 0.5} for item in items}
    return {item.uid: {"yes": 0.9, "no": 0.1} for item in items}


def test_likelihood_pools_labels_clamps_and_imitates_the_rest(
    conn: sqlite3.Connection, workspace: Path, library: Library
) -> None:
    _setup(conn, library)
    _labels(conn, library)
    part = likelihood(conn, workspace, library, predict=fake_predict)
    assert (part.n_items, part.n_labelled, part.n_imitated, part.n_missing) == (3, 2, 1, 0)
    assert (part.n_labels, part.n_labelers, part.n_simulated_labels) == (3, 2, 0)
    assert part.log_labelled == pytest.approx(math.log(0.7) + math.log(LOG_FLOOR))  # mean of 0.8, 0.6; 0 clamped
    assert part.log_imitated == pytest.approx(math.log(0.5))


def test_prior_interval_and_point_by_hand(conn: sqlite3.Connection, library: Library) -> None:
    _setup(conn, library)
    _labels(conn, library)
    part = prior(conn, library)
    # s1 pooled over ann and bob: 0.8; s2: 0.8; s3 unrated, so unconstrained.
    assert (part.n_statements, part.n_rated, part.n_credences, part.n_labelers, part.n_imitated) == (3, 2, 2, 2, 0)
    assert part.method == "exact LP" and part.coherent
    assert (part.lower, part.upper) == (0.0, pytest.approx(0.8))
    assert part.point_log == pytest.approx(math.log(0.64))
    assert any("1 statements without any credence" in note for note in part.notes)


def test_ranking_forks_share_credences_and_an_unavailable_model_blocks_the_rank(
    conn: sqlite3.Connection, workspace: Path, library: Library
) -> None:
    _setup(conn, library)
    _labels(conn, library)
    forked = fork_library(conn, library, "fork")
    scores = score_libraries(conn, workspace, predict=fake_predict)
    assert [(s.library.name, s.rank) for s in scores] == [("fork", 1), ("lib", 2)]
    best, other = scores
    assert best.prior.n_shared == 2 and best.prior.point_log == pytest.approx(math.log(0.64))
    assert best.f == pytest.approx(2 * math.log(0.9) + math.log(0.1) + math.log(0.64))  # i2's gold is 'no'
    assert other.f == pytest.approx(math.log(0.7) + math.log(LOG_FLOOR) + math.log(0.5) + math.log(0.64))
    # A statement rejected in the fork no longer carries the source's credence there.
    conn.execute("UPDATE nodes SET review = 'rejected' WHERE library_id = ? AND uid = 's2'", (forked.id,))
    assert prior(conn, get_library(conn, "fork")).point_log == pytest.approx(math.log(0.8))

    def unavailable(*_: object) -> dict[str, dict[str, float]]:
        raise ImitationUnavailable("no model trained for this library")

    scores = score_libraries(conn, workspace, predict=unavailable)
    assert all(s.rank is None and s.f is None for s in scores)
    assert "without a label or an imitation" in scores[0].reason and "no model trained" in scores[0].reason


def test_imitated_credences_fill_unrated_statements_only_when_asked(conn: sqlite3.Connection, library: Library) -> None:
    _setup(conn, library, statements=8)
    for i in range(1, 7):
        _credence(conn, "ann", library, [f"s{i}"], 0.9)
    plain = prior(conn, library)
    assert (plain.n_rated, plain.n_imitated, plain.lower) == (6, 0, 0.0)
    filled = prior(conn, library, use_imitated_credences=True)
    assert (filled.n_rated, filled.n_imitated, filled.n_credences) == (6, 2, 6)
    # All eight at 0.9: Fréchet lower 1 - 8 × 0.1 = 0.2, upper 0.9, independence 0.9^8.
    assert (filled.lower, filled.upper) == (pytest.approx(0.2), pytest.approx(0.9))
    assert filled.point_log == pytest.approx(8 * math.log(0.9))
    assert any("imitated" in note for note in filled.notes)
    _credence(conn, "bob", library, ["s1"], 0.5)  # too few to imitate bob: said, not hidden
    assert any("bob" in note and "at least" in note for note in prior(conn, library, use_imitated_credences=True).notes)


def test_score_and_fork_commands(conn: sqlite3.Connection, workspace: Path, library: Library) -> None:
    _setup(conn, library)
    _labels(conn, library)
    runner = CliRunner()
    made = runner.invoke(fork, ["--workspace", str(workspace), "lib", "lib2", "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["nodes"] == 5
    taken = runner.invoke(fork, ["--workspace", str(workspace), "lib", "lib2"])
    assert taken.exit_code == 1 and "already exists" in taken.output
    shown = runner.invoke(score, ["--workspace", str(workspace), "--json"])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.output)
    assert [entry["library"] for entry in payload["libraries"]] == ["lib", "lib2"]
    assert payload["libraries"][0]["likelihood"]["n_labelled"] == 2
    text = runner.invoke(score, ["--workspace", str(workspace)])
    assert text.exit_code == 0 and "n=3 items" in text.output and "lib2" in text.output


def test_against_the_real_trainer(conn: sqlite3.Connection, workspace: Path, library: Library) -> None:
    trainer = pytest.importorskip(
        "models.imitation.trainer", reason="models.imitation.trainer (the imitation trainer) is not there yet"
    )
    from kb.search import SearchIndex

    nodes = [StagedNode(1, "sec", None, "section", "Countries")]
    nodes += [
        StagedNode(2 + i, f"c{i}", "sec", "field", f"Country {i}", "landlocked" if i % 2 else "coast")
        for i in range(14)
    ]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    SearchIndex(conn, workspace, library).rebuild()
    records = [
        ItemRecord(
            id=f"q{i}",
            task="landlocked",
            x=f"Is Country {i} landlocked?",
            options=["yes", "no"],
            y="yes" if i % 2 else "no",
        )
        for i in range(14)
    ]
    add_items(conn, [(n, r) for n, r in enumerate(records, 1)], source="t", dstar=False)
    store = LabelStore(conn, "sim", source="simulated")
    for i in range(12):
        store.record_prediction(
            _item(conn, f"q{i}"), library.id, {"yes": 0.9, "no": 0.1} if i % 2 else {"yes": 0.1, "no": 0.9}
        )
    trainer.train(conn, workspace, library, folds=3)
    (scored,) = score_libraries(conn, workspace)
    assert (scored.likelihood.n_labelled, scored.likelihood.n_imitated, scored.likelihood.n_missing) == (12, 2, 0)
    assert scored.likelihood.n_simulated_labels == 12
    assert scored.likelihood.log_labelled == pytest.approx(12 * math.log(0.9))
    assert -2 * math.log(LOG_FLOOR) > -scored.likelihood.log_imitated > 0
