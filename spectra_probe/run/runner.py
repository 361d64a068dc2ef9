"""The probe runner: prepare a run, let an executor score its pending rows, record them, finish the outputs.

A run is three steps, so that another executor (e.g. a pool of actors, each with its own backend and
scorer) reuses everything but the scoring loop:

1. :func:`prepare` (inputs already read by :func:`~spectra_probe.run.inputs.read_inputs`, a tokenizer):
   the scorer, the run fingerprint and the opened checkpoint, in a :class:`ProbePlan`;
2. an executor scores :meth:`ProbePlan.pending` rows in batches with :func:`score_rows` (a worker builds its
   scorer with :func:`build_scorer` for its own backend's tokenizer) and :func:`record` appends the finished
   rows to the checkpoint as they arrive; :func:`score_locally` is the in-process executor;
3. :func:`finish` checks the rows, writes the table, the raw scores and the manifest, and removes the
   checkpoint.

:func:`run_probe` chains them in one process.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import pandas as pd

from spectra_eval.io import USER_COL, DistributionTable
from spectra_eval.validation import SpectraInputError, check_distributions
from spectra_probe.backends import backend_from_config
from spectra_probe.scoring import Scorer, make_scorer
from spectra_probe.templates import PromptBuilder

from .checkpoint import Checkpoint, digest, make_row, portable, run_key
from .config import ProbeConfig
from .inputs import ProbeInputs, read_inputs
from .outputs import MANIFEST_SCHEMA, ProbeOutput, final_paths, output_paths, versions, write_outputs

log = logging.getLogger(__name__)


def build_scorer(config: ProbeConfig, inputs: ProbeInputs, tokenizer) -> Scorer:
    """The run's scorer for ``tokenizer`` (every worker builds its own from the same config and inputs)."""
    builder = PromptBuilder(inputs.templates, tokenizer)
    return make_scorer(config.method, inputs.categories, builder, config.options, inputs.hierarchy)


