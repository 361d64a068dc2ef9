"""Steering inputs: the requests table, checked once (one-line errors naming the file, request, row and column),
from a file (:func:`read_requests`) or a DataFrame (:func:`requests_from_frame`); :func:`make_requests` draws a
seeded requests table for a cohort.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from spectra_eval.io import USER_COL, first_empty, read_frame, require_columns
from spectra_eval.validation import SpectraInputError

DIRECTIONS = {"+": 1, "-": -1}
FORMS = ("single", "multi")
TARGET_SEP = "|"
REQUEST_COL, TARGET_COL, DIRECTION_COL, GRANULARITY_COL, FORM_COL = (
    "request_id", "target", "direction", "granularity", "form")
REQUIRED = (REQUEST_COL, USER_COL, TARGET_COL, DIRECTION_COL, GRANULARITY_COL)


@dataclass(frozen=True)
class Requests:
    """A checked requests file: one row per request (file order).

    ``targets[i]`` is the tuple of category labels of request i (one for a fine target); ``extra`` holds any
    further columns of the file (e.g. ``seen``), carried into per-request outputs.
    """

    ids: np.ndarray
    users: np.ndarray
    targets: tuple[tuple[str, ...], ...]
    directions: np.ndarray
    granularities: np.ndarray
    forms: np.ndarray
    source: str = "<memory>"
    extra: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def signs(self) -> np.ndarray:
        """+1 for ``+``, -1 for ``-``, shape (n,)."""
        return np.array([DIRECTIONS[d] for d in self.directions], dtype=np.float64)

    def where(self, i: int, column: str | None = None) -> str:
        """``FILE: request 'ID' (row N)[, column 'C']`` for error messages."""
        at = f"{self.source}: request {self.ids[i]!r} (row {i + 1})"
        return at if column is None else f"{at}, column {column!r}"

    def target_mask(self, categories: Sequence[str]) -> np.ndarray:
        """Boolean (n, K): True where category k is in request i's target."""
        col = {c: j for j, c in enumerate(categories)}
        mask = np.zeros((len(self), len(categories)), dtype=bool)
        for i, target in enumerate(self.targets):
            mask[i, [col[c] for c in target]] = True
        return mask

    def check_users(self, users: Sequence[str] | np.ndarray, users_source: str) -> np.ndarray:
        """Every request's user must be one of ``users`` (e.g. the base table's, unique); returns each request's
        user position in ``users``."""
        known = pd.Index(np.asarray(users, dtype=object))
        positions = known.get_indexer(self.users)
        missing = np.flatnonzero(positions < 0)
        if missing.size:
            i = int(missing[0])
            raise SpectraInputError(f"{self.where(i, USER_COL)}: user {self.users[i]!r} is not in {users_source}")
        return positions

    def check_targets(self, categories: Sequence[str], categories_source: str) -> None:
        """Every target label must be one of ``categories``; the first unknown one is named."""
        known = set(categories)
        for i, target in enumerate(self.targets):
            if not known.issuperset(target):
                _check_known_labels(self.where(i, TARGET_COL), target, known, categories_source)

    def frame(self) -> pd.DataFrame:
        """The requests as a table (targets joined by ``|``), extra columns last."""
        out = pd.DataFrame({REQUEST_COL: self.ids, USER_COL: self.users,
                            TARGET_COL: [TARGET_SEP.join(t) for t in self.targets], DIRECTION_COL: self.directions,
                            GRANULARITY_COL: self.granularities, FORM_COL: self.forms})
        if self.extra is not None:
            out = pd.concat([out, self.extra.reset_index(drop=True)], axis=1)
        return out


def _check_known_labels(at: str, labels: Sequence[str], known: set, categories_source: str) -> None:
    unknown = [p for p in labels if p not in known]
    if unknown:
        raise SpectraInputError(f"{at}: {unknown[0]!r} is not a category of {categories_source}")


def _text_column(frame: pd.DataFrame, column: str, ids, source: str) -> np.ndarray:
    values = frame[column]
    i = first_empty(values)
    if i is not None:
        at = f"request {ids[i]!r} (row {i + 1})" if ids is not None else f"row {i + 1}"
        raise SpectraInputError(f"{source}: {at}, column {column!r}: empty value")
    return values.astype(str).str.strip().to_numpy(dtype=object)

def read_requests(path: str | os.PathLike, categories: Sequence[str] | None = None, *,
                  categories_source: str = "the categories") -> Requests:
    """Read and check a requests file (CSV or Parquet): ``request_id, user_id, target, direction, granularity``
    and optionally ``form`` (``single``, the default, or ``multi``: one statement per target category).

    Errors are one line naming the file, the request (row) and the offending value: a missing column, an
    empty or repeated request id, an empty user, a target naming a label that is not one of ``categories``
    (when given), naming one twice or every category, a direction other than ``+``/``-``, an unknown form.
    """
    source = str(path)
    frame = read_frame(path, string_columns=REQUIRED + (FORM_COL,))
    return requests_from_frame(frame, categories, categories_source=categories_source, source=source)


