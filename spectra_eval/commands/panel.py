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
    parser.add_argument("--run", action="append", default=None, metavar="LABEL=DIR",
                        help="a run's label and its spectra evaluate --out directory (repeat, in axis order)")
    parser.add_argument("--cells", default=None, metavar="DIR",
                        help="instead of --run: a spectra evaluate --meta output; each level of the --by column of "
                             "its metadata table becomes a row, evaluated on that level's users (same tables, "
                             "reference, bootstrap, seed and bins as DIR's settings)")
    parser.add_argument("--by", default="cell", metavar="COLUMN",
                        help="metadata column whose levels are the rows with --cells (default: cell, e.g. CW3-LT)")
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

    from spectra_eval.validation import SpectraInputError

    if bool(args.run) == bool(args.cells):
        raise SpectraInputError("give either --run LABEL=DIR (repeated) or --cells DIR")
    runs = parse_runs(args.run) if args.run else cells_from(args.cells, args.by)
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


def parse_runs(items: list[str]) -> dict[str, str]:
    """``["LABEL=DIR", ...]`` -> ``{LABEL: DIR}`` (split at the first ``=``); a malformed or repeated label is an
    input error."""
    from spectra_eval.validation import SpectraInputError

    runs: dict[str, str] = {}
    for item in items:
        label, sep, path = (x.strip() for x in item.partition("="))
        if not sep or not label or not path:
            raise SpectraInputError(f"--run {item!r}: expected LABEL=DIR (a label without '=')")
        if label in runs:
            raise SpectraInputError(f"--run {item!r}: label {label!r} is given more than once")
        runs[label] = path
    return runs


def cells_from(directory, column: str) -> dict:
    """The --cells rows: re-read the tables an evaluate --meta run used (its settings) and evaluate each level."""
    from spectra_eval.analyses.panels import evaluate_cells, load_metrics
    from spectra_eval.io import read_distribution_table, read_frame
    from spectra_eval.validation import SpectraInputError

    doc, source = load_metrics(directory)
    s = doc["settings"]
    if not s.get("meta"):
        raise SpectraInputError(f"{source}: was not run with --meta, so it has no cells")
    if doc.get("lists") or s.get("lists"):
        raise SpectraInputError(f"{source}: --cells needs --pred tables only (re-run evaluate per cell for --list)")
    truth = read_distribution_table(s["truth"])
    preds = {name: read_distribution_table(path, like=truth) for name, path in s["preds"].items()}
    if s.get("collapse"):  # evaluate --collapse MAP summed every table first
        from spectra_eval.data.category_maps import collapse

        truth = collapse(truth, s["collapse"])
        preds = {name: collapse(table, s["collapse"]) for name, table in preds.items()}
    return evaluate_cells(truth, preds, s["reference"], read_frame(s["meta"]), column, meta_source=s["meta"],
                          n_resamples=s["bootstrap"], seed=s["seed"], n_bins=s["bins"])
