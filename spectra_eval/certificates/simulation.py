r"""A synthetic population shaped like MovieLens-100k (issue 19), for power, coverage and planning checks.

K = 19 genres with ML-100k's rating shares; items per user :math:`4 + \lfloor \mathrm{LogNormal}(\ln 9.5, 0.9)
\rfloor` capped at 148 (median 13); preferences :math:`\theta^* \sim \mathrm{Dirichlet}(10 \times \text{shares})`;
probe :math:`\lambda\theta^* + (1 - \lambda)\,\text{shares}`; DG uniform over its top 3-6 genres (size uniform)
of a noisy :math:`\theta^*` (log-normal noise, sd ``dg_noise``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ML-100k ratings per genre (Drama ... unknown), normalised to shares
ML100K_GENRE_RATINGS = np.array([39895, 29832, 25589, 21872, 19461, 13753, 12730, 9398, 8055, 7182, 5317, 5245,
                                 4954, 3605, 1854, 1733, 1352, 758, 10], dtype=np.float64)
SHARES = ML100K_GENRE_RATINGS / ML100K_GENRE_RATINGS.sum()


@dataclass(frozen=True)
class Population:
    """One simulated cohort: counts (n, K), latent theta, probe and DG (n, K)."""

    counts: np.ndarray
    theta: np.ndarray
    probe: np.ndarray
    dg: np.ndarray


def items_per_user(n_users: int, rng: np.random.Generator) -> np.ndarray:
    """4 + floor(LogNormal(ln 9.5, 0.9)), capped at 148."""
    return np.minimum(4 + np.floor(rng.lognormal(np.log(9.5), 0.9, size=n_users)).astype(np.int64), 148)


def ml_shaped(n_users: int, lam: float, rng: np.random.Generator, *, concentration: float = 10.0,
              dg_noise: float = 0.5, n_items: np.ndarray | None = None) -> Population:
    """Draw one cohort (see the module docstring); ``n_items`` overrides the items per user."""
    theta = rng.dirichlet(concentration * SHARES, size=n_users)
    theta = np.maximum(theta, 0.0)
    theta /= theta.sum(axis=1, keepdims=True)
    n = items_per_user(n_users, rng) if n_items is None else np.broadcast_to(n_items, (n_users,))
    counts = rng.multinomial(np.asarray(n, dtype=np.int64), theta)
    probe = lam * theta + (1.0 - lam) * SHARES
    noisy = np.log(np.maximum(theta, 1e-300)) + rng.normal(0.0, dg_noise, size=theta.shape)
    order = np.argsort(-noisy, axis=1)
    size = rng.integers(3, 7, size=n_users)
    keep = np.arange(theta.shape[1])[None, :] < size[:, None]
    dg = np.zeros_like(theta)
    np.put_along_axis(dg, order, keep / size[:, None], axis=1)
    return Population(counts, theta, probe, dg)


def near_null(n_users: int, rng: np.random.Generator, *, concentration: float = 10.0) -> Population:
    """A population where the two methods are exchangeable: s and d are the preference mixed half-half with
    independent draws of the same law, so the mean gaps are 0 and each user's Brier gap is positive with
    probability 1/2 (DG has full support: the support fraction is 0)."""
    theta = rng.dirichlet(concentration * SHARES, size=n_users)
    n = items_per_user(n_users, rng)
    counts = rng.multinomial(n, theta)
    probe = 0.5 * theta + 0.5 * rng.dirichlet(concentration * SHARES, size=n_users)
    dg = 0.5 * theta + 0.5 * rng.dirichlet(concentration * SHARES, size=n_users)
    return Population(counts, theta, probe, dg)


def true_values(pop: Population, tau: float = 0.0) -> dict[str, float]:
    """The population statements' true values on this cohort's latent preferences (cohort means)."""
    th, s, d = pop.theta, pop.probe, pop.dg
    gap = ((d - th) ** 2).sum(axis=1) - ((s - th) ** 2).sum(axis=1)
    tv = 0.5 * np.abs(d - th).sum(axis=1) - 0.5 * np.abs(s - th).sum(axis=1)
    return {"support": float((np.where(d <= tau, th, 0.0).sum(axis=1) > 0).mean()),
            "brier_gap": float(gap.mean()), "brier_fraction": float((gap > 0).mean()), "tv_gap": float(tv.mean())}
