"""Alignment training: SFT example construction, no leakage, and a tiny CPT + LoRA SFT run that saves,
reloads with from_pretrained / PeftModel.from_pretrained and learns (loss measured on the reloaded model)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from spectra_eval.cli import main as cli_main  # noqa: E402
from spectra_eval.data.datasets import Interactions  # noqa: E402
from spectra_eval.io import DistributionTable, read_distribution_table  # noqa: E402
from spectra_eval.data.splits import chronological_split, truth_table  # noqa: E402
from spectra_probe.scoring.choice import choice_labels  # noqa: E402
from spectra_probe.templates import PromptBuilder, PromptTemplates  # noqa: E402
from spectra_probe.training.examples import (IGNORE_INDEX, NO_ANSWER, YES_ANSWER, SFTExample,  # noqa: E402
                                             cpt_corpus_for, encode_distributions, encode_examples, pack_corpus,
                                             prepare, sft_examples, sft_examples_for, sft_split)
from spectra_probe.training.loop import (build_from_scratch, distribution_loss, distribution_scores,  # noqa: E402
                                         run_cpt, run_sft)
from spectra_probe.training.presets import TrainConfig  # noqa: E402
from spectra_eval.validation import SpectraInputError  # noqa: E402

CATS = ("Action", "Comedy", "Drama", "Horror")


def synthetic(n_users=24, n_items=40, per_user=20, seed=0) -> Interactions:
    """Users with a favourite genre (70% of their items), so the future mix is learnable from the past."""
    rng = np.random.default_rng(seed)
    item_cat = [CATS[i % len(CATS)] for i in range(n_items)]
    items = pd.DataFrame({"item_id": [f"m{i}" for i in range(n_items)],
                          "title": [f"Movie {i}" for i in range(n_items)],
                          "year": pd.array([1990 + i % 10 for i in range(n_items)], dtype="Int64"),
                          "categories": [(c,) for c in item_cat]})
    rows = []
    for u in range(n_users):
        fav = u % len(CATS)
        for t in range(per_user):
            pool = [i for i in range(n_items) if item_cat[i] == CATS[fav]] if rng.random() < 0.7 else range(n_items)
            i = int(rng.choice(list(pool)))
            rows.append((str(u), f"m{i}", float(t * 3600), (item_cat[i],)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "categories"])
    return Interactions(frame=frame, items=items, categories=CATS, name="synthetic")


def test_sft_examples_tasks_and_sampling():
    theta = DistributionTable(users=np.array(["a", "b"], dtype=object), categories=CATS,
                              probs=np.array([[0.7, 0.3, 0, 0], [0, 0, 0, 1.0]]))
    contexts = pd.DataFrame({"user_id": ["a", "b"], "context": ["X (1999) [Action]", "Y [Horror]"]})
    t = PromptTemplates()
    b = PromptBuilder(t)
    ex = sft_examples(contexts, theta, samples={"name": 2000, "yesno": 4, "choice": 3, "dg": 1}, seed=1)
    a_names = [e.target for e in ex if e.user_id == "a" and e.task == "name"]
    assert set(a_names) == {b.name_suffix("Action"), b.name_suffix("Comedy")}
    share = a_names.count(b.name_suffix("Action")) / len(a_names)
    assert abs(share - 0.7) < 4 * np.sqrt(0.7 * 0.3 / 2000)  # binomial 4-sigma band
    assert all(e.prompt == b.name_prefix("X (1999) [Action]") for e in ex if e.user_id == "a" and e.task == "name")
    yes = [e for e in ex if e.user_id == "b" and e.task == "yesno"]
    assert [e.target for e in yes] == [" Yes", " Yes", " No", " No"]
    assert all(e.prompt.endswith(b.probe_suffix("Horror")) for e in yes[:2])  # positives drawn from theta
    labels = choice_labels(4)
    choice = [e for e in ex if e.user_id == "b" and e.task == "choice"]
    assert all(e.target == b.choice_answer(labels[3]) for e in choice)
    assert choice[0].prompt == b.probe_prefix("Y [Horror]") + b.choice_question(labels, CATS)
    dg = {e.user_id: e for e in ex if e.task == "dg"}
    assert dg["a"].target == " Action, Comedy\n" and dg["b"].target == " Horror\n"
    assert dg["a"].prompt == b.dg_prompt("X (1999) [Action]", 5, CATS)


def test_yesno_dist_examples_carry_the_whole_target():
    theta = DistributionTable(users=np.array(["a", "b"], dtype=object), categories=CATS,
                              probs=np.array([[0.7, 0.3, 0, 0], [0, 0, 0, 1.0]]))
    contexts = pd.DataFrame({"user_id": ["a", "b"], "context": ["X (1999) [Action]", "Y [Horror]"]})
    b = PromptBuilder(PromptTemplates())
    ex = sft_examples(contexts, theta, samples={"yesno_dist": 2, "name": 1}, seed=1)
    dist = [e for e in ex if e.task == "yesno_dist"]
    assert [e.user_id for e in dist] == ["a", "a", "b", "b"] and len(ex) == 6
    assert dist[0].prefix == b.probe_prefix("X (1999) [Action]")
    assert dist[0].suffixes == tuple(b.probe_suffix(c) for c in CATS) and dist[0].target == (0.7, 0.3, 0.0, 0.0)


def test_yesno_dist_training_reads_exactly_what_the_probe_reads(tiny_model_dir):
    """The training scores (packed context + K tails, with gradients) equal the yes/no probe's scores of the
    same prompts through the backend, and the loss is the cross-entropy of the probe's softmax."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spectra_probe.backends.hf import HFBackend
    from spectra_probe.scoring import ScorerOptions
    from spectra_probe.scoring.yesno import YesNoScorer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32").eval()
    cats = ("Comedy", "Drama", "Film-Noir", "Children's", "Sci-Fi")
    contexts = ["the user watched comedy drama and then liked romance", "liked action movie film thriller"]
    theta = DistributionTable(users=np.array(["a", "b"], dtype=object), categories=cats,
                              probs=np.array([[0.5, 0.5, 0, 0, 0], [0.1, 0.2, 0.3, 0.2, 0.2]]))
    frame = pd.DataFrame({"user_id": ["a", "b"], "context": contexts})
    items = encode_distributions(sft_examples(frame, theta, samples={"yesno_dist": 1}), tok)
    answers = ([tok.convert_tokens_to_ids(tok.tokenize(YES_ANSWER))[0]],
               [tok.convert_tokens_to_ids(tok.tokenize(NO_ANSWER))[0]])
    with torch.no_grad():
        scores = distribution_scores(model, items, answers, pad_id=tok.pad_token_id).numpy()
        loss = float(distribution_loss(model, items, answers, pad_id=tok.pad_token_id))
    options = ScorerOptions(verbalizers_yes=(YES_ANSWER,), verbalizers_no=(NO_ANSWER,))
    probe = YesNoScorer(cats, PromptBuilder(PromptTemplates(), tok), options)
    expected = probe.score_batch(HFBackend(tiny_model_dir), contexts).scores
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    assert np.isclose(loss, -(theta.probs * log_probs).sum(axis=1).mean(), atol=1e-5)


