"""Divergences (lead's spectra_eval.metrics.divergences) against scipy, hand-worked values and properties."""
import math

import numpy as np
import pytest
from hypothesis import given
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from spectra_eval.metrics.divergences import chi_square, hellinger, js, kl, linf, tv
from spectra_eval.validation import SpectraInputError
from tests.strategies import pairs, values

VALUES = values(0.0, 0.1, 0.5, 1.0)


@given(pairs(VALUES))
def test_js_matches_scipy_bits_and_nats(pq):
    p, q = pq
    with np.errstate(invalid="ignore"):
        expected = np.array([jensenshannon(a, b, base=2) ** 2 for a, b in zip(p, q)])
    # scipy takes sqrt of a round-off negative for (near-)equal rows and returns NaN; the JS there is 0
    assert np.all(tv(p, q)[np.isnan(expected)] < 1e-12)
    expected = np.nan_to_num(expected, nan=0.0)
    np.testing.assert_allclose(js(p, q), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(js(p, q, unit="nats"), expected * math.log(2), rtol=1e-9, atol=1e-12)


@given(pairs(VALUES))
def test_js_symmetric_bounded_zero_iff_equal(pq):
    p, q = pq
    d = js(p, q)
    np.testing.assert_allclose(d, js(q, p), rtol=1e-12, atol=1e-15)
    assert np.all(d >= 0) and np.all(d <= 1 + 1e-12)
    assert np.all(js(p, p) <= 1e-15)
    # zero only for equal rows: rows that differ in TV by more than float noise have positive JS
    assert np.all(d[tv(p, q) > 1e-6] > 0)


def test_js_extremes():
    assert js([1.0, 0.0], [0.0, 1.0])[0] == pytest.approx(1.0)  # disjoint supports: 1 bit
    assert js([0.5, 0.5], [0.5, 0.5])[0] == 0.0


@given(pairs(VALUES))
def test_kl_matches_scipy_entropy(pq):
    p, q = pq
    q_smooth = 0.9 * q + 0.1 * p  # finite KL
    expected = [entropy(a, b, base=2) for a, b in zip(p, q_smooth)]
    np.testing.assert_allclose(kl(p, q_smooth), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kl(p, q_smooth, unit="nats"), [entropy(a, b) for a, b in zip(p, q_smooth)],
                               rtol=1e-9, atol=1e-12)
    assert np.all(kl(p, q_smooth) >= -1e-12)


def test_kl_infinite_off_support():
    assert kl([0.5, 0.5], [1.0, 0.0])[0] == math.inf
    assert kl([1.0, 0.0], [0.5, 0.5])[0] == pytest.approx(1.0)  # log2(2)


def test_hand_worked_distances():
    p, q = [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]
    assert tv(p, q)[0] == pytest.approx(0.5)
    expected_h = math.sqrt(0.5 * (2 * (math.sqrt(0.5) - 0.5) ** 2 + 0.5))
    assert hellinger(p, q)[0] == pytest.approx(expected_h)
    assert chi_square(p, q)[0] == pytest.approx(2 * 0.25 ** 2 / 0.25 + 0.5 ** 2 / 0.5)
    assert linf(p, q)[0] == pytest.approx(0.5)
    assert chi_square(q, p)[0] == math.inf


@given(pairs(VALUES))
def test_distance_properties(pq):
    p, q = pq
    t, h = tv(p, q), hellinger(p, q)
    assert np.all((t >= 0) & (t <= 1 + 1e-12)) and np.all((h >= 0) & (h <= 1 + 1e-12))
    # Le Cam's inequalities between Hellinger and TV: H^2 <= TV <= H sqrt(2 - H^2)
    assert np.all(h ** 2 <= t + 1e-12)
    assert np.all(t <= h * np.sqrt(np.maximum(2 - h ** 2, 0)) + 1e-9)
    assert np.all(linf(p, q) <= t + 1e-12)
    np.testing.assert_allclose(tv(p, q), 0.5 * np.abs(p - q).sum(axis=1))


def test_single_row_broadcasts():
    p = np.array([[0.5, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(tv(p, [0.5, 0.5]), [0.0, 0.5])


@pytest.mark.parametrize("fn", [kl, js, tv, hellinger, chi_square, linf])
@pytest.mark.parametrize("p, q, match", [
    ([0.5, np.nan], [0.5, 0.5], r"p, row 0, column 1: value is nan"),
    ([0.5, 0.5], [1.5, -0.5], r"q, row 0, column 1: value -0.5 is negative"),
    ([0.5, 0.6], [0.5, 0.5], r"p, row 0: probabilities sum to 1.1"),
    ([0.5, 0.5], [0.2, 0.3, 0.5], r"p has 2 categories but q has 3"),
])
def test_bad_input(fn, p, q, match):
    with pytest.raises(SpectraInputError, match=match):
        fn(p, q)


def test_bad_unit():
    with pytest.raises(SpectraInputError, match="unit must be"):
        js([0.5, 0.5], [0.5, 0.5], unit="dB")
