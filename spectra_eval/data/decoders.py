r"""Turn direct-generation (DG) category lists into distributions.

A DG model emits a ranked list of category labels per user, not a distribution; comparing it with a
probe needs a list-to-distribution rule. All rules here put mass only on the listed categories (the
list is the support), which is what Lemma 1 of the paper bounds:

* ``"uniform"`` -- :math:`1/|L_u|` on each listed category (the paper's DG baseline, uniform-on-top-k).
* ``"rank"`` -- DCG-style weights :math:`w_r = 1/\log_2(r+1)` for the category at (1-based) rank r,
  normalised over the list, so earlier positions weigh more but every listed category keeps mass.
* ``"oracle"`` -- the truth restricted to the list and renormalised,
  :math:`\theta_u(c) / \sum_{c' \in L_u} \theta_u(c')` on :math:`L_u`: the vertex of Lemma 1 that
  attains the TV lower bound :math:`m_\tau(L_u)` with equality (the best any list-supported decoder can do).

List conventions, shared by every rule: labels must be among ``categories`` (an unknown label is an
error naming it and the user's row); a repeated label counts once, at its first position; an empty
list carries no information about the user, so it decodes to the uniform distribution over all K
categories (the maximum-entropy guess). For the oracle, a non-empty list on which the truth has no mass
decodes to uniform on the list (the renormalisation is 0/0 and the list is all that is known).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np
import pandas as pd

from spectra_eval.metrics.ranking import dcg_discount
from spectra_eval.validation import SpectraInputError, check_distributions

SCHEMES = ("uniform", "rank", "oracle")


@dataclass(frozen=True)
class _Entries:
    """Deduplicated list entries in list order: user row, category column, 0-based rank; list lengths."""

    users: np.ndarray
    cols: np.ndarray
    ranks: np.ndarray
    lengths: np.ndarray  # (n,) number of distinct listed categories per user
    n_categories: int


def _entries(lists, categories: Sequence) -> _Entries:
    if isinstance(lists, (str, bytes)):
        raise SpectraInputError("lists must be a sequence of per-user label sequences, got a string")
    lists = list(lists)
    for row, items in enumerate(lists):
        if isinstance(items, (str, bytes)) or not hasattr(items, "__len__"):
            raise SpectraInputError(f"user row {row}: expected a sequence of category labels, got {items!r}")
    index = pd.Index(list(categories))
    if len(index) == 0:
        raise SpectraInputError("categories is empty")
    if index.has_duplicates:
        raise SpectraInputError(f"category {index[index.duplicated()][0]!r} appears more than once in categories")
    sizes = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    users = np.repeat(np.arange(len(lists)), sizes)
    flat = pd.Index(list(chain.from_iterable(lists)), dtype=object)
    cols = index.get_indexer(flat) if len(flat) else np.empty(0, dtype=np.int64)
    unknown = np.flatnonzero(cols < 0)
    if len(unknown):
        i = int(unknown[0])
        raise SpectraInputError(f"user row {int(users[i])}: unknown category label {flat[i]!r} in the decoded list")
    key = users * len(index) + cols
    first = np.zeros(len(key), dtype=bool)
    first[np.unique(key, return_index=True)[1]] = True  # first occurrence of each (user, category)
    users, cols = users[first], cols[first].astype(np.int64)
    # rank within the deduplicated list: position minus the start of the user's block
    ranks = np.arange(len(users)) - np.searchsorted(users, users, side="left")
    lengths = np.bincount(users, minlength=len(lists))
    return _Entries(users, cols, ranks, lengths, len(index))


def _scatter(entries: _Entries, weights: np.ndarray) -> np.ndarray:
    """(n, K) distributions with ``weights`` normalised per user on the listed columns; empty -> uniform."""
    n, n_cat = len(entries.lengths), entries.n_categories
    out = np.zeros((n, n_cat))
    totals = np.bincount(entries.users, weights=weights, minlength=n)
    out[entries.users, entries.cols] = weights / totals[entries.users]
    out[entries.lengths == 0] = 1.0 / n_cat
    return out


def decode_uniform(lists, categories: Sequence) -> np.ndarray:
    r"""Uniform distribution on each user's decoded list (the paper's DG decoder).

    .. math:: q_u(c) = \mathbb 1[c \in L_u] / |L_u|, \qquad q_u = 1/K \text{ if } L_u = \emptyset

    Parameters
    ----------
    lists : sequence of sequences of labels, length n
        Each user's decoded categories (any length; duplicates count once).
    categories : sequence of labels, length K
        Column order of the output.

    Returns
    -------
    ndarray, shape (n, K)
    """
    entries = _entries(lists, categories)
    return _scatter(entries, np.ones(len(entries.users)))


def decode_rank_weighted(lists, categories: Sequence) -> np.ndarray:
    r"""DCG-discount weights on each user's decoded list, normalised.

    .. math:: q_u(L_u(r)) = \frac{1/\log_2(r+1)}{\sum_{s=1}^{|L_u|} 1/\log_2(s+1)}, \quad r = 1..|L_u|

    (the discount NDCG uses), 0 off the list; uniform over all K for an empty list.

    Parameters
    ----------
    lists : sequence of sequences of labels, length n
        Ranked lists, best first; a repeated label keeps its first rank and later ranks close up.
    categories : sequence of labels, length K

    Returns
    -------
    ndarray, shape (n, K)
    """
    entries = _entries(lists, categories)
    return _scatter(entries, dcg_discount(entries.ranks + 1))  # ranks are 0-based


def oracle_vertex(truth, lists, categories: Sequence | None = None) -> np.ndarray:
    r"""The truth renormalised on each user's decoded list (Lemma 1's equality vertex).

    .. math:: q_u(c) = \frac{\theta_u(c)\,\mathbb 1[c \in L_u]}{\sum_{c' \in L_u} \theta_u(c')}

    Its TV distance to the truth equals the tail mass :math:`m_\tau(L_u) = \sum_{c \notin L_u}\theta_u(c)`.
    A list with zero true mass decodes to uniform on the list; an empty list to uniform over all K.

    Parameters
    ----------
    truth : array_like, shape (n, K)
        True distributions, one row per list.
    lists : sequence of sequences of labels, length n
    categories : sequence of labels, length K, optional
        Labels of the truth's columns; by default the labels are the column indices 0..K-1.

    Returns
    -------
    ndarray, shape (n, K)
    """
    truth = check_distributions(truth, source="truth")
    if categories is None:
        categories = range(truth.shape[1])
    if len(categories) != truth.shape[1]:
        raise SpectraInputError(f"truth has {truth.shape[1]} columns but {len(categories)} categories were given")
    entries = _entries(lists, categories)
    if len(entries.lengths) != truth.shape[0]:
        raise SpectraInputError(f"truth has {truth.shape[0]} rows but there are {len(entries.lengths)} lists")
    weights = truth[entries.users, entries.cols]
    on_list = np.bincount(entries.users, weights=weights, minlength=truth.shape[0])
    no_mass = on_list[entries.users] == 0
    return _scatter(entries, np.where(no_mass, 1.0, weights))


def decode_lists(lists, categories: Sequence, scheme: str = "uniform", truth=None) -> np.ndarray:
    """Decode lists with the named ``scheme`` ('uniform', 'rank' or 'oracle'; the oracle needs ``truth``).

    See :func:`decode_uniform`, :func:`decode_rank_weighted` and :func:`oracle_vertex`.

    Returns
    -------
    ndarray, shape (n, K)
    """
    if scheme == "uniform":
        return decode_uniform(lists, categories)
    if scheme == "rank":
        return decode_rank_weighted(lists, categories)
    if scheme == "oracle":
        if truth is None:
            raise SpectraInputError("the 'oracle' scheme needs the truth distributions (truth=...)")
        return oracle_vertex(truth, lists, categories)
    raise SpectraInputError(f"unknown decoding scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
