"""The two renderers every table goes through: GitHub Markdown pipe tables and booktabs LaTeX floats.

Both take a computed :class:`~spectra_eval.report.model.Table` and only format it: captions and headers
are markup (:mod:`.markup`), row labels and text cells are escaped user text. :func:`latex_document` wraps
tables and figures in a standalone article that plain ``pdflatex`` compiles.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from spectra_eval.report.markup import (DAGGER, DASH, DDAGGER, _latex_math_number, latex_escape, markup_to_latex,
                                        markup_to_plain, md_escape)

if TYPE_CHECKING:  # annotations only: model.Table renders itself through this module, so no runtime import back
    from spectra_eval.report.model import Cell, Column, Table


def _md_cell(c: Cell) -> str:
    out = f"**{c.display}**" if c.bold else c.display
    if c.hw_display:
        out += f" ± {c.hw_display}"
    return md_escape(out + c.mark)


def _md_header(col: Column) -> str:
    return md_escape(markup_to_plain(f"{col.group}: {col.header}" if col.group else col.header))


def render_markdown(table: Table) -> str:
    """A GitHub pipe table preceded by its caption (title in bold) and followed by its notes."""
    title = markup_to_plain(table.title).strip()
    caption = markup_to_plain(table.caption)
    lines = [f"**{title.rstrip('.')}.** {caption}".rstrip() if title else caption, ""]
    header = [md_escape(markup_to_plain(table.row_header))] + [_md_header(c) for c in table.columns]
    align = [":---"] + ["---:" if _numeric_column(table, j) and not c.wrap else ":---"
                        for j, c in enumerate(table.columns)]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join(align) + " |")
    for row in table.rows:
        if row.is_section:
            cells = [f"*{md_escape(row.label)}*"] + [""] * len(table.columns)
        else:
            cells = [md_escape(row.label)] + [_md_cell(c) for c in row.cells]
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines.append("")
        lines.append("\n\n".join(markup_to_plain(n) for n in table.notes))  # one paragraph per note
    return "\n".join(lines) + "\n"


def _numeric_column(table: Table, j: int) -> bool:
    return all(r.cells[j].numeric for r in table.rows if not r.is_section)


def _latex_cell(c: Cell) -> str:
    if not c.numeric:
        body = latex_escape(c.display)
        return rf"\textbf{{{body}}}" if c.bold else body
    if c.display == DASH and c.value is None:
        return "--" + (latex_escape(c.mark) if c.mark else "")
    core = _latex_math_number(c.display)
    if c.bold:
        core = rf"\mathbf{{{core}}}"
    if c.hw_display:
        hw = c.hw_display[1:] if c.hw_display.startswith("0.") else c.hw_display
        core += rf"_{{\pm {hw}}}"
    if c.mark:
        core += "^{" + {DAGGER: r"\dagger", DDAGGER: r"\ddagger"}.get(c.mark, "*") + "}"
    return f"${core}$"


def _latex_colspec(table: Table) -> str:
    spec = ["l"]
    for j, col in enumerate(table.columns):
        if col.wrap:
            spec.append(r">{\raggedright\arraybackslash}p{0.22\linewidth}")
        else:
            spec.append("r" if _numeric_column(table, j) else "l")
    return "".join(spec)


def latex_caption(table: Table) -> str:
    title = markup_to_latex(table.title).strip()
    body = markup_to_latex(table.caption)
    return f"{title.rstrip('.')}. {body}".strip() if title else body


def render_latex(table: Table) -> str:
    """A booktabs ``table`` float; needs the packages in :data:`LATEX_PACKAGES`."""
    ncols = len(table.columns) + 1
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small"]
    if ncols > 6:
        lines.append(r"\setlength{\tabcolsep}{4pt}")
    lines.append(rf"\caption{{{latex_caption(table)}}}")
    lines.append(rf"\label{{{table.label}}}")
    lines.append(rf"\begin{{tabular}}{{{_latex_colspec(table)}}}")
    lines.append(r"\toprule")
    groups = _groups(table.columns)
    if any(g for g, _, _ in groups):
        heads, rules = [""], []
        for g, start, stop in groups:
            width = stop - start
            heads.append(rf"\multicolumn{{{width}}}{{c}}{{{markup_to_latex(g)}}}" if g else " & ".join([""] * width))
            if g:
                rules.append(rf"\cmidrule(lr){{{start + 2}-{stop + 1}}}")
        lines.append(" & ".join(heads) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(markup_to_latex(h) for h in [table.row_header] + [c.header for c in table.columns]) + r" \\")
    lines.append(r"\midrule")
    spaced = any(c.wrap for c in table.columns)
    for k, row in enumerate(table.rows):
        if row.is_section:
            if k:
                lines.append(r"\addlinespace")
            lines.append(rf"\multicolumn{{{ncols}}}{{l}}{{\itshape {latex_escape(row.label)}}} \\")
            continue
        if spaced and k:
            lines.append(r"\addlinespace")
        label = ("\\quad " if any(r.is_section for r in table.rows) else "") + latex_escape(row.label)
        lines.append(" & ".join([label] + [_latex_cell(c) for c in row.cells]) + r" \\")
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    for note in table.notes:
        lines.append(rf"\par\smallskip{{\footnotesize\raggedright {markup_to_latex(note)}\par}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _groups(columns: Sequence[Column]) -> list[tuple[str, int, int]]:
    """Runs of neighbouring columns sharing a group: (group, start, stop) with stop exclusive."""
    runs: list[tuple[str, int, int]] = []
    for j, col in enumerate(columns):
        if runs and runs[-1][0] == col.group:
            runs[-1] = (col.group, runs[-1][1], j + 1)
        else:
            runs.append((col.group, j, j + 1))
    return runs


LATEX_PACKAGES = (r"\usepackage[T1]{fontenc}", r"\usepackage{lmodern}", r"\usepackage{booktabs}",
                  r"\usepackage{array}")


def latex_document(tables: Sequence[Table], figures: Iterable[tuple[str, str]] = (),
                   title: str = "SPECTRA report") -> str:
    """A standalone article (pdflatex) with every table and the given (path, caption) figures."""
    parts = [r"\documentclass[10pt]{article}", *LATEX_PACKAGES, r"\usepackage{graphicx}",
             r"\usepackage[margin=2cm]{geometry}", r"\begin{document}", rf"\section*{{{latex_escape(title)}}}"]
    parts += [render_latex(t) for t in tables]
    for path, caption in figures:
        parts += [r"\begin{figure}[htbp]", r"\centering", rf"\includegraphics[width=3.3in]{{{path}}}",
                  rf"\caption{{{markup_to_latex(caption)}}}", r"\end{figure}"]
    parts.append(r"\end{document}")
    return "\n".join(parts) + "\n"
