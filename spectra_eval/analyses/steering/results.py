"""Steering results: typed, frozen, and the ``spectra.steering/1`` JSON (``to_dict``/``from_dict``).

:class:`SteeringResult` follows the library's result protocol (:class:`spectra_eval.results.Result`:
``summary``, ``to_frame``, ``save``, notebook display).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from spectra_eval import stats
from spectra_eval.analyses.steering.kernels import HEADROOM_MIN
from spectra_eval.io import check_schema, json_errors
from spectra_eval.results import Result
from spectra_eval.stats import MeanCI, _f

SCHEMA = "spectra.steering/1"
UNIT = "bits"
DEFINITIONS = {
    "shift": "direction x (S_r(T) - B_u(T)), target mass summed over the group T (probability)",
    "success_rate": "share of requests with shift > 0",
    "relative_shift": "shift / (1 - B_u(T)) for '+', shift / B_u(T) for '-'; requests with headroom <= "
                      f"{HEADROOM_MIN:g} left out and counted",
    "off_target_js": "JS (bits) between B_u and S_r restricted to the non-target categories and renormalised",
    "p": "Wilcoxon signed-rank test of the shifts (two-sided, zero_method='wilcox')",
    "p_holm": "Holm-adjusted p across the direction x granularity groups",
}


@dataclass(frozen=True)
class GroupResult:
    """The numbers of one population of requests (``population`` says which)."""

    population: str
    n: int
    shift: MeanCI
    success_rate: float
    n_success: int
    relative_shift: float
    n_relative: int
    n_no_headroom: int
    off_target_js: float
    n_off_target: int
    n_off_target_undefined: int
    pvalue: float
    statistic: float
    p_holm: float | None = None

    def to_dict(self) -> dict:
        out = {"population": self.population, "n": self.n, "shift": self.shift.to_dict(),
               "success_rate": self.success_rate, "n_success": self.n_success,
               "relative_shift": {"mean": self.relative_shift, "n": self.n_relative,
                                  "n_no_headroom": self.n_no_headroom},
               "off_target_js": {"mean": self.off_target_js, "n": self.n_off_target,
                                 "n_undefined": self.n_off_target_undefined},
               "p": self.pvalue, "statistic": self.statistic}
        return out if self.p_holm is None else out | {"p_holm": self.p_holm}

    @classmethod
    def from_dict(cls, d: Mapping) -> "GroupResult":
        rel, off = d.get("relative_shift") or {}, d.get("off_target_js") or {}
        return cls(str(d.get("population", "?")), int(d["n"]), MeanCI.from_dict(d["shift"]),
                   _f(d.get("success_rate")), int(d.get("n_success", 0)), _f(rel.get("mean")), int(rel.get("n", 0)),
                   int(rel.get("n_no_headroom", 0)), _f(off.get("mean")), int(off.get("n", 0)),
                   int(off.get("n_undefined", 0)), _f(d.get("p")), _f(d.get("statistic")),
                   None if "p_holm" not in d else _f(d["p_holm"]))


@dataclass(frozen=True)
class CategoryShift:
    """Steerability of one category: the requests whose target is exactly that category, in one direction."""

    population: str
    n: int
    shift: MeanCI
    success_rate: float

    def to_dict(self) -> dict:
        return {"population": self.population, "n": self.n, "shift": self.shift.to_dict(),
                "success_rate": self.success_rate}

    @classmethod
    def from_dict(cls, d: Mapping) -> "CategoryShift":
        return cls(str(d.get("population", "?")), int(d["n"]), MeanCI.from_dict(d["shift"]), _f(d.get("success_rate")))


@dataclass(frozen=True)
class SteeringSettings:
    """How the steering evaluation was run (file names, or '<memory>')."""

    base: str
    steered: str
    requests: str
    truth: str | None = None
    bootstrap: int = stats.N_RESAMPLES
    seed: int = stats.SEED
    confidence: float = stats.CONFIDENCE

    @property
    def test(self) -> str:
        return stats.TEST_DESCRIPTION

    @property
    def buckets_from(self) -> str:
        return "truth" if self.truth else "base"

    def to_dict(self) -> dict:
        return {"base": self.base, "steered": self.steered, "requests": self.requests, "truth": self.truth,
                "buckets_from": self.buckets_from, "bootstrap": self.bootstrap, "seed": self.seed,
                "confidence": self.confidence,
                "resampling": "requests with replacement within each population, "
                              "default_rng(seed).integers(0, n, (bootstrap, n)); percentile interval",
                "test": stats.TEST_DESCRIPTION, "zero_method": stats.ZERO_METHOD, "correction": stats.CORRECTION,
                "correction_family": "the direction x granularity groups", "headroom_min": HEADROOM_MIN}

    @classmethod
    def from_dict(cls, d: Mapping) -> "SteeringSettings":
        return cls(d.get("base", "?"), d.get("steered", "?"), d.get("requests", "?"), d.get("truth"),
                   int(d.get("bootstrap", stats.N_RESAMPLES)), int(d.get("seed", stats.SEED)),
                   float(d.get("confidence", stats.CONFIDENCE)))


@dataclass(frozen=True, repr=False)
class SteeringResult(Result):
    """A steering evaluation. ``to_dict`` gives the ``spectra.steering/1`` JSON; ``from_dict`` inverts it.

    ``by[direction][granularity]`` holds the groups (directions ``+`` then ``-``, granularities in order of
    first appearance); ``by_category[c][direction]`` the single-category targets; ``buckets`` the head/mid/tail
    split of the categories (by the truth's cohort-mean mass, or the base table's without a truth).
    """

    settings: SteeringSettings
    n_requests: int
    n_users: int
    categories: tuple[str, ...]
    buckets: Mapping[str, tuple[str, ...]]
    overall: GroupResult
    by: Mapping[str, Mapping[str, GroupResult]]
    by_category: Mapping[str, Mapping[str, CategoryShift]]
    unit: str = UNIT
    per_request: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    source: str = field(default="<memory>", compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "settings": self.settings.to_dict(),
            "definitions": dict(DEFINITIONS),
            "unit": self.unit,
            "n_requests": self.n_requests,
            "n_users": self.n_users,
            "n_categories": len(self.categories),
            "categories": list(self.categories),
            "buckets": {k: list(v) for k, v in self.buckets.items()},
            "overall": self.overall.to_dict(),
            "by": {d: {g: r.to_dict() for g, r in groups.items()} for d, groups in self.by.items()},
            "by_category": {c: {d: r.to_dict() for d, r in dirs.items()} for c, dirs in self.by_category.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "steering.json") -> "SteeringResult":
        """Rebuild from ``to_dict()`` output; a missing key is a one-line error naming ``source`` and the key."""
        check_schema(d, SCHEMA, source)
        with json_errors(source):
            return cls(
                settings=SteeringSettings.from_dict(d.get("settings") or {}),
                n_requests=int(d["n_requests"]),
                n_users=int(d["n_users"]),
                categories=tuple(d["categories"]),
                buckets={k: tuple(v) for k, v in (d.get("buckets") or {}).items()},
                overall=GroupResult.from_dict(d["overall"]),
                by={dr: {g: GroupResult.from_dict(r) for g, r in groups.items()} for dr, groups in d["by"].items()},
                by_category={c: {dr: CategoryShift.from_dict(r) for dr, r in dirs.items()}
                             for c, dirs in (d.get("by_category") or {}).items()},
                unit=d.get("unit", UNIT),
                source=source,
            )

    def summary(self) -> str:
        """A short fixed-width table of every group's headline numbers."""
        head = f"{'direction':<10}{'granularity':<14}{'n':>6}{'shift [95% CI]':>28}{'success':>9}" \
               f"{'off-target JS':>15}{'p (Holm)':>10}"
        rows = [f"{self.n_requests} requests of {self.n_users} users; shift in probability, JS in bits", head,
                "-" * len(head)]
        for direction, gran, g in [("all", "all", self.overall)] + self.groups():
            ci = f"{g.shift.mean:+.4f} [{g.shift.ci_low:+.4f}, {g.shift.ci_high:+.4f}]"
            p = g.pvalue if g.p_holm is None else g.p_holm
            rows.append(f"{direction:<10}{gran:<14}{g.n:>6}{ci:>28}{g.success_rate:>9.3f}{g.off_target_js:>15.4f}"
                        f"{p:>10.2g}")
        return "\n".join(rows)

    def to_frame(self) -> pd.DataFrame:
        """One row per request: the requests file's columns, then ``base_mass, steered_mass, shift, success,
        headroom, relative_shift, off_target_js``."""
        if self.per_request is None:
            raise ValueError("this SteeringResult has no per-request data (it was rebuilt from JSON)")
        return self.per_request

    def outputs(self) -> dict[str, Any]:
        """``steering.json`` and (when computed here) ``per_request.parquet``."""
        out: dict[str, Any] = {"steering.json": self.to_dict()}
        if self.per_request is not None:
            out["per_request.parquet"] = self.per_request
        return out

    def groups(self) -> list[tuple[str, str, GroupResult]]:
        """``(direction, granularity, result)`` of every group, in JSON order."""
        return [(dr, g, r) for dr, groups in self.by.items() for g, r in groups.items()]

    def bucket_of(self, category: str) -> str | None:
        return next((b for b, cats in self.buckets.items() if category in cats), None)
