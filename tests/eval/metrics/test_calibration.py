"""Soft-label ECE (aggregate and stratified), top-1 ECE and Steck's miscalibration KL."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.stats import entropy

from spectra_eval.metrics.buckets import Buckets, make_buckets
from spectra_eval.metrics.calibration import (
    EceResult,
    ReliabilityBin,
    miscalibration_kl,
    soft_label_ece,
    stratified_ece,
    top1_ece,
)
from spectra_eval.validation import SpectraInputError
from tests.strategies import pairs, values

VALUES = values(0.0, 0.25, 0.5, 1.0)


def reference_ece(pairs, n_bins):
    """Loop over pairs and bins, straight from the definition."""
    bins = {}
    for p, t in pairs:
        b = min(math.floor(p * n_bins), n_bins - 1)
        bins.setdefault(b, []).append((p, t))
    total = len(pairs)
    ece = sum(len(v) / total * abs(sum(p for p, _ in v) / len(v) - sum(t for _, t in v) / len(v)) for v in bins.values())
    return ece, bins


PRED = np.array([[1.0, 0.0], [0.6, 0.4], [0.3, 0.7]])
TRUTH = np.array([[0.8, 0.2], [0.5, 0.5], [0.5, 0.5]])


def test_soft_ece_hand_worked():
    # n_bins=4: (0.0,.2)->bin0; (.4,.5),(.3,.5)->bin1; (.6,.5),(.7,.5)->bin2; (1.0,.8)->bin3 (closed at 1)
    res = soft_label_ece(PRED, TRUTH, n_bins=4)
    assert res.ece == pytest.approx((0.2 + 2 * 0.15 + 2 * 0.15 + 0.2) / 6, abs=1e-15)
    assert res.n_pairs == 6 and res.n_categories == 2
    assert [(b.lo, b.hi, b.n) for b in res.bins] == [(0.0, 0.25, 1), (0.25, 0.5, 2), (0.5, 0.75, 2), (0.75, 1.0, 1)]
    assert res.bins[1].mean_pred == pytest.approx(0.35) and res.bins[1].mean_true == pytest.approx(0.5)
    assert res.bins[3] == ReliabilityBin(0.75, 1.0, 1, 1.0, 0.8)


def test_bin_edges_left_closed_and_last_bin_closed_at_one():
    pred = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
    res = soft_label_ece(pred, pred, n_bins=4)
    assert {b.lo: b.n for b in res.bins} == {0.0: 1, 0.25: 1, 0.5: 2, 0.75: 2}
    assert res.ece == 0.0


def test_empty_bins_are_skipped():
    res = soft_label_ece(PRED, TRUTH, n_bins=20)
    assert all(b.n > 0 for b in res.bins)
    assert sum(b.n for b in res.bins) == 6


@given(pairs(VALUES), st.integers(1, 25))
def test_soft_ece_matches_loop_reference(pq, n_bins):
    pred, truth = pq
    res = soft_label_ece(pred, truth, n_bins=n_bins)
    expected, bins = reference_ece(list(zip(pred.ravel(), truth.ravel())), n_bins)
    assert res.ece == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= res.ece <= 1.0
    assert [b.n for b in res.bins] == [len(bins[k]) for k in sorted(bins)]
    for b in res.bins:
        assert b.lo - 1e-12 <= b.mean_pred <= b.hi + 1e-12
    assert soft_label_ece(truth, truth, n_bins=n_bins).ece == 0.0


@given(pairs(VALUES, k_max=30), st.integers(1, 25))
def test_stratified_matches_per_column_ece(pq, n_bins):
    pred, truth = pq
    b = make_buckets(truth)
    res = stratified_ece(pred, truth, b, n_bins=n_bins)
    assert set(res) == {"overall", "head", "mid", "tail"}
    overall = soft_label_ece(pred, truth, n_bins=n_bins)
    assert res["overall"].ece == pytest.approx(overall.ece, abs=1e-12)
    assert res["overall"].n_pairs == pred.size
    for name, cols in b.items():
        direct = soft_label_ece(pred, truth, n_bins=n_bins, columns=cols)
        if cols:
            expected, _ = reference_ece(list(zip(pred[:, cols].ravel(), truth[:, cols].ravel())), n_bins)
            assert res[name].ece == pytest.approx(expected, abs=1e-12)
            assert direct.ece == pytest.approx(expected, abs=1e-12)
        else:
            assert math.isnan(res[name].ece) and res[name].n_pairs == 0 and direct.n_pairs == 0
        assert res[name].n_pairs == pred.shape[0] * len(cols) and res[name].n_categories == len(cols)


def test_stratified_hand_worked():
    truth = np.array([[0.6, 0.3, 0.1], [0.4, 0.3, 0.3]])  # means .5 .3 .2 -> head 0, mid 1, tail 2
    pred = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    res = stratified_ece(pred, truth, make_buckets(truth), n_bins=10)
    assert res["head"].ece == pytest.approx(0.0)  # both pairs in bin 5: mean pred .5 = mean true .5
    assert res["mid"].ece == pytest.approx(0.0)
    assert res["tail"].ece == pytest.approx(0.0)  # bin 2: .2 vs mean(.1, .3) = .2
    assert res["overall"].ece == pytest.approx(0.0)
    res = stratified_ece(pred, truth, Buckets((0,), (2,), (1,)), n_bins=2)
    # head: pairs (.5,.6), (.5,.4) -> bin 1, mean .5 vs .5 -> 0; overall bin 0 mixes (.3,.3)x2, (.2,.1), (.2,.3)
    assert res["overall"].ece == pytest.approx(0.0)


def test_top1_ece_hand_worked_and_ties():
    # argmax: col 0 (1.0 vs .8), col 0 (.6 vs .5), col 1 (.7 vs .5); n_bins=4 -> bins 3, 2, 2
    res = top1_ece(PRED, TRUTH, n_bins=4)
    assert res.ece == pytest.approx(0.2 / 3 + 2 / 3 * 0.15, abs=1e-15)
    assert res.n_pairs == 3 and res.n_categories is None
    tie = top1_ece([[0.5, 0.5]], [[0.9, 0.1]], n_bins=10)  # tie -> first column
    assert tie.ece == pytest.approx(0.4)


@given(pairs(VALUES), st.integers(1, 25))
def test_top1_matches_loop_reference(pq, n_bins):
    pred, truth = pq
    pairs = []
    for p, t in zip(pred, truth):
        c = max(range(len(p)), key=lambda j: (p[j], -j))
        pairs.append((p[c], t[c]))
    assert top1_ece(pred, truth, n_bins).ece == pytest.approx(reference_ece(pairs, n_bins)[0], abs=1e-12)


def test_ece_result_round_trips():
    res = soft_label_ece(PRED, TRUTH, n_bins=4)
    assert EceResult.from_dict(res.to_dict()) == res
    assert res.to_dict()["bins"][0] == {"lo": 0.0, "hi": 0.25, "n": 1, "mean_pred": 0.0, "mean_true": 0.2}


@given(pairs(VALUES), st.sampled_from([0.01, 0.1, 0.5]))
def test_miscalibration_kl_matches_scipy(pq, alpha):
    pred, truth = pq
    q = (1 - alpha) * pred + alpha * truth
    expected = [entropy(t, qq, base=2) for t, qq in zip(truth, q)]
    values = miscalibration_kl(pred, truth, alpha=alpha)
    np.testing.assert_allclose(values, expected, rtol=1e-10, atol=1e-12)
    assert np.all(np.isfinite(values)) and np.all(values >= -1e-12)
    assert np.all(values <= math.log2(1 / alpha) + 1e-9)
    np.testing.assert_allclose(miscalibration_kl(pred, truth, alpha, unit="nats"), values * math.log(2), rtol=1e-12)


def test_miscalibration_kl_direction_and_hand_value():
    truth = np.array([0.5, 0.5, 0.0])
    pred = np.array([1.0, 0.0, 0.0])  # misses a category the user wants: large but finite
    # the smoothed prediction is q = 0.99 * pred + 0.01 * truth = [.995, .005, 0]
    expected = 0.5 * math.log(0.5 / 0.995) + 0.5 * math.log(0.5 / 0.005)
    assert miscalibration_kl(pred, truth, unit="nats")[0] == pytest.approx(expected)
    # the reverse direction is a different number: the target is the truth
    assert miscalibration_kl(truth, pred, unit="nats")[0] == pytest.approx(math.log(1 / 0.505))  # q~ = [.505, .495, 0]
    assert miscalibration_kl(truth, truth)[0] == 0.0


@pytest.mark.parametrize("fn", [soft_label_ece, top1_ece, miscalibration_kl])
@pytest.mark.parametrize("pred, truth, match", [
    ([[0.5, np.nan]], [[0.5, 0.5]], r"pred, row 0, column 1: value is nan"),
    ([[0.5, 0.5]], [[1.5, -0.5]], r"truth, row 0, column 1: value -0.5 is negative"),
    ([[0.5, 0.5]], [[0.5, 0.4]], r"truth, row 0: probabilities sum to 0.9"),
])
def test_bad_input(fn, pred, truth, match):
    with pytest.raises(SpectraInputError, match=match):
        fn(pred, truth)


def test_bad_settings():
    with pytest.raises(SpectraInputError, match="n_bins"):
        soft_label_ece(PRED, TRUTH, n_bins=0)
    with pytest.raises(SpectraInputError, match="n_bins"):
        stratified_ece(PRED, TRUTH, make_buckets(TRUTH), n_bins=2.5)
    with pytest.raises(SpectraInputError, match="column index 5 is out of range"):
        soft_label_ece(PRED, TRUTH, columns=[0, 5])
    with pytest.raises(SpectraInputError, match="alpha"):
        miscalibration_kl(PRED, TRUTH, alpha=0.0)
    with pytest.raises(SpectraInputError, match="not exactly the 2 categories"):
        stratified_ece(PRED, TRUTH, Buckets((0,), (), ()))
