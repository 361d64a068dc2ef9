"""Shards: ``--shard i/n`` takes one contiguous block of the contexts file's rows; ``--merge`` joins the parts.

Shard ``i`` of ``n`` (0 <= i < n) holds rows ``floor(i N / n)`` to ``floor((i + 1) N / n) - 1``.
:func:`merge_parts` checks that the parts come from the same run (their portable fingerprints agree), that
every shard 0..n-1 is there exactly once and that no user is missing or repeated, and concatenates them in
shard order, which is the contexts file's order.
"""
from __future__ import annotations

import json
import os
import time
from typing import Sequence

import numpy as np
import pandas as pd

from spectra_eval.io import DistributionTable, read_distribution_table, read_frame
from spectra_eval.validation import SpectraInputError
from spectra_probe.scoring import scorer_class

from .outputs import MANIFEST_SCHEMA, ProbeOutput, final_paths, merge_latency, output_paths, write_outputs


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SpectraInputError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise SpectraInputError(f"--shard {text}: need 0 <= i < n")
    return i, n


def shard_rows(n_rows: int, shard: tuple[int, int] | None) -> slice:
    """The contiguous block of rows of shard ``(i, n)`` (all rows without a shard)."""
    if shard is None:
        return slice(0, n_rows)
    i, n = shard
    return slice(i * n_rows // n, (i + 1) * n_rows // n)


def _read_part(part) -> tuple[dict, DistributionTable, pd.DataFrame]:
    paths = output_paths(part)
    if not paths["manifest"].is_file():
        raise SpectraInputError(f"{part}: no manifest {paths['manifest'].name} next to it (is it a probe output?)")
    manifest = json.loads(paths["manifest"].read_text(encoding="utf-8"))
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise SpectraInputError(f"{paths['manifest']}: not a probe manifest")
    if not manifest.get("shard"):
        raise SpectraInputError(f"{part}: not a shard output (run with --shard i/n)")
    return manifest, read_distribution_table(part), read_frame(paths["scores"])


def merge_parts(out: str | os.PathLike, parts: Sequence[str | os.PathLike]) -> ProbeOutput:
    """Concatenate the outputs of ``--shard i/n`` runs into ``out`` (checks in the module docstring)."""
    paths = output_paths(out)
    if not parts:
        raise SpectraInputError("merge: no part files given")
    loaded = [(part, *_read_part(part)) for part in parts]

    first = loaded[0][1]
    count = first["shard"]["count"]
    seen: dict[int, str] = {}
    for part, manifest, table, _ in loaded:
        if manifest["merge_sha256"] != first["merge_sha256"]:
            raise SpectraInputError(f"{part}: comes from a different run than {loaded[0][0]} (settings differ)")
        index = manifest["shard"]["index"]
        if manifest["shard"]["count"] != count:
            raise SpectraInputError(f"{part}: shard {index}/{manifest['shard']['count']} does not match n = {count}")
        if index in seen:
            raise SpectraInputError(f"{part}: shard {index}/{count} was already given ({seen[index]})")
        seen[index] = str(part)
        if table.categories != tuple(first["categories"]):
            raise SpectraInputError(f"{part}: categories differ from {loaded[0][0]}")
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise SpectraInputError(f"merge: shard {missing[0]}/{count} is missing")
    loaded.sort(key=lambda x: x[1]["shard"]["index"])

    users = np.concatenate([t.users for _, _, t, _ in loaded])
    dup = pd.Series(users).duplicated().to_numpy()
    if dup.any():
        raise SpectraInputError(f"merge: user {users[int(np.flatnonzero(dup)[0])]!r} appears in more than one part")
    if len(users) != first["n_users_total"]:
        raise SpectraInputError(
            f"merge: {len(users)} users in the parts but the contexts file has {first['n_users_total']}"
        )
    probs = np.concatenate([t.probs for _, _, t, _ in loaded])
    table = DistributionTable(users=users, categories=tuple(first["categories"]), probs=probs,
                              source=str(paths["distribution"]))
    scores = pd.concat([s for _, _, _, s in loaded], ignore_index=True)
    manifests = [m for _, m, _, _ in loaded]
    manifest = {
        **first,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "shard": None,
        "merged_from": [str(p) for p, _, _, _ in loaded],
        "n_users": len(users),
        "users_resumed": sum(m["users_resumed"] for m in manifests),
        "seconds": sum(m["seconds"] for m in manifests),
        "latency": merge_latency([m.get("latency") for m in manifests]),
        "fallback_suffixes": sum(m["fallback_suffixes"] for m in manifests),
        "outputs": final_paths(paths),
    }
    key = scorer_class(first["method"]).summary_key
    if key in first:
        manifest[key] = scorer_class(first["method"]).merge_summaries([m[key] for m in manifests])
    return write_outputs(paths, table, scores, manifest)
