"""``fuse``: align the inputs, score every lambda, bootstrap every slice and compare each lambda with 0.

Definitions and statistics: :mod:`spectra_eval.analyses.fusion`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval import stats
from spectra_eval.analyses.fusion.inputs import (K, LAMBDAS, POPULARITY_SLICES, SLICES, Candidates, ItemCategories,
                                                 parse_lambdas, popularity_slices)
from spectra_eval.analyses.fusion.kernels import metric_names, per_user_metrics
from spectra_eval.analyses.fusion.results import (DEFAULT_NAME, FusionResult, FusionSettings, LambdaComparison,
                                                  Population, Selection, SliceResult)
from spectra_eval.io import USER_COL, DistributionTable
from spectra_eval.stats import MeanCI, PairedEffect
from spectra_eval.validation import SpectraInputError, check_positive_int

log = logging.getLogger(__name__)

SELECTION_RULE = "highest mean ndcg@{k} over all users (ties: the smaller lambda)"
_SLICE_KEY = 3  # derived_rng key of the within-slice draws (fairness uses 1 and 2)


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
    name: str = DEFAULT_NAME,
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
    comparisons: dict[str, dict[str, LambdaComparison]] = {lam: {} for lam in effects}
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
