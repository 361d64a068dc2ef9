"""The Python API: one verb per capability, plain DataFrames (or checked tables) in, a typed result out.

* :func:`evaluate`: how close is each method (a distribution table or a recommendation list) to the truth,
  and does it beat the reference? -> :class:`~spectra_eval.evaluation.Evaluation` (``spectra evaluate``);
* :func:`certify`: does the probe beat direct generation, per user and for the population (observed; latent
  with counts)? -> :class:`~spectra_eval.certificates.observed.Certificate` (``spectra certify``);
* :func:`fuse`: does SPECTRA as a category prior improve a base ranker (paper Appendix E)?
  -> :class:`~spectra_eval.analyses.fusion.FusionResult` (``spectra fuse``);
* :func:`steer`: does the probed distribution follow a stated preference?
  -> :class:`~spectra_eval.analyses.steering.SteeringResult` (``spectra steer``).

Every result has ``summary()`` (what the command prints), ``to_frame()`` (its per-user or per-request rows),
``to_dict()``/``from_dict()`` (its JSON document), ``save(dir)`` (exactly the files the command writes) and
shows itself in a notebook; :meth:`spectra_eval.report.Report.from_dir` renders tables from a saved directory.

Inputs are checked here, once, with the command line's one-line errors; a DataFrame argument is named in them
as the file would be (``truth: user 'u7' (row 7), column 'Drama': ...``). A distribution table is a DataFrame
with a ``user_id`` column (or the user ids as its index) and one column per category, each row a probability
vector; an already checked :class:`~spectra_eval.io.DistributionTable` is used as it is.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence, Union

import pandas as pd

from spectra_eval import stats
from spectra_eval.analyses.fusion import (Candidates, FusionResult, ItemCategories, candidates_from_frame,
                                          item_categories_from_frame, popularity_series)
from spectra_eval.analyses.fusion import fuse as _fuse
from spectra_eval.analyses.fusion.results import DEFAULT_NAME, output_name
from spectra_eval.analyses.lists import ITEM_COL, items_from_frame, list_distributions
from spectra_eval.analyses.steering import Requests, SteeringResult, requests_from_frame
from spectra_eval.analyses.steering import steer as _steer
from spectra_eval.certificates.observed import Certificate
from spectra_eval.certificates.observed import certify as _certify
from spectra_eval.evaluation import Evaluation
from spectra_eval.evaluation import evaluate as _evaluate
from spectra_eval.io import USER_COL, CountTable, DistributionTable, as_counts, as_table, user_frame
from spectra_eval.validation import SpectraInputError

#: a distribution table: checked, or a DataFrame (``user_id`` column or index, one column per category)
Table = Union[DistributionTable, pd.DataFrame]

__all__ = ["evaluate", "certify", "fuse", "steer", "Table"]


def evaluate(truth: Table, preds: Mapping[str, Table] | None = None, reference: str | None = None, *,
             lists: Mapping[str, pd.DataFrame] | None = None,
             items: pd.DataFrame | Mapping[str, Sequence[str]] | None = None, list_weights: str = "uniform",
             history: Table | None = None, meta: pd.DataFrame | None = None,
             n_resamples: int = stats.N_RESAMPLES, seed: int = stats.SEED, n_bins: int = 20,
             **options: Any) -> Evaluation:
    """Score method tables (and recommendation lists) against the truth; ``spectra evaluate`` in Python.

    Parameters
    ----------
    truth : DataFrame or DistributionTable
        Each user's observed future category mix (the population every number is about).
    preds : dict of name -> DataFrame or DistributionTable
        The methods' predicted distributions, with exactly the truth's users and categories (any order).
    reference : str
        The method every other one is compared with (differences are method - reference); may be left out
        when there is only one method.
    lists : dict of name -> DataFrame, optional
        Recommendation lists (``user_id, item_id, rank``) evaluated as methods: each item spreads one unit
        over its categories, weighted by ``list_weights`` (``"uniform"`` or ``"dcg"`` = 1/log2(rank + 1));
        needs ``items`` (:mod:`spectra_eval.analyses.lists`).
    items : DataFrame or dict, optional
        ``item_id, categories`` (labels joined by ``|``), or a dict item id -> category labels.
    history : DataFrame or DistributionTable, optional
        Each user's history distribution: adds ``taste_js``.
    meta : DataFrame, optional
        ``user_id`` (column or index) plus stratum columns: adds per-stratum JS deltas.
    n_resamples, seed, n_bins
        Bootstrap resamples (one paired draw), its seed, ECE bins (``--bootstrap``, ``--seed``, ``--bins``).
    **options
        Passed to :func:`spectra_eval.evaluation.evaluate` (``confidence``, ``mass_ks``, ``alpha``,
        ``strata_quantiles``).
    """
    preds = dict(preds or {})
    lists = dict(lists or {})
    if not preds and not lists:
        raise SpectraInputError("give at least one method table (preds) or recommendation list (lists)")
    taken = set(preds) & set(lists)
    if taken:
        raise SpectraInputError(f"lists: method name {sorted(taken)[0]!r} is also a name in preds")
    if lists and items is None:
        raise SpectraInputError("lists need items (item_id, categories)")
    if items is not None and not lists:
        raise SpectraInputError("items is only used with lists")
    names = list(preds) + list(lists)
    if reference is None:
        if len(names) != 1:
            raise SpectraInputError(f"reference: name the method every other one is compared with "
                                    f"(one of {', '.join(names)})")
        reference = names[0]
    truth_table = as_table(truth, "truth")
    tables = {name: as_table(table, f"preds[{name!r}]", like=truth_table) for name, table in preds.items()}
    if lists:
        item_map = _items(items, truth_table.categories)
        tables |= {name: list_distributions(user_frame(frame, f"lists[{name!r}]"), item_map, truth_table.categories,
                                            list_weights, source=f"lists[{name!r}]", items_source="items")
                   for name, frame in lists.items()}
    return _evaluate(truth_table, tables, reference, n_resamples=n_resamples, seed=seed, n_bins=n_bins,
                     meta=None if meta is None else user_frame(meta, "meta"), meta_source="meta",
                     history=None if history is None else as_table(history, "history", like=truth_table),
                     lists={name: {"items": "items", "weights": list_weights} for name in lists}, **options)


def _items(items: pd.DataFrame | Mapping[str, Sequence[str]] | None,
           categories: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The items argument as ``item id -> category labels``, checked like an items file."""
    if isinstance(items, pd.DataFrame):
        frame = items if ITEM_COL in items.columns else user_frame(items, "items", key=ITEM_COL)
    elif isinstance(items, Mapping):
        frame = pd.DataFrame({ITEM_COL: [str(i) for i in items],
                              "categories": ["|".join(map(str, labels)) for labels in items.values()]})
    else:
        raise SpectraInputError(f"items: expected a DataFrame (item_id, categories) or a dict, got "
                                f"{type(items).__name__}")
    return items_from_frame(frame, categories, "items")


