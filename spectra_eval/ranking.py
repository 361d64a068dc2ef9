r"""Ranking metrics over categories, row by row.

Each user's categories are ranked by predicted probability, highest first; equal probabilities keep
column order (the ranking a stable sort on :math:`-\hat p` gives). Gains are the user's *true*
probabilities (linear gain), so every metric here is a number per user, array of shape (n,).

:func:`top_k_indices` avoids a full sort: a partition finds each row's k-th largest value, and only the k
winners are sorted, so 10,000 users x 1,311 categories cost tens of milliseconds rather than a second.
"""
from __future__ import annotations

import numpy as np

from spectra_eval.validation import SpectraInputError, check_distributions, check_pair, check_positive_int


def check_pred_truth(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    """Validate predicted and true distribution stacks and broadcast them to one shape (n, K).

    Both go through :func:`spectra_eval.validation.check_distributions` (named ``pred`` and ``truth`` in
    error messages). A single row on either side broadcasts against the other's rows.

    Raises
    ------
    SpectraInputError
        on any invalid row, a category-count mismatch, or row counts that do not broadcast.
    """
    pred, truth = check_pair(pred, truth, names=("pred", "truth"))
    if pred.shape[0] != truth.shape[0]:
        pred, truth = np.broadcast_arrays(pred, truth)
    return pred, truth


def check_k(k, n_categories: int) -> int:
    """Return ``k`` as an int in [1, K]; a ``k`` above K is clipped to K (the whole ranking)."""
    return min(check_positive_int(k, "k"), int(n_categories))


def _top_k(pred: np.ndarray, k: int) -> np.ndarray:
    """Top-k column indices of validated ``pred``, best first, ties in column order."""
    n, n_cat = pred.shape
    if k >= n_cat:
        return np.argsort(-pred, axis=1, kind="stable")
    # The k-th largest value v of each row: every value > v is in the top k; values == v fill the
    # remaining slots in column order.
    kth = np.partition(pred, n_cat - k, axis=1)[:, n_cat - k][:, None]
    above = pred > kth
    tied = pred == kth
    need = k - np.count_nonzero(above, axis=1)
    crowded = np.flatnonzero(np.count_nonzero(tied, axis=1) > need)  # rows with more ties than free slots
    if len(crowded):
        sub = tied[crowded]
        tied[crowded] = sub & (np.cumsum(sub, axis=1) <= need[crowded, None])
    chosen = above | tied  # exactly k per row
    cols = np.flatnonzero(chosen).reshape(n, k) - (np.arange(n) * n_cat)[:, None]  # column order per row
    order = np.argsort(-np.take_along_axis(pred, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


def top_k_indices(pred, k: int) -> np.ndarray:
    r"""Column indices of each user's k most probable categories, best first.

    Ties are broken by column order: the result equals
    ``np.argsort(-pred, axis=1, kind="stable")[:, :k]``.

    Parameters
    ----------
    pred : array_like, shape (n, K) or (K,)
        Predicted distributions.
    k : int
        List length; values above K are clipped to K.

    Returns
    -------
    ndarray of int, shape (n, min(k, K))
    """
    pred = check_distributions(pred, source="pred")
    return _top_k(pred, check_k(k, pred.shape[1]))


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _dcg(pred: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    gains = np.take_along_axis(truth, _top_k(pred, k), axis=1)
    return gains @ _discounts(k)


def _ideal_dcg(truth: np.ndarray, k: int) -> np.ndarray:
    n_cat = truth.shape[1]
    best = np.partition(truth, n_cat - k, axis=1)[:, n_cat - k:] if k < n_cat else truth
    return -np.sort(-best, axis=1) @ _discounts(k)


def dcg_at_k(pred, truth, k: int) -> np.ndarray:
    r"""Discounted cumulative gain at k with linear gains.

    .. math:: \mathrm{DCG@k}_u = \sum_{r=1}^{k} \frac{\theta_u(\pi_u(r))}{\log_2(r + 1)}

    where :math:`\pi_u(r)` is the category at rank r of the prediction (ties: column order) and
    :math:`\theta_u` the true distribution.

    Parameters
    ----------
    pred, truth : array_like, shape (n, K) or (K,)
        Predicted and true distributions (a single row broadcasts).
    k : int
        Cut-off; clipped to K.

    Returns
    -------
    ndarray, shape (n,)
    """
    pred, truth = check_pred_truth(pred, truth)
    return _dcg(pred, truth, check_k(k, pred.shape[1]))


def ndcg_at_k(pred, truth, k: int) -> np.ndarray:
    r"""Normalised DCG at k with linear gains, in [0, 1].

    .. math:: \mathrm{NDCG@k}_u = \mathrm{DCG@k}_u / \mathrm{IDCG@k}_u, \quad
              \mathrm{IDCG@k}_u = \sum_{r=1}^{k} \frac{\theta_u^{\downarrow}(r)}{\log_2(r + 1)}

    with :math:`\theta_u^{\downarrow}` the true probabilities sorted in decreasing order. Because every
    true row sums to 1 its largest entry is positive, so IDCG > 0 and NDCG is always defined.
    The truth ranked against itself scores exactly 1.

    Parameters
    ----------
    pred, truth : array_like, shape (n, K) or (K,)
    k : int
        Cut-off; clipped to K.

    Returns
    -------
    ndarray, shape (n,)
    """
    pred, truth = check_pred_truth(pred, truth)
    k = check_k(k, pred.shape[1])
    return _dcg(pred, truth, k) / _ideal_dcg(truth, k)


def mass_captured_at_k(pred, truth, k: int) -> np.ndarray:
    r"""True probability mass on the predicted top-k categories.

    .. math:: M@k_u = \sum_{c \in \mathrm{top}_k(\hat p_u)} \theta_u(c) \in [0, 1]

    Parameters
    ----------
    pred, truth : array_like, shape (n, K) or (K,)
    k : int
        Cut-off; clipped to K.

    Returns
    -------
    ndarray, shape (n,)
    """
    pred, truth = check_pred_truth(pred, truth)
    cols = _top_k(pred, check_k(k, pred.shape[1]))
    return np.take_along_axis(truth, cols, axis=1).sum(axis=1)
