"""Alignment training: continued pretraining (CPT) then LoRA supervised fine-tuning (SFT).

Both stages are one plain PyTorch loop (:func:`train_loop`: AdamW, cosine schedule with linear warm-up,
gradient accumulation and clipping, tqdm progress, a loss per optimizer step) around a transformers causal
LM, so the code path is the same for a tiny CPU model and for Qwen3-8B on a GPU:

* **CPT** (:func:`run_cpt`): causal-LM loss on every token of a domain corpus (:func:`cpt_corpus`: the
  textualised history windows, wrapped in the probe's context prompt, plus item metadata lines), packed into
  blocks of ``max_length`` tokens. ``cpt_mode='lora'`` (default, for an 8B model) trains a LoRA adapter
  with the C8 settings and merges it into the weights; ``'full'`` trains every weight (needed for a model
  built from scratch). The result is saved with ``save_pretrained``
  (model and tokenizer), a directory ``from_pretrained`` reads back.
* **SFT** (:func:`run_sft`): a LoRA adapter (paper checklist C8 defaults: r=32, alpha=64, dropout 0.1 on
  q/k/v/o and gate/up/down projections, lr 8e-5, cosine, 10% warm-up, AdamW) trained on
  (prompt, target) pairs from :func:`sft_examples`, loss on the target tokens only. The adapter (and the
  tokenizer, so the directory is self-contained) is saved with ``save_pretrained``; the probe reloads it
  with ``PeftModel.from_pretrained``.

SFT prompts are rendered by :class:`spectra_probe.templates.PromptBuilder` from the same
:class:`~spectra_probe.templates.PromptTemplates` and the same context text (:mod:`spectra_probe.textualize`)
the probe uses, so training optimises exactly the logits the probe reads. Tasks (targets sampled per user
from the target distribution theta of the SFT window):

* ``name`` (the paper's SFT): ``name_prefix(context)`` -> ``name_suffix(c)``, c ~ theta.
* ``yesno``: ``probe_prefix + probe_suffix(c)`` -> ``" Yes"`` for c ~ theta, ``" No"`` for c ~ uniform(K),
  half and half. The Bayes-optimal log-odds is then log(K theta(c)), so the softmax of the yes/no score over
  categories is theta itself (noise-contrastive estimation).
* ``choice``: the multi-choice question -> the label of c ~ theta.
* ``dg``: the direct-generation prompt -> the user's top-k categories by theta mass (most first), so the DG
  baseline decodes lists from a model trained for them.

Leakage: the evaluation future (the last 20%) must not be trained on (checklist C6). The SFT window is
therefore a *nested* chronological split of the history (:func:`sft_split`): SFT contexts are the first 80%
of each history and targets its last 20%; evaluation then uses the whole history as context.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval.data.datasets import Interactions
from spectra_eval.io import DistributionTable, atomic_outputs, write_json
from spectra_eval.data.splits import Split, chronological_split
from spectra_eval.validation import SpectraInputError
from spectra_probe.templates import PromptBuilder, PromptTemplates

log = logging.getLogger(__name__)

C8_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SFT_TASKS = ("name", "yesno", "choice", "dg")
IGNORE_INDEX = -100


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one stage. Defaults are the paper's C8 recipe for an 8B model.

    ``epochs`` sets the length unless ``max_steps`` is given. The effective batch is
    ``batch_size * grad_accum`` sequences per optimizer step.
    """

    learning_rate: float = 8e-5
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 6
    grad_accum: int = 2
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 2048
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.1
    target_modules: tuple[str, ...] = C8_TARGET_MODULES
    cpt_mode: str = "lora"  # 'lora' (merged after training; an 8B model) or 'full' (a model built from scratch)
    seed: int = 42
    device: str = "auto"  # 'auto' -> cuda when available, else cpu
    dtype: str = "auto"  # 'auto' -> bfloat16 on cuda, float32 on cpu
    log_every: int = 10
    progress: bool = True

    def __post_init__(self):
        if self.cpt_mode not in ("full", "lora"):
            raise SpectraInputError(f"cpt_mode must be 'full' or 'lora', got {self.cpt_mode!r}")
        for name in ("learning_rate", "epochs", "batch_size", "grad_accum", "max_length", "lora_r"):
            if not getattr(self, name) > 0:
                raise SpectraInputError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise SpectraInputError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


