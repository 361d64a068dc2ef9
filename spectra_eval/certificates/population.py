r"""Population statements about users' latent preferences that need no per-user certificate.

Model (``theory/README.md``, section 6): users are i.i.d.; user u has a latent preference :math:`\theta^*_u` and
:math:`c_u \sim \mathrm{Multinomial}(n_u, \theta^*_u)` counted future items; the probe :math:`s_u` and DG
:math:`d_u` (list :math:`L_u`) are fixed given the history. Each statement below is a population mean of a
quantity that is a function of :math:`\theta^*_u`, bounded through a per-user estimator :math:`Y_u` with
:math:`E[Y_u \mid \theta^*_u, s_u, d_u, n_u] \le` that quantity (unbiased, or biased downwards) and an a-priori
lower end :math:`Y_u \ge a`; the :math:`Y_u` are i.i.d., so a finite-sample lower confidence bound on
:math:`E[Y]` (:func:`betting_lower`) bounds the population quantity.

* **support**: :math:`\pi_{supp} = P_u(\theta^*_u(L_u^c) > 0)`; :math:`O_u = 1\{c_u(L^c_u) > 0\}` implies it
  (zero per-user error), so an exact Clopper-Pearson lower bound on :math:`P(O = 1)` bounds it.
* **Brier gap**: :math:`\mu = E_u[\|d-\theta^*\|^2 - \|s-\theta^*\|^2]`; the gap is affine in
  :math:`\theta^*`, :math:`G(\theta) = \sum_a \theta_a g_a` with :math:`g_a = \|d - e_a\|^2 - \|s - e_a\|^2`, so
  :math:`\hat G = \sum_a g_a c_a / n` is unbiased (``brier_gain``), :math:`\hat G \in [-2, 2]`.
* **Brier fraction**: :math:`P_u(G_u > 0) \ge E[2G_u/t_u - G_u^2/t_u^2]` for any history-fixed
  :math:`t_u > 0` (:math:`1\{x > 0\} \ge 1 - (1 - x/t)^2` for :math:`x \le t`, and
  :math:`\le 0` for :math:`x \le 0`); :math:`G^2` is estimated by the U-statistic
  :math:`(n \hat G^2 - \sum_a g_a^2 c_a / n)/(n - 1)` (needs :math:`n_u \ge 2`; users with one item contribute
  0, which minorises the indicator too). With a constant t this is Paley-Zygmund's
  :math:`E[G]^2/E[G^2]`; :math:`t_u = \kappa \|d_u - s_u\|^2` with :math:`\kappa` fitted on a pilot split.
* **TV gap**: :math:`E_u[TV(d,\theta^*) - TV(s,\theta^*)]`, with :math:`|d_c - \theta_c| \ge \sigma_c(d_c -
  \theta_c)` (:math:`\sigma_c = -1` where :math:`d_c = 0`, exact; else the sign of :math:`d_c - s_c`) and
  :math:`|s_c - \theta_c| \le ((s_c - \theta_c)^2 + r^2)/(2r)` (or the chord
  :math:`s_c + (1 - 2 s_c)\theta_c`, whichever is smaller at :math:`\theta_c = s_c`): a quadratic
  polynomial minorant of the gap, estimated without bias; r is fitted on the pilot or given (``--tv-scale``).

All bounds of one run are at ``alpha_each`` = alpha / (routes x statements) (Bonferroni across routes and
statements), and pilot users never enter a bound they tune.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from scipy import stats

from spectra_eval.certificates.bounds import clopper_pearson, list_mask

#: statements of the population block (each gets alpha_each; the t bound is reported, labelled asymptotic, and
#: counted too so that every number printed is inside the simultaneous claim)
STATEMENTS = ("support", "brier_gap", "brier_gap_t", "brier_fraction", "tv_gap")
#: a-priori lower ends of the estimators (proved in theory/README.md section 6)
BRIER_LOWER = -2.0
#: capital-betting cap c: lambda_i <= c / (m - a) keeps every wealth factor >= 1 - c
BET_CAP = 0.75
PILOT_FRACTION = 0.2
#: tuning grids searched on the pilot users: (kappa or rho, a-priori lower end of the estimator)
LOWER_GRID = (-3.0, -4.0, -6.0, -8.0, -12.0)
KAPPA_GRID = tuple((k, a) for k in (0.0625, 0.125, 0.25, 0.5, 1.0) for a in (-3.0, -6.0, -12.0))
TV_SCALE_GRID = tuple((r, a) for r in (0.05, 0.1, 0.2, 0.4) for a in LOWER_GRID)
POPULATION = ("users drawn i.i.d. like this cohort (holdout users); the statement is about each user's latent "
              "preference theta*, of which the counted items are a multinomial sample")


# ---------------------------------------------------------------- finite-sample mean bounds


def betting_lower(y: np.ndarray, lower: float, level: float, *, prior_mean: float = 0.0,
                  prior_var: float = 1.0, cap: float = BET_CAP, tol: float = 1e-10) -> float:
    r"""Lower confidence bound on :math:`E[Y]` for i.i.d. :math:`Y_i \ge` ``lower``, valid at every sample size.

    Capital betting (Waudby-Smith & Ramdas 2024, hedged capital with predictable plug-in bets): for a
    candidate mean m the wealth :math:`K_N(m) = \prod_i (1 + \lambda_i(m)(Y_i - m))` with
    :math:`\lambda_i(m) = \min(\tilde\lambda_i, c/(m - a))` (:math:`\tilde\lambda_i` depends on
    :math:`Y_1..Y_{i-1}` only) is a non-negative martingale with :math:`K_0 = 1` when m = E[Y], so by Ville's
    inequality :math:`P(\exists N: K_N(E[Y]) \ge 1/\text{level}) \le` level. Every factor is non-increasing in
    m, so :math:`\{m : K_N(m) < 1/\text{level}\} = (L, \infty)` and L (found by bisection) is the bound.
    :math:`\tilde\lambda_i = \sqrt{2\ln(1/\text{level}) / (N \hat\sigma^2_{i-1})}` with a running variance
    started at ``prior_var`` (from a pilot split or a default).
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n == 0:
        return lower
    csum = np.cumsum(y)
    idx = np.arange(1, n + 1)
    mean_run = (prior_mean + csum) / (idx + 1)  # mean after i observations (prior counts as one)
    prev_mean = np.concatenate([[prior_mean], mean_run[:-1]])
    dev = (y - prev_mean) ** 2
    var_run = (prior_var + np.cumsum(dev)) / (idx + 1)
    prev_var = np.concatenate([[prior_var], var_run[:-1]])
    lam_tilde = np.sqrt(2.0 * math.log(1.0 / level) / (n * np.maximum(prev_var, 1e-12)))
    threshold = math.log(1.0 / level)

    def log_wealth(m: float) -> float:
        lam = np.minimum(lam_tilde, cap / (m - lower))
        return float(np.log1p(lam * (y - m)).sum())

    lo, hi = lower, float(y.max())
    if log_wealth(lo + tol) < threshold:
        return lower
    while hi - lo > tol:  # log_wealth non-increasing in m
        mid = 0.5 * (lo + hi)
        if log_wealth(mid) >= threshold:
            lo = mid
        else:
            hi = mid
    return lo


