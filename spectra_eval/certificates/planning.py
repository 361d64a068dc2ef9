r"""Sample-size planning for the latent statements (``spectra theory plan``; theory/README.md section 6.6).

**Users for a mean gap.** The per-user estimates :math:`Y_u` (e.g. the Brier gain) are i.i.d. with mean
:math:`\mu` (the target effect) and variance :math:`\sigma^2(n) = \sigma_b^2 + \sigma_w^2/n` at n items per user
(:math:`\sigma_b^2` between users, :math:`\sigma_w^2` the within-user variance of one item's contribution). The
betting bound of :func:`spectra_eval.certificates.population.betting_lower` with bets
:math:`\lambda = \min(\sqrt{2\ln(1/a)/(N\sigma^2)}, c/|y_{min}|)` (a = alpha_each, critical mean 0) sits below
the sample mean by about the smallest w with :math:`N[\lambda w - \lambda^2(\sigma^2 + w^2)/2] \ge \ln(1/a)`,
i.e. :math:`w(N) = (1 - \sqrt{1 - \lambda^2\sigma^2 - 2\ln(1/a)/N})/\lambda` (second-order expansion of
:math:`\sum\log(1 + \lambda(Y_i - m))` about m, whose second moment is :math:`\sigma^2 + w^2`), so it exceeds 0 with probability about ``power`` when
:math:`\mu - z_{power}\sigma/\sqrt N - w(N) \ge 0`; the plan is the smallest such N (holdout users; the pilot
adds ``pilot_fraction``). The asymptotic t bound needs :math:`N_t = ((z_{1-a} + z_{power})\sigma/\mu)^2`.

**Items per user for the per-user box.** A user whose latent TV gap is :math:`\Delta` (TV(d) - TV(s)) is
certified by the box when the box's half-widths (normal approximation of Clopper-Pearson at
:math:`\beta/(2K)`), summed over categories, fall below :math:`\Delta`: each coordinate's move changes the
TV difference by at most its size, so with :math:`S = \sum_c \sqrt{\theta_c(1-\theta_c)}` (:math:`\sqrt{K-1}`
for a uniform preference) :math:`n \ge ((z_{1-\beta/(2K)} + z_{power}) S/\Delta)^2` items are needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats

from spectra_eval.certificates.population import BET_CAP, BRIER_LOWER, PILOT_FRACTION, STATEMENTS


def betting_width(n: int, sd: float, level: float, lower: float = BRIER_LOWER, cap: float = BET_CAP) -> float:
    r"""Approximate distance :math:`w(N)` from the sample mean to the betting lower bound (module docstring)."""
    var, log_level = sd * sd, math.log(1.0 / level)
    lam = min(math.sqrt(2.0 * log_level / (n * max(var, 1e-300))), cap / abs(lower))
    disc = 1.0 - lam * lam * var - 2.0 * log_level / n
    return (1.0 - math.sqrt(disc)) / lam if disc > 0 else math.inf


def users_needed(effect: float, sd: float, level: float, power: float, lower: float = BRIER_LOWER,
                 cap: float = BET_CAP, limit: int = 10 ** 9) -> int:
    """Smallest N with effect - z_power sd / sqrt(N) - w(N) >= 0 (bisection on N; the left side increases)."""
    z = stats.norm.ppf(power)

    def ok(n: int) -> bool:
        return effect - z * sd / math.sqrt(n) - betting_width(n, sd, level, lower, cap) >= 0

    if not ok(limit):
        return limit
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class Plan:
    """The planned sizes and the assumptions behind them."""

    effect: float
    alpha: float
    routes: int
    statements: int
    alpha_each: float
    power: float
    items_per_user: float
    between_var: float
    within_var: float
    sd: float
    pilot_fraction: float
    n_holdout: int
    n_users: int
    n_users_t: int
    box: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "box"}
        out["method"] = ("smallest N whose finite-sample (betting) lower bound exceeds 0 with probability ~power "
                         "under sd(n)^2 = between_var + within_var / n; n_users adds the pilot; n_users_t is the "
                         "asymptotic t bound's N (holdout)")
        if self.box is not None:
            out["per_user_box"] = self.box
        return out


def plan(effect: float, *, alpha: float = 0.05, power: float = 0.8, routes: int = 1,
         statements: int = len(STATEMENTS), items_per_user: float = 13.0, between_var: float | None = None,
         within_var: float | None = None, sd: float | None = None, pilot_fraction: float = PILOT_FRACTION,
         lower: float = BRIER_LOWER, k: int | None = None, box_gap: float | None = None, beta: float = 0.05,
         spread: float | None = None) -> Plan:
    """Users needed for a mean-gap statement, and (with ``k`` and ``box_gap``) items per user for the box."""
    level = alpha / (routes * statements)
    if sd is None:
        if between_var is None or within_var is None:
            raise ValueError("give sd, or between_var and within_var")
        sd = math.sqrt(between_var + within_var / items_per_user)
    n_hold = users_needed(effect, sd, level, power, lower)
    z_a, z_p = stats.norm.ppf(1 - level), stats.norm.ppf(power)
    n_t = math.ceil(((z_a + z_p) * sd / effect) ** 2)
    box = None
    if k is not None and box_gap is not None:
        s = math.sqrt(k - 1) if spread is None else spread
        z_box = stats.norm.ppf(1 - beta / (2 * k))
        box = {"k": k, "gap": box_gap, "beta": beta, "spread": s,
               "items_per_user": math.ceil(((z_box + z_p) * s / box_gap) ** 2),
               "method": "box half-widths z_{1-beta/(2K)} sqrt(theta_c(1-theta_c)/n) summed over categories below "
                         "the user's latent TV gap with probability ~power (normal approximation)"}
    return Plan(effect, alpha, routes, statements, level, power, items_per_user,
                math.nan if between_var is None else between_var, math.nan if within_var is None else within_var,
                sd, pilot_fraction, n_hold, math.ceil(n_hold / (1.0 - pilot_fraction)), n_t, box)
