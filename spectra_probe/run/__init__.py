"""Probe-run orchestration: settings, inputs, checkpoint and resume, shards and merge, outputs, the runner.

========================= ===========================================================================
module                    role
========================= ===========================================================================
:mod:`.config`            :class:`ProbeConfig`, the run's settings (the method's options included)
:mod:`.inputs`            contexts, categories, hierarchy, templates and shard, read and checked
:mod:`.checkpoint`        the run fingerprint and the append-only checkpoint (resume)
:mod:`.shards`            ``--shard i/n`` row blocks and ``--merge`` of their outputs
:mod:`.outputs`           output paths, the atomic write of table + raw scores + manifest
:mod:`.runner`            prepare -> executor -> record -> finish; :func:`run_probe` in one process
========================= ===========================================================================
"""
from __future__ import annotations

from .config import ProbeConfig
from .inputs import ProbeInputs, read_categories, read_contexts, read_inputs
from .outputs import ProbeOutput, output_paths
from .runner import ProbePlan, build_scorer, finish, prepare, record, run_probe, score_locally, score_rows
from .shards import merge_parts

__all__ = ["ProbeConfig", "ProbeInputs", "ProbeOutput", "ProbePlan", "build_scorer", "finish", "merge_parts",
           "output_paths", "prepare", "read_categories", "read_contexts", "read_inputs", "record", "run_probe",
           "score_locally", "score_rows"]
