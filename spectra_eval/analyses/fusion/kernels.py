r"""Fusion kernels: per-user standardisation, the SPECTRA affinity and the ranks of the held-out items, on
checked inputs (:mod:`.inputs`), vectorised over users and processed in chunks of candidate rows.

Definitions: :mod:`spectra_eval.analyses.fusion`. The NDCG discount is :func:`spectra_eval.metrics.ranking._discounts`
(the library's one definition, 1/log2(rank + 1)).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from spectra_eval.analyses.fusion.inputs import K, Candidates, ItemCategories, _chunks, _segment_starts
from spectra_eval.metrics.ranking import _discounts

ZERO_STD_RTOL = 1e-12


def metric_names(k: int) -> tuple[str, str, str]:
    return f"ndcg@{k}", f"recall@{k}", "mrr"


class _Segments:
    """Contiguous per-user row segments; a reshape to (n, m) when every user has m rows, reduceat otherwise."""

    def __init__(self, counts: np.ndarray):
        self.counts = counts
        self.starts = _segment_starts(counts)
        self.width = int(counts[0]) if len(counts) and (counts == counts[0]).all() else None

    def sum(self, x: np.ndarray) -> np.ndarray:
        if self.width:
            return x.reshape(-1, self.width).sum(axis=1, dtype=np.float64 if x.dtype.kind == "f" else np.int64)
        return np.add.reduceat(x, self.starts, dtype=np.float64 if x.dtype.kind == "f" else np.int64)

    def max(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(-1, self.width).max(axis=1) if self.width else np.maximum.reduceat(x, self.starts)

    def spread(self, v: np.ndarray) -> np.ndarray:
        return np.repeat(v, self.width) if self.width else np.repeat(v, self.counts)

    def at_least(self, f: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Per user, #{rows j: f_j >= v_u} (0 where v_u is NaN)."""
        if self.width:
            return (f.reshape(-1, self.width) >= v[:, None]).sum(axis=1)
        return np.add.reduceat(f >= np.repeat(v, self.counts), self.starts, dtype=np.int64)

    def zscore(self, x: np.ndarray) -> np.ndarray:
        n = self.counts.astype(np.float64)
        centred = x - self.spread(self.sum(x) / n)
        std = np.sqrt(self.sum(centred * centred) / n)
        scale = self.max(np.abs(x))
        inv = np.divide(1.0, std, out=np.zeros_like(std), where=std > ZERO_STD_RTOL * scale)
        return centred * self.spread(inv)


def affinity(theta_pad: np.ndarray, user_of_row: np.ndarray, items: np.ndarray,
             item_categories: ItemCategories) -> np.ndarray:
    r"""a(u, i) = mean of :math:`\theta_u` over the item's categories, for candidate rows.

    ``theta_pad`` (n, K+1) holds the users' distributions with a zero column K appended (the padding index of
    :attr:`ItemCategories.columns`); row r is user ``user_of_row[r]``'s candidate ``items[r]``."""
    cols = item_categories.columns[items]  # (N, L): gathered cells only, never a dense (N, K) block
    total = theta_pad[user_of_row[:, None], cols].sum(axis=1)
    return total / item_categories.n_categories[items]


def rank_metrics(seg: _Segments, f: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k, Recall@k and MRR per user (3, n) of the scores ``f`` over rows grouped by ``seg``, with the
    pessimistic tie rule r_p = #{j: f_j >= f_p} (module docstring)."""
    n = len(seg.counts)
    pos_rows = np.flatnonzero(labels)
    n_pos = seg.sum(labels)
    pos_user = np.repeat(np.arange(n), n_pos)
    slot = np.arange(len(pos_rows)) - np.repeat(np.cumsum(n_pos) - n_pos, n_pos)  # j-th positive of its user
    discount = _discounts(k)
    dcg, hits, best = np.zeros(n), np.zeros(n), np.full(n, np.inf)
    for j in range(int(n_pos.max())):  # one pass per positive slot (a single pass in the usual protocol)
        v = np.full(n, np.nan)
        sel = slot == j
        v[pos_user[sel]] = f[pos_rows[sel]]
        has = ~np.isnan(v)
        rank = seg.at_least(f, v).astype(np.float64)
        top = has & (rank <= k)
        dcg[top] += discount[rank[top].astype(np.int64) - 1]
        hits += top
        best = np.where(has, np.minimum(best, rank), best)
    ideal = np.cumsum(discount)[np.minimum(n_pos, k) - 1]
    return np.stack([dcg / ideal, hits / n_pos, 1.0 / best])


def per_user_metrics(cand: Candidates, theta: np.ndarray, item_categories: ItemCategories, item_map: np.ndarray,
                     lambdas: Sequence[float], k: int, *, progress: bool = False) -> np.ndarray:
    """Per-user metrics, shape (n_lambdas, 3, n_users): NDCG@k, Recall@k, MRR (module docstring).

    ``theta`` (n_users, K) is aligned to ``cand.users``; ``item_map`` maps ``cand.item_ids`` to rows of
    ``item_categories``. Users are processed in chunks of about :data:`_CHUNK_ROWS` candidate rows.
    """
    out = np.empty((len(lambdas), 3, cand.n_users))
    theta_pad = np.hstack([theta, np.zeros((cand.n_users, 1))])
    for u0, u1, rows in tqdm(_chunks(cand.counts), desc="fuse", unit="chunk", leave=False, disable=not progress):
        seg = _Segments(cand.counts[u0:u1])
        a = affinity(theta_pad, np.repeat(np.arange(u0, u1), seg.counts), item_map[cand.items[rows]], item_categories)
        z_base, z_aff = seg.zscore(cand.scores[rows]), seg.zscore(a)
        for li, lam in enumerate(lambdas):
            out[li, :, u0:u1] = rank_metrics(seg, z_base + lam * z_aff if lam else z_base, cand.labels[rows], k)
    return out


def candidate_metrics(cand: Candidates, k: int = K) -> np.ndarray:
    """The base ranker's own NDCG@k, Recall@k and MRR per user (3, n): ranks of the raw scores (ties
    pessimistic; the same ranks as lambda = 0, since z-scoring within a user keeps the order)."""
    out = np.empty((3, cand.n_users))
    for u0, u1, rows in _chunks(cand.counts):
        out[:, u0:u1] = rank_metrics(_Segments(cand.counts[u0:u1]), cand.scores[rows], cand.labels[rows], k)
    return out
