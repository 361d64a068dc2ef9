"""``spectra evaluate`` at platform scale: 1,000,000 users x 19 categories x 3 methods, 1,000 paired resamples.

Writes a synthetic cohort (truth, three methods, a metadata column) as Parquet into a temporary directory, then
runs the real command line, ``spectra evaluate ... --bootstrap 1000``, in a child process and reports its wall
time and peak resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``). Goal: within 24 GiB on the
development machine. The paired index draw, (1,000 x 1,000,000) int64 = 8 GB if held, is streamed
(:class:`spectra_eval.stats.BootstrapDraw`), 100 resamples at a time.

Run ``python -m benchmarks evaluate_scale`` (a few minutes on 2 cores: on the development machine the command took
120 s with a peak RSS of 5.6 GiB), or
``python benchmarks/bench_evaluate_scale.py --users 100000`` for a quicker look.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

N_CATEGORIES = 19
GOAL_BYTES = 24 * 2**30


def write_cohort(directory: Path, n_users: int, seed: int = 0) -> dict[str, Path]:
    """Truth, probe, mix and dg tables (Parquet) and a metadata table, built in blocks of 100,000 users."""
    rng = np.random.default_rng(seed)
    cats = [f"c{j:02d}" for j in range(N_CATEGORIES)]
    popularity = 1.0 / np.arange(1, N_CATEGORIES + 1) ** 1.1
    popularity /= popularity.sum()
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in ("truth", "probe", "mix", "dg", "meta")}
    for start in range(0, n_users, 100_000):
        n = min(100_000, n_users - start)
        users = [f"u{i}" for i in range(start, start + n)]
        counts = rng.multinomial(20, popularity, n) + rng.multinomial(5, np.full(N_CATEGORIES, 1 / N_CATEGORIES), n)
        truth = counts / counts.sum(axis=1, keepdims=True)
        probe = 0.5 * truth + 0.5 * rng.dirichlet(20 * popularity, n)
        top = np.argsort(-(truth + rng.gumbel(0, 0.02, truth.shape)), axis=1)[:, :5]
        dg = np.zeros_like(truth)
        np.put_along_axis(dg, top, 0.2, axis=1)
        mix = 0.5 * probe + 0.5 * dg
        for name, probs in (("truth", truth), ("probe", probe), ("mix", mix), ("dg", dg)):
            frame = pd.DataFrame(probs, columns=cats)
            frame.insert(0, "user_id", users)
            parts[name].append(frame)
        parts["meta"].append(pd.DataFrame({"user_id": users, "activity": counts.sum(axis=1) + rng.integers(0, 50, n)}))
    paths = {}
    for name, frames in parts.items():
        paths[name] = directory / f"{name}.parquet"
        pd.concat(frames, ignore_index=True).to_parquet(paths[name], index=False)
    return paths


def run(n_users: int = 1_000_000, n_resamples: int = 1000) -> dict:
    with tempfile.TemporaryDirectory(prefix="spectra-scale-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = write_cohort(tmp, n_users)
        print(f"[{n_users:,} users x {N_CATEGORIES} categories x 3 methods, {n_resamples} paired resamples]")
        print(f"  cohort written in {time.perf_counter() - t0:.1f} s "
              f"({sum(p.stat().st_size for p in paths.values()) / 2**20:.0f} MiB of Parquet)", flush=True)
        cmd = [sys.executable, "-m", "spectra_eval.cli", "evaluate", "--truth", str(paths["truth"]),
               "--pred", f"probe={paths['probe']}", "--pred", f"mix={paths['mix']}", "--pred", f"dg={paths['dg']}",
               "--reference", "dg", "--meta", str(paths["meta"]), "--bootstrap", str(n_resamples),
               "--out", str(tmp / "results")]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
        if done.returncode != 0:
            print(done.stderr[-3000:])
            raise SystemExit(f"spectra evaluate failed with status {done.returncode}")
        metrics = json.loads((tmp / "results" / "metrics.json").read_text())
        js = metrics["methods"]["probe"]["js"]
        outputs = {p.name: p.stat().st_size for p in (tmp / "results").iterdir() if p.is_file()}
    print(f"  spectra evaluate: {seconds:.1f} s wall, peak RSS {peak / 2**30:.2f} GiB "
          f"(goal <= 24 GiB: {'met' if peak <= GOAL_BYTES else 'NOT met'})")
    print(f"  check: probe JS {js['mean']:.5f} [{js['ci_low']:.5f}, {js['ci_high']:.5f}], "
          f"n_users {metrics['n_users']:,}; outputs {', '.join(f'{k} {v / 2**20:.0f} MiB' for k, v in outputs.items())}")
    return {"n_users": n_users, "n_resamples": n_resamples, "seconds": seconds, "peak_rss_bytes": peak}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args([] if argv is None and __name__ != "__main__" else argv)
    return run(args.users, args.resamples)


if __name__ == "__main__":
    main()
