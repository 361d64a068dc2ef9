"""Theorems 1-4 on random instances: regime => TV dominance, Theorem 1 and 4 implications, Theorem 2, eqs. 9-10."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from spectra_eval.metrics import divergences as dv
from spectra_eval.certificates.observed import (
    LINF_CERTIFICATES,
    _theorem1,
    _theorem4,
    aggregate_readings,
    mass_captured,
    ranking_gap,
    regime,
    theorem1,
    top_k_mask,
)
from spectra_eval.certificates.bounds import (
    dg_miss_probability_bound,
    dg_miss_ratio_bound,
    expected_gain_lower_bound,
    hoeffding_radius,
    phi_sharp,
    schur_metric,
)
from spectra_eval.validation import SpectraInputError
from spectra_strategies import distribution, triples


def _near(truth, noise, scale):
    """A probe close to the truth: a random direction of size ~scale, projected back onto the simplex."""
    probe = np.clip(truth + scale * (noise - noise.mean()), 0, None)
    return probe / probe.sum()


@given(triples())
def test_regime_implies_tv_dominance(triple):
    truth, probe, dg = triple
    r = regime(truth[None], probe[None], dg[None])
    if r.in_regime[0]:
        assert r.tv_probe[0] < r.tv_dg[0]


@pytest.mark.parametrize("certificate", [n for n, c in LINF_CERTIFICATES.items() if c.valid])
@given(triple=triples(min_k=4, max_k=9), scale=st.sampled_from([0.0, 1e-3, 0.02, 0.2]), k=st.integers(1, 3))
def test_theorem1_implication(certificate, triple, scale, k):
    truth, noise, dg = triple
    probe = _near(truth, noise, scale)
    res = theorem1(truth[None], probe[None], dg[None], k=k, certificate=certificate)
    assert res.epsilon[0] >= dv.linf(probe, truth)[0] - 1e-12  # the certificate bounds l_inf
    if res.favorable[0]:
        assert res.probe_recovers_truth[0] and res.gain[0] > 0
        assert res.gain[0] >= res.gap[0] - 1e-12  # swap argument: gain >= j * Delta_k >= Delta_k


def test_invalid_certificate_can_mislead():
    """With the paper's operational pinsker_topsoe epsilon, Theorem 1's conclusion can fail."""
    truth = np.array([[0.55, 0.45]])  # Delta_1 = 0.1
    probe = np.array([[0.495, 0.505]])  # swaps the order: l_inf = 0.055 >= Delta_1 / 2
    dg = np.array([[0.0, 1.0]])
    assert LINF_CERTIFICATES["pinsker_topsoe"].fn(truth, probe)[0] < dv.linf(probe, truth)[0]
    with pytest.raises(SpectraInputError, match="not a valid l_inf bound.*--allow-invalid"):
        theorem1(truth, probe, dg, k=1, certificate="pinsker_topsoe")
    res = theorem1(truth, probe, dg, k=1, certificate="pinsker_topsoe", allow_invalid=True)
    assert not res.certificate_valid
    assert res.favorable[0] and not res.probe_recovers_truth[0] and res.implication_violations == 1


@settings(suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), n_cat=st.integers(3, 8), f_name=st.sampled_from(["identity", "exp_gain", "sqrt"]))
def test_theorem4_schur_isotone(data, n_cat, f_name):
    """Type-S and Type-O (DCG weights) metrics: favorable (with the stronger Type-O gap) => strict dominance,
    whatever order DG lists its categories in."""
    f = {"identity": lambda x: x, "exp_gain": lambda x: 2.0 ** x - 1, "sqrt": np.sqrt}[f_name]
    truth = data.draw(distribution(n_cat))
    k = data.draw(st.integers(1, n_cat - 1))
    ordered = -np.sort(-truth)
    gap = min(ordered[k - 1] - ordered[k], np.min(-np.diff(ordered[:k])) if k > 1 else np.inf)
    assume(gap > 1e-9)
    direction = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=n_cat, max_size=n_cat)))
    probe = _near(truth, direction, data.draw(st.floats(0, 1)) * gap / 4)
    listed = np.array(data.draw(st.permutations(range(n_cat)))[:k])
    top_truth = set(np.argsort(-truth, kind="stable")[:k])
    assume(dv.linf(probe, truth)[0] < gap / 2 and set(listed) != top_truth)
    probe_order = np.argsort(-probe, kind="stable")[:k][None]
    weights = 1 / np.log2(np.arange(2, k + 2))
    for w in (None, weights):
        ours = schur_metric(truth[None], probe_order, f, w)[0]
        for perm in itertools.permutations(listed):
            assert ours > schur_metric(truth[None], np.array([perm]), f, w)[0]


def test_theorem4_strictness_needs_strictly_increasing_f():
    """The paper allows non-decreasing f; a constant f satisfies every hypothesis yet gives equality."""
    truth = np.array([[0.5, 0.3, 0.2]])
    probe = truth.copy()
    const = lambda x: np.ones_like(x)  # noqa: E731
    ours = schur_metric(truth, top_k_mask(probe, 1).nonzero()[1][None], const)
    dg = schur_metric(truth, np.array([[2]]), const)
    assert ours[0] == dg[0]


@given(st.floats(0, 3), st.floats(1.01, 1e4), st.floats(0, 3), st.integers(1, 10), st.integers(3, 12),
       st.randoms(use_true_random=False))
def test_theorem2_ratio_and_miss_probability(B, rho, lam, k, K, rnd):
    """Frequency-biased softmax meeting the hypotheses: eq. (7) holds; i.i.d. selection steps obey eq. (8)."""
    freq = np.array([rnd.uniform(0.1, 1.0) for _ in range(K)])
    head = int(np.argmax(freq))
    star = (head + 1) % K
    freq[star] = freq[head] / rho * rnd.uniform(0.01, 1.0)  # f(c*)/max f <= 1/rho
    z = np.array([rnd.uniform(-5, 5) for _ in range(K)])
    z[star] = z[head] + rnd.uniform(-B, B)  # |z(c*) - z(head)| <= B
    logits = z + lam * np.log(freq)
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    assert pi[star] / pi[head] <= dg_miss_ratio_bound(B, rho, lam) * (1 + 1e-9)
    p_included = 1 - (1 - pi[star]) ** k  # k independent selection steps
    assert 1 - p_included >= dg_miss_probability_bound(k, B, rho, lam) - 1e-12


def test_theorem2_rejects_bad_parameters():
    with pytest.raises(SpectraInputError):
        dg_miss_ratio_bound(0.0, 1.0, 1.0)


@given(st.lists(st.floats(-1, 1), min_size=1, max_size=50), st.lists(st.booleans(), min_size=50, max_size=50))
def test_eq9_expectation_lower_bound_on_empirical_measure(gains, fav):
    """Eq. (9) as an identity-plus-inequality on any finite population with |Gain| <= 1."""
    g = np.array(gains)
    f = np.array(fav[: len(g)])
    if f.any():
        assert g.mean() >= expected_gain_lower_bound(f.mean(), g[f].mean()) - 1e-12


def test_eq10_hoeffding_coverage_by_simulation():
    rng = np.random.default_rng(0)
    n, reps, alpha = 200, 4000, 0.1
    gains = rng.choice([-1.0, 1.0], p=[0.4, 0.6], size=(reps, n))  # worst case: mass at the ends
    radius = hoeffding_radius(n, alpha)
    assert math.isclose(radius, math.sqrt(2 * math.log(2 / alpha) / n))
    coverage = (np.abs(gains.mean(axis=1) - 0.2) <= radius).mean()
    assert coverage >= 1 - alpha


def test_theorem1_helpers_by_hand():
    truth = np.array([[0.4, 0.3, 0.2, 0.1]])
    assert ranking_gap(truth, 2)[0] == pytest.approx(0.1)
    mask = top_k_mask(np.array([[0.2, 0.2, 0.5, 0.1]]), 2)  # tie: earlier column wins
    assert mask.tolist() == [[True, False, True, False]]
    assert mass_captured(truth, mask)[0] == pytest.approx(0.6)
    res = theorem1(truth, truth, np.array([[0.5, 0.0, 0.5, 0.0]]), k=2)
    assert res.favorable[0] and res.gain[0] == pytest.approx(0.1) and res.epsilon[0] == 0
    with pytest.raises(SpectraInputError, match="k"):
        theorem1(truth, truth, truth, k=4)


def test_certificate_family_order():
    """direct l_inf is the tightest epsilon, so it has the largest favorable cohort."""
    rng = np.random.default_rng(1)
    truth = rng.dirichlet(np.ones(8) * 0.5, size=300)
    probe = np.array([_near(t, rng.normal(size=8), 0.01) for t in truth])
    dg = np.zeros_like(truth)
    dg[np.arange(300), rng.integers(0, 8, 300)] = 1.0
    fractions = {n: theorem1(truth, probe, dg, k=1, certificate=n).fraction_favorable
                 for n, c in LINF_CERTIFICATES.items() if c.valid}
    assert max(fractions.values()) == fractions["direct_linf"] > 0
    assert fractions["direct_linf"] >= fractions["tv"] >= fractions["sharp_js"]


@given(st.lists(triples(min_k=4, max_k=4), min_size=1, max_size=12))
def test_mean_js_reading_with_concave_valid_chain_bounds_cohort_mean_tv(cohort):
    """phi_sharp is concave, so mean TV(probe) <= mean phi(JS_u) <= phi(mean JS); Lemma 1 gives mean TV(DG) >= mean m_tau."""
    truth, probe, dg = (np.array(a) for a in zip(*cohort))
    r = regime(truth, probe, dg)
    reading = aggregate_readings(truth, probe, r)["mean_js"]
    if reading.chains["sharp"].holds:
        assert r.tv_probe.mean() < r.tv_dg.mean()
    assert r.tv_probe.mean() <= phi_sharp(min(1.0, r.js.mean() + 1e-12)) + 1e-9


# ------------------------------------------------------------------ soundness defects of issue 10


def test_mean_js_reading_compares_with_the_dg_lower_bound_when_dg_leaks_mass():
    """truth = DG, tau = 0.25: m_tau = 0.2 but TV(DG, truth) = 0, so no reading may claim the probe is closer."""
    truth = np.array([[0.5, 0.3, 0.2]])
    dg = truth.copy()
    probe = np.array([[0.49, 0.31, 0.2]])
    r = regime(truth, probe, dg, tau=0.25)
    assert r.m_tau[0] == pytest.approx(0.2) and r.dg_lower[0] == pytest.approx(0.0)
    assert dv.tv(probe, truth)[0] > dv.tv(dg, truth)[0]
    for reading in aggregate_readings(truth, probe, r).values():
        assert reading.dg_tv_lower == pytest.approx(0.0)
        assert not any(c.holds for c in reading.chains.values() if c.valid)


def test_rows_that_do_not_sum_exactly_to_one_cannot_certify_a_false_regime():
    """A DG row summing to 1 - 9e-7 (accepted by the 1e-6 tolerance) made TV(DG) look smaller than the margin."""
    truth = np.array([[1.0, 0.0]])
    dg = np.array([[0.0, 1.0 - 9e-7]])
    probe = np.array([[1e-7, 1.0 - 1e-7]])
    r = regime(truth, probe, dg)
    assert not r.in_regime[0] or r.tv_probe[0] < r.tv_dg[0]
    assert r.tv_dg[0] == pytest.approx(1.0)  # measured on the renormalised row


@given(triples(min_k=4, max_k=8), st.integers(1, 3), st.floats(0, 0.08), st.integers(0, 10_000))
def test_theorem4_dcg_certificate_per_user(triple, k, scale, seed):
    """favorable (min(Delta_k, Delta_k^min) > 2 eps, L != G*, |L| <= k) => DCG@k of the probe's list beats DG's
    list in every order; the DCG numbers are recomputed here by brute force over the orders of L."""
    truth, _, dg = triple
    assume(k < len(truth))
    probe = _near(truth, np.random.default_rng(seed).random(len(truth)), scale)
    t1 = _theorem1(truth[None], probe[None], dg[None], k, "direct_linf", 0.0, 0.05)
    res = _theorem4(truth[None], probe[None], dg[None], 0.0, t1)
    w = 1 / np.log2(np.arange(2, k + 2))
    probe_list = np.argsort(-probe, kind="stable")[:k]
    dcg_probe = float(truth[probe_list] @ w)
    members = np.flatnonzero(dg > 0)
    best_dg = max(float(truth[list(order[:k])] @ w[:min(k, len(order))])  # DCG@k cuts a longer list
                  for order in itertools.permutations(members))
    assert res.gain[0] == pytest.approx(dcg_probe - best_dg, abs=1e-12)
    if res.favorable[0]:
        assert res.gain[0] > 0


def test_expected_gain_lower_bound_covers_by_simulation():
    """theorem1.expected_gain_lower_bound.value <= E[Gain] in at least 1 - alpha of repeated cohorts."""
    rng = np.random.default_rng(4)
    alpha, n, reps, k = 0.1, 120, 300, 2
    big = 60_000

    def cohort(m):
        truth = rng.dirichlet(np.full(6, 0.6), m)
        probe = np.clip(truth + rng.normal(0, 0.03, truth.shape), 0, None)
        probe /= probe.sum(axis=1, keepdims=True)
        dg = np.zeros_like(truth)
        dg[np.arange(m)[:, None], rng.integers(0, 6, (m, 2))] = 0.5
        dg /= dg.sum(axis=1, keepdims=True)
        return truth, probe, dg

    mean_gain = theorem1(*cohort(big), k=k).gain.mean()  # E[Gain], up to ~0.002 of Monte-Carlo error
    misses = sum(theorem1(*cohort(n), k=k, alpha=alpha).expected_gain_lower_bound()["value"] > mean_gain
                 for _ in range(reps))
    assert misses / reps <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)
