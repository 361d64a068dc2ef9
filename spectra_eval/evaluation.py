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
:meth:`Evaluation.to_frame`, written by ``spectra evaluate`` as ``per_user.parquet``). :class:`Evaluation` follows
the library's result protocol (:class:`spectra_eval.results.Result`): ``summary()`` is what ``spectra evaluate``
prints, ``save(dir)`` writes what it writes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from spectra_eval import stats
from spectra_eval.metrics.buckets import _bucket_mass, _make_buckets
from spectra_eval.metrics.catalogue import (COHORT, ENTROPY_KS, MASS_KS, MOMENTS, NDCG_KS, STECK_ALPHA, UNIT, USER, Context,
                                   Metric, catalogue, metric)
from spectra_eval.metrics.calibration import N_BINS
from spectra_eval.metrics.ranking import Rankings
from spectra_eval.fairness import (QUANTILES, QuartileResult, StratumResult, align_meta, quartile_deltas,
                                   stratum_deltas, tail_mass, tail_quartiles)
from spectra_eval.io import USER_COL, DistributionTable, align_tables, as_table, check_schema, json_errors, user_frame
from spectra_eval.results import Result
from spectra_eval.stats import MeanCI, PairedEffect, _f
from spectra_eval.validation import SpectraInputError, check_positive_int, check_pred_truth

log = logging.getLogger(__name__)

SCHEMA = "spectra.metrics/1"
ALPHA = 0.05
POPULATION = ("CIs and tests are about users drawn i.i.d. like this cohort, each judged on their observed future "
              "mix (the truth table); every number is about the observed mix, not a latent preference")


# ------------------------------------------------------------------ result objects


@dataclass(frozen=True)
class CategoryTest:
    """Wilcoxon test of per-user |pred(c) - true(c)|, method vs reference, with the Holm-adjusted p."""

    pvalue: float
    p_holm: float
    statistic: float
    mean_abs_err_method: float
    mean_abs_err_reference: float

    @property
    def error_diff(self) -> float:
        """Mean absolute error of the method minus the reference's (negative: the method is closer)."""
        return self.mean_abs_err_method - self.mean_abs_err_reference

    def to_dict(self) -> dict:
        return {"p": self.pvalue, "p_holm": self.p_holm, "statistic": self.statistic,
                "mean_abs_err_method": self.mean_abs_err_method, "mean_abs_err_reference": self.mean_abs_err_reference}

    @classmethod
    def from_dict(cls, d: Mapping) -> "CategoryTest":
        return cls(_f(d.get("p")), _f(d.get("p_holm")), _f(d.get("statistic")), _f(d.get("mean_abs_err_method")),
                   _f(d.get("mean_abs_err_reference")))


@dataclass(frozen=True)
class MethodResult:
    """Every metric of one method, by catalogue key.

    ``means`` holds the per-user metrics' cohort means with CIs; ``cohort`` the cohort-level fields
    (JSON-ready values: floats, dicts by bucket or category, reliability bins). ``result[key]`` looks in both.
    """

    means: Mapping[str, MeanCI]
    cohort: Mapping[str, Any]
    name: str = field(default="?", compare=False)
    source: str = field(default="<memory>", compare=False)

    def __getitem__(self, key: str) -> Any:
        if key in self.means:
            return self.means[key]
        if key in self.cohort:
            return self.cohort[key]
        raise SpectraInputError(f"{self.source}: missing key {key!r} under methods.{self.name}")

    def __contains__(self, key: str) -> bool:
        return key in self.means or key in self.cohort

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def to_dict(self) -> dict:
        mean_only = [k for k in self.means if _json_style(k) == "mean"]
        out: dict = {k: v.to_dict() for k, v in self.means.items() if k not in mean_only}
        out |= dict(self.cohort)
        for k in mean_only:
            out[k] = self.means[k].mean
            out[f"{k}_ci"] = self.means[k].to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping, name: str = "?", source: str = "<memory>") -> "MethodResult":
        means, cohort = {}, {}
        for key, value in d.items():
            if key.endswith("_ci") and isinstance(value, Mapping):
                means[key[:-3]] = MeanCI.from_dict(value)
            elif _json_style(key) == "ci" and isinstance(value, Mapping) and "mean" in value:
                means[key] = MeanCI.from_dict(value)
            elif f"{key}_ci" not in d:
                cohort[key] = _restore(value)
        return cls(means, cohort, name, source)


