"""Alignment training: continued pretraining (CPT) then LoRA supervised fine-tuning (SFT), and the export of
what the probe and the evaluation read.

================== =========================================================================================
module             role
================== =========================================================================================
:mod:`.presets`    :class:`TrainConfig` (the paper's C8 recipe as defaults) and the CPU demo's :data:`DEMO`
:mod:`.examples`   torch-free data: :func:`prepare` (evaluation split + nested SFT split), CPT corpus, SFT
                   examples, token sequences
:mod:`.loop`       torch: the loop (``train_loop``), :func:`run_cpt`, :func:`run_sft`,
                   :func:`build_from_scratch`
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

# Only the names used through the package (``spectra train``, ``spectra demo``, tests); the rest is imported
# from its module (``.examples``, ``.loop``, ``.presets``, ``.export``).
from .examples import Prepared, SFTExample, cpt_corpus_for, prepare, sft_examples_for
from .export import export_evaluation_inputs
from .loop import build_from_scratch, load_tokenizer, read_train_result, run_cpt, run_sft
from .presets import (C8_SAMPLES, C8_TARGET_MODULES, DEMO, TINY_CONTEXT_TOKENS, TINY_CPT, TINY_MODEL, TINY_SAMPLES,
                      TINY_SFT, TrainConfig)

__all__ = ["C8_SAMPLES", "C8_TARGET_MODULES", "DEMO", "TINY_CONTEXT_TOKENS", "TINY_CPT", "TINY_MODEL", "TINY_SAMPLES",
           "TINY_SFT", "Prepared", "SFTExample", "TrainConfig", "build_from_scratch", "cpt_corpus_for",
           "export_evaluation_inputs", "load_tokenizer", "prepare", "read_train_result", "run_cpt", "run_sft",
           "sft_examples_for"]
