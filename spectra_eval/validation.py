"""The one validation path for probability vectors.

Every public metric calls :func:`check_distributions`; the table reader calls it too, passing user ids,
category labels and the file name, so an error always names the file, the user (row) and the column.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

SUM_ATOL = 1e-6


class SpectraInputError(ValueError):
    """Input that breaks the data contract. The message is one line, fit to show a user as is."""


def _where(source: str, users: Sequence | None, row: int | None, categories: Sequence | None, col: int | None) -> str:
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
    users: Sequence | None = None,
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
        ok = isinstance(value, (int, np.integer)) and value >= minimum
    if not ok:
        raise SpectraInputError(message.format(name=name, value=value, minimum=minimum))
    return int(value)
