"""History -> context text, the one textualisation used by training (CPT, SFT) and probing.

A context lists the user's history items one per line, oldest first and most recent last::

    Toy Story (1995) [Animation, Children's, Comedy]
    GoldenEye (1995) [Action, Adventure, Thriller]

(:data:`ITEM_TEMPLATE`; the year and the bracket are left out when unknown). With a token budget, items are
dropped from the OLDEST end until the whole context encodes to at most ``budget`` tokens; the check is on
the exact joined text (BPE merges need not be additive), so ``count(context) <= budget`` always holds. The
prompt templates of :mod:`spectra_probe.templates` wrap this text (a fixed overhead on top of the budget).

This module imports neither torch nor transformers; a tokenizer is only used through ``encode``
(:func:`load_tokenizer_file` reads a model's ``tokenizer.json`` with the ``tokenizers`` package).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from spectra_eval.validation import SpectraInputError

log = logging.getLogger(__name__)

ITEM_TEMPLATE = "{title}{year} [{categories}]"
LINE_SEPARATOR = "\n"


def item_line(title: str, year=None, categories: Sequence[str] = ()) -> str:
    """One item as text: ``'Toy Story (1995) [Animation, Comedy]'``."""
    year_text = f" ({int(year)})" if year is not None and not pd.isna(year) else ""
    title = " ".join(str(title).split())  # one line per item, whatever the title holds
    line = ITEM_TEMPLATE.format(title=title, year=year_text, categories=", ".join(categories))
    return line.replace(" []", "")


def item_lines(items: pd.DataFrame) -> pd.Series:
    """Text line per item of an item table (``item_id, title, year, categories``), indexed by item_id."""
    lines = [item_line(t, y, c) for t, y, c in zip(items["title"], items["year"], items["categories"])]
    return pd.Series(lines, index=items["item_id"].astype(str).to_numpy(), dtype=object)


TOKENIZER_FILE = "tokenizer.json"


def load_tokenizer_file(path: str | os.PathLike):
    """A ``tokenizers.Tokenizer`` from ``tokenizer.json`` or a model directory holding one (no torch, no
    transformers): the same token counts as the model's fast tokenizer without special tokens."""
    path = Path(path)
    file = path / TOKENIZER_FILE if path.is_dir() else path
    if not file.is_file():
        raise SpectraInputError(f"{path}: no {TOKENIZER_FILE} (give the file or the model directory holding it)")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise SpectraInputError(f"{file}: reading a tokenizer file needs the 'tokenizers' package "
                                "(pip install tokenizers)") from None
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise SpectraInputError(f"{file}: not a tokenizers file ({str(exc).splitlines()[0]})") from None


def token_counter(tokenizer_or_fn) -> Callable[[str], int] | None:
    """A ``str -> int`` token counter from a callable or a tokenizer (``encode`` without special tokens)."""
    if tokenizer_or_fn is None:
        return None
    if hasattr(tokenizer_or_fn, "encode"):
        tok = tokenizer_or_fn

        def count(text: str) -> int:
            try:
                return len(tok.encode(text, add_special_tokens=False))
            except TypeError:  # a plain `tokenizers.Tokenizer`
                return len(tok.encode(text).ids)

        return count
    if callable(tokenizer_or_fn):
        return tokenizer_or_fn
    raise SpectraInputError("token budget needs a tokenizer (with .encode) or a str -> int function")


def fit_to_budget(lines: Sequence[str], budget: int | None, count: Callable[[str], int] | None) -> str:
    """Join the most recent ``lines`` (the list is oldest first) so the text has at most ``budget`` tokens.

    Binary search on how many trailing lines fit, then a downward check on the exact joined text. When not
    even the most recent line fits, that line is cut (characters from its end) to the longest prefix that
    fits, so a context is never empty unless the budget cannot hold a single character.
    """
    if budget is None or count is None:
        return LINE_SEPARATOR.join(lines)
    lines = list(lines)

    def fits(k: int) -> bool:
        return k == 0 or count(LINE_SEPARATOR.join(lines[len(lines) - k:])) <= budget

    if fits(len(lines)):
        return LINE_SEPARATOR.join(lines)
    lo, hi = 0, len(lines)  # fits(lo) is True, fits(hi) is False
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    while lo > 0 and not fits(lo):  # guard against a non-monotone count
        lo -= 1
    if lo:
        return LINE_SEPARATOR.join(lines[len(lines) - lo:])
    last, lo, hi = lines[-1], 0, len(lines[-1])  # longest prefix of the newest line that fits
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(last[:mid]) <= budget else (lo, mid)
    cut = last[:lo].rstrip()
    return cut if cut and count(cut) <= budget else (last[:lo] if lo and count(last[:lo]) <= budget else "")


def textualize(history: pd.DataFrame, items: pd.DataFrame, *, users: Sequence[str] | np.ndarray | None = None,
               budget: int | None = None, tokenizer=None, progress: bool = False) -> pd.DataFrame:
    """Context text per user: ``DataFrame(user_id, context, n_items)`` for ``spectra probe --contexts``.

    Parameters
    ----------
    history : DataFrame
        Interaction rows with ``user_id`` and ``item_id``, each user's rows in chronological order (as in
        :attr:`spectra_eval.data.splits.Split.history` or :attr:`~spectra_eval.data.splits.ContextRecords.history`).
    items : DataFrame
        Item table (``item_id, title, year, categories``) giving each item's line.
    users : sequence of str, optional
        Output order (default: order of first appearance); a user without history gets an empty context.
    budget, tokenizer
        Token budget and a tokenizer or ``str -> int`` counter; items are dropped from the oldest end.
    """
    lines = item_lines(items)
    ids = history["item_id"].astype(str)
    pos = pd.Index(lines.index).get_indexer(ids)
    if (pos < 0).any():
        raise SpectraInputError(f"history: item {ids.iloc[int(np.flatnonzero(pos < 0)[0])]!r} is not in the item table")
    text = lines.to_numpy()[pos]
    count = token_counter(tokenizer)
    if budget is not None and count is None:
        raise SpectraInputError("a token budget needs a tokenizer or a token-count function")
    if budget is not None and budget < 1:
        raise SpectraInputError(f"token budget must be positive, got {budget}")
    grouped = pd.Series(text, index=history["user_id"].astype(str).to_numpy()).groupby(level=0, sort=False)
    per_user = {u: list(v) for u, v in grouped}
    order = list(per_user) if users is None else [str(u) for u in users]
    iterator = order
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(order, desc="textualise", unit="user")
    contexts, kept = [], []
    for u in iterator:
        user_lines = per_user.get(u, [])
        context = fit_to_budget(user_lines, budget, count)
        contexts.append(context)
        kept.append(0 if not context else context.count(LINE_SEPARATOR) + 1)
    if budget is not None:
        log.info("textualised %d users within %d tokens (mean %.1f items kept)", len(order), budget, np.mean(kept))
    return pd.DataFrame({"user_id": order, "context": contexts, "n_items": kept})
