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
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from spectra_eval.data.priors import PRIOR_NAMES
from spectra_probe.registry import Registry
from spectra_probe.training.examples import NO_ANSWER, YES_ANSWER

log = logging.getLogger(__name__)

#: method -> extra `spectra probe` flags. SFT trains the yes/no task on the tokens YES_ANSWER/NO_ANSWER
#: (" Yes"/" No"), so the demo's probe reads exactly those (the paper's simplified-verbalizer setting) rather
#: than the default {Yes, Y, y} vs {No, N, n}.
PROBE_METHODS = {
    "yesno": ("--verbalizers-yes", YES_ANSWER, "--verbalizers-no", NO_ANSWER),
    "name": (),
    "choice": (),
    "dg": (),
}
CERTIFIED_PROBE = "probe-yesno"  # the paper's headline readout (logit probing, Eq. 1)


@dataclass
class Stopwatch:
    """Wall-clock seconds per stage, in order."""

    stages: dict = field(default_factory=dict)
    _start: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = round(now - self._start, 1)
        log.info("demo: %s done in %.1f s", name, now - self._start)
        self._start = now


def cli(*argv: str) -> None:
    """Run a ``spectra`` subcommand exactly as a user would; a non-zero status is a demo failure."""
    from spectra_eval.cli import main

    status = main(list(argv))
    if status != 0:
        raise RuntimeError(f"`spectra {' '.join(argv)}` exited with status {status}")


@dataclass
class DemoRun:
    """What the demo's stages share. ``report`` receives cohort-level outputs only (JSON the report renders);
    per-user files stay under ``work``. A stage adds what it wants recorded to ``summary``."""

    work: Path
    report: Path
    evaluation: Path
    prepared: object  # spectra_probe.training.Prepared
    model: Path
    adapter: Path | None  # None when SFT trained every weight (the demo preset): ``model`` is then the SFT model
    files: dict
    preds: dict
    clock: Stopwatch
    summary: dict = field(default_factory=dict)
    max_steps: int | None = None

    @property
    def model_flags(self) -> tuple[str, ...]:
        """The ``spectra probe`` flags that load the demo's trained model (with its adapter, if any)."""
        return ("--model", str(self.model)) + (("--adapter", str(self.adapter)) if self.adapter else ())


