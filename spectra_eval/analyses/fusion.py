r"""Downstream fusion (paper Appendix E, Table 13): SPECTRA's category distribution as a prior on a base ranker.

A base recommender (SASRec, GRU4Rec, anything) scores every candidate item of a user; SPECTRA gives the user a
distribution :math:`\theta_u` over K categories. The fused score re-ranks the candidates and the held-out items'
ranks give NDCG@k, Recall@k and MRR per user, for every fusion weight :math:`\lambda`.

Definitions (exact; the tests recompute each with a per-user loop)
-------------------------------------------------------------------
Candidates of user u: the rows of the candidates file with that ``user_id``; ``label`` 1 marks a held-out
(positive) item, 0 a sampled negative. The paper's protocol has exactly one positive per user.

* Per-user standardisation over u's candidates: :math:`z(x)_i = (x_i - \bar x_u) / \sigma_u`, with the
  population standard deviation :math:`\sigma_u = \sqrt{\tfrac1{m_u}\sum_j (x_j - \bar x_u)^2}`; z = 0 for
  every candidate when :math:`\sigma_u = 0` (to rounding: :math:`\sigma_u \le 10^{-12} \max_j |x_j|`, so a
  column that is constant up to floating-point noise is not blown up into a ranking).
* SPECTRA affinity: :math:`a(u, i) = \frac1{|C_i|}\sum_{c \in C_i} \theta_u(c)`, the mean of the user's
  distribution over the item's categories :math:`C_i` (items file: long ``item_id, category`` rows, or
  ``item_id, categories`` joined by ``|``).
* Fused score: :math:`f_\lambda(u, i) = z(\mathrm{score})_{u,i} + \lambda\, z(a)_{u,i}`; :math:`\lambda = 0`
  is the base ranker alone.
* Rank of a positive p (pessimistic ties):
  :math:`r_p = 1 + \#\{j: f_j > f_p\} + \#\{j \ne p: f_j = f_p\} = \#\{j: f_j \ge f_p\}` over u's candidates
  (other positives included), computed exactly on the fused float64 scores.
* NDCG@k with binary gain: :math:`\mathrm{DCG} = \sum_{p: r_p \le k} 1/\log_2(r_p + 1)`, divided by the ideal
  :math:`\sum_{r=1}^{\min(P_u, k)} 1/\log_2(r + 1)` (:math:`P_u` positives).
* Recall@k: :math:`\#\{p: r_p \le k\} / P_u`. MRR: :math:`1 / \min_p r_p`.
* Popularity slices: the items of the popularity file, sorted by training count (descending, ties by
  ``item_id`` in text order), are cut like category buckets: head = the first :math:`\lfloor n/3 \rfloor`,
  mid = the next :math:`\lfloor (n - head)/2 \rfloor`, tail = the rest. A user belongs to the slice of its
  held-out item; a user whose positives fall in different slices is left out of the slice rows (counted in
  ``population.slice_users.mixed``) but stays in ``all``.

Statistics
----------
Means over users with percentile bootstrap intervals: for ``all``, one draw
``stats.bootstrap_indices(n, B, seed)`` shared by every lambda and metric (so differences between lambdas are
resampled in pairs); for a slice, users are resampled within the slice from ``stats.derived_rng(seed, 3, s)``
(s = 0, 1, 2 for head, mid, tail; fairness's quartiles and strata use keys 1 and 2), one draw shared by
every lambda and metric of that slice. Each lambda > 0 is
compared with lambda = 0 on per-user NDCG@k: mean difference with its paired bootstrap interval (same draw), the
two-sided Wilcoxon signed-rank test (``zero_method='wilcox'``) and Holm's correction across the lambdas > 0,
separately in each slice. ``best_lambda`` maximises mean NDCG@k over all users (ties: the smaller lambda), on the
``--select-on`` candidates (a validation split) when given, otherwise on the test candidates themselves, and
the output says which.

Population: every number is about the users of the candidates file (its held-out items), not about the users
of the distribution table; ``population`` in the output says how many and how their candidate sets look.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from spectra_eval import stats
from spectra_eval.stats import MeanCI
from spectra_eval.stats import _f
from spectra_eval.io import (USER_COL, DistributionTable, check_schema, check_unique, json_errors, read_frame,
                             require_columns, text_ids)
from spectra_eval.analyses.lists import CATEGORIES_COL, ITEM_COL, items_from_frame
from spectra_eval.stats import PairedEffect
from spectra_eval.validation import SpectraInputError, check_positive_int

log = logging.getLogger(__name__)

SCHEMA = "spectra.fusion/1"
CANDIDATE_COLUMNS = (USER_COL, ITEM_COL, "score", "label")
LAMBDAS = ("0", "0.05", "0.1", "0.5", "1", "2")
K = 10
SLICES = ("all", "head", "mid", "tail")
POPULARITY_SLICES = SLICES[1:]
ZERO_STD_RTOL = 1e-12
SELECTION_RULE = "highest mean ndcg@{k} over all users (ties: the smaller lambda)"
_SLICE_KEY = 3  # derived_rng key of the within-slice draws (fairness uses 1 and 2)
_CHUNK_ROWS = 2_000_000  # candidate rows per step: bounds the temporaries to a few x 16 MB


def metric_names(k: int) -> tuple[str, str, str]:
    return f"ndcg@{k}", f"recall@{k}", "mrr"


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Candidates:
    """A candidates table, rows grouped by user.

    ``users[u]`` owns rows ``starts[u] : starts[u] + counts[u]`` of ``items`` (indices into ``item_ids``),
    ``scores`` and ``labels``. Build it with :func:`read_candidates` or :meth:`from_arrays` (both check it).
    """

    users: np.ndarray  # (n,) object array of str
    counts: np.ndarray  # (n,) int64
    item_ids: np.ndarray  # (n_items,) object array of str
    items: np.ndarray  # (N,) int32 index into item_ids
    scores: np.ndarray  # (N,) float64
    labels: np.ndarray  # (N,) bool
    source: str = "<memory>"

    @property
    def n_users(self) -> int:
        return len(self.users)

    @cached_property
    def starts(self) -> np.ndarray:
        return _segment_starts(self.counts)

    @classmethod
    def from_arrays(cls, user_codes, users, item_codes, item_ids, scores, labels,
                    source: str = "<memory>") -> "Candidates":
        """Group rows by user (stable) and check: finite scores, 0/1 labels, no duplicate (user, item), at
        least one positive per user. ``user_codes`` index ``users``; ``item_codes`` index ``item_ids``."""
        user_codes = np.asarray(user_codes)  # any integer type: no widened copy of a large table
        users = np.asarray(users, dtype=object)
        item_ids = np.asarray(item_ids, dtype=object)
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels)
        if len(user_codes) == 0:
            raise SpectraInputError(f"{source}: the table has no rows")
        if np.any(user_codes[1:] < user_codes[:-1]):  # group users' rows together, keeping their file order
            order = np.argsort(user_codes, kind="stable")
            user_codes, item_codes = user_codes[order], np.asarray(item_codes)[order]
            scores, labels = scores[order], labels[order]
        else:
            order = None
        item_codes = np.asarray(item_codes, dtype=np.int32)

        def where(row: int) -> str:
            file_row = int(order[row]) if order is not None else row
            return f"{source}: user {users[user_codes[row]]!r}, item {item_ids[item_codes[row]]!r} (row {file_row + 1})"

        bad = ~np.isfinite(scores)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise SpectraInputError(f"{where(r)}, column 'score': value {scores[r]} is not a finite number")
        if labels.dtype != bool:
            lab = np.asarray(labels, dtype=np.float64)
            bad = ~np.isin(lab, (0.0, 1.0))
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise SpectraInputError(f"{where(r)}, column 'label': value {labels[r]!r} is not 0 or 1")
            labels = lab == 1.0
        counts = np.bincount(user_codes, minlength=len(users)).astype(np.int64)
        if (counts == 0).any():  # codes must index users that own rows
            raise ValueError("every user must own at least one row")
        for u0, u1, rows in _chunks(counts):  # a duplicate is within one user: sort (user, item) keys by chunk
            r0, r1 = rows.start, rows.stop
            key = (user_codes[r0:r1].astype(np.int64) - u0) * len(item_ids) + item_codes[r0:r1]
            srt = np.sort(key)
            dup = np.flatnonzero(srt[1:] == srt[:-1])
            if dup.size:
                r = r0 + int(np.flatnonzero(key == srt[dup[0]])[1])
                raise SpectraInputError(f"{where(r)}: the candidate appears more than once for this user")
        n_pos = np.bincount(user_codes[labels], minlength=len(users))
        if (n_pos == 0).any():
            u = int(np.flatnonzero(n_pos == 0)[0])
            raise SpectraInputError(f"{source}: user {users[u]!r} has no positive candidate (label 1)")
        return cls(users, counts, item_ids, item_codes, scores, labels, source)

    def positives_per_user(self) -> np.ndarray:
        return np.add.reduceat(self.labels.astype(np.int64), self.starts)


def _numbers(frame: pd.DataFrame, column: str, source: str, where) -> np.ndarray:
    """``frame[column]`` as float64; ``where(row)`` names the row of the first cell that is not a number."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SpectraInputError(f"{source}: {where(row)}, column {column!r}: value {frame[column].iloc[row]!r} "
                                "is not a number")
    return values.to_numpy(dtype=np.float64)


