r"""Certificates that probing (SPECTRA) beats direct generation (DG), per user and lifted to the population.

Three tables share users and categories: the truth :math:`\theta_*`, the probe :math:`\theta_S` and the DG
distribution :math:`\theta_{DG}`, whose decoded list :math:`L_u` is its support (categories with mass > tau).
Rows are renormalised once, here at the boundary (the defect is recorded), because every bound below assumes
exact normalisation.

Two levels of claim, always labelled (``theory/README.md``):

* **Observed** (the tables): each predicate is evaluated exactly on the user's observed future mix.
  - *Regime (Theorem 3, per user)*: :math:`TV(\theta_S,\theta_*) \le \varphi(JS_u) <
    \theta_*(L^c) - \theta_{DG}(L^c) \le TV(\theta_{DG},\theta_*)` for a valid chain (headline: ``sharp``);
  - *TV dominance*: :math:`TV(\theta_S,\theta_*) < TV(\theta_{DG},\theta_*)`;
  - *Theorem 1*: with :math:`\varepsilon \ge \|\theta_S-\theta_*\|_\infty` from a certificate of F.4.3, favorable
    iff :math:`\Delta_k > 2\varepsilon`, :math:`L \ne G^*`, :math:`|L| \le k`; then mass captured strictly improves;
  - *Theorem 4 (DCG@k)*: favorable iff :math:`\min(\Delta_k, \Delta_k^{min}) > 2\varepsilon`, :math:`L \ne G^*`,
    :math:`|L| \le k`; then DCG@k of the probe's list beats DCG@k of DG's list in every order.
  Every cohort fraction gets a one-sided population lower bound (:func:`spectra_eval.certificates.bounds.fraction_bound`).
* **Latent** (with ``counts``): the regime and dominance predicates about each user's preference
  :math:`\theta^*_u`, certified per user at type-I error beta and lifted (:mod:`spectra_eval.certificates.latent`).
* **Latent population statements** (with ``counts``): support mismatch, mean Brier gap, Brier fraction and mean
  TV gap about users' preferences, with no per-user certificate (:mod:`spectra_eval.certificates.population`,
  ``latent.population``); ``per_user_fdr`` adds per-user p-values and a Benjamini-Hochberg list.

``probe`` and ``dg`` may be any two methods (``names`` names them): the claim is always "the first beats the
second", and the second's support is the list L.

``routes`` is the number of pre-registered (tau, k, chain, Theorem-1 certificate) combinations the user will
report from this data; every bound type of the run is at level alpha / routes (``settings.simultaneity`` says
how they combine). The run's one headline is the strongest valid latent statement with counts, the observed
regime bound without.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable, Mapping

import numpy as np

from spectra_eval.metrics.divergences import _chi_square, _hellinger, _js, _kl, _linf, _tv
from spectra_eval.io import CountTable, DistributionTable, align_tables, check_schema, json_errors
from spectra_eval.certificates.latent import (BETA, NUMERIC_SLACK, LatentResult, LatentSummary, benjamini_hochberg,
                                              latent_certificates, per_user_p_values)
from spectra_eval.certificates.population import PILOT_FRACTION, PopulationResult, population_statements
from spectra_eval.results import Result
from spectra_eval.metrics.ranking import Rankings, _dcg, _discounts, _ideal_dcg, _top_k
from spectra_eval.certificates.bounds import (
    CHAINS,
    LN2,
    DkwCertificate,
    FractionBound,
    clopper_pearson_lower,
    dg_tv_lower_bound,
    dkw_certificate,
    dkw_certificate_paper,
    expected_gain_lower_bound,
    fraction_bound,
    get_chain,
    hoeffding_lower,
    hoeffding_radius,
    list_mask,
    phi_sharp,
    tail_mass,
)
from spectra_eval.validation import SpectraInputError, check_alpha, check_count, check_fraction, check_three

log = logging.getLogger(__name__)

SCHEMA = "spectra.certificate/1"
HEADLINE_CHAIN = "sharp"
AGGREGATE_LABEL = "aggregate reading (paper's operational diagnostic, not a certificate)"
OBSERVED_POPULATION = ("users drawn i.i.d. like this cohort; the predicate is about each user's observed future "
                       "mix (the truth table), not a latent preference")
ROUTES_COUNTED = ("pre-registered (tau, k, chain, Theorem-1 certificate) combinations reported from this data; "
                  "every population bound of this run is at level alpha / routes")


# ---------------------------------------------------------------- Theorem 1 certificate family (F.4.3)


@dataclass(frozen=True)
class LinfCertificate:
    """An epsilon with ``||theta_S - theta_*||_inf <= epsilon`` (if ``valid``), from the truth and the probe."""

    name: str
    formula: str
    valid: bool
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (truth, probe) -> (n,)


def _pinsker_topsoe_eps(truth, probe):
    return CHAINS["pinsker_topsoe"](_js(truth, probe, LN2), "bits")


LINF_CERTIFICATES: dict[str, LinfCertificate] = {
    c.name: c
    for c in (
        LinfCertificate("direct_linf", "max_c |theta_S(c) - theta_*(c)|", True, lambda t, s: _linf(s, t)),
        LinfCertificate("tv", "TV(theta_S, theta_*) >= l_inf", True, lambda t, s: _tv(s, t)),
        LinfCertificate("sharp_js", "phi_sharp(JS) >= TV", True, lambda t, s: phi_sharp(_js(t, s, LN2), "bits")),
        LinfCertificate("pinsker_topsoe", "sqrt(JS_nats / ln 2) (paper's operational choice; invalid)", False,
                        _pinsker_topsoe_eps),
        LinfCertificate("pinsker_kl", "sqrt(KL_nats(theta_* || theta_S) / 2) (Pinsker)", True,
                        lambda t, s: np.sqrt(np.maximum(_kl(t, s), 0.0) / 2.0)),
        LinfCertificate("hellinger", "sqrt(2) H(theta_S, theta_*) >= H sqrt(2 - H^2) >= TV", True,
                        lambda t, s: math.sqrt(2.0) * _hellinger(s, t)),
        LinfCertificate("chi_square", "sqrt(chi2(theta_* || theta_S) / 2) >= sqrt(chi2)/2 >= TV", True,
                        lambda t, s: np.sqrt(_chi_square(t, s) / 2.0)),
    )
}


def top_k_mask(probs: np.ndarray, k: int) -> np.ndarray:
    """Boolean (n, K) mask of each row's k largest entries (ties broken by column order, stable)."""
    order = _top_k(probs, min(k, probs.shape[1]))
    mask = np.zeros(np.shape(probs), dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def ranking_gap(truth: np.ndarray, k: int) -> np.ndarray:
    r"""Eq. (3): :math:`\Delta_k = \theta_*^{(k)} - \theta_*^{(k+1)}` per user (k-th minus (k+1)-th largest)."""
    ordered = -np.sort(-np.asarray(truth), axis=1)
    return ordered[:, k - 1] - ordered[:, k]


def within_gap(truth: np.ndarray, k: int) -> np.ndarray:
    r"""Theorem 4's :math:`\Delta_k^{min} = \min_{1 \le i < j \le k} (\theta_*^{(i)} - \theta_*^{(j)})`, the smallest
    gap between neighbours in the true top k (``inf`` for k = 1: no pair)."""
    ordered = -np.sort(-np.asarray(truth), axis=1)[:, :k]
    if k < 2:
        return np.full(len(ordered), np.inf)
    return (ordered[:, :-1] - ordered[:, 1:]).min(axis=1)


def mass_captured(truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Eq. (4): truth mass on the listed categories."""
    return np.where(mask, truth, 0.0).sum(axis=1)


def _check_certificate(name: str, allow_invalid: bool = False) -> str:
    if name not in LINF_CERTIFICATES:
        raise SpectraInputError(f"unknown certificate {name!r}; choose one of {', '.join(LINF_CERTIFICATES)}")
    if not LINF_CERTIFICATES[name].valid and not allow_invalid:
        valid = ", ".join(k for k, c in LINF_CERTIFICATES.items() if c.valid)
        raise SpectraInputError(f"certificate {name!r} is not a valid l_inf bound (theory/README.md has a "
                                f"counterexample); choose one of {valid}, or pass --allow-invalid to compute it "
                                "anyway (marked invalid in every output)")
    return name


# ---------------------------------------------------------------- Theorem 1 (mass captured) and Theorem 4 (DCG@k)


@dataclass(frozen=True)
class Theorem1Result:
    """Theorem 1 per user (arrays of shape (n,))."""

    k: int
    certificate: str
    certificate_valid: bool
    epsilon: np.ndarray
    gap: np.ndarray
    dg_miss: np.ndarray
    list_size: np.ndarray
    favorable: np.ndarray
    probe_recovers_truth: np.ndarray  # L_S == G*
    gain: np.ndarray  # M(L_S) - M(L)
    alpha: float
    f_max: float = 1.0

    @property
    def fraction_favorable(self) -> float:
        return float(self.favorable.mean())

    @property
    def conditional_gain(self) -> float:
        return float(self.gain[self.favorable].mean()) if self.favorable.any() else float("nan")

    @property
    def implication_violations(self) -> int:
        """Favorable users for whom the conclusion fails (0 whenever the certificate is valid)."""
        return int((self.favorable & ~(self.probe_recovers_truth & (self.gain > 0))).sum())

    def expected_gain_lower_bound(self, routes: int = 1) -> dict:
        r"""Population lower bound on E[Gain] (Gain in [-F_max, F_max]), level alpha / routes, the better of:

        * Eq. (9) lifted: :math:`P(\mathcal F) E[G|\mathcal F] - F_{max}(1 - P(\mathcal F))` is increasing in both
          factors (as :math:`E[G|\mathcal F] \ge -F_{max}`), so plugging a Clopper-Pearson lower bound on
          :math:`P(\mathcal F)` and a one-sided Hoeffding lower bound on :math:`E[G|\mathcal F]` (favorable gains
          lie in (0, F_max]) bounds it below (each at a quarter of the level);
        * one-sided Hoeffding on the mean gain of all users (range 2 F_max), at half the level.
        """
        level = self.alpha / routes
        n, n_fav = len(self.gain), int(self.favorable.sum())
        p_lo = clopper_pearson_lower(n_fav, n, level / 4)
        g_lo = max(0.0, hoeffding_lower(self.conditional_gain, n_fav, level / 4, self.f_max)) if n_fav else 0.0
        eq9 = float(expected_gain_lower_bound(p_lo, g_lo, self.f_max))
        hoeff = hoeffding_lower(float(self.gain.mean()), n, level / 2, 2 * self.f_max)
        return {"value": max(eq9, hoeff), "eq9": eq9, "hoeffding": hoeff, "alpha": self.alpha, "routes": routes,
                "method": "max of Eq. (9) with a Clopper-Pearson P(F) and a Hoeffding E[Gain|F] (alpha/4 each) and "
                          "a one-sided Hoeffding bound on the mean gain (alpha/2)",
                "population": OBSERVED_POPULATION}

    def summary(self, family: Mapping[str, Mapping] | None = None, routes: int = 1) -> "Theorem1Summary":
        n = len(self.gain)
        radius = hoeffding_radius(n, self.alpha, self.f_max)
        mean_gain = float(self.gain.mean())
        n_fav = int(self.favorable.sum())
        cond_radius = self.f_max * math.sqrt(math.log(2 / self.alpha) / (2 * n_fav)) if n_fav else float("nan")
        cond = self.conditional_gain
        return Theorem1Summary(
            k=self.k, certificate=self.certificate, certificate_valid=self.certificate_valid, n=n,
            n_favorable=n_fav, fraction_favorable=self.fraction_favorable, conditional_gain=cond,
            conditional_gain_ci_low=max(0.0, cond - cond_radius) if n_fav else None,
            conditional_gain_ci_high=min(self.f_max, cond + cond_radius) if n_fav else None,
            mean_gain=mean_gain, gain_ci_low=mean_gain - radius, gain_ci_high=mean_gain + radius,
            gain_ci="Hoeffding eq. (10) for E[Gain] over all users, F_max = 1 (mass captured)",
            expected_gain_lower_bound=self.expected_gain_lower_bound(routes),
            fraction_dg_miss=float(self.dg_miss.mean()),
            fraction_gap_exceeds_2eps=float((self.gap > 2 * self.epsilon).mean()),
            fraction_list_larger_than_k=float((self.list_size > self.k).mean()),
            implication_violations=self.implication_violations,
            favorable_bound=fraction_bound(self.favorable, self.alpha, routes, population=OBSERVED_POPULATION),
            family=dict(family or {}),
        )


def theorem1(truth, probe, dg, *, k: int = 5, certificate: str = "direct_linf", tau: float = 0.0,
             alpha: float = 0.05, allow_invalid: bool = False) -> Theorem1Result:
    r"""Theorem 1 per user: favorable iff :math:`\Delta_k > 2\varepsilon`, :math:`L \ne G^*`, :math:`|L| \le k`.

    ``epsilon`` comes from the named F.4.3 certificate (:data:`LINF_CERTIFICATES`; an invalid one only with
    ``allow_invalid``). ``|L| <= k`` generalises the paper's ``|L| = k``: the swap argument still gives
    :math:`M(G^*) > M(L)` (theory/README.md). Gain is the mass-captured difference :math:`M(L_S,\theta_*) - M(L,\theta_*)`.
    """
    truth, probe, dg = check_three(truth, probe, dg)
    return _theorem1(truth, probe, dg, check_count(k, name="k", below=truth.shape[1], what="the number of categories"),
                     _check_certificate(certificate, allow_invalid), check_fraction(tau, name="tau", open_right=True), check_alpha(alpha))


def _theorem1(truth, probe, dg, k: int, certificate: str, tau: float, alpha: float) -> Theorem1Result:
    cert = LINF_CERTIFICATES[certificate]
    eps = cert.fn(truth, probe)
    in_list = list_mask(dg, tau)
    truth_top, probe_top = top_k_mask(truth, k), top_k_mask(probe, k)
    gap = ranking_gap(truth, k)
    dg_miss = (in_list != truth_top).any(axis=1)
    size = in_list.sum(axis=1)
    favorable = (gap > 2 * eps) & dg_miss & (size <= k)
    return Theorem1Result(
        k=k, certificate=certificate, certificate_valid=cert.valid, epsilon=eps, gap=gap, dg_miss=dg_miss,
        list_size=size, favorable=favorable, probe_recovers_truth=(probe_top == truth_top).all(axis=1),
        gain=mass_captured(truth, probe_top) - mass_captured(truth, in_list), alpha=alpha,
    )


@dataclass(frozen=True)
class Theorem4Result:
    r"""Theorem 4 for DCG@k (Type-O: f(x) = x strictly increasing, w_i = 1/log2(i+1) > 0), per user.

    ``gain`` = DCG@k of the probe's top-k in its own order minus DCG of DG's list in the order best for DG
    (its categories by decreasing true mass): the theorem's conclusion for *every* order of L is that
    ``gain > 0``. ``ndcg_gain`` divides by the ideal DCG@k.
    """

    k: int
    certificate: str
    certificate_valid: bool
    epsilon: np.ndarray
    gap: np.ndarray  # min(Delta_k, Delta_k^min)
    favorable: np.ndarray
    gain: np.ndarray
    ndcg_gain: np.ndarray
    alpha: float

    def summary(self, routes: int = 1) -> dict:
        fav = self.favorable
        n_fav = int(fav.sum())
        return {
            "k": self.k, "metric": "DCG@k, linear gain, 1/log2(rank + 1) discount (Type-O)",
            "certificate": self.certificate, "certificate_valid": self.certificate_valid, "n": len(fav),
            "n_favorable": n_fav, "fraction_favorable": float(fav.mean()),
            "favorable_bound": fraction_bound(fav, self.alpha, routes, population=OBSERVED_POPULATION).to_dict(),
            "conditional_dcg_gain": float(self.gain[fav].mean()) if n_fav else None,
            "conditional_ndcg_gain": float(self.ndcg_gain[fav].mean()) if n_fav else None,
            "mean_ndcg_gain": float(self.ndcg_gain.mean()),
            "fraction_gap_exceeds_2eps": float((self.gap > 2 * self.epsilon).mean()),
            "implication_violations": int((fav & ~(self.gain > 0)).sum()),
        }


def _theorem4(truth, probe, dg, tau: float, t1: Theorem1Result) -> Theorem4Result:
    """Theorem 4 on the users of ``t1`` (Theorem 1 at the same k, certificate and tau: its epsilon, ranking
    gap, DG miss and list size are this theorem's too; only the within-top-k gap is added)."""
    k = t1.k
    gap = np.minimum(t1.gap, within_gap(truth, k))
    favorable = (gap > 2 * t1.epsilon) & t1.dg_miss & (t1.list_size <= k)
    ranks = Rankings()
    dg_best = -np.sort(-np.where(list_mask(dg, tau), truth, -1.0), axis=1)[:, :k]  # DG's list, best order for DG
    dcg_dg = np.where(dg_best >= 0, dg_best, 0.0) @ _discounts(k)
    gain = _dcg(probe, truth, k, ranks) - dcg_dg
    return Theorem4Result(k, t1.certificate, t1.certificate_valid, t1.epsilon, gap, favorable, gain,
                          gain / _ideal_dcg(truth, k, ranks), t1.alpha)


# ---------------------------------------------------------------- regime (Theorem 3) and aggregates


@dataclass(frozen=True)
class RegimeResult:
    """Per-user regime quantities (arrays of shape (n,)); JS in bits."""

    chain: str
    js: np.ndarray
    m_tau: np.ndarray
    dg_lower: np.ndarray  # Lemma 1 lower bound on TV(theta_DG, theta_*) (= m_tau when tau = 0)
    phi: np.ndarray
    in_regime: np.ndarray
    tv_probe: np.ndarray
    tv_dg: np.ndarray

    @property
    def tv_dominates(self) -> np.ndarray:
        return self.tv_dg - self.tv_probe > NUMERIC_SLACK


def regime(truth, probe, dg, *, chain: str = HEADLINE_CHAIN, tau: float = 0.0) -> RegimeResult:
    r"""Per-user regime check :math:`\theta_*(L^c) - \theta_{DG}(L^c) > \varphi(JS(\theta_*,\theta_S))`.

    Only a valid chain makes this a certificate; an invalid one is refused here. Rows are renormalised first
    and the margin must exceed :data:`~spectra_eval.certificates.latent.NUMERIC_SLACK`, so rounding never certifies.
    """
    if not get_chain(chain).valid:
        raise SpectraInputError(f"chain {chain!r} is not a valid TV bound; a certificate needs a valid chain")
    truth, probe, dg = (normalise(a)[0] for a in check_three(truth, probe, dg))
    return _regime(truth, probe, dg, chain, check_fraction(tau, name="tau", open_right=True))


def _regime(truth, probe, dg, chain: str, tau: float) -> RegimeResult:
    c = CHAINS[chain]
    in_list = list_mask(dg, tau)
    js = _js(truth, probe, LN2)
    phi = c(js, "bits")
    lower = dg_tv_lower_bound(truth, dg, in_list)
    return RegimeResult(chain, js, tail_mass(truth, in_list), lower, phi, lower - phi > NUMERIC_SLACK,
                        _tv(probe, truth), _tv(dg, truth))


def aggregate_readings(truth, probe, regime_result: RegimeResult) -> dict[str, "AggregateReading"]:
    """The paper's aggregate readings x every chain: ``tv_bound``, ``valid``, ``margin``, ``holds``.

    Each JS summary is compared with the same summary of Lemma 1's lower bound on TV(DG, truth),
    :math:`\\theta_*(L^c) - \\theta_{DG}(L^c)` (the true mass outside L when tau = 0); comparing with m_tau when
    DG leaks mass outside its list would make ``holds`` claim more than it shows.
    """
    r = regime_result
    readings = {
        "js_of_means": (float(_js(np.mean(truth, axis=0)[None], np.mean(probe, axis=0)[None], LN2)[0]),
                        float(r.m_tau.mean()), float(r.dg_lower.mean()),
                        "JS between the cohort-mean truth and cohort-mean probe; m_tau = cohort mean"),
        "mean_js": (float(r.js.mean()), float(r.m_tau.mean()), float(r.dg_lower.mean()),
                    "mean per-user JS against the cohort mean of theta*(L^c) - theta_DG(L^c) (with a valid concave "
                    "chain, holds implies mean TV(probe) < mean TV(DG) by Jensen; still no per-user claim)"),
        "median_js": (float(np.median(r.js)), float(np.median(r.m_tau)), float(np.median(r.dg_lower)),
                      "median per-user JS; m_tau = cohort median"),
    }
    out = {}
    for name, (js, m_tau, lower, what) in readings.items():
        chains = {}
        for cname, chain in CHAINS.items():
            bound = float(chain(js, "bits"))
            chains[cname] = ChainReading(bound, chain.valid, lower - bound, lower - bound > NUMERIC_SLACK,
                                         chain.convention)
        out[name] = AggregateReading(js, js * LN2, m_tau, f"{AGGREGATE_LABEL}: {what}", chains, lower)
    return out


def normalise(probs: np.ndarray) -> tuple[np.ndarray, float]:
    """Rows divided by their sums, and the largest |1 - sum| found (the defect the table carried)."""
    sums = probs.sum(axis=1, keepdims=True)
    return probs / sums, float(np.abs(1.0 - sums).max())


# ---------------------------------------------------------------- the JSON-level summaries


def _record(cls, d: Mapping, **nested):
    """A summary dataclass from its JSON block: the fields it knows, absent ones None (partial documents)."""
    return cls(**{f.name: d.get(f.name) for f in fields(cls) if f.name not in nested}, **nested)


def _block(obj) -> dict:
    """A summary dataclass as its JSON block (fields in declaration order, nested summaries too)."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            value = _block(value)
        elif isinstance(value, Mapping):
            value = {k: _block(v) if is_dataclass(v) else v for k, v in value.items()}
        out[f.name] = value
    return out


@dataclass(frozen=True)
class RegimeSummary:
    """The per-user regime certificate over the cohort (``certificate.json: per_user``); ``bounds`` holds the
    population lower bounds of ``in_regime`` and ``tv_dominates``."""

    n: int
    chain: str
    unit: str | None = None
    fraction_in_regime: float | None = None
    fraction_tv_dominates: float | None = None
    regime_implies_tv_dominates: bool | None = None
    mean_margin: float | None = None
    label: str | None = None
    bounds: Mapping[str, Mapping] | None = None


@dataclass(frozen=True)
class ChainReading:
    """One chain's TV bound at an aggregate JS reading, its margin and whether it holds."""

    tv_bound: float
    valid: bool
    margin: float
    holds: bool
    convention: str | None = None


@dataclass(frozen=True)
class AggregateReading:
    """One of the paper's aggregate readings (not a certificate) against every chain; ``dg_tv_lower`` is the
    summary of theta*(L^c) - theta_DG(L^c) the margins are taken against (= ``m_tau`` when tau = 0)."""

    js: float
    js_nats: float | None
    m_tau: float
    label: str | None
    chains: Mapping[str, ChainReading]
    dg_tv_lower: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping) -> "AggregateReading":
        return _record(cls, d, chains={k: _record(ChainReading, c) for k, c in d["chains"].items()})


@dataclass(frozen=True)
class Theorem1Summary:
    """Theorem 1 over the cohort (``certificate.json: theorem1``); ``family`` holds every F.4.3 certificate."""

    k: int
    certificate: str | None = None
    certificate_valid: bool | None = None
    n: int | None = None
    n_favorable: int | None = None
    fraction_favorable: float | None = None
    conditional_gain: float | None = None
    conditional_gain_ci_low: float | None = None
    conditional_gain_ci_high: float | None = None
    mean_gain: float | None = None
    gain_ci_low: float | None = None
    gain_ci_high: float | None = None
    gain_ci: str | None = None
    expected_gain_lower_bound: Mapping | None = None
    fraction_dg_miss: float | None = None
    fraction_gap_exceeds_2eps: float | None = None
    fraction_list_larger_than_k: float | None = None
    implication_violations: int | None = None
    favorable_bound: FractionBound | Mapping | None = None
    family: Mapping[str, Mapping] | None = None


@dataclass(frozen=True)
class DkwSummary:
    """The population lift of the observed regime fraction (``certificate.json: dkw``) and the paper's Eq. 11."""

    n: int
    alpha: float
    routes: int
    fhat: float | None = None
    cohort_slack: float | None = None
    route_penalty: float | None = None
    pi_lower: float | None = None
    convention: str | None = None
    clopper_pearson_lower: float | None = None
    paper: DkwCertificate | None = None
    lifts: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping) -> "DkwSummary":
        paper = d.get("paper")
        return _record(cls, d, paper=_record(DkwCertificate, paper) if isinstance(paper, Mapping) else None)


@dataclass(frozen=True)
class CertificateArrays:
    """Per-user arrays behind a certificate (not in the JSON)."""

    users: np.ndarray
    regime: RegimeResult
    theorem1: Theorem1Result
    theorem4: Theorem4Result
    latent: LatentResult | None = None
    population: PopulationResult | None = None
    fdr: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # p regime, p dom, BH regime, BH dom


@dataclass(frozen=True)
class Certificate(Result):
    """Everything ``spectra certify`` writes: ``to_dict`` gives ``certificate.json``, ``from_dict`` reads it back
    (per-user arrays only when computed here; see :meth:`to_frame`). Blocks absent from older or partial
    documents are None. Follows :class:`spectra_eval.results.Result`: ``summary()`` is what ``spectra certify``
    prints, ``outputs()``/``save(dir)`` exactly what it writes."""

    settings: Mapping[str, Any]
    per_user: RegimeSummary
    aggregate: Mapping[str, AggregateReading]
    theorem1: Theorem1Summary | None
    dkw: DkwSummary | None
    theorem4: Mapping[str, Any] | None = None
    latent: LatentSummary | None = None
    headline: Mapping[str, Any] | None = None
    arrays: CertificateArrays | None = field(default=None, compare=False, repr=False)
    source: str = field(default="<memory>", compare=False, repr=False)

    def to_dict(self) -> dict:
        out = {"schema": SCHEMA, "settings": dict(self.settings), "per_user": _block(self.per_user),
               "aggregate": {k: _block(v) for k, v in self.aggregate.items()}}
        if self.theorem1 is not None:
            out["theorem1"] = _block(self.theorem1)
        if self.dkw is not None:
            out["dkw"] = {k: v for k, v in _block(self.dkw).items() if k != "paper" or v is not None}
        if self.theorem4 is not None:
            out["theorem4"] = dict(self.theorem4)
        if self.latent is not None:
            out["latent"] = self.latent.to_dict()
        if self.headline is not None:
            out["headline"] = dict(self.headline)
        return out

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "certificate.json") -> "Certificate":
        check_schema(d, SCHEMA, source)
        with json_errors(source):
            return cls(
                settings=dict(d.get("settings") or {}),
                per_user=_record(RegimeSummary, d["per_user"]),
                aggregate={k: AggregateReading.from_dict(v) for k, v in (d.get("aggregate") or {}).items()},
                theorem1=_record(Theorem1Summary, d["theorem1"]) if "theorem1" in d else None,
                dkw=DkwSummary.from_dict(d["dkw"]) if "dkw" in d else None,
                theorem4=d.get("theorem4"),
                latent=LatentSummary.from_dict(d["latent"]) if d.get("latent") else None,
                headline=d.get("headline"), source=source,
            )

    def summary_dict(self) -> dict[str, Any]:
        """The console summary as a mapping: observed and latent fractions with their bounds, the population
        statements (bounds and plain sentences) and the headline."""
        pu, t1 = self.per_user, self.theorem1
        bounds = pu.bounds or {}
        observed = {"fraction_in_regime": pu.fraction_in_regime,
                    "pi_lower": (bounds.get("in_regime") or {}).get("pi_lower"),
                    "fraction_tv_dominates": pu.fraction_tv_dominates,
                    "tv_dominates_pi_lower": (bounds.get("tv_dominates") or {}).get("pi_lower")}
        if t1 is not None:
            observed |= {"fraction_favorable": t1.fraction_favorable,
                         "certificate": str(t1.certificate) + ("" if t1.certificate_valid is not False
                                                               else " (INVALID certificate)")}
        out: dict[str, Any] = {"n": pu.n, "observed": observed}
        la = self.latent
        if la is not None:
            out["latent"] = {"beta": la.beta,
                             "regime": {k: la.regime[k] for k in ("fraction_certified", "pi_lower")},
                             "tv_dominates": {k: la.tv_dominates[k] for k in ("fraction_certified", "pi_lower")}}
            pop = la.population
            if pop is not None:
                out["latent"]["population"] = {
                    "alpha_each": pop.alpha_each, "n_pilot": pop.n_pilot, "n_holdout": pop.n_holdout,
                    "support": {k: pop.support.values[k] for k in ("fraction", "pi_lower")},
                    "brier_gap": {k: pop.brier_gap.values[k] for k in ("estimate", "lower", "lower_t")},
                    "brier_fraction": {"pi_lower": pop.brier_fraction.values["pi_lower"]},
                    "tv_gap": {k: pop.tv_gap.values[k] for k in ("estimate_plugin", "lower")},
                    "in_words": pop.sentences()}
        out["headline"] = dict(self.headline) if self.headline is not None else None
        return out

    def summary(self) -> str:
        """What ``spectra certify`` prints: :meth:`summary_dict` as indented JSON."""
        import json

        from spectra_eval.io import json_safe

        return json.dumps(json_safe(self.summary_dict()), indent=2)

    def to_frame(self):
        """The per-user table (``certificate_per_user.csv``); a ``ValueError`` when rebuilt from JSON."""
        return self._per_user_frame()

    def outputs(self) -> dict[str, Any]:
        """``certificate.json`` and, when the per-user arrays are here, ``certificate_per_user.csv``."""
        out: dict[str, Any] = {"certificate.json": self.to_dict()}
        if self.arrays is not None:
            out["certificate_per_user.csv"] = self._per_user_frame()
        return out

    def __repr__(self) -> str:  # the summary is JSON: its first line says nothing
        h = self.headline or {}
        return f"<Certificate: {self.per_user.n} users; headline ({h.get('level', '?')}): {h.get('claim', '')}>"

    def _per_user_frame(self):
        import pandas as pd

        if self.arrays is None:
            raise ValueError("this Certificate has no per-user data (it was rebuilt from JSON)")
        a = self.arrays
        r, t1, t4 = a.regime, a.theorem1, a.theorem4
        columns = {
            "user_id": a.users, "js": r.js, "m_tau": r.m_tau, "dg_tv_lower": r.dg_lower, "phi_sharp": r.phi,
            "in_regime": r.in_regime, "tv_probe": r.tv_probe, "tv_dg": r.tv_dg, "tv_dominates": r.tv_dominates,
            "epsilon": t1.epsilon, "gap": t1.gap, "dg_miss": t1.dg_miss, "favorable": t1.favorable, "gain": t1.gain,
            "theorem4_favorable": t4.favorable, "theorem4_dcg_gain": t4.gain,
        }
        if a.latent is not None:
            la = a.latent
            columns |= {"n_obs": la.n_obs, "latent_js_upper": la.js_upper_bits, "latent_m_lower": la.m_lower,
                        "latent_regime": la.regime, "latent_tv_gap_upper": la.tv_gap_upper,
                        "latent_tv_dominates": la.tv_dominates}
        if a.population is not None:
            columns |= {"out_of_list_count": a.population.out_of_list_count,
                        "brier_gain": a.population.brier_gain, "pilot": a.population.pilot}
        if a.fdr is not None:
            columns |= {"latent_regime_p": a.fdr[0], "latent_tv_dominates_p": a.fdr[1],
                        "latent_regime_fdr": a.fdr[2], "latent_tv_dominates_fdr": a.fdr[3]}
        return pd.DataFrame(columns)


