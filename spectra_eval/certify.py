r"""Certificates that probing (SPECTRA) beats direct generation (DG), per user and lifted to the population.

Three tables share users and categories: the truth :math:`\theta_*`, the probe :math:`\theta_S` and the DG
distribution :math:`\theta_{DG}`, whose decoded list :math:`L_u` is its support (categories with mass > tau).

* **Regime (Theorem 3, per user).** :math:`TV(\theta_S,\theta_*) \le \varphi(JS_u) < m_\tau(L_u) \le
  TV(\theta_{DG},\theta_*)` for a *valid* chain phi (headline: ``sharp``). The cohort fraction in the regime is
  lifted to the population by :func:`spectra_eval.theory.dkw_certificate`.
* **Aggregate readings** (the paper's, not certificates): JS of the cohort means, mean and median per-user JS,
  each against every chain, with margin ``m_tau - phi(JS)``.
* **Theorem 1 (per user).** With :math:`\varepsilon \ge \|\theta_S-\theta_*\|_\infty` from a certificate of
  F.4.3, the favorable users are those with :math:`\Delta_k > 2\varepsilon`, :math:`L \ne G^*` and
  :math:`|L| \le k`; for them :math:`L_S = G^*` and mass captured strictly improves.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable, Mapping

import numpy as np

from spectra_eval.divergences import _chi_square, _hellinger, _js, _kl, _linf, _tv
from spectra_eval.io import DistributionTable, align_tables, check_schema, json_errors
from spectra_eval.ranking import _top_k
from spectra_eval.theory import (
    CHAINS,
    LN2,
    DkwCertificate,
    clopper_pearson_lower,
    dg_tv_lower_bound,
    dkw_certificate,
    dkw_certificate_paper,
    expected_gain_lower_bound,
    get_chain,
    hoeffding_radius,
    list_mask,
    phi_sharp,
    tail_mass,
)
from spectra_eval.validation import SpectraInputError, check_alpha, check_count, check_three

log = logging.getLogger(__name__)

SCHEMA = "spectra.certificate/1"
HEADLINE_CHAIN = "sharp"
AGGREGATE_LABEL = "aggregate reading (paper's operational diagnostic, not a certificate)"


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


def mass_captured(truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Eq. (4): truth mass on the listed categories."""
    return np.where(mask, truth, 0.0).sum(axis=1)


@dataclass(frozen=True)
class Theorem1Result:
    """Theorem 1 per user (arrays of shape (n,)) and its cohort summaries (eqs. 9 and 10)."""

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

    def summary(self, family: Mapping[str, Mapping] | None = None) -> "Theorem1Summary":
        n = len(self.gain)
        radius = hoeffding_radius(n, self.alpha, self.f_max)
        mean_gain = float(self.gain.mean())
        n_fav = int(self.favorable.sum())
        cond_radius = self.f_max * math.sqrt(math.log(2 / self.alpha) / (2 * n_fav)) if n_fav else float("nan")
        cond = self.conditional_gain
        p = self.fraction_favorable
        return Theorem1Summary(
            k=self.k, certificate=self.certificate, certificate_valid=self.certificate_valid, n=n,
            n_favorable=n_fav, fraction_favorable=p, conditional_gain=cond,
            conditional_gain_ci_low=max(0.0, cond - cond_radius) if n_fav else None,
            conditional_gain_ci_high=min(self.f_max, cond + cond_radius) if n_fav else None,
            mean_gain=mean_gain, gain_ci_low=mean_gain - radius, gain_ci_high=mean_gain + radius,
            gain_ci="Hoeffding eq. (10) for E[Gain] over all users, F_max = 1 (mass captured)",
            expectation_lower_bound=float(expected_gain_lower_bound(p, cond if n_fav else 0.0, self.f_max)),
            fraction_dg_miss=float(self.dg_miss.mean()),
            fraction_gap_exceeds_2eps=float((self.gap > 2 * self.epsilon).mean()),
            fraction_list_larger_than_k=float((self.list_size > self.k).mean()),
            implication_violations=self.implication_violations, family=dict(family or {}),
        )


def theorem1(truth, probe, dg, *, k: int = 5, certificate: str = "direct_linf", tau: float = 0.0,
             alpha: float = 0.05) -> Theorem1Result:
    r"""Theorem 1 per user: favorable iff :math:`\Delta_k > 2\varepsilon`, :math:`L \ne G^*`, :math:`|L| \le k`.

    ``epsilon`` comes from the named F.4.3 certificate (:data:`LINF_CERTIFICATES`). ``|L| <= k`` generalises
    the paper's ``|L| = k``: the swap argument still gives :math:`M(G^*) > M(L)` (theory/README.md).
    Gain is the mass-captured difference :math:`M(L_S,\theta_*) - M(L,\theta_*)`.
    """
    truth, probe, dg = check_three(truth, probe, dg)
    return _theorem1(truth, probe, dg, _check_k_below(k, truth.shape[1]), _check_certificate(certificate),
                     tau, check_alpha(alpha))


