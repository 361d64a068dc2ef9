r"""Category-name likelihood.

.. math:: S_j = \sum_t \log p(y_{j,t} \mid \text{prefix}, y_{j,<t})

over the tokens of the rendered name suffix (``--name-reduce sum``: softmax(S) with tau = 1 is the name
likelihood renormalised over the K names), or that sum divided by the suffix's token count (``mean``,
length-normalised). The default suffix ``" {category}\n"`` ends with a terminator so the score is that of the
*complete* name ("Action" does not absorb the mass of "Action & Adventure").
"""
from __future__ import annotations

import numpy as np

from .base import ScorerOptions, SuffixScorer


class NameScorer(SuffixScorer):
    """Sum (or per-token mean) of the name suffix's token log-probabilities."""

    method = "name"

    def __init__(self, categories, builder, options: ScorerOptions = ScorerOptions()):
        self.reduction = options.name_reduce
        super().__init__(categories, builder, options)

    def prefix(self, context: str) -> str:
        return self.builder.name_prefix(context)

    def suffix(self, category: str) -> str:
        return self.builder.name_suffix(category)

    def reduce(self, result) -> np.ndarray:
        if self.reduction == "mean":
            return np.asarray(result.suffix_mean_logprob, dtype=np.float64)
        return np.asarray(result.suffix_logprob, dtype=np.float64)

    def describe(self) -> dict:
        return {**super().describe(), "name_reduce": self.reduction}
