"""Per-user chronological splits, ground-truth category distributions, sessions, context windows, strata.

The protocol (paper, checklist C6): each user's interactions are ordered by time (ties keep the file
order); the first 80% form the *history*, the last 20% the *future*. With n interactions,

    n_history = min(max(floor(f * n), 1), n - 1),   f = history_fraction (0.8),

so both sides are non-empty; users with fewer than ``min_interactions`` (default 5) interactions are
dropped. The truth theta_* of a user is the category mix of the future window:

    theta_*(c) = m(c) / sum_c' m(c'),   m(c) = sum over future items i of w_i(c),

with ``mass='split'``: an item with categories C_i gives w_i(c) = 1/|C_i| for c in C_i (one unit of mass per
interaction), or ``mass='each'``: w_i(c) = 1 for c in C_i (every category counts fully). Items with no
category carry no mass; users whose future has no mass are dropped (logged).

Sessions: within each window separately, a new session starts when the gap to the previous interaction
exceeds ``session_gap`` seconds (default 1800 s = 30 minutes, the usual idle cut of session-based
recommendation; MovieLens timestamps are rating-entry times, so a session is one rating sitting). The
history and the future are sessionised separately, so a session cut by the 80% boundary counts on both
sides and no future item can reach a context.

Context windows (paper B.5): CW = c keeps the c most recent history sessions (all of them when the user has
fewer); horizon 'LT' targets the whole future window, 'ST' only the first future session.

Activity strata: users are ranked by history length and cut into ``n_strata`` equal-count groups
(quantile bins of the rank, so ties cannot empty a bin); labels 'A1' (least active) ... 'An'.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from spectra_eval.data.datasets import Interactions
from spectra_eval.stats import equal_count_groups
from spectra_eval.io import DistributionTable
from spectra_eval.validation import SpectraInputError

log = logging.getLogger(__name__)

MASS_RULES = ("split", "each")
HORIZONS = ("LT", "ST")
CONTEXT_WINDOWS = (1, 3, 5, 8)
DEFAULT_SESSION_GAP = 1800.0


@dataclass(frozen=True)
class Split:
    """A chronological split.

    ``history`` and ``future`` hold the interaction rows of the kept users (columns of
    :attr:`Interactions.frame` plus ``position``: 0-based rank in the user's timeline, and ``session``:
    0-based session index within the window), sorted by user (in ``users`` order) then time.
    """

    history: pd.DataFrame
    future: pd.DataFrame
    users: np.ndarray  # object array of str, the kept users in output order
    categories: tuple[str, ...]
    history_fraction: float = 0.8
    session_gap: float = DEFAULT_SESSION_GAP

    @property
    def n_users(self) -> int:
        return len(self.users)


def user_order(user_ids: Sequence[str]) -> np.ndarray:
    """Distinct user ids in a deterministic order: numeric order when every id is an integer, else sorted."""
    unique = pd.unique(pd.Series(user_ids, dtype=object).astype(str))
    if all(u.isdigit() for u in unique):
        return np.asarray(sorted(unique, key=lambda u: (int(u), u)), dtype=object)
    return np.asarray(sorted(unique), dtype=object)


def history_size(n, history_fraction: float = 0.8):
    """n_history = min(max(floor(f n), 1), n - 1) (vectorised; a 1e-9 guard keeps 0.8 * 10 at 8)."""
    n = np.asarray(n)
    return np.minimum(np.maximum(np.floor(history_fraction * n + 1e-9).astype(int), 1), n - 1)


def _sessions(frame: pd.DataFrame, gap: float) -> np.ndarray:
    """0-based session index per row of a frame sorted by user then time."""
    ts = frame["timestamp"].to_numpy(dtype=float)
    users = frame["user_id"].to_numpy()
    new_user = np.ones(len(frame), dtype=bool)
    new_user[1:] = users[1:] != users[:-1]
    new_session = new_user.copy()
    new_session[1:] |= np.diff(ts) > gap
    starts = np.cumsum(new_session)  # global session counter
    first_of_user = pd.Series(starts).where(new_user).ffill().to_numpy()
    return (starts - first_of_user).astype(int)


def chronological_split(
    data: Interactions,
    *,
    history_fraction: float = 0.8,
    min_interactions: int = 5,
    session_gap: float = DEFAULT_SESSION_GAP,
    mass: str = "split",
) -> Split:
    """Split every user's timeline into history (first ``history_fraction``) and future (the rest).

    See the module docstring for the rounding rule, the dropped users and the session rule. ``mass`` is
    used only to drop users whose future window carries no category mass.
    """
    if not 0.0 < history_fraction < 1.0:
        raise SpectraInputError(f"history_fraction must be in (0, 1), got {history_fraction}")
    if min_interactions < 2:
        raise SpectraInputError(f"min_interactions must be at least 2, got {min_interactions}")
    frame = data.frame.copy()
    frame["user_id"] = frame["user_id"].astype(str)
    order = user_order(frame["user_id"])
    frame["_user"] = pd.Categorical(frame["user_id"], categories=order).codes
    frame["_row"] = np.arange(len(frame))
    frame = frame.sort_values(["_user", "timestamp", "_row"], kind="stable").reset_index(drop=True)
    counts = np.bincount(frame["_user"].to_numpy(), minlength=len(order))
    keep_user = counts >= min_interactions
    if (~keep_user).any():
        log.info("dropping %d users with fewer than %d interactions", int((~keep_user).sum()), min_interactions)
    frame = frame[keep_user[frame["_user"].to_numpy()]].reset_index(drop=True)
    codes = frame["_user"].to_numpy()
    position = frame.groupby("_user", sort=False).cumcount().to_numpy()
    n_hist = history_size(counts, history_fraction)[codes]
    frame["position"] = position
    is_hist = position < n_hist
    history = frame[is_hist].reset_index(drop=True)
    future = frame[~is_hist].reset_index(drop=True)
    # drop users whose future carries no category mass (e.g. only uncategorised items)
    has_mass = future["categories"].map(len).to_numpy() > 0
    ok = np.zeros(len(order), dtype=bool)
    ok[future["_user"].to_numpy()[has_mass]] = True
    ok &= keep_user
    if (keep_user & ~ok).any():
        log.info("dropping %d users whose future window has no categorised item", int((keep_user & ~ok).sum()))
    history = history[ok[history["_user"].to_numpy()]].reset_index(drop=True)
    future = future[ok[future["_user"].to_numpy()]].reset_index(drop=True)
    if len(future) == 0:
        raise SpectraInputError(f"{data.name}: no user has at least {min_interactions} interactions with categories")
    history["session"] = _sessions(history, session_gap)
    future["session"] = _sessions(future, session_gap)
    history = history.drop(columns=["_user", "_row"])
    future = future.drop(columns=["_user", "_row"])
    users = order[ok]
    log.info("split %d users: %d history and %d future interactions", len(users), len(history), len(future))
    return Split(history=history, future=future, users=users, categories=data.categories,
                 history_fraction=history_fraction, session_gap=session_gap)


def nested_split(split: Split, *, history_fraction: float | None = None, min_interactions: int = 5) -> Split:
    """Each user's history window of ``split`` split again chronologically (:func:`chronological_split`).

    The nested history is the earlier part and the nested future the later part of ``split.history``; nothing
    of ``split.future`` is in either. ``history_fraction`` defaults to ``split.history_fraction``; the session
    gap is ``split``'s. Used for the SFT window and the recommenders' validation split.
    """
    frame = split.history.drop(columns=[c for c in ("position", "session") if c in split.history.columns])
    data = Interactions(frame=frame, items=pd.DataFrame(columns=["item_id", "title", "year", "categories"]),
                        categories=split.categories, name="history window")
    return chronological_split(data, history_fraction=history_fraction or split.history_fraction,
                               min_interactions=min_interactions, session_gap=split.session_gap)


def category_mass(frame: pd.DataFrame, users: Sequence[str] | np.ndarray, categories: Sequence[str],
                  mass: str = "split") -> np.ndarray:
    """Unnormalised per-user category mass, shape (n_users, K): m_u(c) = sum_i w_i(c) over u's rows.

    ``mass='split'``: w_i(c) = 1/|C_i|; ``mass='each'``: w_i(c) = 1 (see the module docstring).
    """
    if mass not in MASS_RULES:
        raise SpectraInputError(f"mass must be one of {MASS_RULES}, got {mass!r}")
    rows = item_mass(frame["categories"], categories, mass)
    user_index = pd.Index(np.asarray(users, dtype=object))
    pos = user_index.get_indexer(frame["user_id"].astype(str))
    out = np.zeros((len(user_index), len(categories)))
    ok = pos >= 0
    np.add.at(out, pos[ok], rows[ok])
    return out


def item_mass(category_tuples: Sequence[tuple[str, ...]], categories: Sequence[str], mass: str = "split") -> np.ndarray:
    """Row i gets w_i(c) for each category column (zeros for an item without category)."""
    col = {c: j for j, c in enumerate(categories)}
    lengths = np.fromiter((len(t) for t in category_tuples), dtype=int, count=len(category_tuples))
    flat = [col[c] for t in category_tuples for c in t]
    out = np.zeros((len(lengths), len(categories)))
    if flat:
        rows = np.repeat(np.arange(len(lengths)), lengths)
        weight = 1.0 / lengths[rows] if mass == "split" else np.ones(len(rows))
        np.add.at(out, (rows, np.asarray(flat)), weight)
    return out


def _normalise(raw: np.ndarray, users, categories, source: str) -> DistributionTable:
    totals = raw.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        user = np.asarray(users)[int(np.flatnonzero(totals[:, 0] <= 0)[0])]
        raise SpectraInputError(f"{source}: user {user!r} has no category mass in the window")
    return DistributionTable(users=np.asarray(users, dtype=object), categories=tuple(categories),
                             probs=raw / totals, source=source)


def truth_table(split: Split, *, mass: str = "split") -> DistributionTable:
    """theta_* per user from the future window (module docstring for the formula)."""
    raw = category_mass(split.future, split.users, split.categories, mass)
    return _normalise(raw, split.users, split.categories, f"truth (future window, mass={mass})")


def count_table(split: Split, *, seed: int = 0) -> pd.DataFrame:
    """Integer counts of each user's future items per category (``spectra certify --counts``).

    Every future item with categories contributes one count to *one* of them, drawn uniformly (seeded). So
    c_u ~ Multinomial(n_u, theta*_u) with theta*_u(c) = P(a random category of the user's next item is c), the
    quantity the ``mass='split'`` truth estimates (E[c_u / n_u] = E[truth_u]); for single-category data it is
    exact and deterministic. Items without a category are not counted.
    """
    rng = np.random.default_rng(seed)
    column = {c: j for j, c in enumerate(split.categories)}
    user_row = {u: i for i, u in enumerate(split.users)}
    counts = np.zeros((len(split.users), len(split.categories)), dtype=np.int64)
    for user, cats in zip(split.future["user_id"].astype(str), split.future["categories"]):
        known = [column[c] for c in cats if c in column]
        if known and user in user_row:
            counts[user_row[user], known[rng.integers(len(known))] if len(known) > 1 else known[0]] += 1
    frame = pd.DataFrame(counts, columns=list(split.categories))
    frame.insert(0, "user_id", np.asarray(split.users, dtype=object))
    return frame


def activity_strata(n_history, n_strata: int = 5) -> np.ndarray:
    """Equal-count activity strata by history length: 'A1' (shortest histories) ... 'A{n_strata}'.

    Users are ranked by ``n_history`` (ties broken by position, so every stratum has floor or ceil of
    n / n_strata users) and stratum = floor(rank * n_strata / n) + 1.
    """
    if n_strata < 1:
        raise SpectraInputError(f"n_strata must be at least 1, got {n_strata}")
    return np.asarray([f"A{k + 1}" for k in equal_count_groups(n_history, n_strata)], dtype=object)


def metadata_table(split: Split, *, n_strata: int = 5) -> pd.DataFrame:
    """Per-user strata for ``spectra evaluate --meta``: user_id, activity, n_history, n_future,
    n_history_sessions, n_future_sessions."""
    def per_user(frame: pd.DataFrame, column: str | None) -> np.ndarray:
        grouped = frame.groupby("user_id", sort=False)
        values = grouped.size() if column is None else grouped[column].max() + 1
        return values.reindex(split.users).fillna(0).to_numpy(dtype=int)

    n_hist = per_user(split.history, None)
    return pd.DataFrame({
        "user_id": split.users,
        "activity": activity_strata(n_hist, n_strata),
        "n_history": n_hist,
        "n_future": per_user(split.future, None),
        "n_history_sessions": per_user(split.history, "session"),
        "n_future_sessions": per_user(split.future, "session"),
    })


@dataclass(frozen=True)
class ContextRecords:
    """One probe record per (user, context window, horizon).

    ``history``: the context rows, ``user_id`` replaced by the record id (``"{user}|cw{c}|{LT|ST}"``) so the
    textualiser and the probe treat records like users, the original id in ``user``. ``truth``: theta_* per
    record. ``meta``: user_id (record id), user, context_window, horizon, cell (e.g. 'CW3-LT'), activity,
    n_context, n_target.
    """

    history: pd.DataFrame
    truth: DistributionTable
    meta: pd.DataFrame


def context_records(split: Split, *, windows: Sequence[int] = CONTEXT_WINDOWS, horizons: Sequence[str] = HORIZONS,
                    mass: str = "split", n_strata: int = 5) -> ContextRecords:
    """Build the CW x horizon records of the paper's appendix B.5 (module docstring for the rules)."""
    bad = [h for h in horizons if h not in HORIZONS]
    if bad:
        raise SpectraInputError(f"horizon must be one of {HORIZONS}, got {bad[0]!r}")
    if any(int(w) < 1 for w in windows):
        raise SpectraInputError(f"context windows must be positive session counts, got {list(windows)}")
    hist, fut = split.history, split.future
    last_session = hist.groupby("user_id", sort=False)["session"].transform("max").to_numpy()
    first_future = fut["session"].to_numpy() == 0
    strata = metadata_table(split, n_strata=n_strata).set_index("user_id")["activity"]
    contexts, targets, metas = [], [], []
    for w in windows:
        in_window = hist["session"].to_numpy() > last_session - int(w)
        for h in horizons:
            ids = np.asarray([f"{u}|cw{int(w)}|{h}" for u in split.users], dtype=object)
            rename = dict(zip(split.users, ids))
            ctx = hist[in_window].copy()
            ctx.insert(1, "user", ctx["user_id"])
            ctx["user_id"] = ctx["user_id"].map(rename)
            tgt = fut if h == "LT" else fut[first_future]
            tgt = tgt.assign(user_id=tgt["user_id"].map(rename))
            contexts.append(ctx)
            targets.append(tgt)
            metas.append(pd.DataFrame({
                "user_id": ids, "user": split.users, "context_window": int(w), "horizon": h,
                "cell": f"CW{int(w)}-{h}", "activity": strata.reindex(split.users).to_numpy(),
                "n_context": ctx.groupby("user_id", sort=False).size().reindex(ids).fillna(0).to_numpy(dtype=int),
                "n_target": tgt.groupby("user_id", sort=False).size().reindex(ids).fillna(0).to_numpy(dtype=int),
            }))
    meta = pd.concat(metas, ignore_index=True)
    target = pd.concat(targets, ignore_index=True)
    raw = category_mass(target, meta["user_id"], split.categories, mass)
    keep = raw.sum(axis=1) > 0  # an ST target session may hold only uncategorised items
    if (~keep).any():
        log.info("dropping %d records whose target has no category mass", int((~keep).sum()))
    meta = meta[keep].reset_index(drop=True)
    truth = _normalise(raw[keep], meta["user_id"].to_numpy(dtype=object), split.categories,
                       f"truth (context records, mass={mass})")
    history = pd.concat(contexts, ignore_index=True)
    history = history[history["user_id"].isin(set(meta["user_id"]))].reset_index(drop=True)
    return ContextRecords(history=history, truth=truth, meta=meta)
