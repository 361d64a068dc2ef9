"""Shared fixtures of the probe tests: a tiny random Qwen3 saved to disk (built here, nothing downloaded)."""
from __future__ import annotations

import importlib.util
import os

import pytest

# tests/vllm starts real vLLM engines: only `make test-vllm` runs it (its own venv, SPECTRA_VLLM_TESTS=1)
collect_ignore = [] if os.environ.get("SPECTRA_VLLM_TESTS") and importlib.util.find_spec("vllm") else ["vllm"]

#: MovieLens genres and a few L1 domains: the category names the tiny model's tokenizer is trained to render.
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
DOMAINS = ("Light", "Dark", "Fast")
HISTORIES = (
    "the user watched comedy drama and then liked romance",
    "liked action movie film thriller sci-fi adventure",
    "rated documentary history war film-noir crime mystery recently",
)


def build_tiny_model(directory, vocab_size: int = 600, **shape):
    """Train a tokenizer on a corpus holding the default prompts (:func:`tiny_tokenizer`), build a random Qwen3,
    save both."""
    from spectra_probe.training.tiny import build_tiny_qwen3, save_tiny

    tok = tiny_tokenizer(vocab_size)
    return save_tiny(build_tiny_qwen3(tok, **shape), tok, directory)


def tiny_tokenizer(vocab_size: int = 600):
    """A byte-level BPE tokenizer trained on a corpus holding the default prompts.

    The corpus makes the default verbalizers ({Yes, Y, y} / {No, N, n}), ``" Yes"``/``" No"``, the reranker's
    ``yes``/``no`` and the choice answers ``" A"`` .. ``" G"`` single tokens (``" Y"``, ``" y"``, ``" N"`` are not).
    """
    from spectra_probe.scoring.choice import choice_labels
    from spectra_probe.templates import PromptBuilder, PromptTemplates
    from spectra_probe.training.tiny import sample_corpus, train_tokenizer

    b = PromptBuilder(PromptTemplates())
    prompts = [b.probe_prefix(c) + b.probe_suffix(cat) + " Yes" for c in HISTORIES for cat in GENRES + DOMAINS]
    prompts += [b.reranker_prefix(HISTORIES[0]) + b.reranker_suffix(cat) + "yes" for cat in GENRES]
    prompts += [b.choice_question(choice_labels(7), GENRES[:7]) + " A\n"] * 3
    prompts += ["Yes No Y N y n yes no. Answer: Yes, Answer: No\nNo, Yes"] * 5
    prompts += ["Answer: " + " ".join("ABCDEFG") + "\n"] * 10
    return train_tokenizer(sample_corpus(300) + prompts, vocab_size=vocab_size)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny model directory (config, safetensors, tokenizer), built once per test session."""
    pytest.importorskip("torch")
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
