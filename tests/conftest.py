"""Hypothesis profiles for the property-based tests (``test_properties.py``),
and fixtures shared by test modules in different folders.

``ci`` (the default) draws a few examples per property, derandomised so that
every run of the suite tests the same inputs; ``long`` draws many more, with
fresh randomness::

    python -m pytest tests/test_properties.py --hypothesis-profile=long
"""

import numpy as np
import pytest
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


@pytest.fixture(scope="session")
def expanded_log_probs():
    """``(model, X, normalised=False) -> (log_prob, features, parameters)``.

    The fused E-step's log-probabilities of ``X`` (float64) under a fitted
    ``GaussianMixtureEM``: every entry, or with ``normalised`` only those
    whose mass can survive the E-step's normalisation (the others
    ``-inf``); with the features and fused parameters they came from.
    Session-scoped, so that hypothesis's tests can take it too.
    """
    from sklearn_em.mixture import _gaussian

    def compute(model, X, normalised=False):
        parameters = model._fused_parameters(np.float64)
        features = _gaussian._centred_features(
            X, parameters["centre"], parameters["covariance_type"]
        )
        keywords = {
            key: parameters[key]
            for key in (
                "means",
                "precisions_chol",
                "covariance_type",
                "log_w",
                "centre",
                "coef",
                "intercept",
                "direct",
            )
        }
        with np.errstate(over="ignore", invalid="ignore"):
            log_prob = _gaussian._expanded_log_prob(
                features, X=X, normalised=normalised, **keywords
            )
        return log_prob.copy(), features, parameters

    return compute
