"""``spectra train``: CPT then LoRA SFT alignment training (transformers + peft).

Two stages, run one after the other. On a GPU with a local Qwen3-8B (the paper's C8 recipe, the default
``--preset c8``)::

    spectra train --stage cpt --model /models/Qwen3-8B --dataset ml-100k --out runs/cpt
    spectra train --stage sft --model runs/cpt --dataset ml-100k --out runs/sft --export runs/data

On a CPU, a small Qwen3-architecture model trained from scratch (``--preset tiny``)::

    spectra train --stage cpt --from-scratch --preset tiny --dataset ml-100k --out runs/cpt
    spectra train --stage sft --preset tiny --model runs/cpt --dataset ml-100k --out runs/sft --export runs/data

``--preset tiny`` is the demo's :data:`~spectra_probe.training.presets.DEMO`: its SFT trains every weight
(``--sft-mode full``; probe with ``--model runs/sft``, no adapter) on the ``yesno_dist`` mixture over three
history windows; the reasons and measurements are in ``spectra_probe/training/presets.py``.

``--dataset`` names the interactions (``ml-100k`` = MovieLens-100k bundled with recbole;
``movielens:DIR`` any MovieLens release; ``table:FILE`` a generic user_id/item_id/timestamp/categories table;
``yelp:BUSINESS,REVIEW,HIERARCHY[,l1|l2]``); the command splits it chronologically (80/20 per user), builds
the CPT corpus from the history windows and item metadata, and the SFT examples from a nested split of the
history (so the evaluation window is never trained on). ``--export DIR`` also writes what ``spectra probe``
and ``spectra evaluate`` read (what ``spectra prepare`` writes, contexts cut with the trained tokenizer): ``contexts.csv``, ``truth.csv``, ``meta.csv``, ``categories.txt``, the
history priors, ``requests.csv`` (seeded steering requests for ``spectra probe --requests``: per user one per
direction and granularity, targets from categories the user has and has not seen) and ``items.csv``. Instead of ``--dataset``, ``--data FILE`` takes a prebuilt CSV/Parquet: a ``text`` column
for CPT, ``prompt`` and ``target`` columns for SFT.

``--from-scratch`` (CPT only) trains a tokenizer on the corpus and builds a small random Qwen3 model first
(the CPU demo's path); otherwise ``--model`` is a local ``save_pretrained`` directory. Defaults are the
paper's C8 recipe (lr 8e-5, cosine, 10% warm-up, AdamW, LoRA r=32, alpha=64, dropout 0.1 on all attention
and MLP projections, batch 6 x 2 accumulation).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from spectra_eval.validation import SpectraInputError

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    from spectra_eval.data.datasets import DATASET_SPECS
    from spectra_probe.training import C8_TARGET_MODULES, TINY_MODEL, TrainConfig

    d = TrainConfig()
    parser.add_argument("--stage", choices=("cpt", "sft"), required=True, help="training stage")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="model directory (save_pretrained layout; SFT: the CPT output)")
    src.add_argument("--from-scratch", action="store_true",
                     help="CPT only: train a tokenizer on the corpus and build a small Qwen3 model")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--dataset", help=DATASET_SPECS)
    data.add_argument("--data", help="prebuilt CSV/Parquet: column 'text' (cpt) or 'prompt','target' (sft)")
    parser.add_argument("--out", required=True,
                        help="output directory (model+tokenizer for cpt; adapter for sft, or the model with "
                             "--sft-mode full)")
    parser.add_argument("--export", help="also write contexts/truth/meta/categories/priors/steering requests/items "
                                         "for probe, evaluate and steer")
    parser.add_argument("--preset", choices=("c8", "tiny"), default="c8",
                        help="defaults for unset flags: c8 = the paper's recipe (8B model, GPU); tiny = the CPU "
                             "demo's small model (full-weight SFT at lr 1e-3, batch 16, yesno_dist mixture, "
                             "three SFT windows)")
    parser.add_argument("--context-tokens", type=int, default=None, help="token budget of a context (c8 1024, tiny 128)")
    parser.add_argument("--samples", action="append", default=None, metavar="TASK=N",
                        help="SFT examples per user and task (name, yesno, choice, dg, yesno_dist); default c8: "
                             "name=4, tiny: yesno_dist=2 name=1 choice=1 dg=1; repeatable")
    parser.add_argument("--windows", default=None, metavar="F,F",
                        help="further SFT windows: history fractions at which each user's history is cut again, "
                             "each adding --samples examples per user (c8: none; tiny: 0.5,0.65)")
    parser.add_argument("--min-interactions", type=int, default=5, help="drop users with fewer (default 5)")
    g = parser.add_argument_group("optimisation (defaults from --preset; c8 values shown)")
    g.add_argument("--lr", type=float, help=f"peak learning rate ({d.learning_rate:g})")
    g.add_argument("--epochs", type=float, help="passes over the data (1)")
    g.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    g.add_argument("--batch-size", type=int, help=f"sequences per micro-batch ({d.batch_size})")
    g.add_argument("--grad-accum", type=int, help=f"micro-batches per step ({d.grad_accum})")
    g.add_argument("--warmup-ratio", type=float, help=f"warm-up fraction ({d.warmup_ratio})")
    g.add_argument("--weight-decay", type=float, help=f"AdamW weight decay ({d.weight_decay})")
    g.add_argument("--max-length", type=int, help=f"tokens per sequence ({d.max_length})")
    g.add_argument("--lora-r", type=int, help=f"LoRA rank ({d.lora_r})")
    g.add_argument("--lora-alpha", type=int, help=f"LoRA alpha ({d.lora_alpha})")
    g.add_argument("--lora-dropout", type=float, help=f"LoRA dropout ({d.lora_dropout})")
    g.add_argument("--target-modules", help=f"comma-separated LoRA targets ({','.join(C8_TARGET_MODULES)})")
    g.add_argument("--cpt-mode", choices=("full", "lora"),
                   help="CPT trains a LoRA adapter merged afterwards (lora; default) or all weights (full; "
                        "the default with --from-scratch)")
    g.add_argument("--sft-mode", choices=("full", "lora"),
                   help="SFT trains a LoRA adapter (lora; c8) or every weight (full; tiny)")
    g.add_argument("--seed", type=int, help=f"random seed ({d.seed})")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N (auto)")
    g.add_argument("--dtype", help="auto | float32 | bfloat16 | float16 (auto: bf16 on cuda, fp32 on cpu)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    s = parser.add_argument_group("--from-scratch model size")
    for name, value in TINY_MODEL.items():
        s.add_argument(f"--{name.replace('_', '-')}", type=int, default=value, help=f"default {value}")


_FLAGS = {"lr": "learning_rate", "epochs": "epochs", "max_steps": "max_steps", "batch_size": "batch_size",
          "grad_accum": "grad_accum", "warmup_ratio": "warmup_ratio", "weight_decay": "weight_decay",
          "max_length": "max_length", "lora_r": "lora_r", "lora_alpha": "lora_alpha",
          "lora_dropout": "lora_dropout", "cpt_mode": "cpt_mode", "sft_mode": "sft_mode", "seed": "seed",
          "device": "device", "dtype": "dtype"}


def _config(args):
    """The preset's :class:`TrainConfig` for the stage, with every flag the user set applied on top."""
    from spectra_probe.training import TINY_CPT, TINY_SFT, TrainConfig

    base = (TINY_CPT if args.stage == "cpt" else TINY_SFT) if args.preset == "tiny" else TrainConfig()
    changes = {field: getattr(args, flag) for flag, field in _FLAGS.items() if getattr(args, flag) is not None}
    if args.from_scratch and args.cpt_mode is None:
        changes["cpt_mode"] = "full"  # a random model has nothing for an adapter to adapt
    if args.target_modules:
        changes["target_modules"] = tuple(m.strip() for m in args.target_modules.split(",") if m.strip())
    return dataclasses.replace(base, **changes)


