"""The Ray executor: ``spectra probe ... --ray local|auto|ADDRESS --workers N`` (optional extra ``.[ray]``).

The run is the single-process run with another executor (:mod:`spectra_probe.run.runner`): the driver reads
and checks the inputs (:func:`~spectra_probe.run.inputs.read_inputs`), loads only the tokenizer, and
:func:`~spectra_probe.run.runner.prepare` builds the scorer, the fingerprint and the checkpoint. The pending
rows, cut into the same batches of ``batch_size`` users the local executor makes, stream through a Ray Data
pipeline (``from_items`` -> ``map_batches`` over an actor pool of ``workers`` :class:`ProbeWorker` actors,
``num_cpus``/``num_gpus`` declared per actor). Each actor builds its own backend
(:func:`~spectra_probe.backends.backend_from_config`) and scorer
(:func:`~spectra_probe.run.runner.build_scorer`) once, and scores each batch with
:func:`~spectra_probe.run.runner.score_rows`: the actor is a thin wrapper with no scoring code of its own.
Finished rows come back to the driver as they complete, in any order, and
:func:`~spectra_probe.run.runner.record` appends them to the checkpoint; :func:`~spectra_probe.run.runner.finish`
writes the table, scores and manifest exactly as a local run does (the manifest's ``executor`` says Ray ran it).

Guarantees
----------
* Same numbers: the same batches meet the same backend code, so the outputs equal the single-process run's
  (float32 on CPU: to within 1e-6; in practice identical).
* A killed worker: Ray Data restarts the actor (``max_restarts=-1``) and reruns its unfinished batches
  (``max_task_retries=-1``); a batch is returned whole or not at all. Should the pipeline still fail on a
  system error (a node lost, retries exhausted), the driver starts a new pipeline over the rows still
  pending, up to :data:`PIPELINE_ATTEMPTS` times. Errors raised by the scoring code itself (bad input) are
  not retried: they stop the run with their own message.
* No duplicates: the driver keeps every user it has recorded and drops a row seen twice (a batch rerun
  after its result was delivered).
* Resume: rows reach the checkpoint every ``checkpoint_every`` users; an interrupted run (driver killed,
  Ctrl-C, cluster gone) rerun with the same command skips them, as a local run does, whichever executor
  ran first.

Cluster
-------
``local`` starts a private Ray instance on this machine (stopped at the end); ``auto`` joins the cluster
started on this node with ``ray start``; ``host:port`` (the head's GCS port, 6379 by default) or
``ray://host:10001`` (Ray Client) joins a remote one. If this process already has Ray initialised (a
notebook, a test), that session is used and left running. Every node needs the package installed and the
model (and adapter) directory at the same path; contexts travel with the rows. Worker logs are in Ray's
session directory (``/tmp/ray/session_latest/logs`` on each node) and are echoed to the driver.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from typing import Iterator

from spectra_eval.validation import SpectraInputError
from spectra_probe.backends.base import check_model_dir

from .config import ProbeConfig
from .inputs import read_inputs
from .outputs import ProbeOutput
from .runner import ProbePlan, build_scorer, finish, prepare, record, score_rows

log = logging.getLogger(__name__)

#: Whole pipelines started over the rows still pending before a system failure stops the run.
PIPELINE_ATTEMPTS = 3
#: Most Ray Data blocks (tasks) a run is cut into; one block holds one or more batches.
MAX_BLOCKS = 4096
#: Seconds to wait for a TCP answer from a cluster address before saying it cannot be reached.
CONNECT_TIMEOUT = 5.0


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise SpectraInputError(
            f"--ray needs Ray Data ({exc.__class__.__name__}: {exc}); install it with: pip install -e .[ray]"
        ) from None
    return ray


class ProbeWorker:
    """One Ray Data actor: a backend and a scorer built once from the run's config, then batches scored.

    Parameters
    ----------
    config : ProbeConfig
        The run's config (progress bars off).
    inputs : ProbeInputs
        The run's inputs without their rows (categories, hierarchy, templates).
    threads : int
        torch threads for a transformers backend on CPU (the actor's declared CPUs).
    """

    def __init__(self, config: ProbeConfig, inputs, threads: int):
        from spectra_probe.backends import backend_from_config

        if config.backend == "transformers" and not str(config.device).startswith("cuda"):
            import torch

            torch.set_num_threads(max(1, threads))
        self.backend = backend_from_config(config)
        self.scorer = build_scorer(config, inputs, self.backend.tokenizer)
        import ray

        self.name = f"{ray.get_runtime_context().get_actor_id()}:{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        """Score every batch of users in ``batch["batch"]`` (JSON); return their checkpoint rows as JSON."""
        rows = []
        for text in batch["batch"]:
            item = json.loads(text)
            rows += score_rows(self.scorer, self.backend, item["users"], item["contexts"])
        return {"rows": [json.dumps(rows)], "worker": [self.name], "backend": [json.dumps(self.backend.describe())]}


def _describe_backend(config: ProbeConfig) -> dict:
    """A backend's describe() built where the actors run (a resumed run with nothing left to score)."""
    from spectra_probe.backends import backend_from_config

    return backend_from_config(config).describe()


def merge_descriptions(infos: list[dict]) -> dict:
    """One manifest ``backend`` block from the workers' ``describe()``: shared facts once, counters summed.

    An integer field that differs between workers (e.g. ``approximate_next_logits``) is their sum; any
    other field that differs is the sorted list of its distinct values.
    """
    if not infos:
        return {}
    out = {}
    for key in infos[0]:
        values = [i.get(key) for i in infos]
        if all(v == values[0] for v in values):
            out[key] = values[0]
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out[key] = sum(values)
        else:
            out[key] = sorted({json.dumps(v, sort_keys=True) for v in values})
            out[key] = [json.loads(v) for v in out[key]]
    return out


# ------------------------------------------------------------------ the cluster


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """A one-line SpectraInputError unless something answers on ``address``'s host:port (``ray://`` too)."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SpectraInputError(f"--ray {address}: not an address (use local, auto, host:port or ray://host:port)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise SpectraInputError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc.__class__.__name__}); start one with "
            "'ray start --head' or use --ray local"
        ) from None


@contextlib.contextmanager
def ray_session(address: str, *, num_cpus: int | None = None) -> Iterator[dict]:
    """Connect to (or start) Ray for one run; yield what the manifest records about it.

    ``local`` starts a private instance (``num_cpus``: default all of this machine's) and stops it at the end;
    ``auto`` and addresses connect, and disconnect at the end. A session this process already holds is used
    as it is and left running.
    """
    ray = _import_ray()
    owned = not ray.is_initialized()
    if owned:
        kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, configure_logging=True)
        if address == "local":
            kwargs["num_cpus"] = num_cpus
        else:
            if address != "auto":
                check_reachable(address)
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... with long texts
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise SpectraInputError(f"cannot reach the Ray cluster at {address}: {first}") from None
    else:
        log.info("using the Ray session this process already holds (--ray %s not applied)", address)
    try:
        yield {"address": address, "ray": ray.__version__, "resources": ray.cluster_resources()}
    finally:
        if owned:
            ray.shutdown()


def _check_resources(config: ProbeConfig, resources: dict) -> None:
    """Fail now, not hang, when the cluster cannot hold ``workers`` actors of the declared size."""
    for name, each in (("CPU", config.cpus_per_worker), ("GPU", config.worker_gpus)):
        need, have = config.workers * each, resources.get(name, 0.0)
        if need > have:
            flag = "cpus" if name == "CPU" else "gpus"
            raise SpectraInputError(
                f"--workers {config.workers} x --{flag}-per-worker {each:g} needs {need:g} {name}s; the Ray "
                f"cluster has {have:g}")


# ------------------------------------------------------------------ the executor


def _blocks(plan: ProbePlan, todo: list[int]) -> list[dict]:
    """The pending rows in the plan's batches (as the local executor cuts them), a JSON item each."""
    return [{"batch": json.dumps({"users": [str(u) for u in users], "contexts": contexts})}
            for users, contexts in plan.batches(todo)]


def _system_errors(ray) -> tuple[type, ...]:
    """Ray's errors for a lost worker, node or object (retried), as opposed to errors in the scoring code."""
    from ray import exceptions as rex

    names = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "RaySystemError",
             "OwnerDiedError", "ActorUnavailableError")
    return tuple(getattr(rex, n) for n in names if hasattr(rex, n))


def _user_error(exc: BaseException) -> BaseException | None:
    """The SpectraInputError (or other error of the scoring code) that a Ray task error wraps, if any."""
    seen = exc
    while seen is not None:
        if isinstance(seen, SpectraInputError):
            return seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    return None


def score_on_ray(plan: ProbePlan, infos: dict[str, dict]) -> Iterator[list[dict]]:
    """The Ray executor: yield finished rows as they arrive (for :func:`record`); ``infos`` collects each
    worker's backend description."""
    import ray

    config, inputs = plan.config, plan.inputs
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver draws one bar, in users
    context.enable_operator_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its per-run INFO lines, not our users
    worker_config = dataclasses.replace(config, progress=False)
    bare_inputs = dataclasses.replace(inputs, users=inputs.users[:0], contexts=[])
    seen: set[str] = set()
    todo = plan.pending()
    with plan.progress(todo, f"probe {config.method} (ray)") as bar:
        for attempt in range(1, PIPELINE_ATTEMPTS + 1):
            todo = [i for i in plan.pending() if inputs.users[i] not in seen]
            if not todo:
                return
            items = _blocks(plan, todo)
            dataset = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS)).map_batches(
                ProbeWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=config.workers),
                num_cpus=config.cpus_per_worker,
                num_gpus=config.worker_gpus or None,
                fn_constructor_kwargs={"config": worker_config, "inputs": bare_inputs,
                                       "threads": int(config.cpus_per_worker)})
            arrivals = iter(dataset.iter_rows())
            try:
                for out in arrivals:
                    infos[out["worker"]] = json.loads(out["backend"])
                    rows = [r for r in json.loads(out["rows"]) if r["user_id"] not in seen]
                    seen.update(r["user_id"] for r in rows)
                    bar.update(len(rows))
                    yield rows
                return
            except Exception as exc:
                cause = _user_error(exc)
                if cause is not None:
                    raise cause from None
                if not isinstance(exc, _system_errors(ray)) or attempt == PIPELINE_ATTEMPTS:
                    raise
                log.warning("Ray pipeline failed (%s); restarting it over the %d rows still pending",
                            exc.__class__.__name__, len(plan.pending()))
            finally:
                with contextlib.suppress(Exception):
                    arrivals.close()


