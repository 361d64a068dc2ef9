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

Why not a recommender library: measured on this stack (Python 3.11, numpy 2.4, pandas 3.1, torch 2.13, 2 CPU
cores), RecBole 1.2.1 fails to import on numpy 2 (``np.float_``) and pins ray <= 2.6.3; with a shim it trains
SASRec at ~223 s and GRU4Rec at ~147 s per epoch, and pandas 3 makes its ``fillna(inplace=True)`` a silent no-op.
Cornac 3.0.1 installs but its SASRec takes ~124 s per epoch here; replay-rec 0.22 needs pandas < 3 and recpack
0.3.6 numpy 1. The two compact models here train both in about a minute on 2 cores with one code path
(sequences, scoring, seeds) for both.
"""
