"""spectra_eval.evaluation: every reported number against an independent computation."""
import json

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import ndcg_score
from statsmodels.stats.multitest import multipletests

from spectra_eval.evaluation import Evaluation, evaluate
from spectra_eval.io import DistributionTable, json_safe
from spectra_eval.validation import SpectraInputError
from spectra_eval.data.synthetic import synthetic_cohort


B = 200
SEED = 3


@pytest.fixture(scope="module")
def cohort():
    frames = synthetic_cohort(240, seed=1)
    tables = {k: DistributionTable.from_frame(frames[k], source=f"{k}.csv") for k in ("truth", "probe", "dg")}
    return tables, frames["meta"]


@pytest.fixture(scope="module")
def ev(cohort):
    tables, meta = cohort
    return evaluate(tables["truth"], {"probe": tables["probe"], "dg": tables["dg"]}, "dg", n_resamples=B, seed=SEED,
                    n_bins=20, meta=meta, meta_source="meta.csv")


def _arrays(cohort):
    tables, _ = cohort
    return tables["truth"].probs, tables["probe"].probs, tables["dg"].probs


def _boot_ci(values, n=240):
    idx = np.random.default_rng(SEED).integers(0, n, size=(B, n))
    return tuple(np.percentile(values[idx].mean(axis=1), [2.5, 97.5]))


def test_js_and_ci_match_scipy(ev, cohort):
    t, p, _ = _arrays(cohort)
    per_user = jensenshannon(p, t, axis=1, base=2) ** 2
    res = ev.methods["probe"].means["js"]
    assert res.mean == pytest.approx(per_user.mean(), rel=1e-9)
    assert (res.ci_low, res.ci_high) == pytest.approx(_boot_ci(per_user), rel=1e-9)


def test_ndcg_matches_sklearn_for_untied_predictions(ev, cohort):
    t, p, _ = _arrays(cohort)
    for k in (5, 10):
        assert ev.methods["probe"].means[f"ndcg@{k}"].mean == pytest.approx(ndcg_score(t, p, k=k), rel=1e-9)


def test_tv_mass_and_steck_kl(ev, cohort):
    t, p, _ = _arrays(cohort)
    m = ev.methods["probe"]
    assert m.means["tv"].mean == pytest.approx(0.5 * np.abs(p - t).sum(axis=1).mean())
    top5 = np.argsort(-p, axis=1, kind="stable")[:, :5]
    assert m.means["mass@5"].mean == pytest.approx(np.take_along_axis(t, top5, axis=1).sum(axis=1).mean())
    steck = np.array([sps.entropy(tu, 0.99 * pu + 0.01 * tu, base=2) for tu, pu in zip(t, p)])
    assert m["miscalibration_kl"].mean == pytest.approx(steck.mean())


def test_cohort_metrics_hand_computed(ev, cohort):
    t, p, _ = _arrays(cohort)
    m = ev.methods["probe"]
    cats = ev.categories
    order = np.argsort(-t.mean(axis=0), kind="stable")
    head, tail = order[:6], order[12:]
    assert [len(ev.buckets[b]) for b in ("head", "mid", "tail")] == [6, 6, 7]
    assert list(ev.buckets["head"]) == [cats[c] for c in head]
    assert m["bucket_mass"]["tail"] == pytest.approx(p[:, tail].sum(axis=1).mean())
    assert ev.truth_bucket_mass["head"] == pytest.approx(t[:, head].sum(axis=1).mean())
    bias = p.mean(axis=0) - t.mean(axis=0)
    assert m["category_bias"] == pytest.approx(dict(zip(cats, bias)))
    assert m["head_bias"] == pytest.approx(np.abs(bias[head]).mean())
    counts = np.bincount(np.argmax(p, axis=1), minlength=len(cats))
    assert m["entropy@1"] == pytest.approx(sps.entropy(counts, base=2))
    # soft-label ECE by an explicit loop over bins
    def ece(pp, tt):
        b = np.minimum((pp * 20).astype(int), 19)
        return sum((b == i).sum() / pp.size * abs(pp[b == i].mean() - tt[b == i].mean()) for i in np.unique(b))
    assert m["ece"]["overall"] == pytest.approx(ece(p.ravel(), t.ravel()))
    assert m["ece"]["head"] == pytest.approx(ece(p[:, head].ravel(), t[:, head].ravel()))
    assert m["ece_pairs"] == {"overall": 240 * 19, "head": 240 * 6, "mid": 240 * 6, "tail": 240 * 7}
    assert m["ece_categories"] == {"overall": 19, "head": 6, "mid": 6, "tail": 7}
    assert sum(b["n"] for b in m["reliability"]) == 240 * 19
    arg = np.argmax(p, axis=1)
    assert m["top1_ece"] == pytest.approx(ece(p[np.arange(240), arg], t[np.arange(240), arg]))


