"""History-prior baselines: what a user's own past says about their future category mix.

All four read only the history window and return a :class:`~spectra_eval.io.DistributionTable` over the
split's categories, one row per user (method names in the demo: ``history-uhf``, ``history-laplace``,
``history-markov``, ``history-cohort``). Item mass follows the truth's rule (``mass='split'`` or ``'each'``, see
:mod:`spectra_eval.data.splits`), so w_i is the same vector the truth uses.

* UHF (user history frequency): p_u(c) = h_u(c) / sum_c' h_u(c'), h_u(c) = sum over u's history of w_i(c).
  A user whose history carries no mass gets the global history frequency g(c) = sum_u h_u(c) / sum h.
* Laplace UHF: p_u(c) = (h_u(c) + alpha) / (sum_c' h_u(c') + alpha K)  (add-alpha, alpha = 1 by default).
* First-order Markov chain over category sequences: transition counts pooled over every user's consecutive
  history pairs (i, i+1), N(a, b) = sum w_i(a) w_{i+1}(b) with w normalised per item (so a pair carries one
  unit of mass), smoothed P(a, b) = (N(a, b) + alpha) / (sum_b' N(a, b') + alpha K). The prediction is one
  step from the user's last categorised history item: p_u = v_last P, with v_last = w_last / sum w_last.
  A user with no categorised history item gets the global frequency g.
* Cohort prior: the cohort mean of the users' UHF distributions, (1/n) sum_u p_u, the same row for every user.
  It reads no single user, so it is the reference a personalised predictor must beat: on short future windows
  JS and NDCG reward it almost as much as a personalised prior, personalization scores it 0 (no column varies).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from spectra_eval.io import DistributionTable
from spectra_eval.data.splits import Split, category_mass, item_mass
from spectra_eval.validation import SpectraInputError

#: The method names :func:`history_priors` returns, in order (UHF, Laplace UHF, Markov, cohort).
PRIOR_NAMES = ("history-uhf", "history-laplace", "history-markov", "history-cohort")


def _table(probs: np.ndarray, split: Split, source: str) -> DistributionTable:
    return DistributionTable(users=split.users, categories=split.categories, probs=probs, source=source)


def global_frequency(split: Split, *, mass: str = "split") -> np.ndarray:
    """g(c): the category mix of all history interactions pooled, shape (K,)."""
    total = category_mass(split.history, split.users, split.categories, mass).sum(axis=0)
    if total.sum() <= 0:
        return np.full(len(split.categories), 1.0 / len(split.categories))
    return total / total.sum()


def uhf(split: Split, *, mass: str = "split") -> DistributionTable:
    """Per-user history category frequency (module docstring), global fallback for empty histories."""
    raw = category_mass(split.history, split.users, split.categories, mass)
    totals = raw.sum(axis=1, keepdims=True)
    probs = np.where(totals > 0, raw / np.where(totals > 0, totals, 1.0), global_frequency(split, mass=mass))
    return _table(probs, split, f"history-uhf (mass={mass})")


def cohort(split: Split, *, mass: str = "split") -> DistributionTable:
    """The cohort-mean history distribution, (1/n) sum_u UHF_u, identical for every user (module docstring)."""
    return _cohort_of(uhf(split, mass=mass), split, mass)


def _cohort_of(per_user: DistributionTable, split: Split, mass: str) -> DistributionTable:
    """:func:`cohort` from the split's :func:`uhf` table ``per_user`` (computed once by :func:`history_priors`)."""
    mean = per_user.probs.mean(axis=0)
    return _table(np.repeat(mean[None, :], len(split.users), axis=0), split, f"history-cohort (mass={mass})")


def laplace_uhf(split: Split, *, alpha: float = 1.0, mass: str = "split") -> DistributionTable:
    """Add-alpha smoothed UHF: (h_u(c) + alpha) / (sum h_u + alpha K)."""
    if not alpha > 0:
        raise SpectraInputError(f"alpha must be positive, got {alpha}")
    raw = category_mass(split.history, split.users, split.categories, mass) + alpha
    return _table(raw / raw.sum(axis=1, keepdims=True), split, f"history-laplace (alpha={alpha:g}, mass={mass})")


def transition_matrix(split: Split, *, alpha: float = 1.0, mass: str = "split") -> np.ndarray:
    """Smoothed first-order category transition matrix P (K, K), rows sum to 1 (module docstring)."""
    if not alpha > 0:
        raise SpectraInputError(f"alpha must be positive, got {alpha}")
    hist = split.history  # sorted by user then time (chronological_split guarantees it)
    w = _unit_rows(item_mass(hist["categories"], split.categories, mass))
    users = hist["user_id"].to_numpy()
    # consecutive categorised items of the same user (uncategorised items are skipped, not chain breakers)
    has = w.sum(axis=1) > 0
    w, users = w[has], users[has]
    same = users[1:] == users[:-1]
    counts = w[:-1][same].T @ w[1:][same] + alpha
    return counts / counts.sum(axis=1, keepdims=True)


def markov(split: Split, *, alpha: float = 1.0, mass: str = "split") -> DistributionTable:
    """One Markov step from each user's last categorised history item: p_u = v_last P."""
    P = transition_matrix(split, alpha=alpha, mass=mass)
    hist = split.history.reset_index(drop=True)
    w = _unit_rows(item_mass(hist["categories"], split.categories, mass))
    last = hist[w.sum(axis=1) > 0].groupby("user_id", sort=False).tail(1)  # index = row in w
    pos = pd.Index(last["user_id"]).get_indexer(split.users)
    probs = np.tile(global_frequency(split, mass=mass), (len(split.users), 1))
    ok = pos >= 0
    probs[ok] = w[last.index.to_numpy()[pos[ok]]] @ P
    return _table(probs, split, f"history-markov (alpha={alpha:g}, mass={mass})")


def _unit_rows(w: np.ndarray) -> np.ndarray:
    """Each categorised item's weight vector scaled to sum 1 (rows of zeros stay zero)."""
    s = w.sum(axis=1, keepdims=True)
    return np.divide(w, s, out=np.zeros_like(w), where=s > 0)


def history_priors(split: Split, *, alpha: float = 1.0, mass: str = "split") -> dict[str, DistributionTable]:
    """The four baselines under the demo's method names (:data:`PRIOR_NAMES`, in that order)."""
    per_user = uhf(split, mass=mass)
    tables = (per_user, laplace_uhf(split, alpha=alpha, mass=mass), markov(split, alpha=alpha, mass=mass),
              _cohort_of(per_user, split, mass))
    return dict(zip(PRIOR_NAMES, tables, strict=True))
