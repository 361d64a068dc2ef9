"""Paper tables from an :class:`~spectra_eval.evaluation.Evaluation` (``metrics.json``).

Each function takes the typed evaluation and returns a :class:`~spectra_eval.report.model.Table`; columns of
catalogue metrics take their header and direction from :mod:`spectra_eval.metrics.catalogue`. CI half-widths are
``(ci_high - ci_low) / 2`` of the percentile bootstrap interval (the JSON keeps both ends); significance
marks (``†``) use ``p < alpha`` of the test named in the settings; per-category wins use Holm-adjusted p.
"""
from __future__ import annotations

from pathlib import Path

from spectra_eval.metrics.catalogue import metric
from spectra_eval.evaluation import Evaluation
from spectra_eval.fairness import QUARTILES
from spectra_eval.report.markup import DAGGER, DASH, lit
from spectra_eval.report.model import (Cell, Column, Row, Table, bold_columns, ci_cell, count, embolden, metric_column, num,
                                       pcell, text)

BUCKETS = ("head", "mid", "tail")
STRATA = ("overall",) + BUCKETS


# ------------------------------------------------------------------------------------------ phrases


def sig(p: float | None, alpha: float) -> str:
    return DAGGER if p is not None and float(p) < alpha else ""


def setting(value, default: str = "?") -> str:
    """A settings value quoted for markup (file names and test names are user text)."""
    return lit(default if value is None else str(value))


def base_name(path: str | None) -> str:
    """A settings path shown by its file name (captions should not carry local directories)."""
    return lit("?" if path is None else Path(str(path)).name)


def ci_phrase(ev: Evaluation, within: str = "") -> str:
    s = ev.settings
    return (f"± is the half-width of the percentile bootstrap {s.confidence * 100:g}% CI{within} from "
            f"{s.bootstrap:,} user-level resamples" + ("" if s.seed is None else f" (seed {s.seed})") + ".")


def cohort_phrase(ev: Evaluation) -> str:
    return f"n = {ev.n_users:,} users, K = {ev.n_categories} categories."


def test_note(ev: Evaluation, what: str, correction: str = "no multiplicity correction") -> str:
    return (f"{DAGGER} {what} differs from the reference ({setting(ev.settings.reference)}) at "
            f"p < {ev.settings.alpha:g}, {setting(ev.settings.test)}; {correction}.")


def caption(*sentences: str) -> str:
    return " ".join(s for s in sentences if s)


def mean_cell(ev: Evaluation, name: str, key: str, digits: int = 3, mark: str = "") -> Cell:
    return ci_cell(ev.methods[name][key], digits, mark)


# ------------------------------------------------------------------------------------------ tables


def tail_mass_table(ev: Evaluation) -> Table:
    """Paper Table 1: tail-bucket mass, head-bucket ECE and its ratio to aggregate ECE, head bias."""
    truth_tail = ev.truth_bucket_mass["tail"]
    cols = (
        Column("tail_mass", "tail mass", metric("bucket_mass").direction, group="A", target=truth_tail),
        Column("head_ece", "head ECE ↓", metric("ece").direction, group="B"),
        Column("head_ece_ratio", "ratio to overall", None, group="B"),
        metric_column(metric("head_bias"), group="C"),
    )
    rows = []
    for name, m in ev.methods.items():
        head_ece, overall = m["ece"]["head"], m["ece"]["overall"]
        ratio = head_ece / overall if overall > 0 else None
        rows.append(Row(name, (num(m["bucket_mass"]["tail"], 3), num(head_ece, 4),
                               Cell(ratio, DASH if ratio is None else f"{ratio:.1f}×"), num(m["head_bias"], 3))))
    rows = list(bold_columns(cols, rows))
    rows.append(Row("truth", (num(truth_tail, 3), Cell(), Cell(), Cell())))
    return Table("tail_mass", "Head–tail mass redistribution", caption(
        "(A) mean predicted mass on the tail bucket (bold: closest to the truth's tail mass, last row);",
        "(B) soft-label ECE on the head bucket and its ratio to the aggregate ECE;",
        "(C) mean absolute per-category bias |mean predicted − mean true| over head categories.",
        f"Buckets are thirds of the categories by cohort-mean true mass; {cohort_phrase(ev)}",
    ), "tail-mass", "Method", cols, tuple(rows))


