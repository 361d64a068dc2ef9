"""Split invariants, truth rows, sessions/context windows/strata, and the history priors on worked examples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectra_eval.data.datasets import Interactions, load_movielens_100k_recbole
from spectra_eval.data.priors import (cohort, global_frequency, history_priors, laplace_uhf, markov, transition_matrix,
                                     uhf)
from spectra_eval.data.splits import count_table
from spectra_eval.data.splits import (
    activity_strata,
    chronological_split,
    context_records,
    history_size,
    metadata_table,
    truth_table,
)
from spectra_eval.validation import SpectraInputError, check_distributions

CATS = ("A", "B", "C")


def make(rows, categories=CATS):
    """rows: (user, item, timestamp, categories-string)."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "categories"])
    frame["categories"] = frame["categories"].map(lambda s: tuple(s) if s else ())
    frame["timestamp"] = frame["timestamp"].astype(float)
    items = frame.drop_duplicates("item_id")[["item_id", "categories"]].assign(title=lambda f: f["item_id"], year=None)
    return Interactions(frame=frame, items=items, categories=categories, name="fixture")


@pytest.fixture(scope="module")
def ml():
    data = load_movielens_100k_recbole()
    return data, chronological_split(data)


def test_history_size_rounding():
    n = np.array([2, 3, 5, 9, 10, 11, 100])
    assert history_size(n).tolist() == [1, 2, 4, 7, 8, 8, 80]  # floor(0.8 n), both sides non-empty


def test_worked_split_and_truth():
    # user 1: 5 items, timestamps out of file order and one tie (kept in file order)
    rows = [("1", "i1", 30, "A"), ("1", "i2", 10, "AB"), ("1", "i3", 20, "B"), ("1", "i4", 20, "C"),
            ("1", "i5", 50, "AC"), ("2", "i6", 1, "A"), ("2", "i7", 2, "B")]
    split = chronological_split(make(rows), min_interactions=5)
    assert split.users.tolist() == ["1"]  # user 2 has 2 < 5 interactions
    assert split.history["item_id"].tolist() == ["i2", "i3", "i4", "i1"]
    assert split.future["item_id"].tolist() == ["i5"]
    assert truth_table(split).probs.tolist() == [[0.5, 0.0, 0.5]]
    split2 = chronological_split(make(rows), min_interactions=2, history_fraction=0.5)
    assert split2.users.tolist() == ["1", "2"]
    # user 1: future = i4, i1, i5 (n_hist = floor(2.5) = 2): split mass C:1, A:1, A:.5 C:.5
    truth = truth_table(split2)
    np.testing.assert_allclose(truth.probs[0], [1.5 / 3, 0, 1.5 / 3])
    # 'each': every category a full unit: A:2, C:2 of 4
    np.testing.assert_allclose(truth_table(split2, mass="each").probs[0], [0.5, 0, 0.5])
    np.testing.assert_allclose(truth.probs[1], [0, 1, 0])


def test_each_differs_from_split():
    rows = [("u", "x", 0, "A"), ("u", "y", 1, "A"), ("u", "z", 2, "ABC"), ("u", "w", 3, "A")]
    split = chronological_split(make(rows), min_interactions=2, history_fraction=0.5)  # future z, w
    np.testing.assert_allclose(truth_table(split).probs[0], [(1 / 3 + 1) / 2, 1 / 6, 1 / 6])
    np.testing.assert_allclose(truth_table(split, mass="each").probs[0], [2 / 4, 1 / 4, 1 / 4])


def test_user_without_future_mass_dropped():
    rows = [("u", "x", 0, "A"), ("u", "y", 1, ""), ("u", "z", 2, ""), ("v", "s", 0, "A"), ("v", "t", 1, "B")]
    split = chronological_split(make(rows), min_interactions=2, history_fraction=0.5)
    assert split.users.tolist() == ["v"]
    with pytest.raises(SpectraInputError, match="history_fraction"):
        chronological_split(make(rows), history_fraction=1.0)


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 30), st.integers(0, 40), st.sampled_from(["A", "B", "AC", "ABC"])),
                min_size=1, max_size=60))
