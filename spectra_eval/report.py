"""Paper-ready tables from the JSON that ``spectra evaluate`` and ``spectra certify`` write.

Computation and rendering are separate (as in ranx's ``Report``):

* each ``*_table(metrics)`` / ``*_table(certificate)`` function reads the JSON dict and returns a small
  :class:`Table` (columns with a direction, rows of :class:`Cell` holding the number, its display text, an
  optional CI half-width, a significance mark and whether it is the best in its group);
* :func:`render_markdown` and :func:`render_latex` are the only two formatters; every table goes through them;
* :class:`Report` bundles the two JSON documents with caption/label options, round-trips through
  :meth:`Report.to_dict` / :meth:`Report.from_dict`, and exports Markdown, LaTeX and pandas DataFrames.

Direction of each column (what "best", set in bold, means)
---------------------------------------------------------
* lower is better: JS, Delta JS (method - reference, so more negative means the method gains more), ECE
  (overall and per stratum), top-1 ECE, head bias, per-quartile Delta JS, per-category losses;
* higher is better: NDCG@5, NDCG@10, per-category wins;
* closest to the truth is better: tail mass (the truth's own tail mass is shown as a row and not ranked);
* no direction (never bold): ratios (head ECE / aggregate ECE, Q4/Q1), counts, p-values, strata ranges and
  every certificate quantity (those are diagnostics, not a contest between methods).
Bold is applied only when at least two cells compete; ties are all bold.

CI half-widths are ``(ci_high - ci_low) / 2`` of the percentile bootstrap interval in the JSON (the interval
need not be symmetric; the JSON keeps both ends). Significance marks (``†``) use ``p < 1 - confidence``
(0.05 by default) of the test named in ``settings.test``; per-category wins use the Holm-adjusted p-values.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from spectra_eval.validation import SpectraInputError

METRICS_SCHEMA = "spectra.metrics/1"
CERTIFICATE_SCHEMA = "spectra.certificate/1"
REPORT_SCHEMA = "spectra.report/1"
METRICS_FILE = "metrics.json"
CERTIFICATE_FILE = "certificate.json"
BUCKETS = ("head", "mid", "tail")
DAGGER = "†"  # significant vs the reference
DDAGGER = "‡"  # bound chain that is not a valid upper bound on TV
DASH = "–"  # no value
DIRECTIONS = ("lower", "higher", "closest", None)

# --------------------------------------------------------------------------------------------- structures


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

    def to_dataframe(self):
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


# --------------------------------------------------------------------------------------------- formatting


def fmt_number(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    return f"{float(x):.{digits}f}"


def fmt_int(n: int | None) -> str:
    return DASH if n is None else f"{int(n):,}"


def fmt_p(p: float | None) -> str:
    """p-values: three decimals down to 0.001, then scientific; an underflowed 0 reads ``<1e-300``."""
    if p is None or not math.isfinite(float(p)):
        return DASH
    p = float(p)
    if p == 0.0:
        return "<1e-300"
    return f"{p:.3f}" if p >= 1e-3 else f"{p:.1e}"


def fmt_sci(x: float | None, digits: int = 1) -> str:
    """Small quantities (route penalties ~1e-5) in scientific notation; exact zero as 0."""
    if x is None or not math.isfinite(float(x)):
        return DASH
    x = float(x)
    if x == 0.0:
        return "0"
    return f"{x:.{digits}e}" if abs(x) < 1e-3 else f"{x:.4f}"


def num(value: float | None, digits: int = 3, ci: Sequence[float | None] | None = None, mark: str = "") -> Cell:
    """A numeric cell; ``ci`` = (low, high) adds the half-width ``(high - low) / 2`` at the same precision."""
    if value is None:
        return Cell(mark=mark)
    hw = None
    if ci is not None and ci[0] is not None and ci[1] is not None:
        hw = (float(ci[1]) - float(ci[0])) / 2.0
    return Cell(float(value), fmt_number(value, digits), hw, "" if hw is None else fmt_number(hw, digits), mark)


def count(n: int | None) -> Cell:
    return Cell(None if n is None else float(n), fmt_int(n))


def pcell(p: float | None) -> Cell:
    return Cell(None if p is None else float(p), fmt_p(p))


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
        raise ValueError(f"unknown direction {direction!r}")
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


# --------------------------------------------------------------------------------------------- JSON access


def need(obj: Mapping, source: str, *keys: str) -> Any:
    """``obj[k1][k2]...``; a missing key is a one-line error naming the file and the key path."""
    cur: Any = obj
    for depth, key in enumerate(keys):
        if not isinstance(cur, Mapping) or key not in cur:
            where = ".".join(keys[:depth]) or "the top level"
            raise SpectraInputError(f"{source}: missing key {key!r} under {where}")
        cur = cur[key]
    return cur


def _settings(metrics: Mapping) -> dict:
    return dict(metrics.get("settings") or {})


def _s(doc: Mapping, key: str, default: str = "?") -> str:
    """A settings value quoted for markup (file names and test names are user text)."""
    value = (doc.get("settings") or {}).get(key)
    return lit(default if value is None else str(value))


def _alpha(metrics: Mapping) -> float:
    """Significance level for marks: settings.alpha when the producer states it, else 1 - confidence."""
    s = _settings(metrics)
    return float(s["alpha"]) if s.get("alpha") is not None else 1.0 - float(s.get("confidence", 0.95))


def _source(doc: Mapping, default: str) -> str:
    return str(doc.get("_source", default))


def _method_names(metrics: Mapping) -> list[str]:
    return list(need(metrics, _source(metrics, METRICS_FILE), "methods"))


def _comparisons(metrics: Mapping) -> dict[str, Mapping]:
    return dict(metrics.get("comparisons") or {})


def _comparison_for(metrics: Mapping, method: str) -> Mapping | None:
    for comp in _comparisons(metrics).values():
        if comp.get("method") == method:
            return comp
    return None


def _sig(p: float | None, alpha: float) -> str:
    return DAGGER if p is not None and float(p) < alpha else ""


def _ci_phrase(metrics: Mapping) -> str:
    s = _settings(metrics)
    conf = float(s.get("confidence", 0.95)) * 100
    parts = [f"± is the half-width of the percentile bootstrap {conf:g}% CI"]
    if "bootstrap" in s:
        parts.append(f" from {int(s['bootstrap']):,} user-level resamples")
    if "seed" in s:
        parts.append(f" (seed {s['seed']})")
    return "".join(parts) + "."


def _cohort_phrase(metrics: Mapping) -> str:
    src = _source(metrics, METRICS_FILE)
    return f"n = {int(need(metrics, src, 'n_users')):,} users, K = {int(need(metrics, src, 'n_categories'))} categories."


def _test_note(metrics: Mapping, what: str, correction: str = "no multiplicity correction") -> str:
    s = _settings(metrics)
    return (f"{DAGGER} {what} differs from the reference ({_s(metrics, 'reference')}) at p < {_alpha(metrics):g}, "
            f"{_s(metrics, 'test', 'paired Wilcoxon signed-rank test')}; {correction}.")


def _title_caption(title: str, *sentences: str) -> str:
    """The caption body (markup); the title is kept apart so a prefix or override can replace either."""
    return " ".join(s for s in sentences if s)


# --------------------------------------------------------------------------------------------- metric tables


def tail_mass_table(metrics: Mapping) -> Table:
    """Paper Table 1: tail-bucket mass, head-bucket ECE and its ratio to aggregate ECE, head bias."""
    src = _source(metrics, METRICS_FILE)
    truth_tail = float(need(metrics, src, "truth", "bucket_mass", "tail"))
    cols = (
        Column("tail_mass", "tail mass", "closest", group="A", target=truth_tail),
        Column("head_ece", "head ECE ↓", "lower", group="B"),
        Column("head_ece_ratio", "ratio to overall", None, group="B"),
        Column("head_bias", "head bias ↓", "lower", group="C"),
    )
    rows = []
    for name in _method_names(metrics):
        head_ece = float(need(metrics, src, "methods", name, "ece", "head"))
        overall = float(need(metrics, src, "methods", name, "ece", "overall"))
        ratio = head_ece / overall if overall > 0 else None
        rows.append(Row(name, (
            num(need(metrics, src, "methods", name, "bucket_mass", "tail"), 3),
            num(head_ece, 4),
            Cell(ratio, DASH if ratio is None else f"{ratio:.1f}×"),
            num(need(metrics, src, "methods", name, "head_bias"), 3),
        )))
    rows = list(bold_columns(cols, rows))
    rows.append(Row("truth", (num(truth_tail, 3), Cell(), Cell(), Cell())))
    title = "Head–tail mass redistribution"
    caption = _title_caption(
        title,
        "(A) mean predicted mass on the tail bucket (bold: closest to the truth's tail mass, last row);",
        "(B) soft-label ECE on the head bucket and its ratio to the aggregate ECE;",
        "(C) mean absolute per-category bias |mean predicted − mean true| over head categories.",
        f"Buckets are thirds of the categories by cohort-mean true mass; {_cohort_phrase(metrics)}",
    )
    return Table("tail_mass", title, caption, "tail-mass", "Method", cols, tuple(rows))


def js_table(metrics: Mapping) -> Table:
    """Paper Table 3: Jensen-Shannon divergence to the truth with CI half-widths, and Delta vs the reference."""
    src = _source(metrics, METRICS_FILE)
    unit = metrics.get("unit", "bits")
    ref = _s(metrics, "reference")
    alpha = _alpha(metrics)
    cols = (Column("js", f"JS ({unit}) ↓", "lower"), Column("delta_js", f"Δ JS vs {ref} ↓", "lower"))
    rows = []
    for name in _method_names(metrics):
        js = need(metrics, src, "methods", name, "js")
        comp = _comparison_for(metrics, name)
        if comp is None:
            delta = Cell()
            mark = ""
        else:
            d = need(comp, src, "js")
            mark = _sig(d.get("p"), alpha)
            delta = num(need(d, src, "mean_diff"), 3, (d.get("ci_low"), d.get("ci_high")), mark)
        rows.append(Row(name, (num(need(js, src, "mean"), 3, (js.get("ci_low"), js.get("ci_high"))), delta)))
    title = "Distributional alignment"
    caption = _title_caption(
        title,
        f"Jensen–Shannon divergence between each method's distribution and the user's empirical category "
        f"distribution, averaged over users, in {unit}; Δ = method − {ref}, paired per user.",
        _ci_phrase(metrics),
        _cohort_phrase(metrics),
    )
    return Table("js", title, caption, "js", "Method", cols, bold_columns(cols, rows),
                 (_test_note(metrics, "per-user JS"),))


def ndcg_table(metrics: Mapping) -> Table:
    """Paper Table 4: NDCG@5 and NDCG@10 with CI half-widths."""
    src = _source(metrics, METRICS_FILE)
    alpha = _alpha(metrics)
    ks = ("ndcg@5", "ndcg@10")
    cols = tuple(Column(k.replace("@", "_at_"), f"NDCG@{k.split('@')[1]} ↑", "higher") for k in ks)
    rows = []
    for name in _method_names(metrics):
        comp = _comparison_for(metrics, name)
        cells = []
        for k in ks:
            v = need(metrics, src, "methods", name, k)
            p = ((comp or {}).get(k) or {}).get("p")
            cells.append(num(need(v, src, "mean"), 3, (v.get("ci_low"), v.get("ci_high")), _sig(p, alpha)))
        rows.append(Row(name, tuple(cells)))
    title = "Category-ranking quality"
    caption = _title_caption(
        title,
        "NDCG@k of the categories ranked by predicted probability, with the user's true category mass as gain.",
        _ci_phrase(metrics),
        _cohort_phrase(metrics),
    )
    return Table("ndcg", title, caption, "ndcg", "Method", cols, bold_columns(cols, rows),
                 (_test_note(metrics, "per-user NDCG"),))


def quartile_table(metrics: Mapping) -> Table:
    """Paper Table 5: per-quartile Delta JS (method - reference) by the user's true tail mass."""
    src = _source(metrics, METRICS_FILE)
    alpha = _alpha(metrics)
    unit = metrics.get("unit", "bits")
    quarts = ("Q1", "Q2", "Q3", "Q4")
    cols = tuple(Column(f"delta_{q.lower()}", f"Δ {q}{' head' if q == 'Q1' else ' tail' if q == 'Q4' else ''} ↓",
                        "lower") for q in quarts)
    cols += (Column("ratio_q4_q1", "ratio Q4/Q1"), Column("n_q4", "n Q4"), Column("p_q4", "p Q4"))
    rows = []
    for key, comp in _comparisons(metrics).items():
        qs = need(comp, src, "quartiles")
        cells = []
        for q in quarts:
            d = need(qs, src, q)
            cells.append(num(need(d, src, "delta"), 3, (d.get("ci_low"), d.get("ci_high")), _sig(d.get("p"), alpha)))
        ratio = qs.get("ratio_q4_q1")
        q4 = need(qs, src, "Q4")
        cells += [Cell(ratio, DASH if ratio is None else f"{float(ratio):.2f}"), count(q4.get("n")), pcell(q4.get("p"))]
        rows.append(Row(key, tuple(cells)))
    ref = _s(metrics, "reference")
    title = "User-level fairness differential"
    caption = _title_caption(
        title,
        f"Δ = mean per-user (JS of method − JS of {ref}) in {unit}, within quartiles of the users' true tail-bucket "
        "mass (Q1 most head-leaning, Q4 most tail-leaning); more negative favours the method.",
        _ci_phrase(metrics).replace("CI", "CI within the quartile"),
        _cohort_phrase(metrics),
    )
    return Table("quartiles", title, caption, "quartiles", "Comparison", cols, bold_columns(cols, rows),
                 (_test_note(metrics, "the quartile's per-user JS", "within the quartile, no multiplicity correction"),))


