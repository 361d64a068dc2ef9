"""Latent certificates (theory/README.md section 5): confidence sets, the separable-maximum relaxation, per-user
type-I error, population coverage by simulation, and power on an easy population."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from spectra_eval.metrics import divergences as dv
from spectra_eval.certificates.latent import (js_upper, latent_certificates, separable_max, simultaneous_box, tv_gap_upper)
from spectra_eval.certificates.bounds import LN2, clopper_pearson, fraction_bound, phi_sharp
from spectra_strategies import distribution


# ------------------------------------------------------------------ Clopper-Pearson and the box


@pytest.mark.parametrize("k, n", [(0, 5), (1, 5), (3, 10), (10, 10), (17, 400), (399, 400)])
@pytest.mark.parametrize("level", [0.05, 0.001])
def test_clopper_pearson_matches_scipy_binomtest(k, n, level):
    lo = stats.binomtest(k, n, alternative="greater").proportion_ci(1 - level, method="exact").low
    hi = stats.binomtest(k, n, alternative="less").proportion_ci(1 - level, method="exact").high
    assert clopper_pearson(k, n, level, "lower") == pytest.approx(lo, abs=1e-12)
    assert clopper_pearson(k, n, level, "upper") == pytest.approx(hi, abs=1e-12)


@pytest.mark.parametrize("n_obs, k", [(5, 4), (30, 19), (200, 6)])
def test_simultaneous_box_covers_theta_with_probability_one_minus_level(n_obs, k):
    rng = np.random.default_rng(n_obs + k)
    level, reps = 0.2, 3000
    theta = rng.dirichlet(np.full(k, 0.7))
    counts = rng.multinomial(n_obs, theta, size=reps)
    lo, hi = simultaneous_box(counts, level)
    missed = ((theta < lo) | (theta > hi)).any(axis=1).mean()
    assert missed <= level + 3 * np.sqrt(level * (1 - level) / reps)


# ------------------------------------------------------------------ Lemma E: the relaxation bounds the maximum


def _grid_max(fn, lo, hi, steps=160):
    """Brute-force max of fn over box x simplex for K = 3 on a grid (a lower bound on the true maximum)."""
    best = -np.inf
    g = np.linspace(0, 1, steps + 1)
    a, b = np.meshgrid(g, g)
    pts = np.stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()], axis=1)
    ok = (pts[:, 2] >= -1e-12) & (pts >= lo - 1e-12).all(axis=1) & (pts <= hi + 1e-12).all(axis=1)
    pts = np.clip(pts[ok], 0, 1)
    if len(pts):
        best = fn(pts).max()
    return best


@settings(max_examples=60)
@given(probe=distribution(3), dg=distribution(3), theta=distribution(3), n_obs=st.integers(2, 60),
       seed=st.integers(0, 10_000))
def test_relaxed_maxima_bound_the_true_maxima(probe, dg, theta, n_obs, seed):
    counts = np.random.default_rng(seed).multinomial(n_obs, theta)[None]
    lo, hi = simultaneous_box(counts, 0.3)
    js_hi = js_upper(probe[None], lo, hi)[0]
    gap_hi = tv_gap_upper(probe[None], dg[None], lo, hi)[0]
    js_best = _grid_max(lambda x: dv._js(probe[None], x), lo, hi)
    gap_best = _grid_max(lambda x: dv._tv(probe[None], x) - dv._tv(dg[None], x), lo, hi)
    if np.isfinite(js_best):
        assert js_hi >= js_best - 1e-12
        assert gap_hi >= gap_best - 1e-12


def test_separable_max_is_exact_for_linear_terms_and_greedy_by_slope():
    # f_c(x) = w_c x: the maximum over {sum x = 1, a <= x <= b} puts mass on the largest w first
    w = np.array([[0.3, 0.9, 0.1]])
    a = np.array([[0.1, 0.0, 0.2]])
    b = np.array([[0.5, 0.4, 0.9]])
    x = np.stack([a, b], axis=-1)
    y = w[..., None] * x
    # start at a (sum 0.3), fill 0.4 into c1 (w = 0.9) then 0.3 into c0 (w = 0.3)
    expected = 0.3 * 0.4 + 0.9 * 0.4 + 0.1 * 0.2
    assert separable_max(x, y)[0] == pytest.approx(expected)
    infeasible = np.stack([a, a + 0.01], axis=-1)  # the box cannot reach sum 1
    assert separable_max(infeasible, w[..., None] * infeasible)[0] == np.inf


# ------------------------------------------------------------------ per-user type-I error (Lemma C)


def _boundary_user(margin):
    """theta* with TV(probe, theta*) - TV(dg, theta*) = margin (> 0: dominance false)."""
    theta = np.array([0.4, 0.3, 0.2, 0.1])
    dg = np.array([0.5, 0.5, 0.0, 0.0])  # TV(dg, theta) = 0.3
    probe = theta + np.array([-0.3 - margin, 0.0, 0.0, 0.3 + margin])  # TV(probe, theta) = 0.3 + margin
    return theta, probe, dg


@pytest.mark.parametrize("n_obs", [40, 400, 4000])
def test_false_dominance_is_certified_at_most_beta_of_the_time(n_obs):
    theta, probe, dg = _boundary_user(0.001)
    assert dv.tv(probe, theta)[0] > dv.tv(dg, theta)[0]  # dominance is false
    beta, reps = 0.2, 4000
    counts = np.random.default_rng(n_obs).multinomial(n_obs, theta, size=reps)
    res = latent_certificates(counts, np.repeat(probe[None], reps, 0), np.repeat(dg[None], reps, 0), beta=beta)
    rate = res.tv_dominates.mean()
    assert rate <= beta + 3 * np.sqrt(beta * (1 - beta) / reps)


def test_false_regime_is_certified_at_most_beta_of_the_time():
    # theta(L^c) - phi(JS(probe, theta)) slightly negative: the latent regime is false
    theta = np.array([0.25, 0.25, 0.3, 0.2])
    dg = np.array([0.5, 0.5, 0.0, 0.0])  # L = {0, 1}, theta(L^c) = 0.5
    probe = np.array([0.02, 0.02, 0.5, 0.46])
    assert phi_sharp(dv.js(probe, theta)[0], "bits") > 0.5
    beta, reps = 0.2, 4000
    counts = np.random.default_rng(5).multinomial(2000, theta, size=reps)
    res = latent_certificates(counts, np.repeat(probe[None], reps, 0), np.repeat(dg[None], reps, 0), beta=beta)
    assert res.regime.mean() <= beta + 3 * np.sqrt(beta * (1 - beta) / reps)


# ------------------------------------------------------------------ population coverage and power


def _population(rng, n_users, k, n_obs):
    """Users of two kinds with known latent truth: probe close to theta* (dominance true) or far (false)."""
    theta = rng.dirichlet(np.full(k, 0.8), n_users)
    good = rng.random(n_users) < 0.6
    noise = rng.dirichlet(np.ones(k), n_users)
    probe = np.where(good[:, None], 0.9 * theta + 0.1 * noise, 0.2 * theta + 0.8 * noise)
    top = np.argsort(-(theta + rng.normal(0, 0.15, theta.shape)), axis=1)[:, :2]
    dg = np.zeros_like(theta)
    np.put_along_axis(dg, top, 0.5, axis=1)
    counts = np.stack([rng.multinomial(m, t) for m, t in zip(n_obs, theta)])
    return theta, probe, dg, counts


def _truths(theta, probe, dg):
    dominates = dv.tv(probe, theta) < dv.tv(dg, theta)
    outside = dg == 0
    regime = phi_sharp(dv.js(probe, theta), "bits") < (theta * outside).sum(axis=1)
    return dominates, regime


@pytest.mark.parametrize("n_range", [(3, 30), (50, 400)])
def test_population_lower_bounds_cover_the_true_fractions(n_range):
    """Over repeated cohorts, pi_lower exceeds the population fraction in at most alpha of them."""
    alpha, beta, cohorts, n_users, k = 0.1, 0.1, 120, 150, 5
    rng = np.random.default_rng(sum(n_range))
    # the population fraction, computed on a very large sample of the same population
    big_theta, big_probe, big_dg, _ = _population(np.random.default_rng(99), 200_000, k, np.ones(200_000, int))
    pi_dom, pi_reg = (z.mean() for z in _truths(big_theta, big_probe, big_dg))
    misses = np.zeros(2)
    for _ in range(cohorts):
        theta, probe, dg, counts = _population(rng, n_users, k, rng.integers(*n_range, n_users))
        res = latent_certificates(counts, probe, dg, beta=beta, alpha=alpha)
        misses += [res.tv_dominates_bound.pi_lower > pi_dom, res.regime_bound.pi_lower > pi_reg]
    allowed = alpha + 3 * np.sqrt(alpha * (1 - alpha) / cohorts)
    assert (misses / cohorts <= allowed).all(), (misses, pi_dom, pi_reg)


def test_latent_dominance_has_power_on_an_easy_population():
    rng = np.random.default_rng(3)
    n_users, k = 400, 19
    theta = rng.dirichlet(np.full(k, 0.5), n_users)
    head = np.argsort(-theta.mean(axis=0))[:3]
    dg = np.zeros_like(theta)
    dg[:, head] = 1 / 3  # DG always lists the same three head categories
    counts = np.stack([rng.multinomial(400, t) for t in theta])
    res = latent_certificates(counts, theta.copy(), dg, beta=0.05, alpha=0.05)
    assert res.tv_dominates_bound.pi_lower > 0.8
    assert res.regime_bound.pi_lower > 0.5


def test_lift_covers_a_certifier_whose_type_one_error_is_exactly_beta():
    """Lemma Lift is tight in the worst case: R = Z or (Bernoulli(beta) when Z = 0)."""
    alpha, beta, pi, n, reps = 0.1, 0.2, 0.3, 200, 3000
    rng = np.random.default_rng(11)
    z = rng.random((reps, n)) < pi
    r = z | (rng.random((reps, n)) < beta)
    lows = np.array([fraction_bound(row, alpha, population="sim", beta=beta).pi_lower for row in r])
    assert (lows > pi).mean() <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)
    plain = np.array([fraction_bound(row, alpha, population="sim").pi_lower for row in r])
    assert (plain > pi).mean() > 0.5  # without the lift the same certifier would overstate pi


# ------------------------------------------------------------------ observed fractions: exact binomial bounds


@pytest.mark.parametrize("pi, n", [(0.05, 40), (0.5, 100), (0.95, 300)])
def test_observed_fraction_bound_coverage_and_cp_dominates_hoeffding(pi, n):
    alpha, reps = 0.05, 4000
    rng = np.random.default_rng(int(pi * 100) + n)
    bounds = [fraction_bound(rng.random(n) < pi, alpha, population="sim") for _ in range(reps)]
    assert np.mean([b.pi_lower > pi for b in bounds]) <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)
    assert all(b.pi_lower >= b.pi_lower_hoeffding - 1e-12 for b in bounds)


def test_js_upper_is_capped_at_one_bit_and_matches_exact_js_on_a_point_box():
    theta = np.array([[0.2, 0.3, 0.5]])
    probe = np.array([[0.6, 0.3, 0.1]])
    value = js_upper(probe, theta, theta)[0]  # a degenerate box: the only point is theta
    assert value == pytest.approx(dv.js(probe, theta, unit="nats")[0], rel=1e-12)
    wide = js_upper(probe, np.zeros((1, 3)), np.ones((1, 3)))[0]
    assert wide <= LN2 + 1e-15


def test_every_false_count_vector_is_refused_on_a_tiny_exhaustive_case():
    """K = 2, n = 6: for every count vector and a false-dominance theta*, certification happens only on counts
    whose probability under theta* sums to at most beta."""
    theta = np.array([0.55, 0.45])
    dg = np.array([1.0, 0.0])  # TV(dg, theta) = 0.45
    probe = np.array([0.0, 1.0])  # TV(probe, theta) = 0.55 > 0.45: dominance false
    beta, n = 0.2, 6
    counts = np.array([[i, n - i] for i in range(n + 1)])
    res = latent_certificates(counts, np.repeat(probe[None], n + 1, 0), np.repeat(dg[None], n + 1, 0), beta=beta)
    prob = stats.binom.pmf(np.arange(n + 1), n, theta[0])
    assert prob[res.tv_dominates].sum() <= beta
    assert list(itertools.compress(range(n + 1), res.tv_dominates)) == [i for i in range(n + 1) if res.tv_dominates[i]]


@settings(max_examples=60)
@given(theta=distribution(5), n_obs=st.integers(1, 200), seed=st.integers(0, 10_000),
       level=st.sampled_from([0.5, 0.05, 1e-4]))
def test_box_always_contains_the_observed_mix(theta, n_obs, seed, level):
    """Box intersected with the simplex is never empty: each Clopper-Pearson interval contains c/n."""
    counts = np.random.default_rng(seed).multinomial(n_obs, theta, size=20)
    lo, hi = simultaneous_box(counts, level)
    mix = counts / n_obs
    assert (lo <= mix).all() and (mix <= hi).all()
