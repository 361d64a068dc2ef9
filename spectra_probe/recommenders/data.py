"""What the sequential recommenders train on and what ``spectra fuse`` reads; numpy and pandas only.

Protocol (test split). The evaluation split is :func:`spectra_eval.data.splits.chronological_split` (per user,
the first 80% of the timeline is the history, the rest the future). A model trains on every user's history
sequence; the held-out item of user u is the **first item of u's future window**; the candidate set is that
item plus ``n_negatives`` items drawn uniformly without replacement (seeded) from the catalogue minus every
item u ever interacted with (history and future), the rule of Kang & McAuley (2018): a negative is never a
training item of u and never an item u later consumes. A user with fewer eligible items than
``n_negatives`` gets all of them (logged; the fusion evaluator handles unequal candidate sets).

Validation split (``split='validation'``): the same rule one level down: each user's history is split again
chronologically (:func:`spectra_eval.data.splits.nested_split`, the nested split the SFT stage uses); the model
trains on the nested history and the held-out item is the first item of the nested future, so nothing of the
evaluation future is seen. Its candidates choose the fusion weight (``spectra fuse --select-on``).

Items are numbered 1..n_items in catalogue order (0 is padding); ``popularity`` counts training interactions
per item, listing every catalogue item (0 for items without one), as ``spectra fuse --popularity`` expects.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spectra_eval.data.datasets import Interactions
from spectra_eval.data.splits import Split, chronological_split, nested_split
from spectra_eval.validation import SpectraInputError

log = logging.getLogger(__name__)

SPLITS = ("test", "validation")


@dataclass(frozen=True)
class SequenceData:
    """Training sequences and held-out items of one split, items as indices 1..n_items (0 = padding).

    ``sequences[u]`` is user ``users[u]``'s chronological training items; ``held_out[u]`` the item to rank;
    ``seen[u]`` every item the user interacted with (excluded from negatives).
    """

    users: np.ndarray  # (n,) object array of str
    item_ids: np.ndarray  # (n_items + 1,) object array; item_ids[0] = "" (padding)
    sequences: list[np.ndarray]
    held_out: np.ndarray  # (n,) int
    seen: list[np.ndarray]
    split: str = "test"

    @property
    def n_items(self) -> int:
        return len(self.item_ids) - 1

    def popularity(self) -> pd.DataFrame:
        """``item_id, count``: training interactions per catalogue item (0 included)."""
        counts = np.bincount(np.concatenate(self.sequences), minlength=self.n_items + 1)[1:]
        return pd.DataFrame({"item_id": self.item_ids[1:], "count": counts})


def sequence_data(data: Interactions, split: Split | None = None, *, which: str = "test",
                  min_interactions: int = 5) -> SequenceData:
    """Training sequences and held-out items (module docstring) of ``data``'s chronological split.

    ``split`` reuses an existing evaluation split (the demo's); ``which='validation'`` nests it once more.
    """
    if which not in SPLITS:
        raise SpectraInputError(f"split must be one of {', '.join(SPLITS)}, got {which!r}")
    split = split if split is not None else chronological_split(data, min_interactions=min_interactions)
    everything = pd.concat([split.history, split.future], ignore_index=True)
    if which == "validation":
        split = nested_split(split, min_interactions=min(min_interactions, 2))
    catalogue = pd.unique(pd.concat([data.items["item_id"].astype(str), everything["item_id"].astype(str)]))
    item_ids = np.concatenate([[""], np.asarray(catalogue, dtype=object)])
    index = pd.Index(item_ids)

    def grouped(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        codes = index.get_indexer(frame["item_id"].astype(str))
        users = frame["user_id"].astype(str).to_numpy()
        return {u: codes[rows] for u, rows in pd.Series(np.arange(len(frame))).groupby(users, sort=False).groups.items()}

    hist, fut, every = grouped(split.history), grouped(split.future), grouped(everything)
    users = np.asarray([u for u in split.users if u in hist and u in fut], dtype=object)
    return SequenceData(users=users, item_ids=item_ids, sequences=[hist[u] for u in users],
                        held_out=np.asarray([fut[u][0] for u in users], dtype=np.int64),
                        seen=[np.unique(every[u]) for u in users], split=which)


def sample_negatives(seq: SequenceData, n_negatives: int, seed: int = 0) -> list[np.ndarray]:
    """Per user, ``n_negatives`` items drawn uniformly without replacement from the items the user never
    interacted with (fewer when fewer exist). One generator, users in order: fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    catalogue = np.arange(1, seq.n_items + 1)
    short = 0
    out = []
    for seen in seq.seen:
        eligible = np.setdiff1d(catalogue, seen, assume_unique=True)
        short += len(eligible) < n_negatives
        out.append(rng.choice(eligible, size=min(n_negatives, len(eligible)), replace=False))
    if short:
        log.warning("%d users have fewer than %d never-seen items: they get all of them", short, n_negatives)
    return out


def candidates_frame(seq: SequenceData, negatives: list[np.ndarray], scores: list[np.ndarray]) -> pd.DataFrame:
    """``user_id, item_id, score, label``: per user the held-out item (label 1) then its negatives; ``scores[u]``
    holds the scores of ``[held_out[u], *negatives[u]]`` in that order."""
    items = [np.concatenate([[h], neg]) for h, neg in zip(seq.held_out, negatives)]
    counts = np.array([len(i) for i in items])
    labels = np.zeros(counts.sum(), dtype=np.int8)
    labels[np.concatenate([[0], np.cumsum(counts)[:-1]])] = 1
    return pd.DataFrame({"user_id": np.repeat(seq.users, counts), "item_id": seq.item_ids[np.concatenate(items)],
                         "score": np.concatenate(scores).astype(np.float64), "label": labels})
