r"""Bounds behind the SPECTRA certificates: TV-from-JS chains, Pinsker, DG truncation, DKW, Theorems 2 and 4.

Units. JS is reported in **bits** by the library (``JS_bits`` in [0, 1]); ``JS_nats = JS_bits * ln 2`` lies in
[0, ln 2]. Every chain declares the unit its formula expects and converts explicitly. The statements, the
proofs and the places where the paper differs are in ``theory/README.md``.

The central result is the sharp chain. For a total-variation distance ``t`` the smallest Jensen-Shannon
divergence any pair of distributions (on any number of categories) can have is

.. math:: JS_{\min}(t) = \ln 2 - h\left(\tfrac{1+t}{2}\right) = t\,\operatorname{artanh}(t) + \tfrac12\ln(1-t^2)
          \quad\text{(nats)},

attained by the two-point pair ``((1+t)/2, (1-t)/2)`` vs ``((1-t)/2, (1+t)/2)``. Hence
``phi_sharp(J) = JS_min^{-1}(J)`` is the tightest possible TV bound given JS: it is valid and attained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from spectra_eval.validation import (SpectraInputError, check_alpha, check_count, check_fraction, check_js,
                                     check_unit)

LN2 = math.log(2.0)
_BISECTION_STEPS = 64  # halves [0, 1] to below double precision


def _to_nats(js, unit: str) -> np.ndarray:
    return check_js(js, unit) * (LN2 if unit == "bits" else 1.0)


# ---------------------------------------------------------------- the sharp chain


#: coefficients 1/(2n(2n-1)), n = 1..27, of JS_min(t) = sum_n t^(2n)/(2n(2n-1)); for t < 1/2 the 28th term is
#: below 2^-60 of the sum
_SERIES = tuple(1.0 / (2 * n * (2 * n - 1)) for n in range(1, 28))


def js_min_given_tv(tv, unit: str = "nats") -> np.ndarray:
    r"""Smallest JS over all pairs with total variation ``tv``: :math:`\ln 2 - h((1+t)/2)`.

    Two algebraically equal forms, each used where it is accurate on every CPU: for t < 1/2 the series
    :math:`\sum_{n\ge1} t^{2n}/(2n(2n-1))` by Horner's rule in :math:`x = t^2` (27 terms; only IEEE +, x, /,
    which round identically on every CPU, so the result is bit-identical everywhere and within 3 rounding
    errors, 3.4e-16 relative, of the exact value: the positive terms shrink by x <= 1/4 per step); for
    t >= 1/2, :math:`\frac12[(1+t)\log(1+t) + (1-t)\log(1-t)]` with ``log1p``, since 1 - t is exact in floating
    point there while 1 - t² is not. numpy's ``log1p`` may be a SIMD routine (up to 4 ulps, numpy's documented
    bound for its AVX-512 SVML kernels) or libm (about 1 ulp); with A = (1+t)log1p(t), B = (1-t)log1p(-t) the
    relative error is at most :math:`((10|A| + 9|B|)/|A+B| + 1)u`, u = 2^-53: 36u = 4.0e-15 at t = 1/2
    (the terms cancel by a factor 3.7 there), 15u at t = 0.9, on every CPU numpy dispatches to.
    Strictly increasing from 0 to ln 2 (1 bit); >= t²/2.
    """
    t = np.clip(np.asarray(tv, dtype=np.float64), 0.0, 1.0)
    x = t * t
    series = np.full_like(t, _SERIES[-1])
    for c in _SERIES[-2::-1]:
        series = series * x + c
    small = x * series
    with np.errstate(divide="ignore", invalid="ignore"):
        large = 0.5 * ((1.0 + t) * np.log1p(t) + (1.0 - t) * np.log1p(-t))
    value = np.where(t < 0.5, small, np.where(t >= 1.0, LN2, large))
    return np.maximum(value, 0.0) / check_unit(unit)


def phi_sharp(js, unit: str = "bits") -> np.ndarray:
    r"""Sharp TV bound from JS: :math:`\varphi^\sharp(J) = \sup\{TV(p,q) : JS(p,q) \le J\}`.

    The inverse of :func:`js_min_given_tv`, found by vectorised bisection (64 halvings). The upper end of the
    final bracket is returned, raised by 16 machine epsilons = 32u (relative) to absorb the error of
    :func:`js_min_given_tv` (at most 36u relative on any CPU): a relative error e in JS moves the inverse by
    e J/(t J'(t)) <= e/2 relative (term by term, J = sum t^(2n)/(2n(2n-1)) and t J' = sum t^(2n)/(2n-1)),
    i.e. by at most 18u, plus the bisection's last halving; so the result is never below the exact inverse
    (capped at 1). Valid for every
    pair of distributions and attained (up to those ulps) by the two-point pair with TV = ``phi_sharp(J)``.
    """
    target = _to_nats(js, unit)
    lo = np.zeros_like(target)
    hi = np.ones_like(target)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = js_min_given_tv(mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    # JS = 0 means p = q; otherwise never below the exact inverse
    return np.where(target > 0, np.minimum(hi * (1.0 + 16.0 * np.finfo(np.float64).eps), 1.0), 0.0)


def two_point_pair(tv: float) -> tuple[np.ndarray, np.ndarray]:
    """The binary symmetric pair that attains the sharp bound at total variation ``tv``."""
    t = float(tv)
    return np.array([(1 + t) / 2, (1 - t) / 2]), np.array([(1 - t) / 2, (1 + t) / 2])


# ---------------------------------------------------------------- chain registry


@dataclass(frozen=True)
class Chain:
    """A map phi from a JS value to a claimed upper bound on TV.

    ``input_unit`` is the unit the formula is evaluated in (a value given in the other unit is converted);
    ``valid`` says whether ``TV(p, q) <= phi(JS(p, q))`` holds for *every* pair (proved in theory/README.md,
    counterexamples in theory/ for the invalid ones); ``convention`` says whose reading of the formula it is.
    """

    name: str
    formula: str
    input_unit: str
    valid: bool
    convention: str
    reason: str
    fn: Callable[[np.ndarray], np.ndarray]

    def __call__(self, js, unit: str = "bits") -> np.ndarray:
        nats = _to_nats(js, unit)
        return self.fn(nats if self.input_unit == "nats" else nats / LN2)


def _sqrt(x):
    return np.sqrt(np.maximum(x, 0.0))


CHAINS: dict[str, Chain] = {
    c.name: c
    for c in (
        Chain("sharp", "phi(J) = JS_min^{-1}(J), JS_min(t) = ln2 - h((1+t)/2)", "nats", True, "library",
              "exact: the tightest bound, attained by a two-point pair", lambda j: phi_sharp(j, "nats")),
        Chain("js_direct", "sqrt(2 j)", "nats", True, "library = paper formula with j in nats",
              "JS_nats >= TV^2/2 (first term of the series of JS_min)", lambda j: _sqrt(2 * j)),
        Chain("pinsker_topsoe", "sqrt(j / ln 2)", "nats", False, "paper formula, j in nats (the units of its derivation)",
              "equals sqrt(JS_bits); fails for small TV since JS_bits ~ TV^2/(2 ln 2) < TV^2; the Topsoe bridge is false",
              lambda j: _sqrt(j / LN2)),
        Chain("pinsker_topsoe_bits", "sqrt(j / ln 2)", "bits", True, "paper formula fed JS in bits",
              "equals sqrt(JS_nats)/ln2 >= sqrt(2 JS_nats) since 1/ln2^2 > 2; valid via js_direct, not via Topsoe",
              lambda j: _sqrt(j / LN2)),
        Chain("bh_topsoe", "sqrt(1 - exp(-2 j / ln 2))", "nats", False, "paper formula, j in nats",
              "below 1 at JS = ln 2 nats, where disjoint supports have TV = 1",
              lambda j: _sqrt(-np.expm1(-2 * j / LN2))),
        Chain("bh_topsoe_bits", "sqrt(1 - exp(-2 j / ln 2))", "bits", False, "paper formula fed JS in bits",
              "below 1 at JS = 1 bit, where disjoint supports have TV = 1",
              lambda j: _sqrt(-np.expm1(-2 * j / LN2))),
        Chain("topsoe_hellinger", "sqrt(4 j / ln 2)", "nats", True, "paper formula, j in nats",
              "equals 2 sqrt(JS_bits) >= sqrt(2 JS_nats) (dominates js_direct)", lambda j: _sqrt(4 * j / LN2)),
        Chain("topsoe_hellinger_bits", "sqrt(4 j / ln 2)", "bits", True, "paper formula fed JS in bits",
              "dominates js_direct", lambda j: _sqrt(4 * j / LN2)),
        # The paper's F.6 anchor numbers: JS in bits converted to nats and the '/ln 2' factor dropped.
        Chain("pinsker_topsoe@paper", "sqrt(JS_nats)", "nats", False, "paper F.3/F.6 anchor arithmetic",
              "reproduces 0.207 / 0.526; below TV for small TV (JS_nats ~ TV^2/2)", lambda j: _sqrt(j)),
        Chain("bh_topsoe@paper", "sqrt(1 - exp(-2 JS_nats))", "nats", False, "paper F.6 anchor arithmetic",
              "reproduces 0.287 / 0.652; equals 0.866 < 1 at disjoint supports", lambda j: _sqrt(-np.expm1(-2 * j))),
        Chain("js_direct@paper", "sqrt(2 JS_nats)", "nats", True, "paper F.6 anchor arithmetic",
              "reproduces 0.293 / 0.744; the same function as js_direct", lambda j: _sqrt(2 * j)),
        Chain("topsoe_hellinger@paper", "sqrt(8 JS_nats)", "nats", True, "paper F.6 MovieLens anchor arithmetic",
              "reproduces 0.586 (MovieLens); the Yelp anchor 0.744 matches no reading of the formula",
              lambda j: _sqrt(8 * j)),
        Chain("envelope@paper", "min(pinsker_topsoe@paper, bh_topsoe@paper)", "nats", False,
              "paper's piecewise envelope (switch at j* = 0.5523)", "minimum of two invalid chains",
              lambda j: np.minimum(_sqrt(j), _sqrt(-np.expm1(-2 * j)))),
    )
}
VALID_CHAINS = tuple(name for name, c in CHAINS.items() if c.valid)


def get_chain(name: str) -> Chain:
    """Look a chain up by name (clear error listing the names)."""
    try:
        return CHAINS[name]
    except KeyError:
        raise SpectraInputError(f"unknown chain {name!r}; choose one of {', '.join(CHAINS)}") from None


def evaluate_chains(js, unit: str = "bits") -> dict[str, dict]:
    """Every chain's TV bound at ``js`` with its validity, unit and convention (JSON-ready)."""
    value = float(check_js(js, unit))
    return {
        name: {
            "tv_bound": float(chain(value, unit)),
            "valid": chain.valid,
            "input_unit": chain.input_unit,
            "formula": chain.formula,
            "convention": chain.convention,
            "reason": chain.reason,
        }
        for name, chain in CHAINS.items()
    }


