"""The learners the trainer can fit per task, chosen by name (`navigator train --learner NAME`).

A learner is a featurizer (a View → a feature matrix) and a scikit-learn-style estimator
(`fit(X, y, sample_weight)`, `predict_proba(X)`). Soft targets are handled here, the same
way for every learner: each label becomes one row per option with sample weight = the
probability it gives that option, which is exactly the cross-entropy against the labeler's
distribution; rows of one item are summed first (models.imitation.trainer).

Fitted learners are stored as parameters, never as Python objects: the featurizer's
vocabulary (JSON) and weights (arrays), and the estimator's coefficients, intercepts and
classes (arrays). Any estimator with linear coefficients (`coef_`, optional `intercept_`,
`classes_`) can be stored; `restore` rebuilds the same objects from the numbers and the
learner's fixed parameters (models.imitation.model_store writes and reads them without pickle).

- **bow**: TF-IDF of words and word pairs over the question and the text read, then
  multinomial logistic regression (the trainer's first learner, kept for comparison).
- **reader**: what a labeler takes from the nodes read (models.imitation.reader_features: words per
  field, figures compared with the item's cut points, whether a figure falls in an
  option's range), then a conditional logit (models.imitation.conditional_logit), which learns a
  rule shared by all options once, from every label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from models.imitation.conditional_logit import ConditionalLogit
from models.imitation.errors import TrainerError
from models.imitation.reader_features import ReaderFeatures, reader_features
from models.imitation.retrieval import View

FloatArray = NDArray[np.float64]
Arrays = dict[str, NDArray[Any]]
SMOOTHING = 0.01
BOW_TFIDF: dict[str, Any] = {"sublinear_tf": True, "ngram_range": (1, 2), "max_features": 50_000}
BOW_C = 4.0
READER_C = 4.0


class Featurizer(Protocol):
    def fit_transform(self, views: Sequence[View]) -> Any: ...

    def transform(self, views: Sequence[View]) -> Any: ...

    def state(self) -> tuple[dict[str, Any], Arrays]: ...


class BowFeaturizer:
    """TF-IDF over View.text(): the question and the text of every node read, as one bag."""

    def __init__(self) -> None:
        self.vectorizer = TfidfVectorizer(**BOW_TFIDF, dtype=np.float64)

    def fit_transform(self, views: Sequence[View]) -> Any:
        return self.vectorizer.fit_transform([view.text() for view in views])

    def transform(self, views: Sequence[View]) -> Any:
        return self.vectorizer.transform([view.text() for view in views])

    def state(self) -> tuple[dict[str, Any], Arrays]:
        vocabulary = sorted(self.vectorizer.vocabulary_.items(), key=lambda pair: pair[1])
        return {"vocabulary": [term for term, _ in vocabulary]}, {"idf": np.asarray(self.vectorizer.idf_)}

    @classmethod
    def restore(cls, state: dict[str, Any], arrays: Arrays) -> BowFeaturizer:
        featurizer = cls()
        terms = _strings(state, "vocabulary")
        idf = _floats(arrays, "idf", (len(terms),))
        featurizer.vectorizer.vocabulary_ = {term: index for index, term in enumerate(terms)}
        featurizer.vectorizer.idf_ = idf
        return featurizer


class ReaderFeaturizer:
    """models.imitation.reader_features laid out for the conditional logit: item features, then one
    block of shared features per option. Vocabularies are sorted, so the layout depends on
    the training views only, never on their order."""

    def __init__(self, n_options: int) -> None:
        self.n_options = n_options
        self.item_names: list[str] = []
        self.shared_names: list[str] = []

    @property
    def n_shared(self) -> int:
        return len(self.shared_names)

    def _check(self, views: Sequence[View]) -> list[ReaderFeatures]:
        for view in views:
            if len(view.options) != self.n_options:
                raise TrainerError(f"item {view.x!r} has {len(view.options)} options, the model {self.n_options}")
        return [reader_features(view) for view in views]

    def fit_transform(self, views: Sequence[View]) -> Any:
        features = self._check(views)
        self.item_names = sorted({name for f in features for name in f.item})
        self.shared_names = sorted({name for f in features for block in f.shared for name in block})
        return self._matrix(features)

    def transform(self, views: Sequence[View]) -> Any:
        return self._matrix(self._check(views))

    def _matrix(self, features: Sequence[ReaderFeatures]) -> Any:
        item_index = {name: i for i, name in enumerate(self.item_names)}
        shared_index = {name: i for i, name in enumerate(self.shared_names)}
        d, m = len(self.item_names), len(self.shared_names)
        columns: list[int] = []
        values: list[float] = []
        pointers = [0]
        for f in features:
            for name, value in f.item.items():
                if (at := item_index.get(name)) is not None:
                    columns.append(at)
                    values.append(value)
            for j, block in enumerate(f.shared):
                for name, value in block.items():
                    if (at := shared_index.get(name)) is not None:
                        columns.append(d + j * m + at)
                        values.append(value)
            pointers.append(len(columns))
        shape = (len(features), d + self.n_options * m)
        return sparse.csr_matrix((values, columns, pointers), shape=shape, dtype=np.float64)

    def state(self) -> tuple[dict[str, Any], Arrays]:
        return {"n_options": self.n_options, "item": self.item_names, "shared": self.shared_names}, {}

    @classmethod
    def restore(cls, state: dict[str, Any], arrays: Arrays) -> ReaderFeaturizer:
        n_options = state.get("n_options")
        if not isinstance(n_options, int) or n_options < 2:
            raise ValueError("n_options must be an integer of at least 2")
        featurizer = cls(n_options)
        featurizer.item_names = _strings(state, "item")
        featurizer.shared_names = _strings(state, "shared")
        return featurizer


@dataclass(frozen=True)
class Learner:
    name: str
    summary: str
    make_featurizer: Callable[[int], Featurizer]  # n_options → unfitted featurizer
    restore_featurizer: Callable[[dict[str, Any], Arrays], Featurizer]
    make_estimator: Callable[[Any, int, int], Any]  # (fitted featurizer, n_options, seed) → unfitted estimator
    params: dict[str, Any] = field(default_factory=dict)


LEARNERS: dict[str, Learner] = {
    learner.name: learner
    for learner in (
        Learner(
            "bow",
            "TF-IDF words and word pairs of the question and the text read → multinomial logistic regression",
            lambda n_options: BowFeaturizer(),
            BowFeaturizer.restore,
            lambda featurizer, n_options, seed: LogisticRegression(C=BOW_C, max_iter=2000, random_state=seed),
            {"tfidf": {**BOW_TFIDF, "ngram_range": list(BOW_TFIDF["ngram_range"])}, "C": BOW_C},
        ),
        Learner(
            "reader",
            "words per field read, figures against the item's cut points and option ranges → conditional logit",
            ReaderFeaturizer,
            ReaderFeaturizer.restore,
            lambda featurizer, n_options, seed: ConditionalLogit(n_options, featurizer.n_shared, C=READER_C),
            {"C": READER_C, "words_per_node": 40},
        ),
    )
}
DEFAULT_LEARNER = "reader"


def get_learner(name: str) -> Learner:
    if name not in LEARNERS:
        raise TrainerError(f"no learner named {name!r}; choose one of {', '.join(sorted(LEARNERS))}")
    return LEARNERS[name]


@dataclass
class TaskModel:
    """One task's fitted learner: views → probabilities over its options. `constant` is used
    when the training data use a single option (a degenerate CV fold)."""

    options: tuple[str, ...]
    featurizer: Featurizer | None = None
    estimator: Any = None
    constant: FloatArray | None = None

    def predict(self, views: Sequence[View]) -> FloatArray:
        k = len(self.options)
        if self.featurizer is None or self.estimator is None:
            assert self.constant is not None
            raw = np.tile(self.constant, (len(views), 1))
        else:
            raw = np.zeros((len(views), k))
            columns = self.estimator.predict_proba(self.featurizer.transform(views))
            for column, option_index in enumerate(self.estimator.classes_):
                raw[:, int(option_index)] = columns[:, column]
        # Mixed with the uniform distribution, so an option no labeler ever picked keeps a
        # small probability and log losses stay finite.
        return np.asarray((1.0 - SMOOTHING) * raw + SMOOTHING / k, dtype=np.float64)


def fit_task(
    learner: Learner, options: tuple[str, ...], views: Sequence[View], targets: FloatArray, *, seed: int
) -> TaskModel:
    """Fit one task on items' views and their summed label distributions (rows of `targets`
    hold, per item, the total probability its labels put on each option)."""
    used = targets.sum(axis=0) > 0
    if used.sum() < 2:
        totals = targets.sum(axis=0) + 1e-12
        return TaskModel(options, constant=totals / totals.sum())
    featurizer = learner.make_featurizer(len(options))
    matrix = sparse.csr_matrix(featurizer.fit_transform(views))
    rows, columns = np.nonzero(targets > 0)
    # Scaled so the mean item weighs 1: a hundred labels on one item are one point of evidence
    # about features → answer, seen with more certainty of its label, not a hundred points; and the
    # regularisation (C) then means the same at 100 labels and at 100 000.
    weights = targets[rows, columns] * (len(targets) / targets.sum())
    estimator = learner.make_estimator(featurizer, len(options), seed)
    estimator.fit(matrix[rows], columns, sample_weight=weights)
    return TaskModel(options, featurizer, estimator)


# -- storage as numbers --------------------------------------------------------------


def task_state(model: TaskModel) -> tuple[dict[str, Any], Arrays]:
    """A fitted task as JSON-able parameters and numeric arrays."""
    if model.featurizer is None or model.estimator is None:
        assert model.constant is not None
        return {"options": list(model.options), "constant": True}, {"constant": model.constant}
    coefficients = getattr(model.estimator, "coef_", None)
    if coefficients is None:
        raise TrainerError(
            f"{type(model.estimator).__name__} has no linear coefficients, so it cannot be stored without pickle"
        )
    state, arrays = model.featurizer.state()
    stored: Arrays = {f"featurizer.{name}": value for name, value in arrays.items()}
    stored["coef"] = np.asarray(coefficients, dtype=np.float64)
    stored["classes"] = np.asarray(model.estimator.classes_, dtype=np.int64)
    intercept = getattr(model.estimator, "intercept_", None)
    if intercept is not None:
        stored["intercept"] = np.asarray(intercept, dtype=np.float64)
    return {"options": list(model.options), "constant": False, "featurizer": state}, stored


def restore_task(learner: Learner, state: dict[str, Any], arrays: Arrays) -> TaskModel:
    """The inverse of task_state; ValueError when the numbers do not fit together."""
    options = tuple(_strings(state, "options"))
    if len(options) < 2:
        raise ValueError("a task needs at least two options")
    if state.get("constant") is True:
        return TaskModel(options, constant=_floats(arrays, "constant", (len(options),)))
    featurizer_state = state.get("featurizer")
    if not isinstance(featurizer_state, dict):
        raise ValueError("missing featurizer state")
    prefix = "featurizer."
    featurizer = learner.restore_featurizer(
        featurizer_state, {name[len(prefix) :]: value for name, value in arrays.items() if name.startswith(prefix)}
    )
    estimator = learner.make_estimator(featurizer, len(options), 0)
    classes = arrays.get("classes")
    if classes is None or classes.dtype.kind not in "iu" or classes.ndim != 1:
        raise ValueError("missing or malformed classes")
    if classes.size and (classes.min() < 0 or classes.max() >= len(options)):
        raise ValueError("classes outside the options")
    estimator.coef_ = _floats(arrays, "coef", None)
    estimator.classes_ = classes
    if "intercept" in arrays:
        estimator.intercept_ = _floats(arrays, "intercept", None)
    model = TaskModel(options, featurizer, estimator)
    # One prediction on an empty view proves the numbers fit together (shapes, classes) now,
    # rather than as an obscure error in the middle of someone's `predict`.
    probe = model.predict([View("", options, ())])
    if probe.shape != (1, len(options)) or not np.all(np.isfinite(probe)):
        raise ValueError("the stored numbers do not make a model")
    return model


def _strings(state: dict[str, Any], key: str) -> list[str]:
    value = state.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key} must be a list of strings")
    return value


def _floats(arrays: Arrays, key: str, shape: tuple[int, ...] | None) -> FloatArray:
    value = arrays.get(key)
    if value is None or value.dtype.kind != "f" or (shape is not None and value.shape != shape):
        raise ValueError(f"{key} is missing or malformed")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{key} holds non-finite numbers")
    return np.asarray(value, dtype=np.float64)
