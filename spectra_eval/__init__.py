"""SPECTRA evaluation core: distributions in, numbers out.

This package never imports torch; the probe backend lives in :mod:`spectra_probe`.
"""
from spectra_eval.validation import SpectraInputError, check_distributions
from spectra_eval.io import DistributionTable, read_distribution_table, align_tables

__version__ = "0.1.0"
__all__ = [
    "SpectraInputError",
    "check_distributions",
    "DistributionTable",
    "read_distribution_table",
    "align_tables",
    "__version__",
]
