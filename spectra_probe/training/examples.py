"""Torch-free training data: the nested SFT split, CPT documents, SFT examples and their token sequences.

SFT prompts are rendered by :class:`spectra_probe.templates.PromptBuilder` from the same
:class:`~spectra_probe.templates.PromptTemplates` and the same context text (:mod:`spectra_eval.data.textualize`)
the probe uses, so training optimises exactly the logits the probe reads. Tasks (targets sampled per user
from the target distribution theta of the SFT window):

* ``name`` (the paper's SFT): ``name_prefix(context)`` -> ``name_suffix(c)``, c ~ theta.
* ``yesno``: ``probe_prefix + probe_suffix(c)`` -> :data:`YES_ANSWER` (``" Yes"``) for c ~ theta,
  :data:`NO_ANSWER` (``" No"``) for c ~ uniform(K), half and half. The Bayes-optimal log-odds is then
  log(K theta(c)), so the softmax of the yes/no score over categories is theta itself (noise-contrastive
  estimation). A yes/no probe of the trained model reads these two tokens (``--verbalizers-yes " Yes"``).
* ``choice``: the multi-choice question -> the label of c ~ theta.
* ``dg``: the direct-generation prompt -> the user's top-k categories by theta mass (most first), so the DG
  baseline decodes lists from a model trained for them.
* ``yesno_dist`` (a :class:`DistributionExample` per user and pass): the K yes/no probe prompts of one context
  at once, loss = cross-entropy between theta and the softmax over categories of the yes-minus-no logit
  difference, i.e. the probe's own readout theta_S (Eq. 1, tau = 1). One example carries the whole target
  distribution instead of one sampled yes/no bit, and the K prompts share one encoding of the context
  (:func:`encode_distributions` packs them like the probe's shared-prefix engine), so it is the cheap way to
  make a small model's yes/no probe read the user (measured in :data:`~spectra_probe.training.presets.DEMO`).

Leakage: the evaluation future (the last 20%) must not be trained on (checklist C6). The SFT window is
therefore a *nested* chronological split of the history (:func:`sft_split`): SFT contexts are the first 80%
of each history and targets its last 20%; evaluation then uses the whole history as context.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval.data.datasets import Interactions
from spectra_eval.data.splits import Split, chronological_split, nested_split, truth_table
from spectra_eval.io import DistributionTable
from spectra_eval.validation import SpectraInputError
from spectra_probe.backends.base import PromptGroup, ScoreRequest, leading_special_ids, plan_groups
from spectra_probe.scoring.choice import choice_labels
from spectra_probe.templates import PromptBuilder, PromptTemplates
from spectra_eval.data.textualize import item_lines, textualize

from .presets import C8_SAMPLES

log = logging.getLogger(__name__)

SFT_TASKS = ("name", "yesno", "choice", "dg", "yesno_dist")
IGNORE_INDEX = -100
#: The yes/no task's targets: the verbalizers a probe of the trained model reads.
YES_ANSWER, NO_ANSWER = " Yes", " No"


@dataclass(frozen=True)
class SFTExample:
    """One supervised pair: the loss is on ``target``'s tokens after ``prompt``."""

    user_id: str
    task: str
    prompt: str
    target: str


@dataclass(frozen=True)
class DistributionExample:
    """The yes/no probe of one context as one example: prompts ``prefix + suffixes[k]``, one per category, and
    the target distribution over them (module docstring, task ``yesno_dist``)."""

    user_id: str
    task: str
    prefix: str
    suffixes: tuple[str, ...]
    target: tuple[float, ...]


@dataclass(frozen=True)
class Prepared:
    """A data set split for alignment and evaluation.

    ``split``: the evaluation split (history = first 80%, future = last 20% per user); ``truth``: theta_* of
    the future window; ``sft``: the nested split of the history that SFT trains on; ``sft_truth``: its
    target distributions. CPT uses ``split.history`` only. ``mass`` and ``min_interactions`` are the rules
    the splits were made with (further SFT windows, :func:`sft_examples_for`, reuse them).
    """

    data: Interactions
    split: Split
    truth: DistributionTable
    sft: Split
    sft_truth: DistributionTable
    mass: str = "split"
    min_interactions: int = 5


