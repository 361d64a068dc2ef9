"""SPECTRA probe backend: LLM in, per-user category distributions out.

=============================== ==================================================================
where                           what (and where a new one goes)
=============================== ==================================================================
``backends/``                   the backend interface and its registry (a new backend: one module
                                + one line in ``backends.BACKENDS``)
``scoring/``                    the scorer base and one module per ``--method`` (a new scorer: one
                                module + one line in ``scoring.SCORERS``); hierarchical probing
``templates.py``                prompt templates as data and the prompt builder
``textualize.py``               a user's history as context text (shared by training and probing)
``run/``                        a probe run: config, inputs, checkpoint, shards, outputs, runner
``training/``                   CPT + LoRA SFT: presets, examples, the torch loop, the export
``commands/``                   the ``spectra probe | train | demo`` subcommands
``demo.py``, ``tiny.py``        the CPU demo; tiny Qwen3 models built locally
=============================== ==================================================================

Importing this package (or its registries) does not import torch; backends import it when they are built.
"""