#: A small model trained from scratch on 2 CPU cores (the demo): full-weight CPT, then LoRA SFT with a
#: larger learning rate than C8 (a tiny model trained for minutes, not an 8B model trained for a day).
TINY_MODEL = {"hidden_size": 128, "layers": 2, "heads": 4, "kv_heads": 2, "vocab_size": 2000}
TINY_CPT = TrainConfig(learning_rate=3e-3, epochs=1.0, batch_size=16, grad_accum=1, max_length=256,
                       warmup_ratio=0.05, cpt_mode="full", log_every=20)
TINY_SFT = TrainConfig(learning_rate=3e-3, epochs=1.0, batch_size=16, grad_accum=1, max_length=256,
                       lora_r=16, lora_alpha=32, lora_dropout=0.05, log_every=20)
#: Context token budget (about 9 MovieLens items) and SFT examples per user for the demo, so every probe
#: method (name, yesno, choice, dg) reads outputs it was trained for.
TINY_CONTEXT_TOKENS = 128
TINY_SAMPLES = {"name": 3, "yesno": 4, "choice": 2, "dg": 1}


@dataclass(frozen=True)
class TrainResult:
    """What a stage did: optimizer steps, sequences, target tokens, seconds, the loss per step."""

    stage: str
    steps: int
    sequences: int
    tokens: int
    seconds: float
    losses: tuple[float, ...]
    out_dir: str

    @property
    def first_loss(self) -> float:
        """Mean loss over the first 10% of steps (at least one)."""
        k = max(1, len(self.losses) // 10)
        return float(np.mean(self.losses[:k]))

    @property
    def last_loss(self) -> float:
        """Mean loss over the last 10% of steps (at least one)."""
        k = max(1, len(self.losses) // 10)
        return float(np.mean(self.losses[-k:]))

    def to_dict(self) -> dict:
        return {**asdict(self), "first_loss": self.first_loss, "last_loss": self.last_loss}


@dataclass(frozen=True)
class SFTExample:
    user_id: str
    task: str
    prompt: str
    target: str


# ---------------------------------------------------------------- corpora and examples


def sft_split(split: Split, *, history_fraction: float | None = None, min_interactions: int = 5) -> Split:
    """The nested split SFT trains on: each user's history window split again chronologically.

    Its history is the SFT context window and its future the SFT target window; nothing of ``split.future``
    (the evaluation window) is in either.
    """
    frame = split.history.drop(columns=[c for c in ("position", "session") if c in split.history.columns])
    data = Interactions(frame=frame, items=pd.DataFrame(columns=["item_id", "title", "year", "categories"]),
                        categories=split.categories, name="history window")
    return chronological_split(data, history_fraction=history_fraction or split.history_fraction,
                               min_interactions=min_interactions, session_gap=split.session_gap)


def cpt_corpus(contexts: pd.DataFrame, items: pd.DataFrame | None = None, *,
               templates: PromptTemplates | None = None, items_per_document: int = 40) -> list[str]:
    """CPT documents: each user's context wrapped in the probe's context prompt, then the item catalogue
    (item metadata lines, ``items_per_document`` per document)."""
    from spectra_probe.textualize import item_lines

    t = templates or PromptTemplates()
    docs = [t.probe_prefix.format(context=c) for c in contexts["context"] if c]
    if items is not None and len(items):
        lines = list(item_lines(items))
        docs += ["\n".join(lines[i:i + items_per_document]) for i in range(0, len(lines), items_per_document)]
    return docs


def sft_examples(contexts: pd.DataFrame, theta: DistributionTable, *, templates: PromptTemplates | None = None,
                 tokenizer=None, samples: Mapping[str, int] | None = None, dg_k: int = 5,
                 seed: int = 42) -> list[SFTExample]:
    """(prompt, target) pairs per user (module docstring for the tasks).

    Parameters
    ----------
    contexts : DataFrame
        ``user_id, context`` (from :func:`spectra_probe.textualize.textualize` on the SFT history window).
    theta : DistributionTable
        Target distribution per user (the truth of the SFT window); users missing from ``contexts`` are an
        error.
    samples : mapping task -> count per user
        Default ``{"name": 4}`` (the paper's category-name SFT). For ``yesno`` the count is split half
        positive, half negative.
    """
    from spectra_probe.scorers import choice_labels

    samples = dict(samples or {"name": 4})
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
    out: list[SFTExample] = []
    for u, p in zip(theta.users, theta.probs):
        ctx = context_of[u]
        draw = lambda n: rng.choice(K, size=n, p=p)  # noqa: E731
        for c in draw(samples.get("name", 0)):
            out.append(SFTExample(u, "name", builder.name_prefix(ctx), builder.name_suffix(cats[c])))
        n_yes = samples.get("yesno", 0)
        if n_yes:
            prefix = builder.probe_prefix(ctx)
            pos, neg = draw(n_yes - n_yes // 2), rng.integers(0, K, size=n_yes // 2)
            out += [SFTExample(u, "yesno", prefix + builder.probe_suffix(cats[c]), answer(" Yes")) for c in pos]
            out += [SFTExample(u, "yesno", prefix + builder.probe_suffix(cats[c]), answer(" No")) for c in neg]
        if samples.get("choice"):
            prefix = builder.probe_prefix(ctx) + question
            out += [SFTExample(u, "choice", prefix, builder.choice_answer(labels[c]))
                    for c in draw(samples["choice"])]
        for _ in range(samples.get("dg", 0)):
            order = np.argsort(-p, kind="stable")[:dg_k]
            top = [cats[j] for j in order if p[j] > 0]
            out.append(SFTExample(u, "dg", builder.dg_prompt(ctx, dg_k, cats), answer(" " + ", ".join(top) + "\n")))
    log.info("built %d SFT examples for %d users (%s)", len(out), theta.n_users,
             ", ".join(f"{k}={v}" for k, v in samples.items()))
    return out


# ---------------------------------------------------------------- tokenisation


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


def encode_examples(examples: Sequence[SFTExample], tokenizer, max_length: int) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels per example: labels are ``IGNORE_INDEX`` on the prompt, the ids on the target.

    A prompt longer than ``max_length - len(target)`` loses tokens from its start (counted in the log)."""
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


# ---------------------------------------------------------------- the loop


def _device_dtype(config: TrainConfig):
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = config.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return torch.device(device), getattr(torch, dtype)


def train_loop(model, sequences: Sequence[tuple[list[int], list[int]]], config: TrainConfig, *,
               pad_id: int, desc: str = "train") -> tuple[list[float], int]:
    """Train ``model`` in place on (ids, labels) sequences; return (loss per optimizer step, target tokens).

    Each epoch shuffles the sequences (``config.seed``); a micro-batch is right-padded (labels
    ``IGNORE_INDEX`` on padding); the loss is the mean token cross-entropy over the micro-batch's labelled
    tokens, averaged over ``grad_accum`` micro-batches. Learning rate: linear warm-up over
    ceil(warmup_ratio * steps) steps, then cosine decay to 0.
    """
    import torch
    from transformers import get_cosine_schedule_with_warmup

    if not sequences:
        raise SpectraInputError(f"{desc}: no training sequences")
    torch.manual_seed(config.seed)
    device = next(model.parameters()).device
    per_step = config.batch_size * config.grad_accum
    steps = config.max_steps or max(1, math.ceil(config.epochs * len(sequences) / per_step))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * steps), steps)
    rng = np.random.default_rng(config.seed)
    order: list[int] = []

    def next_batch() -> list[int]:
        nonlocal order
        if len(order) < config.batch_size:
            order = order + list(rng.permutation(len(sequences)))
        batch, order = order[: config.batch_size], order[config.batch_size:]
        return batch

    def collate(idx: list[int]):
        width = max(len(sequences[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        labels = torch.full((len(idx), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            x, y = sequences[i]
            ids[row, : len(x)] = torch.tensor(x)
            labels[row, : len(y)] = torch.tensor(y)
            mask[row, : len(x)] = 1
        return ids.to(device), mask.to(device), labels.to(device)

    bar = None
    if config.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=desc, unit="step")
    model.train()
    losses, tokens = [], 0
    for step in range(steps):
        total = 0.0
        for _ in range(config.grad_accum):
            ids, mask, labels = collate(next_batch())
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss / config.grad_accum
            loss.backward()
            total += float(loss.detach())
            tokens += int((labels[:, 1:] != IGNORE_INDEX).sum())
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(total)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total:.3f}")
        if config.log_every and (step + 1) % config.log_every == 0:
            log.debug("%s step %d/%d loss %.4f lr %.2e", desc, step + 1, steps, total, scheduler.get_last_lr()[0])
    if bar is not None:
        bar.close()
    model.eval()
    return losses, tokens


# ---------------------------------------------------------------- stages


def load_model(model_dir, config: TrainConfig):
    """``AutoModelForCausalLM`` and ``AutoTokenizer`` from a directory (safetensors only, no remote code)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_dir)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise SpectraInputError(f"{path}: not a model directory (no config.json)")
    device, dtype = _device_dtype(config)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True).to(device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _lora_config(config: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")


def _finish(stage: str, losses, tokens, n_seq, start, out_dir, config, stage_dir: Path) -> TrainResult:
    result = TrainResult(stage=stage, steps=len(losses), sequences=n_seq, tokens=tokens,
                         seconds=time.perf_counter() - start, losses=tuple(losses), out_dir=str(out_dir))
    write_json(stage_dir / "train_result.json", {**result.to_dict(), "config": asdict(config)})
    log.info("%s: %d steps in %.1f s, loss %.3f -> %.3f", stage, result.steps, result.seconds,
             result.first_loss, result.last_loss)
    return result


def run_cpt(model_dir, texts: Sequence[str], out_dir, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Continued pretraining of the model in ``model_dir`` on ``texts``; saves model + tokenizer to
    ``out_dir`` (atomically) and returns the :class:`TrainResult` (also written as ``train_result.json``)."""
    start = time.perf_counter()
    model, tokenizer = load_model(model_dir, config)
    blocks = pack_corpus(texts, tokenizer, config.max_length)
    sequences = [(b, b) for b in blocks]
    if config.cpt_mode == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(config))
    losses, tokens = train_loop(model, sequences, config, pad_id=tokenizer.pad_token_id, desc="CPT")
    if config.cpt_mode == "lora":
        model = model.merge_and_unload()
    with atomic_outputs(out_dir) as stage:
        model.save_pretrained(stage, safe_serialization=True)
        tokenizer.save_pretrained(stage)
        return _finish("cpt", losses, tokens, len(sequences), start, out_dir, config, stage)


def run_sft(model_dir, examples: Sequence[SFTExample], out_dir, config: TrainConfig = TrainConfig()) -> TrainResult:
    """LoRA SFT of the model in ``model_dir`` on ``examples`` (loss on targets only); saves the adapter and
    the tokenizer to ``out_dir`` with ``save_pretrained`` (atomically)."""
    from peft import get_peft_model

    start = time.perf_counter()
    model, tokenizer = load_model(model_dir, config)
    sequences = encode_examples(examples, tokenizer, config.max_length)
    model = get_peft_model(model, _lora_config(config))
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("SFT: %d examples, %d trainable LoRA parameters", len(sequences), n_train)
    losses, tokens = train_loop(model, sequences, config, pad_id=tokenizer.pad_token_id, desc="SFT")
    with atomic_outputs(out_dir) as stage:
        model.save_pretrained(stage, safe_serialization=True)
        tokenizer.save_pretrained(stage)
        return _finish("sft", losses, tokens, len(sequences), start, out_dir, config, stage)


def template_corpus(categories: Sequence[str], templates: PromptTemplates | None = None, *,
                    verbalizers: Sequence[str] = ("Yes", "No", "Y", "N", "y", "n"), repeat: int = 50) -> list[str]:
    """Every prompt template rendered with every category, the answer labels and the verbalizers, repeated
    ``repeat`` times: added to a from-scratch tokenizer's training texts so that category names, the
    question text, ``" Yes"``/``" No"`` and the choice labels get their own tokens (the yes/no probe needs
    single-token verbalizers)."""
    from spectra_probe.scorers import choice_labels

    b = PromptBuilder(templates or PromptTemplates())
    labels = choice_labels(len(categories))
    lines = [b.probe_prefix("") + b.probe_suffix(c) + " Yes" for c in categories]
    lines += [b.name_prefix("") + b.name_suffix(c) for c in categories]
    lines += [b.probe_prefix("") + b.choice_question(labels, categories) + b.choice_answer(lab) for lab in labels]
    lines += [b.dg_prompt("", 5, categories) + " " + ", ".join(categories[:5]),
              " ".join(verbalizers) + " " + " ".join(" " + v for v in verbalizers)]
    return lines * repeat


def build_from_scratch(texts: Sequence[str], out_dir, *, categories: Sequence[str] = (),
                       templates: PromptTemplates | None = None, vocab_size: int = TINY_MODEL["vocab_size"],
                       hidden_size: int = TINY_MODEL["hidden_size"], layers: int = TINY_MODEL["layers"],
                       heads: int = TINY_MODEL["heads"], kv_heads: int = TINY_MODEL["kv_heads"],
                       seed: int = 0) -> Path:
    """Train a byte-level BPE tokenizer on ``texts`` (plus :func:`template_corpus` of ``categories``), build
    a random small Qwen3 model and save both to ``out_dir`` (the starting point of CPT for the CPU demo)."""
    from spectra_probe.tiny import build_tiny_qwen3, save_tiny, train_tokenizer

    extra = template_corpus(categories, templates) if categories else []
    tokenizer = train_tokenizer(list(texts) + extra, vocab_size=vocab_size)
    model = build_tiny_qwen3(tokenizer, hidden_size=hidden_size, layers=layers, heads=heads, kv_heads=kv_heads,
                             seed=seed, initializer_range=0.02)
    with atomic_outputs(out_dir) as stage:
        save_tiny(model, tokenizer, stage)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built a %d-parameter Qwen3 model (vocab %d) in %s", n_params, len(tokenizer), out_dir)
    return Path(out_dir)


def load_tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(model_dir))


def read_train_result(path) -> dict:
    """The ``train_result.json`` a stage wrote (in its output directory)."""
    path = Path(path)
    path = path / "train_result.json" if path.is_dir() else path
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- data preparation (CLI and demo)


@dataclass(frozen=True)
class Prepared:
    """A data set split for alignment and evaluation.

    ``split``: the evaluation split (history = first 80%, future = last 20% per user); ``truth``: theta_* of
    the future window; ``sft``: the nested split of the history that SFT trains on; ``sft_truth``: its
    target distributions. CPT uses ``split.history`` only.
    """

    data: Interactions
    split: Split
    truth: DistributionTable
    sft: Split
    sft_truth: DistributionTable


def prepare(data: Interactions, *, history_fraction: float = 0.8, min_interactions: int = 5,
            mass: str = "split") -> Prepared:
    """Split ``data`` for the pipeline (evaluation split, its truth, the nested SFT split and its truth)."""
    from spectra_eval.data.splits import truth_table

    split = chronological_split(data, history_fraction=history_fraction, min_interactions=min_interactions, mass=mass)
    nested = sft_split(split, min_interactions=min_interactions)
    return Prepared(data=data, split=split, truth=truth_table(split, mass=mass), sft=nested,
                    sft_truth=truth_table(nested, mass=mass))


def contexts_for(history: pd.DataFrame, items: pd.DataFrame, users, *, tokenizer=None,
                 budget: int | None = None) -> pd.DataFrame:
    """``user_id, context, n_items`` via :func:`spectra_probe.textualize.textualize` (the shared template)."""
    from spectra_probe.textualize import textualize

    return textualize(history, items, users=users, budget=budget, tokenizer=tokenizer,
                      progress=len(users) > 2000)


def sft_examples_for(prepared: Prepared, tokenizer, *, budget: int | None, samples: Mapping[str, int] | None = None,
                     templates: PromptTemplates | None = None, seed: int = 42) -> list[SFTExample]:
    """SFT examples from the nested split: contexts of its history, targets drawn from its truth."""
    contexts = contexts_for(prepared.sft.history, prepared.data.items, prepared.sft.users, tokenizer=tokenizer,
                            budget=budget)
    return sft_examples(contexts, prepared.sft_truth, templates=templates, tokenizer=tokenizer, samples=samples,
                        seed=seed)


def hierarchy_partition(categories: Sequence[str], parents: Mapping[str, str]) -> dict[str, list[str]]:
    """``{L1: [category, ...]}`` for ``categories`` (label -> L1 in ``parents``), L1s in order of first use."""
    missing = [c for c in categories if c not in parents]
    if missing:
        raise SpectraInputError(f"category {missing[0]!r} has no L1 parent, so no hierarchy can be written")
    tree: dict[str, list[str]] = {}
    for c in categories:
        tree.setdefault(parents[c], []).append(c)
    return tree


def export_evaluation_inputs(prepared: Prepared, tokenizer, out_dir, *, budget: int | None = None,
                             n_strata: int = 5) -> dict[str, Path]:
    """Write the files ``spectra probe`` and ``spectra evaluate`` read, atomically, into ``out_dir``:
    ``contexts.csv`` (user_id, context), ``truth.csv``, ``meta.csv``, ``categories.txt`` and
    ``history-uhf.csv``, ``history-laplace.csv``, ``history-markov.csv``, and for two-level data
    (``Interactions.parents`` set, e.g. Yelp L2) ``hierarchy.json``: ``{L1: [category, ...]}`` in the exported
    labels, for ``spectra probe --hierarchy``. Returns name -> final path."""
    from spectra_eval.io import write_distribution_table, write_frame, write_text
    from spectra_eval.data.priors import history_priors
    from spectra_eval.data.splits import metadata_table

    split = prepared.split
    contexts = contexts_for(split.history, prepared.data.items, split.users, tokenizer=tokenizer, budget=budget)
    files = {}
    with atomic_outputs(out_dir) as stage:
        write_frame(stage / "contexts.csv", contexts[["user_id", "context"]])
        write_distribution_table(stage / "truth.csv", prepared.truth)
        write_frame(stage / "meta.csv", metadata_table(split, n_strata=n_strata))
        write_text(stage / "categories.txt", "\n".join(split.categories) + "\n")
        for name, table in history_priors(split).items():
            write_distribution_table(stage / f"{name}.csv", table)
        if prepared.data.parents is not None:
            write_json(stage / "hierarchy.json", hierarchy_partition(split.categories, prepared.data.parents))
        files = {p.stem: Path(out_dir) / p.name for p in stage.iterdir()}
    return files