def t_lower(y: np.ndarray, level: float) -> float:
    """One-sided Student-t lower bound on E[Y] (asymptotic: exact only for normal Y); NaN below two values."""
    y = np.asarray(y, dtype=np.float64)
    if y.size < 2:
        return math.nan
    return float(y.mean() - stats.t.ppf(1.0 - level, y.size - 1) * y.std(ddof=1) / math.sqrt(y.size))


# ---------------------------------------------------------------- per-user estimators (kernels, unchecked)


def brier_vertices(probe: np.ndarray, dg: np.ndarray) -> np.ndarray:
    r""":math:`g_a = G(e_a) = \|d - e_a\|^2 - \|s - e_a\|^2 = \|d\|^2 - \|s\|^2 - 2(d_a - s_a)`, shape (n, K);
    the latent Brier gap is :math:`G(\theta) = \sum_a \theta_a g_a`."""
    return ((dg ** 2).sum(axis=1) - (probe ** 2).sum(axis=1))[:, None] - 2.0 * (dg - probe)


def brier_gain(counts: np.ndarray, g: np.ndarray) -> np.ndarray:
    r"""Unbiased estimate :math:`\hat G_u = \sum_a g_a c_a / n_u` of the latent Brier gap (the probe's squared
    error to the preference is lower by this much than DG's)."""
    return (counts * g).sum(axis=1) / counts.sum(axis=1)