# ---------------------------------------------------------------- Lemmas 1, 2 and the Topsoe bridge


def pinsker_bound(kl, unit: str = "nats") -> np.ndarray:
    r"""Lemma 2 (Pinsker): :math:`TV(p,q) \le \sqrt{KL(p\|q)/2}` with KL in nats (``inf`` stays ``inf``)."""
    return np.sqrt(np.maximum(np.asarray(kl, dtype=np.float64), 0.0) * check_unit(unit) / 2.0)


def topsoe_bridge_rhs(js, unit: str = "nats") -> np.ndarray:
    r"""Right side of the paper's claimed (false) bridge :math:`KL \le (2/\ln 2) JS`, in the unit of ``js``."""
    return 2.0 / LN2 * np.asarray(js, dtype=np.float64)


def list_mask(dg, tau: float = 0.0) -> np.ndarray:
    """DG decoded list as a boolean (n, K) mask: categories where the DG distribution exceeds ``tau``."""
    return np.asarray(dg) > tau


def tail_mass(truth, in_list) -> np.ndarray:
    r"""m_tau(L) = :math:`\sum_{c\notin L} \theta_*(c)`: the true mass outside the decoded list."""
    return np.where(np.asarray(in_list), 0.0, np.asarray(truth)).sum(axis=1)


