r"""The metric catalogue: one :class:`Metric` spec per number ``spectra evaluate`` reports for a method.

A spec names the metric's JSON key, its kernel, its level, its direction, its unit, whether it is compared
pairwise with the reference, and its label. :func:`spectra_eval.evaluation.evaluate`, the per-user table,
the compared set and the report's columns and bold marks all read it; nothing else lists metrics.

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

Kernels take ``(pred, truth, ctx)``: validated (n, K) float64 arrays and a :class:`Context` (buckets,
category labels, ECE bins, Steck's alpha). They never re-check their inputs; the public functions of each
metric family (:mod:`~spectra_eval.divergences`, :mod:`~spectra_eval.ranking`, :mod:`~spectra_eval.exposure`,
:mod:`~spectra_eval.buckets`, :mod:`~spectra_eval.calibration`) check once and call the same kernels.

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
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from spectra_eval.buckets import Buckets, _bias, _bucket_bias, _bucket_mass
from spectra_eval.calibration import _miscalibration_kl, _stratified_ece, _top1_ece
from spectra_eval.divergences import _js, _tv
from spectra_eval.exposure import _exposure_entropy
from spectra_eval.ranking import Rankings, _mass_at_k, _ndcg

USER = "user"
COHORT = "cohort"
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
    :class:`~spectra_eval.ranking.Rankings` cache that lets every ranking metric share one top-k per array."""

    buckets: Buckets | None
    categories: tuple[str, ...]
    n_bins: int = 20
    steck_alpha: float = STECK_ALPHA
    ranks: Rankings = field(default_factory=lambda: Rankings(max(NDCG_KS + ENTROPY_KS + MASS_KS)))


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
    ece = _stratified_ece(pred, truth, ctx.buckets, ctx.n_bins)
    return {
        "ece": {s: float(ece[s].ece) for s in STRATA},
        "ece_pairs": {s: int(ece[s].n_pairs) for s in STRATA},
        "ece_categories": {s: int(ece[s].n_categories) for s in STRATA},
        "reliability": [{"lo": b.lo, "hi": b.hi, "n": b.n, "mean_pred": b.mean_pred, "mean_true": b.mean_true}
                        for b in ece["overall"].bins],
    }


def _top1(pred, truth, ctx: Context) -> dict:
    res = _top1_ece(pred, truth, ctx.n_bins)
    return {"top1_ece": float(res.ece), "top1_pairs": int(res.n_pairs)}


def catalogue(mass_ks: Sequence[int] = MASS_KS) -> tuple[Metric, ...]:
    """Every metric of one evaluation, in report order (mass captured at the chosen ``mass_ks``)."""

    def clip(k: int, pred) -> int:  # k above K means the whole ranking
        return min(int(k), pred.shape[1])

    return (
        Metric("js", lambda p, t, c: _js(p, t, LN2), USER, "lower", UNIT, "JS", compared=True),
        Metric("tv", lambda p, t, c: _tv(p, t), USER, "lower", "probability", "TV", compared=True),
        *(Metric(f"ndcg@{k}", lambda p, t, c, k=k: _ndcg(p, t, clip(k, p), c.ranks), USER, "higher", "",
                 f"NDCG@{k}", compared=True) for k in NDCG_KS),
        *(Metric(f"mass@{k}", lambda p, t, c, k=k: _mass_at_k(p, t, clip(k, p), c.ranks), USER, "higher",
                 "probability", f"mass@{k}") for k in mass_ks),
        *(Metric(f"entropy@{k}", lambda p, t, c, k=k: {f"entropy@{k}": _exposure_entropy(p, clip(k, p), ranks=c.ranks)},
                 COHORT, "higher", UNIT, f"exposure entropy@{k}") for k in ENTROPY_KS),
        Metric("bucket_mass", lambda p, t, c: {"bucket_mass": _bucket_mass(p, c.buckets)}, COHORT, "closest",
               "probability", "bucket mass"),
        Metric("category_bias", lambda p, t, c: {"category_bias": dict(zip(c.categories, map(float, _bias(p, t))))},
               COHORT, None, "probability", "per-category bias"),
        Metric("head_bias", lambda p, t, c: {"head_bias": _bucket_bias(_bias(p, t), c.buckets)["head"]}, COHORT,
               "lower", "probability", "head bias"),
        Metric("bucket_bias", lambda p, t, c: {"bucket_bias": _bucket_bias(_bias(p, t), c.buckets)}, COHORT, "lower",
               "probability", "bucket bias"),
        Metric("ece", _ece, COHORT, "lower", "probability", "ECE",
               fields=("ece", "ece_pairs", "ece_categories", "reliability")),
        Metric("top1_ece", _top1, COHORT, "lower", "probability", "top-1 ECE", fields=("top1_ece", "top1_pairs")),
        Metric("miscalibration_kl", lambda p, t, c: _miscalibration_kl(p, t, c.steck_alpha, LN2), USER, "lower", UNIT,
               "miscalibration KL", json="mean"),
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