def read_candidates(path) -> Candidates:
    """Read and check a candidates file (CSV or Parquet): ``user_id, item_id, score, label``."""
    source = str(path)
    frame = read_frame(path, string_columns=(USER_COL, ITEM_COL))
    require_columns(frame, CANDIDATE_COLUMNS, source)
    if len(frame) == 0:
        raise SpectraInputError(f"{source}: the table has no rows")
    users = text_ids(frame, USER_COL, source)
    items = text_ids(frame, ITEM_COL, source)

    def where(row: int) -> str:
        return f"user {users.iloc[row]!r}, item {items.iloc[row]!r} (row {row + 1})"

    label_raw = frame["label"]
    labels = label_raw.to_numpy() if pd.api.types.is_bool_dtype(label_raw) else _numbers(frame, "label", source, where)
    scores = _numbers(frame, "score", source, where)
    user_codes, user_ids = pd.factorize(users, sort=False)
    item_codes, item_ids = pd.factorize(items, sort=False)
    return Candidates.from_arrays(user_codes, np.asarray(user_ids, dtype=object), item_codes,
                                  np.asarray(item_ids, dtype=object), scores, labels, source)


@dataclass(frozen=True)
class ItemCategories:
    """Each item's categories as column indices of the distribution table (padded with K), for the affinity."""

    item_ids: np.ndarray  # (n_items,) object array of str
    columns: np.ndarray  # (n_items, L) int, K = padding
    n_categories: np.ndarray  # (n_items,) int, >= 1
    source: str = "<memory>"

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, categories: Sequence[str], source: str = "<memory>") -> "ItemCategories":
        """``frame``: ``item_id, category`` in long format (one row per item and category)."""
        require_columns(frame, (ITEM_COL, "category"), source)
        items = text_ids(frame, ITEM_COL, source)
        labels = text_ids(frame, "category", source)
        col = pd.Index(list(categories)).get_indexer(labels)
        if (col < 0).any():
            r = int(np.flatnonzero(col < 0)[0])
            raise SpectraInputError(f"{source}: item {items.iloc[r]!r} (row {r + 1}): category {labels.iloc[r]!r} is "
                                    "not a column of the distribution table")
        dup = pd.DataFrame({"i": items.to_numpy(), "c": col}).duplicated().to_numpy()
        if dup.any():
            r = int(np.flatnonzero(dup)[0])
            raise SpectraInputError(f"{source}: item {items.iloc[r]!r} (row {r + 1}) lists category "
                                    f"{labels.iloc[r]!r} more than once")
        codes, item_ids = pd.factorize(items, sort=False)
        n_cat = np.bincount(codes, minlength=len(item_ids))
        order = np.argsort(codes, kind="stable")
        slot = np.arange(len(codes)) - np.repeat(_segment_starts(n_cat), n_cat)
        columns = np.full((len(item_ids), max(int(n_cat.max()), 1)), len(categories), dtype=np.int64)
        columns[codes[order], slot] = col[order]
        return cls(np.asarray(item_ids, dtype=object), columns, n_cat, source)


