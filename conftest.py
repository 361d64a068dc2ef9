"""Shared pytest set-up for tests/ and theory/."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "spectra",
    deadline=None,
    max_examples=int(os.environ.get("SPECTRA_HYPOTHESIS_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),  # CI runs are reproducible; local runs keep exploring
)
settings.load_profile("spectra")
