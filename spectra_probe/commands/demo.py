"""``spectra demo``: the whole SPECTRA pipeline on MovieLens-100k, on CPU (see :mod:`spectra_probe.demo`)."""
from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--out", default="reports/movielens-100k", help="report directory (replaced when done)")
    parser.add_argument("--work", default=".spectra-demo",
                        help="intermediate files: models, adapters, per-user tables (finished stages are reused)")
    parser.add_argument("--users", type=int, default=None, help="limit the cohort to this many users (quick runs)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap each training stage's steps (quick runs)")
    parser.add_argument("--fresh", action="store_true", help="discard the work directory and start over")


def run(args) -> int:
    from spectra_eval.validation import SpectraInputError
    from spectra_probe.demo.pipeline import run_demo

    if args.users is not None and args.users < 2:
        raise SpectraInputError(f"--users must be at least 2, got {args.users}")
    if args.max_steps is not None and args.max_steps < 1:
        raise SpectraInputError(f"--max-steps must be at least 1, got {args.max_steps}")
    summary = run_demo(args.out, args.work, users=args.users, max_steps=args.max_steps, fresh=args.fresh)
    print(json.dumps({"out": str(args.out), "n_users": summary["n_users"], "seconds": summary["seconds"]}, indent=2))
    return 0
