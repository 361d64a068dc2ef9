"""Write a small synthetic cohort for trying ``spectra evaluate``: truth, a probe-like and a DG-like table, and
metadata (:mod:`spectra_eval.data.synthetic`; in Python, ``synthetic_cohort(n_users, seed)``).

Usage::

    python examples/make_example_cohort.py OUTDIR [--users 500] [--seed 0]

writes OUTDIR/truth.csv, OUTDIR/probe.csv, OUTDIR/dg.csv and OUTDIR/meta.csv, then e.g.::

    spectra evaluate --truth OUTDIR/truth.csv --pred probe=OUTDIR/probe.csv --pred dg=OUTDIR/dg.csv \\
        --reference dg --meta OUTDIR/meta.csv --out OUTDIR/eval
"""
from __future__ import annotations

import argparse
from pathlib import Path

from spectra_eval.data.synthetic import write_synthetic_cohort


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write truth.csv, probe.csv, dg.csv, meta.csv into")
    parser.add_argument("--users", type=int, default=500, help="number of synthetic users (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.users < 4:
        parser.error("--users must be at least 4")
    for path in write_synthetic_cohort(args.out, args.users, args.seed).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
