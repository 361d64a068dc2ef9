"""Prefix/suffix tokenisation boundary: a BPE merge across the boundary is detected, the prompt falls back to
whole-prompt scoring, and the scores still equal the naive engine and an independent computation."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from spectra_probe.backends.base import ScoreRequest, plan_groups  # noqa: E402
from spectra_probe.backends.hf import HFBackend  # noqa: E402
from spectra_probe.training.tiny import build_tiny_qwen3, sample_corpus, train_tokenizer  # noqa: E402

WORDS = sorted(set(" ".join(sample_corpus(300)).replace(".", " ").replace("?", " ").replace("!", " ")
                   .replace(":", " ").split()))


@pytest.fixture(scope="module")
def tiny():
    tok = train_tokenizer(sample_corpus(300), vocab_size=400)
    model = build_tiny_qwen3(tok, seed=2)
    return tok, model, HFBackend.from_model(model, tok, engine="packed", chunk_size=64), \
        HFBackend.from_model(model, tok, engine="naive")


def encode(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def whole_prompt_scores(model, tok, prefix, suffix):
    """Independent reference for any prompt: log-probs of the tokens of tokens(prefix+suffix) after their longest
    common run with tokens(prefix), from one plain forward pass."""
    full, p = encode(tok, prefix + suffix), encode(tok, prefix)
    n_ctx = next((i for i, (a, b) in enumerate(zip(full, p)) if a != b), min(len(full), len(p)))
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].double(), -1)
    total = sum(float(logp[j - 1, full[j]]) for j in range(n_ctx, len(full)))
    return total, len(full) - n_ctx, logp[-1].exp()


def test_merge_across_boundary_falls_back(tiny):
    tok, model, packed, naive = tiny
    # " watched" is one token, " wat" + "ched" is not: the suffix merges with the prefix's last characters
    assert len(encode(tok, " watched")) == 1
    prefix = "the user liked drama and then wat"
    assert encode(tok, prefix + "ched")[: len(encode(tok, prefix))] != encode(tok, prefix)
    suffixes = (" drama", "ched", "ched comedy", "", " x")
    req = ScoreRequest(prefix, suffixes, (5, 9))
    got, ref = packed.score([req])[0], naive.score([req])[0]
    np.testing.assert_array_equal(got.fallback, [False, True, True, False, False])
    np.testing.assert_array_equal(ref.fallback, got.fallback)
    np.testing.assert_allclose(got.suffix_logprob, ref.suffix_logprob, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.next_logits, ref.next_logits, atol=1e-5, rtol=0)
    for k, s in enumerate(suffixes):
        total, n, _ = whole_prompt_scores(model, tok, prefix, s)
        assert got.suffix_tokens[k] == n
        assert got.suffix_logprob[k] == pytest.approx(total, abs=1e-4)
    # the merged token " watched" (prefix " w" + "at" + suffix "ched") is the suffix's one token
    assert got.suffix_tokens[1] == 1 and encode(tok, prefix + "ched")[-1] == encode(tok, " watched")[0]


def test_clean_split_matches_separate_tokenisation(tiny):
    """Where there is no fallback, tokens(prefix) + suffix tokens == tokens(prefix + suffix) (checked directly)."""
    tok = tiny[0]
    reqs = [ScoreRequest("the user watched comedy.", (" drama", " film-noir", "", " yes"))]
    groups, fallback = plan_groups(tok, reqs, share_prefix=True)
    assert not fallback[0].any() and len(groups) == 1
    g = groups[0]
    assert g.ctx == encode(tok, reqs[0].prefix)
    for (ri, si), tail in zip(g.slots, g.tails):
        assert g.ctx + tail == encode(tok, reqs[0].prefix + reqs[0].suffixes[si])


@settings(max_examples=25)
@given(pre=st.lists(st.sampled_from(WORDS), min_size=1, max_size=8),
       suf=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
       punct=st.sampled_from(["", ".", "?", ":"]))
def test_space_led_suffixes_never_fall_back(tiny, pre, suf, punct):
    """Byte-level BPE pre-tokenises ' word' as its own piece, so a space-led suffix never merges across."""
    tok = tiny[0]
    req = ScoreRequest(" ".join(pre) + punct, (" " + " ".join(suf),))
    _, fallback = plan_groups(tok, [req], share_prefix=True)
    assert not fallback[0].any()


@settings(max_examples=10)
@given(pre=st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
       cut=st.integers(1, 6), word=st.sampled_from(WORDS), tail=st.sampled_from(["", " drama", "?"]))
def test_any_split_equals_naive(tiny, pre, cut, word, tail):
    """Splitting a word at an arbitrary character (fallback or not): packed == naive."""
    tok, _, packed, naive = tiny
    cut = min(cut, len(word) - 1) if len(word) > 1 else 0
    prefix = " ".join(pre) + " " + word[:cut]
    req = ScoreRequest(prefix.rstrip() if not cut else prefix, (word[cut:] + tail, " x", ""), (3,))
    got, ref = packed.score([req])[0], naive.score([req])[0]
    np.testing.assert_array_equal(got.fallback, ref.fallback)
    np.testing.assert_array_equal(got.suffix_tokens, ref.suffix_tokens)
    np.testing.assert_allclose(got.suffix_logprob, ref.suffix_logprob, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.next_logits, ref.next_logits, atol=1e-5, rtol=0)
