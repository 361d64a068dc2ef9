"""Recommendation lists as distributions (``spectra evaluate --list``): a hand-worked conversion (uniform and
dcg weights, multi-category and uncategorised items), the taste distance against scipy, bad inputs, the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from spectra_eval.cli import main
from spectra_eval.evaluation import Evaluation, evaluate
from spectra_eval.io import DistributionTable, read_distribution_table
from spectra_eval.analyses.lists import list_distributions, position_weights, read_items
from spectra_eval.validation import SpectraInputError

CATS = ("A", "B", "C")
ITEMS = {"i1": ("A",), "i2": ("A", "B"), "i3": ("C",), "i4": ()}


def frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])


def test_hand_worked_uniform_and_dcg():
    rows = [("u", "i1", 1), ("u", "i2", 2), ("u", "i3", 3), ("v", "i4", 1), ("v", "i3", 2)]
    uniform = list_distributions(frame(rows), ITEMS, CATS, "uniform")
    # u: i1 gives A one unit, i2 half to A and half to B, i3 one to C: (1.5, 0.5, 1) / 3
    np.testing.assert_allclose(uniform.probs[0], [1.5 / 3, 0.5 / 3, 1 / 3], atol=1e-15)
    np.testing.assert_allclose(uniform.probs[1], [0, 0, 1])  # v: the uncategorised i4 carries nothing
    dcg = list_distributions(frame(rows), ITEMS, CATS, "dcg")
    w2, w3 = 1 / math.log2(3), 1 / math.log2(4)  # rank 1 weighs 1
    a, b, c = 1 + w2 / 2, w2 / 2, w3
    np.testing.assert_allclose(dcg.probs[0], np.array([a, b, c]) / (a + b + c), atol=1e-15)
    assert list(dcg.users) == ["u", "v"] and dcg.categories == CATS
    np.testing.assert_allclose(position_weights([1, 2, 3], "dcg"), [1, w2, w3])


def test_ranks_order_the_weights_not_the_rows():
    shuffled = frame([("u", "i3", 3), ("u", "i1", 1), ("u", "i2", 2)])
    ordered = frame([("u", "i1", 1), ("u", "i2", 2), ("u", "i3", 3)])
    np.testing.assert_allclose(list_distributions(shuffled, ITEMS, CATS, "dcg").probs,
                               list_distributions(ordered, ITEMS, CATS, "dcg").probs)


@pytest.mark.parametrize("rows, message", [
    ([("u", "i9", 1)], "row 1 (user 'u'), column 'item_id': item 'i9' is not in the items file"),
    ([("u", "i1", 0)], "row 1 (user 'u'), column 'rank': 0 is not a positive integer rank"),
    ([("u", "i1", 1.5)], "1.5 is not a positive integer rank"),
    ([("u", "i1", 1), ("u", "i2", 1)], "row 2 (user 'u'), column 'rank': rank 1 appears twice"),
    ([("u", "i1", 1), ("u", "i1", 2)], "row 2 (user 'u'), column 'item_id': item 'i1' appears twice"),
    ([("u", "i4", 1)], "user 'u' has no listed item with a category"),
    ([("", "i1", 1)], "row 1, column 'user_id': empty value"),
])
def test_bad_lists(rows, message):
    with pytest.raises(SpectraInputError, match=None) as err:
        list_distributions(frame(rows), ITEMS, CATS, source="recs.csv")
    assert message in str(err.value) and str(err.value).startswith("recs.csv")
    with pytest.raises(SpectraInputError, match="list weights must be one of uniform, dcg"):
        list_distributions(frame([("u", "i1", 1)]), ITEMS, CATS, "linear")


def test_items_file_checks(tmp_path):
    path = tmp_path / "items.csv"
    pd.DataFrame({"item_id": ["i1", "i2", "i3"], "categories": ["A|B", "", "C"]}).to_csv(path, index=False)
    assert read_items(path, CATS) == {"i1": ("A", "B"), "i2": (), "i3": ("C",)}
    pd.DataFrame({"item_id": ["i1", "i2"], "categories": ["A|Z", "C"]}).to_csv(path, index=False)
    with pytest.raises(SpectraInputError, match=r"items.csv: item 'i1' \(row 1\), column 'categories': 'Z' is not"):
        read_items(path, CATS)
    pd.DataFrame({"item_id": ["i1", "i1"], "categories": ["A", "C"]}).to_csv(path, index=False)
    with pytest.raises(SpectraInputError, match=r"item 'i1' \(row 2\) appears more than once"):
        read_items(path, CATS)


def test_items_from_a_frame_already_read_match_the_reader(tmp_path):
    from spectra_eval.analyses.lists import items_from_frame

    path = tmp_path / "items.csv"
    frame = pd.DataFrame({"item_id": ["i1", "i2", "i3"], "categories": ["A|B", "", "C"]})
    frame.to_csv(path, index=False)
    assert items_from_frame(frame, CATS, str(path)) == read_items(path, CATS)
    with pytest.raises(SpectraInputError, match=r"^mem: no 'categories' column"):
        items_from_frame(frame.drop(columns="categories"), CATS, "mem")


# ------------------------------------------------------------------ through evaluate


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(3)
    cats = tuple(f"g{i}" for i in range(6))
    users = [f"u{i}" for i in range(40)]
    items = {f"m{i}": tuple(rng.choice(cats, size=rng.integers(0, 3), replace=False)) for i in range(60)}
    rows = []
    for u in users:
        chosen = [m for m in rng.permutation(list(items)) if items[m]][:5]
        rows += [(u, m, r + 1) for r, m in enumerate(chosen)]

    def table(probs, path):
        pd.DataFrame(probs, columns=list(cats)).assign(user_id=users)[["user_id", *cats]].to_csv(path, index=False)
        return path

    paths = {"truth": table(rng.dirichlet(np.ones(6), 40), tmp_path / "truth.csv"),
             "dg": table(rng.dirichlet(np.ones(6), 40), tmp_path / "dg.csv"),
             "history": table(rng.dirichlet(np.ones(6), 40), tmp_path / "history.csv"),
             "list": tmp_path / "recs.csv", "items": tmp_path / "items.csv"}
    frame(rows).to_csv(paths["list"], index=False)
    pd.DataFrame({"item_id": list(items), "categories": ["|".join(c) for c in items.values()]}).to_csv(
        paths["items"], index=False)
    return paths, items, cats


def test_list_goes_through_the_catalogue_and_taste_js_matches_scipy(files, tmp_path):
    paths, items, cats = files
    out = tmp_path / "out"
    assert main(["evaluate", "--truth", str(paths["truth"]), "--pred", f"dg={paths['dg']}", "--list",
                 f"pop={paths['list']}", "--items", str(paths["items"]), "--list-weights", "dcg", "--history",
                 str(paths["history"]), "--reference", "dg", "--out", str(out), "--bootstrap", "50"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    truth = read_distribution_table(paths["truth"])
    as_table = list_distributions(pd.read_csv(paths["list"], dtype=str), items, cats, "dcg", source="recs")
    direct = evaluate(truth, {"dg": read_distribution_table(paths["dg"]), "pop": as_table}, "dg", n_resamples=50,
                      history=read_distribution_table(paths["history"]))
    for key in ("js", "tv", "ndcg@10", "taste_js"):
        assert doc["methods"]["pop"][key]["mean"] == pytest.approx(direct.methods["pop"][key].mean, abs=1e-12)
    assert doc["methods"]["pop"]["bucket_mass"] == pytest.approx(direct.methods["pop"]["bucket_mass"])
    # taste distance: JS in bits between each user's list distribution and their history, by scipy
    history = pd.read_csv(paths["history"], dtype={"user_id": str}).set_index("user_id")
    pred = pd.DataFrame(as_table.probs, index=as_table.users, columns=cats)
    expected = [jensenshannon(pred.loc[u], history.loc[u], base=2) ** 2 for u in truth.users]
    assert doc["methods"]["pop"]["taste_js"]["mean"] == pytest.approx(np.mean(expected), abs=1e-12)
    assert doc["settings"]["history"] == str(paths["history"])
    assert doc["settings"]["lists"] == {"pop": {"items": str(paths["items"]), "weights": "dcg"}}
    assert doc["settings"]["preds"]["pop"] == str(paths["list"])
    assert "taste_js" in pd.read_parquet(out / "per_user.parquet").columns
    assert Evaluation.from_dict(doc).methods["pop"]["taste_js"] == direct.methods["pop"]["taste_js"]


def test_taste_table_reads_the_evaluation(files, tmp_path):
    """The report's list-taste table: taste JS and JS (means, CI half-widths) as in metrics.json, the list's
    position weights named, the history file in the caption; absent, with a reason, without --history."""
    from spectra_eval.report import Report

    paths, _, _ = files
    out = tmp_path / "out"
    assert main(["-q", "evaluate", "--truth", str(paths["truth"]), "--pred", f"dg={paths['dg']}", "--list",
                 f"pop={paths['list']}", "--items", str(paths["items"]), "--list-weights", "dcg", "--history",
                 str(paths["history"]), "--reference", "dg", "--out", str(out), "--bootstrap", "50"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    report = Report(doc)
    assert "taste" in report.table_keys()
    table = report.table("taste")
    for row in table.rows:
        m = doc["methods"][row.label]
        source, taste, js = row.cells
        assert source.display == ("list, dcg weights" if row.label == "pop" else "distribution table")
        for cell, key in ((taste, "taste_js"), (js, "js")):
            assert cell.value == m[key]["mean"]
            assert cell.hw_display == f"{(m[key]['ci_high'] - m[key]['ci_low']) / 2:.3f}"
    assert "(history.csv)" in table.caption and "n = 40 users" in table.caption
    assert "List taste" in report.to_markdown() and "taste JS to history" in report.table("taste").to_latex()
    plain = Report(evaluate(read_distribution_table(paths["truth"]), {"dg": read_distribution_table(paths["dg"])},
                            "dg", n_resamples=20))
    assert "taste" not in plain.table_keys()
    with pytest.raises(SpectraInputError, match="has no taste_js \\(run evaluate with --history\\)"):
        plain.table("taste")


def test_without_history_there_is_no_taste_js_and_no_new_key(files):
    paths, _, _ = files
    truth = read_distribution_table(paths["truth"])
    ev = evaluate(truth, {"dg": read_distribution_table(paths["dg"])}, "dg", n_resamples=20)
    doc = ev.to_dict()
    assert "taste_js" not in doc["methods"]["dg"]
    assert "history" not in doc["settings"] and "lists" not in doc["settings"]


@pytest.mark.parametrize("args, message", [
    (["--list", "pop=LIST"], "--list needs --items"),
    (["--items", "ITEMS", "--pred", "pop=DG"], "--items is only used with --list"),
    (["--list", "dg=LIST", "--pred", "dg=DG", "--items", "ITEMS"], "method name 'dg' is given more than once"),
    ([], "give at least one --pred NAME=FILE or --list NAME=FILE"),
])
def test_cli_argument_errors(files, tmp_path, capsys, args, message):
    paths, _, _ = files
    swap = {"LIST": str(paths["list"]), "ITEMS": str(paths["items"]), "DG": str(paths["dg"])}
    args = [a.replace(k, v) for a in args for k, v in [next(((k, v) for k, v in swap.items() if k in a), ("", ""))]]
    code = main(["evaluate", "--truth", str(paths["truth"]), "--reference", "pop", "--out", str(tmp_path / "o"), *args])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_list_missing_a_truth_user_is_an_error(files, tmp_path, capsys):
    paths, _, _ = files
    recs = pd.read_csv(paths["list"])
    recs[recs["user_id"] != "u7"].to_csv(paths["list"], index=False)
    code = main(["evaluate", "--truth", str(paths["truth"]), "--list", f"pop={paths['list']}", "--items",
                 str(paths["items"]), "--reference", "pop", "--out", str(tmp_path / "o")])
    assert code == 2 and "recs.csv: user 'u7' of" in capsys.readouterr().err


def test_a_list_table_is_a_distribution_table():
    table = list_distributions(frame([("u", "i2", 1)]), ITEMS, CATS)
    assert isinstance(table, DistributionTable)
    np.testing.assert_allclose(table.probs, [[0.5, 0.5, 0.0]])
