r"""What every scorer shares: options, the temperature softmax, batch results, verbalizer tokens, the base classes.

A scorer turns a batch of user contexts into backend :class:`~spectra_probe.backends.base.ScoreRequest`\ s,
reduces the backend's results to raw scores S (n_users, n_score_columns) and returns the distribution

.. math:: \theta_u = \operatorname{softmax}(S_u / \tau), \qquad
          \theta_{uj} = e^{S_{uj}/\tau} / \sum_k e^{S_{uk}/\tau}.

:class:`Scorer` names the hooks the probe runner relies on, so the runner never asks which method it runs.
This module imports neither torch nor any scorer module.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from spectra_eval.validation import SpectraInputError, check_choice, check_positive_int
from spectra_probe.backends.base import ScoreRequest
from spectra_probe.templates import PromptBuilder

#: The paper's verbalizer sets V+ and V- (Eq. 1).
DEFAULT_YES = ("Yes", "Y", "y")
DEFAULT_NO = ("No", "N", "n")
NAME_REDUCTIONS = ("sum", "mean")
CHOICE_LABELS = ("letters", "numbers")
CHOICE_MODES = ("auto", "token", "likelihood")
BRANCH_MODES = ("all", "top", "tail", "mix")
DG_SCHEMES = ("uniform", "rank")


def check_tau(tau: float) -> float:
    """``tau`` as a float, or a SpectraInputError unless it is > 0."""
    if not float(tau) > 0:
        raise SpectraInputError(f"temperature must be > 0, got {tau}")
    return float(tau)


@dataclass(frozen=True)
class ScorerOptions:
    """Every method knob of a probe run, checked once here (field names are the CLI's ``--flag`` names).

    Each scorer reads the fields that concern it: ``temperature`` (all but ``dg``); ``verbalizers_yes``,
    ``verbalizers_no``, ``verbalizer_space_variants`` (``yesno``); ``name_reduce``; ``choice_labels``,
    ``choice_mode``; ``branches``, ``n_branches`` (``--hierarchy``); ``k``, ``max_new_tokens``, ``dg_cutoff``,
    ``dg_scheme`` (``dg``).
    """

    temperature: float = 1.0
    verbalizers_yes: tuple[str, ...] = DEFAULT_YES
    verbalizers_no: tuple[str, ...] = DEFAULT_NO
    verbalizer_space_variants: bool = False
    name_reduce: str = "sum"
    choice_labels: str = "letters"
    choice_mode: str = "auto"
    branches: str = "all"
    n_branches: int | None = None
    k: int = 5
    max_new_tokens: int = 64
    dg_cutoff: float = 0.8
    dg_scheme: str = "uniform"

    def __post_init__(self):
        check_tau(self.temperature)
        for name in ("verbalizers_yes", "verbalizers_no"):
            words = getattr(self, name)
            words = (words,) if isinstance(words, str) else tuple(words)
            if not words or not all(isinstance(w, str) and w for w in words):
                raise SpectraInputError(f"--{name.replace('_', '-')} needs at least one non-empty word")
            object.__setattr__(self, name, words)  # lists from callers become hashable tuples
        check_choice(self.name_reduce, NAME_REDUCTIONS, name="--name-reduce")
        check_choice(self.choice_labels, CHOICE_LABELS, name="--choice-labels")
        check_choice(self.choice_mode, CHOICE_MODES, name="--choice-mode")
        check_choice(self.branches, BRANCH_MODES, name="--branches")
        if self.branches != "all" or self.n_branches is not None:
            check_positive_int(self.n_branches, "--branches-b",
                               message=f"branch choice {self.branches!r} needs --branches-b >= 1, got {{value}}")
        for flag, value in (("k", self.k), ("max-new-tokens", self.max_new_tokens)):
            check_positive_int(value, f"--{flag}", message="{name} must be >= 1, got {value}")
        if not 0.0 < self.dg_cutoff <= 1.0:
            raise SpectraInputError(f"--dg-cutoff (fuzzy-match similarity) must be in (0, 1], got {self.dg_cutoff}")
        check_choice(self.dg_scheme, DG_SCHEMES, name="dg_scheme")

    @classmethod
    def from_mapping(cls, values: dict) -> "ScorerOptions":
        """Options from the keys of ``values`` that name a field (e.g. ``vars(args)``); ``None`` keeps a default."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None})


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


def fallback_info(results) -> tuple[dict, ...]:
    """Per request, the number of suffixes scored whole because of a tokenisation boundary merge."""
    return tuple({"fallback": int(np.asarray(r.fallback).sum())} for r in results)


# ---------------------------------------------------------------- token resolution


def single_token_id(tokenizer, text: str) -> int | None:
    """The id of ``text`` when the tokenizer encodes it (without special tokens) as exactly one token."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return int(ids[0]) if len(ids) == 1 else None


@dataclass(frozen=True)
class Verbalizer:
    text: str  # exactly what was scored, e.g. " Yes"
    token_id: int


def resolve_verbalizers(tokenizer, words: Sequence[str], *, role: str = "V+ (--verbalizers-yes)",
                        space_variants: bool = False) -> tuple[Verbalizer, ...]:
    """The verbalizer tokens of ``words``: each word, exactly as given, must be one token of ``tokenizer``.

    With ``space_variants`` each word stands for its bare form and its form with a leading space
    (``"Yes"`` -> ``"Yes"``, ``" Yes"``), and the forms that are one token are kept. Either way a word with
    no single-token form is an error naming it (and ``role``); a token met twice is kept once (first occurrence).
    """
    out: list[Verbalizer] = []
    seen: set[int] = set()
    for word in words:
        forms = dict.fromkeys((word.strip(), " " + word.strip())) if space_variants else (word,)
        found = [(form, tid) for form in forms if (tid := single_token_id(tokenizer, form)) is not None]
        if not found:
            tried = " (with or without a leading space)" if space_variants else ""
            raise SpectraInputError(f"{role}: {word!r} is not a single token of the model's tokenizer{tried}")
        for form, tid in found:
            if tid not in seen:
                seen.add(tid)
                out.append(Verbalizer(form, tid))
    return tuple(out)


def resolve_yes_no(tokenizer, yes: Sequence[str], no: Sequence[str], *, space_variants: bool = False,
                   roles: tuple[str, str] = ("V+ (--verbalizers-yes)", "V- (--verbalizers-no)")):
    """Resolve V+ and V- (:func:`resolve_verbalizers`); a token in both sets is an error."""
    pos = resolve_verbalizers(tokenizer, yes, role=roles[0], space_variants=space_variants)
    neg = resolve_verbalizers(tokenizer, no, role=roles[1], space_variants=space_variants)
    shared = {v.token_id for v in pos} & {v.token_id for v in neg}
    if shared:
        raise SpectraInputError(f"token id {sorted(shared)[0]} is in both {roles[0]} and {roles[1]}")
    return pos, neg


# ---------------------------------------------------------------- the scorer protocol


class Scorer:
    """The interface the probe runner relies on; scorers subclass it and override what differs.

    Attributes
    ----------
    method : str
        The registry name (``--method``).
    score_columns : tuple of str
        Columns of the raw-score table, in order.
    text_scores : bool
        Raw scores are text (the DG generations), not floats.
    hierarchical : bool
        The scorer can be the L1/L2 probe of :class:`~spectra_probe.scoring.hierarchy.HierarchicalScorer`
        (it builds per-category suffixes after ``prefix(context, parent)``).
    summary_key : str or None
        Manifest key of :meth:`summarise`'s run summary (None: no summary).
    """

    method: ClassVar[str] = "?"
    text_scores: ClassVar[bool] = False
    hierarchical: ClassVar[bool] = False
    summary_key: ClassVar[str | None] = None
    score_columns: tuple[str, ...] = ()

    def score_batch(self, backend, contexts: Sequence[str]) -> BatchScores:
        """Raw scores, distributions and per-user notes of a batch of user contexts."""
        raise NotImplementedError

    def describe(self) -> dict:
        """JSON-ready settings for the manifest (they enter the run's fingerprint)."""
        raise NotImplementedError

    @staticmethod
    def summarise(infos: Sequence[dict]) -> dict | None:
        """A cohort summary of the per-user notes, written to the manifest under :attr:`summary_key`."""
        return None

    @staticmethod
    def merge_summaries(summaries: Sequence[dict]) -> dict | None:
        """The summary of a merged run from the summaries of its shards."""
        return None

    @staticmethod
    def summary_text(summary: dict) -> str:
        """A few words on the summary for the command line ("" for none)."""
        return ""


class SuffixScorer(Scorer):
    """Base for scorers with one shared prefix per user and one suffix per category.

    Subclasses define :meth:`prefix`, :meth:`suffix`, :attr:`next_token_ids` and :meth:`reduce`
    (ScoreResult -> S for the suffixes of that request). The hierarchical scorer reuses :meth:`request` and
    :meth:`reduce` with other prefixes and category subsets.
    """

    next_token_ids: tuple[int, ...] = ()

    def __init__(self, categories: Sequence[str], builder: PromptBuilder, options: ScorerOptions = ScorerOptions()):
        self.categories = tuple(categories)
        self.builder = builder
        self.options = options
        self.tau = options.temperature
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

    def request(self, prefix: str, suffixes: Sequence[str] | None = None) -> ScoreRequest:
        """One backend request: ``prefix`` with this scorer's category suffixes (or the given ones)."""
        suffixes = self._suffixes if suffixes is None else tuple(suffixes)
        return ScoreRequest(prefix=prefix, suffixes=suffixes, next_token_ids=tuple(self.next_token_ids))

    def score_batch(self, backend, contexts: Sequence[str]) -> BatchScores:
        results = backend.score([self.request(self.prefix(c)) for c in contexts])
        scores = np.stack([self.reduce(r) for r in results]).astype(np.float64)
        return BatchScores(scores, softmax_tau(scores, self.tau), fallback_info(results))

    def describe(self) -> dict:
        return {"method": self.method, "tau": self.tau}
