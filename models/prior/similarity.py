"""Clusters of near-duplicate statement texts, for the dependence-aware estimate of P(Z).

Statements that sit close together in a smooth latent space are strongly correlated; at the limit
two phrasings of one claim are the same event, and multiplying their credences as if independent
double-counts the doubt. We cannot afford all 10^12 pairs of a million statements, so candidates come
from MinHash banding over hashed word sets (texts sharing most words collide in at least one band)
plus any pairs the caller knows about (pairs with credences, tree neighbours), and each candidate
is kept only if its TF-IDF cosine reaches the threshold. Clusters are the connected components, so
chains of near-duplicates join (single linkage) — the assumption the estimate states.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

DEFAULT_THRESHOLD = 0.8
_PRIME = np.uint64((1 << 31) - 1)
_BANDS = 12
_ROWS = 2


def _vectors(texts: Sequence[str]) -> csr_matrix:
    # scikit-learn loads at the first estimate, not with the app, which imports this module through
    # the score report (~0.6 s and tens of MB at every start, each served session included).
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

    hashed = HashingVectorizer(n_features=1 << 20, alternate_sign=False, norm=None).transform(texts)
    tfidf: csr_matrix = TfidfTransformer(sublinear_tf=True).fit_transform(hashed).tocsr()
    return tfidf


def _minhash_pairs(vectors: csr_matrix, seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Star edges from each MinHash band bucket to its first member: linear in the number of texts."""
    n = vectors.shape[0]
    indptr = vectors.indptr
    tokens = vectors.indices.astype(np.uint64)
    empty = indptr[1:] == indptr[:-1]
    starts = np.minimum(indptr[:-1], max(len(tokens) - 1, 0))
    rng = np.random.default_rng(seed)
    firsts, seconds = [], []
    for _ in range(_BANDS):
        key = np.zeros(n, dtype=np.uint64)
        for _ in range(_ROWS):
            a, c = (np.uint64(v) for v in rng.integers(1, int(_PRIME), size=2))
            hashed = (a * tokens + c) % _PRIME
            signature = np.minimum.reduceat(hashed, starts) if len(tokens) else np.zeros(n, dtype=np.uint64)
            key = key * _PRIME + signature
        key[empty] = np.uint64(1 << 63) + np.arange(int(empty.sum()), dtype=np.uint64)
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        new_bucket = np.ones(n, dtype=bool)
        new_bucket[1:] = ordered[1:] != ordered[:-1]
        representative = order[np.maximum.accumulate(np.where(new_bucket, np.arange(n), 0))]
        joined = ~new_bucket
        firsts.append(representative[joined])
        seconds.append(order[joined])
    if not firsts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64)


def cosine(vectors: csr_matrix, i: NDArray[np.int64], j: NDArray[np.int64]) -> NDArray[np.float64]:
    """Row-wise cosine of L2-normalised rows i[k] and j[k], vectorised over all k."""
    if len(i) == 0:
        return np.zeros(0)
    return np.asarray(vectors[i].multiply(vectors[j]).sum(axis=1), dtype=np.float64).ravel()


def cluster_texts(
    texts: Sequence[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    extra_pairs: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None,
    seed: int = 0,
) -> NDArray[np.int64]:
    """A cluster label per text; texts joined by a chain of cosine ≥ threshold share a label."""
    n = len(texts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    vectors = _vectors(texts)
    i, j = _minhash_pairs(vectors, seed)
    if extra_pairs is not None:
        i, j = np.concatenate([i, extra_pairs[0]]), np.concatenate([j, extra_pairs[1]])
    different = i != j
    i, j = i[different], j[different]
    close = cosine(vectors, i, j) >= threshold - 1e-9
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(int(close.sum())), (i[close], j[close])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels, dtype=np.int64)
