"""A tiny end-to-end run of `spectra demo`: every artifact exists, parses, and agrees with its inputs."""
import json

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from spectra_eval.cli import main

METHODS = {"probe-yesno", "probe-name", "probe-choice", "dg", "history-uhf", "history-laplace", "history-markov",
           "history-cohort"}


def test_demo_pipeline_end_to_end(tmp_path, capsys):
    out, work = tmp_path / "report", tmp_path / "work"
    assert main(["demo", "--users", "12", "--max-steps", "2", "--out", str(out), "--work", str(work)]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    certificate = json.loads((out / "certificate.json").read_text())
    demo = json.loads((out / "demo.json").read_text())
    assert set(metrics["methods"]) == METHODS
    assert metrics["n_users"] == demo["n_users"] == 12
    assert metrics["n_categories"] == 19 and metrics["settings"]["reference"] == "dg"
    assert set(metrics["comparisons"]) == {f"{m} vs dg" for m in METHODS - {"dg"}}
    assert certificate["per_user"]["n"] == 12 and certificate["per_user"]["chain"] == "sharp"
    counts = pd.read_csv(work / "data" / "counts.csv", dtype={"user_id": str}).set_index("user_id")
    future = pd.read_csv(work / "data" / "meta.csv", dtype={"user_id": str}).set_index("user_id")["n_future"]
    assert (counts.sum(axis=1) == future.loc[counts.index]).all()  # one count per future item
    latent = certificate["latent"]
    assert latent["n_obs"]["min"] == counts.sum(axis=1).min() and certificate["headline"]["level"] == "latent"
    assert demo["training"]["cpt"]["steps"] == demo["training"]["sft"]["steps"] == 2

    # the report folder holds cohort-level outputs only, rendered and readable
    for name in ("tables.md", "tables.tex", "report.tex", "README.md"):
        assert (out / name).stat().st_size > 0
    assert {p.name for p in (out / "figures").glob("*.png")} >= {"reliability.png", "js_ndcg.png"}
    assert not list(out.glob("*.parquet")) and not list(out.glob("*per_user*"))
    assert "probe-yesno" in (out / "tables.md").read_text()

    # numbers agree with an independent computation from the exported tables
    truth = pd.read_csv(work / "data" / "truth.csv", dtype={"user_id": str}).set_index("user_id")
    for name in ("history-uhf", "probe-yesno"):
        path = work / "data" / f"{name}.csv" if name.startswith("history") else work / "probe" / f"{name}.csv"
        pred = pd.read_csv(path, dtype={"user_id": str}).set_index("user_id").loc[truth.index, truth.columns]
        js = np.array([jensenshannon(p, q, base=2) ** 2 for p, q in zip(pred.to_numpy(), truth.to_numpy())])
        # scipy returns NaN for (numerically) identical rows; JS is 0 there
        assert np.isclose(metrics["methods"][name]["js"]["mean"], np.nan_to_num(js).mean(), atol=1e-9)
    manifest = json.loads((work / "probe" / "probe-yesno.manifest.json").read_text())
    verbalizers = manifest["scorer"]["verbalizers"]  # exactly the tokens SFT trained the yes/no task on
    assert [v["text"] for v in verbalizers["yes"]] == [" Yes"] and [v["text"] for v in verbalizers["no"]] == [" No"]
    assert manifest["adapter_sha256"]
