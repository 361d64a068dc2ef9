"""The demo's fusion stage (paper Appendix E, Table 13): SASRec and GRU4Rec, then ``spectra fuse`` with a probe.

:func:`run_fusion_stage` trains each base ranker once on the evaluation split's history, writes its candidate
files (1 + 99 and 1 + 999 by default: the held-out first future item plus never-seen negatives), the item
categories and the training popularity, and runs ``spectra fuse`` through the CLI once per model and candidate
size, leaving ``fusion-MODEL-negN.json`` in the report directory (``spectra report`` renders them together).
With ``validation=True`` each model is also trained on the nested history split and the fusion weight is chosen
on those candidates (``--select-on``); otherwise the output says lambda was chosen on the test candidates.

:func:`demo_stage` adapts it to the demo's stage registry (``spectra_probe.demo.pipeline.EXTRA_STAGES``): it fuses the
demo's ``probe-yesno`` table.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

from spectra_eval.io import write_frame
from spectra_eval.analyses.lists import item_categories_frame
from spectra_probe.recommenders.data import sequence_data
from spectra_probe.recommenders.pipeline import recommend
from spectra_probe.recommenders.training import preset

log = logging.getLogger(__name__)

BACKBONES = {"sasrec": "SASRec", "gru4rec": "GRU4Rec"}
NEGATIVES = (99, 999)
DEMO_PROBE = "probe-yesno"


def run_fusion_stage(work_dir, data, split, spectra_table, report_dir, *, models: Sequence[str] = tuple(BACKBONES),
                     negatives: Sequence[int] = NEGATIVES, preset_name: str = "demo", epochs: int | None = None,
                     seed: int = 0, validation: bool = False, bootstrap: int = 1000, progress: bool = True) -> dict:
    """Train, write candidates, fuse; returns a summary (per model: training, base NDCG@10, seconds).

    ``data`` is the :class:`~spectra_eval.data.datasets.Interactions` and ``split`` its evaluation split (the
    one ``spectra_table``'s distributions were computed for); ``epochs`` overrides the preset (quick runs).
    """
    from spectra_probe.demo.common import cli  # the demo's way of running a subcommand exactly as a user would

    work, report = Path(work_dir), Path(report_dir)
    work.mkdir(parents=True, exist_ok=True)
    # the same two files for every model (popularity counts the test split's training items): written once
    items, popularity = work / "items.csv", work / "popularity.csv"
    write_frame(items, item_categories_frame(data.items))
    write_frame(popularity, sequence_data(data, split).popularity())
    summary: dict = {"spectra": str(spectra_table), "models": {}, "select_on": "validation" if validation else "test"}
    for model in models:
        start = time.perf_counter()
        config = preset(preset_name, model, epochs=epochs, seed=seed)
        files = {n: work / f"{model}-neg{n}.csv" for n in negatives}
        trained = recommend(data, config, files, split=split, seed=seed, progress=progress)
        val_files = {}
        if validation:
            val_files = {n: work / f"{model}-neg{n}-validation.csv" for n in negatives}
            recommend(data, config, val_files, split=split, which="validation", seed=seed, progress=progress)
        for n, path in files.items():
            cli("fuse", "--candidates", str(path), "--spectra", str(spectra_table), "--items", str(items),
                 "--popularity", str(popularity), "--out", str(report), "--name", f"{model}-neg{n}",
                 "--backbone", BACKBONES[model], "--bootstrap", str(bootstrap), "--seed", str(seed),
                 *(("--select-on", str(val_files[n])) if validation else ()))
        summary["models"][model] = {"training": trained["training"], "candidates": trained["candidates"],
                                    "seconds": round(time.perf_counter() - start, 1)}
        log.info("fusion stage: %s done in %.1f s", model, time.perf_counter() - start)
    return summary


def demo_stage(run) -> None:
    """Stage for ``spectra_probe.demo.pipeline.EXTRA_STAGES``: fuse the demo's probe into SASRec and GRU4Rec, lambda chosen
    on validation candidates (about 150 s on 2 cores for the 943 users; 75 s with ``validation=False``)."""
    prepared = run.prepared
    summary = run_fusion_stage(run.work / "fusion", prepared.data, prepared.split, run.preds[DEMO_PROBE], run.report,
                               epochs=1 if run.max_steps is not None else None, validation=True)
    summary["sentence"] = fusion_sentence(run.report)
    run.summary["fusion"] = summary  # the demo's stage loop times the stage (under "fusion")


def fusion_sentence(report_dir) -> str:
    """What the ``fusion-*.json`` runs in ``report_dir`` show over all users, for the demo's README: per run the
    base ranker's NDCG@k, the chosen lambda and, when it is not 0, the paired difference with Holm's p."""
    import json

    from spectra_eval.analyses.fusion import FusionRuns
    from spectra_eval.report.fusion_tables import run_label

    docs = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(report_dir).glob("fusion-*.json"))}
    if not docs:
        return f"no fusion run was written to {report_dir}."
    runs = FusionRuns.from_dict({"runs": docs}).runs.values()
    parts, gains, losses = [], 0, 0
    for run in runs:
        key, best = run.ndcg_key, run.best_lambda
        base = run.results[run.settings.reference]["all"].metrics[key].mean
        comp = run.comparisons.get(best, {}).get("all")
        part = f"{run_label(run)}: {key.replace('ndcg', 'NDCG')} {base:.3f} alone"
        if comp is None:
            part += f", lambda = {best} chosen on {run.selection.chosen_on} (the probe's prior not used)"
        else:
            e = comp.effect
            gains += e.estimate > 0 and comp.p_holm < 0.05
            losses += e.estimate < 0 and comp.p_holm < 0.05
            part += (f", lambda = {best} chosen on {run.selection.chosen_on}: {e.estimate:+.4f} "
                     f"[{e.ci_low:+.4f}, {e.ci_high:+.4f}], Holm p = {comp.p_holm:.2g}")
        parts.append(part)
    verdict = (f"the probe's prior improves {gains} of {len(parts)} runs significantly" if gains
               else "no run gains significantly from the probe's prior")
    if losses:
        verdict += f", and the lambda chosen on validation makes {losses} significantly worse on test (Holm p < 0.05)"
    return "; ".join(parts) + f". Over all users, {verdict}."
