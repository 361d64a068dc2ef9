"""The streamed bootstrap draw (platform scale): the same indices and the same numbers as the materialised draw."""
from __future__ import annotations

import json

import numpy as np
import pytest

from spectra_eval import stats
from spectra_eval.validation import SpectraInputError
from spectra_eval.evaluation import evaluate
from spectra_eval.io import DistributionTable


@pytest.mark.parametrize("n", [1, 7, 10, 1001])
@pytest.mark.parametrize("rows", [1, 3, 7, 100])
def test_blocks_of_any_height_concatenate_to_the_one_shot_draw(n, rows):
    """numpy continues one stream across integers() calls, whatever the block height (odd n included)."""
    draw = stats.bootstrap_draw(n, 23, seed=5)
    blocks = list(draw.blocks(rows))
    assert [start for start, _ in blocks] == list(range(0, 23, rows))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), stats.bootstrap_indices(n, 23, seed=5))
    np.testing.assert_array_equal(np.asarray(draw), stats.bootstrap_indices(n, 23, seed=5))  # replayable


def test_a_generator_seed_is_copied_not_advanced():
    rng = stats.derived_rng(3, 9, 1)
    draw = stats.bootstrap_draw(50, 11, rng)
    np.testing.assert_array_equal(np.asarray(draw), stats.bootstrap_indices(50, 11, stats.derived_rng(3, 9, 1)))
    np.testing.assert_array_equal(rng.integers(0, 50, 5), stats.derived_rng(3, 9, 1).integers(0, 50, 5))


@pytest.mark.parametrize("columns", [1, 3, 12])  # gather path and count-matrix path
def test_streamed_means_equal_materialised_means(columns):
    values = np.random.default_rng(0).random((301, columns))
    draw = stats.bootstrap_draw(301, 250, seed=2)
    streamed = stats.bootstrap_means(values, draw)
    np.testing.assert_array_equal(streamed, stats.bootstrap_means(values, np.asarray(draw)))
    np.testing.assert_array_equal(streamed, stats.bootstrap_means(values, 250, seed=2))
    with pytest.raises(SpectraInputError, match="shape"):
        stats.bootstrap_means(values[:300], draw)


def test_one_pass_over_several_arrays_equals_one_pass_each():
    """bootstrap_means_many: each array (1-D, gather path, count-matrix path) gets exactly what it gets alone,
    the draw replayed once; arrays of different user counts are refused."""
    rng = np.random.default_rng(1)
    arrays = [rng.random(301), rng.random((301, 3)), rng.random((301, 12)), rng.random((301, 40))]
    draw = stats.bootstrap_draw(301, 130, seed=4)
    together = stats.bootstrap_means_many(arrays, draw, chunk=17)
    assert len(together) == 4 and together[0].shape == (130,)
    for values, got in zip(arrays, together):
        np.testing.assert_array_equal(got, stats.bootstrap_means(values, draw, chunk=17))
        np.testing.assert_allclose(got, np.asarray(values)[np.asarray(draw)].mean(axis=1), rtol=1e-12)
    with pytest.raises(SpectraInputError, match="one row per user"):
        stats.bootstrap_means_many([arrays[0], arrays[1][:300]], draw)


def _tables(n: int, k: int = 19, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = np.array([f"u{i}" for i in range(n)], dtype=object)
    cats = tuple(f"c{j}" for j in range(k))
    truth = rng.dirichlet(np.full(k, 0.5), n)
    preds = {}
    for name, w in (("probe", 0.7), ("mix", 0.4), ("dg", 0.1)):
        p = w * truth + (1 - w) * rng.dirichlet(np.ones(k), n)
        preds[name] = DistributionTable(users, cats, p / p.sum(axis=1, keepdims=True), name)
    return DistributionTable(users, cats, truth, "truth"), preds


def test_evaluate_streamed_equals_materialised(monkeypatch):
    """Every number of evaluate() is the same whether the paired draws are streamed or held whole."""
    truth, preds = _tables(2_003)
    meta = __import__("pandas").DataFrame({"user_id": truth.users, "activity": np.arange(truth.n_users) % 5})
    streamed = evaluate(truth, preds, "dg", n_resamples=230, seed=4, meta=meta).to_dict()
    real = stats.bootstrap_draw
    monkeypatch.setattr(stats, "bootstrap_draw", lambda *a, **k: np.asarray(real(*a, **k)))
    held = evaluate(truth, preds, "dg", n_resamples=230, seed=4, meta=meta).to_dict()
    assert json.dumps(streamed, sort_keys=True) == json.dumps(held, sort_keys=True)
