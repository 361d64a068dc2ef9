"""Paired tests, Holm's step-down correction and the paired user-level bootstrap.

Conventions (written into every output that uses them):

* Paired test: Wilcoxon signed-rank on per-user differences ``a - b``, two-sided, ``zero_method='wilcox'``
  (users with a zero difference are dropped before ranking), via :func:`scipy.stats.wilcoxon`. When every
  difference is zero there is nothing to rank: the result is ``statistic=0, pvalue=1`` (no evidence of a
  difference) instead of scipy's warning.
* Family-wise correction: Holm (1979) step-down, implemented here and checked against statsmodels.
* Bootstrap: users are resampled with replacement; **one** index draw of shape ``(n_resamples, n)`` from
  ``np.random.default_rng(seed)`` is shared by every method, metric and comparison, so paired differences
  are resampled jointly. Intervals are percentile intervals (``confidence`` = 0.95 by default).

Resampled means are computed chunk by chunk (``chunk`` resamples at a time). With many columns each chunk
becomes a count matrix ``C`` (``C[b, u]`` = times user ``u`` is drawn in resample ``b``, one
``np.bincount`` per resample) and the means of every column at once are ``C @ values / n``; with a few
columns, summing the gathered values ``np.take(column, indices)`` is cheaper.

At platform scale the draw itself is the problem: (1,000, 1,000,000) int64 indices are 8 GB.
:func:`bootstrap_draw` returns a :class:`BootstrapDraw`, which keeps only the generator's starting state and
regenerates consecutive resamples block by block, so memory is ``chunk * n`` indices. numpy's
``Generator.integers`` continues one stream across calls (a bounded draw's 32-bit half-words are buffered in
the bit generator's state, not in the call), so blocks of rows of any size concatenate to exactly the
one-shot array: the streamed draw *is* ``default_rng(seed).integers(0, n, (B, n))`` and every number is the
one the materialised draw gives. The means are still computed 100 resamples per step whatever the memory:
BLAS may round a matrix product differently for another block height (a 1-row product differs in the last
bits), and the chunk is part of what makes the numbers reproducible.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
from scipy import stats as _st

from spectra_eval.validation import SpectraInputError

CONFIDENCE = 0.95
N_RESAMPLES = 1000
SEED = 0
CHUNK = 100
ZERO_METHOD = "wilcox"
ALTERNATIVE = "two-sided"
TEST_NAME = "Wilcoxon signed-rank"
TEST_DESCRIPTION = f"{TEST_NAME} ({ALTERNATIVE}, zero_method='{ZERO_METHOD}')"
CORRECTION = "Holm"
_GATHER_MAX_COLUMNS = 4


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired test on ``a - b``.

    ``n`` counts the pairs given; ``n_nonzero`` those left after dropping zero differences.
    """

    statistic: float
    pvalue: float
    n: int
    n_nonzero: int
    zero_method: str = ZERO_METHOD
    alternative: str = ALTERNATIVE
    test: str = TEST_NAME


def _f(x) -> float:
    """A JSON number as a float (None -> NaN): how every result's ``from_dict`` reads optional numbers."""
    return float("nan") if x is None else float(x)


@dataclass(frozen=True)
class PairedEffect:
    """A paired effect over a group of users: the mean of per-user differences ``d_u = a_u - b_u`` (method -
    reference), its percentile bootstrap interval, and the Wilcoxon signed-rank test of the differences.

    One type for every paired result (a comparison's metric difference, a quartile's or stratum's delta).
    ``statistic`` and ``n`` are None when a partial document omits them. In JSON the estimate is written
    under ``estimate_key`` (``"mean_diff"`` for comparisons, ``"delta"`` for groups) and the p-value as ``p``.
    """

    estimate: float
    ci_low: float
    ci_high: float
    pvalue: float
    statistic: float | None = None
    n: int | None = None
    test: str | None = None  # set when the p-value is not the default Wilcoxon signed-rank test

    def to_dict(self, estimate_key: str = "mean_diff") -> dict:
        out = {estimate_key: self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high, "p": self.pvalue,
               "statistic": self.statistic, "n": self.n}
        return out if self.test is None else out | {"test": self.test}

    @classmethod
    def from_dict(cls, d, estimate_key: str = "mean_diff") -> "PairedEffect":
        num = _f
        return cls(num(d[estimate_key]), num(d.get("ci_low")), num(d.get("ci_high")), num(d.get("p")),
                   None if d.get("statistic") is None else float(d["statistic"]),
                   None if d.get("n") is None else int(d["n"]), d.get("test"))


