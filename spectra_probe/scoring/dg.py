"""Direct generation (DG) baseline: greedy-decode a top-k category list, parse it, decode a distribution.

Parsing (:func:`parse_category_list`) is deliberately forgiving, and records how forgiving it had to be:

1. Only the first paragraph of the generation is read (text up to the first blank line): models often go on
   to invent another example after the answer.
2. Category labels that themselves contain a separator (e.g. ``"Active Life, Sports & Recreation"``) are
   recognised first, case-insensitively, so the comma inside them does not split them.
3. The rest is split on commas, semicolons, newlines and ``|``; each item loses list markers (``1.``,
   ``2)``, ``-``, ``*``), quotes, a leading "and"/"or" and trailing punctuation.
4. Items are compared by a key that ignores case, spacing, apostrophes and punctuation. An item matches a category
   *exactly* when the keys are equal; otherwise *partially* when the item's key is a prefix of exactly one
   category key (at least 3 characters) or exactly one category key is a prefix of the item, or else when
   :func:`difflib.get_close_matches` finds a category with similarity >= ``cutoff`` (default 0.8).
5. Unknown items are dropped, repeated categories keep their first position, and the list is cut to ``k``.

The per-user outcome is ``"exact"`` (every item matched exactly; repeats and items beyond k aside),
``"partial"`` (at least one category, but some item needed a fuzzy/prefix match or was dropped) or
``"empty"`` (no category found). The
distribution is :func:`spectra_eval.data.decoders.decode_lists` (uniform on the decoded list by default; an empty
list decodes to the uniform distribution over all K, as documented there).

Raw "scores" are text (:attr:`DirectGeneration.text_scores`): the generation, the parsed list (JSON) and the
parse outcome per user; the manifest's ``dg_parse`` block sums the outcomes over the cohort.
"""
from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from spectra_eval.data.decoders import decode_lists

from .base import BatchScores, Scorer, ScorerOptions

_SEPARATORS = re.compile(r"[,;\n|]")
_MARKER = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s*")
_LEAD_WORD = re.compile(r"^(?:and|or)\s+", re.IGNORECASE)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_APOSTROPHES = re.compile(r"['\u2019`]")
PARTIAL_MIN_CHARS = 3


def normalise(text: str) -> str:
    """Matching key: case-folded, apostrophes dropped, other non-alphanumeric runs made one space, trimmed."""
    return _NON_ALNUM.sub(" ", _APOSTROPHES.sub("", text.casefold())).strip()


@dataclass(frozen=True)
class ParseResult:
    """One user's parsed generation."""

    labels: tuple[str, ...]  # matched categories, in generated order, deduplicated, at most k
    outcome: str  # 'exact' | 'partial' | 'empty'
    n_items: int  # non-empty items found in the text
    n_exact: int
    n_partial: int
    n_unknown: int
    n_duplicate: int
    n_truncated: int  # matched categories beyond k

    def to_dict(self) -> dict:
        return {
            "parsed": list(self.labels),
            "outcome": self.outcome,
            "n_items": self.n_items,
            "n_exact": self.n_exact,
            "n_partial": self.n_partial,
            "n_unknown": self.n_unknown,
            "n_duplicate": self.n_duplicate,
            "n_truncated": self.n_truncated,
        }


class CategoryMatcher:
    """Match free-text items to a fixed label set (built once, reused for every user)."""

    def __init__(self, categories: Sequence[str], cutoff: float = 0.8):
        self.categories = tuple(categories)
        self.cutoff = cutoff
        self.keys = [normalise(c) for c in self.categories]
        self._by_key = {}
        for i, key in enumerate(self.keys):
            self._by_key.setdefault(key, i)
        # labels containing a separator, longest first, found before splitting
        with_sep = [i for i, c in enumerate(self.categories) if _SEPARATORS.search(c)]
        with_sep.sort(key=lambda i: -len(self.categories[i]))
        self._protected = [(i, re.compile(re.escape(self.categories[i]), re.IGNORECASE)) for i in with_sep]

    def match(self, item: str) -> tuple[int | None, str]:
        """Return (category index or None, 'exact' | 'partial' | 'unknown') for one item."""
        key = normalise(item)
        if key in self._by_key:
            return self._by_key[key], "exact"
        starts = [i for i, k in enumerate(self.keys) if len(key) >= PARTIAL_MIN_CHARS and k.startswith(key)]
        if len(starts) == 1:
            return starts[0], "partial"
        within = [i for i, k in enumerate(self.keys) if k and key.startswith(k + " ")]
        if within:  # the longest category name that the item starts with ("comedy films" -> "Comedy")
            return max(within, key=lambda i: len(self.keys[i])), "partial"
        close = difflib.get_close_matches(key, self.keys, n=1, cutoff=self.cutoff)
        if close:
            return self._by_key[close[0]], "partial"
        return None, "unknown"

    def split(self, text: str) -> list[str | int]:
        """First paragraph of ``text`` split into items; protected labels come back as their index."""
        text = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0] if text.strip() else ""
        found: dict[str, int] = {}
        for i, pattern in self._protected:
            def _hold(m, i=i):
                token = f"\x00{len(found)}\x00"
                found[token] = i
                return token

            text = pattern.sub(_hold, text)
        items: list[str | int] = []
        for raw in _SEPARATORS.split(text):
            for piece in re.split(r"(\x00\d+\x00)", raw):
                if piece in found:
                    items.append(found[piece])
                    continue
                piece = _LEAD_WORD.sub("", _MARKER.sub("", piece.strip())).strip(" \t\"'`*.:!?()[]")
                if piece:
                    items.append(piece)
        return items


