"""Robustness panels (paper Appendix D, Table 15, Figure 6): one table of catalogue metrics over several runs.

Each run is one ``spectra evaluate`` output (``metrics.json``) at one setting of an axis (taxonomy size, context
window x horizon cell, prompt template, verbalizer set, training stage, base model). A panel copies, per run
(row) and method, the chosen metrics' ``{mean, ci_low, ci_high}`` straight from that run's ``metrics.json``
(no number is recomputed), and adds:

* ``rows[LABEL].ordering_holds``: the probe's cohort-mean JS is below the reference's in that run, i.e. the
  run's paired mean difference ``comparisons["PROBE vs REFERENCE"].js.mean_diff < 0``; ``rows[LABEL].p`` is
  that comparison's paired test p (the test named in the run's settings, Wilcoxon signed-rank by default);
* ``spread[METHOD][METRIC] = {min, max, sd, n}`` over the runs that report it: ``sd`` is the sample standard
  deviation (ddof = 1; None for a single run) of the runs' means. The spread is across settings (e.g. N
  paraphrases), not a sampling interval: each run's own CI says how precise that run is.

Every number is about the users of each run's evaluation (``rows[LABEL].n_users``); runs with different K
(taxonomy panels) are not comparable across rows in JS, only within a row (probe vs reference).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval.io import check_schema, json_errors, json_safe, read_json
from spectra_eval.results import Result
from spectra_eval.validation import SpectraInputError

SCHEMA = "spectra.panel/1"
METRICS_SCHEMA = "spectra.metrics/1"
DEFAULT_METRICS = ("ndcg@10", "js")
#: a context-window x horizon label (``CW3-LT``): the axis Figure 6 draws
CELL = re.compile(r"^CW(\d+)-(LT|ST)$")


@dataclass(frozen=True)
class PanelRow:
    """One run: per method, per metric ``{mean, ci_low, ci_high}`` (CI None for a metric without one)."""

    methods: Mapping[str, Mapping[str, Mapping[str, float | None]]]
    ordering_holds: bool | None
    p: float | None
    n_users: int
    n_categories: int
    source: str

    def to_dict(self) -> dict:
        return {"methods": {m: {k: dict(v) for k, v in ms.items()} for m, ms in self.methods.items()},
                "ordering_holds": self.ordering_holds, "p": self.p, "n_users": self.n_users,
                "n_categories": self.n_categories, "source": self.source}


@dataclass(frozen=True, repr=False)
class Panel(Result):
    """A robustness panel (``panel.json``, schema ``spectra.panel/1``); see the module docstring."""

    axis: str
    reference: str
    probe: str
    metrics: tuple[str, ...]
    runs: tuple[str, ...]
    rows: Mapping[str, PanelRow]
    spread: Mapping[str, Mapping[str, Mapping[str, Any]]]  # {min, max, sd, n}; sd None for one run
    name: str = "panel"
    test: str | None = None

    # ---- Result protocol
    def to_dict(self) -> dict:
        return json_safe({"schema": SCHEMA, "name": self.name, "axis": self.axis, "reference": self.reference,
                          "probe": self.probe, "metrics": list(self.metrics), "runs": list(self.runs),
                          "rows": {label: self.rows[label].to_dict() for label in self.runs},
                          "spread": {m: {k: dict(v) for k, v in ms.items()} for m, ms in self.spread.items()},
                          "test": self.test,
                          "ordering": f"{self.probe} has lower cohort-mean JS than {self.reference} in the run",
                          "population": "each row: the users of that run's evaluation (n_users)"})

    @classmethod
    def from_dict(cls, doc: Mapping, source: str = "panel.json") -> "Panel":
        check_schema(doc, SCHEMA, source)
        with json_errors(source):
            rows = {label: PanelRow(r["methods"], r["ordering_holds"], r["p"], int(r["n_users"]),
                                    int(r["n_categories"]), r.get("source", "?"))
                    for label, r in doc["rows"].items()}
            return cls(doc["axis"], doc["reference"], doc["probe"], tuple(doc["metrics"]), tuple(doc["runs"]),
                       rows, doc["spread"], doc.get("name", "panel"), doc.get("test"))

    def summary(self) -> str:
        head = (f"panel {self.name!r} along {self.axis}: {len(self.runs)} runs; {self.probe} vs {self.reference} "
                f"JS ordering holds in {self.holds} of {len(self.runs)}")
        lines = [head]
        for label in self.runs:
            r = self.rows[label]
            cells = [f"{m} {k} {_fmt(r.methods.get(m, {}).get(k, {}).get('mean'))}"
                     for m in (self.probe, self.reference) for k in self.metrics]
            lines.append(f"  {label}: " + "; ".join(cells) + f"; ordering {'holds' if r.ordering_holds else 'fails'}"
                         f" (p = {_fmt(r.p, '.2g')})")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """One row per (run, method, metric): mean, ci_low, ci_high, and the run's ordering and p."""
        rows = []
        for label in self.runs:
            r = self.rows[label]
            for method, ms in r.methods.items():
                for key, v in ms.items():
                    rows.append({"run": label, "method": method, "metric": key, **v,
                                 "ordering_holds": r.ordering_holds, "p": r.p})
        return pd.DataFrame(rows, columns=["run", "method", "metric", "mean", "ci_low", "ci_high",
                                           "ordering_holds", "p"])

    @property
    def file(self) -> str:
        """``panel.json``, or ``panel-NAME.json`` for a named panel (several panels in one report directory)."""
        return "panel.json" if self.name == "panel" else f"panel-{self.name}.json"

    def outputs(self) -> dict[str, Any]:
        return {self.file: self.to_dict()}

    # ---- readings
    @property
    def holds(self) -> int:
        return sum(bool(self.rows[label].ordering_holds) for label in self.runs)

    @property
    def methods(self) -> list[str]:
        """Methods of any row, in first-appearance order."""
        return list(dict.fromkeys(m for label in self.runs for m in self.rows[label].methods))

    def cells(self) -> dict[str, tuple[int, str]] | None:
        """Run label -> (context window, horizon) when every label is a ``CW<n>-<LT|ST>`` cell, else None."""
        found = {label: m for label in self.runs if (m := CELL.match(label))}
        if len(found) < len(self.runs):
            return None
        return {label: (int(m.group(1)), m.group(2)) for label, m in found.items()}

    def ordering_sentence(self) -> str:
        """In how many runs the probe-vs-reference JS ordering holds, the largest paired p, and where it fails."""
        ps = [p for r in self.runs if (p := self.rows[r].p) is not None]
        fails = [r for r in self.runs if self.rows[r].ordering_holds is False]
        text = (f"Along {self.axis}, {self.probe} has lower mean JS than {self.reference} in {self.holds} of "
                f"{len(self.runs)} runs")
        if ps:
            text += f" (largest paired p = {max(ps):.2g})"
        if fails:
            text += f"; it does not in {', '.join(fails)}"
        return text + "."

    def sentence(self) -> str:
        """What the panel shows, in one honest sentence computed from its numbers: the ordering and the spread."""
        text = self.ordering_sentence()[:-1]
        parts = []
        for key in self.metrics:
            s = self.spread.get(self.probe, {}).get(key)
            if s and s.get("n", 0) > 1:
                parts.append(f"{key} spans {s['min']:.3f}–{s['max']:.3f} (range {s['max'] - s['min']:.3f}, "
                             f"SD {s['sd']:.3f})")
        if parts:
            text += f". Across the runs, {self.probe}'s " + " and ".join(parts)
        return text + "."


