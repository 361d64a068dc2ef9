"""Exposure entropy@k, head/mid/tail buckets, bucket mass and bias."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.stats import entropy

from spectra_eval.metrics.buckets import Buckets, bucket_bias, bucket_mass, head_bias, make_buckets, per_category_bias
from spectra_eval.metrics.exposure import exposure_counts, exposure_entropy_at_k
from spectra_eval.validation import SpectraInputError
from tests.strategies import pairs, stacks, values

VALUES = values(0.0, 0.1, 0.5, 1.0)


# ---------------------------------------------------------------- exposure


def test_exposure_hand_worked():
    pred = np.array([
        [0.6, 0.3, 0.1, 0.0],
        [0.1, 0.6, 0.3, 0.0],
        [0.5, 0.2, 0.2, 0.1],  # tie for 2nd: column 1 wins
    ])
    np.testing.assert_array_equal(exposure_counts(pred, 1), [2, 1, 0, 0])
    np.testing.assert_array_equal(exposure_counts(pred, 2), [2, 3, 1, 0])  # user 1 shows columns 1, 2
    share = np.array([2, 1]) / 3
    assert exposure_entropy_at_k(pred, 1) == pytest.approx(-(share * np.log2(share)).sum(), abs=1e-15)
    h2 = -(1 / 3 * math.log2(1 / 3) + 1 / 2 * math.log2(1 / 2) + 1 / 6 * math.log2(1 / 6))
    assert exposure_entropy_at_k(pred, 2) == pytest.approx(h2, abs=1e-15)
    assert exposure_entropy_at_k(pred, 2) == pytest.approx(1.4591479, abs=1e-7)
    assert exposure_entropy_at_k(pred, 1, unit="nats") == pytest.approx(-(share * np.log(share)).sum(), abs=1e-15)


@given(stacks(VALUES, n_max=8, k_max=30), st.integers(1, 10))
def test_exposure_entropy_matches_scipy_and_bounds(pred, k):
    counts = exposure_counts(pred, k)
    assert counts.sum() == pred.shape[0] * min(k, pred.shape[1])
    h = exposure_entropy_at_k(pred, k)
    assert h == pytest.approx(entropy(counts, base=2), abs=1e-12)
    assert -1e-12 <= h <= math.log2(pred.shape[1]) + 1e-12


def test_everyone_sees_the_same_k_categories():
    pred = np.tile([0.4, 0.3, 0.2, 0.1, 0.0], (50, 1))
    assert exposure_entropy_at_k(pred, 3) == pytest.approx(math.log2(3))
    assert exposure_entropy_at_k(pred, 1) == 0.0


def test_exposure_bad_input():
    with pytest.raises(SpectraInputError, match="pred, row 1: probabilities sum"):
        exposure_entropy_at_k([[0.5, 0.5], [0.5, 0.4]], 1)
    with pytest.raises(SpectraInputError, match="unit must be"):
        exposure_entropy_at_k([[0.5, 0.5]], 1, unit="dits")
    with pytest.raises(SpectraInputError, match="k must be"):
        exposure_counts([[0.5, 0.5]], 0)


# ---------------------------------------------------------------- buckets


@pytest.mark.parametrize("n_cat, sizes", [(19, (6, 6, 7)), (26, (8, 9, 9)), (3, (1, 1, 1)), (2, (0, 1, 1)), (1, (0, 0, 1))])
def test_bucket_sizes(n_cat, sizes):
    rng = np.random.default_rng(n_cat)
    truth = rng.dirichlet(np.ones(n_cat), size=40)
    b = make_buckets(truth)
    assert (len(b.head), len(b.mid), len(b.tail)) == sizes
    order = np.argsort(-truth.mean(axis=0), kind="stable").tolist()
    assert list(b.head + b.mid + b.tail) == order
    b.check(n_cat)


def test_buckets_k19_hand_worked_with_ties():
    # Mean true mass decreasing with the column index except for planted ties.
    mass = np.arange(19, 0, -1, dtype=float)
    mass[[5, 6]] = 13.0  # columns 5 and 6 tie: column order keeps 5 in the head, 6 in the mid
    mass[[12, 13]] = 7.0  # tie across the mid/tail boundary: 12 mid, 13 tail
    truth = mass / mass.sum()
    b = make_buckets(np.vstack([truth, truth]))
    assert b.head == (0, 1, 2, 3, 4, 5)
    assert b.mid == (6, 7, 8, 9, 10, 11)
    assert b.tail == (12, 13, 14, 15, 16, 17, 18)

    mass = np.zeros(19)
    mass[[18, 3]] = 0.5  # the two tied leaders head the list in column order: 3 before 18
    b = make_buckets(mass)
    assert b.head[:2] == (3, 18)
    assert b.head == (3, 18, 0, 1, 2, 4)


def test_buckets_k26_hand_worked():
    perm = np.random.default_rng(1).permutation(26)
    mass = np.empty(26)
    mass[perm] = np.linspace(2.0, 1.0, 26)  # perm[0] most popular, perm[25] least
    b = make_buckets(mass / mass.sum())
    assert list(b.head) == perm[:8].tolist()
    assert list(b.mid) == perm[8:17].tolist()
    assert list(b.tail) == perm[17:].tolist()


def test_bucket_mass_bias_hand_worked():
    truth = np.array([[0.5, 0.3, 0.2], [0.7, 0.1, 0.2]])  # mean 0.6, 0.2, 0.2
    pred = np.array([[0.4, 0.4, 0.2], [0.4, 0.2, 0.4]])  # mean 0.4, 0.3, 0.3
    b = make_buckets(truth)
    assert (b.head, b.mid, b.tail) == ((0,), (1,), (2,))
    assert bucket_mass(pred, b) == pytest.approx({"head": 0.4, "mid": 0.3, "tail": 0.3})
    assert bucket_mass(truth, b) == pytest.approx({"head": 0.6, "mid": 0.2, "tail": 0.2})
    np.testing.assert_allclose(per_category_bias(pred, truth), [-0.2, 0.1, 0.1], atol=1e-15)
    assert head_bias(pred, truth, b) == pytest.approx(0.2)
    assert bucket_bias(pred, truth, b) == pytest.approx({"head": 0.2, "mid": 0.1, "tail": 0.1})
    assert b.labels(["a", "b", "c"]) == {"head": ["a"], "mid": ["b"], "tail": ["c"]}
    assert b.assignment().tolist() == ["head", "mid", "tail"]
    assert b["tail"] == (2,) and Buckets.names == ("head", "mid", "tail")


def test_head_bias_averages_absolute_values_over_head_only():
    truth = np.array([[0.3, 0.25, 0.15, 0.1, 0.1, 0.1]])
    pred = np.array([[0.2, 0.35, 0.15, 0.1, 0.1, 0.1]])
    b = make_buckets(truth)  # head = columns 0, 1
    assert b.head == (0, 1)
    assert head_bias(pred, truth, b) == pytest.approx((0.1 + 0.1) / 2)  # signed mean would be 0


@given(pairs(VALUES, k_max=30))
def test_bucket_masses_sum_to_one_and_bias_sums_to_zero(pq):
    pred, truth = pq
    b = make_buckets(truth)
    assert sum(bucket_mass(pred, b).values()) == pytest.approx(1.0, abs=1e-9)
    mass = bucket_mass(truth, b)
    if b.head and b.tail:  # head categories carry at least as much mean mass each as tail ones
        assert mass["head"] / len(b.head) >= mass["tail"] / len(b.tail) - 1e-12
    assert per_category_bias(pred, truth).sum() == pytest.approx(0.0, abs=1e-9)
    assert head_bias(pred, truth, b) >= 0 or math.isnan(head_bias(pred, truth, b))


def test_buckets_must_partition_the_columns():
    with pytest.raises(SpectraInputError, match="not exactly the 3 categories"):
        bucket_mass([[0.5, 0.25, 0.25]], Buckets((0,), (1,), (1,)))
    with pytest.raises(SpectraInputError, match="not exactly the 4 categories"):
        head_bias([[0.25] * 4], [[0.25] * 4], Buckets((0,), (1,), (2,)))


def test_empty_head_gives_nan_bias():
    b = make_buckets([0.5, 0.5])
    assert b.head == ()
    assert math.isnan(head_bias([0.5, 0.5], [0.5, 0.5], b))


@pytest.mark.parametrize("bad, match", [
    ([[0.5, np.nan, 0.5]], r"truth, row 0, column 1: value is nan"),
    ([[0.5, -0.1, 0.6]], r"truth, row 0, column 1: value -0.1 is negative"),
    ([[0.5, 0.1, 0.6]], r"truth, row 0: probabilities sum to 1.2"),
])
def test_buckets_bad_input(bad, match):
    with pytest.raises(SpectraInputError, match=match):
        make_buckets(bad)
    with pytest.raises(SpectraInputError, match=match.replace("truth", "pred")):
        per_category_bias(bad, [[0.2, 0.3, 0.5]])
