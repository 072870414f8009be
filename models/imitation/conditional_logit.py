"""A conditional logit: shared weights score every option of an item from that option's features.

Multinomial logistic regression gives each option its own weights, so "the figure falls in
this option's range" must be learned once per option — from the few labels that chose it —
and an option nobody chose in training is never predicted. Scoring each option with the
*same* weights over per-option features (McFadden's conditional logit) learns such a rule
once from every label. Item features (words, figures) still get a weight per option, as
in multinomial regression; econometrics calls this mix alternative- and case-specific
variables. With 30 labels on a four-band question, the shared rule is most of the
accuracy (bench/experiment.py).

Scikit-learn style: `fit(X, y, sample_weight)` and `predict_proba(X)`. A row of X is
[item features | option 0's shared features | … | option k−1's shared features], the last
k blocks `n_shared` columns wide. Fitting minimises C · Σ wᵢ (−log pᵢ,yᵢ) + ½‖θ‖² with L-BFGS
from zero, so it is deterministic, and a feature never seen in training keeps weight 0.
`coef_` is [item weights (item features × options, row-major), shared weights].
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.optimize import minimize
from scipy.special import logsumexp

FloatArray = NDArray[np.float64]


class ConditionalLogit:
    def __init__(self, n_options: int = 2, n_shared: int = 0, C: float = 1.0, max_iter: int = 1000) -> None:
        self.n_options = n_options
        self.n_shared = n_shared
        self.C = C
        self.max_iter = max_iter

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"n_options": self.n_options, "n_shared": self.n_shared, "C": self.C, "max_iter": self.max_iter}

    def _split(self, X: Any) -> tuple[sparse.csr_matrix, list[sparse.csr_matrix]]:
        matrix = sparse.csr_matrix(X, dtype=np.float64)
        k, m = self.n_options, self.n_shared
        d = matrix.shape[1] - k * m
        if d < 0:
            raise ValueError(f"{matrix.shape[1]} columns cannot hold {k} option blocks of {m}")
        blocks = [matrix[:, d + j * m : d + (j + 1) * m] for j in range(k)]
        return matrix[:, :d], blocks

    def _scores(self, item: sparse.csr_matrix, blocks: list[sparse.csr_matrix], theta: FloatArray) -> FloatArray:
        d, k = item.shape[1], self.n_options
        weights, shared = theta[: d * k].reshape(d, k), theta[d * k :]
        scores = np.asarray(item @ weights)
        if self.n_shared:
            scores = scores + np.column_stack([block @ shared for block in blocks])
        return np.asarray(scores, dtype=np.float64)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ConditionalLogit:
        item, blocks = self._split(X)
        n, d, k = item.shape[0], item.shape[1], self.n_options
        labels = np.asarray(y, dtype=np.int64)
        weights = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if labels.shape != (n,) or weights.shape != (n,):
            raise ValueError(f"y and sample_weight need one entry per row ({n})")
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= k:
            raise ValueError(f"y must be option indices in [0, {k})")
        target = np.zeros((n, k))
        target[np.arange(n), labels] = weights
        item_t = item.T.tocsr()
        blocks_t = [block.T.tocsr() for block in blocks]

        def loss_and_gradient(theta: FloatArray) -> tuple[float, FloatArray]:
            scores = self._scores(item, blocks, theta)
            log_norm = logsumexp(scores, axis=1)
            loss = -float((target * (scores - log_norm[:, None])).sum())
            residual = np.exp(scores - log_norm[:, None]) * weights[:, None] - target
            gradient = [np.asarray(item_t @ residual).reshape(-1)]
            if self.n_shared:
                gradient.append(sum((blocks_t[j] @ residual[:, j] for j in range(k)), np.zeros(self.n_shared)))
            return self.C * loss + 0.5 * float(theta @ theta), self.C * np.concatenate(gradient) + theta

        result = minimize(
            loss_and_gradient,
            np.zeros(d * k + self.n_shared),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter},
        )
        self.coef_ = np.asarray(result.x, dtype=np.float64)
        self.classes_ = np.arange(k)
        self.n_iter_ = int(result.nit)
        return self

    def predict_proba(self, X: Any) -> FloatArray:
        item, blocks = self._split(X)
        if self.coef_.shape != (item.shape[1] * self.n_options + self.n_shared,):
            raise ValueError(f"coefficients of shape {self.coef_.shape} do not fit {X.shape[1]} columns")
        scores = self._scores(item, blocks, self.coef_)
        return np.asarray(np.exp(scores - logsumexp(scores, axis=1)[:, None]), dtype=np.float64)
