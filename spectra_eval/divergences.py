"""Divergences between stacks of distributions, row by row.

All functions take arrays of shape (n, K) or (K,) (one row broadcasts against many) and return an array of
shape (n,). Information divergences take ``unit='bits'`` (log base 2, the library default) or ``'nats'``.
"""
from __future__ import annotations

import numpy as np
from scipy.special import rel_entr

from spectra_eval.validation import check_pair, check_unit


def kl(p, q, unit: str = "bits") -> np.ndarray:
    r"""Kullback-Leibler divergence :math:`KL(p\|q) = \sum_c p_c \log(p_c / q_c)`; ``inf`` where q_c = 0 < p_c."""
    p, q = check_pair(p, q)
    return rel_entr(p, q).sum(axis=1) / check_unit(unit)


def js(p, q, unit: str = "bits") -> np.ndarray:
    r"""Jensen-Shannon divergence :math:`KL(p\|m)/2 + KL(q\|m)/2`, :math:`m=(p+q)/2`; in [0, 1] bits."""
    p, q = check_pair(p, q)
    m = 0.5 * (p + q)
    value = 0.5 * (rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1))
    return np.maximum(value, 0.0) / check_unit(unit)


def tv(p, q) -> np.ndarray:
    r"""Total variation :math:`\frac12 \sum_c |p_c - q_c|`, in [0, 1]."""
    p, q = check_pair(p, q)
    return 0.5 * np.abs(p - q).sum(axis=1)


def hellinger(p, q) -> np.ndarray:
    r"""Hellinger distance :math:`H = \sqrt{\frac12 \sum_c (\sqrt{p_c} - \sqrt{q_c})^2}`, in [0, 1]."""
    p, q = check_pair(p, q)
    return np.sqrt(np.maximum(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(axis=1), 0.0))


def chi_square(p, q) -> np.ndarray:
    r"""Pearson chi-square divergence :math:`\chi^2(p\|q) = \sum_c (p_c - q_c)^2 / q_c`; ``inf`` where q_c = 0 < p_c."""
    p, q = check_pair(p, q)
    diff2 = (p - q) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(diff2 == 0, 0.0, diff2 / q)
    return terms.sum(axis=1)


def linf(p, q) -> np.ndarray:
    r"""Sup-norm distance :math:`\max_c |p_c - q_c|`."""
    p, q = check_pair(p, q)
    return np.abs(p - q).max(axis=1)