def paired_effect(diff, resampled_means, confidence: float = CONFIDENCE) -> PairedEffect:
    """:class:`PairedEffect` of the per-user differences ``diff`` (n,), given their resampled means (B,)."""
    d = np.asarray(diff, dtype=np.float64)
    low, high = percentile_interval(resampled_means, confidence)
    test = paired_wilcoxon(d)
    return PairedEffect(float(d.mean()), float(low), float(high), test.pvalue, test.statistic, int(d.size))


BOOTSTRAP_TEST = "paired bootstrap (two-sided: twice the smaller share of resampled differences on either side of 0)"


def bootstrap_effect(estimate: float, resampled, confidence: float = CONFIDENCE, n: int | None = None) -> PairedEffect:
    """:class:`PairedEffect` of a cohort statistic's paired difference from its resampled differences (B,).

    The interval is the percentile interval (resamples where the statistic is undefined, NaN, are left out);
    ``p = min(1, 2 min(P*(d <= 0), P*(d >= 0)))`` over the resamples, resolution 1/B.
    """
    d = np.asarray(resampled, dtype=np.float64)
    d = d[np.isfinite(d)]
    low, high = finite_percentile_interval(d, confidence)
    if d.size == 0:
        return PairedEffect(float(estimate), low, high, float("nan"), None, n, BOOTSTRAP_TEST)
    p = min(1.0, 2.0 * min(float((d <= 0).mean()), float((d >= 0).mean())))
    return PairedEffect(float(estimate), float(low), float(high), p, None, n, BOOTSTRAP_TEST)


@dataclass(frozen=True)
class BootstrapCI:
    """A point estimate with its percentile bootstrap interval."""

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float = CONFIDENCE
    n_resamples: int = N_RESAMPLES


def paired_wilcoxon(a, b=None) -> PairedTest:
    r"""Two-sided Wilcoxon signed-rank test of the paired differences :math:`d_u = a_u - b_u`.

    With ``b=None``, ``a`` already holds the differences. Zero differences are dropped (``zero_method='wilcox'``);
    the statistic is scipy's :math:`\min(R^+, R^-)` for the two-sided test. If every difference is zero
    the result is ``statistic=0.0, pvalue=1.0``.
    """
    d = np.asarray(a, dtype=np.float64).ravel()
    if b is not None:
        d = d - np.asarray(b, dtype=np.float64).ravel()
    if d.size == 0:
        raise SpectraInputError("paired_wilcoxon needs at least one pair")
    if not np.isfinite(d).all():
        raise SpectraInputError("paired_wilcoxon: differences must be finite")
    n_nonzero = int(np.count_nonzero(d))
    if n_nonzero == 0:
        return PairedTest(statistic=0.0, pvalue=1.0, n=int(d.size), n_nonzero=0)
    with warnings.catch_warnings():  # scipy warns on tiny samples; the p-value is still the exact one
        warnings.simplefilter("ignore", UserWarning)
        res = _st.wilcoxon(d, zero_method=ZERO_METHOD, alternative=ALTERNATIVE)
    return PairedTest(statistic=float(res.statistic), pvalue=float(res.pvalue), n=int(d.size), n_nonzero=n_nonzero)


