"""The demo's steering stage: probe the demo model with stated preferences and measure how its distribution moves.

The exported ``requests.csv`` holds four requests per user (``+``/``-`` x ``fine``/``coarse``, targets drawn from
categories the user has and has not seen; :func:`spectra_eval.analyses.steering.make_requests`). To keep the stage near a
minute on two CPU cores, the requests of a seeded sample of :data:`SAMPLE_USERS` users are probed (all users
when the cohort is smaller). The base is the demo's own ``probe-yesno`` table, and the steered probe uses the same
scorer flags, so the two differ only by the statement. ``spectra steer`` then writes ``steering.json`` into the
report folder, and a sentence about what the numbers show goes into ``run.summary["steering"]``.
"""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SAMPLE_USERS = 400
SEED = 0


def sample_requests(requests: pd.DataFrame, n_users: int = SAMPLE_USERS, seed: int = SEED) -> pd.DataFrame:
    """Every request of ``n_users`` users drawn without replacement (``default_rng(seed)``), in file order."""
    users = pd.unique(requests["user_id"])
    if len(users) <= n_users:
        return requests
    keep = set(np.random.default_rng(seed).choice(users, n_users, replace=False))
    return requests[requests["user_id"].isin(keep)].reset_index(drop=True)


def run_steering(run) -> None:
    """The stage (a :class:`~spectra_probe.demo.common.DemoRun` in, ``steering.json`` into ``run.report``)."""
    from spectra_eval.io import read_frame, write_frame
    from spectra_probe.demo.common import PROBE_METHODS, cli

    work = run.work / "steering"
    work.mkdir(parents=True, exist_ok=True)
    everything = read_frame(run.files["requests"], string_columns=("request_id", "user_id", "target"))
    sample = sample_requests(everything)
    requests = work / "requests-sample.csv"
    write_frame(requests, sample)
    steered = run.work / "probe" / "probe-yesno-steered.csv"
    manifest = steered.with_name("probe-yesno-steered.manifest.json")
    stale = manifest.exists() and json.loads(manifest.read_text())["requests_sha256"] != _sha(requests)
    if not steered.exists() or stale:
        cli("probe", *run.model_flags, "--contexts", str(run.files["contexts"]),
            "--categories", str(run.files["categories"]), "--method", "yesno", *PROBE_METHODS["yesno"],
            "--requests", str(requests), "--out", str(steered))
        run.clock.lap("probe yesno steered")
    cli("steer", "--base", str(run.preds["probe-yesno"]), "--steered", str(steered), "--requests", str(requests),
        "--truth", str(run.files["truth"]), "--out", str(work / "out"))
    shutil.copy2(work / "out" / "steering.json", run.report / "steering.json")
    doc = json.loads((run.report / "steering.json").read_text())
    run.summary["steering"] = {"n_requests": doc["n_requests"], "n_users": doc["n_users"],
                               "n_users_cohort": int(everything["user_id"].nunique()), "seed": SEED,
                               "sentence": steering_sentence(doc, int(everything["user_id"].nunique()))}


def _sha(path) -> str:
    from spectra_probe.backends.base import sha256_file

    return sha256_file(path)


def steering_sentence(doc: dict, n_cohort: int, alpha: float = 0.05) -> str:
    """What a steering.json shows, in plain words, with its numbers (for the demo report's README).

    A group counts as steered when its Holm-adjusted Wilcoxon p is below ``alpha``; the sentence then says
    whether it moved the target's mass the stated way (shift > 0) or against it.
    """
    o, ci = doc["overall"], doc["overall"]["shift"]
    sampled = (f"{doc['n_requests']} requests of {doc['n_users']} users" +
               (f", a seeded sample of the {n_cohort}" if doc["n_users"] < n_cohort else ""))
    groups = [(d, g, r) for d, gs in doc["by"].items() for g, r in gs.items()]
    steered = [(d, g, r) for d, g, r in groups if r.get("p_holm") is not None and r["p_holm"] < alpha]
    if not steered:
        reading = (f"no direction x granularity group's shift differs from zero (Holm-adjusted Wilcoxon p >= {alpha:g} "
                   f"in all {len(groups)}) and success rates stay near one half, so the statements do not measurably "
                   "steer this model's distribution")
    else:
        way = lambda shift: "the stated way" if shift > 0 else "against the statement"  # noqa: E731
        reading = f"groups whose shift differs from zero (Holm p < {alpha:g}): " + "; ".join(
            f"{d} {g} {r['shift']['mean']:+.2g} ({way(r['shift']['mean'])})" for d, g, r in steered)
        raised = {d for d, _, r in steered if (r["shift"]["mean"] > 0) == (d == "+")}  # the target's mass went up
        if raised == {"+", "-"} and all((r["shift"]["mean"] > 0) == (d == "+") for d, _, r in steered):
            reading += (" - the named genres gain mass whichever way the statement points, a mention effect "
                        "rather than steering")
    return (f"Steering ({sampled}): mean shift of the target's probability mass {ci['mean']:+.2g} "
            f"(95% CI {ci['ci_low']:+.2g} to {ci['ci_high']:+.2g}), success rate {o['success_rate']:.2f}, off-target "
            f"JS {o['off_target_js']['mean']:.2g} bits; {reading}. The model never saw a preference statement in "
            "training, so this shows that the steering pipeline runs end to end on the demo model, not whether "
            "SPECTRA follows stated preferences.")