def prepare(data: Interactions, *, history_fraction: float = 0.8, min_interactions: int = 5,
            mass: str = "split") -> Prepared:
    """Split ``data`` for the pipeline (evaluation split, its truth, the nested SFT split and its truth)."""
    split = chronological_split(data, history_fraction=history_fraction, min_interactions=min_interactions, mass=mass)
    nested = sft_split(split, min_interactions=min_interactions)
    return Prepared(data=data, split=split, truth=truth_table(split, mass=mass), sft=nested,
                    sft_truth=truth_table(nested, mass=mass), mass=mass, min_interactions=min_interactions)


def sft_split(split: Split, *, history_fraction: float | None = None, min_interactions: int = 5) -> Split:
    """The nested split SFT trains on: each user's history window split again chronologically
    (:func:`spectra_eval.data.splits.nested_split`).

    Its history is the SFT context window and its future the SFT target window; nothing of ``split.future``
    (the evaluation window) is in either.
    """
    return nested_split(split, history_fraction=history_fraction, min_interactions=min_interactions)


def contexts_for(history: pd.DataFrame, items: pd.DataFrame, users, *, tokenizer=None,
                 budget: int | None = None) -> pd.DataFrame:
    """``user_id, context, n_items`` via :func:`spectra_eval.data.textualize.textualize` (the shared template)."""
    return textualize(history, items, users=users, budget=budget, tokenizer=tokenizer,
                      progress=len(users) > 2000)


# ---------------------------------------------------------------- CPT


def cpt_corpus(contexts: pd.DataFrame, items: pd.DataFrame | None = None, *,
               templates: PromptTemplates | None = None, items_per_document: int = 40) -> list[str]:
    """CPT documents: each user's context wrapped in the probe's context prompt, then the item catalogue
    (item metadata lines, ``items_per_document`` per document)."""
    t = templates or PromptTemplates()
    docs = [t.probe_prefix.format(context=c) for c in contexts["context"] if c]
    if items is not None and len(items):
        lines = list(item_lines(items))
        docs += ["\n".join(lines[i:i + items_per_document]) for i in range(0, len(lines), items_per_document)]
    return docs


def cpt_corpus_for(prepared: Prepared, templates: PromptTemplates | None = None) -> list[str]:
    """The CPT corpus of a prepared data set: every user's whole history window (no budget) and the items."""
    split = prepared.split
    return cpt_corpus(contexts_for(split.history, prepared.data.items, split.users), prepared.data.items,
                      templates=templates)


def template_corpus(categories: Sequence[str], templates: PromptTemplates | None = None, *,
                    verbalizers: Sequence[str] = ("Yes", "No", "Y", "N", "y", "n"), repeat: int = 50) -> list[str]:
    """Every prompt template rendered with every category, the answer labels and the verbalizers, repeated
    ``repeat`` times: added to a from-scratch tokenizer's training texts so that category names, the
    question text, ``" Yes"``/``" No"`` and the choice labels get their own tokens (the yes/no probe needs
    single-token verbalizers)."""
    b = PromptBuilder(templates or PromptTemplates())
    labels = choice_labels(len(categories))
    lines = [b.probe_prefix("") + b.probe_suffix(c) + YES_ANSWER for c in categories]
    lines += [b.name_prefix("") + b.name_suffix(c) for c in categories]
    lines += [b.probe_prefix("") + b.choice_question(labels, categories) + b.choice_answer(lab) for lab in labels]
    lines += [b.dg_prompt("", 5, categories) + " " + ", ".join(categories[:5]),
              " ".join(verbalizers) + " " + " ".join(" " + v for v in verbalizers)]
    return lines * repeat


# ---------------------------------------------------------------- SFT


