"""The Hypothesis settings of the property-based tests (test_fuzz_*.py).

Reproducible by default: examples are derandomised, with no example database and no deadline.
REGISTRY_FUZZ=deep draws 20 times as many random examples, for a longer search by hand."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("registry-fuzz-ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("registry-fuzz-deep", derandomize=False, database=None, deadline=None, print_blob=True)
PROFILE = os.environ.get("REGISTRY_FUZZ", "ci")
SCALE = 20 if PROFILE == "deep" else 1


def fuzz(max_examples, *, suppress=()):
    """Settings for one test: `max_examples` (× 20 when deep), too_slow never fails it."""
    return settings(settings.get_profile(f"registry-fuzz-{PROFILE}"), max_examples=max_examples * SCALE,
                    suppress_health_check=[HealthCheck.too_slow, *suppress])