def has_personalization(ev: Evaluation) -> bool:
    return any("personalization" in m for m in ev.methods.values())


def js_table(ev: Evaluation) -> Table:
    """Paper Table 3 (the main table): JS to the truth with CI half-widths, Delta vs the reference, and (when the
    evaluation has it) personalization, which tells a personalised predictor from the cohort prior."""
    ref = setting(ev.settings.reference)
    spec = metric("js")
    cols: tuple[Column, ...] = (Column("js", f"JS ({ev.unit}) ↓", spec.direction),
                                Column("delta_js", f"Δ JS vs {ref} ↓", spec.direction))
    personal = has_personalization(ev)
    if personal:
        cols += (metric_column(metric("personalization")),)
    rows = []
    for name in ev.methods:
        comp = ev.comparison_for(name)
        if comp is None:
            delta = Cell()
        else:
            d = comp.diffs["js"]
            delta = ci_cell(d, 3, sig(d.pvalue, ev.settings.alpha))
        cells: tuple[Cell, ...] = (mean_cell(ev, name, "js"), delta)
        if personal:
            r = ev.methods[name].get("personalization") or {}
            mark = sig(comp.diffs["personalization"].pvalue, ev.settings.alpha) if comp and "personalization" in comp.diffs else ""
            cells += (num(r.get("mean"), 3, (r.get("ci_low"), r.get("ci_high")), mark),)
        rows.append(Row(name, cells))
    notes: tuple[str, ...] = (test_note(ev, "per-user JS"),)
    if personal:
        notes += (f"{DAGGER} on personalization: the paired bootstrap difference from the reference excludes 0 at "
                  f"p < {ev.settings.alpha:g} (two-sided bootstrap p). Personalization is the mean over categories of "
                  "the Pearson correlation across users between predicted and true mass; a prior that gives every "
                  "user the same distribution has no varying category and shows –.",)
    return Table("js", "Distributional alignment", caption(
        f"Jensen–Shannon divergence between each method's distribution and the user's empirical category "
        f"distribution, averaged over users, in {ev.unit}; Δ = method − {ref}, paired per user.",
        ci_phrase(ev), cohort_phrase(ev),
    ), "js", "Method", cols, bold_columns(cols, rows), notes)


def ndcg_table(ev: Evaluation) -> Table:
    """Paper Table 4: NDCG@5 and NDCG@10 with CI half-widths."""
    keys = ("ndcg@5", "ndcg@10")
    cols = tuple(metric_column(metric(k)) for k in keys)
    rows = []
    for name in ev.methods:
        comp = ev.comparison_for(name)
        marks = [sig(comp.diffs[k].pvalue if comp and k in comp.diffs else None, ev.settings.alpha) for k in keys]
        rows.append(Row(name, tuple(mean_cell(ev, name, k, mark=mk) for k, mk in zip(keys, marks))))
    return Table("ndcg", "Category-ranking quality", caption(
        "NDCG@k of the categories ranked by predicted probability, with the user's true category mass as gain.",
        ci_phrase(ev), cohort_phrase(ev),
    ), "ndcg", "Method", cols, bold_columns(cols, rows), (test_note(ev, "per-user NDCG"),))


def has_taste(ev: Evaluation) -> bool:
    return any("taste_js" in m for m in ev.methods.values())


def taste_table(ev: Evaluation) -> Table:
    """List taste (issue 13, AMP-CF's question): each method's JS to the user's history mix (``taste_js``) next to
    its JS to the future truth; list methods name their position weights."""
    keys = ("taste_js", "js")
    cols = (Column("source", "distribution from"),) + tuple(metric_column(metric(k)) for k in keys)
    rows = []
    for name in ev.methods:
        spec = ev.settings.lists.get(name)
        source = text(f"list, {spec.get('weights', '?')} weights" if spec else "distribution table")
        rows.append(Row(name, (source,) + tuple(mean_cell(ev, name, k) for k in keys)))
    return Table("taste", "List taste", caption(
        "Taste JS: Jensen–Shannon divergence between each method's category distribution and the user's history "
        f"distribution ({base_name(ev.settings.history)}), averaged over users, in {ev.unit}: 0 = the method "
        "mirrors the user's historical taste mix (the library's own measure of AMP-CF's Taste Distribution "
        "question, defined in spectra_eval.analyses.lists); JS: the same divergence to the future truth. A recommendation "
        "list spreads each item's unit of mass over its categories, weighted by position.",
        ci_phrase(ev), cohort_phrase(ev),
    ), "taste", "Method", cols, bold_columns(cols, rows))


