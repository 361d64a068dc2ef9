"""Loaders: each format on a small fixture written here, malformed lines, and recbole's real ml-100k."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from spectra_eval.data.taxonomy import hierarchy_labels
from spectra_eval.data.datasets import (
    MOVIELENS_GENRES,
    load_interactions_table,
    load_movielens,
    load_movielens_100k,
    load_movielens_100k_recbole,
    load_movielens_1m,
    load_movielens_latest,
    load_yelp,
    recbole_ml100k_dir,
)
from spectra_eval.validation import SpectraInputError


def _flags(*genres):
    return "|".join("1" if g in genres else "0" for g in MOVIELENS_GENRES)


@pytest.fixture
def ml100k(tmp_path):
    (tmp_path / "u.item").write_bytes(
        (f"1|Toy Story (1995)|01-Jan-1995||http://x|{_flags('Animation', 'Comedy')}\n"
         f"2|Caf\u00e9 Society (1997)|01-Jan-1997||http://y|{_flags('Drama')}\n"
         f"3|Untitled|01-Jan-1990||http://z|{_flags('unknown')}\n").encode("latin-1"))
    (tmp_path / "u.data").write_text("7\t1\t5\t100\n7\t2\t3\t50\n8\t3\t4\t70\n")
    return tmp_path


def test_ml100k_original(ml100k):
    data = load_movielens_100k(ml100k)
    assert data.categories == ("unknown", "Animation", "Comedy", "Drama")  # canonical u.genre order
    f = data.frame
    assert list(f["user_id"]) == ["7", "7", "8"] and list(f["item_id"]) == ["1", "2", "3"]
    assert f["timestamp"].tolist() == [100.0, 50.0, 70.0]
    assert f["categories"].tolist() == [("Animation", "Comedy"), ("Drama",), ("unknown",)]
    items = data.items.set_index("item_id")
    assert items.loc["2", "title"] == "Caf\u00e9 Society" and items.loc["2", "year"] == 1997
    assert items.loc["3", "year"] == 1990  # from the release date when the title has no year
    assert load_movielens(ml100k).n_interactions == 3


def test_ml100k_malformed_lines(ml100k):
    (ml100k / "u.data").write_text("7\t1\t5\t100\n7\t2\t3\n")
    with pytest.raises(SpectraInputError, match=r"u\.data: line 2: expected 4 fields"):
        load_movielens_100k(ml100k)
    (ml100k / "u.data").write_text("7\t1\t5\t100\n\n7\t2\t3\tsoon\n")
    with pytest.raises(SpectraInputError, match=r"u\.data: line 3, column 'timestamp': 'soon' is not a number"):
        load_movielens_100k(ml100k)
    (ml100k / "u.data").write_text("7\t1\t5\t100\n7\t9\t3\t5\n")
    with pytest.raises(SpectraInputError, match=r"u\.data: line 2, column 'item_id': item '9' is not in the item"):
        load_movielens_100k(ml100k)
    (ml100k / "u.item").write_text(f"1|A (1995)|x||u|{_flags('Drama').replace('0', '2', 1)}\n")
    with pytest.raises(SpectraInputError, match=r"u\.item: line 1, column 'unknown': genre flag '2'"):
        load_movielens_100k(ml100k)


def test_ml1m(tmp_path):
    (tmp_path / "movies.dat").write_text("1::Toy Story (1995)::Animation|Children's|Comedy\n2::Heat (1995)::Action\n",
                                         encoding="latin-1")
    (tmp_path / "ratings.dat").write_text("1::1::5::978300760\n1::2::3::978302109\n2::2::4::978301968\n")
    data = load_movielens_1m(tmp_path)
    assert data.categories == ("Action", "Animation", "Children's", "Comedy")
    assert data.n_users == 2 and data.n_items == 2
    assert data.frame["categories"].iloc[0] == ("Animation", "Children's", "Comedy")
    (tmp_path / "ratings.dat").write_text("1::1::5::978300760\n1::2::3\n")
    with pytest.raises(SpectraInputError, match=r"ratings\.dat: line 2: expected 4 fields separated by '::', found 3"):
        load_movielens_1m(tmp_path)


def test_ml_latest(tmp_path):
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama|Romance\n2,Nothing,(no genres listed)\n')
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964981247\n")
    data = load_movielens_latest(tmp_path)
    items = data.items.set_index("item_id")
    assert items.loc["1", "title"] == "American President, The" and items.loc["1", "year"] == 1995
    assert items.loc["2", "categories"] == ()
    assert data.categories == ("Comedy", "Drama", "Romance")
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,\n")
    with pytest.raises(SpectraInputError, match=r"ratings\.csv: line 3, column 'timestamp'"):
        load_movielens_latest(tmp_path)
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703,9\n")
    with pytest.raises(SpectraInputError, match=r"ratings\.csv: line 2: malformed CSV"):
        load_movielens_latest(tmp_path)


def test_generic_table_csv_and_parquet(tmp_path):
    frame = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"],
                          "timestamp": ["2020-01-01 00:00:00", "2020-01-02 00:00:00", "2020-01-03 00:00:00"],
                          "categories": ["Pizza|Bars", "Cafe", "Pizza|Bars"], "title": ["A", "B", "A"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        data = load_interactions_table(tmp_path / name)
        assert data.categories == ("Bars", "Cafe", "Pizza")
        assert data.frame["timestamp"].tolist() == [1577836800.0, 1577923200.0, 1578009600.0]
        assert data.frame["categories"].iloc[0] == ("Pizza", "Bars")
        assert data.items.set_index("item_id").loc["b", "title"] == "B"
    fixed = load_interactions_table(tmp_path / "t.csv", categories=["Pizza", "Cafe", "Bars", "Sushi"])
    assert fixed.categories == ("Pizza", "Cafe", "Bars", "Sushi")
    frame.loc[2, "timestamp"] = "not a date"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SpectraInputError, match=r"bad\.csv: line 4, column 'timestamp'"):
        load_interactions_table(tmp_path / "bad.csv")
    frame.loc[2, "timestamp"] = "3"
    frame.loc[2, "categories"] = "Cafe"
    frame.to_csv(tmp_path / "bad2.csv", index=False)
    with pytest.raises(SpectraInputError, match=r"bad2\.csv: line 4, column 'categories': item 'a'"):
        load_interactions_table(tmp_path / "bad2.csv")
    frame.drop(columns=["item_id"]).to_csv(tmp_path / "bad3.csv", index=False)
    with pytest.raises(SpectraInputError, match=r"bad3\.csv: line 1: no 'item_id' column"):
        load_interactions_table(tmp_path / "bad3.csv")


def _yelp(tmp_path):
    tree = {"Food": ["Pizza", "Cafes"], "Nightlife": ["Bars", "Cafes"]}
    (tmp_path / "h.json").write_text(json.dumps(tree))
    business = [
        {"business_id": "b1", "name": "Joe's", "categories": "Pizza, Restaurants"},
        {"business_id": "b2", "name": "Moon", "categories": "Bars, Cafes"},
        {"business_id": "b3", "name": "Bank", "categories": "Banks"},  # not in the hierarchy: dropped
        {"business_id": "b4", "name": "Nil", "categories": None},
    ]
    (tmp_path / "business.json").write_text("\n".join(json.dumps(b) for b in business) + "\n")
    reviews = [
        {"review_id": "r1", "user_id": "u1", "business_id": "b1", "stars": 5, "date": "2019-01-01 10:00:00"},
        {"review_id": "r2", "user_id": "u1", "business_id": "b2", "stars": 4, "date": "2019-01-02 10:00:00"},
        {"review_id": "r3", "user_id": "u2", "business_id": "b3", "stars": 1, "date": "2019-01-03 10:00:00"},
    ]
    (tmp_path / "review.json").write_text("\n".join(json.dumps(r) for r in reviews) + "\n")
    return tree


def test_yelp_streamed_l1_and_l2(tmp_path):
    tree = _yelp(tmp_path)
    l1 = load_yelp(tmp_path / "business.json", tmp_path / "review.json", tmp_path / "h.json", chunk_size=1,
                   progress=False)
    assert l1.categories == ("Food", "Nightlife")
    assert l1.frame["item_id"].tolist() == ["b1", "b2"]  # the Banks review is dropped with its business
    assert l1.frame["categories"].tolist() == [("Food",), ("Nightlife", "Food")]
    assert l1.frame["timestamp"].iloc[0] == pd.Timestamp("2019-01-01 10:00:00", tz="UTC").timestamp()
    l2 = load_yelp(tmp_path / "business.json", tmp_path / "review.json", tree, level="l2", progress=False)
    # 'Cafes' sits under two L1s, so it is qualified by its parent
    assert l2.categories == ("Pizza", "Food > Cafes", "Nightlife > Cafes", "Bars")
    assert l2.parents == {"Pizza": "Food", "Food > Cafes": "Food", "Nightlife > Cafes": "Nightlife",
                          "Bars": "Nightlife"}
    assert l2.frame["categories"].iloc[1] == ("Bars", "Food > Cafes", "Nightlife > Cafes")
    assert l2.items.set_index("item_id").loc["b2", "title"] == "Moon"
    mapping, parents = hierarchy_labels(tree, "l1")
    assert mapping["Cafes"] == ("Food", "Nightlife") and mapping["Food"] == ("Food",)


def test_yelp_malformed_lines(tmp_path):
    _yelp(tmp_path)
    lines = (tmp_path / "review.json").read_text().splitlines()
    (tmp_path / "review.json").write_text("\n".join(lines[:1] + ['{"user_id": "u3", "business_id": '] + lines[1:]))
    with pytest.raises(SpectraInputError, match=r"review\.json: line 2, column \d+: invalid JSON"):
        load_yelp(tmp_path / "business.json", tmp_path / "review.json", tmp_path / "h.json", progress=False)
    bad_date = {"user_id": "u3", "business_id": "b1", "date": "yesterday"}
    (tmp_path / "review.json").write_text("\n".join(lines + [json.dumps(bad_date)]))
    with pytest.raises(SpectraInputError, match=r"review\.json: line 4, field 'date': 'yesterday'"):
        load_yelp(tmp_path / "business.json", tmp_path / "review.json", tmp_path / "h.json", progress=False)
    (tmp_path / "review.json").write_text("\n".join(lines + ['{"user_id": "", "business_id": "b1"}']))
    with pytest.raises(SpectraInputError, match=r"review\.json: line 4, field 'user_id': missing or empty"):
        load_yelp(tmp_path / "business.json", tmp_path / "review.json", tmp_path / "h.json", progress=False)
    (tmp_path / "h.json").write_text('{"Food": "Pizza"}')
    with pytest.raises(SpectraInputError, match=r"h\.json: L1 'Food': expected a list"):
        load_yelp(tmp_path / "business.json", tmp_path / "review.json", tmp_path / "h.json", progress=False)


def test_recbole_ml100k():
    data = load_movielens_100k_recbole()
    assert (data.n_users, data.n_items, data.n_interactions) == (943, 1682, 100_000)
    assert data.categories == MOVIELENS_GENRES and len(data.categories) == 19
    # independent count straight from the atomic file: genre occurrences over the item table
    raw = pd.read_csv(recbole_ml100k_dir() / "ml-100k.item", sep="\t")
    expected = raw["class:token_seq"].str.split().explode().value_counts()
    got = data.items["categories"].explode().value_counts()
    assert got.sort_index().equals(expected.rename(got.name).rename_axis(got.index.name).sort_index())
    inter = pd.read_csv(recbole_ml100k_dir() / "ml-100k.inter", sep="\t")
    assert np.array_equal(data.frame["timestamp"].to_numpy(), inter["timestamp:float"].to_numpy(dtype=float))
    first = data.items.set_index("item_id").loc["1"]
    assert (first["title"], first["year"], first["categories"]) == ("Toy Story", 1995,
                                                                    ("Animation", "Children's", "Comedy"))


def test_recbole_missing_hint(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SpectraInputError, match="pip install --no-deps recbole"):
        load_movielens_100k_recbole()