def certify(truth: Table | None, probe: Table, dg: Table, *, counts: CountTable | pd.DataFrame | None = None,
            **options: Any) -> Certificate:
    """Certify that the probe beats direct generation (DG), per user and for the population; ``spectra certify``
    in Python.

    ``truth`` is each user's observed future mix (may be None when ``counts`` is given: then counts / n_u);
    ``probe`` and ``dg`` have the truth's users and categories; ``counts`` (a DataFrame of non-negative integers,
    ``user_id`` column or index) adds the latent certificates. ``options`` go to
    :func:`spectra_eval.certificates.observed.certify` (``alpha``, ``k``, ``routes``, ``tau``, ``certificate``,
    ``beta``, ``allow_invalid``, ...).
    """
    count_table = None if counts is None else as_counts(counts, "counts")
    truth_table = None if truth is None else as_table(truth, "truth", like=count_table)
    like = count_table if count_table is not None else truth_table
    if like is None:
        raise SpectraInputError("certify needs truth or counts")
    return _certify(truth_table, as_table(probe, "probe", like=like), as_table(dg, "dg", like=like),
                    counts=count_table, **options)


def fuse(candidates: Candidates | pd.DataFrame, spectra: Table, items: ItemCategories | pd.DataFrame,
         popularity: pd.DataFrame | pd.Series, *, select_on: Candidates | pd.DataFrame | None = None,
         name: str = DEFAULT_NAME, backbone: str | None = None, **options: Any) -> FusionResult:
    """Fuse SPECTRA as a category prior into a base ranker's candidate scores (paper Appendix E); ``spectra fuse``
    in Python.

    Parameters
    ----------
    candidates : DataFrame
        ``user_id, item_id, score, label`` (label 1 = held out): the population every number is about.
    spectra : DataFrame or DistributionTable
        One distribution per user (every candidate user in it).
    items : DataFrame
        ``item_id, category`` (one row per item and category) or ``item_id, categories`` (joined by ``|``).
    popularity : DataFrame or Series
        ``item_id, count`` (training interactions per item), or a Series of counts indexed by item id.
    select_on : DataFrame, optional
        Validation candidates to choose ``best_lambda`` on (default: the candidates themselves, labelled so).
    name, backbone
        Run name (``save`` writes ``fusion-NAME.json``; default ``fusion.json``) and base ranker label.
    **options
        Passed to :func:`spectra_eval.analyses.fusion.fuse` (``lambdas``, ``k``, ``n_resamples``, ``seed``,
        ``confidence``, ``progress``).
    """
    if name != DEFAULT_NAME:
        output_name(name)  # a name that cannot be a file name fails before any work
    spectra_table = as_table(spectra, "spectra")
    item_categories = (items if isinstance(items, ItemCategories)
                       else item_categories_from_frame(_frame(items, "items"), spectra_table.categories, "items"))
    if isinstance(popularity, pd.Series):
        popularity = popularity.rename_axis(ITEM_COL).reset_index(name="count")
    candidate_table = _candidates(candidates, "candidates")
    return _fuse(candidate_table, spectra_table, item_categories,
                 popularity_series(_frame(popularity, "popularity"), "popularity"),
                 select_on=None if select_on is None else _candidates(select_on, "select_on"), name=name,
                 backbone=backbone or (name if name != DEFAULT_NAME else "base"),
                 sources={"candidates": candidate_table.source, "spectra": spectra_table.source,
                          "items": item_categories.source, "popularity": "popularity"}, **options)