def _fmt(x, spec: str = ".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _metric_value(block: Mapping, key: str, source: str) -> dict:
    """``{mean, ci_low, ci_high}`` of ``key`` in a method's metrics block: a ``{mean, ...}`` dict is copied, a
    number (e.g. ``top1_ece``) has no CI; dotted keys reach nested numbers (``ece.overall``)."""
    value: Any = block
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise SpectraInputError(f"{source}: metric {key!r} is not in this metrics.json "
                                    f"(have {', '.join(k for k in block if not k.startswith('_'))})")
        value = value[part]
    if isinstance(value, Mapping):
        if "mean" not in value:
            raise SpectraInputError(f"{source}: metric {key!r} is a block, not a number (name one of its keys: "
                                    f"{', '.join(map(str, value))})")
        return {"mean": value["mean"], "ci_low": value.get("ci_low"), "ci_high": value.get("ci_high")}
    if value is not None and not isinstance(value, (int, float)):
        raise SpectraInputError(f"{source}: metric {key!r} is not a number")
    return {"mean": value, "ci_low": None, "ci_high": None}


def load_metrics(run: str | os.PathLike | Mapping) -> tuple[dict, str]:
    """A run's metrics document: a dict, a ``metrics.json`` file, or a directory holding one."""
    if isinstance(run, Mapping):
        return dict(run), "<memory>"
    if hasattr(run, "to_dict"):
        return run.to_dict(), "<memory>"
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.exists():
        raise SpectraInputError(f"{path}: no such file (expected a spectra evaluate --out directory)")
    doc = read_json(path)
    check_schema(doc, METRICS_SCHEMA, str(path))
    return doc, str(path)


def panel(runs: Mapping[str, Any], axis: str, *, reference: str | None = None, probe: str | None = None,
          metrics: Sequence[str] = DEFAULT_METRICS, methods: Sequence[str] | None = None,
          name: str = "panel") -> Panel:
    """Build a :class:`Panel` from ``runs`` (label -> metrics dict, :class:`~spectra_eval.evaluation.Evaluation`,
    ``metrics.json`` path or its directory), rows in the order given.

    ``reference`` defaults to the first run's reference; ``probe`` to the first other method of the first run
    (it needs a ``PROBE vs REFERENCE`` comparison in every run); ``methods`` limits the columns (default all).
    """
    if not runs:
        raise SpectraInputError("a panel needs at least one run (--run LABEL=DIR)")
    if not metrics:
        raise SpectraInputError("a panel needs at least one metric")
    docs = {label: load_metrics(run) for label, run in runs.items()}
    first, _ = next(iter(docs.values()))
    reference = reference or first["settings"]["reference"]
    probe = probe or next((m for m in first["methods"] if m != reference), None)
    if probe is None:
        raise SpectraInputError(f"{next(iter(docs))}: no method besides the reference {reference!r}")
    rows: dict[str, PanelRow] = {}
    tests = set()
    for label, (doc, source) in docs.items():
        with json_errors(source):
            where = f"{source} (run {label!r})"
            have = doc["methods"]
            for needed in (reference, probe):
                if needed not in have:
                    raise SpectraInputError(f"{where}: method {needed!r} is not in this run ({', '.join(have)})")
            chosen = [m for m in (methods or have) if m in have]
            block = {m: {k: _metric_value(have[m], k, f"{where}, method {m!r}") for k in metrics} for m in chosen}
            comp = doc.get("comparisons", {}).get(f"{probe} vs {reference}")
            if comp is None:
                if doc["settings"].get("reference") != reference:
                    raise SpectraInputError(f"{where}: its reference is {doc['settings'].get('reference')!r}, not "
                                            f"{reference!r}; evaluate it with --reference {reference}")
                raise SpectraInputError(f"{where}: no comparison {probe!r} vs {reference!r}")
            diff = comp["js"]["mean_diff"]
            rows[label] = PanelRow(block, None if diff is None else bool(diff < 0), comp["js"].get("p"),
                                   int(doc["n_users"]), int(doc["n_categories"]), source)
            tests.add(doc["settings"].get("test"))
    return Panel(axis, reference, probe, tuple(metrics), tuple(runs), rows, spread_of(rows, metrics), name,
                 tests.pop() if len(tests) == 1 else None)


def spread_of(rows: Mapping[str, PanelRow], metrics: Sequence[str]) -> dict:
    """Per method and metric, min, max, sample SD (ddof = 1) and count of the runs' means."""
    out: dict = {}
    for method in dict.fromkeys(m for r in rows.values() for m in r.methods):
        out[method] = {}
        for key in metrics:
            means = [r.methods[method][key]["mean"] for r in rows.values() if method in r.methods]
            values = np.array([v for v in means if v is not None and not math.isnan(v)], dtype=float)
            if len(values) == 0:
                continue
            out[method][key] = {"min": float(values.min()), "max": float(values.max()),
                                "sd": float(values.std(ddof=1)) if len(values) > 1 else None, "n": len(values)}
    return out


@dataclass(frozen=True)
class Panels:
    """The panels of one report directory (``panel.json`` and every ``panel-NAME.json``), by name."""

    panels: Mapping[str, Panel]

    def to_dict(self) -> dict:
        return {"runs": {name: p.to_dict() for name, p in self.panels.items()}}

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "panel.json") -> "Panels":
        if isinstance(d, Mapping) and "schema" in d:
            p = Panel.from_dict(d, source)
            return cls({p.name: p})
        with json_errors(source):
            panels = {}
            for key, doc in d["runs"].items():
                p = Panel.from_dict(doc, f"{source}/{key}")
                panels[p.name if p.name not in panels else key] = p
        if not panels:
            raise SpectraInputError(f"{source}: no panels")
        return cls(panels)


