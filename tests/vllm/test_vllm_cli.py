"""``spectra probe --backend vllm`` as a user runs it, in a subprocess each time: two shards (merged, equal to
the transformers backend), then one Ray actor. Every run exits 0 with complete outputs and no abort at
interpreter exit (``terminate called without an active exception``, exit 134, before the engine was shut down
at exit)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from spectra_eval.io import read_distribution_table
from spectra_probe.run import merge_parts, run_probe

from .conftest import ATOL, USERS, config

ENGINE_FLAGS = ["--dtype", "float32", "--max-model-len", "512", "--engine-arg", "enforce_eager=true"]


def spectra(vdata, out, *extra, timeout=600):
    cmd = [sys.executable, "-m", "spectra_eval.cli", "probe", "--backend", "vllm", "--model", vdata["model"],
           "--contexts", vdata["contexts"], "--categories", vdata["cats"], "--method", "yesno", "--out", str(out),
           "--no-progress", *ENGINE_FLAGS, *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ})
    assert "terminate called" not in done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def reference(vdata, tmp_path_factory):
    from spectra_probe.backends.hf import HFBackend

    out = tmp_path_factory.mktemp("ref") / "h.csv"
    return run_probe(config(vdata, out, "yesno", backend="transformers"),
                     backend=HFBackend(vdata["model"], engine="naive")).table


def test_shards_in_subprocesses_merge_to_the_transformers_run(vdata, reference, tmp_path):
    for i in range(2):
        done = spectra(vdata, tmp_path / f"p{i}.csv", "--shard", f"{i}/2")
        assert f"yesno: 3 users x 7 categories -> {tmp_path / f'p{i}.csv'}" in done.stdout
    merged = merge_parts(tmp_path / "merged.csv", [tmp_path / "p0.csv", tmp_path / "p1.csv"])
    assert list(merged.table.users) == USERS
    np.testing.assert_allclose(merged.table.probs, reference.probs, atol=ATOL, rtol=0)
    manifest = json.loads((tmp_path / "p0.manifest.json").read_text())
    assert manifest["backend"]["device"] == "cpu" and manifest["shard"] == {"index": 0, "count": 2}


def test_ray_local_with_vllm(vdata, reference, tmp_path):
    out = tmp_path / "ray.csv"
    spectra(vdata, out, "--ray", "local", "--workers", "1", "--gpus-per-worker", "0", "--cpus-per-worker", "1")
    manifest = json.loads((tmp_path / "ray.manifest.json").read_text())
    assert manifest["executor"]["name"] == "ray" and manifest["backend"]["engine"] == "vllm-prefix-cache"
    got = read_distribution_table(out)
    assert list(got.users) == USERS
    np.testing.assert_allclose(got.probs, reference.probs, atol=ATOL, rtol=0)
