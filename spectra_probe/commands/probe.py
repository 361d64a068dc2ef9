"""``spectra probe``: per-user category distributions from an LLM (and ``--merge`` of shard outputs).

Run::

    spectra probe --model DIR --contexts users.csv --categories cats.txt --method yesno --out probe.csv
    spectra probe ... --shard 0/4 --out part0.csv          # one of 4 contiguous row blocks
    spectra probe --merge part0.csv part1.csv part2.csv part3.csv --out probe.csv
    spectra probe ... --ray auto --workers 8 --out probe.csv   # 8 Ray actors of a running cluster

Writes ``OUT``, ``OUT-stem.scores.EXT`` and ``OUT-stem.manifest.json`` (see :mod:`spectra_probe.run`).
The ``--method`` choices are the scorer registry's (:mod:`spectra_probe.scoring`), the ``--backend`` choices
the backend registry's (:mod:`spectra_probe.backends`), each backend adding its own flags under its own
heading (``Backend.options``); the other flag names are the fields of
:class:`~spectra_probe.run.config.ProbeConfig` and :class:`~spectra_probe.scoring.base.ScorerOptions`.
"""
from __future__ import annotations

import argparse

from spectra_probe.backends import BACKENDS
from spectra_probe.scoring import SCORERS
from spectra_probe.scoring.base import (BRANCH_MODES, CHOICE_LABELS, CHOICE_MODES, DEFAULT_NO, DEFAULT_YES,
                                        NAME_REDUCTIONS)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--model", metavar="DIR", help="local model directory (config.json + safetensors + tokenizer)")
    io.add_argument("--adapter", metavar="DIR", default=None, help="peft LoRA adapter directory")
    io.add_argument("--merge-adapter", action="store_true",
                    help="merge the adapter into the weights after loading (vLLM then serves the merged model)")
    io.add_argument("--contexts", metavar="FILE", help="CSV/Parquet with columns user_id, context")
    io.add_argument("--categories", metavar="FILE", help=".txt, one category label per line")
    io.add_argument("--hierarchy", metavar="FILE", default=None,
                    help="JSON {L1: [L2, ...]} partitioning the categories: hierarchical yes/no probing")
    io.add_argument("--template", metavar="FILE", default=None, help="JSON prompt templates (partial is fine)")
    io.add_argument("--requests", metavar="FILE", default=None,
                    help="steering requests (request_id, user_id, target, direction, granularity[, form]): each "
                         "user's context gets the request's preference statement; output rows keyed by request_id")
    io.add_argument("--out", metavar="FILE", required=True,
                    help="distribution table (.csv/.parquet); .scores and .manifest.json go next to it")
    io.add_argument("--merge", nargs="+", metavar="PART", default=None,
                    help="instead of probing, merge the outputs of --shard runs into --out")

    m = parser.add_argument_group("method")
    m.add_argument("--method", choices=SCORERS.names(), help="scorer (dg and reranker are baselines)")
    m.add_argument("--temperature", type=_positive_float, default=1.0, help="tau in theta = softmax(S / tau)")
    m.add_argument("--verbalizers-yes", nargs="+", metavar="WORD", default=None,
                   help=f"V+ words, each exactly one token as given, e.g. ' Yes' (default: {' '.join(DEFAULT_YES)})")
    m.add_argument("--verbalizers-no", nargs="+", metavar="WORD", default=None,
                   help=f"V- words (default: {' '.join(DEFAULT_NO)})")
    m.add_argument("--verbalizer-space-variants", action="store_true",
                   help="also score each verbalizer word's form with (or without) a leading space")
    m.add_argument("--name-reduce", choices=NAME_REDUCTIONS, default="sum",
                   help="name method: sum or per-token mean of the name's log-probabilities")
    m.add_argument("--choice-labels", choices=CHOICE_LABELS, default="letters",
                   help="choice method: A..Z, AA.. or 1..K")
    m.add_argument("--choice-mode", choices=CHOICE_MODES, default="auto",
                   help="choice method: next-token logit of single-token labels, or full label likelihood")
    m.add_argument("--branches", choices=BRANCH_MODES, default="all",
                   help="hierarchical: which L1 branches to expand")
    m.add_argument("--branches-b", dest="n_branches", type=int, default=None, metavar="B",
                   help="hierarchical: number of branches for top/tail/mix")
    m.add_argument("--k", type=int, default=5, help="dg: length of the generated list")
    m.add_argument("--max-new-tokens", type=int, default=64, help="dg: generation budget")
    m.add_argument("--dg-cutoff", type=float, default=0.8, help="dg: fuzzy-match similarity cutoff")

    e = parser.add_argument_group("engine")
    e.add_argument("--backend", choices=BACKENDS.names(), default="transformers")
    e.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    e.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                   help="weights dtype (default: the backend's: float32 for transformers, bfloat16 for vLLM)")
    e.add_argument("--batch-size", type=int, default=None,
                   help="users per backend call (default: the backend's: " + ", ".join(
                       f"{n} {BACKENDS.load(n).default_batch_size}" for n in BACKENDS.names()) + ")")
    e.add_argument("--checkpoint-every", type=int, default=64, help="users between checkpoint writes (0: at the end)")
    e.add_argument("--shard", metavar="i/n", default=None, help="probe only the i-th (0-based) of n row blocks")
    e.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    for name in BACKENDS.names():  # each backend's own flags (Backend.options), under its own heading
        backend = BACKENDS.load(name)
        if backend.options:
            backend.add_arguments(parser.add_argument_group(backend.options_title or f"{name} backend"))

    r = parser.add_argument_group("Ray (one actor per worker, each with its own backend)")
    r.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="local (start Ray on this machine), auto (join the running cluster) or host:port")
    r.add_argument("--workers", type=int, default=1, help="Ray actors, each holding one backend")
    r.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each actor declares")
    r.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs each actor declares (default: the backend's: 1 for vLLM, for transformers 1 with "
                        "--device cuda, else 0)")


def run(args) -> int:
    from spectra_eval.validation import SpectraInputError
    from spectra_probe.run import ProbeConfig, merge_parts, run_probe
    from spectra_probe.scoring import scorer_class

    if args.merge:
        result = merge_parts(args.out, args.merge)
        print(f"merged {len(args.merge)} parts: {result.table.n_users} users -> {result.paths['distribution']}")
        return 0
    for flag in ("model", "contexts", "categories", "method"):
        if getattr(args, flag) is None:
            raise SpectraInputError(f"--{flag} is required (unless --merge)")
    config = ProbeConfig.from_args(args)
    if config.ray is not None:
        from spectra_probe.run.ray_executor import run_probe_on_ray

        result = run_probe_on_ray(config)
    else:
        result = run_probe(config)
    method = result.manifest["method"]
    line = f"{method}: {result.table.n_users} users x {len(result.table.categories)} categories " \
           f"-> {result.paths['distribution']}"
    scorer = scorer_class(method)
    if scorer.summary_key in result.manifest:
        line += f" ({scorer.summary_text(result.manifest[scorer.summary_key])})"
    print(line)
    return 0