def dg_tv_lower_bound(truth, dg, in_list) -> np.ndarray:
    r"""Lemma 1: :math:`TV(\theta_{DG}, \theta_*) \ge \theta_*(L^c) - \theta_{DG}(L^c)`.

    With the list equal to the DG support (``tau = 0``) the DG term vanishes and the bound is m_tau(L);
    with ``tau > 0`` the mass DG leaks outside its list is subtracted, which keeps the bound true.
    """
    return tail_mass(truth, in_list) - tail_mass(dg, in_list)


# ---------------------------------------------------------------- Theorem 5 (DKW / Hoeffding)


@dataclass(frozen=True)
class DkwCertificate:
    """Population lower bound on a cohort fraction: ``pi_lower = max(0, fhat - cohort_slack - route_penalty)``."""

    n: int
    alpha: float
    routes: int
    fhat: float
    cohort_slack: float
    route_penalty: float
    pi_lower: float
    convention: str

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def dkw_certificate(n, alpha=0.05, routes=1, fhat=1.0) -> DkwCertificate:
    r"""Sound one-sided lower confidence bound on a population fraction, uniform over ``routes`` predicates.

    With ``Z_i`` i.i.d. Bernoulli(pi) per route and Hoeffding's (one-sided DKW-Massart) inequality
    :math:`P(\hat F - \pi \ge \varepsilon) \le e^{-2N\varepsilon^2}`, a union over M routes at level alpha gives,
    with probability at least 1 - alpha, for every route simultaneously,

    .. math:: \pi \ge \hat F - \sqrt{\ln(M/\alpha)/(2N)}.

    Reported as ``cohort_slack = sqrt(ln(1/alpha)/(2N))`` (one route) plus ``route_penalty`` (the extra
    slack that M routes cost: ``sqrt(ln(M/alpha)/(2N)) - cohort_slack``; 0 for M = 1).
    """
    n = check_count(n, name="n")
    alpha = check_alpha(alpha)
    routes = check_count(routes, name="routes")
    fhat = check_fraction(fhat, name="fhat")
    slack = math.sqrt(math.log(1.0 / alpha) / (2 * n))
    penalty = math.sqrt(math.log(routes / alpha) / (2 * n)) - slack
    return DkwCertificate(n, alpha, routes, fhat, slack, penalty, max(0.0, fhat - slack - penalty),
                          "sound: one-sided Hoeffding/DKW, Bonferroni over routes")


