"""CPU benchmark of the probe engines on a small random Qwen3 model (no download).

Measures, for K = 19 yes/no probe suffixes after ~300-token user contexts:
  * time per user of the naive engine (every prompt separately) and of the packed shared-prefix engine
    after warm-up (best of a few repeats), and their ratio (goal >= 5x),
  * the largest absolute difference between the two engines' scores (must be ~1e-6 in fp32),
and, for K = 1,311, the peak resident memory of the packed engine for two chunk sizes (a fresh process each),
showing memory set by the chunk, not by K.

Where vLLM is importable (``.venv-vllm``, vLLM's CPU build; ``--no-vllm`` to leave it out), the vLLM backend on
the same model and users next to the packed engine: users/s after warm-up (prefix cache emptied before each
repeat, so no repeat reads the previous one's blocks), engine start-up reported separately, and the largest
difference of the yes-minus-no scores from the packed engine's (float32).

Run: ``.venv/bin/python -m benchmarks.bench_probe`` (``--quick`` for a smoke run); with vLLM:
``.venv-vllm/bin/python -m benchmarks.bench_probe``.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import time

import numpy as np

log = logging.getLogger("bench_probe")

CATEGORIES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
              "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western", "IMAX"]


def build(hidden: int, layers: int, seed: int = 0):
    from spectra_probe.training.tiny import build_tiny_qwen3, sample_corpus, train_tokenizer

    tok = train_tokenizer(sample_corpus(2000, seed=seed), vocab_size=2000)
    model = build_tiny_qwen3(tok, hidden_size=hidden, layers=layers, heads=max(4, hidden // 64),
                             kv_heads=max(2, hidden // 128), seed=seed, initializer_range=0.02)
    return tok, model


def contexts(tok, n_users: int, n_tokens: int, seed: int = 0) -> list[str]:
    """User-history-like texts of about ``n_tokens`` tokens each."""
    from spectra_probe.training.tiny import sample_corpus

    out = []
    for u in range(n_users):
        text = "History: "
        lines = iter(sample_corpus(400, seed=seed + 1000 + u))
        while len(tok(text, add_special_tokens=False)["input_ids"]) < n_tokens:
            text += next(lines) + " "
        out.append(text.rstrip())
    return out


def yes_no_ids(tok, yes: tuple[str, ...] = (" yes",), no: tuple[str, ...] = (" no",)) -> tuple[int, ...]:
    """The token ids of the ``yes`` then the ``no`` verbalizers (``ScoreRequest.next_token_ids`` of a yes/no probe)."""
    from spectra_probe.scoring.base import resolve_yes_no

    return tuple(v.token_id for v in sum(resolve_yes_no(tok, yes, no), ()))


def requests(tok, ctxs, categories):
    from spectra_probe.backends.base import ScoreRequest

    yes_no = yes_no_ids(tok)
    suffixes = tuple(f"\nQuestion: would the user enjoy {c}? Answer:" for c in categories)
    return [ScoreRequest(c, suffixes, yes_no) for c in ctxs]


def seconds_per_user(backend, reqs, repeats: int = 3) -> tuple[float, list]:
    """Best of ``repeats`` timings of scoring all ``reqs``, divided by the number of users.

    The backend has been warmed up before, so one-off costs are excluded; the minimum over repeats damps the
    noise of a shared machine.
    """
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = backend.score(reqs)
        best = min(best, time.perf_counter() - start)
    return best / len(reqs), out


class RssPeak:
    """Peak resident-set size (MiB) above the level at entry, sampled every 2 ms from /proc/self/statm."""

    def __enter__(self):
        import os
        import threading

        self._page = os.sysconf("SC_PAGE_SIZE") / 2**20
        self.base = self._rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.increase = self.peak - self.base


def vllm_figures(tok, model, reqs, packed_out, args) -> dict:
    """The vLLM backend on ``model`` (saved to a temporary directory): engine start, users/s, difference."""
    import tempfile

    from spectra_probe.backends.vllm import VLLMBackend
    from spectra_probe.training.tiny import save_tiny

    with tempfile.TemporaryDirectory(prefix="bench-probe-vllm-") as tmp:
        path = save_tiny(model, tok, f"{tmp}/model")
        start = time.perf_counter()
        with VLLMBackend(path, dtype="float32", max_model_len=2 * args.context_tokens + 128,
                         llm_kwargs={"enforce_eager": True} if args.vllm_eager else None) as vl:
            started = time.perf_counter() - start
            vl.score(reqs[:1])  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                vl.llm.reset_prefix_cache()
                t0 = time.perf_counter()
                out = vl.score(reqs)
                best = min(best, time.perf_counter() - t0)
            info = vl.describe()

    def yes_minus_no(results):  # vLLM's log-probabilities and the packed engine's logits differ by a shift
        return np.concatenate([np.diff(r.next_logits, axis=1).ravel() for r in results])

    return {"engine_start_s": started, "s_per_user": best / len(reqs), "users_per_s": len(reqs) / best,
            "max_abs_diff_yes_minus_no_vs_packed": float(np.abs(yes_minus_no(out) - yes_minus_no(packed_out)).max()),
            "vllm": info["versions"]["vllm"], "device": info["device"], "enforce_eager": bool(args.vllm_eager)}


def max_abs_diff(a, b) -> float:
    return float(max(max(np.abs(x.next_logits - y.next_logits).max(), np.abs(x.suffix_logprob - y.suffix_logprob).max())
                     for x, y in zip(a, b)))


def _peak_memory_child(args, queue):
    """Fresh process: build the model, score one user with K suffixes, report the peak RSS increase (MiB)."""
    import torch

    from spectra_probe.backends.hf import HFBackend

    torch.set_num_threads(args["threads"])
    tok, model = build(args["hidden"], args["layers"])
    cats = [f"category {i} " + " ".join(CATEGORIES[j % 19] for j in range(i % 3 + 1)) for i in range(args["k"])]
    reqs = requests(tok, contexts(tok, 1, args["context_tokens"]), cats)
    backend = HFBackend.from_model(model, tok, engine="packed", chunk_size=args["chunk"])
    backend.score(requests(tok, contexts(tok, 1, 32, seed=7), cats[:4]))  # warm up allocator/kernels
    start = time.perf_counter()
    with RssPeak() as mem:
        res = backend.score(reqs)[0]
    seconds = time.perf_counter() - start
    queue.put({"chunk": args["chunk"], "k": args["k"], "peak_increase_mib": mem.increase,
               "seconds": seconds, "suffix_tokens": int(res.suffix_tokens.sum()),
               "finite": bool(np.isfinite(res.next_logits).all())})


def peak_memory(**args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_memory_child, args=(args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--context-tokens", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    parser.add_argument("--big-k", type=int, default=1311)
    parser.add_argument("--chunks", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--quick", action="store_true", help="small run (CI smoke)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--no-vllm", action="store_true", help="leave out the vLLM backend even where importable")
    parser.add_argument("--vllm-eager", action="store_true", help="vLLM without torch.compile (faster start)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.quick:
        args.users, args.repeats, args.context_tokens, args.big_k, args.chunks = 2, 1, 100, 200, [256]

    import torch

    from spectra_probe.backends.hf import HFBackend

    torch.set_num_threads(args.threads)
    tok, model = build(args.hidden, args.layers)
    ctxs = contexts(tok, args.users, args.context_tokens)
    reqs = requests(tok, ctxs[:args.users], CATEGORIES)
    naive = HFBackend.from_model(model, tok, engine="naive", naive_batch_size=19)
    packed = HFBackend.from_model(model, tok, engine="packed")  # default chunk: min(2048, max(512, hidden))
    packed.score(reqs[:1])
    naive.score(reqs[:1])
    t_naive, out_naive = seconds_per_user(naive, reqs, repeats=args.repeats)
    t_packed, out_packed = seconds_per_user(packed, reqs, repeats=args.repeats)
    fig = {
        "model": {"hidden": args.hidden, "layers": args.layers, "vocab": len(tok),
                  "params": sum(p.numel() for p in model.parameters())},
        "k": len(CATEGORIES), "context_tokens": args.context_tokens, "users": args.users, "threads": args.threads,
        "naive_s_per_user": t_naive, "packed_s_per_user": t_packed, "speedup": t_naive / t_packed,
        "max_abs_diff": max_abs_diff(out_naive, out_packed),
        "fallbacks": int(sum(r.fallback.sum() for r in out_packed)),
    }
    print(f"K={fig['k']}, ~{args.context_tokens}-token contexts, {args.users} users (best of {args.repeats}), "
          f"model {fig['model']['params'] / 1e6:.1f}M params, {args.threads} threads")
    print(f"  naive : {t_naive * 1e3:8.1f} ms/user")
    fig["packed_chunk_size"] = packed.chunk_size
    print(f"  packed: {t_packed * 1e3:8.1f} ms/user (chunk {packed.chunk_size})   speed-up {fig['speedup']:.1f}x (goal >= 5x)")
    print(f"  max |packed - naive| over logits and suffix log-likelihoods: {fig['max_abs_diff']:.2e}")
    import importlib.util

    if not args.no_vllm and importlib.util.find_spec("vllm") is not None:
        fig["vllm"] = v = vllm_figures(tok, model, reqs, out_packed, args)
        print(f"  vllm  : {v['s_per_user'] * 1e3:8.1f} ms/user = {v['users_per_s']:.2f} users/s (packed: "
              f"{1 / t_packed:.2f} users/s); engine start {v['engine_start_s']:.1f} s (not included); "
              f"max |yes-no diff vs packed| {v['max_abs_diff_yes_minus_no_vs_packed']:.2e} "
              f"(vllm {v['vllm']}, {v['device']})")
    fig["big_k"] = []
    for chunk in args.chunks:
        r = peak_memory(hidden=args.hidden, layers=args.layers, k=args.big_k, chunk=chunk,
                        context_tokens=args.context_tokens, threads=args.threads)
        fig["big_k"].append(r)
        print(f"K={args.big_k} ({r['suffix_tokens']} suffix tokens), chunk {chunk}: peak RSS +{r['peak_increase_mib']:.0f} MiB, "
              f"{r['seconds']:.2f} s/user")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(fig, fh, indent=2)
    return fig


if __name__ == "__main__":
    main()
