"""partial_fit: stepwise EM with running sufficient statistics."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.utils import gen_batches, shuffle
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_em import BernoulliMixtureEM, GaussianMixtureEM
from sklearn_em.mixture._online import (
    blend_statistics,
    recentre_statistics,
    step_size,
)


def _blobs(n_samples, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 1.0, 2.0], [0.0, 5.0, -2.0]])
    labels = rng.integers(3, size=n_samples)
    scales = np.array([1.0, 0.5, 1.5])[labels, None]
    return centres[labels] + scales * rng.normal(size=(n_samples, 3)), centres


def _stream(estimator, X, n_passes, batch_size):
    for epoch in range(n_passes):
        X_epoch = shuffle(X, random_state=epoch)
        for batch in gen_batches(X.shape[0], batch_size):
            estimator.partial_fit(X_epoch[batch])
    return estimator


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_stream_reaches_batch_held_out_likelihood(covariance_type):
    X, _ = _blobs(5000)
    X_train, X_test = X[:4000], X[4000:]
    params = dict(n_components=3, covariance_type=covariance_type, random_state=0)
    batch = GaussianMixtureEM(**params).fit(X_train)
    online = _stream(GaussianMixtureEM(**params), X_train, n_passes=3, batch_size=200)
    assert online.n_batch_iter_ == 60
    assert abs(online.score(X_test) - batch.score(X_test)) < 0.01 * abs(
        batch.score(X_test)
    )


def test_bernoulli_stream_reaches_batch_held_out_likelihood():
    rng = np.random.default_rng(1)
    prototypes = rng.uniform(0.05, 0.95, size=(4, 30))
    labels = rng.integers(4, size=5000)
    X = (rng.random((5000, 30)) < prototypes[labels]).astype(np.float64)
    X_train, X_test = X[:4000], X[4000:]
    batch = BernoulliMixtureEM(4, random_state=0).fit(X_train)
    online = _stream(BernoulliMixtureEM(4, random_state=0), X_train, 3, 200)
    assert abs(online.score(X_test) - batch.score(X_test)) < 0.01 * abs(
        batch.score(X_test)
    )


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_recentre_statistics_is_exact(covariance_type):
    X, centres = _blobs(300, seed=2)
    resp = np.random.default_rng(2).dirichlet(np.ones(3), size=300)
    accumulate = GaussianMixtureEM(covariance_type=covariance_type)
    old, new = centres + 0.3, centres - 1.7
    around_old = accumulate._accumulate_function(old)(X, resp)
    around_new = accumulate._accumulate_function(new)(X, resp)
    moved = recentre_statistics(around_old, old, new)
    assert_allclose(moved["sxx"], around_new["sxx"], rtol=1e-12)
    assert_allclose(moved["sx"], around_new["sx"], rtol=1e-15)
    # No shift: nothing to move.
    assert recentre_statistics(around_old, None, new) is around_old


def test_step_size_and_blend():
    assert step_size(1, 0.7, 10.0) == pytest.approx(11**-0.7, rel=1e-15)
    assert step_size(1, 1.0, 0.0) == 1.0
    a = {"nk": np.array([2.0, 6.0]), "sum_weight": np.array(8.0)}
    b = {"nk": np.array([3.0, 1.0]), "sum_weight": np.array(4.0)}
    first = blend_statistics(None, a, 0.3)
    assert_allclose(first["nk"], [0.25, 0.75], rtol=1e-15)
    second = blend_statistics(first, b, 0.5)
    assert_allclose(second["nk"], [0.5, 0.5], rtol=1e-15)
    assert_allclose(second["sum_weight"], 1.0, rtol=1e-15)


def _m_step_full(X, resp, reg_covar):
    """Weights, means and full covariances from responsibilities, directly."""
    nk = resp.sum(axis=0)
    means = resp.T @ X / nk[:, None]
    covariances = np.stack(
        [
            ((X - m).T * r) @ (X - m) / n + reg_covar * np.eye(X.shape[1])
            for m, r, n in zip(means, resp.T, nk)
        ]
    )
    return nk / nk.sum(), means, covariances


def test_two_steps_average_the_batches_statistics():
    """With kappa=1, t0=0, step 2 is an M-step on the average of both batches.

    Batch A's responsibilities come from the initial parameters and batch B's
    from the parameters after step 1; the second moments around different
    shifts must be combined exactly.
    """
    X, centres = _blobs(600, seed=3)
    A, B = X[:300], X[300:]
    est = GaussianMixtureEM(
        3,
        means_init=centres + 1.0,
        weights_init=[0.2, 0.3, 0.5],
        precisions_init=np.stack([np.eye(3)] * 3),
        learning_decay=1.0,
        learning_offset=0.0,
    )
    est.partial_fit(A)
    # Step 1 is an M-step from A's responsibilities under the initial model.
    initial = clone(est).set_params(max_iter=0).fit(A)
    resp_A = initial.predict_proba(A)
    for got, want in zip(
        (est.weights_, est.means_, est.covariances_),
        _m_step_full(A, resp_A, est.reg_covar),
    ):
        assert_allclose(got, want, rtol=1e-10)
    resp_B = est.predict_proba(B)
    est.partial_fit(B)
    assert est.n_batch_iter_ == 2
    expected = _m_step_full(X, np.vstack([resp_A, resp_B]), est.reg_covar)
    for got, want in zip((est.weights_, est.means_, est.covariances_), expected):
        assert_allclose(got, want, rtol=1e-10)


def test_sample_weight_equals_repetition():
    X, centres = _blobs(400, seed=4)
    weights = np.random.default_rng(4).integers(0, 3, size=400)
    params = dict(
        n_components=3,
        means_init=centres,
        weights_init=[1 / 3] * 3,
        precisions_init=np.stack([np.eye(3)] * 3),
    )
    weighted, repeated = GaussianMixtureEM(**params), GaussianMixtureEM(**params)
    for batch in gen_batches(400, 100):
        weighted.partial_fit(X[batch], sample_weight=weights[batch])
        repeated.partial_fit(np.repeat(X[batch], weights[batch], axis=0))
    for name in ["weights_", "means_", "covariances_"]:
        assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-10)


def test_partial_fit_validation_and_fit_reset():
    X, _ = _blobs(200, seed=5)
    est = GaussianMixtureEM(3, random_state=0).partial_fit(X[:100])
    assert est.n_features_in_ == 3
    with pytest.raises(ValueError, match="X has 2 features"):
        est.partial_fit(X[100:, :2])
    with pytest.raises(InvalidParameterError, match="learning_decay"):
        GaussianMixtureEM(learning_decay=0.5).partial_fit(X)
    with pytest.raises(InvalidParameterError, match="learning_offset"):
        GaussianMixtureEM(learning_offset=-1.0).partial_fit(X)
    est.fit(X)
    assert not hasattr(est, "n_batch_iter_")
    # After fit, steps continue from the fitted model (no new initialisation).
    means = est.means_.copy()
    est.partial_fit(X)
    assert est.n_batch_iter_ == 1
    assert_allclose(est.means_, means, atol=0.05)