def parse_category_list(text: str, matcher: CategoryMatcher, k: int) -> ParseResult:
    """Parse one generated list against ``matcher``'s categories (rules in the module docstring)."""
    counts: Counter = Counter()
    chosen: list[int] = []
    items = matcher.split(text)
    for item in items:
        idx, kind = (item, "exact") if isinstance(item, int) else matcher.match(item)
        counts[kind] += 1
        if idx is None:
            continue
        if idx in chosen:
            counts["duplicate"] += 1
            continue
        chosen.append(idx)
    truncated = max(0, len(chosen) - k)
    chosen = chosen[:k]
    if not chosen:
        outcome = "empty"
    elif counts["partial"] or counts["unknown"]:
        outcome = "partial"
    else:
        outcome = "exact"
    return ParseResult(
        labels=tuple(matcher.categories[i] for i in chosen),
        outcome=outcome,
        n_items=len(items),
        n_exact=counts["exact"],
        n_partial=counts["partial"],
        n_unknown=counts["unknown"],
        n_duplicate=counts["duplicate"],
        n_truncated=truncated,
    )


_COUNTS = ("n_items", "n_exact", "n_partial", "n_unknown", "n_duplicate", "n_truncated")
OUTCOMES = ("exact", "partial", "empty")


def summarise(results: Sequence[dict]) -> dict:
    """Cohort summary of per-user parse dictionaries (:meth:`ParseResult.to_dict`) for the run manifest."""
    outcomes = Counter(r["outcome"] for r in results)
    n = len(results)
    return {
        "n_users": n,
        "outcomes": {o: int(outcomes.get(o, 0)) for o in OUTCOMES},
        "mean_list_length": float(sum(len(r["parsed"]) for r in results) / n) if n else None,
        **{key: int(sum(r[key] for r in results)) for key in _COUNTS},
    }


def merge_summaries(summaries: Sequence[dict]) -> dict:
    """The :func:`summarise` of a cohort from the summaries of its disjoint parts (shards)."""
    summaries = list(summaries)
    n = sum(s["n_users"] for s in summaries)
    lengths = sum(s["mean_list_length"] * s["n_users"] for s in summaries if s["n_users"])
    return {
        "n_users": n,
        "outcomes": {o: sum(s["outcomes"][o] for s in summaries) for o in OUTCOMES},
        "mean_list_length": lengths / n if n else None,
        **{key: sum(s[key] for s in summaries) for key in _COUNTS},
    }


def decode(lists: Sequence[Sequence[str]], categories: Sequence[str], scheme: str = "uniform"):
    """Distribution of each decoded list via the evaluation core's DG decoders."""
    return decode_lists([list(x) for x in lists], list(categories), scheme=scheme)


class DirectGeneration(Scorer):
    """DG baseline: greedy top-k list per user, parsed and decoded to a distribution."""

    method = "dg"
    text_scores = True
    summary_key = "dg_parse"
    score_columns = ("generated", "parsed", "outcome")

    def __init__(self, categories: Sequence[str], builder, options: ScorerOptions = ScorerOptions()):
        self.categories = tuple(categories)
        self.builder = builder
        self.k = options.k
        self.max_new_tokens = options.max_new_tokens
        self.scheme = options.dg_scheme
        self.matcher = CategoryMatcher(self.categories, options.dg_cutoff)

    def score_batch(self, backend, contexts: Sequence[str]) -> BatchScores:
        prompts = [self.builder.dg_prompt(c, self.k, self.categories) for c in contexts]
        texts = backend.generate(prompts, self.max_new_tokens)
        parsed = [parse_category_list(t, self.matcher, self.k) for t in texts]
        probs = np.asarray(decode([p.labels for p in parsed], self.categories, self.scheme), dtype=np.float64)
        scores = np.array([[t, json.dumps(list(p.labels)), p.outcome] for t, p in zip(texts, parsed)], dtype=object)
        return BatchScores(scores.reshape(len(texts), 3), probs, tuple(p.to_dict() for p in parsed))

    def describe(self) -> dict:
        return {"method": self.method, "k": self.k, "max_new_tokens": self.max_new_tokens,
                "fuzzy_cutoff": self.matcher.cutoff, "decoder": self.scheme}

    summarise = staticmethod(summarise)
    merge_summaries = staticmethod(merge_summaries)

    @staticmethod
    def summary_text(summary: dict) -> str:
        return f"parse outcomes: {summary['outcomes']}"
