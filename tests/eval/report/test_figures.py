"""Tests for spectra_eval.report.figures: files, PNG validity and size, drawn data equal to the JSON."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from spectra_eval.evaluation import Evaluation
from spectra_eval.report import figures as fg

FIXTURE = Path(__file__).parents[2] / "fixtures" / "report"
NAMES = ("reliability", "category_bias", "quartile_delta", "js_ndcg")


@pytest.fixture(scope="module")
def metrics():
    return json.loads((FIXTURE / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rendered(metrics, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    return out, fg.render_figures(Evaluation.from_dict(metrics), out)


def test_every_figure_written_as_png_and_pdf(rendered):
    out, written = rendered
    assert set(written) == set(NAMES)
    for name in NAMES:
        assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", NAMES)
def test_png_is_column_width_and_has_ink(rendered, name):
    out, _ = rendered
    img = mpimg.imread(out / f"{name}.png")
    height, width = img.shape[:2]
    assert width == round(fg.WIDTH_IN * fg.DPI)  # 3.3 in at 200 dpi: readable at column width
    assert 0.5 * width <= height <= 2.5 * width
    rgb = img[..., :3]
    ink = (rgb < 0.9).any(axis=-1).mean()  # share of non-background pixels
    assert 0.02 < ink < 0.6
    colourful = (rgb.max(axis=-1) - rgb.min(axis=-1) > 0.2).mean()
    assert colourful > 0.002  # the palette colours are really drawn


def test_colours_are_okabe_ito_with_grey_reference(metrics):
    colours = fg.method_colours(Evaluation.from_dict(metrics))
    assert colours["dg"] == fg.REFERENCE_COLOUR
    others = [c for m, c in colours.items() if m != "dg"]
    assert len(set(others)) == len(others) and set(others) <= set(fg.OKABE_ITO)


def test_category_bias_bars_are_the_json_sorted_by_truth(metrics):
    fig = fg.category_bias_figure(Evaluation.from_dict(metrics))
    ax = fig.axes[0]
    truth = metrics["truth"]["category_mass"]
    order = sorted(metrics["categories"], key=lambda c: (-truth[c], metrics["categories"].index(c)))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert [lab.rsplit(" (", 1)[0] for lab in labels] == order
    assert labels[0] == f"{order[0]} ({100 * truth[order[0]]:.1f}%)"
    for container, name in zip(ax.containers, metrics["methods"]):
        np.testing.assert_allclose(container.datavalues,
                                   [100 * metrics["methods"][name]["category_bias"][c] for c in order])


def test_js_ndcg_and_quartile_bars_are_the_json(metrics):
    ax_js, ax_nd = fg.js_ndcg_figure(Evaluation.from_dict(metrics)).axes[:2]
    bars = [c for c in ax_js.containers if hasattr(c, "datavalues")]
    np.testing.assert_allclose(bars[0].datavalues, [v["js"]["mean"] for v in metrics["methods"].values()])
    nd = [c for c in ax_nd.containers if hasattr(c, "datavalues")]
    np.testing.assert_allclose(nd[1].datavalues, [v["ndcg@10"]["mean"] for v in metrics["methods"].values()])
    ax = fg.quartile_delta_figure(Evaluation.from_dict(metrics)).axes[0]
    q = [c for c in ax.containers if hasattr(c, "datavalues")]
    for container, comp in zip(q, metrics["comparisons"].values()):
        np.testing.assert_allclose(container.datavalues, [comp["quartiles"][k]["delta"] for k in ("Q1", "Q2", "Q3", "Q4")])


def test_reliability_points_and_identity(metrics):
    ax = fg.reliability_figure(Evaluation.from_dict(metrics)).axes[0]
    offsets = [c.get_offsets() for c in ax.collections]
    for pts, name in zip(offsets, metrics["methods"]):
        bins = metrics["methods"][name]["reliability"]
        np.testing.assert_allclose(pts, [[b["mean_pred"], b["mean_true"]] for b in bins])
    identity = ax.lines[-1]
    np.testing.assert_allclose(identity.get_xdata(), identity.get_ydata())


def test_odd_labels_and_missing_comparisons(metrics, tmp_path):
    m = json.loads(json.dumps(metrics).replace("spectra_probe", "probe $x$_{1} 50%"))
    fg.render_figures(Evaluation.from_dict(m), tmp_path / "odd", formats=("png",), dpi=60)  # mathtext must not choke on '$'
    assert (tmp_path / "odd" / "js_ndcg.png").exists()
    no_comp = copy.deepcopy(metrics)
    no_comp["comparisons"] = {}
    assert fg.quartile_delta_figure(Evaluation.from_dict(no_comp)) is None
    written = fg.render_figures(Evaluation.from_dict(no_comp), tmp_path / "nocomp", formats=("png",), dpi=60)
    assert "quartile_delta" not in written
