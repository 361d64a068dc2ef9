"""The demo's robustness stage (paper Appendix D, Table 15, Figure 6) on the demo model, through the CLI.

Everything is probed with ``spectra probe``, scored with ``spectra evaluate`` (reference ``dg``) and gathered with
``spectra panel`` into ``panel-NAME.json`` files in the report folder, which ``spectra report`` renders:

* ``taxonomy`` (Table 8): K = 19 (the main evaluation), K = 15 and K = 10 by ``spectra collapse`` of the truth,
  ``probe-yesno`` and ``dg`` through the shipped maps, plus ``probe-yesno-direct``: the probe asked directly with
  the merged labels; ``coherence`` = mean per-user JS between it and the collapsed fine probe.
* ``context`` (Figure 6, Table 10): context window CW in {1, 3, 5, 8} sessions x long-/short-term horizon
  (:func:`spectra_eval.data.splits.context_records`) for up to :data:`CW_USERS` users (a seeded sample when the
  cohort is larger); ``probe-yesno`` and ``dg`` are probed once per distinct context text (both horizons share
  a context, and a window longer than what the token budget keeps gives the same text: on the demo a MovieLens
  rating sitting already fills the 128-token budget, so this is about one probe of the cohort each) and
  evaluated per cell.
* ``prompt`` (Table 9): the canonical ``probe-yesno`` (the demo's " Yes"/" No": SFT trained those tokens, the
  paper's simplified verbalizer), one paraphrase of the yes/no question (:data:`PARAPHRASE`), and the paper's
  default verbalizer sets {Yes, Y, y} / {No, N, n} (with their leading-space forms).
* ``stage`` (Table 15): the same probe on the untrained model (random weights, trained tokenizer), the CPT-only
  model and the final model.
* ``latency.json`` (Table 11): the manifests of the runs on the main contexts, with a packed and a naive run on
  :data:`NAIVE_USERS` users at K = 19 and K = 10 (the packed-vs-naive ratio; the K-linear fit uses K = 10/15/19).

Cost on a quiet 2-core machine, 943 users (estimated from the main probes' times, ~10 s per yes/no run at K = 19
and ~15 s per DG run): two coarse-K probes (~14 s), the CW probes (~25 s), two prompt probes (~20 s), two
stage probes (~20 s), four 100-user latency runs (~8 s), ~20 model loads (~20 s) and 17 evaluations (~10 s):
about 2-2.5 minutes.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CW_USERS = 1000
NAIVE_USERS = 100
SEED = 0
MAPS = ("movielens-k15", "movielens-k10")
WINDOWS = (1, 3, 5, 8)
PROBE = "probe-yesno"
#: one paraphrase of the yes/no question (same intent, same answer words)
PARAPHRASE = {"probe_suffix": "Question: is \"{category}\" the category this user is going to engage with next? "
                              "Answer Yes or No.\nAnswer:"}
#: the paper's canonical verbalizer sets, V+ = {Yes, Y, y}, V- = {No, N, n} (bare and leading-space forms)
DEFAULT_VERBALIZERS = ("--verbalizers-yes", "Yes", "Y", "y", "--verbalizers-no", "No", "N", "n",
                       "--verbalizer-space-variants")


def run_panels(run) -> None:
    """The stage (a :class:`~spectra_probe.demo.common.DemoRun` in; panels, ``latency.json`` into ``run.report``)."""
    import time

    work = run.work / "panels"
    work.mkdir(parents=True, exist_ok=True)
    summary: dict = {"seconds": {}}
    for name, part in (("taxonomy", taxonomy_panel), ("context", context_panel), ("prompt", prompt_panel),
                       ("stage", stage_panel), ("latency", latency_runs)):
        start = time.perf_counter()
        summary[name] = part(run, work / name)
        summary["seconds"][name] = round(time.perf_counter() - start, 1)
        log.info("panel stage: %s done in %.1f s", name, summary["seconds"][name])
    summary["sentences"] = panel_sentences(run.report, summary)
    run.summary["panels"] = summary


# ------------------------------------------------------------------------------------------ helpers


def _probe(run, out: Path, *flags: str, contexts=None, categories=None, model_flags=None) -> Path:
    """``spectra probe`` with the demo's yes/no flags unless ``flags`` name a method; reused when it exists."""
    from spectra_probe.demo.common import PROBE_METHODS, cli

    if not out.exists():
        method = flags if "--method" in flags else ("--method", "yesno", *PROBE_METHODS["yesno"], *flags)
        cli("probe", *(model_flags or run.model_flags), "--contexts", str(contexts or run.files["contexts"]),
            "--categories", str(categories or run.files["categories"]), *method, "--out", str(out), "--no-progress")
    return out


