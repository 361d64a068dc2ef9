"""``spectra prepare`` / :func:`spectra_eval.data.prepare.prepare`: a raw log in, the evaluation inputs out, no model.

A hand-worked generic table checks every file against values computed by hand; ml-100k (bundled with recbole)
against an independent recount from the raw atomic files; bad input is one line naming file, line and column
with nothing written.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from spectra_eval.cli import main
from spectra_eval.data.prepare import prepare
from spectra_eval.io import read_distribution_table
from spectra_eval.validation import SpectraInputError

FILES = ["categories.txt", "contexts.csv", "counts.csv", "history-cohort.csv", "history-laplace.csv",
         "history-markov.csv", "history-uhf.csv", "items.csv", "meta.csv", "requests.csv", "truth.csv"]

# user a: 6 interactions (rows out of time order) -> history = first floor(0.8 * 6) = 4 by time, future = 2;
# user b: 5 interactions, timestamps as dates -> history 4, future 1; user c: 3 interactions -> dropped (< 5).
LOG = """user_id,item_id,timestamp,categories,title
a,i2,300,Action,Two
a,i1,100,Comedy|Drama,One
a,i3,200,Comedy,Three
a,i4,400,Drama,Four
a,i6,600,Drama,Six
a,i5,500,Comedy|Action,Five
b,i1,2020-01-01,Comedy|Drama,One
b,i2,2020-01-02,Action,Two
b,i3,2020-01-03,Comedy,Three
b,i4,2020-01-04,Drama,Four
b,i6,2020-01-05,Drama,Six
c,i1,1,Comedy|Drama,One
c,i2,2,Action,Two
c,i3,3,Comedy,Three
"""


@pytest.fixture()
def log(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG, encoding="utf-8")
    return path


def test_a_generic_table_by_hand(log, tmp_path):
    files = prepare(f"table:{log}", tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == FILES and set(files) == {f.rsplit(".", 1)[0] for f in FILES}
    assert (out / "categories.txt").read_text() == "Action\nComedy\nDrama\n"  # sorted vocabulary
    truth = read_distribution_table(out / "truth.csv")
    assert list(truth.users) == ["a", "b"] and truth.categories == ("Action", "Comedy", "Drama")
    # a's future: i5 (Comedy|Action, half each) and i6 (Drama): mass 1/4, 1/4, 1/2; b's future: i6 (Drama)
    np.testing.assert_allclose(truth.probs, [[0.25, 0.25, 0.5], [0.0, 0.0, 1.0]], atol=1e-15)
    contexts = pd.read_csv(out / "contexts.csv", keep_default_na=False)
    assert contexts.to_dict("list") == {
        "user_id": ["a", "b"],
        "context": ["One [Comedy, Drama]\nThree [Comedy]\nTwo [Action]\nFour [Drama]",
                    "One [Comedy, Drama]\nTwo [Action]\nThree [Comedy]\nFour [Drama]"]}
    counts = pd.read_csv(out / "counts.csv", dtype={"user_id": str}).set_index("user_id")
    assert counts.loc["a", "Drama"] == 1 and counts.loc["a", ["Action", "Comedy"]].sum() == 1  # one count per item
    assert counts.loc["b"].tolist() == [0, 0, 1]
    items = pd.read_csv(out / "items.csv", dtype=str)
    assert dict(zip(items["item_id"], items["categories"])) == {
        "i2": "Action", "i1": "Comedy|Drama", "i3": "Comedy", "i4": "Drama", "i6": "Drama", "i5": "Comedy|Action"}
    meta = pd.read_csv(out / "meta.csv", dtype={"user_id": str}).set_index("user_id")
    assert meta.loc["a", "n_history"] == 4 and meta.loc["a", "n_future"] == 2 and meta.loc["b", "n_future"] == 1
    # the UHF prior is the history's category mix: a's history i1 (C|D), i3 (C), i2 (A), i4 (D) -> 1/4, 3/8, 3/8
    uhf = read_distribution_table(out / "history-uhf.csv")
    np.testing.assert_allclose(uhf.probs[0], [0.25, 0.375, 0.375], atol=1e-12)
    requests = pd.read_csv(out / "requests.csv", dtype=str)
    assert set(requests["user_id"]) == {"a", "b"} and set(requests["direction"]) == {"+", "-"}


def test_context_budget_keeps_the_newest_items(log, tmp_path):
    words = lambda text: len(text.split())  # noqa: E731 - a str -> int token counter
    prepare(f"table:{log}", tmp_path / "out", tokenizer=words, context_tokens=4)
    contexts = pd.read_csv(tmp_path / "out" / "contexts.csv", keep_default_na=False)
    assert contexts["context"].tolist() == ["Two [Action]\nFour [Drama]", "Three [Comedy]\nFour [Drama]"]


def test_cli_writes_the_same_files(log, tmp_path, capsys):
    prepare(f"table:{log}", tmp_path / "api")
    assert main(["prepare", "--dataset", f"table:{log}", "--out", str(tmp_path / "cli")]) == 0
    assert "wrote 11 files" in capsys.readouterr().out
    for name in FILES:
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes(), name


def test_prepare_imports_no_torch():
    import subprocess

    code = ("import sys, spectra_eval; assert 'spectra_eval.data.prepare' not in sys.modules; "
            "from spectra_eval import prepare; import spectra_eval.commands.prepare; "
            "assert prepare.__module__ == 'spectra_eval.data.prepare'; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace("timestamp", "time"), "no 'timestamp' column"),
    (lambda t: t.replace("a,i4,400,", "a,i4,soon,"), "line 5, column 'timestamp': 'soon' is not a number"),
    (lambda t: t.replace("b,i2,2020-01-02,", "b,i2,,"), "line 9, column 'timestamp'"),
    (lambda t: t.replace("a,i3,200,", ",i3,200,"), "line 4, column 'user_id': empty value"),
])
def test_bad_input_is_one_line_naming_file_line_and_column(log, tmp_path, capsys, edit, expected):
    log.write_text(edit(LOG), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["prepare", "--dataset", f"table:{log}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{log}:" in err and expected in err, err
    assert not out.exists()
    with pytest.raises(SpectraInputError, match="timestamp|user_id"):
        prepare(f"table:{log}", out)


def test_bad_arguments(log, tmp_path, capsys):
    assert main(["prepare", "--dataset", "nowhere:x", "--out", str(tmp_path / "o")]) == 2
    assert "expected ml-100k, movielens:DIR, table:FILE or yelp" in capsys.readouterr().err
    assert main(["prepare", "--dataset", f"table:{log}", "--out", str(tmp_path / "o"), "--context-tokens", "9"]) == 2
    assert "give its --tokenizer" in capsys.readouterr().err
    assert main(["prepare", "--dataset", f"table:{log}", "--out", str(tmp_path / "o"), "--context-tokens", "9",
                 "--tokenizer", str(tmp_path)]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_ml100k_from_recbole_against_a_recount(tmp_path):
    pytest.importorskip("recbole")
    from spectra_eval.data.datasets import recbole_ml100k_dir

    files = prepare("ml-100k", tmp_path / "out")
    folder = recbole_ml100k_dir()
    inter = pd.read_csv(folder / "ml-100k.inter", sep="\t")
    item = pd.read_csv(folder / "ml-100k.item", sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    item.columns = [c.split(":")[0] for c in item.columns]
    genres = dict(zip(item["item_id"], item["class"].str.split(" ")))
    # the independent recount: user 1's interactions by time (stable), last 20% -> split genre mass
    user = inter[inter["user_id"] == 1].sort_values("timestamp", kind="stable")
    n_hist = int(np.floor(0.8 * len(user)))
    mass: dict[str, float] = {}
    for i in user["item_id"].iloc[n_hist:]:
        for g in genres[i]:
            mass[g] = mass.get(g, 0.0) + 1.0 / len(genres[i])
    truth = read_distribution_table(files["truth"])
    row = truth.probs[list(truth.users).index("1")]
    total = sum(mass.values())
    for c, p in zip(truth.categories, row):
        assert p == pytest.approx(mass.get(c, 0.0) / total, abs=1e-12), c
    assert len(truth.users) == 943 and len(truth.categories) == 19
    contexts = pd.read_csv(files["contexts"], dtype={"user_id": str})
    assert contexts.loc[contexts["user_id"] == "1", "context"].iloc[0].count("\n") + 1 == n_hist
    assert json.dumps(sorted(p.name for p in (tmp_path / "out").iterdir())) == json.dumps(FILES)