def requests_from_frame(frame: pd.DataFrame, categories: Sequence[str] | None = None, *,
                        categories_source: str = "the categories", source: str = "<memory>") -> Requests:
    """:func:`read_requests` of a table already read; errors name ``source``."""
    require_columns(frame, REQUIRED, source)
    if len(frame) == 0:
        raise SpectraInputError(f"{source}: the table has no rows")
    ids = _text_column(frame, REQUEST_COL, None, source)
    first: dict[str, int] = {}
    for i, rid in enumerate(ids):
        if rid in first:
            raise SpectraInputError(f"{source}: request {rid!r} (row {i + 1}) repeats the request id of row "
                                    f"{first[rid] + 1}")
        first[rid] = i
    users = _text_column(frame, USER_COL, ids, source)
    known = None if categories is None else set(categories)
    targets = []
    for i, text in enumerate(_text_column(frame, TARGET_COL, ids, source)):
        parts = tuple(p.strip() for p in text.split(TARGET_SEP) if p.strip())
        at = f"{source}: request {ids[i]!r} (row {i + 1}), column {TARGET_COL!r}"
        if not parts:
            raise SpectraInputError(f"{at}: {text!r} names no category")
        repeated = [p for j, p in enumerate(parts) if p in parts[:j]]
        if repeated:
            raise SpectraInputError(f"{at}: category {repeated[0]!r} appears twice in {text!r}")
        if known is not None:
            _check_known_labels(at, parts, known, categories_source)
            if len(parts) == len(known):
                raise SpectraInputError(f"{at}: {text!r} names every category, so nothing is off target")
        targets.append(parts)
    directions = _text_column(frame, DIRECTION_COL, ids, source)
    for i, d in enumerate(directions):
        if d not in DIRECTIONS:
            raise SpectraInputError(f"{source}: request {ids[i]!r} (row {i + 1}), column {DIRECTION_COL!r}: "
                                    f"{d!r} is not '+' or '-'")
    granularities = _text_column(frame, GRANULARITY_COL, ids, source)
    if FORM_COL in frame.columns:
        forms = frame[FORM_COL].fillna("").astype(str).str.strip().replace("", FORMS[0]).to_numpy(dtype=object)
        for i, f in enumerate(forms):
            if f not in FORMS:
                raise SpectraInputError(f"{source}: request {ids[i]!r} (row {i + 1}), column {FORM_COL!r}: "
                                        f"{f!r} is not one of {', '.join(FORMS)}")
    else:
        forms = np.full(len(ids), FORMS[0], dtype=object)
    rest = [c for c in frame.columns if c not in REQUIRED + (FORM_COL,)]
    return Requests(ids, users, tuple(targets), directions, granularities, forms, source,
                    frame[rest].reset_index(drop=True) if rest else None)


def make_requests(users: Sequence[str] | np.ndarray, categories: Sequence[str], seen: np.ndarray, *, seed: int = 0,
                  coarse_size: int = 3) -> pd.DataFrame:
    """A seeded requests table for a cohort: per user, one request for each direction (``+``, ``-``) and
    granularity (``fine``: one category; ``coarse``: a group of ``coarse_size`` categories).

    ``seen`` (n, K) marks the categories in each user's history. For every request a fair coin picks whether
    the target is drawn from the categories the user has seen or from those they have not (the other pool
    completes a group when the chosen one is too small); the ``seen`` column says what was drawn: ``seen``,
    ``unseen`` or ``mixed``. Draws use ``np.random.default_rng(seed)`` in user order, so the table is a
    function of (users, seen, seed). Request ids are ``USER:+fine``, ``USER:-coarse``, ...
    """
    seen = np.asarray(seen, dtype=bool)
    k = len(categories)
    sizes = {"fine": 1, "coarse": max(1, min(int(coarse_size), k - 1))}
    rng = np.random.default_rng(seed)
    rows = []
    for u, mask in zip(users, seen):
        pools = (np.flatnonzero(mask), np.flatnonzero(~mask))
        for direction in DIRECTIONS:
            for gran, size in sizes.items():
                pick = int(rng.random() < 0.5)
                first, other = pools[pick], pools[1 - pick]
                take = rng.choice(first, min(size, first.size), replace=False)
                if take.size < size:
                    take = np.concatenate([take, rng.choice(other, size - take.size, replace=False)])
                take = np.sort(take)
                n_seen = int(mask[take].sum())
                rows.append({REQUEST_COL: f"{u}:{direction}{gran}", USER_COL: u,
                             TARGET_COL: TARGET_SEP.join(categories[j] for j in take), DIRECTION_COL: direction,
                             GRANULARITY_COL: gran,
                             "seen": "seen" if n_seen == size else "unseen" if n_seen == 0 else "mixed"})
    return pd.DataFrame(rows)