def evaluate_cells(truth, preds: Mapping[str, Any], reference: str, meta: pd.DataFrame, column: str, *,
                   meta_source: str = "meta", **evaluate_kwargs) -> dict[str, Any]:
    """``spectra evaluate --meta`` cells as panel runs: one :func:`~spectra_eval.evaluation.evaluate` per level of
    ``meta[column]`` (e.g. ``cell`` = ``CW3-LT``), on that level's users only, levels in first-appearance order.

    The result feeds :func:`panel` directly (label -> Evaluation); each cell's CIs and paired test are about the
    users of that cell, exactly as a separate ``spectra evaluate`` of those users would give.
    """
    from spectra_eval.evaluation import evaluate
    from spectra_eval.io import USER_COL, DistributionTable

    if column not in meta.columns:
        raise SpectraInputError(f"{meta_source}: no column {column!r} (have {', '.join(map(str, meta.columns))})")
    if USER_COL not in meta.columns:
        raise SpectraInputError(f"{meta_source}: no {USER_COL!r} column")
    level_of = dict(zip(meta[USER_COL].astype(str), meta[column]))
    missing = [u for u in truth.users if u not in level_of]
    if missing:
        raise SpectraInputError(f"{meta_source}: user {missing[0]!r} of {truth.source} has no row")
    runs: dict[str, Any] = {}
    for level in dict.fromkeys(level_of[u] for u in truth.users):
        keep = np.array([level_of[u] == level for u in truth.users])
        sub = DistributionTable(truth.users[keep], truth.categories, truth.probs[keep], truth.source)
        tables = {}
        for name, table in preds.items():
            pos = pd.Index(table.users).get_indexer(sub.users)
            if (pos < 0).any():
                raise SpectraInputError(f"{table.source}: user {sub.users[int(np.flatnonzero(pos < 0)[0])]!r} of "
                                        f"{truth.source} is missing")
            tables[name] = DistributionTable(sub.users, table.categories, table.probs[pos], table.source)
        runs[str(level)] = evaluate(sub, tables, reference, **evaluate_kwargs)
    return runs
