"""The metric catalogue and the check-once rule: kernels equal their public functions, evaluate() checks
nothing twice, a new metric is one spec line, and the evaluation core imports neither data loaders nor torch."""
import subprocess
import sys

import numpy as np
import pytest

from spectra_eval import buckets, calibration, catalogue, divergences, evaluation, exposure, io, ranking, validation
from spectra_eval.catalogue import COHORT, USER, Context, Metric
from spectra_eval.evaluation import Evaluation, evaluate
from spectra_eval.io import DistributionTable


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
    ctx = Context(buckets.make_buckets(t), truth.categories)
    public = {
        "js": divergences.js(p, t), "tv": divergences.tv(p, t),
        "ndcg@5": ranking.ndcg_at_k(p, t, 5), "ndcg@10": ranking.ndcg_at_k(p, t, 10),  # 10 > K: clipped
        "mass@5": ranking.mass_captured_at_k(p, t, 5), "mass@10": ranking.mass_captured_at_k(p, t, 10),
        "miscalibration_kl": calibration.miscalibration_kl(p, t),
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
    assert catalogue.compared_keys() == ("js", "tv", "ndcg@5", "ndcg@10")
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
    assert "hellinger" in ev.per_user_frame().columns
    assert Evaluation.from_dict(d).methods["a"]["hellinger"] == ev.methods["a"]["hellinger"]


def test_evaluation_core_imports_no_data_loaders_and_no_torch():
    code = ("import sys, spectra_eval.evaluation, spectra_eval.certify, spectra_eval.report, spectra_eval.cli; "
            "bad = sorted(m for m in sys.modules if m.startswith(('spectra_eval.data', 'torch', 'spectra_probe'))); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
