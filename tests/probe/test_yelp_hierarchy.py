"""Yelp L2 hierarchical probing end to end: load_yelp(level="l2") labels -> categories file + hierarchy ->
``spectra probe --hierarchy`` on the tiny random Qwen3, with the raw Yelp hierarchy JSON and with the
``hierarchy.json`` that ``export_evaluation_inputs`` writes for two-level data."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax

from spectra_eval.cli import main
from spectra_eval.data.datasets import load_yelp
from spectra_eval.io import read_distribution_table, read_frame
from spectra_eval.validation import SpectraInputError
from spectra_probe.scoring.hierarchy import build_hierarchy, load_hierarchy

pytest.importorskip("torch")

# 'Cafes' sits under two L1s (labelled "Food > Cafes" and "Nightlife > Cafes"); 'Lounges' is used by no business
TREE = {"Food": ["Pizza", "Cafes", "Bakeries"], "Nightlife": ["Bars", "Cafes", "Lounges"]}
PARTITION = {"Food": ["Pizza", "Food > Cafes", "Bakeries"], "Nightlife": ["Nightlife > Cafes", "Bars"]}
BUSINESSES = [
    {"business_id": "b1", "name": "Joe's", "categories": "Pizza, Restaurants"},
    {"business_id": "b2", "name": "Moon", "categories": "Bars, Cafes"},
    {"business_id": "b3", "name": "Bean", "categories": "Cafes"},
    {"business_id": "b4", "name": "Crumb", "categories": "Bakeries"},
    {"business_id": "b5", "name": "Bank", "categories": "Banks"},  # not in the hierarchy: dropped
]
USERS = [f"u{i}" for i in range(6)]
CONTEXTS = ["liked pizza and then bars", "cafes and bakeries recently", "the user went to a bar"]


def write_yelp(root):
    (root / "h.json").write_text(json.dumps(TREE))
    (root / "business.json").write_text("\n".join(json.dumps(b) for b in BUSINESSES) + "\n")
    reviews = [{"review_id": f"r{u}-{k}", "user_id": user, "business_id": f"b{1 + (u + k * (u + 1)) % 5}",
                "stars": 4, "date": f"2019-01-{1 + k:02d} {10 + u}:00:00"}
               for u, user in enumerate(USERS) for k in range(8)]
    (root / "review.json").write_text("\n".join(json.dumps(r) for r in reviews) + "\n")


@pytest.fixture(scope="module")
def yelp(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("yelp")
    write_yelp(root)
    data = load_yelp(root / "business.json", root / "review.json", root / "h.json", level="l2", progress=False)
    return {"root": root, "data": data, "model": str(tiny_model_dir)}


def probe(model, contexts, categories, hierarchy, out, *extra):
    return main(["probe", "--model", model, "--contexts", str(contexts), "--categories", str(categories),
                 "--hierarchy", str(hierarchy), "--method", "yesno", "--out", str(out), "--no-progress", *extra])


def check_chain_rule(out, categories, partition, tau):
    """Rows sum to 1; theta(c) = theta(L1) * theta(c | L1) in an expanded branch, theta(L1) / |L1| otherwise."""
    table = read_distribution_table(out)
    scores = read_frame(out.with_name(out.stem + ".scores" + out.suffix))
    assert table.categories == tuple(categories)
    assert list(scores.columns) == ["user_id", *categories, *(f"L1:{p}" for p in partition)]
    np.testing.assert_allclose(table.probs.sum(axis=1), 1.0, atol=1e-12)
    theta1 = softmax(scores[[f"L1:{p}" for p in partition]].to_numpy() / tau, axis=1)
    n_expanded = 0
    for u in range(table.n_users):
        for g, kids in enumerate(partition.values()):
            cols = [categories.index(k) for k in kids]
            s2 = scores[kids].to_numpy()[u]
            if np.isnan(s2).all():  # branch not expanded: L1 mass spread uniformly
                expected = np.full(len(kids), theta1[u, g] / len(kids))
            else:
                expected = theta1[u, g] * softmax(s2 / tau)
                n_expanded += 1
            np.testing.assert_allclose(table.probs[u, cols], expected, atol=1e-9)
    return n_expanded


def test_load_yelp_l2_categories_fit_the_raw_hierarchy(caplog):
    data_cats = ("Pizza", "Food > Cafes", "Nightlife > Cafes", "Bars", "Bakeries")
    with caplog.at_level("WARNING", logger="spectra_probe.scoring.hierarchy"):
        h = build_hierarchy(TREE, data_cats)  # 'Lounges' (no business) is left out, and says so
    assert "1 hierarchy label(s) not in the categories file are ignored (first: 'Lounges')" in caplog.text
    assert h.to_dict(data_cats) == {"Food": ["Pizza", "Food > Cafes", "Bakeries"],
                                    "Nightlife": ["Nightlife > Cafes", "Bars"]}
    with pytest.raises(SpectraInputError, match="'Cafes' is under both 'Food' and 'Nightlife'"):
        build_hierarchy(TREE, ("Pizza", "Cafes", "Bars", "Bakeries"))
    with pytest.raises(SpectraInputError, match="'Lounges' under L1 'Nightlife' is not in the categories file"):
        build_hierarchy({**TREE, "Nightlife": ["Lounges"]}, ("Pizza", "Cafes", "Bakeries"))


def test_raw_yelp_hierarchy_probe(yelp, tmp_path):
    data, root = yelp["data"], yelp["root"]
    assert set(data.categories) == {c for kids in PARTITION.values() for c in kids}
    (tmp_path / "cats.txt").write_text("\n".join(data.categories) + "\n")
    (tmp_path / "contexts.csv").write_text("user_id,context\n" + "".join(
        f"{u},{CONTEXTS[i % len(CONTEXTS)]}\n" for i, u in enumerate(USERS)))
    assert load_hierarchy(root / "h.json", data.categories).to_dict(data.categories) == {
        p: [c for c in data.categories if c in kids] for p, kids in PARTITION.items()}
    out = tmp_path / "hier.csv"
    assert probe(yelp["model"], tmp_path / "contexts.csv", tmp_path / "cats.txt", root / "h.json", out,
                 "--branches", "top", "--branches-b", "1", "--temperature", "0.5") == 0
    n_expanded = check_chain_rule(out, list(data.categories), PARTITION, 0.5)
    assert n_expanded == len(USERS)  # one branch per user
    manifest = json.loads(out.with_name("hier.manifest.json").read_text())
    assert {p: sorted(k) for p, k in manifest["hierarchy"].items()} == {p: sorted(k) for p, k in PARTITION.items()}


def test_export_writes_hierarchy_and_probe_chains(yelp, tmp_path):
    from spectra_probe.training import export_evaluation_inputs, load_tokenizer, prepare

    prepared = prepare(yelp["data"])
    files = export_evaluation_inputs(prepared, load_tokenizer(yelp["model"]), tmp_path / "data", budget=60)
    written = json.loads(files["hierarchy"].read_text())
    categories = (tmp_path / "data" / "categories.txt").read_text().splitlines()
    assert written == {p: [c for c in categories if c in kids] for p, kids in PARTITION.items()}
    out = tmp_path / "hier.csv"
    assert probe(yelp["model"], files["contexts"], files["categories"], files["hierarchy"], out) == 0
    n_users = len(read_frame(files["contexts"]))
    assert check_chain_rule(out, categories, written, 1.0) == n_users * len(written)  # all branches expanded

    # one-level data (no parents): no hierarchy file
    root = yelp["root"]
    flat = load_yelp(root / "business.json", root / "review.json", root / "h.json", level="l1", progress=False)
    assert flat.parents is None
    files = export_evaluation_inputs(prepare(flat), load_tokenizer(yelp["model"]), tmp_path / "flat", budget=60)
    assert "hierarchy" not in files and not (tmp_path / "flat" / "hierarchy.json").exists()
