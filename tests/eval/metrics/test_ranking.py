"""Ranking metrics: NDCG@k, DCG@k, mass captured@k, top-k indices."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from sklearn.metrics import ndcg_score

from spectra_eval.metrics.ranking import dcg_at_k, mass_captured_at_k, ndcg_at_k, top_k_indices
from spectra_eval.validation import SpectraInputError
from tests.strategies import pairs, stacks, values

# Values drawn from a small set make ties common; normalising keeps rows valid distributions.
VALUES = values(0.0, 0.1, 0.25, 0.5, 1.0)


def reference_ranking(p):
    """Brute force: categories by decreasing probability, ties by column."""
    return sorted(range(len(p)), key=lambda c: (-p[c], c))


def reference_ndcg(p, t, k):
    k = min(k, len(p))
    disc = [1 / math.log2(r + 2) for r in range(k)]
    dcg = sum(t[c] * d for c, d in zip(reference_ranking(p)[:k], disc))
    idcg = sum(v * d for v, d in zip(sorted(t, reverse=True)[:k], disc))
    return dcg / idcg


def test_hand_worked_ndcg_with_ties():
    pred = [0.4, 0.2, 0.2, 0.2]  # rank: col0, then the tie col1 < col2 < col3 by column order
    truth = [0.1, 0.2, 0.3, 0.4]
    dcg = 0.1 / 1 + 0.2 / math.log2(3)
    idcg = 0.4 / 1 + 0.3 / math.log2(3)
    assert dcg_at_k(pred, truth, 2)[0] == pytest.approx(dcg, abs=1e-15)
    assert ndcg_at_k(pred, truth, 2)[0] == pytest.approx(dcg / idcg, abs=1e-15)
    assert ndcg_at_k(pred, truth, 2)[0] == pytest.approx(0.38383513, abs=1e-8)
    assert top_k_indices(pred, 3).tolist() == [[0, 1, 2]]
    assert mass_captured_at_k(pred, truth, 2)[0] == pytest.approx(0.3)


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_ndcg_matches_sklearn_on_tie_free_rows(k):
    rng = np.random.default_rng(k)
    truth = rng.dirichlet(np.full(19, 0.3), size=200)
    pred = rng.dirichlet(np.full(19, 0.5), size=200)  # continuous: no ties
    ours = ndcg_at_k(pred, truth, k)
    theirs = [ndcg_score(truth[i:i + 1], pred[i:i + 1], k=k) for i in range(len(pred))]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    assert ours.mean() == pytest.approx(ndcg_score(truth, pred, k=k), rel=1e-12)


@given(stacks(VALUES), st.integers(1, 15))
def test_top_k_matches_stable_argsort(pred, k):
    expected = np.argsort(-pred, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(top_k_indices(pred, k), expected)


def test_top_k_partition_path_with_many_ties_and_many_categories():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 4, size=(300, 1311)).astype(float)  # heavy ties at every cut
    pred = raw / raw.sum(axis=1, keepdims=True)
    for k in (1, 3, 10, 200):
        np.testing.assert_array_equal(top_k_indices(pred, k), np.argsort(-pred, axis=1, kind="stable")[:, :k])


@given(pairs(VALUES), st.integers(1, 15))
def test_ndcg_matches_brute_force_reference(pq, k):
    pred, truth = pq
    expected = [reference_ndcg(p, t, k) for p, t in zip(pred, truth)]
    np.testing.assert_allclose(ndcg_at_k(pred, truth, k), expected, rtol=1e-12, atol=1e-15)


@given(pairs(VALUES), st.integers(1, 15))
def test_ndcg_range_and_truth_scores_one(pq, k):
    pred, truth = pq
    values = ndcg_at_k(pred, truth, k)
    assert np.all(values >= 0) and np.all(values <= 1 + 1e-12)
    np.testing.assert_allclose(ndcg_at_k(truth, truth, k), 1.0, rtol=0, atol=1e-12)
    assert np.all(dcg_at_k(pred, truth, k) <= dcg_at_k(truth, truth, k) + 1e-12)


@given(pairs(VALUES), st.integers(1, 15))
def test_mass_captured_matches_reference_and_range(pq, k):
    pred, truth = pq
    expected = [sum(t[c] for c in reference_ranking(p)[:k]) for p, t in zip(pred, truth)]
    values = mass_captured_at_k(pred, truth, k)
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-15)
    assert np.all(values >= 0) and np.all(values <= 1 + 1e-9)
    np.testing.assert_allclose(mass_captured_at_k(pred, truth, pred.shape[1]), 1.0, atol=1e-9)


def test_k_above_categories_is_clipped_and_single_truth_row_broadcasts():
    pred = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    truth = np.array([0.2, 0.3, 0.5])
    assert top_k_indices(pred, 10).shape == (2, 3)
    np.testing.assert_allclose(ndcg_at_k(pred, truth, 10), [reference_ndcg(p, truth, 10) for p in pred])
    np.testing.assert_allclose(ndcg_at_k(pred, truth, 3)[1], 1.0)


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3"])
def test_bad_k(k):
    with pytest.raises(SpectraInputError, match="k must be a positive integer"):
        ndcg_at_k([0.5, 0.5], [0.5, 0.5], k)


@pytest.mark.parametrize(
    "pred, truth, match",
    [
        ([[0.5, np.nan]], [[0.5, 0.5]], r"pred, row 0, column 1: value is nan"),
        ([[0.5, 0.5]], [[1.2, -0.2]], r"truth, row 0, column 1: value -0.2 is negative"),
        ([[0.5, 0.6]], [[0.5, 0.5]], r"pred, row 0: probabilities sum to 1.1"),
        ([[0.5, 0.5]], [[0.2, 0.3, 0.5]], r"pred has 2 categories but truth has 3"),
        ([[0.5, 0.5]] * 2, [[0.5, 0.5]] * 3, r"pred has 2 rows but truth has 3"),
        ([["a", "b"]], [[0.5, 0.5]], r"pred: values are not numeric"),
    ],
)
def test_bad_input(pred, truth, match):
    for fn in (ndcg_at_k, dcg_at_k, mass_captured_at_k):
        with pytest.raises(SpectraInputError, match=match):
            fn(pred, truth, 1)