RATIO_NOTE = {"opposite signs": "Q1 and Q4 deltas have opposite signs",
              "Q1 negligible": "|Δ Q1| is negligible next to |Δ Q4| (ratio beyond 100)",
              "zero delta": "a quartile delta is zero", "missing delta": "a quartile is empty"}


def quartile_table(ev: Evaluation) -> Table:
    """Paper Table 5: per-quartile Delta JS (method - reference) by the user's true tail mass."""
    alpha = ev.settings.alpha
    cols = tuple(Column(f"delta_{q.lower()}", f"Δ {q}{' head' if q == 'Q1' else ' tail' if q == 'Q4' else ''} ↓",
                        "lower") for q in QUARTILES)
    cols += (Column("ratio_q4_q1", "ratio Q4/Q1"), Column("n_q4", "n Q4"), Column("p_q4", "p Q4"))
    rows: list[Row] = []
    reasons: dict[str, list[str]] = {}
    for key, comp in ev.comparisons.items():
        qs = comp.quartiles
        cells = [ci_cell(g, 3, sig(g.pvalue, alpha)) for g in (qs.quartiles[q] for q in QUARTILES)]
        ratio = qs.ratio_q4_q1
        if ratio != ratio:  # NaN: undefined, footnoted with its reason
            reasons.setdefault(qs.ratio_reason or "undefined", []).append(key)
            ratio_cell = Cell(mark="*" if qs.ratio_reason else "")
        else:
            ratio_cell = Cell(ratio, f"{float(ratio):.2f}")
        q4 = qs.quartiles["Q4"]
        cells += [ratio_cell, count(q4.n), pcell(q4.pvalue)]
        rows.append(Row(key, tuple(cells)))
    ref = setting(ev.settings.reference)
    notes: tuple[str, ...] = (test_note(ev, "the quartile's per-user JS", "within the quartile, no multiplicity correction"),)
    notes += tuple(f"* ratio not defined ({RATIO_NOTE.get(r, r)}): {lit(', '.join(keys))}." for r, keys in reasons.items()
                   if r != "undefined")
    return Table("quartiles", "User-level fairness differential", caption(
        f"Δ = mean per-user (JS of method − JS of {ref}) in {ev.unit}, within quartiles of the users' true "
        "tail-bucket mass (Q1 most head-leaning, Q4 most tail-leaning); more negative favours the method.",
        ci_phrase(ev, " within the quartile"), cohort_phrase(ev),
    ), "quartiles", "Comparison", cols, bold_columns(cols, rows), notes)


def has_strata(ev: Evaluation) -> bool:
    return any(comp.strata for comp in ev.comparisons.values())


def strata_table(ev: Evaluation) -> Table:
    """Paper Table 6: per-stratum range of Delta JS and the number of strata levels the method wins."""
    alpha = ev.settings.alpha
    cols = (Column("delta_min", "min Δ JS"), Column("delta_max", "max Δ JS"), Column("levels", "levels"),
            Column("wins", "wins"), Column("p_max", "max p"))
    rows, grouped = [], set()
    for key, comp in ev.comparisons.items():
        for column, block in (comp.strata or {}).items():
            ps = [g.pvalue for g in block.levels.values() if g.pvalue == g.pvalue]
            if block.grouping == "quantiles":
                grouped.add(column)
            rows.append(Row(f"{key}: {column}", (
                num(block.range[0], 3), num(block.range[1], 3), count(block.n_levels),
                Cell(float(block.wins), f"{block.wins}/{block.n_levels}"), pcell(max(ps) if ps else None))))
    grouping = (f" Numeric columns with more than 10 values ({lit(', '.join(sorted(grouped)))}) are grouped into "
                f"{ev.settings.strata_quantiles} equal-count quantile strata." if grouped else "")
    return Table("strata", "Stratified fairness gain", caption(
        f"Per-stratum Δ JS (method − {setting(ev.settings.reference)}) across the levels of each metadata "
        f"column ({base_name(ev.settings.meta)}); a win is a level with Δ < 0 at "
        f"p < {alpha:g} ({setting(ev.settings.test)}, within the level).{grouping}",
        cohort_phrase(ev),
    ), "strata", "Comparison: stratum", cols, tuple(rows))


