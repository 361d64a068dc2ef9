"""``spectra certify``: per-user certificates (observed and, with counts, latent) and their population lower bounds.

Writes ``OUT/certificate.json`` (schema ``spectra.certificate/1``) and ``OUT/certificate_per_user.csv``.
"""
from __future__ import annotations

import argparse

from spectra_eval.certificates.observed import LINF_CERTIFICATES
from spectra_eval.certificates.latent import BETA
from spectra_eval.certificates.population import PILOT_FRACTION

DESCRIPTION = """\
What is certified, exactly:
  observed (always): for each user, the regime TV(probe) <= phi_sharp(JS) < theta*(L^c) - theta_DG(L^c) <= TV(DG)
    and TV dominance, evaluated exactly on the user's OBSERVED future mix (the truth table), with Theorem 1
    (mass captured) and Theorem 4 (DCG@k); every cohort fraction gets a one-sided population lower bound about
    users drawn like this cohort, judged on their observed mix.
  latent (with --counts): the regime and TV dominance about each user's PREFERENCE theta* (the distribution the
    counted items were drawn from), certified per user with type-I error <= beta and lifted to the population
    with that error subtracted. This is the claim a paper makes; with few items per user expect few certified.
  latent population statements (with --counts), about users' PREFERENCES with no per-user certificate: the
    share of users with a counted item outside the second method's list (zero per-user error), the mean
    squared-error (Brier) gap, the share of users the first method is closer to, and the mean TV gap, each with
    a finite-sample lower bound at alpha_each = alpha / (routes x 5), so the five hold together at
    1 - alpha/routes; a pilot split (--pilot-fraction) tunes them and enters no bound it tunes.
Each bound type is at alpha/routes (settings.simultaneity says how they combine). Compare any two methods with
--method A=FILE --versus B=FILE (the claim is "A beats B"); --probe/--dg are the same with A = probe, B = dg.
The per-user certified columns are not a list of users for whom the claim holds; --per-user-fdr Q gives one.
Proofs: theory/README.md."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--truth", default=None,
                        help="observed truth table (CSV/Parquet); optional with --counts, and then must equal "
                             "counts / n_u within 1e-6")
    parser.add_argument("--counts", default=None,
                        help="user_id + one non-negative integer column per category: each user's observed items; "
                             "adds the latent certificates")
    parser.add_argument("--probe", default=None, help="probe (SPECTRA) distribution table (= --method probe=FILE)")
    parser.add_argument("--dg", default=None,
                        help="direct-generation distribution table, its support is the list L (= --versus dg=FILE)")
    parser.add_argument("--method", default=None, metavar="NAME=FILE",
                        help="the method claimed better (any distribution table); use with --versus")
    parser.add_argument("--versus", default=None, metavar="NAME=FILE",
                        help="the method it is compared with; its support (mass > tau) is the list L")
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
    parser.add_argument("--pilot-fraction", type=float, default=PILOT_FRACTION,
                        help=f"share of users that tune the population statements and enter none of their bounds "
                             f"(default {PILOT_FRACTION})")
    parser.add_argument("--pilot-seed", type=int, default=0, help="seed of the pilot draw (default 0)")
    parser.add_argument("--tv-scale", type=float, default=None,
                        help="pre-registered scale rho of the TV-gap majorant (default: fitted on the pilot)")
    parser.add_argument("--per-user-fdr", type=float, default=None, metavar="Q",
                        help="with --counts: per-user p-values and the users Benjamini-Hochberg lists at false-"
                             "discovery rate Q (the certified columns alone are not such a list)")
    parser.add_argument("--collapse", default=None, metavar="MAP",
                        help="merge categories first by summing mass (counts and tables alike): a category,merged "
                             "CSV or a shipped map (movielens-k15, movielens-k10)")
    parser.add_argument("--out", required=True, help="output directory")


def _methods(args) -> tuple[tuple[str, str], tuple[str, str]]:
    """(name, file) of the method claimed better and of the one it is compared with."""
    from spectra_eval.commands.evaluate import parse_preds
    from spectra_eval.validation import SpectraInputError

    general = (args.method, args.versus)
    if any(general):
        if args.probe or args.dg:
            raise SpectraInputError("give either --probe/--dg or --method/--versus, not both")
        if not all(general):
            raise SpectraInputError("--method and --versus go together")
        first = parse_preds([args.method], "--method")
        second = parse_preds([args.versus], "--versus", first)
        return next(iter(first.items())), next(iter(second.items()))
    if not (args.probe and args.dg):
        raise SpectraInputError("give --probe FILE and --dg FILE, or --method NAME=FILE and --versus NAME=FILE")
    return ("probe", args.probe), ("dg", args.dg)


def run(args) -> int:
    from spectra_eval.certificates.observed import certify
    from spectra_eval.io import read_count_table, read_distribution_table
    from spectra_eval.validation import SpectraInputError

    if args.truth is None and args.counts is None:
        raise SpectraInputError("--truth or --counts is required")
    (a_name, a_file), (b_name, b_file) = _methods(args)
    counts = read_count_table(args.counts) if args.counts else None
    truth = read_distribution_table(args.truth, like=counts) if args.truth else None
    like = counts if counts is not None else truth
    probe = read_distribution_table(a_file, like=like)
    dg = read_distribution_table(b_file, like=like)
    if args.collapse:  # the one hook: every table is summed through the map before anything is certified
        from spectra_eval.data.category_maps import collapse, read_category_map

        cmap = read_category_map(args.collapse)
        counts = None if counts is None else collapse(counts, cmap)
        truth = None if truth is None else collapse(truth, cmap)
        probe, dg = collapse(probe, cmap), collapse(dg, cmap)
    cert = certify(truth, probe, dg, counts=counts, alpha=args.alpha, k=args.k, routes=args.routes, tau=args.tau,
                   certificate=args.certificate, beta=args.beta, allow_invalid=args.allow_invalid,
                   pilot_fraction=args.pilot_fraction, pilot_seed=args.pilot_seed, tv_scale=args.tv_scale,
                   names=(a_name, b_name), per_user_fdr=args.per_user_fdr)
    cert.save(args.out)  # all or nothing, before anything is printed
    print(cert.summary())
    return 0
