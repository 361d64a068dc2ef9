"""``spectra fuse``: SPECTRA as a category prior on a base ranker's candidate scores (paper Appendix E)."""
from __future__ import annotations

import argparse
from pathlib import Path

from spectra_eval.validation import SpectraInputError, check_positive_int

EPILOG = """\
Inputs (CSV or Parquet, by extension):
  --candidates  user_id, item_id, score, label   (the base ranker's score of every candidate; label 1 = held out)
  --spectra     a distribution table: user_id plus one column per category (every candidate user must be in it)
  --items       item_id, category                (long format: one row per item and category), or
                item_id, categories              (labels joined by '|', as spectra train --export writes)
  --popularity  item_id, count                   (training interactions; list every item, count 0 allowed)
Output: OUT/fusion.json (schema spectra.fusion/1), or OUT/fusion-NAME.json with --name, so that several runs
(backbones x candidate sizes) share one report directory. Definitions: spectra_eval.analyses.fusion. On bad input nothing
is written and the exit status is 2.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from spectra_eval.analyses.fusion import K, LAMBDAS
    from spectra_eval.stats import N_RESAMPLES, SEED

    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--candidates", required=True, metavar="C", help="candidates with base-ranker scores and labels")
    parser.add_argument("--spectra", required=True, metavar="S", help="SPECTRA distribution table (one row per user)")
    parser.add_argument("--items", required=True, metavar="I", help="item categories (long item_id, category rows or '|'-joined categories)")
    parser.add_argument("--popularity", required=True, metavar="P", help="training interaction count per item")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created if needed)")
    parser.add_argument("--lambdas", default=",".join(LAMBDAS), metavar="L,L,...",
                        help=f"fusion weights, must include 0 (default {','.join(LAMBDAS)}); kept as written in the keys")
    parser.add_argument("--k", type=int, default=K, help=f"cut-off of NDCG@k and Recall@k (default {K})")
    parser.add_argument("--select-on", default=None, metavar="FILE",
                        help="validation candidates to choose best_lambda on (default: chosen on --candidates, "
                             "and labelled so)")
    parser.add_argument("--bootstrap", type=int, default=N_RESAMPLES, metavar="B",
                        help=f"user-level resamples (default {N_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the bootstrap draws (default {SEED})")
    parser.add_argument("--name", default=None, help="run name: writes fusion-NAME.json instead of fusion.json")
    parser.add_argument("--backbone", default=None, help="base ranker label for tables (default: NAME or 'base')")


def run(args) -> int:
    from spectra_eval.analyses.fusion import (fuse, parse_lambdas, read_candidates, read_item_categories,
                                              read_popularity)
    from spectra_eval.analyses.fusion.results import DEFAULT_NAME, output_name
    from spectra_eval.io import read_distribution_table

    output_name(args.name)  # a bad run name fails before any file is read
    lambdas = parse_lambdas(args.lambdas)
    check_positive_int(args.k, "--k", message="{name} must be at least {minimum}, got {value}")
    check_positive_int(args.bootstrap, "--bootstrap", message="{name} must be at least {minimum}, got {value}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SpectraInputError(f"--out {out}: exists and is not a directory")

    spectra = read_distribution_table(args.spectra)
    items = read_item_categories(args.items, spectra.categories)
    popularity = read_popularity(args.popularity)
    candidates = read_candidates(args.candidates)
    select_on = read_candidates(args.select_on) if args.select_on else None
    result = fuse(candidates, spectra, items, popularity, lambdas=lambdas, k=args.k, n_resamples=args.bootstrap,
                  seed=args.seed, select_on=select_on, name=args.name or DEFAULT_NAME,
                  backbone=args.backbone or args.name or "base",
                  sources={"candidates": args.candidates, "spectra": args.spectra, "items": args.items,
                           "popularity": args.popularity}, progress=True)
    written = result.save(out)
    print(result.summary())
    print(f"wrote {' and '.join(map(str, written))}")
    return 0
