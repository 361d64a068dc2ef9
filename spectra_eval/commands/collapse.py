"""``spectra collapse --map MAP --out DIR TABLE...``: merge categories by summing mass (paper Appendix D.1)."""
from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
MAP is a CSV with the header category,merged (every category of the tables on one line, exactly once), or a
shipped map by name: movielens-k15 (the paper's K = 19 -> 15 merges) or movielens-k10 (K = 19 -> 10; how its
pairs were chosen: spectra_eval.data.category_maps). Each TABLE (a distribution or a counts table, CSV or
Parquet) is written to DIR under its own file name, same format, with one column per merged label (summed).
With --coherence COARSE (the same probe asked directly with the merged labels) and one TABLE (its fine
distribution), DIR/coherence.json (schema spectra.coherence/1) also gets the mean per-user JS in bits between
COARSE and TABLE summed through the map, with a percentile bootstrap CI over users: 0 when the probe is coherent
with the partition (Eq. 2 read at both levels agrees).
On bad input nothing is written and the exit status is 2."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("tables", nargs="+", metavar="TABLE", help="distribution or counts tables to collapse")
    parser.add_argument("--map", required=True, metavar="MAP", help="category,merged CSV or a shipped map name")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument("--coherence", default=None, metavar="COARSE",
                        help="a probe's table over the merged labels: write coherence.json against the one TABLE")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="resamples for --coherence's CI")
    parser.add_argument("--seed", type=int, default=0, help="seed of --coherence's bootstrap (default 0)")


def run(args) -> int:
    from spectra_eval.data.category_maps import collapse_file, read_category_map
    from spectra_eval.io import atomic_outputs, write_frame, write_json
    from spectra_eval.validation import SpectraInputError

    cmap = read_category_map(args.map)
    names = [Path(t).name for t in args.tables]
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise SpectraInputError(f"two TABLEs share the file name {dup!r}: they would overwrite each other in --out")
    if args.coherence and len(args.tables) != 1:
        raise SpectraInputError("--coherence compares one fine TABLE with COARSE; give exactly one TABLE")
    frames = {name: collapse_file(path, cmap) for name, path in zip(names, args.tables)}  # all checked first
    doc = None
    if args.coherence:
        from spectra_eval.data.category_maps import coherence
        from spectra_eval.io import read_distribution_table
        from spectra_eval.validation import check_positive_int

        check_positive_int(args.bootstrap, "--bootstrap", message="{name} must be at least {minimum}, got {value}")
        fine = read_distribution_table(args.tables[0])
        coarse = read_distribution_table(args.coherence)
        result = coherence(fine, coarse, cmap, n_resamples=args.bootstrap, seed=args.seed)
        doc = {"schema": "spectra.coherence/1", "fine": str(args.tables[0]), "coarse": str(args.coherence),
               **result.to_dict()}
    with atomic_outputs(args.out) as stage:
        for name, frame in frames.items():
            write_frame(stage / name, frame)
        if doc is not None:
            write_json(stage / "coherence.json", doc)
    k_in, k_out = len(cmap.categories), len(cmap.merged_labels)
    print(f"spectra collapse: {len(frames)} table(s), K = {k_in} -> {k_out} by {cmap.source}; wrote {args.out}")
    if doc is not None:
        print(f"coherence: mean JS {doc['mean']:.4f} bits [{doc['ci_low']:.4f}, {doc['ci_high']:.4f}] over "
              f"{doc['n']} users")
    return 0
