"""Transformers backend: the exact shared-prefix engine (:mod:`spectra_probe.backends.packed`) or the naive
reference engine, on CPU or CUDA.

Tokenisation boundary
---------------------
Scoring ``tokens(prefix)`` followed by the suffix's tokens is only the same as scoring ``prefix + s`` when
``tokens(prefix + s)`` starts with ``tokens(prefix)``.  This is checked for every suffix; the suffix's
tokens are taken as the tail of ``tokens(prefix + s)`` (so they are always the whole-prompt tokens).  Where
a BPE merge crosses the boundary (e.g. prefix ``"... hel"`` + suffix ``"lo"``), the prompt is scored on its
own, its suffix tokens being those after the longest run shared with ``tokens(prefix)``, and
``ScoreResult.fallback`` is set.  Suffixes that start with a space, as the probe templates' do, tokenise
cleanly with byte-level BPE.

Model families
--------------
The attention implementation is transformers' choice for the model (``sdpa`` where the model supports it,
``eager`` otherwise, e.g. Gemma 2, whose attention-logit soft-capping sdpa cannot express); both take the
engine's 4-D masks.  Before a packed backend scores anything it runs :meth:`HFBackend.packed_check`: a few
synthetic prompts (longer than the smallest sliding window up to ``CHECK_WINDOW_MAX``) scored by packed
rows, by the cached-prefix path and by the naive engine.  A model the packed layout cannot serve exactly
(an attention layer kind it cannot lay out, a mask the model ignores, any disagreement beyond rounding)
makes the backend fall back to the naive engine with a logged warning and ``engine_fallback`` (the reason)
in :meth:`HFBackend.describe`, hence in the probe manifest: never silently wrong numbers.  Verified with
tiny random models (transformers 5.24): Qwen3, Qwen2, Llama, Mistral, Gemma 2, Gemma 3, Phi-3, with
sliding windows shorter than the prompts.
"""
from __future__ import annotations

import logging
import platform
from typing import Sequence

import numpy as np

from spectra_eval.validation import SpectraInputError, check_choice

from .base import (Backend, BackendOption, PromptGroup, ScoreRequest, ScoreResult, check_adapter_dir, check_model_dir,
                   check_next_token_ids, encode_texts, leading_special_ids, plan_groups, sha256_dir)

from .packed import (attention_masks, attention_windows, cache_argument, cache_layers, chunk_tails, first_fit,
                     head_logits, layout_tails, model_parts, packed_forward, packed_unsupported, stack_layouts)

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
ENGINES = ("packed", "naive")
ATTENTION_WITH_4D_MASKS = ("sdpa", "eager")
#: Sliding windows up to this many tokens are exercised by the packed self-check (its prompts are longer).
CHECK_WINDOW_MAX = 256
#: Packed-vs-naive disagreement the self-check tolerates, relative to the largest checked value (at least 1).
#: Measured on the tiny models of every family: float32 ~2e-7 relative, bfloat16 <= 3e-3, float16 <= 7e-4
#: (summation order); a layout that ignores a sliding window or a 4-D mask is off by 1e-1 or more.
CHECK_RTOL = {"float32": 1e-4, "float64": 1e-8, "bfloat16": 2e-2, "float16": 1e-2}


