"""The files ``spectra probe`` and ``spectra evaluate`` read, written from a prepared data set with the trained
model's tokenizer: :func:`spectra_eval.data.prepare.write_evaluation_inputs` (what ``spectra prepare`` writes)."""
from __future__ import annotations

from pathlib import Path

from spectra_eval.data.prepare import write_evaluation_inputs

from .examples import Prepared


def export_evaluation_inputs(prepared: Prepared, tokenizer, out_dir, *, budget: int | None = None,
                             n_strata: int = 5, request_seed: int = 0) -> dict[str, Path]:
    """Write the files of :mod:`spectra_eval.data.prepare` for ``prepared``'s evaluation split, contexts cut to
    ``budget`` tokens of ``tokenizer``, atomically, into ``out_dir``. Returns file stem -> final path."""
    return write_evaluation_inputs(prepared.data, prepared.split, prepared.truth, out_dir, tokenizer=tokenizer,
                                   context_tokens=budget, n_strata=n_strata, request_seed=request_seed)
