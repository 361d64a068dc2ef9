"""``spectra certify``: per-user regime certificate, aggregate readings, Theorem 1 and the DKW lift.

Writes ``OUT/certificate.json`` (schema ``spectra.certificate/1``) and ``OUT/certificate_per_user.csv``.
"""
from __future__ import annotations

import argparse
import json

from spectra_eval.certify import LINF_CERTIFICATES


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--truth", required=True, help="truth distribution table (CSV/Parquet)")
    parser.add_argument("--probe", required=True, help="probe (SPECTRA) distribution table")
    parser.add_argument("--dg", required=True, help="direct-generation distribution table (its support is the list L)")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    parser.add_argument("--k", type=float, default=5, help="list size for Theorem 1 (default 5)")
    parser.add_argument("--routes", type=float, default=1,
                        help="number of pre-registered certificate routes in the DKW union (default 1: the sharp chain)")
    parser.add_argument("--tau", type=float, default=0.0, help="DG list = categories with DG mass > tau (default 0)")
    parser.add_argument("--certificate", default="direct_linf", choices=list(LINF_CERTIFICATES),
                        help="epsilon certificate for Theorem 1 (default direct_linf)")
    parser.add_argument("--out", required=True, help="output directory")


def run(args) -> int:
    from spectra_eval.certify import certify
    from spectra_eval.io import atomic_outputs, read_distribution_table, write_frame, write_json

    truth = read_distribution_table(args.truth)
    probe = read_distribution_table(args.probe, like=truth)
    dg = read_distribution_table(args.dg, like=truth)
    cert = certify(truth, probe, dg, alpha=args.alpha, k=args.k, routes=args.routes, tau=args.tau,
                   certificate=args.certificate)
    result = cert.to_dict()
    with atomic_outputs(args.out) as stage:
        write_json(stage / "certificate.json", result)
        write_frame(stage / "certificate_per_user.csv", cert.per_user_frame())
    pu, t1, dkw = result["per_user"], result["theorem1"], result["dkw"]
    print(json.dumps({"n": pu["n"], "fraction_in_regime": pu["fraction_in_regime"],
                      "fraction_tv_dominates": pu["fraction_tv_dominates"], "pi_lower": dkw["pi_lower"],
                      "fraction_favorable": t1["fraction_favorable"], "out": str(args.out)}, indent=2))
    return 0