class HFBackend(Backend):
    """Score and generate with a local transformers causal LM (optionally a peft LoRA adapter).

    Parameters
    ----------
    model_dir : path
        Directory with ``config.json``, safetensors weights and the tokenizer.
    adapter_dir : path, optional
        peft adapter directory (``adapter_config.json``, ``adapter_model.safetensors``).
    merge_adapter : bool
        Merge the LoRA weights into the base weights (``merge_and_unload``) after loading.
    device : {'cpu', 'cuda', 'cuda:N'}
    dtype : {'float32', 'bfloat16', 'float16'}
    engine : {'packed', 'naive'}
        ``naive`` runs every ``prefix + suffix`` as its own sequence (the reference); ``packed`` shares
        each prefix exactly (see the module docstring); a model it cannot serve exactly falls back to
        ``naive`` (``describe()["engine_fallback"]`` says why).
    chunk_size : int, optional
        Most tokens in one packed row (also the suffix-token budget of one chunk against a cached prefix).
        A row's attention is computed densely under the block mask, costing about ``L / (6 * hidden)`` of
        the row's matmul work, so rows are kept short relative to the hidden size: the default is
        ``min(2048, max(512, hidden_size))``.  Memory grows with the chunk, never with K.
    batch_rows : int, optional
        Packed rows per forward pass (default 1 on CPU, 8 on CUDA).
    naive_batch_size : int
        Prompts per forward pass in the naive engine (right-padded, so padding never changes a score).
    trust_remote_code : bool
        Off unless asked for.
    attn_implementation : str, optional
        ``"sdpa"`` or ``"eager"`` (both honour the engine's 4-D masks); by default transformers' choice for
        the model (sdpa where supported, else eager: Gemma 2).
    """

    options = (BackendOption("--engine", "packed", "packed shares each prefix exactly; naive scores every prompt "
                                                   "alone (reference)", {"choices": ENGINES}),)
    options_title = "transformers engine (--backend transformers)"

    def __init__(
        self,
        model_dir,
        adapter_dir=None,
        merge_adapter: bool = False,
        device: str = "cpu",
        dtype: str = "float32",
        engine: str = "packed",
        chunk_size: int | None = None,
        batch_rows: int | None = None,
        naive_batch_size: int = 8,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        check_choice(dtype, DTYPES, name="dtype")
        path = check_model_dir(model_dir)
        adapter_path = check_adapter_dir(adapter_dir) if adapter_dir is not None else None
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=getattr(torch, dtype),
                use_safetensors=True,
                trust_remote_code=trust_remote_code,
                attn_implementation=attn_implementation,
                # load straight onto the GPU (no CPU copy of a large model); CPU keeps the default path
                **({"device_map": device} if str(device).startswith("cuda") else {}),
            )
        except ValueError as err:  # e.g. sdpa asked of Gemma 2: transformers' message, one line, located
            if attn_implementation is None or "attention implementation" not in str(err):
                raise
            raise SpectraInputError(f"model {str(path)!r}: {str(err).splitlines()[0]}") from err
        if adapter_path is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter_path, is_trainable=False)
            if merge_adapter:
                model = model.merge_and_unload()
        self._setup(model, tokenizer, device=device, engine=engine, chunk_size=chunk_size,
                    batch_rows=batch_rows, naive_batch_size=naive_batch_size)
        self._info.update(
            model=str(path),
            adapter=str(adapter_path) if adapter_path is not None else None,
            adapter_sha256=sha256_dir(adapter_path) if adapter_path is not None else None,
            adapter_merged=bool(adapter_path is not None and merge_adapter),
            trust_remote_code=trust_remote_code,
        )

    @classmethod
    def from_config(cls, config) -> "HFBackend":
        """The backend of a probe run: model, adapter (merged or not), device, engine and dtype of ``config``."""
        dtype = {"dtype": config.dtype} if config.dtype is not None else {}  # else float32
        return cls(config.model, config.adapter, merge_adapter=config.merge_adapter, device=config.device,
                   engine=config.backend_options["engine"], **dtype)

    @classmethod
    def from_model(cls, model, tokenizer, *, device: str = "cpu", engine: str = "packed", chunk_size: int | None = None,
                   batch_rows: int | None = None, naive_batch_size: int = 8) -> "HFBackend":
        """Wrap an in-memory model and tokenizer (tests, benchmarks, freshly trained models)."""
        self = cls.__new__(cls)
        self._setup(model, tokenizer, device=device, engine=engine, chunk_size=chunk_size,
                    batch_rows=batch_rows, naive_batch_size=naive_batch_size)
        self._info.update(model=getattr(model.config, "_name_or_path", None) or None, adapter=None,
                          adapter_sha256=None, adapter_merged=False)
        return self

    # ------------------------------------------------------------------ setup
    def _setup(self, model, tokenizer, *, device, engine, chunk_size, batch_rows, naive_batch_size):
        import torch

        check_choice(engine, ENGINES, name="engine")
        base, decoder, head, softcap = model_parts(model)
        if chunk_size is None:
            hidden = getattr(base.config.get_text_config(), "hidden_size", 2048)
            chunk_size = min(2048, max(512, int(hidden)))
        if chunk_size < 8:
            raise SpectraInputError(f"chunk_size must be at least 8 tokens, got {chunk_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self._tokenizer = tokenizer
        self.engine = engine
        self.chunk_size = int(chunk_size)
        self.batch_rows = int(batch_rows or (8 if self.device.type == "cuda" else 1))
        self.naive_batch_size = int(naive_batch_size)
        self.dtype = next(self.model.parameters()).dtype
        self._decoder, self._head, self._softcap = decoder, head, softcap
        self._cache_arg = cache_argument(self._decoder)
        self._windows = attention_windows(self._decoder.config)
        impl = getattr(base.config, "_attn_implementation", None) or "sdpa"
        self._arch = (getattr(base.config, "architectures", None) or [type(base).__name__])[0]
        if engine == "packed" and impl not in ATTENTION_WITH_4D_MASKS:
            raise SpectraInputError(
                f"the packed engine needs an attention implementation that takes 4-D float masks "
                f"({', '.join(ATTENTION_WITH_4D_MASKS)}); the {self._arch} model uses {impl!r}"
            )
        self._lead = leading_special_ids(tokenizer)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self._pad_id is None:
            self._pad_id = 0
        self._info = {"dtype": str(self.dtype).replace("torch.", ""), "attn_implementation": impl}
        if engine == "packed":
            reason = self.packed_check()
            if reason is not None:
                log.warning("packed engine falls back to the naive engine: %s", reason)
                self.engine = "naive"
                self._info["engine_fallback"] = reason

    def packed_check(self) -> str | None:
        """Why the packed engine would not give the naive engine's scores on this model (None when it does).

        First the layer kinds (:func:`~spectra_probe.backends.packed.packed_unsupported`); then two synthetic
        users (contexts of ``n`` random token ids, ``n`` longer than the smallest sliding window when that is at
        most ``CHECK_WINDOW_MAX``, else 9; tails of 1-3 tokens) are scored by one packed row, by the
        cached-prefix path in chunks of at most 4 tail tokens, and by the naive engine.  Any next-token logit
        or per-token suffix log-likelihood differing by more than ``CHECK_RTOL[dtype] * max(1, max |value|)``,
        or a forward that raises, is a reason.
        """
        import torch

        unsupported = packed_unsupported(self._decoder.config)
        if unsupported is not None:
            return f"{self._arch} has {unsupported}"
        windows = [w for w in self._windows.values() if w]
        n = min(windows) + 3 if windows and min(windows) <= CHECK_WINDOW_MAX else 9
        vocab = self._head.weight.shape[0] if hasattr(self._head, "weight") else \
            self.model.config.get_text_config().vocab_size
        ids = np.random.default_rng(0).integers(0, vocab, size=2 * n + 12).tolist()
        groups = [PromptGroup(ids[:n], [ids[n:n + 1], ids[n + 1:n + 3], ids[n + 3:n + 6]], [(0, 0), (0, 1), (0, 2)]),
                  PromptGroup(ids[n + 6:2 * n + 4], [ids[2 * n + 4:2 * n + 6], ids[2 * n + 6:2 * n + 9]],
                              [(1, 0), (1, 1)])]
        singles = [PromptGroup(g.ctx, [t], [s]) for g in groups for t, s in zip(g.tails, g.slots)]
        next_ids = [torch.tensor(ids[:4], device=self.device)] * 2

        def run(score):
            sink = _Sink([np.zeros(3), np.zeros(2)], [np.zeros(3, dtype=np.int64), np.zeros(2, dtype=np.int64)],
                         [np.zeros((3, 4)), np.zeros((2, 4))], next_ids)
            score(sink)  # per-token log-likelihoods (on the logits' scale) and next-token logits
            return np.concatenate([np.concatenate([lp / nt, nl.ravel()])
                                   for lp, nt, nl in zip(sink.lp, sink.nt, sink.nl)])

        try:
            with torch.inference_mode():
                naive = run(lambda sink: self._score_naive(singles, sink))
                rows = run(lambda sink: self._run_rows([groups], sink))
                cached = run(lambda sink: [self._score_cached(g, sink, 4) for g in groups])
        except Exception as err:  # a model that cannot run the layout: fall back, say why
            return f"{self._arch}: the packed forward failed ({type(err).__name__}: {str(err).splitlines()[0]})"
        tol = CHECK_RTOL.get(str(self.dtype).replace("torch.", ""), 5e-2) * max(1.0, float(np.abs(naive).max()))
        diff = max(float(np.abs(rows - naive).max()), float(np.abs(cached - naive).max()))
        if not diff <= tol:
            impl = getattr(self.model.config, "_attn_implementation", None)
            return (f"{self._arch} (attention {impl!r}, windows {sorted(set(windows)) or 'none'}): packed scores "
                    f"differ from the naive engine's by {diff:.3g} > {tol:.3g} on the self-check prompts")
        return None

    @property
    def tokenizer(self):
        return self._tokenizer

    def describe(self) -> dict:
        import torch
        import transformers

        try:
            import peft

            peft_version = peft.__version__
        except ImportError:  # pragma: no cover - peft is part of the probe extra
            peft_version = None
        return {
            "backend": "transformers",
            **self._info,
            "device": str(self.device),
            "engine": self.engine,
            "chunk_size": self.chunk_size,
            "batch_rows": self.batch_rows,
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft_version,
            },
        }

    # --------------------------------------------------------------- scoring
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        import torch

        requests = list(requests)
        groups, fallback = plan_groups(self._tokenizer, requests, share_prefix=self.engine == "packed", lead=self._lead)
        lp = [np.zeros(len(r.suffixes)) for r in requests]
        nt = [np.zeros(len(r.suffixes), dtype=np.int64) for r in requests]
        nl = [np.zeros((len(r.suffixes), len(r.next_token_ids))) for r in requests]
        next_ids = [torch.tensor(r.next_token_ids, dtype=torch.long, device=self.device) for r in requests]
        if hasattr(self._head, "weight"):
            check_next_token_ids(requests, self._head.weight.shape[0])

        sink = _Sink(lp, nt, nl, next_ids)
        with torch.inference_mode():
            if self.engine == "naive":
                self._score_naive(groups, sink)
            else:
                self._score_packed(groups, sink)
        return [ScoreResult(next_logits=nl[i], suffix_logprob=lp[i], suffix_tokens=nt[i], fallback=fallback[i])
                for i in range(len(requests))]

    def _score_naive(self, groups: list[PromptGroup], sink: "_Sink") -> None:
        """Reference: each prompt a separate right-padded row through the model's own forward."""
        import torch

        order = sorted(range(len(groups)), key=lambda g: groups[g].n_tokens)
        for start in range(0, len(order), self.naive_batch_size):
            batch = [groups[g] for g in order[start:start + self.naive_batch_size]]
            seqs = [g.ctx + g.tails[0] for g in batch]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), self._pad_id, dtype=torch.long)
            att = torch.zeros((len(seqs), width), dtype=torch.long)
            for b, s in enumerate(seqs):
                ids[b, : len(s)] = torch.tensor(s)
                att[b, : len(s)] = 1
            logits = self.model(input_ids=ids.to(self.device), attention_mask=att.to(self.device)).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1)
            for b, g in enumerate(batch):
                n_ctx, tail = len(g.ctx), g.tails[0]
                pos = torch.arange(n_ctx - 1, n_ctx - 1 + len(tail), device=self.device)
                target = torch.tensor(tail, dtype=torch.long, device=self.device)
                total = float(logprobs[b, pos, target].double().sum()) if tail else 0.0
                row = logits[b, n_ctx + len(tail) - 1]
                sink.put(g.slots[0], total, len(tail), row[sink.ids(g.slots[0])])

    # ---- packed engine
    def _score_packed(self, groups: list[PromptGroup], sink: "_Sink") -> None:
        small = [g for g in groups if g.n_tokens <= self.chunk_size]
        large = [g for g in groups if g.n_tokens > self.chunk_size]
        rows = first_fit(small, self.chunk_size)
        for start in range(0, len(rows), self.batch_rows):
            self._run_rows(rows[start:start + self.batch_rows], sink)
        for g in large:
            self._score_cached(g, sink, self.chunk_size)

    def _score_cached(self, g: PromptGroup, sink: "_Sink", budget: int) -> None:
        """Run ``g``'s prefix once with a KV cache (its last position predicts every tail's first token), then
        its tails in chunks of at most ``budget`` tokens against that cache.

        The cache is a plain ``DynamicCache`` (no sliding-window cropping): every layer keeps the whole prefix
        and the chunk's mask applies each layer's window on positions.
        """
        import torch
        from transformers import DynamicCache

        ids = torch.tensor([g.ctx], dtype=torch.long, device=self.device)
        out = self._decoder(input_ids=ids, use_cache=True, **{self._cache_arg: DynamicCache()})
        past = [(layer_k, layer_v) for layer_k, layer_v, *_ in cache_layers(getattr(out, self._cache_arg))]
        ctx_hidden = out.last_hidden_state[0, -1]
        chunks = chunk_tails(g, budget)
        for start in range(0, len(chunks), self.batch_rows):
            self._run_cached(g, chunks[start:start + self.batch_rows], past, ctx_hidden, sink)

    def _logits(self, hidden):
        return head_logits(self._head, self._softcap, hidden)

    def _run_rows(self, rows: list[list[PromptGroup]], sink: "_Sink") -> None:
        """Forward a batch of packed rows (each a list of whole groups) and store every tail's scores."""
        hidden, layouts = packed_forward(self._decoder, rows, self._pad_id, self.device, self.dtype)
        for b, (row, lay) in enumerate(zip(rows, layouts)):
            for gi, g in enumerate(row):
                ctx_hidden = hidden[b, lay.ctx_start[gi] + len(g.ctx) - 1]
                self._emit(g, range(len(g.tails)), hidden[b], ctx_hidden, lay.tail_starts[gi], sink)

    def _run_cached(self, g: PromptGroup, chunks, past, ctx_hidden, sink: "_Sink") -> None:
        """Score chunks of ``g``'s tails (one chunk per row) against the cached prefix.

        The cached keys/values are expanded along the batch as views; the cache's first update concatenates
        them with the chunk's keys/values, so a chunk costs one copy of the prefix cache per row, never a
        recomputation of the prefix.
        """
        from transformers import DynamicCache

        layouts = [layout_tails(g, ks, len(g.ctx)) for ks in chunks]
        ids, pos, grp, seg = stack_layouts(layouts, self._pad_id)
        n_rows = ids.shape[0]
        cache = DynamicCache(ddp_cache_data=[(k.expand(n_rows, -1, -1, -1), v.expand(n_rows, -1, -1, -1))
                                             for k, v in past])
        mask = attention_masks(grp.to(self.device), seg.to(self.device), pos.to(self.device), len(g.ctx), self.dtype,
                               self._windows)
        hidden = self._decoder(
            input_ids=ids.to(self.device), position_ids=pos.to(self.device), attention_mask=mask,
            use_cache=True, **{self._cache_arg: cache},
        ).last_hidden_state
        for b, (ks, lay) in enumerate(zip(chunks, layouts)):
            self._emit(g, ks, hidden[b], ctx_hidden, lay.tail_starts[0], sink)

    def _emit(self, g: PromptGroup, tail_indices, hidden_row, ctx_hidden, tail_starts, sink: "_Sink") -> None:
        """Suffix log-likelihoods and next-token logits of the tails ``tail_indices`` of ``g``.

        ``ctx_hidden`` is the final hidden state of the context's last token: its distribution predicts each
        tail's first token.  Inside a tail of tokens ``y_0..y_{n-1}`` starting at row position ``s``, position
        ``s + j`` predicts ``y_{j+1}`` and position ``s + n - 1`` gives the next-token logits.  Logits over the
        vocabulary are formed ``LOGIT_ROWS`` positions at a time, so memory does not grow with K.
        """
        import torch

        tails = [g.tails[k] for k in tail_indices]
        ids = sink.ids(g.slots[0])  # one request per group: the same next_token_ids for all its tails
        ctx_logits = self._logits(ctx_hidden[None])[0]
        ctx_lp = torch.log_softmax(ctx_logits, -1)
        lengths = np.array([len(t) for t in tails], dtype=np.int64)
        positions = np.concatenate([np.arange(s, s + len(t)) for s, t in zip(tail_starts, tails)] or [np.zeros(0)])
        targets = np.concatenate([np.asarray(t[1:] + [-1]) for t in tails if t] or [np.zeros(0)]).astype(np.int64)
        positions = positions.astype(np.int64)
        token_lp = torch.zeros(len(positions), dtype=torch.float64)
        last_values = torch.zeros((int((lengths > 0).sum()), len(ids)), dtype=torch.float64)
        is_last = targets < 0
        last_index = np.cumsum(is_last) - 1
        for start in range(0, len(positions), LOGIT_ROWS):
            sl = slice(start, start + LOGIT_ROWS)
            pos_t = torch.from_numpy(positions[sl]).to(hidden_row.device)
            tgt_t = torch.from_numpy(targets[sl]).to(hidden_row.device)
            logits = self._logits(hidden_row[pos_t])
            lp = logits.gather(1, tgt_t.clamp(min=0)[:, None])[:, 0] - torch.logsumexp(logits, -1)
            token_lp[sl] = torch.where(tgt_t >= 0, lp, torch.zeros_like(lp)).double().cpu()
            last_rows = torch.from_numpy(np.nonzero(is_last[sl])[0]).to(hidden_row.device)
            if len(last_rows) and len(ids):
                dest = torch.from_numpy(last_index[sl][is_last[sl]])
                last_values[dest] = logits[last_rows][:, ids].double().cpu()
        # sum token log-probs per tail (segment sums), plus the first token's log-prob after the context
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        cums = np.concatenate([[0.0], np.cumsum(token_lp.numpy())])
        firsts = [t[0] for t in tails if t]
        first_lp = ctx_lp[torch.tensor(firsts, dtype=torch.long, device=ctx_lp.device)].double().cpu().numpy() \
            if firsts else np.zeros(0)
        ctx_next = ctx_logits[ids]
        j = 0
        for i, (k, t) in enumerate(zip(tail_indices, tails)):
            if not t:
                sink.put(g.slots[k], 0.0, 0, ctx_next)
                continue
            total = first_lp[j] + (cums[bounds[i + 1]] - cums[bounds[i]])
            sink.put(g.slots[k], float(total), len(t), last_values[j])
            j += 1

    # -------------------------------------------------------------- generate
    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy decoding (``do_sample=False``) with left padding, ``naive_batch_size`` prompts at a time."""
        import torch

        prompts = list(prompts)
        encoded = encode_texts(self._tokenizer, prompts, self._lead)
        outputs: list[str] = [""] * len(prompts)
        eos = self._tokenizer.eos_token_id
        with torch.inference_mode():
            for start in range(0, len(prompts), self.naive_batch_size):
                batch = encoded[start:start + self.naive_batch_size]
                width = max(len(s) for s in batch)
                ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
                att = torch.zeros((len(batch), width), dtype=torch.long)
                for b, s in enumerate(batch):
                    if s:
                        ids[b, width - len(s):] = torch.tensor(s)
                        att[b, width - len(s):] = 1
                out = self.model.generate(
                    input_ids=ids.to(self.device), attention_mask=att.to(self.device), max_new_tokens=max_new_tokens,
                    do_sample=False, num_beams=1, pad_token_id=self._pad_id, eos_token_id=eos,
                    temperature=None, top_p=None, top_k=None,
                )
                for b in range(len(batch)):
                    outputs[start + b] = self._tokenizer.decode(out[b, width:], skip_special_tokens=True)
        return outputs


# ---------------------------------------------------------------------------- helpers
LOGIT_ROWS = 1024  # positions whose full-vocabulary logits are formed at once (151,936 x 1,024 fp32 = 0.6 GB)


class _Sink:
    """Collects per-suffix scores into the per-request result arrays."""

    def __init__(self, lp, nt, nl, next_ids):
        self.lp, self.nt, self.nl, self.next_ids = lp, nt, nl, next_ids

    def ids(self, slot):
        return self.next_ids[slot[0]]

    def put(self, slot, logprob: float, n_tokens: int, next_values) -> None:
        ri, si = slot
        self.lp[ri][si] = logprob
        self.nt[ri][si] = n_tokens
        if len(self.next_ids[ri]):
            self.nl[ri][si] = np.asarray(next_values.double().cpu() if hasattr(next_values, "cpu") else next_values)