def has_strata(metrics: Mapping) -> bool:
    return any(comp.get("strata") for comp in _comparisons(metrics).values())


def strata_table(metrics: Mapping) -> Table:
    """Paper Table 6: per-stratum range of Delta JS and the number of strata levels the method wins."""
    src = _source(metrics, METRICS_FILE)
    alpha = _alpha(metrics)
    cols = (Column("delta_min", "min Δ JS"), Column("delta_max", "max Δ JS"), Column("levels", "levels"),
            Column("wins", "wins"), Column("p_max", "max p"))
    rows = []
    for key, comp in _comparisons(metrics).items():
        for column, block in (comp.get("strata") or {}).items():
            lo, hi = need(block, src, "range")
            levels = need(block, src, "levels")
            ps = [lv.get("p") for lv in levels.values() if lv.get("p") is not None]
            n_levels = int(block.get("n_levels", len(levels)))
            rows.append(Row(f"{key}: {column}", (
                num(lo, 3), num(hi, 3), count(n_levels),
                Cell(float(need(block, src, "wins")), f"{int(need(block, src, 'wins'))}/{n_levels}"),
                pcell(max(ps) if ps else None),
            )))
    title = "Stratified fairness gain"
    caption = _title_caption(
        title,
        f"Per-stratum Δ JS (method − {_s(metrics, 'reference')}) across the levels of each metadata "
        f"column ({_base(metrics, 'meta')}); a win is a level with Δ < 0 at "
        f"p < {alpha:g} ({_s(metrics, 'test', 'paired Wilcoxon signed-rank')}, within the level).",
        _cohort_phrase(metrics),
    )
    return Table("strata", title, caption, "strata", "Comparison: stratum", cols, tuple(rows))