def _json_style(key: str) -> str | None:
    try:
        spec = metric(key)
    except KeyError:
        return "ci"  # a metric this version does not know: keep what the document says
    return spec.json if spec.level == USER else None


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "nan" if x is None else format(x, fmt)


def _opt_int(x: Any) -> int | None:
    return None if x is None else int(x)


def _restore(value: Any) -> Any:
    """A JSON value with nulls back to NaN (numbers), recursively."""
    if value is None:
        return float("nan")
    if isinstance(value, Mapping):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


@dataclass(frozen=True)
class Comparison:
    """A method against the reference: paired effects per compared metric, per-category tests, quartiles and
    strata. ``category_wins`` / ``category_losses``: categories with Holm p < alpha where the method's mean
    absolute error is lower / higher."""

    method: str
    reference: str
    diffs: Mapping[str, PairedEffect]
    per_category: Mapping[str, CategoryTest]
    category_wins: int | None
    category_losses: int | None
    quartiles: QuartileResult
    strata: Mapping[str, StratumResult] | None = None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"method": self.method, "reference": self.reference}
        out |= {k: v.to_dict("mean_diff") for k, v in self.diffs.items()}
        out |= {"per_category": {c: t.to_dict() for c, t in self.per_category.items()},
                "category_wins": self.category_wins, "category_losses": self.category_losses,
                "quartiles": self.quartiles.to_dict()}
        if self.strata is not None:
            out["strata"] = {c: s.to_dict() for c, s in self.strata.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "Comparison":
        diffs = {k: PairedEffect.from_dict(v, "mean_diff") for k, v in d.items()
                 if isinstance(v, Mapping) and "mean_diff" in v}
        per_category = {c: CategoryTest.from_dict(t) for c, t in d["per_category"].items()}
        strata = d.get("strata")
        return cls(d["method"], d["reference"], diffs, per_category,
                   _opt_int(d.get("category_wins")), _opt_int(d.get("category_losses")),
                   QuartileResult.from_dict(d["quartiles"]),
                   None if strata is None else {c: StratumResult.from_dict(s) for c, s in strata.items()})


@dataclass(frozen=True)
class Settings:
    """How the evaluation was run (file names are the sources of the tables, or '<memory>')."""

    truth: str
    preds: Mapping[str, str]
    reference: str | None
    bootstrap: int = stats.N_RESAMPLES
    seed: int | None = stats.SEED
    bins: int = 20
    confidence: float = stats.CONFIDENCE
    meta: str | None = None
    mass_ks: tuple[int, ...] = MASS_KS
    alpha: float = ALPHA
    steck_alpha: float = STECK_ALPHA
    strata_quantiles: int = QUANTILES
    history: str | None = None  # the history table of taste_js (written only when given)
    lists: Mapping[str, Mapping] = field(default_factory=dict)  # list methods: name -> {items, weights}
    collapse: str | None = None  # the category map the tables were summed through (written only when given)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"truth": self.truth, "preds": dict(self.preds), "reference": self.reference,
               "bootstrap": self.bootstrap, "seed": self.seed, "bins": self.bins, "confidence": self.confidence,
               "test": stats.TEST_DESCRIPTION, "correction": stats.CORRECTION, "meta": self.meta,
               "zero_method": stats.ZERO_METHOD, "alpha": self.alpha, "steck_alpha": self.steck_alpha,
               "mass_ks": list(self.mass_ks), "strata_quantiles": self.strata_quantiles}
        if self.history is not None:
            out["history"] = self.history
        if self.lists:
            out["lists"] = {name: dict(spec) for name, spec in self.lists.items()}
        if self.collapse is not None:
            out["collapse"] = self.collapse
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "Settings":
        return cls(d.get("truth", "?"), dict(d.get("preds") or {}), d.get("reference"),
                   int(d.get("bootstrap", stats.N_RESAMPLES)), d.get("seed"), int(d.get("bins", 20)),
                   float(d.get("confidence", stats.CONFIDENCE)), d.get("meta"),
                   tuple(int(k) for k in d.get("mass_ks", MASS_KS)),
                   float(d["alpha"]) if d.get("alpha") is not None else 1.0 - float(d.get("confidence", 0.95)),
                   float(d.get("steck_alpha", STECK_ALPHA)), int(d.get("strata_quantiles", QUANTILES)),
                   d.get("history"), {k: dict(v) for k, v in (d.get("lists") or {}).items()}, d.get("collapse"))

    @property
    def test(self) -> str:
        return stats.TEST_DESCRIPTION


