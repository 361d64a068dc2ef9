"""Robustness-panel tables (paper Tables 8, 9, 10, 15) from :class:`~spectra_eval.analyses.panels.Panels`.

One table per panel: a row per run (in the panel's order), per method a column per metric (mean ± CI half-width,
copied from the run's ``metrics.json``), whether the probe-vs-reference JS ordering holds with the run's
paired p, then two rows of spread across the runs (max − min and the sample SD of the means).
"""
from __future__ import annotations

from spectra_eval.analyses.panels import Panel, Panels
from spectra_eval.metrics.catalogue import metric
from spectra_eval.report.markup import lit
from spectra_eval.report.model import Cell, Column, Row, Table, bold_columns, num, pcell, text


def metric_header(key: str) -> tuple[str, str | None]:
    """Header (markup, with the better direction's arrow) and direction of a metric key."""
    try:
        spec = metric(key)
    except KeyError:
        return lit(key), None
    arrow = {"lower": " ↓", "higher": " ↑"}.get(spec.direction or "", "")
    return (spec.header if spec.header.endswith(("↓", "↑")) else spec.header + arrow), spec.direction


def _per_run(values) -> str:
    values = list(values)
    return str(values[0]) if len(set(values)) == 1 else ", ".join(map(str, values))


def panel_parts(panels: Panels) -> list[str]:
    return list(panels.panels)


def panel_table(panels: Panels, part: str) -> Table:
    p: Panel = panels.panels[part]
    methods = p.methods
    cols, keys = [], []
    for i, method in enumerate(methods):
        for j, key in enumerate(p.metrics):
            header, direction = metric_header(key)
            cols.append(Column(f"m{i}_{j}", header, direction, group=lit(method)))
            keys.append((method, key))
    cols += [Column("ordering", "JS ordering"), Column("p", "paired p")]
    rows = []
    for label in p.runs:
        r = p.rows[label]
        cells = []
        for method, key in keys:
            v = r.methods.get(method, {}).get(key)
            cells.append(Cell() if v is None else num(v["mean"], 4 if key == "top1_ece" else 3,
                                                       None if v["ci_low"] is None else (v["ci_low"], v["ci_high"])))
        holds = {True: "holds", False: "fails", None: "–"}[r.ordering_holds]
        rows.append(Row(label, tuple(cells) + (text(holds), pcell(r.p))))
    rows = list(bold_columns(cols, rows)) if len(p.runs) > 1 else rows
    if len(p.runs) > 1:
        for what in ("range", "sd"):
            cells = []
            for method, key in keys:
                s = p.spread.get(method, {}).get(key)
                value = None if s is None else (s["max"] - s["min"] if what == "range" else s["sd"])
                cells.append(num(value, 4 if key == "top1_ece" else 3))
            rows.append(Row("max − min" if what == "range" else "SD", tuple(cells) + (Cell(), Cell())))
    tests = lit(p.test or "the runs' paired test")
    return Table(f"panel:{part}", f"Robustness along {lit(p.axis)}", " ".join((
        f"One row per run (a spectra evaluate output) along {lit(p.axis)}; cells are cohort means with the half-width "
        "of each run's percentile bootstrap 95% CI, copied from that run's metrics.json.",
        f"JS ordering: {lit(p.probe)} has lower mean JS than the reference {lit(p.reference)} in that run; paired p: "
        f"{tests} on per-user JS.",
        "Last rows: spread of the runs' means (max − min, sample SD); not a sampling interval.",
        f"{p.holds} of {len(p.runs)} runs keep the ordering; n = "
        + _per_run(f"{p.rows[r].n_users:,}" for r in p.runs) + " users, K = "
        + _per_run(p.rows[r].n_categories for r in p.runs) + " categories per run.",
    )), f"panel-{part}", lit(p.axis), tuple(cols), tuple(rows))


def latency_table(lat) -> Table:
    """Paper Table 11: seconds per user of every probe run, prompts and tokens per user, and the K-linear fit."""
    from spectra_eval.report.model import count

    cols = (Column("seconds_per_user", "s / user ↓", "lower"), Column("prompts_per_user", "prompts / user"),
            Column("tokens_per_user", "tokens / user"), Column("k", "K"), Column("users", "users"),
            Column("engine", "engine"), Column("device", "device"))
    rows = []
    for r in lat.runs:
        rows.append(Row(f"{r['run']} ({r['method']})", (
            num(r["seconds_per_user"], 4), num(r["prompts_per_user"], 1), num(r["tokens_per_user"], 0),
            count(r["k"]), count(r["users"]), text(str(r["engine"])), text(f"{r['device']}, {r['dtype']}"))))
    notes = []
    for method, fits in lat.fits.items():
        for engine, f in fits.items():
            notes.append(f"Fit {lit(method)} ({lit(engine)}): s/user = {f['a']:.3g} + {f['b']:.3g}·K, least "
                         f"squares over {f['n_runs']} runs at K = {', '.join(map(str, f['k']))}.")
    for method, r in lat.ratios.items():
        slope = "" if r["slope_ratio"] is None else f"; ratio of the fitted slopes {r['slope_ratio']:.2f}"
        notes.append(f"{lit(method)}: naive / packed s/user = {r['mean']:.2f} (mean over K = "
                     f"{', '.join(map(str, r['k']))}){slope}.")
    return Table("latency", "Wall-clock latency", " ".join((
        "Scoring wall-clock per user of each probe run (model loading excluded), the prompts per user (one per "
        "scored category suffix or generation) and their tokens, each prompt counted as if run alone.",
        "Times compare only within one machine and a quiet one; device and dtype per row.",
    )), "latency", "Run", cols, tuple(rows), tuple(notes))
