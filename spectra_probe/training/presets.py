"""Training presets: the paper's C8 recipe (the defaults of :class:`TrainConfig`) and the CPU demo's tiny one."""
from __future__ import annotations

from dataclasses import dataclass

from spectra_eval.validation import SpectraInputError

C8_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: SFT examples per user and task of the paper's recipe (category-name SFT).
C8_SAMPLES = {"name": 4}


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one stage. Defaults are the paper's C8 recipe for an 8B model.

    ``epochs`` sets the length unless ``max_steps`` is given. The effective batch is
    ``batch_size * grad_accum`` sequences per optimizer step.
    """

    learning_rate: float = 8e-5
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 6
    grad_accum: int = 2
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 2048
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.1
    target_modules: tuple[str, ...] = C8_TARGET_MODULES
    cpt_mode: str = "lora"  # 'lora' (merged after training; an 8B model) or 'full' (a model built from scratch)
    seed: int = 42
    device: str = "auto"  # 'auto' -> cuda when available, else cpu
    dtype: str = "auto"  # 'auto' -> bfloat16 on cuda, float32 on cpu
    log_every: int = 10
    progress: bool = True

    def __post_init__(self):
        if self.cpt_mode not in ("full", "lora"):
            raise SpectraInputError(f"cpt_mode must be 'full' or 'lora', got {self.cpt_mode!r}")
        for name in ("learning_rate", "epochs", "batch_size", "grad_accum", "max_length", "lora_r"):
            if not getattr(self, name) > 0:
                raise SpectraInputError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise SpectraInputError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


#: A small model trained from scratch on 2 CPU cores (the demo): full-weight CPT, then LoRA SFT with a
#: larger learning rate than C8 (a tiny model trained for minutes, not an 8B model trained for a day).
TINY_MODEL = {"hidden_size": 128, "layers": 2, "heads": 4, "kv_heads": 2, "vocab_size": 2000}
TINY_CPT = TrainConfig(learning_rate=3e-3, epochs=1.0, batch_size=16, grad_accum=1, max_length=256,
                       warmup_ratio=0.05, cpt_mode="full", log_every=20)
TINY_SFT = TrainConfig(learning_rate=3e-3, epochs=1.0, batch_size=16, grad_accum=1, max_length=256,
                       lora_r=16, lora_alpha=32, lora_dropout=0.05, log_every=20)
#: Context token budget (about 9 MovieLens items) and SFT examples per user for the demo, so every probe
#: method (name, yesno, choice, dg) reads outputs it was trained for.
TINY_CONTEXT_TOKENS = 128
TINY_SAMPLES = {"name": 3, "yesno": 4, "choice": 2, "dg": 1}
