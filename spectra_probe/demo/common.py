"""What the demo's stages share: the probe methods it runs, a stopwatch, the way it calls ``spectra``
subcommands, and :class:`DemoRun` (the state handed to every stage). Stages import this module, never the
pipeline, so no stage depends on the code that runs it."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

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
