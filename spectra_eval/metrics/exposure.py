r"""Exposure diversity of the predicted top-k lists, pooled over the cohort.

Every user contributes their k most probable predicted categories (ties: column order, see
:func:`spectra_eval.metrics.ranking.top_k_indices`). The pooled counts, normalised over categories, form the
exposure distribution :math:`e`; its Shannon entropy says how many categories the method actually
puts in front of users. A method that shows everyone the same k categories scores :math:`\log_2 k`;
the ceiling is :math:`\log_2 K`.
"""
from __future__ import annotations

import numpy as np
from scipy.special import entr

from spectra_eval.metrics.ranking import Rankings
from spectra_eval.validation import check_distributions, check_k, check_unit


def _exposure_counts(pred: np.ndarray, k: int, ranks: Rankings | None = None) -> np.ndarray:
    return np.bincount((ranks or Rankings()).top(pred, k).ravel(), minlength=pred.shape[1])


def _exposure_entropy(pred: np.ndarray, k: int, divisor: float = float(np.log(2.0)),
                      ranks: Rankings | None = None) -> float:
    counts = _exposure_counts(pred, k, ranks)
    return float(entr(counts / counts.sum()).sum() / divisor)


def exposure_counts(pred, k: int) -> np.ndarray:
    r"""How many users have each category in their predicted top-k.

    .. math:: n_c = \#\{u : c \in \mathrm{top}_k(\hat p_u)\}, \qquad \sum_c n_c = n \cdot \min(k, K)

    Parameters
    ----------
    pred : array_like, shape (n, K) or (K,)
        Predicted distributions.
    k : int
        List length; clipped to K.

    Returns
    -------
    ndarray of int, shape (K,)
    """
    pred = check_distributions(pred, source="pred")
    return _exposure_counts(pred, check_k(k, pred.shape[1]))


def exposure_entropy_at_k(pred, k: int, unit: str = "bits") -> float:
    r"""Shannon entropy of the pooled top-k exposure distribution.

    .. math:: H@k = -\sum_c e_c \log_2 e_c, \qquad e_c = n_c / \sum_{c'} n_{c'}

    with :math:`n_c` from :func:`exposure_counts` and :math:`0 \log 0 = 0`. In [0, log2 K] bits
    (``unit='nats'`` uses the natural log).

    Parameters
    ----------
    pred : array_like, shape (n, K) or (K,)
    k : int
        List length; clipped to K.
    unit : {'bits', 'nats'}

    Returns
    -------
    float
    """
    divisor = check_unit(unit)
    pred = check_distributions(pred, source="pred")
    return _exposure_entropy(pred, check_k(k, pred.shape[1]), divisor)
