r"""Calibration of predicted category distributions against soft (empirical) labels.

Binning, shared by every ECE here: ``n_bins`` equal-width bins over the predicted probability, bin
:math:`b` covering :math:`[b/B, (b+1)/B)` and the last bin closed at 1, i.e. a prediction :math:`p`
falls in bin :math:`\min(\lfloor pB \rfloor, B-1)`. With :math:`n_b` pairs in bin :math:`b` out of
:math:`N`,

.. math:: \mathrm{ECE} = \sum_{b:\,n_b>0} \frac{n_b}{N}\,\bigl|\bar p_b - \bar\theta_b\bigr|
          = \frac1N \sum_b \Bigl|\sum_{i \in b} (p_i - \theta_i)\Bigr| \in [0, 1],

where :math:`\bar p_b` and :math:`\bar\theta_b` are the mean predicted and mean true probability in the
bin; empty bins contribute nothing. Everything is computed with ``np.bincount`` on the bin indices.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from spectra_eval.metrics.buckets import Buckets
from spectra_eval.metrics.divergences import _kl
from spectra_eval.validation import check_alpha, check_columns, check_positive_int, check_pred_truth, check_unit

#: Default number of equal-width probability bins of the ECEs (``spectra evaluate --bins``).
N_BINS = 20


@dataclass(frozen=True)
class ReliabilityBin:
    """One non-empty bin of a reliability diagram: bounds, pair count, mean predicted and true probability."""

    lo: float
    hi: float
    n: int
    mean_pred: float
    mean_true: float


@dataclass(frozen=True)
class EceResult:
    """Expected calibration error with the reliability bins it was computed from.

    ``ece`` is NaN and ``bins`` empty when there are no pairs (an empty stratum). ``n_categories`` is the
    number of category columns the pairs came from (None for top-1 ECE, which picks one per user).
    """

    ece: float
    n_pairs: int
    bins: tuple[ReliabilityBin, ...]
    n_categories: int | None = None

    def to_dict(self) -> dict:
        return asdict(self) | {"bins": [asdict(b) for b in self.bins]}

    @classmethod
    def from_dict(cls, data: dict) -> "EceResult":
        bins = tuple(ReliabilityBin(**b) for b in data.get("bins", ()))
        return cls(data["ece"], int(data["n_pairs"]), bins, data.get("n_categories"))


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each prediction: min(floor(p * n_bins), n_bins - 1), so p = 1 lands in the last bin."""
    return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)


def _from_sums(n: np.ndarray, sum_p: np.ndarray, sum_t: np.ndarray, n_categories: int | None) -> EceResult:
    """EceResult from per-bin pair counts and sums of predicted and true probability."""
    n_bins, total = len(n), int(n.sum())
    if total == 0:
        return EceResult(float("nan"), 0, (), n_categories)
    ece = float(np.abs(sum_p - sum_t).sum() / total)
    bins = tuple(
        ReliabilityBin(b / n_bins, (b + 1) / n_bins, int(n[b]), float(sum_p[b] / n[b]), float(sum_t[b] / n[b]))
        for b in np.flatnonzero(n)
    )
    return EceResult(ece, total, bins, n_categories)


def _binned_ece(p: np.ndarray, t: np.ndarray, n_bins: int, n_categories: int | None) -> EceResult:
    """ECE of flat prediction / truth arrays ``p``, ``t`` (already validated)."""
    idx = _bin_index(p, n_bins)
    return _from_sums(
        np.bincount(idx, minlength=n_bins),
        np.bincount(idx, weights=p, minlength=n_bins),
        np.bincount(idx, weights=t, minlength=n_bins),
        n_categories,
    )


def soft_label_ece(pred, truth, n_bins: int = N_BINS, columns: Sequence[int] | None = None) -> EceResult:
    r"""Soft-label ECE over every (user, category) pair.

    Each pair contributes its predicted probability :math:`\hat p_u(c)` and its true probability
    :math:`\theta_u(c)` (the soft label); see the module docstring for the binning and formula.

    Parameters
    ----------
    pred, truth : array_like, shape (n, K) or (K,)
    n_bins : int, default 20
        Number of equal-width bins on [0, 1].
    columns : sequence of int, optional
        Restrict to these category columns (a stratum); all columns by default. Empty -> NaN ECE.

    Returns
    -------
    EceResult
        ``ece``, ``n_pairs`` (= n x number of columns), non-empty reliability ``bins``, ``n_categories``.
    """
    pred, truth = check_pred_truth(pred, truth)
    n_bins = check_positive_int(n_bins, "n_bins")
    cols = check_columns(columns, pred.shape[1])
    return _binned_ece(pred[:, cols].ravel(), truth[:, cols].ravel(), n_bins, len(cols))


