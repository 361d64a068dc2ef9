"""Data sets, chronological splits, history priors and category taxonomies (pandas only, no torch).

Kept apart from evaluation: ``import spectra_eval.evaluation`` (and ``certify``, ``report``) loads none of
these modules. A new data set is one loader in :mod:`spectra_eval.data.datasets` returning
:class:`~spectra_eval.data.datasets.Interactions`.
"""