def _evaluate(out: Path, truth, preds: dict) -> Path:
    from spectra_probe.demo.common import cli

    cli("evaluate", "--truth", str(truth), *[a for n, p in preds.items() for a in ("--pred", f"{n}={p}")],
        "--reference", "dg", "--out", str(out))
    return out


def _panel(run, name: str, axis: str, runs: dict, metrics=("ndcg@10", "js"), methods=(PROBE, "dg")) -> dict:
    from spectra_probe.demo.common import cli

    cli("panel", *[a for label, d in runs.items() for a in ("--run", f"{label}={d}")], "--axis", axis,
        "--name", name, "--probe", PROBE, "--reference", "dg", *[a for m in metrics for a in ("--metric", m)],
        *[a for m in methods for a in ("--method", m)], "--out", str(run.report), "--no-report")
    return json.loads((run.report / f"panel-{name}.json").read_text(encoding="utf-8"))


def _sample(users, n: int, seed: int = SEED) -> list[str]:
    users = list(users)
    if len(users) <= n:
        return users
    keep = set(np.random.default_rng(seed).choice(np.array(users, dtype=object), n, replace=False))
    return [u for u in users if u in keep]


# ------------------------------------------------------------------------------------------ the panels


def taxonomy_panel(run, work: Path) -> dict:
    """K = 19 -> 15 -> 10 by collapse, and each coarse K re-probed directly (coherence)."""
    from spectra_eval.data.category_maps import coherence, read_category_map
    from spectra_eval.io import read_distribution_table
    from spectra_probe.demo.common import cli

    runs, coh = {"K19": run.evaluation}, {}
    for name in MAPS:
        cmap = read_category_map(name)
        k = len(cmap.merged_labels)
        d = work / f"k{k}"
        cli("collapse", "--map", name, "--out", str(d), str(run.files["truth"]), str(run.preds[PROBE]),
            str(run.preds["dg"]))
        categories = d / "categories.txt"
        categories.write_text("\n".join(cmap.merged_labels) + "\n", encoding="utf-8")
        direct = _probe(run, run.work / "probe" / f"{PROBE}-k{k}.csv", categories=categories)
        truth = d / Path(run.files["truth"]).name
        collapsed = {name: d / Path(run.preds[name]).name for name in (PROBE, "dg")}
        runs[f"K{k}"] = _evaluate(d / "evaluation", truth, {PROBE: collapsed[PROBE], f"{PROBE}-direct": direct,
                                                            "dg": collapsed["dg"]})
        coh[f"K{k}"] = coherence(read_distribution_table(run.preds[PROBE]), read_distribution_table(direct),
                                  cmap).to_dict()
    _panel(run, "taxonomy", "taxonomy size", runs, methods=(PROBE, f"{PROBE}-direct", "dg"))
    return {"coherence": coh, "maps": list(MAPS)}


