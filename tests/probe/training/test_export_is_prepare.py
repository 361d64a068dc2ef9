"""``spectra train --export`` and ``spectra prepare --tokenizer`` write the same bytes: the export goes through
:func:`spectra_eval.data.prepare.write_evaluation_inputs`, and a ``tokenizer.json`` read with ``tokenizers`` counts
the contexts' tokens as the model's fast tokenizer does."""
from __future__ import annotations

import pytest

import numpy as np
import pandas as pd

from tests.eval.data.test_prepare import FILES

CATEGORIES = ("Action", "Comedy", "Drama", "Horror")


def write_log(path, n_users=8, n_items=15, per_user=12, seed=0):
    """A generic interaction table: ``per_user`` distinct items per user at increasing timestamps."""
    rng = np.random.default_rng(seed)
    cats = {f"i{j}": "|".join(rng.choice(CATEGORIES, rng.integers(1, 3), replace=False)) for j in range(n_items)}
    rows = [(f"u{u}", item, 1000 * u + t, cats[item], f"Film {item}")
            for u in range(n_users) for t, item in enumerate(rng.choice(list(cats), per_user, replace=False))]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "categories", "title"]).to_csv(path, index=False)


def test_train_export_equals_prepare_with_the_tokenizer_file(tmp_path):
    pytest.importorskip("transformers")
    from spectra_eval.data.datasets import load_interactions_table
    from spectra_eval.data.prepare import prepare
    from spectra_probe.training import cpt_corpus_for, export_evaluation_inputs
    from spectra_probe.training import prepare as training_prepare
    from spectra_probe.training.tiny import train_tokenizer

    log = tmp_path / "log.csv"
    write_log(log)
    prepared = training_prepare(load_interactions_table(log))
    tok = train_tokenizer(cpt_corpus_for(prepared) * 5, vocab_size=300)
    tok.save_pretrained(tmp_path / "model")
    for budget in (None, 30, 7):
        export_evaluation_inputs(prepared, tok, tmp_path / f"export{budget}", budget=budget)
        prepare(f"table:{log}", tmp_path / f"prepare{budget}", tokenizer=tmp_path / "model", context_tokens=budget)
        for name in FILES:
            assert (tmp_path / f"export{budget}" / name).read_bytes() == (tmp_path / f"prepare{budget}" / name).read_bytes()
    contexts = (tmp_path / "prepare7" / "contexts.csv").read_text()
    assert contexts != (tmp_path / "prepareNone" / "contexts.csv").read_text()  # the budget did cut