def dkw_certificate_paper(n, alpha=0.05, routes=1, fhat=1.0) -> DkwCertificate:
    r"""Theorem 5 (Eq. 11) exactly as the paper states it.

    :math:`\pi \ge \hat F - 2M\beta - 2\rho_N(\alpha/2)` with :math:`\rho_N(\alpha/2)=\sqrt{\ln(4/\alpha)/(2N)}`
    and :math:`\beta = \alpha/(4NM)`, so the route penalty is :math:`2M\beta = \alpha/(2N)` for every M.
    Valid (it is looser than :func:`dkw_certificate`).
    """
    n = check_count(n, name="n")
    alpha = check_alpha(alpha)
    routes = check_count(routes, name="routes")
    fhat = check_fraction(fhat, name="fhat")
    slack = 2.0 * math.sqrt(math.log(4.0 / alpha) / (2 * n))
    penalty = 2 * routes * alpha / (4 * n * routes)
    return DkwCertificate(n, alpha, routes, fhat, slack, penalty, max(0.0, fhat - slack - penalty),
                          "paper Eq. 11: 2 rho_N(alpha/2) + 2 M beta, beta = alpha/(4 N M)")


def table14_route_penalty(n, alpha=0.05, routes=2) -> float:
    """The route-penalty number printed in the paper's Table 14: ``M alpha / N`` (twice 2M*beta at beta = alpha/(4N))."""
    return check_count(routes, name="routes") * check_alpha(alpha) / check_count(n, name="n")


def clopper_pearson_lower(successes: int, n: int, alpha: float = 0.05, routes: int = 1) -> float:
    """Exact one-sided Clopper-Pearson lower bound on a binomial proportion (Bonferroni over ``routes``)."""
    n = check_count(n, name="n")
    level = check_alpha(alpha) / check_count(routes, name="routes")
    return float(clopper_pearson(int(successes), n, level, "lower"))


