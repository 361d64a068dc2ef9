"""Direct-generation list parsing: case, spacing, punctuation, partial names, duplicates, garbage."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectra_probe.scoring.dg import CategoryMatcher, decode, merge_summaries, normalise, parse_category_list, summarise

CATS = ("Comedy", "Drama", "Action", "Sci-Fi", "Film-Noir", "Children's", "Romance",
        "Active Life, Sports & Recreation", "Documentary")
M = CategoryMatcher(CATS)


def parse(text, k=5):
    return parse_category_list(text, M, k)


@pytest.mark.parametrize(
    "text, labels, outcome",
    [
        ("Comedy, Drama, Action", ("Comedy", "Drama", "Action"), "exact"),
        ("  comedy ,DRAMA,   action  ", ("Comedy", "Drama", "Action"), "exact"),
        ("sci fi; film noir; childrens", ("Sci-Fi", "Film-Noir", "Children's"), "exact"),
        ("1. Comedy\n2. Drama\n3) Romance", ("Comedy", "Drama", "Romance"), "exact"),
        ("- Comedy\n- Drama", ("Comedy", "Drama"), "exact"),
        ('"Comedy", "Drama", and Action.', ("Comedy", "Drama", "Action"), "exact"),
        ("Docu, Roman", ("Documentary", "Romance"), "partial"),  # unique prefixes
        ("Comedy films, Dramma", ("Comedy", "Drama"), "partial"),  # category + extra word; typo
        ("Comedy, comedy, COMEDY, Drama", ("Comedy", "Drama"), "exact"),  # repeats dropped
        ("Comedy, Westerns, Drama", ("Comedy", "Drama"), "partial"),  # unknown dropped
        ("active life, sports & recreation, Drama", ("Active Life, Sports & Recreation", "Drama"), "exact"),
        ("", (), "empty"),
        ("xq zzv !!!, 123", (), "empty"),
        ("Comedy, Drama\n\nUser history: Action, Romance", ("Comedy", "Drama"), "exact"),  # first paragraph
    ],
)
def test_parse_cases(text, labels, outcome):
    result = parse(text)
    assert result.labels == labels
    assert result.outcome == outcome


def test_counts_and_truncation():
    r = parse("Comedy, Drama, drama, Westerns, Action, Romance, Sci-Fi, Documentary", k=3)
    assert r.labels == ("Comedy", "Drama", "Action")
    assert (r.n_items, r.n_exact, r.n_partial, r.n_unknown, r.n_duplicate, r.n_truncated) == (8, 7, 0, 1, 1, 3)
    assert r.outcome == "partial"


def test_ambiguous_prefix_is_not_guessed():
    m = CategoryMatcher(("Comedy", "Comic Books"))
    idx, kind = m.match("Com")
    assert idx is None and kind == "unknown"


def test_summary_counts():
    rows = [parse("Comedy, Drama").to_dict(), parse("Docu").to_dict(), parse("nothing here").to_dict()]
    s = summarise(rows)
    assert s["outcomes"] == {"exact": 1, "partial": 1, "empty": 1}
    assert s["n_users"] == 3
    assert s["mean_list_length"] == pytest.approx((2 + 1 + 0) / 3)


def test_merged_summaries_equal_the_summary_of_all_users():
    rows = [parse(t).to_dict() for t in ("Comedy, Drama", "Docu", "nothing here", "Action, Action, Westerns")]
    assert merge_summaries([summarise(rows[:1]), summarise(rows[1:3]), summarise(rows[3:])]) == summarise(rows)
    assert merge_summaries([summarise([]), summarise(rows)]) == summarise(rows)


@settings(max_examples=50)
@given(st.permutations(CATS[:7]), st.integers(1, 7))
def test_exact_lists_round_trip(order, k):
    """Any comma-joined list of labels (in any case) parses back to its first k labels, exactly."""
    text = ", ".join(c.upper() if i % 2 else c for i, c in enumerate(order))
    r = parse(text, k=k)
    assert r.labels == tuple(order[:k])
    assert r.outcome == "exact"


@settings(max_examples=100)
@given(st.text(max_size=60))
def test_garbage_never_crashes_and_only_known_labels(text):
    r = parse(text)
    assert set(r.labels) <= set(CATS)
    assert len(set(r.labels)) == len(r.labels) <= 5
    assert (r.outcome == "empty") == (len(r.labels) == 0)


def test_normalise():
    assert normalise("  Sci-Fi!! ") == "sci fi"
    assert normalise("Children's") == normalise("childrens") == "childrens"


def test_decoded_distribution_is_uniform_on_list():
    probs = decode([parse("Comedy, Drama").labels, ()], CATS)
    expected = np.zeros((2, len(CATS)))
    expected[0, [0, 1]] = 0.5
    expected[1] = 1 / len(CATS)  # empty list -> uniform over all K (decoder convention)
    np.testing.assert_allclose(probs, expected, atol=1e-15)
