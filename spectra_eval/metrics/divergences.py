"""Divergences between stacks of distributions, row by row.

All public functions take arrays of shape (n, K) or (K,) (one row broadcasts against many), check them once
(:func:`spectra_eval.validation.check_pair`) and return an array of shape (n,). The ``_name`` kernels below
them assume validated float64 arrays and are what the evaluation core calls. Information divergences take
``unit='bits'`` (log base 2, the library default) or ``'nats'``.
"""
from __future__ import annotations

import numpy as np
from scipy.special import rel_entr

from spectra_eval.validation import check_pair, check_unit


def _kl(p: np.ndarray, q: np.ndarray, divisor: float = 1.0) -> np.ndarray:
    return rel_entr(p, q).sum(axis=1) / divisor


def _js(p: np.ndarray, q: np.ndarray, divisor: float = 1.0) -> np.ndarray:
    m = 0.5 * (p + q)
    value = 0.5 * (rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1))
    return np.maximum(value, 0.0) / divisor


def _tv(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(p - q).sum(axis=1)


def _hellinger(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(axis=1), 0.0))


def _chi_square(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    diff2 = (p - q) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(diff2 == 0, 0.0, diff2 / q)
    return terms.sum(axis=1)


def _linf(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.abs(p - q).max(axis=1)


def kl(p, q, unit: str = "bits") -> np.ndarray:
    r"""Kullback-Leibler divergence :math:`KL(p\|q) = \sum_c p_c \log(p_c / q_c)`; ``inf`` where q_c = 0 < p_c."""
    divisor = check_unit(unit)
    return _kl(*check_pair(p, q), divisor)


def js(p, q, unit: str = "bits") -> np.ndarray:
    r"""Jensen-Shannon divergence :math:`KL(p\|m)/2 + KL(q\|m)/2`, :math:`m=(p+q)/2`; in [0, 1] bits."""
    divisor = check_unit(unit)
    return _js(*check_pair(p, q), divisor)


def tv(p, q) -> np.ndarray:
    r"""Total variation :math:`\frac12 \sum_c |p_c - q_c|`, in [0, 1]."""
    return _tv(*check_pair(p, q))


def hellinger(p, q) -> np.ndarray:
    r"""Hellinger distance :math:`H = \sqrt{\frac12 \sum_c (\sqrt{p_c} - \sqrt{q_c})^2}`, in [0, 1]."""
    return _hellinger(*check_pair(p, q))


def chi_square(p, q) -> np.ndarray:
    r"""Pearson chi-square divergence :math:`\chi^2(p\|q) = \sum_c (p_c - q_c)^2 / q_c`; ``inf`` where q_c = 0 < p_c."""
    return _chi_square(*check_pair(p, q))


def linf(p, q) -> np.ndarray:
    r"""Sup-norm distance :math:`\max_c |p_c - q_c|`."""
    return _linf(*check_pair(p, q))
