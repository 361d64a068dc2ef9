"""Transformers backend: the packed shared-prefix engine equals the naive reference (fp32, 1e-5), both equal an
independent computation from the model's own forward/loss, LoRA adapters (merged and not), generate, errors."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spectra_eval.validation import SpectraInputError  # noqa: E402
from spectra_probe.backends import BACKENDS, backend_from_config, make_backend  # noqa: E402
from spectra_probe.backends.base import ScoreRequest  # noqa: E402
from spectra_probe.backends.hf import HFBackend  # noqa: E402
from spectra_probe.tiny import build_tiny_qwen3, sample_corpus, save_tiny, train_tokenizer  # noqa: E402

ATOL = 1e-5

PREFIXES = [
    "the user watched drama and comedy then thriller. Would the user enjoy",
    "recently liked pizza sushi burgers and also mexican. Next item:",
    "history: action adventure sci-fi fantasy war crime mystery horror romance western musical "
    "documentary animation children film-noir. question: category preference?",
]
SUFFIXES = [" drama", " film-noir", "", " yes", " no maybe answer question category preference next item would",
            " the user would enjoy action adventure and then also sci-fi fantasy restaurant bar cafe", "?", " x"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tok = train_tokenizer(sample_corpus(300), vocab_size=400)
    model = build_tiny_qwen3(tok, seed=1)
    path = save_tiny(model, tok, tmp_path_factory.mktemp("tiny") / "model")
    return tok, model, path


@pytest.fixture(scope="module")
def naive(tiny):
    return HFBackend(tiny[2], engine="naive")


def requests(tok, k_repeat=1):
    ids = tuple(tok(w, add_special_tokens=False)["input_ids"][0] for w in (" yes", " no", "y"))
    return [ScoreRequest(p, tuple(SUFFIXES) * k_repeat, ids) for p in PREFIXES]


def assert_same(a, b, atol=ATOL):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        np.testing.assert_allclose(ra.next_logits, rb.next_logits, rtol=0, atol=atol)
        np.testing.assert_allclose(ra.suffix_logprob, rb.suffix_logprob, rtol=0, atol=atol)
        np.testing.assert_array_equal(ra.suffix_tokens, rb.suffix_tokens)
        np.testing.assert_array_equal(ra.fallback, rb.fallback)


def total_loglik(model, tok, text, ids):
    """Independent: log p(text) from the model's own mean cross-entropy loss, and the last position's logits."""
    x = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        out = model(input_ids=x, labels=x)
    return -float(out.loss) * (x.shape[1] - 1), out.logits[0, -1, list(ids)].double().numpy()


def test_naive_matches_model_loss(tiny, naive):
    tok, model, _ = tiny
    reqs = requests(tok)
    for req, res in zip(reqs, naive.score(reqs)):
        lp_prefix, _ = total_loglik(model, tok, req.prefix, req.next_token_ids)
        for k, s in enumerate(req.suffixes):
            lp_full, logits = total_loglik(model, tok, req.prefix + s, req.next_token_ids)
            assert res.suffix_logprob[k] == pytest.approx(lp_full - lp_prefix, abs=1e-4)
            np.testing.assert_allclose(res.next_logits[k], logits, atol=ATOL)
            n = len(tok(req.prefix + s)["input_ids"]) - len(tok(req.prefix)["input_ids"])
            assert res.suffix_tokens[k] == n
    assert res.next_logits.dtype == np.float64 and res.suffix_tokens.dtype.kind == "i"
    assert res.suffix_logprob[SUFFIXES.index("")] == 0 and res.suffix_tokens[SUFFIXES.index("")] == 0


@pytest.mark.parametrize(
    "chunk_size,batch_rows",
    [(4096, 1),  # all users packed into one row (block-diagonal mask)
     (96, 2),  # one user per row, rows batched with padding
     (24, 3)],  # prefix cached, suffixes in several chunks, chunks batched on an expanded cache
)
def test_packed_equals_naive(tiny, naive, chunk_size, batch_rows):
    tok, model, path = tiny
    packed = HFBackend.from_model(model, tok, engine="packed", chunk_size=chunk_size, batch_rows=batch_rows)
    reqs = requests(tok)
    assert_same(packed.score(reqs), naive.score(reqs))


def test_many_suffixes_beyond_chunk(tiny, naive):
    """K far larger than one chunk (the K = 1,311 path): scores equal naive, order kept."""
    tok, model, _ = tiny
    words = sample_corpus(40, seed=3)
    suffixes = tuple(" " + " ".join(w.split()[: 1 + i % 4]) for i, w in enumerate(words))
    reqs = [ScoreRequest(PREFIXES[0], suffixes, (3, 4)), ScoreRequest(PREFIXES[1], suffixes[:5], (3, 4))]
    packed = HFBackend.from_model(model, tok, engine="packed", chunk_size=40)
    assert_same(packed.score(reqs), naive.score(reqs))


def test_requests_without_next_ids_and_single_suffix(tiny, naive):
    tok, model, _ = tiny
    packed = HFBackend.from_model(model, tok, engine="packed")
    reqs = [ScoreRequest(PREFIXES[0], ("",)), ScoreRequest(PREFIXES[2], (" drama",), ())]
    out = packed.score(reqs)
    assert out[0].next_logits.shape == (1, 0)
    assert_same(out, naive.score(reqs))
    assert packed.score([]) == []


@pytest.fixture(scope="module")
def adapter(tiny, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    tok, _, _ = tiny
    base = build_tiny_qwen3(tok, seed=1)  # same weights as the saved model, separate object
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.5)
    path = tmp_path_factory.mktemp("adapter") / "lora"
    peft_model.save_pretrained(path, safe_serialization=True)
    return path


def test_lora_adapter_merged_and_unmerged(tiny, naive, adapter):
    tok, _, path = tiny
    reqs = requests(tok)
    ref = HFBackend(path, adapter_dir=adapter, engine="naive").score(reqs)
    unmerged = HFBackend(path, adapter_dir=adapter, engine="packed", chunk_size=40)
    merged = HFBackend(path, adapter_dir=adapter, merge_adapter=True, engine="packed")
    assert_same(unmerged.score(reqs), ref)
    assert_same(merged.score(reqs), ref, atol=1e-4)  # merging re-associates the LoRA matmuls
    # the adapter really changes the model (otherwise the test above proves nothing)
    base = naive.score(reqs)
    assert np.abs(base[0].next_logits - ref[0].next_logits).max() > 1e-2
    info = merged.describe()
    assert info["adapter_sha256"] == hashlib.sha256((adapter / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert info["adapter_merged"] is True and info["engine"] == "packed" and info["dtype"] == "float32"
    json.dumps(info)


def test_bfloat16_close_to_float32(tiny, naive):
    tok, _, path = tiny
    reqs = requests(tok)
    bf = HFBackend(path, dtype="bfloat16", engine="packed").score(reqs)
    for a, b in zip(bf, naive.score(reqs)):
        np.testing.assert_allclose(a.next_logits, b.next_logits, atol=0.15)


def test_generate_is_greedy(tiny):
    tok, model, _ = tiny
    backend = HFBackend.from_model(model, tok, naive_batch_size=2)
    prompts = ["the user watched", "pizza", "recently liked pizza sushi burgers and also"]
    out = backend.generate(prompts, max_new_tokens=6)
    assert len(out) == 3 and all(isinstance(s, str) for s in out)
    # independent greedy loop, one prompt at a time (no padding), stopping at eos
    for prompt, text in zip(prompts, out):
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        new = []
        for _ in range(6):
            with torch.no_grad():
                nxt = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            new.append(nxt)
            if nxt == tok.eos_token_id:
                break
        assert text == tok.decode(new, skip_special_tokens=True)


def test_bad_inputs(tiny, tmp_path):
    tok, model, path = tiny
    with pytest.raises(SpectraInputError, match="does not exist"):
        HFBackend(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpectraInputError, match="empty.*config.json"):
        HFBackend(tmp_path / "empty")
    nowt = tmp_path / "noweights"
    nowt.mkdir()
    (nowt / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(SpectraInputError, match="noweights.*safetensors"):
        HFBackend(nowt)
    with pytest.raises(SpectraInputError, match="adapter_config.json"):
        HFBackend(path, adapter_dir=tmp_path / "empty")
    with pytest.raises(SpectraInputError, match="engine"):
        HFBackend(path, engine="fast")
    with pytest.raises(SpectraInputError, match="dtype"):
        HFBackend(path, dtype="int8")
    backend = HFBackend.from_model(model, tok)
    with pytest.raises(SpectraInputError, match="vocabulary"):
        backend.score([ScoreRequest("the user", (" x",), (10**6,))])
    with pytest.raises(SpectraInputError, match="no context token"):
        backend.score([ScoreRequest("", (" x",), ())])
    with pytest.raises(SpectraInputError, match="unknown backend"):
        make_backend("onnx")


def test_backend_registry_and_from_config(tiny, tmp_path):
    from spectra_probe.run import ProbeConfig

    assert BACKENDS.names() == ("transformers", "vllm") and BACKENDS.canonical("HF") == "transformers"
    backend = make_backend("hf", model_dir=tiny[2], engine="naive")
    assert isinstance(backend, HFBackend) and backend.describe()["model"] == str(tiny[2])
    config = ProbeConfig(model=str(tiny[2]), contexts="c.csv", categories="c.txt", method="name",
                         out=str(tmp_path / "o.csv"), backend="hf", engine="naive", dtype="bfloat16")
    assert config.backend == "transformers"
    built = backend_from_config(config)
    assert isinstance(built, HFBackend) and (built.engine, built.describe()["dtype"]) == ("naive", "bfloat16")
    with pytest.raises(SpectraInputError, match="--merge-adapter and --engine naive apply to the transformers"):
        backend_from_config(dataclasses.replace(config, backend="vllm"))
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(SpectraInputError, match=r"pip install .*\[vllm\]"):
            make_backend("vllm", model_dir=tiny[2])


# ----------------------------------------------------------------------------- vLLM backend glue
# vLLM cannot run here (no GPU, not installed).  To test the backend's own logic (token prompts, which
# SamplingParams it builds, reading logprob_token_ids / top-N / prompt_logprobs outputs), a stand-in module
# with vLLM's documented offline API (LLM.generate, SamplingParams, RequestOutput.outputs[0].logprobs as
# dicts of Logprob, prompt_logprobs with None first, LoRARequest) computes those outputs with the tiny model.
class _Logprob:
    def __init__(self, logprob):
        self.logprob = float(logprob)


def _fake_vllm(with_token_ids: bool):
    import types

    from transformers import AutoModelForCausalLM

    fields = ("temperature", "max_tokens", "logprobs", "prompt_logprobs", "skip_special_tokens") + \
        (("logprob_token_ids",) if with_token_ids else ())

    class SamplingParams:
        __struct_fields__ = fields

        def __init__(self, **kw):
            unknown = set(kw) - set(fields)
            if unknown:
                raise TypeError(f"unexpected {unknown}")
            self.__dict__.update({f: None for f in fields})
            self.__dict__.update(kw)
            self.skip_reading_prefix_cache = self.prompt_logprobs is not None

    class LLM:
        calls: list = []

        def __init__(self, model, **kw):
            self.kw = kw
            self.model = AutoModelForCausalLM.from_pretrained(model).eval()

        def generate(self, prompts, params, lora_request=None, use_tqdm=True):
            params = params if isinstance(params, list) else [params] * len(prompts)
            outs = []
            for prompt, p in zip(prompts, params):
                LLM.calls.append(p)
                ids = list(prompt["prompt_token_ids"])
                with torch.no_grad():
                    lp = torch.log_softmax(self.model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
                last = lp[-1]
                sampled = int(last.argmax())
                if getattr(p, "logprob_token_ids", None):
                    keep = list(p.logprob_token_ids) + [sampled]
                elif p.logprobs == -1:
                    keep = list(range(last.shape[0]))
                else:
                    keep = last.topk(p.logprobs).indices.tolist() + [sampled] if p.logprobs else [sampled]
                sample = types.SimpleNamespace(logprobs=[{t: _Logprob(last[t]) for t in keep}], text="")
                plp = None
                if p.prompt_logprobs is not None:
                    plp = [None] + [{ids[j]: _Logprob(lp[j - 1, ids[j]])} for j in range(1, len(ids))]
                outs.append(types.SimpleNamespace(outputs=[sample], prompt_token_ids=ids, prompt_logprobs=plp))
            return outs

    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams, mod.__version__ = LLM, SamplingParams, "stand-in"
    lora = types.ModuleType("vllm.lora")
    req = types.ModuleType("vllm.lora.request")
    req.LoRARequest = lambda name, idx, path: (name, idx, path)
    return {"vllm": mod, "vllm.lora": lora, "vllm.lora.request": req}


@pytest.mark.parametrize("with_token_ids", [True, False])
def test_vllm_backend_glue(tiny, naive, monkeypatch, with_token_ids):
    import sys

    from spectra_probe.backends.vllm import VLLMBackend

    for name, mod in _fake_vllm(with_token_ids).items():
        monkeypatch.setitem(sys.modules, name, mod)
    tok, _, path = tiny
    backend = VLLMBackend(path, top_logprobs=5)
    assert backend.llm.kw["enable_prefix_caching"] is True
    reqs = requests(tok)[:1]
    ref = naive.score(reqs)
    got = backend.score(reqs)
    for a, b in zip(got, ref):
        # log-probabilities differ from logits by one constant per row: differences are exact
        if with_token_ids:
            np.testing.assert_allclose(np.diff(a.next_logits, axis=1), np.diff(b.next_logits, axis=1), atol=1e-5)
        np.testing.assert_array_equal(a.suffix_tokens, b.suffix_tokens)
        assert np.isnan(a.suffix_logprob[b.suffix_tokens > 0]).all()  # hot path: no prompt_logprobs
    hot = [p for p in sys.modules["vllm"].LLM.calls]
    assert all(p.prompt_logprobs is None and p.max_tokens == 1 for p in hot)
    if not with_token_ids:
        assert backend.describe()["approximate_next_logits"] > 0  # top-5 misses some ids: counted, not hidden
    # likelihood-only requests (no next ids) use prompt_logprobs and equal the transformers scores
    lik = [ScoreRequest(r.prefix, r.suffixes, ()) for r in reqs]
    for a, b in zip(backend.score(lik), naive.score(lik)):
        np.testing.assert_allclose(a.suffix_logprob, b.suffix_logprob, atol=1e-4)
    assert any(p.prompt_logprobs == 0 and p.skip_reading_prefix_cache for p in sys.modules["vllm"].LLM.calls)
    # full-vocabulary fallback is exact
    exact = VLLMBackend(path, full_vocab_logprobs=True).score(reqs[:1])[0]
    np.testing.assert_allclose(np.diff(exact.next_logits, axis=1), np.diff(ref[0].next_logits, axis=1), atol=1e-5)


def test_cached_prefix_path_uses_the_current_cache_argument(tiny, naive):
    """The packed engine's cached-prefix path passes the KV cache under the name this transformers takes, so
    no deprecation warning is raised (transformers 5.x: ``cache``; older: ``past_key_values``)."""
    import inspect
    import warnings

    tok, model, _ = tiny
    packed = HFBackend.from_model(model, tok, engine="packed", chunk_size=24)  # every group exceeds a chunk
    expected = "cache" if "cache" in inspect.signature(model.model.forward).parameters else "past_key_values"
    assert packed._cache_arg == expected
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = packed.score(requests(tok))
    assert not [w for w in caught if "past_key_values" in str(w.message) or "cache_params" in str(w.message)]
    assert_same(out, naive.score(requests(tok)))


def test_cache_argument_follows_the_forward_signature():
    from spectra_probe.backends.hf import cache_argument

    class Old:
        def forward(self, input_ids=None, past_key_values=None, use_cache=None):
            pass

    class New:
        def forward(self, input_ids=None, cache=None, use_cache=None, **kwargs):
            pass

    assert cache_argument(Old()) == "past_key_values" and cache_argument(New()) == "cache"
