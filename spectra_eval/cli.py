"""The ``spectra`` command line.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``; its one-line
help is in :data:`COMMANDS`. Modules are imported only when their subcommand runs (``spectra --help`` lists the
names without importing anything heavy), so ``spectra evaluate`` starts fast and works without torch.
Contract violations (:class:`SpectraInputError`) become one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from spectra_eval.validation import SpectraInputError

COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("spectra_eval.commands.prepare", "split an interaction log and write the inputs of probe, evaluate and certify"),
    "evaluate": ("spectra_eval.commands.evaluate", "score method tables against the truth, with CIs and paired tests"),
    "certify": ("spectra_eval.commands.certify", "certify probe-vs-DG dominance per user (observed; latent with --counts) and lift it"),
    "theory": ("spectra_eval.commands.theory", "evaluate the TV bound chains (phi) and the DKW cohort certificate"),
    "steer": ("spectra_eval.commands.steer", "steerability of probed distributions under stated preferences"),
    "report": ("spectra_eval.commands.report", "render Markdown/LaTeX tables and PNG/PDF figures from JSON outputs"),
    "collapse": ("spectra_eval.commands.collapse", "merge categories by summing mass through a category map"),
    "panel": ("spectra_eval.commands.panel", "robustness panel: one metric table over several runs along an axis"),
    "fuse": ("spectra_eval.commands.fuse", "fuse SPECTRA as a category prior into a base ranker's candidate scores"),
    "probe": ("spectra_probe.commands.probe", "probe an LLM for per-user category distributions"),
    "train": ("spectra_probe.commands.train", "CPT then LoRA SFT alignment training"),
    "recommend": ("spectra_probe.commands.recommend", "train SASRec/GRU4Rec on the history split, write candidates"),
    "demo": ("spectra_probe.commands.demo", "end-to-end MovieLens-100k demo on CPU"),
}


def _build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectra",
        description="Evaluate and certify LLM preference-distribution probing (SPECTRA).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_line) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_line, description=help_line)
        if name == command:  # only the chosen subcommand's module is imported
            importlib.import_module(module_name).configure(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = _build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except SpectraInputError as exc:
        print(f"spectra {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spectra {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