def _frame(data: Any, source: str) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise SpectraInputError(f"{source}: expected a pandas DataFrame, got {type(data).__name__}")
    return data


def _candidates(data: Candidates | pd.DataFrame, source: str) -> Candidates:
    return data if isinstance(data, Candidates) else candidates_from_frame(_frame(data, source), source)


def steer(base: Table, steered: Table, requests: Requests | pd.DataFrame, *, truth: Table | None = None,
          **options: Any) -> SteeringResult:
    """Steerability of probed distributions under stated preferences; ``spectra steer`` in Python.

    ``base`` has one distribution per user (the unsteered probe); ``steered`` one per request, keyed by request
    id (a ``request_id`` or ``user_id`` column, or the index); ``requests`` has ``request_id, user_id, target,
    direction, granularity`` (optionally ``form``); ``truth`` (optional) only sets the head/mid/tail buckets.
    ``options`` go to :func:`spectra_eval.analyses.steering.steer` (``n_resamples``, ``seed``, ``confidence``).
    """
    base_table = as_table(base, "base")
    if isinstance(requests, Requests):
        request_table = requests
        request_table.check_targets(base_table.categories, base_table.source)
    else:
        request_table = requests_from_frame(_frame(requests, "requests"), base_table.categories,
                                            categories_source=base_table.source, source="requests")
    if isinstance(steered, pd.DataFrame) and USER_COL not in steered.columns and "request_id" in steered.columns:
        steered = steered.rename(columns={"request_id": USER_COL})
    return _steer(base_table, as_table(steered, "steered", like=base_table), request_table,
                  truth=None if truth is None else as_table(truth, "truth", like=base_table), **options)
