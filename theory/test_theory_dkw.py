"""Theorem 5: the cohort-fraction certificate (sound and as the paper states it), Table 14, coverage by simulation."""
import math

import numpy as np
import pytest
from scipy import stats

from spectra_eval.certificates.bounds import clopper_pearson_lower, dkw_certificate, dkw_certificate_paper, table14_route_penalty
from spectra_eval.validation import SpectraInputError

TABLE14 = {"movielens": (16_500, 0.0231, 6.1e-6), "yelp": (10_000, 0.0296, 1.0e-5)}


@pytest.mark.parametrize("dataset", TABLE14)
def test_table14_reproduced_and_explained(dataset):
    n, slack, penalty = TABLE14[dataset]
    paper = dkw_certificate_paper(n, 0.05, routes=2, fhat=1.0)
    assert abs(paper.cohort_slack - slack) < 1e-4  # 0.02305 is printed as 0.0231
    assert math.isclose(paper.cohort_slack, 2 * math.sqrt(2.191 / n), rel_tol=1e-4)  # the text's 2 sqrt(2.191/N)
    assert f"{table14_route_penalty(n, 0.05, 2):.1e}" == f"{penalty:.1e}"  # the printed number ...
    assert math.isclose(paper.route_penalty, 0.05 / (2 * n))  # ... is 4x Eq. 11's own 2*M*beta = alpha/(2N)
    assert math.isclose(table14_route_penalty(n, 0.05, 2), 4 * paper.route_penalty)
    assert round(paper.pi_lower, 3) == {"movielens": 0.977, "yelp": 0.970}[dataset]
    sound = dkw_certificate(n, 0.05, routes=2, fhat=1.0)
    assert sound.pi_lower > paper.pi_lower  # the sound bound is tighter, not looser
    assert math.isclose(sound.cohort_slack + sound.route_penalty, math.sqrt(math.log(2 / 0.05) / (2 * n)))


def test_single_route_has_no_penalty():
    cert = dkw_certificate(100, 0.05, 1, 0.9)
    assert cert.route_penalty == 0 and math.isclose(cert.cohort_slack, math.sqrt(math.log(20) / 200))
    assert math.isclose(cert.pi_lower, 0.9 - cert.cohort_slack)
    assert dkw_certificate(1, 0.05, 1, 0.0).pi_lower == 0.0  # clipped at 0


@pytest.mark.parametrize("pi, n, routes", [(0.5, 50, 1), (0.9, 200, 1), (0.97, 400, 3), (0.2, 30, 2)])
def test_coverage_by_simulation(pi, n, routes):
    """P(pi >= pi_lower for every route) >= 1 - alpha, with independent routes (the union bound's worst case)."""
    alpha, reps = 0.1, 20_000
    rng = np.random.default_rng(int(pi * 1000) + n)
    fhat = rng.binomial(n, pi, size=(reps, routes)) / n
    slack = dkw_certificate(n, alpha, routes, 0.0)
    lower = fhat - slack.cohort_slack - slack.route_penalty
    coverage = (lower <= pi).all(axis=1).mean()
    assert coverage >= 1 - alpha - 3 * math.sqrt(alpha * (1 - alpha) / reps)
    paper = dkw_certificate_paper(n, alpha, routes, 0.0)
    assert ((fhat - paper.cohort_slack - paper.route_penalty) <= pi).all(axis=1).mean() >= coverage


def test_clopper_pearson_against_scipy():
    assert math.isclose(clopper_pearson_lower(16_500, 16_500, 0.05), 0.05 ** (1 / 16_500))
    ci = stats.binomtest(37, 50).proportion_ci(confidence_level=0.9, method="exact")
    assert math.isclose(clopper_pearson_lower(37, 50, 0.05), ci.low, rel_tol=1e-9)
    assert clopper_pearson_lower(0, 50) == 0.0


@pytest.mark.parametrize("kwargs, needle", [
    ({"n": 0}, "n"), ({"n": 2.5}, "n"), ({"alpha": 0.0}, "alpha"), ({"alpha": 1.0}, "alpha"),
    ({"routes": 0}, "routes"), ({"fhat": 1.2}, "fhat"),
])
def test_bad_parameters(kwargs, needle):
    args = {"n": 100, "alpha": 0.05, "routes": 1, "fhat": 0.5, **kwargs}
    for fn in (dkw_certificate, dkw_certificate_paper):
        with pytest.raises(SpectraInputError, match=needle):
            fn(**args)
