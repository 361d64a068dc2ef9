"""What a probe run reads, checked before any model loads: contexts, categories, hierarchy, templates, shard,
and steering requests.

:func:`read_inputs` is the one path from the input files to the rows the runner scores (a row key and the
context text its prompts are built from), whichever executor scores them. With requests
(``spectra probe --requests``) a row is a request: its key is the request id and its context the user's
context with the request's preference statement (:meth:`~spectra_probe.templates.PromptTemplates.steered_context`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spectra_eval.io import USER_COL, check_user_ids, read_frame
from spectra_eval.analyses.steering import read_requests
from spectra_eval.validation import SpectraInputError
from spectra_probe.backends.base import sha256_file
from spectra_probe.scoring import Hierarchy, load_hierarchy
from spectra_probe.templates import PromptTemplates

from .shards import parse_shard, shard_rows

CONTEXT_COL = "context"
log = logging.getLogger(__name__)


def read_contexts(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """``user_id`` and ``context`` of a CSV/Parquet file (ids unique and non-empty, contexts non-empty)."""
    frame = read_frame(path, string_columns=(USER_COL, CONTEXT_COL))
    for col in (USER_COL, CONTEXT_COL):
        if col not in frame.columns:
            raise SpectraInputError(f"{path}: no {col!r} column (columns: {', '.join(frame.columns[:8])})")
    if len(frame) == 0:
        raise SpectraInputError(f"{path}: the table has no rows")
    users = check_user_ids(frame, str(path))
    ctx = frame[CONTEXT_COL]
    bad = ctx.isna() | (ctx.astype(str).str.strip() == "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SpectraInputError(f"{path}: user {users[row]!r} (row {row + 1}), column {CONTEXT_COL!r}: empty context")
    return users, [str(c) for c in ctx]


def read_categories(path: str | os.PathLike) -> tuple[str, ...]:
    """Category labels, one per line of a ``.txt`` file (surrounding spaces and blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise SpectraInputError(f"{path}: no such categories file")
    if path.suffix.lower() != ".txt":
        raise SpectraInputError(f"{path}: unknown categories format {path.suffix!r} (use .txt, one label per line)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SpectraInputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    labels: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        label = line.strip()
        if not label:
            continue
        if label in first_line:
            raise SpectraInputError(f"{path}: line {number}: label {label!r} repeats line {first_line[label]}")
        if label == USER_COL:
            raise SpectraInputError(f"{path}: line {number}: {USER_COL!r} cannot be a category label")
        first_line[label] = number
        labels.append(label)
    if not labels:
        raise SpectraInputError(f"{path}: the categories file is empty")
    return tuple(labels)


@dataclass(frozen=True)
class ProbeInputs:
    """The rows of a probe run and what every row is scored against.

    Attributes
    ----------
    users : ndarray of str
        Row keys of this run (its shard), in file order: the ``user_id`` column of every output (request ids
        with requests).
    contexts : list of str
        Per row, the context text the scorer builds its prompts from (steered with requests).
    categories : tuple of str
    hierarchy : Hierarchy or None
    templates : PromptTemplates
    shard : (i, n) or None
    n_users_total : int
        Rows of the run, all shards (users of the contexts file, or requests).
    contexts_sha256 : str
    requests_sha256 : str or None
        The requests file's hash (None without requests).
    """

    users: np.ndarray
    contexts: list[str]
    categories: tuple[str, ...]
    hierarchy: Hierarchy | None
    templates: PromptTemplates
    shard: tuple[int, int] | None
    n_users_total: int
    contexts_sha256: str
    requests_sha256: str | None = None


def read_inputs(config) -> ProbeInputs:
    """Read and check every input file of ``config`` (a :class:`~spectra_probe.run.config.ProbeConfig`)."""
    users, contexts = read_contexts(config.contexts)
    categories = read_categories(config.categories)
    hierarchy = load_hierarchy(config.hierarchy, categories) if config.hierarchy else None
    templates = PromptTemplates.load(config.template) if config.template else PromptTemplates()
    requests_sha256, shard = None, parse_shard(config.shard)
    if config.requests:  # one row per request; only this shard's requests get their steered context rendered
        requests = read_requests(config.requests, categories, categories_source=str(config.categories))
        requests.check_users(users, str(config.contexts))
        text = dict(zip(users, contexts))
        n_total = len(requests.ids)
        rows = shard_rows(n_total, shard)
        contexts = [templates.steered_context(text[requests.users[k]], requests.targets[k], requests.directions[k],
                                              requests.forms[k]) for k in range(n_total)[rows]]
        users, requests_sha256 = requests.ids[rows], sha256_file(config.requests)
        log.info("steering: %d requests of %d users", n_total, len(set(requests.users)))
    else:
        n_total = len(users)
        rows = shard_rows(n_total, shard)
        users, contexts = users[rows], contexts[rows]
    return ProbeInputs(users=users, contexts=contexts, categories=categories, hierarchy=hierarchy, templates=templates,
                       shard=shard, n_users_total=n_total, contexts_sha256=sha256_file(config.contexts),
                       requests_sha256=requests_sha256)
