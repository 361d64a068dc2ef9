r"""Steerability: does a probed distribution follow a preference the user states?

Neighbouring work evaluates recommenders that condition on natural-language preferences: Mender's benchmark
("preference discerning": Paischer et al., "Preference Discerning with LLM-Enhanced Generative Retrieval",
TMLR 2025, arXiv:2412.08604) has fine- and coarse-grained steering, sentiment following and history
consolidation axes, scored on the recommended items. Here the object steered is the probed category
*distribution*, so the effect is measured as moved probability mass.

A *request* r asks to move user u's distribution towards (direction ``+``) or away from (``-``) a target T:
one category (e.g. granularity ``fine``) or a group of categories written ``A|B|C`` (e.g. ``coarse``). The
probe is run twice: once on the user's context (the *base* table B, keyed by user) and once on the context
with the preference statement added (the *steered* table S, keyed by request id; ``spectra probe
--requests``). With :math:`d_r = +1` for ``+`` and :math:`-1` for ``-`` and target mass summed over the group,
:math:`B_u(T) = \sum_{c \in T} B_u(c)`:

* **shift** :math:`\Delta_r = d_r\,(S_r(T) - B_u(T))`, in probability; **success** :math:`\Delta_r > 0`;
* **relative shift**: the share of the available headroom that was moved,
  :math:`\Delta_r / (1 - B_u(T))` for ``+`` and :math:`\Delta_r / B_u(T)` for ``-``; a request whose headroom
  is at most :data:`HEADROOM_MIN` (nothing left to move) is left out of its mean and counted
  (``n_no_headroom``);
* **off-target change**: :math:`JS(\bar B_u, \bar S_r)` in bits between the two distributions restricted to
  the non-target categories and renormalised, :math:`\bar B_u(c) = B_u(c) / (1 - B_u(T))` for
  :math:`c \notin T`; how much the statement disturbed the categories it did not name. Undefined (left out,
  counted as ``n_undefined``) when either side has no mass off the target.

Every population (all requests; each direction x granularity group; each single target category) reports
the mean shift with a percentile bootstrap CI (requests resampled with replacement,
``default_rng(seed).integers(0, n, (B, n))`` for a population of n requests), the success rate, the mean
relative shift, the mean off-target JS and the two-sided Wilcoxon signed-rank test of the shifts
(``zero_method='wilcox'``), with Holm's correction across the direction x granularity groups.

:func:`read_requests` is the one reader of a requests file (``spectra probe --requests`` uses it too);
:func:`steer` computes a :class:`SteeringResult` whose ``to_dict()`` is the ``spectra.steering/1`` JSON and
whose ``from_dict`` inverts it.

Layout
------
:mod:`.inputs` (the requests, checked once) -> :mod:`.kernels` (per-request quantities) -> :mod:`.results` (typed
results and their JSON) -> :mod:`.compute` (:func:`steer`, the statistics). The names below are the package's API.
"""
from spectra_eval.analyses.steering.inputs import (DIRECTION_COL, DIRECTIONS, FORM_COL, FORMS, GRANULARITY_COL,
                                                   REQUEST_COL, REQUIRED, TARGET_COL, TARGET_SEP, Requests,
                                                   make_requests, read_requests, requests_from_frame)
from spectra_eval.analyses.steering.kernels import HEADROOM_MIN, PerRequest, per_request
from spectra_eval.analyses.steering.results import (DEFINITIONS, SCHEMA, UNIT, CategoryShift, GroupResult,
                                                    SteeringResult, SteeringSettings)
from spectra_eval.analyses.steering.compute import steer

__all__ = ["DIRECTION_COL", "DIRECTIONS", "FORM_COL", "FORMS", "GRANULARITY_COL", "REQUEST_COL", "REQUIRED",
           "TARGET_COL", "TARGET_SEP", "Requests", "make_requests", "read_requests", "requests_from_frame",
           "HEADROOM_MIN", "PerRequest", "per_request", "DEFINITIONS", "SCHEMA", "UNIT", "CategoryShift",
           "GroupResult", "SteeringResult", "SteeringSettings", "steer"]
