r"""Certificates about users' latent preferences, from the counts their observed items give.

Model (``theory/README.md``, section 5). Users are i.i.d. from a population; user u has a latent preference
:math:`\theta^*_u` over K categories and the data hold :math:`c_u \sim \mathrm{Multinomial}(n_u, \theta^*_u)`
future items. The probe :math:`\theta_S` and DG :math:`\theta_{DG}` (list :math:`L_u` = categories with DG mass
> tau) are fixed given the history. The latent predicates are

* **dominance**: :math:`TV(\theta_S, \theta^*) < TV(\theta_{DG}, \theta^*)`;
* **regime** (Theorem 3 on the preference): :math:`\varphi^\sharp(JS(\theta_S, \theta^*)) <
  \theta^*(L^c) - \theta_{DG}(L^c)`.

Per user, a predicate is *certified* when it holds for every :math:`\theta` in a confidence set for
:math:`\theta^*_u` that covers it with probability at least :math:`1 - \beta`, so a false predicate is
certified with probability at most :math:`\beta` (Lemma C). The sets:

* a simultaneous box :math:`[a_c, b_c]` from 2K one-sided Clopper-Pearson bounds at level
  :math:`\beta_{box}/(2K)` each (Bonferroni), intersected with the simplex;
* for the regime, an exact one-sided Clopper-Pearson lower bound on :math:`\theta^*(L^c)` from the count outside
  the list (the box gets :math:`\beta/2`, this bound :math:`\beta/2`).

Maximising a separable function :math:`\sum_c f_c(\theta_c)` over box :math:`\cap` simplex is bounded above by
the same problem with each :math:`f_c` replaced by its upper concave envelope through the points where its
maximum over an interval can sit (the endpoints for the convex JS summands; endpoints and the two kinks for
the piecewise-linear TV difference); that relaxation is solved exactly by a greedy fill in decreasing slope
(Lemma E; it equals the Lagrangian dual). Every bound is therefore valid; how tight it is shows in the
simulation tests. The cohort fraction of certified users is lifted to the population with
:func:`spectra_eval.certificates.bounds.fraction_bound` (``beta`` given): :math:`\pi \ge (\mathrm{CP}_\alpha - \beta)/(1-\beta)`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy.special import rel_entr

from spectra_eval.certificates.bounds import LN2, FractionBound, clopper_pearson, fraction_bound, list_mask, phi_sharp
from spectra_eval.certificates.population import PopulationResult

#: certificates need a margin beyond this, so floating-point rounding can never certify a false predicate
NUMERIC_SLACK = 1e-12
BETA = 0.05
METHOD = {
    "box": "simultaneous Clopper-Pearson box: 2K one-sided bounds at level beta_box/(2K) each (Bonferroni)",
    "maximisation": "upper concave envelope of each separable term, filled greedily by slope (Lagrangian dual)",
    "regime": "box at beta/2 for sup JS(probe, theta); exact one-sided Clopper-Pearson at beta/2 on "
              "theta(outside L); certified iff phi_sharp(sup JS) < lower(theta(L^c)) - theta_DG(L^c)",
    "tv_dominates": "box at beta; certified iff sup over the box of TV(probe, theta) - TV(DG, theta) < 0",
    "lift": "pi >= (Clopper-Pearson lower bound of the certified fraction - beta) / (1 - beta)",
}
POPULATION = ("users drawn i.i.d. like this cohort; the predicate is about each user's latent preference theta*, "
              "of which the counts are a multinomial sample")


def simultaneous_box(counts: np.ndarray, level: "float | np.ndarray") -> tuple[np.ndarray, np.ndarray]:
    """Per-category Clopper-Pearson bounds (a, b), shape (n, K), covering all K coordinates of theta* at once
    with probability >= 1 - ``level`` (each of the 2K one-sided bounds at ``level / (2K)``; ``level`` may be an
    (n, 1) array of per-user levels)."""
    n = counts.sum(axis=1, keepdims=True)
    each = level / (2 * counts.shape[1])
    return clopper_pearson(counts, n, each, "lower"), clopper_pearson(counts, n, each, "upper")


def _hull(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segments (lengths, slopes) of the upper concave envelope of points (x, y), x ascending on the last axis.

    Gift wrapping from the leftmost point: the next vertex is the point to the right with the largest slope
    (ties: the farthest), so slopes decrease along the envelope. Shapes (..., m) -> (..., m - 1).
    """
    m = x.shape[-1]
    idx = np.arange(m)
    cur = np.zeros(x.shape[:-1], dtype=np.int64)
    lengths = np.zeros(x.shape[:-1] + (m - 1,))
    slopes = np.zeros_like(lengths)
    for step in range(m - 1):
        xc = np.take_along_axis(x, cur[..., None], axis=-1)
        yc = np.take_along_axis(y, cur[..., None], axis=-1)
        dx = x - xc
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where((idx > cur[..., None]) & (dx > 0), (y - yc) / dx, -np.inf)
        best = m - 1 - np.argmax(slope[..., ::-1], axis=-1)
        found = np.isfinite(np.take_along_axis(slope, best[..., None], axis=-1)[..., 0])
        lengths[..., step] = np.where(found, np.take_along_axis(dx, best[..., None], axis=-1)[..., 0], 0.0)
        slopes[..., step] = np.where(found, np.take_along_axis(slope, best[..., None], axis=-1)[..., 0], 0.0)
        cur = np.where(found, best, cur)
    return lengths, slopes


