"""The one protocol of every result a library verb returns (``evaluate``, ``certify``, ``fuse``, ``steer``, ...).

A result is a frozen dataclass that knows its JSON document (``to_dict``/``from_dict``), its console text
(``summary``), its per-row table (``to_frame``) and the files the CLI writes (``outputs``). This base class
derives the rest from those four, so every result saves, prints and shows itself in a notebook the same way:

* ``save(directory)`` writes exactly ``outputs()`` (JSON for a mapping, CSV/Parquet by extension for a
  DataFrame, text for a string), all or nothing (:func:`spectra_eval.io.atomic_outputs`);
* ``repr(result)`` is one line (the summary's first), ``_repr_html_`` the summary and the head of the table
  (the summary alone for a result rebuilt from JSON, whose ``to_frame`` raises ``ValueError``).
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

#: rows of ``to_frame()`` a notebook shows under the summary
HTML_ROWS = 20


class Result:
    """Base of every result type; subclasses implement the four methods below."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (stable keys; what the CLI writes)."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "Result":
        """Rebuild the result from :meth:`to_dict`'s document."""
        raise NotImplementedError

    def summary(self) -> str:
        """The text the CLI prints."""
        raise NotImplementedError

    def to_frame(self) -> pd.DataFrame:
        """The result's rows (per user, per request, per lambda, ...) as a DataFrame."""
        raise NotImplementedError

    def outputs(self) -> dict[str, Any]:
        """File name -> content that :meth:`save` (and the CLI) writes: a mapping (JSON), a DataFrame
        (CSV or Parquet by extension) or a string (text)."""
        raise NotImplementedError

    def save(self, directory: str | os.PathLike) -> list[Path]:
        """Write :meth:`outputs` into ``directory`` atomically (nothing is written if any file fails);
        return the paths written."""
        from spectra_eval.io import atomic_outputs, write_frame, write_json, write_text

        out, written = Path(directory), []
        with atomic_outputs(out) as stage:
            for name, content in self.outputs().items():
                if isinstance(content, pd.DataFrame):
                    write_frame(stage / name, content)
                elif isinstance(content, str):
                    write_text(stage / name, content)
                else:
                    write_json(stage / name, content)
                written.append(out / name)
        return written

    def __repr__(self) -> str:
        first = self.summary().strip().splitlines()
        return f"<{type(self).__name__}: {first[0] if first else ''}>"

    def _repr_html_(self) -> str:
        summary = f"<pre>{html.escape(self.summary())}</pre>"
        try:
            frame = self.to_frame()
        except ValueError:  # rebuilt from JSON: the per-row data is not in the document
            return summary
        more = f"<p>{len(frame)} rows; <code>.to_frame()</code> has them all.</p>" if len(frame) > HTML_ROWS else ""
        return summary + frame.head(HTML_ROWS).to_html(index=False) + more
