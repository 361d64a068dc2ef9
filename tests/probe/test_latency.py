"""Latency: the probe manifest's ``latency`` block (prompts and tokens per user counted independently, the same
for both engines), the K-linear fit against numpy.polyfit, the packed-vs-naive ratio, and the report table."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from spectra_eval.analyses.latency import Latency, latency
from spectra_eval.cli import main
from spectra_eval.report import Report

CATS = ("Comedy", "Drama", "Action", "Sci-Fi", "Film-Noir")
CONTEXTS = ["the user watched comedy drama and then liked romance", "liked action movie film thriller sci-fi",
            "rated documentary history war film-noir crime mystery recently"]


def _row(k, s, engine="packed", method="yesno", run=None):
    return {"run": run or f"{method}-{engine}-{k}", "method": method, "engine": engine, "k": k, "users": 10,
            "seconds": s * 10, "seconds_per_user": s, "prompts_per_user": float(k), "tokens_per_user": 20.0 * k,
            "device": "cpu", "dtype": "float32"}


def test_fit_matches_polyfit_and_ratio_by_hand():
    ks = [5, 10, 19]
    packed = [0.01 + 0.002 * k + e for k, e in zip(ks, (1e-4, -2e-4, 1e-4))]
    naive = [0.03 + 0.005 * k for k in ks[:2]]
    lat = latency([_row(k, s) for k, s in zip(ks, packed)] + [_row(k, s, "naive") for k, s in zip(ks, naive)]
                  + [_row(19, 0.1, method="dg")])
    b, a = np.polyfit(ks, packed, 1)
    f = lat.fits["yesno"]["packed"]
    assert f["a"] == pytest.approx(a, rel=1e-9) and f["b"] == pytest.approx(b, rel=1e-9) and f["k"] == ks
    assert "dg" not in lat.fits  # one K only: no fit
    r = lat.ratios["yesno"]
    assert r["k"] == [5, 10] and r["mean"] == pytest.approx((naive[0] / packed[0] + naive[1] / packed[1]) / 2)
    assert r["slope_ratio"] == pytest.approx(0.005 / lat.fits["yesno"]["packed"]["b"], rel=1e-9)
    again = Latency.from_dict(json.loads(json.dumps(lat.to_dict())))
    assert again.to_dict() == lat.to_dict()
    table = Report(latency=lat).table("latency")
    assert len(table.rows) == 6 and any("naive / packed" in n for n in table.notes)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("latency")
    pd.DataFrame({"user_id": ["a", "b", "c"], "context": CONTEXTS}).to_csv(root / "contexts.csv", index=False)
    (root / "cats.txt").write_text("\n".join(CATS) + "\n")
    (root / "cats3.txt").write_text("\n".join(CATS[:3]) + "\n")
    out = {}
    for name, extra in {"yesno-packed": ("--method", "yesno"),
                        "yesno-naive": ("--method", "yesno", "--engine", "naive"),
                        "yesno3-packed": ("--method", "yesno", "--categories", str(root / "cats3.txt")),
                        "dg": ("--method", "dg", "--k", "2", "--max-new-tokens", "4")}.items():
        out[name] = root / f"{name}.csv"
        cats = () if "--categories" in extra else ("--categories", str(root / "cats.txt"))
        assert main(["probe", "--model", str(tiny_model_dir), "--contexts", str(root / "contexts.csv"), *cats,
                     "--out", str(out[name]), "--no-progress", *extra]) == 0
    return root, out, tiny_model_dir


def test_manifest_counts_prompts_and_tokens(runs):
    from transformers import AutoTokenizer

    from spectra_probe.templates import PromptBuilder, PromptTemplates

    root, out, model = runs
    tok = AutoTokenizer.from_pretrained(model)
    b = PromptBuilder(PromptTemplates(), tok)
    blocks = {n: json.loads(p.with_name(f"{n}.manifest.json").read_text())["latency"] for n, p in out.items()}
    lat = blocks["yesno-packed"]
    assert lat["users"] == 3 and lat["engine"] == "packed" and lat["device"] == "cpu" and lat["dtype"] == "float32"
    assert lat["prompts_per_user"] == len(CATS) and blocks["dg"]["prompts_per_user"] == 1
    assert lat["seconds_per_user"] == pytest.approx(lat["seconds"] / 3)
    # independent count: each whole prompt tokenised on its own (a BPE merge at the boundary moves one token)
    n = lambda s: len(tok(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    whole = np.mean([sum(n(b.probe_prefix(c) + b.probe_suffix(cat)) for cat in CATS) for c in CONTEXTS])
    assert abs(lat["tokens_per_user"] - whole) <= len(CATS)
    # the count does not depend on the engine
    assert blocks["yesno-naive"]["engine"] == "naive"
    assert blocks["yesno-naive"]["tokens_per_user"] == lat["tokens_per_user"]
    assert blocks["yesno-naive"]["prompts_per_user"] == lat["prompts_per_user"]
    assert blocks["yesno3-packed"]["prompts_per_user"] == 3


def test_report_reads_manifests(runs, tmp_path):
    root, out, _ = runs
    for name, path in out.items():
        (tmp_path / f"{name}.manifest.json").write_text(path.with_name(f"{name}.manifest.json").read_text())
    assert main(["report", str(tmp_path), "--no-pdf"]) == 0
    md = (tmp_path / "tables.md").read_text()
    assert "Wall-clock latency" in md and "yesno-naive (yesno)" in md
    assert "Fit yesno (packed): s/user" in md and "naive / packed s/user" in md


def test_merged_shards_sum_their_latency():
    from spectra_probe.run.outputs import merge_latency

    a = {"seconds": 2.0, "users": 4, "seconds_per_user": 0.5, "prompts_per_user": 5.0, "tokens_per_user": 100.0,
         "engine": "packed", "device": "cpu", "dtype": "float32"}
    b = {**a, "seconds": 3.0, "users": 2, "seconds_per_user": 1.5, "tokens_per_user": 130.0, "device": "cuda:0"}
    m = merge_latency([a, b])
    assert m["seconds"] == 5.0 and m["users"] == 6 and m["seconds_per_user"] == pytest.approx(5 / 6)
    assert m["tokens_per_user"] == pytest.approx((4 * 100 + 2 * 130) / 6) and m["prompts_per_user"] == 5.0
    assert m["engine"] == "packed" and m["device"] == "mixed"
    assert merge_latency([a, None]) is None
    assert merge_latency([a, {**b, "prompts_per_user": None}])["prompts_per_user"] is None


def test_ratio_pairs_runs_of_the_same_users():
    full = {**_row(19, 0.05, run="full"), "users": 943}
    sample = {**_row(19, 0.04, run="sample"), "users": 100}
    naive = {**_row(19, 0.12, "naive"), "users": 100}
    assert latency([full, sample, naive]).ratios["yesno"]["each"] == [pytest.approx(0.12 / 0.04)]
    assert latency([full, {**naive, "users": 50}]).ratios["yesno"]["each"] == [pytest.approx(0.12 / 0.05)]
