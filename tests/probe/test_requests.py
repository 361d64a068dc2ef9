"""Steered probing (``spectra probe --requests``): the templates against the exact text that reaches the model,
rows keyed by request id, the manifest, resume and shards with requests, bad requests, the exported requests
file, and a short end to end probe -> steer on the tiny model."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from spectra_eval.cli import main
from spectra_eval.io import read_distribution_table
from spectra_eval.analyses.steering import make_requests
from spectra_eval.validation import SpectraInputError
from spectra_probe.templates import PromptTemplates

USERS = ["u0", "u1", "u2"]
CATS = ("Comedy", "Drama", "Action", "Sci-Fi", "Romance")
CONTEXTS = ["the user watched comedy drama and then liked romance", "liked action movie film thriller sci-fi",
            "rated war film-noir crime mystery recently"]
REQUESTS = pd.DataFrame({
    "request_id": ["r0", "r1", "r2", "r3"],
    "user_id": ["u0", "u1", "u2", "u0"],
    "target": ["Comedy", "Action|Sci-Fi", "Drama|Romance", "Romance"],
    "direction": ["+", "-", "+", "-"],
    "granularity": ["fine", "coarse", "coarse", "fine"],
    "form": ["single", "single", "multi", ""],
})
#: The context text each request's prompts are built from, written out by hand.
STEERED = {
    "r0": CONTEXTS[0] + "\nThe user says they want more Comedy next.",
    "r1": CONTEXTS[1] + "\nThe user says they want no Action or Sci-Fi next.",
    "r2": CONTEXTS[2] + "\nThe user has stated these preferences:\n- The user says they want more Drama next.\n"
                        "- The user says they want more Romance next.",
    "r3": CONTEXTS[0] + "\nThe user says they want no Romance next.",
}


def test_statements_and_steered_context_by_hand():
    t = PromptTemplates()
    for r in REQUESTS.itertuples():
        targets = tuple(r.target.split("|"))
        assert t.steered_context(CONTEXTS[USERS.index(r.user_id)], targets, r.direction, r.form or "single") \
            == STEERED[r.request_id]
    custom = PromptTemplates(steer_positive="More {target}!", steer_join=" and ", steer_context="{statement} {context}")
    assert custom.steered_context("ctx", ("A", "B"), "+") == "More A and B! ctx"


@pytest.mark.parametrize("field, text, message", [
    ("steer_positive", "More please.", "template 'steer_positive' lacks the field {target}"),
    ("steer_context", "{context} {category}", "lacks the field {statement}"),
    ("steer_multi", "{statements} {user}", "uses unknown field {user}"),
])
def test_steering_templates_are_checked(field, text, message):
    with pytest.raises(SpectraInputError, match=message.replace("{", r"\{").replace("}", r"\}")):
        PromptTemplates.from_dict({field: text})


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("steer")
    pd.DataFrame({"user_id": USERS, "context": CONTEXTS}).to_csv(root / "contexts.csv", index=False)
    (root / "cats.txt").write_text("\n".join(CATS) + "\n")
    REQUESTS.to_csv(root / "requests.csv", index=False)
    return {"root": root, "model": str(tiny_model_dir), "contexts": str(root / "contexts.csv"),
            "cats": str(root / "cats.txt"), "requests": str(root / "requests.csv")}


def config(data, out, **extra):
    from spectra_probe.run import ProbeConfig

    return ProbeConfig(model=data["model"], contexts=data["contexts"], categories=data["cats"], method="yesno",
                       out=str(out), progress=False, **{"requests": data["requests"], **extra})


class Recording:
    """A real backend that records every prompt (prefix + suffix) it is asked to score."""

    def __init__(self, backend):
        self.backend, self.prompts = backend, []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def score(self, requests):
        self.prompts += [(r.prefix, s) for r in requests for s in r.suffixes]
        return self.backend.score(requests)


@pytest.fixture(scope="module")
def backend(data):
    from spectra_probe.backends.hf import HFBackend

    return HFBackend(data["model"])


def test_the_exact_prompt_text_that_reaches_the_model(data, backend, tmp_path):
    from spectra_probe.run import run_probe

    recording = Recording(backend)
    result = run_probe(config(data, tmp_path / "steered.csv", batch_size=2), backend=recording)
    expected = {(f"A user's recent activity:\n{STEERED[r]}\n",
                 f'Question: will the user engage with the category "{c}" next? Answer Yes or No.\nAnswer:')
                for r in REQUESTS["request_id"] for c in CATS}
    assert set(recording.prompts) == expected and len(recording.prompts) == len(expected)
    assert list(result.table.users) == list(REQUESTS["request_id"])  # rows keyed by request id, file order


def test_manifest_records_the_requests_and_templates(data, backend, tmp_path):
    from spectra_probe.backends.base import sha256_file
    from spectra_probe.run import run_probe

    steered = run_probe(config(data, tmp_path / "s.csv"), backend=backend).manifest
    assert steered["requests"] == data["requests"] and steered["requests_sha256"] == sha256_file(data["requests"])
    assert steered["template"]["steer_negative"] == "The user says they want no {target} next."
    assert steered["n_users"] == 4 and steered["n_users_total"] == 4
    plain = run_probe(config(data, tmp_path / "p.csv", requests=None), backend=backend).manifest
    assert plain["requests"] is None and plain["requests_sha256"] is None
    assert "steer_positive" not in plain["template"]  # an unsteered run's fingerprint ignores steering templates
    assert steered["fingerprint_sha256"] != plain["fingerprint_sha256"]


class Interrupt(Exception):
    pass


def test_resume_with_requests_and_a_changed_requests_file_is_refused(data, backend, tmp_path):
    from spectra_probe.run import run_probe

    out = tmp_path / "r.csv"
    with pytest.raises(Interrupt):
        run_probe(config(data, out, batch_size=1, checkpoint_every=2), backend=backend,
                  on_checkpoint=lambda n: (_ for _ in ()).throw(Interrupt()))
    recording = Recording(backend)
    resumed = run_probe(config(data, out, batch_size=1), backend=recording)
    assert resumed.manifest["users_resumed"] == 2
    assert {p for p, _ in recording.prompts} == {f"A user's recent activity:\n{STEERED[r]}\n" for r in ("r2", "r3")}
    full = run_probe(config(data, tmp_path / "full.csv"), backend=backend)
    np.testing.assert_allclose(resumed.table.probs, full.table.probs, atol=1e-5)  # batch sizes differ

    with pytest.raises(Interrupt):
        run_probe(config(data, out, batch_size=1, checkpoint_every=1), backend=backend,
                  on_checkpoint=lambda n: (_ for _ in ()).throw(Interrupt()))
    changed = tmp_path / "requests2.csv"
    REQUESTS.assign(direction=["-", "-", "+", "-"]).to_csv(changed, index=False)
    with pytest.raises(SpectraInputError, match="checkpoint of a different run.*requests_sha256"):
        run_probe(config(data, out, requests=str(changed)), backend=backend)


def test_shards_with_requests_merge_to_the_full_run(data, tmp_path):
    args = ["probe", "--model", data["model"], "--contexts", data["contexts"], "--categories", data["cats"],
            "--method", "yesno", "--requests", data["requests"], "--no-progress"]
    parts = [tmp_path / f"part{i}.csv" for i in range(2)]
    for i, part in enumerate(parts):
        assert main([*args, "--shard", f"{i}/2", "--out", str(part)]) == 0
    assert [list(read_distribution_table(p).users) for p in parts] == [["r0", "r1"], ["r2", "r3"]]
    merged, full = tmp_path / "merged.csv", tmp_path / "full.csv"
    assert main(["probe", "--merge", *map(str, parts), "--out", str(merged)]) == 0
    assert main([*args, "--out", str(full)]) == 0
    np.testing.assert_allclose(read_distribution_table(merged).probs, read_distribution_table(full).probs, atol=1e-5)


@pytest.mark.parametrize("edit, message", [
    ({"target": ["Comedy", "Western", "Drama", "Romance"]}, "request 'r1' (row 2), column 'target': 'Western' is "
                                                           "not a category of"),
    ({"user_id": ["u0", "u9", "u2", "u0"]}, "request 'r1' (row 2), column 'user_id': user 'u9' is not in"),
    ({"request_id": ["r0", "r1", "r0", "r3"]}, "request 'r0' (row 3) repeats the request id of row 1"),
    ({"form": ["single", "many", "multi", ""]}, "column 'form': 'many' is not one of single, multi"),
])
def test_bad_requests_fail_before_the_model_loads(data, tmp_path, capsys, edit, message):
    bad = tmp_path / "bad.csv"
    REQUESTS.assign(**edit).to_csv(bad, index=False)
    code = main(["probe", "--model", str(tmp_path / "no-model"), "--contexts", data["contexts"], "--categories",
                 data["cats"], "--method", "yesno", "--requests", str(bad), "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err, err
    assert not (tmp_path / "o.csv").exists()


def test_probe_then_steer_end_to_end(data, tmp_path, capsys):
    common = ["--model", data["model"], "--contexts", data["contexts"], "--categories", data["cats"],
              "--method", "yesno", "--no-progress"]
    base, steered = tmp_path / "base.csv", tmp_path / "steered.csv"
    assert main(["probe", *common, "--out", str(base)]) == 0
    assert main(["probe", *common, "--requests", data["requests"], "--out", str(steered)]) == 0
    assert main(["steer", "--base", str(base), "--steered", str(steered), "--requests", data["requests"],
                 "--out", str(tmp_path / "steer"), "--bootstrap", "50"]) == 0
    doc = json.loads((tmp_path / "steer" / "steering.json").read_text())
    assert doc["n_requests"] == 4 and doc["overall"]["n"] == 4
    assert set(doc["by"]) == {"+", "-"} and set(doc["by"]["-"]) == {"fine", "coarse"}
    b, s = read_distribution_table(base), read_distribution_table(steered)
    shift_r0 = s.probs[0, 0] - b.probs[0, 0]  # r0: +Comedy for u0
    frame = pd.read_parquet(tmp_path / "steer" / "per_request.parquet")
    assert frame.loc[0, "shift"] == pytest.approx(shift_r0, abs=1e-12)


def test_make_requests_draws_from_seen_and_unseen_categories():
    rng = np.random.default_rng(1)
    cats = [f"c{i}" for i in range(8)]
    users = [f"u{i}" for i in range(60)]
    seen = rng.random((60, 8)) < 0.4
    seen[0] = True  # a user who has seen every category: targets still exist (all 'seen')
    table = make_requests(users, cats, seen, seed=4)
    assert table.equals(make_requests(users, cats, seen, seed=4))  # seeded
    assert len(table) == 4 * 60 and table["request_id"].is_unique
    assert set(table["direction"]) == {"+", "-"} and set(table["granularity"]) == {"fine", "coarse"}
    col = {c: j for j, c in enumerate(cats)}
    for r in table.itertuples():
        targets = r.target.split("|")
        assert len(targets) == (1 if r.granularity == "fine" else 3) and len(set(targets)) == len(targets)
        n_seen = sum(seen[users.index(r.user_id), col[c]] for c in targets)
        assert r.seen == ("seen" if n_seen == len(targets) else "unseen" if n_seen == 0 else "mixed")
    assert {"seen", "unseen"} <= set(table["seen"])
    assert set(table[table["user_id"] == "u0"]["seen"]) == {"seen"}
