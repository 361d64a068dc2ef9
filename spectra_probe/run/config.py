"""The settings of a probe run (``spectra probe``'s flags), checked when built."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from spectra_eval.validation import SpectraInputError
from spectra_probe.backends import BACKENDS
from spectra_probe.scoring import SCORERS, ScorerOptions

from .outputs import output_paths


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
    backend: str = "transformers"
    engine: str = "packed"
    device: str = "cpu"
    dtype: str | None = None  # None: the backend's default (transformers float32, vLLM bfloat16)
    batch_size: int = 8
    checkpoint_every: int = 64  # 0: only at the end
    shard: str | None = None  # "i/n"
    progress: bool = True
    options: ScorerOptions = ScorerOptions()

    def __post_init__(self):
        output_paths(self.out)  # an unusable --out fails before any work
        object.__setattr__(self, "method", SCORERS.canonical(self.method))
        object.__setattr__(self, "backend", BACKENDS.canonical(self.backend))
        if not isinstance(self.options, ScorerOptions):
            raise SpectraInputError(f"options must be a ScorerOptions, not {type(self.options).__name__}")
        for flag, value, low in (("batch-size", self.batch_size, 1), ("checkpoint-every", self.checkpoint_every, 0)):
            if value < low:
                raise SpectraInputError(f"--{flag} must be >= {low}, got {value}")

    @classmethod
    def from_args(cls, args) -> "ProbeConfig":
        """The config of parsed CLI arguments (flag names are field names of this class or of its options)."""
        values = vars(args)
        names = {f.name for f in dataclasses.fields(cls)} - {"options"}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None},
                   options=ScorerOptions.from_mapping(values))
