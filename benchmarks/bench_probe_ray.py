"""``spectra probe --ray local --workers 2`` against one process, on this machine, with a tiny random Qwen3.

For the same cohort (users x 19 categories, yes/no probe, float32 on CPU) it times:

* one process (:func:`spectra_probe.run.run_probe`, torch on every core), from start to written outputs;
* Ray (:func:`spectra_probe.run.ray_executor.run_probe_on_ray`, ``--ray local --workers N``, one CPU and one
  torch thread per actor), from start to written outputs, which includes starting Ray and the actors;

and splits each into start-up and steady state from the arrival times of the rows (one checkpoint per batch):
steady users/s is the rate between the first and the last arrival, start-up is the total minus the users at
that rate. ``ray.init`` + ``ray.shutdown`` on their own are timed too. The outputs of both runs are compared
(max abs difference of the distributions).

Run ``python -m benchmarks probe_ray`` (``python benchmarks/bench_probe_ray.py --users 400 --hidden 256``
for a larger model).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from .bench_probe import CATEGORIES as GENRES
except ImportError:  # run as a script (``python benchmarks/bench_probe_ray.py``): benchmarks/ is on sys.path
    from bench_probe import CATEGORIES as GENRES


def write_cohort(directory: Path, n_users: int, hidden: int = 64, layers: int = 2) -> dict[str, str]:
    """A random Qwen3 (``hidden`` x ``layers``) with a locally trained tokenizer, contexts and categories."""
    from spectra_probe.templates import PromptBuilder, PromptTemplates
    from spectra_probe.training.tiny import build_tiny_qwen3, sample_corpus, save_tiny, train_tokenizer

    b = PromptBuilder(PromptTemplates())  # the prompts in the corpus make the default verbalizers single tokens
    prompts = [b.probe_prefix(h) + b.probe_suffix(c) + " Yes" for h in sample_corpus(5, seed=2) for c in GENRES]
    prompts += ["Yes No Y N y n yes no. Answer: Yes, Answer: No\nNo, Yes"] * 5
    tok = train_tokenizer(sample_corpus(600) + prompts, vocab_size=800)
    model = build_tiny_qwen3(tok, hidden_size=hidden, layers=layers, heads=max(4, hidden // 64),
                             kv_heads=max(2, hidden // 128), seed=0)
    save_tiny(model, tok, directory / "model")
    histories = sample_corpus(n_users, seed=1)
    pd.DataFrame({"user_id": [f"u{i}" for i in range(n_users)],
                  "context": [" ".join([h] * 6) for h in histories]}).to_csv(directory / "contexts.csv", index=False)
    (directory / "categories.txt").write_text("\n".join(GENRES) + "\n")
    return {"model": str(directory / "model"), "contexts": str(directory / "contexts.csv"),
            "categories": str(directory / "categories.txt")}


def timed(config, run) -> dict:
    """Run ``run(config, on_checkpoint=...)``; total seconds, start-up, steady users/s and the output."""
    arrivals = []
    t0 = time.perf_counter()
    out = run(config, on_checkpoint=lambda n: arrivals.append((time.perf_counter() - t0, n)))
    total = time.perf_counter() - t0
    (t_first, n_first), (t_last, n_last) = arrivals[0], arrivals[-1]
    steady = (n_last - n_first) / (t_last - t_first) if t_last > t_first else float("nan")
    n = out.table.n_users
    return {"total_s": total, "users_per_s": n / total, "steady_users_per_s": steady,
            "startup_s": total - n / steady, "first_batch_s": t_first, "output": out}


def ray_init_cost(num_cpus: int) -> float:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    ray.shutdown()
    return time.perf_counter() - t0


def compare(files: dict, n_users: int, workers: int, batch_size: int, address: str = "local",
            backend: str = "transformers", device: str = "cpu", **config_kw) -> dict:
    """Time the single-process run and the Ray run of the same probe; print and return the figures."""
    from spectra_probe.run import ProbeConfig, run_probe
    from spectra_probe.run.ray_executor import run_probe_on_ray

    with tempfile.TemporaryDirectory(prefix="spectra-ray-bench-") as tmp:
        base = ProbeConfig(**files, method="yesno", out=str(Path(tmp) / "single.csv"), batch_size=batch_size,
                           checkpoint_every=batch_size, progress=False, backend=backend, device=device, **config_kw)
        single = timed(base, run_probe)
        ray_cfg = dataclasses.replace(base, out=str(Path(tmp) / "ray.csv"), ray=address, workers=workers)
        on_ray = timed(ray_cfg, run_probe_on_ray)
    diff = float(np.abs(single["output"].table.probs - on_ray["output"].table.probs).max())
    for name, r in (("one process", single), (f"ray, {workers} workers", on_ray)):
        print(f"  {name:18s}: {r['total_s']:7.2f} s total ({r['users_per_s']:7.1f} users/s end to end), steady "
              f"{r['steady_users_per_s']:7.1f} users/s, start-up {r['startup_s']:5.2f} s "
              f"(first batch after {r['first_batch_s']:.2f} s)")
    print(f"  ratio ray / one process: end to end {on_ray['users_per_s'] / single['users_per_s']:.2f}x, "
          f"steady state {on_ray['steady_users_per_s'] / single['steady_users_per_s']:.2f}x; "
          f"max |probability difference| {diff:.2g}")
    strip = lambda r: {k: v for k, v in r.items() if k != "output"}  # noqa: E731
    return {"single": strip(single), "ray": strip(on_ray), "max_abs_diff": diff, "users": n_users,
            "workers": workers}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64, help="model width (64: the tests' tiny model size)")
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args([] if argv is None and __name__ != "__main__" else argv)
    logging.getLogger("ray").setLevel(logging.WARNING)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="spectra-ray-cohort-") as tmp:
        files = write_cohort(Path(tmp), args.users, args.hidden, args.layers)
        print(f"[{args.users} users x {len(GENRES)} categories, yes/no, random Qwen3 hidden {args.hidden} x "
              f"{args.layers} layers, float32, {cores} CPU cores, batch {args.batch_size}]")
        init = ray_init_cost(cores)
        print(f"  ray.init + ray.shutdown alone: {init:.2f} s")
        result = compare(files, args.users, args.workers, args.batch_size)
    return {**result, "ray_init_s": init, "cores": cores}


if __name__ == "__main__":
    main()
