"""Cost of the full evaluation against the obvious hand-rolled scipy subset, and a large-K run.

1. 20,000 users x 19 categories x 3 methods: :func:`spectra_eval.evaluation.evaluate` with 1,000 paired
   resamples and every table (metrics, CIs, comparisons, per-category tests, quartiles, strata) versus what a
   researcher would write for only JS and NDCG@10 with CIs: per-user JS by
   ``scipy.spatial.distance.jensenshannon(base=2)**2`` (row-vectorised), per-user NDCG@10 by a loop over
   users, and ``scipy.stats.bootstrap(method='percentile')`` CIs of both means, per method. Goal: full <= subset.
2. 10,000 users x 1,311 categories x 2 methods (Yelp-L1xL2 scale): time and peak memory
   (tracemalloc peak of the evaluate call; process max RSS). Goals: < 60 s and < 3 GB.

Run ``python -m benchmarks evaluate``.
"""
from __future__ import annotations

import resource
import time
import tracemalloc

import numpy as np
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from spectra_eval.evaluation import evaluate
from spectra_eval.io import DistributionTable
from spectra_eval.data.synthetic import synthetic_cohort


N_RESAMPLES = 1000


def _tables(frames: dict, names) -> dict[str, DistributionTable]:
    return {k: DistributionTable.from_frame(frames[k], source=k) for k in names}


