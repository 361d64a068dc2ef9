r"""Recommendation lists as category distributions, so any recommender's top-k list is evaluated like a method.

A list file has one row per recommended item: ``user_id, item_id, rank`` (rank 1 = first; ranks of a user
need not be contiguous but may not repeat). An items file gives each item's categories: ``item_id,
categories`` with labels joined by ``|`` (empty: the item has none). User u's list :math:`L_u` becomes

.. math:: p_u(c) = \frac{\sum_{i \in L_u} w(r_i)\, a_i(c)}{\sum_{i \in L_u} w(r_i)},
          \qquad a_i(c) = \frac{[c \in C_i]}{|C_i|},

so each item spreads one unit over its categories :math:`C_i` (the truth's ``mass='split'`` rule of
:mod:`spectra_eval.data.splits`), weighted by its position: ``uniform`` :math:`w(r) = 1` or ``dcg``
:math:`w(r) = 1/\log_2(r + 1)` (the NDCG discount). Items without a category carry no mass and are left out of
both sums; a user whose list has no categorised item is an error.

The resulting :class:`~spectra_eval.io.DistributionTable` goes through ``spectra evaluate`` like any method
(every catalogue metric).

Taste distance (``taste_js``)
-----------------------------
AMP-CF (Barkan, Fuchs, Caciularu and Koenigstein, "Explainable Recommendations via Attentive Multi-Persona
Collaborative Filtering", RecSys 2020, pp. 468-473, arXiv:2010.07042) proposed the *Taste Distribution
Distance*: how far a recommendation list is from the distribution of "tastes" in the user's historical items,
i.e. whether the list proportionally covers the user's range of interests. The sources available when this
was written (the abstract and secondary summaries) do not give its exact formula, so this library does not
claim to reproduce it. It defines its own measure of that question, reported as ``taste_js``:

.. math:: \mathrm{taste\_js}_u = JS(p_u, h_u) \;\text{(bits)},

the Jensen-Shannon divergence between a method's category distribution :math:`p_u` (e.g. a list's, above) and
the user's history distribution :math:`h_u` (a distribution table given as ``spectra evaluate --history``, such
as the exported ``history-uhf.csv``: the category mix of the user's history window). 0 means the list mirrors
the user's historical taste mix exactly, 1 bit that they share no category. It is a per-user catalogue metric
(mean with the paired bootstrap CI), computed for every method only when a history table is given.
"""
from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval.metrics.ranking import dcg_discount
from spectra_eval.io import USER_COL, DistributionTable, read_frame, require_columns, text_ids
from spectra_eval.validation import SpectraInputError

log = logging.getLogger(__name__)

ITEM_COL, RANK_COL, CATEGORIES_COL = "item_id", "rank", "categories"
CATEGORY_SEP = "|"
WEIGHTS = ("uniform", "dcg")


def position_weights(ranks, scheme: str) -> np.ndarray:
    r"""Weight of each rank: 1 (``uniform``) or :math:`1/\log_2(r+1)` (``dcg``)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if scheme == "uniform":
        return np.ones_like(ranks)
    if scheme == "dcg":
        return dcg_discount(ranks)
    raise SpectraInputError(f"list weights must be one of {', '.join(WEIGHTS)}, got {scheme!r}")


def read_items(path: str | os.PathLike, categories: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``item_id -> categories`` from an items file; every label must be one of ``categories``.

    Errors name the file, the row, the item and the column (missing column, empty or repeated item id, a
    label that is not a category).
    """
    return items_from_frame(read_frame(path, string_columns=(ITEM_COL, CATEGORIES_COL)), categories, str(path))


def items_from_frame(frame: pd.DataFrame, categories: Sequence[str],
                     source: str = "<memory>") -> dict[str, tuple[str, ...]]:
    """:func:`read_items` of a table already read (``item_id, categories``); errors name ``source``."""
    require_columns(frame, (ITEM_COL, CATEGORIES_COL), source)
    known = set(categories)
    items: dict[str, tuple[str, ...]] = {}
    for row, (item, text) in enumerate(zip(frame[ITEM_COL], frame[CATEGORIES_COL].fillna("")), start=1):
        if item is None or str(item).strip() == "":
            raise SpectraInputError(f"{source}: row {row}, column {ITEM_COL!r}: empty item id")
        item = str(item).strip()
        if item in items:
            raise SpectraInputError(f"{source}: item {item!r} (row {row}) appears more than once")
        labels = tuple(dict.fromkeys(c.strip() for c in str(text).split(CATEGORY_SEP) if c.strip()))
        unknown = [c for c in labels if c not in known]
        if unknown:
            raise SpectraInputError(f"{source}: item {item!r} (row {row}), column {CATEGORIES_COL!r}: "
                                    f"{unknown[0]!r} is not a category")
        items[item] = labels
    if not items:
        raise SpectraInputError(f"{source}: the table has no rows")
    return items


