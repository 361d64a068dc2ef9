"""SASRec and GRU4Rec base rankers: the split protocol, negatives, shapes, determinism, learning a sequential
pattern, and ``spectra recommend`` end to end on a tiny synthetic catalogue."""
import json

import numpy as np
import pandas as pd
import pytest

from spectra_eval.data.datasets import Interactions
from spectra_eval.data.splits import chronological_split
from spectra_eval.analyses.fusion import Candidates, candidate_metrics
from spectra_eval.analyses.lists import item_categories_frame
from spectra_probe.recommenders.data import candidates_frame, sample_negatives, sequence_data

torch = pytest.importorskip("torch")
from spectra_probe.recommenders import training as T  # noqa: E402
from spectra_probe.recommenders.models import GRU4Rec, SASRec  # noqa: E402

N_ITEMS = 60


def cyclic_data(n_users=120, length=30, seed=0, n_items=N_ITEMS) -> Interactions:
    """Each user walks the catalogue in a cycle (item j is followed by j + 1), from a random start: the next item
    is fully predictable from the last one, and every item is equally popular."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        for t in range(length):
            item = (start + t) % n_items
            rows.append((f"u{u}", f"i{item}", float(t), (("even",) if item % 2 == 0 else ("odd",))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "categories"])
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(n_items)], "title": "", "year": pd.NA,
                          "categories": [("even",) if j % 2 == 0 else ("odd",) for j in range(n_items)]})
    return Interactions(frame=frame, items=items, categories=("even", "odd"), name="cyclic")


def test_held_out_item_is_the_first_future_item_and_negatives_are_never_seen():
    data = cyclic_data(length=12, n_items=200)
    split = chronological_split(data)
    seq = sequence_data(data, split)
    first_future = split.future.groupby("user_id", sort=False)["item_id"].first()
    for u, user in enumerate(seq.users[:20]):
        assert seq.item_ids[seq.held_out[u]] == first_future[user]
        hist = split.history[split.history["user_id"] == user]["item_id"].tolist()
        assert list(seq.item_ids[seq.sequences[u]]) == hist
    negatives = sample_negatives(seq, 50, seed=3)
    for u, neg in enumerate(negatives):
        assert len(neg) == 50 and len(set(neg)) == 50
        assert not set(neg) & set(seq.seen[u]) and seq.held_out[u] not in neg and seq.sequences[u][0] not in neg
    again = sample_negatives(seq, 50, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(negatives, again))
    short = sample_negatives(seq, 195, seed=0)  # fewer never-seen items than asked: all of them
    assert all(len(n) == seq.n_items - len(s) for n, s in zip(short, seq.seen))


def test_validation_split_never_sees_the_evaluation_future():
    data = cyclic_data(length=20)
    split = chronological_split(data)
    val = sequence_data(data, split, which="validation")
    test = sequence_data(data, split)
    for u in range(len(val.users)):
        assert len(val.sequences[u]) < len(test.sequences[u])
        assert val.held_out[u] in test.sequences[u]  # the validation target lies inside the test history


def test_candidate_and_side_files():
    data = cyclic_data(n_users=5, length=10)
    seq = sequence_data(data)
    negatives = sample_negatives(seq, 4, seed=0)
    frame = candidates_frame(seq, negatives, [np.arange(5.0)] * len(seq.users))
    assert list(frame.columns) == ["user_id", "item_id", "score", "label"] and len(frame) == 25
    assert frame.groupby("user_id")["label"].sum().eq(1).all()
    long = item_categories_frame(data.items)
    assert list(long.columns) == ["item_id", "categories"] and len(long) == N_ITEMS
    pop = seq.popularity()
    assert len(pop) == N_ITEMS and pop["count"].sum() == sum(len(s) for s in seq.sequences)


@pytest.mark.parametrize("model", [SASRec(N_ITEMS, dim=8, max_len=10), GRU4Rec(N_ITEMS, dim=8, hidden=12)])
def test_shapes_and_causality(model):
    torch.manual_seed(0)
    model.eval()
    x = torch.randint(1, N_ITEMS + 1, (3, 10))
    states = model(x)
    assert states.shape[:2] == (3, 10)
    assert model.score(states, torch.randint(1, N_ITEMS + 1, (3, 10, 5))).shape == (3, 10, 5)
    changed = x.clone()
    changed[:, -1] = (changed[:, -1] % N_ITEMS) + 1  # a later item must not change earlier states
    assert torch.allclose(model(changed)[:, :-1], states[:, :-1], atol=1e-6)


@pytest.mark.parametrize("name", T.MODELS)
def test_training_is_deterministic_and_learns_the_pattern(name):
    seq = sequence_data(cyclic_data(n_users=60))
    config = T.preset("demo", name, epochs=10, max_len=12, dim=32, hidden=32, batch_size=32, learning_rate=1e-2)
    a = T.fit(seq, config, progress=False)
    b = T.fit(seq, config, progress=False)
    negatives = sample_negatives(seq, 20, seed=1)
    cands = [np.concatenate([[h], n]) for h, n in zip(seq.held_out, negatives)]
    sa, sb = T.score(a, seq, cands), T.score(b, seq, cands)
    assert a.losses == b.losses and all(np.array_equal(x, y) for x, y in zip(sa, sb))
    assert a.losses[-1] < a.losses[0]
    frame = candidates_frame(seq, negatives, sa)
    users, uc = np.unique(frame["user_id"].to_numpy(dtype=object), return_inverse=True)
    items, ic = np.unique(frame["item_id"].to_numpy(dtype=object), return_inverse=True)
    ndcg = candidate_metrics(Candidates.from_arrays(uc, users, ic, items, frame["score"], frame["label"]), 10)[0]
    # a popularity ranker cannot beat chance here (every item is equally popular): random NDCG@10 with 1 + 20
    # candidates is about 0.2; the held-out item is the continuation of the cycle the history ends in
    assert ndcg.mean() > 0.6, ndcg.mean()


def test_recommend_cli_writes_fuse_inputs(tmp_path, monkeypatch):
    from spectra_eval import cli
    from spectra_eval.data import datasets

    monkeypatch.setattr(datasets, "load_movielens_100k_recbole", lambda folder=None: cyclic_data(n_users=30))
    out = tmp_path / "c.csv"
    status = cli.main(["recommend", "--model", "gru4rec", "--out", str(out), "--negatives", "9", "--epochs", "2",
                       "--items", str(tmp_path / "i.csv"), "--popularity", str(tmp_path / "p.csv")])
    assert status == 0
    frame = pd.read_csv(out, dtype={"user_id": str, "item_id": str})
    assert len(frame) == 30 * 10 and frame["label"].sum() == 30
    summary = json.loads((tmp_path / "c.csv.json").read_text())
    assert summary["training"]["epochs"] == 2 and 0 <= summary["candidates"]["9"]["ndcg@10"] <= 1
    assert cli.main(["recommend", "--model", "sasrec", "--out", str(out), "--negatives", "0"]) == 2


def test_fusion_stage_leaves_one_fusion_json_per_model_and_size(tmp_path):
    from spectra_eval.data.priors import uhf
    from spectra_eval.io import write_distribution_table
    from spectra_eval.report import Report
    from spectra_probe.demo.fusion_stage import run_fusion_stage

    data = cyclic_data(n_users=30)
    split = chronological_split(data)
    write_distribution_table(tmp_path / "spectra.csv", uhf(split))
    summary = run_fusion_stage(tmp_path / "work", data, split, tmp_path / "spectra.csv", tmp_path / "report",
                               negatives=(9, 19), epochs=1, bootstrap=20, validation=True, progress=False)
    names = sorted(p.name for p in (tmp_path / "report").glob("fusion-*.json"))
    assert names == [f"fusion-{m}-neg{n}.json" for m in ("gru4rec", "sasrec") for n in (19, 9)]
    assert set(summary["models"]) == {"sasrec", "gru4rec"}
    runs = Report.from_dir(tmp_path / "report").documents["fusion"].runs
    assert {r.population.negatives for r in runs.values()} == {9, 19}
    assert all(r.selection.chosen_on == "validation" for r in runs.values())
    # items and popularity, written once for both models, are what `spectra recommend` writes for the test split
    items = pd.read_csv(tmp_path / "work" / "items.csv", dtype=str, keep_default_na=False)
    expected_items = item_categories_frame(data.items)
    assert list(items.columns) == list(expected_items.columns)
    assert items.to_numpy().tolist() == expected_items.to_numpy().tolist()
    popularity = pd.read_csv(tmp_path / "work" / "popularity.csv", dtype={"item_id": str})
    expected = sequence_data(data, split).popularity()
    assert popularity["item_id"].tolist() == expected["item_id"].tolist()
    assert popularity["count"].tolist() == expected["count"].tolist()


def test_demo_stage_wiring(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from spectra_probe.demo import fusion_stage as D

    calls = {}
    monkeypatch.setattr(D, "run_fusion_stage", lambda *a, **kw: calls.update(args=a, kw=kw) or {"models": {}})
    laps = []
    run = SimpleNamespace(work=tmp_path, report=tmp_path / "report", prepared=SimpleNamespace(data="D", split="S"),
                          preds={"probe-yesno": tmp_path / "p.csv"}, max_steps=3, summary={},
                          clock=SimpleNamespace(lap=laps.append))
    D.demo_stage(run)
    assert calls["args"] == (tmp_path / "fusion", "D", "S", tmp_path / "p.csv", tmp_path / "report")
    assert calls["kw"] == {"epochs": 1, "validation": True} and run.summary["fusion"] == {"models": {}, "sentence": f"no fusion run was written to {tmp_path / 'report'}."}
    # the stage does not lap the clock itself: the demo's stage loop times it once, under "fusion"
    # (tests/test_demo.py checks demo.json's seconds)
    assert laps == []
