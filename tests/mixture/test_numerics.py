"""Numerical robustness of the mixtures (issue 11): each test is a class of
inputs on which the estimators used to be worse than scikit-learn's."""

import itertools
import math
import re
import warnings
from fractions import Fraction

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from scipy.linalg import solve_triangular
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from sklearn_em import BernoulliMixtureEM, GaussianMixtureEM

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _blobs(n_samples=200, n_features=2, offset=0.0, seed=0):
    rng = np.random.RandomState(seed)
    labels = np.arange(n_samples) % 2
    centres = np.array([[0.0] * n_features, [4.0] + [1.0] * (n_features - 1)])
    return centres[labels] + rng.normal(size=(n_samples, n_features)) + offset


def _full_covariances(covariances, covariance_type, n_components, n_features):
    """Covariances of any type as (n_components, n_features, n_features)."""
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.repeat(covariances[np.newaxis], n_components, axis=0)
    variances = np.broadcast_to(
        np.reshape(covariances, (n_components, -1)), (n_components, n_features)
    )
    return np.stack([np.diag(v) for v in variances])


def _quiet_fit(estimator, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, **fit_params)


def _assert_same_gaussian(a, b, rtol):
    assert_allclose(a.weights_, b.weights_, rtol=rtol)
    assert_allclose(a.means_, b.means_, rtol=rtol, atol=rtol)
    assert_allclose(a.covariances_, b.covariances_, rtol=rtol)
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol)


def _precisions(covariance_type, n_components=2, n_features=2):
    return {
        "full": np.stack([np.eye(n_features)] * n_components),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type]


# ----------------------------------------------------------------------
# 1. The scale of sample_weight
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("scale", [1e-20, 1e-300, 3.0, 1e300, 1e307])
def test_weights_times_a_constant_give_the_same_gaussian_model(covariance_type, scale):
    # Frequency weights only count relative to each other. An absolute
    # 10 eps guard on N_k pulled the means of 1e-20 weights to ~0.002
    # (instead of ~5), and 1e307 weights overflowed the sums.
    X = _blobs(offset=5.0)
    weights = np.random.RandomState(1).randint(1, 4, size=len(X)).astype(float)
    est = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
    expected = _quiet_fit(est, X, sample_weight=weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        scaled = _quiet_fit(
            GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0),
            X,
            sample_weight=weights * scale,
        )
    _assert_same_gaussian(scaled, expected, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_partial_fit_weights_times_a_constant(covariance_type):
    X = _blobs(offset=5.0)
    weights = np.random.RandomState(1).randint(1, 4, size=len(X)).astype(float)
    models = []
    for scale in (1.0, 1e-20, 1e300):
        est = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
        for batch in np.array_split(np.arange(len(X)), 3):
            est.partial_fit(X[batch], sample_weight=weights[batch] * scale)
        models.append(est)
    for model in models[1:]:
        _assert_same_gaussian(model, models[0], rtol=1e-9)


def test_tiny_float32_weights():
    X = _blobs(offset=5.0).astype(np.float32)
    expected = GaussianMixtureEM(2, random_state=0).fit(X)
    tiny = GaussianMixtureEM(2, random_state=0).fit(
        X, sample_weight=np.full(len(X), 1e-30, dtype=np.float32)
    )
    assert tiny.means_.dtype == np.float32
    assert_allclose(tiny.means_, expected.means_, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [1e-20, 1e-10, 1e10])
def test_bernoulli_weights_times_c_are_pseudo_counts_divided_by_c(scale):
    # The Beta prior's pseudo-counts are in units of the weights, so
    # multiplying the weights by c is dividing alpha - 1 and beta - 1 by c
    # (not the same model: frequency weights are more or fewer samples).
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(200, 6)) < np.where(np.arange(200)[:, None] % 2, 0.3, 0.6)
    X = X.astype(float)
    weights = rng.randint(1, 4, size=200).astype(float)
    scaled = _quiet_fit(
        BernoulliMixtureEM(2, random_state=0), X, sample_weight=weights * scale
    )
    pseudo = _quiet_fit(
        BernoulliMixtureEM(2, alpha=1 + 1 / scale, beta=1 + 1 / scale, random_state=0),
        X,
        sample_weight=weights,
    )
    assert_allclose(scaled.means_, pseudo.means_, rtol=1e-10)
    assert_allclose(scaled.weights_, pseudo.weights_, rtol=1e-10)


def test_bernoulli_huge_weights_make_the_prior_negligible():
    # 1e300 weights overflowed the sums; the model is that of a negligible
    # prior.
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(200, 6)) < np.where(np.arange(200)[:, None] % 2, 0.3, 0.6)
    X = X.astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        huge = _quiet_fit(
            BernoulliMixtureEM(2, random_state=0), X, sample_weight=np.full(200, 1e300)
        )
    flat = _quiet_fit(
        BernoulliMixtureEM(2, alpha=1 + 1e-12, beta=1 + 1e-12, random_state=0), X
    )
    assert_allclose(huge.means_, flat.means_, rtol=1e-9)
    assert np.isfinite(huge.lower_bound_)


