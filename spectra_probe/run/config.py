"""The settings of a probe run (``spectra probe``'s flags), checked when built."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from spectra_eval.validation import SpectraInputError, check_choice
from spectra_probe.backends import BACKENDS
from spectra_probe.backends.vllm import FALLBACKS as VLLM_FALLBACKS
from spectra_probe.scoring import SCORERS, ScorerOptions

from .outputs import output_paths

#: Users per backend call when --batch-size is not given: vLLM schedules its own batches and needs many
#: prompts in flight (K per user) to keep a GPU busy.
DEFAULT_BATCH_SIZE = {"transformers": 8, "vllm": 256}


def parse_engine_args(items) -> dict:
    """``KEY=VALUE`` strings -> ``{KEY: value}``; a value is read as JSON when it parses (``4096``, ``true``,
    ``{"a": 1}``), else kept as text."""
    out = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip().isidentifier():
            raise SpectraInputError(f"--engine-arg must look like KEY=VALUE (e.g. max_num_seqs=512), got {item!r}")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


@dataclass(frozen=True)
class ProbeConfig:
    """Everything a probe run needs: inputs and outputs, the backend, the batching, and the method's options.

    The method's knobs live once, in ``options`` (:class:`~spectra_probe.scoring.base.ScorerOptions`), which
    the scorers read; ``method`` and ``backend`` are stored under their canonical names (``hf`` ->
    ``transformers``).
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
    engine: str = "packed"
    device: str = "cpu"
    dtype: str | None = None  # None: the backend's default (transformers float32, vLLM bfloat16)
    batch_size: int | None = None  # None: the backend's default (DEFAULT_BATCH_SIZE)
    checkpoint_every: int = 64  # 0: only at the end
    shard: str | None = None  # "i/n"
    progress: bool = True
    # vLLM engine sizing (None: vLLM's default); engine_args: further LLM(...) keywords as "KEY=VALUE"
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    max_lora_rank: int | None = None
    engine_args: tuple[str, ...] = ()
    vllm_fallback: str = "error"  # without exact logprob_token_ids: "error", "full-vocab" or "top-n"
    # Ray executor (spectra_probe.run.ray_executor): None runs in this process
    ray: str | None = None  # "local", "auto" or a cluster address
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None  # None: 1 for vLLM or a cuda device, else 0
    options: ScorerOptions = ScorerOptions()

    def __post_init__(self):
        output_paths(self.out)  # an unusable --out fails before any work
        object.__setattr__(self, "method", SCORERS.canonical(self.method))
        object.__setattr__(self, "backend", BACKENDS.canonical(self.backend))
        if not isinstance(self.options, ScorerOptions):
            raise SpectraInputError(f"options must be a ScorerOptions, not {type(self.options).__name__}")
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", DEFAULT_BATCH_SIZE.get(self.backend, 8))
        for flag, value, low in (("batch-size", self.batch_size, 1), ("checkpoint-every", self.checkpoint_every, 0),
                                 ("workers", self.workers, 1)):
            if value < low:
                raise SpectraInputError(f"--{flag} must be >= {low}, got {value}")
        self._check_engine()
        self._check_ray()

    def _check_engine(self) -> None:
        object.__setattr__(self, "engine_args", tuple(self.engine_args))
        sizing = {"max-model-len": self.max_model_len, "gpu-memory-utilization": self.gpu_memory_utilization,
                  "max-lora-rank": self.max_lora_rank, "engine-arg": self.engine_args or None}
        given = [flag for flag, value in sizing.items() if value is not None]
        if self.backend != "vllm" and (given or self.vllm_fallback != "error"):
            raise SpectraInputError(f"--{(given or ['vllm-fallback'])[0]} applies to the vllm backend only")
        # vLLM shares prefixes itself (prefix caching) and applies LoRA at run time: refused, not ignored
        if self.backend == "vllm" and (self.merge_adapter or self.engine != "packed"):
            raise SpectraInputError("--merge-adapter and --engine naive apply to the transformers backend only")
        check_choice(self.vllm_fallback, VLLM_FALLBACKS, name="--vllm-fallback")
        for flag in ("max-model-len", "max-lora-rank"):
            if sizing[flag] is not None and sizing[flag] < 1:
                raise SpectraInputError(f"--{flag} must be >= 1, got {sizing[flag]}")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise SpectraInputError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        parse_engine_args(self.engine_args)

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
        """GPUs each Ray actor declares: ``gpus_per_worker``, else 1 for vLLM or a cuda device, else 0."""
        if self.gpus_per_worker is not None:
            return float(self.gpus_per_worker)
        return 1.0 if self.backend == "vllm" or str(self.device).startswith("cuda") else 0.0

    @classmethod
    def from_args(cls, args) -> "ProbeConfig":
        """The config of parsed CLI arguments (flag names are field names of this class or of its options)."""
        values = vars(args)
        names = {f.name for f in dataclasses.fields(cls)} - {"options"}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None},
                   options=ScorerOptions.from_mapping(values))
