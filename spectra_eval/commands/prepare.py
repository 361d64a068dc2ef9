"""``spectra prepare``: an interaction log in, the inputs of ``probe``, ``evaluate``, ``certify``, ``steer`` and
``fuse`` out, without a model (:mod:`spectra_eval.data.prepare`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from spectra_eval.data.datasets import DATASET_SPECS

EPILOG = """\
DATASET: ml-100k (MovieLens-100k bundled with recbole), movielens:DIR (any MovieLens release),
table:FILE (CSV/Parquet with user_id, item_id, timestamp, categories; labels joined by |; timestamp in
seconds or a date), yelp:BUSINESS,REVIEW,HIERARCHY[,l1|l2]. Each user's interactions are split in time
(first 80% history, the rest future). Writes into OUT: contexts.csv, truth.csv, counts.csv, meta.csv,
categories.txt, history-*.csv (baselines), requests.csv, items.csv (and hierarchy.json for two-level data),
exactly what `spectra train --export` writes. On bad input nothing is written and the exit status is 2.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dataset", required=True, help=DATASET_SPECS)
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created if needed)")
    parser.add_argument("--tokenizer", default=None, metavar="PATH",
                        help="tokenizer.json of the model to be probed (or its directory); counts --context-tokens")
    parser.add_argument("--context-tokens", type=int, default=None, metavar="N",
                        help="token budget of a context, oldest items dropped first (needs --tokenizer; "
                             "default: whole histories)")
    parser.add_argument("--min-interactions", type=int, default=5, help="drop users with fewer (default 5)")


def run(args) -> int:
    from spectra_eval.data.prepare import prepare
    from spectra_eval.validation import SpectraInputError

    if args.context_tokens is not None and args.tokenizer is None:
        raise SpectraInputError("--context-tokens counts tokens of a model: give its --tokenizer")
    files = prepare(args.dataset, args.out, tokenizer=args.tokenizer, context_tokens=args.context_tokens,
                    min_interactions=args.min_interactions)
    print(f"spectra prepare: wrote {len(files)} files to {args.out}: {', '.join(sorted(p.name for p in files.values()))}")
    return 0
