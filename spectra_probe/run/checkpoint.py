"""Resume: the run fingerprint and the append-only checkpoint of finished rows.

Every ``checkpoint_every`` rows the finished rows are appended (and fsync'ed) to ``OUT.checkpoint.jsonl``.
Its first line is the fingerprint of everything that determines the scores (:func:`run_key`). A rerun with
the same fingerprint skips the rows already there and appends only new ones, so an interrupted run resumes
without recomputing or duplicating a user; a different fingerprint is an error (delete the checkpoint to
start over). A torn last line (a crash mid-write) is discarded. The runner removes the checkpoint once the
outputs are written.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from spectra_eval.io import write_text
from spectra_eval.validation import SpectraInputError
from spectra_probe.templates import STEER_FIELDS

log = logging.getLogger(__name__)

CHECKPOINT_SCHEMA = "spectra.probe-checkpoint/1"


def run_key(config, inputs, scorer) -> dict:
    """Everything that determines the scores, JSON-ready.

    Model and adapter paths with their safetensors names, sizes and mtimes, dtype, backend, method, the
    scorer's settings (resolved verbalizers included), templates, categories, hierarchy and the contexts
    file's hash, and with steering requests the requests file's hash (the steering templates count only then,
    so an unsteered run's key does not depend on them); not the engine, device or batch size, which move
    scores by less than 1e-5.
    """
    steered = inputs.requests_sha256 is not None
    template = {k: v for k, v in inputs.templates.to_dict().items() if steered or k not in STEER_FIELDS}
    key = {
        "model": str(Path(config.model).resolve()),
        "model_weights": _weights_stamp(config.model),
        "adapter": str(Path(config.adapter).resolve()) if config.adapter else None,
        "adapter_weights": _weights_stamp(config.adapter),
        "merge_adapter": config.merge_adapter,
        "dtype": config.dtype,
        "backend": config.backend,
        "method": config.method,
        "scorer": scorer.describe(),
        "template": template,
        "categories": list(inputs.categories),
        "hierarchy": inputs.hierarchy.to_dict(inputs.categories) if inputs.hierarchy else None,
        "contexts_sha256": inputs.contexts_sha256,
    }
    if steered:
        key["requests_sha256"] = inputs.requests_sha256
    return json.loads(json.dumps(key))  # tuples become lists, as they will be when read back


def portable(key: dict) -> dict:
    """The run key without machine-specific parts (absolute paths, file modification times).

    Shards may run on other machines (other paths, copied files): they merge on what is portable.
    """
    out = {k: v for k, v in key.items() if k not in ("model", "adapter")}
    for name in ("model_weights", "adapter_weights"):
        if out.get(name):
            out[name] = {file: stamp[0] for file, stamp in out[name].items()}  # file sizes only
    return out


def digest(obj) -> str:
    """sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _weights_stamp(directory: str | None) -> dict | None:
    """Names, sizes and mtimes of a directory's safetensors files: a cheap guard against changed weights."""
    if not directory:
        return None
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(Path(directory).glob("*.safetensors"))}


def make_row(user: str, scores: np.ndarray, probs: np.ndarray, info: dict) -> dict:
    """One finished row as the checkpoint stores it (JSON-ready)."""
    values = [v.item() if isinstance(v, np.generic) else v for v in scores.tolist()]
    return {"user_id": user, "scores": values, "probs": probs.tolist(), "info": info}


class Checkpoint:
    """Append-only JSON-lines file of finished users' rows, headed by the run fingerprint."""

    def __init__(self, path: Path, fingerprint: dict):
        """An empty checkpoint at ``path``; :meth:`load` reads or creates the file."""
        self.path = path
        self.fingerprint = fingerprint
        self.rows: dict[str, dict] = {}

    def load(self) -> None:
        """Read rows of a previous run with the same fingerprint; rewrite the file without a torn last line."""
        if not self.path.exists():
            self._write_lines([])
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if not header or header.get("schema") != CHECKPOINT_SCHEMA:
            raise SpectraInputError(f"{self.path}: not a probe checkpoint; delete it to start over")
        if header.get("fingerprint") != self.fingerprint:
            theirs = header.get("fingerprint") or {}
            diff = sorted(k for k in set(theirs) | set(self.fingerprint) if theirs.get(k) != self.fingerprint.get(k))
            raise SpectraInputError(
                f"{self.path}: checkpoint of a different run ({', '.join(diff[:3])} differ); delete it to start over"
            )
        kept = []
        for number, line in enumerate(lines[1:], start=2):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):  # torn final line from an interrupted write
                    log.warning("%s: discarding an incomplete last line", self.path)
                    break
                raise SpectraInputError(
                    f"{self.path}: line {number} is not valid JSON; delete the checkpoint"
                ) from None
            self.rows[row["user_id"]] = row
            kept.append(line)
        self._write_lines(kept)

    def _write_lines(self, lines: list[str]) -> None:
        header = json.dumps({"schema": CHECKPOINT_SCHEMA, "fingerprint": self.fingerprint})
        write_text(self.path, "\n".join([header, *lines]) + "\n")

    def append(self, rows: list[dict]) -> None:
        """Append finished rows and fsync, so a crash loses at most the rows not yet appended."""
        if not rows:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
                self.rows[row["user_id"]] = row
            fh.flush()
            os.fsync(fh.fileno())

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
