"""Probe-run orchestration: inputs, batching, checkpoints and resume, shards and merge, outputs, manifest.

Outputs of ``--out OUT.csv`` (or ``.parquet``), written together and atomically at the end:

* ``OUT.csv``: the distribution table (``user_id`` then the categories in the categories file's order);
* ``OUT.scores.csv``: the raw scores S (same users; columns per method, see the scorers), DG: the text;
* ``OUT.manifest.json``: everything needed to reproduce the run (schema ``spectra.probe-manifest/1``).

**Checkpoints.** Every ``checkpoint_every`` users the finished rows are appended (and fsync'ed) to
``OUT.checkpoint.jsonl``. Its first line is a fingerprint of everything that determines the scores (model
and adapter paths with their safetensors names, sizes and mtimes, dtype, method, options, resolved
verbalizers, templates, categories, hierarchy, contexts file hash, shard; not the engine, device or batch
size, which move scores by less than 1e-5). A rerun with the same
fingerprint skips the users already there and appends only new ones, so an interrupted run resumes without
recomputing or duplicating users; a different fingerprint is an error (delete the checkpoint to start over).
A torn last line (a crash mid-write) is discarded. The checkpoint is removed once the outputs are written.

**Shards.** ``--shard i/n`` (0 <= i < n) takes the i-th of n contiguous blocks of the contexts file's rows,
rows ``floor(i N / n)`` to ``floor((i + 1) N / n) - 1``. :func:`merge_parts` checks that the parts come from
the same run, that every shard 0..n-1 is there exactly once and that no user is missing or repeated, and
concatenates them in shard order, which is the contexts file's order.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from spectra_eval.io import (USER_COL, DistributionTable, atomic_outputs, check_user_ids, read_frame, write_frame,
                             write_json)
from spectra_eval.validation import SpectraInputError, check_distributions
from spectra_probe.backends.base import check_adapter_dir, check_model_dir, sha256_file  # light: no torch

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = "spectra.probe-manifest/1"
CHECKPOINT_SCHEMA = "spectra.probe-checkpoint/1"
CONTEXT_COL = "context"


# ---------------------------------------------------------------- inputs


def read_contexts(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """``user_id`` and ``context`` of a CSV/Parquet file (ids unique and non-empty, contexts non-empty)."""
    frame = read_frame(path, string_columns=(USER_COL, CONTEXT_COL))
    for col in (USER_COL, CONTEXT_COL):
        if col not in frame.columns:
            raise SpectraInputError(f"{path}: no {col!r} column (columns: {', '.join(frame.columns[:8])})")
    if len(frame) == 0:
        raise SpectraInputError(f"{path}: the table has no rows")
    users = check_user_ids(frame, str(path))
    ctx = frame[CONTEXT_COL]
    bad = ctx.isna() | (ctx.astype(str).str.strip() == "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SpectraInputError(f"{path}: user {users[row]!r} (row {row + 1}), column {CONTEXT_COL!r}: empty context")
    return users, [str(c) for c in ctx]


def read_categories(path: str | os.PathLike) -> tuple[str, ...]:
    """Category labels, one per line of a ``.txt`` file (surrounding spaces and blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise SpectraInputError(f"{path}: no such categories file")
    if path.suffix.lower() != ".txt":
        raise SpectraInputError(f"{path}: unknown categories format {path.suffix!r} (use .txt, one label per line)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SpectraInputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    labels: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        label = line.strip()
        if not label:
            continue
        if label in first_line:
            raise SpectraInputError(f"{path}: line {number}: label {label!r} repeats line {first_line[label]}")
        if label == USER_COL:
            raise SpectraInputError(f"{path}: line {number}: {USER_COL!r} cannot be a category label")
        first_line[label] = number
        labels.append(label)
    if not labels:
        raise SpectraInputError(f"{path}: the categories file is empty")
    return tuple(labels)


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


def output_paths(out: str | os.PathLike) -> dict[str, Path]:
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


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ProbeConfig:
    """Everything a probe run needs (the CLI flags)."""

    model: str
    contexts: str
    categories: str
    method: str
    out: str
    adapter: str | None = None
    merge_adapter: bool = False
    hierarchy: str | None = None
    engine: str = "packed"
    backend: str = "transformers"
    device: str = "cpu"
    dtype: str | None = None
    temperature: float = 1.0
    batch_size: int = 8
    checkpoint_every: int = 64
    shard: str | None = None
    template: str | None = None
    verbalizers_yes: tuple[str, ...] | None = None
    verbalizers_no: tuple[str, ...] | None = None
    k: int = 5
    max_new_tokens: int = 64
    name_reduce: str = "sum"
    choice_labels: str = "letters"
    choice_mode: str = "auto"
    branches: str = "all"
    n_branches: int | None = None
    dg_cutoff: float = 0.8
    progress: bool = True


@dataclass(frozen=True)
class ProbeOutput:
    """What a finished run wrote."""

    table: DistributionTable
    scores: pd.DataFrame
    manifest: dict
    paths: dict


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__}
    for dist in ("spectra-cert", "torch", "transformers", "peft", "tokenizers", "vllm"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    return out


# ---------------------------------------------------------------- checkpoint


class Checkpoint:
    """Append-only JSON-lines file of finished users' rows, headed by the run fingerprint."""

    def __init__(self, path: Path, fingerprint: dict):
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
        from spectra_eval.io import write_text

        header = json.dumps({"schema": CHECKPOINT_SCHEMA, "fingerprint": self.fingerprint})
        write_text(self.path, "\n".join([header, *lines]) + "\n")

    def append(self, rows: list[dict]) -> None:
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


def _row(user: str, scores: np.ndarray, probs: np.ndarray, info: dict) -> dict:
    values = [v.item() if isinstance(v, np.generic) else v for v in scores.tolist()]
    return {"user_id": user, "scores": values, "probs": probs.tolist(), "info": info}


# ---------------------------------------------------------------- run


def _build_backend(config: ProbeConfig):
    """The backend named by ``config`` (model and adapter directories checked before anything loads)."""
    if not config.progress:  # no bars at all, the model loader's included
        with contextlib.suppress(ImportError):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
    from spectra_probe.backends import make_backend

    check_model_dir(config.model)
    if config.adapter:
        check_adapter_dir(config.adapter)
    kwargs = dict(model_dir=config.model, adapter_dir=config.adapter)
    if config.dtype is not None:  # otherwise each backend's default (transformers float32, vLLM bfloat16)
        kwargs["dtype"] = config.dtype
    if config.backend == "vllm":  # vLLM shares prefixes itself (prefix caching) and applies LoRA at run time
        if config.merge_adapter or config.engine != "packed":
            raise SpectraInputError("--merge-adapter and --engine naive apply to the transformers backend only")
    else:
        kwargs.update(merge_adapter=config.merge_adapter, device=config.device, engine=config.engine)
    return make_backend(config.backend, **kwargs)


def _portable(run_key: dict) -> dict:
    """The run key without machine-specific parts (absolute paths, file modification times)."""
    out = {k: v for k, v in run_key.items() if k not in ("model", "adapter")}
    for key in ("model_weights", "adapter_weights"):
        if out.get(key):
            out[key] = {name: stamp[0] for name, stamp in out[key].items()}  # file sizes only
    return out


def _weights_stamp(directory: str | None) -> dict | None:
    """Names, sizes and mtimes of a directory's safetensors files: a cheap guard against changed weights."""
    if not directory:
        return None
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(Path(directory).glob("*.safetensors"))}


def _score_users(scorer, backend, users, contexts, checkpoint: Checkpoint, config: ProbeConfig,
                 on_checkpoint: Callable[[int], None] | None) -> None:
    """Score the users not yet in ``checkpoint``, appending every ``checkpoint_every`` users."""
    from tqdm.auto import tqdm

    todo = [i for i, u in enumerate(users) if u not in checkpoint.rows]
    every = config.checkpoint_every or len(users)
    pending: list[dict] = []
    with tqdm(total=len(users), initial=len(users) - len(todo), unit="user", desc=f"probe {config.method}",
              disable=not config.progress or None, file=sys.stderr) as bar:
        for start in range(0, len(todo), config.batch_size):
            batch = todo[start:start + config.batch_size]
            out = scorer.score_batch(backend, [contexts[i] for i in batch])
            for j, i in enumerate(batch):
                pending.append(_row(users[i], out.scores[j], out.probs[j], out.info[j] if out.info else {}))
            bar.update(len(batch))
            if len(pending) >= every or start + config.batch_size >= len(todo):
                checkpoint.append(pending)
                pending = []
                if on_checkpoint is not None:
                    on_checkpoint(len(checkpoint.rows))


def run_probe(config: ProbeConfig, *, backend=None, on_checkpoint: Callable[[int], None] | None = None) -> ProbeOutput:
    """Probe every user of ``config.contexts`` (or its shard) and write the outputs (module docstring).

    ``backend`` may be given (an already built :class:`~spectra_probe.backends.base.Backend`) instead of
    being built from ``config``; ``on_checkpoint(n_done)`` is called after each checkpoint write (tests use
    it to interrupt a run).
    """
    from spectra_probe.hierarchy import load_hierarchy
    from spectra_probe.scorers import DEFAULT_NO, DEFAULT_YES, ScorerOptions, make_scorer
    from spectra_probe.templates import PromptBuilder, PromptTemplates

    # inputs first: bad input fails before any model loads
    paths = output_paths(config.out)
    users, contexts = read_contexts(config.contexts)
    categories = read_categories(config.categories)
    hierarchy = load_hierarchy(config.hierarchy, categories) if config.hierarchy else None
    templates = PromptTemplates.load(config.template) if config.template else PromptTemplates()
    shard = parse_shard(config.shard)
    for flag, value, low in (("batch-size", config.batch_size, 1), ("max-new-tokens", config.max_new_tokens, 1),
                             ("checkpoint-every", config.checkpoint_every, 0), ("k", config.k, 1)):
        if value < low:
            raise SpectraInputError(f"--{flag} must be >= {low}, got {value}")
    n_total = len(users)
    rows = shard_rows(n_total, shard)
    users, contexts = users[rows], contexts[rows]
    options = ScorerOptions(
        tau=config.temperature, yes=tuple(config.verbalizers_yes or DEFAULT_YES),
        no=tuple(config.verbalizers_no or DEFAULT_NO), name_reduce=config.name_reduce,
        choice_labels=config.choice_labels, choice_mode=config.choice_mode, k=config.k,
        max_new_tokens=config.max_new_tokens, dg_cutoff=config.dg_cutoff, branches=config.branches,
        n_branches=config.n_branches,
    )
    backend = backend if backend is not None else _build_backend(config)
    scorer = make_scorer(config.method, categories, PromptBuilder(templates, backend.tokenizer), options, hierarchy)

    # everything that determines the scores (not the engine, device or batching, which change them < 1e-5)
    run_key = json.loads(json.dumps({
        "model": str(Path(config.model).resolve()),
        "model_weights": _weights_stamp(config.model),
        "adapter": str(Path(config.adapter).resolve()) if config.adapter else None,
        "adapter_weights": _weights_stamp(config.adapter),
        "merge_adapter": config.merge_adapter,
        "dtype": config.dtype,
        "backend": config.backend,
        "method": config.method,
        "scorer": scorer.describe(),
        "template": templates.to_dict(),
        "categories": list(categories),
        "hierarchy": hierarchy.to_dict(categories) if hierarchy else None,
        "contexts_sha256": sha256_file(config.contexts),
    }))
    checkpoint = Checkpoint(paths["checkpoint"], {**run_key, "shard": list(shard) if shard else None})
    checkpoint.load()
    shard_users = set(users)
    stale = [u for u in checkpoint.rows if u not in shard_users]
    if stale:
        raise SpectraInputError(f"{checkpoint.path}: user {stale[0]!r} is not in this run; delete the checkpoint")
    resumed = len(checkpoint.rows)
    if resumed:
        log.info("resuming: %d of %d users already in %s", resumed, len(users), checkpoint.path)

    started = time.perf_counter()
    _score_users(scorer, backend, users, contexts, checkpoint, config, on_checkpoint)
    elapsed = time.perf_counter() - started

    ordered = [checkpoint.rows[u] for u in users]
    probs = check_distributions([r["probs"] for r in ordered], source=str(paths["distribution"]), users=users,
                                categories=categories)
    table = DistributionTable(users=users, categories=categories, probs=probs, source=str(paths["distribution"]))
    scores = pd.DataFrame([r["scores"] for r in ordered], columns=list(scorer.score_columns))
    if config.method != "dg":
        scores = scores.astype(np.float64)
    scores.insert(0, USER_COL, users)
    infos = [r["info"] for r in ordered]

    describe = backend.describe()
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": config.method,
        "model": str(config.model),
        "adapter": config.adapter,
        "adapter_sha256": describe.get("adapter_sha256"),
        "merge_adapter": config.merge_adapter,
        "backend": describe,
        "engine": describe.get("engine", config.backend),
        "tau": config.temperature,
        "scorer": scorer.describe(),
        "template": templates.to_dict(),
        "template_file": config.template,
        "contexts": str(config.contexts),
        "contexts_sha256": run_key["contexts_sha256"],
        "categories_file": str(config.categories),
        "categories": list(categories),
        "hierarchy": run_key["hierarchy"],
        "shard": {"index": shard[0], "count": shard[1]} if shard else None,
        "n_users_total": n_total,
        "n_users": len(users),
        "users_resumed": resumed,
        "seconds": elapsed,
        "fallback_suffixes": int(sum(i.get("fallback", 0) for i in infos)),
        "outputs": {k: str(v) for k, v in paths.items() if k != "checkpoint"},
        "fingerprint_sha256": _hash(run_key),
        # shards may run on other machines (other paths, copied files): merge on what is portable
        "merge_sha256": _hash(_portable(run_key)),
        "versions": _versions(),
    }
    if config.method == "dg":
        from spectra_probe.dg import summarise

        manifest["dg_parse"] = summarise(infos)
    _write_outputs(paths, table, scores, manifest)
    checkpoint.remove()
    return ProbeOutput(table, scores, manifest, paths)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _write_outputs(paths: dict, table: DistributionTable, scores: pd.DataFrame, manifest: dict) -> None:
    out_dir = paths["distribution"].parent
    with atomic_outputs(out_dir) as stage:
        write_frame(stage / paths["distribution"].name, table.to_frame())
        write_frame(stage / paths["scores"].name, scores)
        write_json(stage / paths["manifest"].name, manifest)