def clopper_pearson(successes, n, level, side: str) -> np.ndarray:
    """Exact one-sided Clopper-Pearson bound(s) on binomial proportions, vectorised.

    ``side="lower"``: the largest p0 with P(Bin(n, p0) >= k) <= level, i.e. ``Beta(level; k, n-k+1)`` (0 when
    k = 0); ``side="upper"``: ``Beta(1-level; k+1, n-k)`` (1 when k = n). Each holds with probability >= 1 - level.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if side == "lower":
            return np.where(k <= 0, 0.0, stats.beta.ppf(level, np.maximum(k, 1e-300), n - k + 1))
        if side == "upper":
            return np.where(k >= n, 1.0, stats.beta.ppf(1.0 - level, k + 1, np.maximum(n - k, 1e-300)))
    raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")


def hoeffding_lower(mean: float, n: int, level: float, value_range: float = 1.0) -> float:
    r"""One-sided Hoeffding lower bound :math:`\bar x - R\sqrt{\ln(1/\text{level})/(2n)}` for a mean of n i.i.d.
    values in an interval of length R (probability >= 1 - level)."""
    return float(mean - value_range * math.sqrt(math.log(1.0 / level) / (2 * n)))


@dataclass(frozen=True)
class FractionBound:
    """A cohort fraction and its one-sided population lower bound.

    ``pi_lower`` is the exact Clopper-Pearson bound (never looser than Hoeffding, which is kept as
    ``pi_lower_hoeffding``) at level ``alpha / routes``. For a fraction of per-user *certified* indicators with
    per-user type-I error ``beta`` (latent certificates), both are lifted by ``(bound - beta) / (1 - beta)``
    (``theory/README.md``, Lemma Lift). ``population`` says what the bound is about.
    """

    fraction: float
    successes: int
    n: int
    pi_lower: float
    pi_lower_hoeffding: float
    alpha: float
    routes: int
    method: str
    population: str
    beta: float | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def fraction_bound(indicator, alpha: float = 0.05, routes: int = 1, *, population: str,
                   beta: float | None = None) -> FractionBound:
    """:class:`FractionBound` of a per-user 0/1 ``indicator`` (users i.i.d.; Bonferroni over ``routes``).

    Without ``beta`` the indicator is the predicate itself, computed exactly per user, so its mean is a
    binomial proportion. With ``beta`` it is a certified indicator R_u with P(R_u = 1 | predicate false)
    <= beta; then P(R = 1) <= pi + beta (1 - pi), so pi >= (P(R = 1) - beta) / (1 - beta).
    """
    z = np.asarray(indicator, dtype=bool).ravel()
    n = check_count(z.size, name="n")
    level = check_alpha(alpha) / check_count(routes, name="routes")
    k = int(z.sum())
    cp = float(clopper_pearson(k, n, level, "lower"))
    hoeff = max(0.0, hoeffding_lower(k / n, n, level))
    method = "exact one-sided Clopper-Pearson (Hoeffding alongside), Bonferroni over routes"
    if beta is not None:
        beta = check_alpha(beta, name="beta")
        cp, hoeff = ((b - beta) / (1.0 - beta) for b in (cp, hoeff))
        method += f"; lifted by (bound - beta)/(1 - beta) for per-user type-I error beta = {beta:g}"
    return FractionBound(k / n, k, n, max(0.0, cp), max(0.0, hoeff), alpha, int(routes), method, population, beta)


# ---------------------------------------------------------------- Theorem 1 (eqs. 9, 10) and Theorem 2


def expected_gain_lower_bound(p_favorable, conditional_gain, f_max: float = 1.0):
    r"""Eq. (9): :math:`E[Gain] \ge P(\mathcal F) E[Gain|\mathcal F] - F_{max}(1 - P(\mathcal F))`."""
    p = np.asarray(p_favorable, dtype=np.float64)
    return p * np.asarray(conditional_gain, dtype=np.float64) - f_max * (1.0 - p)


def hoeffding_radius(n, alpha: float = 0.05, f_max: float = 1.0) -> float:
    r"""Eq. (10): two-sided Hoeffding radius :math:`F_{max}\sqrt{2\ln(2/\alpha)/n}` for a mean of values in
    :math:`[-F_{max}, F_{max}]` (range :math:`2F_{max}`)."""
    return f_max * math.sqrt(2.0 * math.log(2.0 / check_alpha(alpha)) / check_count(n, name="n"))


def dg_miss_ratio_bound(B: float, rho: float, lam: float) -> float:
    r"""Theorem 2, Eq. (7): :math:`\pi_{DG}(c^*)/\pi_{DG}(c_{head}) \le e^B \rho^{-\lambda}`."""
    if not (B >= 0 and rho > 1 and lam >= 0):
        raise SpectraInputError(f"need B >= 0, rho > 1, lambda >= 0; got B={B}, rho={rho}, lambda={lam}")
    return math.exp(B) * rho ** (-lam)


def dg_miss_probability_bound(k: int, B: float, rho: float, lam: float) -> float:
    r"""Theorem 2, Eq. (8): :math:`P(L \ne G^*) \ge 1 - k e^B \rho^{-\lambda}` (clipped at 0: vacuous below)."""
    k = check_count(k, name="k")
    return max(0.0, 1.0 - k * dg_miss_ratio_bound(B, rho, lam))


# ---------------------------------------------------------------- Theorem 4 (Schur-isotone metrics)


def schur_metric(truth, order, f=lambda x: x, weights=None) -> np.ndarray:
    r"""A Schur-isotone ranking metric of ranked lists ``order`` (n, k) of column indices.

    Type-S (``weights=None``): :math:`\sum_{c\in\pi} f(\theta_*(c))`; Type-O: :math:`\sum_i w_i f(\theta_*(\pi_i))`
    with non-increasing ``weights`` >= 0. Mass captured is Type-S with f(x) = x; DCG@k is Type-O with
    :math:`w_i = 1/\log_2(i+1)`.
    """
    values = f(np.take_along_axis(np.asarray(truth, dtype=np.float64), np.asarray(order), axis=1))
    if weights is None:
        return values.sum(axis=1)
    return (values * np.asarray(weights, dtype=np.float64)[None, :]).sum(axis=1)
