"""The torch side of training: one plain loop (:func:`train_loop`), the CPT and LoRA SFT stages, and a tiny
model built from scratch.

Both stages are one PyTorch loop (AdamW, cosine schedule with linear warm-up, gradient accumulation and
clipping, tqdm progress, a loss per optimizer step) around a transformers causal LM, so the code path is the
same for a tiny CPU model and for Qwen3-8B on a GPU:

* **CPT** (:func:`run_cpt`): causal-LM loss on every token of a domain corpus
  (:func:`~spectra_probe.training.examples.cpt_corpus`), packed into blocks of ``max_length`` tokens.
  ``cpt_mode='lora'`` (default, for an 8B model) trains a LoRA adapter with the C8 settings and merges it
  into the weights; ``'full'`` trains every weight (needed for a model built from scratch). The result is
  saved with ``save_pretrained`` (model and tokenizer), a directory ``from_pretrained`` reads back.
* **SFT** (:func:`run_sft`): a LoRA adapter (C8 defaults: r=32, alpha=64, dropout 0.1 on q/k/v/o and
  gate/up/down projections, lr 8e-5, cosine, 10% warm-up, AdamW) trained on (prompt, target) pairs, loss on
  the target tokens only. The adapter (and the tokenizer, so the directory is self-contained) is saved with
  ``save_pretrained``; the probe reloads it with ``PeftModel.from_pretrained``. ``sft_mode='full'`` (the CPU
  demo) trains and saves every weight instead. ``yesno_dist`` examples are trained through the yes/no
  probe's own scores (:func:`distribution_scores`), packed like the probe's shared-prefix engine packs them.

torch, transformers and peft are imported inside the functions that need them.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spectra_eval.io import atomic_outputs, write_json
from spectra_eval.validation import SpectraInputError
from spectra_probe.templates import PromptTemplates
from spectra_probe.training.tiny import build_tiny_qwen3, save_tiny, train_tokenizer

from spectra_probe.scoring.base import resolve_yes_no

from .examples import (IGNORE_INDEX, NO_ANSWER, YES_ANSWER, DistributionExample, EncodedDistribution, SFTExample,
                       encode_distributions, encode_examples, pack_corpus, template_corpus)
from .presets import TINY_MODEL, TrainConfig

log = logging.getLogger(__name__)


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


def train_loop(model, sequences: Sequence[tuple[list[int], list[int]] | EncodedDistribution], config: TrainConfig, *,
               pad_id: int, desc: str = "train", answer_ids: tuple[Sequence[int], Sequence[int]] = ((), ())
               ) -> tuple[list[float], int]:
    """Train ``model`` in place on (ids, labels) sequences and :class:`EncodedDistribution` items; return
    (loss per optimizer step, target tokens).

    Each epoch shuffles the items (``config.seed``); in a micro-batch the sequences are right-padded (labels
    ``IGNORE_INDEX`` on padding) and their loss is the mean token cross-entropy over the labelled tokens, while
    the distributions' loss is :func:`distribution_loss` (``answer_ids`` = the yes and no token ids it reads);
    the two are weighted by their item counts, and the micro-batch losses averaged over ``grad_accum``.
    Learning rate: linear warm-up over ceil(warmup_ratio * steps) steps, then cosine decay to 0.
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
        if not idx:
            return None
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
            batch = next_batch()
            lists = [sequences[i] for i in batch if isinstance(sequences[i], EncodedDistribution)]
            pointwise = collate([i for i in batch if not isinstance(sequences[i], EncodedDistribution)])
            loss = 0.0
            if pointwise is not None:
                ids, mask, labels = pointwise
                share = (len(batch) - len(lists)) / len(batch)
                loss = share * model(input_ids=ids, attention_mask=mask, labels=labels).loss
                tokens += int((labels[:, 1:] != IGNORE_INDEX).sum())
            if lists:
                loss = loss + len(lists) / len(batch) * distribution_loss(model, lists, answer_ids, pad_id=pad_id)
                tokens += sum(len(d.group.tails) for d in lists)
            loss = loss / config.grad_accum
            loss.backward()
            total += float(loss.detach())
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


def distribution_scores(model, items: Sequence[EncodedDistribution], answer_ids: tuple[Sequence[int], Sequence[int]],
                        *, pad_id: int):
    """(n_items, K) tensor of S_k = mean yes-token logit - mean no-token logit after the context and tail k:
    the yes/no probe's score (Eq. 1), computed as its shared-prefix engine computes it (each item one row:
    the context once, then every tail, each tail seeing only the context and itself), with gradients. The
    forward, the decoder, the output head and any final-logit soft-capping are the backend's own
    (:func:`~spectra_probe.backends.packed.packed_forward`, :func:`~spectra_probe.backends.packed.model_parts`,
    :func:`~spectra_probe.backends.packed.head_logits`)."""
    import torch

    from spectra_probe.backends.packed import head_logits, model_parts, packed_forward

    yes, no = (torch.tensor(list(i), dtype=torch.long) for i in answer_ids)
    if not len(yes) or not len(no):
        raise SpectraInputError("yesno_dist training needs the yes and no answer token ids")
    _, decoder, head, softcap = model_parts(model)
    param = next(model.parameters())
    device = param.device
    hidden, layouts = packed_forward(decoder, [[d.group] for d in items], pad_id, device, param.dtype)
    rows = [r for r, lay in enumerate(layouts) for _ in lay.tail_starts[0]]
    ends = [start + len(tail) - 1 for d, lay in zip(items, layouts)
            for start, tail in zip(lay.tail_starts[0], d.group.tails)]
    logits = head_logits(head, softcap, hidden[rows, ends])
    score = logits[:, yes.to(device)].mean(-1) - logits[:, no.to(device)].mean(-1)
    return score.view(len(items), -1)


