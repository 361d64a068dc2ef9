"""The checks of arrays and arguments at the public boundary, and :class:`SpectraInputError`, the one error type
for bad input.

Public functions check their inputs here, once, at the boundary, then call unchecked kernels; nothing
inside the package re-checks arrays that a boundary already checked (an :class:`~spectra_eval.io.DistributionTable`
is checked when it is built). :func:`check_distributions` is the one path for probability vectors; the
table reader passes user ids, category labels and the file name, so an error names the file, the user
(row) and the column. Checks that need a file's layout live beside its reader: table columns, ids and
duplicates in :mod:`spectra_eval.io` (:func:`~spectra_eval.io.require_columns`, :func:`~spectra_eval.io.text_ids`,
:func:`~spectra_eval.io.check_unique`), raw interaction logs in :mod:`spectra_eval.data.datasets`, and each
analysis's own input files (items, candidates, requests) in its module. Every check raises
:class:`SpectraInputError` with a one-line message.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

SUM_ATOL = 1e-6


class SpectraInputError(ValueError):
    """Input that breaks the data contract. The message is one line, fit to show a user as is."""


def _where(source: str, users: Sequence | np.ndarray | None, row: int | None, categories: Sequence | None, col: int | None) -> str:
    parts = [source]
    if row is not None:
        parts.append(f"user {users[row]!r} (row {row + 1})" if users is not None else f"row {row}")
    if col is not None:
        parts.append(f"column {categories[col]!r}" if categories is not None else f"column {col}")
    return ", ".join(parts)


def check_distributions(
    values,
    *,
    source: str = "input",
    users: Sequence | np.ndarray | None = None,
    categories: Sequence | None = None,
    atol: float = SUM_ATOL,
) -> np.ndarray:
    """Return ``values`` as a float64 array of shape (n, K) after checking each row is a probability vector.

    A 1-D input is treated as one row. Rows must be finite, non-negative and sum to 1 within ``atol``.

    Raises
    ------
    SpectraInputError
        naming ``source``, the first offending row (as ``users[row]`` when given) and column.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpectraInputError(f"{source}: values are not numeric ({exc})") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise SpectraInputError(f"{source}: expected a 1-D or 2-D array of probabilities, got {arr.ndim}-D")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise SpectraInputError(f"{source}: no rows or no categories (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise SpectraInputError(f"{_where(source, users, r, categories, c)}: value is {arr[r, c]} (must be finite)")
    bad = arr < 0
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise SpectraInputError(f"{_where(source, users, r, categories, c)}: value {arr[r, c]:g} is negative")
    sums = arr.sum(axis=1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise SpectraInputError(
            f"{_where(source, users, r, categories, None)}: probabilities sum to {sums[r]:.9g}, expected 1 within {atol:g}"
        )
    return arr


def check_counts(values, *, source: str = "input", users: Sequence | np.ndarray | None = None,
                 categories: Sequence | None = None) -> np.ndarray:
    """Return ``values`` as an int64 array (n, K) of observed counts: finite, whole, >= 0, each row >= 1 item.

    Raises
    ------
    SpectraInputError
        naming ``source``, the first offending user (row) and column.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    bad = ~np.isfinite(arr) | (arr < 0) | (arr != np.round(arr))
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise SpectraInputError(f"{_where(source, users, r, categories, c)}: count {arr[r, c]:g} is not a "
                                "non-negative integer")
    counts = arr.astype(np.int64)
    empty = counts.sum(axis=1) == 0
    if empty.any():
        r = int(np.flatnonzero(empty)[0])
        raise SpectraInputError(f"{_where(source, users, r, categories, None)}: no observed items (n_u = 0); "
                                "a latent certificate needs at least one")
    return counts


def check_pair(p, q, *, names: tuple[str, str] = ("p", "q"), atol: float = SUM_ATOL) -> tuple[np.ndarray, np.ndarray]:
    """Validate two aligned stacks of distributions (broadcasting a single row against many).

    ``names`` label the two arguments in error messages.
    """
    a, b = names
    p = check_distributions(p, source=a, atol=atol)
    q = check_distributions(q, source=b, atol=atol)
    if p.shape[1] != q.shape[1]:
        raise SpectraInputError(f"{a} has {p.shape[1]} categories but {b} has {q.shape[1]}")
    if p.shape[0] != q.shape[0] and 1 not in (p.shape[0], q.shape[0]):
        raise SpectraInputError(f"{a} has {p.shape[0]} rows but {b} has {q.shape[0]}")
    return p, q


def check_unit(unit: str) -> float:
    """Return the log base divisor for ``unit`` ('bits' -> ln 2, 'nats' -> 1)."""
    if unit == "bits":
        return float(np.log(2.0))
    if unit == "nats":
        return 1.0
    raise SpectraInputError(f"unit must be 'bits' or 'nats', got {unit!r}")


def check_positive_int(
    value,
    name: str,
    *,
    minimum: int = 1,
    whole_numbers: bool = False,
    message: str = "{name} must be a positive integer, got {value!r}",
) -> int:
    """Return ``value`` as an int after checking it is an integer >= ``minimum`` (default 1: positive).

    By default only an ``int`` or NumPy integer passes (not ``bool``, floats or strings). With
    ``whole_numbers=True`` any non-``bool`` number equal to its ``int()`` passes too (``3.0``,
    ``np.float64(3)``); NaN, infinities and non-numbers fail.

    Raises
    ------
    SpectraInputError
        with ``message`` formatted with ``name``, ``value`` (as given) and ``minimum``.
    """
    if isinstance(value, bool):
        ok = False
    elif whole_numbers:
        try:
            ok = bool(int(value) == value and value >= minimum)
        except (TypeError, ValueError, OverflowError):
            ok = False
    else:
        ok = bool(isinstance(value, (int, np.integer)) and value >= minimum)
    if not ok:
        raise SpectraInputError(message.format(name=name, value=value, minimum=minimum))
    return int(value)


def check_pred_truth(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    """Validate predicted and true distribution stacks and broadcast them to one shape (n, K).

    Both go through :func:`check_distributions` (named ``pred`` and ``truth`` in error messages). A single
    row on either side broadcasts against the other's rows.

    Raises
    ------
    SpectraInputError
        on any invalid row, a category-count mismatch, or row counts that do not broadcast.
    """
    pred, truth = check_pair(pred, truth, names=("pred", "truth"))
    if pred.shape[0] != truth.shape[0]:
        pred, truth = np.broadcast_arrays(pred, truth)
    return pred, truth


def check_three(truth, probe, dg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate truth, probe and DG stacks of one shape (errors name the offending argument)."""
    truth, probe = check_pair(truth, probe, names=("truth", "probe"))
    truth, dg = check_pair(truth, dg, names=("truth", "dg"))
    if not (truth.shape == probe.shape == dg.shape):
        raise SpectraInputError(f"truth, probe and dg shapes differ: {truth.shape}, {probe.shape}, {dg.shape}")
    return truth, probe, dg


def check_k(k, n_categories: int) -> int:
    """Return ``k`` as an int in [1, K]; a ``k`` above K is clipped to K (the whole ranking)."""
    return min(check_positive_int(k, "k"), int(n_categories))


def check_columns(columns, n_categories: int) -> np.ndarray:
    """Column indices in range for ``n_categories`` (all columns when ``columns`` is None)."""
    cols = np.arange(n_categories) if columns is None else np.asarray(columns, dtype=np.int64).reshape(-1)
    bad = (cols < 0) | (cols >= n_categories)
    if bad.any():
        raise SpectraInputError(f"column index {int(cols[bad][0])} is out of range for {n_categories} categories")
    return cols


def check_alpha(alpha, *, name: str = "alpha", upper_closed: bool = False) -> float:
    """Check a level lies strictly inside (0, 1) (or in (0, 1] with ``upper_closed``)."""
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise SpectraInputError(f"{name}: {alpha!r} is not a number") from None
    if not (0.0 < alpha < 1.0 or (upper_closed and alpha == 1.0)):
        raise SpectraInputError(f"{name}: {alpha:g} is outside (0, 1{']' if upper_closed else ')'}")
    return alpha


def check_count(value, *, name: str, minimum: int = 1, below: int | None = None, what: str = "") -> int:
    """Check an integer count (``3`` or ``3.0``) is at least ``minimum`` (and smaller than ``below``, which
    ``what`` names in the message)."""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise SpectraInputError(f"{name}: {value!r} is not an integer") from None
    count = check_positive_int(as_float, name, minimum=minimum, whole_numbers=True,
                               message="{name}: {value:g} must be an integer >= {minimum}")
    if below is not None and count >= below:
        raise SpectraInputError(f"{name}: {count} must be smaller than {what or below} ({below})")
    return count


def check_fraction(value, *, name: str, open_right: bool = False) -> float:
    """Check a fraction lies in [0, 1] (or [0, 1) with ``open_right``)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SpectraInputError(f"{name}: {value!r} is not a number") from None
    if not (0.0 <= value <= 1.0) or (open_right and value == 1.0):
        raise SpectraInputError(f"{name}: {value:g} is outside [0, 1{')' if open_right else ']'}")
    return value


def check_js(js, unit: str = "bits", *, name: str = "js") -> np.ndarray:
    """Return ``js`` as a float array after checking it is a JS value: finite, in [0, 1] bits / [0, ln 2] nats."""
    upper = 1.0 if check_unit(unit) != 1.0 else float(np.log(2.0))
    try:
        arr = np.asarray(js, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpectraInputError(f"{name}: {js!r} is not a number") from None
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > upper * (1 + 1e-12))
    if bad.any():
        value = arr[bad].flat[0]
        raise SpectraInputError(f"{name}: {value:g} is outside [0, {upper:g}] {unit} (JS range)")
    return np.clip(arr, 0.0, upper)


def check_choice(value, choices, *, name: str) -> str:
    """Check ``value`` is one of ``choices`` (error lists them)."""
    if value not in choices:
        raise SpectraInputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
