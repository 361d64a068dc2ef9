r"""Steering kernels: each request's shift, headroom, relative shift and off-target JS, on checked arrays
(definitions: :mod:`spectra_eval.analyses.steering`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spectra_eval.metrics.divergences import _js

LN2 = math.log(2.0)
HEADROOM_MIN = 1e-12


@dataclass(frozen=True)
class PerRequest:
    """Per-request arrays (n,) behind every population's numbers."""

    base_mass: np.ndarray
    steered_mass: np.ndarray
    shift: np.ndarray
    headroom: np.ndarray
    relative_shift: np.ndarray  # NaN where headroom <= HEADROOM_MIN
    off_target_js: np.ndarray  # NaN where undefined


def per_request(base: np.ndarray, steered: np.ndarray, mask: np.ndarray, signs: np.ndarray) -> PerRequest:
    """Shift, headroom, relative shift and off-target JS of each request (module docstring for formulas).

    ``base`` holds each request's user row of B and ``steered`` its row of S, both (n, K) and checked;
    ``mask`` (n, K) marks the target categories; ``signs`` is +1/-1.
    """
    b = np.where(mask, base, 0.0).sum(axis=1)
    s = np.where(mask, steered, 0.0).sum(axis=1)
    shift = signs * (s - b)
    headroom = np.where(signs > 0, 1.0 - b, b)
    has_room = headroom > HEADROOM_MIN
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(has_room, shift / np.where(has_room, headroom, 1.0), np.nan)
    rest_b = np.where(mask, 0.0, base)
    rest_s = np.where(mask, 0.0, steered)
    tot_b, tot_s = rest_b.sum(axis=1), rest_s.sum(axis=1)
    defined = (tot_b > 0) & (tot_s > 0)
    safe = lambda rest, tot: rest / np.where(defined, tot, 1.0)[:, None]  # noqa: E731
    off = np.where(defined, _js(safe(rest_b, tot_b), safe(rest_s, tot_s), LN2), np.nan)
    return PerRequest(b, s, shift, headroom, relative, off)
