"""``spectra evaluate`` end to end: outputs, help, and every bad-input case (exit 2, one line, nothing written)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spectra_eval.cli import main
from spectra_eval.data.synthetic import synthetic_cohort


N = 60


@pytest.fixture()
def files(tmp_path):
    frames = synthetic_cohort(N, seed=2)
    paths = {}
    for name, frame in frames.items():
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    paths["out"] = tmp_path / "out"
    return paths


def _args(f, *extra, truth=None, probe=None, dg=None, reference="dg"):
    return ["evaluate", "--truth", str(truth or f["truth"]), "--pred", f"probe={probe or f['probe']}",
            "--pred", f"dg={dg or f['dg']}", "--reference", reference, "--out", str(f["out"]),
            "--bootstrap", "20", *extra]


def test_good_run_writes_metrics_and_per_user(files, capsys):
    assert main(_args(files, "--meta", str(files["meta"]), "--seed", "4", "--bins", "10")) == 0
    metrics = json.loads((files["out"] / "metrics.json").read_text())
    assert metrics["n_users"] == N and metrics["settings"]["bins"] == 10 and metrics["settings"]["seed"] == 4
    assert metrics["settings"]["preds"] == {"probe": str(files["probe"]), "dg": str(files["dg"])}
    assert metrics["settings"]["meta"] == str(files["meta"])
    assert set(metrics["comparisons"]["probe vs dg"]["strata"]) == {"activity", "context_window"}
    per_user = pd.read_parquet(files["out"] / "per_user.parquet")
    assert len(per_user) == 2 * N and set(per_user["method"]) == {"probe", "dg"}
    out = capsys.readouterr().out
    assert "probe vs dg: dJS" in out and "NDCG@10" in out
    # the summary prints the numbers that are in the JSON
    assert f"{metrics['methods']['probe']['js']['mean']:.3f}" in out


def test_parquet_inputs(files):
    for name in ("truth", "probe", "dg"):
        pq = files[name].with_suffix(".parquet")
        pd.read_csv(files[name], dtype={"user_id": str}).to_parquet(pq)
        files[name] = pq
    assert main(_args(files)) == 0
    assert (files["out"] / "metrics.json").exists()


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for flag in ("--truth", "--pred", "--reference", "--out", "--bootstrap", "--seed", "--bins", "--meta"):
        assert flag in text
    assert "default 1000" in text and "default 20" in text and "NAME=FILE" in text


# ------------------------------------------------------------------ bad input


def _edit(path: Path, change) -> None:
    frame = pd.read_csv(path, dtype={"user_id": str})
    frame = change(frame)
    frame.to_csv(path, index=False)


def _set(row, col, value):
    def change(frame):
        frame[col] = frame[col].astype(object)
        frame.loc[row, col] = value
        return frame
    return change


BAD_FILES = {
    # case: (file to break, how, fragments the one-line message must contain)
    "bad sum": ("probe", _set(2, "Drama", 0.9), ["probe.csv", "'u00002'", "sum to"]),
    "nan": ("probe", _set(3, "Action", np.nan), ["probe.csv", "'u00003'", "'Action'", "finite"]),
    "negative": ("dg", _set(4, "Comedy", -0.1), ["dg.csv", "'u00004'", "'Comedy'", "negative"]),
    "text value": ("probe", _set(5, "War", "lots"), ["probe.csv", "'u00005'", "'War'", "not a number"]),
    "missing user": ("probe", lambda f: f.drop(index=7), ["probe.csv", "'u00007'", "missing"]),
    "extra user": ("dg", lambda f: pd.concat([f, f.iloc[[0]].assign(user_id="stranger")]),
                   ["dg.csv", "'stranger'", "not in"]),
    "missing category": ("probe", lambda f: f.drop(columns="Drama").assign(Action=lambda g: g["Action"] + f["Drama"]),
                         ["probe.csv", "'Drama'", "missing"]),
    "missing category, rows no longer sum to 1": ("probe", lambda f: f.drop(columns="Drama"),
                                                  ["probe.csv", "'Drama'", "missing"]),
    "extra category": ("dg", lambda f: f.assign(Cartoons=0.0), ["dg.csv", "'Cartoons'", "not a category"]),
    "duplicate user": ("probe", lambda f: pd.concat([f, f.iloc[[9]]]), ["probe.csv", "'u00009'", "more than once"]),
    "bad truth": ("truth", _set(0, "Drama", 2.0), ["truth.csv", "'u00000'"]),
    "header only": ("dg", lambda f: f.iloc[:0], ["dg.csv", "no rows"]),
    "no user_id": ("probe", lambda f: f.rename(columns={"user_id": "uid"}), ["probe.csv", "'user_id'"]),
    "meta missing user": ("meta", lambda f: f.iloc[1:], ["meta.csv", "'u00000'", "missing"]),
    "meta duplicate user": ("meta", lambda f: pd.concat([f, f.iloc[[3]]]), ["meta.csv", "'u00003'", "more than once"]),
}


def _assert_one_line_error(capsys, fragments):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("spectra evaluate: error: ")
    for fragment in fragments:
        assert fragment in err[0]


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_exits_2_and_writes_nothing(files, capsys, case):
    name, change, fragments = BAD_FILES[case]
    _edit(files[name], change)
    assert main(_args(files, "--meta", str(files["meta"]))) == 2
    _assert_one_line_error(capsys, fragments)
    assert not files["out"].exists()


def test_empty_and_missing_files(files, capsys):
    empty = files["probe"].with_name("empty.csv")
    empty.write_text("")
    assert main(_args(files, probe=empty)) == 2
    _assert_one_line_error(capsys, ["empty.csv", "empty"])
    assert main(_args(files, dg=files["dg"].with_name("absent.csv"))) == 2
    _assert_one_line_error(capsys, ["absent.csv", "no such file"])
    assert main(_args(files, truth=files["truth"].with_suffix(".txt"))) == 2
    _assert_one_line_error(capsys, ["truth.txt"])
    assert not files["out"].exists()


@pytest.mark.parametrize(
    "change, fragments",
    [
        # _args: [evaluate, --truth, T, --pred, probe=P, --pred, dg=D, --reference, dg, --out, O, --bootstrap, 20]
        (lambda a: a[:4] + ["probe:probe.csv"] + a[5:], ["--pred 'probe:probe.csv'", "NAME=FILE"]),
        (lambda a: a[:6] + ["probe=" + a[6].split("=", 1)[1]] + a[7:], ["'probe'", "more than once"]),
        (lambda a: a[:8] + ["DG"] + a[9:], ["--reference 'DG'", "not among the --pred names"]),
        (lambda a: a[:-1] + ["0"], ["--bootstrap must be at least 1"]),
        (lambda a: a + ["--bins", "0"], ["--bins must be at least 1"]),
        (lambda a: a + ["--bins", "-3"], ["--bins must be at least 1"]),
    ],
    ids=["pred without =", "duplicate method", "unknown reference", "bootstrap 0", "bins 0", "bins negative"],
)
def test_bad_arguments_exit_2(files, capsys, change, fragments):
    args = change(_args(files))
    assert main(args) == 2
    _assert_one_line_error(capsys, fragments)
    assert not files["out"].exists()


def test_existing_out_left_unchanged_on_bad_input(files, capsys):
    files["out"].mkdir()
    (files["out"] / "keep.txt").write_text("old")
    _edit(files["probe"], _set(1, "Drama", 0.7))
    assert main(_args(files)) == 2
    assert sorted(p.name for p in files["out"].iterdir()) == ["keep.txt"]
    assert (files["out"] / "keep.txt").read_text() == "old"
    assert not [p for p in files["out"].parent.iterdir() if p.name.startswith(".out.tmp")]  # no staging left


def test_subprocess_bad_input_has_no_traceback(files):
    _edit(files["dg"], _set(6, "Horror", -0.2))
    proc = subprocess.run([sys.executable, "-m", "spectra_eval.cli", *_args(files)], capture_output=True, text=True,
                          env=os.environ | {"PYTHONWARNINGS": "ignore"}, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "dg.csv" in proc.stderr and "'u00006'" in proc.stderr and "'Horror'" in proc.stderr
    assert not files["out"].exists()
