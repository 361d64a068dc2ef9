"""The Python API (spectra_eval.evaluate/certify/fuse/steer): DataFrames in, the CLI's numbers and files out."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import spectra_eval as se
from spectra_eval.cli import main
from spectra_eval.io import json_safe, read_distribution_table
from tests.eval.analyses.test_fusion import make_case, write_case
from tests.eval.analyses.test_steering import files  # noqa: F401  (the steering fixture)

CATS = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi", "Western"]
N_USERS = 60


def cohort(seed: int = 0) -> dict[str, pd.DataFrame]:
    """truth (counts / n_u), counts, probe (near the truth), dg (uniform on its top 2), history; user_id column."""
    rng = np.random.default_rng(seed)
    users = [f"u{i:02d}" for i in range(N_USERS)]
    theta = rng.dirichlet(np.full(len(CATS), 0.8), N_USERS)
    counts = np.vstack([rng.multinomial(int(n), p) for n, p in zip(rng.integers(3, 30, N_USERS), theta)])
    probe = 0.6 * theta + 0.4 * rng.dirichlet(np.ones(len(CATS)), N_USERS)
    top = np.argsort(-(theta + rng.normal(0, 0.1, theta.shape)), axis=1)[:, :2]
    dg = np.zeros_like(theta)
    np.put_along_axis(dg, top, 0.5, axis=1)

    def frame(values):
        return pd.DataFrame(values, columns=CATS).assign(user_id=users)[["user_id", *CATS]]

    return {"truth": frame(counts / counts.sum(axis=1, keepdims=True)), "counts": frame(counts), "probe": frame(probe),
            "dg": frame(dg), "history": frame(rng.dirichlet(np.ones(len(CATS)), N_USERS))}


def write(tmp_path, frames: dict[str, pd.DataFrame]) -> dict[str, str]:
    paths = {}
    for name, frame in frames.items():
        paths[name] = str(tmp_path / f"{name}.csv")
        frame.to_csv(paths[name], index=False)
    return paths


def read_back(paths: dict[str, str]) -> dict[str, pd.DataFrame]:
    """The files as a notebook user reads them (pandas, user ids as text): exactly the numbers the CLI reads."""
    return {name: pd.read_csv(path, dtype={"user_id": str}) for name, path in paths.items()}


def as_named(doc: dict, names: dict[str, str] | None = None) -> dict:
    """A JSON document as written (NaN -> null) with every file path replaced by the label the Python call
    gives that input (``names``: path -> label)."""
    text = json.dumps(json_safe(doc))
    for path, label in (names or {}).items():
        text = text.replace(json.dumps(str(path))[1:-1], label)
    return json.loads(text)


# ------------------------------------------------------------------ the example, and the CLI's numbers


def test_evaluation_evaluate_takes_plain_dataframes_and_gives_the_cli_numbers(tmp_path, capsys):
    paths = write(tmp_path, cohort())
    out = tmp_path / "cli"
    assert main(["evaluate", "--truth", paths["truth"], "--pred", f"probe={paths['probe']}", "--pred",
                 f"dg={paths['dg']}", "--reference", "dg", "--out", str(out), "--bootstrap", "200",
                 "--history", paths["history"]]) == 0
    cli_stdout = capsys.readouterr().out
    cli_doc = json.loads((out / "metrics.json").read_text())
    frames = read_back(paths)

    from spectra_eval.evaluation import evaluate as core_evaluate  # the call of the issue, with DataFrames

    core = core_evaluate(frames["truth"], {"probe": frames["probe"], "dg": frames["dg"]}, reference="dg",
                         n_resamples=200, history=frames["history"])
    api = se.evaluate(frames["truth"].set_index("user_id"), {"probe": frames["probe"], "dg": frames["dg"]},
                      reference="dg", n_resamples=200, history=frames["history"])
    names = {paths["truth"]: "truth", paths["probe"]: "preds['probe']", paths["dg"]: "preds['dg']",
             paths["history"]: "history"}
    for result in (core, api):
        assert as_named(result.to_dict()) == as_named(cli_doc, names)
        assert result.summary() in cli_stdout
    pd.testing.assert_frame_equal(api.to_frame(), pd.read_parquet(out / "per_user.parquet"))
    assert api.settings.truth == "truth" and api.settings.preds == {"probe": "preds['probe']", "dg": "preds['dg']"}

    # from the same files the result saves exactly the CLI's bytes, and prints exactly its lines
    truth = read_distribution_table(paths["truth"])
    tables = {"probe": read_distribution_table(paths["probe"], like=truth),
              "dg": read_distribution_table(paths["dg"], like=truth)}
    same = se.evaluate(truth, tables, reference="dg", n_resamples=200,
                       history=read_distribution_table(paths["history"], like=truth))
    written = same.save(tmp_path / "api")
    assert [p.name for p in written] == ["metrics.json", "per_user.parquet"]
    assert (tmp_path / "api" / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()
    assert cli_stdout == same.summary() + f"\nwrote {out / 'metrics.json'} and {out / 'per_user.parquet'}\n"


def test_lists_evaluate_like_the_cli(tmp_path):
    frames = cohort(1)
    rng = np.random.default_rng(1)
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(12)],
                          "categories": ["|".join(rng.choice(CATS, rng.integers(1, 3), replace=False))
                                         for _ in range(12)]})
    lists = pd.DataFrame([(u, f"i{j}", r + 1) for u in frames["truth"]["user_id"]
                          for r, j in enumerate(rng.choice(12, 4, replace=False))],
                         columns=["user_id", "item_id", "rank"])
    paths = write(tmp_path, {"truth": frames["truth"], "probe": frames["probe"], "items": items, "recs": lists})
    out = tmp_path / "cli"
    assert main(["evaluate", "--truth", paths["truth"], "--pred", f"probe={paths['probe']}", "--list",
                 f"recs={paths['recs']}", "--items", paths["items"], "--list-weights", "dcg", "--reference", "recs",
                 "--out", str(out), "--bootstrap", "100"]) == 0
    back = read_back({"truth": paths["truth"], "probe": paths["probe"]})
    api = se.evaluate(back["truth"], {"probe": back["probe"]}, reference="recs", lists={"recs": lists},
                      items=items, list_weights="dcg", n_resamples=100)
    names = {paths["truth"]: "truth", paths["probe"]: "preds['probe']", paths["recs"]: "lists['recs']",
             paths["items"]: "items"}
    assert as_named(api.to_dict()) == as_named(json.loads((out / "metrics.json").read_text()), names)
    assert api.settings.lists == {"recs": {"items": "items", "weights": "dcg"}}
    as_dict = {i: c.split("|") for i, c in zip(items["item_id"], items["categories"])}  # items as a dict
    again = se.evaluate(back["truth"], {"probe": back["probe"]}, reference="recs", lists={"recs": lists},
                        items=as_dict, list_weights="dcg", n_resamples=100)
    assert again == api


def test_certify_from_dataframes_gives_the_cli_certificate(tmp_path):
    frames = cohort(2)
    paths = write(tmp_path, frames)
    out = tmp_path / "cli"
    assert main(["certify", "--counts", paths["counts"], "--probe", paths["probe"], "--dg", paths["dg"],
                 "--alpha", "0.1", "--out", str(out)]) == 0
    back = read_back(paths)
    cert = se.certify(None, back["probe"], back["dg"].set_index("user_id"), counts=back["counts"], alpha=0.1)
    names = {paths["counts"]: "counts", paths["probe"]: "probe", paths["dg"]: "dg"}
    assert as_named(cert.to_dict()) == as_named(json.loads((out / "certificate.json").read_text()), names)
    assert cert.to_dict()["settings"]["counts"] == "counts"
    with pytest.raises(se.SpectraInputError, match="certify needs truth or counts"):
        se.certify(None, back["probe"], back["dg"])


def test_fuse_from_dataframes_gives_the_cli_fusion(tmp_path, capsys):
    case = make_case(seed=4)
    paths = write_case(tmp_path, case)
    out = tmp_path / "cli"
    assert main(["fuse", "--candidates", str(paths["candidates"]), "--spectra", str(paths["spectra"]), "--items",
                 str(paths["items"]), "--popularity", str(paths["popularity"]), "--out", str(out),
                 "--bootstrap", "40", "--name", "sas", "--backbone", "SASRec"]) == 0
    cli_stdout = capsys.readouterr().out
    candidates, spectra, items, popularity = (pd.read_csv(paths[k], dtype={"user_id": str, "item_id": str})
                                              for k in ("candidates", "spectra", "items", "popularity"))
    result = se.fuse(candidates, spectra, items, popularity.set_index("item_id")["count"], n_resamples=40,
                     name="sas", backbone="SASRec")
    names = {str(paths[k]): k for k in ("candidates", "spectra", "items", "popularity")}
    assert as_named(result.to_dict()) == as_named(json.loads((out / "fusion-sas.json").read_text()), names)
    assert result.summary() in cli_stdout.replace(str(paths["candidates"]), "candidates")
    assert result.file_name == "fusion-sas.json"
    assert list(result.to_frame().columns[:2]) == ["user_id", "slice"] and len(result.to_frame()) == 200
    assert [p.name for p in result.save(tmp_path / "api")] == ["fusion-sas.json"]
    unnamed = se.fuse(candidates, spectra, items, popularity, n_resamples=40)
    assert unnamed.file_name == "fusion.json" and unnamed.backbone == "base"
    with pytest.raises(se.SpectraInputError, match="--name 'a/b'"):
        se.fuse(candidates, spectra, items, popularity, name="a/b")


def test_steer_from_dataframes_gives_the_cli_steering(files, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "cli"
    assert main(["steer", "--base", str(files["base"]), "--steered", str(files["steered"]), "--requests",
                 str(files["requests"]), "--out", str(out), "--bootstrap", "50"]) == 0
    cli_stdout = capsys.readouterr().out
    base, steered, requests = (pd.read_csv(files[k], dtype=str if k == "requests" else {"user_id": str})
                               for k in ("base", "steered", "requests"))
    result = se.steer(base, steered.rename(columns={"user_id": "request_id"}), requests, n_resamples=50)
    names = {str(files[k]): k for k in ("base", "steered", "requests")}
    assert as_named(result.to_dict()) == as_named(json.loads((out / "steering.json").read_text()), names)
    assert result.summary() in cli_stdout
    pd.testing.assert_frame_equal(result.to_frame(), pd.read_parquet(out / "per_request.parquet"))


# ------------------------------------------------------------------ the result protocol


def _results(tmp_path, files):  # noqa: F811
    frames = cohort(3)
    ev = se.evaluate(frames["truth"], {"probe": frames["probe"], "dg": frames["dg"]}, reference="dg", n_resamples=50)
    fu = se.fuse(*make_case(seed=2, n_users=40), n_resamples=20)
    base, steered, requests = (pd.read_csv(files[k], dtype=str if k == "requests" else {"user_id": str})
                               for k in ("base", "steered", "requests"))
    st = se.steer(base, steered, requests, n_resamples=20)
    return [ev, fu, st]


def test_every_result_prints_shows_and_round_trips(files, tmp_path):  # noqa: F811
    for result in _results(tmp_path, files):
        cls = type(result)
        assert isinstance(result, se.Result)
        first = result.summary().splitlines()[0]
        assert repr(result) == f"<{cls.__name__}: {first}>"
        page = result._repr_html_()
        assert page.startswith("<pre>") and "<table" in page and "</table>" in page
        frame = result.to_frame()
        assert len(frame) > 0 and str(frame.iloc[0, 0]) in page  # the first row is shown
        doc = json.loads(json.dumps(json_safe(result.to_dict())))
        back = cls.from_dict(doc)
        assert back == result and back.to_dict() == cls.from_dict(back.to_dict()).to_dict()
        assert back.summary() == result.summary()
        with pytest.raises(ValueError, match="rebuilt from JSON"):
            back.to_frame()
        assert "<table" not in back._repr_html_() and back._repr_html_().startswith("<pre>")
        saved = {p.name for p in back.save(tmp_path / cls.__name__)}  # what the document alone can write
        assert saved == {name for name, content in result.outputs().items() if isinstance(content, dict)}
    report = se.Report.from_dir(tmp_path / "Evaluation")
    assert repr(report).startswith("<Report: tail_mass, js, ndcg") and str(tmp_path) in repr(report)
    assert report._repr_markdown_() == report.to_markdown()


# ------------------------------------------------------------------ inputs checked once, named as the argument


def test_dataframe_inputs_are_checked_with_the_file_messages():
    frames = cohort(4)
    truth, probe, dg = frames["truth"], frames["probe"], frames["dg"]
    bad = probe.copy()
    bad.loc[3, "Drama"] = np.nan
    with pytest.raises(se.SpectraInputError, match=r"^preds\['probe'\], user 'u03' \(row 4\), column 'Drama'"):
        se.evaluate(truth, {"probe": bad, "dg": dg}, reference="dg", n_resamples=10)
    with pytest.raises(se.SpectraInputError, match=r"^truth: no 'user_id' column"):
        se.evaluate(truth.drop(columns="user_id"), {"probe": probe}, n_resamples=10)
    with pytest.raises(se.SpectraInputError, match=r"^preds\['dg'\]: column 'Sci-Fi' \(a category of truth\) is "
                                                   "missing"):
        se.evaluate(truth, {"probe": probe, "dg": dg.drop(columns="Sci-Fi")}, reference="dg")
    with pytest.raises(se.SpectraInputError, match=r"^preds\['dg'\]: user 'u59' of truth is missing"):
        se.evaluate(truth, {"probe": probe, "dg": dg.iloc[:-1]}, reference="dg")
    with pytest.raises(se.SpectraInputError, match=r"^truth: expected a DistributionTable or a pandas DataFrame, "
                                                   "got ndarray"):
        se.evaluate(truth[CATS].to_numpy(), {"probe": probe})
    with pytest.raises(se.SpectraInputError, match="reference: name the method"):
        se.evaluate(truth, {"probe": probe, "dg": dg})
    with pytest.raises(se.SpectraInputError, match="lists need items"):
        se.evaluate(truth, lists={"recs": pd.DataFrame()}, reference="recs")
    counts = frames["counts"].astype({"Drama": float})
    counts.loc[0, "Drama"] = 0.5
    with pytest.raises(se.SpectraInputError, match=r"^counts, user 'u00' \(row 1\), column 'Drama'"):
        se.certify(None, probe, dg, counts=counts)
    # a single method needs no reference; integer user ids in the index are read as text, like a file's
    one = se.evaluate(truth.drop(columns="user_id").set_index(pd.Index(range(100, 160), name="id")),
                      {"probe": probe.drop(columns="user_id").set_index(pd.Index(range(100, 160), name="user_id"))}, n_resamples=10)
    assert one.settings.reference == "probe" and one.to_frame()["user_id"].iloc[0] == "100"


def test_import_stays_light_and_exports_the_api():
    import subprocess
    import sys

    code = ("import sys, spectra_eval as se; heavy = [m for m in ('spectra_eval.api', 'spectra_eval.evaluation', "
            "'scipy', 'statsmodels', 'matplotlib') if m in sys.modules]; assert not heavy, heavy; "
            "from spectra_eval.api import evaluate; assert se.evaluate is evaluate and 'steer' in dir(se); "
            "from spectra_eval.report import Report; assert se.Report is Report")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert set(se.__all__) >= {"evaluate", "certify", "fuse", "steer", "Report", "Evaluation", "FusionResult",
                               "SteeringResult", "Certificate", "Result"}
    for name in se.__all__:
        assert getattr(se, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'evaluate_everything'"):
        se.evaluate_everything  # noqa: B018
