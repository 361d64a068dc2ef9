"""The settings of a probe run (``spectra probe``'s flags), checked when built."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from spectra_eval.validation import SpectraInputError
from spectra_probe.backends import BACKENDS, resolve_options
from spectra_probe.scoring import SCORERS, ScorerOptions

from .outputs import output_paths


@dataclass(frozen=True)
class ProbeConfig:
    """Everything a probe run needs: inputs and outputs, the backend, the batching, and the method's options.

    The method's knobs live once, in ``options`` (:class:`~spectra_probe.scoring.base.ScorerOptions`), which
    the scorers read; the backend's own flags (``--engine`` of transformers, ``--max-model-len`` of vLLM, ...)
    in ``backend_options``, which the backend declares and checks itself
    (:attr:`~spectra_probe.backends.base.Backend.options`, ``check_config``); ``method`` and ``backend`` are
    stored under their canonical names (``hf`` -> ``transformers``).
    """

    model: str
    contexts: str
    categories: str
    method: str
    out: str
    adapter: str | None = None
    merge_adapter: bool = False
    hierarchy: str | None = None
    template: str | None = None
    requests: str | None = None  # steering requests: one row per request (spectra_eval.analyses.steering.read_requests)
    backend: str = "transformers"
    device: str = "cpu"
    dtype: str | None = None  # None: the backend's default (transformers float32, vLLM bfloat16)
    batch_size: int | None = None  # None: the backend's default (Backend.default_batch_size)
    checkpoint_every: int = 64  # 0: only at the end
    shard: str | None = None  # "i/n"
    progress: bool = True
    # the backend's own options (flag dest -> value; the backend's defaults filled in when built)
    backend_options: dict[str, Any] = field(default_factory=dict)
    # Ray executor (spectra_probe.run.ray_executor): None runs in this process
    ray: str | None = None  # "local", "auto" or a cluster address
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None  # None: the backend's (Backend.worker_gpus)
    options: ScorerOptions = ScorerOptions()

    def __post_init__(self):
        output_paths(self.out)  # an unusable --out fails before any work
        object.__setattr__(self, "method", SCORERS.canonical(self.method))
        object.__setattr__(self, "backend", BACKENDS.canonical(self.backend))
        if not isinstance(self.options, ScorerOptions):
            raise SpectraInputError(f"options must be a ScorerOptions, not {type(self.options).__name__}")
        backend = BACKENDS.load(self.backend)
        object.__setattr__(self, "backend_options", resolve_options(self.backend, self.backend_options))
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", backend.default_batch_size)
        for flag, value, low in (("batch-size", self.batch_size, 1), ("checkpoint-every", self.checkpoint_every, 0),
                                 ("workers", self.workers, 1)):
            if value < low:
                raise SpectraInputError(f"--{flag} must be >= {low}, got {value}")
        backend.check_config(self)
        self._check_ray()

    def _check_ray(self) -> None:
        if self.ray is None:
            if self.workers != 1:
                raise SpectraInputError("--workers needs --ray (local, auto or a cluster address)")
            return
        if not str(self.ray).strip():
            raise SpectraInputError("--ray needs local, auto or a cluster address (host:port)")
        if not self.cpus_per_worker > 0:
            raise SpectraInputError(f"--cpus-per-worker must be > 0, got {self.cpus_per_worker}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise SpectraInputError(f"--gpus-per-worker must be >= 0, got {self.gpus_per_worker}")

    @property
    def worker_gpus(self) -> float:
        """GPUs each Ray actor declares: ``gpus_per_worker``, else the backend's default (vLLM 1; transformers 1
        on a cuda device, else 0)."""
        if self.gpus_per_worker is not None:
            return float(self.gpus_per_worker)
        return float(BACKENDS.load(self.backend).worker_gpus(self))

    @classmethod
    def from_args(cls, args) -> "ProbeConfig":
        """The config of parsed CLI arguments (flag names are field names of this class or of its options)."""
        values = vars(args)
        names = {f.name for f in dataclasses.fields(cls)} - {"options", "backend_options"}
        declared = {o.dest for name in BACKENDS.names() for o in BACKENDS.load(name).options}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None},
                   backend_options={k: v for k, v in values.items() if k in declared},
                   options=ScorerOptions.from_mapping(values))
