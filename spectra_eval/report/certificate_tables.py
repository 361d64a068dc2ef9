"""Certificate tables from a :class:`~spectra_eval.certificates.observed.Certificate` (``certificate.json``).

Certificate quantities are diagnostics, not a contest between methods: no column is bold.
"""
from __future__ import annotations

from typing import Any

from spectra_eval.certificates.observed import Certificate
from spectra_eval.report.markup import DASH, DDAGGER, fmt_sci, lit
from spectra_eval.report.metric_tables import base_name, caption
from spectra_eval.report.model import Cell, Column, Row, Table, count, num, text

READING_NAMES = {"js_of_means": "JS of cohort-mean distributions", "mean_js": "mean per-user JS",
                 "median_js": "median per-user JS"}


def _yes(flag) -> str:
    return DASH if flag is None else ("yes" if flag else "no")


def _interval(lo, hi, digits: int = 3) -> Cell:
    if lo is None or hi is None:
        return Cell(numeric=False)
    return text(f"[{float(lo):.{digits}f}, {float(hi):.{digits}f}]")


def certificate_table(cert: Certificate) -> Table:
    """Per-user certificate: regime fraction with its DKW population lower bound, and Theorem 1's cohort."""
    pu, dkw, t1 = cert.per_user, cert.dkw, cert.theorem1
    cols = (Column("n", "n"), Column("fraction", "fraction"), Column("pi_lower", "population ≥"),
            Column("gain", "gain"), Column("gain_ci", "gain CI"))
    rows = [Row(f"in regime ({pu.chain or '?'} chain)", (
        count(pu.n), num(pu.fraction_in_regime, 3), num(dkw.pi_lower if dkw else None, 3), Cell(), Cell()))]
    if pu.fraction_tv_dominates is not None:
        rows.append(Row("TV(probe) < TV(DG)", (count(pu.n), num(pu.fraction_tv_dominates, 3), Cell(), Cell(), Cell())))
    if t1 is not None:
        n = pu.n if t1.n is None else t1.n
        ci = _interval(t1.gain_ci_low, t1.gain_ci_high)
        which = f"k = {t1.k}" + (f", {t1.certificate}" if isinstance(t1.certificate, str) else "")
        if t1.mean_gain is not None:  # the interval belongs to the mean gain over all users, not the conditional one
            rows.append(Row(f"Theorem 1 favorable ({which})", (
                count(n), num(t1.fraction_favorable, 3), Cell(), num(t1.conditional_gain, 3), Cell(numeric=False))))
            rows.append(Row("Theorem 1 mean gain, all users", (count(n), Cell(), Cell(), num(t1.mean_gain, 3), ci)))
        else:
            rows.append(Row(f"Theorem 1 favorable ({which})", (
                count(n), num(t1.fraction_favorable, 3), Cell(), num(t1.conditional_gain, 3), ci)))
    alpha = dkw.alpha if dkw is not None else cert.settings.get("alpha")
    level = "" if alpha is None else f" at confidence {1 - float(alpha):.0%}"
    return Table("certificate", "Per-user dominance certificate", caption(
        r"Fraction of users in the regime $m_\tau(L_u) > \varphi(\mathrm{JS}_u)$ for a valid TV bound $\varphi$, and "
        f"the DKW lower bound on the population fraction{level} (slack and route penalty subtracted, see the "
        "finite-sample table); Theorem 1 gives the favorable cohort fraction, the gain among favorable users and "
        f"the Hoeffding interval of the gain. Probe {base_name(cert.settings.get('probe'))} vs DG "
        f"{base_name(cert.settings.get('dg'))}, k = {lit(str(cert.settings.get('k', '?')))}.",
    ), "certificate", "Quantity", cols, tuple(rows))


