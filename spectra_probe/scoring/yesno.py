r"""Yes/no verbalizer probing (the paper's Eq. 1 / Algorithm 1).

.. math:: S_j = \frac{1}{|V_+|}\sum_{v\in V_+} z_j[v] - \frac{1}{|V_-|}\sum_{v\in V_-} z_j[v],

where :math:`z_j` are the next-token logits after the probe prompt of category j (prefix ``probe_prefix``
{context}, suffix ``probe_suffix`` {category}). V+ and V- are exactly the words given
(``--verbalizers-yes/--verbalizers-no``, default {Yes, Y, y} / {No, N, n}), each one token of the model's
tokenizer (:func:`~spectra_probe.scoring.base.resolve_verbalizers`); ``--verbalizer-space-variants`` adds
each word's form with a leading space.
"""
from __future__ import annotations

import numpy as np

from .base import ScorerOptions, SuffixScorer, resolve_yes_no


class YesNoScorer(SuffixScorer):
    """Mean V+ logit minus mean V- logit after each category's probe prompt."""

    method = "yesno"
    hierarchical = True

    def __init__(self, categories, builder, options: ScorerOptions = ScorerOptions()):
        self.yes, self.no = resolve_yes_no(builder.tokenizer, options.verbalizers_yes, options.verbalizers_no,
                                           space_variants=options.verbalizer_space_variants)
        self.next_token_ids = tuple(v.token_id for v in self.yes + self.no)
        super().__init__(categories, builder, options)

    def prefix(self, context: str, parent: str | None = None) -> str:
        return self.builder.probe_prefix(context, parent)

    def suffix(self, category: str) -> str:
        return self.builder.probe_suffix(category)

    def reduce(self, result) -> np.ndarray:
        z = np.asarray(result.next_logits, dtype=np.float64)
        n_yes = len(self.yes)
        return z[:, :n_yes].mean(axis=1) - z[:, n_yes:].mean(axis=1)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "verbalizers": {
                "yes": [{"text": v.text, "id": v.token_id} for v in self.yes],
                "no": [{"text": v.text, "id": v.token_id} for v in self.no],
            },
        }
