"""Hypothesis strategies shared by the theory tests: probability vectors with zeros, K = 2, near-degenerate."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

# weights: exact zeros, tiny values (near-degenerate) and ordinary ones
_weight = st.one_of(st.just(0.0), st.floats(1e-12, 1e-6), st.floats(1e-3, 1.0))


@st.composite
def distribution(draw, k: int):
    w = np.array(draw(st.lists(_weight, min_size=k, max_size=k)))
    if w.sum() <= 0:
        w[draw(st.integers(0, k - 1))] = 1.0
    return w / w.sum()


@st.composite
def pairs(draw, min_k: int = 2, max_k: int = 8):
    """Two distributions on the same K categories."""
    k = draw(st.integers(min_k, max_k))
    return draw(distribution(k)), draw(distribution(k))


@st.composite
def triples(draw, min_k: int = 3, max_k: int = 10):
    """(truth, probe, DG) on the same K categories; DG is uniform on a random list (its support)."""
    k = draw(st.integers(min_k, max_k))
    size = draw(st.integers(1, k - 1))
    members = draw(st.permutations(range(k)))[:size]
    dg = np.zeros(k)
    dg[list(members)] = 1.0 / size
    return draw(distribution(k)), draw(distribution(k)), dg
