"""Alignment training: continued pretraining (CPT) then LoRA supervised fine-tuning (SFT), and the export of
what the probe and the evaluation read.

================== =========================================================================================
module             role
================== =========================================================================================
:mod:`.presets`    :class:`TrainConfig` (the paper's C8 recipe as defaults) and the CPU demo's :data:`DEMO`
:mod:`.examples`   torch-free data: :func:`prepare` (evaluation split + nested SFT split), CPT corpus, SFT
                   examples, token sequences
:mod:`.loop`       torch: :func:`train_loop`, :func:`run_cpt`, :func:`run_sft`, :func:`build_from_scratch`
:mod:`.export`     :func:`export_evaluation_inputs`: contexts, truth, metadata, categories, priors
================== =========================================================================================

The pipeline, shared by ``spectra train`` and ``spectra demo``::

    prepared = prepare(interactions)
    corpus = cpt_corpus_for(prepared)
    build_from_scratch(corpus, base_dir, categories=...)          # a tiny model (or use a local 8B one)
    run_cpt(base_dir, corpus, cpt_dir, config)
    run_sft(cpt_dir, sft_examples_for(prepared, load_tokenizer(cpt_dir), budget=...), sft_dir, config)
    export_evaluation_inputs(prepared, load_tokenizer(cpt_dir), data_dir, budget=...)

Importing this package does not import torch.
"""
from __future__ import annotations

from .examples import (IGNORE_INDEX, NO_ANSWER, SFT_TASKS, YES_ANSWER, DistributionExample, Prepared, SFTExample,
                       contexts_for, cpt_corpus, cpt_corpus_for, encode_distributions, encode_examples, pack_corpus,
                       prepare, sft_examples, sft_examples_for, sft_split, template_corpus)
from .export import export_evaluation_inputs, hierarchy_partition
from .loop import (TrainResult, build_from_scratch, load_model, load_tokenizer, lora_config, read_train_result,
                   run_cpt, run_sft, train_loop)
from .presets import (C8_SAMPLES, C8_TARGET_MODULES, DEMO, TINY_CONTEXT_TOKENS, TINY_CPT, TINY_MODEL, TINY_SAMPLES,
                      TINY_SFT, TINY_WINDOWS, DemoPreset, TrainConfig)

__all__ = ["C8_SAMPLES", "C8_TARGET_MODULES", "DEMO", "DemoPreset", "DistributionExample", "IGNORE_INDEX",
           "NO_ANSWER", "SFT_TASKS", "TINY_CONTEXT_TOKENS", "TINY_CPT", "TINY_MODEL", "TINY_SAMPLES",
           "TINY_SFT", "TINY_WINDOWS", "YES_ANSWER", "Prepared", "SFTExample", "TrainConfig", "TrainResult",
           "build_from_scratch", "contexts_for", "cpt_corpus", "cpt_corpus_for", "encode_distributions",
           "encode_examples", "export_evaluation_inputs", "hierarchy_partition", "load_model",
           "load_tokenizer", "lora_config", "pack_corpus", "prepare", "read_train_result", "run_cpt",
           "run_sft", "sft_examples", "sft_examples_for", "sft_split", "template_corpus", "train_loop"]