def test_split_invariants_property(rows):
    rows = [(str(u), f"it{i}", t, c) for u, i, t, c in rows]
    data = make(rows)
    try:
        split = chronological_split(data, min_interactions=2)
    except SpectraInputError:
        assert pd.Series([r[0] for r in rows]).value_counts().max() < 2
        return
    counts = data.frame.groupby("user_id").size()
    for u in split.users:
        h = split.history[split.history["user_id"] == u]
        f = split.future[split.future["user_id"] == u]
        n = counts[u]
        assert len(h) == history_size(n) and len(h) + len(f) == n  # 80/20 per user
        assert h["timestamp"].max() <= f["timestamp"].min()  # chronological
        both = pd.concat([h, f])
        assert both["timestamp"].is_monotonic_increasing
        assert both["position"].tolist() == list(range(n))
    check_distributions(truth_table(split).probs)  # rows sum to 1


def test_movielens_split(ml):
    data, split = ml
    assert split.n_users == 943
    assert len(split.history) + len(split.future) == 100_000
    sizes = data.frame.groupby("user_id").size().reindex(split.users).to_numpy()
    n_hist = split.history.groupby("user_id", sort=False).size().reindex(split.users).to_numpy()
    assert np.array_equal(n_hist, np.floor(0.8 * sizes + 1e-9).astype(int))
    # no future interaction precedes its user's last history interaction
    last_hist = split.history.groupby("user_id")["timestamp"].max()
    first_fut = split.future.groupby("user_id")["timestamp"].min()
    assert (first_fut >= last_hist.reindex(first_fut.index)).all()
    truth = truth_table(split)
    np.testing.assert_allclose(truth.probs.sum(axis=1), 1.0, atol=1e-12)
    # independent recount for one user: explode the future rows and count with value_counts
    u = split.users[0]
    f = split.future[split.future["user_id"] == u]
    w = f["categories"].map(lambda c: 1 / len(c))
    mass = pd.DataFrame({"c": f["categories"], "w": w}).explode("c").groupby("c")["w"].sum()
    expected = (mass / mass.sum()).reindex(list(split.categories), fill_value=0).to_numpy()
    np.testing.assert_allclose(truth.probs[0], expected)


def test_sessions_context_windows_and_leakage():
    gap = 100
    # history: sessions at t=0,10 | 500 | 1000,1005 | 2000 ; future: 2010 | 5000
    ts = [0, 10, 500, 1000, 1005, 2000, 2010, 5000, 5001, 5002]
    rows = [("u", f"i{k}", t, "A" if k % 2 else "B") for k, t in enumerate(ts)]
    split = chronological_split(make(rows), min_interactions=2, session_gap=gap)
    assert split.history["session"].tolist() == [0, 0, 1, 2, 2, 3, 3, 4]
    assert split.future["session"].tolist() == [0, 0]  # 5001 and 5002 are one future session
    split = chronological_split(make(rows), min_interactions=2, session_gap=gap, history_fraction=0.6)
    assert split.history["session"].tolist() == [0, 0, 1, 2, 2, 3]
    assert split.future["session"].tolist() == [0, 1, 1, 1]
    rec = context_records(split, windows=(1, 3, 8), horizons=("LT", "ST"))
    ctx = rec.history.groupby("user_id")["item_id"].apply(list)
    assert ctx["u|cw1|LT"] == ["i5"] and ctx["u|cw3|ST"] == ["i2", "i3", "i4", "i5"]
    assert ctx["u|cw8|LT"] == [f"i{k}" for k in range(6)]
    truth = pd.DataFrame(rec.truth.probs, index=rec.truth.users, columns=rec.truth.categories)
    assert truth.loc["u|cw1|ST"].tolist() == [0.0, 1.0, 0.0]  # only i6 (B)
    np.testing.assert_allclose(truth.loc["u|cw1|LT"].to_numpy(), [0.5, 0.5, 0.0])
    meta = rec.meta.set_index("user_id")
    assert meta.loc["u|cw3|ST", "cell"] == "CW3-ST" and meta.loc["u|cw3|ST", "n_target"] == 1
    assert meta.loc["u|cw8|LT", "n_context"] == 6 and meta.loc["u|cw8|LT", "user"] == "u"


