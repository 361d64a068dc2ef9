"""The metric catalogue and the check-once rule: kernels equal their public functions, evaluate() checks
nothing twice, a new metric is one spec line, and the evaluation core imports neither data loaders nor torch."""
import subprocess
import sys

import numpy as np
import pytest

from spectra_eval import evaluation, io, validation
from spectra_eval.metrics import buckets
from spectra_eval.metrics import ranking
from spectra_eval.metrics import exposure
from spectra_eval.metrics import catalogue
from spectra_eval.metrics import calibration
from spectra_eval.metrics import divergences
from spectra_eval.metrics.catalogue import COHORT, USER, Context, Metric
from spectra_eval.evaluation import Evaluation, evaluate
from spectra_eval.io import DistributionTable
from spectra_eval.report import Report


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(0)
    cats = tuple(f"c{i}" for i in range(9))
    users = np.array([f"u{i}" for i in range(60)], dtype=object)
    make = lambda a: DistributionTable(users, cats, rng.dirichlet(np.full(9, a), 60), "x")  # noqa: E731
    return make(0.5), {"a": make(1.0), "ref": make(0.3)}


def test_per_user_kernels_equal_their_public_functions(tables):
    truth, preds = tables
    t, p = truth.probs, preds["a"].probs
    history = preds["ref"].probs  # any distribution table stands for the users' history here
    ctx = Context(buckets.make_buckets(t), truth.categories, history=history)
    public = {
        "js": divergences.js(p, t), "tv": divergences.tv(p, t),
        "ndcg@5": ranking.ndcg_at_k(p, t, 5), "ndcg@10": ranking.ndcg_at_k(p, t, 10),  # 10 > K: clipped
        "mass@5": ranking.mass_captured_at_k(p, t, 5), "mass@10": ranking.mass_captured_at_k(p, t, 10),
        "miscalibration_kl": calibration.miscalibration_kl(p, t),
        "taste_js": divergences.js(p, history),
    }
    specs = {m.key: m for m in catalogue.catalogue()}
    assert {k for k, m in specs.items() if m.level == USER} == set(public)
    for key, expected in public.items():
        np.testing.assert_array_equal(specs[key].kernel(p, t, ctx), expected)
    cohort = {}
    for m in specs.values():
        if m.level == COHORT:
            out = m.kernel(p, t, ctx)
            assert set(out) == set(m.outputs)
            cohort |= out
    assert cohort["entropy@3"] == exposure.exposure_entropy_at_k(p, 3)
    assert cohort["bucket_mass"] == buckets.bucket_mass(p, ctx.buckets)
    assert cohort["head_bias"] == buckets.head_bias(p, t, ctx.buckets)
    assert cohort["ece"]["tail"] == calibration.stratified_ece(p, t, ctx.buckets)["tail"].ece
    assert cohort["top1_ece"] == calibration.top1_ece(p, t).ece


def test_compared_set_and_headers_come_from_the_catalogue():
    assert catalogue.compared_keys() == ("js", "tv", "ndcg@5", "ndcg@10", "personalization")
    assert catalogue.metric("js").header == "JS (bits) ↓"
    assert catalogue.metric("ndcg@10").header == "NDCG@10 ↑"
    assert catalogue.metric("mass@7").key == "mass@7"
    with pytest.raises(KeyError):
        catalogue.metric("nope")


def test_evaluate_checks_no_array_twice(tables, monkeypatch):
    """The tables were checked when built; evaluate() runs only kernels on them (no check_distributions call)."""
    truth, preds = tables
    calls = []
    original = validation.check_distributions

    def counting(*args, **kwargs):
        calls.append(kwargs.get("source"))
        return original(*args, **kwargs)

    for module in (validation, io, ranking, exposure, buckets):
        monkeypatch.setattr(module, "check_distributions", counting)
    evaluate(truth, preds, "ref", n_resamples=20)
    assert calls == []
    ranking.ndcg_at_k(preds["a"].probs, truth.probs, 5)  # a public metric checks its two inputs once each
    assert calls == ["pred", "truth"]


def test_a_new_metric_is_one_spec_line(tables, monkeypatch):
    truth, preds = tables
    base = catalogue.catalogue
    extra = Metric("hellinger", lambda p, t, c: divergences._hellinger(p, t), USER, "lower", "", "Hellinger",
                   compared=True)
    monkeypatch.setattr(evaluation, "catalogue", lambda mass_ks=catalogue.MASS_KS: base(mass_ks) + (extra,))
    monkeypatch.setattr(evaluation, "metric", lambda key: extra if key == "hellinger" else catalogue.metric(key))
    ev = evaluate(truth, preds, "ref", n_resamples=30, seed=1)
    expected = np.sqrt(0.5 * ((np.sqrt(preds["a"].probs) - np.sqrt(truth.probs)) ** 2).sum(axis=1))
    assert ev.methods["a"]["hellinger"].mean == pytest.approx(expected.mean())
    diff = ev.comparisons["a vs ref"].diffs["hellinger"]
    ref = np.sqrt(0.5 * ((np.sqrt(preds["ref"].probs) - np.sqrt(truth.probs)) ** 2).sum(axis=1))
    assert diff.estimate == pytest.approx((expected - ref).mean())
    d = ev.to_dict()
    assert set(d["methods"]["a"]["hellinger"]) == {"mean", "ci_low", "ci_high"}
    assert "hellinger" in ev.to_frame().columns
    assert Evaluation.from_dict(d).methods["a"]["hellinger"] == ev.methods["a"]["hellinger"]