# ---------------------------------------------------------------- the whole certificate


def _observed_truth(truth: DistributionTable | None, counts: CountTable | None) -> DistributionTable:
    """The observed truth table: ``truth``, or counts / n_u; with both, they must agree within 1e-6."""
    if counts is None:
        if truth is None:
            raise SpectraInputError("certify needs --truth or --counts")
        return truth
    observed = counts.to_distribution()
    if truth is None:
        return observed
    aligned = align_tables(observed, {"truth": truth})["truth"]
    diff = np.abs(aligned.probs - observed.probs)
    if (diff > 1e-6).any():
        r, c = map(int, np.argwhere(diff > 1e-6)[0])
        raise SpectraInputError(
            f"{truth.source}: user {observed.users[r]!r}, column {observed.categories[c]!r}: {aligned.probs[r, c]:.6g} "
            f"differs from counts/n_u = {observed.probs[r, c]:.6g} in {counts.source} (more than 1e-6)")
    return observed


def certify(truth: DistributionTable | None, probe: DistributionTable, dg: DistributionTable, *,
            counts: CountTable | None = None, alpha: float = 0.05, k: int = 5, routes: int = 1, tau: float = 0.0,
            certificate: str = "direct_linf", beta: float = BETA, allow_invalid: bool = False,
            pilot_fraction: float = PILOT_FRACTION, pilot_seed: int = 0, tv_scale: float | None = None,
            names: tuple[str, str] = ("probe", "dg"), per_user_fdr: float | None = None) -> Certificate:
    """Every certificate of the module docstring on aligned tables (probe and DG are re-ordered to the truth's
    users and categories; with ``counts`` the truth is counts / n_u).

    ``probe`` is the method claimed better and ``dg`` the one it is compared with (any two methods; ``names``
    name them in the sentences). With ``counts`` the population statements of
    :mod:`spectra_eval.certificates.population` are added (``latent.population``), tuned on a pilot split of
    ``pilot_fraction`` of the users drawn with ``pilot_seed``; ``tv_scale`` pre-registers the TV majorant's
    scale instead of fitting it. ``per_user_fdr`` (q) adds per-user p-values and the users discovered by
    Benjamini-Hochberg at false-discovery rate q: the only per-user list with an error guarantee."""
    alpha = check_alpha(alpha)
    if per_user_fdr is not None:
        per_user_fdr = check_alpha(per_user_fdr, name="per-user-fdr")
    pilot_fraction = check_fraction(pilot_fraction, name="pilot-fraction", open_right=True)
    pilot_seed = check_count(pilot_seed, name="pilot-seed", minimum=0)
    if tv_scale is not None and not (math.isfinite(float(tv_scale)) and float(tv_scale) > 0):
        raise SpectraInputError(f"tv-scale: {tv_scale!r} is not a positive number")
    routes = check_count(routes, name="routes")
    tau = check_fraction(tau, name="tau", open_right=True)
    beta = check_alpha(beta, name="beta")
    observed = _observed_truth(truth, counts)
    aligned = align_tables(observed, {"probe": probe, "dg": dg})
    (t, t_defect), (s, s_defect), (d, d_defect) = (normalise(x) for x in
                                                   (observed.probs, aligned["probe"].probs, aligned["dg"].probs))
    k = check_count(k, name="k", below=t.shape[1], what="the number of categories")
    certificate = _check_certificate(certificate, allow_invalid)
    level = alpha / routes
    reg = _regime(t, s, d, HEADLINE_CHAIN, tau)
    t1 = _theorem1(t, s, d, k, certificate, tau, alpha)
    t4 = _theorem4(t, s, d, tau, t1)
    family = {}
    for name, cert in LINF_CERTIFICATES.items():
        res = t1 if name == certificate else _theorem1(t, s, d, k, name, tau, alpha)
        family[name] = {"valid": cert.valid, "formula": cert.formula, "fraction_favorable": res.fraction_favorable,
                        "conditional_gain": res.conditional_gain, "implication_violations": res.implication_violations}
    n = len(t)
    successes = int(reg.in_regime.sum())
    bounds = {"in_regime": fraction_bound(reg.in_regime, alpha, routes, population=OBSERVED_POPULATION).to_dict(),
              "tv_dominates": fraction_bound(reg.tv_dominates, alpha, routes,
                                             population=OBSERVED_POPULATION).to_dict()}
    dkw = dkw_certificate(n, alpha, routes, successes / n).to_dict()
    dkw["clopper_pearson_lower"] = bounds["in_regime"]["pi_lower"]  # the exact bound on the same fraction
    dkw["paper"] = dkw_certificate_paper(n, alpha, routes, successes / n).to_dict()
    dkw["lifts"] = "per_user.fraction_in_regime"
    summary = RegimeSummary(
        n=n, chain=reg.chain, unit="bits", fraction_in_regime=float(reg.in_regime.mean()),
        fraction_tv_dominates=float(reg.tv_dominates.mean()),
        regime_implies_tv_dominates=bool((~reg.in_regime | reg.tv_dominates).all()),
        mean_margin=float((reg.dg_lower - reg.phi).mean()),
        label="observed certificate: per user, TV(probe) <= phi_sharp(JS) < theta*(L^c) - theta_DG(L^c) <= TV(DG), "
              "theta* = the observed future mix",
        bounds=bounds)
    latent = population = None
    if counts is not None:
        # observed = counts / n_u in the counts' own user and category order
        latent = latent_certificates(counts.counts, s, d, beta=beta, alpha=alpha, routes=routes, tau=tau)
        population = population_statements(counts.counts, s, d, alpha=alpha, routes=routes, tau=tau,
                                           pilot_fraction=pilot_fraction, pilot_seed=pilot_seed,
                                           tv_scale=tv_scale, method_names=names)
    fdr = fdr_block = None
    if counts is not None and per_user_fdr is not None:
        p_reg, p_dom = per_user_p_values(counts.counts, s, d, tau)
        fdr = (p_reg, p_dom, benjamini_hochberg(p_reg, per_user_fdr), benjamini_hochberg(p_dom, per_user_fdr))
        fdr_block = {"q": per_user_fdr, "n_regime": int(fdr[2].sum()), "n_tv_dominates": int(fdr[3].sum()),
                     "method": ("per-user p-value = smallest beta at which the user is certified (valid by Lemma C "
                                "and nesting); Benjamini-Hochberg (1995) at q over all users (independent "
                                "p-values); columns latent_*_p and latent_*_fdr"),
                     "claim": (f"expected share of false claims among the listed users <= {per_user_fdr:g}")}
    settings = {"truth": None if truth is None else truth.source, "counts": None if counts is None else counts.source,
                "probe": probe.source, "dg": dg.source, "alpha": alpha, "k": k, "unit": "bits", "tau": tau,
                "routes": routes, "routes_counted": ROUTES_COUNTED, "level": level, "certificate": certificate,
                "certificate_valid": LINF_CERTIFICATES[certificate].valid, "chain": HEADLINE_CHAIN,
                "dg_list": "categories with DG mass > tau (tau = 0: the DG support)",
                "renormalised": {"truth": t_defect, "probe": s_defect, "dg": d_defect,
                                 "note": "rows divided by their sums before certifying; largest |1 - sum| found"},
                "numeric_slack": NUMERIC_SLACK, "beta": beta if counts is not None else None,
                "compared": {"method": names[0], "versus": names[1]}}
    if counts is not None:
        settings |= {"pilot_fraction": pilot_fraction, "pilot_seed": pilot_seed, "tv_scale": tv_scale}
    blocks = 6 + (3 if counts is not None else 0)  # bound types at alpha/routes; the population block is one
    settings["simultaneity"] = {
        "bound_types": blocks, "all_hold_jointly_with_probability_at_least": max(0.0, 1.0 - blocks * level),
        "note": ("each bound type (observed regime, TV dominance, DKW, Theorem 1 fraction and expected gain, Theorem 4"
                 + (", latent regime and TV dominance lifts, and the population block split alpha/routes among its "
                    "5 statements" if counts is not None else "") + ") is at alpha/routes; all routes of one type "
                 "hold jointly at 1 - alpha; every bound of the run jointly at 1 - bound_types * alpha/routes")}
    if latent is not None and population is not None:  # both come from the counts
        headline = latent_headline(latent, population)
    else:
        headline = {"claim": "observed regime (Theorem 3 on each user's observed future mix)", "level": "observed",
                    "fraction": bounds["in_regime"]["fraction"], "pi_lower": bounds["in_regime"]["pi_lower"],
                    "population": OBSERVED_POPULATION}
    headline |= {"alpha": alpha, "routes": routes, "chain": HEADLINE_CHAIN, "tau": tau}
    log.info("certified %d users: %.3f in regime (sharp), %.3f favorable (Theorem 1, %s)%s",
             n, reg.in_regime.mean(), t1.fraction_favorable, certificate,
             "" if latent is None else f"; latent regime certified for {latent.regime.mean():.3f}")
    return Certificate(settings, summary, aggregate_readings(t, s, reg), t1.summary(family, routes),
                       DkwSummary.from_dict(dkw), t4.summary(routes),
                       None if latent is None else latent.summary(population, fdr_block),
                       headline, CertificateArrays(observed.users, reg, t1, t4, latent, population, fdr))


