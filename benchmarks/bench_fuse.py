"""Cost of ``spectra fuse`` at scale, against the obvious per-user pandas groupby, measured in the same run.

1. 100,000 users x 1,000 candidates (1 held-out + 999 negatives) x 6 lambdas, K = 19 categories, 20,000 items
   with 1-3 categories each: :func:`spectra_eval.analyses.fusion.fuse` from typed inputs (the candidates' checks
   included: finite scores, 0/1 labels, duplicate candidates, a positive per user) with 1,000 paired user
   resamples for all users and each slice, Wilcoxon and Holm. Time, CPU time and the peak RSS while fusing
   (the inputs it holds included; reset before the call through /proc/self/clear_refs), plus the process's
   peak including the synthetic input building. Goals: < 60 s and < 4 GB on 2 cores.
2. The straightforward alternative on a subset of the same data (``SUBSET`` users): the affinity by a pandas
   merge of the long item-category table with the long distribution table, then ``groupby('user_id').apply``
   computing z-scores, fused scores and the positive's rank per lambda. Ours on the same subset (the per-user
   metrics only, no bootstrap) gives the ratio; its per-user rate extrapolates to the full size.

Run ``python -m benchmarks fuse``.
"""
from __future__ import annotations

import resource
import time

import numpy as np
import pandas as pd

from spectra_eval.analyses import fusion as F
from spectra_eval.io import DistributionTable

N_USERS = 100_000
N_CANDIDATES = 1_000
N_ITEMS = 20_000
N_CATEGORIES = 19
LAMBDAS = F.LAMBDAS
SUBSET = 1_000
K = 10


def make_inputs(n_users: int = N_USERS, seed: int = 0):
    """Typed inputs: every user's candidates are distinct items (a fixed random offset pattern, shifted per user)."""
    rng = np.random.default_rng(seed)
    users = np.array([f"u{i}" for i in range(n_users)], dtype=object)
    item_ids = np.array([f"i{j}" for j in range(N_ITEMS)], dtype=object)
    pattern = rng.choice(N_ITEMS, N_CANDIDATES, replace=False).astype(np.int32)
    start = rng.integers(0, N_ITEMS, n_users).astype(np.int32)
    items = ((start[:, None] + pattern[None, :]) % N_ITEMS).ravel()
    scores = rng.normal(size=n_users * N_CANDIDATES)
    labels = np.zeros(n_users * N_CANDIDATES, dtype=bool)
    labels[::N_CANDIDATES] = True
    user_codes = np.repeat(np.arange(n_users, dtype=np.int32), N_CANDIDATES)
    cand = F.Candidates.from_arrays(user_codes, users, items, item_ids, scores, labels, "synthetic")
    categories = tuple(f"c{j:02d}" for j in range(N_CATEGORIES))
    theta = rng.dirichlet(np.full(N_CATEGORIES, 0.5), n_users)
    spectra = DistributionTable(users, categories, theta, "synthetic-spectra")
    n_cat = rng.integers(1, 4, N_ITEMS)
    long = pd.DataFrame({"item_id": np.repeat(item_ids, n_cat),
                         "category": [categories[c] for k in n_cat for c in rng.choice(N_CATEGORIES, k, replace=False)]})
    popularity = pd.Series(rng.zipf(1.5, N_ITEMS).astype(float), index=pd.Index(item_ids, name="item_id"))
    return cand, spectra, F.ItemCategories.from_frame(long, categories, "synthetic-items"), popularity, long


def pandas_groupby(frame: pd.DataFrame, spectra: DistributionTable, long: pd.DataFrame, lambdas, k: int = K) -> pd.DataFrame:
    """NDCG@k, Recall@k, MRR per user and lambda, the way one would write it with pandas (one positive per user)."""
    theta = spectra.to_frame().melt(id_vars="user_id", var_name="category", value_name="p")
    pairs = frame[["user_id", "item_id"]].merge(long, on="item_id").merge(theta, on=["user_id", "category"])
    aff = pairs.groupby(["user_id", "item_id"], as_index=False)["p"].mean().rename(columns={"p": "affinity"})
    frame = frame.merge(aff, on=["user_id", "item_id"])

    def z(x):
        sd = x.std(ddof=0)
        return (x - x.mean()) / sd if sd > 1e-12 * x.abs().max() else x * 0.0

    def per_user(g):
        zs, za = z(g["score"]), z(g["affinity"])
        out = {}
        for lam in lambdas:
            f = zs + float(lam) * za
            pos = f[g["label"] == 1].iloc[0]
            rank = int((f >= pos).sum())
            out[f"ndcg|{lam}"] = 1 / np.log2(rank + 1) if rank <= k else 0.0
            out[f"recall|{lam}"] = float(rank <= k)
            out[f"mrr|{lam}"] = 1 / rank
        return pd.Series(out)

    return frame.groupby("user_id", sort=False).apply(per_user)