@dataclass(frozen=True)
class PerUser:
    """Per-user arrays behind the cohort numbers (not part of the JSON)."""

    users: np.ndarray
    metrics: Mapping[str, Mapping[str, np.ndarray]]  # method -> metric -> (n,)
    truth_tail_mass: np.ndarray
    tail_quartile: np.ndarray
    meta: pd.DataFrame | None = None


@dataclass(frozen=True, repr=False)
class Evaluation(Result):
    """The whole evaluation. ``to_dict`` gives the ``spectra.metrics/1`` JSON; ``from_dict`` inverts it;
    ``summary()`` is the console table, ``to_frame()`` the per-user metrics, ``save(dir)`` writes both."""

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
    source: str = field(default="<memory>", compare=False, repr=False)

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
    def from_dict(cls, d: Mapping, source: str = "metrics.json") -> "Evaluation":
        """Rebuild from ``to_dict()`` output (or a partial document with the same keys).

        A missing required key is a one-line :class:`SpectraInputError` naming ``source`` and the key path.
        """
        check_schema(d, SCHEMA, source)
        with json_errors(source):
            methods = {k: MethodResult.from_dict(v, k, source) for k, v in d["methods"].items()}
            if not methods:
                raise SpectraInputError(f"{source}: 'methods' is empty")
            comparisons = {k: Comparison.from_dict(v) for k, v in (d.get("comparisons") or {}).items()}
            for key, comp in comparisons.items():
                for role in ("method", "reference"):
                    if getattr(comp, role) not in methods:
                        raise SpectraInputError(f"{source}: comparisons[{key!r}].{role} is {getattr(comp, role)!r}, "
                                                f"which is not in methods ({', '.join(methods)})")
            settings = Settings.from_dict(d.get("settings") or {})
            if settings.reference is not None and settings.reference not in methods:
                raise SpectraInputError(f"{source}: settings.reference {settings.reference!r} is not in methods "
                                        f"({', '.join(methods)})")
            truth = d.get("truth") or {}
            return cls(
                settings=settings,
                n_users=int(d["n_users"]),
                n_categories=int(d["n_categories"]),
                categories=tuple(d.get("categories") or ()),
                buckets={k: tuple(v) for k, v in (d.get("buckets") or {}).items()},
                truth_bucket_mass={k: _f(v) for k, v in (truth.get("bucket_mass") or {}).items()},
                truth_category_mass={k: _f(v) for k, v in (truth.get("category_mass") or {}).items()},
                methods=methods,
                comparisons=comparisons,
                unit=d.get("unit", UNIT),
                source=source,
            )

    def comparison_for(self, method: str) -> Comparison | None:
        """The comparison of ``method`` against the reference (None for the reference itself)."""
        return next((c for c in self.comparisons.values() if c.method == method), None)

    def summary(self) -> str:
        """A short fixed-width table of the headline numbers (what ``spectra evaluate`` prints)."""
        metrics = self.to_dict()
        rows = [f"{metrics['n_users']} users x {metrics['n_categories']} categories; "
                f"{metrics['settings']['bootstrap']} bootstrap resamples, 95% CIs; JS in bits"]
        head = f"{'method':<16}{'JS':>24}{'NDCG@10':>24}{'personal.':>10}{'tail mass':>11}{'ECE':>8}{'head ECE':>10}"
        rows += [head, "-" * len(head)]

        def ci(m: Mapping) -> str:
            return f"{m['mean']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"

        for name, m in metrics["methods"].items():
            personal = (m.get("personalization") or {}).get("mean")
            rows.append(f"{name:<16}{ci(m['js']):>24}{ci(m['ndcg@10']):>24}{_num(personal, '.3f'):>10}"
                        f"{m['bucket_mass']['tail']:>11.3f}"
                        f"{_num(m['ece']['overall']):>8}{_num(m['ece']['head']):>10}")
        rows.append(f"(truth tail mass {metrics['truth']['bucket_mass']['tail']:.3f})")
        for name, c in metrics["comparisons"].items():
            q = c["quartiles"]
            rows.append(f"{name}: dJS {c['js']['mean_diff']:+.3f} [{c['js']['ci_low']:+.3f}, {c['js']['ci_high']:+.3f}] "
                        f"p={c['js']['p']:.2g}; dNDCG@10 {c['ndcg@10']['mean_diff']:+.3f} p={c['ndcg@10']['p']:.2g}; "
                        f"categories won {c['category_wins']}/{len(c['per_category'])} (Holm); "
                        f"Q4/Q1 {_num(q['ratio_q4_q1'], '.2f')}")
        return "\n".join(rows)

    def outputs(self) -> dict[str, Any]:
        """``metrics.json`` and (when computed here) ``per_user.parquet``."""
        out: dict[str, Any] = {"metrics.json": self.to_dict()}
        if self.per_user is not None:
            out["per_user.parquet"] = self.to_frame()
        return out

    def to_frame(self) -> pd.DataFrame:
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
    """Every per-user metric of the catalogue for one method, key -> (n,) array (NDCG/mass k clipped to K).

    ``pred`` and ``truth`` are checked here (:func:`~spectra_eval.validation.check_pred_truth`); inside
    :func:`evaluate` the tables are already checked and the kernels are called directly.
    """
    pred, truth = check_pred_truth(pred, truth)
    ctx = Context(buckets=None, categories=(), steck_alpha=steck_alpha)
    return _per_user(catalogue(mass_ks), pred, truth, ctx)


