"""Scorers, templates and hierarchical probing on a tiny random Qwen3 (built here, nothing downloaded).

Every score is checked against an independent computation: a plain forward pass of the model over the full
prompt text (no prefix sharing, no backend), and scipy's softmax. Packed and naive engines must agree
within 1e-5 for every scorer.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from spectra_eval.validation import SpectraInputError
from spectra_probe.hierarchy import build_hierarchy, choose_branches, load_hierarchy
from spectra_probe.scorers import (ChoiceScorer, NameScorer, ScorerOptions, YesNoScorer, choice_labels, make_scorer,
                                   resolve_verbalizers, resolve_yes_no, softmax_tau)
from spectra_probe.templates import PromptBuilder, PromptTemplates

CATS = ("Comedy", "Drama", "Action", "Sci-Fi", "Film-Noir", "Children's", "Romance")
TREE = {"Light": ["Comedy", "Romance", "Children's"], "Dark": ["Drama", "Film-Noir"], "Fast": ["Action", "Sci-Fi"]}
CONTEXTS = [
    "the user watched comedy drama and then liked romance",
    "liked action movie film thriller sci-fi adventure",
    "rated documentary history war film-noir crime mystery recently",
]


def build_tiny_dir(directory, vocab_size: int = 600):
    """Train a tokenizer on a corpus that contains the default prompts, build a random Qwen3, save both."""
    from spectra_probe.tiny import build_tiny_qwen3, sample_corpus, save_tiny, train_tokenizer

    b = PromptBuilder(PromptTemplates())
    prompts = [b.probe_prefix(c) + b.probe_suffix(cat) + " Yes" for c in CONTEXTS for cat in CATS + tuple(TREE)]
    prompts += [b.reranker_prefix(c) + b.reranker_suffix(cat) + "yes" for c in CONTEXTS[:1] for cat in CATS]
    prompts += [b.choice_question(choice_labels(len(CATS)), CATS) + " A\n"] * 3
    prompts += ["Yes No Y N y n yes no. Answer: Yes, Answer: No"] * 5
    prompts += ["Answer: " + " ".join("ABCDEFG") + "\n"] * 10
    tok = train_tokenizer(sample_corpus(300) + prompts, vocab_size=vocab_size)
    return save_tiny(build_tiny_qwen3(tok), tok, directory)


_BUILT: dict = {}


def tiny_model_dir(tmp_path_factory):
    """The tiny model directory, built once per test session (test_probe_cli reuses it)."""
    if "path" not in _BUILT:
        _BUILT["path"] = build_tiny_dir(tmp_path_factory.mktemp("tiny"))
    return _BUILT["path"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from spectra_probe.backends.hf import HFBackend

    path = tiny_model_dir(tmp_path_factory)
    backends = {engine: HFBackend(path, engine=engine) for engine in ("packed", "naive")}
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    return {"path": path, "backends": backends, "model": model, "tok": backends["packed"].tokenizer}


def forward(tiny, text: str) -> tuple[list[int], np.ndarray]:
    """Token ids and float64 logits of one plain forward pass over ``text`` (the independent reference)."""
    import torch

    ids = tiny["tok"](text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = tiny["model"](torch.tensor([ids])).logits[0].double().numpy()
    return ids, logits


def next_logits(tiny, text: str, ids: list[int]) -> np.ndarray:
    return forward(tiny, text)[1][-1, ids]


def continuation_logprob(tiny, prefix: str, suffix: str) -> tuple[float, int]:
    n_prefix = len(tiny["tok"](prefix, add_special_tokens=False)["input_ids"])
    ids, logits = forward(tiny, prefix + suffix)
    lp = log_softmax(logits, axis=-1)
    steps = range(n_prefix, len(ids))
    return float(sum(lp[t - 1, ids[t]] for t in steps)), len(steps)


def builder(tiny, **kw) -> PromptBuilder:
    return PromptBuilder(PromptTemplates(**kw), tiny["tok"])


# ---------------------------------------------------------------- verbalizers


def test_default_verbalizers_resolve_to_single_tokens(tiny):
    tok = tiny["tok"]
    pos, neg = resolve_yes_no(tok, ("Yes", "Y", "y"), ("No", "N", "n"))
    for words, got in (((("Yes", "Y", "y")), pos), (("No", "N", "n"), neg)):
        expected = {}
        for w in words:
            for variant in (w, " " + w):
                pieces = tok.tokenize(variant)
                if len(pieces) == 1:
                    expected.setdefault(tok.convert_tokens_to_ids(pieces[0]), variant)
        assert {v.token_id: v.text for v in got} == expected
    assert {v.text for v in pos} >= {"Yes", " Yes"}
    # a word given with its leading space still tries the bare form (and vice versa)
    assert [v.text for v in resolve_verbalizers(tok, [" Yes"])] == [v.text for v in resolve_verbalizers(tok, ["Yes"])]


def test_verbalizer_without_single_token_is_an_error(tiny):
    with pytest.raises(SpectraInputError, match=r"V\+ \{Zebrafishery\}.*single token"):
        resolve_verbalizers(tiny["tok"], ["Zebrafishery"], role="V+")
    # one usable word is enough; multi-token words are skipped
    assert [v.text for v in resolve_verbalizers(tiny["tok"], ["Zebrafishery", "Yes"])][:1] == ["Yes"]


def test_verbalizer_sets_must_be_disjoint(tiny):
    with pytest.raises(SpectraInputError, match="both V\\+ and V-"):
        resolve_yes_no(tiny["tok"], ["Yes"], ["Yes", "No"])


# ---------------------------------------------------------------- scores vs an independent forward pass


def test_yesno_scores_equal_eq1_on_plain_forward(tiny):
    b = builder(tiny)
    scorer = YesNoScorer(CATS, b, tau=0.7)
    out = scorer.score_batch(tiny["backends"]["packed"], CONTEXTS[:2])
    pos = [v.token_id for v in scorer.yes]
    neg = [v.token_id for v in scorer.no]
    z = np.array([[next_logits(tiny, b.probe_prefix(c) + b.probe_suffix(cat), pos + neg) for cat in CATS]
                  for c in CONTEXTS[:2]])
    expected = z[..., :len(pos)].mean(axis=-1) - z[..., len(pos):].mean(axis=-1)
    np.testing.assert_allclose(out.scores, expected, atol=1e-4)
    np.testing.assert_allclose(out.probs, softmax(expected / 0.7, axis=1), atol=1e-5)
    assert np.ptp(out.probs) > 1e-3  # the random model does discriminate


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_name_scores_equal_plain_likelihood(tiny, reduce):
    b = builder(tiny)
    out = NameScorer(CATS, b, reduce=reduce).score_batch(tiny["backends"]["packed"], CONTEXTS[:1])
    lp = [continuation_logprob(tiny, b.name_prefix(CONTEXTS[0]), b.name_suffix(c)) for c in CATS]
    expected = np.array([s if reduce == "sum" else s / n for s, n in lp])
    np.testing.assert_allclose(out.scores[0], expected, atol=1e-4)
    np.testing.assert_allclose(out.probs[0], softmax(expected), atol=1e-5)


def test_choice_token_mode_reads_label_logits(tiny):
    b = builder(tiny)
    scorer = ChoiceScorer(CATS, b, mode="auto")
    assert scorer.mode == "token"  # " A" .. " G" are single tokens of this tokenizer
    out = scorer.score_batch(tiny["backends"]["packed"], CONTEXTS[:2])
    for u, c in enumerate(CONTEXTS[:2]):
        prompt = b.probe_prefix(c) + b.choice_question(scorer.labels, CATS)
        ids = [tiny["tok"](" " + lab, add_special_tokens=False)["input_ids"][0] for lab in "ABCDEFG"]
        np.testing.assert_allclose(out.scores[u], next_logits(tiny, prompt, ids), atol=1e-4)
    assert "A. Comedy\nB. Drama" in b.choice_question(scorer.labels, CATS)


def test_choice_beyond_26_labels_uses_label_likelihood(tiny):
    cats = tuple(f"genre {i}" for i in range(30))
    b = builder(tiny)
    scorer = ChoiceScorer(cats, b, mode="auto")
    assert scorer.labels[25:28] == ("Z", "AA", "AB")
    assert scorer.mode == "likelihood"
    out = scorer.score_batch(tiny["backends"]["packed"], CONTEXTS[:1])
    prefix = b.probe_prefix(CONTEXTS[0]) + scorer.question
    checked = [0, 25, 26, 29]  # A, Z, AA, AD (the plain forward is the slow part of this test)
    expected = [continuation_logprob(tiny, prefix, scorer.answers[j])[0] for j in checked]
    np.testing.assert_allclose(out.scores[0, checked], expected, atol=1e-4)
    with pytest.raises(SpectraInputError, match="not a single token"):
        ChoiceScorer(cats, b, mode="token")


def test_choice_labels():
    assert choice_labels(3) == ("A", "B", "C")
    labels = choice_labels(26 + 26 * 26 + 1)
    assert labels[26] == "AA" and labels[51] == "AZ" and labels[52] == "BA" and labels[-1] == "AAA"
    assert len(set(labels)) == len(labels)
    assert choice_labels(12, "numbers")[-1] == "12"


def test_reranker_prompt_format_and_log_odds(tiny):
    b = builder(tiny)
    prompt = b.reranker_prefix("q text") + b.reranker_suffix("Comedy")
    assert prompt == (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
        "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n"
        f"<Instruct>: {PromptTemplates().reranker_instruction}\n<Query>: q text\n<Document>: Comedy<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    scorer = make_scorer("reranker", CATS, b, ScorerOptions(tau=2.0))
    out = scorer.score_batch(tiny["backends"]["packed"], CONTEXTS[:1])
    yes, no = (tiny["tok"].convert_tokens_to_ids(w) for w in ("yes", "no"))
    z = np.array([next_logits(tiny, b.reranker_prefix(CONTEXTS[0]) + b.reranker_suffix(c), [yes, no]) for c in CATS])
    np.testing.assert_allclose(out.scores[0], z[:, 0] - z[:, 1], atol=1e-4)
    np.testing.assert_allclose(out.probs[0], softmax((z[:, 0] - z[:, 1]) / 2.0), atol=1e-5)


# ---------------------------------------------------------------- hierarchical


def test_hierarchical_chain_rule_on_plain_forward(tiny):
    b = builder(tiny)
    h = build_hierarchy(TREE, CATS)
    scorer = make_scorer("yesno", CATS, b, ScorerOptions(tau=0.5, branches="top", n_branches=2), hierarchy=h)
    out = scorer.score_batch(tiny["backends"]["packed"], CONTEXTS[:2])
    ids = list(scorer.l1.next_token_ids)
    n_yes = len(scorer.l1.yes)

    def s(text):
        z = next_logits(tiny, text, ids)
        return z[:n_yes].mean() - z[n_yes:].mean()

    for u, c in enumerate(CONTEXTS[:2]):
        s1 = np.array([s(b.probe_prefix(c) + b.probe_suffix(p)) for p in TREE])
        t1 = softmax(s1 / 0.5)
        top = set(np.argsort(-t1)[:2])
        expected = np.zeros(len(CATS))
        for g, (parent, kids) in enumerate(TREE.items()):
            cols = [CATS.index(k) for k in sorted(kids, key=CATS.index)]
            if g in top:
                s2 = np.array([s(b.probe_prefix(c, parent) + b.probe_suffix(CATS[j])) for j in cols])
                expected[cols] = t1[g] * softmax(s2 / 0.5)
                np.testing.assert_allclose(out.scores[u, cols], s2, atol=1e-4)
            else:
                expected[cols] = t1[g] / len(cols)
                assert np.isnan(out.scores[u, cols]).all()
        np.testing.assert_allclose(out.scores[u, len(CATS):], s1, atol=1e-4)
        np.testing.assert_allclose(out.probs[u], expected, atol=1e-5)
        assert out.probs[u].sum() == pytest.approx(1.0, abs=1e-12)
        assert out.info[u]["branches"] == [p for g, p in enumerate(TREE) if g in top]


def test_branch_choice_rules():
    theta = np.array([[0.1, 0.4, 0.2, 0.3], [0.25, 0.25, 0.25, 0.25]])
    assert [list(x) for x in choose_branches(theta, "top", 2)] == [[1, 3], [0, 1]]
    assert [list(x) for x in choose_branches(theta, "tail", 2)] == [[0, 2], [0, 1]]
    assert [list(x) for x in choose_branches(theta, "mix", 3)] == [[0, 1, 3], [0, 1, 2]]
    assert [list(x) for x in choose_branches(theta, "all")] == [[0, 1, 2, 3]] * 2
    assert [list(x) for x in choose_branches(theta, "top", 10)] == [[0, 1, 2, 3]] * 2
    with pytest.raises(SpectraInputError, match="branches-b"):
        choose_branches(theta, "top", None)


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"A": ["Comedy", "Drama"]}, "'Action' of the categories file is under no L1"),
        ({**TREE, "X": ["Comedy"]}, "'Comedy' is under both"),
        ({**TREE, "X": ["Western"]}, "'Western' under L1 'X' is not in the categories"),
        ({"A": []}, "non-empty list"),
    ],
)
def test_hierarchy_validation(tree, message):
    with pytest.raises(SpectraInputError, match=message):
        build_hierarchy(tree, CATS)


def test_hierarchy_file_duplicate_l1(tmp_path):
    path = tmp_path / "h.json"
    path.write_text('{"A": ["Comedy"], "A": ["Drama"]}')
    with pytest.raises(SpectraInputError, match="'A' appears more than once"):
        load_hierarchy(path, CATS)


def test_hierarchy_only_with_yesno(tiny):
    with pytest.raises(SpectraInputError, match="yesno only"):
        make_scorer("name", CATS, builder(tiny), ScorerOptions(), hierarchy=build_hierarchy(TREE, CATS))


# ---------------------------------------------------------------- packed == naive


CASES = {
    "yesno": ("yesno", ScorerOptions(), False),
    "yesno-chat": ("yesno", ScorerOptions(), True),
    "name-sum": ("name", ScorerOptions(), False),
    "name-mean": ("name", ScorerOptions(name_reduce="mean"), False),
    "choice-token": ("choice", ScorerOptions(), False),
    "choice-likelihood": ("choice", ScorerOptions(choice_mode="likelihood", choice_labels="numbers"), False),
    "reranker": ("reranker", ScorerOptions(), False),
    "hier-all": ("yesno", ScorerOptions(), False),
    "hier-tail": ("yesno", ScorerOptions(branches="tail", n_branches=1), False),
    "hier-mix": ("yesno", ScorerOptions(branches="mix", n_branches=2), False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_packed_equals_naive(tiny, case):
    method, options, chat = CASES[case]
    hierarchy = build_hierarchy(TREE, CATS) if case.startswith("hier") else None
    outs = {}
    for engine, backend in tiny["backends"].items():
        scorer = make_scorer(method, CATS, builder(tiny, chat=chat), options, hierarchy)
        outs[engine] = scorer.score_batch(backend, CONTEXTS)
    np.testing.assert_allclose(outs["packed"].scores, outs["naive"].scores, atol=1e-5, rtol=0)
    np.testing.assert_allclose(outs["packed"].probs, outs["naive"].probs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(outs["packed"].probs.sum(axis=1), 1.0, atol=1e-12)
    assert sum(i["fallback"] for i in outs["packed"].info) == 0  # default templates split on token boundaries


# ---------------------------------------------------------------- templates


def test_chat_mode_keeps_category_in_the_suffix(tiny):
    b = builder(tiny, chat=True, system="Be brief.")
    prefix, suffix = b.probe_prefix("ctx"), b.probe_suffix("Drama")
    full_user = PromptTemplates().probe_prefix.format(context="ctx") + PromptTemplates().probe_suffix.format(
        category="Drama")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": full_user}]
    assert prefix + suffix == tiny["tok"].apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "Drama" not in prefix and prefix.endswith("ctx\n")


def test_chat_mode_answers_follow_the_generation_prompt(tiny):
    t = PromptTemplates()
    b = builder(tiny, chat=True)

    def chat(user):
        return tiny["tok"].apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                               add_generation_prompt=True)

    assert b.name_prefix("ctx") + b.name_suffix("Drama") == chat(t.name_prefix.format(context="ctx")) + "Drama\n"
    assert b.dg_prompt("ctx", 3, CATS[:2]) == chat(t.dg.format(context="ctx", k=3, categories="Comedy, Drama"))
    labels = choice_labels(2)
    question = t.choice_suffix.format(options="A. Comedy\nB. Drama")
    assert b.probe_prefix("ctx") + b.choice_question(labels, CATS[:2]) + b.choice_answer("B") == \
        chat(t.probe_prefix.format(context="ctx") + question) + "B\n"
    with pytest.raises(SpectraInputError, match="no chat template"):
        PromptBuilder(PromptTemplates(chat=True), None)


def test_templates_json_round_trip_and_errors(tmp_path):
    t = PromptTemplates(probe_suffix="Is {category} next?", chat_kwargs={"enable_thinking": False})
    t.save(tmp_path / "t.json")
    assert PromptTemplates.load(tmp_path / "t.json") == t
    (tmp_path / "partial.json").write_text(json.dumps({"name_suffix": " <{category}>"}))
    assert PromptTemplates.load(tmp_path / "partial.json").name_suffix == " <{category}>"
    for bad, message in [
        ({"probe_suffix": "no field"}, "'probe_suffix' lacks the field {category}"),
        ({"probe_prefix": "{context} {user}"}, "unknown field {user}"),
        ({"probe_sufix": "{category}"}, "unknown template field 'probe_sufix'"),
        ({"dg": "{context"}, "not a valid format string"),
    ]:
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(SpectraInputError, match=f"bad.json: .*{message}".replace("{", "\\{").replace("}", "\\}")):
            PromptTemplates.load(tmp_path / "bad.json")


def test_softmax_tau_matches_scipy():
    s = np.array([[1.0, 2.0, -3.0], [1000.0, 1000.0, 999.0]])
    for tau in (0.3, 1.0, 4.0):
        np.testing.assert_allclose(softmax_tau(s, tau), softmax(s / tau, axis=1), atol=1e-15)
    with pytest.raises(SpectraInputError):
        softmax_tau(s, 0.0)