#: Stages run after the core pipeline (train, export, probe, evaluate, certify) and before the report, in order:
#: name -> "module:function" taking a DemoRun; each writes its JSON output into ``run.report``.
EXTRA_STAGES = Registry("demo stage", {
    "fusion": "spectra_probe.recommenders.demo_stage:demo_stage",  # paper Appendix E: SASRec, GRU4Rec + SPECTRA prior
    "steering": "spectra_probe.steering_demo:run_steering",  # does the probed distribution follow a stated preference
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
    cli("certify", "--counts", str(files["counts"]), "--probe", str(preds[CERTIFIED_PROBE]), "--dg", str(preds["dg"]),
        "--out", str(run.evaluation))
    clock.lap("certify")

    # the report directory holds only cohort-level outputs (no per-user rows)
    shutil.rmtree(run.report, ignore_errors=True)
    run.report.mkdir(parents=True)
    for name in ("metrics.json", "certificate.json"):
        shutil.copy2(run.evaluation / name, run.report / name)
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
    (run.report / "README.md").write_text(report_readme(metrics, certificate, summary), encoding="utf-8")

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


def report_readme(metrics: dict, certificate: dict, summary: dict) -> str:
    """The report folder's README: what was run, the headline numbers, and what they do and do not show.

    Every number and every verdict is computed here from ``metrics.json``, ``certificate.json`` and the demo
    summary (``summary['vs_history_cohort']``: the comparisons of the second evaluation, reference
    ``history-cohort``), so the text cannot drift from the run.
    """
    methods, versus = metrics["methods"], summary.get("vs_history_cohort", {})
    by_js = sorted(methods, key=lambda name: methods[name]["js"]["mean"])
    rows = "\n".join(
        f"| {name} | {_ci(methods[name]['js'])} | {methods[name]['ndcg@10']['mean']:.3f} | "
        f"{_ci(methods[name]['personalization'])} | {methods[name]['head_bias']:.3f} |" for name in by_js
    )
    probes = [name for name in methods if name.startswith("probe-")]
    reading = "\n".join(f"- {_reading(name, methods, versus)}" for name in probes)
    training, per_user, latent = summary["training"], certificate["per_user"], certificate["latent"]
    preset = summary["preset"]
    dg, truth, head = methods["dg"], metrics["truth"]["bucket_mass"]["head"], metrics["buckets"]["head"]
    best_history = min((n for n in methods if n.startswith("history-") and n != "history-cohort"),
                       key=lambda n: methods[n]["js"]["mean"])
    yesno = methods[summary["certified_probe"]]
    seconds = summary["seconds"]
    stages = ", ".join(f"{name} {value:.0f}" for name, value in seconds.items())
    extra = ""
    if "steering" in summary:
        extra += f"\n**Steering.** {summary['steering']['sentence']}\n"
    if "fusion" in summary:
        extra += (f"\n**Fusion (Appendix E).** {summary['certified_probe']} as a category prior on SASRec and GRU4Rec "
                  f"(`fusion-*.json`, the fusion table in [tables.md](tables.md)): {summary['fusion']['sentence']}\n")
    return f"""# MovieLens-100k demo report (generated by `spectra demo`; regenerate, do not edit)

{summary['n_users']} users, {summary['n_categories']} genres; truth = each user's genre mix in the last 20% of
their ratings. Tables: [tables.md](tables.md) (LaTeX: `tables.tex`, `report.tex`, `report.pdf`); figures in
`figures/`; every number comes from the JSON files in this folder, produced by the pipeline in
`spectra_probe/demo.py` on a 2-core CPU in {sum(seconds.values()) / 60:.1f} minutes (seconds per stage: {stages}).

| method (sorted by JS) | JS (bits) [95% CI] | NDCG@10 | personalization [95% CI] | head bias |
|---|---:|---:|---:|---:|
{rows}

Personalization is the mean over genres of the across-user correlation between predicted and future mass: a
probe that ignores its context scores 0 however good its JS (`history-cohort`, the same cohort-mean mix for
every user, has no varying column, hence no value).

Model: a small Qwen3-architecture model ({_params(preset['model'])}) trained from scratch here, tokenizer included: CPT loss
{training['cpt']['first_loss']:.2f} -> {training['cpt']['last_loss']:.2f}, SFT ({preset['sft_mode']}-weight) loss {training['sft']['first_loss']:.2f} ->
{training['sft']['last_loss']:.2f} (means of the first and last tenth of steps); the SFT task mixture and the
measurements behind it are in `spectra_probe/training/presets.py` (`DEMO`).

## What the run shows

**Does the probe read the user?** Against `history-cohort` (paired Wilcoxon signed-rank on per-user JS):
{reading}

**DG's head bias.** DG decodes a list of genres and spreads its mass uniformly over it: it puts
{dg['bucket_mass']['head']:.3f} of its mass on the {len(head)} head genres ({', '.join(head)}) against the truth's
{truth:.3f}; its head bias (mean over head genres of |mean predicted - mean true mass|) is {dg['head_bias']:.3f}
against {yesno['head_bias']:.3f} for {summary['certified_probe']}, and its
JS is {dg['js']['mean']:.3f} against {yesno['js']['mean']:.3f}: {_dg_words(dg, truth)}

**Certificate** ({summary['certified_probe']} vs dg, sharp chain). On each user's observed future mix,
{per_user['fraction_in_regime']:.3f} of users are in the regime (population lower bound
{per_user['bounds']['in_regime']['pi_lower']:.3f}) and the probe is closer in TV for {per_user['fraction_tv_dominates']:.3f}
(lower bound {per_user['bounds']['tv_dominates']['pi_lower']:.3f}). On the latent preference those future items were
drawn from ({latent['n_obs']['min']}-{latent['n_obs']['max']} counted items per user, median {latent['n_obs']['median']:.0f},
per-user error beta = {latent['beta']}): {latent['regime']['fraction_certified']:.3f} certified in the regime (lower bound
{latent['regime']['pi_lower']:.3f}), {latent['tv_dominates']['fraction_certified']:.3f} certified TV-dominant (lower bound
{latent['tv_dominates']['pi_lower']:.3f}). {_latent_words(latent)} Bounds at alpha = {certificate['settings']['alpha']}.
{extra}
## What it does not show

Every stage is the code path a Qwen3-8B user runs and the numbers are real outputs of it, but the model is
~1M parameters trained for minutes, so none of this is evidence about SPECTRA on a real LLM. Its probes see only
their context ({preset['context_items_mean']:.1f} items on average under a {preset['context_tokens']}-token budget), the
history priors the whole history: against the best of them, {best_history}, {summary['certified_probe']} has mean JS
{yesno['js']['mean']:.3f} vs {methods[best_history]['js']['mean']:.3f} (not tested pairwise here) and personalization
{yesno['personalization']['mean'] or 0:.3f} vs {methods[best_history]['personalization']['mean']:.3f}. {_dg_lead_words(methods)}
"""


def _params(model: dict) -> str:
    return f"{model['layers']} layers, hidden size {model['hidden_size']}, {model['heads']} heads"


def _ci(stat: dict) -> str:
    """``mean [low, high]`` with three decimals, or ``n/a`` when the metric is undefined."""
    if stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.3f} [{stat['ci_low']:.3f}, {stat['ci_high']:.3f}]"


def _reading(name: str, methods: dict, versus: dict) -> str:
    """One sentence per probe: does it personalise (CI of personalization above 0) and beat the cohort prior."""
    pers = methods[name]["personalization"]
    personal = pers.get("ci_low") is not None and pers["ci_low"] > 0
    words = (f"`{name}` personalises (personalization {_ci(pers)})" if personal
             else f"`{name}` does not personalise (personalization {_ci(pers)})")
    js = versus.get(name)
    if js is None:
        return words + "."
    if js["p"] < 0.05:
        verdict = "lower JS than" if js["mean_diff"] < 0 else "higher JS than"
    else:
        verdict = "JS not distinguishable from"
    return (f"{words}; {verdict} `history-cohort`: {js['mean_diff']:+.4f} bits [{js['ci_low']:+.4f}, "
            f"{js['ci_high']:+.4f}], p = {js['p']:.2g}.")


def _dg_words(dg: dict, truth_head: float) -> str:
    over = dg["bucket_mass"]["head"] > truth_head
    return ("DG over-weights the head genres, as the paper's frequency-biased decoding regime predicts." if over
            else "here DG does not over-weight the head genres; its error is elsewhere (mass outside its list).")


def _dg_lead_words(methods: dict) -> str:
    cohort, dg = methods["history-cohort"]["js"]["mean"], methods["dg"]["js"]["mean"]
    if cohort < dg:
        return (f"The probes' lead over DG is mostly DG's short uniform lists (the paper's support-mismatch "
                f"mechanism), not what the model knows: `history-cohort`, which reads no user at all, beats DG too "
                f"(JS {cohort:.3f} against {dg:.3f}).")
    return f"DG (JS {dg:.3f}) beats even the cohort prior here (JS {cohort:.3f}), so its lists carry information."


def _latent_words(latent: dict) -> str:
    if latent["regime"]["fraction_certified"] > 0:
        return "The latent claim, the paper's, holds for the certified users only."
    return (f"No user is certified at the latent level: with a median of {latent['n_obs']['median']:.0f} future items "
            "a user's preference is too uncertain for the per-user test, so the paper's latent claim is not "
            "established here, whatever the observed fractions say.")

