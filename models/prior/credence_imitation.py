"""Imitated credences: guess a labeler's credence on statements they never rated, from the ones they did.

A library holds far more statements than anyone will rate, and P(Z) is about all of them. This
learner fills the gap the way the method fills D*_prediction: it only interpolates from the
labeler's own ratings on statements like the unrated one. It is deliberately simple, so that
its behaviour can be checked by hand:

* every statement becomes a TF-IDF vector of its text and its path (the titles above it), fitted on
  the rated and the unrated statements together (unsupervised, so using the unrated texts is fair);
* an unrated statement gets the similarity-weighted mean of the logits of its ``k`` most similar
  rated statements, shrunk toward the labeler's mean logit with weight ``shrink``:
  ``logit p̂ = (Σ_j s_j · logit p_j + shrink · mean_logit) / (Σ_j s_j + shrink)``.
  A statement sharing no word with anything rated gets exactly the labeler's mean; an exact copy of
  one rated statement with nothing else similar gets ``(logit p + shrink · mean) / (1 + shrink)``.

Results are flagged (`source = "imitated"`) and are never written into the credences table by this
module: callers compute them on the fly and keep them apart from human credences. Leave-one-out
error against the rated statements, beside the error of always predicting the mean, says whether
the imitation is worth anything for this labeler.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from kb.errors import ZNavigatorError

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix
from kb.libraries import Library
from kb.tree import statement_texts

MIN_CREDENCES = 5
DEFAULT_K = 10
DEFAULT_SHRINK = 0.5
LOGIT_CLIP = 0.01  # ratings of 0 or 1 become 0.01 / 0.99 before taking logits
_QUERY_BATCH = 4_096


class ImitationRefused(ZNavigatorError, ValueError):
    """Too little to learn from; the message says how much is needed."""


@dataclass(frozen=True)
class ImitatedCredence:
    """A guessed credence on one statement; never a human's. `support` is the summed similarity used."""

    uid: str
    p: float
    support: float
    labeler: str
    source: str = "imitated"


@dataclass(frozen=True)
class ImitationFit:
    """How well the imitation reproduces a labeler's own ratings, by leave-one-out over `n_rated`."""

    labeler: str
    n_rated: int
    loo_mae: float
    mean_mae: float  # always predicting the mean of the other ratings: the bar to beat


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    clipped = np.clip(p, LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.asarray(np.log(clipped / (1.0 - clipped)), dtype=np.float64)


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def _vectorise(texts: Sequence[str]) -> csr_matrix:
    # scikit-learn and SciPy load here, not with the module: the app imports this module (through the
    # score report) and would otherwise pay ~0.6 s and ~40 MB at every start, served sessions included.
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, dtype=np.float32)
    try:
        return csr_matrix(vectorizer.fit_transform(texts))
    except ValueError:  # no usable word at all (only stop words or punctuation)
        return csr_matrix((len(texts), 1), dtype=np.float32)


def _check(rated: Mapping[str, float], labeler: str) -> None:
    if len(rated) < MIN_CREDENCES:
        raise ImitationRefused(
            f"imitating {labeler}'s credences needs at least {MIN_CREDENCES} credences on single statements; "
            f"there are {len(rated)}. Rate more statements (credence mode, `t` in the app)."
        )
    bad = [uid for uid, p in rated.items() if not (math.isfinite(p) and 0.0 <= p <= 1.0)]
    if bad:
        raise ImitationRefused(f"credence on {bad[0]!r} is not a probability")


def _neighbour_logits(
    similarity: NDArray[np.float64],
    logits: NDArray[np.float64],
    mean: float | NDArray[np.float64],
    k: int,
    shrink: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Rows of `similarity` (queries × rated) → shrunk weighted-mean logits and the support used."""
    if similarity.shape[1] > k:
        cut = np.argpartition(-similarity, k - 1, axis=1)[:, k:]
        similarity = similarity.copy()
        np.put_along_axis(similarity, cut, 0.0, axis=1)
    similarity = np.clip(similarity, 0.0, None)
    support = similarity.sum(axis=1)
    guess = (similarity @ logits + shrink * mean) / (support + shrink)
    return np.asarray(guess, dtype=np.float64), np.asarray(support, dtype=np.float64)


def imitate(
    rated: Mapping[str, float],
    texts: Mapping[str, str],
    targets: Sequence[str],
    *,
    labeler: str = "the labeler",
    k: int = DEFAULT_K,
    shrink: float = DEFAULT_SHRINK,
) -> list[ImitatedCredence]:
    """Imitated credences for `targets` (statement uids with text in `texts`) from `rated` (uid → p).

    Raises ImitationRefused with fewer than MIN_CREDENCES ratings. Targets that are rated are skipped:
    a human credence is never replaced by a guess.
    """
    _check(rated, labeler)
    if shrink <= 0 or k < 1:
        raise ValueError("shrink must be positive and k at least 1")
    rated_uids = sorted(rated)
    wanted = [uid for uid in dict.fromkeys(targets) if uid not in rated]
    if not wanted:
        return []
    missing = [uid for uid in (*rated_uids, *wanted) if uid not in texts]
    if missing:
        raise KeyError(f"no text for statement {missing[0]!r}")
    vectors = _vectorise([texts[uid] for uid in rated_uids] + [texts[uid] for uid in wanted])
    known, queries = vectors[: len(rated_uids)], vectors[len(rated_uids) :]
    logits = _logit(np.array([rated[uid] for uid in rated_uids], dtype=np.float64))
    mean = float(logits.mean())
    imitated: list[ImitatedCredence] = []
    for start in range(0, len(wanted), _QUERY_BATCH):
        block = np.asarray((queries[start : start + _QUERY_BATCH] @ known.T).toarray(), dtype=np.float64)
        guess, support = _neighbour_logits(block, logits, mean, k, shrink)
        for offset, (value, weight) in enumerate(zip(_sigmoid(guess), support, strict=True)):
            imitated.append(ImitatedCredence(wanted[start + offset], float(value), float(weight), labeler))
    return imitated


def leave_one_out(
    rated: Mapping[str, float],
    texts: Mapping[str, str],
    *,
    labeler: str = "the labeler",
    k: int = DEFAULT_K,
    shrink: float = DEFAULT_SHRINK,
) -> ImitationFit:
    """Predict each rating from the others; mean absolute error in probability, beside the mean's."""
    _check(rated, labeler)
    uids = sorted(rated)
    p = np.array([rated[uid] for uid in uids], dtype=np.float64)
    logits = _logit(p)
    vectors = _vectorise([texts[uid] for uid in uids])
    similarity = np.asarray((vectors @ vectors.T).toarray(), dtype=np.float64)
    np.fill_diagonal(similarity, 0.0)
    n = len(uids)
    others_mean = (logits.sum() - logits) / (n - 1)
    guess, _ = _neighbour_logits(similarity, logits, others_mean, k, shrink)
    loo = float(np.mean(np.abs(_sigmoid(guess) - p)))
    baseline = float(np.mean(np.abs(_sigmoid(others_mean) - p)))
    return ImitationFit(labeler, n, loo, baseline)


def library_statements(conn: sqlite3.Connection, library: Library) -> dict[str, str]:
    """uid → "path › title: body" for every statement of the library (kb.tree.statement_texts)."""
    return statement_texts(conn, library.id, library.root_id)
