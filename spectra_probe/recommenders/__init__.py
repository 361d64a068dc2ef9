"""Base rankers for the downstream fusion (paper Appendix E): SASRec and GRU4Rec trained on the history split.

=================== =========================================================================================
``data``            training sequences, held-out items, seeded never-seen negatives, the candidates, item
                    categories and popularity files ``spectra fuse`` reads (numpy/pandas only)
``models``          SASRec and GRU4Rec (torch), documented against their papers
``training``        presets (``demo`` for 2 CPU cores, ``paper`` for a GPU), the all-position loop, scoring
``pipeline``        :func:`~.pipeline.recommend`: what ``spectra recommend`` runs
``demo_stage``      the demo's fusion stage: both models, then ``spectra fuse`` with the demo's probe
=================== =========================================================================================

Importing this package, ``data`` or ``training`` does not import torch; building a model does.
"""
