"""Imitated credences: hand-checkable kNN-in-logit-space behaviour and the refusal."""

from __future__ import annotations

import math
import sqlite3

import pytest

from kb.importing import StagedNode, import_staged
from kb.libraries import Library
from models.prior.credence_imitation import (
    DEFAULT_SHRINK,
    MIN_CREDENCES,
    ImitationRefused,
    imitate,
    leave_one_out,
    library_statements,
)

TEXTS = {
    "h1": "Chad is landlocked in Africa",
    "h2": "Mali is landlocked in Africa",
    "h3": "Niger is landlocked in Africa",
    "l1": "Peru borders the Pacific ocean",
    "l2": "Chile borders the Pacific ocean",
    "l3": "Ecuador borders the Pacific ocean",
    "q_high": "Uganda is landlocked in Africa",
    "q_low": "Colombia borders the Pacific ocean",
    "q_none": "Zebras graze",
    "q_copy": "Chad is landlocked in Africa",
}
RATED = {"h1": 0.9, "h2": 0.9, "h3": 0.9, "l1": 0.2, "l2": 0.2, "l3": 0.2}


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_similar_statements_inherit_their_neighbours_credence() -> None:
    guesses = {g.uid: g for g in imitate(RATED, TEXTS, ["q_high", "q_low", "q_none", "h1"], labeler="ann")}
    assert "h1" not in guesses  # a human credence is never replaced
    assert 0.5 < guesses["q_high"].p < 0.9 and 0.2 < guesses["q_low"].p < 0.5
    assert all(g.source == "imitated" and g.labeler == "ann" for g in guesses.values())
    mean = sum(_logit(p) for p in RATED.values()) / len(RATED)
    assert guesses["q_none"].support == 0.0
    assert guesses["q_none"].p == pytest.approx(_sigmoid(mean))  # nothing similar: exactly the labeler's mean


def test_an_exact_copy_with_k1_is_shrunk_toward_the_mean_by_hand() -> None:
    mean = sum(_logit(p) for p in RATED.values()) / len(RATED)
    (guess,) = imitate(RATED, TEXTS, ["q_copy"], k=1)
    assert guess.support == pytest.approx(1.0, abs=1e-6)
    expected = _sigmoid((_logit(0.9) + DEFAULT_SHRINK * mean) / (1 + DEFAULT_SHRINK))
    assert guess.p == pytest.approx(expected, abs=1e-6)


def test_constant_ratings_are_reproduced() -> None:
    rated = dict.fromkeys(RATED, 0.7)
    guesses = imitate(rated, TEXTS, ["q_high", "q_low", "q_none"])
    assert [g.p for g in guesses] == pytest.approx([0.7, 0.7, 0.7])


def test_too_few_credences_are_refused_with_a_reason() -> None:
    few = dict(list(RATED.items())[: MIN_CREDENCES - 1])
    with pytest.raises(ImitationRefused, match=f"at least {MIN_CREDENCES}.*there are {MIN_CREDENCES - 1}"):
        imitate(few, TEXTS, ["q_high"], labeler="bob")
    with pytest.raises(ImitationRefused, match="bob"):
        leave_one_out(few, TEXTS, labeler="bob")


def test_leave_one_out_beats_the_mean_when_text_predicts_the_rating() -> None:
    fit = leave_one_out(RATED, TEXTS)
    assert fit.n_rated == 6
    # Leaving out a 0.9 leaves two 0.9s and three 0.2s; leaving out a 0.2 leaves three and two.
    high_out = _sigmoid((2 * _logit(0.9) + 3 * _logit(0.2)) / 5)
    low_out = _sigmoid((3 * _logit(0.9) + 2 * _logit(0.2)) / 5)
    assert fit.mean_mae == pytest.approx(((0.9 - high_out) + (low_out - 0.2)) / 2)
    assert fit.loo_mae < fit.mean_mae / 2


def test_library_statements_are_claims_with_their_paths(conn: sqlite3.Connection, library: Library) -> None:
    nodes = [
        StagedNode(1, "geo", None, "section", "Geography"),
        StagedNode(2, "coast", "geo", "field", "Coastline", "0 km"),
        StagedNode(3, "s", "geo", "statement", "Chad is landlocked"),
        StagedNode(4, "empty", "geo", "field", "Heading only"),
    ]
    import_staged(conn, library, iter(nodes), source="t", importer="test")
    conn.execute("UPDATE nodes SET review = 'rejected' WHERE uid = 'empty'")
    assert library_statements(conn, library) == {
        "coast": "Geography › Coastline: 0 km",
        "s": "Geography › Chad is landlocked",
    }
