"""``spectra certify``: per-user certificates (observed and, with counts, latent) and their population lower bounds.

Writes ``OUT/certificate.json`` (schema ``spectra.certificate/1``) and ``OUT/certificate_per_user.csv``.
"""
from __future__ import annotations

import argparse
import json

from spectra_eval.certificates.observed import LINF_CERTIFICATES
from spectra_eval.certificates.latent import BETA

DESCRIPTION = """\
What is certified, exactly:
  observed (always): for each user, the regime TV(probe) <= phi_sharp(JS) < theta*(L^c) - theta_DG(L^c) <= TV(DG)
    and TV dominance, evaluated exactly on the user's OBSERVED future mix (the truth table), with Theorem 1
    (mass captured) and Theorem 4 (DCG@k); every cohort fraction gets a one-sided population lower bound about
    users drawn like this cohort, judged on their observed mix.
  latent (with --counts): the regime and TV dominance about each user's PREFERENCE theta* (the distribution the
    counted items were drawn from), certified per user with type-I error <= beta and lifted to the population
    with that error subtracted. This is the claim a paper makes; with few items per user expect few certified.
All population bounds hold with probability >= 1 - alpha/routes. Proofs: theory/README.md."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--truth", default=None,
                        help="observed truth table (CSV/Parquet); optional with --counts, and then must equal "
                             "counts / n_u within 1e-6")
    parser.add_argument("--counts", default=None,
                        help="user_id + one non-negative integer column per category: each user's observed items; "
                             "adds the latent certificates")
    parser.add_argument("--probe", required=True, help="probe (SPECTRA) distribution table")
    parser.add_argument("--dg", required=True, help="direct-generation distribution table (its support is the list L)")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    parser.add_argument("--beta", type=float, default=BETA,
                        help=f"per-user type-I error budget of the latent certificates (default {BETA})")
    parser.add_argument("--k", type=float, default=5, help="list size for Theorems 1 and 4 (default 5)")
    parser.add_argument("--routes", type=float, default=1,
                        help="number of pre-registered (tau, k, chain, certificate) combinations you will report; "
                             "every bound is at alpha/routes (default 1)")
    parser.add_argument("--tau", type=float, default=0.0, help="DG list = categories with DG mass > tau (default 0)")
    parser.add_argument("--certificate", default="direct_linf", choices=list(LINF_CERTIFICATES),
                        help="epsilon certificate for Theorems 1 and 4 (default direct_linf)")
    parser.add_argument("--allow-invalid", action="store_true",
                        help="accept an invalid epsilon certificate (pinsker_topsoe); it is marked invalid everywhere")
    parser.add_argument("--collapse", default=None, metavar="MAP",
                        help="merge categories first by summing mass (counts and tables alike): a category,merged "
                             "CSV or a shipped map (movielens-k15, movielens-k10)")
    parser.add_argument("--out", required=True, help="output directory")


def run(args) -> int:
    from spectra_eval.certificates.observed import certify
    from spectra_eval.io import (atomic_outputs, read_count_table, read_distribution_table, write_frame,
                                 write_json)
    from spectra_eval.validation import SpectraInputError

    if args.truth is None and args.counts is None:
        raise SpectraInputError("--truth or --counts is required")
    counts = read_count_table(args.counts) if args.counts else None
    truth = read_distribution_table(args.truth, like=counts) if args.truth else None
    like = counts if counts is not None else truth
    probe = read_distribution_table(args.probe, like=like)
    dg = read_distribution_table(args.dg, like=like)
    if args.collapse:  # the one hook: every table is summed through the map before anything is certified
        from spectra_eval.data.category_maps import collapse, read_category_map

        cmap = read_category_map(args.collapse)
        counts, truth, probe, dg = (None if t is None else collapse(t, cmap) for t in (counts, truth, probe, dg))
    cert = certify(truth, probe, dg, counts=counts, alpha=args.alpha, k=args.k, routes=args.routes, tau=args.tau,
                   certificate=args.certificate, beta=args.beta, allow_invalid=args.allow_invalid)
    result = cert.to_dict()
    with atomic_outputs(args.out) as stage:
        write_json(stage / "certificate.json", result)
        write_frame(stage / "certificate_per_user.csv", cert.per_user_frame())
    pu, t1 = result["per_user"], result["theorem1"]
    summary = {"n": pu["n"], "observed": {
        "fraction_in_regime": pu["fraction_in_regime"], "pi_lower": pu["bounds"]["in_regime"]["pi_lower"],
        "fraction_tv_dominates": pu["fraction_tv_dominates"],
        "tv_dominates_pi_lower": pu["bounds"]["tv_dominates"]["pi_lower"],
        "fraction_favorable": t1["fraction_favorable"],
        "certificate": t1["certificate"] + ("" if t1["certificate_valid"] else " (INVALID certificate)")}}
    if "latent" in result:
        la = result["latent"]
        summary["latent"] = {"beta": la["beta"], "regime": {k: la["regime"][k] for k in ("fraction_certified", "pi_lower")},
                             "tv_dominates": {k: la["tv_dominates"][k] for k in ("fraction_certified", "pi_lower")}}
    summary["headline"] = result["headline"]
    summary["out"] = str(args.out)
    print(json.dumps(summary, indent=2))
    return 0