def item_categories_frame(items: pd.DataFrame) -> pd.DataFrame:
    """``item_id, categories`` (labels joined by ``|``) of an item table (``item_id``, ``categories`` tuples): the
    items file ``spectra prepare`` writes and :func:`read_items` (``spectra fuse --items``, ``spectra evaluate
    --items``) reads."""
    return pd.DataFrame({ITEM_COL: items["item_id"].astype(str).to_numpy(),
                         CATEGORIES_COL: items["categories"].map(CATEGORY_SEP.join).to_numpy()})


def _positive_ranks(values: pd.Series, source: str, users: np.ndarray) -> np.ndarray:
    ranks = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(ranks) | (ranks < 1) | (ranks != np.round(ranks))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SpectraInputError(f"{source}: row {i + 1} (user {users[i]!r}), column {RANK_COL!r}: "
                                f"{values.iloc[i]} is not a positive integer rank")
    return ranks.astype(np.int64)


def list_distributions(frame: pd.DataFrame, items: Mapping[str, tuple[str, ...]], categories: Sequence[str],
                       weights: str = "uniform", *, source: str = "<memory>",
                       items_source: str = "the items file") -> DistributionTable:
    """The category distribution of every user's list (module docstring for the formula).

    ``frame`` has the columns ``user_id, item_id, rank``; users come out in order of first appearance.
    """
    from spectra_eval.data.splits import item_mass

    require_columns(frame, (USER_COL, ITEM_COL, RANK_COL), source)
    if len(frame) == 0:
        raise SpectraInputError(f"{source}: the list has no rows")
    position_weights([1], weights)  # an unknown scheme fails before any row is read
    users = text_ids(frame, USER_COL, source, "value").str.strip().to_numpy(dtype=object)
    item_ids = text_ids(frame, ITEM_COL, source, "value").str.strip().to_numpy(dtype=object)
    ranks = _positive_ranks(frame[RANK_COL], source, users)
    unknown = np.flatnonzero([i not in items for i in item_ids])
    if unknown.size:
        i = int(unknown[0])
        raise SpectraInputError(f"{source}: row {i + 1} (user {users[i]!r}), column {ITEM_COL!r}: item "
                                f"{item_ids[i]!r} is not in {items_source}")
    for cols, what in (([USER_COL, RANK_COL], "rank"), ([USER_COL, ITEM_COL], "item")):
        dup = pd.DataFrame({USER_COL: users, ITEM_COL: item_ids, RANK_COL: ranks}).duplicated(cols).to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            value = int(ranks[i]) if what == "rank" else repr(item_ids[i])
            raise SpectraInputError(f"{source}: row {i + 1} (user {users[i]!r}), column {cols[1]!r}: {what} "
                                    f"{value} appears twice in the user's list")
    mass = item_mass([items[i] for i in item_ids], categories, "split") * position_weights(ranks, weights)[:, None]
    has_mass = mass.sum(axis=1) > 0
    if (~has_mass).any():
        log.info("%s: %d listed items have no category and carry no mass", source, int((~has_mass).sum()))
    order = pd.unique(pd.Series(users))
    codes = pd.Index(order).get_indexer(users)
    totals = np.zeros((len(order), len(categories)))
    np.add.at(totals, codes, mass)
    sums = totals.sum(axis=1, keepdims=True)
    empty = np.flatnonzero(sums[:, 0] <= 0)
    if empty.size:
        raise SpectraInputError(f"{source}: user {order[int(empty[0])]!r} has no listed item with a category")
    return DistributionTable(np.asarray(order, dtype=object), tuple(categories), totals / sums, source)


def read_list(path: str | os.PathLike, items: Mapping[str, tuple[str, ...]], categories: Sequence[str],
              weights: str = "uniform", *, items_source: str = "the items file") -> DistributionTable:
    """:func:`list_distributions` of a list file (CSV or Parquet)."""
    frame = read_frame(path, string_columns=(USER_COL, ITEM_COL))
    return list_distributions(frame, items, categories, weights, source=str(path), items_source=items_source)
