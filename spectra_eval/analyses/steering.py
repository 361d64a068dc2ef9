r"""Steerability: does a probed distribution follow a preference the user states?

Neighbouring work evaluates recommenders that condition on natural-language preferences: Mender's benchmark
("preference discerning": Paischer et al., "Preference Discerning with LLM-Enhanced Generative Retrieval",
TMLR 2025, arXiv:2412.08604) has fine- and coarse-grained steering, sentiment following and history
consolidation axes, scored on the recommended items. Here the object steered is the probed category
*distribution*, so the effect is measured as moved probability mass.

A *request* r asks to move user u's distribution towards (direction ``+``) or away from (``-``) a target T:
one category (e.g. granularity ``fine``) or a group of categories written ``A|B|C`` (e.g. ``coarse``). The
probe is run twice: once on the user's context (the *base* table B, keyed by user) and once on the context
with the preference statement added (the *steered* table S, keyed by request id; ``spectra probe
--requests``). With :math:`d_r = +1` for ``+`` and :math:`-1` for ``-`` and target mass summed over the group,
:math:`B_u(T) = \sum_{c \in T} B_u(c)`:

* **shift** :math:`\Delta_r = d_r\,(S_r(T) - B_u(T))`, in probability; **success** :math:`\Delta_r > 0`;
* **relative shift**: the share of the available headroom that was moved,
  :math:`\Delta_r / (1 - B_u(T))` for ``+`` and :math:`\Delta_r / B_u(T)` for ``-``; a request whose headroom
  is at most :data:`HEADROOM_MIN` (nothing left to move) is left out of its mean and counted
  (``n_no_headroom``);
* **off-target change**: :math:`JS(\bar B_u, \bar S_r)` in bits between the two distributions restricted to
  the non-target categories and renormalised, :math:`\bar B_u(c) = B_u(c) / (1 - B_u(T))` for
  :math:`c \notin T`; how much the statement disturbed the categories it did not name. Undefined (left out,
  counted as ``n_undefined``) when either side has no mass off the target.

Every population (all requests; each direction x granularity group; each single target category) reports
the mean shift with a percentile bootstrap CI (requests resampled with replacement,
``default_rng(seed).integers(0, n, (B, n))`` for a population of n requests), the success rate, the mean
relative shift, the mean off-target JS and the two-sided Wilcoxon signed-rank test of the shifts
(``zero_method='wilcox'``), with Holm's correction across the direction x granularity groups.

:func:`read_requests` is the one reader of a requests file (``spectra probe --requests`` uses it too);
:func:`steer` computes a :class:`SteeringResult` whose ``to_dict()`` is the ``spectra.steering/1`` JSON and
whose ``from_dict`` inverts it.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval import stats
from spectra_eval.metrics.buckets import _make_buckets
from spectra_eval.metrics.divergences import _js
from spectra_eval.stats import MeanCI
from spectra_eval.stats import _f
from spectra_eval.io import (USER_COL, DistributionTable, check_same_categories, check_schema, first_empty, json_errors,
                             read_frame, require_columns)
from spectra_eval.validation import SpectraInputError, check_positive_int

log = logging.getLogger(__name__)

SCHEMA = "spectra.steering/1"
UNIT = "bits"
LN2 = math.log(2.0)
DIRECTIONS = {"+": 1, "-": -1}
FORMS = ("single", "multi")
TARGET_SEP = "|"
HEADROOM_MIN = 1e-12
REQUEST_COL, TARGET_COL, DIRECTION_COL, GRANULARITY_COL, FORM_COL = (
    "request_id", "target", "direction", "granularity", "form")
REQUIRED = (REQUEST_COL, USER_COL, TARGET_COL, DIRECTION_COL, GRANULARITY_COL)
DEFINITIONS = {
    "shift": "direction x (S_r(T) - B_u(T)), target mass summed over the group T (probability)",
    "success_rate": "share of requests with shift > 0",
    "relative_shift": "shift / (1 - B_u(T)) for '+', shift / B_u(T) for '-'; requests with headroom <= "
                      f"{HEADROOM_MIN:g} left out and counted",
    "off_target_js": "JS (bits) between B_u and S_r restricted to the non-target categories and renormalised",
    "p": "Wilcoxon signed-rank test of the shifts (two-sided, zero_method='wilcox')",
    "p_holm": "Holm-adjusted p across the direction x granularity groups",
}


# ------------------------------------------------------------------ requests


@dataclass(frozen=True)
class Requests:
    """A checked requests file: one row per request (file order).

    ``targets[i]`` is the tuple of category labels of request i (one for a fine target); ``extra`` holds any
    further columns of the file (e.g. ``seen``), carried into per-request outputs.
    """

    ids: np.ndarray
    users: np.ndarray
    targets: tuple[tuple[str, ...], ...]
    directions: np.ndarray
    granularities: np.ndarray
    forms: np.ndarray
    source: str = "<memory>"
    extra: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def signs(self) -> np.ndarray:
        """+1 for ``+``, -1 for ``-``, shape (n,)."""
        return np.array([DIRECTIONS[d] for d in self.directions], dtype=np.float64)

    def where(self, i: int, column: str | None = None) -> str:
        """``FILE: request 'ID' (row N)[, column 'C']`` for error messages."""
        at = f"{self.source}: request {self.ids[i]!r} (row {i + 1})"
        return at if column is None else f"{at}, column {column!r}"

    def target_mask(self, categories: Sequence[str]) -> np.ndarray:
        """Boolean (n, K): True where category k is in request i's target."""
        col = {c: j for j, c in enumerate(categories)}
        mask = np.zeros((len(self), len(categories)), dtype=bool)
        for i, target in enumerate(self.targets):
            mask[i, [col[c] for c in target]] = True
        return mask

    def check_users(self, users: Sequence[str], users_source: str) -> np.ndarray:
        """Every request's user must be one of ``users`` (e.g. the base table's, unique); returns each request's
        user position in ``users``."""
        known = pd.Index(np.asarray(users, dtype=object))
        positions = known.get_indexer(self.users)
        missing = np.flatnonzero(positions < 0)
        if missing.size:
            i = int(missing[0])
            raise SpectraInputError(f"{self.where(i, USER_COL)}: user {self.users[i]!r} is not in {users_source}")
        return positions

    def check_targets(self, categories: Sequence[str], categories_source: str) -> None:
        """Every target label must be one of ``categories``; the first unknown one is named."""
        known = set(categories)
        for i, target in enumerate(self.targets):
            if not known.issuperset(target):
                _check_known_labels(self.where(i, TARGET_COL), target, known, categories_source)

    def frame(self) -> pd.DataFrame:
        """The requests as a table (targets joined by ``|``), extra columns last."""
        out = pd.DataFrame({REQUEST_COL: self.ids, USER_COL: self.users,
                            TARGET_COL: [TARGET_SEP.join(t) for t in self.targets], DIRECTION_COL: self.directions,
                            GRANULARITY_COL: self.granularities, FORM_COL: self.forms})
        if self.extra is not None:
            out = pd.concat([out, self.extra.reset_index(drop=True)], axis=1)
        return out


