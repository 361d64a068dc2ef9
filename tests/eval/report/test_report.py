"""Tests for spectra_eval.report and ``spectra report``: numbers, bolding, marks, escaping, goldens, pdflatex, CLI."""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from spectra_eval import report as rp
from spectra_eval.cli import main
from spectra_eval.evaluation import Evaluation
from spectra_eval.stats import MeanCI
from spectra_eval.report import Cell, Report, embolden, latex_escape, md_escape
from spectra_eval.validation import SpectraInputError

FIXTURE = Path(__file__).parents[2] / "fixtures" / "report"
GOLDEN = Path(__file__).parents[2] / "golden"

# The fixture has metrics (with comparisons and strata, without taste) and a certificate (without population
# bounds): every table of those two documents applies except the ones that need what it lacks.
NEEDS_MORE = {"taste": "a history table", "certificate_population": "population bounds"}
NEEDS_COMPARISONS = ("quartiles", "category_wins")
ALL_KEYS = [k for k, t in rp.TABLES.items() if t.document in ("metrics", "certificate") and k not in NEEDS_MORE]


@pytest.fixture(scope="module")
def metrics():
    return json.loads((FIXTURE / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cert():
    return json.loads((FIXTURE / "certificate.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report():
    return Report.from_dir(FIXTURE)


def cells(table, key):
    j = [c.key for c in table.columns].index(key)
    return {row.label: row.cells[j] for row in table.rows if not row.is_section}


def bold_labels(table, key):
    return {label for label, c in cells(table, key).items() if c.bold}


def write_dir(path: Path, metrics=None, cert=None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if cert is not None:
        (path / "certificate.json").write_text(json.dumps(cert), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ the fixture itself


def test_fixture_is_internally_consistent(metrics, cert):
    """The fixture's Holm p-values, buckets and DKW numbers are what independent code computes."""
    assert metrics["n_categories"] == len(metrics["categories"]) == 19
    assert {"Children's", "Film-Noir", "Sci-Fi"} <= set(metrics["categories"])
    mass = pd.Series(metrics["truth"]["category_mass"])[metrics["categories"]]
    order = sorted(mass.index, key=lambda c: (-mass[c], metrics["categories"].index(c)))
    assert metrics["buckets"] == {"head": order[:6], "mid": order[6:12], "tail": order[12:]}
    for comp in metrics["comparisons"].values():
        frame = pd.DataFrame(comp["per_category"]).T
        np.testing.assert_allclose(frame["p_holm"], multipletests(frame["p"], method="holm")[1])
    d = cert["dkw"]["paper"]  # the paper's Eq. 11 arithmetic
    assert d["cohort_slack"] == pytest.approx(2 * math.sqrt(math.log(4 / d["alpha"]) / (2 * d["n"])))
    assert d["route_penalty"] == pytest.approx(2 * d["routes"] * d["alpha"] / (4 * d["n"] * d["routes"]))
    for d in (cert["dkw"], cert["dkw"]["paper"]):
        assert d["pi_lower"] == pytest.approx(cert["per_user"]["fraction_in_regime"] - d["route_penalty"] - d["cohort_slack"])


# ------------------------------------------------------------------------------------------ numbers in the tables


def test_table_keys(report):
    assert report.table_keys() == ALL_KEYS


def test_js_table_values_half_widths_and_bold(report, metrics):
    t = report.table("js")
    js = cells(t, "js")
    means = {m: v["js"]["mean"] for m, v in metrics["methods"].items()}
    for m, v in metrics["methods"].items():
        assert js[m].value == v["js"]["mean"]
        assert js[m].half_width == pytest.approx((v["js"]["ci_high"] - v["js"]["ci_low"]) / 2)
        assert js[m].display == f"{v['js']['mean']:.3f}"
    assert bold_labels(t, "js") == {min(means, key=means.get)}  # lower is better
    delta = cells(t, "delta_js")
    ref = metrics["settings"]["reference"]
    assert delta[ref].value is None and delta[ref].display == rp.DASH
    diffs = {c["method"]: c["js"]["mean_diff"] for c in metrics["comparisons"].values()}
    assert {m: delta[m].value for m in diffs} == diffs
    assert bold_labels(t, "delta_js") == {min(diffs, key=diffs.get)}
    assert all(delta[m].mark == rp.DAGGER for m in diffs)  # every fixture p is < 1e-90


def test_ndcg_table_bold_is_highest_and_marks_follow_p(report, metrics):
    t = report.table("ndcg")
    for key, col in (("ndcg@5", "ndcg_at_5"), ("ndcg@10", "ndcg_at_10")):
        means = {m: v[key]["mean"] for m, v in metrics["methods"].items()}
        assert bold_labels(t, col) == {max(means, key=means.get)}
        got = cells(t, col)
        for comp in metrics["comparisons"].values():
            assert (got[comp["method"]].mark == rp.DAGGER) == (comp[key]["p"] < 0.05)
    # a p-value above alpha loses its mark
    changed = copy.deepcopy(metrics)
    changed["comparisons"]["spectra_probe vs dg"]["ndcg@5"]["p"] = 0.2
    assert cells(rp.metric_tables.ndcg_table(Evaluation.from_dict(changed)), "ndcg_at_5")["spectra_probe"].mark == ""


def test_tail_mass_table(report, metrics):
    t = report.table("tail_mass")
    truth_tail = metrics["truth"]["bucket_mass"]["tail"]
    tails = {m: v["bucket_mass"]["tail"] for m, v in metrics["methods"].items()}
    assert bold_labels(t, "tail_mass") == {min(tails, key=lambda m: abs(tails[m] - truth_tail))}
    assert cells(t, "tail_mass")["truth"].value == truth_tail
    ratio = cells(t, "head_ece_ratio")
    for m, v in metrics["methods"].items():
        assert ratio[m].value == pytest.approx(v["ece"]["head"] / v["ece"]["overall"])
        assert ratio[m].display == f"{v['ece']['head'] / v['ece']['overall']:.1f}×"
    assert bold_labels(t, "head_ece_ratio") == set()  # no direction, no bold
    biases = {m: v["head_bias"] for m, v in metrics["methods"].items()}
    assert bold_labels(t, "head_bias") == {min(biases, key=biases.get)}


def test_quartile_table(report, metrics):
    t = report.table("quartiles")
    assert [r.label for r in t.rows] == list(metrics["comparisons"])
    for q in ("Q1", "Q2", "Q3", "Q4"):
        got = cells(t, f"delta_{q.lower()}")
        deltas = {k: c["quartiles"][q]["delta"] for k, c in metrics["comparisons"].items()}
        assert {k: got[k].value for k in deltas} == deltas
        assert bold_labels(t, f"delta_{q.lower()}") == {min(deltas, key=deltas.get)}  # most negative
    p = cells(t, "p_q4")
    assert p["reranker|8B & top-5% vs dg"].display == "<1e-300"  # an underflowed p is not printed as 0
    assert p["spectra_probe vs dg"].display == "7.6e-40"
    assert cells(t, "n_q4")["spectra_probe vs dg"].display == "235"


def test_strata_table_and_its_absence(report, metrics, tmp_path):
    t = report.table("strata")
    row = cells(t, "wins")["reranker|8B & top-5% vs dg: activity"]
    levels = metrics["comparisons"]["reranker|8B & top-5% vs dg"]["strata"]["activity"]["levels"]
    wins = sum(v["delta"] < 0 and v["p"] < 0.05 for v in levels.values())
    assert row.display == f"{wins}/{len(levels)}" == "3/4"
    assert cells(t, "delta_min")["reranker|8B & top-5% vs dg: activity"].value == min(v["delta"] for v in levels.values())
    no_meta = copy.deepcopy(metrics)
    for comp in no_meta["comparisons"].values():
        del comp["strata"]
    r = Report.from_dir(write_dir(tmp_path / "nometa", no_meta))
    assert "strata" not in r.table_keys() and "Stratified" not in r.to_markdown()
    with pytest.raises(SpectraInputError, match="no strata"):
        r.table("strata")


def test_ece_table_bolds_within_each_stratum(report, metrics):
    t = report.table("ece")
    names = list(metrics["methods"])
    for row in t.rows:
        vals = [metrics["methods"][m]["ece"][row.label] for m in names]
        assert [c.value for c in row.cells[: len(names)]] == vals
        assert [c.bold for c in row.cells[: len(names)]] == [v == min(vals) for v in vals]
        assert row.cells[len(names)].value == metrics["methods"][names[0]]["ece_pairs"][row.label]
    assert cells(t, "n_pairs")["overall"].display == f"{943 * 19:,}"


def test_top1_and_category_wins(report, metrics):
    top1 = cells(report.table("top1_ece"), "top1_ece")
    assert {m: top1[m].value for m in metrics["methods"]} == {m: v["top1_ece"] for m, v in metrics["methods"].items()}
    t = report.table("category_wins")
    for key, comp in metrics["comparisons"].items():
        frame = pd.DataFrame(comp["per_category"]).T.astype(float)
        sig = frame["p_holm"] < 0.05
        won = frame.index[sig & (frame["mean_abs_err_method"] < frame["mean_abs_err_reference"])]
        lost = frame.index[sig & (frame["mean_abs_err_method"] > frame["mean_abs_err_reference"])]
        assert cells(t, "wins")[key].value == len(won)
        assert cells(t, "losses")[key].value == len(lost)
        assert cells(t, "not_significant")[key].value == 19 - len(won) - len(lost)
        assert cells(t, "won_on")[key].display.split(", ") == list(won)
        assert cells(t, "lost_on")[key].display.split(", ") == list(lost)
    assert cells(t, "lost_on")["spectra_probe vs dg"].display == "Film-Noir, Musical"


def test_certificate_tables(report, cert):
    t = report.table("certificate")
    frac = cells(t, "fraction")
    assert frac["in regime (sharp chain)"].value == cert["per_user"]["fraction_in_regime"]
    assert cells(t, "pi_lower")["in regime (sharp chain)"].value == cert["dkw"]["pi_lower"]
    t1 = cert["theorem1"]
    assert cells(t, "gain")["Theorem 1 mean gain, all users"].value == t1["mean_gain"]
    assert cells(t, "gain_ci")["Theorem 1 mean gain, all users"].display == (
        f"[{t1['gain_ci_low']:.3f}, {t1['gain_ci_high']:.3f}]")
    assert cells(t, "gain")["Theorem 1 favorable (k = 5, direct_linf)"].value == t1["conditional_gain"]
    agg = report.table("certificate_aggregate")
    sections = [r.label for r in agg.rows if r.is_section]
    assert sections == [rp.READING_NAMES[k] for k in cert["aggregate"]]
    frame = agg.to_frame()
    for key, reading in cert["aggregate"].items():
        for chain, c in reading["chains"].items():
            row = frame.loc[f"{rp.READING_NAMES[key]} / {chain}"]
            assert row["tv_bound"] == c["tv_bound"] and row["margin"] == c["margin"]
            assert row["valid"] == ("yes" if c["valid"] else "no" + rp.DDAGGER)
            assert row["holds"] == ("yes" if c["holds"] else "no")
    assert any(cert["aggregate"]["mean_js"]["label"] in n for n in agg.notes)  # producer's label kept as a note
    assert rp.DDAGGER in agg.notes[-1]
    dkw = report.table("dkw")
    for label, d in (("this library", cert["dkw"]), ("paper Eq. 11", cert["dkw"]["paper"])):
        assert cells(dkw, "cohort_slack")[label].display == f"{d['cohort_slack']:.4f}"
        assert cells(dkw, "pi_lower")[label].value == d["pi_lower"]
    assert cells(dkw, "route_penalty")["paper Eq. 11"].display == f"{0.05 / (2 * 943):.1e}"
    assert cells(dkw, "route_penalty")["this library"].display == "0"


def test_missing_key_names_file_and_key(metrics, tmp_path):
    broken = copy.deepcopy(metrics)
    del broken["methods"]["dg"]["js"]
    r = Report.from_dir(write_dir(tmp_path / "b", broken))
    with pytest.raises(SpectraInputError, match=r"metrics\.json: missing key 'js' under methods\.dg"):
        r.to_markdown()


# ------------------------------------------------------------------------------------------ bolding


def test_embolden_directions_and_ties():
    c = [Cell(v, str(v)) for v in (0.3, 0.1, 0.1, 0.5)]
    assert [x.bold for x in embolden(c, "lower")] == [False, True, True, False]
    assert [x.bold for x in embolden(c, "higher")] == [False, False, False, True]
    assert [x.bold for x in embolden(c, "closest", target=0.32)] == [True, False, False, False]
    assert not any(x.bold for x in embolden(c, None))
    assert not any(x.bold for x in embolden([Cell(0.1, "0.1"), Cell()], "lower"))  # one competitor only


def test_ci_cell_reads_mean_or_estimate_with_the_half_width():
    from spectra_eval.report.model import ci_cell, num
    from spectra_eval.stats import PairedEffect

    mean = ci_cell(MeanCI(0.5, 0.4, 0.7), 3, "*")
    assert mean == num(0.5, 3, (0.4, 0.7), "*") and mean.half_width == pytest.approx(0.15) and mean.mark == "*"
    effect = PairedEffect(-0.25, -0.3, -0.1, 0.01)
    assert ci_cell(effect, 4) == num(-0.25, 4, (-0.3, -0.1))
    assert ci_cell(MeanCI(float("nan"), 0.0, 1.0)).value is None


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=8), st.sampled_from(["lower", "higher"]))
def test_embolden_marks_exactly_the_extreme(values, direction):
    out = embolden([Cell(v, str(v)) for v in values], direction)
    best = min(values) if direction == "lower" else max(values)
    assert [c.bold for c in out] == [abs(v - best) <= 1e-12 for v in values]


# ------------------------------------------------------------------------------------------ escaping


def test_latex_escape_specials_and_non_ascii():
    assert latex_escape("&%$#_{}~^\\") == (r"\&\%\$\#\_\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}")
    assert latex_escape("a|b<c>") == r"a\textbar{}b\textless{}c\textgreater{}"
    assert latex_escape("Children's Film-Noir Sci-Fi") == "Children's Film-Noir Sci-Fi"
    assert latex_escape("Café Müller ñ Ø ß") == r"Caf\'{e} M\"{u}ller \~{n} \O{} \ss{}"
    assert latex_escape("21–50 ≤ 20") == r"21--50 \ensuremath{\leq} 20"
    assert latex_escape("中") == "[U+4E2D]"
    assert all(ord(ch) < 128 for ch in latex_escape("Ωmega ﬁ ² “q” … 日本"))


def test_numeric_cells_in_latex_escape_percent_and_thousands():
    """A relative change ('-100%', the fusion table) must not open a LaTeX comment inside math mode."""
    from spectra_eval.report.render import _latex_cell

    assert _latex_cell(Cell(-100.0, "-100%")) == r"$-100\%$"
    assert _latex_cell(Cell(1234.0, "1,234")) == "$1{,}234$"
    assert _latex_cell(Cell(1e-152, "1.0e-152")) == "$10^{-152}$"


def test_markdown_escapes_only_pipes():
    assert md_escape("a|b & c_d *e* 50% $x$") == r"a\|b & c_d *e* 50% $x$"


def test_markup_user_text_stays_literal():
    s = "cost " + rp.lit("a$b\\c") + r" and $2\rho_N$"
    assert rp.markup_to_plain(s) == "cost a$b\\c and 2ρ_N"
    assert rp.markup_to_latex(s) == r"cost a\$b\textbackslash{}c and $2\rho_N$"


def test_labels_escaped_in_both_renderings(report):
    md = report.table("js").to_markdown()
    assert r"| reranker\|8B & top-5% |" in md
    tex = report.table("js").to_latex()
    assert r"reranker\textbar{}8B \& top-5\%" in tex and r"spectra\_probe" in tex
    strata_tex = report.table("strata").to_latex()
    assert r"context\_window" in strata_tex


# ------------------------------------------------------------------------------------------ captions, labels, round trip


def test_captions_come_from_settings_and_options(metrics, cert):
    r = Report(metrics, cert, caption_prefix="ML-100k & co.", label_prefix="tab:ml-",
               captions={"ndcg": "My own $ caption"}, labels={"js": "tab:alignment"})
    js = r.table("js")
    assert js.label == "tab:alignment" and r.table("ece").label == "tab:ml-ece"
    md = js.to_markdown()
    assert "n = 943 users" in md and "1,000 user-level resamples" in md and "seed 0" in md
    assert md.startswith("**ML-100k & co. Distributional alignment.**")
    assert "Wilcoxon signed-rank (two-sided, zero_method='wilcox')" in md
    assert r"\caption{ML-100k \& co. Distributional alignment." in js.to_latex()
    nd = r.table("ndcg")
    assert r"\caption{ML-100k \& co. My own \$ caption}" in nd.to_latex()
    with pytest.raises(SpectraInputError, match="unknown table key"):
        Report(metrics, captions={"table99": "x"})


def test_round_trip(report):
    data = report.to_dict()
    again = Report.from_dict(json.loads(json.dumps(data)))
    assert again.to_dict() == data
    assert again.to_markdown() == report.to_markdown() and again.to_latex() == report.to_latex()
    frames = again.to_frames()
    assert set(frames) == set(ALL_KEYS)
    js = frames["js"]
    assert list(js.columns) == ["js", "js_hw", "delta_js", "delta_js_hw"] and js.index.name == "Method"


def test_single_method_has_no_comparison_tables(metrics):
    one = copy.deepcopy(metrics)
    one["methods"] = {"dg": one["methods"]["dg"]}
    one["comparisons"] = {}
    r = Report(one)
    assert r.table_keys() == [k for k in ALL_KEYS if rp.TABLES[k].document == "metrics"
                              and k not in NEEDS_COMPARISONS + ("strata",)]
    assert "| dg |" in r.to_markdown()


def test_only_one_document(metrics, cert, tmp_path):
    only_cert = Report.from_dir(write_dir(tmp_path / "c", cert=cert))
    assert only_cert.table_keys() == ["certificate", "certificate_aggregate", "dkw"]
    only_metrics = Report.from_dir(write_dir(tmp_path / "m", metrics=metrics))
    assert "dkw" not in only_metrics.table_keys()
    with pytest.raises(SpectraInputError, match="needs certificate.json"):
        only_metrics.table("dkw")


# ------------------------------------------------------------------------------------------ golden Markdown


# one golden per table and format: tests/eval/report/test_golden.py


def test_full_markdown_is_the_tables_in_order(report):
    md = report.to_markdown()
    body = "\n".join((GOLDEN / f"{k}.md").read_text(encoding="utf-8") for k in ALL_KEYS)
    assert md.endswith(body)
    for line in md.splitlines():  # every table row has as many cells as its header
        if line.startswith("| "):
            assert line.endswith(" |")


# ------------------------------------------------------------------------------------------ pdflatex


def _pdflatex_or_skip():
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is required in CI (.ci/run installs texlive-latex-base/-recommended + lmodern)")
        pytest.skip("pdflatex not installed (install texlive-latex-base texlive-latex-recommended lmodern)")
    return exe


def test_report_tex_compiles_with_hostile_labels(metrics, cert, tmp_path):
    """Every LaTeX special and non-ASCII character in labels, captions and strata still compiles."""
    exe = _pdflatex_or_skip()
    nasty = "x&y%z$w#v_u{t}s~r^q\\p|o<n> Café ≤ 中"
    m = json.loads(json.dumps(metrics).replace("reranker|8B & top-5%", nasty.replace("\\", "\\\\")))
    assert nasty in m["methods"] and f"{nasty} vs dg" in m["comparisons"]
    r = Report(m, cert, caption_prefix="Test_1 & 50% ~ #", captions={"dkw": "κ^2 {braces} \\relax"})
    tex = tmp_path / "report.tex"
    tex.write_text(r.to_latex_document(), encoding="utf-8")
    (tmp_path / "tables.tex").write_text(r.to_latex(), encoding="utf-8")
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "report.pdf").stat().st_size > 10_000
    assert "Missing character" not in (tmp_path / "report.log").read_text(errors="replace")


def test_tables_tex_states_its_preamble(report):
    head = report.to_latex().splitlines()[:8]
    for package in ("booktabs", "array", "fontenc", "lmodern"):
        assert any(package in line and line.startswith("%") for line in head)
    assert "\\toprule" in report.to_latex() and "\\hline" not in report.to_latex()


# ------------------------------------------------------------------------------------------ CLI


def test_cli_renders_everything(tmp_path, capsys):
    src = write_dir(tmp_path / "in", json.loads((FIXTURE / "metrics.json").read_text()),
                    json.loads((FIXTURE / "certificate.json").read_text()))
    out = tmp_path / "out"
    assert main(["report", str(src), "--out", str(out), "--caption-prefix", "ML.", "--label-prefix", "tab:x-"]) == 0
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {"tables.md", "tables.tex", "report.tex"} | {f"figures/{n}.{e}" for n in
                                                            ("reliability", "category_bias", "quartile_delta", "js_ndcg")
                                                            for e in ("png", "pdf")}
    assert expected <= names
    assert names - expected <= {"report.pdf"}
    if shutil.which("pdflatex"):
        assert "report.pdf" in names
    assert "\\label{tab:x-js}" in (out / "tables.tex").read_text()
    assert "wrote" in capsys.readouterr().out
    assert not list(tmp_path.glob(".out.tmp-*"))  # staging directory cleaned


def _bad_inputs(tmp_path, metrics):
    def with_schema(s):
        m = copy.deepcopy(metrics)
        m["schema"] = s
        return m

    missing_method = copy.deepcopy(metrics)
    missing_method["comparisons"]["spectra_probe vs dg"]["method"] = "ghost"
    missing_ref = copy.deepcopy(metrics)
    missing_ref["settings"]["reference"] = "nobody"
    bad_json = write_dir(tmp_path / "badjson")
    (bad_json / "metrics.json").write_text('{"schema": "spectra.metrics/1",', encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    return {
        "no such directory": tmp_path / "does-not-exist",
        "neither metrics.json nor certificate.json": empty,
        "not valid JSON": bad_json,
        "incompatible version": write_dir(tmp_path / "v2", with_schema("spectra.metrics/2")),
        "unknown schema": write_dir(tmp_path / "unk", with_schema("other.thing/1")),
        "'ghost', which is not in methods": write_dir(tmp_path / "ghost", missing_method),
        "settings.reference 'nobody'": write_dir(tmp_path / "noref", missing_ref),
        "no 'schema' field": write_dir(tmp_path / "noschema", {k: v for k, v in metrics.items() if k != "schema"}),
        "certificate.json: schema 'spectra.certificate/7'": write_dir(
            tmp_path / "cert7", metrics, {"schema": "spectra.certificate/7"}),
    }


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, metrics, capsys):
    cases = _bad_inputs(tmp_path, metrics)
    for expected, directory in cases.items():
        out = tmp_path / f"out-{directory.name}"
        before = sorted(tmp_path.rglob("*"))
        assert main(["report", str(directory), "--out", str(out)]) == 2, expected
        err = capsys.readouterr().err.strip()
        assert err.startswith("spectra report: error: ") and expected in err and "\n" not in err, err
        assert not out.exists() and sorted(tmp_path.rglob("*")) == before, expected
    # the default --out (DIR itself) is untouched too
    directory = cases["incompatible version"]
    assert main(["report", str(directory)]) == 2
    assert sorted(p.name for p in directory.iterdir()) == ["metrics.json"]


# ------------------------------------------------------------------------------------------ real producers


def test_renders_what_evaluate_and_certify_write(tmp_path):
    """Contract check against the real producers on the synthetic cohort (small, fast settings)."""
    from spectra_eval.data.synthetic import write_synthetic_cohort

    data = tmp_path / "data"
    write_synthetic_cohort(data, 160, seed=3)
    out = tmp_path / "run"
    assert main(["evaluate", "--truth", str(data / "truth.csv"), "--pred", f"probe={data / 'probe.csv'}",
                 "--pred", f"dg={data / 'dg.csv'}", "--reference", "dg", "--meta", str(data / "meta.csv"),
                 "--bootstrap", "100", "--out", str(out)]) == 0
    assert main(["certify", "--truth", str(data / "truth.csv"), "--probe", str(data / "probe.csv"),
                 "--dg", str(data / "dg.csv"), "--out", str(out)]) == 0
    r = Report.from_dir(out)
    assert r.table_keys() == [k for k in rp.TABLES if k in ALL_KEYS or k == "certificate_population"]
    md, tex = r.to_markdown(), r.to_latex()
    metrics = json.loads((out / "metrics.json").read_text())
    js = r.to_frame("js")
    assert js.loc["probe", "js"] == metrics["methods"]["probe"]["js"]["mean"]
    assert "| probe vs dg |" in md and "\\begin{tabular}" in tex and "100 user-level resamples" in md


def _write_table(path, users, cats, values) -> str:
    """A user_id + category-columns CSV of ``values`` at ``path``; returns the path as text."""
    frame = pd.DataFrame(values, columns=cats)
    frame.insert(0, "user_id", users)
    frame.to_csv(path, index=False)
    return str(path)


def test_population_table_puts_observed_and_latent_bounds_side_by_side(tmp_path):
    rng = np.random.default_rng(0)
    cats = [f"c{i}" for i in range(6)]
    users = [f"u{i}" for i in range(60)]
    theta = rng.dirichlet(np.ones(6), 60)
    counts = np.stack([rng.multinomial(300, t) for t in theta])
    dg = np.zeros_like(theta)
    dg[:, :2] = 0.5

    def write(name, values):
        return _write_table(tmp_path / name, users, cats, values)

    assert main(["certify", "--counts", write("counts.csv", counts), "--probe", write("probe.csv", theta),
                 "--dg", write("dg.csv", dg), "--out", str(tmp_path / "out")]) == 0
    cert = json.loads((tmp_path / "out" / "certificate.json").read_text())
    t = Report.from_dir(tmp_path / "out").table("certificate_population")
    frame = t.to_frame()
    assert frame.loc["TV(probe) < TV(DG)", "latent"] == cert["latent"]["tv_dominates"]["fraction_certified"]
    assert frame.loc["TV(probe) < TV(DG)", "latent_pi"] == cert["latent"]["tv_dominates"]["pi_lower"]
    assert frame.loc["regime (sharp chain)", "observed_pi"] == cert["per_user"]["bounds"]["in_regime"]["pi_lower"]
    assert frame.loc["Theorem 4 favorable (DCG@5)", "observed"] == cert["theorem4"]["fraction_favorable"]
    assert "β = 0.05" in t.to_markdown() and "300–300 observed items" in t.to_markdown()


def test_population_table_shows_the_latent_population_statements(tmp_path):
    rng = np.random.default_rng(1)
    cats = [f"c{i}" for i in range(6)]
    users = [f"u{i}" for i in range(80)]
    theta = rng.dirichlet(np.ones(6), 80)
    counts = np.stack([rng.multinomial(rng.integers(2, 30), t) for t in theta])
    dg = np.zeros_like(theta)
    dg[:, :2] = 0.5

    def write(name, values):
        return _write_table(tmp_path / name, users, cats, values)

    assert main(["certify", "--counts", write("counts.csv", counts), "--method", f"yesno={write('p.csv', theta)}",
                 "--versus", f"dg={write('dg.csv', dg)}", "--out", str(tmp_path / "out")]) == 0
    pop = json.loads((tmp_path / "out" / "certificate.json").read_text())["latent"]["population"]
    t = Report.from_dir(tmp_path / "out").table("certificate_population")
    frame = t.to_frame()
    frame.index = [i.split(" / ")[-1] for i in frame.index]  # rows of the population-statements group
    assert frame.loc["a counted item outside dg's list", "latent"] == pop["support"]["fraction"]
    assert frame.loc["a counted item outside dg's list", "latent_pi"] == pop["support"]["pi_lower"]
    assert frame.loc["yesno closer to the preference (squared error)", "latent_pi"] == pop["brier_fraction"]["pi_lower"]
    assert frame.loc["mean squared-error gap dg − yesno", "latent"] == pop["brier_gap"]["estimate"]
    assert frame.loc["mean squared-error gap dg − yesno", "latent_pi"] == pop["brier_gap"]["lower"]
    assert frame.loc["mean TV gap dg − yesno", "latent_pi"] == pop["tv_gap"]["lower"]
    assert f"{pop['n_holdout']} holdout users" in t.to_markdown()
