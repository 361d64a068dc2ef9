"""Write a small synthetic cohort for trying ``spectra evaluate``: truth, a probe-like and a DG-like table.

Nothing here is real data. Each user gets a latent preference drawn around a long-tailed genre popularity
(the 19 MovieLens-100k genre names); the truth is the empirical mix of a simulated future window, the
probe-like table a smoothed, noisy estimate from a simulated history, and the DG-like table the paper's
direct-generation decoder (uniform on a head-biased top-5 list). A metadata table gives two strata:
history activity quintile and a context-window setting.

Usage::

    python examples/make_example_cohort.py OUTDIR [--users 500] [--seed 0]

writes OUTDIR/truth.csv, OUTDIR/probe.csv, OUTDIR/dg.csv and OUTDIR/meta.csv, then e.g.::

    spectra evaluate --truth OUTDIR/truth.csv --pred probe=OUTDIR/probe.csv --pred dg=OUTDIR/dg.csv \\
        --reference dg --meta OUTDIR/meta.csv --out OUTDIR/eval
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from spectra_eval.data.decoders import decode_uniform
from spectra_eval.io import DistributionTable, write_frame

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
CONTEXT_WINDOWS = (1, 3, 5, 8)
DG_LIST_LENGTH = 5


def make_cohort(n_users: int = 500, seed: int = 0, categories=GENRES) -> dict[str, pd.DataFrame]:
    """Return the four tables (``truth``, ``probe``, ``dg``, ``meta``) as DataFrames, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    k = len(categories)
    popularity = 1.0 / np.arange(1, k + 1) ** 1.1  # Zipf-like genre popularity, in a shuffled genre order
    popularity = rng.permutation(popularity / popularity.sum())
    preference = rng.dirichlet(4.0 * k * popularity, size=n_users)
    history_len = np.maximum(5, rng.lognormal(3.5, 0.8, n_users).astype(int))
    future_len = np.maximum(3, (history_len * rng.uniform(0.2, 0.5, n_users)).astype(int))
    history = np.stack([rng.multinomial(h, p) for h, p in zip(history_len, preference)]) / history_len[:, None]
    truth = np.stack([rng.multinomial(f, p) for f, p in zip(future_len, preference)]) / future_len[:, None]

    # probe-like: history smoothed toward popularity and uniform, with multiplicative log-normal noise
    probe = (0.7 * history + 0.2 * popularity + 0.1 / k) * rng.lognormal(0.0, 0.3, (n_users, k))
    probe /= probe.sum(axis=1, keepdims=True)
    # DG-like: a head-biased, noisy top-5 of the history, decoded uniformly
    scores = np.log(history + 1e-3) + 0.8 * np.log(popularity) + rng.gumbel(0.0, 0.5, (n_users, k))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :DG_LIST_LENGTH]
    dg = decode_uniform([[categories[c] for c in row] for row in top], categories)

    users = np.array([f"u{i:05d}" for i in range(n_users)], dtype=object)
    tables = {name: DistributionTable(users, tuple(categories), probs, name).to_frame()
              for name, probs in (("truth", truth), ("probe", probe), ("dg", dg))}
    activity = pd.qcut(pd.Series(history_len).rank(method="first"), 5, labels=[f"A{i}" for i in range(1, 6)])
    tables["meta"] = pd.DataFrame({"user_id": users, "activity": activity.astype(str),
                                   "context_window": rng.choice(CONTEXT_WINDOWS, n_users)})
    return tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write truth.csv, probe.csv, dg.csv, meta.csv into")
    parser.add_argument("--users", type=int, default=500, help="number of synthetic users (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.users < 4:
        parser.error("--users must be at least 4")
    for name, frame in make_cohort(args.users, args.seed).items():
        path = args.out / f"{name}.csv"
        write_frame(path, frame)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
