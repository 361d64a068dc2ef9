"""The exact shared-prefix ("packed") engine: layouts, block masks and the packed forward.

The transformers backend (:mod:`spectra_probe.backends.hf`) scores with it, and yes/no distribution training
(:mod:`spectra_probe.training.loop`) reads the model through the same functions, so training fits the scores
the probe reads.

Why packed is exact
-------------------
A causal LM's output at a position depends only on the tokens it may attend to and on their
positions.  The packed engine puts, into one row, a user's prefix tokens followed by each suffix's
tokens, gives every suffix token the position ids it would have in ``prefix + suffix`` alone
(``P, P+1, ...``), and uses a 4-D additive float mask in which a suffix token sees the prefix and,
causally, its own suffix only.  Every query therefore sees exactly the keys (with the same rotary
positions) that it sees when ``prefix + suffix`` is run on its own, so the scores equal the naive
engine's up to floating-point summation order.  Several users are packed into one row (block-diagonal
mask) when they fit; a user whose K suffixes do not fit a row (K = 1,311) has its prefix run once with a
KV cache, and the suffixes are then scored in chunks against that cache (expanded along the batch as
views, never recomputed).

Sliding windows
---------------
A sliding-window layer (Mistral, Phi-3 with ``sliding_window``; Gemma 2/3, Qwen2/3 ``sliding_attention``
layers) lets a query at position ``p`` see keys at positions ``p - W < q <= p`` only.  transformers applies
the window by building its own mask, and uses a 4-D mask handed to it as it is, so the engine builds the
windowed mask itself, on *position ids* (not row indices): one mask when every layer attends alike, a
``{layer_type: mask}`` mapping when full and sliding layers alternate (the models with ``layer_types`` take
such a mapping).  The cached-prefix path keeps the whole prefix in its cache (no window cropping) and lets
the mask apply the window.  Other layer kinds (chunked, linear or bidirectional attention) are reported by
:func:`packed_unsupported`; the backend then falls back to the naive engine.

Logits are only formed at the positions that are needed (the last prefix token and the suffix tokens),
so the ``(tokens x vocab)`` logit tensor of a full forward is never materialised.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from .base import PromptGroup


def torch_tanh_cap(logits, cap: float):
    import torch

    return torch.tanh(logits / cap) * cap


def model_parts(model):
    """``(base, decoder, head, softcap)`` of a causal LM, peft-wrapped or not: the transformers model (under a
    peft wrapper, ``get_base_model()``), its decoder stack (``get_decoder()``, else ``.model``), its output
    head and its ``final_logit_softcapping`` (None when it has none).

    The backend and yes/no training (:func:`~spectra_probe.training.loop.distribution_scores`) both read a
    model through this and :func:`head_logits`, so training fits the scores the probe reads.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else base.model
    return base, decoder, base.get_output_embeddings(), getattr(base.config, "final_logit_softcapping", None)


def head_logits(head, softcap, hidden):
    """float32 logits of final hidden states through the output ``head``, soft-capped
    (``softcap * tanh(logits / softcap)``) when the model has a ``final_logit_softcapping``."""
    logits = head(hidden).float()
    if softcap:
        logits = torch_tanh_cap(logits, softcap)
    return logits


LAYER_TYPES = ("full_attention", "sliding_attention")  # the attention layer kinds the packed layout reproduces


def _text_config(config):
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def packed_unsupported(config) -> str | None:
    """Why the packed layout cannot reproduce a decoder's attention (None when it can): a layer type other than
    full or sliding-window causal attention, or bidirectional attention."""
    text = _text_config(config)
    if getattr(text, "use_bidirectional_attention", False):
        return "bidirectional attention (use_bidirectional_attention=True)"
    other = sorted({t for t in getattr(text, "layer_types", None) or () if t not in LAYER_TYPES})
    return f"layer types {other} (only {list(LAYER_TYPES)} are laid out exactly)" if other else None


def attention_windows(config) -> dict:
    """The sliding window of each kind of attention layer of a decoder ``config``: ``{layer_type: W}``, ``W`` None
    for full causal attention.  A config without ``layer_types`` gives ``{None: sliding_window}``: every layer
    attends alike (Llama: no window; Mistral, Phi-3: ``sliding_window`` on every layer when it is set).
    Layer types outside ``LAYER_TYPES`` are left to :func:`packed_unsupported`."""
    text = _text_config(config)
    window = getattr(text, "sliding_window", None)
    types = getattr(text, "layer_types", None)
    if types is None:
        return {None: window}
    return {t: (window if t == "sliding_attention" else None) for t in types}


def attention_masks(grp, seg, pos, past_len: int, dtype, windows: dict):
    """The mask argument of a packed forward: the :func:`block_mask` of each distinct window in ``windows``
    (:func:`attention_windows`), a single tensor when all layers share one window, else ``{layer_type: mask}``."""
    masks = {w: block_mask(grp, seg, past_len, dtype, pos=pos, window=w) for w in set(windows.values())}
    if len(masks) == 1:
        return next(iter(masks.values()))
    return {t: masks[w] for t, w in windows.items()}


