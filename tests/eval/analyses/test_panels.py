"""Robustness panels: cells equal each run's metrics.json numbers, ordering and p are the run's comparison,
spread equals numpy's over the runs, the report renders tables and the Figure 6 layout, bad input is one line."""
import json

import numpy as np
import pytest

from spectra_eval.analyses.panels import Panel, Panels, panel
from spectra_eval.cli import main
from spectra_eval.report import Report

from spectra_eval.data.synthetic import synthetic_cohort

CELLS = ("CW1-LT", "CW3-LT", "CW1-ST", "CW3-ST")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four evaluate outputs from four seeded cohorts (a stand-in for four CW x horizon cells)."""
    root = tmp_path_factory.mktemp("panel")
    dirs = {}
    for i, label in enumerate(CELLS):
        files = {}
        for name, frame in synthetic_cohort(40, seed=10 + i).items():
            files[name] = root / f"{label}-{name}.csv"
            frame.to_csv(files[name], index=False)
        dirs[label] = root / label
        assert main(["evaluate", "--truth", str(files["truth"]), "--pred", f"probe={files['probe']}",
                     "--pred", f"dg={files['dg']}", "--reference", "dg", "--bootstrap", "30",
                     "--out", str(dirs[label])]) == 0
    return dirs


def test_cells_equal_each_runs_metrics(runs, tmp_path):
    out = tmp_path / "p"
    args = ["panel", "--axis", "context window", "--out", str(out), "--metric", "ndcg@10", "--metric", "js",
            "--metric", "top1_ece", *[a for label, d in runs.items() for a in ("--run", f"{label}={d}")]]
    assert main(args) == 0
    doc = json.loads((out / "panel.json").read_text())
    assert doc["schema"] == "spectra.panel/1" and doc["axis"] == "context window" and doc["reference"] == "dg"
    assert doc["runs"] == list(CELLS)
    for label, d in runs.items():
        metrics = json.loads((d / "metrics.json").read_text())
        row = doc["rows"][label]
        for method in ("probe", "dg"):
            for key in ("ndcg@10", "js"):
                assert row["methods"][method][key] == {k: metrics["methods"][method][key][k]
                                                       for k in ("mean", "ci_low", "ci_high")}
            assert row["methods"][method]["top1_ece"] == {"mean": metrics["methods"][method]["top1_ece"],
                                                          "ci_low": None, "ci_high": None}
        comp = metrics["comparisons"]["probe vs dg"]["js"]
        assert row["p"] == comp["p"]
        assert row["ordering_holds"] == (metrics["methods"]["probe"]["js"]["mean"]
                                         < metrics["methods"]["dg"]["js"]["mean"])
    for method in ("probe", "dg"):
        for key in ("ndcg@10", "js", "top1_ece"):
            means = [doc["rows"][r]["methods"][method][key]["mean"] for r in CELLS]
            s = doc["spread"][method][key]
            assert s["min"] == min(means) and s["max"] == max(means) and s["n"] == 4
            assert s["sd"] == pytest.approx(float(np.std(means, ddof=1)), rel=1e-12)
    # the report rendered a table and the Figure 6 layout (rows = horizons)
    md = (out / "tables.md").read_text()
    assert "Robustness along context window" in md and "CW3-ST" in md
    assert f"{doc['rows']['CW1-LT']['methods']['probe']['js']['mean']:.3f}" in md
    assert (out / "figures" / "panel-panel.png").exists()
    assert "\\label{tab:panel-panel}" in (out / "tables.tex").read_text()


def test_panel_round_trips_and_reads_cells(runs):
    p = panel(runs, "context window", name="cw")
    again = Panel.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again.to_dict() == p.to_dict() and p.file == "panel-cw.json"
    assert p.cells() == {"CW1-LT": (1, "LT"), "CW3-LT": (3, "LT"), "CW1-ST": (1, "ST"), "CW3-ST": (3, "ST")}
    frame = p.to_frame()
    assert len(frame) == 4 * 2 * 2 and set(frame["metric"]) == {"ndcg@10", "js"}
    assert f"in {p.holds} of 4 runs" in p.sentence()
    assert repr(p).startswith("<Panel: panel 'cw' along context window")
    report = Report(panel=Panels({"cw": p}))
    assert report.table_keys() == ["panel:cw"]
    table = report.table("panel:cw")
    assert [r.label for r in table.rows] == [*CELLS, "max − min", "SD"]


def test_bad_runs_are_one_line(runs, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["panel", "--axis", "x", "--out", str(out), "--run", f"a={tmp_path}"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["panel", "--axis", "x", "--out", str(out), "--run", f"a={runs['CW1-LT']}",
                 "--metric", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metric 'nope' is not in this metrics.json" in err[0]
    assert main(["panel", "--axis", "x", "--out", str(out), "--run", f"a={runs['CW1-LT']}",
                 "--reference", "probe", "--probe", "dg"]) == 2
    assert "its reference is 'dg', not 'probe'" in capsys.readouterr().err
    assert main(["panel", "--axis", "x", "--out", str(out), "--run", "nolabel"]) == 2
    assert not out.exists()


def test_meta_cells_equal_separate_evaluations(tmp_path):
    import pandas as pd

    files = {}
    for name, frame in synthetic_cohort(60, seed=3).items():
        files[name] = tmp_path / f"{name}.csv"
        frame.to_csv(files[name], index=False)
    meta = pd.read_csv(files["meta"], dtype={"user_id": str})
    assert main(["evaluate", "--truth", str(files["truth"]), "--pred", f"probe={files['probe']}", "--pred",
                 f"dg={files['dg']}", "--reference", "dg", "--bootstrap", "40", "--seed", "2", "--meta",
                 str(files["meta"]), "--out", str(tmp_path / "all")]) == 0
    assert main(["panel", "--cells", str(tmp_path / "all"), "--by", "context_window", "--axis", "context window",
                 "--out", str(tmp_path / "p"), "--no-report"]) == 0
    doc = json.loads((tmp_path / "p" / "panel.json").read_text())
    levels = [str(v) for v in dict.fromkeys(meta.set_index("user_id").loc[
        pd.read_csv(files["truth"], dtype={"user_id": str})["user_id"], "context_window"])]
    assert doc["runs"] == levels
    for level in levels:  # the same users evaluated on their own
        users = set(meta.loc[meta["context_window"].astype(str) == level, "user_id"])
        sub = {}
        for name in ("truth", "probe", "dg"):
            frame = pd.read_csv(files[name], dtype={"user_id": str})
            sub[name] = tmp_path / f"{name}-{level}.csv"
            frame[frame["user_id"].isin(users)].to_csv(sub[name], index=False)
        out = tmp_path / f"e{level}"
        assert main(["evaluate", "--truth", str(sub["truth"]), "--pred", f"probe={sub['probe']}", "--pred",
                     f"dg={sub['dg']}", "--reference", "dg", "--bootstrap", "40", "--seed", "2",
                     "--out", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        for method in ("probe", "dg"):
            for key in ("js", "ndcg@10"):
                got = doc["rows"][level]["methods"][method][key]
                want = metrics["methods"][method][key]
                assert got == pytest.approx({k: want[k] for k in ("mean", "ci_low", "ci_high")}, rel=1e-12)
        assert doc["rows"][level]["p"] == pytest.approx(metrics["comparisons"]["probe vs dg"]["js"]["p"], rel=1e-12)
    assert main(["panel", "--cells", str(tmp_path / "all"), "--by", "nope", "--axis", "x",
                 "--out", str(tmp_path / "q")]) == 2
