"""An unmerged LoRA adapter served by vLLM (``LoRARequest``) against the transformers backend with the same
adapter; suffix log-likelihoods with it are refused before the engine sees them, and ``--merge-adapter``
serves them instead (a second engine, on the merged weights)."""
from __future__ import annotations

import numpy as np
import pytest

from spectra_eval.validation import SpectraInputError
from spectra_probe.backends.base import ScoreRequest
from spectra_probe.run import run_probe

from .conftest import ATOL, ENGINE, config


@pytest.fixture(scope="module")
def adapter(vdata, tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(vdata["model"])
    lora = get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj", "v_proj", "o_proj"],
                                           init_lora_weights=False))
    path = tmp_path_factory.mktemp("adapter") / "adapter"
    lora.save_pretrained(path)
    return str(path)


def test_unmerged_adapter_equals_transformers(vdata, adapter, tmp_path):
    from spectra_probe.backends.hf import HFBackend

    vllm_cfg = config(vdata, tmp_path / "v.csv", "yesno", adapter=adapter)
    from spectra_probe.backends import backend_from_config

    with backend_from_config(vllm_cfg) as vllm:
        assert vllm.describe()["engine_args"]["enable_lora"] is True
        got = run_probe(vllm_cfg, backend=vllm)
        ref = run_probe(config(vdata, tmp_path / "h.csv", "yesno", backend="transformers", adapter=adapter),
                        backend=HFBackend(vdata["model"], adapter_dir=adapter, engine="naive"))
        plain = run_probe(config(vdata, tmp_path / "p.csv", "yesno", backend="transformers"),
                          backend=HFBackend(vdata["model"], engine="naive"))
        np.testing.assert_allclose(got.table.probs, ref.table.probs, atol=ATOL, rtol=0)
        np.testing.assert_allclose(got.scores.drop(columns="user_id").to_numpy(float),
                                   ref.scores.drop(columns="user_id").to_numpy(float), atol=ATOL, rtol=0)
        assert np.abs(got.table.probs - plain.table.probs).max() > 1e-3  # the adapter is applied
        assert got.manifest["backend"]["adapter_sha256"] == ref.manifest["adapter_sha256"]
        # suffix log-likelihoods need prompt log-probabilities, which crash vLLM's CPU LoRA path (--method name
        # is refused with the config; a request without next-token ids reaching the backend is refused here)
        with pytest.raises(SpectraInputError, match=r"16668.*--merge-adapter"):
            vllm.score([ScoreRequest("the user watched comedy. Would the user enjoy", [" drama"])])
        with pytest.raises(SpectraInputError, match=r"16668.*--merge-adapter"):
            config(vdata, tmp_path / "n.csv", "name", adapter=adapter)
        again = run_probe(vllm_cfg, backend=vllm)
        np.testing.assert_allclose(again.table.probs, got.table.probs, atol=ATOL, rtol=0)


def test_merged_adapter_serves_name(vdata, adapter, tmp_path):
    from spectra_probe.backends import backend_from_config
    from spectra_probe.backends.hf import HFBackend

    cfg = config(vdata, tmp_path / "v.csv", "name", adapter=adapter, merge_adapter=True)
    with backend_from_config(cfg) as vllm:
        assert vllm.describe()["adapter_merged"] is True and "enable_lora" not in vllm.describe()["engine_args"]
        got = run_probe(cfg, backend=vllm)
    ref = run_probe(config(vdata, tmp_path / "h.csv", "name", backend="transformers", adapter=adapter,
                           merge_adapter=True),
                    backend=HFBackend(vdata["model"], adapter_dir=adapter, merge_adapter=True, engine="naive"))
    np.testing.assert_allclose(got.table.probs, ref.table.probs, atol=ATOL, rtol=0)
    np.testing.assert_allclose(got.scores.drop(columns="user_id").to_numpy(float),
                               ref.scores.drop(columns="user_id").to_numpy(float), atol=ATOL, rtol=0)
    assert ENGINE["max_model_len"] == got.manifest["backend"]["engine_args"]["max_model_len"]