def read_item_categories(path, categories: Sequence[str]) -> ItemCategories:
    """An items file in either layout: long (``item_id, category``, one row per item and category) or one row
    per item (``item_id, categories``, labels joined by ``|``, as ``spectra train --export`` writes items.csv
    and :func:`spectra_eval.analyses.lists.read_items` reads it)."""
    frame = read_frame(path, string_columns=(ITEM_COL, "category", CATEGORIES_COL))
    if "category" not in frame.columns and CATEGORIES_COL in frame.columns:
        joined = items_from_frame(frame, categories, str(path))
        frame = pd.DataFrame([(i, c) for i, labels in joined.items() for c in labels], columns=[ITEM_COL, "category"])
    return ItemCategories.from_frame(frame, categories, str(path))


def read_popularity(path) -> pd.Series:
    """``item_id, count`` (training interactions) as a Series indexed by item id; counts >= 0, ids unique."""
    source = str(path)
    frame = read_frame(path, string_columns=(ITEM_COL,))
    return popularity_series(frame, source)


def popularity_series(frame: pd.DataFrame, source: str = "<memory>") -> pd.Series:
    require_columns(frame, (ITEM_COL, "count"), source)
    if len(frame) == 0:
        raise SpectraInputError(f"{source}: the table has no rows")
    items = text_ids(frame, ITEM_COL, source)
    counts = _numbers(frame, "count", source, lambda row: f"item {items.iloc[row]!r} (row {row + 1})")
    bad = (counts < 0) | ~np.isfinite(counts)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise SpectraInputError(f"{source}: item {items.iloc[r]!r} (row {r + 1}), column 'count': "
                                f"{counts[r]:g} is not a count >= 0")
    check_unique(items, source, "item")
    return pd.Series(counts, index=pd.Index(items.to_numpy(dtype=object), name=ITEM_COL), name="count")


