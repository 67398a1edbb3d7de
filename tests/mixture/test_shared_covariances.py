"""The covariance types shared by every component: 'tied_diag' and 'tied_spherical'.

mclust's EEI (one diagonal covariance) and EII (one variance). Their M-step
pools the within-component scatter; everything else is the E-step of 'diag'
and 'spherical' with the shared parameters repeated.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import GaussianMixtureEM

SHARED_TYPES = ["tied_diag", "tied_spherical"]


def _data(n_samples=300, random_state=0, return_labels=False):
    """Three clusters with one shared, axis-aligned, unequal spread."""
    X, y = make_blobs(
        n_samples=n_samples, n_features=3, centers=3, random_state=random_state
    )
    X = X * np.array([1.0, 2.0, 0.5]) + 10.0
    return (X, y) if return_labels else X


def _fit(estimator, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, **fit_params)


def _shared_covariance(covariances, covariance_type, n_features):
    """The one covariance matrix a shared-variance model has, (D, D)."""
    if covariance_type == "tied_diag":
        return np.diag(covariances)
    return float(covariances) * np.eye(n_features)


def _reference_em(X, weights, means, covariance, covariance_type, n_iter, reg):
    """Plain EM with explicit loops: scipy densities, textbook M-step."""
    n_samples, n_features = X.shape
    n_components = len(weights)
    lower_bounds = []
    for _ in range(n_iter):
        log_dens = np.column_stack(
            [
                multivariate_normal(means[k], covariance).logpdf(X)
                for k in range(n_components)
            ]
        ) + np.log(weights)
        lower_bounds.append(logsumexp(log_dens, axis=1).mean())
        resp = np.exp(log_dens - logsumexp(log_dens, axis=1, keepdims=True))
        nk = resp.sum(0)
        weights = nk / n_samples
        means = (resp.T @ X) / nk[:, None]
        pooled = np.zeros(n_features)
        for k in range(n_components):
            for n in range(n_samples):
                pooled += resp[n, k] * (X[n] - means[k]) ** 2
        pooled /= n_samples
        if covariance_type == "tied_diag":
            covariance = np.diag(pooled + reg)
        else:
            covariance = (pooled.mean() + reg) * np.eye(n_features)
    return weights, means, covariance, lower_bounds


@pytest.mark.parametrize("covariance_type", SHARED_TYPES)
def test_m_step_is_pooled_within_scatter(covariance_type):
    """One M-step from hard responsibilities: the closed form, by hand.

    With responsibilities 0/1, the 'tied_diag' covariance is the diagonal of
    the pooled within-cluster scatter over N plus reg_covar, and
    'tied_spherical' its mean over the features.
    """
    X, labels = _data(return_labels=True)
    means = np.array([X[labels == k].mean(0) for k in range(3)])
    precisions = {"tied_diag": np.full(3, 1e6), "tied_spherical": 1e6}
    reg = 1e-4
    # Initial parameters whose E-step returns the labels exactly: tiny shared
    # variances around the clusters' own means (make_blobs' clusters are far
    # apart, so every point is nearest its own cluster's mean).
    assert_array_equal(np.argmin(((X[:, None] - means) ** 2).sum(-1), axis=1), labels)
    gm = GaussianMixtureEM(
        3,
        covariance_type=covariance_type,
        weights_init=np.full(3, 1 / 3),
        means_init=means,
        precisions_init=precisions[covariance_type],
        max_iter=1,
        reg_covar=reg,
    )
    _fit(gm, X)
    # the diagonal of sum_k sum_{n in k} (x_n - mu_k)(x_n - mu_k)^T
    scatter = sum(((X[labels == k] - means[k]) ** 2).sum(0) for k in range(3))
    expected = scatter / X.shape[0] + reg
    if covariance_type == "tied_spherical":
        expected = scatter.mean() / X.shape[0] + reg
    assert (
        gm.covariances_.shape
        == {"tied_diag": (3,), "tied_spherical": ()}[covariance_type]
    )
    assert_allclose(gm.covariances_, expected, rtol=1e-10)
    assert_allclose(gm.means_, means, rtol=1e-12)
    assert_allclose(gm.weights_, np.full(3, 1 / 3), rtol=1e-12)
    assert_allclose(gm.precisions_, 1 / expected, rtol=1e-10)
    assert_allclose(gm.precisions_cholesky_, 1 / np.sqrt(expected), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", SHARED_TYPES)
def test_em_iterations_match_reference(covariance_type):
    """Five EM iterations from a soft start equal an independent EM."""
    X = _data(n_samples=90, random_state=3)
    rng = np.random.RandomState(0)
    weights0 = np.array([0.2, 0.3, 0.5])
    means0 = X[rng.choice(90, 3, replace=False)] + 0.5
    variances0 = X.var(0)
    if covariance_type == "tied_diag":
        precisions0 = 1 / variances0
        covariance0 = np.diag(variances0)
    else:
        precisions0 = 1 / variances0.mean()
        covariance0 = variances0.mean() * np.eye(3)
    reg = 1e-6
    gm = GaussianMixtureEM(
        3,
        covariance_type=covariance_type,
        weights_init=weights0,
        means_init=means0,
        precisions_init=precisions0,
        max_iter=5,
        tol=0,
        reg_covar=reg,
    )
    _fit(gm, X)
    weights, means, covariance, lower_bounds = _reference_em(
        X, weights0, means0, covariance0, covariance_type, 5, reg
    )
    assert_allclose(gm.weights_, weights, rtol=1e-9)
    assert_allclose(gm.means_, means, rtol=1e-9)
    assert_allclose(
        _shared_covariance(gm.covariances_, covariance_type, 3), covariance, rtol=1e-9
    )
    assert_allclose(gm.lower_bounds_, lower_bounds, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", SHARED_TYPES)
def test_predictions_against_scipy(covariance_type):
    X = _data()
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    covariance = _shared_covariance(gm.covariances_, covariance_type, 3)
    log_joint = np.column_stack(
        [multivariate_normal(m, covariance).logpdf(X) for m in gm.means_]
    ) + np.log(gm.weights_)
    assert_allclose(gm.score_samples(X), logsumexp(log_joint, axis=1), rtol=1e-10)
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    assert_allclose(gm.predict_proba(X), resp, atol=1e-10)
    assert_allclose(gm.transform(X), resp, atol=1e-10)
    assert_array_equal(gm.predict(X), resp.argmax(1))
    n_parameters = {"tied_diag": 3, "tied_spherical": 1}[covariance_type] + 9 + 2
    expected_bic = -2 * logsumexp(log_joint, axis=1).sum() + n_parameters * np.log(300)
    assert_allclose(gm.bic(X), expected_bic, rtol=1e-10)
    assert_allclose(gm.aic(X), expected_bic - n_parameters * (np.log(300) - 2))


@pytest.mark.parametrize(
    "covariance_type, per_component",
    [("tied_diag", "diag"), ("tied_spherical", "spherical")],
)
def test_one_component_equals_per_component_type(covariance_type, per_component):
    """With one component, sharing the variances changes nothing."""
    X = _data()
    shared = GaussianMixtureEM(1, covariance_type=covariance_type).fit(X)
    single = GaussianMixtureEM(1, covariance_type=per_component).fit(X)
    assert_allclose(shared.covariances_, single.covariances_[0], rtol=1e-12)
    assert_allclose(shared.score(X), single.score(X), rtol=1e-12)
    assert shared._n_parameters() == single._n_parameters()


def test_nested_in_richer_types():
    """The shared-variance fits are constrained versions of richer types.

    Warm-starting a richer type from a shared-variance solution (which is a
    point of the richer model) can only increase the log-likelihood.
    """
    X = _data()
    eii = GaussianMixtureEM(3, covariance_type="tied_spherical", random_state=0).fit(X)
    eei = GaussianMixtureEM(
        3,
        covariance_type="tied_diag",
        weights_init=eii.weights_,
        means_init=eii.means_,
        precisions_init=np.full(3, eii.precisions_),
    ).fit(X)
    eee = GaussianMixtureEM(
        3,
        covariance_type="tied",
        weights_init=eei.weights_,
        means_init=eei.means_,
        precisions_init=np.diag(eei.precisions_),
    ).fit(X)
    assert eii.score(X) <= eei.score(X) + 1e-9 <= eee.score(X) + 2e-9
    # the data's spread is unequal across features: EEI beats EII by far
    assert eei.score(X) > eii.score(X) + 0.1


@pytest.mark.parametrize("covariance_type", SHARED_TYPES)
def test_sample_has_the_shared_covariance(covariance_type):
    X = _data()
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    X_new, y_new = gm.sample(30_000)
    assert X_new.shape == (30_000, 3)
    covariance = _shared_covariance(gm.covariances_, covariance_type, 3)
    for k in range(3):
        Xk = X_new[y_new == k]
        assert_allclose(Xk.mean(0), gm.means_[k], atol=0.1)
        assert_allclose(np.cov(Xk.T), covariance, atol=0.1 * covariance.max())


@pytest.mark.parametrize("covariance_type", SHARED_TYPES)
def test_float32_kept(covariance_type):
    X = _data().astype(np.float32)
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    gm64 = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(
        X.astype(np.float64)
    )
    for attr in ("covariances_", "precisions_", "precisions_cholesky_"):
        assert np.asarray(getattr(gm, attr)).dtype == np.float32
    assert gm.transform(X).dtype == np.float32
    assert_allclose(gm.covariances_, gm64.covariances_, rtol=1e-4)


@pytest.mark.parametrize("covariance_type", SHARED_TYPES)
def test_sample_weight_equals_repetition(covariance_type):
    X = _data(n_samples=60)
    w = np.random.RandomState(0).randint(0, 3, size=60)
    init = dict(
        weights_init=np.full(3, 1 / 3),
        means_init=X[:3],
        precisions_init={"tied_diag": np.ones(3), "tied_spherical": 1.0}[
            covariance_type
        ],
    )
    weighted = _fit(
        GaussianMixtureEM(3, covariance_type=covariance_type, **init),
        X,
        sample_weight=w,
    )
    repeated = _fit(
        GaussianMixtureEM(3, covariance_type=covariance_type, **init),
        np.repeat(X, w, axis=0),
    )
    assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-8)
    assert_allclose(weighted.means_, repeated.means_, rtol=1e-8)


@pytest.mark.parametrize("covariance_type", SHARED_TYPES)
def test_partial_fit_and_warm_start(covariance_type):
    X = _data()
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0)
    for batch in np.array_split(np.random.RandomState(0).permutation(300), 5):
        gm.partial_fit(X[batch])
    batch_fit = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0)
    batch_fit.fit(X)
    # stepwise EM on well separated clusters ends near the batch solution
    assert abs(gm.score(X) - batch_fit.score(X)) < 0.05
    assert np.shape(gm.covariances_) == np.shape(batch_fit.covariances_)
    warm = GaussianMixtureEM(
        3, covariance_type=covariance_type, warm_start=True, random_state=0
    ).fit(X)
    before = warm.score(X)
    warm.fit(X)
    assert warm.score(X) >= before - 1e-12


@pytest.mark.parametrize(
    "covariance_type, precisions, message",
    [
        ("tied_diag", np.ones((3, 3)), r"shape of \(3,\)"),
        ("tied_diag", -np.ones(3), "should be positive"),
        ("tied_spherical", np.ones(3), r"shape of \(\)"),
        ("tied_spherical", 0.0, "should be positive"),
    ],
)
def test_bad_precisions_init(covariance_type, precisions, message):
    gm = GaussianMixtureEM(
        3, covariance_type=covariance_type, precisions_init=precisions
    )
    with pytest.raises(ValueError, match=message):
        gm.fit(_data())


def test_tied_spherical_accepts_a_number_as_precisions_init():
    X = _data()
    gm = GaussianMixtureEM(
        3,
        covariance_type="tied_spherical",
        weights_init=np.full(3, 1 / 3),
        means_init=X[[0, 100, 200]],
        precisions_init=2.0,
        max_iter=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    assert_allclose(gm.precisions_, 2.0)
    assert_allclose(gm.covariances_, 0.5)
