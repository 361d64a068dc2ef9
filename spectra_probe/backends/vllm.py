"""vLLM backend (optional extra: ``pip install .[vllm]``), imported lazily.

How scoring maps onto vLLM
--------------------------
* Every prompt ``prefix + s`` is sent as token ids (``{"prompt_token_ids": ...}``), split into context and
  suffix exactly as the transformers backend does (:func:`~spectra_probe.backends.base.plan_groups`), so both
  backends score the same tokens.  The K prompts of a user share their prefix token for token, and vLLM's
  automatic prefix caching (``enable_prefix_caching=True``) computes the shared KV blocks once.
* Next-token scores: one generated token (``max_tokens=1``, greedy) with log-probabilities.  Where the
  installed vLLM's ``SamplingParams`` has ``logprob_token_ids`` (recent releases), exactly the requested ids
  are returned.  Otherwise the top ``top_logprobs`` entries are requested and an id outside them gets the
  smallest returned log-probability (an upper bound; counted in ``describe()["approximate_next_logits"]``),
  or, with ``full_vocab_logprobs=True``, ``logprobs=-1`` returns the whole vocabulary (exact, slower).
  vLLM returns log-probabilities, i.e. the logits minus one constant per position; every softmax over a
  subset of ids (the yes/no verbalizers of Eq. 1) is therefore identical to the one over logits.
  ``next_logits`` from this backend are these log-probabilities.
* Suffix log-likelihood needs the log-probabilities of prompt tokens, which vLLM only gives through
  ``prompt_logprobs``; a request with ``prompt_logprobs`` does not read the prefix cache, so it is kept off
  the hot path: it is used only for requests with no ``next_token_ids`` (category-name likelihood
  scorers), or for all requests with ``suffix_logprobs="always"``.  Otherwise ``suffix_logprob`` is NaN
  (``suffix_tokens`` is still filled).
* LoRA adapters are served with ``LLM(enable_lora=True)`` and a ``LoRARequest``; merging is the adapter
  author's choice (merge with the transformers backend, save, and point ``model_dir`` at the merged model).
"""
from __future__ import annotations

import logging
import platform
from typing import Sequence

import numpy as np

from spectra_eval.validation import SpectraInputError

from .base import (Backend, ScoreRequest, ScoreResult, check_adapter_dir, check_model_dir, leading_special_ids,
                   plan_groups, sha256_dir)

log = logging.getLogger(__name__)

SUFFIX_MODES = ("auto", "always", "never")


def _import_vllm():
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise SpectraInputError(
            f"the vllm backend needs the vllm package ({exc.__class__.__name__}: {exc}); "
            "install it with: pip install .[vllm]  (or use --backend transformers)"
        ) from None
    return vllm