def popularity_slices(popularity: pd.Series) -> pd.Series:
    """Each item's slice ('head', 'mid', 'tail'): items sorted by count descending, ties by item id (text),
    cut into head = floor(n/3), mid = floor((n - head)/2), tail = the rest."""
    ids = popularity.index.to_numpy(dtype=object).astype(str)
    order = np.lexsort((ids, -popularity.to_numpy(dtype=np.float64)))
    n = len(ids)
    head = n // 3
    mid = (n - head) // 2
    labels = np.empty(n, dtype=object)
    labels[order[:head]], labels[order[head:head + mid]], labels[order[head + mid:]] = "head", "mid", "tail"
    return pd.Series(labels, index=popularity.index, name="slice")


def parse_lambdas(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"0,0.05,0.1"`` -> ``("0", "0.05", "0.1")`` (kept as written); each a finite number, no value twice,
    and 0 (the base ranker alone, the reference of every comparison) among them."""
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text)]
    seen: dict[float, str] = {}
    for p in parts:
        try:
            value = float(p)
        except ValueError:
            raise SpectraInputError(f"--lambdas: {p!r} is not a number") from None
        if not math.isfinite(value):
            raise SpectraInputError(f"--lambdas: {p!r} is not a finite number")
        if value in seen:
            raise SpectraInputError(f"--lambdas: {p!r} repeats {seen[value]!r}")
        seen[value] = p
    if 0.0 not in seen:
        raise SpectraInputError("--lambdas must include 0 (the base ranker alone, the reference of every comparison)")
    return tuple(parts)


# ------------------------------------------------------------------ per-user metrics (vectorised kernel)


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
    discount = 1.0 / np.log2(np.arange(2, k + 2))
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


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    """First row of each of the contiguous segments of ``counts`` rows (int64)."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _chunks(counts: np.ndarray) -> list[tuple[int, int, slice]]:
    """User ranges [u0, u1) of about :data:`_CHUNK_ROWS` candidate rows each, with the rows they own."""
    ends = np.cumsum(counts)
    bounds = np.searchsorted(ends, np.arange(_CHUNK_ROWS, int(ends[-1]), _CHUNK_ROWS), side="left") + 1
    edges = np.unique(np.concatenate([[0], bounds, [len(counts)]])).tolist()
    row_edges = np.concatenate([[0], ends])  # users [u0, u1) own rows row_edges[u0] : row_edges[u1]
    return [(u0, u1, slice(int(row_edges[u0]), int(row_edges[u1]))) for u0, u1 in zip(edges[:-1], edges[1:])]


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


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class SliceResult:
    """Means of the per-user metrics over one slice's users, with bootstrap intervals, and its user count."""

    metrics: Mapping[str, MeanCI]
    n: int

    def to_dict(self) -> dict:
        return {k: v.to_dict() for k, v in self.metrics.items()} | {"n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping) -> "SliceResult":
        return cls({k: MeanCI.from_dict(v) for k, v in d.items() if isinstance(v, Mapping)}, int(d["n"]))


@dataclass(frozen=True)
class LambdaComparison:
    """Per-user NDCG@k at lambda minus at lambda = 0 over a slice: :class:`PairedEffect` plus Holm's p."""

    effect: PairedEffect
    p_holm: float

    def to_dict(self) -> dict:
        return self.effect.to_dict("delta") | {"p_holm": self.p_holm}

    @classmethod
    def from_dict(cls, d: Mapping) -> "LambdaComparison":
        return cls(PairedEffect.from_dict(d, "delta"), _f(d.get("p_holm")))


@dataclass(frozen=True)
class Population:
    """Who the numbers are about: the users of the candidates file, with their held-out items."""

    n_users: int
    n_candidates: int
    candidates_per_user: tuple[int, int]
    positives_per_user: tuple[int, int]
    slice_users: Mapping[str, int]
    candidates_file: str = "?"

    @property
    def description(self) -> str:
        lo, hi = self.positives_per_user
        held = "one held-out item each" if lo == hi == 1 else f"{lo}-{hi} held-out items each"
        return f"the {self.n_users:,} users of the candidates file {self.candidates_file}, {held}"

    @property
    def negatives(self) -> int | None:
        """Sampled negatives per user when every user has the same candidate and positive counts."""
        (c0, c1), (p0, p1) = self.candidates_per_user, self.positives_per_user
        return c0 - p0 if c0 == c1 and p0 == p1 else None

    def to_dict(self) -> dict:
        return {"description": self.description, "n_users": self.n_users, "n_candidates": self.n_candidates,
                "candidates_per_user": {"min": self.candidates_per_user[0], "max": self.candidates_per_user[1]},
                "positives_per_user": {"min": self.positives_per_user[0], "max": self.positives_per_user[1]},
                "slice_users": dict(self.slice_users), "candidates_file": self.candidates_file}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Population":
        c, p = d["candidates_per_user"], d["positives_per_user"]
        return cls(int(d["n_users"]), int(d["n_candidates"]), (int(c["min"]), int(c["max"])),
                   (int(p["min"]), int(p["max"])), {k: int(v) for k, v in d["slice_users"].items()},
                   d.get("candidates_file", "?"))


@dataclass(frozen=True)
class Selection:
    """How ``best_lambda`` was chosen: on ``"validation"`` (``--select-on`` file) or on ``"test"`` data."""

    best_lambda: str
    chosen_on: str
    file: str
    criterion: str
    ndcg: Mapping[str, float]  # mean NDCG@k over all users of the selection file, per lambda

    def to_dict(self) -> dict:
        note = None if self.chosen_on == "validation" else (
            "chosen on the test candidates themselves: the best-lambda row is optimistic")
        return {"chosen_on": self.chosen_on, "file": self.file, "criterion": self.criterion,
                "mean_ndcg": dict(self.ndcg), "note": note}

    @classmethod
    def from_dict(cls, best: str, d: Mapping) -> "Selection":
        return cls(str(best), d["chosen_on"], d.get("file", "?"), d.get("criterion", ""),
                   {k: _f(v) for k, v in (d.get("mean_ndcg") or {}).items()})


@dataclass(frozen=True)
class FusionSettings:
    candidates: str
    spectra: str
    items: str
    popularity: str
    lambdas: tuple[str, ...] = LAMBDAS
    k: int = K
    bootstrap: int = stats.N_RESAMPLES
    seed: int | None = stats.SEED
    confidence: float = stats.CONFIDENCE
    select_on: str | None = None

    @property
    def reference(self) -> str:
        """The lambda = 0 entry as written (the base ranker alone)."""
        return next(lam for lam in self.lambdas if float(lam) == 0.0)

    def to_dict(self) -> dict:
        return {"candidates": self.candidates, "spectra": self.spectra, "items": self.items,
                "popularity": self.popularity, "select_on": self.select_on, "lambdas": list(self.lambdas),
                "reference_lambda": self.reference, "k": self.k, "score": "z(base score) + lambda * z(SPECTRA affinity)",
                "bootstrap": self.bootstrap, "seed": self.seed, "confidence": self.confidence,
                "test": stats.TEST_DESCRIPTION, "zero_method": stats.ZERO_METHOD,
                "correction": f"{stats.CORRECTION} across the lambdas > 0, per slice",
                "slices": "items by training count, thirds like category buckets; a user's slice is its "
                          "held-out item's"}

    @classmethod
    def from_dict(cls, d: Mapping) -> "FusionSettings":
        return cls(d.get("candidates", "?"), d.get("spectra", "?"), d.get("items", "?"), d.get("popularity", "?"),
                   tuple(str(x) for x in d.get("lambdas", LAMBDAS)), int(d.get("k", K)),
                   int(d.get("bootstrap", stats.N_RESAMPLES)), d.get("seed"),
                   float(d.get("confidence", stats.CONFIDENCE)), d.get("select_on"))


@dataclass(frozen=True)
class FusionResult:
    """One fusion run (one base ranker x one candidate set). ``to_dict`` is the ``spectra.fusion/1`` JSON.

    ``results[LAMBDA][SLICE]`` and ``comparisons[LAMBDA][SLICE]`` (lambdas > 0 only) are keyed by the lambda as
    written in ``--lambdas``; ``per_user`` (not in the JSON) holds the per-user metric arrays.
    """

    name: str
    backbone: str
    settings: FusionSettings
    population: Population
    slice_items: Mapping[str, int]
    results: Mapping[str, Mapping[str, SliceResult]]
    comparisons: Mapping[str, Mapping[str, LambdaComparison]]
    selection: Selection
    per_user: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    source: str = field(default="<memory>", compare=False, repr=False)

    @property
    def best_lambda(self) -> str:
        return self.selection.best_lambda

    @property
    def ndcg_key(self) -> str:
        return f"ndcg@{self.settings.k}"

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "name": self.name, "backbone": self.backbone,
                "population": self.population.to_dict(), "settings": self.settings.to_dict(),
                "slice_items": dict(self.slice_items),
                "results": {lam: {s: r.to_dict() for s, r in by.items()} for lam, by in self.results.items()},
                "comparisons": {lam: {s: c.to_dict() for s, c in by.items()} for lam, by in self.comparisons.items()},
                "best_lambda": self.best_lambda, "selection": self.selection.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "fusion.json") -> "FusionResult":
        check_schema(d, SCHEMA, source)
        with json_errors(source):
            settings = FusionSettings.from_dict(d.get("settings") or {})
            results = {str(lam): {s: SliceResult.from_dict(r) for s, r in by.items()} for lam, by in d["results"].items()}
            comparisons = {str(lam): {s: LambdaComparison.from_dict(c) for s, c in by.items()}
                           for lam, by in (d.get("comparisons") or {}).items()}
            best = str(d["best_lambda"])
            if best not in results:
                raise SpectraInputError(f"{source}: best_lambda {best!r} is not among the results' lambdas")
            return cls(str(d.get("name", "fusion")), str(d.get("backbone", d.get("name", "base"))), settings,
                       Population.from_dict(d["population"]), {k: int(v) for k, v in (d.get("slice_items") or {}).items()},
                       results, comparisons, Selection.from_dict(best, d.get("selection") or {"chosen_on": "?"}),
                       source=source)


@dataclass(frozen=True)
class FusionRuns:
    """Several fusion runs (e.g. SASRec and GRU4Rec x 1+99 and 1+999 candidates) for one report, by name.

    ``spectra report DIR`` reads ``DIR/fusion.json`` and every ``DIR/fusion-NAME.json`` into one of these
    (ordered by file name); a single run's document or ``{"runs": {name: document}}`` both load.
    """

    runs: Mapping[str, FusionResult]

    def to_dict(self) -> dict:
        return {"runs": {name: run.to_dict() for name, run in self.runs.items()}}

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "fusion.json") -> "FusionRuns":
        if isinstance(d, Mapping) and "schema" in d:
            run = FusionResult.from_dict(d, source)
            return cls({run.name: run})
        with json_errors(source):
            docs = d["runs"]
            runs = {}
            for key, doc in docs.items():
                run = FusionResult.from_dict(doc, f"{source}/{key}")
                runs[run.name if run.name not in runs else key] = run
        if not runs:
            raise SpectraInputError(f"{source}: no fusion runs")
        return cls(runs)