def _check_k_below(k, n_categories: int) -> int:
    k = check_count(k, name="k")
    if k >= n_categories:
        raise SpectraInputError(f"k: {k} must be smaller than the number of categories ({n_categories})")
    return k


def _check_certificate(name: str) -> str:
    if name not in LINF_CERTIFICATES:
        raise SpectraInputError(f"unknown certificate {name!r}; choose one of {', '.join(LINF_CERTIFICATES)}")
    return name


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
        return self.tv_probe < self.tv_dg


def regime(truth, probe, dg, *, chain: str = HEADLINE_CHAIN, tau: float = 0.0) -> RegimeResult:
    r"""Per-user regime check :math:`\theta_*(L^c) - \theta_{DG}(L^c) > \varphi(JS(\theta_*,\theta_S))`.

    Only a valid chain makes this a certificate; an invalid one is computed but refused here.
    """
    if not get_chain(chain).valid:
        raise SpectraInputError(f"chain {chain!r} is not a valid TV bound; a certificate needs a valid chain")
    return _regime(*check_three(truth, probe, dg), chain, tau)


def _regime(truth, probe, dg, chain: str, tau: float) -> RegimeResult:
    c = CHAINS[chain]
    in_list = list_mask(dg, tau)
    js = _js(truth, probe, LN2)
    phi = c(js, "bits")
    lower = dg_tv_lower_bound(truth, dg, in_list)
    return RegimeResult(chain, js, tail_mass(truth, in_list), lower, phi, lower > phi,
                        _tv(probe, truth), _tv(dg, truth))


def aggregate_readings(truth, probe, regime_result: RegimeResult) -> dict[str, "AggregateReading"]:
    """The paper's aggregate readings x every chain: ``tv_bound``, ``valid``, ``margin = m_tau - phi``, ``holds``."""
    r = regime_result
    readings = {
        "js_of_means": (float(_js(np.mean(truth, axis=0)[None], np.mean(probe, axis=0)[None], LN2)[0]), float(r.m_tau.mean()),
                        "JS between the cohort-mean truth and cohort-mean probe; m_tau = cohort mean"),
        "mean_js": (float(r.js.mean()), float(r.m_tau.mean()),
                    "mean per-user JS; m_tau = cohort mean (with a valid concave chain, holds implies "
                    "mean TV(probe) < mean TV(DG) by Jensen; still no per-user claim)"),
        "median_js": (float(np.median(r.js)), float(np.median(r.m_tau)), "median per-user JS; m_tau = cohort median"),
    }
    out = {}
    for name, (js, m_tau, what) in readings.items():
        chains = {}
        for cname, chain in CHAINS.items():
            bound = float(chain(js, "bits"))
            chains[cname] = ChainReading(bound, chain.valid, m_tau - bound, m_tau > bound, chain.convention)
        out[name] = AggregateReading(js, js * LN2, m_tau, f"{AGGREGATE_LABEL}: {what}", chains)
    return out


# ---------------------------------------------------------------- the whole certificate


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
    """The per-user regime certificate over the cohort (``certificate.json: per_user``)."""

    n: int
    chain: str
    unit: str | None = None
    fraction_in_regime: float | None = None
    fraction_tv_dominates: float | None = None
    regime_implies_tv_dominates: bool | None = None
    mean_margin: float | None = None
    label: str | None = None


@dataclass(frozen=True)
class ChainReading:
    """One chain's TV bound at an aggregate JS reading, its margin ``m_tau - phi`` and whether it holds."""

    tv_bound: float
    valid: bool
    margin: float
    holds: bool
    convention: str | None = None


@dataclass(frozen=True)
class AggregateReading:
    """One of the paper's aggregate readings (not a certificate) against every chain."""

    js: float
    js_nats: float | None
    m_tau: float
    label: str | None
    chains: Mapping[str, ChainReading]

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
    expectation_lower_bound: float | None = None
    fraction_dg_miss: float | None = None
    fraction_gap_exceeds_2eps: float | None = None
    fraction_list_larger_than_k: float | None = None
    implication_violations: int | None = None
    family: Mapping[str, Mapping] | None = None


@dataclass(frozen=True)
class DkwSummary:
    """The population lift of the regime fraction (``certificate.json: dkw``) and the paper's Eq. 11 form."""

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


