"""Name -> lazily imported object: the one mechanism behind the scorer and backend registries.

An entry is a dotted path ``"package.module:Attribute"``; nothing is imported until :meth:`Registry.load` is
called, so listing the names (the CLI's ``choices``) costs no torch or vllm import.
"""
from __future__ import annotations

import importlib
from typing import Mapping

from spectra_eval.validation import SpectraInputError


class Registry:
    """Names (and aliases) of lazily imported objects of one kind.

    Parameters
    ----------
    kind : str
        What the entries are ("method", "backend"), for error messages.
    entries : mapping name -> ``"module:Attribute"``
    aliases : mapping alias -> name
    """

    def __init__(self, kind: str, entries: Mapping[str, str], aliases: Mapping[str, str] | None = None):
        self.kind = kind
        self.entries = dict(entries)
        self.aliases = dict(aliases or {})

    def names(self) -> tuple[str, ...]:
        """The canonical names, in registration order (aliases excluded)."""
        return tuple(self.entries)

    def canonical(self, name: str) -> str:
        """The canonical name of ``name`` or an alias of it; an unknown name is an error listing the known ones."""
        key = self.aliases.get(str(name).lower(), str(name).lower())
        if key not in self.entries:
            raise SpectraInputError(f"unknown {self.kind} {name!r} (choose from {', '.join(self.entries)})")
        return key

    def load(self, name: str):
        """Import the entry of ``name`` and return it."""
        module, _, attribute = self.entries[self.canonical(name)].partition(":")
        return getattr(importlib.import_module(module), attribute)
