"""The steering table from a :class:`~spectra_eval.analyses.steering.SteeringResult` (``steering.json``).

One row per direction x granularity group (under a section per direction) and one for all requests: the
mean shift with its bootstrap CI half-width, the success rate, the mean relative shift, the mean off-target
JS and the Wilcoxon p-value (Holm-adjusted across the groups; unadjusted for all requests). Groups answer
different questions (steering towards vs away from a target), so no cell is bold.
"""
from __future__ import annotations

from pathlib import Path

from spectra_eval.report.markup import lit
from spectra_eval.report.model import Column, Row, Table, ci_cell, count, num, pcell
from spectra_eval.analyses.steering import GroupResult, SteeringResult

DIRECTION_NAMES = {"+": "towards the target (+)", "-": "away from the target (−)"}


def _cells(g: GroupResult, p: float | None) -> tuple:
    return (count(g.n), ci_cell(g.shift, 3), num(g.success_rate, 3),
            num(g.relative_shift, 3), num(g.off_target_js, 4), pcell(p))


def steering_table(res: SteeringResult) -> Table:
    """Direction x granularity: shift, success rate, relative shift, off-target JS, p (Holm)."""
    s = res.settings
    cols = (Column("n", "requests"), Column("shift", "shift ↑"), Column("success_rate", "success rate ↑"),
            Column("relative_shift", "relative shift ↑"), Column("off_target_js", f"off-target JS ({res.unit}) ↓"),
            Column("p", "p (Holm)"))
    rows = []
    for direction, groups in res.by.items():
        rows.append(Row(DIRECTION_NAMES.get(direction, direction)))
        rows += [Row(gran, _cells(g, g.p_holm)) for gran, g in groups.items()]
    rows += [Row("all requests"), Row("all", _cells(res.overall, res.overall.pvalue))]
    caption = " ".join((
        "Requests add a stated preference for (+) or against (−) a target (one category, or a group) to the "
        "user's context; the steered probe is compared with the unsteered one.",
        "Shift = direction × change of the target's probability mass; ± is the half-width of the percentile "
        f"bootstrap {s.confidence * 100:g}% CI from {s.bootstrap:,} resamples of the group's requests (seed {s.seed}).",
        "Success rate: share of requests with shift > 0. Relative shift: share of the available headroom moved "
        "(1 − base target mass for +, base target mass for −; requests without headroom left out).",
        f"Off-target JS: JS ({res.unit}) between base and steered distributions over the non-target categories, "
        "each renormalised.",
        f"p: {lit(s.test)} of the shifts, Holm across the groups "
        "(the all-requests row unadjusted).",
        f"n = {res.n_requests:,} requests of {res.n_users:,} users (requests file {lit(Path(s.requests).name)}).",
    ))
    return Table("steering", "Steerability", caption, "steering", "Group", cols, tuple(rows))