def brier_square(counts: np.ndarray, g: np.ndarray) -> np.ndarray:
    r"""Unbiased U-statistic estimate of :math:`G_u^2 = \sum_{a,b} g_a g_b \theta_a \theta_b` for
    :math:`n_u \ge 2`: :math:`(n \hat G^2 - \sum_a g_a^2 c_a / n)/(n - 1)` (NaN where n_u = 1)."""
    n = counts.sum(axis=1).astype(np.float64)
    gh = (counts * g).sum(axis=1) / n
    v2 = (counts * g * g).sum(axis=1) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n >= 2, (n * gh * gh - v2) / (n - 1.0), np.nan)


def brier_variances(counts: np.ndarray, g: np.ndarray) -> dict[str, float]:
    r"""Between- and within-user variance of the Brier gain, for planning (``spectra theory plan --from``).

    Given :math:`\theta`, :math:`\mathrm{Var}(\hat G) = (\sum_a \theta_a g_a^2 - G^2)/n`, and
    :math:`\hat V_2 - \widehat{G^2}` (:math:`\hat V_2 = \sum_a g_a^2 c_a/n`) estimates the numerator without
    bias (n >= 2): ``within_var`` is its mean (one item's variance), ``between_var`` the sample variance of
    :math:`\hat G` minus the mean within-user part. ``sd`` is the sample standard deviation of :math:`\hat G`."""
    n = counts.sum(axis=1)
    gh = brier_gain(counts, g)
    two = n >= 2
    if two.sum() < 2:
        return {"sd": float(gh.std(ddof=1)) if gh.size > 1 else math.nan, "within_var": math.nan,
                "between_var": math.nan, "items_median": float(np.median(n)) if n.size else math.nan}
    v2 = (counts * g * g).sum(axis=1) / n
    within = v2[two] - brier_square(counts[two], g[two])
    between = float(gh.var(ddof=1) - (within / n[two]).mean())
    return {"sd": float(gh.std(ddof=1)), "within_var": float(within.mean()), "between_var": between,
            "items_median": float(np.median(n))}


def fraction_scale(probe: np.ndarray, dg: np.ndarray, kappa: float, lower: float,
                   g: np.ndarray | None = None) -> np.ndarray:
    r"""The history-fixed scale :math:`t_u = \max(\kappa\|d_u - s_u\|^2, \max_a |g_a| / (\sqrt{1 - a} - 1))`
    with a = ``lower`` < 0: the second term keeps :func:`fraction_minorant` >= a, since for n >= 2
    :math:`W \ge 2\hat G/t - \hat G^2/t^2 = 1 - (1 - \hat G/t)^2 \ge 1 - (1 + \max_a|g_a|/t)^2`."""
    g = brier_vertices(probe, dg) if g is None else g
    floor = np.abs(g).max(axis=1) / (math.sqrt(1.0 - lower) - 1.0)
    return np.maximum(np.maximum(kappa * ((dg - probe) ** 2).sum(axis=1), floor), 1e-300)


