"""The files a probe run writes for ``--out OUT.csv`` (or ``.parquet``), together and atomically at the end.

* ``OUT.csv``: the distribution table (``user_id`` then the categories in the categories file's order);
* ``OUT.scores.csv``: the raw scores S (same users; columns per method, see the scorers), DG: the text;
* ``OUT.manifest.json``: everything needed to reproduce the run (schema ``spectra.probe-manifest/1``).

``OUT.checkpoint.jsonl`` lives next to them while the run is under way.
"""
from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spectra_eval.io import DistributionTable, atomic_outputs, write_frame, write_json
from spectra_eval.validation import SpectraInputError
from spectra_probe.backends.base import module_version

MANIFEST_SCHEMA = "spectra.probe-manifest/1"


def output_paths(out: str | os.PathLike) -> dict[str, Path]:
    """``distribution``, ``scores``, ``manifest`` and ``checkpoint`` paths of ``--out`` (.csv or .parquet)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise SpectraInputError(f"{out}: unknown output format {out.suffix!r} (use .csv or .parquet)")
    stem = out.name[: -len(out.suffix)]
    return {
        "distribution": out,
        "scores": out.with_name(f"{stem}.scores{out.suffix}"),
        "manifest": out.with_name(f"{stem}.manifest.json"),
        "checkpoint": out.with_name(f"{stem}.checkpoint.jsonl"),
    }


@dataclass(frozen=True)
class ProbeOutput:
    """What a finished run wrote."""

    table: DistributionTable
    scores: pd.DataFrame
    manifest: dict
    paths: dict


def write_outputs(paths: dict, table: DistributionTable, scores: pd.DataFrame, manifest: dict) -> ProbeOutput:
    """Write the distribution table, the raw scores and the manifest in one atomic step."""
    with atomic_outputs(paths["distribution"].parent) as stage:
        write_frame(stage / paths["distribution"].name, table.to_frame())
        write_frame(stage / paths["scores"].name, scores)
        write_json(stage / paths["manifest"].name, manifest)
    return ProbeOutput(table, scores, manifest, paths)


def final_paths(paths: dict) -> dict[str, str]:
    """The manifest's ``outputs`` block: the files a finished run leaves."""
    return {k: str(v) for k, v in paths.items() if k != "checkpoint"}


def merge_latency(blocks: list[dict | None]) -> dict | None:
    """The ``latency`` block of a merged run: seconds and users summed, per-user figures weighted by users (None
    where a shard did not count them); engine, device and dtype when every shard agrees (else ``"mixed"``)."""
    if not blocks or any(b is None for b in blocks):
        return None
    users = sum(b["users"] for b in blocks)
    seconds = sum(b["seconds"] for b in blocks)

    def weighted(key):
        if users == 0 or any(b[key] is None for b in blocks):
            return None
        return sum(b[key] * b["users"] for b in blocks) / users

    def same(key):
        values = {b[key] for b in blocks}
        return values.pop() if len(values) == 1 else "mixed"

    return {**blocks[0], "seconds": seconds, "users": users, "seconds_per_user": seconds / users if users else None,
            "prompts_per_user": weighted("prompts_per_user"), "tokens_per_user": weighted("tokens_per_user"),
            "engine": same("engine"), "device": same("device"), "dtype": same("dtype")}


def versions() -> dict:
    """Versions of Python and of the packages that can move a score (keyed by module name)."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__}
    for dist in ("spectra-cert", "torch", "transformers", "peft", "tokenizers"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    vllm = module_version("vllm")
    if vllm is not None:
        out["vllm"] = vllm
    return out