def ndcg10_loop(pred: np.ndarray, truth: np.ndarray, k: int = 10) -> np.ndarray:
    """The obvious per-user NDCG@k: sort each user's prediction, linear gains, log2 discount."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    out = np.empty(len(pred))
    for u in range(len(pred)):
        top = np.argsort(-pred[u], kind="stable")[:k]
        ideal = np.sort(truth[u])[::-1][:k]
        out[u] = (truth[u, top] @ disc[: len(top)]) / (ideal @ disc[: len(ideal)])
    return out


def scipy_subset(truth: np.ndarray, preds: dict[str, np.ndarray]) -> dict[str, float]:
    """JS + NDCG@10 with percentile bootstrap CIs per method, the hand-rolled way. Returns part timings."""
    times = {"js": 0.0, "ndcg@10": 0.0, "bootstrap": 0.0}
    for pred in preds.values():
        t0 = time.perf_counter()
        js = jensenshannon(pred, truth, axis=1, base=2) ** 2
        t1 = time.perf_counter()
        ndcg = ndcg10_loop(pred, truth)
        t2 = time.perf_counter()
        for values in (js, ndcg):
            sps.bootstrap((values,), np.mean, n_resamples=N_RESAMPLES, method="percentile", vectorized=True,
                          random_state=0)
        t3 = time.perf_counter()
        times["js"] += t1 - t0
        times["ndcg@10"] += t2 - t1
        times["bootstrap"] += t3 - t2
    return times


def bench_cohort(n_users: int = 20_000) -> dict:
    frames = synthetic_cohort(n_users, seed=0)
    tables = _tables(frames, ("truth", "probe", "dg"))
    mix = 0.5 * tables["probe"].probs + 0.5 * tables["dg"].probs  # a third method between the two
    tables["mix"] = DistributionTable(tables["truth"].users, tables["truth"].categories, mix, "mix")
    preds = {k: tables[k] for k in ("probe", "mix", "dg")}

    t0, c0 = time.perf_counter(), time.process_time()
    ev = evaluate(tables["truth"], preds, "dg", n_resamples=N_RESAMPLES, seed=0, n_bins=20, meta=frames["meta"],
                  meta_source="meta")
    full, full_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    parts = scipy_subset(tables["truth"].probs, {k: v.probs for k, v in preds.items()})
    subset, subset_cpu = time.perf_counter() - t0, time.process_time() - c0
    js_ours = ev.methods["probe"].means["js"].mean
    js_scipy = float((jensenshannon(tables["probe"].probs, tables["truth"].probs, axis=1, base=2) ** 2).mean())
    print(f"[{n_users} users x 19 categories x 3 methods, {N_RESAMPLES} paired resamples]")
    print(f"  full evaluation (every table, CIs, tests, quartiles, strata): {full:8.2f} s wall, {full_cpu:6.2f} s CPU")
    print(f"  scipy subset (JS + NDCG@10 + scipy.stats.bootstrap CIs):      {subset:8.2f} s wall, {subset_cpu:6.2f} s CPU"
          f"\n    (wall: JS {parts['js']:.2f} s, NDCG@10 loop {parts['ndcg@10']:.2f} s, bootstrap {parts['bootstrap']:.2f} s)")
    print(f"  ratio full / subset: {full / subset:.2f} wall, {full_cpu / subset_cpu:.2f} CPU "
          f"(goal <= 1: {'met' if full <= subset else 'NOT met'})")
    print(f"  check: mean JS probe {js_ours:.6f} (ours) vs {js_scipy:.6f} (scipy)")
    return {"full_s": full, "subset_s": subset, "full_cpu_s": full_cpu, "subset_cpu_s": subset_cpu, "ratio": full / subset, **{f"subset_{k}_s": v for k, v in parts.items()}}


def _large_k_tables(n_users: int, n_cat: int, seed: int = 0) -> dict[str, DistributionTable]:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_cat + 1) ** 1.2
    popularity /= popularity.sum()
    counts = np.stack([rng.multinomial(30, rng.dirichlet(50 * popularity + 1e-3)) for _ in range(n_users)])
    truth = counts / counts.sum(axis=1, keepdims=True)
    probe = 0.6 * truth + 0.3 * popularity + 0.1 / n_cat
    probe *= rng.lognormal(0, 0.3, probe.shape)
    probe /= probe.sum(axis=1, keepdims=True)
    top = np.argpartition(-(truth + rng.gumbel(0, 0.01, truth.shape)), 5, axis=1)[:, :5]
    dg = np.zeros_like(truth)
    np.put_along_axis(dg, top, 0.2, axis=1)
    users = np.array([f"u{i}" for i in range(n_users)], dtype=object)
    cats = tuple(f"c{j:04d}" for j in range(n_cat))
    return {k: DistributionTable(users, cats, v, k) for k, v in (("truth", truth), ("probe", probe), ("dg", dg))}


def bench_large_k(n_users: int = 10_000, n_cat: int = 1_311) -> dict:
    tables = _large_k_tables(n_users, n_cat)
    t0, c0 = time.perf_counter(), time.process_time()
    evaluate(tables["truth"], {"probe": tables["probe"], "dg": tables["dg"]}, "dg", n_resamples=N_RESAMPLES, seed=0)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    tracemalloc.start()  # a second, traced run for the peak (tracing slows allocation, so it is not timed)
    evaluate(tables["truth"], {"probe": tables["probe"], "dg": tables["dg"]}, "dg", n_resamples=N_RESAMPLES, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    inputs = sum(t.probs.nbytes for t in tables.values())
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(f"[{n_users} users x {n_cat} categories x 2 methods, {N_RESAMPLES} paired resamples]")
    print(f"  full evaluation: {elapsed:.2f} s wall, {cpu:.2f} s CPU (goal < 60 s: {'met' if elapsed < 60 else 'NOT met'})")
    print(f"  peak memory of the evaluate call (tracemalloc, beyond the {inputs / 2**30:.2f} GiB of inputs): "
          f"{peak / 2**30:.2f} GiB; process max RSS {maxrss / 2**30:.2f} GiB (goal < 3 GB: "
          f"{'met' if maxrss < 3e9 else 'NOT met'})")
    return {"time_s": elapsed, "cpu_s": cpu, "tracemalloc_peak_bytes": peak, "maxrss_bytes": maxrss}


def main() -> dict:
    return {"cohort": bench_cohort(), "large_k": bench_large_k()}


if __name__ == "__main__":
    main()
