"""Paper figures from an :class:`~spectra_eval.evaluation.Evaluation` (matplotlib, Agg, no pyplot global state).

Every figure is sized for one column (3.3 in wide), uses the Okabe-Ito colour-blind-safe palette with one
fixed colour per method across figures (the reference in grey), and is saved as PNG (200 dpi) and PDF.

* :func:`reliability_figure`: mean predicted vs mean true probability per ECE bin, marker area by pair count,
  identity line; one series per method.
* :func:`category_bias_figure`: per-category bias (mean predicted - mean true) as horizontal bars, categories
  sorted by true frequency, head/mid/tail bands shaded.
* :func:`quartile_delta_figure`: per-quartile Delta JS (method - reference) with bootstrap CIs.
* :func:`js_ndcg_figure`: JS and NDCG@5/@10 per method with bootstrap CIs.
* :func:`fusion_lambda_figure`: item-level NDCG@k against the fusion weight lambda, one panel per popularity
  slice, one line per fusion run (``fusion*.json``), with bootstrap CIs.
* :func:`panel_figures`: each robustness panel's metrics against its axis, one line per method with the runs'
  bootstrap CIs; for context-window x horizon cells (``CW3-LT``) the paper's Figure 6 layout (rows: horizons,
  columns: metrics, x: the context window).
* :func:`steerability_figure`: mean shift per single target category and direction (``steering.json``),
  categories in bucket order, bars coloured by head/mid/tail, with bootstrap CIs.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from spectra_eval.evaluation import Evaluation
from spectra_eval.fairness import QUARTILES
from spectra_eval.analyses.fusion import SLICES, FusionRuns
from spectra_eval.report.model import estimate
from spectra_eval.analyses.panels import Panel, Panels
from spectra_eval.report.markup import markup_to_plain
from spectra_eval.report.panel_tables import metric_header
from spectra_eval.analyses.steering import SteeringResult

log = logging.getLogger(__name__)
logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting logs every glyph at INFO

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#000000")
REFERENCE_COLOUR = "#7F7F7F"
BUCKET_SHADES = {"head": "#EDEDED", "mid": "#F7F7F7", "tail": "#FFFFFF"}
WIDTH_IN = 3.3
DPI = 200
RC: dict[Any, Any] = {"font.size": 7, "axes.titlesize": 7.5, "axes.labelsize": 7, "xtick.labelsize": 6.5,
                      "ytick.labelsize": 6.5, "legend.fontsize": 6, "axes.linewidth": 0.6, "xtick.major.width": 0.6,
                      "ytick.major.width": 0.6, "pdf.fonttype": 42, "svg.fonttype": "none"}


def _label(s: str) -> str:
    """Keep matplotlib from reading ``$`` in user labels as mathtext."""
    return str(s).replace("$", r"\$")


def method_colours(ev: Evaluation) -> dict[str, str]:
    """One colour per method, stable across figures; the reference is grey."""
    ref = ev.settings.reference
    others = [m for m in ev.methods if m != ref]
    colours = {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(others)}
    if ref is not None:
        colours[ref] = REFERENCE_COLOUR
    return colours


def _with_rc(draw):
    """Run a figure function under the column-width style (rcParams are read when artists are made)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(RC):
            return draw(*args, **kwargs)

    return wrapper


def _new_figure(height_in: float, ncols: int = 1, sharey: bool = False, *, nrows: int = 1, sharex: bool = False):
    fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    return fig, fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey)