def _samples(values, preset: str) -> dict[str, int]:
    from spectra_probe.training import C8_SAMPLES, TINY_SAMPLES

    if not values:
        return dict(TINY_SAMPLES if preset == "tiny" else C8_SAMPLES)
    out = {}
    for v in values:
        task, _, n = v.partition("=")
        if not n.isdigit():
            raise SpectraInputError(f"--samples {v!r}: expected TASK=N, e.g. name=4")
        out[task.strip()] = int(n)
    return out


def _windows(value: str | None, preset: str) -> tuple[float, ...]:
    from spectra_probe.training import DEMO

    if value is None:
        return tuple(DEMO.windows) if preset == "tiny" else ()
    try:
        windows = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise SpectraInputError(f"--windows {value!r}: expected comma-separated fractions, e.g. 0.5,0.65") from None
    bad = [w for w in windows if not 0 < w < 1]
    if bad:
        raise SpectraInputError(f"--windows {value!r}: {bad[0]} is not a history fraction in (0, 1)")
    return windows


def _read_columns(path: str, columns: tuple[str, ...]):
    from spectra_eval.io import read_frame

    frame = read_frame(path, string_columns=columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SpectraInputError(f"{path}: no {missing[0]!r} column")
    for c in columns:
        bad = frame[c].isna()
        if bad.any():
            raise SpectraInputError(f"{path}: row {int(bad.to_numpy().argmax()) + 1}, column {c!r}: empty value")
    return frame


def run(args) -> int:
    import torch

    from spectra_eval.data.datasets import load_dataset

    from spectra_probe import training as T

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.from_scratch and args.stage != "cpt":
        raise SpectraInputError("--from-scratch builds a new model and is only valid with --stage cpt")
    config = _config(args)
    budget = args.context_tokens or (T.TINY_CONTEXT_TOKENS if args.preset == "tiny" else 1024)
    out = Path(args.out)
    prepared = None
    if args.dataset:
        prepared = T.prepare(load_dataset(args.dataset), min_interactions=args.min_interactions)
    if args.stage == "cpt":
        if prepared is not None:
            texts = T.cpt_corpus_for(prepared)
        else:
            texts = _read_columns(args.data, ("text",))["text"].tolist()
        model_dir = args.model
        if args.from_scratch:
            model_dir = out.with_name(out.name + "-init")
            categories = prepared.data.categories if prepared is not None else ()
            T.build_from_scratch(texts, model_dir, categories=categories, vocab_size=args.vocab_size, hidden_size=args.hidden_size,
                                 layers=args.layers, heads=args.heads, kv_heads=args.kv_heads, seed=config.seed)
        result = T.run_cpt(model_dir, texts, out, config)
    else:
        if prepared is not None:
            tokenizer = T.load_tokenizer(args.model)
            examples = T.sft_examples_for(prepared, tokenizer, budget=budget,
                                          samples=_samples(args.samples, args.preset), seed=config.seed,
                                          windows=_windows(args.windows, args.preset))
        else:
            frame = _read_columns(args.data, ("prompt", "target"))
            examples = [T.SFTExample(str(u), "custom", p, t) for u, p, t in zip(
                frame.get("user_id", range(len(frame))), frame["prompt"], frame["target"])]
        result = T.run_sft(args.model, examples, out, config)
    if args.export:
        if prepared is None:
            raise SpectraInputError("--export needs --dataset")
        T.export_evaluation_inputs(prepared, T.load_tokenizer(out if args.stage == "cpt" else args.model),
                                   args.export, budget=budget)
    print(f"spectra train {args.stage}: {result.steps} steps, {result.sequences} sequences, "
          f"loss {result.first_loss:.3f} -> {result.last_loss:.3f} in {result.seconds:.0f} s; saved {out}")
    return 0