def paired_wilcoxon_columns(diff) -> list[PairedTest]:
    r""":func:`paired_wilcoxon` of every column of ``diff`` (n, m), e.g. one test per category.

    For n > 50 scipy's ``method='auto'`` always takes the normal approximation, which is computed here for
    all columns at once and equals scipy's value: with :math:`n'` non-zero differences, average ranks
    :math:`r` of :math:`|d|` among them, :math:`R^+ = \sum_{d>0} r`,

    .. math:: z = \frac{R^+ - n'(n'+1)/4}{\sqrt{\bigl(n'(n'+1)(2n'+1) - \tfrac12\sum_g (t_g^3 - t_g)\bigr)/24}},
              \qquad p = 2\,\Phi(-|z|)

    (:math:`t_g` the sizes of tied groups of non-zero :math:`|d|`, no continuity correction). One sort per
    column replaces m calls. For n <= 50 each column goes through scipy (exact or permutation null).
    """
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 2:
        raise SpectraInputError("paired_wilcoxon_columns expects a 2-D array (n, m)")
    n, m = d.shape
    if n <= 50 or m == 0:
        return [paired_wilcoxon(d[:, j]) for j in range(m)]
    if not np.isfinite(d).all():
        raise SpectraInputError("paired_wilcoxon: differences must be finite")
    block = max(1, 2_000_000 // n)  # columns per step: bounds the temporaries to a few x 16 MB
    if m > block:
        return [t for j in range(0, m, block) for t in paired_wilcoxon_columns(d[:, j : j + block])]
    rows = np.ascontiguousarray(d.T)  # (m, n): one row per test
    order = np.argsort(np.abs(rows), axis=1, kind="stable")
    srt = np.take_along_axis(rows, order, axis=1)
    mag = np.abs(srt).ravel()
    start = np.ones(mag.size, dtype=bool)
    start[1:] = mag[1:] != mag[:-1]
    start[::n] = True  # every row starts a new group
    pos = np.flatnonzero(start)
    sizes = np.diff(pos, append=mag.size)
    # average 1-based rank of each tie group, over all n values; zeros sort first, so subtracting the row's
    # zero count gives the rank among the non-zero differences
    avg_rank = (pos % n) + (sizes + 1) / 2.0
    n_zero = n - np.count_nonzero(rows, axis=1)
    ranks = np.repeat(avg_rank, sizes).reshape(m, n) - n_zero[:, None]
    r_plus = np.einsum("ij,ij->i", ranks, srt > 0)
    nonzero_group = mag[pos] != 0
    ties = np.bincount(pos[nonzero_group] // n, weights=(sizes**3.0 - sizes)[nonzero_group], minlength=m)
    c = (n - n_zero).astype(np.float64)
    r_minus = c * (c + 1) / 2 - r_plus  # the non-zero ranks sum to n'(n'+1)/2
    se = np.sqrt((c * (c + 1) * (2 * c + 1) - ties / 2) / 24)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (r_plus - c * (c + 1) / 4) / se
    p = 2 * _st.norm.sf(np.abs(z))
    out = []
    for j in range(m):
        if c[j] == 0:
            out.append(PairedTest(statistic=0.0, pvalue=1.0, n=n, n_nonzero=0))
        else:
            out.append(PairedTest(float(min(r_plus[j], r_minus[j])), float(min(p[j], 1.0)), n, int(c[j])))
    return out


def holm(pvalues) -> np.ndarray:
    r"""Holm step-down adjusted p-values.

    With the m p-values sorted ascending, :math:`p_{(1)} \le \dots \le p_{(m)}`, the adjusted value is
    :math:`\tilde p_{(i)} = \min\{1, \max_{j \le i} (m - j + 1)\, p_{(j)}\}`. NaN entries are ignored (not
    counted in m) and stay NaN. Rejecting where :math:`\tilde p \le \alpha` controls the family-wise error.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    flat = p.ravel()
    ok = np.flatnonzero(~np.isnan(flat))
    m = ok.size
    if m:
        order = ok[np.argsort(flat[ok], kind="stable")]
        scaled = (m - np.arange(m)) * flat[order]
        adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
        res = out.ravel()
        res[order] = adjusted
        out = res.reshape(p.shape)
    return out


def _check_draw(n: int, n_resamples: int) -> None:
    if n < 1:
        raise SpectraInputError("bootstrap needs at least one user")
    if n_resamples < 1:
        raise SpectraInputError("n_resamples must be at least 1")


def bootstrap_indices(n: int, n_resamples: int = N_RESAMPLES, seed: int | np.random.Generator | None = SEED) -> np.ndarray:
    """The shared user-level resampling draw: ``default_rng(seed).integers(0, n, (n_resamples, n))``."""
    _check_draw(n, n_resamples)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n))


class BootstrapDraw:
    """The draw of :func:`bootstrap_indices`, regenerated block by block instead of held (shape (B, n)).

    Only the generator's starting state is stored; :meth:`blocks` replays the stream from it, so every pass
    over the draw sees the same indices, and ``np.asarray(draw)`` is the materialised array.
    """

    def __init__(self, n: int, n_resamples: int, rng: np.random.Generator):
        self.shape = (int(n_resamples), int(n))
        self._bit_generator = type(rng.bit_generator)
        self._state = copy.deepcopy(rng.bit_generator.state)

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, indices[start:start + rows])`` for consecutive blocks of resamples, in order."""
        bit_generator = self._bit_generator()
        bit_generator.state = copy.deepcopy(self._state)
        rng = np.random.Generator(bit_generator)
        n_resamples, n = self.shape
        for start in range(0, n_resamples, max(1, int(rows))):
            yield start, rng.integers(0, n, size=(min(rows, n_resamples - start), n))

    def __array__(self, dtype=None, copy=None):
        out = np.concatenate([block for _, block in self.blocks(self.shape[0])])
        return out if dtype is None else out.astype(dtype)


def bootstrap_draw(n: int, n_resamples: int = N_RESAMPLES,
                   seed: int | np.random.Generator | None = SEED) -> BootstrapDraw:
    """:func:`bootstrap_indices` as a :class:`BootstrapDraw`: the same indices, generated as they are used.

    A Generator given as ``seed`` is not advanced (its state is copied).
    """
    _check_draw(n, n_resamples)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return BootstrapDraw(n, n_resamples, rng)


def _index_blocks(indices, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    if isinstance(indices, BootstrapDraw):
        yield from indices.blocks(rows)
    else:
        for start in range(0, indices.shape[0], rows):
            yield start, indices[start : start + rows]


def bootstrap_means(
    values,
    indices: np.ndarray | BootstrapDraw | int | None = None,
    *,
    seed: int | None = SEED,
    chunk: int = CHUNK,
) -> np.ndarray:
    r"""Column means of ``values`` under each bootstrap resample of its rows.

    Parameters
    ----------
    values : array (n,) or (n, m)
        Per-user values; the m columns (methods, metrics) are resampled with the same user indices.
    indices : array (B, n), BootstrapDraw, int or None
        A draw from :func:`bootstrap_indices` or :func:`bootstrap_draw` (streamed: never held whole); an int B
        streams ``bootstrap_draw(n, B, seed)``; None streams :data:`N_RESAMPLES`.
    chunk : int
        Resamples handled per step (memory is ``chunk * n`` indices and counts).

    Returns
    -------
    array (B,) or (B, m)
        :math:`\bar v^{*}_{b} = \frac1n \sum_u C_{bu} v_u`, with :math:`C_{bu}` the multiplicity of user u in
        resample b.
    """
    return bootstrap_means_many([values], indices, seed=seed, chunk=chunk)[0]


def bootstrap_means_many(values_list: Sequence, indices: np.ndarray | BootstrapDraw | int | None = None, *,
                         seed: int | None = SEED, chunk: int = CHUNK) -> list[np.ndarray]:
    """:func:`bootstrap_means` of several arrays (same n users) under one pass over the draw.

    Each array gets exactly what ``bootstrap_means(values, indices)`` returns for it alone (the same rule per
    array, the same index blocks), while a streamed draw is generated once instead of once per array.
    """
    arrays = [np.asarray(v, dtype=np.float64) for v in values_list]
    matrices = [v[:, None] if v.ndim == 1 else v for v in arrays]
    n = matrices[0].shape[0]
    if any(m.shape[0] != n for m in matrices):
        raise SpectraInputError("every array must have one row per user")
    if indices is None or np.isscalar(indices):
        indices = bootstrap_draw(n, N_RESAMPLES if indices is None else int(indices), seed)  # type: ignore[arg-type]
    if not isinstance(indices, BootstrapDraw):
        indices = np.asarray(indices)
    if len(indices.shape) != 2 or indices.shape[1] != n:
        raise SpectraInputError(f"indices must have shape (n_resamples, {n}), got {indices.shape}")
    n_resamples = indices.shape[0]
    outs = [np.empty((n_resamples, m.shape[1])) for m in matrices]
    gathered = [np.ascontiguousarray(m.T) if m.shape[1] <= _GATHER_MAX_COLUMNS else None for m in matrices]
    for start, block in _index_blocks(indices, max(1, int(chunk))):
        rows = block.shape[0]
        counts = None
        for m, columns, out in zip(matrices, gathered, outs):
            if columns is not None:  # few columns: summing gathered values is cheapest
                for j, col in enumerate(columns):
                    out[start : start + rows, j] = np.take(col, block).sum(axis=1)
                continue
            if counts is None:  # many columns: one count matrix serves them all (one bincount per resample)
                counts = np.empty((rows, n))
                for r in range(rows):
                    counts[r] = np.bincount(block[r], minlength=n)
            out[start : start + rows] = counts @ m
    for out in outs:
        out /= n
    return [out[:, 0] if v.ndim == 1 else out for v, out in zip(arrays, outs)]


def percentile_interval(resampled, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval bounds (``np.percentile``, linear interpolation) along axis 0 of ``resampled``."""
    alpha = 1.0 - confidence
    low, high = np.percentile(np.asarray(resampled, dtype=np.float64), [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return low, high


def finite_percentile_interval(resampled, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """:func:`percentile_interval` of the finite values of a 1-D ``resampled`` (resamples where a statistic is
    undefined, NaN, are left out); (NaN, NaN) when none is finite."""
    r = np.asarray(resampled, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    low, high = percentile_interval(r, confidence)
    return float(low), float(high)


def bootstrap_ci(
    values,
    indices: np.ndarray | int | None = None,
    *,
    seed: int | None = SEED,
    confidence: float = CONFIDENCE,
    chunk: int = CHUNK,
) -> BootstrapCI | list[BootstrapCI]:
    """Mean of ``values`` with its percentile bootstrap CI (one :class:`BootstrapCI` per column for 2-D input)."""
    v = np.asarray(values, dtype=np.float64)
    means = bootstrap_means(v, indices, seed=seed, chunk=chunk)
    low, high = percentile_interval(means, confidence)
    estimate = v.mean(axis=0)
    if v.ndim == 1:
        return BootstrapCI(float(estimate), float(low), float(high), confidence, means.shape[0])
    return [BootstrapCI(float(e), float(lo), float(hi), confidence, means.shape[0]) for e, lo, hi in zip(estimate, low, high)]


def derived_rng(seed: int | None, *key: int) -> np.random.Generator:
    """An independent generator for a sub-analysis (e.g. one quartile), fixed by ``seed`` and ``key``.

    Built from ``np.random.SeedSequence(seed, spawn_key=key)``, so it never overlaps the main draw
    (which uses the plain ``seed``) and is the same for every method compared.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key)))


def equal_count_groups(values, n_groups: int) -> np.ndarray:
    """Group index 0 .. n_groups - 1 of each of the n ``values``, in groups of equal count (sizes differ by <= 1).

    Values are ranked in ascending order, ties broken by position (a stable sort), and rank
    r in {0..n-1} maps to group floor(n_groups * r / n). Used for activity strata and tail quartiles.
    """
    values = np.asarray(values)
    n = len(values)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(n)
    return (rank * n_groups) // max(n, 1)


@dataclass(frozen=True)
class MeanCI:
    """Cohort mean of a per-user metric with its percentile bootstrap interval."""

    mean: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high}

    @classmethod
    def from_dict(cls, d: Mapping) -> "MeanCI":
        return cls(_f(d["mean"]), _f(d.get("ci_low")), _f(d.get("ci_high")))