def test_yesno_dist_training_reads_the_soft_capped_logits_the_probe_reads(tiny_model_dir):
    """A model that soft-caps its logits (Gemma 2's ``final_logit_softcapping``, applied in its own forward):
    training's scores are the capped ones both engines of the backend read."""
    from transformers import AutoTokenizer

    from spectra_probe.backends.hf import HFBackend
    from spectra_probe.scoring import ScorerOptions
    from spectra_probe.scoring.yesno import YesNoScorer
    from tests.probe.families import build_family

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = build_family("gemma2", tok, final_logit_softcapping=None)
    cats = ("Comedy", "Drama", "Sci-Fi")
    contexts = ["the user watched comedy drama and then liked romance"]
    theta = DistributionTable(users=np.array(["a"], dtype=object), categories=cats,
                              probs=np.array([[0.5, 0.3, 0.2]]))
    frame = pd.DataFrame({"user_id": ["a"], "context": contexts})
    items = encode_distributions(sft_examples(frame, theta, samples={"yesno_dist": 1}), tok)
    answers = ([tok.convert_tokens_to_ids(tok.tokenize(YES_ANSWER))[0]],
               [tok.convert_tokens_to_ids(tok.tokenize(NO_ANSWER))[0]])
    with torch.no_grad():
        uncapped = distribution_scores(model, items, answers, pad_id=tok.pad_token_id).numpy()
        model.config.final_logit_softcapping = 0.05
        scores = distribution_scores(model, items, answers, pad_id=tok.pad_token_id).numpy()
    options = ScorerOptions(verbalizers_yes=(YES_ANSWER,), verbalizers_no=(NO_ANSWER,))
    probe = YesNoScorer(cats, PromptBuilder(PromptTemplates(), tok), options)
    for engine in ("packed", "naive"):
        backend = HFBackend.from_model(model, tok, engine=engine)
        assert backend.engine == engine
        np.testing.assert_allclose(scores, probe.score_batch(backend, contexts).scores, atol=1e-4)
    assert np.abs(scores - uncapped).max() > 0.1  # the cap is in force, so the comparison above has teeth


