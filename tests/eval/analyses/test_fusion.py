"""``spectra fuse``: every number against a per-user loop written here, the statistics against scipy/statsmodels,
the slices, the tie rule, every bad input (one line, nothing written), the CLI and the report."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from spectra_eval.analyses import fusion as F
from spectra_eval.analyses.fusion import inputs as FI
from spectra_eval.analyses.fusion import kernels as FK
from spectra_eval import stats
from spectra_eval.cli import main
from spectra_eval.io import DistributionTable
from spectra_eval.report import Report

CATS = ("a", "b", "c", "d")


# ------------------------------------------------------------------ an independent reference, one user at a time


def z_loop(x):
    x = np.asarray(x, dtype=float)
    sd = math.sqrt(sum((v - x.mean()) ** 2 for v in x) / len(x))
    if sd <= 1e-12 * max(abs(v) for v in x):
        return np.zeros(len(x))
    return np.array([(v - x.mean()) / sd for v in x])


def metrics_loop(frame, theta, item_cats, lam, k):
    """{user: (ndcg, recall, mrr)} by the definitions, with explicit loops."""
    out = {}
    for user, g in frame.groupby("user_id", sort=False):
        aff = [sum(theta[user][c] for c in item_cats[i]) / len(item_cats[i]) for i in g["item_id"]]
        f = z_loop(g["score"]) + lam * z_loop(aff)
        positives = [j for j, lab in enumerate(g["label"]) if lab == 1]
        ranks = []
        for p in positives:
            higher = sum(1 for j in range(len(f)) if f[j] > f[p])
            tied = sum(1 for j in range(len(f)) if j != p and f[j] == f[p])
            ranks.append(1 + higher + tied)
        dcg = sum(1 / math.log2(r + 1) for r in ranks if r <= k)
        idcg = sum(1 / math.log2(r + 1) for r in range(1, min(len(positives), k) + 1))
        out[user] = (dcg / idcg, sum(r <= k for r in ranks) / len(positives), 1 / min(ranks))
    return out


def slices_loop(counts: dict):
    items = sorted(counts, key=lambda i: (-counts[i], i))
    n = len(items)
    head = n // 3
    mid = (n - head) // 2
    return {i: "head" if r < head else "mid" if r < head + mid else "tail" for r, i in enumerate(items)}


# ------------------------------------------------------------------ synthetic inputs


def make_case(seed=0, n_users=200, ragged=False, multi=False, n_items=60):
    """Candidates with many ties (integer scores, items of one or two of four categories)."""
    rng = np.random.default_rng(seed)
    items = [f"i{j:03d}" for j in range(n_items)]
    item_cats = {i: tuple(rng.choice(CATS, size=rng.integers(1, 3), replace=False)) for i in items}
    rows = []
    for u in range(n_users):
        m = int(rng.integers(5, 25)) if ragged else 12
        chosen = rng.choice(items, size=m, replace=False)
        n_pos = int(rng.integers(1, 4)) if multi else 1
        for j, item in enumerate(chosen):
            rows.append((f"u{u}", item, float(rng.integers(0, 4)), int(j < n_pos)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "score", "label"]).sample(frac=1, random_state=seed)
    users = sorted(frame["user_id"].unique())
    theta = rng.dirichlet(np.ones(len(CATS)), len(users))
    theta[0] = 0.25  # a uniform user: its affinity column is constant (z = 0)
    spectra = pd.DataFrame(theta, columns=list(CATS))
    spectra.insert(0, "user_id", users)
    long = pd.DataFrame([(i, c) for i, cs in item_cats.items() for c in cs], columns=["item_id", "category"])
    popularity = pd.DataFrame({"item_id": items, "count": rng.integers(0, 6, n_items)})
    return frame.reset_index(drop=True), spectra, long, popularity


def write_case(tmp_path, case, prefix=""):
    paths = {}
    for name, table in zip(("candidates", "spectra", "items", "popularity"), case):
        paths[name] = tmp_path / f"{prefix}{name}.csv"
        table.to_csv(paths[name], index=False)
    return paths


def run_fuse(case, **kw):
    frame, spectra, long, pop = case
    table = DistributionTable.from_frame(spectra, "spectra")
    users, uc = np.unique(frame["user_id"].to_numpy(dtype=object), return_inverse=True)
    items, ic = np.unique(frame["item_id"].to_numpy(dtype=object), return_inverse=True)
    cand = F.Candidates.from_arrays(uc, users, ic, items, frame["score"], frame["label"], "cand")
    return F.fuse(cand, table, F.ItemCategories.from_frame(long, table.categories, "items"),
                  F.popularity_series(pop, "pop"), **kw)


def loop_inputs(case):
    frame, spectra, long, pop = case
    theta = {r.user_id: dict(zip(CATS, r[1:])) for r in spectra.itertuples(index=False)}
    item_cats = long.groupby("item_id")["category"].apply(tuple).to_dict()
    return frame, theta, item_cats, dict(zip(pop["item_id"], pop["count"]))


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize("ragged,multi", [(False, False), (True, False), (False, True), (True, True)])
def test_per_user_metrics_match_the_loop(ragged, multi):
    case = make_case(seed=3, ragged=ragged, multi=multi)
    res = run_fuse(case, n_resamples=20, k=5)
    frame, theta, item_cats, _ = loop_inputs(case)
    pu = res.per_user.set_index("user_id")
    for lam in F.LAMBDAS:
        expected = metrics_loop(frame, theta, item_cats, float(lam), 5)
        for user, (ndcg, recall, mrr) in expected.items():
            got = pu.loc[user]
            assert got[f"ndcg@5|{lam}"] == pytest.approx(ndcg, abs=1e-12)
            assert got[f"recall@5|{lam}"] == pytest.approx(recall, abs=1e-12)
            assert got[f"mrr|{lam}"] == pytest.approx(mrr, abs=1e-12)
        assert res.results[lam]["all"].metrics["ndcg@5"].mean == pytest.approx(
            np.mean([v[0] for v in expected.values()]), abs=1e-12)


def test_tie_rule_is_pessimistic_and_z_of_a_constant_is_zero():
    seg = FK._Segments(np.array([4]))
    f = np.array([1.0, 1.0, 1.0, 0.0])
    labels = np.array([True, False, False, False])
    ndcg, recall, mrr = F.rank_metrics(seg, f, labels, k=10)[:, 0]
    assert mrr == pytest.approx(1 / 3)  # tied with two others: rank 3, not 1
    assert ndcg == pytest.approx(1 / math.log2(4))
    assert FK._Segments(np.array([3])).zscore(np.array([0.1, 0.1, 0.1]) + 1e-17).tolist() == [0.0, 0.0, 0.0]
    # two positives tied with each other both take the pessimistic rank 2
    ndcg2 = F.rank_metrics(seg, np.array([1.0, 1.0, 0.0, 0.0]), np.array([True, True, False, False]), 10)[0, 0]
    assert ndcg2 == pytest.approx((2 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_chunks_cover_every_row_once_and_match_small_chunks(monkeypatch):
    counts = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for size in (1, 4, 7, 100):
        monkeypatch.setattr(FI, "_CHUNK_ROWS", size)
        chunks = FI._chunks(counts)
        assert [u for u0, u1, _ in chunks for u in range(u0, u1)] == list(range(len(counts)))
        for u0, u1, rows in chunks:
            assert (rows.start, rows.stop) == (starts[u0], starts[u1 - 1] + counts[u1 - 1])
    case = make_case(seed=3, n_users=40, ragged=True, multi=True)
    whole = run_fuse(case, n_resamples=30).per_user
    monkeypatch.setattr(FI, "_CHUNK_ROWS", 37)
    pd.testing.assert_frame_equal(run_fuse(case, n_resamples=30).per_user, whole)


def test_slices_are_popularity_thirds_and_users_follow_their_item():
    case = make_case(seed=5)
    res = run_fuse(case, n_resamples=10)
    frame, _, _, counts = loop_inputs(case)
    expected = slices_loop(counts)
    n = len(counts)
    assert res.slice_items == {"head": n // 3, "mid": (n - n // 3) // 2, "tail": n - n // 3 - (n - n // 3) // 2}
    got = F.popularity_slices(F.popularity_series(case[3]))
    assert got.to_dict() == expected
    positives = frame[frame["label"] == 1].set_index("user_id")["item_id"]
    user_slice = res.per_user.set_index("user_id")["slice"]
    assert all(user_slice[u] == expected[i] for u, i in positives.items())
    for s in ("head", "mid", "tail"):
        assert res.results["0"][s].n == sum(expected[i] == s for i in positives)


def test_multi_positive_users_in_different_slices_are_mixed():
    res = run_fuse(make_case(seed=1, multi=True), n_resamples=10)
    mixed = res.population.slice_users["mixed"]
    assert mixed > 0 and sum(res.results["0"][s].n for s in ("head", "mid", "tail")) + mixed == res.population.n_users


def test_bootstrap_tests_and_holm_against_direct_computations():
    case = make_case(seed=7, n_users=80)
    res = run_fuse(case, n_resamples=200, seed=4)
    pu = res.per_user
    base = pu["ndcg@10|0"].to_numpy()
    # all users: one draw with the plain seed, shared by every lambda
    idx = np.random.default_rng(4).integers(0, len(pu), size=(200, len(pu)))
    for lam in F.LAMBDAS:
        v = pu[f"ndcg@10|{lam}"].to_numpy()
        lo, hi = np.percentile(v[idx].mean(axis=1), [2.5, 97.5])
        r = res.results[lam]["all"].metrics["ndcg@10"]
        assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), abs=1e-12)
    # slices: resampled within the slice from derived_rng(seed, 3, s)
    for s_i, s in enumerate(("head", "mid", "tail")):
        rows = np.flatnonzero(pu["slice"].to_numpy() == s)
        sidx = np.random.SeedSequence(4, spawn_key=(3, s_i))
        draw = np.random.default_rng(sidx).integers(0, len(rows), size=(200, len(rows)))
        v = pu["mrr|0.5"].to_numpy()[rows]
        lo, hi = np.percentile(v[draw].mean(axis=1), [2.5, 97.5])
        r = res.results["0.5"][s].metrics["mrr"]
        assert (r.mean, r.ci_low, r.ci_high) == pytest.approx((v.mean(), lo, hi), abs=1e-12)
    for s in ("all", "head", "mid", "tail"):
        rows = np.ones(len(pu), bool) if s == "all" else pu["slice"].to_numpy() == s
        ps = []
        for lam in F.LAMBDAS[1:]:
            d = pu[f"ndcg@10|{lam}"].to_numpy()[rows] - base[rows]
            comp = res.comparisons[lam][s]
            expected_p = 1.0 if not d.any() else sps.wilcoxon(d, zero_method="wilcox").pvalue
            assert comp.effect.estimate == pytest.approx(d.mean(), abs=1e-12)
            assert comp.effect.pvalue == pytest.approx(expected_p, rel=1e-9)
            ps.append(comp.effect.pvalue)
        assert [res.comparisons[lam][s].p_holm for lam in F.LAMBDAS[1:]] == pytest.approx(
            multipletests(ps, method="holm")[1], rel=1e-9)
    # the paired interval of a difference comes from the same draw as the means
    d = pu["ndcg@10|1"].to_numpy() - base
    lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    assert (res.comparisons["1"]["all"].effect.ci_low, res.comparisons["1"]["all"].effect.ci_high) == pytest.approx(
        (lo, hi), abs=1e-12)


def test_best_lambda_on_test_or_validation_and_round_trip():
    case = make_case(seed=2)
    res = run_fuse(case, n_resamples=10)
    means = {lam: res.results[lam]["all"].metrics["ndcg@10"].mean for lam in F.LAMBDAS}
    assert res.best_lambda == max(F.LAMBDAS, key=lambda lam: (means[lam], -float(lam)))
    assert res.selection.chosen_on == "test" and "optimistic" in res.to_dict()["selection"]["note"]
    val = make_case(seed=9)[0]
    users, uc = np.unique(val["user_id"].to_numpy(dtype=object), return_inverse=True)
    items, ic = np.unique(val["item_id"].to_numpy(dtype=object), return_inverse=True)
    sel = F.Candidates.from_arrays(uc, users, ic, items, val["score"], val["label"], "val.csv")
    res_v = run_fuse(case, n_resamples=10, select_on=sel)
    assert res_v.selection.chosen_on == "validation" and res_v.settings.select_on == "val.csv"
    doc = json.loads(json.dumps(res_v.to_dict()))
    assert F.FusionResult.from_dict(doc) == res_v
    assert doc["population"]["description"].endswith("one held-out item each")


# ------------------------------------------------------------------ CLI, bad inputs, atomic output


def test_cli_writes_fusion_json_and_report(tmp_path, capsys):
    paths = write_case(tmp_path, make_case(seed=4))
    out = tmp_path / "out"
    args = ["fuse", "--candidates", str(paths["candidates"]), "--spectra", str(paths["spectra"]), "--items",
            str(paths["items"]), "--popularity", str(paths["popularity"]), "--out", str(out), "--bootstrap", "30"]
    assert main(args) == 0
    assert main(args + ["--name", "gru-neg11", "--backbone", "GRU4Rec", "--lambdas", "0,0.5,2"]) == 0
    doc = json.loads((out / "fusion.json").read_text())
    assert doc["schema"] == "spectra.fusion/1" and set(doc["results"]) == set(F.LAMBDAS)
    assert set(doc["comparisons"]) == set(F.LAMBDAS[1:]) and doc["settings"]["bootstrap"] == 30
    assert set(doc["results"]["0"]) == {"all", "head", "mid", "tail"}
    assert {"delta", "p", "p_holm"} <= set(doc["comparisons"]["0.5"]["mid"])
    assert "best lambda" in capsys.readouterr().out
    report = Report.from_dir(out)
    assert list(report.documents["fusion"].runs) == ["fusion", "gru-neg11"]
    md = report.table("fusion").to_markdown()
    assert "GRU4Rec, 1 + 11" in md and "mid items" in md
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))).table("fusion") == report.table("fusion")
    assert main(["report", str(out), "--no-pdf"]) == 0
    assert (out / "figures" / "fusion_lambda.png").exists()


def _bad(tmp_path, mutate):
    case = [t.copy() for t in make_case(seed=6)]
    mutate(case)
    return write_case(tmp_path, case, prefix="bad-")


BAD_CASES = {
    "item without category": (lambda c: c.__setitem__(2, c[2][c[2]["item_id"] != c[0]["item_id"][0]]), "has no category"),
    "user missing from S": (lambda c: c.__setitem__(1, c[1][c[1]["user_id"] != "u3"]), "user 'u3' is not in"),
    "no positive": (lambda c: c[0].__setitem__("label", np.where(c[0]["user_id"] == "u5", 0, c[0]["label"])),
                    "user 'u5' has no positive"),
    "duplicate candidate": (lambda c: c.__setitem__(0, pd.concat([c[0], c[0].iloc[[0]]])), "more than once"),
    "score not a number": (lambda c: c[0].__setitem__("score", c[0]["score"].astype(object).where(
        c[0].index != 2, "high")), "column 'score'"),
    "label not 0/1": (lambda c: c[0].__setitem__("label", np.where(c[0].index == 1, 2, c[0]["label"])), "not 0 or 1"),
    "category not in S": (lambda c: c.__setitem__(2, pd.concat([c[2], pd.DataFrame({"item_id": ["i000"],
                                                                                     "category": ["zzz"]})])),
                          "category 'zzz' is not a column"),
    "item missing from P": (lambda c: c.__setitem__(3, c[3][c[3]["item_id"] != c[0]["item_id"][0]]),
                            "not in the popularity table"),
    "negative count": (lambda c: c[3].__setitem__("count", np.where(c[3].index == 0, -1, c[3]["count"])),
                       "count >= 0"),
    "missing column": (lambda c: c.__setitem__(0, c[0].drop(columns=["label"])), "no 'label' column"),
}


@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, name):
    mutate, message = BAD_CASES[name]
    paths = _bad(tmp_path, mutate)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    status = main(["fuse", "--candidates", str(paths["candidates"]), "--spectra", str(paths["spectra"]),
                   "--items", str(paths["items"]), "--popularity", str(paths["popularity"]), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and message in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not list(tmp_path.glob(".out.tmp-*"))


@pytest.mark.parametrize("flags,message", [(["--lambdas", "0.5,1"], "must include 0"),
                                           (["--lambdas", "0,x"], "not a number"),
                                           (["--lambdas", "0,1,1.0"], "repeats"),
                                           (["--name", "a/b"], "--name"), (["--k", "0"], "--k")])
def test_bad_arguments(tmp_path, capsys, flags, message):
    paths = write_case(tmp_path, make_case(seed=8))
    status = main(["fuse", "--candidates", str(paths["candidates"]), "--spectra", str(paths["spectra"]), "--items",
                   str(paths["items"]), "--popularity", str(paths["popularity"]), "--out", str(tmp_path / "o"), *flags])
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_parquet_candidates_and_stats_defaults(tmp_path):
    case = make_case(seed=10)
    paths = write_case(tmp_path, case)
    pq = tmp_path / "c.parquet"
    case[0].to_parquet(pq)
    a = F.read_candidates(paths["candidates"])
    b = F.read_candidates(pq)
    assert (a.users == b.users).all() and np.array_equal(a.scores, b.scores) and a.counts.sum() == len(case[0])
    assert stats.ZERO_METHOD == "wilcox"


def test_items_file_in_either_layout(tmp_path):
    case = make_case(seed=11)
    paths = write_case(tmp_path, case)
    joined = case[2].groupby("item_id", sort=False)["category"].agg("|".join).rename("categories").reset_index()
    joined.to_csv(tmp_path / "joined.csv", index=False)
    out_long, out_joined = tmp_path / "long", tmp_path / "joined"
    base = ["fuse", "--candidates", str(paths["candidates"]), "--spectra", str(paths["spectra"]),
            "--popularity", str(paths["popularity"]), "--bootstrap", "20"]
    assert main(base + ["--items", str(paths["items"]), "--out", str(out_long)]) == 0
    assert main(base + ["--items", str(tmp_path / "joined.csv"), "--out", str(out_joined)]) == 0
    a, b = (json.loads((d / "fusion.json").read_text()) for d in (out_long, out_joined))
    assert a["results"] == b["results"] and a["comparisons"] == b["comparisons"]
