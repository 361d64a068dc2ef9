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
from spectra_probe.scoring import SCORERS, ScorerOptions, make_scorer, scorer_class
from spectra_probe.scoring.base import Scorer, resolve_verbalizers, resolve_yes_no, softmax_tau
from spectra_probe.scoring.choice import ChoiceScorer, choice_labels
from spectra_probe.scoring.hierarchy import build_hierarchy, choose_branches, load_hierarchy
from spectra_probe.scoring.name import NameScorer
from spectra_probe.scoring.yesno import YesNoScorer
from spectra_probe.templates import PromptBuilder, PromptTemplates

CATS = ("Comedy", "Drama", "Action", "Sci-Fi", "Film-Noir", "Children's", "Romance")
TREE = {"Light": ["Comedy", "Romance", "Children's"], "Dark": ["Drama", "Film-Noir"], "Fast": ["Action", "Sci-Fi"]}
CONTEXTS = [
    "the user watched comedy drama and then liked romance",
    "liked action movie film thriller sci-fi adventure",
    "rated documentary history war film-noir crime mystery recently",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from spectra_probe.backends.hf import HFBackend

    path = tiny_model_dir
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


# ---------------------------------------------------------------- registry


def test_registry_names_every_scorer_class():
    assert SCORERS.names() == ("yesno", "name", "choice", "dg", "reranker")
    for method in SCORERS.names():
        cls = scorer_class(method)
        assert issubclass(cls, Scorer) and cls.method == method
    assert scorer_class("YesNo") is scorer_class("yesno")
    assert [m for m in SCORERS.names() if scorer_class(m).text_scores] == ["dg"]
    with pytest.raises(SpectraInputError, match="unknown method 'llm' \\(choose from yesno, name"):
        scorer_class("llm")


def test_importing_the_registries_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, spectra_probe.scoring, spectra_probe.backends, spectra_probe.run, spectra_probe.training, "
            "spectra_probe.commands.probe\n"
            "heavy = [m for m in ('torch', 'transformers', 'vllm', 'peft') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("options, message", [
    ({"temperature": 0}, "temperature must be > 0"),
    ({"verbalizers_yes": ()}, "--verbalizers-yes needs at least one non-empty word"),
    ({"verbalizers_no": ["No", ""]}, "--verbalizers-no needs at least one non-empty word"),
    ({"name_reduce": "max"}, "--name-reduce must be one of 'sum', 'mean'"),
    ({"choice_mode": "logits"}, "--choice-mode must be one of"),
    ({"branches": "top"}, "branch choice 'top' needs --branches-b >= 1, got None"),
    ({"k": 0}, "--k must be >= 1, got 0"),
    ({"max_new_tokens": 0}, "--max-new-tokens must be >= 1"),
    ({"dg_cutoff": 1.5}, "--dg-cutoff .* must be in \\(0, 1\\]"),
])
def test_scorer_options_are_checked_once_when_built(options, message):
    with pytest.raises(SpectraInputError, match=message):
        ScorerOptions(**options)
    assert ScorerOptions(verbalizers_yes=["Yes"]).verbalizers_yes == ("Yes",)
    assert ScorerOptions.from_mapping({"k": 3, "temperature": None, "model": "m"}) == ScorerOptions(k=3)


# ---------------------------------------------------------------- verbalizers


def single_tokens(tok, texts):
    """{token id: text} of the texts the tokenizer encodes as one token, first text per id (independent check)."""
    out = {}
    for text in texts:
        pieces = tok.tokenize(text)
        if len(pieces) == 1:
            out.setdefault(tok.convert_tokens_to_ids(pieces[0]), text)
    return out


def test_verbalizers_are_exactly_the_words_given(tiny):
    tok = tiny["tok"]
    pos, neg = resolve_yes_no(tok, ("Yes", "Y", "y"), ("No", "N", "n"))
    assert [v.text for v in pos] == ["Yes", "Y", "y"] and [v.text for v in neg] == ["No", "N", "n"]
    assert {v.token_id: v.text for v in pos} == single_tokens(tok, ("Yes", "Y", "y"))
    # a leading space is part of the word: " Yes" is scored, "Yes" is not
    assert [v.text for v in resolve_verbalizers(tok, [" Yes"])] == [" Yes"]
    assert resolve_verbalizers(tok, [" Yes"])[0].token_id != resolve_verbalizers(tok, ["Yes"])[0].token_id


def test_space_variants_only_when_asked(tiny):
    tok = tiny["tok"]
    for words in (("Yes", "Y", "y"), ("No", "N", "n")):
        got = resolve_verbalizers(tok, words, space_variants=True)
        expected = single_tokens(tok, [form for w in words for form in (w, " " + w)])
        assert {v.token_id: v.text for v in got} == expected
    assert [v.text for v in resolve_verbalizers(tok, [" Yes"], space_variants=True)] == ["Yes", " Yes"]