def _status_gib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: now; VmHWM: peak since start or the last reset) in GiB."""
    with open("/proc/self/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))
    return kib / 2**20


def _reset_peak() -> bool:
    """Reset the process's peak RSS (Linux: writing 5 to /proc/self/clear_refs); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def main() -> dict:
    print(f"[{N_USERS:,} users x {N_CANDIDATES:,} candidates x {len(LAMBDAS)} lambdas, K = {N_CATEGORIES}, "
          f"{N_ITEMS:,} items]", flush=True)
    t0 = time.perf_counter()
    cand, spectra, items, popularity, long = make_inputs()
    print(f"  inputs built and checked in {time.perf_counter() - t0:.1f} s; RSS {_status_gib('VmRSS'):.2f} GiB, "
          f"peak so far {_status_gib('VmHWM'):.2f} GiB", flush=True)
    building_peak = _status_gib("VmHWM")
    reset = _reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    result = F.fuse(cand, spectra, items, popularity, lambdas=LAMBDAS, k=K, progress=True)
    full, full_cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _status_gib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB
    maxrss = max(peak, building_peak)
    print(f"  fuse (metrics, 1,000 paired resamples x 4 populations, Wilcoxon, Holm): {full:.1f} s wall, "
          f"{full_cpu:.1f} s CPU (goal < 60 s: {'met' if full < 60 else 'NOT met'})")
    print(f"  peak RSS during fuse {peak:.2f} GiB, the inputs it holds included (goal < 4 GB: "
          f"{'met' if peak * 2**30 < 4e9 else 'NOT met'}); process peak, input building included, {maxrss:.2f} GiB")

    rows = SUBSET * N_CANDIDATES
    sub = F.Candidates(cand.users[:SUBSET], cand.counts[:SUBSET], cand.item_ids, cand.items[:rows],
                       cand.scores[:rows], cand.labels[:rows], "subset")
    theta = spectra.probs[:SUBSET]
    item_map = np.arange(len(cand.item_ids))  # the synthetic items file lists items in the candidates' order
    t0 = time.perf_counter()
    ours = F.per_user_metrics(sub, theta, items, item_map, [float(x) for x in LAMBDAS], K)
    ours_s = time.perf_counter() - t0
    frame = pd.DataFrame({"user_id": np.repeat(sub.users, N_CANDIDATES), "item_id": cand.item_ids[sub.items],
                          "score": sub.scores, "label": sub.labels.astype(int)})
    sub_spectra = DistributionTable(sub.users, spectra.categories, theta, "subset")
    t0 = time.perf_counter()
    naive = pandas_groupby(frame, sub_spectra, long, LAMBDAS)
    naive_s = time.perf_counter() - t0
    worst = max(float(np.abs(naive[f"ndcg|{lam}"].to_numpy() - ours[i, 0]).max()) for i, lam in enumerate(LAMBDAS))
    print(f"[subset: {SUBSET:,} users x {N_CANDIDATES:,} candidates x {len(LAMBDAS)} lambdas, per-user metrics only]")
    print(f"  vectorised kernel {ours_s:.2f} s; pandas merge + groupby.apply {naive_s:.2f} s; ratio "
          f"{naive_s / ours_s:.0f}x (max |NDCG difference| {worst:.1e})")
    print(f"  pandas extrapolated to {N_USERS:,} users: {naive_s * N_USERS / SUBSET / 60:.0f} min for the metrics "
          f"alone, vs {full:.0f} s for the whole fuse")
    mid = result.comparisons["0.5"]["mid"].effect
    print(f"  check: lambda 0.5 vs 0 on mid items, delta {mid.estimate:+.4f} (n = {mid.n:,})")
    return {"full_s": full, "full_cpu_s": full_cpu, "fuse_peak_gib": peak, "maxrss_gib": maxrss, "subset_ours_s": ours_s,
            "subset_pandas_s": naive_s, "ratio": naive_s / ours_s}


if __name__ == "__main__":
    main()