def certificate_aggregate_table(cert: Certificate) -> Table:
    """Aggregate readings x bound chains: TV bound, margin m_tau - bound, chain validity and whether it holds."""
    unit = cert.settings.get("unit", "bits")
    cols = (Column("js", f"JS ({unit})"), Column("m_tau", r"$m_\tau$"), Column("tv_bound", r"TV bound $\varphi$"),
            Column("margin", "margin"), Column("valid", r"valid $\varphi$"), Column("holds", "holds"))
    rows, any_invalid = [], False
    for reading, block in cert.aggregate.items():
        rows.append(Row(READING_NAMES.get(reading, reading)))
        for chain, c in block.chains.items():
            any_invalid |= not c.valid
            rows.append(Row(chain, (
                num(block.js, 4), num(block.m_tau, 3), num(c.tv_bound, 3),
                Cell(c.margin, DASH if c.margin is None else f"{float(c.margin):+.3f}"),
                text(_yes(c.valid) + ("" if c.valid else DDAGGER)), text(_yes(c.holds)))))
    notes = tuple(f"{lit(READING_NAMES.get(r, r))}: {lit(b.label)}." for r, b in cert.aggregate.items()
                  if b.label and b.label != READING_NAMES.get(r, r))
    if any_invalid:
        notes += (f"{DDAGGER} not a valid upper bound on TV for all distribution pairs: shown for comparison, never "
                  "used for a certificate.",)
    return Table("certificate_aggregate", "Aggregate regime readings", caption(
        r"Each aggregate JS reading through each TV bound chain $\varphi$; margin $= m_\tau - \varphi(\mathrm{JS})$. "
        "These cohort-level readings reproduce the paper's diagnostic; the sound certificate is the per-user one.",
    ), "certificate-aggregate", "Reading and bound chain", cols, tuple(rows), notes)


def dkw_table(cert: Certificate) -> Table:
    """Paper Table 14: finite-sample cohort slack and route penalty behind the population lower bound.

    One row for the library's bound and, when present, one for the paper's Eq. 11 arithmetic (slack
    2 rho_N(alpha/2) = 2 sqrt(log(4/alpha)/(2N)), penalty 2 M beta, beta = alpha/(4NM)).
    """
    main = cert.dkw
    if main is None:
        raise ValueError("the certificate has no dkw block")
    cols = (Column("n", "$N$"), Column("alpha", r"$\alpha$"), Column("routes", "routes $M$"),
            Column("cohort_slack", "cohort slack"), Column("route_penalty", "route penalty"),
            Column("fraction", r"$\hat{F}$"), Column("pi_lower", r"$\pi \geq$"))
    rows, notes = [], []
    blocks: list[tuple[str, Any]] = [("this library", main)] + ([("paper Eq. 11", main.paper)] if main.paper else [])
    for label, d in blocks:
        rows.append(Row(label, (
            count(d.n), num(d.alpha, 2), count(d.routes), num(d.cohort_slack, 4),
            Cell(float(d.route_penalty), fmt_sci(d.route_penalty)),
            num(d.fhat if d.fhat is not None else cert.per_user.fraction_in_regime, 3), num(d.pi_lower, 3))))
        if d.convention:
            notes.append(lit(d.convention if d.convention.startswith(label) else f"{label}: {d.convention}") + ".")
    return Table("dkw", "Finite-sample cohort slack", caption(
        r"With probability at least $1 - \alpha$ the population regime fraction is at least "
        r"$\hat{F}$ minus the cohort slack and the route penalty. The paper's Eq. 11 uses the DKW/Massart slack "
        r"$2\rho_N(\alpha/2) = 2\sqrt{\log(4/\alpha)/(2N)}$ and the Bonferroni penalty $2M\beta$, "
        r"$\beta = \alpha/(4NM)$.",
    ), "dkw", "Convention", cols, tuple(rows), tuple(notes))


def has_population_bounds(cert: Certificate) -> bool:
    return bool(cert.per_user.bounds)


def _bound(block) -> float | None:
    if block is None:
        return None
    return block["pi_lower"] if isinstance(block, dict) else block.pi_lower


def _names(cert: Certificate) -> tuple[str, str]:
    compared = cert.settings.get("compared") or {}
    return compared.get("method", "probe"), compared.get("versus", "DG")


