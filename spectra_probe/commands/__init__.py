"""Subcommands of ``spectra`` that need the probe backend (``probe``, ``train``, ``demo``).

Each module exposes ``configure(parser)`` and ``run(args) -> int`` and imports torch only inside ``run``.
"""