def distribution_loss(model, items: Sequence[EncodedDistribution], answer_ids: tuple[Sequence[int], Sequence[int]],
                      *, pad_id: int):
    """Mean over ``items`` of the cross-entropy between each target and softmax_k(S_k)
    (:func:`distribution_scores`): the probe's theta_S at tau = 1 fitted to the target distribution."""
    import torch

    score = distribution_scores(model, items, answer_ids, pad_id=pad_id)
    target = torch.tensor([d.target for d in items], dtype=torch.float32, device=score.device)
    return -(target * torch.log_softmax(score, dim=-1)).sum(-1).mean()


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


def lora_config(config: TrainConfig):
    """The peft ``LoraConfig`` of ``config`` (rank, alpha, dropout, target modules; causal LM)."""
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")


def _save(stage: str, model, tokenizer, losses, tokens: int, n_sequences: int, start: float, out_dir,
          config: TrainConfig) -> TrainResult:
    """Save model (or adapter) and tokenizer with ``save_pretrained`` and ``train_result.json``, atomically."""
    result = TrainResult(stage=stage, steps=len(losses), sequences=n_sequences, tokens=tokens,
                         seconds=time.perf_counter() - start, losses=tuple(losses), out_dir=str(out_dir))
    with atomic_outputs(out_dir) as stage_dir:
        model.save_pretrained(stage_dir, safe_serialization=True)
        tokenizer.save_pretrained(stage_dir)
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

        model = get_peft_model(model, lora_config(config))
    losses, tokens = train_loop(model, sequences, config, pad_id=tokenizer.pad_token_id, desc="CPT")
    if config.cpt_mode == "lora":
        model = model.merge_and_unload()
    return _save("cpt", model, tokenizer, losses, tokens, len(sequences), start, out_dir, config)


def run_sft(model_dir, examples: Sequence[SFTExample | DistributionExample], out_dir, config: TrainConfig = TrainConfig()) -> TrainResult:
    """SFT of the model in ``model_dir`` on ``examples`` (loss on targets only), saved with the tokenizer to
    ``out_dir`` with ``save_pretrained`` (atomically): a LoRA adapter (``sft_mode='lora'``, the paper's; probe
    with ``--model model_dir --adapter out_dir``) or the whole model (``'full'``; probe with ``--model out_dir``)."""
    start = time.perf_counter()
    model, tokenizer = load_model(model_dir, config)
    lists = [e for e in examples if isinstance(e, DistributionExample)]
    sequences = encode_examples([e for e in examples if not isinstance(e, DistributionExample)], tokenizer,
                                config.max_length)
    sequences += encode_distributions(lists, tokenizer)
    answers = ((), ())
    if lists:  # the probe's verbalizers, resolved as the probe resolves them
        answers = tuple(tuple(v.token_id for v in side)
                        for side in resolve_yes_no(tokenizer, [YES_ANSWER], [NO_ANSWER]))
    if config.sft_mode == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(config))
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("SFT (%s): %d examples, %d trainable parameters", config.sft_mode, len(sequences), n_train)
    losses, tokens = train_loop(model, sequences, config, pad_id=tokenizer.pad_token_id, desc="SFT",
                                answer_ids=answers)
    return _save("sft", model, tokenizer, losses, tokens, len(sequences), start, out_dir, config)


def build_from_scratch(texts: Sequence[str], out_dir, *, categories: Sequence[str] = (),
                       templates: PromptTemplates | None = None, vocab_size: int = TINY_MODEL["vocab_size"],
                       hidden_size: int = TINY_MODEL["hidden_size"], layers: int = TINY_MODEL["layers"],
                       heads: int = TINY_MODEL["heads"], kv_heads: int = TINY_MODEL["kv_heads"],
                       seed: int = 0) -> Path:
    """Train a byte-level BPE tokenizer on ``texts`` (plus :func:`template_corpus` of ``categories``), build
    a random small Qwen3 model and save both to ``out_dir`` (the starting point of CPT for the CPU demo)."""
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
    """The tokenizer saved in ``model_dir`` (a stage's output directory)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(model_dir))


def read_train_result(path) -> dict:
    """The ``train_result.json`` a stage wrote (in its output directory)."""
    path = Path(path)
    path = path / "train_result.json" if path.is_dir() else path
    return json.loads(path.read_text(encoding="utf-8"))
