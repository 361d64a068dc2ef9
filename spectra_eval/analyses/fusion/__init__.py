r"""Downstream fusion (paper Appendix E, Table 13): SPECTRA's category distribution as a prior on a base ranker.

A base recommender (SASRec, GRU4Rec, anything) scores every candidate item of a user; SPECTRA gives the user a
distribution :math:`\theta_u` over K categories. The fused score re-ranks the candidates and the held-out items'
ranks give NDCG@k, Recall@k and MRR per user, for every fusion weight :math:`\lambda`.

Definitions (exact; the tests recompute each with a per-user loop)
-------------------------------------------------------------------
Candidates of user u: the rows of the candidates file with that ``user_id``; ``label`` 1 marks a held-out
(positive) item, 0 a sampled negative. The paper's protocol has exactly one positive per user.

* Per-user standardisation over u's candidates: :math:`z(x)_i = (x_i - \bar x_u) / \sigma_u`, with the
  population standard deviation :math:`\sigma_u = \sqrt{\tfrac1{m_u}\sum_j (x_j - \bar x_u)^2}`; z = 0 for
  every candidate when :math:`\sigma_u = 0` (to rounding: :math:`\sigma_u \le 10^{-12} \max_j |x_j|`, so a
  column that is constant up to floating-point noise is not blown up into a ranking).
* SPECTRA affinity: :math:`a(u, i) = \frac1{|C_i|}\sum_{c \in C_i} \theta_u(c)`, the mean of the user's
  distribution over the item's categories :math:`C_i` (items file: long ``item_id, category`` rows, or
  ``item_id, categories`` joined by ``|``).
* Fused score: :math:`f_\lambda(u, i) = z(\mathrm{score})_{u,i} + \lambda\, z(a)_{u,i}`; :math:`\lambda = 0`
  is the base ranker alone.
* Rank of a positive p (pessimistic ties):
  :math:`r_p = 1 + \#\{j: f_j > f_p\} + \#\{j \ne p: f_j = f_p\} = \#\{j: f_j \ge f_p\}` over u's candidates
  (other positives included), computed exactly on the fused float64 scores.
* NDCG@k with binary gain: :math:`\mathrm{DCG} = \sum_{p: r_p \le k} 1/\log_2(r_p + 1)`, divided by the ideal
  :math:`\sum_{r=1}^{\min(P_u, k)} 1/\log_2(r + 1)` (:math:`P_u` positives).
* Recall@k: :math:`\#\{p: r_p \le k\} / P_u`. MRR: :math:`1 / \min_p r_p`.
* Popularity slices: the items of the popularity file, sorted by training count (descending, ties by
  ``item_id`` in text order), are cut like category buckets: head = the first :math:`\lfloor n/3 \rfloor`,
  mid = the next :math:`\lfloor (n - head)/2 \rfloor`, tail = the rest. A user belongs to the slice of its
  held-out item; a user whose positives fall in different slices is left out of the slice rows (counted in
  ``population.slice_users.mixed``) but stays in ``all``.

Statistics
----------
Means over users with percentile bootstrap intervals: for ``all``, one draw
``stats.bootstrap_indices(n, B, seed)`` shared by every lambda and metric (so differences between lambdas are
resampled in pairs); for a slice, users are resampled within the slice from ``stats.derived_rng(seed, 3, s)``
(s = 0, 1, 2 for head, mid, tail; fairness's quartiles and strata use keys 1 and 2), one draw shared by
every lambda and metric of that slice. Each lambda > 0 is
compared with lambda = 0 on per-user NDCG@k: mean difference with its paired bootstrap interval (same draw), the
two-sided Wilcoxon signed-rank test (``zero_method='wilcox'``) and Holm's correction across the lambdas > 0,
separately in each slice. ``best_lambda`` maximises mean NDCG@k over all users (ties: the smaller lambda), on the
``--select-on`` candidates (a validation split) when given, otherwise on the test candidates themselves, and
the output says which.

Population: every number is about the users of the candidates file (its held-out items), not about the users
of the distribution table; ``population`` in the output says how many and how their candidate sets look.

Layout
------
:mod:`.inputs` (tables checked once) -> :mod:`.kernels` (vectorised per-user metrics) -> :mod:`.results` (typed
results and their JSON) -> :mod:`.compute` (:func:`fuse`, the statistics). The names below are the package's API.
"""
from spectra_eval.analyses.fusion.inputs import (CANDIDATE_COLUMNS, K, LAMBDAS, POPULARITY_SLICES, SLICES,
                                                 Candidates, ItemCategories, candidates_from_frame,
                                                 item_categories_from_frame, parse_lambdas, popularity_series,
                                                 popularity_slices, read_candidates, read_item_categories,
                                                 read_popularity)
from spectra_eval.analyses.fusion.kernels import (ZERO_STD_RTOL, affinity, candidate_metrics, metric_names,
                                                  per_user_metrics, rank_metrics)
from spectra_eval.analyses.fusion.results import (DEFAULT_NAME, SCHEMA, FusionResult, FusionRuns, FusionSettings,
                                                  LambdaComparison, Population, Selection, SliceResult)
from spectra_eval.analyses.fusion.compute import SELECTION_RULE, fuse

__all__ = ["CANDIDATE_COLUMNS", "K", "LAMBDAS", "POPULARITY_SLICES", "SLICES", "Candidates", "ItemCategories",
           "candidates_from_frame", "item_categories_from_frame", "parse_lambdas", "popularity_series",
           "popularity_slices", "read_candidates", "read_item_categories", "read_popularity", "ZERO_STD_RTOL",
           "affinity", "candidate_metrics", "metric_names", "per_user_metrics", "rank_metrics", "DEFAULT_NAME",
           "SCHEMA", "FusionResult", "FusionRuns", "FusionSettings", "LambdaComparison", "Population", "Selection",
           "SliceResult", "SELECTION_RULE", "fuse"]
