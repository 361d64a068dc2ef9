"""Probe backends behind one interface (:class:`~spectra_probe.backends.base.Backend`).

``make_backend("transformers", model_dir=..., ...)`` or ``make_backend("vllm", model_dir=..., ...)``.
Importing this package imports neither torch nor vllm.
"""
from __future__ import annotations

from spectra_eval.validation import SpectraInputError

from .base import Backend, ScoreRequest, ScoreResult

__all__ = ["Backend", "ScoreRequest", "ScoreResult", "make_backend", "BACKENDS"]

BACKENDS = ("transformers", "vllm")
_ALIASES = {"transformers": "transformers", "hf": "transformers", "vllm": "vllm"}


def make_backend(name: str, **kwargs) -> Backend:
    """Build a backend by name: ``"transformers"`` (alias ``"hf"``) or ``"vllm"``; ``kwargs`` go to its constructor."""
    kind = _ALIASES.get(str(name).lower())
    if kind is None:
        raise SpectraInputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if kind == "transformers":
        from .hf import HFBackend

        return HFBackend(**kwargs)
    from .vllm import VLLMBackend

    return VLLMBackend(**kwargs)
