"""Tail-preference quartiles and strata against hand-worked and scipy computations."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from spectra_eval import fairness
from spectra_eval.metrics.buckets import Buckets
from spectra_eval.validation import SpectraInputError

# 3 categories: column 2 is the tail
BUCKETS = Buckets(head=(0,), mid=(1,), tail=(2,))


def _truth_with_tail(t):
    t = np.asarray(t, dtype=float)
    return np.column_stack([1 - t, np.zeros_like(t), t])


def test_quartiles_hand_worked_with_ties():
    # tail masses; ties (0.5 at users 1, 4, 6) keep user order
    t = [0.9, 0.5, 0.1, 0.0, 0.5, 0.2, 0.5, 0.3]
    labels = fairness.tail_quartiles(_truth_with_tail(t), BUCKETS)
    # sorted: u3(0) u2(.1) | u5(.2) u7(.3) | u1(.5) u4(.5) | u6(.5) u0(.9)
    assert labels.tolist() == ["Q4", "Q3", "Q1", "Q1", "Q3", "Q2", "Q4", "Q2"]


@pytest.mark.parametrize("n", [4, 10, 13, 101])
def test_quartiles_equal_count_and_ordered(n):
    t = np.random.default_rng(n).integers(0, 5, n) / 4  # many ties
    labels = fairness.tail_quartiles(_truth_with_tail(t), BUCKETS)
    sizes = [int((labels == q).sum()) for q in fairness.QUARTILES]
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
    for lo, hi in zip(fairness.QUARTILES, fairness.QUARTILES[1:]):
        assert t[labels == lo].max() <= t[labels == hi].min()


def test_quartile_deltas_against_direct_computation():
    rng = np.random.default_rng(0)
    n = 203
    truth = _truth_with_tail(rng.random(n))
    js_m, js_r = rng.random(n) * 0.5, rng.random(n) * 0.5 + 0.1
    labels = fairness.tail_quartiles(truth, BUCKETS)
    res = fairness.quartile_deltas(js_m, js_r, labels, n_resamples=300, seed=7)
    diff = js_m - js_r
    for qi, q in enumerate(fairness.QUARTILES):
        d = diff[labels == q]
        g = res.quartiles[q]
        assert g.n == d.size
        assert g.estimate == pytest.approx(d.mean())
        assert g.pvalue == pytest.approx(sps.wilcoxon(d, zero_method="wilcox").pvalue)
        idx = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(1, qi))).integers(0, d.size, (300, d.size))
        lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
        assert (g.ci_low, g.ci_high) == pytest.approx((lo, hi))
    assert res.ratio_q4_q1 == pytest.approx(res.quartiles["Q4"].estimate / res.quartiles["Q1"].estimate)


def test_quartile_deltas_several_methods_share_draws():
    rng = np.random.default_rng(1)
    n = 80
    labels = fairness.tail_quartiles(_truth_with_tail(rng.random(n)), BUCKETS)
    a, b, ref = rng.random(n), rng.random(n), rng.random(n)
    both = fairness.quartile_deltas(np.column_stack([a, b]), ref, labels, n_resamples=100, seed=3)
    for joint, single in zip(both, (a, b)):
        alone = fairness.quartile_deltas(single, ref, labels, n_resamples=100, seed=3)
        for q in fairness.QUARTILES:  # equal up to BLAS summation order
            joint_q, alone_q = vars(joint.quartiles[q]), vars(alone.quartiles[q])
            assert joint_q.keys() == alone_q.keys() and joint_q["test"] == alone_q["test"]
            assert {k: v for k, v in joint_q.items() if k != "test"} == \
                pytest.approx({k: v for k, v in alone_q.items() if k != "test"}, rel=1e-12)


def test_quartile_within_bootstrap_matches_scipy():
    rng = np.random.default_rng(2)
    n = 800
    labels = fairness.tail_quartiles(_truth_with_tail(rng.random(n)), BUCKETS)
    diff = rng.normal(-0.3, 0.2, n)
    res = fairness.quartile_deltas(diff, np.zeros(n), labels, n_resamples=3000, seed=0)
    d = diff[labels == "Q4"]
    ref = sps.bootstrap((d,), np.mean, n_resamples=3000, method="percentile", random_state=0).confidence_interval
    se = d.std() / np.sqrt(d.size)
    assert res.quartiles["Q4"].ci_low == pytest.approx(ref.low, abs=0.2 * se)
    assert res.quartiles["Q4"].ci_high == pytest.approx(ref.high, abs=0.2 * se)


def test_empty_quartile_gives_nan():
    labels = fairness.tail_quartiles(_truth_with_tail([0.1, 0.2, 0.3]), BUCKETS)
    res = fairness.quartile_deltas(np.array([0.1, 0.2, 0.3]), np.zeros(3), labels, n_resamples=10)
    assert res.quartiles["Q4"].n == 0 and np.isnan(res.quartiles["Q4"].estimate) and np.isnan(res.ratio_q4_q1)


# ------------------------------------------------------------------ strata


def _meta(users, **cols):
    return pd.DataFrame({"user_id": users, **cols})


def test_stratum_deltas_range_wins_and_numeric_order():
    users = [f"u{i}" for i in range(12)]
    cw = [1, 3, 10] * 4
    meta = fairness.align_meta(_meta(users[::-1], context_window=cw[::-1]), users)
    diff = np.array([-0.2, -0.1, 0.3] * 4) + np.repeat([0, 0.01, 0.02, 0.03], 3)
    res = fairness.stratum_deltas(diff, meta, n_resamples=50, seed=0)[0]["context_window"]
    assert list(res.levels) == ["1", "3", "10"]  # numeric, not lexical, order
    expect = {lvl: diff[np.array(cw) == int(lvl)].mean() for lvl in res.levels}
    assert {k: g.estimate for k, g in res.levels.items()} == pytest.approx(expect)
    assert res.range == pytest.approx((min(expect.values()), max(expect.values())))
    assert res.n_levels == 3 and res.grouping == "levels"
    assert res.wins == 0  # two levels have delta < 0, but 4 users cannot reach p < 0.05 (exact p >= 0.125)
    assert all(g.n == 4 for g in res.levels.values())


def test_align_meta_ignores_extra_users_and_reorders():
    meta = fairness.align_meta(_meta(["b", "a", "z"], activity=["hi", "lo", "x"]), ["a", "b"])
    assert meta["activity"].tolist() == ["lo", "hi"]


@pytest.mark.parametrize(
    "frame, fragment",
    [
        (pd.DataFrame({"id": ["a", "b"], "s": [1, 2]}), "no 'user_id' column"),
        (_meta(["a", "b"]), "no stratum columns"),
        (_meta(["a"], s=[1]), "user 'b' of the truth table is missing"),
        (_meta(["a", "b", "a"], s=[1, 2, 3]), "user 'a' (row 3) appears more than once"),
        (_meta(["a", "b"], s=[1, None]), "user 'b' (row 2), column 's': empty stratum value"),
        (_meta(["a", None], s=[1, 2]), "row 2, column 'user_id': empty user id"),
    ],
)
def test_align_meta_errors_name_file_row_column(frame, fragment):
    with pytest.raises(SpectraInputError) as err:
        fairness.align_meta(frame, ["a", "b"], source="meta.csv")
    assert str(err.value).startswith("meta.csv: ") and fragment in str(err.value)


@pytest.mark.parametrize("q1, q4, ratio, reason", [
    (-0.1, -0.3, 3.0, None),
    (0.2, 0.1, 0.5, None),
    (-0.1, 0.05, None, "opposite signs"),
    (0.1, -0.38, None, "opposite signs"),
    (-1e-5, -0.2, None, "Q1 negligible"),  # |ratio| would be 20,000
    (0.0, -0.2, None, "zero delta"),
])
def test_quartile_ratio_is_null_where_it_means_nothing(q1, q4, ratio, reason):
    value, why = fairness.quartile_ratio(q4, q1)
    assert why == reason
    if ratio is None:
        assert np.isnan(value)
    else:
        assert value == pytest.approx(ratio)


def test_opposite_sign_quartiles_write_null_ratio_with_reason():
    n = 40
    labels = np.repeat(fairness.QUARTILES, n // 4)
    diff = np.where(labels == "Q1", 0.1, -0.2) + np.random.default_rng(0).normal(0, 0.01, n)
    res = fairness.quartile_deltas(diff, np.zeros(n), labels, n_resamples=20)
    d = res.to_dict()
    assert d["ratio_q4_q1"] != d["ratio_q4_q1"] and d["ratio_q4_q1_reason"] == "opposite signs"
    back = fairness.QuartileResult.from_dict(d)
    assert back.ratio_reason == "opposite signs" and np.isnan(back.ratio_q4_q1)


def test_numeric_stratum_with_many_values_becomes_quantile_strata():
    rng = np.random.default_rng(4)
    n = 300
    users = [f"u{i}" for i in range(n)]
    n_history = rng.integers(5, 400, n)  # ~250 distinct values
    meta = fairness.align_meta(_meta(users, n_history=n_history, activity=rng.choice(["A1", "A2"], n)), users)
    diff = -0.002 * np.log(n_history) + rng.normal(0, 0.01, n)
    res = fairness.stratum_deltas(diff, meta, n_resamples=50, seed=0, quantiles=5)[0]
    hist = res["n_history"]
    assert hist.grouping == "quantiles" and hist.n_levels == 5
    codes = pd.qcut(n_history, 5, labels=False)
    for code, (label, g) in enumerate(hist.levels.items()):
        members = n_history[codes == code]
        assert label == f"{members.min():g}–{members.max():g}"
        assert g.n == members.size and g.estimate == pytest.approx(diff[codes == code].mean())
        assert g.pvalue == pytest.approx(sps.wilcoxon(diff[codes == code], zero_method="wilcox").pvalue)
    assert res["activity"].grouping == "levels" and list(res["activity"].levels) == ["A1", "A2"]
    assert hist.wins == sum(g.estimate < 0 and g.pvalue < 0.05 for g in hist.levels.values())
    assert hist.to_dict()["win_rule"] == "delta < 0 and p < 0.05"
    three = fairness.stratum_deltas(diff, meta, n_resamples=50, seed=0, quantiles=3)[0]["n_history"]
    assert three.n_levels == 3


def test_tied_numeric_values_stay_in_one_quantile_stratum():
    values = pd.Series([1] * 50 + [2] * 3 + list(range(3, 20)))
    groups, levels, grouping = fairness.stratum_groups(values, 5)
    assert grouping == "quantiles"
    assert len(set(groups[:50])) == 1  # the 50 users with value 1 are never split
    assert len(levels) < 5  # duplicate quantile edges merged


def test_stratum_win_needs_significance():
    meta = pd.DataFrame({"s": ["a"] * 30 + ["b"] * 30})
    rng = np.random.default_rng(1)
    diff = np.concatenate([rng.normal(-0.5, 0.1, 30), rng.normal(-0.001, 0.3, 30)])  # both negative on average
    res = fairness.stratum_deltas(diff, meta, n_resamples=20, alpha=0.05)[0]["s"]
    assert res.levels["a"].pvalue < 0.05 and res.levels["b"].pvalue > 0.05
    assert res.wins == 1