def test_movielens_context_records_have_no_future_item(ml):
    _, split = ml
    rec = context_records(split, windows=(1, 8), horizons=("LT", "ST"))
    assert len(rec.meta) == 4 * split.n_users
    future_keys = set(zip(split.future["user_id"], split.future["position"]))
    assert not future_keys & set(zip(rec.history["user"], rec.history["position"]))
    np.testing.assert_allclose(rec.truth.probs.sum(axis=1), 1.0, atol=1e-12)
    cw1 = rec.meta[rec.meta["cell"] == "CW1-LT"]["n_context"].to_numpy()
    cw8 = rec.meta[rec.meta["cell"] == "CW8-LT"]["n_context"].to_numpy()
    assert (cw1 <= cw8).all() and (cw1 >= 1).all()


def test_activity_strata_and_meta(ml):
    labels = activity_strata([5, 1, 3, 3, 9, 7], n_strata=3)
    assert labels.tolist() == ["A2", "A1", "A1", "A2", "A3", "A3"]
    _, split = ml
    meta = metadata_table(split)
    assert meta["user_id"].tolist() == split.users.tolist()
    counts = meta["activity"].value_counts()
    assert sorted(counts.index) == ["A1", "A2", "A3", "A4", "A5"] and counts.max() - counts.min() <= 1
    # strata are ordered by history length
    by = meta.groupby("activity")["n_history"]
    assert (by.max().sort_index().to_numpy()[:-1] <= by.min().sort_index().to_numpy()[1:]).all()
    assert (meta["n_history"] + meta["n_future"]).sum() == 100_000


# ---------------------------------------------------------------- priors

PRIOR_ROWS = [
    # user a: history A, AB, B | future C ; user b: history C, C | future A ; user c: history '' | future B
    ("a", "1", 0, "A"), ("a", "2", 1, "AB"), ("a", "3", 2, "B"), ("a", "4", 3, "C"),
    ("b", "5", 0, "C"), ("b", "6", 1, "C"), ("b", "7", 2, "A"),
    ("c", "8", 0, ""), ("c", "9", 1, "B"),
]


@pytest.fixture
def prior_split():
    # a: n=4 -> 3 history; b: n=3 -> 2 history; c: n=2 -> 1 history
    return chronological_split(make(PRIOR_ROWS), min_interactions=2)


def test_uhf_worked(prior_split):
    table = uhf(prior_split)
    assert table.users.tolist() == ["a", "b", "c"]
    # a: A 1.5, B 1.5 ; b: C 2 ; c: empty history -> global (A 1.5, B 1.5, C 2)/5
    np.testing.assert_allclose(table.probs, [[0.5, 0.5, 0], [0, 0, 1], [0.3, 0.3, 0.4]])
    np.testing.assert_allclose(global_frequency(prior_split), [0.3, 0.3, 0.4])


def test_cohort_prior_worked(prior_split):
    # the mean of the three UHF rows above, the same for every user
    expected = np.mean([[0.5, 0.5, 0], [0, 0, 1], [0.3, 0.3, 0.4]], axis=0)
    np.testing.assert_allclose(cohort(prior_split).probs, np.repeat(expected[None], 3, axis=0))


def test_count_table_counts_each_future_item_once(prior_split):
    # futures: a -> C, b -> A, c -> B (single categories: deterministic)
    frame = count_table(prior_split).set_index("user_id")
    assert frame.loc[["a", "b", "c"], ["A", "B", "C"]].to_numpy().tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]


def test_count_table_draws_one_category_of_a_multi_category_item_uniformly():
    rows = [("u", str(i), i, "A") for i in range(4)] + [("u", str(10 + i), 10 + i, "AB") for i in range(4000)]
    split = chronological_split(make(rows), min_interactions=2, history_fraction=0.001)
    frame = count_table(split, seed=1).set_index("user_id")
    n = int(frame.loc["u"].sum())
    assert n == len(split.future) == 4000  # one count per future item (the history holds the four A items)
    assert abs(frame.loc["u", "A"] / n - 0.5) < 4 * np.sqrt(0.25 / n)
    assert count_table(split, seed=1).equals(count_table(split, seed=1))  # seeded