def stratified_ece(pred, truth, buckets: Buckets, n_bins: int = N_BINS) -> dict[str, EceResult]:
    r"""Soft-label ECE overall and within each head / mid / tail bucket.

    A bucket's ECE uses only the pairs :math:`(u, c)` with :math:`c` in the bucket, binned and weighted
    within the bucket (:math:`N` = n x bucket size).

    Returns
    -------
    dict
        ``{"overall", "head", "mid", "tail"}`` -> :class:`EceResult`
    """
    pred, truth = check_pred_truth(pred, truth)
    n_bins = check_positive_int(n_bins, "n_bins")
    buckets.check(pred.shape[1])
    return _stratified_ece(pred, truth, buckets, n_bins)


def _stratified_ece(pred: np.ndarray, truth: np.ndarray, buckets: Buckets, n_bins: int) -> dict[str, EceResult]:
    # One pass: bin every pair once, keyed by (bucket, bin); the overall bins are the bucket bins summed.
    code = np.empty(pred.shape[1], dtype=np.int64)
    for i, (_, cols) in enumerate(buckets.items()):
        code[list(cols)] = i
    key = (code[None, :] * n_bins + _bin_index(pred, n_bins)).ravel()
    size = len(buckets.names) * n_bins
    n, sum_p, sum_t = (
        np.bincount(key, weights=w, minlength=size).reshape(-1, n_bins)
        for w in (None, pred.ravel(), truth.ravel())
    )
    out = {"overall": _from_sums(n.sum(axis=0), sum_p.sum(axis=0), sum_t.sum(axis=0), pred.shape[1])}
    for i, (name, cols) in enumerate(buckets.items()):
        out[name] = _from_sums(n[i], sum_p[i], sum_t[i], len(cols))
    return out


def top1_ece(pred, truth, n_bins: int = N_BINS) -> EceResult:
    r"""ECE of each user's single most probable category.

    For user :math:`u` let :math:`c_u = \arg\max_c \hat p_u(c)` (ties: first column). The pairs
    :math:`(\hat p_u(c_u), \theta_u(c_u))`, one per user, are binned as in :func:`soft_label_ece`.

    Returns
    -------
    EceResult
        with ``n_pairs`` = n and ``n_categories`` None.
    """
    pred, truth = check_pred_truth(pred, truth)
    return _top1_ece(pred, truth, check_positive_int(n_bins, "n_bins"))


def _top1_ece(pred: np.ndarray, truth: np.ndarray, n_bins: int) -> EceResult:
    top = pred.argmax(axis=1)[:, None]
    p = np.take_along_axis(pred, top, axis=1).ravel()
    t = np.take_along_axis(truth, top, axis=1).ravel()
    return _binned_ece(p, t, n_bins, None)


def miscalibration_kl(pred, truth, alpha: float = 0.01, unit: str = "bits") -> np.ndarray:
    r"""Steck's (2018) miscalibration :math:`C_{KL}` of each user's prediction.

    .. math:: C_{KL}(\theta_u, \hat p_u) = KL(\theta_u \,\|\, \tilde q_u)
              = \sum_c \theta_u(c) \log \frac{\theta_u(c)}{\tilde q_u(c)}, \qquad
              \tilde q_u = (1-\alpha)\,\hat p_u + \alpha\,\theta_u

    The target distribution :math:`\theta_u` (Steck's p) is the user's *true* distribution and the
    recommended one (Steck's q) is the prediction; the smoothing by :math:`\alpha` keeps the value finite
    (at most :math:`\log(1/\alpha)`). Steck works in nats; this library reports **bits** by default for
    consistency with its divergences (``unit='nats'`` gives Steck's scale).

    Parameters
    ----------
    pred, truth : array_like, shape (n, K) or (K,)
    alpha : float, default 0.01
        Smoothing weight in (0, 1].
    unit : {'bits', 'nats'}

    Returns
    -------
    ndarray, shape (n,)
    """
    divisor = check_unit(unit)
    pred, truth = check_pred_truth(pred, truth)
    return _miscalibration_kl(pred, truth, check_alpha(alpha, upper_closed=True), divisor)


def _miscalibration_kl(pred: np.ndarray, truth: np.ndarray, alpha: float, divisor: float) -> np.ndarray:
    return _kl(truth, (1.0 - alpha) * pred + alpha * truth, divisor)