def population_table(cert: Certificate) -> Table:
    """Observed and latent certificates side by side: each cohort fraction and its population lower bound."""
    pu, t1, t4, la = cert.per_user, cert.theorem1, cert.theorem4, cert.latent
    cols = (Column("observed", "fraction", group="observed future mix"),
            Column("observed_pi", "population ≥", group="observed future mix"),
            Column("latent", "certified", group="latent preference"),
            Column("latent_pi", "population ≥", group="latent preference"))

    def latent_cells(key):
        block = getattr(la, key, None) if la is not None else None
        return (num(block["fraction_certified"], 3), num(block["pi_lower"], 3)) if block else (Cell(), Cell())

    rows = [Row(f"regime ({pu.chain or '?'} chain)",
                (num(pu.fraction_in_regime, 3), num(_bound((pu.bounds or {}).get("in_regime")), 3), *latent_cells("regime"))),
            Row("TV(probe) < TV(DG)", (num(pu.fraction_tv_dominates, 3), num(_bound((pu.bounds or {}).get("tv_dominates")), 3),
                                       *latent_cells("tv_dominates")))]
    if t1 is not None and t1.favorable_bound is not None:
        rows.append(Row(f"Theorem 1 favorable (k = {t1.k})", (num(t1.fraction_favorable, 3),
                                                              num(_bound(t1.favorable_bound), 3), Cell(), Cell())))
    if t4:
        rows.append(Row(f"Theorem 4 favorable (DCG@{t4['k']})", (num(t4["fraction_favorable"], 3),
                                                                  num(_bound(t4["favorable_bound"]), 3), Cell(), Cell())))
    pop = la.population if la is not None else None
    pop_text = ""
    if pop is not None:
        a_name, b_name = _names(cert)
        sp, bg, bf, tv = pop.support.values, pop.brier_gap.values, pop.brier_fraction.values, pop.tv_gap.values
        rows += [Row("latent population statements (no per-user certificate)"),
                 Row(f"a counted item outside {b_name}'s list", (Cell(), Cell(), num(sp["fraction"], 3),
                                                                  num(sp["pi_lower"], 3))),
                 Row(f"{a_name} closer to the preference (squared error)", (Cell(), Cell(), Cell(),
                                                                           num(bf["pi_lower"], 3))),
                 Row(f"mean squared-error gap {b_name} − {a_name}", (Cell(), Cell(), num(bg["estimate"], 4),
                                                                       num(bg["lower"], 4))),
                 Row(f"mean TV gap {b_name} − {a_name}", (Cell(), Cell(), num(tv["estimate_plugin"], 4),
                                                         num(tv["lower"], 4)))]
        pop_text = (f" Population statements: about users' preferences without certifying any user, on "
                    f"{pop.n_holdout} holdout users ({pop.n_pilot} pilot users tune them; the support row uses all "
                    f"{pop.n_pilot + pop.n_holdout}), each at confidence {1 - pop.alpha_each:.1%} so that all hold "
                    f"together; for the two gaps the columns are the estimate (TV: plug-in on the observed mix, "
                    f"biased) and a finite-sample lower bound (squared-error t bound, asymptotic: "
                    f"{bg['lower_t']:.4f}).")
    alpha, routes = cert.settings.get("alpha", 0.05), cert.settings.get("routes", 1)
    level = f"{1 - float(alpha) / float(routes):.1%}"
    latent_text = (f" Latent columns: each user's preference θ* certified from {la.n_obs['min']}–"
                   f"{la.n_obs['max']} observed items (median {la.n_obs['median']:g}) with per-user type-I "
                   f"error β = {la.beta:g}, lifted as (CP − β)/(1 − β)." if la else
                   " Latent columns need spectra certify --counts.") + pop_text
    return Table("certificate_population", "Observed and latent certificates", caption(
        f"Cohort fraction of users for whom each predicate holds and its one-sided population lower bound "
        f"(exact Clopper–Pearson, confidence {level}"
        + (f", Bonferroni over {routes} routes" if float(routes) > 1 else "") + "). Observed columns judge the "
        "user's observed future mix; latent columns the preference the observed items were drawn from "
        "(the claim a paper makes)." + latent_text,
    ), "certificate-population", "Predicate", cols, tuple(rows))
