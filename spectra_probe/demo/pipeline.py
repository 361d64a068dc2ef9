"""The end-to-end MovieLens-100k demo: the paper's whole pipeline on a laptop CPU.

MovieLens-100k (bundled with the installed ``recbole`` package) -> per-user chronological 80/20 split ->
truth and history priors -> a small Qwen3-architecture model trained from scratch (tokenizer trained on the
corpus) -> CPT -> LoRA SFT -> ``spectra probe`` with ``yesno``, ``name``, ``choice`` and ``dg`` ->
``spectra evaluate`` (reference ``dg``) -> ``spectra certify`` -> ``spectra report``.

Every stage calls the same functions and CLI entry points a Qwen3-8B user runs (README shows the GPU
walkthrough); only the model's size differs. Bulky intermediate files (models, per-user tables) go to the
work directory; the report directory receives the JSON outputs and what ``spectra report`` renders.
"""
from __future__ import annotations

import json
import logging
import platform
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from spectra_eval.data.priors import PRIOR_NAMES
from spectra_probe.demo.common import CERTIFIED_PROBE, PROBE_METHODS, DemoRun, Stopwatch, cli
from spectra_probe.demo.readme import VERSUS_COHORT_CERTIFICATE, report_readme
from spectra_probe.registry import Registry

log = logging.getLogger(__name__)


#: Stages run after the core pipeline (train, export, probe, evaluate, certify) and before the report, in order:
#: name -> "module:function" taking a DemoRun; each writes its JSON output into ``run.report``.
EXTRA_STAGES = Registry("demo stage", {
    "fusion": "spectra_probe.demo.fusion_stage:demo_stage",  # paper Appendix E: SASRec, GRU4Rec + SPECTRA prior
    "steering": "spectra_probe.demo.steering_stage:run_steering",  # does the probed distribution follow a stated preference
    "panels": "spectra_probe.demo.panel_stage:run_panels",  # Appendix D robustness panels, Table 15, Figure 6, latency
})


