r"""Hierarchical (two-level) probing with the chain rule of the paper's Eq. 2.

A hierarchy file is a JSON object ``{"L1 label": ["L2 label", ...], ...}``, read by
:func:`spectra_eval.data.taxonomy.read_hierarchy` and labelled by :func:`spectra_eval.data.taxonomy.hierarchy_labels`
at level 'l2', exactly as ``load_yelp(..., level="l2")`` labels the data: an L2 name under one L1 is its own
label, one under several L1s is ``"L1 > L2"`` under each. So both the raw Yelp hierarchy JSON and the
partition ``hierarchy.json`` that ``spectra train --export`` writes for two-level data fit the exported
categories. Every category must have exactly one L1 parent and every L1 at least one category (its mass goes
to them); labels of the file that are not in the categories file (a full taxonomy, of which a data set uses
a subset) are left out. The output columns are the L2 categories in the categories file's order. For a user
with context x:

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

import logging
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from spectra_eval.data.taxonomy import hierarchy_labels, read_hierarchy
from spectra_eval.validation import SpectraInputError

from .base import BRANCH_MODES, BatchScores, Scorer, ScorerOptions, SuffixScorer, softmax_tau

L1_PREFIX = "L1:"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hierarchy:
    parents: tuple[str, ...]  # L1 labels, file order
    children: tuple[tuple[int, ...], ...]  # per parent: column indices into the categories, categories-file order
    source: str = "<memory>"

    def to_dict(self, categories: Sequence[str]) -> dict:
        return {p: [categories[j] for j in kids] for p, kids in zip(self.parents, self.children)}


def build_hierarchy(mapping: dict, categories: Sequence[str], source: str = "<memory>") -> Hierarchy:
    """Place each of ``categories`` under its L1 parent in ``mapping`` (L1 -> list of L2; rules in the module
    docstring); return column indices per parent."""
    if not isinstance(mapping, dict) or not mapping:
        raise SpectraInputError(f"{source}: expected a non-empty JSON object {{L1: [L2, ...]}}")
    for parent, kids in mapping.items():
        if not isinstance(kids, list) or not kids or not all(isinstance(k, str) for k in kids):
            raise SpectraInputError(f"{source}: L1 {parent!r} must map to a non-empty list of category labels")
    _, label_parent = hierarchy_labels(mapping, "l2")  # label -> L1, as load_yelp(level="l2") labels the data
    for c in categories:
        if c not in label_parent:
            owners = [p for p, kids in mapping.items() if c in kids]
            if len(owners) > 1:  # the bare name of an L2 under several L1s: which one is meant?
                raise SpectraInputError(f"{source}: category {c!r} is under both {owners[0]!r} and {owners[1]!r}")
            raise SpectraInputError(f"{source}: category {c!r} of the categories file is under no L1 label")
    index = {c: j for j, c in enumerate(categories)}
    children = []
    for parent in mapping:
        kids = tuple(sorted(index[c] for c, p in label_parent.items() if p == parent and c in index))
        if not kids:
            label = next(c for c, p in label_parent.items() if p == parent)
            raise SpectraInputError(f"{source}: L2 {label!r} under L1 {parent!r} is not in the categories file, "
                                    f"nor is any other L2 of {parent!r} (an L1 needs at least one category)")
        children.append(kids)
    unused = [c for c in label_parent if c not in index]
    if unused:  # a data set covering part of a taxonomy is normal; a typo in a hand-made file should still show
        log.warning("%s: %d hierarchy label(s) not in the categories file are ignored (first: %r)",
                    source, len(unused), unused[0])
    clash = [p for p in mapping if L1_PREFIX + p in index]
    if clash:
        raise SpectraInputError(f"{source}: category {L1_PREFIX + clash[0]!r} clashes with the L1 score column names")
    return Hierarchy(tuple(str(p) for p in mapping), tuple(children), source)


def load_hierarchy(path: str | os.PathLike, categories: Sequence[str]) -> Hierarchy:
    return build_hierarchy(read_hierarchy(path), categories, source=str(path))


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


class HierarchicalScorer(Scorer):
    """L1 probe, then L2 probes within the chosen branches; theta by the chain rule (Eq. 2).

    ``l1`` is a flat scorer over the L1 parents whose class is ``hierarchical`` (yes/no probing): its
    ``prefix(context, parent)`` and category suffixes serve both levels.
    """

    def __init__(self, l1: SuffixScorer, categories: Sequence[str], hierarchy: Hierarchy,
                 options: ScorerOptions = ScorerOptions()):
        self.l1 = l1
        self.method = l1.method
        self.categories = tuple(categories)
        self.hierarchy = hierarchy
        self.branches = options.branches
        self.n_branches = options.n_branches
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