def test_comparison_against_scipy_and_statsmodels(ev, cohort):
    t, p, q = _arrays(cohort)
    c = ev.comparisons["probe vs dg"]
    d = jensenshannon(p, t, axis=1, base=2) ** 2 - jensenshannon(q, t, axis=1, base=2) ** 2
    assert c.diffs["js"].estimate == pytest.approx(d.mean())
    assert c.diffs["js"].pvalue == pytest.approx(sps.wilcoxon(d, zero_method="wilcox").pvalue, rel=1e-9)
    assert (c.diffs["js"].ci_low, c.diffs["js"].ci_high) == pytest.approx(_boot_ci(d), rel=1e-9)
    err = np.abs(p - t) - np.abs(q - t)
    pvals = np.array([sps.wilcoxon(err[:, j], zero_method="wilcox").pvalue if np.any(err[:, j]) else 1.0
                      for j in range(err.shape[1])])
    holm = multipletests(pvals, method="holm")[1]
    got = c.per_category
    assert [got[cat].pvalue for cat in ev.categories] == pytest.approx(pvals, rel=1e-9)
    assert [got[cat].p_holm for cat in ev.categories] == pytest.approx(holm, rel=1e-9)
    gap = np.abs(p - t).mean(axis=0) - np.abs(q - t).mean(axis=0)
    assert c.category_wins == int(((holm < 0.05) & (gap < 0)).sum())
    assert c.category_losses == int(((holm < 0.05) & (gap > 0)).sum())


def test_quartiles_and_strata_in_evaluation(ev, cohort):
    c = ev.comparisons["probe vs dg"]
    frame = ev.to_frame()
    wide = frame.pivot(index="user_id", columns="method", values="js")
    diff = (wide["probe"] - wide["dg"])
    quart = frame[frame.method == "probe"].set_index("user_id")["tail_quartile"]
    for q in ("Q1", "Q2", "Q3", "Q4"):
        assert c.quartiles.quartiles[q].estimate == pytest.approx(diff[quart == q].mean())
        assert c.quartiles.quartiles[q].n == 60
    act = c.strata["activity"]
    assert act.n_levels == 5 and sum(g.n for g in act.levels.values()) == 240
    assert act.wins == sum(g.estimate < 0 and g.pvalue < 0.05 for g in act.levels.values())
    assert set(c.strata) == {"activity", "context_window"}


def test_to_dict_has_the_contract_keys(ev):
    d = ev.to_dict()
    assert d["schema"] == "spectra.metrics/1"
    assert {"truth", "preds", "reference", "bootstrap", "seed", "bins", "confidence", "test", "correction",
            "meta"} <= set(d["settings"])
    assert d["settings"]["test"] == "Wilcoxon signed-rank (two-sided, zero_method='wilcox')"
    assert (d["n_users"], d["n_categories"], d["unit"]) == (240, 19, "bits")
    m = d["methods"]["probe"]
    for key in ("js", "tv", "ndcg@5", "ndcg@10"):
        assert set(m[key]) == {"mean", "ci_low", "ci_high"}
    for key in ("entropy@1", "entropy@3", "head_bias", "top1_ece", "miscalibration_kl"):
        assert isinstance(m[key], float)
    for key in ("ece", "ece_pairs", "ece_categories"):
        assert set(m[key]) == {"overall", "head", "mid", "tail"}
    assert set(m["reliability"][0]) == {"lo", "hi", "n", "mean_pred", "mean_true"}
    c = d["comparisons"]["probe vs dg"]
    assert (c["method"], c["reference"]) == ("probe", "dg")
    for key in ("js", "ndcg@5", "ndcg@10"):
        assert {"mean_diff", "ci_low", "ci_high", "p", "statistic"} <= set(c[key])
    assert set(c["per_category"]["Drama"]) == {"p", "p_holm", "statistic", "mean_abs_err_method",
                                               "mean_abs_err_reference"}
    assert set(c["quartiles"]) == {"Q1", "Q2", "Q3", "Q4", "ratio_q4_q1", "ratio_q4_q1_reason"}
    assert {"delta", "ci_low", "ci_high", "p", "n"} <= set(c["quartiles"]["Q1"])
    assert set(c["strata"]["activity"]) == {"levels", "range", "wins", "n_levels", "grouping", "win_rule", "alpha"}
    assert "dg vs dg" not in d["comparisons"]


