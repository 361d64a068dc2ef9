"""``spectra steer``: every number against a per-request loop written here (scipy, statsmodels, a direct
resample), the JSON round trip, each bad input (one line, nothing written) and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from scipy.spatial.distance import jensenshannon
from statsmodels.stats.multitest import multipletests

from spectra_eval.cli import main
from spectra_eval.io import DistributionTable, json_safe
from spectra_eval.analyses.steering import SCHEMA, SteeringResult, read_requests, steer
from spectra_eval.validation import SpectraInputError

CATS = ("Action", "Comedy", "Drama", "Horror", "Sci-Fi", "Western")
GROUPS = [("Action", "+", "fine"), ("Horror", "-", "fine"), ("Comedy|Drama", "+", "coarse"),
          ("Sci-Fi|Western|Horror", "-", "coarse"), ("Western", "+", "fine"), ("Drama", "-", "fine")]


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(7)
    n_users = 25
    users = [f"u{i}" for i in range(n_users)]
    base = rng.dirichlet(np.full(len(CATS), 0.7), n_users)
    base[0] = [1.0, 0, 0, 0, 0, 0]  # '+Action' has no headroom; off-target undefined for u0's fine requests
    base[1] = [0.0, 0.5, 0.5, 0, 0, 0]  # '-Horror' has no headroom
    requests, steered = [], []
    for u in users:
        for j, (target, d, g) in enumerate(GROUPS):
            rid = f"{u}/{j}"
            requests.append({"request_id": rid, "user_id": u, "target": target, "direction": d, "granularity": g,
                             "seen": "yes" if j % 2 else "no"})
            steered.append([rid, *rng.dirichlet(np.full(len(CATS), 0.7))])
    steered[3] = [steered[3][0], *base[0]]  # an unchanged request: shift exactly 0
    frame = lambda rows, ids: pd.DataFrame(rows, columns=list(CATS)).assign(user_id=ids)[["user_id", *CATS]]  # noqa
    paths = {"base": tmp_path / "base.csv", "steered": tmp_path / "steered.csv", "requests": tmp_path / "req.csv",
             "truth": tmp_path / "truth.csv"}
    frame(base, users).to_csv(paths["base"], index=False)
    pd.DataFrame(steered, columns=["user_id", *CATS]).to_csv(paths["steered"], index=False)
    pd.DataFrame(requests).to_csv(paths["requests"], index=False)
    frame(rng.dirichlet(np.full(len(CATS), 0.5), n_users), users).to_csv(paths["truth"], index=False)
    return paths


def tables(files):
    from spectra_eval.io import read_distribution_table

    base = read_distribution_table(files["base"])
    return base, read_distribution_table(files["steered"], like=base), read_requests(files["requests"], base.categories)


def loop(files):
    """Per-request quantities, one request at a time, from the raw CSV files."""
    base = pd.read_csv(files["base"], dtype={"user_id": str}).set_index("user_id")
    steered = pd.read_csv(files["steered"], dtype={"user_id": str}).set_index("user_id")
    out = []
    for r in pd.read_csv(files["requests"], dtype=str).itertuples():
        target = r.target.split("|")
        rest = [c for c in CATS if c not in target]
        b, s = base.loc[r.user_id], steered.loc[r.request_id]
        sign = 1 if r.direction == "+" else -1
        shift = sign * (s[target].sum() - b[target].sum())
        room = 1 - b[target].sum() if sign > 0 else b[target].sum()
        rb, rs = b[rest].to_numpy(float), s[rest].to_numpy(float)
        off = jensenshannon(rb / rb.sum(), rs / rs.sum(), base=2) ** 2 if rb.sum() > 0 and rs.sum() > 0 else np.nan
        out.append({"request_id": r.request_id, "target": r.target, "direction": r.direction,
                    "granularity": r.granularity, "shift": shift, "relative": shift / room if room > 1e-12 else np.nan,
                    "off": off})
    return pd.DataFrame(out)


def expected_group(rows: pd.DataFrame, seed=0, b=1000):
    shift = rows["shift"].to_numpy()
    idx = np.random.default_rng(seed).integers(0, len(shift), (b, len(shift)))  # a direct resample
    lo, hi = np.percentile(shift[idx].mean(axis=1), [2.5, 97.5])
    p = st.wilcoxon(shift, zero_method="wilcox", alternative="two-sided").pvalue if shift.any() else 1.0
    return {"n": len(shift), "mean": shift.mean(), "ci": (lo, hi), "success": (shift > 0).mean(),
            "relative": rows["relative"].dropna().mean(), "n_relative": rows["relative"].notna().sum(),
            "off": rows["off"].dropna().mean(), "n_off": rows["off"].notna().sum(), "p": p}


def check_group(got, want):
    assert got.n == want["n"]
    assert got.shift.mean == pytest.approx(want["mean"], abs=1e-12)
    assert (got.shift.ci_low, got.shift.ci_high) == pytest.approx(want["ci"], abs=1e-12)
    assert got.success_rate == pytest.approx(want["success"])
    assert got.relative_shift == pytest.approx(want["relative"], abs=1e-12)
    assert (got.n_relative, got.n_no_headroom) == (want["n_relative"], want["n"] - want["n_relative"])
    assert got.off_target_js == pytest.approx(want["off"], abs=1e-9)
    assert (got.n_off_target, got.n_off_target_undefined) == (want["n_off"], want["n"] - want["n_off"])
    assert got.pvalue == pytest.approx(want["p"], rel=1e-9)


def test_every_number_matches_a_per_request_loop(files):
    result = steer(*tables(files))
    ref = loop(files)
    assert ref["relative"].isna().sum() >= 2 and ref["off"].isna().sum() >= 1  # the edge cases are exercised
    check_group(result.overall, expected_group(ref))
    flat = []
    for (d, g), rows in ref.groupby(["direction", "granularity"], sort=False):
        check_group(result.by[d][g], expected_group(rows))
        flat.append((d, g))
    assert sorted(flat) == sorted((d, g) for d, g, _ in result.groups())
    holm = multipletests([result.by[d][g].pvalue for d, g, _ in result.groups()], method="holm")[1]
    np.testing.assert_allclose([r.p_holm for _, _, r in result.groups()], holm, rtol=1e-12)
    assert result.overall.p_holm is None
    for (target, d), rows in ref[~ref["target"].str.contains("|", regex=False)].groupby(["target", "direction"]):
        got = result.by_category[target][d]
        want = expected_group(rows)
        assert got.n == want["n"] and got.shift.mean == pytest.approx(want["mean"], abs=1e-12)
        assert (got.shift.ci_low, got.shift.ci_high) == pytest.approx(want["ci"], abs=1e-12)
        assert got.success_rate == pytest.approx(want["success"])
    assert "Comedy" not in result.by_category  # coarse targets are not per-category steerability
    frame = result.per_request
    np.testing.assert_allclose(frame["shift"], ref["shift"], atol=1e-12)
    np.testing.assert_allclose(frame["off_target_js"], ref["off"], atol=1e-9)
    assert list(frame["seen"][:2]) == ["no", "yes"]  # extra request columns are carried


def test_populations_are_named_and_settings_recorded(files):
    base, steered, requests = tables(files)
    doc = steer(base, steered, requests, n_resamples=200, seed=3).to_dict()
    assert doc["schema"] == SCHEMA and doc["unit"] == "bits"
    assert doc["overall"]["population"] == "all 150 requests"
    assert doc["by"]["-"]["coarse"]["population"] == "requests with direction '-' and granularity 'coarse'"
    assert doc["by_category"]["Action"]["+"]["population"].startswith("requests with the single target 'Action'")
    s = doc["settings"]
    assert (s["bootstrap"], s["seed"], s["zero_method"], s["correction"]) == (200, 3, "wilcox", "Holm")
    assert "Wilcoxon" in s["test"] and s["buckets_from"] == "base"
    assert set(doc["definitions"]) >= {"shift", "relative_shift", "off_target_js"}
    assert list(doc["by"]) == ["+", "-"] and list(doc["by"]["+"]) == ["fine", "coarse"]


def test_json_round_trip(files):
    result = steer(*tables(files), n_resamples=100)
    doc = json.loads(json.dumps(json_safe(result.to_dict())))
    again = SteeringResult.from_dict(doc)
    assert again == result
    assert json_safe(again.to_dict()) == doc


def test_buckets_from_the_truth(files):
    from spectra_eval.io import read_distribution_table

    base, steered, requests = tables(files)
    truth = read_distribution_table(files["truth"])
    result = steer(base, steered, requests, truth=truth, n_resamples=50)
    order = np.argsort(-truth.probs.mean(axis=0), kind="stable")
    assert result.buckets["head"] == tuple(CATS[i] for i in order[:2])
    assert result.settings.buckets_from == "truth"


def test_cli_writes_json_and_per_request(files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["steer", "--base", str(files["base"]), "--steered", str(files["steered"]), "--requests",
                 str(files["requests"]), "--truth", str(files["truth"]), "--out", str(out), "--bootstrap", "100"])
    assert code == 0
    doc = json.loads((out / "steering.json").read_text())
    assert doc["n_requests"] == 150 and doc["settings"]["bootstrap"] == 100
    assert len(pd.read_parquet(out / "per_request.parquet")) == 150
    assert "direction" in capsys.readouterr().out


def _edit(path, column, row, value):
    frame = pd.read_csv(path, dtype=str)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)


@pytest.mark.parametrize("edit, message", [
    (("requests", "target", 4, "Musical"), "req.csv: request 'u0/4' (row 5), column 'target': 'Musical' is not a "
                                           "category of"),
    (("requests", "user_id", 2, "ghost"), "req.csv: request 'u0/2' (row 3), column 'user_id': user 'ghost' is not in"),
    (("requests", "request_id", 3, "u0/1"), "req.csv: request 'u0/1' (row 4) repeats the request id of row 2"),
    (("requests", "direction", 0, "up"), "req.csv: request 'u0/0' (row 1), column 'direction': 'up' is not '+' or '-'"),
    (("requests", "target", 1, "Action|Action"), "category 'Action' appears twice"),
    (("requests", "target", 1, "|".join(CATS)), "names every category"),
    (("steered", "user_id", 5, "nope"), "steered.csv: no row for request 'u0/5'"),
    (("steered", "Drama", 0, "-0.1"), "steered.csv, user 'u0/0' (row 1), column 'Drama': value -0.1 is negative"),
])
def test_bad_input_is_one_line_and_writes_nothing(files, tmp_path, capsys, edit, message):
    name, column, row, value = edit
    _edit(files[name], column, row, value)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    code = main(["steer", "--base", str(files["base"]), "--steered", str(files["steered"]), "--requests",
                 str(files["requests"]), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_extra_steered_row_and_missing_column(files, tmp_path, capsys):
    frame = pd.read_csv(files["steered"], dtype={"user_id": str})
    pd.concat([frame, frame.iloc[[0]].assign(user_id="stray")]).to_csv(files["steered"], index=False)
    args = ["steer", "--base", str(files["base"]), "--steered", str(files["steered"]), "--requests",
            str(files["requests"]), "--out", str(tmp_path / "o")]
    assert main(args) == 2 and "row 'stray' is not a request of" in capsys.readouterr().err
    pd.read_csv(files["requests"]).drop(columns="granularity").to_csv(files["requests"], index=False)
    assert main(args) == 2 and "no 'granularity' column" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_shift_signs_by_hand():
    """Two users, hand-worked: +A moves 0.2 -> 0.5 (shift +0.3, relative 0.3/0.8); -B|C moves 0.6 -> 0.3."""
    base = DistributionTable(np.array(["u", "v"], dtype=object), ("A", "B", "C"),
                             np.array([[0.2, 0.3, 0.5], [0.4, 0.4, 0.2]]))
    steered = DistributionTable(np.array(["r1", "r2"], dtype=object), ("A", "B", "C"),
                                np.array([[0.5, 0.2, 0.3], [0.7, 0.1, 0.2]]))
    from spectra_eval.analyses.steering import Requests

    req = Requests(np.array(["r1", "r2"], dtype=object), np.array(["u", "v"], dtype=object), (("A",), ("B", "C")),
                   np.array(["+", "-"], dtype=object), np.array(["fine", "coarse"], dtype=object),
                   np.array(["single", "single"], dtype=object))
    assert req.check_users(["v", "u"], "users").tolist() == [1, 0]
    req.check_targets(("A", "B", "C"), "base")
    with pytest.raises(SpectraInputError, match=r"^<memory>: request 'r2' \(row 2\), column 'target': 'C' is not a "
                                                r"category of base$"):
        req.check_targets(("A", "B"), "base")
    frame = steer(base, steered, req, n_resamples=10).per_request
    np.testing.assert_allclose(frame["shift"], [0.3, 0.3])
    np.testing.assert_allclose(frame["relative_shift"], [0.3 / 0.8, 0.3 / 0.6])
    # off target of r1: B|C renormalised (0.375, 0.625) vs (0.4, 0.6); of r2: only A is left, so JS = 0
    m = np.array([0.3875, 0.6125])
    kl = lambda p: float((p * np.log2(p / m)).sum())  # noqa: E731
    np.testing.assert_allclose(frame["off_target_js"], [0.5 * (kl(np.array([0.375, 0.625])) + kl(np.array([0.4, 0.6]))),
                                                        0.0], atol=1e-12)


# ------------------------------------------------------------------ report


def test_report_renders_the_steering_table_and_figure(files, tmp_path):
    from spectra_eval.report import Report
    from spectra_eval.report.figures import FIGURES, render_figures

    out = tmp_path / "out"
    assert main(["steer", "--base", str(files["base"]), "--steered", str(files["steered"]), "--requests",
                 str(files["requests"]), "--truth", str(files["truth"]), "--out", str(out), "--bootstrap", "100"]) == 0
    report = Report.from_dir(out)
    assert report.table_keys() == ["steering"]
    doc = json.loads((out / "steering.json").read_text())
    frame = report.to_frame("steering")
    assert frame.loc["towards the target (+) / fine", "shift"] == pytest.approx(doc["by"]["+"]["fine"]["shift"]["mean"])
    assert frame.loc["away from the target (−) / coarse", "p"] == pytest.approx(doc["by"]["-"]["coarse"]["p_holm"])
    assert frame.loc["all requests / all", "n"] == 150
    half = (doc["overall"]["shift"]["ci_high"] - doc["overall"]["shift"]["ci_low"]) / 2
    assert frame.loc["all requests / all", "shift_hw"] == pytest.approx(half)
    markdown, latex = report.to_markdown(), report.to_latex()
    assert "Steerability" in markdown and "off-target JS (bits)" in markdown and "\\begin{table" in latex
    written = render_figures(report.documents, tmp_path / "figures")
    assert set(written) == {"steerability"} and FIGURES["steerability"].document == "steering"
    assert all(p.stat().st_size > 0 for p in written["steerability"])
    assert Report.from_dict(report.to_dict()).to_markdown() == markdown


def test_steerability_figure_without_single_targets_is_skipped(files):
    from spectra_eval.report.figures import steerability_figure

    pd.read_csv(files["requests"]).assign(target="Comedy|Drama").to_csv(files["requests"], index=False)
    assert steerability_figure(steer(*tables(files), n_resamples=20)) is None


# ------------------------------------------------------------------ the demo stage's pieces


def test_demo_sample_and_sentence(files):
    from spectra_probe.demo.steering_stage import sample_requests, steering_sentence

    requests = pd.read_csv(files["requests"], dtype=str)
    sample = sample_requests(requests, n_users=5, seed=0)
    assert sample["user_id"].nunique() == 5 and len(sample) == 5 * len(GROUPS)
    assert sample.equals(sample_requests(requests, n_users=5, seed=0))
    assert sample_requests(requests, n_users=100).equals(requests)  # a small cohort is probed whole
    doc = steer(*tables(files), n_resamples=50).to_dict()
    sentence = steering_sentence(doc, 25)
    o = doc["overall"]
    assert f"{o['shift']['mean']:+.2g}" in sentence and f"success rate {o['success_rate']:.2f}" in sentence
    assert "150 requests of 25 users)" in sentence and "a seeded sample" not in sentence
    assert "a seeded sample of the 943" in steering_sentence(doc, 943)
    assert "do not measurably steer" in sentence  # the fixture's shifts are noise: no group passes Holm
    strong = json.loads(json.dumps(doc))
    strong["by"]["+"]["fine"].update(p_holm=0.001, shift={"mean": 0.12, "ci_low": 0.1, "ci_high": 0.14})
    strong["by"]["-"]["fine"].update(p_holm=0.01, shift={"mean": -0.03, "ci_low": -0.05, "ci_high": -0.01})
    reading = steering_sentence(strong, 25)
    assert "+ fine +0.12 (the stated way); - fine -0.03 (against the statement)" in reading
    assert "a mention effect" in reading  # both directions raised the named genres' mass
    strong["by"]["-"]["fine"].update(shift={"mean": 0.03, "ci_low": 0.01, "ci_high": 0.05})
    assert "a mention effect" not in steering_sentence(strong, 25)  # '-' lowered it: the stated way
