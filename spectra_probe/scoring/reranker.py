r"""Qwen3-Reranker-style relevance baseline.

Each (user, category) pair is posed in the Qwen3-Reranker prompt format (see
:mod:`spectra_probe.templates`): the query is the user's context, the document the category label, and the
model answers "yes" or "no" after an empty think block. The relevance score is the yes-vs-no log-odds

.. math:: S_{uj} = z_{uj}[\text{yes}] - z_{uj}[\text{no}]
          = \log \frac{p(\text{yes})}{p(\text{no})},

which is what that model family's reference code reads (``log_softmax`` over the two logits; its relevance
probability is the sigmoid of S). The distribution is :math:`\theta_u = \operatorname{softmax}(S_u/\tau)`.
The answer tokens are the tokenizer's single tokens ``"yes"`` and ``"no"`` (no leading space: they follow
``"\n\n"``); a tokenizer without them is an error.
"""
from __future__ import annotations

import numpy as np

from .base import ScorerOptions, SuffixScorer, resolve_yes_no

ANSWERS = ("yes", "no")


class RerankerScorer(SuffixScorer):
    """Yes/no relevance log-odds per (user query, category document)."""

    method = "reranker"

    def __init__(self, categories, builder, options: ScorerOptions = ScorerOptions()):
        yes, no = resolve_yes_no(builder.tokenizer, ANSWERS[:1], ANSWERS[1:],
                                 roles=("reranker answer yes", "reranker answer no"))
        self.answers = yes + no
        self.next_token_ids = tuple(v.token_id for v in self.answers)
        super().__init__(categories, builder, options)

    def prefix(self, context: str) -> str:
        return self.builder.reranker_prefix(context)

    def suffix(self, category: str) -> str:
        return self.builder.reranker_suffix(category)

    def reduce(self, result) -> np.ndarray:
        z = np.asarray(result.next_logits, dtype=np.float64)
        return z[:, 0] - z[:, 1]

    def describe(self) -> dict:
        return {**super().describe(), "answers": [{"text": v.text, "id": v.token_id} for v in self.answers]}
