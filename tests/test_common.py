"""scikit-learn's estimator checks over every public estimator of the package."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_em import GaussianMixtureEM, VAETransformer

ESTIMATORS = [
    GaussianMixtureEM(),
    VAETransformer(),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
