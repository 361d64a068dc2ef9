"""``spectra evaluate``: score method tables against the truth and write metrics.json + per_user.parquet."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from spectra_eval.validation import SpectraInputError, check_positive_int

EPILOG = """\
Tables are CSV or Parquet (by extension): a user_id column and one column per category label, each row a
probability vector (finite, >= 0, summing to 1 within 1e-6). Method tables must have exactly the truth's
users and categories (any order). Outputs: OUT/metrics.json (schema spectra.metrics/1) and
OUT/per_user.parquet (one row per user and method). On bad input nothing is written and the exit status is 2.

A recommendation list (--list NAME=FILE: user_id, item_id, rank) is evaluated as a method: with --items
(item_id, categories joined by |) each item spreads one unit over its categories, weighted by position
(--list-weights uniform, or dcg: 1/log2(rank + 1)), and each user's weighted mix is normalised
(spectra_eval.analyses.lists). --history (a distribution table such as history-uhf.csv) adds taste_js: the JS (bits)
between every method's distribution and the user's history distribution.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from spectra_eval.metrics.calibration import N_BINS
    from spectra_eval.stats import N_RESAMPLES, SEED

    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--truth", required=True, metavar="T",
                        help="truth table: each user's empirical future category distribution")
    parser.add_argument("--pred", action="append", metavar="NAME=FILE", default=None,
                        help="a method's predicted distribution table, under a name (repeat for each method)")
    parser.add_argument("--list", action="append", metavar="NAME=FILE", default=None, dest="lists",
                        help="a recommendation list (user_id, item_id, rank) evaluated as a method (needs --items)")
    parser.add_argument("--items", default=None, metavar="I",
                        help="items table for --list: item_id, categories (labels joined by |)")
    parser.add_argument("--list-weights", choices=("uniform", "dcg"), default="uniform",
                        help="position weights of list items: uniform, or dcg = 1/log2(rank + 1) (default uniform)")
    parser.add_argument("--history", default=None, metavar="FILE",
                        help="each user's history distribution table (e.g. history-uhf.csv): adds taste_js, the JS "
                             "of every method to it")
    parser.add_argument("--reference", required=True, metavar="NAME",
                        help="the --pred NAME every other method is compared with (differences are method - reference)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output directory for metrics.json and per_user.parquet (created if needed)")
    parser.add_argument("--bootstrap", type=int, default=N_RESAMPLES, metavar="B",
                        help=f"user-level bootstrap resamples, one paired draw shared by all methods (default {N_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the bootstrap draw (default {SEED})")
    parser.add_argument("--bins", type=int, default=N_BINS, metavar="N",
                        help=f"equal-width bins for the soft-label and top-1 ECE (default {N_BINS})")
    parser.add_argument("--meta", default=None, metavar="FILE",
                        help="optional metadata table: user_id plus stratum columns (e.g. activity, context_window); "
                             "adds per-stratum JS deltas with range and wins")
    parser.add_argument("--collapse", default=None, metavar="MAP",
                        help="merge categories first by summing mass: a category,merged CSV or a shipped map "
                             "(movielens-k15, movielens-k10); every table is collapsed the same way")


def parse_preds(items: list[str], flag: str = "--pred", taken=()) -> dict[str, str]:
    """``["NAME=FILE", ...]`` -> ``{NAME: FILE}``; malformed or repeated names (also among ``taken``) are input
    errors."""
    preds: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise SpectraInputError(f"{flag} {item!r}: expected NAME=FILE")
        if name in preds or name in taken:
            raise SpectraInputError(f"{flag} {item!r}: method name {name!r} is given more than once")
        preds[name] = path
    return preds


def run(args) -> int:
    from spectra_eval.evaluation import evaluate
    from spectra_eval.io import read_distribution_table, read_frame

    preds = parse_preds(args.pred or [])
    lists = parse_preds(args.lists or [], "--list", preds)
    if not preds and not lists:
        raise SpectraInputError("give at least one --pred NAME=FILE or --list NAME=FILE")
    if lists and not args.items:
        raise SpectraInputError("--list needs --items (item_id, categories)")
    if args.items and not lists:
        raise SpectraInputError("--items is only used with --list")
    if args.reference not in preds | lists:
        flags = "--pred/--list" if lists else "--pred"
        raise SpectraInputError(f"--reference {args.reference!r} is not among the {flags} names "
                                f"({', '.join(preds | lists)})")
    for flag, value in (("--bootstrap", args.bootstrap), ("--bins", args.bins)):
        check_positive_int(value, flag, message="{name} must be at least {minimum}, got {value}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SpectraInputError(f"--out {out}: exists and is not a directory")

    truth = read_distribution_table(args.truth)
    tables = {name: read_distribution_table(path, like=truth) for name, path in preds.items()}
    if lists:
        from spectra_eval.analyses.lists import read_items, read_list

        items = read_items(args.items, truth.categories)
        tables |= {name: read_list(path, items, truth.categories, args.list_weights, items_source=args.items)
                   for name, path in lists.items()}
    history = read_distribution_table(args.history, like=truth) if args.history else None
    if args.collapse:
        from spectra_eval.data.category_maps import collapse, read_category_map

        cmap = read_category_map(args.collapse)
        truth = collapse(truth, cmap)
        tables = {name: collapse(table, cmap) for name, table in tables.items()}
        history = collapse(history, cmap) if history is not None else None
    meta = read_frame(args.meta) if args.meta else None
    result = evaluate(truth, tables, args.reference, n_resamples=args.bootstrap, seed=args.seed, n_bins=args.bins,
                      meta=meta, meta_source=args.meta, history=history,
                      lists={name: {"items": args.items, "weights": args.list_weights} for name in lists})
    if args.collapse:  # the tables were summed through this map before scoring
        result = dataclasses.replace(result, settings=dataclasses.replace(result.settings, collapse=cmap.source))
    written = result.save(out)
    print(result.summary())
    print(f"wrote {' and '.join(map(str, written))}")
    return 0
