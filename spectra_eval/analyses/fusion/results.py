"""Fusion results: typed, frozen, and the ``spectra.fusion/1`` JSON (``to_dict``/``from_dict``).

:class:`FusionResult` is one run (one base ranker x one candidate set) and follows the library's result protocol
(:class:`spectra_eval.results.Result`: ``summary``, ``to_frame``, ``save``, notebook display);
:class:`FusionRuns` is several runs for one report.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from spectra_eval import stats
from spectra_eval.analyses.fusion.inputs import K, LAMBDAS
from spectra_eval.io import check_schema, json_errors
from spectra_eval.results import Result
from spectra_eval.stats import MeanCI, PairedEffect, _f
from spectra_eval.validation import SpectraInputError

SCHEMA = "spectra.fusion/1"
#: run name of a fusion without ``--name``: written as ``fusion.json`` (any other name: ``fusion-NAME.json``)
DEFAULT_NAME = "fusion"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def output_name(name: str | None) -> str:
    """``fusion.json``, or ``fusion-NAME.json`` for a run name of letters, digits, '.', '_' and '-'."""
    if name is None:
        return "fusion.json"
    if not NAME_PATTERN.fullmatch(name):
        raise SpectraInputError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (it becomes a file name)")
    return f"fusion-{name}.json"


@dataclass(frozen=True)
class SliceResult:
    """Means of the per-user metrics over one slice's users, with bootstrap intervals, and its user count."""

    metrics: Mapping[str, MeanCI]
    n: int

    def to_dict(self) -> dict:
        return {k: v.to_dict() for k, v in self.metrics.items()} | {"n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping) -> "SliceResult":
        return cls({k: MeanCI.from_dict(v) for k, v in d.items() if isinstance(v, Mapping)}, int(d["n"]))


@dataclass(frozen=True)
class LambdaComparison:
    """Per-user NDCG@k at lambda minus at lambda = 0 over a slice: :class:`PairedEffect` plus Holm's p."""

    effect: PairedEffect
    p_holm: float

    def to_dict(self) -> dict:
        return self.effect.to_dict("delta") | {"p_holm": self.p_holm}

    @classmethod
    def from_dict(cls, d: Mapping) -> "LambdaComparison":
        return cls(PairedEffect.from_dict(d, "delta"), _f(d.get("p_holm")))


@dataclass(frozen=True)
class Population:
    """Who the numbers are about: the users of the candidates file, with their held-out items."""

    n_users: int
    n_candidates: int
    candidates_per_user: tuple[int, int]
    positives_per_user: tuple[int, int]
    slice_users: Mapping[str, int]
    candidates_file: str = "?"

    @property
    def description(self) -> str:
        lo, hi = self.positives_per_user
        held = "one held-out item each" if lo == hi == 1 else f"{lo}-{hi} held-out items each"
        return f"the {self.n_users:,} users of the candidates file {self.candidates_file}, {held}"

    @property
    def negatives(self) -> int | None:
        """Sampled negatives per user when every user has the same candidate and positive counts."""
        (c0, c1), (p0, p1) = self.candidates_per_user, self.positives_per_user
        return c0 - p0 if c0 == c1 and p0 == p1 else None

    def to_dict(self) -> dict:
        return {"description": self.description, "n_users": self.n_users, "n_candidates": self.n_candidates,
                "candidates_per_user": {"min": self.candidates_per_user[0], "max": self.candidates_per_user[1]},
                "positives_per_user": {"min": self.positives_per_user[0], "max": self.positives_per_user[1]},
                "slice_users": dict(self.slice_users), "candidates_file": self.candidates_file}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Population":
        c, p = d["candidates_per_user"], d["positives_per_user"]
        return cls(int(d["n_users"]), int(d["n_candidates"]), (int(c["min"]), int(c["max"])),
                   (int(p["min"]), int(p["max"])), {k: int(v) for k, v in d["slice_users"].items()},
                   d.get("candidates_file", "?"))


@dataclass(frozen=True)
class Selection:
    """How ``best_lambda`` was chosen: on ``"validation"`` (``--select-on`` file) or on ``"test"`` data."""

    best_lambda: str
    chosen_on: str
    file: str
    criterion: str
    ndcg: Mapping[str, float]  # mean NDCG@k over all users of the selection file, per lambda

    def to_dict(self) -> dict:
        note = None if self.chosen_on == "validation" else (
            "chosen on the test candidates themselves: the best-lambda row is optimistic")
        return {"chosen_on": self.chosen_on, "file": self.file, "criterion": self.criterion,
                "mean_ndcg": dict(self.ndcg), "note": note}

    @classmethod
    def from_dict(cls, best: str, d: Mapping) -> "Selection":
        return cls(str(best), d["chosen_on"], d.get("file", "?"), d.get("criterion", ""),
                   {k: _f(v) for k, v in (d.get("mean_ndcg") or {}).items()})


@dataclass(frozen=True)
class FusionSettings:
    candidates: str
    spectra: str
    items: str
    popularity: str
    lambdas: tuple[str, ...] = LAMBDAS
    k: int = K
    bootstrap: int = stats.N_RESAMPLES
    seed: int | None = stats.SEED
    confidence: float = stats.CONFIDENCE
    select_on: str | None = None

    @property
    def reference(self) -> str:
        """The lambda = 0 entry as written (the base ranker alone)."""
        return next(lam for lam in self.lambdas if float(lam) == 0.0)

    def to_dict(self) -> dict:
        return {"candidates": self.candidates, "spectra": self.spectra, "items": self.items,
                "popularity": self.popularity, "select_on": self.select_on, "lambdas": list(self.lambdas),
                "reference_lambda": self.reference, "k": self.k, "score": "z(base score) + lambda * z(SPECTRA affinity)",
                "bootstrap": self.bootstrap, "seed": self.seed, "confidence": self.confidence,
                "test": stats.TEST_DESCRIPTION, "zero_method": stats.ZERO_METHOD,
                "correction": f"{stats.CORRECTION} across the lambdas > 0, per slice",
                "slices": "items by training count, thirds like category buckets; a user's slice is its "
                          "held-out item's"}

    @classmethod
    def from_dict(cls, d: Mapping) -> "FusionSettings":
        return cls(d.get("candidates", "?"), d.get("spectra", "?"), d.get("items", "?"), d.get("popularity", "?"),
                   tuple(str(x) for x in d.get("lambdas", LAMBDAS)), int(d.get("k", K)),
                   int(d.get("bootstrap", stats.N_RESAMPLES)), d.get("seed"),
                   float(d.get("confidence", stats.CONFIDENCE)), d.get("select_on"))


@dataclass(frozen=True, repr=False)
class FusionResult(Result):
    """One fusion run (one base ranker x one candidate set). ``to_dict`` is the ``spectra.fusion/1`` JSON.

    ``results[LAMBDA][SLICE]`` and ``comparisons[LAMBDA][SLICE]`` (lambdas > 0 only) are keyed by the lambda as
    written in ``--lambdas``; ``per_user`` (not in the JSON; :meth:`to_frame`) holds the per-user metrics.
    :meth:`save` writes :attr:`file_name` (``fusion.json``, or ``fusion-NAME.json`` for a named run).
    """

    name: str
    backbone: str
    settings: FusionSettings
    population: Population
    slice_items: Mapping[str, int]
    results: Mapping[str, Mapping[str, SliceResult]]
    comparisons: Mapping[str, Mapping[str, LambdaComparison]]
    selection: Selection
    per_user: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    source: str = field(default="<memory>", compare=False, repr=False)

    @property
    def best_lambda(self) -> str:
        return self.selection.best_lambda

    @property
    def ndcg_key(self) -> str:
        return f"ndcg@{self.settings.k}"

    @property
    def file_name(self) -> str:
        """``fusion.json`` for the default run name, ``fusion-NAME.json`` otherwise."""
        return output_name(None if self.name == DEFAULT_NAME else self.name)

    def summary(self) -> str:
        """NDCG@k per lambda and slice, and the comparison of the best lambda with lambda = 0."""
        key, ref, best = self.ndcg_key, self.settings.reference, self.best_lambda
        lines = [f"{self.population.description}; {key}, {self.settings.bootstrap} bootstrap resamples",
                 f"{'lambda':>8}" + "".join(f"{s:>10}" for s in self.results[ref])]
        for lam, by in self.results.items():
            lines.append(f"{lam:>8}" + "".join(f"{r.metrics[key].mean:>10.4f}" for r in by.values()))
        if best != ref:
            comp = self.comparisons[best]
            lines.append(f"best lambda {best} (chosen on {self.selection.chosen_on}): " + "; ".join(
                f"{s} {c.effect.estimate:+.4f} p={c.effect.pvalue:.2g} p_holm={c.p_holm:.2g}" for s, c in comp.items()))
        else:
            lines.append(f"best lambda {best} (chosen on {self.selection.chosen_on}): the base ranker alone")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """One row per user of the candidates file: ``user_id``, its popularity ``slice`` and one column
        ``METRIC|LAMBDA`` per metric and lambda."""
        if self.per_user is None:
            raise ValueError("this FusionResult has no per-user data (it was rebuilt from JSON)")
        return self.per_user

    def outputs(self) -> dict[str, Any]:
        return {self.file_name: self.to_dict()}

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "name": self.name, "backbone": self.backbone,
                "population": self.population.to_dict(), "settings": self.settings.to_dict(),
                "slice_items": dict(self.slice_items),
                "results": {lam: {s: r.to_dict() for s, r in by.items()} for lam, by in self.results.items()},
                "comparisons": {lam: {s: c.to_dict() for s, c in by.items()} for lam, by in self.comparisons.items()},
                "best_lambda": self.best_lambda, "selection": self.selection.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "fusion.json") -> "FusionResult":
        check_schema(d, SCHEMA, source)
        with json_errors(source):
            settings = FusionSettings.from_dict(d.get("settings") or {})
            results = {str(lam): {s: SliceResult.from_dict(r) for s, r in by.items()} for lam, by in d["results"].items()}
            comparisons = {str(lam): {s: LambdaComparison.from_dict(c) for s, c in by.items()}
                           for lam, by in (d.get("comparisons") or {}).items()}
            best = str(d["best_lambda"])
            if best not in results:
                raise SpectraInputError(f"{source}: best_lambda {best!r} is not among the results' lambdas")
            return cls(str(d.get("name", "fusion")), str(d.get("backbone", d.get("name", "base"))), settings,
                       Population.from_dict(d["population"]), {k: int(v) for k, v in (d.get("slice_items") or {}).items()},
                       results, comparisons, Selection.from_dict(best, d.get("selection") or {"chosen_on": "?"}),
                       source=source)


@dataclass(frozen=True)
class FusionRuns:
    """Several fusion runs (e.g. SASRec and GRU4Rec x 1+99 and 1+999 candidates) for one report, by name.

    ``spectra report DIR`` reads ``DIR/fusion.json`` and every ``DIR/fusion-NAME.json`` into one of these
    (ordered by file name); a single run's document or ``{"runs": {name: document}}`` both load.
    """

    runs: Mapping[str, FusionResult]

    def to_dict(self) -> dict:
        return {"runs": {name: run.to_dict() for name, run in self.runs.items()}}

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "fusion.json") -> "FusionRuns":
        if isinstance(d, Mapping) and "schema" in d:
            run = FusionResult.from_dict(d, source)
            return cls({run.name: run})
        with json_errors(source):
            docs = d["runs"]
            runs = {}
            for key, doc in docs.items():
                run = FusionResult.from_dict(doc, f"{source}/{key}")
                runs[run.name if run.name not in runs else key] = run
        if not runs:
            raise SpectraInputError(f"{source}: no fusion runs")
        return cls(runs)
