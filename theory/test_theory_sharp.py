"""The sharp chain phi_sharp(J) = sup{TV : JS <= J}: valid, attained, and tighter than every valid chain."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.optimize import brentq
from scipy.stats import entropy

from spectra_eval.metrics import divergences as dv
from spectra_eval.certificates.bounds import CHAINS, LN2, VALID_CHAINS, js_min_given_tv, phi_sharp, two_point_pair
from spectra_strategies import pairs

TOL = 1e-9


def _h(x):
    """Binary entropy in nats (scipy as the independent reference)."""
    return entropy([x, 1 - x])


def test_js_min_matches_binary_entropy_formula_and_series():
    t = np.linspace(0, 1, 401)
    reference = np.array([LN2 - _h((1 + x) / 2) for x in t])
    np.testing.assert_allclose(js_min_given_tv(t), reference, atol=1e-14)
    small = np.array([1e-8, 1e-5, 1e-3])
    series = sum(small ** (2 * n) / (2 * n * (2 * n - 1)) for n in range(1, 6))
    np.testing.assert_allclose(js_min_given_tv(small), series, rtol=1e-9)
    assert np.all(js_min_given_tv(t) >= t ** 2 / 2 - 1e-16)  # the js_direct lemma
    assert js_min_given_tv(1.0) == LN2 and js_min_given_tv(1.0, "bits") == 1.0


def test_phi_sharp_inverts_js_min_against_brentq():
    for j in [0.0, 1e-12, 1e-6, 0.01, 0.062, 0.399, 0.9, 0.999999, 1.0]:
        if j == 0.0:
            expected = 0.0
        elif j == 1.0:
            expected = 1.0
        else:
            expected = brentq(lambda t: LN2 - _h((1 + t) / 2) - j * LN2, 0, 1, xtol=1e-15)
        assert abs(phi_sharp(j, "bits") - expected) < 1e-7
    j = np.linspace(0, LN2, 1001)
    np.testing.assert_allclose(js_min_given_tv(phi_sharp(j, "nats")), j, atol=1e-13)


def test_binary_minimiser_is_the_symmetric_pair_on_a_fine_grid():
    """For fixed TV t, JS over all binary pairs (p1 - q1 = t) is smallest at the symmetric pair."""
    for t in [0.05, 0.3, 0.62, 0.9]:
        x = np.linspace(t / 2, 1 - t / 2, 20001)  # x = midpoint m1
        p = np.stack([x + t / 2, 1 - x - t / 2], axis=1)
        q = np.stack([x - t / 2, 1 - x + t / 2], axis=1)
        p, q = np.clip(p, 0, 1), np.clip(q, 0, 1)
        js = dv.js(p, q, unit="nats")
        assert abs(x[np.argmin(js)] - 0.5) < 1e-4
        assert js.min() >= js_min_given_tv(t) - 1e-12
        assert np.all(np.diff(js[: len(x) // 2]) <= 1e-15)  # convex and symmetric: decreasing to the middle


@given(pairs())
def test_sharp_bound_never_violated(pair):
    p, q = pair
    j = dv.js(p, q)[0]
    assert dv.tv(p, q)[0] <= phi_sharp(min(1.0, j + 1e-12)) + TOL


@given(st.floats(0, 1), st.integers(2, 9))
def test_sharp_bound_attained_by_two_point_pair(t, k):
    p2, q2 = two_point_pair(t)
    p, q = np.zeros(k), np.zeros(k)
    p[:2], q[:2] = p2, q2  # padding with zero categories changes neither JS nor TV
    assert abs(dv.tv(p, q)[0] - t) < 1e-15
    assert abs(phi_sharp(dv.js(p, q)[0]) - t) < 1e-6


@given(st.floats(0, 1))
def test_sharp_is_tightest_among_valid_chains(j):
    sharp = phi_sharp(j)
    for name in VALID_CHAINS:
        assert sharp <= CHAINS[name](j, "bits") + 1e-12, name


def test_sharp_is_increasing_and_spans_unit_interval():
    j = np.linspace(0, 1, 2001)
    values = phi_sharp(j)
    assert values[0] == 0.0 and abs(values[-1] - 1.0) < 1e-15
    assert np.all(np.diff(values) > 0)


def test_js_min_near_one_agrees_with_50_digit_arithmetic_and_phi_never_undershoots():
    """js_min against 50-digit arithmetic at tolerances that hold on every CPU (issue 19, item 10), and
    phi_sharp never below the exact inverse.

    t < 1/2: the series by Horner uses only IEEE +, x, / (identical on every CPU); its error is at most 3
    roundings, 3u with u = 2^-53 (x = t*t, the last add, the last multiply; earlier steps shrink by x <= 1/4).
    t >= 1/2: log1p may be a SIMD kernel (<= 4 ulps = 8u, numpy's documented SVML bound) or libm; with
    A = (1+t) log1p(t), B = (1-t) log1p(-t) the error is at most ((10|A| + 9|B|)/|A+B| + 1)u."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    u = 2.0 ** -53

    def exact(t):  # ln 2 - h((1+t)/2) = ((1+t) ln(1+t) + (1-t) ln(1-t)) / 2, in 50 digits
        t = mp.mpf(float(t))
        return mp.log(2) if t == 1 else ((1 + t) * mp.log(1 + t) + (1 - t) * mp.log(1 - t)) / 2

    ts = np.concatenate([1 - np.logspace(-15, -1, 400), np.logspace(-12, np.log10(0.999), 400),
                         [3.2442539733167324e-08]])  # the AVX2 failure of issue 19
    for t in ts:
        j = exact(t)
        if t < 0.5:
            tol = 3 * u
        else:
            a, b = (1 + mp.mpf(t)) * mp.log(1 + mp.mpf(t)), (1 - mp.mpf(t)) * mp.log(1 - mp.mpf(t))
            tol = float((10 * abs(a) + 9 * abs(b)) / abs(a + b) + 1) * u
        assert abs(float((mp.mpf(float(js_min_given_tv(t))) - j) / j)) <= tol, t
        assert phi_sharp(float(j), "nats") >= t  # at or above the exact inverse, never below


def test_js_min_small_branch_is_the_series_and_exact_at_the_reported_point():
    """At t = 3.2442539733167324e-08 the 50-digit value is 5.2625919216907036e-16 (issue 19): the series branch
    gives it to the nearest double, with no transcendental function involved."""
    t = 3.2442539733167324e-08
    assert abs(js_min_given_tv(t) - 5.2625919216907036e-16) <= 2.0 ** -52 * 5.2625919216907036e-16