def _intervals(results, dtype=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimates (MeanCI ``mean`` or PairedEffect ``estimate``), CI lows and CI highs of ``results`` as arrays."""
    results = list(results)
    return (np.array([estimate(r) for r in results], dtype=dtype), np.array([r.ci_low for r in results], dtype=dtype),
            np.array([r.ci_high for r in results], dtype=dtype))


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(length=2.5, pad=2)


@_with_rc
def reliability_figure(ev: Evaluation) -> Figure:
    colours = method_colours(ev)
    fig, ax = _new_figure(3.0)
    top = 0.0
    all_n = [b["n"] for m in ev.methods.values() for b in m["reliability"]]
    n_max = max(all_n) if all_n else 1
    for name, m in ev.methods.items():
        bins = [b for b in m["reliability"] if b.get("n")]
        if not bins:
            continue
        x = np.array([b["mean_pred"] for b in bins], dtype=float)
        y = np.array([b["mean_true"] for b in bins], dtype=float)
        n = np.array([b["n"] for b in bins], dtype=float)
        ece = (m.get("ece") or {}).get("overall")
        label = _label(name) + ("" if ece is None or ece != ece else f" (ECE {ece:.4f})")
        ax.plot(x, y, color=colours[name], lw=0.8, alpha=0.8, zorder=2)
        ax.scatter(x, y, s=4 + 60 * np.sqrt(n / n_max), color=colours[name], edgecolor="white", linewidth=0.4,
                   label=label, zorder=3)
        top = max(top, x.max(), y.max())
    lim = min(1.0, max(0.05, top * 1.08))
    ax.plot([0, lim], [0, lim], ls="--", color="black", lw=0.7, zorder=1, label="perfect calibration")
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("mean predicted probability (per bin)")
    ax.set_ylabel("mean true probability (per bin)")
    ax.legend(loc="upper left", frameon=False, handletextpad=0.3, borderaxespad=0.2, markerscale=0.8)
    ax.text(0.98, 0.02, "marker area ∝ √(pairs in bin)", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=5.5, color="0.35")
    _style(ax)
    return fig


@_with_rc
def category_bias_figure(ev: Evaluation) -> Figure:
    colours = method_colours(ev)
    truth = ev.truth_category_mass
    cats = list(ev.categories)
    order = sorted(cats, key=lambda c: (-float(truth[c]), cats.index(c)))  # most frequent on top
    names = list(ev.methods)
    k, m = len(order), len(names)
    fig, ax = _new_figure(1.0 + 0.19 * k * max(1.0, m / 3))
    buckets = ev.buckets
    y = np.arange(k)
    for bucket in ("head", "mid", "tail"):
        idx = [i for i, c in enumerate(order) if c in set(buckets.get(bucket, ()))]
        if idx:
            ax.axhspan(min(idx) - 0.5, max(idx) + 0.5, color=BUCKET_SHADES[bucket], zorder=0, lw=0)
            ax.text(1.0, (min(idx) + max(idx)) / 2, bucket, transform=ax.get_yaxis_transform(), rotation=-90,
                    ha="left", va="center", fontsize=6, color="0.3")
    height = 0.8 / m
    for j, name in enumerate(names):
        bias = ev.methods[name]["category_bias"]
        vals = np.array([100 * float(bias.get(c, np.nan)) for c in order])
        ax.barh(y - 0.4 + height * (j + 0.5), vals, height=height, color=colours[name], label=_label(name), zorder=2)
    ax.axvline(0, color="black", lw=0.6, zorder=3)
    ax.set_yticks(y, [f"{_label(c)} ({100 * float(truth[c]):.1f}%)" for c in order])
    ax.set_ylim(k - 0.5, -0.5)
    ax.set_xlabel("mean predicted − mean true (percentage points)")
    fig.legend(loc="outside upper center", ncol=1 if max(map(len, names)) > 18 else min(m, 3), frameon=False,
               handlelength=1.0)
    ax.grid(axis="x", color="0.85", lw=0.4, zorder=1)
    _style(ax)
    return fig


@_with_rc
def quartile_delta_figure(ev: Evaluation) -> Figure | None:
    comps = ev.comparisons
    if not comps:
        return None
    colours = method_colours(ev)
    fig, ax = _new_figure(2.3)
    width = 0.8 / len(comps)
    for j, (key, comp) in enumerate(comps.items()):
        d, lo, hi = _intervals(comp.quartiles.quartiles[q] for q in QUARTILES)
        x = np.arange(4) - 0.4 + width * (j + 0.5)
        ax.bar(x, d, width=width * 0.9, color=colours.get(comp.method, OKABE_ITO[j]), label=_label(key), zorder=2)
        ax.errorbar(x, d, yerr=np.vstack([d - lo, hi - d]), fmt="none", ecolor="black", elinewidth=0.7, capsize=1.5,
                    zorder=3)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(np.arange(4), ["Q1\nhead-leaning", "Q2", "Q3", "Q4\ntail-leaning"])
    ax.set_ylabel(f"Δ JS, method − reference ({ev.unit})")
    fig.legend(loc="outside upper center", ncol=1 if max(map(len, comps)) > 22 else 2, frameon=False,
               handlelength=1.0)
    ax.grid(axis="y", color="0.85", lw=0.4, zorder=1)
    ax.margins(y=0.15)
    _style(ax)
    return fig


@_with_rc
def js_ndcg_figure(ev: Evaluation) -> Figure:
    colours = method_colours(ev)
    names = list(ev.methods)
    fig, (ax_js, ax_nd) = _new_figure(0.9 + 0.32 * len(names) * 2, ncols=2, sharey=True)
    y = np.arange(len(names))

    def bars(ax, key, offset, height, hatch=None, label=None):
        mean, lo, hi = _intervals(ev.methods[n][key] for n in names)
        ax.barh(y + offset, mean, height=height, color=[colours[n] for n in names], hatch=hatch, edgecolor="white",
                linewidth=0.3, label=label, zorder=2)
        ax.errorbar(mean, y + offset, xerr=np.vstack([mean - lo, hi - mean]), fmt="none", ecolor="black",
                    elinewidth=0.7, capsize=1.5, zorder=3)
        for yy, right, value in zip(y + offset, hi, mean):
            ax.text(right, yy, f" {value:.3f}", va="center", ha="left", fontsize=5.5)

    bars(ax_js, "js", 0.0, 0.6)
    ax_js.set_title(f"JS ({ev.unit}) ↓")
    bars(ax_nd, "ndcg@5", -0.2, 0.38, hatch="//////")
    bars(ax_nd, "ndcg@10", 0.2, 0.38)
    ax_nd.set_title("NDCG ↑")
    proxies = [Patch(facecolor="0.6", hatch="//////", edgecolor="white", label="NDCG@5"),
               Patch(facecolor="0.6", label="NDCG@10")]
    fig.legend(handles=proxies, loc="outside lower right", ncol=2, frameon=False, handlelength=1.4)
    ax_js.set_yticks(y, [_label(n) for n in names])
    ax_js.set_ylim(len(names) - 0.5, -0.5)
    for ax, upper in ((ax_js, None), (ax_nd, 1.0)):
        ax.grid(axis="x", color="0.85", lw=0.4, zorder=1)
        left, right = ax.get_xlim()
        ax.set_xlim(0, right * 1.22 if upper is None else min(1.18, right * 1.22))
        _style(ax)
    return fig


@_with_rc
def fusion_lambda_figure(runs: FusionRuns) -> Figure:
    from spectra_eval.report.fusion_tables import SLICE_LABELS, run_label

    fig, axes = _new_figure(3.2, ncols=2, nrows=2, sharex=True)
    axes = axes.ravel()
    for j, run in enumerate(runs.runs.values()):
        lambdas = list(run.settings.lambdas)
        x = np.arange(len(lambdas))  # lambdas at equal spacing, labelled as written (0 cannot go on a log axis)
        for ax, s in zip(axes, SLICES):
            mean, lo, hi = _intervals((run.results[lam][s].metrics[run.ndcg_key] for lam in lambdas), float)
            colour = OKABE_ITO[j % len(OKABE_ITO)]
            ax.fill_between(x, lo, hi, color=colour, alpha=0.15, lw=0)
            ax.plot(x, mean, marker="o", ms=2.5, lw=0.9, color=colour, label=_label(run_label(run)) if s == "all" else None)
            best = lambdas.index(run.best_lambda)
            ax.plot(x[best], mean[best], marker="*", ms=6, color=colour, zorder=4)
    first = next(iter(runs.runs.values()))
    for ax, s in zip(axes, SLICES):
        ax.set_title(SLICE_LABELS[s], pad=2)
        ax.set_xticks(np.arange(len(first.settings.lambdas)), list(first.settings.lambdas))
        ax.grid(axis="y", color="0.85", lw=0.4)
        _style(ax)
    for ax in axes[2:]:
        ax.set_xlabel("λ")
    for ax in axes[::2]:
        ax.set_ylabel(first.ndcg_key.replace("ndcg", "NDCG"))
    fig.legend(loc="outside upper center", ncol=2, frameon=False, handlelength=1.2)
    return fig


BUCKET_COLOURS: dict[str | None, str] = {"head": "#D55E00", "mid": "#E69F00", "tail": "#0072B2"}


@_with_rc
def steerability_figure(res: SteeringResult) -> Figure | None:
    """Mean shift per target category (single-category requests), + solid and − hatched, coloured by bucket."""
    cats = [c for b in ("head", "mid", "tail") for c in res.buckets.get(b, ()) if c in res.by_category]
    if not cats:
        return None
    directions = [d for d in ("+", "-") if any(d in res.by_category[c] for c in cats)]
    fig, ax = _new_figure(1.0 + 0.17 * len(cats) * max(1, len(directions)) ** 0.5)
    height = 0.8 / len(directions)
    y = np.arange(len(cats))
    for j, d in enumerate(directions):
        rows = [(i, res.by_category[c][d], res.bucket_of(c)) for i, c in enumerate(cats) if d in res.by_category[c]]
        pos = np.array([i for i, _, _ in rows]) - 0.4 + height * (j + 0.5)
        mean, lo, hi = _intervals(r.shift for _, r, _ in rows)
        ax.barh(pos, mean, height=height * 0.9, color=[BUCKET_COLOURS.get(b, REFERENCE_COLOUR) for _, _, b in rows],
                hatch=None if d == "+" else "/////", edgecolor="white", linewidth=0.3, zorder=2)
        ax.errorbar(mean, pos, xerr=np.vstack([mean - lo, hi - mean]), fmt="none", ecolor="black", elinewidth=0.6,
                    capsize=1.2, zorder=3)
    ax.axvline(0, color="black", lw=0.6, zorder=3)
    ax.set_yticks(y, [_label(c) for c in cats])
    ax.set_ylim(len(cats) - 0.5, -0.5)
    ax.set_xlabel("mean shift of the target's mass (probability)")
    handles = [Patch(color=colour, label=b) for b, colour in BUCKET_COLOURS.items()]
    handles += [Patch(facecolor="0.6", hatch=None if d == "+" else "/////", edgecolor="white",
                      label="towards (+)" if d == "+" else "away (−)") for d in directions]
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False, handlelength=1.0,
               columnspacing=0.8)
    ax.grid(axis="x", color="0.85", lw=0.4, zorder=1)
    _style(ax)
    return fig


def _panel_colours(p: Panel) -> dict[str, str]:
    others = [m for m in p.methods if m != p.reference]
    return {**{m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(others)}, p.reference: REFERENCE_COLOUR}


@_with_rc
def panel_figure(p: Panel) -> Figure:
    """One panel: a column per metric; rows per horizon when the runs are CW x horizon cells (Figure 6)."""
    cells = p.cells()
    horizons = list(dict.fromkeys(h for _, h in cells.values())) if cells else [None]
    fig, axes = _new_figure(0.6 + 1.35 * len(horizons), ncols=len(p.metrics), nrows=len(horizons), sharex=True)
    axes = np.asarray(axes).reshape(len(horizons), len(p.metrics))
    colours = _panel_colours(p)
    for i, horizon in enumerate(horizons):
        labels = [r for r in p.runs if cells is None or cells[r][1] == horizon]
        x = np.array([cells[r][0] for r in labels], dtype=float) if cells else np.arange(len(labels), dtype=float)
        for j, key in enumerate(p.metrics):
            ax = axes[i, j]
            for method in p.methods:
                have = [(xx, p.rows[r].methods[method][key]) for xx, r in zip(x, labels) if method in p.rows[r].methods]
                if not have:
                    continue
                xs = np.array([h[0] for h in have])
                mean = np.array([h[1]["mean"] for h in have], dtype=float)
                lo = np.array([np.nan if h[1]["ci_low"] is None else h[1]["ci_low"] for h in have], dtype=float)
                hi = np.array([np.nan if h[1]["ci_high"] is None else h[1]["ci_high"] for h in have], dtype=float)
                ax.plot(xs, mean, marker="o", ms=2.5, lw=0.9, color=colours[method], label=_label(method), zorder=3)
                if np.isfinite(lo).any():
                    ax.fill_between(xs, lo, hi, color=colours[method], alpha=0.18, lw=0, zorder=2)
            name = markup_to_plain(metric_header(key)[0])
            title = _label(name) if horizon is None else f"{_label(name)}, {horizon}"
            ax.set_title(title)
            if cells:
                ax.set_xticks(sorted(set(x)))
                if i == len(horizons) - 1:
                    ax.set_xlabel("context window")
            else:
                ax.set_xticks(x, [_label(r) for r in labels], rotation=30, ha="right")
            ax.grid(color="0.9", lw=0.4, zorder=1)
            _style(ax)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(4, len(names)), frameon=False)
    return fig


def panel_figures(panels: Panels) -> dict[str, Figure]:
    """:func:`panel_figure` of every panel, by panel name."""
    return {name: panel_figure(p) for name, p in panels.panels.items()}


@dataclass(frozen=True)
class FigureSpec:
    """A figure: its draw function (None: nothing to draw), its caption (markup) and the document it reads."""

    draw: Callable[[Any], Figure | dict[str, Figure] | None]  # a dict: one figure per part (panels)
    caption: str
    document: str = "metrics"


FIGURES: dict[str, FigureSpec] = {
    "reliability": FigureSpec(reliability_figure, "Reliability diagram of the soft-label ECE bins: mean predicted vs "
                                                  "mean true probability per bin (marker area by pair count); dashed: "
                                                  "identity."),
    "category_bias": FigureSpec(category_bias_figure, "Per-category bias (mean predicted − mean true), categories "
                                                      "sorted by true frequency (in parentheses); shaded bands: head, "
                                                      "mid, tail buckets."),
    "quartile_delta": FigureSpec(quartile_delta_figure, "Per-quartile Δ JS (method − reference) by the users' true "
                                                        "tail mass, with bootstrap 95% CIs; below zero favours the "
                                                        "method."),
    "js_ndcg": FigureSpec(js_ndcg_figure, "JS divergence to the truth (left) and NDCG@5/@10 (right) per method, with "
                                          "bootstrap 95% CIs."),
    "fusion_lambda": FigureSpec(fusion_lambda_figure, "Item-level NDCG@k against the fusion weight λ per popularity "
                                                      "slice of the held-out item, one line per base ranker and "
                                                      "candidate-set size; bands: bootstrap 95% CIs; star: the "
                                                      "run's best λ.", document="fusion"),
    "steerability": FigureSpec(steerability_figure, "Per-category steerability: mean shift of the target's "
                                                    "probability mass when the user states a preference for (+, solid) "
                                                    "or against (−, hatched) one category, with bootstrap 95% CIs; "
                                                    "colour: the category's head/mid/tail bucket.", document="steering"),
    "panel": FigureSpec(panel_figures, "Robustness panel: each metric against the panel's axis, one line per "
                                       "method; bands: each run's bootstrap 95% CI. For context-window x horizon "
                                       "cells: rows are the horizons, x the context window (the paper's Figure 6).",
                        document="panel"),
}


def figure_caption(name: str) -> str:
    """Caption of a rendered figure file name (``panel-NAME`` files share the ``panel`` caption)."""
    return FIGURES[name if name in FIGURES else name.split("-", 1)[0]].caption


def render_figures(documents, out_dir, formats=("png", "pdf"), dpi: int = DPI) -> dict[str, list[Path]]:
    """Draw every applicable figure into ``out_dir`` as ``NAME.png`` / ``NAME.pdf``; returns the paths.

    ``documents`` maps document keys (``"metrics"``, ...) to typed results; a bare
    :class:`~spectra_eval.evaluation.Evaluation` stands for ``{"metrics": ev}``.
    """
    import matplotlib

    if isinstance(documents, Evaluation):
        documents = {"metrics": documents}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    with matplotlib.rc_context(RC):
        for name, spec in FIGURES.items():
            if spec.document not in documents:
                continue
            drawn = spec.draw(documents[spec.document])
            if drawn is None:
                log.info("figure %s skipped (no data)", name)
                continue
            # a draw function may return several figures (one per panel): files NAME-PART
            figs = drawn if isinstance(drawn, dict) else {None: drawn}
            for part, fig in figs.items():
                stem = name if part is None else f"{name}-{part}"
                paths = []
                for fmt in formats:
                    path = out / f"{stem}.{fmt}"
                    fig.savefig(path, dpi=dpi, metadata={"CreationDate": None} if fmt == "pdf" else None)
                    paths.append(path)
                written[stem] = paths
    return written