class VLLMBackend(Backend):
    """Score and generate with vLLM's offline ``LLM`` engine.

    Parameters
    ----------
    model_dir : path
        Local model directory (config + safetensors + tokenizer).
    adapter_dir : path, optional
        peft LoRA adapter, served through ``LoRARequest`` (``max_lora_rank`` must cover its rank).
    dtype : {'bfloat16', 'float16', 'float32', 'auto'}
    gpu_memory_utilization : float
    max_model_len : int, optional
    enable_prefix_caching : bool
        Keep on: it is what makes the K prompts of a user cost about one prompt.
    suffix_logprobs : {'auto', 'always', 'never'}
        When to pay for ``prompt_logprobs`` (see the module docstring).
    top_logprobs : int
        Fallback width for vLLM versions without ``logprob_token_ids``.
    full_vocab_logprobs : bool
        Fallback with ``logprobs=-1`` (exact, whole vocabulary per prompt) instead of top-N.
    max_lora_rank : int
    llm_kwargs : dict, optional
        Extra keyword arguments for ``vllm.LLM`` (tensor_parallel_size, ...).
    """

    def __init__(
        self,
        model_dir,
        adapter_dir=None,
        dtype: str = "bfloat16",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        suffix_logprobs: str = "auto",
        top_logprobs: int = 20,
        full_vocab_logprobs: bool = False,
        max_lora_rank: int = 64,
        trust_remote_code: bool = False,
        llm_kwargs: dict | None = None,
    ):
        path = check_model_dir(model_dir)
        adapter_path = check_adapter_dir(adapter_dir) if adapter_dir is not None else None
        if suffix_logprobs not in SUFFIX_MODES:
            raise SpectraInputError(f"suffix_logprobs must be one of {', '.join(SUFFIX_MODES)}; got {suffix_logprobs!r}")
        vllm = _import_vllm()
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self._lead = leading_special_ids(self._tokenizer)
        self._vllm = vllm
        self.suffix_logprobs = suffix_logprobs
        self.top_logprobs = int(top_logprobs)
        self.full_vocab_logprobs = bool(full_vocab_logprobs)
        kwargs = dict(
            model=str(path), tokenizer=str(path), dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching, trust_remote_code=trust_remote_code,
            max_logprobs=-1 if full_vocab_logprobs else max(self.top_logprobs, 128),
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = int(max_model_len)
        if adapter_path is not None:
            kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank)
        kwargs.update(llm_kwargs or {})
        self.llm = vllm.LLM(**kwargs)
        self._lora = None
        if adapter_path is not None:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("spectra-adapter", 1, str(adapter_path))
        self._has_token_ids = _supports_logprob_token_ids(vllm.SamplingParams)
        self._approximate = 0
        self._info = {
            "backend": "vllm",
            "model": str(path),
            "adapter": str(adapter_path) if adapter_path is not None else None,
            "adapter_sha256": sha256_dir(adapter_path) if adapter_path is not None else None,
            "adapter_merged": False,
            "dtype": dtype,
            "device": "cuda",
            "engine": "vllm-prefix-cache" if enable_prefix_caching else "vllm",
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "next_logits": "log-probabilities (logits shifted by a per-position constant)",
            "next_token_method": "logprob_token_ids" if self._has_token_ids else (
                "logprobs=-1 (full vocabulary)" if full_vocab_logprobs else f"top-{self.top_logprobs} logprobs"),
            "suffix_logprobs": suffix_logprobs,
        }

    @classmethod
    def from_config(cls, config) -> "VLLMBackend":
        """The backend of a probe run: model, adapter and dtype of ``config``.

        vLLM shares prefixes itself (prefix caching) and applies LoRA at run time, so the transformers engine's
        ``--merge-adapter`` and ``--engine naive`` are refused rather than ignored.
        """
        if config.merge_adapter or config.engine != "packed":
            raise SpectraInputError("--merge-adapter and --engine naive apply to the transformers backend only")
        dtype = {"dtype": config.dtype} if config.dtype is not None else {}  # else bfloat16
        return cls(config.model, config.adapter, **dtype)

    @property
    def tokenizer(self):
        return self._tokenizer

    def describe(self) -> dict:
        import transformers

        return {
            **self._info,
            "approximate_next_logits": self._approximate,
            "versions": {"python": platform.python_version(), "vllm": getattr(self._vllm, "__version__", None),
                         "transformers": transformers.__version__},
        }

    # ---------------------------------------------------------------- params
    def _next_params(self, ids: Sequence[int], prompt_logprobs: int | None = None):
        """One greedy token with the log-probabilities of ``ids``.

        ``prompt_logprobs`` must be given at construction: vLLM then sets ``skip_reading_prefix_cache``
        (prompt log-probabilities cannot be served from cached blocks), which is why it stays off the hot path.
        """
        SamplingParams = self._vllm.SamplingParams
        common = dict(temperature=0.0, max_tokens=1, prompt_logprobs=prompt_logprobs)
        if not ids:
            return SamplingParams(logprobs=0, **common)
        if self._has_token_ids:
            # Some releases count logprobs as the number of requested ids; equal values satisfy every rule.
            return SamplingParams(logprobs=len(ids), logprob_token_ids=list(ids), **common)
        return SamplingParams(logprobs=-1 if self.full_vocab_logprobs else self.top_logprobs, **common)

    def _run(self, prompts, params):
        return self.llm.generate(prompts, params, lora_request=self._lora, use_tqdm=False)

    # --------------------------------------------------------------- scoring
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        requests = list(requests)
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