def ece_table(metrics: Mapping) -> Table:
    """Paper Table 7: soft-label ECE, aggregate and per bucket, with pair and category counts."""
    src = _source(metrics, METRICS_FILE)
    names = _method_names(metrics)
    cols = tuple(Column(f"ece_{i}", f"{lit(name)} ↓", "lower", group="ECE") for i, name in enumerate(names))
    cols += (Column("n_pairs", "pairs n"), Column("categories", "categories"))
    rows = []
    for stratum in ("overall",) + BUCKETS:
        eces = embolden([num(need(metrics, src, "methods", n, "ece", stratum), 4) for n in names], "lower")
        pairs = (need(metrics, src, "methods", names[0], "ece_pairs") or {}).get(stratum)
        cats = (need(metrics, src, "methods", names[0], "ece_categories") or {}).get(stratum)
        rows.append(Row(stratum, tuple(eces) + (count(pairs), count(cats))))
    bins = _s(metrics, "bins", "20")
    title = "Aggregate and stratified calibration"
    caption = _title_caption(
        title,
        f"Soft-label ECE over (user, category) pairs with {bins} equal-width bins of predicted probability; "
        "head/mid/tail restrict the pairs to that bucket's categories. Bold: best method in the row.",
        _cohort_phrase(metrics),
    )
    return Table("ece", title, caption, "ece", "Stratum", cols, tuple(rows))