def run_probe_on_ray(config: ProbeConfig, *, on_checkpoint=None) -> ProbeOutput:
    """Probe every row of ``config.contexts`` (or of its shard) on Ray and write the outputs.

    ``config.ray`` names the cluster, ``config.workers`` the actors; ``on_checkpoint`` as in :func:`record`.
    The outputs are those of :func:`~spectra_probe.run.runner.run_probe` (see the module docstring).
    """
    from transformers import AutoTokenizer

    if config.ray is None:
        raise SpectraInputError("run_probe_on_ray needs config.ray (local, auto or a cluster address)")
    inputs = read_inputs(config)  # bad input fails before any cluster starts or model loads
    tokenizer = AutoTokenizer.from_pretrained(check_model_dir(config.model))  # the driver needs the tokenizer only
    plan = prepare(config, inputs, tokenizer)
    cpus = max(os.cpu_count() or 1, int(config.workers * config.cpus_per_worker + 0.999))
    with ray_session(config.ray, num_cpus=cpus) as cluster:
        _check_resources(config, cluster["resources"])
        started = time.perf_counter()
        infos: dict[str, dict] = {}
        batches = score_on_ray(plan, infos)
        try:
            record(plan, batches, on_checkpoint)
        finally:
            batches.close()  # an interrupted run stops its pipeline while Ray is still up
        seconds = time.perf_counter() - started
        backend_info = merge_descriptions(list(infos.values()))
        if not backend_info:  # every row came from the checkpoint: describe the backend where workers run
            import ray

            remote = ray.remote(num_cpus=config.cpus_per_worker, num_gpus=config.worker_gpus)(_describe_backend)
            backend_info = ray.get(remote.remote(dataclasses.replace(config, progress=False)))
    executor = {"name": "ray", "address": config.ray, "workers": config.workers,
                "cpus_per_worker": config.cpus_per_worker, "gpus_per_worker": config.worker_gpus,
                "ray": cluster["ray"]}
    return finish(plan, backend_info, seconds, executor)
