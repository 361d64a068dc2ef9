"""GPU throughput of the packed shared-prefix engine on a random-weight model with Qwen3-8B's shape.

Standalone: ``python benchmarks/gpu_probe.py [--users 256] [--peak-tflops 989]`` on one CUDA GPU (no download:
the weights are random, the tokenizer is trained locally; speed does not depend on the weights).

Reports, for K = 19 and K = 1,311 probe suffixes after 300-token prefixes:
  * users per second, peak GPU memory,
  * the FLOPs the probe needs per user (dense matmuls, 2 x parameters per token, lm-head only where scored,
    plus attention scores over the keys each token really attends to), and the fraction of the GPU's dense
    bf16 peak that the measured throughput achieves (``achieved FLOP/s / peak``),
  * the users/s a naive engine would be capped at by the FLOP limit (K full prompts per user),
  * a correctness check: packed vs naive engine on two users (bf16, max abs difference of the yes/no logits).
"""
from __future__ import annotations

import argparse
import json
import time

QWEN3_8B = dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by device-name fragment.
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def detect_peak(name: str) -> float | None:
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


# Same code path at toy size, to smoke-test the script on a CPU (``--smoke``).
SMOKE = dict(QWEN3_8B, hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=32, vocab_size=8192)


def build_model(cfg: dict, dtype, device: str):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**cfg)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen3ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def flops_per_user(cfg: dict, prefix: int, suffix_lengths, shared: bool = True) -> float:
    """Forward FLOPs to score one user.

    Per token: 2 x (non-embedding matmul parameters); per scored position: 2 x hidden x vocab (lm head);
    attention: 4 x n_heads x head_dim x (keys attended) per token per layer (QK^T and AV).
    ``shared``: prefix once, each suffix token attends prefix + its own suffix so far.
    Otherwise (naive): every prompt re-reads the prefix.
    """
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    qd = cfg["num_attention_heads"] * cfg["head_dim"]
    kvd = cfg["num_key_value_heads"] * cfg["head_dim"]
    per_token = 2 * layers * (h * qd + 2 * h * kvd + qd * h + 3 * h * inter)
    head = 2 * h * cfg["vocab_size"]
    attn = 4 * layers * qd  # x keys attended

    def causal_keys(start, n):  # sum over n tokens at positions start..start+n-1 of (position + 1)
        return n * start + n * (n + 1) / 2

    total = 0.0
    if shared:
        total += prefix * per_token + attn * causal_keys(0, prefix) + head  # prefix once, logits at its end
        for s in suffix_lengths:
            total += s * (per_token + head) + attn * causal_keys(prefix, s)
    else:
        for s in suffix_lengths:
            n = prefix + s
            total += n * per_token + attn * causal_keys(0, n) + (s + 1) * head
    return total


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=256, help="users timed at K=19")
    parser.add_argument("--users-big", type=int, default=8, help="users timed at K=1,311")
    parser.add_argument("--prefix-tokens", type=int, default=300)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--batch-rows", type=int, default=8)
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak; detected by name if omitted")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--skip-check", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="toy model on CPU, few users: checks the script runs")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from spectra_probe.backends.base import ScoreRequest
    from spectra_probe.backends.hf import HFBackend
    from spectra_probe.scoring.base import resolve_yes_no
    from spectra_probe.tiny import sample_corpus, train_tokenizer

    cfg, device = QWEN3_8B, "cuda"
    if args.smoke:
        cfg, device = SMOKE, "cpu"
        args.users, args.users_big, args.prefix_tokens = 2, 1, 64
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_probe: no CUDA device (use --smoke for a CPU check of the script)")
    cuda = device == "cuda"
    name = torch.cuda.get_device_name(0) if cuda else "cpu (smoke run)"
    peak = (args.peak_tflops or detect_peak(name) or 989.0) * 1e12
    tok = train_tokenizer(sample_corpus(4000), vocab_size=4000)
    model = build_model(cfg, torch.bfloat16, device)
    backend = HFBackend.from_model(model, tok, device=device, engine="packed", chunk_size=args.chunk_size,
                                   batch_rows=args.batch_rows)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def prefix(u: int) -> str:
        words = " ".join(sample_corpus(200, seed=u)).split()
        ids = tok(" ".join(words), add_special_tokens=False)["input_ids"][: args.prefix_tokens]
        return tok.decode(ids)

    yes_no = tuple(v.token_id for v in sum(resolve_yes_no(tok, (" yes",), (" no",)), ()))

    def requests(n_users: int, k: int, offset: int = 0):
        cats = [f"category {i} " + ("drama comedy"[: 5 + i % 7]) for i in range(k)]
        suffixes = tuple(f"\nQuestion: would the user enjoy {c}? Answer:" for c in cats)
        return [ScoreRequest(prefix(offset + u), suffixes, yes_no) for u in range(n_users)]

    report = {"device": name, "peak_tflops": peak / 1e12,
              "model": "random Qwen3-8B shape, bf16" if not args.smoke else "toy smoke model, bf16",
              "prefix_tokens": args.prefix_tokens, "chunk_size": args.chunk_size, "batch_rows": args.batch_rows,
              "runs": []}
    for k, n_users in ((19, args.users), (1311, args.users_big)):
        reqs = requests(n_users, k)
        backend.score(requests(min(n_users, 4), k, offset=10_000))  # warm-up (kernels, allocator)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        out = backend.score(reqs)
        sync()
        seconds = time.perf_counter() - start
        p_len = len(tok(reqs[0].prefix, add_special_tokens=False)["input_ids"])
        suffix_lengths = out[0].suffix_tokens.tolist()
        need = flops_per_user(cfg, p_len, suffix_lengths, shared=True)
        naive_need = flops_per_user(cfg, p_len, suffix_lengths, shared=False)
        users_per_s = n_users / seconds
        run = {"k": k, "users": n_users, "seconds": seconds, "users_per_s": users_per_s,
               "prefix_tokens": p_len, "mean_suffix_tokens": float(np.mean(suffix_lengths)),
               "tflop_per_user": need / 1e12, "fraction_of_flop_limit": users_per_s * need / peak,
               "users_per_s_at_flop_limit": peak / need, "naive_users_per_s_at_flop_limit": peak / naive_need,
               "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")}
        report["runs"].append(run)
        print(f"K={k:5d}: {users_per_s:8.2f} users/s ({n_users} users in {seconds:.1f} s), "
              f"{need / 1e12:.2f} TFLOP/user, {100 * run['fraction_of_flop_limit']:.1f}% of the FLOP limit "
              f"(limit {run['users_per_s_at_flop_limit']:.1f} users/s; naive engine limit "
              f"{run['naive_users_per_s_at_flop_limit']:.2f}), peak memory {run['peak_memory_gib']:.1f} GiB")
    if not args.skip_check:
        reqs = requests(2, 19, offset=20_000)
        packed = backend.score(reqs)
        naive = HFBackend.from_model(model, tok, device=device, engine="naive", naive_batch_size=19).score(reqs)
        diff = max(float(np.abs(a.next_logits - b.next_logits).max()) for a, b in zip(packed, naive))
        yes_no_diff = max(float(np.abs(np.diff(a.next_logits, axis=1) - np.diff(b.next_logits, axis=1)).max())
                          for a, b in zip(packed, naive))
        report["check"] = {"max_abs_logit_diff_bf16": diff, "max_abs_yes_minus_no_diff_bf16": yes_no_diff}
        print(f"packed vs naive (bf16, 2 users, K=19): max |logit diff| {diff:.3g}, "
              f"max |(yes-no) diff| {yes_no_diff:.3g}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
