r"""Scorers: per-user raw category scores S (n_users, K) and the probe distribution theta = softmax(S / tau).

Every scorer turns a batch of user contexts into backend :class:`~spectra_probe.backends.base.ScoreRequest`\ s
(one shared prefix per user, one suffix per category or answer), reduces the backend's results to S, and
applies the temperature:

.. math:: \theta_u = \operatorname{softmax}(S_u / \tau), \qquad \theta_{uj} = e^{S_{uj}/\tau} / \sum_k e^{S_{uk}/\tau}.

Methods
-------
``yesno`` (:class:`YesNoScorer`, the paper's Eq. 1 / Algorithm 1)
    :math:`S_j = \frac{1}{|V_+|}\sum_{v\in V_+} z_j[v] - \frac{1}{|V_-|}\sum_{v\in V_-} z_j[v]`, where
    :math:`z_j` are the next-token logits after the probe prompt of category j. Verbalizer words are resolved
    to token ids by :func:`resolve_verbalizers`.
``name`` (:class:`NameScorer`)
    :math:`S_j = \sum_t \log p(y_{j,t} \mid \text{prefix}, y_{j,<t})` over the tokens of the rendered name
    suffix (``reduce="sum"``: softmax(S) with tau = 1 is the name likelihood renormalised over the K names),
    or that sum divided by the suffix's token count (``reduce="mean"``, length-normalised). The default
    suffix ``" {category}\n"`` ends with a terminator so the score is that of the *complete* name ("Action"
    does not absorb the mass of "Action & Adventure").
``choice`` (:class:`ChoiceScorer`, Algorithm 2)
    One multi-choice prompt listing every category after an answer label. Labels are ``A..Z`` then
    ``AA, AB, ..`` (bijective base 26, as spreadsheet columns) or ``1..K`` (``labels="numbers"``). With
    ``mode="token"`` S_j is the next-token logit of label j's answer token (requires every answer, trailing
    whitespace removed, to be one distinct token); with ``mode="likelihood"`` S_j is the log-likelihood of
    the full answer text (default ``" {label}\n"``: the terminator keeps ``A`` from absorbing ``AA``);
    ``mode="auto"`` (default) uses token mode when every label is a single token and likelihood otherwise
    (so K > 26 letters, or multi-digit numbers under digit-splitting tokenizers, use likelihood). Over the
    label set, next-token logits and next-token log-probabilities differ by one constant per user, so in
    token mode theta is the model's answer distribution renormalised over the valid labels.

Hierarchical probing lives in :mod:`spectra_probe.hierarchy`, the reranker baseline in
:mod:`spectra_probe.reranker`, direct generation in :mod:`spectra_probe.dg`; :func:`make_scorer` builds any.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from spectra_eval.validation import SpectraInputError
from spectra_probe.backends.base import ScoreRequest, single_token_id  # light: no torch
from spectra_probe.templates import PromptBuilder

DEFAULT_YES = ("Yes", "Y", "y")
DEFAULT_NO = ("No", "N", "n")
METHODS = ("yesno", "name", "choice", "dg", "reranker")


def check_tau(tau: float) -> float:
    if not float(tau) > 0:
        raise SpectraInputError(f"temperature must be > 0, got {tau}")
    return float(tau)


def softmax_tau(scores: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """Row-wise softmax(S / tau) in float64, stable (the row maximum is subtracted first)."""
    z = np.asarray(scores, dtype=np.float64) / check_tau(tau)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class BatchScores:
    """Scores of a batch of users: raw score columns, the distribution, and per-user notes."""

    scores: np.ndarray  # (b, n_score_columns); float64, object for text columns (DG)
    probs: np.ndarray  # (b, K) float64, rows sum to 1
    info: tuple[dict, ...] = ()  # per user, JSON-safe (e.g. {"fallback": 0})


# ---------------------------------------------------------------- token resolution


@dataclass(frozen=True)
class Verbalizer:
    text: str  # the variant that is one token, e.g. " Yes"
    token_id: int


def resolve_verbalizers(tokenizer, words: Sequence[str], *, role: str = "V+") -> tuple[Verbalizer, ...]:
    """Resolve verbalizer words to single tokens, trying each word as given and with a leading space.

    Variants that encode to one token are kept (first occurrence of each id wins); variants that split into
    several tokens are skipped. Raises :class:`SpectraInputError` if no variant of any word is one token.
    """
    out: list[Verbalizer] = []
    seen: set[int] = set()
    for word in words:
        for variant in dict.fromkeys((word.strip(), " " + word.strip())):
            tid = single_token_id(tokenizer, variant)
            if tid is not None and tid not in seen:
                seen.add(tid)
                out.append(Verbalizer(variant, tid))
    if not out:
        raise SpectraInputError(
            f"verbalizers {role} {{{', '.join(words)}}}: no word is a single token of the model's tokenizer "
            "(tried with and without a leading space); choose other --verbalizers"
        )
    return tuple(out)


def resolve_yes_no(tokenizer, yes: Sequence[str], no: Sequence[str]):
    """Resolve V+ and V- (:func:`resolve_verbalizers`); a token in both sets is an error."""
    pos = resolve_verbalizers(tokenizer, yes, role="V+")
    neg = resolve_verbalizers(tokenizer, no, role="V-")
    shared = {v.token_id for v in pos} & {v.token_id for v in neg}
    if shared:
        raise SpectraInputError(f"verbalizers: token id {sorted(shared)[0]} is in both V+ and V-")
    return pos, neg


# ---------------------------------------------------------------- per-category (suffix) scorers


class SuffixScorer:
    """Base for scorers with one shared prefix per user and one suffix per category.

    Subclasses define :meth:`prefix`, :meth:`suffix`, :attr:`next_token_ids` and :meth:`reduce`
    (ScoreResult -> S for the suffixes of that request). The hierarchical scorer reuses :meth:`request` and
    :meth:`reduce` with other prefixes and category subsets.
    """

    method = "?"
    next_token_ids: tuple[int, ...] = ()

    def __init__(self, categories: Sequence[str], builder: PromptBuilder, tau: float = 1.0):
        self.categories = tuple(categories)
        self.builder = builder
        self.tau = check_tau(tau)
        self._suffixes = tuple(self.suffix(c) for c in self.categories)

    @property
    def score_columns(self) -> tuple[str, ...]:
        return self.categories

    def prefix(self, context: str) -> str:
        raise NotImplementedError

    def suffix(self, category: str) -> str:
        raise NotImplementedError

    def reduce(self, result) -> np.ndarray:
        raise NotImplementedError

    def request(self, prefix: str, suffixes: Sequence[str] | None = None):
        """One backend request: ``prefix`` with this scorer's category suffixes (or the given ones)."""
        suffixes = self._suffixes if suffixes is None else tuple(suffixes)
        return ScoreRequest(prefix=prefix, suffixes=suffixes, next_token_ids=tuple(self.next_token_ids))

    def score_batch(self, backend, contexts: Sequence[str]) -> BatchScores:
        results = backend.score([self.request(self.prefix(c)) for c in contexts])
        scores = np.stack([self.reduce(r) for r in results]).astype(np.float64)
        info = tuple({"fallback": int(np.asarray(r.fallback).sum())} for r in results)
        return BatchScores(scores, softmax_tau(scores, self.tau), info)

    def describe(self) -> dict:
        return {"method": self.method, "tau": self.tau}