def fraction_minorant(counts: np.ndarray, g: np.ndarray, t: np.ndarray) -> np.ndarray:
    r""":math:`W_u = 2\hat G/t - \widehat{G^2}/t^2` (0 for users with one item, or with s = d): :math:`E[W_u] =
    1 - (1 - G_u/t_u)^2 \le 1\{G_u > 0\}` when n_u >= 2."""
    n = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = 2.0 * brier_gain(counts, g) / t - brier_square(counts, g) / (t * t)
    # g = 0 (identical methods): G = 0 and the indicator is 0, which W = 0 minorises exactly
    return np.where((n >= 2) & (np.abs(g).max(axis=1) > 0), w, 0.0)


def tv_signs(probe: np.ndarray, dg: np.ndarray) -> np.ndarray:
    r""":math:`\sigma_c`: -1 where :math:`d_c = 0` (then :math:`|d_c - \theta_c| = \theta_c` exactly), else the
    sign of :math:`d_c - s_c` (the probe as the guess of :math:`\theta`; any sign in [-1, 1] is a minorant)."""
    return np.where(dg == 0, -1.0, np.where(dg >= probe, 1.0, -1.0))


def tv_radii(probe: np.ndarray, rho: float, lower: float) -> np.ndarray:
    r"""Per-category scales :math:`r_c = \max(\rho\sqrt{s_c(1 - s_c)}, r_{min})` of the quadratic majorant of
    :math:`|s_c - \theta_c|` (its error is of the order of a Dirichlet-multinomial standard deviation);
    :math:`r_{min} = B - \sqrt{B^2 - (1 - s_c)^2}` with B = -``lower`` is the smallest r whose quadratic stays
    <= B at x = 1 (what its estimator reaches when every item falls in c)."""
    b = -lower
    r_min = b - np.sqrt(np.maximum(b * b - (1.0 - probe) ** 2, 0.0))
    return np.maximum(np.maximum(rho * np.sqrt(probe * (1.0 - probe)), r_min), 1e-9)


def plugin_cost(probe: np.ndarray, n_obs: np.ndarray) -> np.ndarray:
    r""":math:`E|s_c - \mathrm{Bin}(n_u, s_c)/n_u|`, the Bernstein majorant's excess at :math:`\theta_c = s_c`."""
    from scipy.special import gammaln, xlog1py, xlogy

    probe = np.clip(probe, 0.0, 1.0)
    out = np.zeros(probe.shape)
    for n_value in np.unique(n_obs):
        rows = np.asarray(n_obs) == n_value
        j = np.arange(n_value + 1, dtype=np.float64)
        p = probe[rows][..., None]
        log_pmf = (gammaln(n_value + 1.0) - gammaln(j + 1.0) - gammaln(n_value - j + 1.0)
                   + xlogy(j, p) + xlog1py(n_value - j, -p))
        out[rows] = (np.exp(log_pmf) * np.abs(p - j / n_value)).sum(axis=-1)
    return out


def _chord_categories(probe: np.ndarray, r: np.ndarray, n_obs: np.ndarray, cost: np.ndarray | None) -> np.ndarray:
    """Categories majorised by the Bernstein polynomial rather than the quadratic: where the quadratic's excess
    at x = s_c (r/2) is larger than the Bernstein one (``cost``: :func:`plugin_cost`, computed when None)."""
    return (plugin_cost(probe, n_obs) if cost is None else cost) < r / 2.0