# ------------------------------------------------------------------ the evaluation


@dataclass(frozen=True)
class _Prepared:
    cand: Candidates
    theta: np.ndarray
    item_map: np.ndarray


def _prepare(cand: Candidates, spectra: DistributionTable, item_categories: ItemCategories,
             popularity: pd.Series | None) -> _Prepared:
    """Align the distribution table to the candidates' users and the items to the items file; name the first
    user or item that cannot be aligned."""
    pos = pd.Index(spectra.users).get_indexer(pd.Index(cand.users))
    if (pos < 0).any():
        user = cand.users[int(np.flatnonzero(pos < 0)[0])]
        raise SpectraInputError(f"{cand.source}: user {user!r} is not in the distribution table {spectra.source}")
    item_map = pd.Index(item_categories.item_ids).get_indexer(pd.Index(cand.item_ids))
    if (item_map < 0).any():
        item = cand.item_ids[int(np.flatnonzero(item_map < 0)[0])]
        raise SpectraInputError(f"{cand.source}: item {item!r} has no category in {item_categories.source}")
    if popularity is not None:
        missing = pd.Index(cand.item_ids).difference(popularity.index, sort=False)
        if len(missing):
            raise SpectraInputError(f"{cand.source}: item {missing[0]!r} is not in the popularity table "
                                    "(list every item, with count 0 when it has no training interaction)")
    return _Prepared(cand, spectra.probs[pos], item_map)


