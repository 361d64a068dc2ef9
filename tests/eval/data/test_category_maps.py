"""Category maps: collapse equals an independent summation, the shipped maps are the paper's / the documented
rule's, coherence equals scipy's JS, and every bad map or table is a one-line located error (nothing written)."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from spectra_eval.cli import main
from spectra_eval.data.category_maps import (SHIPPED, CategoryMap, coherence, collapse, cooccurrence_merges,
                                             read_category_map)
from spectra_eval.io import CountTable, DistributionTable
from spectra_eval.validation import SpectraInputError

ML19 = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
        "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _table(n=30, k=ML19, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(len(k), 0.4), size=n)
    return DistributionTable(np.array([f"u{i}" for i in range(n)], dtype=object), tuple(k), p)


def _loop_sum(frame: pd.DataFrame, mapping: dict) -> pd.DataFrame:
    """The independent summation: a plain loop over columns into a dict of merged columns."""
    out = {"user_id": list(frame["user_id"])}
    for col in frame.columns[1:]:
        g = mapping[col]
        out[g] = [a + b for a, b in zip(out[g], frame[col])] if g in out else list(frame[col])
    return pd.DataFrame(out)


def test_k15_map_is_exactly_the_papers_merges():
    m = read_category_map("movielens-k15")
    assert m.merges() == {"Adventure": "Action", "Fantasy": "Sci-Fi", "Mystery": "Crime", "Horror": "Thriller"}
    assert set(m.categories) == set(ML19) and len(m.merged_labels) == 15


def test_k10_map_follows_its_documented_rule():
    m15, m10 = read_category_map("movielens-k15"), read_category_map("movielens-k10")
    assert len(m10.merged_labels) == 10 and set(m10.categories) == set(ML19)
    assert m10.merges() == {**m15.merges(), "Documentary": "Drama", "Film-Noir": "Crime", "Western": "Action",
                            "Animation": "Children's", "Musical": "Children's"}
    # the rule, rerun on a small hand-made rating list: the rarest label joins its most frequent co-label
    ratings = [("A", "B")] * 3 + [("B", "C")] * 5 + [("C",)] * 9 + [("D", "C")] * 2 + [("unknown",)]
    assert cooccurrence_merges(ratings, CategoryMap({c: c for c in "ABCD"}), 2) == {"D": "C", "A": "B"}


def test_k10_rule_on_movielens():
    pytest.importorskip("recbole", reason="MovieLens-100k ships with recbole")
    from spectra_eval.data.datasets import load_movielens_100k_recbole

    data = load_movielens_100k_recbole()
    m15, m10 = read_category_map("movielens-k15"), read_category_map("movielens-k10")
    extra = cooccurrence_merges(data.frame["categories"], m15, 5)
    assert {c: extra.get(m15.mapping[c], m15.mapping[c]) for c in ML19} == dict(m10.mapping)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_collapse_equals_independent_summation(name):
    t = _table()
    m = read_category_map(name)
    got = collapse(t, m)
    want = _loop_sum(t.to_frame(), dict(m.mapping))
    assert got.categories == tuple(want.columns[1:])
    np.testing.assert_allclose(got.probs, want.iloc[:, 1:].to_numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(got.probs.sum(axis=1), 1.0, atol=1e-12)


def test_collapse_counts_stay_integer():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 4, size=(12, len(ML19)))
    counts[:, 0] += 1
    t = CountTable(np.array([f"u{i}" for i in range(12)], dtype=object), tuple(ML19), counts)
    got = collapse(t, "movielens-k10")
    assert got.counts.dtype.kind == "i"
    np.testing.assert_array_equal(got.counts.sum(axis=1), counts.sum(axis=1))
    frame = pd.DataFrame(counts, columns=ML19)
    frame.insert(0, "user_id", t.users)
    np.testing.assert_array_equal(got.counts, _loop_sum(frame, dict(read_category_map("movielens-k10").mapping))
                                  .iloc[:, 1:].to_numpy())


def test_cli_collapse_writes_each_table_same_format(tmp_path):
    t = _table(8)
    t.to_frame().to_csv(tmp_path / "probe.csv", index=False)
    t.to_frame().to_parquet(tmp_path / "dg.parquet")
    out = tmp_path / "out"
    assert main(["collapse", "--map", "movielens-k15", "--out", str(out), str(tmp_path / "probe.csv"),
                 str(tmp_path / "dg.parquet")]) == 0
    a = pd.read_csv(out / "probe.csv", dtype={"user_id": str})
    b = pd.read_parquet(out / "dg.parquet")
    assert list(a.columns) == ["user_id", *read_category_map("movielens-k15").merged_labels]
    np.testing.assert_allclose(a.iloc[:, 1:].to_numpy(), b.iloc[:, 1:].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(a.iloc[:, 1:].to_numpy(), collapse(t, "movielens-k15").probs, atol=1e-12)


@pytest.mark.parametrize("text, message", [
    ("cat,merged\nA,X\n", "line 1: expected the header 'category,merged'"),
    ("category,merged\nA,X\nB\n", "line 3: expected 2 fields"),
    ("category,merged\nA,X\nA,Y\n", "line 3: category 'A' is mapped more than once (first on line 2)"),
    ("category,merged\nA,\n", "line 2, column merged: empty label"),
])
def test_bad_map_is_one_located_line(tmp_path, capsys, text, message):
    path = tmp_path / "map.csv"
    path.write_text(text)
    with pytest.raises(SpectraInputError, match="map.csv: " + message.replace("(", r"\(").replace(")", r"\)")):
        read_category_map(path)
    pd.DataFrame({"user_id": ["u"], "A": [1.0]}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["collapse", "--map", str(path), "--out", str(tmp_path / "o"), str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.split("(")[0] in err[0]
    assert not (tmp_path / "o").exists()


def test_table_and_map_must_match(tmp_path, capsys):
    path = tmp_path / "map.csv"
    path.write_text("category,merged\nA,X\nB,X\n")
    pd.DataFrame({"user_id": ["u"], "A": [0.5], "C": [0.5]}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["collapse", "--map", str(path), "--out", str(tmp_path / "o"), str(tmp_path / "t.csv")]) == 2
    assert "t.csv: column 'C' is not a category of map" in capsys.readouterr().err
    pd.DataFrame({"user_id": ["u"], "A": [1.0]}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["collapse", "--map", str(path), "--out", str(tmp_path / "o"), str(tmp_path / "t.csv")]) == 2
    assert "category 'B' is not a column of the table" in capsys.readouterr().err
    assert main(["collapse", "--map", "no-such-map", "--out", str(tmp_path / "o"), str(tmp_path / "t.csv")]) == 2
    assert "neither a file nor a shipped map" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_evaluate_collapse_equals_evaluating_collapsed_files(tmp_path):
    truth, probe, dg = _table(40, seed=1), _table(40, seed=2), _table(40, seed=3)
    for name, t in (("truth", truth), ("probe", probe), ("dg", dg)):
        t.to_frame().to_csv(tmp_path / f"{name}.csv", index=False)
    base = ["--pred", f"probe={tmp_path / 'probe.csv'}", "--pred", f"dg={tmp_path / 'dg.csv'}", "--reference", "dg",
            "--bootstrap", "50"]
    assert main(["evaluate", "--truth", str(tmp_path / "truth.csv"), *base, "--collapse", "movielens-k10",
                 "--out", str(tmp_path / "a")]) == 0
    assert main(["collapse", "--map", "movielens-k10", "--out", str(tmp_path / "c"),
                 *(str(tmp_path / f"{n}.csv") for n in ("truth", "probe", "dg"))]) == 0
    base = [b.replace(str(tmp_path / "probe"), str(tmp_path / "c" / "probe"))
            .replace(str(tmp_path / "dg"), str(tmp_path / "c" / "dg")) for b in base]
    assert main(["evaluate", "--truth", str(tmp_path / "c" / "truth.csv"), *base, "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "ab")
    assert a["n_categories"] == 10
    for m in ("probe", "dg"):
        for key in ("js", "ndcg@10"):
            assert a["methods"][m][key]["mean"] == pytest.approx(b["methods"][m][key]["mean"], abs=1e-12)


def test_certify_collapse_hook(tmp_path):
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 3, size=(30, len(ML19)))
    counts[:, 1] += 1
    frame = pd.DataFrame(counts, columns=ML19)
    frame.insert(0, "user_id", [f"u{i}" for i in range(30)])
    frame.to_csv(tmp_path / "counts.csv", index=False)
    for name, seed in (("probe", 2), ("dg", 3)):
        _table(30, seed=seed).to_frame().to_csv(tmp_path / f"{name}.csv", index=False)
    assert main(["certify", "--counts", str(tmp_path / "counts.csv"), "--probe", str(tmp_path / "probe.csv"),
                 "--dg", str(tmp_path / "dg.csv"), "--collapse", "movielens-k15", "--out", str(tmp_path / "o")]) == 0
    per_user = pd.read_csv(tmp_path / "o" / "certificate_per_user.csv")
    assert len(per_user) == 30


def test_coherence_equals_scipy_js():
    fine = _table(50, seed=4)
    m = read_category_map("movielens-k15")
    rng = np.random.default_rng(9)
    coarse = DistributionTable(fine.users[::-1].copy(), m.merged_labels, rng.dirichlet(np.ones(15), size=50))
    got = coherence(fine, coarse, m, n_resamples=200, seed=3)
    summed = _loop_sum(fine.to_frame(), dict(m.mapping)).iloc[:, 1:].to_numpy()
    ref = np.array([jensenshannon(summed[i], coarse.probs[49 - i], base=2) ** 2 for i in range(50)])
    assert got.mean == pytest.approx(ref.mean(), abs=1e-12)
    assert got.ci_low < got.mean < got.ci_high and got.n == 50
    # a probe that is exactly coherent scores 0
    exact = collapse(fine, m)
    assert coherence(fine, exact, m, n_resamples=50).mean == pytest.approx(0.0, abs=1e-15)


def test_cli_coherence_writes_the_independent_js(tmp_path, capsys):
    fine = _table(30, seed=6)
    m = read_category_map("movielens-k15")
    coarse = DistributionTable(fine.users, m.merged_labels, np.random.default_rng(2).dirichlet(np.ones(15), size=30))
    fine.to_frame().to_csv(tmp_path / "fine.csv", index=False)
    coarse.to_frame().to_csv(tmp_path / "coarse.csv", index=False)
    assert main(["collapse", "--map", "movielens-k15", "--coherence", str(tmp_path / "coarse.csv"), "--bootstrap",
                 "100", "--out", str(tmp_path / "o"), str(tmp_path / "fine.csv")]) == 0
    doc = json.loads((tmp_path / "o" / "coherence.json").read_text())
    summed = _loop_sum(fine.to_frame(), dict(m.mapping)).iloc[:, 1:].to_numpy()
    ref = np.mean([jensenshannon(summed[i], coarse.probs[i], base=2) ** 2 for i in range(30)])
    assert doc["schema"] == "spectra.coherence/1" and doc["unit"] == "bits" and doc["n"] == 30
    assert doc["mean"] == pytest.approx(ref, abs=1e-12) and doc["ci_low"] <= doc["mean"] <= doc["ci_high"]
    assert f"coherence: mean JS {ref:.4f} bits" in capsys.readouterr().out
    assert main(["collapse", "--map", "movielens-k15", "--coherence", str(tmp_path / "coarse.csv"),
                 "--out", str(tmp_path / "q"), str(tmp_path / "fine.csv"), str(tmp_path / "coarse.csv")]) == 2
    assert "give exactly one TABLE" in capsys.readouterr().err and not (tmp_path / "q").exists()
