"""``steer``: align the tables to the requests, compute each request's quantities and every population's
statistics (definitions: :mod:`spectra_eval.analyses.steering`).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import cast

import numpy as np
import pandas as pd

from spectra_eval import stats
from spectra_eval.analyses.steering.inputs import DIRECTIONS, Requests
from spectra_eval.analyses.steering.kernels import PerRequest, per_request
from spectra_eval.analyses.steering.results import (UNIT, CategoryShift, GroupResult, SteeringResult,
                                                    SteeringSettings)
from spectra_eval.io import DistributionTable, check_same_categories
from spectra_eval.metrics.buckets import _make_buckets
from spectra_eval.stats import MeanCI
from spectra_eval.validation import SpectraInputError, check_positive_int

log = logging.getLogger(__name__)


def _mean_ci(values: np.ndarray, n_resamples: int, seed: int, confidence: float) -> MeanCI:
    ci = cast(stats.BootstrapCI, stats.bootstrap_ci(values, n_resamples, seed=seed, confidence=confidence))  # draw streamed, never held
    return MeanCI(ci.estimate, ci.ci_low, ci.ci_high)


def _nanmean(x: np.ndarray) -> tuple[float, int]:
    ok = np.isfinite(x)
    return (float(x[ok].mean()) if ok.any() else float("nan")), int(ok.sum())


def _group(population: str, pr: PerRequest, rows: np.ndarray, n_resamples: int, seed: int,
           confidence: float) -> GroupResult:
    shift = pr.shift[rows]
    rel, n_rel = _nanmean(pr.relative_shift[rows])
    off, n_off = _nanmean(pr.off_target_js[rows])
    test = stats.paired_wilcoxon(shift)
    success = int((shift > 0).sum())
    return GroupResult(population, int(rows.size), _mean_ci(shift, n_resamples, seed, confidence),
                       success / rows.size, success, rel, n_rel, int(rows.size) - n_rel, off, n_off,
                       int(rows.size) - n_off, test.pvalue, test.statistic)


def steer(base: DistributionTable, steered: DistributionTable, requests: Requests, *,
          truth: DistributionTable | None = None, n_resamples: int = stats.N_RESAMPLES, seed: int = stats.SEED,
          confidence: float = stats.CONFIDENCE) -> SteeringResult:
    """Evaluate steered probes against their base (module docstring for every definition).

    Parameters
    ----------
    base : DistributionTable
        One row per user (the unsteered probe).
    steered : DistributionTable
        One row per request, keyed by request id in its ``user_id`` column, over the base's categories.
    requests : Requests
        From :func:`read_requests`; targets must be base categories and users base users.
    truth : DistributionTable, optional
        Only to split categories into head/mid/tail (cohort-mean true mass); without it the base table's
        cohort mean is used (recorded as ``settings.buckets_from``).
    n_resamples, seed, confidence
        Percentile bootstrap of each population's mean shift over its requests.
    """
    check_positive_int(n_resamples, "n_resamples", whole_numbers=True,
                       message="the number of bootstrap resamples must be a positive integer, got {value!r}")
    categories = base.categories
    requests.check_targets(categories, base.source)
    user_rows = requests.check_users(base.users, base.source)
    rows_s = pd.Index(steered.users).get_indexer(pd.Index(requests.ids))
    if (rows_s < 0).any():
        i = int(np.flatnonzero(rows_s < 0)[0])
        raise SpectraInputError(f"{steered.source}: no row for request {requests.ids[i]!r} of {requests.source}")
    if len(steered.users) != len(requests):
        extra = pd.Index(steered.users).difference(pd.Index(requests.ids))
        raise SpectraInputError(f"{steered.source}: row {extra[0]!r} is not a request of {requests.source}")
    check_same_categories(steered.categories, categories, steered.source, base.source)
    cols_s = pd.Index(steered.categories).get_indexer(categories)
    b_rows = base.probs[user_rows]
    s_rows = steered.probs[np.ix_(rows_s, cols_s)]
    mask = requests.target_mask(categories)
    pr = per_request(b_rows, s_rows, mask, requests.signs)
    log.info("steering: %d requests of %d users over %d categories", len(requests), len(set(requests.users)),
             len(categories))

    args = (int(n_resamples), seed, confidence)
    n = len(requests)
    overall = _group(f"all {n} requests", pr, np.arange(n), *args)
    by: dict[str, dict[str, GroupResult]] = {}
    for direction in DIRECTIONS:
        for gran in pd.unique(requests.granularities):
            rows = np.flatnonzero((requests.directions == direction) & (requests.granularities == gran))
            if rows.size:
                by.setdefault(direction, {})[gran] = _group(
                    f"requests with direction {direction!r} and granularity {gran!r}", pr, rows, *args)
    flat = [(d, g) for d, groups in by.items() for g in groups]
    p_holm = stats.holm([by[d][g].pvalue for d, g in flat])
    for (d, g), p in zip(flat, p_holm):
        by[d][g] = replace(by[d][g], p_holm=float(p))

    single = np.array([len(t) == 1 for t in requests.targets])
    first = np.array([t[0] for t in requests.targets], dtype=object)
    by_category: dict[str, dict[str, CategoryShift]] = {}
    for c in categories:
        for direction in DIRECTIONS:
            rows = np.flatnonzero(single & (first == c) & (requests.directions == direction))
            if rows.size:
                shift = pr.shift[rows]
                by_category.setdefault(c, {})[direction] = CategoryShift(
                    f"requests with the single target {c!r} and direction {direction!r}", int(rows.size),
                    _mean_ci(shift, *args), float((shift > 0).mean()))

    if truth is not None:
        check_same_categories(truth.categories, categories, truth.source, base.source)
        bucket_source = truth.probs[:, pd.Index(truth.categories).get_indexer(categories)]
    else:
        bucket_source = base.probs
    buckets = _make_buckets(bucket_source).labels(categories)

    frame = requests.frame()
    frame = frame.assign(base_mass=pr.base_mass, steered_mass=pr.steered_mass, shift=pr.shift,
                         success=pr.shift > 0, headroom=pr.headroom, relative_shift=pr.relative_shift,
                         off_target_js=pr.off_target_js)
    settings = SteeringSettings(base.source, steered.source, requests.source, None if truth is None else truth.source,
                                int(n_resamples), seed, confidence)
    return SteeringResult(settings, n, int(len(set(requests.users))), tuple(categories),
                          {k: tuple(v) for k, v in buckets.items()}, overall, by, by_category, UNIT, frame)