class UsageCounter:
    """A backend seen through a counter of what it is asked (for the manifest's ``latency`` block).

    ``prompts``: one per scored ``prefix + suffix`` and per generation; ``tokens``: those prompts' token counts
    as if each were run alone (prefix tokens + suffix tokens), so the number does not depend on the engine
    (the packed engine computes a shared prefix once; the naive one does not). Generated tokens are not counted.
    """

    def __init__(self, backend):
        self.backend, self.prompts, self.tokens = backend, 0, 0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def _n_tokens(self, text: str) -> int:
        return len(self.backend.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score(self, requests):
        results = self.backend.score(requests)
        for request, result in zip(requests, results):
            self.prompts += len(request.suffixes)
            self.tokens += self._n_tokens(request.prefix) * len(request.suffixes) + int(sum(result.suffix_tokens))
        return results

    def generate(self, prompts, max_new_tokens: int):
        out = self.backend.generate(prompts, max_new_tokens)
        self.prompts += len(prompts)
        self.tokens += sum(self._n_tokens(p) for p in prompts)
        return out


def latency_block(backend_info: dict, seconds: float, users: int, usage: UsageCounter | None) -> dict:
    """The manifest's ``latency``: wall-clock of this session's scoring per user it scored, with the prompts and
    tokens per user (None where the executor did not count them, e.g. Ray workers), engine, device, dtype."""
    return {"seconds": seconds, "users": users, "seconds_per_user": seconds / users if users else None,
            "prompts_per_user": usage.prompts / users if usage is not None and users else None,
            "tokens_per_user": usage.tokens / users if usage is not None and users else None,
            "engine": backend_info.get("engine", backend_info.get("backend")),
            "device": backend_info.get("device"), "dtype": backend_info.get("dtype"),
            "population": "the users scored in this session (resumed rows are not timed)"}


@dataclass
class ProbePlan:
    """A prepared run: its config, inputs and scorer, the fingerprint, the output paths and the checkpoint."""

    config: ProbeConfig
    inputs: ProbeInputs
    scorer: Scorer
    run_key: dict
    paths: dict
    checkpoint: Checkpoint
    resumed: int

    def pending(self) -> list[int]:
        """Indices (into ``inputs.users``) of the rows not yet in the checkpoint, in file order."""
        done = self.checkpoint.rows
        return [i for i, u in enumerate(self.inputs.users) if u not in done]

    def batches(self, todo: Sequence[int]) -> Iterator[tuple[list, list[str]]]:
        """(users, contexts) of the rows ``todo`` in batches of ``batch_size``: how every executor cuts the work."""
        users, contexts, size = self.inputs.users, self.inputs.contexts, self.config.batch_size
        for start in range(0, len(todo), size):
            rows = todo[start:start + size]
            yield [users[i] for i in rows], [contexts[i] for i in rows]

    def progress(self, todo: Sequence[int], desc: str):
        """The run's progress bar in users (stderr; off with ``progress=False``), starting at the rows done."""
        from tqdm.auto import tqdm

        n = len(self.inputs.users)
        return tqdm(total=n, initial=n - len(todo), unit="user", desc=desc,
                    disable=not self.config.progress or None, file=sys.stderr)


def prepare(config: ProbeConfig, inputs: ProbeInputs, tokenizer) -> ProbePlan:
    """Build the scorer, fingerprint the run and open (or resume) its checkpoint."""
    scorer = build_scorer(config, inputs, tokenizer)
    key = run_key(config, inputs, scorer)
    paths = output_paths(config.out)
    shard = list(inputs.shard) if inputs.shard else None
    checkpoint = Checkpoint(paths["checkpoint"], {**key, "shard": shard})
    checkpoint.load()
    users = set(inputs.users)
    stale = [u for u in checkpoint.rows if u not in users]
    if stale:
        raise SpectraInputError(f"{checkpoint.path}: user {stale[0]!r} is not in this run; delete the checkpoint")
    resumed = len(checkpoint.rows)
    if resumed:
        log.info("resuming: %d of %d users already in %s", resumed, len(inputs.users), checkpoint.path)
    return ProbePlan(config, inputs, scorer, key, paths, checkpoint, resumed)


def score_rows(scorer: Scorer, backend, users: Sequence[str], contexts: Sequence[str]) -> list[dict]:
    """Score one batch of rows: the unit of work of every executor, returned as checkpoint rows."""
    out = scorer.score_batch(backend, list(contexts))
    return [make_row(u, out.scores[j], out.probs[j], out.info[j] if out.info else {}) for j, u in enumerate(users)]


def score_locally(plan: ProbePlan, backend) -> Iterator[list[dict]]:
    """The in-process executor: the pending rows in batches of ``batch_size``, with a progress bar."""
    todo = plan.pending()
    with plan.progress(todo, f"probe {plan.config.method}") as bar:
        for users, contexts in plan.batches(todo):
            yield score_rows(plan.scorer, backend, users, contexts)
            bar.update(len(users))


def record(plan: ProbePlan, batches: Iterable[list[dict]],
           on_checkpoint: Callable[[int], None] | None = None) -> None:
    """Append finished rows to the checkpoint every ``checkpoint_every`` rows and at the end.

    ``on_checkpoint(n_done)`` is called after each append (tests use it to interrupt a run).
    """
    every = plan.config.checkpoint_every or len(plan.inputs.users)
    pending: list[dict] = []

    def flush():
        plan.checkpoint.append(pending)
        pending.clear()
        if on_checkpoint is not None:
            on_checkpoint(len(plan.checkpoint.rows))

    for rows in batches:
        pending += rows
        if len(pending) >= every:
            flush()
    if pending:
        flush()


def finish(plan: ProbePlan, backend_info: dict, seconds: float, executor: dict | None = None,
           usage: UsageCounter | None = None) -> ProbeOutput:
    """Write the outputs of a run whose every row is recorded, with its manifest; remove the checkpoint.

    ``backend_info`` is the backend's :meth:`~spectra_probe.backends.base.Backend.describe`; ``seconds``
    the scoring time; ``executor`` what scored the rows (default ``{"name": "local"}``: this process).
    """
    config, inputs, scorer, paths = plan.config, plan.inputs, plan.scorer, plan.paths
    users, categories = inputs.users, inputs.categories
    missing = [u for u in users if u not in plan.checkpoint.rows]
    if missing:
        raise RuntimeError(f"{len(missing)} users were not scored (first: {missing[0]!r})")
    ordered = [plan.checkpoint.rows[u] for u in users]
    source = str(paths["distribution"])
    probs = check_distributions([r["probs"] for r in ordered], source=source, users=users, categories=categories)
    table = DistributionTable(users=users, categories=categories, probs=probs, source=source)
    scores = pd.DataFrame([r["scores"] for r in ordered], columns=list(scorer.score_columns))
    if not scorer.text_scores:
        scores = scores.astype("float64")
    scores.insert(0, USER_COL, users)
    infos = [r["info"] for r in ordered]
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": config.method,
        "model": str(config.model),
        "adapter": config.adapter,
        "adapter_sha256": backend_info.get("adapter_sha256"),
        "merge_adapter": config.merge_adapter,
        "backend": backend_info,
        "engine": backend_info.get("engine", config.backend),
        "tau": config.options.temperature,
        "scorer": plan.run_key["scorer"],
        "template": plan.run_key["template"],
        "template_file": config.template,
        "contexts": str(config.contexts),
        "contexts_sha256": inputs.contexts_sha256,
        "requests": config.requests,
        "requests_sha256": inputs.requests_sha256,
        "categories_file": str(config.categories),
        "categories": list(categories),
        "hierarchy": plan.run_key["hierarchy"],
        "shard": {"index": inputs.shard[0], "count": inputs.shard[1]} if inputs.shard else None,
        "n_users_total": inputs.n_users_total,
        "n_users": len(users),
        "users_resumed": plan.resumed,
        "seconds": seconds,
        "latency": latency_block(backend_info, seconds, len(users) - plan.resumed, usage),
        "executor": executor or {"name": "local"},
        "fallback_suffixes": int(sum(i.get("fallback", 0) for i in infos)),
        "outputs": final_paths(paths),
        "fingerprint_sha256": digest(plan.run_key),
        "merge_sha256": digest(portable(plan.run_key)),
        "versions": versions(),
    }
    summary = scorer.summarise(infos)
    if summary is not None:
        manifest[scorer.summary_key] = summary
    output = write_outputs(paths, table, scores, manifest)
    plan.checkpoint.remove()
    return output


def run_probe(config: ProbeConfig, *, backend=None, on_checkpoint: Callable[[int], None] | None = None) -> ProbeOutput:
    """Probe every row of ``config.contexts`` (or of its shard) in this process and write the outputs.

    ``backend`` may be given (an already built :class:`~spectra_probe.backends.base.Backend`) instead of
    being built from ``config``; ``on_checkpoint`` as in :func:`record`.
    """
    inputs = read_inputs(config)  # bad input fails before any model loads
    backend = backend if backend is not None else backend_from_config(config)
    plan = prepare(config, inputs, backend.tokenizer)
    usage = UsageCounter(backend)
    started = time.perf_counter()
    record(plan, score_locally(plan, usage), on_checkpoint)
    return finish(plan, backend.describe(), time.perf_counter() - started, usage=usage)
