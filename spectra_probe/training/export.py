"""The files ``spectra probe`` and ``spectra evaluate`` read, written from a prepared data set."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from spectra_eval.data.priors import history_priors
from spectra_eval.data.splits import category_mass, count_table, metadata_table
from spectra_eval.io import atomic_outputs, write_distribution_table, write_frame, write_json, write_text
from spectra_eval.analyses.steering import make_requests
from spectra_eval.validation import SpectraInputError
from spectra_probe.recommenders.data import item_categories_frame

from .examples import Prepared, contexts_for


def hierarchy_partition(categories: Sequence[str], parents: Mapping[str, str]) -> dict[str, list[str]]:
    """``{L1: [category, ...]}`` for ``categories`` (label -> L1 in ``parents``), L1s in order of first use."""
    missing = [c for c in categories if c not in parents]
    if missing:
        raise SpectraInputError(f"category {missing[0]!r} has no L1 parent, so no hierarchy can be written")
    tree: dict[str, list[str]] = {}
    for c in categories:
        tree.setdefault(parents[c], []).append(c)
    return tree


def export_evaluation_inputs(prepared: Prepared, tokenizer, out_dir, *, budget: int | None = None,
                             n_strata: int = 5, request_seed: int = 0) -> dict[str, Path]:
    """Write the files ``spectra probe`` and ``spectra evaluate`` read, atomically, into ``out_dir``:
    ``contexts.csv`` (user_id, context), ``truth.csv``, ``counts.csv`` (one count per future item, for
    ``spectra certify --counts``: :func:`spectra_eval.data.splits.count_table`), ``meta.csv``, ``categories.txt`` and
    ``history-uhf.csv``, ``history-laplace.csv``, ``history-markov.csv``, and for two-level data
    (``Interactions.parents`` set, e.g. Yelp L2) ``hierarchy.json``: ``{L1: [category, ...]}`` in the exported
    labels, for ``spectra probe --hierarchy``. Also ``requests.csv``: seeded steering requests (one per user,
    direction and granularity, targets from categories the user's history has and has not seen;
    :func:`spectra_eval.analyses.steering.make_requests`) for ``spectra probe --requests``, and ``items.csv``
    (item_id, categories joined by ``|``: :func:`spectra_probe.recommenders.data.item_categories_frame`) for
    ``spectra evaluate --list``. Returns name -> final path."""
    split = prepared.split
    contexts = contexts_for(split.history, prepared.data.items, split.users, tokenizer=tokenizer, budget=budget)
    with atomic_outputs(out_dir) as stage:
        write_frame(stage / "contexts.csv", contexts[["user_id", "context"]])
        write_distribution_table(stage / "truth.csv", prepared.truth)
        write_frame(stage / "counts.csv", count_table(split))
        write_frame(stage / "meta.csv", metadata_table(split, n_strata=n_strata))
        write_text(stage / "categories.txt", "\n".join(split.categories) + "\n")
        seen = category_mass(split.history, split.users, split.categories) > 0
        write_frame(stage / "requests.csv", make_requests(split.users, split.categories, seen, seed=request_seed))
        write_frame(stage / "items.csv", item_categories_frame(prepared.data.items))
        for name, table in history_priors(split).items():
            write_distribution_table(stage / f"{name}.csv", table)
        if prepared.data.parents is not None:
            write_json(stage / "hierarchy.json", hierarchy_partition(split.categories, prepared.data.parents))
        files = {p.stem: Path(out_dir) / p.name for p in stage.iterdir()}
    return files
