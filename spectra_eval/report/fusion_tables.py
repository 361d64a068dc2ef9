"""Fusion tables from :class:`~spectra_eval.analyses.fusion.FusionRuns` (``fusion.json`` and ``fusion-NAME.json``).

Paper Table 13: per base ranker x candidate-set size x popularity slice, NDCG@k of the base ranker alone
(lambda = 0) and fused at the run's best lambda, the paired difference and its Wilcoxon p-values (raw and Holm
across the lambdas > 0 of the slice).
"""
from __future__ import annotations

from spectra_eval.analyses.fusion import SLICES, FusionResult, FusionRuns
from spectra_eval.report.markup import DAGGER, lit
from spectra_eval.report.metric_tables import caption
from spectra_eval.report.model import Cell, Column, Row, Table, ci_cell, count, pcell

ALPHA = 0.05
SLICE_LABELS = {"all": "all users", "head": "head items", "mid": "mid items", "tail": "tail items"}


def run_label(run: FusionResult) -> str:
    """``SASRec, 1 + 99``: backbone, positives + negatives per user (ranges when users differ, e.g. heavy users
    with fewer never-seen items than the negatives asked for)."""
    (c0, c1), (p0, p1) = run.population.candidates_per_user, run.population.positives_per_user
    pos = f"{p0}" if p0 == p1 else f"{p0}–{p1}"
    negatives = run.population.negatives
    neg = f"{c0 - p1}–{c1 - p0}" if negatives is None else f"{negatives}"
    return f"{run.backbone}, {pos} + {neg}"


def fusion_table(runs: FusionRuns) -> Table:
    """Paper Table 13: lambda = 0 versus the best lambda per run and popularity slice."""
    first = next(iter(runs.runs.values()))
    key = first.ndcg_key.replace("ndcg", "NDCG")
    cols = (Column("ndcg_base", f"{key} λ = 0"), Column("ndcg_best", f"{key} best λ"),
            Column("delta", "Δ (best − 0)"), Column("relative", "relative"), Column("p", "p"),
            Column("p_holm", "p (Holm)"), Column("n", "n users"))
    rows, chosen = [], set()
    for run in runs.runs.values():
        ref, best = run.settings.reference, run.best_lambda
        chosen.add(run.selection.chosen_on)
        rows.append(Row(f"{run_label(run)}; best λ = {best} (chosen on {run.selection.chosen_on})"))
        for s in SLICES:
            base = run.results[ref][s].metrics[run.ndcg_key]
            fused = run.results[best][s].metrics[run.ndcg_key]
            comp = run.comparisons.get(best, {}).get(s)
            if comp is None:  # the best lambda is the base ranker itself
                delta, rel, p, p_holm = Cell(), Cell(), Cell(), Cell()
            else:
                e = comp.effect
                delta = ci_cell(e, 4, DAGGER if comp.p_holm < ALPHA else "")
                ratio = e.estimate / base.mean if base.mean else None
                rel = Cell() if ratio is None else Cell(100 * ratio, f"{100 * ratio:+.0f}%")
                p, p_holm = pcell(e.pvalue), pcell(comp.p_holm)
            rows.append(Row(SLICE_LABELS[s], (ci_cell(base, 4), ci_cell(fused, 4), delta, rel, p, p_holm,
                                              count(run.results[ref][s].n))))
    settings = first.settings
    test_note = ("best λ chosen on the test candidates themselves: the fused column is optimistic"
                 if "test" in chosen else "best λ chosen on validation candidates (--select-on)")
    return Table("fusion", "SPECTRA as a fused category prior", caption(
        f"Item-level {key} (binary gain, pessimistic ties) of the base ranker alone (λ = 0) and fused with the "
        "SPECTRA category affinity, final = z(base) + λ·z(SPECTRA), at each run's best λ; slices by the "
        "popularity third of the user's held-out item (training counts). Δ = fused − base, paired per user; "
        f"p: two-sided Wilcoxon signed-rank within user; Holm across the λ > 0 of each slice; {test_note}.",
        f"± is the half-width of the percentile bootstrap {settings.confidence * 100:g}% CI from "
        f"{settings.bootstrap:,} user-level resamples (seed {lit(str(settings.seed))}; within the slice for slices).",
        "Population: the users of each run's candidates file (n users) with their held-out items.",
    ), "fusion", "Base ranker / slice", cols, tuple(rows),
        (f"{DAGGER} Holm-adjusted p < {ALPHA:g}.",))
