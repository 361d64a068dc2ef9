"""The table model: cells, columns, rows, tables, and the direction-aware bold marks.

A table function computes a :class:`Table` from a typed result; renderers (:mod:`.render`) only format it.
Bold follows each column's ``direction`` (for metric columns, the catalogue's direction of that metric):
``lower`` / ``higher`` is better, ``closest`` to a target (the truth), or None (never bold). Bold is applied
only when at least two cells compete; ties are all bold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

from spectra_eval.metrics.catalogue import Metric
from spectra_eval.report.markup import DASH, fmt_int, fmt_number, fmt_p, markup_to_plain
from spectra_eval.report.render import render_latex, render_markdown
from spectra_eval.validation import SpectraInputError

if TYPE_CHECKING:
    import pandas as pd

DIRECTIONS = ("lower", "higher", "closest", None)


@dataclass(frozen=True)
class Cell:
    """One table cell.

    ``value`` is the number used for ranking and for DataFrames (None for text or missing cells);
    ``display`` is its format-neutral text (e.g. ``"0.318"``, ``"3.1e-152"``, ``"19,293"``); ``numeric``
    False marks a text cell (escaped as text in LaTeX instead of set in math mode).
    """

    value: float | None = None
    display: str = DASH
    half_width: float | None = None
    hw_display: str = ""
    mark: str = ""
    bold: bool = False
    numeric: bool = True


@dataclass(frozen=True)
class Column:
    """A column: ``key`` names it in DataFrames, ``header`` is shown; ``group`` spans neighbours with a
    common super-header; ``direction`` is 'lower', 'higher', 'closest' (to ``target``) or None."""

    key: str
    header: str
    direction: str | None = None
    group: str = ""
    target: float | None = None
    wrap: bool = False  # long text (category lists): a ragged-right paragraph column in LaTeX


@dataclass(frozen=True)
class Row:
    """A row; a row without cells is a section heading spanning the table (e.g. one aggregate reading)."""

    label: str
    cells: tuple[Cell, ...] = ()

    @property
    def is_section(self) -> bool:
        return not self.cells


@dataclass(frozen=True)
class Table:
    """A computed table. ``title``, ``caption`` (body), ``row_header``, column headers and ``notes`` are
    markup (see :func:`lit`); row labels and text cells are plain user text."""

    key: str
    title: str
    caption: str
    label: str
    row_header: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = ()

    def to_frame(self) -> "pd.DataFrame":
        """One row per table row (index = row label); numeric columns hold values, ``KEY_hw`` half-widths."""
        import pandas as pd

        rows, labels, section = [], [], ""
        for row in self.rows:
            if row.is_section:
                section = row.label
                continue
            rows.append(row)
            labels.append(f"{section} / {row.label}" if section else row.label)
        data: dict[str, list] = {}
        for j, col in enumerate(self.columns):
            cells = [row.cells[j] for row in rows]
            data[col.key] = [c.value if c.numeric else (None if c.display == DASH else c.display) for c in cells]
            if any(c.half_width is not None for c in cells):
                data[f"{col.key}_hw"] = [c.half_width for c in cells]
        return pd.DataFrame(data, index=pd.Index(labels, name=markup_to_plain(self.row_header)))

    def to_markdown(self) -> str:
        return render_markdown(self)

    def to_latex(self) -> str:
        return render_latex(self)


def metric_column(spec: Metric, key: str | None = None, header: str | None = None, **kw) -> Column:
    """A column for a catalogue metric: its header and its direction come from the spec."""
    return Column(key or spec.key.replace("@", "_at_"), header or spec.header, spec.direction, **kw)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def num(value: float | None, digits: int = 3, ci: Sequence[float | None] | None = None, mark: str = "") -> Cell:
    """A numeric cell; ``ci`` = (low, high) adds the half-width ``(high - low) / 2`` at the same precision."""
    if value is None or _missing(value):
        return Cell(mark=mark)
    hw = None
    low, high = (None, None) if ci is None else ci
    if low is not None and high is not None and not _missing(low) and not _missing(high):
        hw = (float(high) - float(low)) / 2.0
    return Cell(float(value), fmt_number(value, digits), hw, "" if hw is None else fmt_number(hw, digits), mark)


def estimate(x) -> float | None:
    """The point estimate of an interval result: ``mean`` of a MeanCI, ``estimate`` of a PairedEffect."""
    return x.mean if hasattr(x, "mean") else x.estimate


def ci_cell(x, digits: int = 3, mark: str = "") -> Cell:
    """:func:`num` of an interval result (a MeanCI or PairedEffect: :func:`estimate`, ``ci_low``, ``ci_high``)."""
    return num(estimate(x), digits, (x.ci_low, x.ci_high), mark)


def count(n: int | None) -> Cell:
    return Cell() if n is None or _missing(n) else Cell(float(n), fmt_int(n))


def pcell(p: float | None) -> Cell:
    return Cell() if p is None or _missing(p) else Cell(float(p), fmt_p(p))


def text(s: str) -> Cell:
    return Cell(None, s, numeric=False)


def embolden(cells: Sequence[Cell], direction: str | None, target: float | None = None) -> list[Cell]:
    """Set ``bold`` on the best of ``cells`` for ``direction`` (ties all bold); needs two competitors."""
    cells = list(cells)
    scored = [(i, c.value) for i, c in enumerate(cells) if c.numeric and c.value is not None]
    if direction is None or len(scored) < 2:
        return cells
    if direction == "lower":
        key = lambda v: v  # noqa: E731
    elif direction == "higher":
        key = lambda v: -v  # noqa: E731
    elif direction == "closest":
        if target is None:
            return cells
        key = lambda v: abs(v - target)  # noqa: E731
    else:
        raise SpectraInputError(f"unknown direction {direction!r}")
    best = min(key(v) for _, v in scored)
    for i, v in scored:
        if abs(key(v) - best) <= 1e-12:
            cells[i] = replace(cells[i], bold=True)
    return cells


def bold_columns(columns: Sequence[Column], rows: Sequence[Row]) -> tuple[Row, ...]:
    """Apply :func:`embolden` down every column according to its direction."""
    grid = [list(r.cells) for r in rows]
    for j, col in enumerate(columns):
        for i, cell in enumerate(embolden([g[j] for g in grid], col.direction, col.target)):
            grid[i][j] = cell
    return tuple(Row(r.label, tuple(g)) for r, g in zip(rows, grid))