def test_encode_masks_prompt_and_cuts_from_the_start():
    from spectra_probe.training.tiny import train_tokenizer

    tok = train_tokenizer(["hello world answer yes no"] * 5, vocab_size=280)
    ex = [SFTExample("u", "name", "hello world hello world", " yes\n")]
    (ids, labels), = encode_examples(ex, tok, max_length=100)
    n_target = len(tok(" yes\n", add_special_tokens=False)["input_ids"])
    assert labels[:-n_target] == [IGNORE_INDEX] * (len(ids) - n_target) and labels[-n_target:] == ids[-n_target:]
    (ids2, labels2), = encode_examples(ex, tok, max_length=n_target + 2)
    assert len(ids2) == n_target + 2 and ids2 == ids[-(n_target + 2):]
    blocks = pack_corpus(["hello world"] * 50, tok, 16)
    assert all(len(b) == 16 for b in blocks[:-1]) and tok.eos_token_id in blocks[0]


def test_sft_split_never_sees_the_evaluation_future():
    data = synthetic()
    split = chronological_split(data)
    nested = sft_split(split)
    eval_future = set(zip(split.future["user_id"], split.future["timestamp"]))
    used = set(zip(nested.history["user_id"], nested.history["timestamp"])) | set(
        zip(nested.future["user_id"], nested.future["timestamp"]))
    assert not used & eval_future
    assert len(nested.history) + len(nested.future) == len(split.history)
    prepared = prepare(data)
    ex = sft_examples_for(prepared, None, budget=None, samples={"name": 1}, windows=(0.5, 0.65))
    future_titles = set(data.items.set_index("item_id").loc[split.future["item_id"], "title"])
    history_titles = set(data.items.set_index("item_id").loc[split.history["item_id"], "title"])
    only_future = future_titles - history_titles  # titles that would only reach a prompt through leakage
    assert not any(f"{t} (" in e.prompt for e in ex for t in only_future)


def test_sft_windows_cut_each_history_again():
    """Each window adds one example per user: context = the history before the cut, target = the mix after it
    (still inside the history window); without windows the examples are the nested split's alone."""
    prepared = prepare(synthetic())
    one = sft_examples_for(prepared, None, budget=None, samples={"yesno_dist": 1})
    three = sft_examples_for(prepared, None, budget=None, samples={"yesno_dist": 1}, windows=(0.5, 0.65))
    assert three[:len(one)] == one and len(three) == 3 * len(one)
    early = sft_split(prepared.split, history_fraction=0.5)
    theta = truth_table(early)
    by_user = {e.user_id: e for e in three[len(one):2 * len(one)]}
    titles = prepared.data.items.set_index("item_id")["title"]
    for u, p in zip(theta.users, theta.probs):
        assert np.allclose(by_user[u].target, p)
        context = early.history[early.history["user_id"] == u]["item_id"]
        assert by_user[u].prefix.count("\n") == len(context) + 1  # header line + one line per item, no budget
        assert f"{titles[context.iloc[-1]]} (" in by_user[u].prefix


def _target_loss(model, tokenizer, examples) -> float:
    seqs = encode_examples(examples, tokenizer, 512)
    total, n = 0.0, 0
    with torch.no_grad():
        for ids, labels in seqs:
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            k = sum(1 for y in labels[1:] if y != IGNORE_INDEX)
            total, n = total + float(out.loss) * k, n + k
    return total / n


