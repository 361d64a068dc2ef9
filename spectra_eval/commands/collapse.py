"""``spectra collapse --map MAP --out DIR TABLE...``: merge categories by summing mass (paper Appendix D.1)."""
from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
MAP is a CSV with the header category,merged (every category of the tables on one line, exactly once), or a
shipped map by name: movielens-k15 (the paper's K = 19 -> 15 merges) or movielens-k10 (K = 19 -> 10; how its
pairs were chosen: spectra_eval.data.category_maps). Each TABLE (a distribution or a counts table, CSV or
Parquet) is written to DIR under its own file name, same format, with one column per merged label (summed).
On bad input nothing is written and the exit status is 2."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("tables", nargs="+", metavar="TABLE", help="distribution or counts tables to collapse")
    parser.add_argument("--map", required=True, metavar="MAP", help="category,merged CSV or a shipped map name")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")


def run(args) -> int:
    from spectra_eval.data.category_maps import collapse_file, read_category_map
    from spectra_eval.io import atomic_outputs, write_frame
    from spectra_eval.validation import SpectraInputError

    cmap = read_category_map(args.map)
    names = [Path(t).name for t in args.tables]
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise SpectraInputError(f"two TABLEs share the file name {dup!r}: they would overwrite each other in --out")
    frames = {name: collapse_file(path, cmap) for name, path in zip(names, args.tables)}  # all checked first
    with atomic_outputs(args.out) as stage:
        for name, frame in frames.items():
            write_frame(stage / name, frame)
    k_in, k_out = len(cmap.categories), len(cmap.merged_labels)
    print(f"spectra collapse: {len(frames)} table(s), K = {k_in} -> {k_out} by {cmap.source}; wrote {args.out}")
    return 0