def context_panel(run, work: Path) -> dict:
    """CW x horizon cells for a sample of users: probe each (user, CW) context once, evaluate each cell."""
    import pandas as pd

    from spectra_eval.data.splits import context_records
    from spectra_eval.io import (DistributionTable, read_distribution_table, read_frame, write_distribution_table,
                                 write_frame)
    from spectra_eval.data.textualize import textualize
    from spectra_probe.training import DEMO, load_tokenizer

    prepared = run.prepared
    users = _sample(prepared.split.users, CW_USERS)
    records = context_records(prepared.split, windows=WINDOWS)
    keep = records.meta["user"].isin(set(users)).to_numpy()
    meta = records.meta[keep].reset_index(drop=True)
    context_id = meta["user_id"].str.rsplit("|", n=1).str[0]  # both horizons share the (user, CW) context
    ids = list(dict.fromkeys(context_id))
    history = records.history[records.history["user_id"].isin(set(meta["user_id"]))].copy()
    history["user_id"] = history["user_id"].str.rsplit("|", n=1).str[0]
    history = history.drop_duplicates(subset=["user_id", "position"]) if "position" in history else history
    work.mkdir(parents=True, exist_ok=True)
    contexts, unique = work / "contexts.csv", work / "contexts-unique.csv"
    if not unique.exists():
        frame = textualize(history, prepared.data.items, users=ids, budget=DEMO.context_tokens,
                           tokenizer=load_tokenizer(run.model))
        write_frame(contexts, frame[["user_id", "context"]])
        # a window longer than what the token budget keeps gives the same text: each distinct text is probed once
        texts = list(dict.fromkeys(frame["context"]))
        write_frame(unique, pd.DataFrame({"user_id": [f"ctx{j}" for j in range(len(texts))], "context": texts}))
    text = read_frame(contexts, string_columns=("user_id", "context")).set_index("user_id")["context"]
    distinct = read_frame(unique, string_columns=("user_id", "context"))
    text_id = dict(zip(distinct["context"], distinct["user_id"]))
    probes = {PROBE: _probe(run, run.work / "probe" / f"{PROBE}-cw.csv", contexts=unique),
              "dg": _probe(run, run.work / "probe" / "dg-cw.csv", "--method", "dg", contexts=unique)}
    tables = {name: read_distribution_table(path) for name, path in probes.items()}
    truth = records.truth
    row_of = pd.Index(truth.users)
    runs = {}
    for horizon in ("LT", "ST"):
        for w in WINDOWS:
            cell = f"CW{w}-{horizon}"
            cell_ids = meta.loc[meta["cell"] == cell, "user_id"].to_numpy(dtype=object)
            d = work / cell
            d.mkdir(parents=True, exist_ok=True)
            t = DistributionTable(cell_ids, truth.categories, truth.probs[row_of.get_indexer(cell_ids)], cell)
            write_distribution_table(d / "truth.csv", t)
            files = {}
            for name, table in tables.items():
                pos = pd.Index(table.users).get_indexer([text_id[text[i.rsplit("|", 1)[0]]] for i in cell_ids])
                files[name] = d / f"{name}.csv"
                write_distribution_table(files[name], DistributionTable(cell_ids, table.categories, table.probs[pos]))
            runs[cell] = _evaluate(d / "evaluation", d / "truth.csv", files)
    _panel(run, "context", "context window", runs, metrics=("ndcg@10", "js", "top1_ece"))
    window = pd.Series([int(i.rsplit("|cw", 1)[1]) for i in text.index], index=text.index)
    user = pd.Series([i.rsplit("|cw", 1)[0] for i in text.index], index=text.index)
    widest = dict(zip(user[window == max(WINDOWS)], text[window == max(WINDOWS)]))
    same = {int(w): float(np.mean([text[i] == widest.get(user[i]) for i in text.index[window == w]]))
            for w in WINDOWS}
    kept = (text.str.count("\n") + 1).groupby(window).mean()
    return {"n_users": len(users), "n_users_cohort": int(len(prepared.split.users)), "seed": SEED,
            "windows": list(WINDOWS), "context_tokens": DEMO.context_tokens,
            "items_kept_mean": {int(k): float(v) for k, v in kept.items()}, "same_context_as_widest": same,
            "distinct_contexts_probed": len(text_id)}


