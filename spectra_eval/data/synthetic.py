"""A seeded synthetic cohort for trying the library (notebooks, examples, tests): truth, a probe-like and a
DG-like distribution table, and a metadata table. Nothing here is real data.

Each of ``n_users`` users gets a latent preference p_u ~ Dirichlet(4 K pi) around a long-tailed (Zipf, exponent
1.1, shuffled) category popularity pi, a history of h_u ~ max(5, floor(LogNormal(3.5, 0.8))) items and a future
of f_u = max(3, floor(h_u U(0.2, 0.5))) items, both multinomial from p_u:

* ``truth``: the future's empirical category mix (what ``spectra evaluate --truth`` reads);
* ``probe``: the history mix smoothed toward popularity and uniform, ``0.7 h + 0.2 pi + 0.1 / K``, times
  LogNormal(0, 0.3) noise per cell, renormalised (a probe-like method);
* ``dg``: the paper's direct-generation decoder: uniform on a head-biased, noisy top-5 of the history
  (scores ``log(h + 1e-3) + 0.8 log(pi) + Gumbel(0, 0.5)``; :func:`~spectra_eval.data.decoders.decode_uniform`);
* ``meta``: ``user_id, activity`` (history-length quintile, ``A1`` .. ``A5``) and ``context_window`` (1, 3, 5 or 8,
  at random): two strata for ``spectra evaluate --meta``.

Categories default to the 19 MovieLens-100k genres. Everything is a function of ``(n_users, seed, categories)``.

Examples
--------
>>> from spectra_eval.data.synthetic import synthetic_cohort
>>> frames = synthetic_cohort(200, seed=1)           # DataFrames: truth, probe, dg, meta
>>> sorted(frames)
['dg', 'meta', 'probe', 'truth']
>>> frames["truth"].shape
(200, 20)
>>> tables = synthetic_tables(200, seed=1)            # DistributionTables: truth, probe, dg
>>> tables["probe"].probs.shape
(200, 19)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from spectra_eval.data.datasets import MOVIELENS_GENRES
from spectra_eval.data.decoders import decode_uniform
from spectra_eval.io import DistributionTable, write_frame
from spectra_eval.validation import SpectraInputError

#: The ``context_window`` stratum's values.
CONTEXT_WINDOWS = (1, 3, 5, 8)
#: Length of the DG-like method's decoded list.
DG_LIST_LENGTH = 5
#: The tables :func:`synthetic_cohort` returns, in order (``meta`` is not a distribution table).
COHORT_TABLES = ("truth", "probe", "dg", "meta")


def synthetic_cohort(n_users: int = 500, seed: int = 0,
                     categories: Sequence[str] = MOVIELENS_GENRES) -> dict[str, pd.DataFrame]:
    """The four tables of the module docstring as DataFrames (``user_id`` column, users ``u00000``, ...).

    Parameters
    ----------
    n_users : int
        Users (at least 4).
    seed : int
        Seed of :func:`numpy.random.default_rng`; the tables are a function of the arguments.
    categories : sequence of str
        Category labels (at least ``DG_LIST_LENGTH`` of them).
    """
    categories = tuple(categories)
    if n_users < 4:
        raise SpectraInputError(f"a synthetic cohort needs at least 4 users, got {n_users}")
    if len(categories) < DG_LIST_LENGTH:
        raise SpectraInputError(f"a synthetic cohort needs at least {DG_LIST_LENGTH} categories, got {len(categories)}")
    rng = np.random.default_rng(seed)
    k = len(categories)
    popularity = 1.0 / np.arange(1, k + 1) ** 1.1  # Zipf-like popularity, in a shuffled category order
    popularity = rng.permutation(popularity / popularity.sum())
    preference = rng.dirichlet(4.0 * k * popularity, size=n_users)
    history_len = np.maximum(5, rng.lognormal(3.5, 0.8, n_users).astype(int))
    future_len = np.maximum(3, (history_len * rng.uniform(0.2, 0.5, n_users)).astype(int))
    history = np.stack([rng.multinomial(h, p) for h, p in zip(history_len, preference)]) / history_len[:, None]
    truth = np.stack([rng.multinomial(f, p) for f, p in zip(future_len, preference)]) / future_len[:, None]

    probe = (0.7 * history + 0.2 * popularity + 0.1 / k) * rng.lognormal(0.0, 0.3, (n_users, k))
    probe /= probe.sum(axis=1, keepdims=True)
    scores = np.log(history + 1e-3) + 0.8 * np.log(popularity) + rng.gumbel(0.0, 0.5, (n_users, k))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :DG_LIST_LENGTH]
    dg = decode_uniform([[categories[c] for c in row] for row in top], categories)

    users = np.array([f"u{i:05d}" for i in range(n_users)], dtype=object)
    tables = {name: DistributionTable(users, categories, probs, name).to_frame()
              for name, probs in (("truth", truth), ("probe", probe), ("dg", dg))}
    activity = pd.qcut(pd.Series(history_len).rank(method="first"), 5, labels=[f"A{i}" for i in range(1, 6)])
    tables["meta"] = pd.DataFrame({"user_id": users, "activity": activity.astype(str),
                                   "context_window": rng.choice(CONTEXT_WINDOWS, n_users)})
    return tables


def synthetic_tables(n_users: int = 500, seed: int = 0,
                     categories: Sequence[str] = MOVIELENS_GENRES) -> dict[str, DistributionTable]:
    """``truth``, ``probe`` and ``dg`` of :func:`synthetic_cohort` as :class:`~spectra_eval.io.DistributionTable`
    (source ``NAME.csv``); the metadata is ``synthetic_cohort(...)["meta"]``."""
    frames = synthetic_cohort(n_users, seed, categories)
    return {name: DistributionTable.from_frame(frames[name], source=f"{name}.csv") for name in COHORT_TABLES[:3]}


def write_synthetic_cohort(out_dir: str | os.PathLike, n_users: int = 500, seed: int = 0,
                           categories: Sequence[str] = MOVIELENS_GENRES) -> dict[str, Path]:
    """Write ``truth.csv``, ``probe.csv``, ``dg.csv`` and ``meta.csv`` into ``out_dir``; returns name -> path."""
    paths = {}
    for name, frame in synthetic_cohort(n_users, seed, categories).items():
        paths[name] = Path(out_dir) / f"{name}.csv"
        write_frame(paths[name], frame)
    return paths
