"""Category maps: merge a taxonomy's categories into coarser ones by summing mass (paper Appendix D.1).

A map is a CSV with the header ``category,merged``: every fine category on one line, mapped exactly once, to
the coarse label it joins (a category may map to itself). Applied to a distribution table (or a counts
table) it sums the columns of each coarse label::

    p_coarse(u, g) = sum_{c : merged(c) = g} p_fine(u, c)

so rows stay probability vectors (counts stay counts). Coarse labels keep the order of their first
appearance in the map file.

Shipped maps (usable by name wherever a map path is accepted):

* ``movielens-k15``: the paper's K = 19 -> 15 merges, exactly Adventure -> Action, Fantasy -> Sci-Fi,
  Mystery -> Crime, Horror -> Thriller (everything else maps to itself).
* ``movielens-k10``: K = 19 -> 10. The paper does not list its K = 10 pairs, so these are chosen by a rule
  anyone can rerun (:func:`cooccurrence_merges`): start from the K = 15 map and merge each of the five genres
  with the fewest ratings in MovieLens-100k (``unknown`` is not a genre and stays) into the genre it shares
  the most rated films with: Documentary -> Drama, Film-Noir -> Crime, Western -> Action,
  Animation -> Children's, Musical -> Children's.

:func:`coherence` (beyond the paper): Eq. 2 reads a distribution over a partition, so a probe asked directly
with the coarse categories should equal its fine distribution summed through the map; the mean per-user JS
(bits) between the two measures how far it is from that.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence, overload

import numpy as np
import pandas as pd

from spectra_eval.io import USER_COL, CountTable, DistributionTable, category_columns, read_frame, require_file
from spectra_eval.validation import SpectraInputError, check_counts, check_distributions

MAPS_DIR = Path(__file__).with_name("maps")
#: name -> file of the maps shipped with the library
SHIPPED = {p.stem: p for p in sorted(MAPS_DIR.glob("*.csv"))}


@dataclass(frozen=True)
class CategoryMap:
    """Fine category -> coarse label (``merged``), in file order; ``merged_labels`` in first-appearance order."""

    mapping: Mapping[str, str]
    source: str = "<memory>"

    @property
    def merged_labels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.mapping.values()))

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.mapping)

    def merges(self) -> dict[str, str]:
        """The categories that change label (fine -> coarse)."""
        return {c: g for c, g in self.mapping.items() if c != g}

    def matrix(self, categories: Sequence[str], source: str) -> np.ndarray:
        """The (K_fine, K_coarse) 0/1 matrix summing ``categories`` (a table's columns) into the merged labels;
        the table's categories must be exactly the map's."""
        have = set(categories)
        for c in categories:
            if c not in self.mapping:
                raise SpectraInputError(f"{source}: column {c!r} is not a category of map {self.source}")
        for c in self.mapping:
            if c not in have:
                raise SpectraInputError(f"{source}: map {self.source} category {c!r} is not a column of the table")
        col = {g: j for j, g in enumerate(self.merged_labels)}
        m = np.zeros((len(categories), len(col)))
        for i, c in enumerate(categories):
            m[i, col[self.mapping[c]]] = 1.0
        return m

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"category": list(self.mapping), "merged": list(self.mapping.values())})


def read_category_map(path_or_name: str | os.PathLike) -> CategoryMap:
    """Read a ``category,merged`` CSV, or a shipped map by name (:data:`SHIPPED`, e.g. ``movielens-k15``).

    Raises
    ------
    SpectraInputError
        one line naming the file and line: wrong header, a line without two fields, an empty label, or a
        category mapped more than once.
    """
    name = str(path_or_name)
    if name in SHIPPED and not Path(name).exists():
        path = SHIPPED[name]
    else:
        if not Path(name).exists() and os.sep not in name and not name.endswith(".csv"):
            raise SpectraInputError(f"{name}: neither a file nor a shipped map ({', '.join(SHIPPED)})")
        path = require_file(Path(name))
    try:
        lines = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except UnicodeDecodeError as exc:
        raise SpectraInputError(f"{path}: not UTF-8 text ({exc})") from None
    if not lines or [h.strip() for h in lines[0]] != ["category", "merged"]:
        got = ",".join(lines[0]) if lines else "nothing"
        raise SpectraInputError(f"{path}: line 1: expected the header 'category,merged', got {got!r}")
    mapping: dict[str, str] = {}
    first: dict[str, int] = {}
    for number, fields in enumerate(lines[1:], start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != 2:
            raise SpectraInputError(f"{path}: line {number}: expected 2 fields (category,merged), got {len(fields)}")
        category, merged = (f.strip() for f in fields)
        if not category or not merged:
            column = "category" if not category else "merged"
            raise SpectraInputError(f"{path}: line {number}, column {column}: empty label")
        if category in mapping:
            raise SpectraInputError(f"{path}: line {number}: category {category!r} is mapped more than once "
                                    f"(first on line {first[category]})")
        mapping[category], first[category] = merged, number
    if not mapping:
        raise SpectraInputError(f"{path}: the map has no categories")
    return CategoryMap(mapping, str(path) if path.parent != MAPS_DIR else path.stem)


def _as_map(category_map) -> CategoryMap:
    return category_map if isinstance(category_map, CategoryMap) else read_category_map(category_map)


@overload
def collapse(table: CountTable, category_map) -> CountTable: ...
@overload
def collapse(table: DistributionTable, category_map) -> DistributionTable: ...
def collapse(table: DistributionTable | CountTable, category_map) -> DistributionTable | CountTable:
    """Sum ``table``'s columns through ``category_map`` (a :class:`CategoryMap`, a path or a shipped name).

    A :class:`DistributionTable` gives a DistributionTable over the merged labels (rows still sum to 1), a
    :class:`CountTable` a CountTable (integer sums). The table's categories must be exactly the map's.
    """
    cmap = _as_map(category_map)
    m = cmap.matrix(table.categories, table.source)
    if isinstance(table, CountTable):
        return CountTable(table.users, cmap.merged_labels, (table.counts @ m.astype(np.int64)), table.source)
    return DistributionTable(table.users, cmap.merged_labels, table.probs @ m, table.source)


def collapse_frame(frame: pd.DataFrame, category_map, source: str = "<memory>") -> pd.DataFrame:
    """Collapse a per-user table read from a file: a distribution table (every row sums to 1 within 1e-6) or,
    failing that, a counts table (whole numbers >= 0); checked against the data contract first."""
    users, categories, values = category_columns(frame, source)
    sums = values.sum(axis=1)
    if np.all(np.isfinite(sums)) and np.all(np.abs(sums - 1.0) <= 1e-6):
        table = DistributionTable(users, categories, check_distributions(values, source=source, users=users,
                                                                         categories=categories), source)
        return collapse(table, category_map).to_frame()
    counts = CountTable(users, categories, check_counts(values, source=source, users=users, categories=categories),
                        source)
    return _counts_frame(collapse(counts, category_map))


def _counts_frame(table: CountTable) -> pd.DataFrame:
    frame = pd.DataFrame(table.counts, columns=list(table.categories))
    frame.insert(0, USER_COL, table.users)
    return frame


def collapse_file(path: str | os.PathLike, category_map) -> pd.DataFrame:
    """:func:`collapse_frame` of a CSV/Parquet file."""
    return collapse_frame(read_frame(path), category_map, str(path))


# ------------------------------------------------------------------------------------------ coherence


@dataclass(frozen=True)
class Coherence:
    """Mean per-user JS (bits) between a coarse probe and its fine distribution summed through the map,
    with a percentile bootstrap CI over users (``n`` users, ``n_resamples`` resamples, ``seed``)."""

    mean: float
    ci_low: float
    ci_high: float
    n: int
    n_resamples: int
    seed: int | None
    map: str

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n,
                "n_resamples": self.n_resamples, "seed": self.seed, "map": self.map, "unit": "bits",
                "population": "the users of the two tables"}


def coherence(fine: DistributionTable, coarse: DistributionTable, category_map, *, n_resamples: int = 1000,
              seed: int | None = 0) -> Coherence:
    """``coherence = mean_u JS(collapse(fine)_u, coarse_u)`` in bits, with its bootstrap CI.

    ``fine`` is the probe over the fine categories, ``coarse`` the same probe asked directly with the merged
    labels; they must have the same users (any order) and ``coarse`` exactly the map's merged labels. 0 means
    the probe is coherent with the partition (Eq. 2 read at both levels agrees).
    """
    from spectra_eval.io import align_tables
    from spectra_eval.metrics.divergences import js
    from spectra_eval.stats import bootstrap_ci

    cmap = _as_map(category_map)
    summed = collapse(fine, cmap)
    summed = DistributionTable(summed.users, summed.categories, summed.probs,
                               f"{fine.source} collapsed by {cmap.source}")
    aligned = align_tables(summed, {"coarse": coarse})["coarse"]
    per_user = js(summed.probs, aligned.probs, unit="bits")
    ci = bootstrap_ci(per_user, n_resamples, seed=seed)
    assert not isinstance(ci, list)  # one statistic in, one interval out
    return Coherence(float(per_user.mean()), ci.ci_low, ci.ci_high, len(per_user), n_resamples, seed, cmap.source)


def cooccurrence_merges(item_categories: Iterable[Sequence[str]], start: CategoryMap, n_merges: int,
                        keep: Sequence[str] = ("unknown",)) -> dict[str, str]:
    """The K = 10 rule: after ``start``'s merges, each of the ``n_merges`` labels with the fewest ratings
    (``item_categories``: one category tuple per rating) joins the label it co-occurs with most on the same
    rated film. ``keep`` labels are never merged. Returns merged label -> its new label."""
    from collections import Counter

    counts: Counter = Counter()
    pairs: dict[str, Counter] = {}
    for cats in item_categories:
        labels = sorted({start.mapping.get(c, c) for c in cats})
        for a in labels:
            counts[a] += 1
            for b in labels:
                if a != b:
                    pairs.setdefault(a, Counter())[b] += 1
    rarest = [g for g, _ in sorted(counts.items(), key=lambda kv: (kv[1], kv[0])) if g not in keep][:n_merges]
    return {g: pairs[g].most_common(1)[0][0] for g in rarest}
