"""Probe backends behind one interface (:class:`~spectra_probe.backends.base.Backend`).

:data:`BACKENDS` maps ``--backend`` names to backend classes, imported when first used, so importing this
package imports neither torch nor vllm. Every backend class has ``from_config(config)``, which builds it
from a :class:`~spectra_probe.run.config.ProbeConfig`, and a constructor for direct use
(``make_backend("transformers", model_dir=..., engine="naive")``).

Adding a backend: a module ``backends/<name>.py`` with a :class:`~spectra_probe.backends.base.Backend`
subclass (``score``, ``generate``, ``describe``, ``tokenizer``, ``from_config``) and one line in
:data:`BACKENDS`.
"""
from __future__ import annotations

import contextlib

from spectra_probe.registry import Registry

from .base import Backend, ScoreRequest, ScoreResult

__all__ = ["Backend", "ScoreRequest", "ScoreResult", "BACKENDS", "make_backend", "backend_from_config"]

BACKENDS = Registry("backend", {
    "transformers": "spectra_probe.backends.hf:HFBackend",
    "vllm": "spectra_probe.backends.vllm:VLLMBackend",
}, aliases={"hf": "transformers"})


def make_backend(name: str, **kwargs) -> Backend:
    """Build the backend ``name`` (or an alias: ``hf``) with ``kwargs`` for its constructor."""
    return BACKENDS.load(name)(**kwargs)


def backend_from_config(config) -> Backend:
    """The backend that ``config.backend`` names, built by its ``from_config``.

    With ``config.progress`` off no progress bar is drawn at all, the model loader's included.
    """
    cls = BACKENDS.load(config.backend)
    if not config.progress:
        with contextlib.suppress(ImportError):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
    return cls.from_config(config)
