"""Hypothesis profiles for the property-based tests (``test_properties.py``).

``ci`` (the default) draws a few examples per property, derandomised so that
every run of the suite tests the same inputs; ``long`` draws many more, with
fresh randomness::

    python -m pytest tests/test_properties.py --hypothesis-profile=long
"""

from hypothesis import HealthCheck, settings

_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=_SUPPRESSED,
)
settings.register_profile(
    "long",
    max_examples=400,
    deadline=None,
    suppress_health_check=_SUPPRESSED,
)
settings.load_profile("ci")
