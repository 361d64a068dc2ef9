"""``spectra report DIR``: tables (Markdown, LaTeX, standalone report) and figures from evaluate/certify JSON.

Everything is rendered into a staging directory first (:func:`spectra_eval.io.atomic_outputs`), so bad input or
a failed render leaves ``--out`` untouched. ``report.pdf`` is added when ``pdflatex`` is on PATH.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    from spectra_eval.report import LABEL_PREFIX

    parser.add_argument("dir", metavar="DIR", help="directory holding metrics.json and/or certificate.json")
    parser.add_argument("--out", metavar="OUTDIR", default=None, help="where to write (default: DIR)")
    parser.add_argument("--caption-prefix", default="", help="text put before every caption (e.g. the dataset)")
    parser.add_argument("--label-prefix", default=LABEL_PREFIX,
                        help=f"prefix of every LaTeX \\label (default: {LABEL_PREFIX})")
    parser.add_argument("--no-pdf", action="store_true", help="do not run pdflatex even when it is installed")


def run(args) -> int:
    from spectra_eval.io import atomic_outputs, write_text
    from spectra_eval.report import Report

    report = Report.from_dir(args.dir, caption_prefix=args.caption_prefix, label_prefix=args.label_prefix)
    out = Path(args.out) if args.out else Path(args.dir)
    # every table is computed before anything is staged, so a bad key fails fast
    markdown, tables_tex = report.to_markdown(), report.to_latex()
    with atomic_outputs(out) as stage:
        from spectra_eval.report.figures import figure_caption, render_figures

        written = render_figures(report.documents, stage / "figures")
        figures = [(f"figures/{name}.pdf", figure_caption(name)) for name in written]
        write_text(stage / "tables.md", markdown)
        write_text(stage / "tables.tex", tables_tex)
        write_text(stage / "report.tex", report.to_latex_document(figures))
        if not args.no_pdf:
            compile_pdf(stage / "report.tex")
        files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    top = [f for f in files if "/" not in f]
    print(f"spectra report: wrote {', '.join(top)} and {len(files) - len(top)} figure files to {out}")
    return 0


def compile_pdf(tex: Path, timeout: float = 120.0) -> bool:
    """Run pdflatex twice (for references) next to ``tex``; keep only the PDF. False when unavailable/failed."""
    exe = shutil.which("pdflatex")
    if exe is None:
        log.info("pdflatex not found: report.pdf not written")
        return False
    cmd = [exe, "-interaction=nonstopmode", "-halt-on-error", tex.name]
    try:
        for _ in range(2):
            proc = subprocess.run(cmd, cwd=tex.parent, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
                log.warning("pdflatex failed on %s; report.pdf not written:\n%s", tex.name, tail)
                tex.with_suffix(".pdf").unlink(missing_ok=True)
                return False
    except subprocess.TimeoutExpired:
        log.warning("pdflatex timed out; report.pdf not written")
        tex.with_suffix(".pdf").unlink(missing_ok=True)
        return False
    finally:
        for suffix in (".aux", ".log", ".out"):
            tex.with_suffix(suffix).unlink(missing_ok=True)
    return True
