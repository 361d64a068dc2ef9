"""spectra_eval.data.synthetic: the seeded synthetic cohort is what its docstring says it is."""
from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spectra_eval.data.datasets import MOVIELENS_GENRES
from spectra_eval.data.synthetic import (CONTEXT_WINDOWS, DG_LIST_LENGTH, synthetic_cohort, synthetic_tables,
                                         write_synthetic_cohort)
from spectra_eval.io import read_distribution_table
from spectra_eval.validation import SpectraInputError


def test_shapes_and_distributions():
    frames = synthetic_cohort(300, seed=4)
    assert list(frames) == ["truth", "probe", "dg", "meta"]
    for name in ("truth", "probe", "dg"):
        f = frames[name]
        assert list(f.columns) == ["user_id", *MOVIELENS_GENRES] and len(f) == 300
        probs = f[list(MOVIELENS_GENRES)].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
        assert (probs >= 0).all()
    probe = frames["probe"][list(MOVIELENS_GENRES)].to_numpy()
    dg = frames["dg"][list(MOVIELENS_GENRES)].to_numpy()
    truth = frames["truth"][list(MOVIELENS_GENRES)].to_numpy()
    assert (probe > 0).all()  # smoothed toward uniform: full support
    assert ((dg > 0).sum(axis=1) == DG_LIST_LENGTH).all()
    np.testing.assert_allclose(dg[dg > 0], 1 / DG_LIST_LENGTH)  # uniform on the decoded list
    # truth is an empirical mix of f_u >= 3 items: every row is a multiple of 1/f_u for some f_u >= 3
    sizes = np.arange(3, 2000)
    for row in truth:
        scaled = np.outer(sizes, row)
        assert np.isclose(scaled, np.round(scaled), atol=1e-9).all(axis=1).any()
    meta = frames["meta"]
    assert sorted(meta["activity"].unique()) == ["A1", "A2", "A3", "A4", "A5"]
    assert meta["activity"].value_counts().tolist() == [60] * 5  # quintiles of 300 users
    assert set(meta["context_window"]) <= set(CONTEXT_WINDOWS)


def test_seeded_and_categories():
    a, b, c = synthetic_cohort(50, seed=1), synthetic_cohort(50, seed=1), synthetic_cohort(50, seed=2)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    assert not a["truth"].equals(c["truth"])
    cats = [f"c{i}" for i in range(6)]
    tables = synthetic_tables(40, seed=0, categories=cats)
    assert set(tables) == {"truth", "probe", "dg"} and tables["dg"].categories == tuple(cats)
    assert tables["truth"].source == "truth.csv"
    with pytest.raises(SpectraInputError, match="at least 4 users"):
        synthetic_cohort(3)
    with pytest.raises(SpectraInputError, match="at least 5 categories"):
        synthetic_cohort(10, categories=["a", "b"])


def test_written_files_and_the_example_script(tmp_path):
    paths = write_synthetic_cohort(tmp_path / "api", 80, seed=5)
    truth = read_distribution_table(paths["truth"])
    np.testing.assert_allclose(truth.probs, synthetic_tables(80, seed=5)["truth"].probs, atol=1e-15)
    script = Path(__file__).resolve().parents[3] / "examples" / "make_example_cohort.py"
    assert runpy.run_path(str(script))["main"]([str(tmp_path / "cli"), "--users", "80", "--seed", "5"]) == 0
    for name in ("truth", "probe", "dg", "meta"):
        assert (tmp_path / "cli" / f"{name}.csv").read_bytes() == paths[name].read_bytes()
