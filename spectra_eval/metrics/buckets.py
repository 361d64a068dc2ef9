r"""Head / mid / tail category buckets and the mass and bias read on them.

Categories are ordered by their cohort-mean true mass :math:`\bar\theta(c) = \frac1n \sum_u \theta_u(c)`,
largest first (ties: column order). With K categories the head is the first
:math:`h = \lfloor K/3 \rfloor`, the mid the next :math:`m = \lfloor (K-h)/2 \rfloor`, the tail the rest,
so K=19 gives 6/6/7 and K=26 gives 8/9/9; the tail is never smaller than the head.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator, Sequence

import numpy as np

from spectra_eval.validation import SpectraInputError, check_distributions, check_pred_truth

BUCKET_NAMES = ("head", "mid", "tail")


@dataclass(frozen=True)
class Buckets:
    """A partition of the category columns into head, mid and tail.

    Each field is a tuple of column indices in decreasing order of cohort-mean true mass.
    """

    head: tuple[int, ...]
    mid: tuple[int, ...]
    tail: tuple[int, ...]

    names: ClassVar[tuple[str, str, str]] = BUCKET_NAMES

    def __getitem__(self, name: str) -> tuple[int, ...]:
        if name not in BUCKET_NAMES:
            raise KeyError(name)
        return getattr(self, name)

    def items(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """``(name, columns)`` pairs in head, mid, tail order."""
        return ((name, getattr(self, name)) for name in BUCKET_NAMES)

    @property
    def n_categories(self) -> int:
        return len(self.head) + len(self.mid) + len(self.tail)

    def labels(self, categories: Sequence) -> dict[str, list]:
        """Bucket name -> category labels (``categories`` in column order)."""
        self.check(len(categories))
        return {name: [categories[c] for c in cols] for name, cols in self.items()}

    def assignment(self) -> np.ndarray:
        """Bucket name of every column, shape (K,), e.g. for colouring a per-category plot."""
        out = np.empty(self.n_categories, dtype=object)
        for name, cols in self.items():
            out[list(cols)] = name
        return out

    def check(self, n_categories: int) -> None:
        """Raise :class:`SpectraInputError` unless the buckets partition ``range(n_categories)``."""
        cols = np.fromiter((c for _, cs in self.items() for c in cs), dtype=np.int64)
        if len(cols) != n_categories or not np.array_equal(np.sort(cols), np.arange(n_categories)):
            raise SpectraInputError(
                f"buckets cover columns {sorted(cols.tolist())[:10]}... ({len(cols)} in all), "
                f"not exactly the {n_categories} categories of the data"
            )


def make_buckets(truth_probs) -> Buckets:
    r"""Split categories into head / mid / tail by cohort-mean true mass.

    Order columns by :math:`\bar\theta(c)` decreasing with a stable sort (ties: column order); head =
    first :math:`h=\lfloor K/3\rfloor`, mid = next :math:`\lfloor (K-h)/2\rfloor`, tail = the rest.
    For K < 3 the head (and for K = 1 the mid) is empty.

    Parameters
    ----------
    truth_probs : array_like, shape (n, K) or (K,)
        True distributions of the cohort.

    Returns
    -------
    Buckets
    """
    return _make_buckets(check_distributions(truth_probs, source="truth"))


def _make_buckets(truth: np.ndarray) -> Buckets:
    n_cat = truth.shape[1]
    order = np.argsort(-truth.mean(axis=0), kind="stable").tolist()
    n_head = n_cat // 3
    n_mid = (n_cat - n_head) // 2
    return Buckets(
        head=tuple(order[:n_head]), mid=tuple(order[n_head:n_head + n_mid]), tail=tuple(order[n_head + n_mid:])
    )


def bucket_mass(probs, buckets: Buckets) -> dict[str, float]:
    r"""Cohort-mean probability mass on each bucket.

    .. math:: \mathrm{mass}(B) = \frac1n \sum_u \sum_{c \in B} p_u(c)

    The three values sum to 1.

    Parameters
    ----------
    probs : array_like, shape (n, K) or (K,)
        Predicted (or true) distributions.
    buckets : Buckets

    Returns
    -------
    dict
        ``{"head": float, "mid": float, "tail": float}``
    """
    probs = check_distributions(probs, source="probs")
    buckets.check(probs.shape[1])
    return _bucket_mass(probs, buckets)


def _bucket_mass(probs: np.ndarray, buckets: Buckets) -> dict[str, float]:
    mean = probs.mean(axis=0)
    return {name: float(mean[list(cols)].sum()) for name, cols in buckets.items()}


def _bias(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return pred.mean(axis=0) - truth.mean(axis=0)


def per_category_bias(pred, truth) -> np.ndarray:
    r"""Per-category bias of the cohort-mean prediction.

    .. math:: b(c) = \frac1n \sum_u \hat p_u(c) - \frac1n \sum_u \theta_u(c)

    Positive: the category is over-predicted. The entries sum to 0.

    Parameters
    ----------
    pred, truth : array_like, shape (n, K) or (K,)

    Returns
    -------
    ndarray, shape (K,)
    """
    pred, truth = check_pred_truth(pred, truth)
    return _bias(pred, truth)


def bucket_bias(pred, truth, buckets: Buckets) -> dict[str, float]:
    r"""Mean absolute per-category bias within each bucket.

    .. math:: \mathrm{bias}(B) = \frac{1}{|B|} \sum_{c \in B} |b(c)|

    with :math:`b` from :func:`per_category_bias`; NaN for an empty bucket (K < 3).

    Returns
    -------
    dict
        ``{"head": float, "mid": float, "tail": float}``
    """
    pred, truth = check_pred_truth(pred, truth)
    buckets.check(pred.shape[1])
    return _bucket_bias(_bias(pred, truth), buckets)


def _bucket_bias(bias: np.ndarray, buckets: Buckets) -> dict[str, float]:
    """Mean |bias| per bucket from a per-category bias vector (NaN for an empty bucket)."""
    abs_bias = np.abs(bias)
    return {name: float(abs_bias[list(cols)].mean()) if cols else float("nan") for name, cols in buckets.items()}


def head_bias(pred, truth, buckets: Buckets) -> float:
    r"""Mean over head categories of :math:`|\text{mean predicted} - \text{mean true}|`.

    .. math:: \mathrm{bias}(H) = \frac{1}{|H|} \sum_{c \in H} |b(c)|

    See :func:`bucket_bias`; NaN when the head is empty (K < 3).
    """
    return bucket_bias(pred, truth, buckets)["head"]