def sft_examples(contexts: pd.DataFrame, theta: DistributionTable, *, templates: PromptTemplates | None = None,
                 tokenizer=None, samples: Mapping[str, int] | None = None, dg_k: int = 5,
                 seed: int = 42) -> list[SFTExample | DistributionExample]:
    """(prompt, target) pairs per user, and one :class:`DistributionExample` per ``yesno_dist`` pass (module
    docstring for the tasks).

    Parameters
    ----------
    contexts : DataFrame
        ``user_id, context`` (from :func:`spectra_eval.data.textualize.textualize` on the SFT history window).
    theta : DistributionTable
        Target distribution per user (the truth of the SFT window); users missing from ``contexts`` are an
        error.
    samples : mapping task -> count per user
        Default :data:`~spectra_probe.training.presets.C8_SAMPLES` (the paper's category-name SFT). For ``yesno`` the count is split half
        positive, half negative; for ``yesno_dist`` it is the number of passes over the user's
        :class:`DistributionExample` (its target is exact, so a pass is a copy).
    """
    samples = dict(samples or C8_SAMPLES)
    unknown = [t for t in samples if t not in SFT_TASKS]
    if unknown:
        raise SpectraInputError(f"unknown SFT task {unknown[0]!r} (known: {', '.join(SFT_TASKS)})")
    t = templates or PromptTemplates()
    builder = PromptBuilder(t, tokenizer)
    context_of = pd.Series(contexts["context"].to_numpy(), index=contexts["user_id"].astype(str).to_numpy())
    missing = pd.Index(theta.users).difference(context_of.index)
    if len(missing):
        raise SpectraInputError(f"contexts: user {missing[0]!r} has a target distribution but no context")
    cats = theta.categories
    K = len(cats)
    labels = choice_labels(K)
    question = builder.choice_question(labels, cats) if samples.get("choice") else ""
    answer = (lambda s: s.lstrip()) if t.chat else (lambda s: s)
    rng = np.random.default_rng(seed)
    out: list[SFTExample | DistributionExample] = []
    for u, p in zip(theta.users, theta.probs):
        ctx = context_of[u]
        draw = lambda n: rng.choice(K, size=n, p=p)  # noqa: E731
        for c in draw(samples.get("name", 0)):
            out.append(SFTExample(u, "name", builder.name_prefix(ctx), builder.name_suffix(cats[c])))
        n_yes = samples.get("yesno", 0)
        if n_yes:
            prefix = builder.probe_prefix(ctx)
            pos, neg = draw(n_yes - n_yes // 2), rng.integers(0, K, size=n_yes // 2)
            out += [SFTExample(u, "yesno", prefix + builder.probe_suffix(cats[c]), answer(YES_ANSWER)) for c in pos]
            out += [SFTExample(u, "yesno", prefix + builder.probe_suffix(cats[c]), answer(NO_ANSWER)) for c in neg]
        if samples.get("choice"):
            prefix = builder.probe_prefix(ctx) + question
            out += [SFTExample(u, "choice", prefix, builder.choice_answer(labels[c]))
                    for c in draw(samples["choice"])]
        if samples.get("yesno_dist"):
            suffixes = tuple(builder.probe_suffix(c) for c in cats)
            dist = DistributionExample(u, "yesno_dist", builder.probe_prefix(ctx), suffixes, tuple(map(float, p)))
            out += [dist] * samples["yesno_dist"]
        for _ in range(samples.get("dg", 0)):
            order = np.argsort(-p, kind="stable")[:dg_k]
            top = [cats[j] for j in order if p[j] > 0]
            out.append(SFTExample(u, "dg", builder.dg_prompt(ctx, dg_k, cats), answer(" " + ", ".join(top) + "\n")))
    log.info("built %d SFT examples for %d users (%s)", len(out), theta.n_users,
             ", ".join(f"{k}={v}" for k, v in samples.items()))
    return out


def sft_examples_for(prepared: Prepared, tokenizer, *, budget: int | None, samples: Mapping[str, int] | None = None,
                     templates: PromptTemplates | None = None, seed: int = 42,
                     windows: Sequence[float] = ()) -> list[SFTExample | DistributionExample]:
    """SFT examples from the nested split: contexts of its history, targets drawn from its truth.

    ``windows``: further history fractions at which each user's history window is cut again
    (:func:`sft_split`); each adds ``samples`` more examples per user, with the context before that cut and
    the target after it. More windows give more distinct (context, future) pairs, where repeated passes over
    one pair let a small model memorise that pair's noise. Every window lies inside the history, so the
    evaluation future is still never trained on.
    """
    splits = [(prepared.sft, prepared.sft_truth)]
    for fraction in windows:
        nested = sft_split(prepared.split, history_fraction=fraction, min_interactions=prepared.min_interactions)
        splits.append((nested, truth_table(nested, mass=prepared.mass)))
    out: list[SFTExample | DistributionExample] = []
    for i, (nested, theta) in enumerate(splits):
        contexts = contexts_for(nested.history, prepared.data.items, nested.users, tokenizer=tokenizer, budget=budget)
        out += sft_examples(contexts, theta, templates=templates, tokenizer=tokenizer, samples=samples, seed=seed + i)
    return out


# ---------------------------------------------------------------- token sequences


def pack_corpus(texts: Sequence[str], tokenizer, block_size: int) -> list[list[int]]:
    """Concatenate the tokenised documents (each ended by eos) and cut blocks of ``block_size`` tokens;
    the last, shorter block is kept when it holds at least 16 tokens."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for enc in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        if eos is not None:
            ids.append(eos)
    blocks = [ids[i:i + block_size] for i in range(0, len(ids), block_size)]
    return [b for b in blocks if len(b) >= min(16, block_size)]


@dataclass(frozen=True)
class EncodedDistribution:
    """A :class:`DistributionExample` in tokens: the shared context ``group.ctx``, one tail per category
    (``group.tails``, split from the context exactly as the probe splits them) and the target distribution."""

    group: PromptGroup
    target: tuple[float, ...]


def encode_distributions(examples: Sequence[DistributionExample], tokenizer) -> list[EncodedDistribution]:
    """Tokenise each example with the probe's own prefix/suffix split
    (:func:`spectra_probe.backends.base.plan_groups`), so training reads the positions the probe reads."""
    requests = [ScoreRequest(prefix=e.prefix, suffixes=e.suffixes) for e in examples]
    groups, _ = plan_groups(tokenizer, requests, share_prefix=True, lead=leading_special_ids(tokenizer))
    if len(groups) != len(examples):  # a BPE merge across the boundary would need a group of its own
        raise SpectraInputError("yesno_dist: a category's probe suffix merges with the context's last token; "
                                "end the probe prefix with whitespace or punctuation")
    return [EncodedDistribution(g, e.target) for g, e in zip(groups, examples)]


def encode_examples(examples: Sequence[SFTExample], tokenizer, max_length: int) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels per example: labels are ``IGNORE_INDEX`` on the prompt, the ids on the target.

    A prompt longer than ``max_length - len(target)`` loses tokens from its start (counted in the log)."""
    if not examples:  # e.g. an SFT mixture of yesno_dist examples only (a tokenizer refuses an empty batch)
        return []
    prompts = tokenizer([e.prompt for e in examples], add_special_tokens=False)["input_ids"]
    targets = tokenizer([e.target for e in examples], add_special_tokens=False)["input_ids"]
    out, cut = [], 0
    for p, t in zip(prompts, targets):
        if not t:
            raise SpectraInputError("an SFT target encodes to no tokens")
        room = max_length - len(t)
        if len(p) > room:
            p, cut = p[len(p) - room:], cut + 1
        out.append((p + t, [IGNORE_INDEX] * len(p) + t))
    if cut:
        log.warning("%d of %d SFT prompts were cut from the start to fit %d tokens", cut, len(out), max_length)
    return out
