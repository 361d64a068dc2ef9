r"""The metric catalogue: one :class:`Metric` spec per number ``spectra evaluate`` reports for a method.

A spec names the metric's JSON key, its kernel, its level, its direction, its unit, whether it is compared
pairwise with the reference, and its label. :func:`spectra_eval.evaluation.evaluate`, the per-user table,
the compared set and the report's metric columns and bold marks all read it; nothing else lists the metrics of
``spectra evaluate``. (The downstream analyses define their own numbers in their modules: fusion's NDCG@k and
Recall@k per popularity slice, steering's shift and success rate, list taste; the certificates theirs.)

Levels
------
``user``
    The kernel returns one value per user, shape (n,). The cohort mean gets a percentile bootstrap CI from
    the shared paired draw; ``compared`` metrics also get the paired difference against the reference
    (bootstrap CI + Wilcoxon signed-rank). JSON: ``methods.NAME.KEY = {mean, ci_low, ci_high}`` (or, for
    ``json="mean"``, the bare mean with the interval under ``KEY_ci``).
``cohort``
    The kernel returns a dict of JSON-ready fields about the whole cohort (``fields`` lists them, the first
    is the metric's own key), written as ``methods.NAME.FIELD``.
``moments``
    A cohort statistic of per-user moments, bootstrapped like a mean: the kernel returns per-user columns
    (n, m) of the prediction (``reference`` adds truth-only columns, shared by every method), and ``statistic``
    maps their column means (or any resample's means, shape (..., m)) to the value. It gets a percentile CI from
    the same paired draw, and ``compared`` gives the difference against the reference with a CI and a two-sided
    bootstrap p-value. JSON: ``methods.NAME.KEY = {mean, ci_low, ci_high, ...}``.

Kernels take ``(pred, truth, ctx)``: validated (n, K) float64 arrays and a :class:`Context` (buckets,
category labels, ECE bins, Steck's alpha). They never re-check their inputs; the public functions of each
metric family (:mod:`~spectra_eval.metrics.divergences`, :mod:`~spectra_eval.metrics.ranking`, :mod:`~spectra_eval.metrics.exposure`,
:mod:`~spectra_eval.metrics.buckets`, :mod:`~spectra_eval.metrics.calibration`) check once and call the same kernels.

Adding a metric
---------------
Write its kernel (and a checked public function) in its family module, then add one line to
:func:`catalogue`, e.g.::

    Metric("hellinger", lambda p, t, c: _hellinger(p, t), USER, "lower", "", "Hellinger", compared=True),

and it is computed, bootstrapped, compared, written to ``metrics.json`` and ``per_user.parquet``, and read
back by :meth:`~spectra_eval.evaluation.Evaluation.from_dict`.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, cast

import numpy as np

from spectra_eval.metrics.buckets import Buckets, _bias, _bucket_bias, _bucket_mass
from spectra_eval.metrics.calibration import N_BINS, _miscalibration_kl, _stratified_ece, _top1_ece
from spectra_eval.metrics.divergences import _js, _tv
from spectra_eval.metrics.exposure import _exposure_entropy
from spectra_eval.metrics.ranking import Rankings, _mass_at_k, _ndcg

USER = "user"
COHORT = "cohort"
MOMENTS = "moments"
LN2 = math.log(2.0)
UNIT = "bits"
NDCG_KS = (5, 10)
ENTROPY_KS = (1, 3)
MASS_KS = (5, 10)
STECK_ALPHA = 0.01
STRATA = ("overall", "head", "mid", "tail")
ARROWS = {"lower": " ↓", "higher": " ↑", "closest": "", None: ""}


@dataclass(frozen=True)
class Context:
    """What kernels need besides the arrays: buckets, labels, ECE bins, Steck's alpha, and the
    :class:`~spectra_eval.metrics.ranking.Rankings` cache that lets every ranking metric share one top-k per array."""

    buckets: Buckets | None
    categories: tuple[str, ...]
    n_bins: int = N_BINS
    steck_alpha: float = STECK_ALPHA
    ranks: Rankings = field(default_factory=lambda: Rankings(max(NDCG_KS + ENTROPY_KS + MASS_KS)))
    history: np.ndarray | None = None  # (n, K) each user's history distribution, aligned with the truth

    @property
    def bucket_split(self) -> Buckets:
        """:attr:`buckets`, which the cohort-level metrics that use them need (the evaluation always sets them)."""
        if self.buckets is None:
            raise ValueError("this metric needs the head/mid/tail buckets (Context.buckets)")
        return self.buckets

    @property
    def history_probs(self) -> np.ndarray:
        """:attr:`history`, which metrics with ``needs="history"`` use (they run only when it is set)."""
        if self.history is None:
            raise ValueError("this metric needs each user's history distribution (Context.history)")
        return self.history


@dataclass(frozen=True)
class Metric:
    """One reported metric (see the module docstring).

    ``direction`` says what "best" means in a table (``"lower"``, ``"higher"``, ``"closest"`` to the truth,
    or None: never bold); ``unit`` is ``"bits"``, ``"probability"``, ``"count"`` or ``""`` (unitless).
    """

    key: str
    kernel: Callable[[np.ndarray, np.ndarray, Context], Any]
    level: str
    direction: str | None
    unit: str
    label: str
    compared: bool = False
    json: str = "ci"
    fields: tuple[str, ...] = ()
    reference: Callable[[np.ndarray, Context], np.ndarray] | None = None  # moments: truth-only columns
    keep: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # moments: which parts enter (pred, truth)
    statistic: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None  # moments: (pred, ref, keep)
    needs: str | None = None  # a Context field the kernel reads: computed only when it is set (e.g. "history")

    def applies(self, ctx: Context) -> bool:
        """Whether ``ctx`` holds what the kernel needs (metrics without ``needs`` always apply)."""
        return self.needs is None or getattr(ctx, self.needs) is not None

    @property
    def outputs(self) -> tuple[str, ...]:
        """JSON fields a cohort kernel returns (its own key first)."""
        return self.fields or (self.key,)

    @property
    def header(self) -> str:
        """Column header: label, unit in parentheses when it is bits, and the direction arrow."""
        unit = f" ({self.unit})" if self.unit == UNIT else ""
        return f"{self.label}{unit}{ARROWS[self.direction]}"


def _ece(pred, truth, ctx: Context) -> dict:
    ece = _stratified_ece(pred, truth, ctx.bucket_split, ctx.n_bins)
    return {
        "ece": {s: float(ece[s].ece) for s in STRATA},
        "ece_pairs": {s: int(ece[s].n_pairs) for s in STRATA},
        "ece_categories": {s: int(cast(int, ece[s].n_categories)) for s in STRATA},  # set for every stratum
        "reliability": [{"lo": b.lo, "hi": b.hi, "n": b.n, "mean_pred": b.mean_pred, "mean_true": b.mean_true}
                        for b in ece["overall"].bins],
    }


def _top1(pred, truth, ctx: Context) -> dict:
    res = _top1_ece(pred, truth, ctx.n_bins)
    return {"top1_ece": float(res.ece), "top1_pairs": int(res.n_pairs)}


def _pearson_columns(pred, truth, ctx: Context) -> np.ndarray:
    """Per-user moments of the prediction for per-category correlations: p, p^2, p t (each (n, K))."""
    return np.hstack([pred, pred * pred, pred * truth])


def _truth_moments(truth, ctx: Context) -> np.ndarray:
    return np.hstack([truth, truth * truth])


def _varying_categories(pred, truth) -> np.ndarray:
    """Categories whose predicted and true columns both vary across users (the others have no correlation)."""
    return (np.ptp(pred, axis=0) > 0) & (np.ptp(truth, axis=0) > 0)


def _mean_correlation(pred_means: np.ndarray, truth_means: np.ndarray, keep: np.ndarray) -> np.ndarray:
    r"""Mean over the kept categories of :math:`\mathrm{corr}_u(\hat p_u(c), \theta_u(c))` from moment means.

    With :math:`E` the (resampled) mean over users, :math:`\mathrm{cov} = E[\hat p\theta] - E[\hat p]E[\theta]`,
    :math:`\mathrm{var} = E[x^2] - E[x]^2`. A category constant (variance <= 1e-14 of its second moment) in a
    resample is left out of that resample's mean (NaN if none is left).
    """
    k = keep.shape[0]
    mp, mpp, mpt = (pred_means[..., i * k:(i + 1) * k] for i in range(3))
    mt, mtt = truth_means[..., :k], truth_means[..., k:]
    vp, vt = mpp - mp * mp, mtt - mt * mt
    ok = keep & (vp > 1e-14 * mpp) & (vt > 1e-14 * mtt)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(ok, (mpt - mp * mt) / np.sqrt(np.where(ok, vp * vt, 1.0)), np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no category varies
        return np.nanmean(corr, axis=-1)


def catalogue(mass_ks: Sequence[int] = MASS_KS) -> tuple[Metric, ...]:
    """Every metric of one evaluation, in report order (mass captured at the chosen ``mass_ks``)."""

    def clip(k: int, pred) -> int:  # k above K means the whole ranking
        return min(int(k), pred.shape[1])

    def ranked(kernel: Callable[..., np.ndarray], k: int) -> Callable[[np.ndarray, np.ndarray, Context], np.ndarray]:
        return lambda p, t, c: kernel(p, t, clip(k, p), c.ranks)

    def entropy(k: int) -> Callable[[np.ndarray, np.ndarray, Context], dict]:
        return lambda p, t, c: {f"entropy@{k}": _exposure_entropy(p, clip(k, p), ranks=c.ranks)}

    return (
        Metric("js", lambda p, t, c: _js(p, t, LN2), USER, "lower", UNIT, "JS", compared=True),
        Metric("tv", lambda p, t, c: _tv(p, t), USER, "lower", "probability", "TV", compared=True),
        *(Metric(f"ndcg@{k}", ranked(_ndcg, k), USER, "higher", "", f"NDCG@{k}", compared=True) for k in NDCG_KS),
        *(Metric(f"mass@{k}", ranked(_mass_at_k, k), USER, "higher", "probability", f"mass@{k}") for k in mass_ks),
        *(Metric(f"entropy@{k}", entropy(k), COHORT, "higher", UNIT, f"exposure entropy@{k}") for k in ENTROPY_KS),
        Metric("bucket_mass", lambda p, t, c: {"bucket_mass": _bucket_mass(p, c.bucket_split)}, COHORT, "closest",
               "probability", "bucket mass"),
        Metric("category_bias", lambda p, t, c: {"category_bias": dict(zip(c.categories, map(float, _bias(p, t))))},
               COHORT, None, "probability", "per-category bias"),
        Metric("head_bias", lambda p, t, c: {"head_bias": _bucket_bias(_bias(p, t), c.bucket_split)["head"]}, COHORT,
               "lower", "probability", "head bias"),
        Metric("bucket_bias", lambda p, t, c: {"bucket_bias": _bucket_bias(_bias(p, t), c.bucket_split)}, COHORT, "lower",
               "probability", "bucket bias"),
        Metric("ece", _ece, COHORT, "lower", "probability", "ECE",
               fields=("ece", "ece_pairs", "ece_categories", "reliability")),
        Metric("top1_ece", _top1, COHORT, "lower", "probability", "top-1 ECE", fields=("top1_ece", "top1_pairs")),
        Metric("miscalibration_kl", lambda p, t, c: _miscalibration_kl(p, t, c.steck_alpha, LN2), USER, "lower", UNIT,
               "miscalibration KL", json="mean"),
        # taste distance to the user's history, JS(pred_u, history_u) in bits (definition and source in
        # spectra_eval.analyses.lists); computed only when the evaluation is given a history table
        Metric("taste_js", lambda p, t, c: _js(p, c.history_probs, LN2), USER, "lower", UNIT, "taste JS to history",
               needs="history"),
        # mean over categories of the Pearson correlation across users between predicted and true mass: a
        # context-blind predictor (the cohort prior) scores ~0 while JS and NDCG barely tell it from a
        # personalised one on short future windows
        Metric("personalization", _pearson_columns, MOMENTS, "higher", "", "personalization", compared=True,
               reference=_truth_moments, keep=_varying_categories, statistic=_mean_correlation),
    )


def metric(key: str, mass_ks: Sequence[int] = MASS_KS) -> Metric:
    """The spec of ``key`` (``mass@k`` for any k); KeyError if the catalogue has none."""
    match = re.fullmatch(r"mass@(\d+)", key)
    for spec in catalogue((int(match.group(1)),) if match else mass_ks):
        if spec.key == key:
            return spec
    raise KeyError(key)


def compared_keys(mass_ks: Sequence[int] = MASS_KS) -> tuple[str, ...]:
    """Keys of the per-user metrics compared pairwise with the reference, in catalogue order."""
    return tuple(m.key for m in catalogue(mass_ks) if m.compared)