def _tv_terms(p: np.ndarray, sq: np.ndarray, probe: np.ndarray, dg: np.ndarray, r: np.ndarray,
              chord_cat: np.ndarray, plugin: bool = True) -> np.ndarray:
    """Per-user estimator of the TV-gap minorant given estimates p of theta and sq of theta^2; outside the
    quadratic categories |s - p| (``plugin``, the estimator of the Bernstein majorant) or the chord (above it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        quad = (probe ** 2 - 2.0 * probe * p + sq + r * r) / (2.0 * r)
    other = np.abs(probe - p) if plugin else probe + (1.0 - 2.0 * probe) * p
    return 0.5 * (tv_signs(probe, dg) * (dg - p) - np.where(chord_cat, other, quad)).sum(axis=1)


def tv_minorant(counts: np.ndarray, probe: np.ndarray, dg: np.ndarray, rho: float, lower: float,
                cost: np.ndarray | None = None) -> np.ndarray:
    r"""Unbiased estimate :math:`V_u` of a minorant of :math:`TV(d,\theta^*) - TV(s,\theta^*)`:

    .. math:: \tfrac12 \sum_c \big[\sigma_c (d_c - \theta_c) - m_c(\theta_c)\big],\qquad
              m_c(x) = \frac{(s_c - x)^2 + r_c^2}{2r_c} \text{ or } B_{n}|s_c - \cdot|(x) = E|s_c - \mathrm{Bin}(n, x)/n|

    (the Bernstein polynomial where :math:`2 s_c(1-s_c) < r_c/2` or where the quadratic exceeds -``lower`` at
    x = 1; both majorise :math:`|s_c - x|` on [0, 1], the Bernstein one by Jensen; :math:`r_c` from
    :func:`tv_radii`). Estimators: :math:`\theta_c \mapsto c/n`, :math:`\theta_c^2 \mapsto c(c-1)/(n(n-1))`
    (n >= 2; for n = 1, :math:`\theta_c^2 \le \theta_c \mapsto c`, biased downwards for V), and the Bernstein
    term by the plug-in :math:`|s_c - c/n|` (unbiased for it). Users whose estimator could fall below ``lower``
    (<= -2) use the plug-in in every category (then :math:`V \ge -2`), so :math:`V_u \ge` ``lower`` always.
    """
    n = counts.sum(axis=1, keepdims=True).astype(np.float64)
    p = counts / n
    with np.errstate(divide="ignore", invalid="ignore"):
        sq = np.where(n >= 2, counts * (counts - 1.0) / (n * (n - 1.0)), p)  # estimates of theta_c^2 (or above)
    r = tv_radii(probe, rho, lower)
    cost = plugin_cost(probe, n[:, 0]) if cost is None else cost
    v = _tv_terms(p, sq, probe, dg, r, _chord_categories(probe, r, n[:, 0], cost))
    v_chord = _tv_terms(p, sq, probe, dg, r, np.ones_like(r, dtype=bool))
    return np.where(tv_estimator_floor(probe, dg, n[:, 0], rho, lower, cost) >= lower, v, v_chord)


def tv_estimator_floor(probe: np.ndarray, dg: np.ndarray, n_obs: np.ndarray, rho: float,
                       lower: float, cost: np.ndarray | None = None) -> np.ndarray:
    r"""The smallest value the quadratic estimator of :func:`tv_minorant` can take, per user.

    As a function of :math:`p = c/n` the estimator is concave (its only non-linear terms are
    :math:`-c_c(c_c-1)/(n(n-1))/(4r_c) = -(n p_c^2 - p_c)/(4 r_c (n-1))`), so its minimum over the simplex
    (which holds every count vector) sits at a vertex :math:`p = e_a`, where :math:`c(c-1)/(n(n-1)) = e_a`
    (and the n = 1 substitute is e_a too)."""
    r = tv_radii(probe, rho, lower)
    chord_cat = _chord_categories(probe, r, n_obs, cost)
    worst = np.full(len(probe), np.inf)
    for a in range(probe.shape[1]):
        p = np.zeros_like(probe)
        p[:, a] = 1.0
        worst = np.minimum(worst, _tv_terms(p, p, probe, dg, r, chord_cat, plugin=False))
    return worst


# ---------------------------------------------------------------- the population block


@dataclass(frozen=True)
class Statement:
    """One population statement: its estimate, lower bound(s), claim sentence and population."""

    claim: str
    population: str
    method: str
    n: int
    values: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {**dict(self.values), "n": self.n, "claim": self.claim, "population": self.population,
                "method": self.method}


@dataclass(frozen=True)
class PopulationResult:
    """The ``latent.population`` block and the per-user columns behind it."""

    alpha: float
    routes: int
    alpha_each: float
    n_pilot: int
    n_holdout: int
    pilot_seed: int
    kappa: float
    tv_scale: float
    tv_scale_source: str
    support: Statement
    brier_gap: Statement
    brier_fraction: Statement
    tv_gap: Statement
    description: str = POPULATION
    # per-user arrays (None when rebuilt from JSON)
    out_of_list_count: np.ndarray | None = field(default=None, compare=False, repr=False)
    brier_gain: np.ndarray | None = field(default=None, compare=False, repr=False)
    pilot: np.ndarray | None = field(default=None, compare=False, repr=False)  # bool (n,): pilot users

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description, "alpha_each": self.alpha_each, "alpha": self.alpha, "routes": self.routes,
            "statements": list(STATEMENTS),
            "simultaneity": (f"each of the {len(STATEMENTS)} statements is at alpha_each = alpha / (routes x "
                             f"{len(STATEMENTS)}), so all hold together with probability >= 1 - alpha / routes"),
            "n_pilot": self.n_pilot, "n_holdout": self.n_holdout, "pilot_seed": self.pilot_seed,
            "tuning": {"kappa": self.kappa, "tv_scale": self.tv_scale, "tv_scale_source": self.tv_scale_source,
                       "note": "fitted on the pilot users only; pilot users enter no bound they tune"},
            "support": self.support.to_dict(), "brier_gap": self.brier_gap.to_dict(),
            "brier_fraction": self.brier_fraction.to_dict(), "tv_gap": self.tv_gap.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PopulationResult":
        tuning = d.get("tuning") or {}
        return cls(float(d["alpha"]), int(d["routes"]), float(d["alpha_each"]), int(d["n_pilot"]),
                   int(d["n_holdout"]), int(d.get("pilot_seed", 0)), float(tuning.get("kappa", math.nan)),
                   float(tuning.get("tv_scale", math.nan)), str(tuning.get("tv_scale_source", "")),
                   statement_from_dict(d["support"]), statement_from_dict(d["brier_gap"]),
                   statement_from_dict(d["brier_fraction"]), statement_from_dict(d["tv_gap"]),
                   d.get("description", POPULATION))

    def statements(self) -> dict[str, Statement]:
        return {"support": self.support, "brier_gap": self.brier_gap, "brier_fraction": self.brier_fraction,
                "tv_gap": self.tv_gap}

    def sentences(self) -> list[str]:
        """Each statement's claim, with its level, in plain words."""
        level = f"(each at confidence {1 - self.alpha_each:.1%}; all together at {1 - self.alpha / self.routes:.0%})"
        return [st.claim for st in self.statements().values()] + [level]


