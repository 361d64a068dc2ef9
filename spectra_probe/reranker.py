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

from spectra_eval.validation import SpectraInputError
from spectra_probe.scorers import SuffixScorer, single_token_id


class RerankerScorer(SuffixScorer):
    """Yes/no relevance log-odds per (user query, category document)."""

    method = "reranker"

    def __init__(self, categories, builder, tau=1.0, *, yes: str = "yes", no: str = "no"):
        ids = [single_token_id(builder.tokenizer, w) for w in (yes, no)]
        for word, tid in zip((yes, no), ids):
            if tid is None:
                raise SpectraInputError(f"reranker: {word!r} is not a single token of the model's tokenizer")
        if ids[0] == ids[1]:
            raise SpectraInputError("reranker: the yes and no answers map to the same token")
        self.answer_words = (yes, no)
        self.next_token_ids = tuple(ids)
        super().__init__(categories, builder, tau)

    def prefix(self, context: str) -> str:
        return self.builder.reranker_prefix(context)

    def suffix(self, category: str) -> str:
        return self.builder.reranker_suffix(category)

    def reduce(self, result) -> np.ndarray:
        z = np.asarray(result.next_logits, dtype=np.float64)
        return z[:, 0] - z[:, 1]

    def describe(self) -> dict:
        return {
            **super().describe(),
            "answers": [{"text": w, "id": i} for w, i in zip(self.answer_words, self.next_token_ids)],
        }