def prompt_panel(run, work: Path) -> dict:
    """Canonical probe, one paraphrase, the default verbalizer sets."""
    work.mkdir(parents=True, exist_ok=True)
    template = work / "paraphrase.json"
    template.write_text(json.dumps(PARAPHRASE, indent=2) + "\n", encoding="utf-8")
    paraphrase = _probe(run, run.work / "probe" / f"{PROBE}-paraphrase.csv", "--template", str(template))
    default = _probe(run, run.work / "probe" / f"{PROBE}-verbalizers.csv", "--method", "yesno", *DEFAULT_VERBALIZERS)
    truth, dg = run.files["truth"], run.preds["dg"]
    runs = {"canonical ( Yes / No)": run.evaluation,
            "paraphrase": _evaluate(work / "paraphrase", truth, {PROBE: paraphrase, "dg": dg}),
            "{Yes, Y, y} / {No, N, n}": _evaluate(work / "verbalizers", truth, {PROBE: default, "dg": dg})}
    _panel(run, "prompt", "prompt and verbalizer", runs)
    manifest = json.loads(default.with_name(f"{default.stem}.manifest.json").read_text(encoding="utf-8"))
    verbalizers = manifest["scorer"]["verbalizers"]
    return {"paraphrase": PARAPHRASE["probe_suffix"],
            "default_verbalizers": {k: [v["text"] for v in verbalizers[k]] for k in ("yes", "no")}}


def stage_panel(run, work: Path) -> dict:
    """The same probe on the untrained, the CPT-only and the final model."""
    truth, dg = run.files["truth"], run.preds["dg"]
    runs = {}
    for label, model in (("untrained", run.work / "model-base"), ("CPT only", run.work / "model-cpt")):
        slug = label.split()[0].lower()
        probe = _probe(run, run.work / "probe" / f"{PROBE}-{slug}.csv", model_flags=("--model", str(model)))
        runs[label] = _evaluate(work / slug, truth, {PROBE: probe, "dg": dg})
    runs["CPT + SFT (final)"] = run.evaluation
    _panel(run, "stage", "training stage", runs)
    return {"models": {"untrained": "model-base", "CPT only": "model-cpt",
                       "CPT + SFT (final)": str(Path(run.model).name)}}


def latency_runs(run, work: Path) -> dict:
    """Packed and naive yes/no runs on a user sample at K = 19 and 10; ``latency.json`` of the main-context runs."""
    from spectra_eval.analyses.latency import latency
    from spectra_eval.io import read_frame, write_frame

    work.mkdir(parents=True, exist_ok=True)
    contexts = read_frame(run.files["contexts"], string_columns=("user_id", "context"))
    sample = contexts[contexts["user_id"].isin(set(_sample(contexts["user_id"], NAIVE_USERS)))]
    sample_file = work / "contexts-sample.csv"
    write_frame(sample_file, sample)
    k10 = run.work / "panels" / "taxonomy" / "k10" / "categories.txt"
    probe_dir = run.work / "probe"
    for engine in ("packed", "naive"):
        for k, categories in ((19, run.files["categories"]), (10, k10)):
            _probe(run, probe_dir / f"{PROBE}-sample-k{k}-{engine}.csv", "--engine", engine, contexts=sample_file,
                   categories=categories)
    names = [PROBE, f"{PROBE}-k15", f"{PROBE}-k10", "probe-name", "probe-choice", "dg",
             *[f"{PROBE}-sample-k{k}-{e}" for e in ("packed", "naive") for k in (19, 10)]]
    lat = latency({n: probe_dir / f"{n}.manifest.json" for n in names if (probe_dir / f"{n}.manifest.json").exists()})
    lat.save(run.report)
    return {"n_users_sample": int(len(sample)), "runs": names}


# ------------------------------------------------------------------------------------------ sentences


