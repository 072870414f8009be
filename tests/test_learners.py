"""The reader's parts on hand-made values: figures, cut points, option ranges, its features, the
conditional logit (against scikit-learn, and where multinomial regression cannot follow), and
every learner's soft-target fit and storage round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from models.imitation.conditional_logit import ConditionalLogit
from models.imitation.learners import LEARNERS, fit_task, restore_task, task_state
from models.imitation.quantities import band, cut_points, first_number, numbers, option_ranges
from models.imitation.reader_features import reader_features
from models.imitation.retrieval import ReadNode, View

BANDS = ("under 1 million", "1 to 10 million", "10 to 100 million", "over 100 million")
GDP = "Is the real GDP per capita of Chile low (under $9,900), middle, or high ($32,300 and over)?"


def test_figures_are_read_with_separators_scales_and_ranges() -> None:
    assert numbers("19,091,343 (2025 est.)") == [19_091_343, 2025]
    assert first_number("$30,200 (2024 est.)") == 30_200
    assert numbers("$1.2 billion in 2020") == [1.2e9, 2020]
    assert numbers("1 to 10 million") == [1e6, 1e7]
    assert numbers("30 00 S, 71 00 W") == [30, 0, 71, 0]
    assert first_number("landlocked") is None
    assert numbers("version 1.2.3") == [1.2]  # a trailing ".3" is not a figure of its own


def test_cut_points_and_option_ranges_come_from_the_options_or_the_question() -> None:
    assert option_ranges("What is the population of Chile?", BANDS) == [
        (-math.inf, 1e6),
        (1e6, 1e7),
        (1e7, 1e8),
        (1e8, math.inf),
    ]
    assert cut_points(GDP, ("low", "middle", "high")) == [9_900, 32_300]
    assert option_ranges(GDP, ("low", "middle", "high")) == [(-math.inf, 9_900), (9_900, 32_300), (32_300, math.inf)]
    assert option_ranges("Is Chile landlocked?", ("yes", "no")) is None
    assert [band(value, [9_900, 32_300]) for value in (5, 9_900, 20_000, 32_300, 1e9)] == [0, 1, 1, 2, 2]


def view(x: str, options: tuple[str, ...], *nodes: tuple[str, str]) -> View:
    return View(x, options, tuple(ReadNode(key, key, key, text) for key, text in nodes))


def test_reader_features_compare_the_figure_read_with_each_option_range() -> None:
    features = reader_features(
        view(
            "What is the population of Chile?",
            BANDS,
            ("cited:people and society › population › total", "19,091,343 (2025 est.)"),
            ("hit:elsewhere", "123 km"),
        )
    )
    key = "cited:people and society › population › total"
    assert list(features.shared) == [{}, {}, {f"in:{key}": 1.0}, {}]  # 19 million: 10 to 100 million
    assert features.item[f"n:{key}:band=2"] == 1.0 and features.item[f"n:{key}>=cut1"] == 1.0
    assert f"n:{key}>=cut2" not in features.item and features.item[f"n:{key}:magnitude=7"] == 1.0
    assert not any(name.startswith("n:hit:elsewhere") for name in features.item)  # figures elsewhere are noise
    # each source's words have unit length
    question = [value for name, value in features.item.items() if name.startswith("q:")]
    assert sum(v * v for v in question) == pytest.approx(1.0)


def test_conditional_logit_with_item_features_only_is_multinomial_logistic_regression() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    scores = X @ rng.normal(size=(4, 3)) * 2
    y = np.array([rng.choice(3, p=np.exp(s) / np.exp(s).sum()) for s in scores])
    weights = rng.uniform(0.2, 1.0, size=150)
    reference = LogisticRegression(C=0.7, fit_intercept=False, max_iter=5000, tol=1e-10)
    reference.fit(X, y, sample_weight=weights)
    ours = ConditionalLogit(3, n_shared=0, C=0.7).fit(sparse.csr_matrix(X), y, sample_weight=weights)
    assert np.abs(ours.predict_proba(X) - reference.predict_proba(X)).max() < 1e-4


def test_a_shared_rule_predicts_an_option_no_label_chose() -> None:
    """Figures fall in bands 0-2 in training and band 3 once at prediction: the conditional logit
    learned 'the band the figure falls in' once and predicts band 3; multinomial regression cannot."""
    rng = np.random.default_rng(1)
    bands = rng.integers(0, 3, size=60)

    def matrix(in_band: np.ndarray) -> sparse.csr_matrix:
        rows = np.zeros((len(in_band), 1 + 4))  # item feature: bias; then one shared column per option
        rows[:, 0] = 1.0
        rows[np.arange(len(in_band)), 1 + in_band] = 1.0
        return sparse.csr_matrix(rows)

    model = ConditionalLogit(4, n_shared=1, C=10.0).fit(matrix(bands), bands)
    predicted = model.predict_proba(matrix(np.array([3, 0])))
    assert predicted[0].argmax() == 3 and predicted[1].argmax() == 0
    again = ConditionalLogit(4, n_shared=1, C=10.0).fit(matrix(bands), bands)
    assert np.array_equal(model.coef_, again.coef_)  # deterministic


FRUIT = {"cherry": "red", "tomato": "red", "lemon": "yellow", "banana": "yellow", "apple": "red", "mango": "yellow"}


def fruit_views() -> list[View]:
    return [
        view(f"Is the {name} red?", ("yes", "no"), ("cited:colour", f"The {name} is {colour} when ripe."))
        for name, colour in FRUIT.items()
    ]


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_learner_fits_soft_targets_and_round_trips_through_numbers(name: str) -> None:
    learner = LEARNERS[name]
    views = fruit_views()
    red = np.array([colour == "red" for colour in FRUIT.values()])
    confident = {}
    for confidence in (0.6, 0.95):
        targets = np.column_stack(
            [np.where(red, confidence, 1 - confidence), np.where(red, 1 - confidence, confidence)]
        )
        model = fit_task(learner, ("yes", "no"), views, targets, seed=0)
        probs = model.predict(views)
        assert probs[red, 0].min() > probs[~red, 0].max()  # it read "red" / "yellow"
        confident[confidence] = probs.max(axis=1)
        state, arrays = task_state(model)
        restored = restore_task(learner, state, arrays)
        assert np.array_equal(restored.predict(views), probs)
    # Same top choices, different confidence: a learner fitted to 0.6/0.4 must be less sure.
    assert (confident[0.6] < confident[0.95]).all()