def test_tiny_cpt_then_sft_saves_reloads_and_learns(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    data = synthetic()
    prepared = prepare(data)
    corpus = cpt_corpus_for(prepared)
    base = build_from_scratch(corpus, tmp_path / "base", vocab_size=300, hidden_size=32, layers=1, heads=2,
                              kv_heads=1, seed=0)
    cpt_cfg = TrainConfig(learning_rate=5e-3, max_steps=30, batch_size=8, grad_accum=1, max_length=64,
                          warmup_ratio=0.1, cpt_mode="full", progress=False)
    cpt = run_cpt(base, corpus, tmp_path / "cpt", cpt_cfg)
    assert cpt.steps == 30 and cpt.last_loss < cpt.first_loss - 0.5
    saved = json.loads((tmp_path / "cpt" / "train_result.json").read_text())
    assert saved["steps"] == 30 and saved["config"]["learning_rate"] == 5e-3
    tok = AutoTokenizer.from_pretrained(tmp_path / "cpt")
    examples = sft_examples_for(prepared, tok, budget=48, samples={"name": 4, "yesno": 2}, seed=0)
    sft_cfg = dataclasses.replace(cpt_cfg, max_steps=40, max_length=160, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    sft = run_sft(tmp_path / "cpt", examples, tmp_path / "sft", sft_cfg)
    assert sft.last_loss < sft.first_loss
    assert (tmp_path / "sft" / "adapter_config.json").is_file()
    assert (tmp_path / "sft" / "adapter_model.safetensors").is_file()
    config = json.loads((tmp_path / "sft" / "adapter_config.json").read_text())
    assert config["r"] == 4 and set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                                   "gate_proj", "up_proj", "down_proj"}
    # reload exactly as a user would, and measure the target loss independently of the training loop
    cpt_model = AutoModelForCausalLM.from_pretrained(tmp_path / "cpt").eval()
    before = _target_loss(cpt_model, tok, examples[:60])
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "cpt"), tmp_path / "sft").eval()
    after = _target_loss(tuned, tok, examples[:60])
    assert after < before - 0.3, (before, after)
    # CPT in 'lora' mode (the 8B path): the adapter is merged, the saved model is a plain one with new weights
    lora_cpt = run_cpt(tmp_path / "cpt", corpus, tmp_path / "cpt-lora",
                       dataclasses.replace(cpt_cfg, max_steps=3, cpt_mode="lora", lora_r=4, lora_alpha=8))
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "cpt-lora")
    names = dict(merged.named_parameters())
    assert lora_cpt.steps == 3 and not any("lora" in n for n in names)
    changed = [n for n, p in cpt_model.named_parameters() if not torch.equal(p, names[n])]
    assert changed and all(n.endswith("proj.weight") for n in changed)


