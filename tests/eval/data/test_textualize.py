"""Textualisation: item lines, oldest-first order, truncation from the oldest end within an exact budget."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectra_eval.validation import SpectraInputError
from spectra_eval.data.textualize import fit_to_budget, item_line, textualize

ITEMS = pd.DataFrame({
    "item_id": ["1", "2", "3", "4"],
    "title": ["Toy Story", "Heat", "Alien", "Multi\nLine"],
    "year": pd.array([1995, 1995, None, 2000], dtype="Int64"),
    "categories": [("Animation", "Comedy"), ("Action",), ("Horror", "Sci-Fi"), ()],
})
HISTORY = pd.DataFrame({"user_id": ["u", "u", "u", "v"], "item_id": ["1", "2", "3", "4"]})


def words(text: str) -> int:
    return len(text.split())


def test_item_line():
    assert item_line("Toy Story", 1995, ("Animation", "Comedy")) == "Toy Story (1995) [Animation, Comedy]"
    assert item_line("Alien", None, ("Horror",)) == "Alien [Horror]"
    assert item_line("Multi\nLine", pd.NA, ()) == "Multi Line"


def test_order_most_recent_last_and_no_budget():
    out = textualize(HISTORY, ITEMS, users=["v", "u", "w"])
    assert out["user_id"].tolist() == ["v", "u", "w"]
    assert out["context"].tolist() == [
        "Multi Line (2000)",
        "Toy Story (1995) [Animation, Comedy]\nHeat (1995) [Action]\nAlien [Horror, Sci-Fi]",
        "",
    ]
    assert out["n_items"].tolist() == [1, 3, 0]


def test_budget_drops_oldest_first():
    # line word counts: Toy Story ... = 5, Heat ... = 3, Alien ... = 3
    out = textualize(HISTORY, ITEMS, users=["u"], budget=6, tokenizer=words)
    assert out["context"].iloc[0] == "Heat (1995) [Action]\nAlien [Horror, Sci-Fi]"
    assert words(out["context"].iloc[0]) <= 6
    out = textualize(HISTORY, ITEMS, users=["u"], budget=5, tokenizer=words)
    assert out["context"].iloc[0] == "Alien [Horror, Sci-Fi]"
    # not even the newest line fits: it is cut to its longest fitting prefix, never empty
    cut = textualize(HISTORY, ITEMS, users=["u"], budget=2, tokenizer=words)["context"].iloc[0]
    assert cut == "Alien [Horror," and words(cut) == 2


def test_budget_errors():
    with pytest.raises(SpectraInputError, match="needs a tokenizer"):
        textualize(HISTORY, ITEMS, budget=10)
    with pytest.raises(SpectraInputError, match="item '9' is not in the item table"):
        textualize(pd.DataFrame({"user_id": ["u"], "item_id": ["9"]}), ITEMS)


@settings(max_examples=50)
@given(st.lists(st.text(alphabet="abc de", min_size=1, max_size=30), min_size=1, max_size=25), st.integers(1, 60))
def test_budget_property_with_a_real_tokenizer(lines, budget):
    """count(context) <= budget exactly, the kept lines are a suffix of the history, and adding the next
    older line would break the budget."""
    tok = _tokenizer()
    count = lambda s: len(tok.encode(s, add_special_tokens=False))  # noqa: E731
    text = fit_to_budget(lines, budget, count)
    assert count(text) <= budget
    kept = text.split("\n") if text else []
    if kept and kept == lines[len(lines) - len(kept):]:
        if len(kept) < len(lines):
            assert count("\n".join(lines[len(lines) - len(kept) - 1:])) > budget
    else:  # the newest line alone did not fit: a prefix of it
        assert len(kept) <= 1 and lines[-1].startswith(text)
        assert count(lines[-1]) > budget


_TOK = []


def _tokenizer():
    if not _TOK:
        from spectra_probe.training.tiny import train_tokenizer

        _TOK.append(train_tokenizer(["abc de " * 20, "a b c d e ab cd de"], vocab_size=300))
    return _TOK[0]


def test_hf_tokenizer_budget_on_movielens_lines():
    tok = _tokenizer()
    history = pd.DataFrame({"user_id": ["u"] * 4, "item_id": ["1", "2", "3", "1"]})
    full = textualize(history, ITEMS)["context"].iloc[0]
    n = len(tok.encode(full, add_special_tokens=False))
    for budget in (n, n - 1, n // 2, 5):
        ctx = textualize(history, ITEMS, budget=budget, tokenizer=tok)["context"].iloc[0]
        assert len(tok.encode(ctx, add_special_tokens=False)) <= budget
        newest = full.split("\n")[-1]
        assert full.endswith("\n" + ctx) or ctx == full or (newest.startswith(ctx) and "\n" not in ctx)
    assert textualize(history, ITEMS, budget=n, tokenizer=tok)["context"].iloc[0] == full
