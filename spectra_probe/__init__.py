"""SPECTRA probe backend: LLM in, per-user category distributions out.

=============================== ==================================================================
where                           what (and where a new one goes)
=============================== ==================================================================
``backends/``                   the backend interface and its registry (a new backend: one module
                                + one line in ``backends.BACKENDS``)
``scoring/``                    the scorer base and one module per ``--method`` (a new scorer: one
                                module + one line in ``scoring.SCORERS``); hierarchical probing
``templates.py``                prompt templates as data and the prompt builder (context text:
                                :mod:`spectra_eval.data.textualize`)
``run/``                        a probe run: config, inputs, checkpoint, shards, outputs, runner
``training/``                   CPT + LoRA SFT: presets, examples, the torch loop, the export;
                                ``tiny.py`` builds tiny Qwen3 models locally
``recommenders/``               SASRec/GRU4Rec base rankers for ``spectra fuse``
``demo/``                       the CPU demo: pipeline and one module per stage
``commands/``                   the ``spectra probe | train | recommend | demo`` subcommands
=============================== ==================================================================

Importing this package (or its registries) does not import torch; backends import it when they are built.
"""