def packed_forward(decoder, rows: list[list[PromptGroup]], pad_id: int, device, dtype):
    """Final hidden states ``(len(rows), L, hidden)`` of packed rows, each a list of whole groups laid out as
    context then tails under the block mask (see the module docstring), and the rows' :class:`Layout`.

    Sets no gradient mode: the backend calls it under ``torch.inference_mode``, training with gradients.
    """
    layouts = [layout(row) for row in rows]
    ids, pos, grp, seg = stack_layouts(layouts, pad_id)
    mask = attention_masks(grp.to(device), seg.to(device), pos.to(device), 0, dtype, attention_windows(decoder.config))
    hidden = decoder(input_ids=ids.to(device), position_ids=pos.to(device), attention_mask=mask,
                     use_cache=False).last_hidden_state
    return hidden, layouts


def cache_argument(decoder) -> str:
    """The name under which ``decoder``'s forward takes (and its output returns) a KV cache.

    transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns and goes in 5.40); older
    releases only know ``past_key_values``. The forward signature says which this installation has.
    """
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def cache_layers(cache):
    """(key, value) per layer of a transformers Cache (DynamicCache iterates to such tuples)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(cache)


@dataclass
class Layout:
    ids: list[int]
    pos: list[int]
    grp: list[int]
    seg: list[int]
    ctx_start: list[int]
    tail_starts: list[list[int]]


def layout(row: list[PromptGroup]) -> Layout:
    """Concatenate whole groups into one row: context (segment 0) then tails (segments 1..), per group."""
    lay = Layout([], [], [], [], [], [])
    for gi, g in enumerate(row):
        lay.ctx_start.append(len(lay.ids))
        n = len(g.ctx)
        lay.ids += g.ctx
        lay.pos += list(range(n))
        lay.grp += [gi] * n
        lay.seg += [0] * n
        starts = []
        for k, t in enumerate(g.tails):
            starts.append(len(lay.ids))
            lay.ids += t
            lay.pos += list(range(n, n + len(t)))
            lay.grp += [gi] * len(t)
            lay.seg += [k + 1] * len(t)
        lay.tail_starts.append(starts)
    return lay


def layout_tails(g: PromptGroup, tail_indices, past_len: int) -> Layout:
    """A row of tails only, to be scored against a cached context of ``past_len`` tokens."""
    lay = Layout([], [], [], [], [0], [[]])
    for k in tail_indices:
        t = g.tails[k]
        lay.tail_starts[0].append(len(lay.ids))
        lay.ids += t
        lay.pos += list(range(past_len, past_len + len(t)))
        lay.grp += [0] * len(t)
        lay.seg += [k + 1] * len(t)
    return lay


def stack_layouts(layouts: list[Layout], pad_id: int):
    """Right-pad rows into (B, L) tensors; padding gets group -1 and segment -1 (it only sees padding)."""
    import torch

    width = max(max(len(layout.ids) for layout in layouts), 1)
    shape = (len(layouts), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    grp = torch.full(shape, -1, dtype=torch.long)
    seg = torch.full(shape, -1, dtype=torch.long)
    for b, layout in enumerate(layouts):
        n = len(layout.ids)
        ids[b, :n] = torch.tensor(layout.ids, dtype=torch.long)
        pos[b, :n] = torch.tensor(layout.pos, dtype=torch.long)
        grp[b, :n] = torch.tensor(layout.grp, dtype=torch.long)
        seg[b, :n] = torch.tensor(layout.seg, dtype=torch.long)
    return ids, pos, grp, seg


def block_mask(grp, seg, past_len: int, dtype, pos=None, window: int | None = None):
    """Additive mask (B, 1, L, past_len + L): query i may see key j iff j <= i, same group, and j is in the
    context (segment 0) or in i's own segment; every query sees the ``past_len`` cached context keys (positions
    ``0 .. past_len - 1``).  With a sliding ``window`` W, a key is also kept only if
    ``pos[i] - pos_key < W`` (transformers' ``kv_idx > q_idx - W`` on the positions the naive prompt has).

    ``0`` where allowed, the dtype's most negative finite value elsewhere (no row is fully masked: every
    token sees itself).
    """
    import torch

    n_rows, width = grp.shape
    idx = torch.arange(width, device=grp.device)
    allowed = (idx[None, :, None] >= idx[None, None, :]) & (grp[:, :, None] == grp[:, None, :])
    allowed &= (seg[:, None, :] == 0) | (seg[:, :, None] == seg[:, None, :])
    if past_len:
        allowed = torch.cat([allowed.new_ones((n_rows, width, past_len)), allowed], dim=-1)
    if window is not None:
        past = torch.arange(past_len, device=grp.device).expand(n_rows, past_len)
        key_pos = torch.cat([past, pos], dim=-1)
        allowed &= (pos[:, :, None] - key_pos[:, None, :]) < window
    mask = torch.zeros(allowed.shape, dtype=dtype, device=grp.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def first_fit(groups: list[PromptGroup], budget: int) -> list[list[PromptGroup]]:
    """Pack whole groups into rows of at most ``budget`` tokens, in order (next-fit keeps users together)."""
    rows: list[list[PromptGroup]] = []
    used = budget + 1
    for g in groups:
        if used + g.n_tokens > budget:
            rows.append([])
            used = 0
        rows[-1].append(g)
        used += g.n_tokens
    return rows


def chunk_tails(g: PromptGroup, budget: int) -> list[list[int]]:
    """Split ``g``'s tail indices into chunks of at most ``budget`` tokens (a longer tail is a chunk alone)."""
    chunks: list[list[int]] = []
    used = budget + 1
    for k, t in enumerate(g.tails):
        n = max(len(t), 1)
        if used + n > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(k)
        used += n
    return chunks