def panel_sentences(report_dir, summary: dict) -> dict:
    """One honest sentence per paper table, computed from the JSON in ``report_dir`` (and the stage summary)."""
    report = Path(report_dir)
    load = lambda name: json.loads((report / name).read_text(encoding="utf-8"))  # noqa: E731
    out = {}
    tax = load("panel-taxonomy.json")
    coh = summary["taxonomy"]["coherence"]
    out["taxonomy"] = _ordering(tax) + " Asked directly with the merged labels, the probe is " + "; ".join(
        f"at K = {k[1:]} {c['mean']:.3f} bits of JS [{c['ci_low']:.3f}, {c['ci_high']:.3f}] from its fine distribution "
        "summed through the map" for k, c in coh.items()) + (
        " (0 would mean the two readings agree, as Eq. 2 on a partition requires; JS is not comparable across K).")
    prompt = load("panel-prompt.json")
    nd = prompt["spread"][PROBE]["ndcg@10"]
    out["prompt"] = (_ordering(prompt) + f" NDCG@10 of {PROBE} varies by {nd['max'] - nd['min']:.3f} across the "
                     f"three prompts (the paper reports at most 0.02 on Qwen3-8B); one paraphrase, so this is a "
                     "range, not a variance across paraphrases.")
    ctx = load("panel-context.json")
    top1 = [ctx["rows"][r]["methods"][PROBE]["top1_ece"]["mean"] for r in ctx["runs"]]
    below = sum(v < 0.01 for v in top1)
    c = summary["context"]
    kept = ", ".join(f"{m:.1f}" for m in c["items_kept_mean"].values())
    same = ", ".join(f"{100 * v:.0f}%" for v in c["same_context_as_widest"].values())
    users = (f"all {c['n_users']} users" if c["n_users"] == c["n_users_cohort"]
             else f"a seeded sample of {c['n_users']} of the {c['n_users_cohort']} users")
    shares = list(c["same_context_as_widest"].values())
    effect = ("so the window length changes nothing the probe reads here; only the horizon differs between rows"
              if min(shares) == 1.0 else "so the shorter windows change part of the contexts")
    out["context"] = (_ordering(ctx) + f" Cells over {users}. Under the {c['context_tokens']}-token budget the "
                      f"contexts keep {kept} items on average at CW = {', '.join(map(str, c['windows']))} sessions, "
                      f"and {same} of them equal the CW = {max(c['windows'])} context, {effect}.")
    out["top1_ece"] = (f"Top-1 ECE of {PROBE} over the {len(top1)} CW x horizon cells ranges {min(top1):.4f}-"
                       f"{max(top1):.4f}; {below} of {len(top1)} cells are below the 1% threshold the paper uses.")
    stage = load("panel-stage.json")
    js = {r: stage["rows"][r]["methods"][PROBE]["js"]["mean"] for r in stage["runs"]}
    best = min(js, key=js.get)
    out["stage"] = (_ordering(stage) + f" The lowest JS of {PROBE} is the {best} model's ({js[best]:.3f}; " +
                    ", ".join(f"{r} {v:.3f}" for r, v in js.items()) + ").")
    lat = load("latency.json")
    fit = lat["fits"].get("yesno", {}).get("packed")
    ratio = lat["ratios"].get("yesno")
    words = []
    if fit:
        words.append(f"yes/no probing costs s/user = {fit['a']:.4f} + {fit['b']:.5f}·K on this machine (least "
                     f"squares over K = {', '.join(map(str, fit['k']))})")
    if ratio:
        words.append(f"the naive engine takes {ratio['mean']:.2f}x the packed engine's time per user")
    dg = next((r for r in lat["runs"] if r["method"] == "dg"), None)
    if dg:
        words.append(f"DG takes {dg['seconds_per_user']:.4f} s/user")
    out["latency"] = ("; ".join(words) + ". Timings are from the machine that ran this demo and move with its load.")
    return out


def _ordering(doc: dict) -> str:
    from spectra_eval.analyses.panels import Panel

    return Panel.from_dict(doc).ordering_sentence()
