"""A tiny end-to-end run of `spectra demo`: every artifact exists, parses, and agrees with its inputs."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from spectra_eval.cli import main
from spectra_eval.io import read_frame
from tests.probe.demo.panel_checks import check_panels

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
    # population statements for probe-yesno vs dg and vs history-cohort (the skeptic's comparison), in the README
    versus = json.loads((out / "certificate-vs-history-cohort.json").read_text())
    assert versus["settings"]["compared"] == {"method": "probe-yesno", "versus": "history-cohort"}
    assert certificate["settings"]["compared"] == {"method": "probe-yesno", "versus": "dg"}
    for cert in (certificate, versus):
        pop = cert["latent"]["population"]
        assert pop["n_pilot"] + pop["n_holdout"] == 12 and pop["brier_gap"]["lower"] <= pop["brier_gap"]["estimate"]
    readme = (out / "README.md").read_text()
    assert "probe-yesno vs `dg`" in readme and "probe-yesno vs `history-cohort`" in readme
    assert demo["training"]["cpt"]["steps"] == demo["training"]["sft"]["steps"] == 2
    # context_items_mean: lines per exported context, as contexts.csv holds them
    exported = read_frame(work / "data" / "contexts.csv", string_columns=("user_id", "context"))["context"]
    assert demo["preset"]["context_items_mean"] == float((exported.str.count("\n") + 1).mean())
    # every extra stage is timed once, under its registry name (the fusion stage's time is not split off)
    assert [s for s in demo["seconds"] if s.startswith("fusion")] == ["fusion"] and demo["seconds"]["fusion"] > 0

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
    # the demo preset trains every weight in SFT, so the probe loads the SFT model itself, no adapter
    assert manifest["model"].endswith("model-sft") and manifest["adapter"] is None
    assert demo["preset"]["sft_mode"] == "full" and demo["preset"]["samples"]["yesno_dist"] > 0

    # the probes against the cohort prior, from a second evaluation with that reference
    versus = json.loads((work / "evaluation-vs-cohort" / "metrics.json").read_text())
    assert versus["settings"]["reference"] == "history-cohort"
    assert set(demo["vs_history_cohort"]) == METHODS - {"history-cohort"}
    js = versus["comparisons"]["probe-yesno vs history-cohort"]["js"]
    assert demo["vs_history_cohort"]["probe-yesno"] == {k: js[k] for k in ("mean_diff", "ci_low", "ci_high", "p")}

    # the README's numbers are the JSON's, and it says what the run does and does not show
    readme = (out / "README.md").read_text()
    yesno = metrics["methods"]["probe-yesno"]
    assert f"{yesno['js']['mean']:.3f}" in readme and f"{metrics['methods']['dg']['head_bias']:.3f}" in readme
    assert f"p = {js['p']:.2g}" in readme and "## What it does not show" in readme
    assert ("`probe-yesno` personalises" in readme) == ((yesno["personalization"]["ci_low"] or 0) > 0)
    # the extra stages' sentences are in the README, and the fusion one reads the fusion JSON's numbers
    assert demo["steering"]["sentence"] in readme and demo["fusion"]["sentence"] in readme
    fusion = json.loads((out / "fusion-sasrec-neg99.json").read_text())
    base = fusion["results"][fusion["settings"]["reference_lambda"]]["all"]["ndcg@10"]["mean"]
    assert f"SASRec, 1 + 99: NDCG@10 {base:.3f} alone, lambda = {fusion['best_lambda']}" in readme
    # the robustness panels (Appendix D, Table 15, Figure 6) and latency
    check_panels(out, work, tmp_path)


def test_fusion_sentence_reads_gains_and_losses(tmp_path):
    """The README's fusion verdict follows the fusion JSON: a significant gain, a significant loss, or neither."""
    from spectra_probe.demo.fusion_stage import fusion_sentence

    doc = json.loads((Path(__file__).parents[3] / "reports" / "movielens-100k" / "fusion-sasrec-neg99.json").read_text())
    best = doc["best_lambda"] = doc["selection"]["best_lambda"] = "0.5"

    def verdict(delta, p_holm):
        doc["comparisons"][best]["all"].update(delta=delta, ci_low=delta - 0.01, ci_high=delta + 0.01, p_holm=p_holm)
        (tmp_path / "fusion-x.json").write_text(json.dumps(doc))
        return fusion_sentence(tmp_path)

    gain = verdict(0.02, 0.001)
    assert "lambda = 0.5 chosen on validation: +0.0200 [+0.0100, +0.0300], Holm p = 0.001" in gain
    assert "improves 1 of 1 runs significantly" in gain and "worse" not in gain
    assert "makes 1 significantly worse" in verdict(-0.02, 0.001)
    neither = verdict(-0.02, 0.2)
    assert "no run gains significantly" in neither and "worse" not in neither