def ece_table(ev: Evaluation) -> Table:
    """Paper Table 7: soft-label ECE, aggregate and per bucket, with pair and category counts."""
    names = list(ev.methods)
    spec = metric("ece")
    cols = tuple(Column(f"ece_{i}", f"{lit(name)} ↓", spec.direction, group="ECE") for i, name in enumerate(names))
    cols += (Column("n_pairs", "pairs n"), Column("categories", "categories"))
    first = ev.methods[names[0]]
    rows = []
    for stratum in STRATA:
        eces = embolden([num(ev.methods[n]["ece"][stratum], 4) for n in names], spec.direction)
        rows.append(Row(stratum, tuple(eces) + (count(first.get("ece_pairs", {}).get(stratum)),
                                                 count(first.get("ece_categories", {}).get(stratum)))))
    return Table("ece", "Aggregate and stratified calibration", caption(
        f"Soft-label ECE over (user, category) pairs with {ev.settings.bins} equal-width bins of predicted "
        "probability; head/mid/tail restrict the pairs to that bucket's categories. Bold: best method in the row.",
        cohort_phrase(ev),
    ), "ece", "Stratum", cols, tuple(rows))


def top1_ece_table(ev: Evaluation, threshold: float = 0.01) -> Table:
    """Paper Table 10: top-1 ECE (each user's argmax category, predicted vs true mass)."""
    cols = (metric_column(metric("top1_ece")), Column("below_threshold", f"below {threshold:.0%}"))
    rows = [Row(name, (num(m["top1_ece"], 4), text("yes" if m["top1_ece"] < threshold else "no")))
            for name, m in ev.methods.items()]
    return Table("top1_ece", "Top-1 calibration", caption(
        f"ECE of each user's top-1 predicted category against its true mass ({ev.settings.bins} equal-width bins).",
        cohort_phrase(ev),
    ), "top1-ece", "Method", cols, bold_columns(cols, rows))


def category_wins(comp, alpha: float = 0.05) -> tuple[list[str], list[str]]:
    """Categories the method wins / loses: lower / higher mean absolute error and Holm p < ``alpha``."""
    wins, losses = [], []
    for cat, t in comp.per_category.items():
        if not t.p_holm < alpha:
            continue
        if t.error_diff < 0:
            wins.append(cat)
        elif t.error_diff > 0:
            losses.append(cat)
    return wins, losses


def category_wins_table(ev: Evaluation) -> Table:
    """Per-category wins after Holm: the count and list of categories each method wins and loses."""
    alpha = ev.settings.alpha
    cols = (Column("wins", "wins ↑", "higher"), Column("losses", "losses ↓", "lower"),
            Column("not_significant", "n.s."), Column("lost_on", "lost on", wrap=True),
            Column("won_on", "won on", wrap=True))
    rows = []
    for key, comp in ev.comparisons.items():
        wins, losses = category_wins(comp, alpha)
        k = len(comp.per_category)
        rows.append(Row(key, (count(len(wins)), count(len(losses)), count(k - len(wins) - len(losses)),
                              text(", ".join(losses) or DASH), text(", ".join(wins) or DASH))))
    return Table("category_wins", "Per-category wins", caption(
        f"A method wins a category when its mean per-user absolute error |pred(c) − true(c)| is lower than the "
        f"reference's and the {setting(ev.settings.test)} on the per-user errors gives p < {alpha:g} after "
        f"Holm correction across the {ev.n_categories} categories; a loss is the reverse.",
        cohort_phrase(ev),
    ), "category-wins", "Comparison", cols, bold_columns(cols, rows))
