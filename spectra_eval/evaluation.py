r"""One evaluation of several methods' distribution tables against the truth, as one object.

:func:`evaluate` computes, for each method, every per-user metric (JS and TV to the truth, NDCG@5/@10,
mass captured@k, Steck's miscalibration KL), their cohort means with paired percentile bootstrap CIs, the
cohort-level metrics (exposure entropy@1/@3, bucket mass, per-category and head bias, soft-label ECE overall
and per bucket with reliability bins, top-1 ECE), and for every method against the reference the paired
differences (bootstrap CI + Wilcoxon), the per-category Wilcoxon tests on absolute errors with Holm, the
tail-preference quartiles and, with a metadata table, the per-stratum deltas.

The result, :class:`Evaluation`, is a tree of frozen dataclasses. ``to_dict()`` is exactly the
``spectra.metrics/1`` JSON of the team contract plus these documented extras:

* ``settings``: ``zero_method``, ``alpha`` (level for category wins), ``steck_alpha``, ``mass_ks``;
* ``methods.NAME``: ``mass@k`` and ``miscalibration_kl`` is the cohort mean (its CI under
  ``miscalibration_kl_ci``), ``bucket_bias`` (mean |bias| per bucket), ``top1_pairs``;
* ``comparisons.X``: ``tv`` (paired diff like ``js``), ``n`` in each paired diff, ``category_wins`` /
  ``category_losses`` (categories with Holm p < alpha where the method's mean absolute error is lower /
  higher), ``statistic`` and ``n`` in each quartile / stratum level.

``from_dict(to_dict())`` rebuilds an equal object (per-user arrays are not in the JSON; see
:meth:`Evaluation.per_user_frame`, written by ``spectra evaluate`` as ``per_user.parquet``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from spectra_eval import stats
from spectra_eval.buckets import Buckets, bucket_bias, bucket_mass, make_buckets, per_category_bias
from spectra_eval.calibration import ReliabilityBin, miscalibration_kl, stratified_ece, top1_ece
from spectra_eval.divergences import js, tv
from spectra_eval.exposure import exposure_entropy_at_k
from spectra_eval.fairness import (QuartileResult, StratumResult, _f, align_meta, quartile_deltas, stratum_deltas,
                                   tail_mass, tail_quartiles)
from spectra_eval.io import USER_COL, DistributionTable, align_tables
from spectra_eval.ranking import mass_captured_at_k, ndcg_at_k
from spectra_eval.validation import SpectraInputError, check_positive_int

log = logging.getLogger(__name__)

SCHEMA = "spectra.metrics/1"
UNIT = "bits"
NDCG_KS = (5, 10)
ENTROPY_KS = (1, 3)
MASS_KS = (5, 10)
COMPARED = ("js", "tv", "ndcg@5", "ndcg@10")
STECK_ALPHA = 0.01
ALPHA = 0.05
STRATA = ("overall", "head", "mid", "tail")


# ------------------------------------------------------------------ result objects


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
        return cls(_f(d["mean"]), _f(d["ci_low"]), _f(d["ci_high"]))


@dataclass(frozen=True)
class PairedDiff:
    """Mean paired difference (method - reference) with bootstrap CI and Wilcoxon signed-rank test."""

    mean_diff: float
    ci_low: float
    ci_high: float
    pvalue: float
    statistic: float
    n: int

    def to_dict(self) -> dict:
        return {"mean_diff": self.mean_diff, "ci_low": self.ci_low, "ci_high": self.ci_high, "p": self.pvalue,
                "statistic": self.statistic, "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping) -> "PairedDiff":
        return cls(_f(d["mean_diff"]), _f(d["ci_low"]), _f(d["ci_high"]), _f(d["p"]), _f(d["statistic"]), int(d["n"]))


@dataclass(frozen=True)
class CategoryTest:
    """Wilcoxon test of per-user |pred(c) - true(c)|, method vs reference, with the Holm-adjusted p."""

    pvalue: float
    p_holm: float
    statistic: float
    mean_abs_err_method: float
    mean_abs_err_reference: float

    def to_dict(self) -> dict:
        return {"p": self.pvalue, "p_holm": self.p_holm, "statistic": self.statistic,
                "mean_abs_err_method": self.mean_abs_err_method, "mean_abs_err_reference": self.mean_abs_err_reference}

    @classmethod
    def from_dict(cls, d: Mapping) -> "CategoryTest":
        return cls(_f(d["p"]), _f(d["p_holm"]), _f(d["statistic"]), _f(d["mean_abs_err_method"]),
                   _f(d["mean_abs_err_reference"]))


@dataclass(frozen=True)
class MethodResult:
    """Every metric of one method. ``means`` holds the per-user metrics' means with CIs, by name."""

    means: Mapping[str, MeanCI]
    entropy: Mapping[int, float]
    bucket_mass: Mapping[str, float]
    category_bias: Mapping[str, float]
    head_bias: float
    bucket_bias: Mapping[str, float]
    ece: Mapping[str, float]
    ece_pairs: Mapping[str, int]
    ece_categories: Mapping[str, int]
    reliability: tuple[ReliabilityBin, ...]
    top1_ece: float
    top1_pairs: int
    miscalibration_kl: float

    def to_dict(self) -> dict:
        out: dict = {k: v.to_dict() for k, v in self.means.items() if k != "miscalibration_kl"}
        out |= {f"entropy@{k}": v for k, v in self.entropy.items()}
        out |= {
            "bucket_mass": dict(self.bucket_mass), "category_bias": dict(self.category_bias),
            "head_bias": self.head_bias, "bucket_bias": dict(self.bucket_bias),
            "ece": dict(self.ece), "ece_pairs": dict(self.ece_pairs), "ece_categories": dict(self.ece_categories),
            "reliability": [{"lo": b.lo, "hi": b.hi, "n": b.n, "mean_pred": b.mean_pred, "mean_true": b.mean_true}
                            for b in self.reliability],
            "top1_ece": self.top1_ece, "top1_pairs": self.top1_pairs, "miscalibration_kl": self.miscalibration_kl,
        }
        if "miscalibration_kl" in self.means:
            out["miscalibration_kl_ci"] = self.means["miscalibration_kl"].to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "MethodResult":
        means = {k: MeanCI.from_dict(v) for k, v in d.items()
                 if isinstance(v, Mapping) and "mean" in v and k != "miscalibration_kl_ci"}
        if "miscalibration_kl_ci" in d:
            means["miscalibration_kl"] = MeanCI.from_dict(d["miscalibration_kl_ci"])
        return cls(
            means=means,
            entropy={int(k.split("@")[1]): _f(v) for k, v in d.items() if k.startswith("entropy@")},
            bucket_mass={k: _f(v) for k, v in d["bucket_mass"].items()},
            category_bias={k: _f(v) for k, v in d["category_bias"].items()},
            head_bias=_f(d["head_bias"]),
            bucket_bias={k: _f(v) for k, v in d.get("bucket_bias", {}).items()},
            ece={k: _f(v) for k, v in d["ece"].items()},
            ece_pairs={k: int(v) for k, v in d["ece_pairs"].items()},
            ece_categories={k: int(v) for k, v in d["ece_categories"].items()},
            reliability=tuple(ReliabilityBin(_f(b["lo"]), _f(b["hi"]), int(b["n"]), _f(b["mean_pred"]),
                                             _f(b["mean_true"])) for b in d["reliability"]),
            top1_ece=_f(d["top1_ece"]),
            top1_pairs=int(d.get("top1_pairs", 0)),
            miscalibration_kl=_f(d["miscalibration_kl"]),
        )