def run_demo(out: str | Path, work: str | Path, *, users: int | None = None, max_steps: int | None = None,
             fresh: bool = False, stages: Sequence[str] | None = None) -> dict:
    """Run the whole pipeline; write the report into ``out`` and intermediates into ``work``.

    ``users`` limits the cohort (first users in id order) and ``max_steps`` each training stage, for quick
    runs (the test suite uses both); ``fresh`` discards the work directory first (otherwise finished stages
    are reused, so an interrupted demo resumes); ``stages`` picks the :data:`EXTRA_STAGES` to run (default all).
    Returns the summary written to ``out/demo.json``.
    """
    import torch

    from spectra_eval.data.datasets import load_movielens_100k_recbole
    from spectra_eval.io import read_frame
    from spectra_probe import training as T

    out, work = Path(out), Path(work)
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    clock = Stopwatch()

    data = load_movielens_100k_recbole()
    if users is not None:
        keep = sorted(data.frame["user_id"].unique(), key=lambda u: (len(u), u))[:users]
        data = replace(data, frame=data.frame[data.frame["user_id"].isin(keep)].reset_index(drop=True))
    prepared = T.prepare(data)
    clock.lap("load and split")

    preset = T.DEMO  # model size, stage configs, context budget, SFT mixture: the reasons are in presets.py
    lora = preset.sft.sft_mode == "lora"
    base, cpt_dir, sft_dir = work / "model-base", work / "model-cpt", work / ("adapter-sft" if lora else "model-sft")
    if not (sft_dir / "train_result.json").exists():
        corpus = T.cpt_corpus_for(prepared)
        T.build_from_scratch(corpus, base, categories=data.categories, **preset.model)
        clock.lap("tokenizer and model")
        T.run_cpt(base, corpus, cpt_dir, replace(preset.cpt, max_steps=max_steps))
        clock.lap("CPT")
        tokenizer = T.load_tokenizer(cpt_dir)
        examples = T.sft_examples_for(prepared, tokenizer, budget=preset.context_tokens, samples=preset.samples,
                                      windows=preset.windows)
        T.run_sft(cpt_dir, examples, sft_dir, replace(preset.sft, max_steps=max_steps))
        clock.lap("LoRA SFT" if lora else "SFT")
    tokenizer = T.load_tokenizer(cpt_dir)
    files = T.export_evaluation_inputs(prepared, tokenizer, work / "data", budget=preset.context_tokens)
    contexts = read_frame(files["contexts"], string_columns=("user_id", "context"))["context"]
    clock.lap("textualise and export")
    model, adapter = (cpt_dir, sft_dir) if lora else (sft_dir, None)
    preds = {}
    run = DemoRun(work, work / "report", work / "evaluation", prepared, model, adapter, files, preds, clock,
                  max_steps=max_steps)
    for method, flags in PROBE_METHODS.items():
        name = "dg" if method == "dg" else f"probe-{method}"
        target = work / "probe" / f"{name}.csv"
        if not target.exists():
            cli("probe", *run.model_flags, "--contexts", str(files["contexts"]), "--categories", str(files["categories"]),
                "--method", method, *flags, "--out", str(target))
            clock.lap(f"probe {method}")
        preds[name] = target
    for name in PRIOR_NAMES:  # the baselines export_evaluation_inputs writes
        preds[name] = files[name]

    cli("evaluate", "--truth", str(files["truth"]), *[a for n, p in preds.items() for a in ("--pred", f"{n}={p}")],
        "--reference", "dg", "--meta", str(files["meta"]), "--out", str(run.evaluation))
    clock.lap("evaluate")
    # the same tables against the cohort prior: JS barely separates a context-blind probe from a personalised
    # one, so the paired test against history-cohort is what says whether reading the user pays
    versus = work / "evaluation-vs-cohort"
    cli("evaluate", "--truth", str(files["truth"]), *[a for n, p in preds.items() for a in ("--pred", f"{n}={p}")],
        "--reference", "history-cohort", "--out", str(versus))
    comparisons = json.loads((versus / "metrics.json").read_text(encoding="utf-8"))["comparisons"]
    run.summary["vs_history_cohort"] = {key.split(" vs ")[0]: {k: c["js"][k] for k in ("mean_diff", "ci_low",
                                                                                       "ci_high", "p")}
                                        for key, c in comparisons.items()}
    clock.lap("evaluate vs history-cohort")
    # latent certificates from the counted future items (observed level: counts / n_u, see export_evaluation_inputs)
    # (population statements too: latent.population); then the skeptic's comparison, the same probe against the
    # cohort prior, which reads no user
    probe_flag = ("--method", f"{CERTIFIED_PROBE}={preds[CERTIFIED_PROBE]}")
    cli("certify", "--counts", str(files["counts"]), *probe_flag, "--versus", f"dg={preds['dg']}",
        "--out", str(run.evaluation))
    cli("certify", "--counts", str(files["counts"]), *probe_flag, "--versus",
        f"history-cohort={preds['history-cohort']}", "--out", str(work / "certify-vs-cohort"))
    clock.lap("certify")

    # the report directory holds only cohort-level outputs (no per-user rows)
    shutil.rmtree(run.report, ignore_errors=True)
    run.report.mkdir(parents=True)
    for name in ("metrics.json", "certificate.json"):
        shutil.copy2(run.evaluation / name, run.report / name)
    shutil.copy2(work / "certify-vs-cohort" / "certificate.json", run.report / VERSUS_COHORT_CERTIFICATE)
    for name in EXTRA_STAGES.names() if stages is None else stages:
        EXTRA_STAGES.load(name)(run)
        clock.lap(name)
    summary = {
        "dataset": "MovieLens-100k (recbole bundled atomic files)",
        "n_users": prepared.truth.n_users,
        "n_categories": len(prepared.truth.categories),
        "methods": list(preds),
        "certified_probe": CERTIFIED_PROBE,
        "preset": {"model": preset.model, "context_tokens": preset.context_tokens, "samples": preset.samples,
                   "windows": list(preset.windows),
                   "sft_mode": preset.sft.sft_mode, "context_items_mean": float((contexts.str.count("\n") + 1).mean())},
        "training": {stage: _training_summary(T.read_train_result(d)) for stage, d in (("cpt", cpt_dir), ("sft", sft_dir))},
        **run.summary,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    cli("report", str(run.report))
    clock.lap("report")
    summary["seconds"] = clock.stages
    (run.report / "demo.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    metrics = json.loads((run.report / "metrics.json").read_text(encoding="utf-8"))
    certificate = json.loads((run.report / "certificate.json").read_text(encoding="utf-8"))
    versus_cohort = json.loads((run.report / VERSUS_COHORT_CERTIFICATE).read_text(encoding="utf-8"))
    (run.report / "README.md").write_text(report_readme(metrics, certificate, summary, versus_cohort),
                                          encoding="utf-8")

    # swap the finished report in: `out` is never left half-written
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    shutil.move(str(run.report), str(out))
    shutil.rmtree(old, ignore_errors=True)
    return summary


def _training_summary(result: dict) -> dict:
    """What ``train_result.json`` says, less the per-step loss list and the machine-specific path."""
    keys = ("stage", "steps", "sequences", "tokens", "seconds", "first_loss", "last_loss")
    return {key: result[key] for key in keys}
