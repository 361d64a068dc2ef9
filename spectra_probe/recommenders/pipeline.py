"""Train a base ranker and write what ``spectra fuse`` reads: candidates, item categories, popularity.

:func:`recommend` is the whole of ``spectra recommend``: one model trained once on the split's training
sequences, then one candidates file per negative-sample size (1 + N candidates per user; e.g. 99 and 999
share the model). Scores are the model's raw dot products; ``spectra fuse`` standardises them per user.
"""
from __future__ import annotations

import logging
from pathlib import Path
import numpy as np

from spectra_eval.data.datasets import Interactions
from spectra_eval.data.splits import Split
from spectra_eval.io import write_frame
from spectra_eval.analyses.lists import item_categories_frame
from spectra_probe.recommenders.data import candidates_frame, sample_negatives, sequence_data
from spectra_probe.recommenders.training import RecConfig, fit, score

log = logging.getLogger(__name__)


def recommend(data: Interactions, config: RecConfig, outputs: dict[int, str | Path], *, split: Split | None = None,
              which: str = "test", items_out: str | Path | None = None, popularity_out: str | Path | None = None,
              seed: int = 0, progress: bool = True) -> dict:
    """Train ``config`` on ``which`` split of ``data`` and write ``outputs[N]`` (candidates with N negatives).

    Negatives are drawn with ``seed`` (one draw per N, the smaller sets are not nested in the larger).
    Returns a summary: training (config, epochs, seconds, losses), the base ranker's own NDCG@10 / HR@10 /
    MRR per candidate file (pessimistic ties, as ``spectra fuse`` ranks), and the files written.
    """
    from spectra_eval.analyses.fusion import Candidates, candidate_metrics

    seq = sequence_data(data, split, which=which)
    log.info("%s split: %d users, %d items, %.1f training items per user", which, len(seq.users), seq.n_items,
             float(np.mean([len(s) for s in seq.sequences])))
    trained = fit(seq, config, progress=progress)
    summary = {"model": config.model, "split": which, "n_users": len(seq.users), "n_items": seq.n_items,
               "training": trained.summary(), "candidates": {}}
    for n_neg, path in outputs.items():
        negatives = sample_negatives(seq, int(n_neg), seed)
        scores = score(trained, seq, [np.concatenate([[h], neg]) for h, neg in zip(seq.held_out, negatives)])
        frame = candidates_frame(seq, negatives, scores)
        write_frame(path, frame)
        users, user_codes = np.unique(frame["user_id"].to_numpy(dtype=object), return_inverse=True)
        items, item_codes = np.unique(frame["item_id"].to_numpy(dtype=object), return_inverse=True)
        own = candidate_metrics(Candidates.from_arrays(user_codes, users, item_codes, items, frame["score"],
                                                       frame["label"], str(path)), 10)
        summary["candidates"][str(n_neg)] = {"file": str(path), "negatives": int(n_neg), "rows": len(frame),
                                             "ndcg@10": float(own[0].mean()), "hr@10": float(own[1].mean()),
                                             "mrr": float(own[2].mean())}
        log.info("%s, 1+%d candidates: NDCG@10 %.4f, HR@10 %.4f (the base ranker alone)", config.model, n_neg,
                 own[0].mean(), own[1].mean())
    if items_out is not None:
        write_frame(items_out, item_categories_frame(data.items))
        summary["items"] = str(items_out)
    if popularity_out is not None:
        write_frame(popularity_out, seq.popularity())
        summary["popularity"] = str(popularity_out)
    return summary
