"""Category taxonomies: a two-level (L1 -> L2) hierarchy file and the labels it gives each level.

Used by the Yelp loader (business categories -> L1 or L2 labels) and by hierarchical probing (L1 then L2
within chosen branches). Only the standard library; errors name the file, line and column.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from spectra_eval.io import require_file
from spectra_eval.validation import SpectraInputError


def read_hierarchy(path: str | os.PathLike) -> dict[str, list[str]]:
    """An L1 -> [L2, ...] hierarchy JSON (``{"Food & Restaurants": ["Pizza", ...], ...}``); an L1 key may
    appear once only."""
    path = require_file(Path(path))

    def no_duplicate_keys(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise SpectraInputError(f"{path}: L1 label {key!r} appears more than once")
            seen.add(key)
        return dict(pairs)

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpectraInputError(f"{path}: not UTF-8 text ({exc})") from None
    try:
        tree = json.loads(text, object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise SpectraInputError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})") from None
    if not isinstance(tree, dict) or not tree:
        raise SpectraInputError(f"{path}: expected a JSON object mapping each L1 label to a list of L2 labels")
    for l1, l2s in tree.items():
        if not isinstance(l2s, list) or not all(isinstance(x, str) and x.strip() for x in l2s):
            raise SpectraInputError(f"{path}: L1 {l1!r}: expected a list of non-empty L2 label strings")
    return {str(k): [s.strip() for s in v] for k, v in tree.items()}


def hierarchy_labels(tree: Mapping[str, Sequence[str]], level: str = "l1") -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Map raw business-category names to labels at ``level`` ('l1' or 'l2').

    At 'l2' a label is the L2 name, or ``"L1 > L2"`` when that name sits under more than one L1 (so the
    labels always partition under their parents). An L1 name used directly as a business category maps to
    itself at 'l1' and to nothing at 'l2'. Returns (name -> labels, label -> parent L1).
    """
    if level not in ("l1", "l2"):
        raise SpectraInputError(f"level must be 'l1' or 'l2', got {level!r}")
    owners: dict[str, list[str]] = {}
    for l1, l2s in tree.items():
        for l2 in dict.fromkeys(l2s):
            owners.setdefault(l2, []).append(l1)
    mapping: dict[str, list[str]] = {}
    parents: dict[str, str] = {}
    for l2, l1s in owners.items():
        for l1 in l1s:
            label = l1 if level == "l1" else (l2 if len(l1s) == 1 else f"{l1} > {l2}")
            parents[label] = l1
            mapping.setdefault(l2, [])
            if label not in mapping[l2]:
                mapping[l2].append(label)
    if level == "l1":
        for l1 in tree:
            mapping.setdefault(l1, [l1])
            parents[l1] = l1
    return {k: tuple(v) for k, v in mapping.items()}, parents