def top1_ece_table(metrics: Mapping, threshold: float = 0.01) -> Table:
    """Paper Table 10: top-1 ECE (each user's argmax category, predicted vs true mass)."""
    src = _source(metrics, METRICS_FILE)
    cols = (Column("top1_ece", "top-1 ECE ↓", "lower"), Column("below_threshold", f"below {threshold:.0%}"))
    rows = []
    for name in _method_names(metrics):
        v = float(need(metrics, src, "methods", name, "top1_ece"))
        rows.append(Row(name, (num(v, 4), text("yes" if v < threshold else "no"))))
    title = "Top-1 calibration"
    caption = _title_caption(
        title,
        f"ECE of each user's top-1 predicted category against its true mass "
        f"({_s(metrics, 'bins', '20')} equal-width bins).",
        _cohort_phrase(metrics),
    )
    return Table("top1_ece", title, caption, "top1-ece", "Method", cols, bold_columns(cols, rows))


def category_wins(comparison: Mapping, alpha: float = 0.05, source: str = METRICS_FILE) -> tuple[list[str], list[str]]:
    """Categories the method wins / loses: lower / higher mean absolute error and Holm p < ``alpha``."""
    wins, losses = [], []
    for cat, d in need(comparison, source, "per_category").items():
        p = d.get("p_holm")
        mm, mr = d.get("mean_abs_err_method"), d.get("mean_abs_err_reference")
        if p is None or mm is None or mr is None or not float(p) < alpha:
            continue
        if mm < mr:
            wins.append(cat)
        elif mm > mr:
            losses.append(cat)
    return wins, losses


def category_wins_table(metrics: Mapping) -> Table:
    """Per-category wins after Holm: the count and list of categories each method wins and loses."""
    src = _source(metrics, METRICS_FILE)
    alpha = _alpha(metrics)
    cols = (Column("wins", "wins ↑", "higher"), Column("losses", "losses ↓", "lower"),
            Column("not_significant", "n.s."), Column("lost_on", "lost on", wrap=True), Column("won_on", "won on", wrap=True))
    rows = []
    for key, comp in _comparisons(metrics).items():
        wins, losses = category_wins(comp, alpha, src)
        k = len(need(comp, src, "per_category"))
        rows.append(Row(key, (count(len(wins)), count(len(losses)), count(k - len(wins) - len(losses)),
                              text(", ".join(losses) or DASH), text(", ".join(wins) or DASH))))
    title = "Per-category wins"
    caption = _title_caption(
        title,
        f"A method wins a category when its mean per-user absolute error |pred(c) − true(c)| is lower than the "
        f"reference's and the {_s(metrics, 'test', 'paired Wilcoxon signed-rank test')} on the per-user errors "
        f"gives p < {alpha:g} after {_s(metrics, 'correction', 'Holm')} correction across the "
        f"{metrics.get('n_categories')} "
        "categories; a loss is the reverse.",
        _cohort_phrase(metrics),
    )
    return Table("category_wins", title, caption, "category-wins", "Comparison", cols, bold_columns(cols, rows))


# --------------------------------------------------------------------------------------------- certificate tables


def _yes(flag) -> str:
    return DASH if flag is None else ("yes" if flag else "no")


def certificate_table(cert: Mapping) -> Table:
    """Per-user certificate: regime fraction with its DKW population lower bound, and Theorem 1's cohort."""
    src = _source(cert, CERTIFICATE_FILE)
    pu = need(cert, src, "per_user")
    dkw = cert.get("dkw") or {}
    t1 = cert.get("theorem1") or {}
    cols = (Column("n", "n"), Column("fraction", "fraction"), Column("pi_lower", "population ≥"),
            Column("gain", "gain"), Column("gain_ci", "gain CI"))
    n = pu.get("n")
    rows = [Row(f"in regime ({pu.get('chain', '?')} chain)", (
        count(need(pu, src, "n")), num(need(pu, src, "fraction_in_regime"), 3), num(dkw.get("pi_lower"), 3),
        Cell(), Cell()))]
    if "fraction_tv_dominates" in pu:
        rows.append(Row("TV(probe) < TV(DG)", (count(n), num(pu["fraction_tv_dominates"], 3), Cell(), Cell(), Cell())))
    if t1:
        ci = _interval(t1.get("gain_ci_low"), t1.get("gain_ci_high"))
        which = f"k = {t1.get('k', '?')}" + (f", {t1['certificate']}" if isinstance(t1.get("certificate"), str) else "")
        if "mean_gain" in t1:  # the interval belongs to the mean gain over all users, not the conditional one
            rows.append(Row(f"Theorem 1 favorable ({which})", (
                count(t1.get("n", n)), num(t1.get("fraction_favorable"), 3), Cell(), num(t1.get("conditional_gain"), 3),
                Cell(numeric=False))))
            rows.append(Row("Theorem 1 mean gain, all users", (
                count(t1.get("n", n)), Cell(), Cell(), num(t1["mean_gain"], 3), ci)))
        else:
            rows.append(Row(f"Theorem 1 favorable ({which})", (
                count(t1.get("n", n)), num(t1.get("fraction_favorable"), 3), Cell(), num(t1.get("conditional_gain"), 3),
                ci)))
    alpha = dkw.get("alpha", (cert.get("settings") or {}).get("alpha"))
    level = "" if alpha is None else f" at confidence {1 - float(alpha):.0%}"
    title = "Per-user dominance certificate"
    caption = _title_caption(
        title,
        r"Fraction of users in the regime $m_\tau(L_u) > \varphi(\mathrm{JS}_u)$ for a valid TV bound $\varphi$, and "
        f"the DKW lower bound on the population fraction{level} (slack and route penalty subtracted, see the "
        "finite-sample table); Theorem 1 gives the favorable cohort fraction, the gain among favorable users and "
        f"the Hoeffding interval of the gain. Probe {_base(cert, 'probe')} vs DG {_base(cert, 'dg')}, "
        f"k = {_s(cert, 'k')}.",
    )
    return Table("certificate", title, caption, "certificate", "Quantity", cols, tuple(rows))


