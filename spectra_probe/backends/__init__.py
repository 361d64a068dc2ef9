"""Probe backends behind one interface (:class:`~spectra_probe.backends.base.Backend`).

:data:`BACKENDS` maps ``--backend`` names to backend classes, imported when first used, so importing this
package imports neither torch nor vllm. Every backend class has ``from_config(config)``, which builds it
from a :class:`~spectra_probe.run.config.ProbeConfig`, and a constructor for direct use
(``make_backend("transformers", model_dir=..., engine="naive")``).

Adding a backend: a module ``backends/<name>.py`` with a :class:`~spectra_probe.backends.base.Backend`
subclass (``score``, ``generate``, ``describe``, ``tokenizer``, ``from_config``; its own flags in ``options``
and its config checks in ``check_config``) and one line in :data:`BACKENDS`. ``spectra probe`` adds every
backend's ``options`` to its parser, and :func:`resolve_options` is how a config gets them, so neither the
CLI nor the config names a backend.
"""
from __future__ import annotations

import contextlib

from spectra_eval.validation import SpectraInputError
from spectra_probe.registry import Registry

from .base import Backend, BackendOption, ScoreRequest, ScoreResult

__all__ = ["Backend", "BackendOption", "ScoreRequest", "ScoreResult", "BACKENDS", "make_backend",
           "backend_from_config", "resolve_options"]

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


def _normalise(value):
    return tuple(value) if isinstance(value, list) else value


def resolve_options(name: str, given) -> dict:
    """The options of backend ``name``: every one it declares, ``given`` values over the defaults.

    ``given`` may also hold other backends' options (the CLI parses all of them): one left at its default is
    dropped, one set to something else is refused with the flag and the backend it belongs to, and a name no
    backend declares is refused.
    """
    own = {o.dest: o for o in BACKENDS.load(name).options}
    out = {dest: o.default for dest, o in own.items()}
    for key, value in dict(given or {}).items():
        value = _normalise(value)
        if key in own:
            out[key] = own[key].default if value is None else value
            continue
        owner = next(((other, o) for other in BACKENDS.names() for o in BACKENDS.load(other).options
                      if o.dest == key), None)
        if owner is None:
            raise SpectraInputError(f"unknown backend option {key!r}")
        other, option = owner
        if value not in (None, (), option.default):
            raise SpectraInputError(f"{option.flag} applies to the {other} backend only")
    return out