def test_laplace_worked(prior_split):
    table = laplace_uhf(prior_split, alpha=1.0)
    np.testing.assert_allclose(table.probs, [[2.5 / 6, 2.5 / 6, 1 / 6], [1 / 5, 1 / 5, 3 / 5], [1 / 3] * 3])
    np.testing.assert_allclose(laplace_uhf(prior_split, alpha=0.5).probs[1], [0.5 / 3.5, 0.5 / 3.5, 2.5 / 3.5])


def test_markov_worked(prior_split):
    # transitions: a: A->(A.5,B.5), (A.5,B.5)->B ; b: C->C. Counts N:
    #   A row: A .5 + .5*0, B .5 + .5*1 -> from A (weight 1): (.5,.5,0); from AB (.5 A, .5 B) to B: A->B .5, B->B .5
    N = np.array([[0.5, 1.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    P = (N + 1) / (N + 1).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(transition_matrix(prior_split, alpha=1.0), P)
    table = markov(prior_split, alpha=1.0)
    np.testing.assert_allclose(table.probs[0], P[1])  # a's last history item is B
    np.testing.assert_allclose(table.probs[1], P[2])  # b's last is C
    np.testing.assert_allclose(table.probs[2], [0.3, 0.3, 0.4])  # c: no categorised history -> global
    # a multi-category last item mixes rows: v = (.5, .5, 0) -> v @ P
    rows = PRIOR_ROWS[:2] + [("a", "3", 2, "AB"), ("a", "4", 3, "C")]
    split = chronological_split(make(rows), min_interactions=2)
    P2 = transition_matrix(split)
    np.testing.assert_allclose(markov(split).probs[0], 0.5 * P2[0] + 0.5 * P2[1])


def test_priors_on_movielens_are_distributions(ml):
    _, split = ml
    tables = history_priors(split)
    assert list(tables) == ["history-uhf", "history-laplace", "history-markov", "history-cohort"]
    for table in tables.values():
        check_distributions(table.probs)
        assert table.categories == split.categories and table.users.tolist() == split.users.tolist()
    # UHF against an independent pandas recount for one user
    u = split.users[5]
    h = split.history[split.history["user_id"] == u]
    mass = pd.DataFrame({"c": h["categories"], "w": h["categories"].map(lambda c: 1 / len(c))}).explode("c")
    counts = mass.groupby("c")["w"].sum().reindex(list(split.categories), fill_value=0)
    np.testing.assert_allclose(tables["history-uhf"].probs[5], counts / counts.sum())


def test_history_priors_are_the_single_priors_under_prior_names(ml):
    _, split = ml
    from spectra_eval.data.priors import PRIOR_NAMES

    tables = history_priors(split, alpha=0.5)
    assert tuple(tables) == PRIOR_NAMES
    singles = (uhf(split), laplace_uhf(split, alpha=0.5), markov(split, alpha=0.5), cohort(split))
    for table, single in zip(tables.values(), singles):  # one UHF pass for uhf and cohort: the same bits
        assert np.array_equal(table.probs, single.probs) and table.source == single.source


def test_nested_split_splits_each_history_again(ml):
    from spectra_eval.data.splits import nested_split

    _, split = ml
    nested = nested_split(split)
    assert nested.history_fraction == split.history_fraction and nested.session_gap == split.session_gap
    inner = pd.concat([nested.history, nested.future])
    outer = set(zip(split.history["user_id"], split.history["item_id"]))
    assert set(zip(inner["user_id"], inner["item_id"])) <= outer  # nothing of the evaluation future
    sizes = split.history.groupby("user_id").size().loc[nested.users]
    assert nested.history.groupby("user_id").size().loc[nested.users].tolist() == history_size(sizes).tolist()
    assert nested_split(split, history_fraction=0.5).history_fraction == 0.5