def test_round_trip_through_json(ev):
    d = json.loads(json.dumps(json_safe(ev.to_dict()), allow_nan=False))
    back = Evaluation.from_dict(d)
    assert json_safe(back.to_dict()) == d
    assert back == Evaluation.from_dict(json.loads(json.dumps(d)))
    with pytest.raises(ValueError):
        back.to_frame()


def test_to_frame(ev, cohort):
    t, p, _ = _arrays(cohort)
    frame = ev.to_frame()
    assert len(frame) == 2 * 240
    assert list(frame.columns[:6]) == ["user_id", "method", "js", "tv", "ndcg@5", "ndcg@10"]
    probe = frame[frame.method == "probe"]
    np.testing.assert_allclose(probe["js"], jensenshannon(p, t, axis=1, base=2) ** 2, rtol=1e-9)
    assert {"truth_tail_mass", "tail_quartile", "activity", "context_window"} <= set(frame.columns)


def test_deterministic_by_seed(cohort):
    tables, _ = cohort
    preds = {"probe": tables["probe"], "dg": tables["dg"]}
    a = evaluate(tables["truth"], preds, "dg", n_resamples=50, seed=5).to_dict()
    b = evaluate(tables["truth"], preds, "dg", n_resamples=50, seed=5).to_dict()
    c = evaluate(tables["truth"], preds, "dg", n_resamples=50, seed=6).to_dict()
    assert a == b
    assert a["methods"]["probe"]["js"]["mean"] == c["methods"]["probe"]["js"]["mean"]
    assert a["methods"]["probe"]["js"]["ci_low"] != c["methods"]["probe"]["js"]["ci_low"]


def test_three_methods_and_k26_buckets():
    rng = np.random.default_rng(0)
    cats = tuple(f"c{i}" for i in range(26))
    users = np.array([f"u{i}" for i in range(40)], dtype=object)
    tabs = {n: DistributionTable(users, cats, rng.dirichlet(np.ones(26), 40), n) for n in ("t", "a", "b", "r")}
    ev = evaluate(tabs["t"], {"a": tabs["a"], "b": tabs["b"], "r": tabs["r"]}, "r", n_resamples=20)
    assert [len(ev.buckets[k]) for k in ("head", "mid", "tail")] == [8, 9, 9]
    assert set(ev.comparisons) == {"a vs r", "b vs r"}
    assert ev.comparisons["a vs r"].strata is None and "strata" not in ev.to_dict()["comparisons"]["a vs r"]


def test_reference_only_and_identical_methods(cohort):
    tables, _ = cohort
    ev = evaluate(tables["truth"], {"dg": tables["dg"]}, "dg", n_resamples=10)
    assert ev.comparisons == {}
    same = evaluate(tables["truth"], {"x": tables["dg"], "dg": tables["dg"]}, "dg", n_resamples=10)
    js = same.comparisons["x vs dg"].diffs["js"]
    assert (js.estimate, js.ci_low, js.ci_high, js.pvalue) == (0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"reference": "nope"}, "reference 'nope' is not one of the methods"),
     ({"n_resamples": 0}, "bootstrap resamples"),
     ({"n_bins": 0}, "ECE bins")],
)
def test_bad_arguments(cohort, kwargs, fragment):
    tables, _ = cohort
    args = {"reference": "dg"} | kwargs
    with pytest.raises(SpectraInputError, match=fragment):
        evaluate(tables["truth"], {"dg": tables["dg"]}, **args)


def test_misaligned_method_table_is_an_input_error(cohort):
    tables, _ = cohort
    short = DistributionTable(tables["dg"].users[:-1], tables["dg"].categories, tables["dg"].probs[:-1], "dg.csv")
    with pytest.raises(SpectraInputError, match=r"dg\.csv: user 'u00239' of truth\.csv is missing"):
        evaluate(tables["truth"], {"dg": short}, "dg", n_resamples=10)