def _interval(lo, hi, digits: int = 3) -> Cell:
    if lo is None or hi is None:
        return Cell(numeric=False)
    return text(f"[{float(lo):.{digits}f}, {float(hi):.{digits}f}]")


def _base(doc: Mapping, key: str) -> str:
    """A settings path shown by its file name (captions should not carry local directories)."""
    value = (doc.get("settings") or {}).get(key)
    return lit("?" if value is None else Path(str(value)).name)


READING_NAMES = {"js_of_means": "JS of cohort-mean distributions", "mean_js": "mean per-user JS",
                 "median_js": "median per-user JS"}


def certificate_aggregate_table(cert: Mapping) -> Table:
    """Aggregate readings x bound chains: TV bound, margin m_tau - bound, chain validity and whether it holds."""
    src = _source(cert, CERTIFICATE_FILE)
    unit = (cert.get("settings") or {}).get("unit", "bits")
    cols = (Column("js", f"JS ({unit})"), Column("m_tau", r"$m_\tau$"), Column("tv_bound", r"TV bound $\varphi$"),
            Column("margin", "margin"), Column("valid", r"valid $\varphi$"), Column("holds", "holds"))
    rows = []
    any_invalid = False
    readings = need(cert, src, "aggregate")
    for reading, block in readings.items():
        rows.append(Row(READING_NAMES.get(reading, reading)))
        for chain, c in need(block, src, "chains").items():
            valid = c.get("valid")
            mark = "" if valid else DDAGGER
            any_invalid |= not valid
            rows.append(Row(chain, (
                num(need(block, src, "js"), 4), num(need(block, src, "m_tau"), 3), num(c.get("tv_bound"), 3),
                Cell(c.get("margin"), DASH if c.get("margin") is None else f"{float(c['margin']):+.3f}"),
                text(_yes(valid) + mark), text(_yes(c.get("holds"))))))
    title = "Aggregate regime readings"
    caption = _title_caption(
        title,
        r"Each aggregate JS reading through each TV bound chain $\varphi$; margin $= m_\tau - \varphi(\mathrm{JS})$. "
        "These cohort-level readings reproduce the paper's diagnostic; the sound certificate is the per-user one.",
    )
    notes = tuple(f"{lit(READING_NAMES.get(r, r))}: {lit(b['label'])}." for r, b in readings.items()
                  if b.get("label") and b["label"] != READING_NAMES.get(r, r))
    if any_invalid:
        notes += (f"{DDAGGER} not a valid upper bound on TV for all distribution pairs: shown for comparison, never "
                  "used for a certificate.",)
    return Table("certificate_aggregate", title, caption, "certificate-aggregate", "Reading and bound chain", cols,
                 tuple(rows), notes)


def dkw_table(cert: Mapping) -> Table:
    """Paper Table 14: finite-sample cohort slack and route penalty behind the population lower bound.

    One row for the block in ``dkw`` and, when the producer adds ``dkw.paper``, one for the paper's Eq. 11
    arithmetic (slack 2 rho_N(alpha/2) = 2 sqrt(log(4/alpha)/(2N)), penalty 2 M beta, beta = alpha/(4NM)).
    """
    src = _source(cert, CERTIFICATE_FILE)
    main = need(cert, src, "dkw")
    fallback = (cert.get("per_user") or {}).get("fraction_in_regime")
    cols = (Column("n", "$N$"), Column("alpha", r"$\alpha$"), Column("routes", "routes $M$"),
            Column("cohort_slack", "cohort slack"), Column("route_penalty", "route penalty"),
            Column("fraction", r"$\hat{F}$"), Column("pi_lower", r"$\pi \geq$"))
    blocks = [("this library", main)] + ([("paper Eq. 11", main["paper"])] if isinstance(main.get("paper"), Mapping) else [])
    rows, notes = [], []
    for label, d in blocks:
        penalty = need(d, src, "route_penalty")
        rows.append(Row(label, (
            count(need(d, src, "n")), num(need(d, src, "alpha"), 2), count(need(d, src, "routes")),
            num(need(d, src, "cohort_slack"), 4), Cell(float(penalty), fmt_sci(penalty)),
            num(d.get("fhat", fallback), 3), num(d.get("pi_lower"), 3))))
        convention = str(d.get("convention") or "")
        if convention:
            notes.append(lit(convention if convention.startswith(label) else f"{label}: {convention}") + ".")
    title = "Finite-sample cohort slack"
    caption = _title_caption(
        title,
        r"With probability at least $1 - \alpha$ the population regime fraction is at least "
        r"$\hat{F}$ minus the cohort slack and the route penalty. The paper's Eq. 11 uses the DKW/Massart slack "
        r"$2\rho_N(\alpha/2) = 2\sqrt{\log(4/\alpha)/(2N)}$ and the Bonferroni penalty $2M\beta$, "
        r"$\beta = \alpha/(4NM)$.",
    )
    return Table("dkw", title, caption, "dkw", "Convention", cols, tuple(rows), tuple(notes))


