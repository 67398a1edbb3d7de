"""scikit-learn's own GaussianMixture tests, run against GaussianMixtureEM.

The drop-in promise, checked by scikit-learn's test module itself: the
installed ``sklearn/mixture/tests/test_gaussian_mixture.py`` is imported (not
copied), its test functions are collected here, and an autouse fixture swaps
the module's ``GaussianMixture`` for :class:`~sklearn_em.GaussianMixtureEM`
while each of them runs. Its fixtures ``global_dtype`` (float32 and float64,
as scikit-learn's ``SKLEARN_RUN_FLOAT32_TESTS=1`` runs) and
``global_random_seed`` (its default seed, 42) are defined below.

Tests that exercise only scikit-learn's private functions, or that need what
the drop-in does not claim, are deselected with their reason in
``DESELECTED``; every other test must pass.
"""

import importlib

import numpy as np
import pytest

from sklearn_em import GaussianMixtureEM

_sk = pytest.importorskip("sklearn.mixture.tests.test_gaussian_mixture")

#: Tests not run against our class, each with its reason.
DESELECTED = {
    "test_check_weights": (
        "scikit-learn's message swaps the values: 'max value <min>, min value "
        "<max>' (sklearn/mixture/_gaussian_mixture.py, _check_weights); ours "
        "names them right. The rest of the test is "
        "test_gaussian.py::test_bad_parameters"
    ),
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": (
        "mocks scikit-learn's private _estimate_gaussian_parameters; the same "
        "promise through the public API: "
        "test_numerics.py::test_all_initial_parameters_are_used_as_given"
    ),
    "test_gaussian_mixture_precisions_init": (
        "calls the private GaussianMixture._initialize; the same check of "
        "#26415 through the public API: "
        "test_numerics.py::test_precisions_init_cholesky_is_exact"
    ),
    # These call scikit-learn's private functions and never the estimator:
    # run here, they would pass without testing anything of ours.
    **{
        name: f"runs only scikit-learn's private {function}"
        for name, function in [
            ("test_suffstat_sk_full", "_estimate_gaussian_covariances_full"),
            ("test_suffstat_sk_tied", "_estimate_gaussian_covariances_tied"),
            ("test_suffstat_sk_diag", "_estimate_gaussian_covariances_diag"),
            (
                "test_gaussian_suffstat_sk_spherical",
                "_estimate_gaussian_covariances_spherical",
            ),
            ("test_compute_log_det_cholesky", "_compute_log_det_cholesky"),
            ("test_gaussian_mixture_log_probabilities", "_estimate_log_gaussian_prob"),
        ]
    },
    "test_gaussian_mixture_array_api_compliance": (
        "array API dispatch: GaussianMixtureEM computes with NumPy only"
    ),
    "test_gaussian_mixture_raises_where_array_api_not_implemented": (
        "array API dispatch: GaussianMixtureEM computes with NumPy only"
    ),
}

# scikit-learn's own test run shows ConvergenceWarnings rather than failing
# on them (several of its tests fit a few iterations on purpose, and KMeans
# warns on its degenerate data); the tests that expect one use pytest.warns.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(params=[np.float32, np.float64])
def global_dtype(request):
    return request.param


@pytest.fixture
def global_random_seed():
    return 42


class GaussianMixture(GaussianMixtureEM):
    """GaussianMixtureEM under scikit-learn's name.

    Messages that name the estimator's class (``check_is_fitted``'s "This
    GaussianMixture instance is not fitted yet") then read as the tests
    expect; nothing else differs.
    """


@pytest.fixture(autouse=True)
def _swap_gaussian_mixture(monkeypatch):
    monkeypatch.setattr(_sk, "GaussianMixture", GaussianMixture)


def _collect():
    module = importlib.import_module(_sk.__name__)
    tests = {}
    for name in dir(module):
        if not name.startswith("test_"):
            continue
        if name in DESELECTED:
            # Not collected at all (some parametrise over generators that
            # pytest warns about): a placeholder reports the reason.
            tests[name] = pytest.mark.skip(reason=DESELECTED[name])(_placeholder())
        else:
            tests[name] = getattr(module, name)
    return tests


def _placeholder():
    def test():
        """Deselected: see DESELECTED."""

    return test


globals().update(_collect())