def separable_max(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Upper bound on :math:`\max \sum_c f_c(\theta_c)` subject to :math:`\sum_c \theta_c = 1`,
    :math:`\theta_c \in [x_{c,0}, x_{c,m-1}]`, given each :math:`f_c` at m points (n, K, m) that include the
    interval ends and every point where :math:`f_c` minus a linear function can peak.

    Each :math:`f_c` is replaced by its upper concave envelope through the points (Lemma E); the relaxation is
    a fractional knapsack: start every coordinate at its lower end and spend the remaining mass on envelope
    segments in decreasing slope. ``inf`` where box and simplex do not meet (no certificate possible).
    """
    lengths, slopes = _hull(x, y)
    n = x.shape[0]
    base = y[..., 0].sum(axis=1)
    budget = 1.0 - x[..., 0].sum(axis=1)
    lengths, slopes = lengths.reshape(n, -1), slopes.reshape(n, -1)
    order = np.argsort(-slopes, axis=1, kind="stable")
    lengths, slopes = np.take_along_axis(lengths, order, axis=1), np.take_along_axis(slopes, order, axis=1)
    spent = np.cumsum(lengths, axis=1) - lengths
    take = np.clip(budget[:, None] - spent, 0.0, lengths)
    value = base + (take * slopes).sum(axis=1)
    feasible = (budget >= -NUMERIC_SLACK) & (lengths.sum(axis=1) >= budget - NUMERIC_SLACK)
    return np.where(feasible, value, np.inf)


def _js_terms(s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-category JS summands (nats) between probe mass ``s`` and candidate truth mass ``x``."""
    m = 0.5 * (s + x)
    return 0.5 * (rel_entr(s, m) + rel_entr(x, m))


def js_upper(probe: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Upper bound (nats) on sup JS(probe, theta) over theta in box [lo, hi] intersected with the simplex.

    JS(probe, .) is a sum of convex functions of single coordinates, so on each interval its summand lies
    below the chord through the two ends; :func:`separable_max` fills the chords."""
    x = np.stack([lo, hi], axis=-1)
    y = _js_terms(probe[..., None], x)
    return np.minimum(separable_max(x, y), LN2)


def tv_gap_upper(probe: np.ndarray, dg: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Upper bound on sup [TV(probe, theta) - TV(dg, theta)] over theta in box [lo, hi] intersected with the simplex.

    Each summand (|s - x| - |d - x|)/2 is piecewise linear with kinks at s and d, so its maximum minus any
    linear function on [lo, hi] sits at an end or a kink: those four points carry the envelope."""
    x = np.sort(np.stack([lo, hi, np.clip(probe, lo, hi), np.clip(dg, lo, hi)], axis=-1), axis=-1)
    y = 0.5 * (np.abs(probe[..., None] - x) - np.abs(dg[..., None] - x))
    return separable_max(x, y)


@dataclass(frozen=True)
class LatentResult:
    """Per-user latent certificates (arrays of shape (n,)) and their population lifts."""

    beta: float
    n_obs: np.ndarray
    js_upper_bits: np.ndarray  # sup JS(probe, theta) over the regime's box
    m_lower: np.ndarray  # lower bound on theta*(L^c) - theta_DG(L^c)
    regime: np.ndarray  # certified latent regime
    tv_gap_upper: np.ndarray  # sup TV(probe, theta) - TV(DG, theta) over the dominance box
    tv_dominates: np.ndarray  # certified latent dominance
    regime_bound: FractionBound
    tv_dominates_bound: FractionBound

    def summary(self, population: PopulationResult | None = None,
                per_user_fdr: Mapping[str, Any] | None = None) -> "LatentSummary":
        """The JSON-level summary (``certificate.json: latent``), with the population statements."""
        d = self.to_dict()
        return LatentSummary(d["beta"], d["method"], d["n_obs"], d["regime"], d["tv_dominates"], POPULATION,
                             population, per_user_fdr)

    def to_dict(self) -> dict:
        n = self.n_obs
        return {
            "beta": self.beta,
            "method": dict(METHOD),
            "n_obs": {"min": int(n.min()), "median": float(np.median(n)), "max": int(n.max())},
            "regime": {"fraction_certified": self.regime_bound.fraction, "pi_lower": self.regime_bound.pi_lower,
                       "bound": self.regime_bound.to_dict()},
            "tv_dominates": {"fraction_certified": self.tv_dominates_bound.fraction,
                             "pi_lower": self.tv_dominates_bound.pi_lower,
                             "bound": self.tv_dominates_bound.to_dict()},
            "population": POPULATION,
        }


@dataclass(frozen=True)
class LatentSummary:
    """``certificate.json: latent``: the per-user certificates' lifts (``regime``, ``tv_dominates``) and the
    population statements (``population``, :class:`~spectra_eval.certificates.population.PopulationResult`;
    its ``description`` is the model sentence that older documents kept as the string ``latent.population``)."""

    beta: float
    method: Mapping[str, str]
    n_obs: Mapping[str, float]
    regime: Mapping[str, Any]
    tv_dominates: Mapping[str, Any]
    description: str = POPULATION
    population: PopulationResult | None = None
    per_user_fdr: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"beta": self.beta, "method": dict(self.method), "n_obs": dict(self.n_obs),
               "regime": dict(self.regime), "tv_dominates": dict(self.tv_dominates),
               "population": self.population.to_dict() if self.population is not None else self.description}
        if self.per_user_fdr is not None:
            out["per_user_fdr"] = dict(self.per_user_fdr)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LatentSummary":
        pop = d.get("population")
        if isinstance(pop, Mapping):
            return cls(d["beta"], d.get("method") or {}, d["n_obs"], d["regime"], d["tv_dominates"],
                       pop.get("description", POPULATION), PopulationResult.from_dict(pop), d.get("per_user_fdr"))
        return cls(d["beta"], d.get("method") or {}, d["n_obs"], d["regime"], d["tv_dominates"],
                   pop or POPULATION, None, d.get("per_user_fdr"))


def _certify_at(counts: np.ndarray, probe: np.ndarray, dg: np.ndarray, beta, tau: float):
    """Per-user certificates at per-user error ``beta`` (a number, or an array (n,) of levels):
    (sup JS nats, lower bound on theta(L^c) - theta_DG(L^c), regime, sup TV gap, dominance)."""
    n_obs = counts.sum(axis=1)
    b = np.asarray(beta, dtype=np.float64)
    col = b[:, None] if b.ndim else b
    outside = ~list_mask(dg, tau)
    lo, hi = simultaneous_box(counts, col / 2)
    js_hi = js_upper(probe, lo, hi)
    out_count = np.where(outside, counts, 0).sum(axis=1)
    m_lower = clopper_pearson(out_count, n_obs, b / 2, "lower") - np.where(outside, dg, 0.0).sum(axis=1)
    regime = m_lower - phi_sharp(js_hi, "nats") > NUMERIC_SLACK
    lo, hi = simultaneous_box(counts, col)
    gap = tv_gap_upper(probe, dg, lo, hi)
    return js_hi, m_lower, regime, gap, gap < -NUMERIC_SLACK


def per_user_p_values(counts: np.ndarray, probe: np.ndarray, dg: np.ndarray, tau: float = 0.0,
                      steps: int = 48) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-user p-values of the latent regime and dominance: the smallest per-user error beta at which the
    user is certified (1 if not even at beta = 1).

    The Clopper-Pearson sets shrink as beta grows, so "certified at beta" is monotone in beta and
    :math:`\{p_u \le b\} \subset \{\text{certified at } b'\}` for every b' > b; by Lemma C,
    :math:`P(p_u \le b \mid \text{predicate false}) \le b`: a valid p-value. Bisection on log beta over
    [1e-16, 1] (``steps`` halvings; the upper end of the bracket is returned, so p is never understated)."""
    n = len(counts)
    out = []
    for which in (2, 4):  # index of regime and dominance in _certify_at's tuple
        lo, hi = np.full(n, math.log(1e-16)), np.zeros(n)
        ok_at_one = _certify_at(counts, probe, dg, np.ones(n), tau)[which]
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            cert = _certify_at(counts, probe, dg, np.exp(mid), tau)[which]
            hi, lo = np.where(cert, mid, hi), np.where(cert, lo, mid)
        out.append(np.where(ok_at_one, np.exp(hi), 1.0))
    return out[0], out[1]


def benjamini_hochberg(p: np.ndarray, q: float) -> np.ndarray:
    """Benjamini-Hochberg (1995) at false-discovery rate ``q``: reject the k smallest p-values, k the largest
    index with p_(k) <= k q / m (independent p-values, as users' counts are)."""
    m = p.size
    order = np.argsort(p, kind="stable")
    passed = np.nonzero(p[order] <= q * np.arange(1, m + 1) / m)[0]
    reject = np.zeros(m, dtype=bool)
    if passed.size:
        reject[order[: passed[-1] + 1]] = True
    return reject


def latent_certificates(counts: np.ndarray, probe: np.ndarray, dg: np.ndarray, *, beta: float = BETA,
                        alpha: float = 0.05, routes: int = 1, tau: float = 0.0) -> LatentResult:
    """Certify the latent regime and dominance per user and lift both to the population.

    ``counts`` (n, K) int with every row sum >= 1, ``probe`` and ``dg`` (n, K) normalised distributions, all
    checked by the caller (:func:`spectra_eval.certificates.observed.certify`). ``beta`` is each user's type-I error budget.
    """
    n_obs = counts.sum(axis=1)
    js_hi, m_lower, regime, gap, dominates = _certify_at(counts, probe, dg, beta, tau)
    return LatentResult(
        beta, n_obs, js_hi / LN2, m_lower, regime, gap, dominates,
        fraction_bound(regime, alpha, routes, population=POPULATION + " (latent regime)", beta=beta),
        fraction_bound(dominates, alpha, routes, population=POPULATION + " (latent TV dominance)", beta=beta),
    )