METRIC_TABLES = {
    "tail_mass": tail_mass_table, "js": js_table, "ndcg": ndcg_table, "quartiles": quartile_table,
    "strata": strata_table, "ece": ece_table, "top1_ece": top1_ece_table, "category_wins": category_wins_table,
}
COMPARISON_TABLES = ("quartiles", "strata", "category_wins")
CERTIFICATE_TABLES = {
    "certificate": certificate_table, "certificate_aggregate": certificate_aggregate_table, "dkw": dkw_table,
}

# --------------------------------------------------------------------------------------------- caption markup
# Generated captions, headers and notes are "markup": plain Unicode text in which $...$ is LaTeX math
# (typeset as math in LaTeX, turned into Unicode in Markdown) and \$ / \\ are a literal dollar / backslash.
# User-supplied text (method names, file names, caption overrides) enters markup only through lit().

_MATH_TO_UNICODE = (
    (r"\hat{F}", "F̂"), (r"\mathrm", ""), (r"\text", ""), (r"\varphi", "φ"), (r"\phi", "φ"), (r"\tau", "τ"),
    (r"\pi", "π"), (r"\rho", "ρ"), (r"\beta", "β"), (r"\alpha", "α"), (r"\Delta", "Δ"), (r"\geq", "≥"),
    (r"\leq", "≤"), (r"\times", "×"), (r"\pm", "±"), (r"\downarrow", "↓"), (r"\uparrow", "↑"),
    (r"\log", "log"), (r"\dagger", "†"), (r"\,", ""), ("{", ""), ("}", ""),
)


def lit(s: str) -> str:
    """Quote user text for use inside markup (its $ and \ stay literal)."""
    return str(s).replace("\\", "\\\\").replace("$", "\\$")


def _markup_parts(s: str) -> list[tuple[bool, str]]:
    """Split markup into (is_math, text) runs."""
    parts, buf, math, i = [], [], False, 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and not math and i + 1 < len(s) and s[i + 1] in "$\\":
            buf.append(s[i + 1])
            i += 2
            continue
        if ch == "$":
            parts.append((math, "".join(buf)))
            buf, math = [], not math
        else:
            buf.append(ch)
        i += 1
    parts.append((math, "".join(buf)))
    return [(m, t) for m, t in parts if t]


def markup_to_plain(s: str) -> str:
    out = []
    for math, t in _markup_parts(s):
        if math:
            t = re.sub(r"\\sqrt\{([^{}]*)\}", r"√(\1)", t).replace("-", "−")
            for a, b in _MATH_TO_UNICODE:
                t = t.replace(a, b)
        out.append(t)
    return "".join(out)


def markup_to_latex(s: str) -> str:
    return "".join(f"${t}$" if math else latex_escape(t) for math, t in _markup_parts(s))


# --------------------------------------------------------------------------------------------- Markdown


def md_escape(s: str) -> str:
    """GitHub pipe tables: only ``|`` needs escaping (nothing else is touched)."""
    return str(s).replace("|", r"\|")


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


# --------------------------------------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_LATEX_UNICODE = {
    "–": "--", "—": "---", "‘": "`", "’": "'", "“": "``", "”": "''", "…": r"\ldots{}", "\u00a0": "~",
    "±": r"\ensuremath{\pm}", "×": r"\ensuremath{\times}", "−": r"\ensuremath{-}", "≤": r"\ensuremath{\leq}",
    "≥": r"\ensuremath{\geq}", "≈": r"\ensuremath{\approx}", "→": r"\ensuremath{\rightarrow}",
    "↓": r"\ensuremath{\downarrow}", "↑": r"\ensuremath{\uparrow}", "†": r"\dag{}", "‡": r"\ddag{}",
    "°": r"\ensuremath{^\circ}", "·": r"\ensuremath{\cdot}", "•": r"\ensuremath{\bullet}", "ß": r"\ss{}",
    "æ": r"\ae{}", "Æ": r"\AE{}", "ø": r"\o{}", "Ø": r"\O{}", "œ": r"\oe{}", "Œ": r"\OE{}", "å": r"\aa{}",
    "Å": r"\AA{}", "ł": r"\l{}", "Ł": r"\L{}", "ı": r"\i{}", "¿": r"\textquestiondown{}", "¡": r"\textexclamdown{}",
    "µ": r"\ensuremath{\mu}", "F̂": r"\ensuremath{\hat{F}}",
    **{g: rf"\ensuremath{{\{n}}}" for g, n in zip("αβγδεθλμπρστφχψωΔΘΛΠΣΦΨΩ",
                                                  ["alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda",
                                                   "mu", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega",
                                                   "Delta", "Theta", "Lambda", "Pi", "Sigma", "Phi", "Psi", "Omega"])},
}
_LATEX_ACCENTS = {  # combining mark -> text-mode accent command
    "\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u", "\u0307": ".",
    "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0327": "c", "\u0328": "k", "\u0323": "d",
}


