r"""Who gains: paired per-user differences broken down by tail-preference quartile and by stratum.

Every breakdown works on a per-user difference :math:`\delta_u = \mathrm{JS}_{method,u} - \mathrm{JS}_{ref,u}`
(negative = the method is closer to the truth) and reports, per group :math:`G`, a
:class:`~spectra_eval.stats.PairedEffect`: the mean :math:`\Delta_G = \frac{1}{|G|}\sum_{u\in G}\delta_u`, a
percentile bootstrap interval from resampling users *within* the group, the two-sided paired Wilcoxon p-value
and :math:`|G|`.

Within-group resampling uses :func:`spectra_eval.stats.derived_rng` keyed by the group (quartile q uses key
``(1, q)``; stratum column j, level l uses ``(2, j, l)``), so it is fixed by the seed and identical for
every method compared against the same reference.

Strata. A metadata column is a stratum variable. A text column, or a numeric column with at most
:data:`MAX_LEVELS` distinct values, has one stratum per value. A numeric column with more distinct values
(e.g. history length) is grouped into ``quantiles`` quantile strata (:func:`pandas.qcut` on the values, so
tied values share a stratum; duplicate edges are merged, which can leave fewer strata), labelled by the
range of values they hold. A level is a *win* when its delta is negative at Wilcoxon p < ``alpha``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval import stats
from spectra_eval.metrics.buckets import Buckets
from spectra_eval.io import USER_COL, check_user_ids
from spectra_eval.stats import PairedEffect, _f
from spectra_eval.validation import SpectraInputError

QUARTILES = ("Q1", "Q2", "Q3", "Q4")
MAX_LEVELS = 10  # numeric stratum columns with more distinct values are grouped into quantiles
QUANTILES = 5
RATIO_MAX = 100.0  # |Q4/Q1| beyond this means |Delta_Q1| is negligible next to |Delta_Q4|
_QUARTILE_KEY = 1
_STRATUM_KEY = 2
_GROUP = "delta"  # JSON key of a group's estimate


@dataclass(frozen=True)
class QuartileResult:
    """Per-quartile deltas (Q1 = lowest true tail mass) and :math:`\\Delta_{Q4}/\\Delta_{Q1}`.

    The ratio is NaN (``null`` in JSON, with ``ratio_q4_q1_reason``) when it means nothing: Q1 and Q4 deltas
    of opposite signs (one quartile gains, the other loses), a zero or missing delta, or
    :math:`|\\Delta_{Q1}|` negligible (the ratio's magnitude would exceed :data:`RATIO_MAX`).
    """

    quartiles: Mapping[str, PairedEffect]
    ratio_q4_q1: float
    ratio_reason: str | None = None

    def to_dict(self) -> dict:
        return ({q: g.to_dict(_GROUP) for q, g in self.quartiles.items()}
                | {"ratio_q4_q1": self.ratio_q4_q1, "ratio_q4_q1_reason": self.ratio_reason})

    @classmethod
    def from_dict(cls, d: Mapping) -> "QuartileResult":
        return cls({q: PairedEffect.from_dict(d[q], _GROUP) for q in QUARTILES if q in d}, _f(d.get("ratio_q4_q1")),
                   d.get("ratio_q4_q1_reason"))


@dataclass(frozen=True)
class StratumResult:
    """Deltas per level of one stratum column, their range, and the wins (levels with delta < 0 at p < alpha).

    ``grouping`` says how levels were formed: ``"levels"`` (one per value) or ``"quantiles"`` (numeric column
    with more than :data:`MAX_LEVELS` values, grouped into equal-count quantile strata).
    """

    levels: Mapping[str, PairedEffect]
    range: tuple[float, float]
    wins: int
    n_levels: int
    grouping: str = "levels"
    alpha: float | None = None

    def to_dict(self) -> dict:
        return {"levels": {k: g.to_dict(_GROUP) for k, g in self.levels.items()}, "range": list(self.range),
                "wins": self.wins, "n_levels": self.n_levels, "grouping": self.grouping,
                "win_rule": None if self.alpha is None else f"delta < 0 and p < {self.alpha:g}", "alpha": self.alpha}

    @classmethod
    def from_dict(cls, d: Mapping) -> "StratumResult":
        return cls({k: PairedEffect.from_dict(g, _GROUP) for k, g in d["levels"].items()},
                   (_f(d["range"][0]), _f(d["range"][1])), int(d["wins"]), int(d.get("n_levels", len(d["levels"]))),
                   d.get("grouping", "levels"), None if d.get("alpha") is None else float(d["alpha"]))


# ------------------------------------------------------------------ groups


def tail_mass(truth, buckets: Buckets) -> np.ndarray:
    """Per-user true mass on the tail bucket, :math:`t_u = \\sum_{c \\in tail} \\theta_u(c)`."""
    truth = np.asarray(truth, dtype=np.float64)
    return truth[:, list(buckets.tail)].sum(axis=1)


def tail_quartiles(truth, buckets: Buckets) -> np.ndarray:
    """Tail-preference quartile label ('Q1'..'Q4') of every user.

    Users are ordered by true tail mass, ties broken by their row order (a stable sort), and the rank
    :math:`r \\in \\{0..n-1\\}` maps to quartile :math:`\\lfloor 4r/n \\rfloor`: four groups whose sizes
    differ by at most one, Q1 the most head-leaning, Q4 the most tail-leaning.
    """
    return np.asarray(QUARTILES, dtype=object)[stats.equal_count_groups(tail_mass(truth, buckets), len(QUARTILES))]


def group_deltas(
    diff,
    groups: np.ndarray,
    levels: Sequence,
    *,
    key: tuple[int, ...],
    n_resamples: int = stats.N_RESAMPLES,
    seed: int | None = stats.SEED,
    confidence: float = stats.CONFIDENCE,
) -> list[dict[str, PairedEffect]]:
    """Per-level :class:`~spectra_eval.stats.PairedEffect` for each column of ``diff`` (n,) or (n, m).

    Level i's resampling generator is ``derived_rng(seed, *key, i)``; one draw per level is shared by all
    m columns. Returns one ``{level: PairedEffect}`` dict per column. An empty level gets NaN and n = 0.
    """
    d = np.asarray(diff, dtype=np.float64)
    d2 = d[:, None] if d.ndim == 1 else d
    out: list[dict[str, PairedEffect]] = [{} for _ in range(d2.shape[1])]
    for i, level in enumerate(levels):
        rows = np.flatnonzero(groups == level)
        if rows.size == 0:
            for res in out:
                res[str(level)] = PairedEffect(*(float("nan"),) * 5, 0)
            continue
        sub = d2[rows]
        idx = stats.bootstrap_draw(rows.size, n_resamples, stats.derived_rng(seed, *key, i))
        means = stats.bootstrap_means(sub, idx)
        for j, res in enumerate(out):
            res[str(level)] = stats.paired_effect(sub[:, j], means[:, j], confidence)
    return out


def quartile_deltas(
    js_method,
    js_ref,
    quartiles: np.ndarray,
    *,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int | None = stats.SEED,
    confidence: float = stats.CONFIDENCE,
) -> QuartileResult | list[QuartileResult]:
    """Per-quartile :math:`\\Delta_Q` of ``js_method - js_ref`` and :math:`\\Delta_{Q4}/\\Delta_{Q1}`.

    ``js_method`` may be (n, m) (m methods against one reference; ``js_ref`` (n,) broadcasts); then a list of
    m results is returned. See :class:`QuartileResult` for when the ratio is NaN.
    """
    a = np.asarray(js_method, dtype=np.float64)
    b = np.asarray(js_ref, dtype=np.float64)
    diff = a - (b[:, None] if a.ndim == 2 else b)
    per_col = group_deltas(diff, np.asarray(quartiles), QUARTILES, key=(_QUARTILE_KEY,),
                           n_resamples=n_resamples, seed=seed, confidence=confidence)
    results = [QuartileResult(res, *quartile_ratio(res["Q4"].estimate, res["Q1"].estimate)) for res in per_col]
    return results if a.ndim == 2 else results[0]


def quartile_ratio(q4: float, q1: float) -> tuple[float, str | None]:
    """:math:`\\Delta_{Q4}/\\Delta_{Q1}` and None, or NaN and the reason it is undefined."""
    if not (np.isfinite(q1) and np.isfinite(q4)):
        return float("nan"), "missing delta"
    if q1 == 0 or q4 == 0:
        return float("nan"), "zero delta"
    if np.sign(q1) != np.sign(q4):
        return float("nan"), "opposite signs"
    if abs(q4) > RATIO_MAX * abs(q1):
        return float("nan"), "Q1 negligible"
    return float(q4 / q1), None


# ------------------------------------------------------------------ strata


def align_meta(frame: pd.DataFrame, users: Sequence | np.ndarray, source: str = "meta") -> pd.DataFrame:
    """Check a metadata table and return its stratum columns in ``users`` order.

    The table needs a ``user_id`` column (non-empty, unique ids: :func:`spectra_eval.io.check_user_ids`), at
    least one other column, and a non-empty value for every user of the truth; rows for users not in the truth
    are ignored.
    """
    ids = check_user_ids(frame, source)
    columns = [c for c in frame.columns if c != USER_COL]
    if not columns:
        raise SpectraInputError(f"{source}: no stratum columns besides {USER_COL!r}")
    pos = pd.Index(ids).get_indexer(pd.Index([str(u) for u in users]))
    if (pos < 0).any():
        user = users[int(np.flatnonzero(pos < 0)[0])]
        raise SpectraInputError(f"{source}: user {user!r} of the truth table is missing")
    aligned = frame.iloc[pos][columns].reset_index(drop=True)
    for col in columns:
        empty = aligned[col].isna() | (aligned[col].astype(str).str.strip() == "")
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            raise SpectraInputError(f"{source}: user {users[i]!r} (row {int(pos[i]) + 1}), column {col!r}: empty stratum value")
    return aligned


def stratum_groups(values: pd.Series, quantiles: int = QUANTILES) -> tuple[np.ndarray, list[str], str]:
    """Each user's stratum label, the levels in order, and the grouping (``"levels"`` or ``"quantiles"``).

    Text columns and numeric columns with at most :data:`MAX_LEVELS` distinct values: one level per value,
    sorted by value. Numeric columns with more: ``quantiles`` equal-count quantile strata labelled
    ``"lo–hi"`` by the smallest and largest value they hold.
    """
    numeric = pd.api.types.is_numeric_dtype(values)
    if not numeric or values.nunique() <= MAX_LEVELS:
        levels = [str(v) for v in pd.unique(values.sort_values(kind="stable"))]
        return values.astype(str).to_numpy(), levels, "levels"
    codes = pd.qcut(values, quantiles, labels=False, duplicates="drop").to_numpy()
    names = {}
    for code in np.unique(codes):
        held = values[codes == code]
        names[code] = f"{held.min():g}–{held.max():g}"
    return np.array([names[c] for c in codes], dtype=object), [names[c] for c in sorted(names)], "quantiles"


def stratum_deltas(
    diff,
    meta: pd.DataFrame,
    *,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int | None = stats.SEED,
    confidence: float = stats.CONFIDENCE,
    alpha: float = 0.05,
    quantiles: int = QUANTILES,
) -> list[dict[str, StratumResult]]:
    """Per-level deltas for every column of ``meta`` (aligned to the users of ``diff``, see :func:`align_meta`).

    ``diff`` is (n,) or (n, m); one ``{column: StratumResult}`` dict per column of ``diff`` is returned.
    ``range`` is [min, max] of the level deltas; ``wins`` counts levels with delta < 0 at p < ``alpha``.
    """
    d = np.asarray(diff, dtype=np.float64)
    d2 = d[:, None] if d.ndim == 1 else d
    out: list[dict[str, StratumResult]] = [{} for _ in range(d2.shape[1])]
    for j, col in enumerate(meta.columns):
        groups, levels, grouping = stratum_groups(meta[col], quantiles)
        per_col = group_deltas(d2, groups, levels, key=(_STRATUM_KEY, j), n_resamples=n_resamples,
                               seed=seed, confidence=confidence)
        for res, by_level in zip(out, per_col):
            deltas = np.array([g.estimate for g in by_level.values()])
            wins = sum(g.estimate < 0 and g.pvalue < alpha for g in by_level.values())
            res[str(col)] = StratumResult(by_level, (float(deltas.min()), float(deltas.max())), int(wins),
                                          len(levels), grouping, alpha)
    return out