@dataclass(frozen=True)
class Certificate:
    """Everything ``spectra certify`` writes: ``to_dict`` gives ``certificate.json``, ``from_dict`` reads it back
    (per-user arrays only when computed here; see :meth:`per_user_frame`)."""

    settings: Mapping[str, Any]
    per_user: RegimeSummary
    aggregate: Mapping[str, AggregateReading]
    theorem1: Theorem1Summary | None
    dkw: DkwSummary | None
    arrays: CertificateArrays | None = field(default=None, compare=False, repr=False)
    source: str = field(default="<memory>", compare=False, repr=False)

    def to_dict(self) -> dict:
        out = {"schema": SCHEMA, "settings": dict(self.settings), "per_user": _block(self.per_user),
               "aggregate": {k: _block(v) for k, v in self.aggregate.items()}}
        if self.theorem1 is not None:
            out["theorem1"] = _block(self.theorem1)
        if self.dkw is not None:
            out["dkw"] = {k: v for k, v in _block(self.dkw).items() if k != "paper" or v is not None}
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
                source=source,
            )

    def per_user_frame(self):
        import pandas as pd

        if self.arrays is None:
            raise ValueError("this Certificate has no per-user data (it was rebuilt from JSON)")
        r, t1 = self.arrays.regime, self.arrays.theorem1
        return pd.DataFrame({
            "user_id": self.arrays.users, "js": r.js, "m_tau": r.m_tau, "dg_tv_lower": r.dg_lower,
            "phi_sharp": r.phi, "in_regime": r.in_regime, "tv_probe": r.tv_probe, "tv_dg": r.tv_dg,
            "epsilon": t1.epsilon, "gap": t1.gap, "dg_miss": t1.dg_miss, "favorable": t1.favorable, "gain": t1.gain,
        })


def certify(truth: DistributionTable, probe: DistributionTable, dg: DistributionTable, *, alpha: float = 0.05,
            k: int = 5, routes: int = 1, tau: float = 0.0, certificate: str = "direct_linf") -> Certificate:
    """Run every certificate on aligned tables (probe and DG are re-ordered to the truth's users/categories)."""
    alpha = check_alpha(alpha)
    routes = check_count(routes, name="routes")
    if not (0.0 <= float(tau) < 1.0):
        raise SpectraInputError(f"tau: {tau:g} is outside [0, 1)")
    aligned = align_tables(truth, {"probe": probe, "dg": dg})
    t, s, d = truth.probs, aligned["probe"].probs, aligned["dg"].probs
    k = _check_k_below(k, t.shape[1])
    certificate = _check_certificate(certificate)
    reg = _regime(t, s, d, HEADLINE_CHAIN, tau)
    t1 = _theorem1(t, s, d, k, certificate, tau, alpha)
    family = {}
    for name, cert in LINF_CERTIFICATES.items():
        res = t1 if name == certificate else _theorem1(t, s, d, k, name, tau, alpha)
        family[name] = {"valid": cert.valid, "formula": cert.formula, "fraction_favorable": res.fraction_favorable,
                        "conditional_gain": res.conditional_gain, "implication_violations": res.implication_violations}
    n = len(t)
    successes = int(reg.in_regime.sum())
    dkw = dkw_certificate(n, alpha, routes, successes / n).to_dict()
    dkw["clopper_pearson_lower"] = clopper_pearson_lower(successes, n, alpha, routes)
    dkw["paper"] = dkw_certificate_paper(n, alpha, routes, successes / n).to_dict()
    dkw["lifts"] = "per_user.fraction_in_regime"
    settings = {"truth": truth.source, "probe": probe.source, "dg": dg.source, "alpha": alpha, "k": t1.k,
                "unit": "bits", "tau": float(tau), "routes": routes, "certificate": certificate,
                "chain": HEADLINE_CHAIN, "dg_list": "categories with DG mass > tau (tau = 0: the DG support)"}
    log.info("certified %d users: %.3f in regime (sharp), %.3f favorable (Theorem 1, %s)",
             n, reg.in_regime.mean(), t1.fraction_favorable, certificate)
    summary = RegimeSummary(
        n=n, chain=reg.chain, unit="bits", fraction_in_regime=float(reg.in_regime.mean()),
        fraction_tv_dominates=float(reg.tv_dominates.mean()),
        regime_implies_tv_dominates=bool((~reg.in_regime | reg.tv_dominates).all()),
        mean_margin=float((reg.dg_lower - reg.phi).mean()),
        label="certificate: per user, TV(probe) <= phi_sharp(JS) < m_tau(L) <= TV(DG)")
    return Certificate(settings, summary, aggregate_readings(t, s, reg), t1.summary(family), DkwSummary.from_dict(dkw),
                       CertificateArrays(truth.users, reg, t1))
