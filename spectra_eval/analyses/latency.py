r"""Wall-clock latency of probe runs (paper Appendix D.4, Table 11) from their manifests.

Every ``spectra probe`` manifest (``OUT.manifest.json``) carries a ``latency`` block: the scoring seconds of the
session, the users it scored, prompts and tokens per user (each prompt counted as if run alone), engine,
device and dtype. :func:`latency` gathers runs into one table and, for each (method, engine) with runs at two
or more K, fits the paper's linear cost model by least squares over the runs:

.. math:: s/\mathrm{user} = a + b\,K

The packed-vs-naive ratio of a method is the naive engine's s/user divided by the packed engine's at every K
where both ran (mean over those K; at each K the packed run with the naive run's number of users, when there
is one, else the first), and, when both engines have a fit, the ratio of the slopes b.

Population: each row is about one run on one machine; times from different machines or from a busy machine
are not comparable (the row names device and dtype).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval.io import check_schema, json_errors, json_safe, read_json
from spectra_eval.results import Result
from spectra_eval.validation import SpectraInputError

SCHEMA = "spectra.latency/1"
MANIFEST_SCHEMA = "spectra.probe-manifest/1"
COLUMNS = ("run", "method", "engine", "k", "users", "seconds", "seconds_per_user", "prompts_per_user",
           "tokens_per_user", "device", "dtype")


def run_from_manifest(manifest: Mapping, name: str) -> dict:
    """One latency row from a probe manifest (it must have the ``latency`` block)."""
    schema = manifest.get("schema") if isinstance(manifest, Mapping) else None
    if str(schema).split(".")[:2] != ["spectra", "probe-manifest/1"]:  # check_schema's pattern has no hyphen
        raise SpectraInputError(f"{name}: not a probe manifest (schema {schema!r}, expected {MANIFEST_SCHEMA!r})")
    with json_errors(name):
        lat = manifest.get("latency")
        if lat is None:
            raise SpectraInputError(f"{name}: no 'latency' block (written by an older spectra probe)")
        return {"run": name, "method": manifest["method"], "engine": lat["engine"], "k": len(manifest["categories"]),
                "users": int(lat["users"]), "seconds": float(lat["seconds"]),
                "seconds_per_user": lat["seconds_per_user"], "prompts_per_user": lat["prompts_per_user"],
                "tokens_per_user": lat["tokens_per_user"], "device": lat["device"], "dtype": lat["dtype"]}


def fit_linear(k: Sequence[float], y: Sequence[float]) -> dict:
    """Least-squares ``y = a + b k`` (``numpy.linalg.lstsq`` on [1, k]); needs two distinct k."""
    ks, ys = np.asarray(k, dtype=float), np.asarray(y, dtype=float)
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(ks), ks]), ys, rcond=None)
    return {"a": float(a), "b": float(b), "n_runs": len(ks), "k": sorted({int(x) for x in ks})}


@dataclass(frozen=True, repr=False)
class Latency(Result):
    """Latency rows (one per probe run), the linear fits and the packed-vs-naive ratios."""

    runs: tuple[dict, ...]
    fits: Mapping[str, Mapping[str, dict]]
    ratios: Mapping[str, dict]

    def to_dict(self) -> dict:
        return json_safe({"schema": SCHEMA, "runs": list(self.runs), "fits": self.fits, "ratios": self.ratios,
                          "model": "seconds_per_user = a + b * K, least squares over the runs of a method and engine",
                          "population": "each run on its own machine (device, dtype); timings of one machine only "
                                        "compare with each other"})

    @classmethod
    def from_dict(cls, doc: Mapping, source: str = "latency.json") -> "Latency":
        """A ``latency.json`` document (or what :func:`read_latency` reads); an error when it holds no run."""
        result = read_latency(doc, source)
        if result is None:
            raise SpectraInputError(f"{source}: no probe run with a latency block")
        return result

    def summary(self) -> str:
        lines = [f"latency of {len(self.runs)} probe run(s)"]
        for r in self.runs:
            lines.append(f"  {r['run']}: {r['method']} ({r['engine']}, {r['device']}, {r['dtype']}), K = {r['k']}: "
                         f"{_fmt(r['seconds_per_user'])} s/user, {_fmt(r['prompts_per_user'], '.1f')} prompts/user, "
                         f"{_fmt(r['tokens_per_user'], '.0f')} tokens/user")
        for method, fits in self.fits.items():
            for engine, f in fits.items():
                lines.append(f"  fit {method} ({engine}): s/user = {f['a']:.4g} + {f['b']:.4g} K over K = {f['k']}")
        for method, r in self.ratios.items():
            lines.append(f"  {method}: naive / packed s/user = {_fmt(r['mean'], '.2f')} at K = {r['k']}")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.runs), columns=list(COLUMNS))

    def outputs(self) -> dict[str, Any]:
        return {"latency.json": self.to_dict()}


def _fmt(x, spec: str = ".4f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def latency(runs: Sequence[Mapping] | Mapping[str, Any]) -> Latency:
    """Latency rows from manifests (``{name: manifest dict or path}``) or ready rows; fits and ratios."""
    if isinstance(runs, Mapping):
        rows = []
        for name, m in runs.items():
            manifest = read_json(m) if isinstance(m, (str, Path)) else m
            rows.append(run_from_manifest(manifest, name))
    else:
        rows = [dict(r) for r in runs]
    if not rows:
        raise SpectraInputError("no probe runs to time")
    fits: dict = {}
    for (method, engine), group in _groups(rows):
        timed = [r for r in group if r["seconds_per_user"] is not None]
        if len({r["k"] for r in timed}) >= 2:
            fits.setdefault(method, {})[engine] = fit_linear([r["k"] for r in timed],
                                                             [r["seconds_per_user"] for r in timed])
    ratios: dict = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        timed = [r for r in rows if r["method"] == method and r["seconds_per_user"]]
        pairs = {}  # K -> (naive, packed): the packed run of that K with the naive run's user count when there is one
        for naive in (r for r in timed if r["engine"] == "naive"):
            packed = [r for r in timed if r["engine"] == "packed" and r["k"] == naive["k"]]
            if packed:
                pairs[naive["k"]] = (naive, min(packed, key=lambda r: (r["users"] != naive["users"], 0)))
        common = sorted(pairs)
        if common:
            each = [pairs[k][0]["seconds_per_user"] / pairs[k][1]["seconds_per_user"] for k in common]
            slope = None
            f = fits.get(method, {})
            if "packed" in f and "naive" in f and f["packed"]["b"] > 0:
                slope = f["naive"]["b"] / f["packed"]["b"]
            ratios[method] = {"k": common, "each": each, "mean": float(np.mean(each)), "slope_ratio": slope}
    return Latency(tuple(rows), fits, ratios)


def _groups(rows):
    keys = dict.fromkeys((r["method"], r["engine"]) for r in rows)
    return [((m, e), [r for r in rows if r["method"] == m and r["engine"] == e]) for m, e in keys]


def read_latency(doc: Mapping, source: str = "latency.json") -> Latency | None:
    """A ``latency.json`` document, or ``{"runs": {file: manifest or latency document}}`` (``spectra report``
    reads ``latency.json`` and every ``*.manifest.json`` of a directory this way; manifests without a
    ``latency`` block, written before it existed, are left out, and None is returned when nothing is left)."""
    if "schema" in doc:
        check_schema(doc, SCHEMA, source)
        with json_errors(source):
            return latency(list(doc["runs"]))
    rows: list[dict] = []
    with json_errors(source):
        for name, item in doc["runs"].items():
            if isinstance(item, Mapping) and str(item.get("schema", "")).startswith("spectra.latency/"):
                rows += list(item["runs"])
            elif isinstance(item, Mapping) and item.get("latency") is not None:
                rows.append(run_from_manifest(item, Path(name).name.removesuffix(".manifest.json")))
    return latency(rows) if rows else None
