"""Scorers: per-user raw category scores S and the probe distribution theta = softmax(S / tau).

One module per method, each importing only :mod:`~spectra_probe.scoring.base` (and the templates and the
backend interface); :data:`SCORERS` maps ``--method`` names to their classes, imported when first used:

========== ============================================ ================================================
method     class                                        reads
========== ============================================ ================================================
yesno      :class:`~.yesno.YesNoScorer`                 next-token logits of the verbalizers (Eq. 1)
name       :class:`~.name.NameScorer`                   log-likelihood of each category's name
choice     :class:`~.choice.ChoiceScorer`               one multi-choice prompt (Algorithm 2)
dg         :class:`~.dg.DirectGeneration`               a generated top-k list (baseline)
reranker   :class:`~.reranker.RerankerScorer`           Qwen3-Reranker yes/no log-odds (baseline)
========== ============================================ ================================================

``--hierarchy`` wraps a scorer whose class is ``hierarchical`` (yes/no) in
:class:`~.hierarchy.HierarchicalScorer` (two-level probing, Eq. 2).

Adding a method: write ``scoring/<method>.py`` with a :class:`~.base.Scorer` subclass built as
``Class(categories, builder, options)``, and add one line to :data:`SCORERS`; the CLI's ``--method``
choices, the runner, checkpoints and the manifest pick it up.
"""
from __future__ import annotations

from typing import Sequence

from spectra_eval.validation import SpectraInputError
from spectra_probe.registry import Registry

from .base import BatchScores, Scorer, ScorerOptions, softmax_tau
from .hierarchy import HierarchicalScorer, Hierarchy, load_hierarchy

__all__ = ["SCORERS", "make_scorer", "scorer_class", "BatchScores", "Scorer", "ScorerOptions",
           "softmax_tau", "Hierarchy", "HierarchicalScorer", "load_hierarchy"]

SCORERS = Registry("method", {
    "yesno": "spectra_probe.scoring.yesno:YesNoScorer",
    "name": "spectra_probe.scoring.name:NameScorer",
    "choice": "spectra_probe.scoring.choice:ChoiceScorer",
    "dg": "spectra_probe.scoring.dg:DirectGeneration",
    "reranker": "spectra_probe.scoring.reranker:RerankerScorer",
})


def scorer_class(method: str) -> type[Scorer]:
    """The scorer class registered for ``method`` (imported on first use)."""
    return SCORERS.load(method)


def make_scorer(method: str, categories: Sequence[str], builder, options: ScorerOptions = ScorerOptions(),
                hierarchy: Hierarchy | None = None) -> Scorer:
    """The scorer for ``method`` over ``categories``; with a ``hierarchy``, its two-level (Eq. 2) form."""
    cls = scorer_class(method)
    if hierarchy is None:
        return cls(categories, builder, options)
    if not cls.hierarchical:
        usable = [m for m in SCORERS.names() if scorer_class(m).hierarchical]
        raise SpectraInputError(f"--hierarchy works with --method {' or '.join(usable)} only, not {method!r}")
    return HierarchicalScorer(cls(hierarchy.parents, builder, options), categories, hierarchy, options)
