"""Hypothesis strategies shared by the metric tests: stacks of probability distributions (rows sum to 1).

Test files import this module by name (tests/ has no ``__init__.py``): ``from strategies import pairs, stacks``.
Each file passes its own ``values``, an element strategy built with :func:`values`.
"""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays


def values(*common: float):
    """Entries in [0, 1]: drawn from a small set (``common``) to make ties frequent, or any float."""
    return st.sampled_from(list(common)) | st.floats(0, 1, allow_subnormal=False)


def _stack(draw, values, n: int, n_cat: int) -> np.ndarray:
    raw = draw(arrays(np.float64, (n, n_cat), elements=values))
    raw[raw.sum(axis=1) == 0] = 1.0
    return raw / raw.sum(axis=1, keepdims=True)


@st.composite
def stacks(draw, values, n_max=6, k_max=12):
    """An (n, K) stack of distributions; all-zero rows become uniform."""
    n, n_cat = draw(st.integers(1, n_max)), draw(st.integers(1, k_max))
    return _stack(draw, values, n, n_cat)


@st.composite
def pairs(draw, values, n_max=6, k_max=12):
    """(pred, truth): two independent stacks of the same shape."""
    n, n_cat = draw(st.integers(1, n_max)), draw(st.integers(1, k_max))
    return tuple(_stack(draw, values, n, n_cat) for _ in range(2))
