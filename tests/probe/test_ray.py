"""``spectra probe --ray``: the real Ray (a local 2-CPU cluster, one per module) with the tiny model, no mocks.

The Ray run equals the single-process run (table, raw scores, manifest); a worker killed mid-run has its users
retried without losing or duplicating any; an interrupted run resumes from its checkpoint; an address nobody
answers is one line.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import GENRES, HISTORIES

ray = pytest.importorskip("ray")
pytest.importorskip("torch")

from spectra_eval.validation import SpectraInputError  # noqa: E402
from spectra_probe.run import ProbeConfig, run_probe  # noqa: E402
from spectra_probe.run.ray_executor import check_reachable, merge_descriptions, run_probe_on_ray  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")  # one Ray cluster per test process (make test: --dist loadgroup)

N_USERS = 24


@pytest.fixture(scope="module")
def cluster():
    """A private 2-CPU Ray instance shared by the module's runs (they reuse a session already held)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray-data")
    pd.DataFrame({"user_id": [f"u{i:02d}" for i in range(N_USERS)],
                  "context": [f"{HISTORIES[i % 3]} then item {i}" for i in range(N_USERS)]}).to_csv(
        root / "contexts.csv", index=False)
    (root / "categories.txt").write_text("\n".join(GENRES[:7]) + "\n")
    return root


def config(tiny_model_dir, data, out, **kw) -> ProbeConfig:
    return ProbeConfig(model=str(tiny_model_dir), contexts=str(data / "contexts.csv"),
                       categories=str(data / "categories.txt"), method=kw.pop("method", "yesno"), out=str(out),
                       batch_size=kw.pop("batch_size", 3), checkpoint_every=kw.pop("checkpoint_every", 3),
                       progress=False, **kw)


@pytest.fixture(scope="module")
def single(tiny_model_dir, data, tmp_path_factory):
    """The single-process run every Ray run is compared with."""
    return run_probe(config(tiny_model_dir, data, tmp_path_factory.mktemp("single") / "probe.csv"))


def assert_same_run(got, want):
    np.testing.assert_array_equal(got.table.users, want.table.users)
    assert np.abs(got.table.probs - want.table.probs).max() <= 1e-6
    pd.testing.assert_frame_equal(got.scores, want.scores, rtol=0, atol=1e-6)
    run_facts = {"created", "seconds", "latency", "executor", "outputs", "users_resumed"}
    assert set(got.manifest) == set(want.manifest)
    assert {k: v for k, v in got.manifest.items() if k not in run_facts} == \
        {k: v for k, v in want.manifest.items() if k not in run_facts}
    assert want.manifest["executor"] == {"name": "local"}
    assert got.manifest["executor"]["name"] == "ray"


def test_ray_run_equals_the_single_process_run(cluster, tiny_model_dir, data, single, tmp_path):
    out = run_probe_on_ray(config(tiny_model_dir, data, tmp_path / "probe.csv", ray="local", workers=2))
    assert_same_run(out, single)
    assert out.manifest["executor"]["workers"] == 2 and out.manifest["users_resumed"] == 0
    assert not out.paths["checkpoint"].exists()
    written = pd.read_csv(out.paths["distribution"], dtype={"user_id": str})
    assert list(written["user_id"]) == list(single.table.users)  # file order, whatever order rows arrived in


def _probe_workers() -> list[int]:
    """PIDs of this test process's Ray actors that hold a ProbeWorker (descendants of this process only)."""
    parent = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue

    def descends(pid):
        while pid in parent and pid > 1:
            pid = parent[pid]
            if pid == os.getpid():
                return True
        return False

    found = []
    for pid in parent:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ProbeWorker" in title and descends(pid):
            found.append(pid)
    return sorted(found)