def test_cli_train_from_scratch_and_export(tmp_path, capsys):
    data = synthetic(n_users=12, per_user=10)
    table = data.frame.assign(categories=data.frame["categories"].map("|".join))
    table = table.merge(data.items[["item_id", "title", "year"]], on="item_id")
    table.to_csv(tmp_path / "inter.csv", index=False)
    small = ["--vocab-size", "300", "--hidden-size", "32", "--layers", "1", "--heads", "2", "--kv-heads", "1",
             "--batch-size", "4", "--grad-accum", "1", "--max-length", "96", "--lr", "3e-3"]
    rc = cli_main(["-q", "train", "--stage", "cpt", "--from-scratch", "--dataset", f"table:{tmp_path / 'inter.csv'}",
                   "--out", str(tmp_path / "cpt"), "--max-steps", "3", *small])
    assert rc == 0 and (tmp_path / "cpt" / "config.json").is_file()
    rc = cli_main(["-q", "train", "--stage", "sft", "--model", str(tmp_path / "cpt"), "--dataset",
                   f"table:{tmp_path / 'inter.csv'}", "--out", str(tmp_path / "sft"), "--max-steps", "2",
                   "--samples", "name=2", "--samples", "choice=1", "--lora-r", "2", "--lora-alpha", "4",
                   "--context-tokens", "40", "--export", str(tmp_path / "data"), *small])
    assert rc == 0 and (tmp_path / "sft" / "adapter_model.safetensors").is_file()
    assert "spectra train sft: 2 steps" in capsys.readouterr().out
    truth = read_distribution_table(tmp_path / "data" / "truth.csv")
    assert truth.categories == CATS and truth.n_users == 12
    for name in ("history-uhf", "history-laplace", "history-markov"):
        assert read_distribution_table(tmp_path / "data" / f"{name}.csv").n_users == 12
    contexts = pd.read_csv(tmp_path / "data" / "contexts.csv", dtype=str)
    assert list(contexts.columns) == ["user_id", "context"] and contexts["context"].str.len().min() > 0
    assert (tmp_path / "data" / "categories.txt").read_text().split("\n")[:4] == list(CATS)
    meta = pd.read_csv(tmp_path / "data" / "meta.csv", dtype={"user_id": str})
    assert {"user_id", "activity", "n_history"} <= set(meta.columns)
    # bad input: one line on stderr, exit 2, nothing written
    rc = cli_main(["train", "--stage", "sft", "--from-scratch", "--dataset", "ml-100k", "--out", str(tmp_path / "x")])
    assert rc == 2 and "only valid with --stage cpt" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_cli_presets_resolve_to_c8_and_tiny_configs():
    import argparse

    from spectra_probe.commands import train as cmd
    from spectra_probe.training import C8_TARGET_MODULES, TINY_SFT

    parser = argparse.ArgumentParser()
    cmd.configure(parser)
    c8 = cmd._config(parser.parse_args(["--stage", "sft", "--model", "m", "--dataset", "ml-100k", "--out", "o"]))
    assert (c8.learning_rate, c8.lora_r, c8.lora_alpha, c8.lora_dropout, c8.warmup_ratio) == (8e-5, 32, 64, 0.1, 0.1)
    assert c8.target_modules == C8_TARGET_MODULES and c8.batch_size * c8.grad_accum == 12
    tiny = cmd._config(parser.parse_args(["--stage", "sft", "--preset", "tiny", "--model", "m", "--dataset",
                                          "ml-100k", "--out", "o", "--lr", "1e-3"]))
    assert tiny == dataclasses.replace(TINY_SFT, learning_rate=1e-3)
    scratch = cmd._config(parser.parse_args(["--stage", "cpt", "--from-scratch", "--dataset", "ml-100k", "--out", "o"]))
    assert scratch.cpt_mode == "full" and c8.cpt_mode == "lora"
    assert cmd._samples(None, "c8") == {"name": 4} and cmd._samples(["yesno=2"], "tiny") == {"yesno": 2}
    # --preset tiny is the demo's preset: full-weight SFT on its mixture and windows; c8 keeps LoRA, one window
    from spectra_probe.training import DEMO

    assert tiny.sft_mode == "full" and c8.sft_mode == "lora" and cmd._samples(None, "tiny") == DEMO.samples
    assert cmd._windows(None, "tiny") == DEMO.windows and cmd._windows(None, "c8") == ()
    assert cmd._windows("0.4,0.6", "c8") == (0.4, 0.6)
    for bad, words in (("0.4,x", "expected comma-separated fractions"), ("0.4,1.2", "1.2 is not a history fraction")):
        with pytest.raises(SpectraInputError, match=words):
            cmd._windows(bad, "c8")


def test_full_sft_on_yesno_dist_fits_the_targets_and_saves_a_plain_model(tmp_path, tiny_model_dir):
    """sft_mode='full' on yesno_dist examples: every weight trains, the directory holds a plain model (no
    adapter) that the probe loads with --model alone, and the distribution loss measured on the reloaded model
    (independently of the loop) falls."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cats = ("Comedy", "Drama", "Film-Noir", "Children's", "Sci-Fi")
    rng = np.random.default_rng(0)
    users = np.array([f"u{i}" for i in range(8)], dtype=object)
    theta = DistributionTable(users=users, categories=cats, probs=rng.dirichlet(np.ones(5) * 0.3, size=8))
    words = ["comedy drama", "film noir night", "children fun", "space sci fi", "drama tears", "laugh comedy"]
    frame = pd.DataFrame({"user_id": users, "context": [" ".join(rng.choice(words, 3)) for _ in users]})
    examples = sft_examples(frame, theta, samples={"yesno_dist": 1})
    answers = ([tok.convert_tokens_to_ids(tok.tokenize(YES_ANSWER))[0]],
               [tok.convert_tokens_to_ids(tok.tokenize(NO_ANSWER))[0]])

    def loss_of(model_dir) -> float:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32").eval()
        with torch.no_grad():
            return float(distribution_loss(model, encode_distributions(examples, tok), answers,
                                           pad_id=tok.pad_token_id))

    config = TrainConfig(learning_rate=3e-3, max_steps=40, batch_size=4, grad_accum=1, max_length=256,
                         warmup_ratio=0.0, sft_mode="full", progress=False)
    result = run_sft(tiny_model_dir, examples, tmp_path / "sft", config)
    assert result.steps == 40
    assert not (tmp_path / "sft" / "adapter_config.json").exists() and (tmp_path / "sft" / "config.json").is_file()
    before, after = loss_of(tiny_model_dir), loss_of(tmp_path / "sft")
    assert after < before - 0.2
