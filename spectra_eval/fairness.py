r"""Who gains: paired per-user differences broken down by tail-preference quartile and by stratum.

Every breakdown works on a per-user difference :math:`\delta_u = \mathrm{JS}_{method,u} - \mathrm{JS}_{ref,u}`
(negative = the method is closer to the truth) and reports, per group :math:`G`, the mean
:math:`\Delta_G = \frac{1}{|G|}\sum_{u\in G}\delta_u`, a percentile bootstrap interval from resampling users
*within* the group, the two-sided paired Wilcoxon p-value and :math:`|G|`.

Within-group resampling uses :func:`spectra_eval.stats.derived_rng` keyed by the group (quartile q uses key
``(1, q)``; stratum column j, level l uses ``(2, j, l)``), so it is fixed by the seed and identical for
every method compared against the same reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval import stats
from spectra_eval.buckets import Buckets
from spectra_eval.io import USER_COL
from spectra_eval.validation import SpectraInputError

QUARTILES = ("Q1", "Q2", "Q3", "Q4")
_QUARTILE_KEY = 1
_STRATUM_KEY = 2


@dataclass(frozen=True)
class GroupDelta:
    """Mean paired difference within one group of users, with bootstrap CI and Wilcoxon test."""

    delta: float
    ci_low: float
    ci_high: float
    pvalue: float
    statistic: float
    n: int

    def to_dict(self) -> dict:
        return {"delta": self.delta, "ci_low": self.ci_low, "ci_high": self.ci_high, "p": self.pvalue,
                "statistic": self.statistic, "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping) -> "GroupDelta":
        return cls(_f(d["delta"]), _f(d["ci_low"]), _f(d["ci_high"]), _f(d["p"]), _f(d.get("statistic")), int(d["n"]))


@dataclass(frozen=True)
class QuartileResult:
    """Per-quartile deltas (Q1 = lowest true tail mass) and the ratio :math:`\\Delta_{Q4}/\\Delta_{Q1}`."""

    quartiles: Mapping[str, GroupDelta]
    ratio_q4_q1: float

    def to_dict(self) -> dict:
        return {q: g.to_dict() for q, g in self.quartiles.items()} | {"ratio_q4_q1": self.ratio_q4_q1}

    @classmethod
    def from_dict(cls, d: Mapping) -> "QuartileResult":
        return cls({q: GroupDelta.from_dict(d[q]) for q in QUARTILES if q in d}, _f(d["ratio_q4_q1"]))


@dataclass(frozen=True)
class StratumResult:
    """Deltas per level of one stratum column, their range, and the wins (levels with delta < 0)."""

    levels: Mapping[str, GroupDelta]
    range: tuple[float, float]
    wins: int
    n_levels: int

    def to_dict(self) -> dict:
        return {"levels": {k: g.to_dict() for k, g in self.levels.items()}, "range": list(self.range),
                "wins": self.wins, "n_levels": self.n_levels}

    @classmethod
    def from_dict(cls, d: Mapping) -> "StratumResult":
        return cls({k: GroupDelta.from_dict(g) for k, g in d["levels"].items()},
                   (_f(d["range"][0]), _f(d["range"][1])), int(d["wins"]), int(d["n_levels"]))


def _f(x) -> float:
    return float("nan") if x is None else float(x)


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
) -> list[dict[str, GroupDelta]]:
    """Per-level :class:`GroupDelta` for each column of ``diff`` (n,) or (n, m).

    Level i's resampling generator is ``derived_rng(seed, *key, i)``; one draw per level is shared by all
    m columns. Returns one ``{level: GroupDelta}`` dict per column. An empty level gets NaN and n = 0.
    """
    d = np.asarray(diff, dtype=np.float64)
    d2 = d[:, None] if d.ndim == 1 else d
    out: list[dict[str, GroupDelta]] = [{} for _ in range(d2.shape[1])]
    for i, level in enumerate(levels):
        rows = np.flatnonzero(groups == level)
        if rows.size == 0:
            for res in out:
                res[str(level)] = GroupDelta(*(float("nan"),) * 5, 0)
            continue
        sub = d2[rows]
        idx = stats.bootstrap_indices(rows.size, n_resamples, stats.derived_rng(seed, *key, i))
        low, high = stats.percentile_interval(stats.bootstrap_means(sub, idx), confidence)
        for j, res in enumerate(out):
            test = stats.paired_wilcoxon(sub[:, j])
            res[str(level)] = GroupDelta(float(sub[:, j].mean()), float(low[j]), float(high[j]),
                                         test.pvalue, test.statistic, int(rows.size))
    return out


def quartile_deltas(
    js_method,
    js_ref,
    quartiles: np.ndarray,
    *,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int | None = stats.SEED,
    confidence: float = stats.CONFIDENCE,
) -> QuartileResult:
    """Per-quartile :math:`\\Delta_Q` of ``js_method - js_ref`` and :math:`\\Delta_{Q4}/\\Delta_{Q1}`.

    ``js_method`` may be (n, m) (m methods against one reference; ``js_ref`` (n,) broadcasts); then a list of
    m results is returned. The ratio is NaN when :math:`\\Delta_{Q1} = 0`.
    """
    a = np.asarray(js_method, dtype=np.float64)
    b = np.asarray(js_ref, dtype=np.float64)
    diff = a - (b[:, None] if a.ndim == 2 else b)
    per_col = group_deltas(diff, np.asarray(quartiles), QUARTILES, key=(_QUARTILE_KEY,),
                           n_resamples=n_resamples, seed=seed, confidence=confidence)
    results = [QuartileResult(res, _ratio(res["Q4"].delta, res["Q1"].delta)) for res in per_col]
    return results if a.ndim == 2 else results[0]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den != 0 and np.isfinite(den) and np.isfinite(num) else float("nan")


# ------------------------------------------------------------------ strata


def align_meta(frame: pd.DataFrame, users: Sequence, source: str = "meta") -> pd.DataFrame:
    """Check a metadata table and return its stratum columns in ``users`` order.

    The table needs a ``user_id`` column, at least one other column, one row per user (no duplicates)
    and a non-empty value for every user of the truth; rows for users not in the truth are ignored.
    """
    if USER_COL not in frame.columns:
        raise SpectraInputError(f"{source}: no {USER_COL!r} column")
    columns = [c for c in frame.columns if c != USER_COL]
    if not columns:
        raise SpectraInputError(f"{source}: no stratum columns besides {USER_COL!r}")
    ids = frame[USER_COL].astype(str)
    missing_id = frame[USER_COL].isna() | (ids.str.strip() == "")
    if missing_id.any():
        row = int(np.flatnonzero(missing_id.to_numpy())[0])
        raise SpectraInputError(f"{source}: row {row + 1}, column {USER_COL!r}: empty user id")
    dup = ids.duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise SpectraInputError(f"{source}: user {ids.iloc[row]!r} (row {row + 1}) appears more than once")
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


def stratum_levels(values: pd.Series) -> list[str]:
    """Levels of a stratum column as strings, sorted by value (numerically when the column is numeric)."""
    return [str(v) for v in pd.unique(values.sort_values(kind="stable"))]


def stratum_deltas(
    diff,
    meta: pd.DataFrame,
    *,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int | None = stats.SEED,
    confidence: float = stats.CONFIDENCE,
) -> list[dict[str, StratumResult]]:
    """Per-level deltas for every column of ``meta`` (aligned to the users of ``diff``, see :func:`align_meta`).

    ``diff`` is (n,) or (n, m); one ``{column: StratumResult}`` dict per column of ``diff`` is returned.
    ``range`` is [min, max] of the level deltas; ``wins`` counts levels with delta < 0 (method's mean JS lower).
    """
    d = np.asarray(diff, dtype=np.float64)
    d2 = d[:, None] if d.ndim == 1 else d
    out: list[dict[str, StratumResult]] = [{} for _ in range(d2.shape[1])]
    for j, col in enumerate(meta.columns):
        levels = stratum_levels(meta[col])
        groups = meta[col].astype(str).to_numpy()
        per_col = group_deltas(d2, groups, levels, key=(_STRATUM_KEY, j), n_resamples=n_resamples,
                               seed=seed, confidence=confidence)
        for res, by_level in zip(out, per_col):
            deltas = np.array([g.delta for g in by_level.values()])
            res[str(col)] = StratumResult(by_level, (float(deltas.min()), float(deltas.max())),
                                          int((deltas < 0).sum()), len(levels))
    return out
