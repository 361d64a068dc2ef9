"""Transformers backend: the packed shared-prefix engine equals the naive reference (fp32, 1e-5), both equal an
independent computation from the model's own forward/loss, LoRA adapters (merged and not), generate, errors."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spectra_eval.validation import SpectraInputError  # noqa: E402
from spectra_probe.backends import BACKENDS, backend_from_config, make_backend  # noqa: E402
from spectra_probe.backends.base import ScoreRequest  # noqa: E402
from spectra_probe.backends.hf import HFBackend  # noqa: E402
from spectra_probe.training.tiny import build_tiny_qwen3, sample_corpus, save_tiny, train_tokenizer  # noqa: E402

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
    with pytest.raises(SpectraInputError, match=r"next_token_ids \[-1\] outside the model's vocabulary \(0\.\."):
        backend.score([ScoreRequest("the user", (" x",), (3, -1))])
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
                         out=str(tmp_path / "o.csv"), backend="hf", backend_options={"engine": "naive"},
                         dtype="bfloat16")
    assert config.backend == "transformers"
    built = backend_from_config(config)
    assert isinstance(built, HFBackend) and (built.engine, built.describe()["dtype"]) == ("naive", "bfloat16")
    # vLLM shares prefixes itself: --engine naive is refused when the config is built, before any backend
    with pytest.raises(SpectraInputError, match="--engine applies to the transformers backend only"):
        dataclasses.replace(config, backend="vllm")
    with pytest.raises(SpectraInputError, match="--engine applies to the transformers backend only"):
        ProbeConfig(model=str(tiny[2]), contexts="c.csv", categories="c.txt", method="name",
                    out=str(tmp_path / "o.csv"), backend="vllm", backend_options={"engine": "naive"})
    packed = dataclasses.replace(config, backend_options={"engine": "packed"})
    assert dataclasses.replace(packed, backend="vllm").backend_options == {
        "max_model_len": None, "gpu_memory_utilization": None, "max_lora_rank": None, "engine_args": (),
        "vllm_fallback": "error"}
    assert dataclasses.replace(packed, backend="vllm", merge_adapter=True).merge_adapter  # vLLM serves it merged


# ----------------------------------------------------------------------------- vLLM backend glue
# vLLM runs for real in tests/vllm (vLLM's CPU build, `make test-vllm`). What a CPU build cannot show stays here:
# a vLLM without logprob_token_ids (the fallbacks) and the engine options as a GPU platform receives them. A
# strict stand-in module computes vLLM's outputs with the tiny model and refuses what vLLM refuses. What it
# checks was read in vLLM's source (vllm/sampling_params.py: SamplingParams fields, _validate_logprobs with
# MAX_LOGPROB_TOKEN_IDS = 128, logprobs == len(logprob_token_ids), ids inside the vocabulary, logprobs and
# prompt_logprobs <= max_logprobs, prompt_logprobs -> skip_reading_prefix_cache; vllm/entrypoints/llm.py:
# LLM(model, *, keyword arguments..., **EngineArgs fields), generate(prompts, sampling_params, *, use_tqdm,
# lora_request); vllm/engine/arg_utils.py: the EngineArgs names below).
VLLM_LLM_KWARGS = frozenset({  # LLM.__init__ keywords and EngineArgs fields this backend may pass
    "tokenizer", "tokenizer_mode", "skip_tokenizer_init", "trust_remote_code", "tensor_parallel_size", "dtype",
    "quantization", "revision", "seed", "gpu_memory_utilization", "swap_space", "cpu_offload_gb", "enforce_eager",
    "hf_overrides", "compilation_config", "max_model_len", "enable_prefix_caching", "max_logprobs", "max_num_seqs",
    "max_num_batched_tokens", "enable_lora", "max_lora_rank", "max_loras", "block_size", "kv_cache_dtype",
    "pipeline_parallel_size", "disable_log_stats", "enable_chunked_prefill", "distributed_executor_backend",
})
VLLM_SAMPLING_FIELDS = ("n", "temperature", "top_p", "top_k", "seed", "stop", "max_tokens", "logprobs",
                        "prompt_logprobs", "detokenize", "skip_special_tokens", "logprob_token_ids")
MAX_LOGPROB_TOKEN_IDS = 128


class _Logprob:
    def __init__(self, logprob):
        self.logprob = float(logprob)


def _fake_vllm(with_token_ids: bool = True):
    import json
    import types

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    fields = VLLM_SAMPLING_FIELDS if with_token_ids else VLLM_SAMPLING_FIELDS[:-1]

    class SamplingParams:
        __struct_fields__ = fields

        def __init__(self, **kw):
            unknown = set(kw) - set(fields)
            if unknown:
                raise TypeError(f"Unexpected keyword argument {sorted(unknown)[0]!r}")
            self.__dict__.update({f: None for f in fields} | {"detokenize": True, "skip_special_tokens": True})
            self.__dict__.update(kw)
            if self.logprobs is not None and self.logprobs != -1 and self.logprobs < 0:
                raise ValueError(f"logprobs must be non-negative or -1, got {self.logprobs}.")
            self.skip_reading_prefix_cache = self.prompt_logprobs is not None

    class LoRARequest:
        def __init__(self, lora_name, lora_int_id, lora_path):
            if not isinstance(lora_int_id, int) or lora_int_id < 1:
                raise ValueError(f"id must be > 0, got {lora_int_id}")
            self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path

    class LLM:
        calls: list = []
        instances: list = []

        def __init__(self, model, **kw):
            unknown = set(kw) - VLLM_LLM_KWARGS
            if unknown:  # EngineArgs(**kwargs) is a dataclass: an unknown name is a TypeError
                raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument '{sorted(unknown)[0]}'")
            self.kw = kw
            self.model = AutoModelForCausalLM.from_pretrained(model).eval()
            self.vocab = self.model.config.vocab_size
            self.max_logprobs = kw.get("max_logprobs", 20)
            self.llm_engine = types.SimpleNamespace()
            self._adapters = {}
            LLM.instances.append(self)

        def _check(self, p):
            """vLLM's SamplingParams._validate_logprobs against this engine's model config."""
            cap = self.vocab if self.max_logprobs == -1 else self.max_logprobs
            if p.logprobs and (self.vocab if p.logprobs == -1 else p.logprobs) > cap:
                raise ValueError(f"Requested sample logprobs of {p.logprobs}, which is greater than max allowed: {cap}")
            ids = getattr(p, "logprob_token_ids", None)
            if ids is not None:
                if len(ids) > MAX_LOGPROB_TOKEN_IDS:
                    raise ValueError(f"Requested logprob_token_ids of length {len(ids)}, which is greater than "
                                     f"max allowed: {MAX_LOGPROB_TOKEN_IDS}")
                if any(not 0 <= t < self.vocab for t in ids):
                    raise ValueError("logprob_token_ids contain out-of-vocab token ids")
                if p.logprobs is not None and p.logprobs != len(ids):
                    raise ValueError("logprobs must equal len(logprob_token_ids)")
            if p.prompt_logprobs and p.prompt_logprobs > cap:
                raise ValueError(f"Requested prompt logprobs of {p.prompt_logprobs}, greater than max allowed: {cap}")

        def _model_for(self, lora_request):
            if lora_request is None:
                return self.model
            if not self.kw.get("enable_lora"):
                raise ValueError(f"LoRA is not enabled (got lora_request {lora_request.lora_name!r})")
            rank = json.loads((Path(lora_request.lora_path) / "adapter_config.json").read_text())["r"]
            if rank > self.kw.get("max_lora_rank", 16):
                raise ValueError(f"LoRA rank {rank} is greater than max_lora_rank {self.kw.get('max_lora_rank', 16)}")
            if lora_request.lora_int_id not in self._adapters:
                base = AutoModelForCausalLM.from_pretrained(self.model.config._name_or_path).eval()
                self._adapters[lora_request.lora_int_id] = PeftModel.from_pretrained(base, lora_request.lora_path).eval()
            return self._adapters[lora_request.lora_int_id]

        def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None):
            params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
            if len(params) != len(prompts):
                raise ValueError("The lengths of prompts and sampling_params must be the same.")
            model = self._model_for(lora_request)
            outs = []
            for prompt, p in zip(prompts, params):
                self._check(p)
                LLM.calls.append((p, lora_request))
                ids = list(prompt["prompt_token_ids"])
                if any(not 0 <= t < self.vocab for t in ids):
                    raise ValueError("Token id out of vocabulary in prompt_token_ids")
                with torch.no_grad():
                    lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
                new, last = [], lp[-1]
                sampled = int(last.argmax())
                if getattr(p, "logprob_token_ids", None):
                    keep = list(p.logprob_token_ids) + [sampled]
                elif p.logprobs == -1:
                    keep = list(range(last.shape[0]))
                else:
                    keep = last.topk(p.logprobs).indices.tolist() + [sampled] if p.logprobs else [sampled]
                text = ""
                if p.max_tokens > 1:  # greedy continuation, stopping at eos (generate's path)
                    with torch.no_grad():
                        out = model.generate(torch.tensor([ids]), max_new_tokens=p.max_tokens, do_sample=False)
                    new = out[0, len(ids):].tolist()
                    text = Tok.decode(new, skip_special_tokens=True) if p.detokenize else ""
                sample = types.SimpleNamespace(logprobs=[{t: _Logprob(last[t]) for t in keep}], text=text)
                plp = None
                if p.prompt_logprobs is not None:
                    plp = [None] + [{ids[j]: _Logprob(lp[j - 1, ids[j]])} for j in range(1, len(ids))]
                outs.append(types.SimpleNamespace(outputs=[sample], prompt_token_ids=ids, prompt_logprobs=plp,
                                                  num_cached_tokens=0))
            return outs

    class Tok:  # detokenisation of generate's path, with the model's own tokenizer
        decode = None

    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams, mod.__version__ = LLM, SamplingParams, "stand-in"
    mod._tok = Tok
    lora = types.ModuleType("vllm.lora")
    req = types.ModuleType("vllm.lora.request")
    req.LoRARequest = LoRARequest
    platforms = types.ModuleType("vllm.platforms")  # a GPU platform: what vLLM's CPU build (tests/vllm) cannot show
    platforms.current_platform = types.SimpleNamespace(device_type="cuda", is_cpu=lambda: False)
    return {"vllm": mod, "vllm.lora": lora, "vllm.lora.request": req, "vllm.platforms": platforms}


@pytest.fixture
def fake_vllm(monkeypatch, tiny):
    """Install the stand-in as ``vllm`` (with or without logprob_token_ids) and return its module."""
    import sys

    def install(with_token_ids: bool = True):
        mods = _fake_vllm(with_token_ids)
        mods["vllm"]._tok.decode = tiny[0].decode
        for name, mod in mods.items():
            monkeypatch.setitem(sys.modules, name, mod)
        return mods["vllm"]

    return install


def test_vllm_without_exact_ids_fails_loudly_unless_asked(tiny, naive, fake_vllm):
    from spectra_probe.backends.vllm import VLLMBackend

    vllm = fake_vllm(with_token_ids=False)
    tok, _, path = tiny
    with pytest.raises(SpectraInputError, match=r"no SamplingParams.logprob_token_ids.*--vllm-fallback"):
        VLLMBackend(path)
    assert not vllm.LLM.instances  # refused before any weights were loaded
    reqs = requests(tok)[:1]
    ref = naive.score(reqs)[0]
    top = VLLMBackend(path, fallback="top-n", top_logprobs=5)
    top.score(reqs)
    assert top.describe()["approximate_next_logits"] > 0  # top-5 misses some ids: counted, not hidden
    exact = VLLMBackend(path, fallback="full-vocab").score(reqs)[0]
    assert vllm.LLM.instances[-1].kw["max_logprobs"] == -1
    np.testing.assert_allclose(np.diff(exact.next_logits, axis=1), np.diff(ref.next_logits, axis=1), atol=1e-5)


def test_vllm_engine_sizing_reaches_llm(tiny, fake_vllm, tmp_path):
    from spectra_probe.run import ProbeConfig

    fake_vllm()
    tok, _, path = tiny
    base = dict(model=str(path), contexts="c.csv", categories="c.txt", method="yesno", out=str(tmp_path / "o.csv"),
                backend="vllm")
    config = ProbeConfig(**base, backend_options=dict(max_model_len=512, gpu_memory_utilization=0.5, max_lora_rank=64,
                                                      engine_args=["max_num_seqs=64", "enforce_eager=true"]))
    assert config.batch_size == 256  # vLLM's default batch
    kw = backend_from_config(config).llm.kw
    assert (kw["max_model_len"], kw["gpu_memory_utilization"], kw["max_num_seqs"], kw["enforce_eager"]) == \
        (512, 0.5, 64, True)
    with pytest.raises(SpectraInputError, match="vllm.LLM rejected.*not_an_engine_arg"):
        backend_from_config(ProbeConfig(**base, backend_options={"engine_args": ("not_an_engine_arg=1",)}))
    with pytest.raises(SpectraInputError, match="KEY=VALUE"):
        ProbeConfig(**base, backend_options={"engine_args": ("max_num_seqs",)})
    with pytest.raises(SpectraInputError, match="--max-model-len applies to the vllm backend only"):
        ProbeConfig(**{**base, "backend": "transformers"}, backend_options={"max_model_len": 512})
    with pytest.raises(SpectraInputError, match="gpu-memory-utilization"):
        ProbeConfig(**base, backend_options={"gpu_memory_utilization": 1.5})
    with pytest.raises(SpectraInputError, match="unknown backend option 'max_model_size'"):
        ProbeConfig(**base, backend_options={"max_model_size": 512})
    assert backend_from_config(ProbeConfig(**base)).describe()["device"] == "cuda"  # the platform's, not hard-coded


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
    from spectra_probe.backends.packed import cache_argument

    class Old:
        def forward(self, input_ids=None, past_key_values=None, use_cache=None):
            pass

    class New:
        def forward(self, input_ids=None, cache=None, use_cache=None, **kwargs):
            pass

    assert cache_argument(Old()) == "past_key_values" and cache_argument(New()) == "cache"