# ----------------------------------------------------------------------
# 3. Cancellation in the second moments
def _far_start(covariance_type, distance):
    """Initial parameters on either side of _blobs(n_features=3), ``distance``
    away: the boundary between the components stays between the clusters."""
    return dict(
        covariance_type=covariance_type,
        weights_init=[0.5, 0.5],
        means_init=[[-distance, 0.0, 0.0], [distance + 4.0, 1.0, 1.0]],
        precisions_init=_precisions(covariance_type, n_features=3),
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_means_init_far_from_the_data(covariance_type):
    # The first E-step accumulates the moments around means 1e8 away from
    # the data; moving them to the new means cancelled every digit (full
    # and tied raised "ill-defined empirical covariance").
    X = _blobs(n_features=3)
    kwargs = _far_start(covariance_type, 1e8)
    ours = GaussianMixtureEM(2, **kwargs).fit(X)
    theirs = GaussianMixture(2, **kwargs).fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    _assert_same_gaussian(ours, theirs, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_means_init_far_from_the_data(covariance_type):
    # The same in float32, 1e4 away: float32 moments around the old means
    # kept no digit of the covariances.
    X = _blobs(n_features=3).astype(np.float32)
    kwargs = _far_start(covariance_type, 1e4)
    reference = GaussianMixtureEM(2, **kwargs).fit(X.astype(np.float64))
    ours = GaussianMixtureEM(2, **kwargs).fit(X)
    assert ours.converged_ and ours.n_iter_ == reference.n_iter_
    assert_allclose(ours.means_, reference.means_, rtol=1e-5, atol=1e-5)
    assert_allclose(ours.covariances_, reference.covariances_, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype, distance", [(np.float64, 1e200), (np.float32, 1e30)])
def test_means_init_beyond_the_square_root_of_the_float_range(
    covariance_type, dtype, distance
):
    # A mean whose squared distance to the data overflows: the moments moved
    # to it were not finite, and diagonal and spherical fits raised that X
    # was too large ("magnitude up to 7"); full and tied ones warned of
    # overflows. scikit-learn fits it: that component takes no row, and the
    # fit is the other's.
    X = _blobs(n_features=3).astype(dtype)
    means_init = [[distance] * 3, [0.0] * 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = GaussianMixtureEM(
            2, covariance_type=covariance_type, means_init=means_init, random_state=0
        ).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = GaussianMixture(
            2, covariance_type=covariance_type, means_init=means_init, random_state=0
        ).fit(X.astype(np.float64))
    assert ours.means_.dtype == dtype
    assert ours.n_iter_ == theirs.n_iter_
    rtol = 1e-5 if dtype == np.float32 else 1e-9
    assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=rtol)
    # The far component is empty (a weight of 1e-17, its mean the rounding
    # of nothing): the other one is the model.
    assert_allclose(ours.weights_, theirs.weights_, atol=10 * np.finfo(dtype).eps)
    assert_allclose(ours.means_[1], theirs.means_[1], rtol=rtol, atol=rtol)
    live = slice(None) if covariance_type == "tied" else 1
    assert_allclose(
        ours.covariances_[live], theirs.covariances_[live], rtol=10 * rtol, atol=rtol
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_identical_float32_points_far_from_the_origin(covariance_type):
    # Three copies of a point at 1e6: the covariance is reg_covar exactly.
    # (scikit-learn's 10 eps guard on N_k moved the mean by 0.4 in float32.)
    X = np.full((3, 2), 1e6, dtype=np.float32)
    gm = GaussianMixtureEM(1, covariance_type=covariance_type).fit(X)
    assert gm.converged_ and gm.n_iter_ <= 2
    assert_array_equal(gm.means_, X[:1])
    expected = -math.log(2 * math.pi) - 2 * 0.5 * math.log(1e-6)
    assert_allclose(gm.lower_bound_, expected, rtol=1e-5)


def test_tied_two_float32_points():
    X = np.array([[-40, -20], [-30, -10]], np.float32)
    gm = GaussianMixtureEM(1, covariance_type="tied").fit(X)
    assert_allclose(
        gm.covariances_, np.full((2, 2), 25.0) + 1e-6 * np.eye(2), rtol=1e-6
    )


def test_float32_wide_data_converges():
    # D = 200, N = 300: covariances regularised to 1e-6 in 50 directions.
    # The expanded E-step lost ~20 nats there and never converged.
    X = np.random.RandomState(0).normal(size=(300, 200))
    kwargs = dict(n_components=2, random_state=0)
    reference = GaussianMixtureEM(**kwargs).fit(X.astype(np.float32).astype(float))
    ours = GaussianMixtureEM(**kwargs).fit(X.astype(np.float32))
    theirs = GaussianMixture(**kwargs).fit(X.astype(np.float32))
    assert ours.converged_ and ours.n_iter_ <= reference.n_iter_ + 1
    ours_error = abs(ours.lower_bound_ - reference.lower_bound_)
    assert ours_error <= abs(theirs.lower_bound_ - reference.lower_bound_)


def _blob_mixture(n_samples, n_features, n_components, offset, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_components, n_features))
    scales = rng.uniform(0.5, 2.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    X = centres[labels] + rng.normal(size=(n_samples, n_features)) * scales[labels]
    return X + offset


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_float32_at_least_as_accurate_as_scikit_learn(covariance_type, offset):
    # Against a float64 fit from the same start, our float32 fit errs no
    # more than scikit-learn's float32 fit (up to a factor 2, and a few
    # float32 epsilons for the covariances).
    X32 = _blob_mixture(5000, 8, 6, offset).astype(np.float32)
    kwargs = dict(
        n_components=6, covariance_type=covariance_type, random_state=0, max_iter=8
    )
    reference = _quiet_fit(GaussianMixtureEM(**kwargs), X32.astype(np.float64))
    ours = _quiet_fit(GaussianMixtureEM(**kwargs), X32)
    theirs = _quiet_fit(GaussianMixture(**kwargs), X32)

    def error(model, name):
        got = getattr(model, name).astype(np.float64)
        want = getattr(reference, name)
        if name == "means_":
            got, want = got - offset, want - offset
        return np.abs(got - want).max() / np.abs(want).max()

    eps = np.finfo(np.float32).eps
    for name in ("means_", "covariances_"):
        assert error(ours, name) <= 2 * error(theirs, name) + 4 * eps, name
    ours_lb = abs(ours.lower_bound_ - reference.lower_bound_)
    assert ours_lb <= 2 * abs(theirs.lower_bound_ - reference.lower_bound_) + 1e-6


@pytest.mark.parametrize("n_features, n_components", [(48, 2), (16, 2)])
def test_float32_many_features_far_from_the_origin(n_features, n_components):
    # Shapes that take the per-component form, in float32 too: on the
    # centred rows, with float64 block sums and a precision guard, it keeps
    # the lower bound as the expanded form does (an earlier, uncentred
    # float32 per-component E-step lost 3 to 5 nats on data at 1e6, where
    # the expanded form and scikit-learn's float32 lose hundredths).
    X32 = _blob_mixture(4000, n_features, n_components, 1e6).astype(np.float32)
    X = X32.astype(np.float64)
    kwargs = dict(n_components=n_components, random_state=0, max_iter=10, tol=0)
    estimator = GaussianMixtureEM(**kwargs)
    assert estimator._uses_per_component_form(n_features, np.float64)
    assert estimator._uses_per_component_form(n_features, np.float32)
    centre = X.mean(axis=0)
    # The accurate answer: a float64 fit of the same (rounded) data, centred.
    reference = _quiet_fit(GaussianMixtureEM(**kwargs), X - centre)
    ours = _quiet_fit(GaussianMixtureEM(**kwargs), X32)
    theirs = _quiet_fit(GaussianMixture(**kwargs), X32)
    ours_lb = abs(ours.lower_bound_ - reference.lower_bound_)
    assert ours_lb <= 2 * abs(theirs.lower_bound_ - reference.lower_bound_) + 1e-6
    assert ours_lb < 0.05
    assert_allclose(ours.means_ - centre, reference.means_, atol=0.05)


# ----------------------------------------------------------------------
# 4. Divergence (scikit-learn's #18216), and what replaces the deselected
# scikit-learn tests that call its private functions.
def test_all_initial_parameters_are_used_as_given():
    # With every initial parameter given, nothing is estimated from the data
    # before the first E-step (scikit-learn gh-26015).
    rng = np.random.RandomState(0)
    X = _blobs()
    precisions = np.stack([np.eye(2) * 2.0, np.eye(2) * 0.5])
    gm = GaussianMixtureEM(
        2,
        weights_init=[0.3, 0.7],
        means_init=[[0.0, 0.0], [4.0, 1.0]],
        precisions_init=precisions,
        max_iter=0,
        random_state=rng,
    ).fit(X)
    assert_allclose(gm.weights_, [0.3, 0.7])
    assert_allclose(gm.means_, [[0.0, 0.0], [4.0, 1.0]])
    assert_allclose(gm.precisions_, precisions, rtol=1e-12)
    assert_allclose(gm.covariances_, np.linalg.inv(precisions), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_one_row_starts_have_normalised_weights(covariance_type, init_params):
    # 'k-means++' and 'random_from_data' start each component from one row.
    # scikit-learn leaves that start's weights at N_k / N, 1 / N each (K / N
    # in all), so its first lower bound is log(N / K) below the start's mean
    # log-likelihood. Ours are normalised: the first lower bound is the
    # start's log-likelihood, and from the second iteration, whose weights
    # scikit-learn normalises too, the fits are the same.
    X = _blobs()
    params = dict(
        covariance_type=covariance_type,
        init_params=init_params,
        max_iter=3,
        tol=0,
        random_state=1,
    )
    start = GaussianMixture(3, **params)
    start._initialize_parameters(X, np.random.RandomState(1))
    assert_allclose(start.weights_.sum(), 3 / len(X))
    start.weights_ = start.weights_ / start.weights_.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixtureEM(3, **params).fit(X)
        theirs = GaussianMixture(3, **params).fit(X)
    # The start's log-likelihood from the differences x - mu_k. (A one-row
    # component's variances are reg_covar, 1e-6, to 1e-20; scikit-learn's
    # diagonal and spherical ones, mean square less squared mean, are off
    # by about 1e-15 and move the log-likelihood by 6e-9.)
    covariances = start.covariances_
    if covariance_type in ("diag", "spherical"):
        covariances = np.full_like(covariances, start.reg_covar)
    covariances = _full_covariances(covariances, covariance_type, 3, 2)
    log_prob = np.column_stack(
        [
            multivariate_normal(mean, cov).logpdf(X)
            for mean, cov in zip(start.means_, covariances)
        ]
    )
    log_likelihood = logsumexp(log_prob + np.log(start.weights_), axis=1).mean()
    assert_allclose(ours.lower_bounds_[0], log_likelihood, rtol=1e-10)
    assert_allclose(ours.lower_bounds_[1:], theirs.lower_bounds_[1:], rtol=1e-12)
    assert_allclose(ours.means_, theirs.means_, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_precisions_init_cholesky_is_exact(covariance_type, dtype):
    # scikit-learn #26415: precisions_cholesky_ is the upper factor U of the
    # given precisions, U U^T = P, in the data's dtype.
    rng = np.random.RandomState(0)
    A = rng.normal(size=(3, 3, 3))
    spd = A @ A.transpose(0, 2, 1) + 3 * np.eye(3)
    precisions = {
        "full": spd,
        "tied": spd[0],
        "diag": rng.uniform(0.5, 2, size=(3, 3)),
        "spherical": rng.uniform(0.5, 2, size=3),
    }[covariance_type]
    X = rng.normal(size=(30, 3)).astype(dtype)
    gm = GaussianMixtureEM(
        3, covariance_type=covariance_type, precisions_init=precisions, max_iter=0
    ).fit(X)
    U = gm.precisions_cholesky_
    assert U.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    if covariance_type in ("full", "tied"):
        stacked = U if covariance_type == "full" else U[None]
        assert_array_equal(np.tril(stacked, -1), 0)
        product = stacked @ stacked.transpose(0, 2, 1)
        assert_allclose(product, np.reshape(precisions, product.shape), rtol=rtol)
    else:
        assert_allclose(U**2, precisions, rtol=rtol)


def test_float32_precisions_init_factorised_in_float64():
    # An ill-conditioned precisions_init is factorised in float64 and only
    # then rounded to a float32 fit's dtype: rounded first, a precision of
    # condition number 4e5 lost that many float32 epsilons in its weakest
    # direction, and one iteration moved the covariances 5.7e-4 (relative)
    # from the float64 fit's, where scikit-learn's float32 fit moved them
    # 5e-8 (it keeps float64 parameters).
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    X = rng.normal(size=(2000, 6)) * np.logspace(0, -4, 6) @ rotation.T
    X32 = X.astype(np.float32)
    X = X32.astype(np.float64)
    start = _quiet_fit(GaussianMixtureEM(3, random_state=0, max_iter=5, tol=0), X)
    assert np.linalg.cond(start.precisions_).max() > 1e5
    given = dict(
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
    )
    initial = _quiet_fit(GaussianMixtureEM(3, max_iter=0, **given), X32)
    factor64 = _quiet_fit(GaussianMixtureEM(3, max_iter=0, **given), X)
    assert_array_equal(
        initial.precisions_cholesky_,
        factor64.precisions_cholesky_.astype(np.float32),
    )

    kwargs = dict(n_components=3, max_iter=1, tol=0, **given)
    reference = _quiet_fit(GaussianMixtureEM(**kwargs), X)
    ours = _quiet_fit(GaussianMixtureEM(**kwargs), X32)
    theirs = _quiet_fit(GaussianMixture(**kwargs), X32)

    def error(model, name):
        got = getattr(model, name).astype(np.float64)
        want = getattr(reference, name)
        return np.abs(got - want).max() / np.abs(want).max()

    eps = np.finfo(np.float32).eps
    for name in ("means_", "covariances_"):
        assert error(ours, name) <= 2 * error(theirs, name) + 4 * eps, name


def test_float32_m_step_that_collapses_is_retried_in_float64():
    # Variances spread over eight decades: a float32 E-step's scatter (its
    # rounding about eps |x - c|^2) swamps the smallest eigenvalues, and the
    # first M-step's covariance is indefinite where the float64 one is not.
    # The fit had stopped there (diverged, 0.44 nats a row below float64's
    # lower bound), where scikit-learn's float32 fit ran on. The E-step is
    # computed again in float64, as the rest of the fit's.
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    X = rng.normal(size=(6000, 32)) * np.logspace(0, -4, 32) @ rotation.T * 10 + 5
    X32 = X.astype(np.float32)
    kwargs = dict(n_components=16, max_iter=10, tol=0, random_state=0)
    reference = _quiet_fit(GaussianMixtureEM(**kwargs), X32.astype(np.float64))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = GaussianMixtureEM(**kwargs).fit(X32)
    assert not [w for w in caught if "diverged" in str(w.message)]
    assert ours.n_iter_ == 10
    assert ours.means_.dtype == np.float32
    assert abs(ours.lower_bound_ - reference.lower_bound_) < 1e-2


def test_collapsed_float32_m_step_retries_with_float64_e_steps(monkeypatch):
    # The mechanism, whatever BLAS's rounding: a float32 M-step that
    # collapses is tried again on the same E-step computed in float64, and
    # the fit's later E-steps stay in float64; a float64 fit has nothing
    # more accurate and stops (diverged), as does a second collapse.
    from sklearn_em.mixture import _gaussian
    from sklearn_em.mixture._suffstats import CollapseError

    e_step_dtypes = []
    chunk_function = GaussianMixtureEM._e_step_chunk_function

    def spy(self):
        function = chunk_function(self)
        e_step_dtypes.append(function.keywords["log_w"].dtype)
        return function

    e_steps = []
    statistics = GaussianMixtureEM._e_step_statistics

    def counted(self, data):
        e_steps.append(data)
        return statistics(self, data)

    estimate = _gaussian._estimate_gaussian_parameters
    collapses = {"left": 0}

    def collapsing(*args, **kwargs):
        # The M-steps after the second E-step collapse, as many as are left.
        if len(e_steps) in (2, 3) and collapses["left"]:
            collapses["left"] -= 1
            raise CollapseError("collapsed")
        return estimate(*args, **kwargs)

    monkeypatch.setattr(GaussianMixtureEM, "_e_step_chunk_function", spy)
    monkeypatch.setattr(GaussianMixtureEM, "_e_step_statistics", counted)
    monkeypatch.setattr(_gaussian, "_estimate_gaussian_parameters", collapsing)
    X32 = _blob_mixture(2000, 8, 4, 0.0).astype(np.float32)
    kwargs = dict(n_components=4, max_iter=5, tol=0, random_state=0)

    collapses["left"] = 1
    ours = _quiet_fit(GaussianMixtureEM(**kwargs), X32)
    assert len(e_steps) == 6
    assert ours.n_iter_ == 5
    assert ours._float64_e_steps
    float32, float64 = np.dtype(np.float32), np.dtype(np.float64)
    assert e_step_dtypes == [float32, float32, float64, float64, float64, float64]
    assert ours.means_.dtype == np.float32

    # Without a collapse, float32 E-steps throughout.
    e_step_dtypes.clear()
    e_steps.clear()
    plain = _quiet_fit(GaussianMixtureEM(**kwargs), X32)
    assert not plain._float64_e_steps
    assert e_step_dtypes == [float32] * 5

    # float64, or a second collapse: the run stops at that iteration.
    for X, left in ((X32.astype(np.float64), 1), (X32, 2)):
        e_steps.clear()
        collapses["left"] = left
        with pytest.warns(ConvergenceWarning, match="diverged at iteration 2"):
            stopped = GaussianMixtureEM(**kwargs).fit(X)
        assert stopped.n_iter_ == 2


def test_divergence_keeps_the_last_good_parameters():
    # scikit-learn #18216's start: spherical, no regularisation, a
    # component isolated on one sample. The run stops, unconverged, with
    # the parameters the last E-step ran with.
    rnd = np.random.RandomState(0)
    X = rnd.uniform(size=(30, 3))
    means_init = rnd.uniform(size=(6, 3))
    means_init[0] = X[0]
    precisions_init = np.array([1e6, 10, 10, 10, 10, 10])
    gm = GaussianMixtureEM(
        6,
        covariance_type="spherical",
        reg_covar=0,
        means_init=means_init,
        weights_init=np.full(6, 1 / 6),
        precisions_init=precisions_init,
        max_iter=5,
    )
    with pytest.warns(ConvergenceWarning, match="diverged at iteration"):
        gm.fit(X)
    assert not gm.converged_
    assert len(gm.lower_bounds_) == gm.n_iter_
    assert np.all(np.isfinite(gm.lower_bounds_))
    assert np.all(gm.covariances_ > 0)
    assert_allclose(gm.predict_proba(X).sum(axis=1), 1.0)


# ----------------------------------------------------------------------
# 5. Extreme magnitudes
def _exact_nearest(model, x):
    """The component maximising log pi_k + log N(x | k), in exact arithmetic
    of the leading terms: the squared Mahalanobis distances as fractions."""
    precisions = model.precisions_
    scores = []
    for k in range(model.n_components):
        if model.covariance_type == "full":
            P = precisions[k]
        elif model.covariance_type == "tied":
            P = precisions
        elif model.covariance_type == "diag":
            P = np.diag(precisions[k])
        else:
            P = np.eye(len(x)) * precisions[k]
        d = [
            Fraction(float(a)) - Fraction(float(b)) for a, b in zip(x, model.means_[k])
        ]
        q = sum(
            d[i] * Fraction(float(P[i, j])) * d[j]
            for i in range(len(d))
            for j in range(len(d))
        )
        scores.append(q)
    return int(np.argmin(scores))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("magnitude", [1e10, 1e100, 1e150, 1e154, 1e200, 1e300])
def test_far_samples_belong_to_the_nearest_component(covariance_type, magnitude):
    # Samples far from a fitted model: rows of zeros, -inf, overflow
    # warnings and, long before that, rounding picking the component.
    X = _blobs()
    gm = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    directions = np.array([[1.0, 1.0], [-1.0, 0.0], [1.0, -1.0], [0.3, 0.7]])
    far = directions * magnitude
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resp = gm.predict_proba(far)
        scores = gm.score_samples(far)
        labels = gm.predict(far)
    assert_allclose(resp.sum(axis=1), 1.0)
    expected = [_exact_nearest(gm, x) for x in far]
    assert_array_equal(labels, expected)
    assert_array_equal(resp.argmax(axis=1), expected)
    assert np.all(scores < 0) and not np.any(np.isnan(scores))
    if magnitude <= 1e150:
        # Still representable: the plain log-density, to its precision.
        direct = GaussianMixture(2, covariance_type=covariance_type)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            setattr(direct, name, getattr(gm, name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert_allclose(scores, direct.score_samples(far), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_data_too_large_to_fit_says_so(covariance_type):
    X = _blobs() * 1e155
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="too large for a Gaussian mixture"):
            GaussianMixtureEM(2, covariance_type=covariance_type).fit(X)
        # Given parameters skip k-means; the statistics overflow instead.
        with pytest.raises(ValueError, match="too large for a Gaussian mixture"):
            GaussianMixtureEM(
                2,
                covariance_type=covariance_type,
                weights_init=[0.5, 0.5],
                means_init=[[0, 0], [1, 1]],
                precisions_init=_precisions(covariance_type),
            ).fit(X)
        # A later partial_fit batch.
        gm = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
        gm.partial_fit(_blobs())
        with pytest.raises(ValueError, match="too large for a Gaussian mixture"):
            gm.partial_fit(X)


def _large_blobs(scale, n_samples, dtype):
    """Two unit blobs 5 apart in 3 dimensions, times ``scale``."""
    rng = np.random.RandomState(0)
    half = n_samples // 2
    X = np.r_[rng.normal(size=(half, 3)), rng.normal(size=(half, 3)) + 5.0]
    return (X * scale).astype(dtype)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "scale, n_samples, dtype",
    [(1e16, 20_000, np.float32), (1e17, 400, np.float32), (1e151, 20_000, np.float64)],
)
def test_large_values_scikit_learn_fits_are_fitted_as_it_fits_them(
    covariance_type, scale, n_samples, dtype
):
    # A bound on the sum of every squared value (4 N D max|x|^2) refused
    # these: scikit-learn fits them, and k-means's sums of squared distances
    # can overflow their dtype. k-means runs on the data times a power of
    # two: the same labels, so the same fit as scikit-learn's.
    X = _large_blobs(scale, n_samples, dtype)
    original = X.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
        ours.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = GaussianMixture(2, covariance_type=covariance_type, random_state=0)
        theirs.fit(X)
    assert_array_equal(X, original)
    assert ours.means_.dtype == dtype
    assert ours.n_iter_ == theirs.n_iter_
    assert_array_equal(ours.predict(X), theirs.predict(X))
    # (To float32's rounding of the largest values, for float32.)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    assert_allclose(ours.means_, theirs.means_, atol=tol * scale)
    assert_allclose(ours.covariances_, theirs.covariances_, atol=tol * scale**2 * 10)
    assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=tol / 10)


def test_precisions_beyond_the_float_range_are_predicted_directly():
    # Variances near the smallest normal number (data at 1e-160, reg_covar=0)
    # have precisions beyond the float range: the expanded coefficients'
    # measure of cancellation was NaN, which is not above any limit, and the
    # predictions' expanded form gave a score of -inf where the fit's lower
    # bound (and scikit-learn's score) was right. Such components are
    # computed directly, from their factors.
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(size=(100, 3)), rng.normal(size=(100, 3)) + 5] * 1e-160
    with warnings.catch_warnings():
        # (precisions_, U U^T, is infinite, as scikit-learn's.)
        warnings.simplefilter("ignore", RuntimeWarning)
        gm = GaussianMixtureEM(2, reg_covar=0, random_state=0).fit(X)
        scores = gm.score_samples(X)
        proba = gm.predict_proba(X)
    # The definition, from the factors U_k (about 1e160): log pi_k + log
    # det U_k - D log(2 pi) / 2 - |(x - mu_k) U_k|^2 / 2.
    log_prob = np.column_stack(
        [
            np.log(weight)
            + np.log(np.diag(chol)).sum()
            - 1.5 * np.log(2 * np.pi)
            - 0.5 * (((X - mean) @ chol) ** 2).sum(axis=1)
            for weight, mean, chol in zip(
                gm.weights_, gm.means_, gm.precisions_cholesky_
            )
        ]
    )
    assert_allclose(scores, logsumexp(log_prob, axis=1), rtol=1e-12)
    assert_allclose(scores.mean(), gm.lower_bound_, rtol=1e-12)
    assert_allclose(proba, np.exp(log_prob - logsumexp(log_prob, axis=1)[:, None]))
    # Diagonal covariances there fail (scikit-learn's fit returns NaN): the
    # error says the variances are too small, not that X is too large.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="variances are too small for float64"):
            GaussianMixtureEM(
                2, covariance_type="diag", reg_covar=0, random_state=0
            ).fit(X)


@pytest.mark.parametrize(
    "covariance_type",
    ["full", "tied", "diag", "spherical", "tied_diag", "tied_spherical"],
)
def test_pooled_scatters_beyond_the_float_range(covariance_type):
    # At 1e153 two clusters' scatters add up beyond the float range while
    # every covariance is within it: tied covariances and shared variances
    # had collapsed ("ill-defined empirical covariance"; scikit-learn's tied
    # fit raises, its diagonal and spherical ones return NaN) and spherical
    # fits leaked overflow warnings. They are the unit-scale fit without
    # reg_covar (negligible at that scale), scaled, without warnings.
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(size=(100, 3)), rng.normal(size=(100, 3)) + 5]
    scale = 1e153
    unit = GaussianMixtureEM(
        2, covariance_type=covariance_type, reg_covar=0, random_state=0
    )
    unit.fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        large = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
        large.fit(X * scale)
    assert large.n_iter_ == unit.n_iter_
    # One component of all the rows: its own scatter is beyond the float
    # range, and the initial statistics say so (not "collapsed").
    with pytest.raises(ValueError, match="too large for a Gaussian mixture"):
        GaussianMixtureEM(1, covariance_type=covariance_type).fit(X * scale)
    assert_allclose(large.means_ / scale, unit.means_, rtol=1e-9)
    assert_allclose(large.covariances_ / scale**2, unit.covariances_, rtol=1e-8)
    assert_allclose(
        large.lower_bound_ + X.shape[1] * np.log(scale), unit.lower_bound_, rtol=1e-9
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_magnitude_checks_read_validations_bound(dtype):
    # Validation's pass bounds max |x| (check_missing_magnitude). The
    # magnitude checks given that bound answer as they do from the data,
    # at every scale up to the float range (where the bound is missing or
    # too loose they read the data); where it clears every limit they do not
    # read the data at all: a bound that lies is believed.
    from sklearn_em.mixture._gaussian import _check_magnitude
    from sklearn_em.mixture._missing import check_missing_magnitude

    largest = float(np.finfo(dtype).max)
    rng = np.random.RandomState(0)
    blobs = np.r_[rng.normal(size=(100, 3)), rng.normal(size=(100, 3)) + 5]
    # (One value far above the rest: a bound close to it, so that each of
    # the limits decides on its own.)
    spike = rng.normal(size=(200, 3)) * 1e-3
    spike[7, 1] = -1.0
    scales = np.sqrt(largest) * np.r_[1e-150, np.logspace(-5, 0, 51)]
    for unit, scale in itertools.product((blobs, spike), scales):
        X = (unit * float(scale)).astype(dtype)
        magnitude = check_missing_magnitude(X)[1]
        for weight, uncentred in ((None, False), (1e6, False), (1.0, True)):
            try:
                expected = _check_magnitude(X, weight, uncentred)
            except ValueError as error:
                with pytest.raises(ValueError, match=re.escape(str(error))):
                    _check_magnitude(X, weight, uncentred, magnitude=magnitude)
                continue
            assert _check_magnitude(X, weight, uncentred, magnitude) == expected
    X = np.full((10, 2), np.sqrt(largest), dtype=dtype)
    assert _check_magnitude(X) != (1.0, False)
    assert _check_magnitude(X, magnitude=1.0) == (1.0, False)


def test_given_parameters_read_validations_bound():
    # A fit from given parameters checks whether its sums may overflow
    # (data near the float range) from validation's bound where it is far
    # from that range, without a pass of its own; near it (a loose bound, or
    # none where the squares overflow), from the data's extent.
    from sklearn_em.mixture._data import as_data

    X = _blobs()
    params = dict(
        weights_init=[0.5, 0.5],
        means_init=[[0.0, 0.0], [4.0, 1.0]],
        precisions_init=[np.eye(2), np.eye(2)],
    )
    for scale, near in ((1.0, False), (2e152, True), (1e153, True)):
        gm = GaussianMixtureEM(2, **params)
        data = as_data(gm, X * scale, None, reset=True)
        # (At 2e152 the squares' sum is finite: a bound, but too loose.)
        assert (data.magnitude is None) == (scale == 1e153)
        gm._check_parameters(data)
        assert gm._initialize_from_given(data)
        assert gm._near_float_range == near
    data.magnitude = 1.0  # a bound that lies is believed
    gm._initialize_from_given(data)
    assert not gm._near_float_range


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("given", [False, True])
def test_float32_data_whose_squares_float32_cannot_sum_is_fitted_in_float64(
    covariance_type, given
):
    # 20,000 rows at 1e18: their sums of squares overflow float32
    # (scikit-learn's float32 fit returns NaN or fails). The fit computes
    # its statistics in float64 and keeps float32 parameters, those of the
    # same fit of the data in float64 up to float32's rounding. Given
    # parameters skip the initialisation's check: the first E-step's
    # overflow is caught and the E-steps go on in float64.
    X = _large_blobs(1e18, 20_000, np.float32)
    params = {}
    if given:
        params = dict(
            weights_init=[0.5, 0.5],
            means_init=[[0.0] * 3, [5e18] * 3],
            precisions_init=_precisions(covariance_type, n_features=3) * 1e-36,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm = GaussianMixtureEM(
            2, covariance_type=covariance_type, random_state=0, **params
        ).fit(X)
    assert gm._float64_e_steps
    reference = GaussianMixtureEM(
        2, covariance_type=covariance_type, random_state=0, **params
    ).fit(X.astype(np.float64))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert getattr(gm, name).dtype == np.float32
        assert_allclose(getattr(gm, name), getattr(reference, name), rtol=1e-5)
    assert_allclose(gm.lower_bound_, reference.lower_bound_, rtol=1e-6)
    assert_array_equal(gm.predict(X), reference.predict(X.astype(np.float64)))


def test_values_beyond_what_a_fit_can_hold_say_so():
    # A covariance of values 3e19 apart is beyond float32's range.
    X = _large_blobs(3e18, 400, np.float32)
    with pytest.raises(ValueError, match="fit it in float64"):
        GaussianMixtureEM(2, random_state=0).fit(X)
    # Missing values: their kernels add up uncentred squares in the data's
    # dtype (refused as before: scikit-learn takes no NaN).
    for scale, dtype in [(1e18, np.float32), (3e152, np.float64)]:
        X = _large_blobs(scale, 20_000, dtype)
        X[::7, 1] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match="too large for a Gaussian mixture"):
                GaussianMixtureEM(2, random_state=0).fit(X)
    # scikit-learn's initial tied covariance from data points is n_samples /
    # n_components times the data's: beyond float32's range here.
    X = _large_blobs(3e17, 20_000, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="beyond float32's range"):
            GaussianMixtureEM(
                2, covariance_type="tied", init_params="k-means++", random_state=0
            ).fit(X)


# ----------------------------------------------------------------------
# 6. dtype
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_model_stays_float32(covariance_type):
    X = _blobs()
    attributes = ("weights_", "means_", "covariances_", "precisions_")
    attributes += ("precisions_cholesky_",)
    first_fit = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
    first_fit.fit(X.astype(np.float32)).partial_fit(X)
    first_step = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
    first_step.partial_fit(X.astype(np.float32)).partial_fit(X)
    warm = GaussianMixtureEM(
        2, covariance_type=covariance_type, random_state=0, warm_start=True
    )
    _quiet_fit(warm, X.astype(np.float32))
    _quiet_fit(warm, X)
    for model in (first_fit, first_step, warm):
        for name in attributes:
            assert getattr(model, name).dtype == np.float32, name
        assert model.predict_proba(X).dtype == np.float32
    # A new fit (not a warm start) is a first fit.
    assert first_fit.fit(X).means_.dtype == np.float64


def test_float32_bernoulli_stays_float32():
    X = (_blobs() > 1).astype(np.float32)
    bm = BernoulliMixtureEM(2, random_state=0).partial_fit(X)
    bm.partial_fit(X.astype(np.float64))
    assert bm.means_.dtype == bm.weights_.dtype == np.float32
    assert np.all((bm.means_ > 0) & (bm.means_ < 1))
    assert np.isfinite(bm.score(X))


# ----------------------------------------------------------------------
# 9. Dense and sparse Bernoulli fits
@pytest.mark.parametrize(
    "init_params", ["kmeans", "k-means++", "random", "random_from_data"]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bernoulli_dense_and_sparse_give_the_same_model(init_params, seed):
    # Four overlapping prototypes (not well separated): scikit-learn's
    # KMeans labelled dense and CSR rows differently, and the fits ended
    # 1e-2 apart.
    rng = np.random.RandomState(seed)
    prototypes = rng.uniform(size=(4, 30))
    labels = rng.randint(4, size=600)
    X = (rng.uniform(size=(600, 30)) < 0.5 * prototypes[labels] + 0.25).astype(float)
    weights = rng.randint(1, 3, size=600)
    # A CSR matrix with stored zeros and unsorted indices: the same model.
    csr = sparse.csr_matrix(X)
    csr.data[::7] = 0.0
    csr.indices = csr.indices.copy()
    dense_with_zeros = csr.toarray()
    for row in range(0, 600, 5):
        start, stop = csr.indptr[row], csr.indptr[row + 1]
        csr.indices[start:stop] = csr.indices[start:stop][::-1]
        csr.data[start:stop] = csr.data[start:stop][::-1]
    assert not csr.has_sorted_indices
    dense = _quiet_fit(
        BernoulliMixtureEM(4, init_params=init_params, random_state=seed),
        dense_with_zeros,
        sample_weight=weights,
    )
    sparse_fit = _quiet_fit(
        BernoulliMixtureEM(4, init_params=init_params, random_state=seed),
        csr,
        sample_weight=weights,
    )
    assert sparse_fit.n_iter_ == dense.n_iter_
    assert_allclose(sparse_fit.means_, dense.means_, rtol=1e-10, atol=1e-12)
    assert_allclose(sparse_fit.weights_, dense.weights_, rtol=1e-10)


@pytest.mark.parametrize("per_component", [True, False])
def test_float32_tight_clusters_far_apart_keep_their_spread(monkeypatch, per_component):
    # Two clusters of spread 1e-2, 1e3 apart in 64 dimensions: far from the
    # common centre, so both forms compute them directly. Their mean sums
    # must not come from rows centred 1e3 away (float32 rounds those to
    # ~1e-4, which cost a third of the spread and 0.08 nats of the lower
    # bound in the per-component form; 3e-4 of the covariances in the
    # expanded one).
    from sklearn_em.mixture import _gaussian

    monkeypatch.setattr(_gaussian, "_prefer_per_component", lambda *args: per_component)
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=1e3, size=(2, 64))
    labels = rng.integers(2, size=5000)
    X = (centres[labels] + 1e-2 * rng.normal(size=(5000, 64))).astype(np.float32)
    means = np.stack([X[labels == k].astype(np.float64).mean(axis=0) for k in (0, 1)])
    kwargs = dict(
        n_components=2,
        means_init=means,
        weights_init=[0.5, 0.5],
        precisions_init=np.stack([np.eye(64) * 1e4] * 2),
        reg_covar=1e-6,
        max_iter=5,
        tol=0,
    )
    reference = _quiet_fit(GaussianMixtureEM(**kwargs), X.astype(np.float64))
    ours = _quiet_fit(GaussianMixtureEM(**kwargs), X)
    assert ours._uses_per_component_form(64, np.float32) == per_component
    error = np.abs(ours.covariances_ - reference.covariances_).max()
    assert error <= 1e-5 * np.abs(reference.covariances_).max()
    assert abs(ours.lower_bound_ - reference.lower_bound_) < 1e-3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_components", [1, 2, 3, 4, 12, 17, 40])
@pytest.mark.parametrize("n_columns", [4, 16, 40, 160])
def test_products_with_few_components_are_the_products(dtype, n_components, n_columns):
    # With 2 or 3 components, the chunk's products are one matrix-vector
    # product per component, and float32's with 4 to 16 from 32 columns
    # (17 to 48 from 4 columns a component) the transposed product, copied:
    # the same products, to rounding (relative to the sums of the terms'
    # magnitudes), on either side and in either memory order, written to
    # ``out`` or added to it.
    from sklearn_em.mixture._gaussian import (
        _component_product,
        _inner_product,
        _rows_first,
    )

    # Which orientation each case takes (so that both are covered here).
    coef_T = np.empty((n_components, n_columns), dtype=dtype)
    features_T = np.empty((300, n_columns), dtype=dtype).T
    assert _rows_first(coef_T, features_T) == (
        dtype == np.float32
        and n_components >= 4
        and (
            (n_components <= 16 and n_columns >= 32)
            or (16 < n_components <= 48 and n_columns >= 4 * n_components)
        )
    )

    rng = np.random.RandomState(0)
    F = rng.normal(size=(3000, n_columns)).astype(dtype)
    resp = np.asfortranarray(rng.uniform(size=(3000, n_components)).astype(dtype))
    coef = rng.normal(size=(n_columns, n_components)).astype(dtype)
    eps = np.finfo(dtype).eps

    def assert_product(product, A, B):
        A, B = A.astype(np.float64), B.astype(np.float64)
        assert product.shape == (A.shape[0], B.shape[1])
        error = np.abs(product - A @ B)
        assert np.all(error <= 4 * A.shape[1] * eps * (np.abs(A) @ np.abs(B)))

    for features in (F, np.asfortranarray(F)):
        assert_product(_inner_product(resp.T, features), resp.T, features)
        assert_product(_inner_product(features.T, resp), features.T, resp)
        out = np.empty((n_components, len(F)), dtype=dtype)
        product = _component_product(coef.T, features.T, out=out)
        assert product is out
        assert_product(product, coef.T, features.T)
        fresh = _component_product(coef.T, features.T)
        assert_product(fresh, coef.T, features.T)
        # A product returned without ``out`` is not a reused buffer.
        _component_product(-coef.T, features.T, out=out)
        assert_product(fresh, coef.T, features.T)
        # ``add``: the product is added to what ``out`` holds.
        out[...] = 1
        added = _component_product(coef.T, features.T, out=out, add=True)
        assert added is out
        assert_product(added - 1, coef.T, features.T)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_components", [2, 4, 16, 17, 40, 49])
@pytest.mark.parametrize("n_columns", [16, 32, 40, 200])
def test_summed_products_of_feature_blocks(dtype, n_components, n_columns):
    # The products of the coefficients with a chunk's two feature blocks
    # (diagonal covariances from _DIAG_BLOCK_FEATURES) are summed in the
    # rows-first buffers and copied once where both are computed rows first
    # (float32, 4 to 16 components from 32 columns, 17 to 48 from 4 columns
    # a component), rather than each
    # written into ``out``: bit for bit the result of the two products'
    # writes, the second added to the first, and the sum of the products to
    # rounding.
    from sklearn_em.mixture._gaussian import (
        _component_product,
        _rows_first,
        _summed_component_products,
    )

    rng = np.random.RandomState(0)
    quadratic = rng.normal(size=(3000, n_columns)).astype(dtype) ** 2
    Z = rng.normal(size=(3000, n_columns)).astype(dtype)
    coef = rng.normal(size=(2 * n_columns, n_components)).astype(dtype)
    pairs = [(coef[:n_columns].T, quadratic.T), (coef[n_columns:].T, Z.T)]
    assert all(_rows_first(A, B) for A, B in pairs) == (
        dtype == np.float32
        and n_components >= 4
        and (
            (n_components <= 16 and n_columns >= 32)
            or (16 < n_components <= 48 and n_columns >= 4 * n_components)
        )
    )
    out = np.full((n_components, 3000), np.nan, dtype=dtype)
    summed = _summed_component_products(*pairs, out)
    assert summed is out
    expected = _component_product(*pairs[0])
    _component_product(*pairs[1], out=expected, add=True)
    np.testing.assert_array_equal(summed, expected)
    A = np.hstack([A.astype(np.float64) for A, _ in pairs])
    B = np.vstack([B.astype(np.float64) for _, B in pairs])
    bound = 4 * A.shape[1] * np.finfo(dtype).eps * (np.abs(A) @ np.abs(B))
    assert np.all(np.abs(summed - A @ B) <= bound)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nonzero", [0.0, 0.01, 0.3, 0.75, 0.8, 1.0])
def test_moments_over_the_rows_of_nonzero_responsibility(dtype, nonzero):
    # A component's moments in the per-component form are taken over the
    # rows of non-zero responsibility alone when they are few (separated
    # clusters, where the E-step's responsibilities are exactly zero
    # elsewhere; in float32, raised to a floor far below rounding): the same
    # sums, to rounding, as over every row; strided rows as the augmented
    # features give them, the buffer untouched when gathered.
    from sklearn_em.mixture._gaussian import (
        _KEPT_ROWS_FRACTION,
        _direct_scatter,
        _gathered,
        _kept_rows,
        _weighted_gram,
    )

    rng = np.random.RandomState(0)
    n_samples, n_features = 3000, 40
    augmented = rng.normal(size=(n_samples, n_features + 1)).astype(dtype)
    Z = augmented[:, 1:]
    resp = rng.uniform(0.01, 1, n_samples).astype(dtype)
    negligible = rng.uniform(size=n_samples) >= nonzero
    # float32's floor (relative to the largest: about 1e-29) or exact zeros.
    resp[negligible] = 1e-30 if dtype == np.float32 else 0
    rows = _kept_rows(resp)
    # (A component whose every mass is at float32's floor keeps them all.)
    kept = resp > 2.0**-64 * resp.max() if dtype == np.float32 else resp > 0
    gathered = np.count_nonzero(kept) <= _KEPT_ROWS_FRACTION * n_samples
    assert gathered == (0 < nonzero <= 0.3 or (nonzero == 0 and dtype == np.float64))
    if gathered:
        assert_array_equal(rows, np.flatnonzero(kept))
    else:
        assert rows is None
    out = np.full((n_samples, n_features), 7, dtype=dtype)
    root = np.sqrt(resp)
    gram = _weighted_gram(Z, root, out, rows)
    Z64 = Z.astype(np.float64) * root.astype(np.float64)[:, np.newaxis]
    exact = Z64.T @ Z64
    magnitude = np.abs(Z64).T @ np.abs(Z64)
    eps = np.finfo(dtype).eps
    assert gram.shape == (n_features, n_features)
    assert np.all(np.abs(gram - exact) <= 8 * n_samples * eps * magnitude)
    if gathered:
        assert np.all(out == 7)
    # The direct form's scatter and first moments over the same rows.
    shift = Z[:3].mean(axis=0)
    Z_kept, resp_kept = _gathered(rows, Z, resp)
    scatter, first = _direct_scatter(Z_kept, shift, resp_kept, True)
    D64 = Z.astype(np.float64) - shift
    weighted = D64 * np.sqrt(resp.astype(np.float64))[:, np.newaxis]
    exact = weighted.T @ weighted
    magnitude = np.abs(weighted).T @ np.abs(weighted)
    assert np.all(np.abs(scatter - exact) <= 8 * n_samples * eps * magnitude)
    exact_first = resp.astype(np.float64) @ D64
    assert np.all(
        np.abs(first - exact_first)
        <= 8 * n_samples * eps * (resp.astype(np.float64) @ np.abs(D64))
    )


@pytest.mark.parametrize("n_samples", [1000, 1024, 3000, 4096])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("n_columns", [3, 20])
def test_float32_products_are_float64_sums_of_row_blocks(
    n_samples, transposed, n_columns
):
    # A float32 chunk's products over its rows are summed in float64 from
    # blocks of rows: the float32 rounding of one block, not of the whole
    # chunk. Blocks of _FLOAT32_BLOCK rows for products of few values (7 x
    # 3), of _FLOAT32_SHORT_BLOCK for larger ones (7 x 20); a chunk of at
    # most _FLOAT32_BLOCK rows is one float32 product.
    from sklearn_em.mixture._gaussian import (
        _FLOAT32_BLOCK,
        _FLOAT32_SHORT_BLOCK,
        _FLOAT32_SHORT_BLOCK_PRODUCT,
        _inner_product,
    )

    rng = np.random.RandomState(0)
    A = (
        rng.uniform(1, 2, (n_samples, 7))
        if transposed
        else rng.uniform(1, 2, (7, n_samples))
    ).astype(np.float32)
    A = A.T if transposed else A
    B = rng.uniform(1, 2, (n_samples, n_columns)).astype(np.float32)
    product = _inner_product(A, B)
    exact = A.astype(np.float64) @ B.astype(np.float64)
    assert 7 * 3 < _FLOAT32_SHORT_BLOCK_PRODUCT <= 7 * 20
    assert _FLOAT32_SHORT_BLOCK < _FLOAT32_BLOCK
    block = _FLOAT32_SHORT_BLOCK if n_columns == 20 else _FLOAT32_BLOCK
    if n_samples <= _FLOAT32_BLOCK:
        block = n_samples
    expected = np.zeros((7, n_columns))
    for start in range(0, n_samples, block):
        # Each block's float32 product as the chunk's (a block takes one
        # float32 product; with 3 columns, a matrix-vector product each).
        expected += _inner_product(
            A[:, start : start + block], B[start : start + block]
        )
    assert product.dtype == (np.float64 if n_samples > _FLOAT32_BLOCK else np.float32)
    # (The same blocks' float32 products, added up in another order.)
    assert_allclose(product, expected, rtol=1e-12)
    # Sums of positive terms: within the rounding of one block.
    tolerance = 2 * block * np.finfo(np.float32).eps
    assert np.all(np.abs(product - exact) <= tolerance * exact)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_precision_factors_are_scipys(dtype, covariance_type):
    # The M-step calls LAPACK's potrf and trtrs itself: the factors SciPy's
    # cholesky and solve_triangular (scikit-learn's calls) give, bit for bit.
    from scipy import linalg

    from sklearn_em.mixture._gaussian import _compute_precision_cholesky
    from sklearn_em.mixture._suffstats import CollapseError

    rng = np.random.RandomState(0)
    A = rng.randn(4, 50, 6)
    covariances = (np.einsum("knd,kne->kde", A, A) / 50).astype(dtype)
    if covariance_type == "tied":
        covariances = covariances[0]
    # On one BLAS thread, as the M-step runs them: with OpenBLAS's threads
    # SciPy's own float32 factors can differ in the last bit (seen on an AMD
    # EPYC machine, OpenBLAS's Haswell kernels, on 6 x 6 matrices).
    with threadpool_limits(1):
        expected = [
            linalg.solve_triangular(
                linalg.cholesky(c, lower=True), np.eye(6, dtype=dtype), lower=True
            ).T
            for c in np.reshape(covariances, (-1, 6, 6))
        ]
    got = _compute_precision_cholesky(covariances, covariance_type)
    assert got.dtype == dtype
    np.testing.assert_array_equal(np.reshape(got, (-1, 6, 6)), expected)
    singular = covariances.copy()
    singular[..., 0, :] = 0
    singular[..., :, 0] = 0
    with pytest.raises(CollapseError, match="ill-defined empirical covariance"):
        _compute_precision_cholesky(singular, covariance_type)


def test_regularised_covariance_singular_by_rounding_is_factorised():
    """A regularised covariance that is positive definite in exact arithmetic
    but not through its own rounding (a rank-2 scatter at 1e12 plus
    reg_covar 1e-6) is factorised with its rounding's size, D eps times its
    largest variance, on the diagonal; a factorisable one is left alone, and
    an unregularised singular one still collapses."""
    from sklearn_em.mixture._gaussian import _compute_precision_cholesky
    from sklearn_em.mixture._suffstats import CollapseError

    rng = np.random.RandomState(0)
    failing = None
    for _ in range(50):
        B = rng.randn(2, 4) * 1e6
        covariance = (B.T @ B + 1e-6 * np.eye(4))[np.newaxis]
        try:
            _compute_precision_cholesky(covariance, "full")
        except CollapseError:
            failing = covariance
            break
    assert failing is not None
    factor = _compute_precision_cholesky(failing, "full", regularised=True)[0]
    rounding = 4 * np.finfo(np.float64).eps * np.diagonal(failing[0]).max()
    # (The inverse of the factor by a triangular solve: np.linalg.inv's LU
    # leaves rounding-sized values, 1e-17 here, where the inverse is zero.)
    lower = np.linalg.cholesky(failing[0] + rounding * np.eye(4))
    expected = solve_triangular(lower, np.eye(4), lower=True).T
    assert_array_equal(np.tril(factor, -1), 0)
    assert_allclose(factor, expected, rtol=1e-6)
    # Factorisable: the same factor either way.
    good = (B.T @ B / 1e12 + np.eye(4))[np.newaxis]
    assert_array_equal(
        _compute_precision_cholesky(good, "full", regularised=True),
        _compute_precision_cholesky(good, "full"),
    )
    with pytest.raises(CollapseError):
        _compute_precision_cholesky(np.zeros((1, 4, 4)), "full", regularised=True)


@pytest.mark.parametrize("seed", [12, 27, 34])
def test_no_failure_where_scikit_learn_fits_a_rounding_singular_component(seed):
    """Three points of a component in four dimensions, at a scale where
    reg_covar=1e-6 is below its covariance's rounding: scikit-learn's
    factorisation succeeds by its rounding on these data, ours had failed
    by its own (found by the long hypothesis profile). Both fit now."""
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.normal(size=(9, 4)), rng.normal(size=(3, 4)) + 100]) * 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = GaussianMixtureEM(2, covariance_type="full", random_state=0).fit(X)
        # Whether scikit-learn's factorisation succeeds depends on its
        # LAPACK's rounding (on SkylakeX with SciPy's OpenBLAS 0.3.30 it
        # fails at seed 34): ours fits either way, and as scikit-learn's
        # where that fits.
        try:
            reference = GaussianMixture(2, covariance_type="full", random_state=0)
            reference.fit(X)
        except ValueError as error:
            assert "ill-defined empirical covariance" in str(error)
        else:
            assert_array_equal(model.predict(X), reference.predict(X))
    assert sorted(np.bincount(model.predict(X))) == [3, 9]
    assert np.all(np.isfinite(model.score_samples(X)))
    assert np.all(np.diagonal(model.precisions_cholesky_, axis1=1, axis2=2) > 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("n_features", [1, 2, 7])
def test_factors_from_given_precisions_are_the_per_matrix_calls(
    dtype, covariance_type, n_features
):
    # Given precisions are factored in one batched call, and the covariances
    # recovered with LAPACK's trtrs called as SciPy's solve_triangular calls
    # it: the per-matrix results (scikit-learn's calls), bit for bit, for
    # the lower factors of given precisions and the upper ones of fits.
    from scipy import linalg

    from sklearn_em.mixture._gaussian import (
        _compute_precision_cholesky_from_precisions,
        _covariances_from_precisions_cholesky,
    )

    rng = np.random.RandomState(n_features)
    A = rng.randn(3, 40, n_features)
    precisions = (np.einsum("knd,kne->kde", A, A) / 40).astype(dtype)
    upper = np.triu(rng.randn(3, n_features, n_features)) + 3 * np.eye(n_features)
    upper = upper.astype(dtype)
    if covariance_type == "tied":
        precisions, upper = precisions[0], upper[0]
    stacked = np.reshape(precisions, (-1, n_features, n_features))
    with threadpool_limits(1):
        expected = [np.linalg.cholesky(p[::-1, ::-1])[::-1, ::-1] for p in stacked]
        got = _compute_precision_cholesky_from_precisions(precisions, covariance_type)
        assert_array_equal(np.reshape(got, stacked.shape), expected)
        for factors in (got, upper):
            eye = np.eye(n_features, dtype=dtype)
            inverses = [
                linalg.solve_triangular(u, eye, lower=False)
                for u in np.reshape(factors, (-1, n_features, n_features))
            ]
            expected = [inv.T @ inv for inv in inverses]
            covariances = _covariances_from_precisions_cholesky(
                factors, covariance_type
            )
            assert covariances.dtype == dtype
            assert_array_equal(
                np.reshape(covariances, (-1, n_features, n_features)), expected
            )


def test_factor_inverses_of_triangular_and_general_factors():
    # The precision guard's scale inverts the factors: LAPACK's triangular
    # inverse for upper (fitted) and lower (given) factors, NumPy's general
    # one otherwise.
    from sklearn_em.mixture._gaussian import _factor_inverses

    rng = np.random.RandomState(0)
    general = rng.randn(3, 5, 5) + 5 * np.eye(5)
    for factors in (np.triu(general), np.tril(general), general):
        assert_allclose(
            _factor_inverses(factors), np.linalg.inv(factors), rtol=1e-12, atol=1e-14
        )
    singular = np.triu(general)
    singular[1, 2, 2] = 0
    with pytest.raises(np.linalg.LinAlgError):
        _factor_inverses(singular)


@pytest.mark.parametrize(
    "covariance_type, n_samples, n_features, singular",
    [("full", 300, 200, True), ("tied", 150, 200, True), ("full", 2000, 64, False)],
)
def test_float32_singular_covariances_are_computed_in_float64(
    covariance_type, n_samples, n_features, singular
):
    # Covariances of no more rows than features are singular but for
    # reg_covar: float32 differences cannot resolve the precisions of 1e6 in
    # its directions (full 300 x 200 with 3 components: float32 E-steps put
    # the lower bound 1.5 nats a row above the float64 fit's). Such float32
    # fits compute in float64 and keep float32 parameters; the others keep
    # float32.
    rng = np.random.RandomState(0)
    X = (
        rng.normal(size=(n_samples, n_features))
        + rng.randint(0, 3, size=(n_samples, 1)) * 3.0
    )
    params = dict(covariance_type=covariance_type, random_state=0, max_iter=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixtureEM(3, tol=0, **params).fit(X.astype(np.float32))
        reference = GaussianMixtureEM(3, tol=0, **params).fit(X)
    assert ours._float64_e_steps is singular
    assert ours.covariances_.dtype == np.float32
    rtol = 1e-7 if singular else 1e-5
    assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=rtol)