def _check_known_labels(at: str, labels: Sequence[str], known: set, categories_source: str) -> None:
    unknown = [p for p in labels if p not in known]
    if unknown:
        raise SpectraInputError(f"{at}: {unknown[0]!r} is not a category of {categories_source}")


def _text_column(frame: pd.DataFrame, column: str, ids, source: str) -> np.ndarray:
    values = frame[column]
    i = first_empty(values)
    if i is not None:
        at = f"request {ids[i]!r} (row {i + 1})" if ids is not None else f"row {i + 1}"
        raise SpectraInputError(f"{source}: {at}, column {column!r}: empty value")
    return values.astype(str).str.strip().to_numpy(dtype=object)


def read_requests(path: str | os.PathLike, categories: Sequence[str] | None = None, *,
                  categories_source: str = "the categories") -> Requests:
    """Read and check a requests file (CSV or Parquet): ``request_id, user_id, target, direction, granularity``
    and optionally ``form`` (``single``, the default, or ``multi``: one statement per target category).

    Errors are one line naming the file, the request (row) and the offending value: a missing column, an
    empty or repeated request id, an empty user, a target naming a label that is not one of ``categories``
    (when given), naming one twice or every category, a direction other than ``+``/``-``, an unknown form.
    """
    source = str(path)
    frame = read_frame(path, string_columns=REQUIRED + (FORM_COL,))
    require_columns(frame, REQUIRED, source)
    if len(frame) == 0:
        raise SpectraInputError(f"{source}: the table has no rows")
    ids = _text_column(frame, REQUEST_COL, None, source)
    first: dict[str, int] = {}
    for i, rid in enumerate(ids):
        if rid in first:
            raise SpectraInputError(f"{source}: request {rid!r} (row {i + 1}) repeats the request id of row "
                                    f"{first[rid] + 1}")
        first[rid] = i
    users = _text_column(frame, USER_COL, ids, source)
    known = None if categories is None else set(categories)
    targets = []
    for i, text in enumerate(_text_column(frame, TARGET_COL, ids, source)):
        parts = tuple(p.strip() for p in text.split(TARGET_SEP) if p.strip())
        at = f"{source}: request {ids[i]!r} (row {i + 1}), column {TARGET_COL!r}"
        if not parts:
            raise SpectraInputError(f"{at}: {text!r} names no category")
        repeated = [p for j, p in enumerate(parts) if p in parts[:j]]
        if repeated:
            raise SpectraInputError(f"{at}: category {repeated[0]!r} appears twice in {text!r}")
        if known is not None:
            _check_known_labels(at, parts, known, categories_source)
            if len(parts) == len(known):
                raise SpectraInputError(f"{at}: {text!r} names every category, so nothing is off target")
        targets.append(parts)
    directions = _text_column(frame, DIRECTION_COL, ids, source)
    for i, d in enumerate(directions):
        if d not in DIRECTIONS:
            raise SpectraInputError(f"{source}: request {ids[i]!r} (row {i + 1}), column {DIRECTION_COL!r}: "
                                    f"{d!r} is not '+' or '-'")
    granularities = _text_column(frame, GRANULARITY_COL, ids, source)
    if FORM_COL in frame.columns:
        forms = frame[FORM_COL].fillna("").astype(str).str.strip().replace("", FORMS[0]).to_numpy(dtype=object)
        for i, f in enumerate(forms):
            if f not in FORMS:
                raise SpectraInputError(f"{source}: request {ids[i]!r} (row {i + 1}), column {FORM_COL!r}: "
                                        f"{f!r} is not one of {', '.join(FORMS)}")
    else:
        forms = np.full(len(ids), FORMS[0], dtype=object)
    rest = [c for c in frame.columns if c not in REQUIRED + (FORM_COL,)]
    return Requests(ids, users, tuple(targets), directions, granularities, forms, source,
                    frame[rest].reset_index(drop=True) if rest else None)


