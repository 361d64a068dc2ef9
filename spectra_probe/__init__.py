"""SPECTRA probe backend: LLM in, per-user category distributions out.

Importing this package does not import torch; backends import it when they are built.
"""
