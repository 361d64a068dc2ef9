"""SPECTRA evaluation core: distributions in, numbers out. Never imports torch.

Where things live (one module per idea)
---------------------------------------
=========================  ============================================================================
``validation``             every input check (one-line :class:`SpectraInputError` naming file/row/column)
``io``                     distribution and count tables, JSON documents, atomic outputs
``catalogue``              one :class:`~spectra_eval.metrics.catalogue.Metric` spec per reported metric
``divergences``,           metric kernels by family: each public function checks its input once and calls
``ranking``, ``exposure``, an unchecked ``_kernel`` that the catalogue (and the evaluation) call directly
``calibration``,
``buckets``
``stats``                  paired tests, Holm, the shared paired bootstrap, :class:`~spectra_eval.stats.PairedEffect`
``fairness``               tail-preference quartiles and metadata strata
``evaluation``             :func:`~spectra_eval.evaluation.evaluate` -> typed ``Evaluation`` (``metrics.json``)
``theory``, ``certify``,   TV-from-JS chains and population bounds; observed certificates; latent certificates
``latent``                 from counts (``certificate.json``)
``decoders``               DG list decoders
``lists``                  recommendation lists as category distributions; ``taste_js`` to the history
``steering``               steerability of a probed distribution under stated preferences (``steering.json``)
``fusion``                 SPECTRA as a category prior on a base ranker, paper Appendix E (``fusion.json``)
``data/``                  data sets, chronological splits, history priors, taxonomies (never imported by
                           the evaluation, certificates or report)
``report/``                table model, markup, renderers, table modules, figures; ``DOCUMENTS`` and ``TABLES``
``commands/``              one module per ``spectra`` subcommand, listed in ``cli.COMMANDS``
=========================  ============================================================================

Adding things
-------------
* a metric: a kernel in its family module (plus a checked public function), then one
  :class:`~spectra_eval.metrics.catalogue.Metric` line in :func:`spectra_eval.metrics.catalogue.catalogue`;
* a table: one function in a ``report`` table module plus one :class:`~spectra_eval.report.TableSpec` line in
  :data:`spectra_eval.report.TABLES` (a new JSON output: one line in :data:`spectra_eval.report.DOCUMENTS`);
* a figure: one function plus one :class:`~spectra_eval.report.figures.FigureSpec` line;
* a subcommand: one module in ``commands/`` (``configure``, ``run``) plus one line in ``cli.COMMANDS``;
* a data set: one loader in :mod:`spectra_eval.data.datasets` returning ``Interactions``.
"""
from spectra_eval.validation import SpectraInputError, check_distributions
from spectra_eval.io import DistributionTable, read_distribution_table, align_tables

__version__ = "0.1.0"
__all__ = [
    "prepare",
    "SpectraInputError",
    "check_distributions",
    "DistributionTable",
    "read_distribution_table",
    "align_tables",
    "__version__",
]


def __getattr__(name: str):
    """``prepare`` (:func:`spectra_eval.data.prepare.prepare`) is imported on first use: ``import spectra_eval``
    stays as light as the evaluation core."""
    if name == "prepare":
        from spectra_eval.data.prepare import prepare

        return prepare
    raise AttributeError(f"module 'spectra_eval' has no attribute {name!r}")
