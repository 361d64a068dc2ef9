"""README's "Evaluate your own tables" runs as written: a raw interaction table -> ``spectra prepare`` (with a
tokenizer file and a token budget) -> probe outputs -> ``evaluate`` -> ``certify`` -> ``report``.

The commands are read from the README's first bash block of that section. The two ``spectra probe`` lines need a
model; the synthetic cohort (:mod:`spectra_eval.data.synthetic`, over the prepared users and categories) stands
in for their outputs. Everything else runs as printed (``report`` with ``--no-pdf`` to skip pdflatex).
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spectra_eval.cli import main
from spectra_eval.data.synthetic import synthetic_cohort
from spectra_eval.io import read_distribution_table
from spectra_eval.report import Report

README = Path(__file__).resolve().parents[2] / "README.md"
CATEGORIES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller")


def readme_commands() -> list[str]:
    """The ``spectra ...`` commands of the first bash block under "## Evaluate your own tables"."""
    section = README.read_text(encoding="utf-8").split("## Evaluate your own tables", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("#", 1)[0].strip() for line in joined.splitlines() if line.startswith("spectra ")]


def write_log(path: Path, n_users: int, seed: int = 0) -> None:
    """A raw interaction log: users ``u00000``.. (the synthetic cohort's ids), 8-20 items each, dates as text."""
    rng = np.random.default_rng(seed)
    items = {f"m{j}": "|".join(rng.choice(CATEGORIES, rng.integers(1, 3), replace=False)) for j in range(80)}
    rows = []
    for u in range(n_users):
        for t, item in enumerate(rng.choice(list(items), rng.integers(8, 21), replace=False)):
            rows.append((f"u{u:05d}", item, f"2024-01-{t + 1:02d}", items[item], f"Film {item}"))
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "categories", "title"]).to_csv(path, index=False)


def write_tokenizer(directory: Path) -> None:
    """A word-level ``tokenizer.json`` (the ``tokenizers`` package only: no torch, no transformers)."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(["Film", "[", "]", ","] + [f"m{j}" for j in range(80)])}}
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    directory.mkdir(parents=True)
    tok.save(str(directory / "tokenizer.json"))


def test_the_readme_path_to_a_certificate(tmp_path, monkeypatch):
    commands = readme_commands()
    assert [c.split()[1] for c in commands] == ["prepare", "probe", "probe", "evaluate", "certify", "report"]
    monkeypatch.chdir(tmp_path)
    n_users = 60
    write_log(tmp_path / "log.csv", n_users)
    write_tokenizer(tmp_path / "model")
    for command in commands:
        argv = shlex.split(command.replace("/models/my-model", "model"))[1:]
        if argv[0] == "probe":  # stand-ins for the model's outputs, over the prepared users and categories
            categories = (tmp_path / "data" / "categories.txt").read_text().split()
            frames = synthetic_cohort(n_users, seed=3, categories=categories)
            name = "dg" if "dg" in argv[argv.index("--method") + 1] else "probe"
            frames[name].to_csv(argv[argv.index("--out") + 1], index=False)
            continue
        if argv[0] == "report":
            argv.append("--no-pdf")
        assert main(argv) == 0, command

    contexts = pd.read_csv(tmp_path / "data" / "contexts.csv")
    assert contexts["context"].str.split().map(len).max() <= 1024  # the budget, in the tokenizer's words
    truth = read_distribution_table(tmp_path / "data" / "truth.csv")
    assert len(truth.users) == n_users and truth.categories == CATEGORIES
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"probe", "dg", "history-uhf"} and metrics["n_users"] == n_users
    cert = json.loads((tmp_path / "results" / "certificate.json").read_text())
    assert "latent" in cert  # from data/counts.csv
    report = Report.from_dir(tmp_path / "results")
    assert {"js", "certificate", "certificate_population"} <= set(report.table_keys())
    assert (tmp_path / "results" / "tables.md").read_text(encoding="utf-8") == report.to_markdown()


def test_a_tight_budget_cuts_the_contexts(tmp_path):
    from spectra_eval.data.prepare import prepare

    write_log(tmp_path / "log.csv", 10)
    write_tokenizer(tmp_path / "model")
    prepare(f"table:{tmp_path / 'log.csv'}", tmp_path / "data", tokenizer=tmp_path / "model", context_tokens=12)
    contexts = pd.read_csv(tmp_path / "data" / "contexts.csv")["context"]
    # a line "Film mK [A, B]" is 3 or 4 whitespace tokens and every history has >= 6 items: 3 or 4 lines fit
    assert contexts.str.split().map(len).max() <= 12 and contexts.str.count("\n").between(2, 3).all()
