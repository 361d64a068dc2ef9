"""``spectra theory phi|dkw|plan``: TV bound chains at a JS value, the DKW cohort-fraction certificate, and
sample-size planning for the latent population statements (JSON)."""
from __future__ import annotations

import argparse
import json
import math


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="theory_command", metavar="{phi,dkw,plan}", required=True)
    phi = sub.add_parser("phi", help="every chain's TV bound at a JS value, with validity and convention")
    phi.add_argument("--js", type=float, required=True, help="Jensen-Shannon divergence value")
    phi.add_argument("--unit", choices=("bits", "nats"), default="bits", help="unit of --js (default bits)")
    phi.add_argument("--m-tau", type=float, default=None, help="tail mass m_tau: adds margin and holds per chain")
    dkw = sub.add_parser("dkw", help="cohort slack, route penalty and population lower bound (Theorem 5)")
    dkw.add_argument("--n", type=float, required=True, help="cohort size N")
    dkw.add_argument("--alpha", type=float, default=0.05, help="1 - confidence (default 0.05)")
    dkw.add_argument("--routes", type=float, default=1, help="number of routes M in the union (default 1)")
    dkw.add_argument("--fhat", type=float, default=1.0, help="observed cohort fraction (default 1.0)")
    plan = sub.add_parser("plan", help="users (and items per user) needed for a latent mean-gap statement")
    plan.add_argument("--effect", type=float, required=True,
                      help="target effect: mean Brier gap mu (or a mean TV gap with --sd and --lower -4 or so)")
    plan.add_argument("--alpha", type=float, default=0.05, help="1 - confidence of the run (default 0.05)")
    plan.add_argument("--power", type=float, default=0.8, help="probability the bound exceeds 0 (default 0.8)")
    plan.add_argument("--routes", type=float, default=1, help="pre-registered routes (default 1)")
    plan.add_argument("--items", type=float, default=13.0, help="items per user (default 13)")
    plan.add_argument("--between-var", type=float, default=None, help="between-user variance of the per-user gap")
    plan.add_argument("--within-var", type=float, default=None,
                      help="within-user variance of one item's contribution (the estimate's variance is this / n)")
    plan.add_argument("--sd", type=float, default=None, help="sd of the per-user estimate at --items (instead)")
    plan.add_argument("--from", dest="certificate", default=None,
                      help="certificate.json of a pilot study: takes between/within variances of its Brier gap")
    plan.add_argument("--pilot-fraction", type=float, default=0.2, help="pilot share added on top (default 0.2)")
    plan.add_argument("--lower", type=float, default=-2.0,
                      help="a-priori lower end of the per-user estimate (Brier gain: -2, the default)")
    plan.add_argument("--k", type=int, default=None, help="categories K, for the per-user box's items per user")
    plan.add_argument("--box-gap", type=float, default=None, help="a user's latent TV gap the box should certify")
    plan.add_argument("--beta", type=float, default=0.05, help="per-user error of the box (default 0.05)")


def run(args) -> int:
    from spectra_eval.certificates import bounds as th

    if args.theory_command == "plan":
        print(json.dumps(_plan(args).to_dict(), indent=2))
        return 0
    if args.theory_command == "phi":
        js = float(th.check_js(args.js, args.unit))
        chains = th.evaluate_chains(js, args.unit)
        if args.m_tau is not None:
            m_tau = th.check_fraction(args.m_tau, name="m-tau")
            for entry in chains.values():
                entry["margin"] = m_tau - entry["tv_bound"]
                entry["holds"] = entry["margin"] > 0
        js_bits = js if args.unit == "bits" else js / th.LN2
        out = {"js_bits": js_bits, "js_nats": js_bits * th.LN2, "headline": "sharp", "chains": chains}
    else:
        sound = th.dkw_certificate(args.n, args.alpha, args.routes, args.fhat)
        paper = th.dkw_certificate_paper(args.n, args.alpha, args.routes, args.fhat)
        out = {**sound.to_dict(),
               "clopper_pearson_lower_at_fhat": th.clopper_pearson_lower(round(args.fhat * args.n), args.n,
                                                                         args.alpha, args.routes),
               "paper": {**paper.to_dict(),
                         "table14_route_penalty": th.table14_route_penalty(args.n, args.alpha, args.routes)}}
    print(json.dumps(out, indent=2))
    return 0


def _plan(args):
    from spectra_eval.certificates.planning import plan
    from spectra_eval.io import read_json
    from spectra_eval.validation import SpectraInputError, check_alpha, check_count, check_fraction

    between, within, sd = args.between_var, args.within_var, args.sd
    if args.certificate is not None:
        doc = read_json(args.certificate)
        try:
            values = doc["latent"]["population"]["brier_gap"]
            between, within = float(values["between_var"]), float(values["within_var"])
        except (KeyError, TypeError):
            raise SpectraInputError(f"{args.certificate}: no latent.population.brier_gap.between_var/within_var "
                                    "(run spectra certify --counts)") from None
    if sd is None and (between is None or within is None):
        raise SpectraInputError("give --sd, or --between-var and --within-var, or --from certificate.json")
    for name, value in (("effect", args.effect), ("items", args.items)):
        if not (math.isfinite(value) and value > 0):
            raise SpectraInputError(f"{name}: {value!r} must be a positive number")
    if sd is not None and not (math.isfinite(sd) and sd > 0):
        raise SpectraInputError(f"sd: {sd!r} must be a positive number")
    for name, value in (("between-var", between), ("within-var", within)):
        if sd is None and not (math.isfinite(value) and value >= 0):
            raise SpectraInputError(f"{name}: {value!r} must be a non-negative number")
    if not args.lower < 0:
        raise SpectraInputError(f"lower: {args.lower!r} must be negative")
    return plan(args.effect, alpha=check_alpha(args.alpha), power=check_alpha(args.power, name="power"),
                routes=check_count(args.routes, name="routes"), items_per_user=args.items, between_var=between,
                within_var=within, sd=sd, pilot_fraction=check_fraction(args.pilot_fraction, name="pilot-fraction",
                                                                        open_right=True),
                lower=args.lower, k=None if args.k is None else check_count(args.k, name="k", minimum=2),
                box_gap=args.box_gap, beta=check_alpha(args.beta, name="beta"))
