"""spectra_eval.stats against scipy, statsmodels and hand-worked values."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from spectra_eval import stats
from spectra_eval.validation import SpectraInputError


# ------------------------------------------------------------------ Wilcoxon


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=300), rng.normal(0.1, 1, size=300)
    b[:10] = a[:10]  # some zero differences, dropped by zero_method='wilcox'
    ref = sps.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    res = stats.paired_wilcoxon(a, b)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert (res.n, res.n_nonzero) == (300, 290)
    assert (res.zero_method, res.alternative, res.test) == ("wilcox", "two-sided", "Wilcoxon signed-rank")


def test_wilcoxon_hand_worked_exact():
    # d = 1, 2, 3, -4 -> ranks 1,2,3,4; R+ = 6, R- = 4 -> statistic min = 4.
    # Exact null: 16 sign patterns; P(min(R+,R-) <= 4) = #{R+ <= 4 or R+ >= 6}/16 = 14/16.
    res = stats.paired_wilcoxon(np.array([1.0, 2, 3, -4]))
    assert res.statistic == 4
    assert res.pvalue == pytest.approx(14 / 16)


def test_wilcoxon_all_zero_differences():
    res = stats.paired_wilcoxon(np.ones(7), np.ones(7))
    assert (res.statistic, res.pvalue, res.n, res.n_nonzero) == (0.0, 1.0, 7, 0)


def test_wilcoxon_rejects_nan_and_empty():
    with pytest.raises(SpectraInputError):
        stats.paired_wilcoxon([1.0, np.nan])
    with pytest.raises(SpectraInputError):
        stats.paired_wilcoxon([])


# ------------------------------------------------------------------ Holm


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
@settings(max_examples=15)
def test_holm_matches_statsmodels(p):
    ours = stats.holm(p)
    ref = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_holm_hand_worked_and_nan():
    # sorted 0.01, 0.02, 0.04 (m=3): 0.03, 0.04, max(0.04, 0.04) = 0.04
    np.testing.assert_allclose(stats.holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    out = stats.holm([0.01, np.nan, 0.04])  # NaN ignored: m = 2
    np.testing.assert_allclose(out, [0.02, np.nan, 0.04])


# ------------------------------------------------------------------ bootstrap


@pytest.mark.parametrize("m", [1, 3, 7])  # gather path (<= 4 columns) and count-matrix path
def test_bootstrap_means_equal_explicit_resampling(m):
    rng = np.random.default_rng(5)
    values = rng.random((50, m))
    idx = stats.bootstrap_indices(50, 37, seed=11)
    means = stats.bootstrap_means(values, idx, chunk=8)  # several chunks, the last partial
    np.testing.assert_allclose(means, values[idx].mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(stats.bootstrap_means(values[:, -1], idx), values[idx, -1].mean(axis=1), rtol=1e-12)


def test_bootstrap_indices_deterministic_by_seed():
    a = stats.bootstrap_indices(10, 4, seed=3)
    np.testing.assert_array_equal(a, np.random.default_rng(3).integers(0, 10, size=(4, 10)))
    np.testing.assert_array_equal(a, stats.bootstrap_indices(10, 4, seed=3))
    assert not np.array_equal(a, stats.bootstrap_indices(10, 4, seed=4))
    # the CI is a pure function of (values, seed)
    v = np.arange(10.0)
    assert stats.bootstrap_ci(v, 200, seed=3) == stats.bootstrap_ci(v, 200, seed=3)


def test_bootstrap_ci_hand_checked():
    # two users, one resample each way: draws of default_rng(0) fixed -> means computed by hand
    v = np.array([0.0, 1.0])
    idx = np.array([[0, 0], [0, 1], [1, 1], [1, 0]])
    means = stats.bootstrap_means(v, idx)
    np.testing.assert_allclose(means, [0.0, 0.5, 1.0, 0.5])
    ci = stats.bootstrap_ci(v, idx, confidence=0.5)  # 25th/75th percentiles of [0, .5, .5, 1]
    assert (ci.estimate, ci.ci_low, ci.ci_high, ci.n_resamples) == (0.5, 0.375, 0.625, 4)


def test_bootstrap_ci_matches_scipy_percentile():
    rng = np.random.default_rng(2)
    x = rng.exponential(size=400)
    B = 4000
    ours = stats.bootstrap_ci(x, B, seed=0)
    ref = sps.bootstrap((x,), np.mean, n_resamples=B, method="percentile", random_state=1, vectorized=True).confidence_interval
    se = x.std() / np.sqrt(len(x))
    # Monte-Carlo error of a 2.5% quantile from 4000 resamples is about 0.05 se; allow 0.2 se
    assert ours.ci_low == pytest.approx(ref.low, abs=0.2 * se)
    assert ours.ci_high == pytest.approx(ref.high, abs=0.2 * se)
    assert ours.estimate == pytest.approx(x.mean())


def test_paired_bootstrap_shares_the_draw():
    rng = np.random.default_rng(4)
    a, b = rng.random(100), rng.random(100)
    idx = stats.bootstrap_indices(100, 300, seed=9)
    both = stats.bootstrap_means(np.column_stack([a, b]), idx)
    diff = stats.bootstrap_means(a - b, idx)
    np.testing.assert_allclose(both[:, 0] - both[:, 1], diff, atol=1e-12)


def test_bootstrap_bad_arguments():
    with pytest.raises(SpectraInputError):
        stats.bootstrap_indices(0, 10)
    with pytest.raises(SpectraInputError):
        stats.bootstrap_indices(5, 0)
    with pytest.raises(SpectraInputError):
        stats.bootstrap_means(np.ones(5), np.zeros((3, 4), dtype=int))


def test_derived_rng_is_deterministic_and_distinct():
    a = stats.derived_rng(0, 1, 2).integers(0, 1000, 5)
    np.testing.assert_array_equal(a, stats.derived_rng(0, 1, 2).integers(0, 1000, 5))
    assert not np.array_equal(a, stats.derived_rng(0, 1, 3).integers(0, 1000, 5))
    assert not np.array_equal(a, np.random.default_rng(0).integers(0, 1000, 5))


@pytest.mark.parametrize("n", [30, 51, 400])
def test_wilcoxon_columns_match_scipy_per_column(n):
    rng = np.random.default_rng(n)
    d = np.round(rng.normal(0.05, 1, size=(n, 25)), 1)  # rounding makes many ties
    d[rng.random(d.shape) < 0.3] = 0.0
    d[:, 3] = 0.0  # an all-zero column
    d[:, 4] = np.abs(d[:, 4]) + 0.1  # all positive
    res = stats.paired_wilcoxon_columns(d)
    for j, r in enumerate(res):
        if j == 3:
            assert (r.statistic, r.pvalue, r.n_nonzero) == (0.0, 1.0, 0)
            continue
        ref = sps.wilcoxon(d[:, j], zero_method="wilcox", alternative="two-sided")
        assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
        assert r.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
        assert (r.n, r.n_nonzero) == (n, np.count_nonzero(d[:, j]))


def test_wilcoxon_columns_blocks_agree():
    # 60,000 rows -> blocks of 33 columns; the block boundary must not change any result
    rng = np.random.default_rng(8)
    d = rng.normal(0.01, 1, size=(60_000, 40))
    res = stats.paired_wilcoxon_columns(d)
    for j in (0, 32, 33, 39):
        ref = sps.wilcoxon(d[:, j])
        assert (res[j].statistic, res[j].pvalue) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)


def test_finite_percentile_interval_leaves_out_undefined_resamples():
    r = np.array([0.3, np.nan, 0.1, np.inf, 0.2, 0.5])
    lo, hi = stats.finite_percentile_interval(r, 0.9)
    assert (lo, hi) == tuple(np.percentile([0.3, 0.1, 0.2, 0.5], [5, 95]))
    assert all(np.isnan(stats.finite_percentile_interval(np.array([np.nan, np.nan]))))
