"""``spectra theory phi|dkw``: TV bound chains at a JS value, and the DKW cohort-fraction certificate (JSON)."""
from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="theory_command", metavar="{phi,dkw}", required=True)
    phi = sub.add_parser("phi", help="every chain's TV bound at a JS value, with validity and convention")
    phi.add_argument("--js", type=float, required=True, help="Jensen-Shannon divergence value")
    phi.add_argument("--unit", choices=("bits", "nats"), default="bits", help="unit of --js (default bits)")
    phi.add_argument("--m-tau", type=float, default=None, help="tail mass m_tau: adds margin and holds per chain")
    dkw = sub.add_parser("dkw", help="cohort slack, route penalty and population lower bound (Theorem 5)")
    dkw.add_argument("--n", type=float, required=True, help="cohort size N")
    dkw.add_argument("--alpha", type=float, default=0.05, help="1 - confidence (default 0.05)")
    dkw.add_argument("--routes", type=float, default=1, help="number of routes M in the union (default 1)")
    dkw.add_argument("--fhat", type=float, default=1.0, help="observed cohort fraction (default 1.0)")


def run(args) -> int:
    from spectra_eval.certificates import bounds as th

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
