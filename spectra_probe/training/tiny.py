"""Tiny Qwen3-style models built locally: a byte-level BPE tokenizer trained on given texts and a
randomly initialised :class:`~transformers.Qwen3ForCausalLM`.

Nothing is downloaded.  Tests, benchmarks and the from-scratch demo use these; the architecture and
tokenizer family match Qwen3 (byte-level BPE, grouped-query attention with q/k RMS norms, RoPE), so the
engine code paths are the ones a real Qwen3 checkpoint exercises.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

DEFAULT_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# A minimal ChatML template (the format Qwen models use), with a generation prompt switch.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 1000,
    special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
):
    """Train a byte-level BPE tokenizer (as in Qwen/GPT-2) and wrap it as a ``PreTrainedTokenizerFast``.

    The full 256-byte alphabet is always included, so any text encodes.  ``special_tokens[0]`` becomes the
    pad token and ``<|im_end|>`` (or the last special token) the eos token; a ChatML chat template is set.
    No BOS token is added (Qwen-like).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special_tokens = list(special_tokens)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    eos = "<|im_end|>" if "<|im_end|>" in special_tokens else special_tokens[-1]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos,
        pad_token=special_tokens[0],
        additional_special_tokens=[t for t in special_tokens if t not in (eos, special_tokens[0])] or None,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_qwen3(
    tokenizer,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    seed: int = 0,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 32768,
    initializer_range: float = 0.1,
):
    """A ``Qwen3ForCausalLM`` with random weights (``torch.manual_seed(seed)``), in float32, eval mode.

    ``initializer_range`` is larger than the usual 0.02 so that the random model's next-token
    distributions are far from uniform and score differences are visible in tests.
    """
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden_size // heads,
        max_position_embeddings=max_position_embeddings,
        initializer_range=initializer_range,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.float().eval()


def save_tiny(model, tokenizer, directory) -> Path:
    """Save model (safetensors) and tokenizer to ``directory`` so ``HFBackend(directory)`` loads them."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def sample_corpus(n: int = 200, seed: int = 0) -> list[str]:
    """A small synthetic English-like corpus (user histories and category names) to train tokenizers on."""
    import random

    rng = random.Random(seed)
    words = (
        "the user watched liked rated movie film drama comedy action thriller romance horror documentary "
        "animation children musical western war crime mystery sci-fi fantasy adventure film-noir history "
        "yes no maybe answer question category preference next item would enjoy recently and then also "
        "restaurant bar cafe pizza sushi burgers mexican italian chinese thai indian bakery nightlife"
    ).split()
    out = []
    for _ in range(n):
        k = rng.randint(5, 40)
        out.append(" ".join(rng.choice(words) for _ in range(k)) + rng.choice([".", "?", "!", ":"]))
    return out