#: the latent statements in decreasing strength; the headline is the first whose bound is positive
HEADLINE_ORDER = ("regime", "tv_dominates", "brier_fraction", "brier_gap", "tv_gap", "support")


def latent_headline(latent: LatentResult, population: PopulationResult) -> dict[str, Any]:
    """The strongest valid latent statement of the run, naming its level.

    Strength order (:data:`HEADLINE_ORDER`): per-user regime certified for a population fraction (the paper's
    claim), per-user TV dominance, the fraction of users whose preference the probe is closer to (squared
    error), the mean squared-error gap, the mean TV gap, DG's support mismatch; the first with a positive lower
    bound is the headline (the latent regime, at bound 0, when none is)."""
    per_user = {"regime": (latent.regime_bound, "latent regime (Theorem 3 on each user's preference), per user "
                                                "certified at type-I error beta"),
                "tv_dominates": (latent.tv_dominates_bound, "latent TV dominance (each user's preference), per "
                                                            "user certified at type-I error beta")}
    pop = population.statements()
    for name in HEADLINE_ORDER:
        if name in per_user:
            bound, words = per_user[name]
            if bound.pi_lower > 0:
                return {"claim": f"{words}: at least {bound.pi_lower:.1%} of users", "level": "latent",
                        "kind": "per-user certificate lifted to the population", "statement": name,
                        "fraction": bound.fraction, "pi_lower": bound.pi_lower, "population": bound.population}
            continue
        st = pop[name]
        if "pi_lower" in st.values and st.values["pi_lower"] > 0:
            return {"claim": st.claim, "level": "latent", "kind": "population statement", "statement": name,
                    "fraction": st.values.get("fraction"), "pi_lower": st.values["pi_lower"],
                    "population": st.population, "alpha_each": population.alpha_each}
        if "lower" in st.values and st.values["lower"] > 0:
            return {"claim": st.claim, "level": "latent", "kind": "population statement", "statement": name,
                    "fraction": None, "pi_lower": None, "estimate": st.values.get("estimate",
                                                                                 st.values.get("estimate_plugin")),
                    "lower": st.values["lower"], "population": st.population, "alpha_each": population.alpha_each}
    bound = latent.regime_bound
    return {"claim": "no latent statement is certified (latent regime lower bound 0)", "level": "latent",
            "kind": "per-user certificate lifted to the population", "statement": "regime", "fraction": bound.fraction, "pi_lower": bound.pi_lower,
            "population": bound.population}