def test_evaluation_core_imports_no_data_loaders_and_no_torch():
    code = ("import sys, spectra_eval.evaluation, spectra_eval.certificates.observed, spectra_eval.report, spectra_eval.cli; "
            "bad = sorted(m for m in sys.modules if m.startswith(('spectra_eval.data', 'torch', 'spectra_probe'))); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _personalization_tables():
    rng = np.random.default_rng(5)
    n, k = 150, 6
    users = np.array([f"u{i}" for i in range(n)], dtype=object)
    cats = tuple(f"c{i}" for i in range(k))
    truth = rng.dirichlet(np.ones(k), n)
    truth[:, 5] = truth[:, 5] * 0  # a category no user has: constant truth column, skipped
    truth /= truth.sum(axis=1, keepdims=True)
    personal = 0.6 * truth + 0.4 * rng.dirichlet(np.ones(k), n)
    cohort = np.repeat(truth.mean(axis=0)[None], n, axis=0)  # the same row for everyone
    make = lambda a, s: DistributionTable(users, cats, a, s)  # noqa: E731
    return make(truth, "t"), {"personal": make(personal, "p"), "cohort": make(cohort, "c"),
                              "noise": make(rng.dirichlet(np.ones(k), n), "n")}


def test_personalization_against_scipy_pearson_and_a_direct_bootstrap():
    from scipy import stats as sps

    truth, preds = _personalization_tables()
    ev = evaluate(truth, preds, "noise", n_resamples=200, seed=2)
    t, p = truth.probs, preds["personal"].probs
    kept = [c for c in range(6) if np.ptp(p[:, c]) > 0 and np.ptp(t[:, c]) > 0]
    expected = np.mean([sps.pearsonr(p[:, c], t[:, c])[0] for c in kept])
    got = ev.methods["personal"]["personalization"]
    assert got["mean"] == pytest.approx(expected, rel=1e-10)
    assert (got["n_categories"], got["n_skipped"]) == (5, 1)
    # a direct bootstrap: resample users with the shared draw, correlation by numpy on the resampled rows
    idx = np.random.default_rng(2).integers(0, 150, (200, 150))

    def stat(rows, pred):
        return np.nanmean([np.corrcoef(pred[rows, c], t[rows, c])[0, 1] for c in kept])

    direct = np.array([stat(r, p) for r in idx])
    lo, hi = np.percentile(direct, [2.5, 97.5])
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((lo, hi), rel=1e-8)
    # the paired difference against the reference resamples both with the same draw
    q = preds["noise"].probs
    diff = direct - np.array([stat(r, q) for r in idx])
    comp = ev.comparisons["personal vs noise"].diffs["personalization"]
    assert comp.estimate == pytest.approx(expected - np.mean([sps.pearsonr(q[:, c], t[:, c])[0] for c in kept]))
    assert (comp.ci_low, comp.ci_high) == pytest.approx(tuple(np.percentile(diff, [2.5, 97.5])), rel=1e-8)
    assert comp.pvalue == pytest.approx(min(1, 2 * min((diff <= 0).mean(), (diff >= 0).mean())))
    assert comp.test and "bootstrap" in comp.test


def test_cohort_prior_has_no_personalization_and_a_personal_one_does():
    truth, preds = _personalization_tables()
    ev = evaluate(truth, preds, "noise", n_resamples=50)
    assert ev.methods["personal"]["personalization"]["mean"] > 0.5
    cohort = ev.methods["cohort"]["personalization"]
    assert np.isnan(cohort["mean"]) and cohort["n_categories"] == 0  # no column varies across users
    assert abs(ev.methods["noise"]["personalization"]["mean"]) < 0.2
    d = ev.to_dict()["methods"]["cohort"]["personalization"]
    assert d["n_skipped"] == 6
    d_full = ev.to_dict()
    table = Report(Evaluation.from_dict(d_full))
    js = table.to_frame("js")
    assert js.loc["personal", "personalization"] == d_full["methods"]["personal"]["personalization"]["mean"]


def test_per_user_metrics_is_the_checked_entry_to_the_kernels():
    """per_user_metrics (public: checks its arrays once) gives evaluate's per-user values; JS against scipy."""
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(3)
    truth, pred = rng.dirichlet(np.ones(7), 30), rng.dirichlet(np.ones(7), 30)
    got = evaluation.per_user_metrics(pred, truth)
    users = np.array([f"u{i}" for i in range(30)], dtype=object)
    cats = tuple(f"c{j}" for j in range(7))
    ev = evaluate(DistributionTable(users, cats, truth), {"m": DistributionTable(users, cats, pred),
                                                          "r": DistributionTable(users, cats, truth)}, "r",
                  n_resamples=20)
    for key, values in got.items():
        assert ev.methods["m"][key].mean == pytest.approx(values.mean(), abs=1e-12), key
    np.testing.assert_allclose(got["js"], [jensenshannon(p, t, base=2) ** 2 for p, t in zip(pred, truth)], atol=1e-12)
    with pytest.raises(validation.SpectraInputError):
        evaluation.per_user_metrics(pred[:, :6], truth)