def _user_slices(cand: Candidates, slices: pd.Series, positives: np.ndarray) -> np.ndarray:
    """Each user's slice: its positives' slice, or 'mixed' when they fall in different slices.
    ``positives`` is ``cand.positives_per_user()``."""
    pos_items = cand.item_ids[cand.items[cand.labels]]
    pos_slice = slices.reindex(pd.Index(pos_items)).to_numpy(dtype=object)
    user_of = np.repeat(np.arange(cand.n_users), positives)
    frame = pd.DataFrame({"u": user_of, "s": pos_slice})
    first = frame.groupby("u", sort=True)["s"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else "mixed")
    return first.to_numpy(dtype=object)


def _summarise(values: np.ndarray, n_resamples: int, rng, confidence: float) -> tuple[np.ndarray, ...]:
    """Column means of ``values`` (n, m), their percentile interval bounds and the resampled means (B, m),
    from one draw ``stats.bootstrap_indices(n, n_resamples, rng)``, streamed by ``stats.bootstrap_draw`` (NaN
    when n = 0)."""
    if len(values) == 0:
        nan = np.full(values.shape[1], np.nan)
        return nan, nan, nan, np.full((n_resamples, values.shape[1]), np.nan)
    boot = stats.bootstrap_means(values, stats.bootstrap_draw(len(values), n_resamples, rng))
    low, high = stats.percentile_interval(boot, confidence)
    return values.mean(axis=0), low, high, boot


