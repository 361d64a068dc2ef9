"""Fusion inputs: the candidates table, the items' categories, the popularity counts and the lambdas, each
checked once here (one-line errors naming the file, user, item and column); :mod:`.kernels` trusts them.

A table arrives as a file (``read_*``) or as a DataFrame (``*_from_frame``, what the Python API calls);
both paths run the same checks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
import pandas as pd

from spectra_eval.analyses.lists import CATEGORIES_COL, ITEM_COL, items_from_frame
from spectra_eval.io import USER_COL, check_unique, read_frame, require_columns, text_ids
from spectra_eval.validation import SpectraInputError

CANDIDATE_COLUMNS = (USER_COL, ITEM_COL, "score", "label")
LAMBDAS = ("0", "0.05", "0.1", "0.5", "1", "2")
K = 10
SLICES = ("all", "head", "mid", "tail")
POPULARITY_SLICES = SLICES[1:]
_CHUNK_ROWS = 2_000_000  # candidate rows per step: bounds the temporaries to a few x 16 MB


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
    return candidates_from_frame(read_frame(path, string_columns=(USER_COL, ITEM_COL)), str(path))


def candidates_from_frame(frame: pd.DataFrame, source: str = "<memory>") -> Candidates:
    """Check a candidates table (``user_id, item_id, score, label``; ids become text) and group it by user."""
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
    return item_categories_from_frame(frame, categories, str(path))


def item_categories_from_frame(frame: pd.DataFrame, categories: Sequence[str],
                               source: str = "<memory>") -> ItemCategories:
    """:func:`read_item_categories` of a table already read (either layout); errors name ``source``."""
    if "category" not in frame.columns and CATEGORIES_COL in frame.columns:
        joined = items_from_frame(frame, categories, source)
        frame = pd.DataFrame([(i, c) for i, labels in joined.items() for c in labels], columns=[ITEM_COL, "category"])
    return ItemCategories.from_frame(frame, categories, source)




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