def test_verbalizer_that_is_not_one_token_is_an_error_naming_it(tiny):
    with pytest.raises(SpectraInputError, match=r"V\+ \(--verbalizers-yes\): 'Zebrafishery' is not a single token"):
        resolve_verbalizers(tiny["tok"], ["Yes", "Zebrafishery"])
    with pytest.raises(SpectraInputError, match="'Zebrafishery' is not a single token.*with or without a leading"):
        resolve_verbalizers(tiny["tok"], ["Zebrafishery"], space_variants=True)


def test_verbalizer_sets_must_be_disjoint(tiny):
    with pytest.raises(SpectraInputError, match="in both V\\+ .* and V-"):
        resolve_yes_no(tiny["tok"], ["Yes"], ["Yes", "No"])


def test_yesno_scores_only_the_given_pair(tiny):
    """Eq. 1 with V+ = {" yes"}, V- = {" no"} is the plain log-odds of those two tokens, nothing averaged in."""
    b = builder(tiny)
    options = ScorerOptions(verbalizers_yes=(" yes",), verbalizers_no=(" no",))
    out = YesNoScorer(CATS, b, options).score_batch(tiny["backends"]["packed"], CONTEXTS[:1])
    ids = [tiny["tok"].convert_tokens_to_ids(tiny["tok"].tokenize(w)[0]) for w in (" yes", " no")]
    z = np.array([next_logits(tiny, b.probe_prefix(CONTEXTS[0]) + b.probe_suffix(c), ids) for c in CATS])
    np.testing.assert_allclose(out.scores[0], z[:, 0] - z[:, 1], atol=1e-4)


# ---------------------------------------------------------------- scores vs an independent forward pass


def test_yesno_scores_equal_eq1_on_plain_forward(tiny):
    b = builder(tiny)
    scorer = YesNoScorer(CATS, b, ScorerOptions(temperature=0.7))
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
    out = NameScorer(CATS, b, ScorerOptions(name_reduce=reduce)).score_batch(tiny["backends"]["packed"], CONTEXTS[:1])
    lp = [continuation_logprob(tiny, b.name_prefix(CONTEXTS[0]), b.name_suffix(c)) for c in CATS]
    expected = np.array([s if reduce == "sum" else s / n for s, n in lp])
    np.testing.assert_allclose(out.scores[0], expected, atol=1e-4)
    np.testing.assert_allclose(out.probs[0], softmax(expected), atol=1e-5)


def test_choice_token_mode_reads_label_logits(tiny):
    b = builder(tiny)
    scorer = ChoiceScorer(CATS, b, ScorerOptions(choice_mode="auto"))
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
    scorer = ChoiceScorer(cats, b)
    assert scorer.labels[25:28] == ("Z", "AA", "AB")
    assert scorer.mode == "likelihood"
    out = scorer.score_batch(tiny["backends"]["packed"], CONTEXTS[:1])
    prefix = b.probe_prefix(CONTEXTS[0]) + scorer.question
    checked = [0, 25, 26, 29]  # A, Z, AA, AD (the plain forward is the slow part of this test)
    expected = [continuation_logprob(tiny, prefix, scorer.answers[j])[0] for j in checked]
    np.testing.assert_allclose(out.scores[0, checked], expected, atol=1e-4)
    with pytest.raises(SpectraInputError, match="not a single token"):
        ChoiceScorer(cats, b, ScorerOptions(choice_mode="token"))


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
    scorer = make_scorer("reranker", CATS, b, ScorerOptions(temperature=2.0))
    out = scorer.score_batch(tiny["backends"]["packed"], CONTEXTS[:1])
    yes, no = (tiny["tok"].convert_tokens_to_ids(w) for w in ("yes", "no"))
    z = np.array([next_logits(tiny, b.reranker_prefix(CONTEXTS[0]) + b.reranker_suffix(c), [yes, no]) for c in CATS])
    np.testing.assert_allclose(out.scores[0], z[:, 0] - z[:, 1], atol=1e-4)
    np.testing.assert_allclose(out.probs[0], softmax((z[:, 0] - z[:, 1]) / 2.0), atol=1e-5)


# ---------------------------------------------------------------- hierarchical


def test_hierarchical_chain_rule_on_plain_forward(tiny):
    b = builder(tiny)
    h = build_hierarchy(TREE, CATS)
    scorer = make_scorer("yesno", CATS, b, ScorerOptions(temperature=0.5, branches="top", n_branches=2), hierarchy=h)
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
    "yesno-space-variants": ("yesno", ScorerOptions(verbalizer_space_variants=True), False),
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