@dataclass(frozen=True)
class Comparison:
    """A method against the reference: paired diffs, per-category tests, quartiles and strata."""

    method: str
    reference: str
    diffs: Mapping[str, PairedDiff]
    per_category: Mapping[str, CategoryTest]
    category_wins: int
    category_losses: int
    quartiles: QuartileResult
    strata: Mapping[str, StratumResult] | None = None

    def to_dict(self) -> dict:
        out = {"method": self.method, "reference": self.reference}
        out |= {k: v.to_dict() for k, v in self.diffs.items()}
        out |= {"per_category": {c: t.to_dict() for c, t in self.per_category.items()},
                "category_wins": self.category_wins, "category_losses": self.category_losses,
                "quartiles": self.quartiles.to_dict()}
        if self.strata is not None:
            out["strata"] = {c: s.to_dict() for c, s in self.strata.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "Comparison":
        diffs = {k: PairedDiff.from_dict(v) for k, v in d.items() if isinstance(v, Mapping) and "mean_diff" in v}
        strata = d.get("strata")
        return cls(d["method"], d["reference"], diffs,
                   {c: CategoryTest.from_dict(t) for c, t in d["per_category"].items()},
                   int(d["category_wins"]), int(d["category_losses"]), QuartileResult.from_dict(d["quartiles"]),
                   None if strata is None else {c: StratumResult.from_dict(s) for c, s in strata.items()})


@dataclass(frozen=True)
class Settings:
    """How the evaluation was run (file names are the sources of the tables, or '<memory>')."""

    truth: str
    preds: Mapping[str, str]
    reference: str
    bootstrap: int = stats.N_RESAMPLES
    seed: int = stats.SEED
    bins: int = 20
    confidence: float = stats.CONFIDENCE
    meta: str | None = None
    mass_ks: tuple[int, ...] = MASS_KS
    alpha: float = ALPHA
    steck_alpha: float = STECK_ALPHA

    def to_dict(self) -> dict:
        return {"truth": self.truth, "preds": dict(self.preds), "reference": self.reference,
                "bootstrap": self.bootstrap, "seed": self.seed, "bins": self.bins, "confidence": self.confidence,
                "test": stats.TEST_DESCRIPTION, "correction": stats.CORRECTION, "meta": self.meta,
                "zero_method": stats.ZERO_METHOD, "alpha": self.alpha, "steck_alpha": self.steck_alpha,
                "mass_ks": list(self.mass_ks)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Settings":
        return cls(d["truth"], dict(d["preds"]), d["reference"], int(d["bootstrap"]), int(d["seed"]), int(d["bins"]),
                   float(d["confidence"]), d.get("meta"), tuple(int(k) for k in d.get("mass_ks", MASS_KS)),
                   float(d.get("alpha", ALPHA)), float(d.get("steck_alpha", STECK_ALPHA)))


@dataclass(frozen=True)
class PerUser:
    """Per-user arrays behind the cohort numbers (not part of the JSON)."""

    users: np.ndarray
    metrics: Mapping[str, Mapping[str, np.ndarray]]  # method -> metric -> (n,)
    truth_tail_mass: np.ndarray
    tail_quartile: np.ndarray
    meta: pd.DataFrame | None = None


@dataclass(frozen=True)
class Evaluation:
    """The whole evaluation. ``to_dict`` gives the ``spectra.metrics/1`` JSON; ``from_dict`` inverts it."""

    settings: Settings
    n_users: int
    n_categories: int
    categories: tuple[str, ...]
    buckets: Mapping[str, tuple[str, ...]]
    truth_bucket_mass: Mapping[str, float]
    truth_category_mass: Mapping[str, float]
    methods: Mapping[str, MethodResult]
    comparisons: Mapping[str, Comparison]
    unit: str = UNIT
    per_user: PerUser | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "settings": self.settings.to_dict(),
            "n_users": self.n_users,
            "n_categories": self.n_categories,
            "unit": self.unit,
            "categories": list(self.categories),
            "buckets": {k: list(v) for k, v in self.buckets.items()},
            "truth": {"bucket_mass": dict(self.truth_bucket_mass), "category_mass": dict(self.truth_category_mass)},
            "methods": {name: m.to_dict() for name, m in self.methods.items()},
            "comparisons": {name: c.to_dict() for name, c in self.comparisons.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Evaluation":
        if d.get("schema") != SCHEMA:
            raise SpectraInputError(f"not a {SCHEMA} document (schema {d.get('schema')!r})")
        return cls(
            settings=Settings.from_dict(d["settings"]),
            n_users=int(d["n_users"]),
            n_categories=int(d["n_categories"]),
            categories=tuple(d["categories"]),
            buckets={k: tuple(v) for k, v in d["buckets"].items()},
            truth_bucket_mass={k: _f(v) for k, v in d["truth"]["bucket_mass"].items()},
            truth_category_mass={k: _f(v) for k, v in d["truth"]["category_mass"].items()},
            methods={k: MethodResult.from_dict(v) for k, v in d["methods"].items()},
            comparisons={k: Comparison.from_dict(v) for k, v in d["comparisons"].items()},
            unit=d.get("unit", UNIT),
        )

    def per_user_frame(self) -> pd.DataFrame:
        """One row per (user, method): ``user_id, method`` then every per-user metric, the user's true tail
        mass and tail-preference quartile, and the metadata strata (when given)."""
        if self.per_user is None:
            raise ValueError("this Evaluation has no per-user data (it was rebuilt from JSON)")
        pu = self.per_user
        frames = []
        for name, metrics in pu.metrics.items():
            frame = pd.DataFrame({USER_COL: pu.users.astype(str), "method": name} | dict(metrics))
            frame["truth_tail_mass"] = pu.truth_tail_mass
            frame["tail_quartile"] = pu.tail_quartile.astype(str)
            if pu.meta is not None:
                for col in pu.meta.columns:
                    frame[f"meta:{col}" if col in frame.columns else col] = pu.meta[col].astype(str).to_numpy()
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ computation


def per_user_metrics(pred: np.ndarray, truth: np.ndarray, mass_ks: Sequence[int] = MASS_KS,
                     steck_alpha: float = STECK_ALPHA) -> dict[str, np.ndarray]:
    """Every per-user metric of one method, name -> (n,) array (NDCG/mass k clipped to K)."""
    out = {"js": js(pred, truth, unit=UNIT), "tv": tv(pred, truth)}
    for k in NDCG_KS:
        out[f"ndcg@{k}"] = ndcg_at_k(pred, truth, k)
    for k in mass_ks:
        out[f"mass@{k}"] = mass_captured_at_k(pred, truth, k)
    out["miscalibration_kl"] = miscalibration_kl(pred, truth, alpha=steck_alpha, unit=UNIT)
    return out


def _cohort_metrics(pred, truth, buckets: Buckets, categories, n_bins: int) -> dict:
    ece = stratified_ece(pred, truth, buckets, n_bins)
    top1 = top1_ece(pred, truth, n_bins)
    bias = per_category_bias(pred, truth)
    bbias = bucket_bias(pred, truth, buckets)
    return dict(
        entropy={k: float(exposure_entropy_at_k(pred, k)) for k in ENTROPY_KS},
        bucket_mass=bucket_mass(pred, buckets),
        category_bias=dict(zip(categories, map(float, bias))),
        head_bias=bbias["head"],
        bucket_bias=bbias,
        ece={s: float(ece[s].ece) for s in STRATA},
        ece_pairs={s: int(ece[s].n_pairs) for s in STRATA},
        ece_categories={s: int(ece[s].n_categories) for s in STRATA},
        reliability=tuple(ece["overall"].bins),
        top1_ece=float(top1.ece),
        top1_pairs=int(top1.n_pairs),
    )


def _per_category_tests(pred, ref, truth, categories) -> tuple[dict[str, CategoryTest], np.ndarray]:
    """One Wilcoxon test per category on |pred(c) - true(c)| - |ref(c) - true(c)|, Holm across categories."""
    err_m = np.abs(pred - truth)
    err_r = np.abs(ref - truth)
    tests = stats.paired_wilcoxon_columns(err_m - err_r)
    p = np.array([t.pvalue for t in tests])
    p_holm = stats.holm(p)
    mean_m, mean_r = err_m.mean(axis=0), err_r.mean(axis=0)
    out = {c: CategoryTest(float(p[i]), float(p_holm[i]), tests[i].statistic, float(mean_m[i]), float(mean_r[i]))
           for i, c in enumerate(categories)}
    return out, p_holm


def evaluate(
    truth: DistributionTable,
    preds: Mapping[str, DistributionTable],
    reference: str,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = stats.SEED,
    n_bins: int = 20,
    meta: pd.DataFrame | None = None,
    *,
    meta_source: str | None = None,
    confidence: float = stats.CONFIDENCE,
    mass_ks: Sequence[int] = MASS_KS,
    alpha: float = ALPHA,
) -> Evaluation:
    """Score every table in ``preds`` against ``truth`` and compare each with ``preds[reference]``.

    Parameters
    ----------
    truth, preds : DistributionTable
        Method tables are aligned to the truth's users and categories (:func:`spectra_eval.io.align_tables`).
    reference : str
        Name in ``preds`` that every other method is compared with (differences are method - reference).
    n_resamples, seed, confidence
        Paired user-level bootstrap: one draw ``default_rng(seed).integers(0, n, (n_resamples, n))`` for all
        methods and metrics; percentile intervals.
    n_bins : int
        Equal-width bins for the ECEs.
    meta : DataFrame, optional
        ``user_id`` plus stratum columns (:func:`spectra_eval.fairness.align_meta`); ``meta_source`` names it.
    """
    if not preds:
        raise SpectraInputError("no method tables given")
    if reference not in preds:
        raise SpectraInputError(f"reference {reference!r} is not one of the methods ({', '.join(preds)})")
    check_positive_int(n_resamples, "n_resamples", whole_numbers=True,
                       message="the number of bootstrap resamples must be a positive integer, got {value!r}")
    check_positive_int(n_bins, "n_bins", whole_numbers=True,
                       message="the number of ECE bins must be a positive integer, got {value!r}")
    aligned = align_tables(truth, preds)
    meta_frame = None if meta is None else align_meta(meta, truth.users, meta_source or "meta")
    t = truth.probs
    n, n_cat = t.shape
    categories = truth.categories
    buckets = make_buckets(t)
    names = list(aligned)
    show = n * n_cat > 2_000_000

    log.info("per-user metrics for %d methods (%d users x %d categories)", len(names), n, n_cat)
    per_user = {name: per_user_metrics(aligned[name].probs, t, mass_ks) for name in names}
    metric_names = list(per_user[names[0]])
    columns = [(name, m) for name in names for m in metric_names]
    col_of = {c: i for i, c in enumerate(columns)}
    matrix = np.column_stack([per_user[name][m] for name, m in columns])

    log.info("paired bootstrap: %d resamples of %d users", n_resamples, n)
    boot = stats.bootstrap_means(matrix, stats.bootstrap_indices(n, int(n_resamples), seed))
    low, high = stats.percentile_interval(boot, confidence)
    means = matrix.mean(axis=0)

    methods = {}
    for name in tqdm(names, desc="cohort metrics", leave=False, disable=not show):
        ci = {m: MeanCI(float(means[col_of[name, m]]), float(low[col_of[name, m]]), float(high[col_of[name, m]]))
              for m in metric_names}
        cohort = _cohort_metrics(aligned[name].probs, t, buckets, categories, int(n_bins))
        methods[name] = MethodResult(means=ci, miscalibration_kl=ci["miscalibration_kl"].mean, **cohort)

    quartile = tail_quartiles(t, buckets)
    others = [name for name in names if name != reference]
    ref_js = per_user[reference]["js"]
    js_others = np.column_stack([per_user[name]["js"] for name in others]) if others else np.empty((n, 0))
    quart = quartile_deltas(js_others, ref_js, quartile, n_resamples=int(n_resamples), seed=seed,
                            confidence=confidence) if others else []
    strata = (stratum_deltas(js_others - ref_js[:, None], meta_frame, n_resamples=int(n_resamples), seed=seed,
                             confidence=confidence) if meta_frame is not None and others else [None] * len(others))

    comparisons = {}
    for j, name in enumerate(tqdm(others, desc="comparisons", leave=False, disable=not show)):
        diffs = {}
        for m in COMPARED:
            d = per_user[name][m] - per_user[reference][m]
            test = stats.paired_wilcoxon(d)
            # both means were resampled with the same user indices, so their difference is the paired bootstrap
            lo, hi = stats.percentile_interval(boot[:, col_of[name, m]] - boot[:, col_of[reference, m]], confidence)
            diffs[m] = PairedDiff(float(d.mean()), float(lo), float(hi), test.pvalue, test.statistic, n)
        per_cat, p_holm = _per_category_tests(aligned[name].probs, aligned[reference].probs, t, categories)
        err_diff = np.array([c.mean_abs_err_method - c.mean_abs_err_reference for c in per_cat.values()])
        significant = p_holm < alpha
        comparisons[f"{name} vs {reference}"] = Comparison(
            name, reference, diffs, per_cat, int((significant & (err_diff < 0)).sum()),
            int((significant & (err_diff > 0)).sum()), quart[j], strata[j])

    settings = Settings(truth.source, {k: v.source for k, v in preds.items()}, reference, int(n_resamples), seed,
                        int(n_bins), confidence, None if meta is None else (meta_source or "<memory>"),
                        tuple(mass_ks), alpha, STECK_ALPHA)
    return Evaluation(
        settings=settings,
        n_users=n,
        n_categories=n_cat,
        categories=categories,
        buckets={k: tuple(v) for k, v in buckets.labels(categories).items()},
        truth_bucket_mass=bucket_mass(t, buckets),
        truth_category_mass=dict(zip(categories, map(float, t.mean(axis=0)))),
        methods=methods,
        comparisons=comparisons,
        per_user=PerUser(truth.users, per_user, tail_mass(t, buckets), quartile, meta_frame),
    )