def _select(metrics: np.ndarray, lambdas: Sequence[str]) -> tuple[str, dict[str, float]]:
    means = {lam: float(m) for lam, m in zip(lambdas, metrics[:, 0, :].mean(axis=1))}
    order = sorted(lambdas, key=lambda lam: (-means[lam], float(lam)))
    return order[0], means


def fuse(
    candidates: Candidates,
    spectra: DistributionTable,
    item_categories: ItemCategories,
    popularity: pd.Series,
    *,
    lambdas: Sequence[str] = LAMBDAS,
    k: int = K,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int | None = stats.SEED,
    confidence: float = stats.CONFIDENCE,
    select_on: Candidates | None = None,
    name: str = "fusion",
    backbone: str | None = None,
    sources: Mapping[str, str] | None = None,
    progress: bool = False,
) -> FusionResult:
    """Fuse, rank and score every lambda; see the module docstring for every definition.

    ``popularity`` is :func:`read_popularity`'s Series; ``select_on`` a validation candidates table to choose
    ``best_lambda`` on (same distribution table and items). ``sources`` names the input files in the settings.
    """
    lambdas = parse_lambdas(lambdas)
    k = check_positive_int(k, "k")
    n_resamples = check_positive_int(n_resamples, "bootstrap")
    values = [float(x) for x in lambdas]
    prep = _prepare(candidates, spectra, item_categories, popularity)
    metrics = per_user_metrics(prep.cand, prep.theta, item_categories, prep.item_map, values, k, progress=progress)
    names = metric_names(k)
    n, n_lam = candidates.n_users, len(lambdas)
    item_slices = popularity_slices(popularity)
    pos_counts = candidates.positives_per_user()
    user_slice = _user_slices(candidates, item_slices, pos_counts)

    flat = metrics.transpose(2, 0, 1).reshape(n, n_lam * 3)  # column li * 3 + m
    ref = values.index(0.0)  # the reference lambda, however it was written ("0", "0.0")
    others = [li for li in range(n_lam) if li != ref]
    diffs = np.column_stack([metrics[li, 0] - metrics[ref, 0] for li in others]) if others else np.empty((n, 0))

    results: dict[str, dict[str, SliceResult]] = {lam: {} for lam in lambdas}
    effects: dict[str, dict[str, PairedEffect]] = {lambdas[li]: {} for li in others}
    for s_i, s in enumerate(SLICES):
        # all users: the main draw (plain seed); a slice: its own draw, derived_rng(seed, _SLICE_KEY, s_i - 1).
        # Either draw is shared by every lambda and metric of that population, so differences are paired.
        rows = np.arange(n) if s == "all" else np.flatnonzero(user_slice == s)
        rng = seed if s == "all" else stats.derived_rng(seed, _SLICE_KEY, s_i - 1)
        means, low, high, boot = _summarise(flat[rows], n_resamples, rng, confidence)
        for li, lam in enumerate(lambdas):
            results[lam][s] = SliceResult({m: MeanCI(*(float(x[li * 3 + j]) for x in (means, low, high)))
                                           for j, m in enumerate(names)}, len(rows))
        for j, li in enumerate(others):
            effects[lambdas[li]][s] = (stats.paired_effect(diffs[rows, j], boot[:, li * 3] - boot[:, ref * 3],
                                                           confidence)
                                       if len(rows) else PairedEffect(*(float("nan"),) * 5, 0))
    comparisons = {lam: {} for lam in effects}
    for s in SLICES:
        p_holm = stats.holm([effects[lam][s].pvalue for lam in effects])
        for lam, ph in zip(effects, p_holm):
            comparisons[lam][s] = LambdaComparison(effects[lam][s], float(ph))

    if select_on is not None:
        sel = _prepare(select_on, spectra, item_categories, None)
        sel_metrics = per_user_metrics(sel.cand, sel.theta, item_categories, sel.item_map, values, k)
        best, sel_means = _select(sel_metrics, lambdas)
        selection = Selection(best, "validation", select_on.source, SELECTION_RULE.format(k=k), sel_means)
    else:
        best, sel_means = _select(metrics, lambdas)
        selection = Selection(best, "test", candidates.source, SELECTION_RULE.format(k=k), sel_means)

    slice_users = {s: int((user_slice == s).sum()) for s in POPULARITY_SLICES} | {
        "mixed": int((user_slice == "mixed").sum())}
    population = Population(n, int(candidates.counts.sum()), (int(candidates.counts.min()), int(candidates.counts.max())),
                            (int(pos_counts.min()), int(pos_counts.max())), slice_users, candidates.source)
    src = dict(sources or {})
    settings = FusionSettings(src.get("candidates", candidates.source), src.get("spectra", spectra.source),
                              src.get("items", item_categories.source), src.get("popularity", "<memory>"),
                              tuple(lambdas), k, n_resamples, seed, confidence,
                              None if select_on is None else select_on.source)
    slice_items = item_slices.value_counts().reindex(list(POPULARITY_SLICES), fill_value=0)
    per_user = pd.DataFrame({USER_COL: candidates.users, "slice": user_slice})
    for li, lam in enumerate(lambdas):
        for j, m in enumerate(names):
            per_user[f"{m}|{lam}"] = metrics[li, j]
    return FusionResult(name, backbone or name, settings, population, {s: int(v) for s, v in slice_items.items()},
                        results, comparisons, selection, per_user)
