"""``spectra prepare``: a raw interaction log in, every file ``probe``, ``evaluate``, ``certify``, ``steer`` and
``fuse`` read out, without a model (pandas only; no torch).

The log is split chronologically per user (:func:`~spectra_eval.data.splits.chronological_split`: the first 80%
of each user's interactions are the history, the rest the future) and written, atomically, to one folder:

======================= ==================================================================================
file                    what (and who reads it)
======================= ==================================================================================
``contexts.csv``        ``user_id, context``: the history as text, oldest item first
                        (:func:`~spectra_eval.data.textualize.textualize`; ``spectra probe --contexts``)
``truth.csv``           theta_* of the future window (:func:`~spectra_eval.data.splits.truth_table`;
                        ``spectra evaluate --truth``, ``spectra certify --truth``)
``counts.csv``          one count per future item (:func:`~spectra_eval.data.splits.count_table`;
                        ``spectra certify --counts``)
``meta.csv``            per-user strata (:func:`~spectra_eval.data.splits.metadata_table`; ``--meta``)
``categories.txt``      the category labels, one a line (``spectra probe --categories``)
``history-*.csv``       the history priors (:func:`~spectra_eval.data.priors.history_priors`), baselines
``requests.csv``        seeded steering requests (:func:`~spectra_eval.analyses.steering.make_requests`;
                        ``spectra probe --requests``, ``spectra steer``)
``items.csv``           ``item_id, categories`` (:func:`~spectra_eval.analyses.lists.item_categories_frame`;
                        ``spectra evaluate --items``, ``spectra fuse --items``)
``hierarchy.json``      two-level data only (Yelp L2): ``{L1: [category, ...]}`` (``spectra probe --hierarchy``)
======================= ==================================================================================

Contexts are cut to a token budget (``context_tokens``) with the tokenizer of the model that will be probed,
counted on the exact joined text; a tokenizer is a ``tokenizer.json`` file (or a model directory holding one,
read with the ``tokenizers`` package, no torch), any object with ``encode`` or a ``str -> int`` counter. Without a
budget the whole history is the context. ``spectra train --export`` writes the same files through
:func:`write_evaluation_inputs` with the trained model's tokenizer.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from spectra_eval.analyses.lists import item_categories_frame
from spectra_eval.analyses.steering import make_requests
from spectra_eval.data.datasets import Interactions, load_dataset
from spectra_eval.data.priors import history_priors
from spectra_eval.data.splits import Split, category_mass, chronological_split, count_table, metadata_table, truth_table
from spectra_eval.data.textualize import load_tokenizer_file, textualize
from spectra_eval.io import DistributionTable, atomic_outputs, write_distribution_table, write_frame, write_json, write_text
from spectra_eval.validation import SpectraInputError

#: Users above which textualisation shows a progress bar.
PROGRESS_USERS = 2000


def hierarchy_partition(categories: Sequence[str], parents: Mapping[str, str]) -> dict[str, list[str]]:
    """``{L1: [category, ...]}`` for ``categories`` (label -> L1 in ``parents``), L1s in order of first use."""
    missing = [c for c in categories if c not in parents]
    if missing:
        raise SpectraInputError(f"category {missing[0]!r} has no L1 parent, so no hierarchy can be written")
    tree: dict[str, list[str]] = {}
    for c in categories:
        tree.setdefault(parents[c], []).append(c)
    return tree


def write_evaluation_inputs(data: Interactions, split: Split, truth: DistributionTable, out_dir: str | os.PathLike,
                            *, tokenizer: Any = None, context_tokens: int | None = None, n_strata: int = 5,
                            request_seed: int = 0) -> dict[str, Path]:
    """Write the files of the module docstring for an existing ``split`` of ``data`` (and its ``truth``),
    atomically, into ``out_dir``; returns file stem -> final path.

    ``tokenizer`` is an object with ``encode`` or a ``str -> int`` counter (see :func:`prepare` for paths);
    ``context_tokens`` the budget of a context in its tokens (None: whole histories).
    """
    contexts = textualize(split.history, data.items, users=split.users, budget=context_tokens, tokenizer=tokenizer,
                          progress=len(split.users) > PROGRESS_USERS)
    with atomic_outputs(out_dir) as stage:
        write_frame(stage / "contexts.csv", contexts[["user_id", "context"]])
        write_distribution_table(stage / "truth.csv", truth)
        write_frame(stage / "counts.csv", count_table(split))
        write_frame(stage / "meta.csv", metadata_table(split, n_strata=n_strata))
        write_text(stage / "categories.txt", "\n".join(split.categories) + "\n")
        seen = category_mass(split.history, split.users, split.categories) > 0
        write_frame(stage / "requests.csv", make_requests(split.users, split.categories, seen, seed=request_seed))
        write_frame(stage / "items.csv", item_categories_frame(data.items))
        for name, table in history_priors(split).items():
            write_distribution_table(stage / f"{name}.csv", table)
        if data.parents is not None:
            write_json(stage / "hierarchy.json", hierarchy_partition(split.categories, data.parents))
        files = {p.stem: Path(out_dir) / p.name for p in stage.iterdir()}
    return files


def prepare(dataset: str | Interactions, out_dir: str | os.PathLike, *, tokenizer: Any = None,
            context_tokens: int | None = None, history_fraction: float = 0.8, min_interactions: int = 5,
            n_strata: int = 5, request_seed: int = 0) -> dict[str, Path]:
    """Split an interaction log chronologically and write everything the evaluation reads (module docstring).

    Parameters
    ----------
    dataset : str or Interactions
        A ``--dataset`` spec (:func:`~spectra_eval.data.datasets.load_dataset`: ``ml-100k``, ``movielens:DIR``,
        ``table:FILE``, ``yelp:...``) or interactions already loaded.
    out_dir : path
        Output folder (written atomically: nothing is left there when an input is bad).
    tokenizer : path, tokenizer or callable, optional
        ``tokenizer.json`` (or a directory holding it), an object with ``encode`` or a ``str -> int`` counter;
        needed with ``context_tokens``.
    context_tokens : int, optional
        Token budget of a context; the oldest items are dropped first. None keeps whole histories.
    history_fraction, min_interactions
        The chronological split: each user's first ``history_fraction`` of interactions are the history;
        users with fewer than ``min_interactions`` are dropped.
    n_strata : int
        Activity strata in ``meta.csv``.
    request_seed : int
        Seed of the steering requests.

    Returns
    -------
    dict
        File stem (``contexts``, ``truth``, ...) -> path written.

    Examples
    --------
    >>> files = prepare("ml-100k", "runs/data")                                   # doctest: +SKIP
    >>> files = prepare("table:log.csv", "runs/data", tokenizer="/models/Qwen3-8B",
    ...                 context_tokens=1024)                                       # doctest: +SKIP
    """
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer_file(tokenizer)
    split = chronological_split(data, history_fraction=history_fraction, min_interactions=min_interactions)
    return write_evaluation_inputs(data, split, truth_table(split), out_dir, tokenizer=tokenizer,
                                   context_tokens=context_tokens, n_strata=n_strata, request_seed=request_seed)
