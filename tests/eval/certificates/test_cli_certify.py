"""`spectra certify` and `spectra theory phi|dkw`: output keys, numbers checked independently, bad input."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.spatial.distance import jensenshannon

from spectra_eval.cli import main

CATS = [f"c{i}" for i in range(8)]


def _table(path, probs, users):
    frame = pd.DataFrame(probs, columns=CATS)
    frame.insert(0, "user_id", users)
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture()
def tables(tmp_path):
    rng = np.random.default_rng(7)
    n = 80
    truth = rng.dirichlet(np.full(len(CATS), 0.4), size=n)
    probe = 0.85 * truth + 0.15 * rng.dirichlet(np.ones(len(CATS)), size=n)
    noisy = truth + rng.normal(0, 0.05, size=truth.shape)
    dg = np.zeros_like(truth)
    top = np.argsort(-noisy, axis=1)[:, :3]
    np.put_along_axis(dg, top, 1 / 3, axis=1)
    users = [f"u{i:03d}" for i in range(n)]
    order = rng.permutation(n)  # the probe file lists users in another order: certify must align
    return {
        "truth": _table(tmp_path / "truth.csv", truth, users),
        "probe": _table(tmp_path / "probe.csv", probe[order], [users[i] for i in order]),
        "dg": _table(tmp_path / "dg.csv", dg, users),
        "arrays": (truth, probe, dg),
        "tmp": tmp_path,
    }


def _certify(tables, *extra, out="out"):
    return main(["certify", "--truth", tables["truth"], "--probe", tables["probe"], "--dg", tables["dg"],
                 "--out", str(tables["tmp"] / out), *extra])


def _phi_sharp_reference(js_bits):
    """Independent inverse of ln2 - h((1+t)/2) = JS_nats by brentq on the entropy formula."""
    target = js_bits * math.log(2)
    if target <= 0:
        return 0.0
    h = lambda x: -x * math.log(x) - (1 - x) * math.log(1 - x) if 0 < x < 1 else 0.0  # noqa: E731
    return brentq(lambda t: math.log(2) - h((1 + t) / 2) - target, 0, 1, xtol=1e-14)


def test_certify_writes_contract_keys_with_independently_checked_numbers(tables, capsys):
    assert _certify(tables, "--k", "3", "--routes", "2") == 0
    cert = json.loads((tables["tmp"] / "out" / "certificate.json").read_text())
    assert cert["schema"] == "spectra.certificate/1"
    assert {"truth", "probe", "dg", "alpha", "k", "unit", "tau"} <= set(cert["settings"])
    truth, probe, dg = tables["arrays"]
    n = len(truth)
    js = jensenshannon(truth, probe, axis=1, base=2) ** 2  # scipy returns the distance sqrt(JS)
    m_tau = np.where(dg > 0, 0, truth).sum(axis=1)
    in_regime = m_tau > np.array([_phi_sharp_reference(j) for j in js])
    tv = lambda a, b: 0.5 * np.abs(a - b).sum(axis=1)  # noqa: E731
    pu = cert["per_user"]
    assert pu["n"] == n and pu["chain"] == "sharp"
    assert pu["fraction_in_regime"] == pytest.approx(in_regime.mean())
    assert pu["fraction_tv_dominates"] == pytest.approx((tv(probe, truth) < tv(dg, truth)).mean())
    assert 0 < pu["fraction_in_regime"] <= pu["fraction_tv_dominates"]
    for reading, (value, m) in {"mean_js": (js.mean(), m_tau.mean()), "median_js": (np.median(js), np.median(m_tau)),
                                "js_of_means": (jensenshannon(truth.mean(0), probe.mean(0), base=2) ** 2,
                                                m_tau.mean())}.items():
        agg = cert["aggregate"][reading]
        assert agg["js"] == pytest.approx(value) and agg["m_tau"] == pytest.approx(m)
        assert "not a certificate" in agg["label"]
        sharp = agg["chains"]["sharp"]
        assert sharp["tv_bound"] == pytest.approx(_phi_sharp_reference(value), abs=1e-9)
        assert sharp["margin"] == pytest.approx(m - sharp["tv_bound"]) and sharp["holds"] == (sharp["margin"] > 0)
        assert sharp["valid"] and not agg["chains"]["pinsker_topsoe"]["valid"]
    # Theorem 1 with k = 3 and the direct l_inf certificate, recomputed with a plain loop
    favorable, gains = [], []
    for t, s, d in zip(truth, probe, dg):
        order_t, order_s = np.argsort(-t, kind="stable"), np.argsort(-s, kind="stable")
        eps = np.max(np.abs(s - t))
        listed = set(np.flatnonzero(d > 0))
        gap = t[order_t[2]] - t[order_t[3]]
        favorable.append(gap > 2 * eps and listed != set(order_t[:3]) and len(listed) <= 3)
        gains.append(t[order_s[:3]].sum() - t[list(listed)].sum())
    favorable, gains = np.array(favorable), np.array(gains)
    t1 = cert["theorem1"]
    assert t1["k"] == 3 and t1["certificate"] == "direct_linf"
    assert t1["fraction_favorable"] == pytest.approx(favorable.mean()) and favorable.any()
    assert t1["conditional_gain"] == pytest.approx(gains[favorable].mean())
    radius = math.sqrt(2 * math.log(2 / 0.05) / n)
    assert t1["gain_ci_low"] == pytest.approx(gains.mean() - radius)
    assert t1["gain_ci_high"] == pytest.approx(gains.mean() + radius)
    assert t1["implication_violations"] == 0
    dkw = cert["dkw"]
    assert (dkw["n"], dkw["alpha"], dkw["routes"]) == (n, 0.05, 2)
    assert dkw["cohort_slack"] + dkw["route_penalty"] == pytest.approx(math.sqrt(math.log(2 / 0.05) / (2 * n)))
    assert dkw["pi_lower"] == pytest.approx(max(0, in_regime.mean() - math.sqrt(math.log(40) / (2 * n))))
    per_user = pd.read_csv(tables["tmp"] / "out" / "certificate_per_user.csv", dtype={"user_id": str})
    assert len(per_user) == n and per_user["in_regime"].mean() == pytest.approx(in_regime.mean())
    assert json.loads(capsys.readouterr().out)["n"] == n


def test_theory_phi_prints_every_chain_and_paper_anchors(capsys):
    assert main(["theory", "phi", "--js", "0.062", "--unit", "bits"]) == 0
    out = json.loads(capsys.readouterr().out)
    chains = out["chains"]
    assert all({"tv_bound", "valid", "convention"} <= set(c) for c in chains.values())
    assert chains["sharp"]["tv_bound"] == pytest.approx(_phi_sharp_reference(0.062), abs=1e-9)
    assert round(chains["pinsker_topsoe@paper"]["tv_bound"], 3) == 0.207
    assert not chains["pinsker_topsoe@paper"]["valid"] and chains["js_direct"]["valid"]
    assert main(["theory", "phi", "--js", str(0.062 * math.log(2)), "--unit", "nats", "--m-tau", "0.626"]) == 0
    nats = json.loads(capsys.readouterr().out)
    assert nats["js_bits"] == pytest.approx(0.062)
    assert nats["chains"]["sharp"]["margin"] == pytest.approx(0.626 - chains["sharp"]["tv_bound"])


def test_theory_dkw_prints_slack_penalty_and_lower_bound(capsys):
    assert main(["theory", "dkw", "--n", "16500", "--alpha", "0.05", "--routes", "2", "--fhat", "1.0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pi_lower"] == pytest.approx(1 - math.sqrt(math.log(40) / 33000))
    assert round(out["paper"]["pi_lower"], 3) == 0.977
    assert f"{out['paper']['table14_route_penalty']:.1e}" == "6.1e-06"


@pytest.mark.parametrize("argv, needle", [
    (["theory", "phi", "--js", "1.5"], "outside [0, 1] bits"),
    (["theory", "phi", "--js", "-0.01"], "outside"),
    (["theory", "phi", "--js", "0.7", "--unit", "nats"], "nats"),
    (["theory", "phi", "--js", "nan"], "js"),
    (["theory", "dkw", "--n", "0"], "n: "),
    (["theory", "dkw", "--n", "2.5"], "n: "),
    (["theory", "dkw", "--n", "100", "--alpha", "1"], "alpha"),
    (["theory", "dkw", "--n", "100", "--alpha", "0"], "alpha"),
    (["theory", "dkw", "--n", "100", "--routes", "0"], "routes"),
    (["theory", "dkw", "--n", "100", "--fhat", "1.5"], "fhat"),
])
def test_theory_bad_input(argv, needle, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("spectra theory: error: ") and needle in err and "\n" not in err


@pytest.mark.parametrize("extra, needle", [
    (["--alpha", "0"], "alpha"), (["--alpha", "1.5"], "alpha"), (["--k", "8"], "k:"), (["--k", "0"], "k:"),
    (["--routes", "0"], "routes"), (["--tau", "-0.1"], "tau"),
])
def test_certify_bad_parameters_write_nothing(tables, extra, needle, capsys):
    assert _certify(tables, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spectra certify: error: ") and needle in err and "\n" not in err
    assert not (tables["tmp"] / "out").exists()


@pytest.mark.parametrize("which, row, col, value, needle", [
    ("probe", 2, "c3", -0.2, "is negative"),
    ("dg", 0, "c1", 1.7, "sum to"),
    ("truth", 5, "c0", float("nan"), "must be finite"),
])
def test_certify_bad_probabilities_name_file_user_column(tables, which, row, col, value, needle, capsys):
    frame = pd.read_csv(tables[which], dtype={"user_id": str})
    frame.loc[row, col] = value
    frame.to_csv(tables[which], index=False)
    assert _certify(tables) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and tables[which] in err and frame.loc[row, "user_id"] in err and "\n" not in err
    assert not (tables["tmp"] / "out").exists()


def test_certify_missing_user_is_an_error(tables, capsys):
    frame = pd.read_csv(tables["dg"], dtype={"user_id": str}).iloc[1:]
    frame.to_csv(tables["dg"], index=False)
    assert _certify(tables) == 2
    assert "u000" in capsys.readouterr().err
    assert not (tables["tmp"] / "out").exists()


# ------------------------------------------------------------------ observed population bounds, counts, latent


def test_observed_fractions_carry_exact_binomial_population_bounds(tables):
    from scipy import stats

    assert _certify(tables, "--routes", "2") == 0
    cert = json.loads((tables["tmp"] / "out" / "certificate.json").read_text())
    per_user = pd.read_csv(tables["tmp"] / "out" / "certificate_per_user.csv", dtype={"user_id": str})
    n = len(per_user)
    for key, column in (("in_regime", "in_regime"), ("tv_dominates", "tv_dominates")):
        b = cert["per_user"]["bounds"][key]
        k = int(per_user[column].sum())
        cp = stats.binomtest(k, n, alternative="greater").proportion_ci(1 - 0.05 / 2, method="exact").low
        assert (b["successes"], b["n"], b["routes"]) == (k, n, 2)
        assert b["pi_lower"] == pytest.approx(cp) and "observed future mix" in b["population"]
        assert b["pi_lower_hoeffding"] == pytest.approx(max(0.0, k / n - math.sqrt(math.log(2 / 0.05) / (2 * n))))
    t1 = cert["theorem1"]
    assert t1["favorable_bound"]["successes"] == t1["n_favorable"]
    assert "expectation_lower_bound" not in t1  # renamed: it bounded nothing
    egl = t1["expected_gain_lower_bound"]
    assert egl["value"] == pytest.approx(max(egl["eq9"], egl["hoeffding"]))
    gains = per_user["gain"].to_numpy()
    assert egl["hoeffding"] == pytest.approx(gains.mean() - 2 * math.sqrt(math.log(1 / (0.05 / 2 / 2)) / (2 * n)))
    t4 = cert["theorem4"]
    assert t4["n_favorable"] == int(per_user["theorem4_favorable"].sum()) and t4["implication_violations"] == 0
    assert cert["headline"]["level"] == "observed" and cert["settings"]["routes"] == 2
    assert cert["settings"]["renormalised"]["truth"] < 1e-6


def _counts_table(tmp_path, counts, users, name="counts.csv"):
    frame = pd.DataFrame(counts, columns=CATS)
    frame.insert(0, "user_id", users)
    frame.to_csv(tmp_path / name, index=False)
    return str(tmp_path / name)


@pytest.fixture()
def counted(tables):
    truth, probe, dg = tables["arrays"]
    rng = np.random.default_rng(3)
    counts = np.stack([rng.multinomial(rng.integers(20, 300), t) for t in truth])
    users = [f"u{i:03d}" for i in range(len(truth))]
    tables["counts"] = _counts_table(tables["tmp"], counts, users)
    tables["observed"] = _table(tables["tmp"] / "observed.csv", counts / counts.sum(1, keepdims=True), users)
    tables["count_array"] = counts
    return tables


def test_certify_with_counts_adds_the_latent_block(counted, capsys):
    from scipy import stats

    t = counted
    argv = ["certify", "--counts", t["counts"], "--probe", t["probe"], "--dg", t["dg"], "--beta", "0.1",
            "--out", str(t["tmp"] / "lat")]
    assert main(argv) == 0
    cert = json.loads((t["tmp"] / "lat" / "certificate.json").read_text())
    la = cert["latent"]
    counts = t["count_array"]
    n_obs = counts.sum(axis=1)
    assert la["beta"] == 0.1 and la["n_obs"] == {"min": int(n_obs.min()), "median": float(np.median(n_obs)),
                                                 "max": int(n_obs.max())}
    assert "Clopper-Pearson box" in la["method"]["box"] and "latent preference" in la["population"]["description"]
    per_user = pd.read_csv(t["tmp"] / "lat" / "certificate_per_user.csv", dtype={"user_id": str})
    for key, column in (("regime", "latent_regime"), ("tv_dominates", "latent_tv_dominates")):
        k, n = int(per_user[column].sum()), len(per_user)
        assert la[key]["fraction_certified"] == pytest.approx(k / n)
        cp = stats.binomtest(k, n, alternative="greater").proportion_ci(0.95, method="exact").low if k else 0.0
        assert la[key]["pi_lower"] == pytest.approx(max(0.0, (cp - 0.1) / 0.9))
    # a certified latent claim is never one the observed mix contradicts by more than the box allows
    assert (per_user["latent_tv_gap_upper"] >= per_user["tv_probe"] - per_user["tv_dg"] - 1e-12).all()
    assert cert["headline"]["level"] == "latent" and cert["settings"]["truth"] is None
    assert (per_user["n_obs"] == n_obs).all()
    summary = json.loads(capsys.readouterr().out)
    assert summary["latent"]["tv_dominates"]["pi_lower"] == la["tv_dominates"]["pi_lower"]
    # the same run with a matching --truth gives the same certificate
    assert main(argv[:-2] + ["--truth", t["observed"], "--out", str(t["tmp"] / "lat2")]) == 0
    again = json.loads((t["tmp"] / "lat2" / "certificate.json").read_text())
    assert again["latent"] == la and again["per_user"] == cert["per_user"]


@pytest.mark.parametrize("change, needle", [
    (lambda f: f.assign(c2=f["c2"].astype(float) + 0.5), "is not a non-negative integer"),
    (lambda f: f.assign(c3=-1), "is not a non-negative integer"),
    (lambda f: f.assign(**{c: 0 for c in CATS}), "no observed items"),
    (lambda f: f.drop(columns="c4"), "'c4'"),
])
def test_bad_counts_name_file_user_column_and_write_nothing(counted, change, needle, capsys):
    frame = change(pd.read_csv(counted["counts"], dtype={"user_id": str}))
    frame.to_csv(counted["counts"], index=False)
    argv = ["certify", "--counts", counted["counts"], "--probe", counted["probe"], "--dg", counted["dg"],
            "--out", str(counted["tmp"] / "bad")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spectra certify: error: ") and "counts.csv" in err and needle in err and "\n" not in err
    assert not (counted["tmp"] / "bad").exists()


def test_truth_that_disagrees_with_counts_is_refused(counted, capsys):
    argv = ["certify", "--counts", counted["counts"], "--truth", counted["truth"], "--probe", counted["probe"],
            "--dg", counted["dg"], "--out", str(counted["tmp"] / "bad")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "differs from counts/n_u" in err and "truth.csv" in err and "user 'u0" in err


def test_invalid_certificate_needs_allow_invalid_and_is_marked(tables, capsys):
    assert _certify(tables, "--certificate", "pinsker_topsoe") == 2
    assert "--allow-invalid" in capsys.readouterr().err
    assert _certify(tables, "--certificate", "pinsker_topsoe", "--allow-invalid") == 0
    cert = json.loads((tables["tmp"] / "out" / "certificate.json").read_text())
    assert cert["theorem1"]["certificate_valid"] is False and cert["settings"]["certificate_valid"] is False
    assert cert["theorem4"]["certificate_valid"] is False
    assert "INVALID" in json.loads(capsys.readouterr().out)["observed"]["certificate"]


def test_certify_help_says_what_is_certified(capsys):
    with pytest.raises(SystemExit):
        main(["certify", "--help"])
    text = capsys.readouterr().out
    assert "soundly" not in text and "OBSERVED future mix" in text and "PREFERENCE" in text


# ------------------------------------------------------------------ latent population statements (issue 19)

POPULATION_KEYS = {"alpha_each", "n_pilot", "n_holdout", "support", "brier_gap", "brier_fraction", "tv_gap"}


def test_certify_with_counts_writes_the_population_block_checked_independently(counted, capsys):
    from scipy import stats

    t = counted
    out = t["tmp"] / "pop"
    assert main(["certify", "--counts", t["counts"], "--probe", t["probe"], "--dg", t["dg"], "--pilot-seed", "4",
                 "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    cert = json.loads((out / "certificate.json").read_text())
    pop = cert["latent"]["population"]
    assert POPULATION_KEYS <= set(pop)
    for key, fields in (("support", {"fraction", "pi_lower"}), ("brier_gap", {"estimate", "lower", "lower_t"}),
                        ("brier_fraction", {"pi_lower"}), ("tv_gap", {"estimate_plugin", "lower"})):
        assert fields | {"claim", "population"} <= set(pop[key]), key
        assert isinstance(pop[key]["claim"], str) and "users" in pop[key]["population"]
    per_user = pd.read_csv(out / "certificate_per_user.csv", dtype={"user_id": str})
    counts = t["count_array"]
    truth, probe, dg = t["arrays"]
    # the per-user columns, recomputed from the tables (probe file is in another order: align by user)
    order = np.argsort(per_user["user_id"].to_numpy())
    p_hat = counts / counts.sum(1, keepdims=True)
    assert (per_user["out_of_list_count"].to_numpy()[order] == np.where(dg == 0, counts, 0).sum(1)).all()
    gain = ((dg - p_hat) ** 2).sum(1) - ((probe - p_hat) ** 2).sum(1)  # = the affine unbiased estimate
    np.testing.assert_allclose(per_user["brier_gain"].to_numpy()[order], gain, atol=1e-12)
    n, k = len(per_user), int((per_user["out_of_list_count"] > 0).sum())
    alpha_each = 0.05 / 5
    assert pop["alpha_each"] == alpha_each and pop["n_pilot"] == round(0.2 * n) == int(per_user["pilot"].sum())
    cp = stats.binomtest(k, n, alternative="greater").proportion_ci(1 - alpha_each, method="exact").low if k else 0
    assert pop["support"]["fraction"] == pytest.approx(k / n) and pop["support"]["pi_lower"] == pytest.approx(cp)
    hold = per_user.loc[~per_user["pilot"], "brier_gain"].to_numpy()
    assert pop["n_holdout"] == len(hold) and pop["brier_gap"]["estimate"] == pytest.approx(hold.mean())
    t_lo = stats.ttest_1samp(hold, 0.0, alternative="greater").confidence_interval(1 - alpha_each).low
    assert pop["brier_gap"]["lower_t"] == pytest.approx(t_lo)
    assert -2 <= pop["brier_gap"]["lower"] < pop["brier_gap"]["estimate"]
    assert 0 <= pop["brier_fraction"]["pi_lower"] <= 1 and pop["tv_gap"]["lower"] <= 1
    plug = (np.abs(dg - p_hat).sum(1) / 2 - np.abs(probe - p_hat).sum(1) / 2)[order.argsort()]
    assert pop["tv_gap"]["estimate_plugin"] == pytest.approx(plug[~per_user["pilot"].to_numpy()].mean())
    # the printed summary carries the same numbers and says them in words
    shown = printed["latent"]["population"]
    assert shown["support"]["pi_lower"] == pop["support"]["pi_lower"] and len(shown["in_words"]) == 5
    assert cert["headline"]["level"] == "latent" and cert["headline"]["claim"]


def test_method_versus_is_the_general_form_of_probe_dg(counted, capsys):
    t = counted
    assert main(["certify", "--counts", t["counts"], "--probe", t["probe"], "--dg", t["dg"],
                 "--out", str(t["tmp"] / "a")]) == 0
    assert main(["certify", "--counts", t["counts"], "--method", f"probe={t['probe']}", "--versus",
                 f"dg={t['dg']}", "--out", str(t["tmp"] / "b")]) == 0
    a, b = (json.loads((t["tmp"] / x / "certificate.json").read_text()) for x in ("a", "b"))
    assert a == b
    # another pair of methods: the names appear in the sentences, the list is the second method's support
    assert main(["certify", "--counts", t["counts"], "--method", f"cohort={t['dg']}", "--versus",
                 f"yesno={t['probe']}", "--out", str(t["tmp"] / "c")]) == 0
    c = json.loads((t["tmp"] / "c" / "certificate.json").read_text())
    assert c["settings"]["compared"] == {"method": "cohort", "versus": "yesno"}
    assert "cohort" in c["latent"]["population"]["brier_gap"]["claim"]
    assert c["latent"]["population"]["brier_gap"]["estimate"] == pytest.approx(
        -a["latent"]["population"]["brier_gap"]["estimate"])


@pytest.mark.parametrize("extra, needle", [
    (["--method", "x=a.csv"], "--method and --versus go together"),
    (["--method", "nofile", "--versus", "y=b.csv"], "expected NAME=FILE"),
    (["--method", "x=a.csv", "--versus", "x=b.csv"], "more than once"),
    (["--pilot-fraction", "1"], "pilot-fraction"),
    (["--tv-scale", "-1"], "tv-scale"),
])
def test_certify_method_and_pilot_errors_are_one_line_and_write_nothing(counted, extra, needle, capsys):
    base = ["certify", "--counts", counted["counts"], "--out", str(counted["tmp"] / "bad")]
    if not any(a.startswith("--method") for a in extra):
        base += ["--probe", counted["probe"], "--dg", counted["dg"]]
    assert main(base + extra) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and not (counted["tmp"] / "bad").exists()


def test_certificate_result_save_equals_the_cli_and_round_trips(counted, capsys, tmp_path):
    from spectra_eval.certificates.observed import Certificate, certify
    from spectra_eval.io import read_count_table, read_distribution_table

    t = counted
    assert main(["certify", "--counts", t["counts"], "--probe", t["probe"], "--dg", t["dg"],
                 "--out", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    counts = read_count_table(t["counts"])
    cert = certify(None, read_distribution_table(t["probe"], like=counts),
                   read_distribution_table(t["dg"], like=counts), counts=counts)
    assert printed.strip() == cert.summary().strip()
    written = cert.save(tmp_path / "lib")
    assert sorted(p.name for p in written) == ["certificate.json", "certificate_per_user.csv"]
    for name in ("certificate.json", "certificate_per_user.csv"):
        assert (tmp_path / "lib" / name).read_text() == (tmp_path / "cli" / name).read_text()
    doc = json.loads((tmp_path / "cli" / "certificate.json").read_text())
    again = Certificate.from_dict(doc)
    assert again.to_dict() == doc and again.latent.population.brier_gap.values["lower"] == pytest.approx(
        doc["latent"]["population"]["brier_gap"]["lower"])
    assert list(again.outputs()) == ["certificate.json"]  # no per-user rows without the arrays
    with pytest.raises(ValueError, match="rebuilt from JSON"):
        again.to_frame()
    assert "brier_gap" in again._repr_html_() and "<table" not in again._repr_html_() and "<table" in cert._repr_html_()
    assert list(cert.to_frame()["user_id"]) == list(cert.arrays.users) and repr(cert).startswith("<Certificate: 80 users")


def test_theory_plan_prints_users_and_items_and_reads_a_certificate(counted, capsys):
    assert main(["theory", "plan", "--effect", "0.05", "--sd", "0.2", "--k", "19", "--box-gap", "0.3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_users"] >= out["n_holdout"] >= out["n_users_t"] and out["alpha_each"] == 0.01
    assert out["per_user_box"]["items_per_user"] > 100
    t = counted
    assert main(["certify", "--counts", t["counts"], "--probe", t["probe"], "--dg", t["dg"],
                 "--out", str(t["tmp"] / "pilot")]) == 0
    capsys.readouterr()
    assert main(["theory", "plan", "--effect", "0.01", "--from", str(t["tmp"] / "pilot" / "certificate.json")]) == 0
    planned = json.loads(capsys.readouterr().out)
    brier = json.loads((t["tmp"] / "pilot" / "certificate.json").read_text())["latent"]["population"]["brier_gap"]
    assert planned["between_var"] == brier["between_var"] and planned["within_var"] == brier["within_var"]
    assert main(["theory", "plan", "--effect", "0.05"]) == 2
    assert "--sd" in capsys.readouterr().err


def test_per_user_fdr_lists_users_by_benjamini_hochberg_on_valid_p_values(counted, capsys):
    t = counted
    out = t["tmp"] / "fdr"
    assert main(["certify", "--counts", t["counts"], "--probe", t["probe"], "--dg", t["dg"], "--per-user-fdr",
                 "0.1", "--out", str(out)]) == 0
    cert = json.loads((out / "certificate.json").read_text())
    pu = pd.read_csv(out / "certificate_per_user.csv", dtype={"user_id": str})
    for name in ("regime", "tv_dominates"):
        p = pu[f"latent_{name}_p"].to_numpy()
        # p <= beta exactly when the user is certified at beta (here the run's beta = 0.05)
        assert ((p <= 0.05) == pu[f"latent_{name}"].to_numpy()).all()
        # Benjamini-Hochberg by hand
        m, order = len(p), np.argsort(p)
        k = max([i + 1 for i in range(m) if p[order[i]] <= 0.1 * (i + 1) / m], default=0)
        assert pu[f"latent_{name}_fdr"].sum() == k == cert["latent"]["per_user_fdr"][f"n_{name}"]
        assert set(np.nonzero(pu[f"latent_{name}_fdr"].to_numpy())[0]) == set(order[:k])
    assert main(["certify", "--counts", t["counts"], "--probe", t["probe"], "--dg", t["dg"], "--per-user-fdr",
                 "2", "--out", str(t["tmp"] / "bad")]) == 2
    assert "per-user-fdr" in capsys.readouterr().err


def test_per_user_p_values_are_valid_on_false_predicates():
    """P(p <= b | dominance false) <= b: users whose preference makes the claim false, many count draws."""
    from spectra_eval.certificates.latent import per_user_p_values

    rng = np.random.default_rng(8)
    theta = np.array([0.5, 0.3, 0.2])
    dg = np.array([0.5, 0.3, 0.2])  # DG equals the preference: TV dominance is false
    probe = np.array([0.45, 0.35, 0.2])
    counts = rng.multinomial(60, theta, size=400)
    _, p_dom = per_user_p_values(counts, np.tile(probe, (400, 1)), np.tile(dg, (400, 1)))
    for b in (0.05, 0.2, 0.5):
        assert (p_dom <= b).mean() <= b + 3 * np.sqrt(b * (1 - b) / 400)
