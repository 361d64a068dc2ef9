"""``spectra steer``: does the probed distribution follow a stated preference? Writes steering.json."""
from __future__ import annotations

import argparse
from pathlib import Path

from spectra_eval.validation import check_positive_int

EPILOG = """\
BASE is a distribution table keyed by user (the unsteered probe); STEERED is the output of
`spectra probe --requests R`, keyed by request id in its user_id column; R has the columns
request_id, user_id, target (a category, or several joined by |), direction (+ or -), granularity (a label).
Outputs: OUT/steering.json (schema spectra.steering/1) and OUT/per_request.parquet. On bad input nothing is
written and the exit status is 2.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from spectra_eval.stats import N_RESAMPLES, SEED

    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--base", required=True, metavar="B",
                        help="the unsteered distribution table (one row per user)")
    parser.add_argument("--steered", required=True, metavar="S",
                        help="the steered distribution table (one row per request, keyed by request_id)")
    parser.add_argument("--requests", required=True, metavar="R", help="the requests file the steered probe ran")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output directory for steering.json and per_request.parquet (created if needed)")
    parser.add_argument("--truth", default=None, metavar="T",
                        help="optional truth table: head/mid/tail buckets by its cohort-mean mass "
                             "(default: the base's)")
    parser.add_argument("--bootstrap", type=int, default=N_RESAMPLES, metavar="B",
                        help=f"resamples of the requests of each population (default {N_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the bootstrap draws (default {SEED})")


def run(args) -> int:
    from spectra_eval.analyses.steering import read_requests, steer
    from spectra_eval.io import read_distribution_table

    check_positive_int(args.bootstrap, "--bootstrap", message="{name} must be at least {minimum}, got {value}")
    base = read_distribution_table(args.base)
    requests = read_requests(args.requests, base.categories, categories_source=str(args.base))
    steered = read_distribution_table(args.steered, like=base)
    truth = read_distribution_table(args.truth, like=base) if args.truth else None
    result = steer(base, steered, requests, truth=truth, n_resamples=args.bootstrap, seed=args.seed)
    written = result.save(args.out)
    print(result.summary())
    print(f"wrote {' and '.join(map(str, written))}")
    return 0
