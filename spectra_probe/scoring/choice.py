r"""Generative classification over one multi-choice prompt (the paper's Algorithm 2).

The prompt lists every category after an answer label (``probe_prefix`` {context}, then ``choice_suffix``
with one ``choice_option`` line per category). Labels are ``A..Z`` then ``AA, AB, ..`` (bijective base 26, as
spreadsheet columns) or ``1..K`` (``--choice-labels numbers``).

* ``token`` mode: S_j is the next-token logit of label j's answer token (every answer, trailing whitespace
  removed, must be one distinct token). Over the label set, next-token logits and log-probabilities differ
  by one constant per user, so theta is the model's answer distribution renormalised over the valid labels.
* ``likelihood`` mode: S_j is the log-likelihood of the full answer text (default ``" {label}\n"``: the
  terminator keeps ``A`` from absorbing ``AA``).
* ``auto`` (default): token mode when every label is a single token, likelihood otherwise (so K > 26 letters,
  or multi-digit numbers under digit-splitting tokenizers, use likelihood).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from spectra_eval.validation import SpectraInputError
from spectra_probe.backends.base import ScoreRequest

from .base import CHOICE_LABELS, BatchScores, Scorer, ScorerOptions, fallback_info, single_token_id, softmax_tau


def choice_labels(k: int, scheme: str = "letters") -> tuple[str, ...]:
    """Answer labels for ``k`` options: ``A..Z, AA, AB, ..`` (bijective base 26) or ``1..k``."""
    if scheme not in CHOICE_LABELS:
        raise SpectraInputError(f"choice labels must be 'letters' or 'numbers', got {scheme!r}")
    if scheme == "numbers":
        return tuple(str(i + 1) for i in range(k))
    labels = []
    for i in range(k):
        n, label = i + 1, ""
        while n:
            n, r = divmod(n - 1, 26)
            label = chr(ord("A") + r) + label
        labels.append(label)
    return tuple(labels)


class ChoiceScorer(Scorer):
    """One multi-choice prompt per user; S from the answer token's logit or the answer's likelihood."""

    method = "choice"

    def __init__(self, categories: Sequence[str], builder, options: ScorerOptions = ScorerOptions()):
        self.categories = tuple(categories)
        self.builder = builder
        self.tau = options.temperature
        self.label_scheme = options.choice_labels
        self.labels = choice_labels(len(self.categories), self.label_scheme)
        self.answers = tuple(builder.choice_answer(lab) for lab in self.labels)
        self.question = builder.choice_question(self.labels, self.categories)
        ids = [single_token_id(builder.tokenizer, a.rstrip()) for a in self.answers]
        single = None not in ids and len(set(ids)) == len(ids)
        mode = options.choice_mode
        if mode == "token" and not single:
            bad = next((a for a, i in zip(self.answers, ids) if i is None), None)
            raise SpectraInputError(
                f"choice mode 'token': answer {bad.rstrip()!r} is not a single token" if bad is not None
                else "choice mode 'token': two answer labels map to the same token"
            )
        self.mode = "token" if (mode == "token" or (mode == "auto" and single)) else "likelihood"
        self.label_ids = tuple(ids) if self.mode == "token" else ()

    @property
    def score_columns(self) -> tuple[str, ...]:
        return self.categories

    def score_batch(self, backend, contexts: Sequence[str]) -> BatchScores:
        if self.mode == "token":
            reqs = [ScoreRequest(self.builder.probe_prefix(c), (self.question,), self.label_ids) for c in contexts]
            results = backend.score(reqs)
            scores = np.stack([np.asarray(r.next_logits, dtype=np.float64)[0] for r in results])
        else:
            reqs = [ScoreRequest(self.builder.probe_prefix(c) + self.question, self.answers, ()) for c in contexts]
            results = backend.score(reqs)
            scores = np.stack([np.asarray(r.suffix_logprob, dtype=np.float64) for r in results])
        return BatchScores(scores, softmax_tau(scores, self.tau), fallback_info(results))

    def describe(self) -> dict:
        out = {"method": self.method, "tau": self.tau, "choice_mode": self.mode, "choice_labels": self.label_scheme,
               "answers": list(self.answers)}
        if self.mode == "token":
            out["answer_token_ids"] = list(self.label_ids)
        return out