class YesNoScorer(SuffixScorer):
    """Yes/no verbalizer probing (Eq. 1): mean V+ logit minus mean V- logit after each category's probe."""

    method = "yesno"

    def __init__(self, categories, builder, tau=1.0, *, yes=DEFAULT_YES, no=DEFAULT_NO):
        self.yes, self.no = resolve_yes_no(builder.tokenizer, yes, no)
        self.next_token_ids = tuple(v.token_id for v in self.yes + self.no)
        super().__init__(categories, builder, tau)

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


class NameScorer(SuffixScorer):
    """Category-name likelihood: sum (or per-token mean) of the name suffix's token log-probabilities."""

    method = "name"

    def __init__(self, categories, builder, tau=1.0, *, reduce: str = "sum"):
        if reduce not in ("sum", "mean"):
            raise SpectraInputError(f"name scoring must be 'sum' or 'mean', got {reduce!r}")
        self.reduction = reduce
        super().__init__(categories, builder, tau)

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


# ---------------------------------------------------------------- multi-choice (Algorithm 2)


def choice_labels(k: int, scheme: str = "letters") -> tuple[str, ...]:
    """Answer labels for ``k`` options: ``A..Z, AA, AB, ..`` (bijective base 26) or ``1..k``."""
    if scheme == "numbers":
        return tuple(str(i + 1) for i in range(k))
    if scheme != "letters":
        raise SpectraInputError(f"choice labels must be 'letters' or 'numbers', got {scheme!r}")
    labels = []
    for i in range(k):
        n, label = i + 1, ""
        while n:
            n, r = divmod(n - 1, 26)
            label = chr(ord("A") + r) + label
        labels.append(label)
    return tuple(labels)