def test_killed_worker_users_are_retried(cluster, tiny_model_dir, data, single, tmp_path):
    cfg = config(tiny_model_dir, data, tmp_path / "probe.csv", ray="local", workers=2, batch_size=2,
                 checkpoint_every=2)
    killed, sizes = [], []

    def on_checkpoint(n_done):
        lines = cfg_checkpoint.read_text().splitlines()[1:]
        ids = [json.loads(line)["user_id"] for line in lines]
        sizes.append((n_done, len(ids), len(set(ids))))
        if not killed:
            workers = _probe_workers()
            assert workers, "no ProbeWorker process found to kill"
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])

    cfg_checkpoint = Path(tmp_path / "probe.checkpoint.jsonl")
    out = run_probe_on_ray(cfg, on_checkpoint=on_checkpoint)
    assert killed and sizes[0][0] < N_USERS  # killed while users were still pending
    assert all(n_lines == n_unique for _, n_lines, n_unique in sizes)  # never a user twice
    assert sizes[-1][0] == N_USERS
    assert_same_run(out, single)


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_without_losing_or_repeating_a_user(cluster, tiny_model_dir, data, single, tmp_path):
    cfg = config(tiny_model_dir, data, tmp_path / "probe.csv", ray="local", workers=2)

    def stop(n_done):
        raise Interrupt(n_done)

    with pytest.raises(Interrupt) as info:
        run_probe_on_ray(cfg, on_checkpoint=stop)
    done = info.value.args[0]
    lines = (tmp_path / "probe.checkpoint.jsonl").read_text().splitlines()[1:]
    assert 0 < len(lines) == done < N_USERS
    resumed = run_probe_on_ray(cfg)
    assert resumed.manifest["users_resumed"] == done
    assert_same_run(resumed, single)

    # a checkpoint holding every user (a crash before the outputs were written): nothing is left to score, and
    # the manifest's backend block comes from a worker all the same (a local run's checkpoint, resumed on Ray)
    full = config(tiny_model_dir, data, tmp_path / "late.csv", checkpoint_every=N_USERS)
    with pytest.raises(Interrupt):
        run_probe(full, on_checkpoint=stop)
    late = run_probe_on_ray(dataclasses.replace(full, ray="local", workers=1))
    assert late.manifest["users_resumed"] == N_USERS and late.manifest["backend"]["engine"] == "packed"
    assert_same_run(late, single)


def test_unreachable_address_is_one_line(tiny_model_dir, data, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "spectra_eval.cli", "probe", "--model", str(tiny_model_dir),
           "--contexts", str(data / "contexts.csv"), "--categories", str(data / "categories.txt"),
           "--method", "yesno", "--out", str(tmp_path / "p.csv"), "--ray", f"127.0.0.1:{port}", "--workers", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in lines[0]
    assert not (tmp_path / "p.csv").exists()


def test_settings_are_checked_before_any_cluster(tiny_model_dir, data, tmp_path):
    with pytest.raises(SpectraInputError, match="--workers needs --ray"):
        config(tiny_model_dir, data, tmp_path / "p.csv", workers=2)
    with pytest.raises(SpectraInputError, match="--workers must be >= 1"):
        config(tiny_model_dir, data, tmp_path / "p.csv", ray="local", workers=0)
    with pytest.raises(SpectraInputError, match="not an address"):
        check_reachable("nowhere")


def test_worker_descriptions_merge():
    a = {"engine": "vllm", "approximate_next_logits": 2, "device": "cuda"}
    b = {"engine": "vllm", "approximate_next_logits": 3, "device": "cuda:1"}
    assert merge_descriptions([a, b]) == {"engine": "vllm", "approximate_next_logits": 5,
                                          "device": ["cuda", "cuda:1"]}
    assert merge_descriptions([]) == {}


def test_cli_runs_on_ray(cluster, tiny_model_dir, data, single, tmp_path, capsys):
    from spectra_eval.cli import main

    out = tmp_path / "cli.csv"
    assert main(["probe", "--model", str(tiny_model_dir), "--contexts", str(data / "contexts.csv"),
                 "--categories", str(data / "categories.txt"), "--method", "yesno", "--out", str(out),
                 "--batch-size", "3", "--ray", "local", "--workers", "2", "--no-progress"]) == 0
    assert f"yesno: {N_USERS} users" in capsys.readouterr().out
    table = pd.read_csv(out, dtype={"user_id": str})
    assert np.abs(table[list(GENRES[:7])].to_numpy() - single.table.probs).max() <= 1e-6
    manifest = json.loads(out.with_name("cli.manifest.json").read_text())
    assert manifest["executor"] | {"ray": None} == {"name": "ray", "address": "local", "workers": 2,
                                                   "cpus_per_worker": 1.0, "gpus_per_worker": 0.0, "ray": None}