def latex_escape(s: str) -> str:
    """Escape text for LaTeX (T1 font encoding): the ten specials, ``< > |``, and every non-ASCII character.

    Accented letters become accent commands (``é`` -> ``\\'{e}``), common symbols and Greek letters their
    LaTeX forms; anything else (e.g. CJK) becomes a visible ``[U+XXXX]`` so the document still compiles under
    plain pdflatex.
    """
    out = []
    s = str(s).replace("F̂", "\0FHAT\0")
    for ch in s:
        if ch in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[ch])
        elif ord(ch) < 128:
            out.append(ch)
        elif ch in _LATEX_UNICODE:
            out.append(_LATEX_UNICODE[ch])
        else:
            out.append(_latex_accented(ch))
    return "".join(out).replace("\0FHAT\0", _LATEX_UNICODE["F̂"])


def _latex_accented(ch: str) -> str:
    decomposed = unicodedata.normalize("NFD", ch)
    base, marks = decomposed[0], decomposed[1:]
    if marks and ord(base) < 128 and all(m in _LATEX_ACCENTS for m in marks):
        inner = {"i": r"\i", "j": r"\j"}.get(base, base) if marks else base
        for m in marks:
            inner = f"\\{_LATEX_ACCENTS[m]}{{{inner}}}"
        return inner
    compat = unicodedata.normalize("NFKD", ch)
    if compat and all(ord(c) < 128 for c in compat):  # ligatures, full-width and super/subscript digits
        return latex_escape(compat)
    return f"[U+{ord(ch):04X}]"


_SCI = re.compile(r"^(<)?(-?\d+(?:\.\d+)?)e([+-]\d+)$")


def _latex_math_number(display: str) -> str:
    """'3.1e-152' -> '3.1\\times10^{-152}', '<1e-300' -> '<10^{-300}', '1,234' -> '1{,}234', '9.4×' -> '9.4\\times'."""
    m = _SCI.match(display)
    if m:
        less, mant, exp = m.groups()
        power = f"10^{{{int(exp)}}}"
        body = power if mant in ("1", "1.0") else f"{mant}\\times{power}"
        return ("<" if less else "") + body
    return display.replace(",", "{,}").replace("×", r"\times")


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
LATEX_PREAMBLE = "\n".join(LATEX_PACKAGES)


# --------------------------------------------------------------------------------------------- Report


def check_schema(doc: Any, expected: str, source: str) -> None:
    """``doc['schema']`` must be ``expected``'s family with the same major version (minor additions are fine)."""
    if not isinstance(doc, Mapping):
        raise SpectraInputError(f"{source}: expected a JSON object at the top level, got {type(doc).__name__}")
    family, major = expected.split("/")
    schema = doc.get("schema")
    if schema is None:
        raise SpectraInputError(f"{source}: no 'schema' field (expected {expected!r})")
    m = re.fullmatch(r"([\w.]+)/(\d+)(?:\.\d+)*", str(schema))
    if m is None or m.group(1) != family:
        raise SpectraInputError(f"{source}: unknown schema {schema!r} (expected {expected!r})")
    if m.group(2) != major:
        raise SpectraInputError(
            f"{source}: schema {schema!r} is an incompatible version (this spectra reads {expected!r})")


def _check_metrics(metrics: Mapping, source: str) -> None:
    check_schema(metrics, METRICS_SCHEMA, source)
    methods = need(metrics, source, "methods")
    if not isinstance(methods, Mapping) or not methods:
        raise SpectraInputError(f"{source}: 'methods' is empty")
    ref = _settings(metrics).get("reference")
    if ref is not None and ref not in methods:
        raise SpectraInputError(f"{source}: settings.reference {ref!r} is not in methods ({', '.join(methods)})")
    for key, comp in _comparisons(metrics).items():
        for role in ("method", "reference"):
            name = need(comp, f"{source}: comparisons[{key!r}]", role)
            if name not in methods:
                raise SpectraInputError(
                    f"{source}: comparisons[{key!r}].{role} is {name!r}, which is not in methods ({', '.join(methods)})")


