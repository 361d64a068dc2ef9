"""``spectra recommend``: train SASRec or GRU4Rec on the history split and write a candidates file for fusion."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

EPILOG = """\
Protocol (spectra_probe.recommenders.data): the model trains on each user's history window (the first 80% of
the timeline; --split validation nests the split once more); the held-out item is the first item of the
following window; negatives are sampled uniformly (seeded) from items the user never interacted with.
Writes OUT (user_id, item_id, score, label) and, when asked, --items (item_id, categories) and --popularity
(item_id, count of training interactions) for `spectra fuse`, plus OUT's training summary as OUT.json.
"""
DATASETS = ("ml-100k",)


def configure(parser: argparse.ArgumentParser) -> None:
    from spectra_probe.recommenders.training import MODELS, PRESETS

    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--model", required=True, choices=MODELS, help="base ranker")
    parser.add_argument("--dataset", default="ml-100k", choices=DATASETS,
                        help="interactions (ml-100k: the files bundled with the recbole package)")
    parser.add_argument("--out", required=True, type=Path, metavar="C", help="candidates file (.csv or .parquet)")
    parser.add_argument("--negatives", type=int, default=99, metavar="N", help="sampled negatives per user (default 99)")
    parser.add_argument("--split", default="test", choices=("test", "validation"),
                        help="test: train on the history window; validation: on the nested history (for --select-on)")
    parser.add_argument("--items", type=Path, default=None, metavar="I", help="also write item categories here")
    parser.add_argument("--popularity", type=Path, default=None, metavar="P",
                        help="also write training interaction counts per item here")
    parser.add_argument("--preset", default="demo", choices=tuple(PRESETS),
                        help="hyperparameters: demo (2 CPU cores, about a minute) or paper (the SASRec paper's; a GPU)")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, training order and negatives")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")


def run(args) -> int:
    from spectra_eval.data.datasets import load_movielens_100k_recbole
    from spectra_eval.io import write_json
    from spectra_eval.validation import check_positive_int
    from spectra_probe.recommenders.pipeline import recommend
    from spectra_probe.recommenders.training import preset

    check_positive_int(args.negatives, "--negatives", message="{name} must be at least {minimum}, got {value}")
    if args.epochs is not None:
        check_positive_int(args.epochs, "--epochs", message="{name} must be at least {minimum}, got {value}")
    config = preset(args.preset, args.model, epochs=args.epochs, seed=args.seed, device=args.device)
    data = load_movielens_100k_recbole()
    summary = recommend(data, config, {args.negatives: args.out}, which=args.split, items_out=args.items,
                        popularity_out=args.popularity, seed=args.seed)
    write_json(Path(f"{args.out}.json"), summary)
    print(json.dumps({k: summary[k] for k in ("model", "split", "n_users", "candidates")}, indent=2))
    return 0
