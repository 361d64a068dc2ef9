"""SPECTRA evaluation core: distributions in, numbers out. Never imports torch.

In a notebook (:mod:`spectra_eval.api`)::

    import spectra_eval as se
    ev = se.evaluate(truth_df, {"probe": probe_df, "dg": dg_df}, reference="dg")
    ev                      # the summary and the per-user rows
    ev.to_frame(); ev.save("out/")
    cert = se.certify(truth_df, probe_df, dg_df, counts=counts_df)
    se.Report.from_dir("out/").to_markdown()

``evaluate``, ``certify``, ``fuse`` and ``steer`` take DataFrames (``user_id`` column or index) or checked
tables and return typed results (:class:`spectra_eval.results.Result`: ``summary()``, ``to_frame()``,
``to_dict()``/``from_dict()``, ``save(dir)``, notebook display). They are imported on first use, so
``import spectra_eval`` (and the ``spectra`` command) stays fast.

Where things live (``ls`` shows the layers, lowest first)
------------------------------------------------------
=========================  ============================================================================
``validation``, ``io``     the boundary: every public input check (one-line :class:`SpectraInputError`
                           naming file/row/column); tables, JSON documents, atomic outputs
``metrics/``               kernels by family (``divergences``, ``ranking``, ``exposure``, ``calibration``,
                           ``buckets``) and ``catalogue`` (one :class:`~spectra_eval.metrics.catalogue.Metric`
                           spec per reported metric)
``stats``, ``fairness``    paired tests, Holm, the shared paired bootstrap, ``MeanCI``/``PairedEffect``;
                           tail-preference quartiles and metadata strata
``evaluation``             :func:`~spectra_eval.evaluation.evaluate` -> typed ``Evaluation`` (``metrics.json``)
``certificates/``          ``bounds`` (TV-from-JS chains, population bounds), ``observed`` and ``latent``
                           certificates (``certificate.json``)
``analyses/``              ``fusion`` (Appendix E), ``steering``, ``lists``, and the robustness analyses
``data/``                  data sets, splits, history priors, DG decoders, taxonomies, ``prepare``,
                           ``synthetic`` (never imported by the evaluation, certificates or report)
``report/``                table model, markup, renderers, table modules, figures; ``DOCUMENTS`` and ``TABLES``
``results``, ``api``       :class:`~spectra_eval.results.Result`, the protocol of every result type; the
                           Python verbs (DataFrames in)
``commands/``, ``cli``     one module per ``spectra`` subcommand, listed in ``cli.COMMANDS``
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
from typing import TYPE_CHECKING, Any

from spectra_eval.io import CountTable, DistributionTable, align_tables, read_count_table, read_distribution_table
from spectra_eval.validation import SpectraInputError, check_distributions

if TYPE_CHECKING:
    from spectra_eval.analyses.fusion import FusionResult
    from spectra_eval.analyses.steering import SteeringResult
    from spectra_eval.api import certify, evaluate, fuse, steer
    from spectra_eval.certificates.observed import Certificate
    from spectra_eval.data.prepare import prepare
    from spectra_eval.evaluation import Evaluation
    from spectra_eval.report import Report
    from spectra_eval.results import Result

__version__ = "0.1.0"

#: public names imported on first use (module that defines each)
_LAZY = {
    "evaluate": "spectra_eval.api", "certify": "spectra_eval.api", "fuse": "spectra_eval.api",
    "steer": "spectra_eval.api", "prepare": "spectra_eval.data.prepare", "Report": "spectra_eval.report",
    "Result": "spectra_eval.results",
    "Evaluation": "spectra_eval.evaluation", "Certificate": "spectra_eval.certificates.observed",
    "FusionResult": "spectra_eval.analyses.fusion", "SteeringResult": "spectra_eval.analyses.steering",
}

__all__ = [
    "evaluate", "certify", "fuse", "steer", "prepare", "Report",
    "Result", "Evaluation", "Certificate", "FusionResult", "SteeringResult",
    "DistributionTable", "CountTable", "read_distribution_table", "read_count_table", "align_tables",
    "SpectraInputError", "check_distributions", "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spectra_eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