@dataclass(frozen=True)
class Report:
    """Tables from a ``metrics.json`` and/or ``certificate.json`` document.

    Parameters
    ----------
    metrics, certificate : dict or None
        the parsed JSON (at least one).
    caption_prefix : str
        prepended to every generated caption (e.g. ``"MovieLens-100k."``).
    label_prefix : str
        prepended to every table label (``"tab:"`` gives ``\\label{tab:js}``).
    captions, labels : dict
        per-table overrides by table key (see :data:`METRIC_TABLES`, :data:`CERTIFICATE_TABLES`).
    """

    metrics: Mapping | None = None
    certificate: Mapping | None = None
    caption_prefix: str = ""
    label_prefix: str = "tab:"
    captions: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self):
        if self.metrics is None and self.certificate is None:
            raise SpectraInputError(f"{self.source}: a report needs metrics.json or certificate.json")
        if self.metrics is not None:
            _check_metrics(self.metrics, _source(self.metrics, METRICS_FILE))
        if self.certificate is not None:
            check_schema(self.certificate, CERTIFICATE_SCHEMA, _source(self.certificate, CERTIFICATE_FILE))
        unknown = set(self.captions) | set(self.labels)
        unknown -= set(METRIC_TABLES) | set(CERTIFICATE_TABLES)
        if unknown:
            raise SpectraInputError(f"unknown table key(s) {sorted(unknown)} (known: {', '.join(self.table_keys(all_keys=True))})")

    # ---- construction
    @classmethod
    def from_dir(cls, directory, **options) -> "Report":
        """Read ``DIR/metrics.json`` and/or ``DIR/certificate.json``; at least one must exist."""
        directory = Path(directory)
        if not directory.exists():
            raise SpectraInputError(f"{directory}: no such directory")
        if not directory.is_dir():
            raise SpectraInputError(f"{directory}: not a directory (expected the --out of evaluate/certify)")
        docs = {}
        for key, name in (("metrics", METRICS_FILE), ("certificate", CERTIFICATE_FILE)):
            path = directory / name
            if path.exists():
                docs[key] = read_json(path)
        if not docs:
            raise SpectraInputError(
                f"{directory}: neither {METRICS_FILE} nor {CERTIFICATE_FILE} found (write them with spectra evaluate/"
                "certify --out DIR)")
        return cls(**docs, source=str(directory), **options)

    def to_dict(self) -> dict:
        strip = lambda d: None if d is None else {k: v for k, v in d.items() if k != "_source"}  # noqa: E731
        return {"schema": REPORT_SCHEMA, "metrics": strip(self.metrics), "certificate": strip(self.certificate),
                "options": {"caption_prefix": self.caption_prefix, "label_prefix": self.label_prefix,
                            "captions": dict(self.captions), "labels": dict(self.labels)}}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Report":
        check_schema(data, REPORT_SCHEMA, "report")
        return cls(metrics=data.get("metrics"), certificate=data.get("certificate"), **dict(data.get("options") or {}))

    # ---- tables
    def table_keys(self, all_keys: bool = False) -> list[str]:
        keys = []
        if all_keys or self.metrics is not None:
            keys += [k for k in METRIC_TABLES if all_keys or self._applicable(k)]
        if all_keys or self.certificate is not None:
            keys += [k for k in CERTIFICATE_TABLES if all_keys or k != "dkw" or "dkw" in self.certificate]
        return keys

    def _applicable(self, key: str) -> bool:
        """Comparison tables need a comparison; the strata table needs evaluate --meta."""
        if key in COMPARISON_TABLES and not _comparisons(self.metrics):
            return False
        return key != "strata" or has_strata(self.metrics)

    def table(self, key: str) -> Table:
        if key in METRIC_TABLES:
            if self.metrics is None:
                raise SpectraInputError(f"{self.source}: table {key!r} needs {METRICS_FILE}")
            if key == "strata" and not has_strata(self.metrics):
                raise SpectraInputError(f"{self.source}: {METRICS_FILE} has no strata (run evaluate with --meta)")
            t = METRIC_TABLES[key](self.metrics)
        elif key in CERTIFICATE_TABLES:
            if self.certificate is None:
                raise SpectraInputError(f"{self.source}: table {key!r} needs {CERTIFICATE_FILE}")
            t = CERTIFICATE_TABLES[key](self.certificate)
        else:
            raise KeyError(key)
        if key in self.captions:  # a user caption replaces title and body; it is plain text
            t = replace(t, title="", caption=lit(self.captions[key]))
        if self.caption_prefix:
            t = replace(t, title=f"{lit(self.caption_prefix.strip())} {t.title}".strip())
        return replace(t, label=self.labels.get(key, self.label_prefix + t.label))

    def tables(self) -> list[Table]:
        return [self.table(k) for k in self.table_keys()]

    # ---- export
    def to_dataframe(self, key: str):
        return self.table(key).to_dataframe()

    def to_dataframes(self) -> dict:
        return {t.key: t.to_dataframe() for t in self.tables()}

    def to_markdown(self) -> str:
        head = "<!-- generated by `spectra report`; regenerate rather than edit -->\n\n"
        return head + "\n".join(render_markdown(t) for t in self.tables())

    def to_latex(self) -> str:
        """Body for ``\\input{tables.tex}``; the comment at the top names the preamble it needs."""
        head = ["% generated by `spectra report`; regenerate rather than edit.",
                "% Needs in the preamble (all in texlive-latex-base/-recommended + lmodern):"]
        head += [f"%   {p}" for p in LATEX_PACKAGES]
        head.append("% Labels are escaped to ASCII LaTeX (accents as \\'{e} etc.), so no inputenc is needed.")
        return "\n".join(head) + "\n\n" + "\n".join(render_latex(t) for t in self.tables())

    def to_latex_document(self, figures: Iterable[tuple[str, str]] = (), title: str = "SPECTRA report") -> str:
        """A standalone article (pdflatex) with every table and the given (path, caption) figures."""
        parts = [r"\documentclass[10pt]{article}", *LATEX_PACKAGES, r"\usepackage{graphicx}",
                 r"\usepackage[margin=2cm]{geometry}", r"\begin{document}", rf"\section*{{{latex_escape(title)}}}"]
        parts += [render_latex(t) for t in self.tables()]
        for path, caption in figures:
            parts += [r"\begin{figure}[htbp]", r"\centering", rf"\includegraphics[width=3.3in]{{{path}}}",
                      rf"\caption{{{markup_to_latex(caption)}}}", r"\end{figure}"]
        parts.append(r"\end{document}")
        return "\n".join(parts) + "\n"


def read_json(path: Path) -> dict:
    """Parse a JSON file; bad JSON is a one-line error with the line and column."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpectraInputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise SpectraInputError(f"{path}: not UTF-8 text") from None
    if isinstance(doc, dict):
        doc["_source"] = str(path)
    return doc
