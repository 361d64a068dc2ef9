"""DG list decoders: uniform, rank-weighted, oracle vertex (Lemma 1)."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from spectra_eval.data.decoders import decode_lists, decode_rank_weighted, decode_uniform, oracle_vertex
from spectra_eval.metrics.divergences import tv
from spectra_eval.validation import SpectraInputError, check_distributions

CATS = ["action", "comedy", "drama", "horror"]


def test_uniform_hand_worked():
    out = decode_uniform([["drama", "action"], ["comedy"], []], CATS)
    np.testing.assert_array_equal(out, [[0.5, 0, 0.5, 0], [0, 1, 0, 0], [0.25] * 4])  # empty list: uniform over K


def test_rank_weighted_hand_worked():
    out = decode_rank_weighted([["drama", "action", "horror"]], CATS)
    w = np.array([1.0, 1 / math.log2(3), 0.5])  # ranks 1, 2, 3
    w /= w.sum()
    np.testing.assert_allclose(out, [[w[1], 0, w[0], w[2]]], atol=1e-15)


def test_duplicates_count_once_at_first_position():
    lists = [["drama", "drama", "action", "drama"], ["comedy", "comedy"]]
    np.testing.assert_array_equal(decode_uniform(lists, CATS), [[0.5, 0, 0.5, 0], [0, 1, 0, 0]])
    np.testing.assert_allclose(
        decode_rank_weighted(lists, CATS), decode_rank_weighted([["drama", "action"], ["comedy"]], CATS), atol=0
    )


def test_oracle_hand_worked_and_fallbacks():
    truth = np.array([
        [0.4, 0.1, 0.2, 0.3],
        [0.0, 0.0, 0.5, 0.5],  # list has no true mass -> uniform on the list
        [0.1, 0.2, 0.3, 0.4],  # empty list -> uniform over K
    ])
    out = oracle_vertex(truth, [["action", "drama"], ["action", "comedy"], []], CATS)
    np.testing.assert_allclose(out, [[0.4 / 0.6, 0, 0.2 / 0.6, 0], [0.5, 0.5, 0, 0], [0.25] * 4], atol=1e-15)
    # default labels are column indices
    np.testing.assert_allclose(oracle_vertex(truth[:1], [[0, 2]]), out[:1], atol=1e-15)


@st.composite
def truth_and_lists(draw):
    n_cat = draw(st.integers(2, 10))
    n = draw(st.integers(1, 6))
    raw = np.array(draw(st.lists(st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0]) | st.floats(0, 1), min_size=n_cat,
                                                  max_size=n_cat), min_size=n, max_size=n)))
    raw[raw.sum(axis=1) == 0] = 1.0
    truth = raw / raw.sum(axis=1, keepdims=True)
    lists = [draw(st.lists(st.sampled_from(range(n_cat)), max_size=n_cat + 2)) for _ in range(n)]
    return truth, [[f"c{c}" for c in lst] for lst in lists], [f"c{c}" for c in range(n_cat)]


@given(truth_and_lists())
def test_decoders_are_distributions_supported_on_the_list(case):
    truth, lists, cats = case
    for out in (decode_uniform(lists, cats), decode_rank_weighted(lists, cats), oracle_vertex(truth, lists, cats)):
        check_distributions(out)
        for row, lst in zip(out, lists):
            support = {cats[c] for c in np.flatnonzero(row)}
            assert support <= set(lst) or not lst
    for row, lst in zip(decode_rank_weighted(lists, cats), lists):  # weights fall with rank
        first = list(dict.fromkeys(lst))
        vals = [row[cats.index(c)] for c in first]
        assert all(a > b for a, b in zip(vals, vals[1:]))


@given(truth_and_lists())
def test_lemma1_oracle_attains_the_tail_mass_and_others_cannot_beat_it(case):
    truth, lists, cats = case
    listed = np.array([[c in set(lst) for c in cats] for lst in lists])
    tail_mass = np.where(listed, 0.0, truth).sum(axis=1)
    nonempty = listed.any(axis=1)
    positive = nonempty & (tail_mass < 1)  # the renormalisation vertex exists
    oracle = oracle_vertex(truth, lists, cats)
    np.testing.assert_allclose(tv(truth, oracle)[positive], tail_mass[positive], atol=1e-12)
    for decoded in (decode_uniform(lists, cats), decode_rank_weighted(lists, cats)):
        assert np.all(tv(truth, decoded)[nonempty] >= tail_mass[nonempty] - 1e-12)


def test_decode_lists_dispatch():
    truth = np.array([[0.4, 0.1, 0.2, 0.3]])
    lists = [["horror", "action"]]
    np.testing.assert_array_equal(decode_lists(lists, CATS), decode_uniform(lists, CATS))
    np.testing.assert_array_equal(decode_lists(lists, CATS, "rank"), decode_rank_weighted(lists, CATS))
    np.testing.assert_array_equal(decode_lists(lists, CATS, "oracle", truth), oracle_vertex(truth, lists, CATS))
    with pytest.raises(SpectraInputError, match="needs the truth"):
        decode_lists(lists, CATS, "oracle")
    with pytest.raises(SpectraInputError, match="unknown decoding scheme 'greedy'"):
        decode_lists(lists, CATS, "greedy")


def test_many_users_vectorised():
    rng = np.random.default_rng(0)
    cats = [f"cat{i}" for i in range(1311)]
    picks = rng.integers(0, 1311, size=(10_000, 5))
    lists = [[cats[c] for c in row] for row in picks]
    out = decode_uniform(lists, cats)
    check_distributions(out)
    assert out.shape == (10_000, 1311)


@pytest.mark.parametrize("lists, match", [
    ([["action"], ["comedy", "western"]], r"user row 1: unknown category label 'western'"),
    ([["action"], "comedy"], r"user row 1: expected a sequence of category labels"),
    ("action", r"got a string"),
    ([["action"], [None]], r"user row 1: unknown category label None"),
])
def test_bad_lists(lists, match):
    with pytest.raises(SpectraInputError, match=match):
        decode_uniform(lists, CATS)


def test_bad_categories_and_truth():
    with pytest.raises(SpectraInputError, match="'drama' appears more than once"):
        decode_uniform([["drama"]], ["drama", "drama"])
    with pytest.raises(SpectraInputError, match="truth has 1 rows but there are 2 lists"):
        oracle_vertex([[0.5, 0.5, 0, 0]], [["action"], ["drama"]], CATS)
    with pytest.raises(SpectraInputError, match="truth has 4 columns but 3 categories"):
        oracle_vertex([[0.5, 0.5, 0, 0]], [["action"]], CATS[:3])
    with pytest.raises(SpectraInputError, match=r"truth, row 0, column 1: value is nan"):
        oracle_vertex([[0.5, np.nan, 0, 0]], [["action"]], CATS)