# ---------------------------------------------------------------- merge


def merge_parts(out: str | os.PathLike, parts: Sequence[str | os.PathLike]) -> ProbeOutput:
    """Concatenate the outputs of ``--shard i/n`` runs (checks in the module docstring)."""
    from spectra_eval.io import read_distribution_table

    paths = output_paths(out)
    if not parts:
        raise SpectraInputError("merge: no part files given")
    loaded = []
    for part in parts:
        p = output_paths(part)
        if not p["manifest"].is_file():
            raise SpectraInputError(f"{part}: no manifest {p['manifest'].name} next to it (is it a probe output?)")
        manifest = json.loads(p["manifest"].read_text(encoding="utf-8"))
        if manifest.get("schema") != MANIFEST_SCHEMA:
            raise SpectraInputError(f"{p['manifest']}: not a probe manifest")
        if not manifest.get("shard"):
            raise SpectraInputError(f"{part}: not a shard output (run with --shard i/n)")
        table = read_distribution_table(part)
        scores = read_frame(p["scores"])
        loaded.append((part, manifest, table, scores))

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
    manifest = {
        **first,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "shard": None,
        "merged_from": [str(p) for p, _, _, _ in loaded],
        "n_users": len(users),
        "users_resumed": sum(m["users_resumed"] for _, m, _, _ in loaded),
        "seconds": sum(m["seconds"] for _, m, _, _ in loaded),
        "fallback_suffixes": sum(m["fallback_suffixes"] for _, m, _, _ in loaded),
        "outputs": {k: str(v) for k, v in paths.items() if k != "checkpoint"},
    }
    if "dg_parse" in first:
        manifest["dg_parse"] = _merge_dg(m["dg_parse"] for _, m, _, _ in loaded)
    _write_outputs(paths, table, scores, manifest)
    return ProbeOutput(table, scores, manifest, paths)


def _merge_dg(summaries) -> dict:
    summaries = list(summaries)
    n = sum(s["n_users"] for s in summaries)
    out = {"n_users": n, "outcomes": {o: sum(s["outcomes"][o] for s in summaries) for o in summaries[0]["outcomes"]}}
    lengths = [s["mean_list_length"] * s["n_users"] for s in summaries if s["n_users"]]
    out["mean_list_length"] = sum(lengths) / n if n else None
    for key in summaries[0]:
        if key.startswith("n_") and key != "n_users":
            out[key] = sum(s[key] for s in summaries)
    return out


def config_from_args(args) -> ProbeConfig:
    """A :class:`ProbeConfig` from parsed CLI arguments (same names)."""
    names = {f.name for f in dataclasses.fields(ProbeConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    for key in ("verbalizers_yes", "verbalizers_no"):
        if key in values:
            values[key] = tuple(values[key])
    return ProbeConfig(**values)