def make_requests(users: Sequence[str], categories: Sequence[str], seen: np.ndarray, *, seed: int = 0,
                  coarse_size: int = 3) -> pd.DataFrame:
    """A seeded requests table for a cohort: per user, one request for each direction (``+``, ``-``) and
    granularity (``fine``: one category; ``coarse``: a group of ``coarse_size`` categories).

    ``seen`` (n, K) marks the categories in each user's history. For every request a fair coin picks whether
    the target is drawn from the categories the user has seen or from those they have not (the other pool
    completes a group when the chosen one is too small); the ``seen`` column says what was drawn: ``seen``,
    ``unseen`` or ``mixed``. Draws use ``np.random.default_rng(seed)`` in user order, so the table is a
    function of (users, seen, seed). Request ids are ``USER:+fine``, ``USER:-coarse``, ...
    """
    seen = np.asarray(seen, dtype=bool)
    k = len(categories)
    sizes = {"fine": 1, "coarse": max(1, min(int(coarse_size), k - 1))}
    rng = np.random.default_rng(seed)
    rows = []
    for u, mask in zip(users, seen):
        pools = (np.flatnonzero(mask), np.flatnonzero(~mask))
        for direction in DIRECTIONS:
            for gran, size in sizes.items():
                pick = int(rng.random() < 0.5)
                first, other = pools[pick], pools[1 - pick]
                take = rng.choice(first, min(size, first.size), replace=False)
                if take.size < size:
                    take = np.concatenate([take, rng.choice(other, size - take.size, replace=False)])
                take = np.sort(take)
                n_seen = int(mask[take].sum())
                rows.append({REQUEST_COL: f"{u}:{direction}{gran}", USER_COL: u,
                             TARGET_COL: TARGET_SEP.join(categories[j] for j in take), DIRECTION_COL: direction,
                             GRANULARITY_COL: gran,
                             "seen": "seen" if n_seen == size else "unseen" if n_seen == 0 else "mixed"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ per-request quantities


@dataclass(frozen=True)
class PerRequest:
    """Per-request arrays (n,) behind every population's numbers."""

    base_mass: np.ndarray
    steered_mass: np.ndarray
    shift: np.ndarray
    headroom: np.ndarray
    relative_shift: np.ndarray  # NaN where headroom <= HEADROOM_MIN
    off_target_js: np.ndarray  # NaN where undefined


def per_request(base: np.ndarray, steered: np.ndarray, mask: np.ndarray, signs: np.ndarray) -> PerRequest:
    """Shift, headroom, relative shift and off-target JS of each request (module docstring for formulas).

    ``base`` holds each request's user row of B and ``steered`` its row of S, both (n, K) and checked;
    ``mask`` (n, K) marks the target categories; ``signs`` is +1/-1.
    """
    b = np.where(mask, base, 0.0).sum(axis=1)
    s = np.where(mask, steered, 0.0).sum(axis=1)
    shift = signs * (s - b)
    headroom = np.where(signs > 0, 1.0 - b, b)
    has_room = headroom > HEADROOM_MIN
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(has_room, shift / np.where(has_room, headroom, 1.0), np.nan)
    rest_b = np.where(mask, 0.0, base)
    rest_s = np.where(mask, 0.0, steered)
    tot_b, tot_s = rest_b.sum(axis=1), rest_s.sum(axis=1)
    defined = (tot_b > 0) & (tot_s > 0)
    safe = lambda rest, tot: rest / np.where(defined, tot, 1.0)[:, None]  # noqa: E731
    off = np.where(defined, _js(safe(rest_b, tot_b), safe(rest_s, tot_s), LN2), np.nan)
    return PerRequest(b, s, shift, headroom, relative, off)


# ------------------------------------------------------------------ results


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


@dataclass(frozen=True)
class SteeringResult:
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

    def groups(self) -> list[tuple[str, str, GroupResult]]:
        """``(direction, granularity, result)`` of every group, in JSON order."""
        return [(dr, g, r) for dr, groups in self.by.items() for g, r in groups.items()]

    def bucket_of(self, category: str) -> str | None:
        return next((b for b, cats in self.buckets.items() if category in cats), None)


# ------------------------------------------------------------------ computation


def _mean_ci(values: np.ndarray, n_resamples: int, seed: int, confidence: float) -> MeanCI:
    ci = stats.bootstrap_ci(values, n_resamples, seed=seed, confidence=confidence)  # draw streamed, never held
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