def _per_user(specs: Sequence[Metric], pred: np.ndarray, truth: np.ndarray, ctx: Context) -> dict[str, np.ndarray]:
    return {m.key: m.kernel(pred, truth, ctx) for m in specs if m.level == USER and m.applies(ctx)}


def _cohort(specs: Sequence[Metric], pred: np.ndarray, truth: np.ndarray, ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in specs:
        if m.level == COHORT and m.applies(ctx):
            out |= m.kernel(pred, truth, ctx)
    return out


def _moment_columns(specs: Sequence[Metric], aligned: Mapping[str, DistributionTable], truth: np.ndarray,
                    ctx: Context) -> tuple[list[tuple], list[np.ndarray]]:
    """Every ``moments`` metric of every method up to its bootstrap: the arrays to resample with the shared
    paired draw (per spec the truth-only columns, which one bootstrap serves for every method, then each
    method's prediction columns) and one row per (method, metric): (method, spec, keep, value, parts kept,
    index of the truth columns, index of the prediction columns) into those arrays."""
    rows: list[tuple] = []
    arrays: list[np.ndarray] = []
    for spec in (m for m in specs if m.level == MOMENTS):
        if spec.reference is None or spec.keep is None or spec.statistic is None:
            raise ValueError(f"moments metric {spec.key!r} needs reference, keep and statistic")
        ref = spec.reference(truth, ctx)
        ref_means, ref_at = ref.mean(axis=0), len(arrays)
        arrays.append(ref)
        for name, table in aligned.items():
            cols = spec.kernel(table.probs, truth, ctx)
            keep = spec.keep(table.probs, truth)
            value = float(spec.statistic(cols.mean(axis=0), ref_means, keep))
            rows.append((name, spec, keep, value, int(keep.sum()), ref_at, len(arrays)))
            arrays.append(cols)
    return rows, arrays


def _per_category_tests(pred: np.ndarray, ref: np.ndarray, truth: np.ndarray,
                        categories: Sequence[str]) -> tuple[dict[str, CategoryTest], np.ndarray]:
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
    truth: DistributionTable | pd.DataFrame,
    preds: Mapping[str, DistributionTable | pd.DataFrame],
    reference: str,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = stats.SEED,
    n_bins: int = N_BINS,
    meta: pd.DataFrame | None = None,
    *,
    meta_source: str | None = None,
    confidence: float = stats.CONFIDENCE,
    mass_ks: Sequence[int] = MASS_KS,
    alpha: float = ALPHA,
    strata_quantiles: int = QUANTILES,
    history: DistributionTable | pd.DataFrame | None = None,
    lists: Mapping[str, Mapping] | None = None,
) -> Evaluation:
    """Score every table in ``preds`` against ``truth`` and compare each with ``preds[reference]``.

    Parameters
    ----------
    truth, preds : DistributionTable or DataFrame
        Tables are checked when built, DataFrames here (``user_id`` column or index, one column per category;
        errors name them ``truth`` and ``preds['NAME']``); method tables are aligned to the truth's users and
        categories
        (:func:`spectra_eval.io.align_tables`). Every metric of :func:`spectra_eval.metrics.catalogue.catalogue`
        is computed by its kernel on these arrays, without re-checking them.
    reference : str
        Name in ``preds`` that every other method is compared with (differences are method - reference).
    n_resamples, seed, confidence
        Paired user-level bootstrap: one draw ``default_rng(seed).integers(0, n, (n_resamples, n))`` for all
        methods and metrics; percentile intervals.
    n_bins : int
        Equal-width bins for the ECEs.
    meta : DataFrame, optional
        ``user_id`` plus stratum columns (:func:`spectra_eval.fairness.align_meta`); ``meta_source`` names it.
        Numeric columns with many values are grouped into ``strata_quantiles`` quantile strata.
    alpha : float
        Level for category wins (Holm) and stratum wins.
    history : DistributionTable or DataFrame, optional
        Each user's history distribution (e.g. ``history-uhf.csv``), aligned like a method table; adds the
        catalogue's ``taste_js`` (JS of each method to it, :mod:`spectra_eval.analyses.lists`).
    lists : dict, optional
        ``name -> {"items": FILE, "weights": "uniform"|"dcg"}`` for methods built from recommendation lists
        (:mod:`spectra_eval.analyses.lists`), recorded in ``settings.lists``.
    """
    if not preds:
        raise SpectraInputError("no method tables given")
    truth = as_table(truth, "truth")
    preds = {name: as_table(table, f"preds[{name!r}]", like=truth) for name, table in preds.items()}
    if history is not None:
        history = as_table(history, "history", like=truth)
    if meta is not None:
        meta = user_frame(meta, meta_source or "meta")
    if reference not in preds:
        raise SpectraInputError(f"reference {reference!r} is not one of the methods ({', '.join(preds)})")
    check_positive_int(n_resamples, "n_resamples", whole_numbers=True,
                       message="the number of bootstrap resamples must be a positive integer, got {value!r}")
    check_positive_int(n_bins, "n_bins", whole_numbers=True,
                       message="the number of ECE bins must be a positive integer, got {value!r}")
    check_positive_int(strata_quantiles, "strata_quantiles", minimum=2,
                       message="the number of quantile strata must be an integer >= 2, got {value!r}")
    aligned = align_tables(truth, preds)
    meta_frame = None if meta is None else align_meta(meta, truth.users, meta_source or "meta")
    t = truth.probs
    n, n_cat = t.shape
    categories = truth.categories
    buckets = _make_buckets(t)
    specs = catalogue(tuple(mass_ks))
    history_probs = None if history is None else align_tables(truth, {"history": history})["history"].probs
    ctx = Context(buckets, categories, int(n_bins), STECK_ALPHA, Rankings(max(NDCG_KS + ENTROPY_KS + tuple(mass_ks))),
                  history=history_probs)
    names = list(aligned)
    show = n * n_cat > 2_000_000

    log.info("per-user metrics for %d methods (%d users x %d categories)", len(names), n, n_cat)
    per_user = {name: _per_user(specs, aligned[name].probs, t, ctx) for name in names}
    metric_names = list(per_user[names[0]])
    columns = [(name, m) for name in names for m in metric_names]
    col_of = {c: i for i, c in enumerate(columns)}
    matrix = np.column_stack([per_user[name][m] for name, m in columns])

    log.info("paired bootstrap: %d resamples of %d users", n_resamples, n)
    indices = stats.bootstrap_draw(n, int(n_resamples), seed)  # the one paired draw, streamed (never held)
    moment_rows, moment_arrays = _moment_columns(specs, aligned, t, ctx)
    boot, *resampled = stats.bootstrap_means_many([matrix, *moment_arrays], indices)  # one pass over the draw
    low, high = stats.percentile_interval(boot, confidence)
    means = matrix.mean(axis=0)
    moments: dict[str, dict] = {name: {} for name in names}  # (value, resampled values (B,), parts kept)
    for name, spec, keep, value, kept, ref_at, cols_at in moment_rows:
        moments[name][spec.key] = (value, spec.statistic(resampled[cols_at], resampled[ref_at], keep), kept)
    methods = {}
    for name in tqdm(names, desc="cohort metrics", leave=False, disable=not show):
        ci = {m: MeanCI(float(means[col_of[name, m]]), float(low[col_of[name, m]]), float(high[col_of[name, m]]))
              for m in metric_names}
        cohort = _cohort(specs, aligned[name].probs, t, ctx)
        for key, (value, resampled, kept) in moments[name].items():
            lo, hi = stats.finite_percentile_interval(resampled, confidence)
            cohort[key] = {"mean": value, "ci_low": lo, "ci_high": hi, "n_categories": kept,
                           "n_skipped": n_cat - kept}
        methods[name] = MethodResult(ci, cohort, name)

    quartile = tail_quartiles(t, buckets)
    others = [name for name in names if name != reference]
    ref_js = per_user[reference]["js"]
    js_others = np.column_stack([per_user[name]["js"] for name in others]) if others else np.empty((n, 0))
    quart = cast(list[QuartileResult], quartile_deltas(js_others, ref_js, quartile, n_resamples=int(n_resamples),
                                                       seed=seed, confidence=confidence)) if others else []
    strata = (stratum_deltas(js_others - ref_js[:, None], meta_frame, n_resamples=int(n_resamples), seed=seed,
                             confidence=confidence, alpha=alpha, quantiles=int(strata_quantiles))
              if meta_frame is not None and others else [None] * len(others))

    comparisons = {}
    compared = [m.key for m in specs if m.compared]
    for j, name in enumerate(tqdm(others, desc="comparisons", leave=False, disable=not show)):
        # both means were resampled with the same user indices, so their difference is the paired bootstrap
        diffs = {m: stats.paired_effect(per_user[name][m] - per_user[reference][m],
                                        boot[:, col_of[name, m]] - boot[:, col_of[reference, m]], confidence)
                 for m in compared if m in per_user[name]}
        diffs |= {m: stats.bootstrap_effect(moments[name][m][0] - moments[reference][m][0],
                                            moments[name][m][1] - moments[reference][m][1], confidence, n)
                  for m in compared if m in moments[name]}
        per_cat, p_holm = _per_category_tests(aligned[name].probs, aligned[reference].probs, t, categories)
        err_diff = np.array([c.error_diff for c in per_cat.values()])
        significant = p_holm < alpha
        comparisons[f"{name} vs {reference}"] = Comparison(
            name, reference, diffs, per_cat, int((significant & (err_diff < 0)).sum()),
            int((significant & (err_diff > 0)).sum()), quart[j], strata[j])

    settings = Settings(truth.source, {k: v.source for k, v in preds.items()}, reference, int(n_resamples), seed,
                        int(n_bins), confidence, None if meta is None else (meta_source or "<memory>"),
                        tuple(mass_ks), alpha, STECK_ALPHA, int(strata_quantiles),
                        None if history is None else history.source, dict(lists or {}))
    return Evaluation(
        settings=settings,
        n_users=n,
        n_categories=n_cat,
        categories=categories,
        buckets={k: tuple(v) for k, v in buckets.labels(categories).items()},
        truth_bucket_mass=_bucket_mass(t, buckets),
        truth_category_mass=dict(zip(categories, map(float, t.mean(axis=0)))),
        methods=methods,
        comparisons=comparisons,
        per_user=PerUser(truth.users, per_user, tail_mass(t, buckets), quartile, meta_frame),
    )
