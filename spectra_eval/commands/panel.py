"""``spectra panel --run LABEL=DIR ... --axis NAME --out DIR``: a robustness panel over several evaluate runs.

Writes ``OUT/panel.json`` (schema ``spectra.panel/1``; ``panel-NAME.json`` with ``--name``), then renders it
with ``spectra report`` into the same directory unless ``--no-report``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
Each --run is one spectra evaluate --out directory (or its metrics.json) at one setting of the axis; rows keep
the order given. Cells are copied from each run's metrics.json: methods.METHOD.METRIC.{mean, ci_low, ci_high}
(a metric without a CI, such as top1_ece, has ci_low/ci_high null). Per row, ordering_holds says whether the
probe's cohort-mean JS is below the reference's (the run's paired mean difference < 0) and p is that run's
paired test p on per-user JS; spread gives, per method and metric, min, max and the sample SD (ddof 1) over the
runs. The same --reference must be every run's evaluate reference."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=DIR",
                        help="a run's label and its spectra evaluate --out directory (repeat, in axis order)")
    parser.add_argument("--axis", required=True, metavar="NAME",
                        help="what varies across the runs (e.g. taxonomy, context window, template, stage)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument("--metric", action="append", default=None, metavar="KEY",
                        help="catalogue metric key of metrics.json (repeat; default ndcg@10 and js; dotted keys "
                             "reach nested numbers, e.g. ece.overall; top1_ece)")
    parser.add_argument("--method", action="append", default=None, metavar="NAME",
                        help="methods to show (repeat; default every method of each run)")
    parser.add_argument("--reference", default=None, help="reference method (default: the first run's reference)")
    parser.add_argument("--probe", default=None,
                        help="method whose ordering against the reference is checked (default: the first other "
                             "method of the first run)")
    parser.add_argument("--name", default=None, help="write panel-NAME.json (several panels in one directory)")
    parser.add_argument("--no-report", action="store_true", help="write panel.json only (no tables or figures)")


def run(args) -> int:
    from spectra_eval.analyses.panels import DEFAULT_METRICS, panel
    from spectra_eval.commands.evaluate import parse_preds

    runs = parse_preds(args.run, "--run")
    result = panel(runs, args.axis, reference=args.reference, probe=args.probe,
                   metrics=args.metric or DEFAULT_METRICS, methods=args.method, name=args.name or "panel")
    result.save(args.out)
    print(result.summary())
    print(f"wrote {Path(args.out) / result.file}")
    if not args.no_report:
        from spectra_eval.commands import report

        return report.run(argparse.Namespace(dir=str(args.out), out=None, caption_prefix="", label_prefix="tab:",
                                             no_pdf=True))
    return 0
