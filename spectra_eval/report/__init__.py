"""Paper-ready tables and figures from the JSON that ``spectra evaluate``, ``certify``, ``fuse`` and ``steer`` write.

Computation and rendering are separate (as in ranx's ``Report``):

* :data:`DOCUMENTS`: the JSON outputs a report reads, each with the typed result it is rebuilt into
  (``metrics.json`` -> :class:`~spectra_eval.evaluation.Evaluation`, ``certificate.json`` ->
  :class:`~spectra_eval.certificates.observed.Certificate`, ``fusion.json`` and every ``fusion-NAME.json`` ->
  :class:`~spectra_eval.analyses.fusion.FusionRuns`, one run per file; ``steering.json`` ->
  :class:`~spectra_eval.analyses.steering.SteeringResult`; ``panel.json`` and every ``panel-NAME.json`` ->
  :class:`~spectra_eval.analyses.panels.Panels`; ``latency.json`` or the probe manifests of the folder ->
  :class:`~spectra_eval.analyses.latency.Latency`);
* :data:`TABLES`: one :class:`TableSpec` per table: the document it needs, the function that computes a
  :class:`~spectra_eval.report.model.Table` from the typed result, and when it applies: ``tail_mass``, ``js``,
  ``ndcg``, ``quartiles``, ``strata``, ``ece``, ``top1_ece``, ``category_wins``, ``taste`` (:mod:`.metric_tables`),
  ``certificate``, ``certificate_aggregate``, ``certificate_population``, ``dkw`` (:mod:`.certificate_tables`),
  ``fusion`` (:mod:`.fusion_tables`), ``steering`` (:mod:`.steering_tables`), ``panel`` (one table per panel)
  and ``latency`` (:mod:`.panel_tables`); figures in :mod:`.figures`
  (:data:`~spectra_eval.report.figures.FIGURES`). Every table has Markdown and LaTeX golden files
  (``tests/golden/KEY.md``, ``KEY.tex``);
* :mod:`.render`: the only two formatters (Markdown, LaTeX); :mod:`.markup`: escaping and number formats;
* :class:`Report`: the documents plus caption/label options; exports Markdown, LaTeX, a standalone LaTeX
  document and pandas DataFrames, and round-trips through :meth:`Report.to_dict` / :meth:`Report.from_dict`.

A new table is one function, one line in :data:`TABLES` and its name in the list above; its golden files come from
``SPECTRA_UPDATE_GOLDEN=1 pytest tests/eval/report/test_golden.py`` (review them). A new kind of output is one
line in :data:`DOCUMENTS`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from spectra_eval.certificates.observed import SCHEMA as CERTIFICATE_SCHEMA
from spectra_eval.certificates.observed import Certificate
from spectra_eval.evaluation import SCHEMA as METRICS_SCHEMA
from spectra_eval.evaluation import Evaluation
from spectra_eval.analyses.fusion import SCHEMA as FUSION_SCHEMA
from spectra_eval.analyses.fusion import FusionRuns
from spectra_eval.io import check_schema, json_safe, read_json
from spectra_eval.report import certificate_tables as ct
from spectra_eval.report import fusion_tables as ft
from spectra_eval.report.certificate_tables import READING_NAMES
from spectra_eval.report import metric_tables as mt
from spectra_eval.report import steering_tables as st
from spectra_eval.report.markup import (DAGGER, DASH, DDAGGER, latex_escape, lit, markup_to_latex, markup_to_plain,
                                        md_escape)
from spectra_eval.report.model import Cell, Column, Row, Table, bold_columns, embolden
from spectra_eval.report.render import LATEX_PACKAGES, latex_document, render_latex, render_markdown
from spectra_eval.analyses.latency import SCHEMA as LATENCY_SCHEMA
from spectra_eval.analyses.latency import read_latency
from spectra_eval.analyses.panels import SCHEMA as PANEL_SCHEMA
from spectra_eval.analyses.panels import Panels
from spectra_eval.report import panel_tables as pt
from spectra_eval.analyses.steering import SCHEMA as STEERING_SCHEMA
from spectra_eval.analyses.steering import SteeringResult
from spectra_eval.validation import SpectraInputError

__all__ = ["Report", "TABLES", "DOCUMENTS", "Table", "Column", "Row", "Cell", "embolden", "bold_columns",
           "render_markdown", "render_latex", "latex_escape", "md_escape", "lit", "markup_to_latex",
           "markup_to_plain", "DAGGER", "DDAGGER", "DASH", "READING_NAMES"]

REPORT_SCHEMA = "spectra.report/1"
#: Default prefix of every LaTeX ``\\label`` (``spectra report --label-prefix``).
LABEL_PREFIX = "tab:"
METRICS_FILE = "metrics.json"
CERTIFICATE_FILE = "certificate.json"


@dataclass(frozen=True)
class Document:
    """A JSON output a report reads: its file name and the typed result ``load(dict, source)`` rebuilds."""

    key: str
    file: str
    schema: str
    load: Callable[[Mapping, str], Any]
    pattern: str | None = None  # more files of the same kind (glob); load then gets {"runs": {file: JSON}}


DOCUMENTS: dict[str, Document] = {d.key: d for d in (
    Document("metrics", METRICS_FILE, METRICS_SCHEMA, Evaluation.from_dict),
    Document("certificate", CERTIFICATE_FILE, CERTIFICATE_SCHEMA, Certificate.from_dict),
    Document("fusion", "fusion.json", FUSION_SCHEMA, FusionRuns.from_dict, pattern="fusion-*.json"),
    Document("steering", "steering.json", STEERING_SCHEMA, SteeringResult.from_dict),
    Document("panel", "panel.json", PANEL_SCHEMA, Panels.from_dict, pattern="panel-*.json"),
    Document("latency", "latency.json", LATENCY_SCHEMA, read_latency, pattern="*.manifest.json"),
)}


@dataclass(frozen=True)
class TableSpec:
    """A table: the document it is computed from, the function, and when it applies (``why_not`` otherwise)."""

    key: str
    document: str
    build: Callable[..., Table]  # build(doc), or build(doc, part) for a table with parts
    applies: Callable[[Any], bool] = lambda doc: True
    why_not: str = "does not apply"
    #: for a document holding several tables' worth (one per panel): its part names; the table keys are then
    #: ``KEY:PART`` and ``build(doc, part)`` computes one
    parts: Callable[[Any], list[str]] | None = None


def _has_comparisons(ev: Evaluation) -> bool:
    return bool(ev.comparisons)


TABLES: dict[str, TableSpec] = {t.key: t for t in (
    TableSpec("tail_mass", "metrics", mt.tail_mass_table),
    TableSpec("js", "metrics", mt.js_table),
    TableSpec("ndcg", "metrics", mt.ndcg_table),
    TableSpec("quartiles", "metrics", mt.quartile_table, _has_comparisons, "has no comparisons"),
    TableSpec("strata", "metrics", mt.strata_table, mt.has_strata, "has no strata (run evaluate with --meta)"),
    TableSpec("ece", "metrics", mt.ece_table),
    TableSpec("top1_ece", "metrics", mt.top1_ece_table),
    TableSpec("category_wins", "metrics", mt.category_wins_table, _has_comparisons, "has no comparisons"),
    TableSpec("taste", "metrics", mt.taste_table, mt.has_taste, "has no taste_js (run evaluate with --history)"),
    TableSpec("certificate", "certificate", ct.certificate_table),
    TableSpec("certificate_aggregate", "certificate", ct.certificate_aggregate_table),
    TableSpec("certificate_population", "certificate", ct.population_table, ct.has_population_bounds,
              "has no population bounds (written by an older spectra certify)"),
    TableSpec("dkw", "certificate", ct.dkw_table, lambda c: c.dkw is not None, "has no dkw block"),
    TableSpec("fusion", "fusion", ft.fusion_table),
    TableSpec("steering", "steering", st.steering_table),
    TableSpec("panel", "panel", pt.panel_table, parts=pt.panel_parts),
    TableSpec("latency", "latency", pt.latency_table),
)}


def load_document(key: str, doc: Any, source: str | None = None) -> Any:
    """The typed result of document ``key`` from a parsed JSON dict (or a typed result, returned as is)."""
    spec = DOCUMENTS[key]
    if isinstance(doc, Mapping):
        return spec.load(doc, source or spec.file)
    return doc


class Report:
    """Tables and figures from typed results (or their JSON dicts).

    Parameters
    ----------
    metrics, certificate, **documents
        one typed result or parsed JSON dict per :data:`DOCUMENTS` key (at least one).
    caption_prefix : str
        prepended to every generated caption title (e.g. ``"MovieLens-100k."``).
    label_prefix : str
        prepended to every table label (``"tab:"`` gives ``\\label{tab:js}``).
    captions, labels : dict
        per-table overrides by :data:`TABLES` key.
    """

    def __init__(self, metrics: Evaluation | Mapping | None = None, certificate: Certificate | Mapping | None = None,
                 *, caption_prefix: str = "", label_prefix: str = LABEL_PREFIX,
                 captions: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
                 source: str = "<memory>", **documents: Any) -> None:
        unknown = set(documents) - set(DOCUMENTS)
        if unknown:
            raise TypeError(f"unknown document(s) {sorted(unknown)} (known: {', '.join(DOCUMENTS)})")
        given = {"metrics": metrics, "certificate": certificate, **documents}
        self.documents = {k: load_document(k, v) for k, v in given.items() if v is not None}
        if not self.documents:
            raise SpectraInputError(f"{source}: a report needs one of {', '.join(d.file for d in DOCUMENTS.values())}")
        self.caption_prefix, self.label_prefix, self.source = caption_prefix, label_prefix, source
        self.captions, self.labels = dict(captions or {}), dict(labels or {})
        unknown = {k for k in set(self.captions) | set(self.labels) if k.split(":")[0] not in TABLES}
        if unknown:
            raise SpectraInputError(f"unknown table key(s) {sorted(unknown)} (known: {', '.join(TABLES)})")

    @property
    def metrics(self) -> Evaluation | None:
        return self.documents.get("metrics")

    @property
    def certificate(self) -> Certificate | None:
        return self.documents.get("certificate")

    # ---- construction
    @classmethod
    def from_dir(cls, directory: str | os.PathLike, **options: Any) -> "Report":
        """Read every :data:`DOCUMENTS` file present in ``directory`` (at least one must exist)."""
        directory = Path(directory)
        if not directory.exists():
            raise SpectraInputError(f"{directory}: no such directory")
        if not directory.is_dir():
            raise SpectraInputError(f"{directory}: not a directory (expected the --out of evaluate/certify)")
        docs = {}
        for key, spec in DOCUMENTS.items():
            path = directory / spec.file
            if spec.pattern is not None:  # one document from several files, in file-name order
                paths = ([path] if path.exists() else []) + sorted(directory.glob(spec.pattern))
                if paths:
                    docs[key] = spec.load({"runs": {p.name: read_json(p) for p in paths}}, str(directory))
            elif path.exists():
                docs[key] = spec.load(read_json(path), str(path))
        if not docs:
            names = " nor ".join(d.file for d in DOCUMENTS.values())
            raise SpectraInputError(f"{directory}: neither {names} found (write them with spectra evaluate/certify "
                                    "--out DIR)")
        return cls(source=str(directory), **docs, **options)

    def to_dict(self) -> dict:
        return json_safe({"schema": REPORT_SCHEMA, **{k: v.to_dict() for k, v in self.documents.items()},
                          "options": {"caption_prefix": self.caption_prefix, "label_prefix": self.label_prefix,
                                      "captions": dict(self.captions), "labels": dict(self.labels)}})

    @classmethod
    def from_dict(cls, data: Mapping) -> "Report":
        check_schema(data, REPORT_SCHEMA, "report")
        docs = {k: data[k] for k in DOCUMENTS if data.get(k) is not None}
        return cls(**docs, **dict(data.get("options") or {}))

    # ---- tables
    def table_keys(self) -> list[str]:
        """Keys of the tables this report's documents support, in :data:`TABLES` order."""
        keys = []
        for k, t in TABLES.items():
            doc = self.documents.get(t.document)
            if doc is not None and t.applies(doc):
                keys += [k] if t.parts is None else [f"{k}:{part}" for part in t.parts(doc)]
        return keys

    def table(self, key: str) -> Table:
        base, _, part = key.partition(":")
        spec = TABLES.get(base)
        if spec is None or (spec.parts is None) != (not part):
            raise KeyError(key)
        doc = self.documents.get(spec.document)
        if doc is None:
            raise SpectraInputError(f"{self.source}: table {key!r} needs {DOCUMENTS[spec.document].file}")
        if not spec.applies(doc):
            raise SpectraInputError(f"{self.source}: {DOCUMENTS[spec.document].file} {spec.why_not}")
        t = spec.build(doc) if spec.parts is None else spec.build(doc, part)
        if key in self.captions:  # a user caption replaces title and body; it is plain text
            t = replace(t, title="", caption=lit(self.captions[key]))
        if self.caption_prefix:
            t = replace(t, title=f"{lit(self.caption_prefix.strip())} {t.title}".strip())
        return replace(t, label=self.labels.get(key, self.label_prefix + t.label))

    def tables(self) -> list[Table]:
        return [self.table(k) for k in self.table_keys()]

    # ---- export
    def to_frame(self, key: str) -> pd.DataFrame:
        """Table ``key`` as a DataFrame (plain-text cells)."""
        return self.table(key).to_frame()

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """Every table of :meth:`table_keys` as a DataFrame, by key."""
        return {t.key: t.to_frame() for t in self.tables()}

    def to_markdown(self) -> str:
        head = "<!-- generated by `spectra report`; regenerate rather than edit -->\n\n"
        return head + "\n".join(render_markdown(t) for t in self.tables())

    def __repr__(self) -> str:
        return f"<Report: {', '.join(self.table_keys())} from {self.source}>"

    def _repr_markdown_(self) -> str:
        """A notebook shows the report as its Markdown tables."""
        return self.to_markdown()

    def to_latex(self) -> str:
        """Body for ``\\input{tables.tex}``; the comment at the top names the preamble it needs."""
        head = ["% generated by `spectra report`; regenerate rather than edit.",
                "% Needs in the preamble (all in texlive-latex-base/-recommended + lmodern):"]
        head += [f"%   {p}" for p in LATEX_PACKAGES]
        head.append("% Labels are escaped to ASCII LaTeX (accents as \\'{e} etc.), so no inputenc is needed.")
        return "\n".join(head) + "\n\n" + "\n".join(render_latex(t) for t in self.tables())

    def to_latex_document(self, figures: Iterable[tuple[str, str]] = (), title: str = "SPECTRA report") -> str:
        """A standalone article (pdflatex) with every table and the given (path, caption) figures."""
        return latex_document(self.tables(), figures, title)
