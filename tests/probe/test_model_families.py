"""Every model family users probe: the packed shared-prefix engine equals the naive engine (float32, 1e-4) on tiny
random models of Qwen3, Qwen2, Llama, Mistral, Gemma 2, Gemma 3 and Phi-3 (built here from a transformers config,
nothing downloaded), for the raw backend API, the yesno, name and choice scorers and the cached-prefix path, with
sliding windows (8 tokens) shorter than every prompt; the naive engine equals the model's own forward on the whole
text; a layout the engine cannot serve exactly is detected and falls back to naive (warning + manifest entry), an
attention implementation without 4-D masks is refused naming the model; ``spectra probe`` runs Gemma 2 and Llama.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from spectra_eval.cli import main  # noqa: E402
from spectra_eval.io import read_distribution_table  # noqa: E402
from spectra_eval.validation import SpectraInputError  # noqa: E402
from spectra_probe.backends.base import ScoreRequest  # noqa: E402
from spectra_probe.backends.hf import HFBackend  # noqa: E402
from spectra_probe.backends.packed import attention_windows, packed_unsupported  # noqa: E402
from spectra_probe.scoring import ScorerOptions, make_scorer  # noqa: E402
from spectra_probe.templates import PromptBuilder, PromptTemplates  # noqa: E402
from spectra_probe.training.tiny import save_tiny  # noqa: E402
from tests.probe.families import FAMILIES, WINDOW, build_family  # noqa: E402

ATOL = 1e-4  # float32: packed and naive differ only by summation order (observed <= 1e-5)
CATS = ("Comedy", "Drama", "Action", "Sci-Fi", "Film-Noir", "Children's", "Romance")
CONTEXTS = ("the user watched comedy drama and then liked romance",
            "liked action movie film thriller sci-fi adventure",
            "rated documentary history war film-noir crime mystery recently")

#: What each family needs from the engine (transformers 5.24), checked in test_family_needs.
NEEDS = {
    "qwen3": ("sdpa", {"full_attention": None, "sliding_attention": WINDOW}),
    "qwen2": ("sdpa", {"full_attention": None, "sliding_attention": WINDOW}),
    "llama": ("sdpa", {None: None}),
    "mistral": ("sdpa", {None: WINDOW}),
    "gemma2": ("eager", {"sliding_attention": WINDOW, "full_attention": None}),
    "gemma3": ("sdpa", {"sliding_attention": WINDOW, "full_attention": None}),
    "phi3": ("sdpa", {None: WINDOW}),
}


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tok):
    model = build_family(request.param, tok)
    return request.param, model, HFBackend.from_model(model, tok, engine="naive")


def builder(tok) -> PromptBuilder:
    return PromptBuilder(PromptTemplates(), tok)


def raw_requests(tok):
    b = builder(tok)
    ids = tuple(tok(w, add_special_tokens=False)["input_ids"][0] for w in (" Yes", " No", "Yes"))
    suffixes = tuple(b.probe_suffix(c) for c in CATS) + ("", " the user would enjoy action and then also sci-fi")
    return [ScoreRequest(b.probe_prefix(c), suffixes, ids) for c in CONTEXTS]


def assert_same(a, b, atol=ATOL):
    for ra, rb in zip(a, b, strict=True):
        np.testing.assert_allclose(ra.next_logits, rb.next_logits, rtol=0, atol=atol)
        np.testing.assert_allclose(ra.suffix_logprob, rb.suffix_logprob, rtol=0, atol=atol)
        np.testing.assert_array_equal(ra.suffix_tokens, rb.suffix_tokens)


def max_diff(a, b) -> float:
    return max(max(np.abs(ra.next_logits - rb.next_logits).max(), np.abs(ra.suffix_logprob - rb.suffix_logprob).max())
               for ra, rb in zip(a, b))


# ---------------------------------------------------------------- the backend API, every family


def test_family_needs(family, tok):
    name, model, naive = family
    impl, windows = NEEDS[name]
    assert model.config._attn_implementation == impl  # Gemma 2: eager (sdpa cannot soft-cap attention logits)
    assert attention_windows(model.config) == windows
    if name == "gemma2":  # both soft-caps bend this random model's values, so packed = naive covers them
        model = build_family(name, tok)  # a copy to alter
        ids = torch.tensor([tok(CONTEXTS[0], add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            raw = model.lm_head(model.model(input_ids=ids).last_hidden_state)
            capped = model(input_ids=ids).logits
            assert (raw - capped).abs().max() > 0.1  # final cap 3: tanh bends these logits
            for layer in model.model.layers:
                layer.self_attn.attn_logit_softcapping = None
            uncapped = model(input_ids=ids).logits
        assert (capped - uncapped).abs().max() > 1e-2


def test_naive_equals_the_models_own_forward(family, tok):
    """The reference itself: each prompt's suffix log-likelihood and next-token logits from one plain forward over
    the whole text (the model's own mask, sliding windows and soft-capping)."""
    name, model, naive = family
    req = raw_requests(tok)[0]
    got = naive.score([req])[0]
    n_prefix = len(tok(req.prefix, add_special_tokens=False)["input_ids"])
    for k, s in enumerate(req.suffixes):
        ids = tok(req.prefix + s, add_special_tokens=False)["input_ids"]
        assert len(ids) > WINDOW
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        lp = torch.log_softmax(logits, -1)
        expected = sum(float(lp[t - 1, ids[t]]) for t in range(n_prefix, len(ids)))
        assert got.suffix_logprob[k] == pytest.approx(expected, abs=ATOL)
        np.testing.assert_allclose(got.next_logits[k], logits[-1, list(req.next_token_ids)].numpy(), atol=ATOL)


@pytest.mark.parametrize("chunk_size,batch_rows", [(4096, 1), (96, 2), (24, 2)],
                         ids=["one-row", "row-per-user", "cached-prefix"])
def test_packed_equals_naive(family, tok, chunk_size, batch_rows):
    name, model, naive = family
    packed = HFBackend.from_model(model, tok, engine="packed", chunk_size=chunk_size, batch_rows=batch_rows)
    assert packed.engine == "packed" and "engine_fallback" not in packed.describe()
    reqs = raw_requests(tok)
    assert_same(packed.score(reqs), naive.score(reqs))


SCORER_CASES = {
    "yesno": ("yesno", ScorerOptions()),
    "name": ("name", ScorerOptions()),
    "choice": ("choice", ScorerOptions()),
}


@pytest.mark.parametrize("case", list(SCORER_CASES))
def test_scorers_packed_equals_naive(family, tok, case):
    """yesno, name and choice through the packed engine (rows, and the cached prefix with a 24-token chunk)."""
    name, model, naive = family
    method, options = SCORER_CASES[case]
    ref = make_scorer(method, CATS, builder(tok), options).score_batch(naive, CONTEXTS)
    for chunk_size in (None, 24):
        packed = HFBackend.from_model(model, tok, engine="packed", chunk_size=chunk_size)
        got = make_scorer(method, CATS, builder(tok), options).score_batch(packed, CONTEXTS)
        np.testing.assert_allclose(got.scores, ref.scores, atol=ATOL, rtol=0)
        np.testing.assert_allclose(got.probs, ref.probs, atol=ATOL, rtol=0)
    assert np.abs(np.diff(ref.probs, axis=1)).max() > 1e-3  # the scores are not flat: equality means something


def test_window_masks_follow_the_naive_positions():
    """Hand-worked definition: in a packed row, query i sees key j iff both belong to one user, j is in the context or
    in i's own suffix, and 0 <= pos_i - pos_j < W, where pos is the position in that user's ``prefix + suffix``; keys
    of a cached prefix sit at positions 0 .. P-1. A window mask is handed out per layer type when types differ."""
    from spectra_probe.backends.base import PromptGroup
    from spectra_probe.backends.packed import attention_masks, layout, layout_tails, stack_layouts

    groups = [PromptGroup([1] * 6, [[2] * 3, [3] * 2]), PromptGroup([4] * 5, [[5] * 4])]
    ids, pos, grp, seg = stack_layouts([layout(groups)], 0)
    windows = {"sliding_attention": 4, "full_attention": None}
    masks = attention_masks(grp, seg, pos, 0, torch.float32, windows)
    assert set(masks) == set(windows)
    p, g, s = pos[0].numpy(), grp[0].numpy(), seg[0].numpy()
    for name, w in windows.items():
        allowed = masks[name][0, 0].numpy() == 0
        for i in range(len(p)):
            for j in range(len(p)):
                same = g[i] == g[j] and (s[j] == 0 or s[j] == s[i]) and j <= i
                assert allowed[i, j] == (same and (w is None or p[i] - p[j] < w)), (name, i, j)
    # the cached-prefix layout: P = 6 context keys first, then the chunk's own keys
    ids, pos, grp, seg = stack_layouts([layout_tails(groups[0], [0, 1], 6)], 0)
    mask = attention_masks(grp, seg, pos, 6, torch.float32, {None: 4})
    allowed, p, s = mask[0, 0].numpy() == 0, pos[0].numpy(), seg[0].numpy()
    key_pos, key_seg = np.concatenate([np.arange(6), p]), np.concatenate([np.zeros(6, int), s])
    for i in range(len(p)):
        for j in range(len(key_pos)):
            own = key_seg[j] == 0 or (key_seg[j] == s[i] and j - 6 <= i)
            assert allowed[i, j] == (own and 0 <= p[i] - key_pos[j] < 4), (i, j)


# ---------------------------------------------------------------- detection: no silent wrong numbers


def forget_windows(monkeypatch):
    """A layout that ignores sliding windows (what the engine did before windows were laid out)."""
    import spectra_probe.backends.hf as hf
    import spectra_probe.backends.packed as packed

    for mod in (hf, packed):
        monkeypatch.setattr(mod, "attention_windows", lambda config: {None: None})


@pytest.mark.parametrize("name,dtype", [("gemma2", "float32"), ("mistral", "float32"), ("gemma2", "bfloat16")])
def test_a_layout_that_would_be_wrong_falls_back_to_naive(tok, monkeypatch, caplog, name, dtype):
    model = build_family(name, tok).to(getattr(torch, dtype))
    naive = HFBackend.from_model(model, tok, engine="naive")
    reqs = raw_requests(tok)
    forget_windows(monkeypatch)
    wrong = HFBackend.from_model(model, tok, engine="packed")
    wrong.engine = "packed"  # force the windowless layout past the check: the numbers it would give
    assert max_diff(wrong.score(reqs), naive.score(reqs)) > 1e-2
    with caplog.at_level(logging.WARNING, logger="spectra_probe.backends.hf"):
        backend = HFBackend.from_model(model, tok, engine="packed")
    assert backend.engine == "naive"
    reason = backend.describe()["engine_fallback"]
    assert type(model).__name__ in reason and "differ from the naive engine" in reason
    assert any("falls back to the naive engine" in r.getMessage() for r in caplog.records)
    assert_same(backend.score(reqs), naive.score(reqs), atol=1e-9)


def test_half_precision_rounding_is_not_mistaken_for_a_wrong_layout(tok):
    for name in FAMILIES:
        for dtype in (torch.bfloat16, torch.float16):
            backend = HFBackend.from_model(build_family(name, tok).to(dtype), tok, engine="packed")
            assert backend.engine == "packed", (name, dtype, backend.describe().get("engine_fallback"))


def test_a_mask_blind_attention_is_detected(tok, monkeypatch):
    """An attention kernel that ignores the 4-D mask (causal only, as flash kernels without mask support) under the
    name ``sdpa``: the naive engine is still right (right padding), the packed layout would not be."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    def mask_blind(module, query, key, value, attention_mask, **kwargs):
        return sdpa_attention_forward(module, query, key, value, None, **{**kwargs, "is_causal": True})

    model = build_family("llama", tok)
    reference = HFBackend.from_model(model, tok, engine="naive").score(raw_requests(tok))
    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS._global_mapping, "sdpa", mask_blind)
    backend = HFBackend.from_model(model, tok, engine="packed")
    assert backend.engine == "naive" and "LlamaForCausalLM" in backend.describe()["engine_fallback"]
    assert_same(backend.score(raw_requests(tok)), reference)


def test_attention_without_4d_masks_is_refused_naming_the_model(tok):
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    AttentionInterface.register("spectra_test_causal_only", sdpa_attention_forward)
    model = build_family("phi3", tok)
    model.config._attn_implementation = "spectra_test_causal_only"
    with pytest.raises(SpectraInputError, match=r"Phi3ForCausalLM model uses 'spectra_test_causal_only'"):
        HFBackend.from_model(model, tok, engine="packed")
    assert HFBackend.from_model(model, tok, engine="naive").engine == "naive"


def test_layer_kinds_the_layout_cannot_serve_fall_back(tok):
    bidirectional = build_family("gemma3", tok, use_bidirectional_attention=True)
    backend = HFBackend.from_model(bidirectional, tok, engine="packed")
    assert backend.engine == "naive"
    assert backend.describe()["engine_fallback"] == \
        "Gemma3ForCausalLM has bidirectional attention (use_bidirectional_attention=True)"
    chunked = transformers.Llama4TextConfig(layer_types=["chunked_attention", "full_attention"],
                                            num_hidden_layers=2)
    assert "chunked_attention" in packed_unsupported(chunked)
    assert packed_unsupported(build_family("gemma2", tok).config) is None


# ---------------------------------------------------------------- spectra probe (CLI, in process)


@pytest.fixture(scope="module")
def probe_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    pd.DataFrame({"user_id": ["a", "b", "c"], "context": list(CONTEXTS)}).to_csv(root / "contexts.csv", index=False)
    (root / "cats.txt").write_text("\n".join(CATS) + "\n")
    return root


def probe(root, model_dir, out, *extra) -> int:
    return main(["probe", "--model", str(model_dir), "--contexts", str(root / "contexts.csv"),
                 "--categories", str(root / "cats.txt"), "--out", str(out), "--no-progress", *extra])


def manifest_of(out):
    return json.loads(out.with_name(out.name.replace(".csv", ".manifest.json")).read_text())


@pytest.mark.parametrize("name", ["gemma2", "llama"])
def test_spectra_probe_runs_the_family(tok, probe_inputs, tmp_path, name):
    model_dir = save_tiny(build_family(name, tok), tok, tmp_path / name)
    for method in ("yesno", "choice"):
        tables = {}
        for engine in ("packed", "naive"):
            out = tmp_path / f"{method}-{engine}.csv"
            assert probe(probe_inputs, model_dir, out, "--method", method, "--engine", engine) == 0
            tables[engine] = read_distribution_table(out).probs
            backend = manifest_of(out)["backend"]
            assert backend["engine"] == engine and "engine_fallback" not in backend
            assert backend["attn_implementation"] == NEEDS[name][0]
        np.testing.assert_allclose(tables["packed"], tables["naive"], atol=ATOL, rtol=0)
    # direct generation (greedy decoding through the model's own generate) loads and runs too
    assert probe(probe_inputs, model_dir, tmp_path / "dg.csv", "--method", "dg", "--k", "3",
                 "--max-new-tokens", "4") == 0


def test_an_attention_the_model_cannot_run_is_a_located_error(tok, tmp_path):
    model_dir = save_tiny(build_family("gemma2", tok), tok, tmp_path / "gemma2")
    with pytest.raises(SpectraInputError, match=r"gemma2'.*Gemma2ForCausalLM does not support.*scaled_dot_product"):
        HFBackend(model_dir, attn_implementation="sdpa")
    backend = HFBackend(model_dir)  # transformers' choice: eager
    assert backend.describe()["attn_implementation"] == "eager" and backend.engine == "packed"


def test_spectra_probe_records_the_fallback(tok, probe_inputs, tmp_path, monkeypatch):
    model_dir = save_tiny(build_family("gemma2", tok), tok, tmp_path / "gemma2")
    reference = tmp_path / "naive.csv"
    assert probe(probe_inputs, model_dir, reference, "--method", "yesno", "--engine", "naive") == 0
    forget_windows(monkeypatch)
    out = tmp_path / "fallback.csv"
    assert probe(probe_inputs, model_dir, out, "--method", "yesno") == 0
    backend = manifest_of(out)["backend"]
    assert backend["engine"] == "naive" and "Gemma2ForCausalLM" in backend["engine_fallback"]
    np.testing.assert_allclose(read_distribution_table(out).probs, read_distribution_table(reference).probs,
                               atol=1e-12, rtol=0)


def test_gemma3_multimodal_checkpoint_class(tok):
    """Gemma 3 checkpoints of 4B and up load (AutoModelForCausalLM) as Gemma3ForConditionalGeneration: its text
    decoder is found through ``get_decoder`` and packed = naive there too (text-only prompts)."""
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.1,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
                **FAMILIES["gemma3"][2])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)
    torch.manual_seed(0)
    model = transformers.Gemma3ForConditionalGeneration(transformers.Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, tie_word_embeddings=False)).float().eval()
    reqs = raw_requests(tok)
    naive = HFBackend.from_model(model, tok, engine="naive").score(reqs)
    for chunk_size in (None, 24):
        packed = HFBackend.from_model(model, tok, engine="packed", chunk_size=chunk_size)
        assert packed.engine == "packed"
        assert_same(packed.score(reqs), naive)