class ChoiceScorer:
    """Generative classification over one multi-choice prompt (Algorithm 2; modes in the module docstring)."""

    method = "choice"

    def __init__(self, categories, builder, tau=1.0, *, labels: str = "letters", mode: str = "auto"):
        if mode not in ("auto", "token", "likelihood"):
            raise SpectraInputError(f"choice mode must be 'auto', 'token' or 'likelihood', got {mode!r}")
        self.categories = tuple(categories)
        self.builder = builder
        self.tau = check_tau(tau)
        self.label_scheme = labels
        self.labels = choice_labels(len(self.categories), labels)
        self.answers = tuple(builder.choice_answer(lab) for lab in self.labels)
        self.question = builder.choice_question(self.labels, self.categories)
        ids = [single_token_id(builder.tokenizer, a.rstrip()) for a in self.answers]
        single = None not in ids and len(set(ids)) == len(ids)
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
        info = tuple({"fallback": int(np.asarray(r.fallback).sum())} for r in results)
        return BatchScores(scores, softmax_tau(scores, self.tau), info)

    def describe(self) -> dict:
        out = {"method": self.method, "tau": self.tau, "choice_mode": self.mode, "choice_labels": self.label_scheme,
               "answers": list(self.answers)}
        if self.mode == "token":
            out["answer_token_ids"] = list(self.label_ids)
        return out


# ---------------------------------------------------------------- factory


@dataclass(frozen=True)
class ScorerOptions:
    """Method-specific knobs (CLI flags) in one place."""

    tau: float = 1.0
    yes: tuple[str, ...] = DEFAULT_YES
    no: tuple[str, ...] = DEFAULT_NO
    name_reduce: str = "sum"
    choice_labels: str = "letters"
    choice_mode: str = "auto"
    k: int = 5
    max_new_tokens: int = 64
    dg_cutoff: float = 0.8
    dg_scheme: str = "uniform"
    branches: str = "all"
    n_branches: int | None = None


def make_scorer(method: str, categories: Sequence[str], builder: PromptBuilder, options: ScorerOptions,
                hierarchy=None):
    """Build the scorer for ``method`` (one of :data:`METHODS`; ``hierarchy`` only with ``yesno``)."""
    if method not in METHODS:
        raise SpectraInputError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    if hierarchy is not None:
        if method != "yesno":
            raise SpectraInputError(f"--hierarchy works with --method yesno only, not {method!r}")
        from spectra_probe.hierarchy import HierarchicalScorer

        flat = YesNoScorer(hierarchy.parents, builder, options.tau, yes=options.yes, no=options.no)
        return HierarchicalScorer(flat, categories, hierarchy, branches=options.branches, n_branches=options.n_branches)
    if method == "yesno":
        return YesNoScorer(categories, builder, options.tau, yes=options.yes, no=options.no)
    if method == "name":
        return NameScorer(categories, builder, options.tau, reduce=options.name_reduce)
    if method == "choice":
        return ChoiceScorer(categories, builder, options.tau, labels=options.choice_labels, mode=options.choice_mode)
    if method == "reranker":
        from spectra_probe.reranker import RerankerScorer

        return RerankerScorer(categories, builder, options.tau)
    from spectra_probe.dg import DirectGeneration

    return DirectGeneration(categories, builder, k=options.k, max_new_tokens=options.max_new_tokens,
                            cutoff=options.dg_cutoff, scheme=options.dg_scheme)
