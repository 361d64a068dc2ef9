"""Tiny random models of every family users probe (2 layers, hidden 64), built from a transformers config: nothing
downloaded. Used by the model-family tests and by training tests that need a soft-capping model (Gemma 2)."""
from __future__ import annotations

WINDOW = 8  # sliding window, shorter than the test prompts (so the window changes what a query sees)

#: family -> (config class, model class, family-specific config). Sliding windows are on wherever the family has
#: them; Gemma 2's soft-capping is tightened so that the tanh bends the logits of a random model.
FAMILIES = {
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM",
              dict(head_dim=16, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(use_sliding_window=True, sliding_window=WINDOW,
                                                      max_window_layers=1)),
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(head_dim=16, sliding_window=WINDOW)),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM",
               dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=WINDOW, attn_logit_softcapping=2.0,
                    final_logit_softcapping=3.0)),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM",
               dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=WINDOW,
                    layer_types=["sliding_attention", "full_attention"])),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(sliding_window=WINDOW)),
}


def build_family(family: str, tok, seed: int = 0, **overrides):
    """A random 2-layer, hidden-64 model of ``family`` in float32, eval mode (transformers' attention choice),
    with ``tok``'s vocabulary and special tokens; ``overrides`` replace config fields."""
    import torch
    import transformers

    config_cls, model_cls, extra = FAMILIES[family]
    config = getattr(transformers, config_cls)(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.1, tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None, **{**extra, **overrides})
    torch.manual_seed(seed)
    return getattr(transformers, model_cls)(config).float().eval()
