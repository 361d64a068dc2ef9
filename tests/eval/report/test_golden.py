"""Golden Markdown and LaTeX for every table in :data:`spectra_eval.report.TABLES`, derived from the registry.

Each table is rendered from the first fixture folder where it applies: ``tests/fixtures/report`` (the original
fixture, whose Markdown goldens predate this test) or ``tests/fixtures/report-more`` (the JSON written by
``tests/fixtures/make_report_more.py`` for the tables the first has no input for). A table added to ``TABLES``
without golden files fails here. Regenerate with ``SPECTRA_UPDATE_GOLDEN=1`` and review the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from spectra_eval.report import TABLES, Report

FIXTURES = [Path(__file__).parents[2] / "fixtures" / name for name in ("report", "report-more")]
GOLDEN = Path(__file__).parents[2] / "golden"
UPDATE_GOLDEN = bool(os.environ.get("SPECTRA_UPDATE_GOLDEN"))
FORMATS = {"md": "to_markdown", "tex": "to_latex"}


@pytest.fixture(scope="module")
def reports():
    return [Report.from_dir(f) for f in FIXTURES]


def _table(reports, key):
    for report in reports:
        keys = [k for k in report.table_keys() if k.partition(":")[0] == key]  # a table with parts: its first
        if keys:
            return report.table(keys[0])
    raise AssertionError(f"no fixture in {[str(f) for f in FIXTURES]} has input for table {key!r}: add one "
                         "(tests/fixtures/make_report_more.py)")


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("key", TABLES)
def test_golden(reports, key, ext):
    path = GOLDEN / f"{key}.{ext}"
    got = getattr(_table(reports, key), FORMATS[ext])()
    if UPDATE_GOLDEN:
        path.write_text(got, encoding="utf-8")
    assert path.exists(), f"table {key!r} has no golden {path.name}: regenerate with SPECTRA_UPDATE_GOLDEN=1, review"
    assert got == path.read_text(encoding="utf-8"), f"regenerate with SPECTRA_UPDATE_GOLDEN=1 and review {path}"


def test_every_golden_file_belongs_to_a_table():
    stale = sorted(p.name for p in GOLDEN.iterdir() if p.stem not in TABLES or p.suffix[1:] not in FORMATS)
    assert not stale, f"golden files of no table in TABLES: {stale}"


def test_the_package_docstring_lists_every_table_in_order():
    import re

    import spectra_eval.report as rp

    listed = [k for k in re.findall(r"``(\w+)``", rp.__doc__) if k in TABLES]
    assert listed == list(TABLES)