def split_pilot(n: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of pilot users: round(fraction * n) users drawn without replacement with ``seed``."""
    pilot = np.zeros(n, dtype=bool)
    k = int(round(fraction * n))
    if k:
        pilot[np.random.default_rng(seed).choice(n, size=k, replace=False)] = True
    return pilot


def _prior(y: np.ndarray, lower: float) -> tuple[float, float]:
    """Starting mean and variance of the bets: the pilot's, or the range's midpoint and a wide variance."""
    if y.size >= 2:
        return float(y.mean()), float(max(y.var(ddof=1), 1e-8))
    return 0.0, float(lower * lower)


def _fit(candidates, estimate, level: float, default, n_holdout: int):
    """The (parameter, lower end) candidate whose betting bound is largest on the pilot users' estimates
    repeated to the holdout's size (a forecast of the holdout bound; ties: the first); ``default`` without a
    pilot. Uses pilot users only."""
    best, best_value = default, -math.inf
    for param, lower in candidates:
        y = estimate(param, lower)
        if y.size < 2:
            return default
        y = np.resize(y, max(n_holdout, y.size))
        value = betting_lower(y, lower, level, prior_mean=float(y.mean()), prior_var=float(max(y.var(), 1e-8)))
        if value > best_value + 1e-12:
            best, best_value = (param, lower), value
    return best


def population_statements(counts: np.ndarray, probe: np.ndarray, dg: np.ndarray, *, alpha: float = 0.05,
                          routes: int = 1, tau: float = 0.0, pilot_fraction: float = PILOT_FRACTION,
                          pilot_seed: int = 0, tv_scale: float | None = None,
                          method_names: tuple[str, str] = ("probe", "DG")) -> PopulationResult:
    """The four population statements of the module docstring on checked, aligned arrays.

    ``counts`` (n, K) int with row sums >= 1; ``probe`` (the method claimed better, s) and ``dg`` (the one it is
    compared with, d; its list is its mass > tau) (n, K) normalised. ``method_names`` name them in the claims.
    """
    a_name, b_name = method_names
    n_users = len(counts)
    alpha_each = alpha / (routes * len(STATEMENTS))
    pilot = split_pilot(n_users, pilot_fraction, pilot_seed)
    hold = ~pilot
    if hold.sum() < 2:  # too few users to split: no pilot
        pilot = np.zeros(n_users, dtype=bool)
        hold = ~pilot
    n_obs = counts.sum(axis=1)
    outside = ~list_mask(dg, tau)
    out_count = np.where(outside, counts, 0).sum(axis=1)
    g = brier_vertices(probe, dg)
    gain = brier_gain(counts, g)

    # support: untuned, all users, exact
    k_out = int((out_count > 0).sum())
    supp_lo = float(clopper_pearson(k_out, n_users, alpha_each, "lower"))
    zero = "zero probability" if tau == 0 else f"probability <= {tau:g}"
    support = Statement(
        claim=(f"{b_name} gives {zero} to a category the user consumes for at least {supp_lo:.1%} of users "
               f"({k_out / n_users:.1%} of this cohort have a counted item outside {b_name}'s list)"),
        population=POPULATION.replace(" (holdout users)", " (all users)"),
        method=("a count outside the list proves theta*(L^c) > 0 (no per-user error); exact one-sided "
                "Clopper-Pearson lower bound on the fraction at alpha_each"),
        n=n_users, values={"fraction": k_out / n_users, "pi_lower": supp_lo})

    # Brier gap: betting on holdout users (pilot sets the first bet), t bound labelled asymptotic
    yb = gain[hold]
    pm, pv = _prior(gain[pilot], BRIER_LOWER)
    b_lo = betting_lower(yb, BRIER_LOWER, alpha_each, prior_mean=pm, prior_var=pv)
    b_t = t_lower(yb, alpha_each)
    brier = Statement(
        claim=(f"{a_name}'s mean squared error to users' preferences is lower than {b_name}'s by at least "
               f"{max(b_lo, 0.0):.4f}" if b_lo > 0 else
               f"no finite-sample evidence that {a_name}'s mean squared error to users' preferences is lower "
               f"than {b_name}'s (lower bound {b_lo:.4f})"),
        population=POPULATION,
        method=("unbiased per-user estimate (affine in the observed mix), values in [-2, 2]; finite-sample "
                "capital-betting lower bound (Waudby-Smith & Ramdas 2024), valid at every N; lower_t = "
                "one-sided Student-t bound (asymptotic)"),
        n=int(hold.sum()), values={"estimate": float(yb.mean()), "lower": b_lo, "lower_t": b_t,
                                   **brier_variances(counts[hold], g[hold])})

    # Brier fraction: quadratic minorant of the indicator, (kappa, lower end) fitted on the pilot
    def w_of(kappa: float, lower: float, mask: np.ndarray) -> np.ndarray:
        t = fraction_scale(probe[mask], dg[mask], kappa, lower, g[mask])
        return fraction_minorant(counts[mask], g[mask], t)

    kappa, f_lower = _fit(KAPPA_GRID, lambda k_, a_: w_of(k_, a_, pilot), alpha_each, (1.0, -3.0), int(hold.sum()))
    yw = w_of(kappa, f_lower, hold)
    pm, pv = _prior(w_of(kappa, f_lower, pilot), f_lower)
    f_lo = max(0.0, betting_lower(yw, f_lower, alpha_each, prior_mean=pm, prior_var=pv))
    fraction = Statement(
        claim=(f"{a_name} is closer than {b_name} (squared error) to the preference of at least {f_lo:.1%} of "
               "users"),
        population=POPULATION,
        method=("unbiased estimate (U-statistic for G^2; users with one item count 0) of the minorant "
                "2G/t - G^2/t^2 <= 1{G > 0}, t_u = max(kappa ||d - s||^2, floor) with kappa and the floor fitted "
                "on the pilot (Paley-Zygmund when t is constant); capital-betting lower bound at alpha_each"),
        n=int(hold.sum()), values={"pi_lower": f_lo, "minorant_mean": float(yw.mean()) if yw.size else math.nan,
                                   "n_one_item": int((n_obs[hold] < 2).sum()), "estimator_lower_end": f_lower})

    # TV gap: quadratic minorant, (scale rho, lower end) fitted on the pilot, or rho given
    grid = TV_SCALE_GRID if tv_scale is None else tuple((float(tv_scale), a_) for a_ in LOWER_GRID)
    source = "fitted on the pilot users" if tv_scale is None else "given (--tv-scale); lower end fitted on the pilot"
    cost = plugin_cost(probe, n_obs)
    rho, v_lower = _fit(grid, lambda r_, a_: tv_minorant(counts[pilot], probe[pilot], dg[pilot], r_, a_,
                                                         cost[pilot]),
                        alpha_each, (0.2 if tv_scale is None else float(tv_scale), -4.0), int(hold.sum()))
    yv = tv_minorant(counts[hold], probe[hold], dg[hold], rho, v_lower, cost[hold])
    pm, pv = _prior(tv_minorant(counts[pilot], probe[pilot], dg[pilot], rho, v_lower, cost[pilot]), v_lower)
    v_lo = betting_lower(yv, v_lower, alpha_each, prior_mean=pm, prior_var=pv)
    plug = float((np.abs(dg - counts / n_obs[:, None]).sum(axis=1) / 2
                  - np.abs(probe - counts / n_obs[:, None]).sum(axis=1) / 2)[hold].mean())
    tv = Statement(
        claim=(f"{a_name}'s mean total-variation distance to users' preferences is lower than {b_name}'s by at "
               f"least {v_lo:.4f}" if v_lo > 0 else
               f"no finite-sample evidence that {a_name}'s mean TV distance to users' preferences is lower "
               f"than {b_name}'s (lower bound {v_lo:.4f})"),
        population=POPULATION,
        method=("unbiased estimate of a polynomial minorant of TV(d, theta) - TV(s, theta) (|d - x| >= sigma (d - x); "
                "|s - x| <= ((s - x)^2 + r^2)/(2r) or its Bernstein polynomial E|s - Bin(n, x)/n|); scale rho and "
                "the estimator's lower end fitted on the pilot; capital-betting lower bound at alpha_each; "
                "estimate_plugin is the plug-in mean on the observed mix (biased, not a bound)"),
        n=int(hold.sum()), values={"estimate_plugin": plug, "lower": v_lo, "minorant_mean": float(yv.mean()),
                                   "estimator_lower_end": v_lower})
    return PopulationResult(alpha, routes, alpha_each, int(pilot.sum()), int(hold.sum()), pilot_seed, kappa, rho,
                            source, support, brier, fraction, tv, POPULATION, out_count, gain, pilot)


def statement_from_dict(d: Mapping[str, Any]) -> Statement:
    """Inverse of :meth:`Statement.to_dict`."""
    values = {k: v for k, v in d.items() if k not in ("n", "claim", "population", "method")}
    return Statement(d["claim"], d["population"], d["method"], int(d["n"]), values)
