"""Base rankers for the downstream fusion (paper Appendix E): SASRec and GRU4Rec trained on the history split.

``data`` (numpy/pandas) builds training sequences, held-out items, sampled negatives and the files
``spectra fuse`` reads; ``models`` and ``training`` hold the torch side (imported when a model is built);
``pipeline`` is what ``spectra recommend`` and the demo's fusion stage call.
"""
