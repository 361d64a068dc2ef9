r"""Hierarchical (two-level) probing with the chain rule of the paper's Eq. 2.

A hierarchy file is a JSON object ``{"L1 label": ["L2 label", ...], ...}`` whose lists partition the
categories file (every category under exactly one L1 parent; the output columns are the L2 categories in the
categories file's order). For a user with context x:

1. **L1 probe.** A yes/no probe per L1 parent (the shared prefix is the user's context) gives scores
   :math:`S^{(1)}` and :math:`\theta(g) = \operatorname{softmax}(S^{(1)}/\tau)_g`.
2. **Branch choice** :math:`\mathcal G` (per user): ``all`` parents; ``top`` = the B parents of highest
   :math:`\theta(g)` (relevance); ``tail`` = the B parents of *lowest* mass (long-tail exploration);
   ``mix`` = the ceil(B/2) highest plus the floor(B/2) lowest. Ties go to file order.
3. **L2 probe within each chosen branch.** The prefix is the user's context followed by the branch line
   (``branch_prefix``), shared by that branch's children; :math:`\theta(c \mid g) =
   \operatorname{softmax}(S^{(2)}_{g}/\tau)_c` over the children of g.
4. **Chain rule.** :math:`\theta(c) = \theta(g)\,\theta(c \mid g)` for c in a chosen branch g. A branch that
   is not expanded keeps its L1 mass, spread uniformly over its children: :math:`\theta(c) = \theta(g)/|g|`.
   Hence every row sums to 1 whatever the branch choice.

Raw scores: one column per L2 category (:math:`S^{(2)}`, NaN where the branch was not expanded) followed by
one column ``"L1:<parent>"`` per parent (:math:`S^{(1)}`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spectra_eval.validation import SpectraInputError
from spectra_probe.scorers import BatchScores, YesNoScorer, softmax_tau

BRANCH_MODES = ("all", "top", "tail", "mix")
L1_PREFIX = "L1:"


@dataclass(frozen=True)
class Hierarchy:
    parents: tuple[str, ...]  # L1 labels, file order
    children: tuple[tuple[int, ...], ...]  # per parent: column indices into the categories, categories-file order
    source: str = "<memory>"

    def to_dict(self, categories: Sequence[str]) -> dict:
        return {p: [categories[j] for j in kids] for p, kids in zip(self.parents, self.children)}


def _no_duplicate_keys(source: str):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        for k in keys:
            if keys.count(k) > 1:
                raise SpectraInputError(f"{source}: L1 label {k!r} appears more than once")
        return dict(pairs)

    return hook


def build_hierarchy(mapping: dict, categories: Sequence[str], source: str = "<memory>") -> Hierarchy:
    """Check that ``mapping`` (L1 -> list of L2) partitions ``categories``; return column indices per parent."""
    if not isinstance(mapping, dict) or not mapping:
        raise SpectraInputError(f"{source}: expected a non-empty JSON object {{L1: [L2, ...]}}")
    index = {c: j for j, c in enumerate(categories)}
    owner: dict[str, str] = {}
    children = []
    for parent, kids in mapping.items():
        if not isinstance(kids, list) or not kids or not all(isinstance(k, str) for k in kids):
            raise SpectraInputError(f"{source}: L1 {parent!r} must map to a non-empty list of category labels")
        for kid in kids:
            if kid not in index:
                raise SpectraInputError(f"{source}: L2 {kid!r} under L1 {parent!r} is not in the categories file")
            if kid in owner:
                raise SpectraInputError(f"{source}: category {kid!r} is under both {owner[kid]!r} and {parent!r}")
            owner[kid] = parent
        children.append(tuple(sorted(index[k] for k in kids)))
    missing = [c for c in categories if c not in owner]
    if missing:
        raise SpectraInputError(f"{source}: category {missing[0]!r} of the categories file is under no L1 label")
    clash = [p for p in mapping if L1_PREFIX + p in index]
    if clash:
        raise SpectraInputError(f"{source}: category {L1_PREFIX + clash[0]!r} clashes with the L1 score column names")
    return Hierarchy(tuple(str(p) for p in mapping), tuple(children), source)


def load_hierarchy(path: str | os.PathLike, categories: Sequence[str]) -> Hierarchy:
    path = Path(path)
    if not path.is_file():
        raise SpectraInputError(f"{path}: no such hierarchy file")
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys(str(path)))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpectraInputError(f"{path}: not valid JSON ({exc})") from None
    return build_hierarchy(mapping, categories, source=str(path))


def choose_branches(theta_l1: np.ndarray, mode: str = "all", n_branches: int | None = None) -> list[np.ndarray]:
    """Per user, the indices of the L1 branches to expand (rules in the module docstring)."""
    n_users, k1 = theta_l1.shape
    if mode not in BRANCH_MODES:
        raise SpectraInputError(f"branch choice must be one of {', '.join(BRANCH_MODES)}, got {mode!r}")
    if mode == "all":
        return [np.arange(k1)] * n_users
    if n_branches is None or not 1 <= n_branches:
        raise SpectraInputError(f"branch choice {mode!r} needs --branches-b >= 1")
    b = min(n_branches, k1)
    desc = np.argsort(-theta_l1, axis=1, kind="stable")
    asc = np.argsort(theta_l1, axis=1, kind="stable")
    if mode == "top":
        return [np.sort(row[:b]) for row in desc]
    if mode == "tail":
        return [np.sort(row[:b]) for row in asc]
    n_top = math.ceil(b / 2)
    out = []
    for hi, lo in zip(desc, asc):
        chosen = list(hi[:n_top])
        chosen += [g for g in lo if g not in chosen][: b - n_top]
        out.append(np.sort(np.asarray(chosen, dtype=int)))
    return out


class HierarchicalScorer:
    """L1 yes/no probe, then L2 probes within the chosen branches; theta by the chain rule (Eq. 2)."""

    method = "yesno"

    def __init__(self, l1: YesNoScorer, categories: Sequence[str], hierarchy: Hierarchy, *,
                 branches: str = "all", n_branches: int | None = None):
        choose_branches(np.full((1, len(hierarchy.parents)), 1.0), branches, n_branches)  # validate early
        self.l1 = l1
        self.categories = tuple(categories)
        self.hierarchy = hierarchy
        self.branches = branches
        self.n_branches = n_branches
        self.tau = l1.tau
        self._l2_suffixes = tuple(tuple(l1.suffix(self.categories[j]) for j in kids) for kids in hierarchy.children)

    @property
    def score_columns(self) -> tuple[str, ...]:
        return self.categories + tuple(L1_PREFIX + p for p in self.hierarchy.parents)

    def score_batch(self, backend, contexts: Sequence[str]) -> BatchScores:
        h, l1 = self.hierarchy, self.l1
        results = backend.score([l1.request(l1.prefix(c)) for c in contexts])
        s1 = np.stack([l1.reduce(r) for r in results])
        theta1 = softmax_tau(s1, self.tau)
        fallback = [int(np.asarray(r.fallback).sum()) for r in results]
        chosen = choose_branches(theta1, self.branches, self.n_branches)

        jobs = [(u, g) for u, gs in enumerate(chosen) for g in gs]
        reqs = [l1.request(l1.prefix(contexts[u], parent=h.parents[g]), self._l2_suffixes[g]) for u, g in jobs]
        results2 = backend.score(reqs) if reqs else []

        n, k = len(contexts), len(self.categories)
        s2 = np.full((n, k), np.nan)
        probs = np.zeros((n, k))
        for g, kids in enumerate(h.children):  # unexpanded branches: L1 mass spread uniformly
            probs[:, kids] = theta1[:, [g]] / len(kids)
        for (u, g), r in zip(jobs, results2):
            kids = list(h.children[g])
            s2[u, kids] = l1.reduce(r)
            probs[u, kids] = theta1[u, g] * softmax_tau(s2[u, kids], self.tau)
            fallback[u] += int(np.asarray(r.fallback).sum())
        info = tuple({"fallback": f, "branches": [h.parents[g] for g in gs]} for f, gs in zip(fallback, chosen))
        return BatchScores(np.concatenate([s2, s1], axis=1), probs, info)

    def describe(self) -> dict:
        return {
            **self.l1.describe(),
            "hierarchical": True,
            "branch_choice": self.branches,
            "n_branches": self.n_branches,
            "n_l1": len(self.hierarchy.parents),
            "hierarchy_file": self.hierarchy.source,
        }
