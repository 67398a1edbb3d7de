"""Tests of BernoulliMixtureEM: the maths, sparse input, weights and bad input."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from scipy.special import betaln, logsumexp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.utils import ClassifierTags
from sklearn.utils.estimator_checks import check_estimator_sparse_array

from sklearn_em import BernoulliMixtureEM
from sklearn_em.mixture._bernoulli import (
    _accumulate_bernoulli,
    _bernoulli_log_terms,
    _estimate_bernoulli_parameters,
    _weighted_log_bernoulli_prob,
)


def _planted(n_samples=600, n_features=40, n_components=3, random_state=0):
    """Binary data drawn from a known mixture; returns X, labels, theta, pi."""
    rng = np.random.RandomState(random_state)
    theta = np.where(rng.uniform(size=(n_components, n_features)) < 0.5, 0.1, 0.9)
    pi = np.array([0.5, 0.3, 0.2])[:n_components]
    labels = rng.choice(n_components, size=n_samples, p=pi)
    X = (rng.uniform(size=(n_samples, n_features)) < theta[labels]).astype(float)
    return X, labels, theta, pi


def _random_binary(n_samples=80, n_features=6, random_state=0, p=0.4):
    rng = np.random.RandomState(random_state)
    return (rng.uniform(size=(n_samples, n_features)) < p).astype(np.float64)


def _log_joint_reference(X, theta, pi):
    """log(pi_k prod_d theta_kd^x_nd (1 - theta_kd)^(1 - x_nd)), by loops."""
    out = np.empty((X.shape[0], theta.shape[0]))
    for n in range(X.shape[0]):
        for k in range(theta.shape[0]):
            p = np.prod(np.where(X[n] == 1, theta[k], 1.0 - theta[k]))
            out[n, k] = np.log(pi[k] * p)
    return out


def _log_prior_reference(theta, alpha, beta):
    """Sum over k, d of the log Beta(alpha, beta) density at theta_kd."""
    return sum(
        (alpha - 1) * np.log(t) + (beta - 1) * np.log(1 - t) - betaln(alpha, beta)
        for t in theta.ravel()
    )


def _given_init(n_features, n_components=2, random_state=1):
    rng = np.random.RandomState(random_state)
    means = rng.uniform(0.2, 0.8, size=(n_components, n_features))
    weights = rng.dirichlet(np.ones(n_components))
    return {"means_init": means, "weights_init": weights}


def _assert_same_model(a, b, rtol=1e-10, atol=1e-12):
    assert_allclose(a.weights_, b.weights_, rtol=rtol, atol=atol)
    assert_allclose(a.means_, b.means_, rtol=rtol, atol=atol)
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol)
    assert a.n_iter_ == b.n_iter_


# ----------------------------------------------------------------------
# The maths


def test_m_step_matches_loops():
    X = _random_binary(n_samples=7, n_features=4, random_state=3)
    rng = np.random.RandomState(0)
    resp = rng.dirichlet(np.ones(3), size=7) * rng.uniform(0.5, 2, size=(7, 1))
    alpha, beta = 1.5, 3.0

    nk = np.zeros(3)
    sx = np.zeros((3, 4))
    for n in range(7):
        for k in range(3):
            nk[k] += resp[n, k]
            for d in range(4):
                sx[k, d] += resp[n, k] * X[n, d]
    theta = np.empty((3, 4))
    for k in range(3):
        for d in range(4):
            theta[k, d] = (sx[k, d] + alpha - 1) / (nk[k] + alpha + beta - 2)

    for data in (X, sparse.csr_matrix(X)):
        stats = _accumulate_bernoulli(data, resp)
        assert_allclose(stats["nk"], nk, rtol=1e-12)
        assert_allclose(stats["sx"], sx, rtol=1e-12)
        _, means = _estimate_bernoulli_parameters(stats, alpha, beta)
        assert_allclose(means, theta, rtol=1e-12)


def test_one_em_iteration_matches_hand_computation():
    """fit with max_iter=1 is one E-step and one M-step from the given start."""
    X = _random_binary(n_samples=30, n_features=5, random_state=2)
    init = _given_init(5, n_components=2)
    alpha, beta = 2.0, 3.0
    bm = BernoulliMixtureEM(2, alpha=alpha, beta=beta, max_iter=1, **init)
    with pytest.warns(ConvergenceWarning):
        bm.fit(X)

    log_joint = _log_joint_reference(X, init["means_init"], init["weights_init"])
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    nk = resp.sum(axis=0)
    theta = (resp.T @ X + alpha - 1) / (nk[:, None] + alpha + beta - 2)
    assert_allclose(bm.means_, theta, rtol=1e-10)
    assert_allclose(bm.weights_, nk / nk.sum(), rtol=1e-10)
    # The objective is the penalised log-likelihood at the start, per sample.
    objective = (
        logsumexp(log_joint, axis=1).mean()
        + _log_prior_reference(init["means_init"], alpha, beta) / X.shape[0]
    )
    assert_allclose(bm.lower_bound_, objective, rtol=1e-12)


def test_e_step_is_a_product_of_bernoullis():
    rng = np.random.RandomState(0)
    X = _random_binary(n_samples=20, n_features=5, random_state=1)
    theta = rng.uniform(0.05, 0.95, size=(3, 5))
    pi = rng.dirichlet(np.ones(3))
    expected = _log_joint_reference(X, theta, pi)

    log_odds, log_bias = _bernoulli_log_terms(theta, pi)
    for data in (X, sparse.csr_matrix(X)):
        got = _weighted_log_bernoulli_prob(data, log_odds=log_odds, log_bias=log_bias)
        assert_allclose(got, expected, rtol=1e-12)

    bm = BernoulliMixtureEM(3, means_init=theta, weights_init=pi, max_iter=1)
    with pytest.warns(ConvergenceWarning):
        bm.fit(X)
    bm.means_, bm.weights_ = theta, pi
    assert_allclose(bm.score_samples(X), logsumexp(expected, axis=1), rtol=1e-12)
    assert_allclose(
        bm.predict_proba(X),
        np.exp(expected - logsumexp(expected, axis=1, keepdims=True)),
        rtol=1e-10,
    )


@pytest.mark.parametrize("weights", ["learn", "uniform"])
def test_lower_bound_is_monotone(weights):
    X, _, _, _ = _planted(n_samples=300, n_features=30)
    bm = BernoulliMixtureEM(
        5, weights=weights, init_params="random", tol=0, max_iter=40, random_state=0
    )
    with pytest.warns(ConvergenceWarning):
        bm.fit(X)
    lower_bounds = np.asarray(bm.lower_bounds_)
    assert len(lower_bounds) == 40
    assert np.all(np.diff(lower_bounds) >= -1e-12 * np.abs(lower_bounds[1:]))
    assert lower_bounds[-1] > lower_bounds[0] + 1.0


def test_recovers_planted_components():
    X, labels, theta, pi = _planted()
    bm = BernoulliMixtureEM(3, random_state=0).fit(X)
    assert bm.converged_
    assert adjusted_rand_score(labels, bm.predict(X)) > 0.99
    # Match components by their means and compare with the truth.
    order = [np.argmin(np.abs(bm.means_ - t).sum(axis=1)) for t in theta]
    assert sorted(order) == [0, 1, 2]
    assert_allclose(bm.means_[order], theta, atol=0.12)
    assert_allclose(bm.weights_[order], pi, atol=0.05)


# ----------------------------------------------------------------------
# Sparse input


@pytest.mark.parametrize("init", ["given", "random", "random_from_data", "kmeans"])
@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csc_array])
def test_sparse_equals_dense(init, container):
    X, _, _, _ = _planted(n_samples=200, n_features=25, random_state=4)
    params = (
        {"init_params": "random", **_given_init(25, 3)}
        if init == "given"
        else {"init_params": init}
    )
    est = BernoulliMixtureEM(3, random_state=0, tol=1e-8, **params)
    dense = clone(est).fit(X)
    sparse_fit = clone(est).fit(container(X))
    _assert_same_model(dense, sparse_fit)
    assert_allclose(
        sparse_fit.predict_proba(container(X)), dense.predict_proba(X), rtol=1e-10
    )
    assert_allclose(sparse_fit.score_samples(X), dense.score_samples(X), rtol=1e-10)


def test_sparse_input_is_not_densified_nor_modified():
    X = sparse.random(50, 30, density=0.1, format="csr", random_state=0)
    X.data[:] = 2.5  # non-binary values, binarised at the default threshold 0
    before = X.copy()
    est = BernoulliMixtureEM(2, init_params="random", random_state=0)
    bm = clone(est).fit(X)
    assert_array_equal(X.toarray(), before.toarray())
    dense = clone(est).fit((X.toarray() > 0) * 1.0)
    _assert_same_model(bm, dense)


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_sparse_input_is_never_densified(init_params):
    # 5,000 x 4,000 with 40,000 ones: densified, the matrix alone would take
    # 160 MB (80 MB binarised to float32); fit, predict and score stay far below.
    import tracemalloc

    X = sparse.random(5000, 4000, density=0.002, format="csr", random_state=0)
    X.data[:] = 1.0
    bm = BernoulliMixtureEM(3, init_params=init_params, max_iter=5, random_state=0)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            bm.fit(X)
        bm.predict_proba(X)
        bm.score_samples(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


class _TaggedBernoulliMixtureEM(BernoulliMixtureEM):
    """Fills in the classifier tag scikit-learn's sparse check reads by mistake."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags = ClassifierTags(multi_class=False)
        return tags


def test_sklearn_sparse_container_check():
    # The check expects predict_proba of shape (n, 2) once the tag exists:
    # two components. See tests/test_common.py for why it is needed.
    check_estimator_sparse_array(
        "BernoulliMixtureEM", _TaggedBernoulliMixtureEM(2, random_state=0)
    )


# ----------------------------------------------------------------------
# Weights


def test_sample_weight_equals_repeated_rows():
    X = _random_binary(n_samples=60, n_features=8, random_state=5)
    rng = np.random.RandomState(0)
    counts = rng.randint(1, 4, size=X.shape[0])
    est = BernoulliMixtureEM(2, tol=1e-10, max_iter=500, **_given_init(8))
    weighted = clone(est).fit(X, sample_weight=counts)
    repeated = clone(est).fit(np.repeat(X, counts, axis=0))
    _assert_same_model(weighted, repeated)
    weighted_sparse = clone(est).fit(sparse.csr_matrix(X), sample_weight=counts)
    _assert_same_model(weighted_sparse, repeated)


@pytest.mark.parametrize("init_params", ["random", "random_from_data", "kmeans"])
def test_zero_weight_equals_removal(init_params):
    X = _random_binary(n_samples=60, n_features=8, random_state=6)
    weight = np.ones(X.shape[0])
    weight[::4] = 0
    est = BernoulliMixtureEM(
        3, init_params=init_params, random_state=0, tol=1e-8, max_iter=2000
    )
    weighted = clone(est).fit(X, sample_weight=weight)
    removed = clone(est).fit(X[weight > 0])
    _assert_same_model(weighted, removed)


def test_uniform_weights():
    X, _, _, _ = _planted(n_samples=200, n_features=20)
    bm = BernoulliMixtureEM(3, weights="uniform", random_state=0).fit(X)
    assert_allclose(bm.weights_, np.full(3, 1 / 3), rtol=1e-15)
    # Responsibilities are the normalised likelihoods.
    log_like = _log_joint_reference(X[:10], bm.means_, np.ones(3))
    assert_allclose(
        bm.predict_proba(X[:10]),
        np.exp(log_like - logsumexp(log_like, axis=1, keepdims=True)),
        rtol=1e-10,
    )
    learned = BernoulliMixtureEM(3, random_state=0).fit(X)
    # Two fewer free parameters than with learned weights.
    assert bm._n_parameters() == learned._n_parameters() - 2 == 3 * 20
    with pytest.raises(ValueError, match="weights='uniform'"):
        BernoulliMixtureEM(2, weights="uniform", weights_init=[0.5, 0.5]).fit(X)


# ----------------------------------------------------------------------
# Finite likelihoods, dtypes and other behaviour


def test_held_out_likelihood_finite_with_all_zero_columns():
    X, _, _, _ = _planted(n_samples=300, n_features=20)
    X[:, :5] = 0  # five pixels never on in training
    alpha, beta = 2.0, 2.0
    bm = BernoulliMixtureEM(3, alpha=alpha, beta=beta, random_state=0).fit(X)
    assert np.all((bm.means_ > 0) & (bm.means_ < 1))
    # A never-seen pixel gets the prior's pseudo-count: (alpha - 1) / (N_k + 2).
    nk = bm.weights_ * X.shape[0]
    expected = np.repeat(((alpha - 1) / (nk + alpha + beta - 2))[:, None], 5, axis=1)
    assert_allclose(bm.means_[:, :5], expected, rtol=1e-10)
    X_test = np.ones((4, 20))
    scores = bm.score_samples(X_test)
    assert np.all(np.isfinite(scores))
    assert np.isfinite(bm.score(X_test))


def test_means_init_with_zeros_and_ones_is_finite():
    X = _random_binary(n_samples=40, n_features=4, random_state=0)
    means = np.array([[0.0, 1.0, 0.5, 0.5], [1.0, 0.0, 0.5, 0.5]])
    bm = BernoulliMixtureEM(2, means_init=means, random_state=0).fit(X)
    assert np.all(np.isfinite(bm.lower_bounds_))
    assert np.all(np.isfinite(bm.score_samples(X)))


@pytest.mark.parametrize("as_sparse", [False, True])
def test_float32_preserved(as_sparse):
    X, _, _, _ = _planted(n_samples=200, n_features=20)
    X32 = X.astype(np.float32)
    X32 = sparse.csr_matrix(X32) if as_sparse else X32
    bm = BernoulliMixtureEM(3, random_state=0).fit(X32)
    assert bm.means_.dtype == np.float32
    assert bm.weights_.dtype == np.float32
    assert bm.predict_proba(X32).dtype == np.float32
    assert bm.transform(X32).dtype == np.float32
    bm64 = BernoulliMixtureEM(3, random_state=0).fit(X)
    assert_allclose(bm.means_, bm64.means_, rtol=1e-4, atol=1e-5)


def test_binarize_threshold_like_bernoulli_nb():
    rng = np.random.RandomState(0)
    X_grey = rng.uniform(size=(100, 10))
    X_copy = X_grey.copy()
    thresholded = BernoulliMixtureEM(2, binarize=0.7, random_state=0).fit(X_grey)
    assert_array_equal(X_grey, X_copy)
    binary = BernoulliMixtureEM(2, binarize=None, random_state=0).fit(
        (X_grey > 0.7).astype(float)
    )
    _assert_same_model(thresholded, binary)
    assert_allclose(
        thresholded.score_samples(X_grey),
        binary.score_samples((X_grey > 0.7).astype(float)),
        rtol=1e-12,
    )


def test_n_jobs_gives_the_same_model():
    X, _, _, _ = _planted(n_samples=3000, n_features=20)
    est = BernoulliMixtureEM(3, random_state=0, tol=1e-8)
    _assert_same_model(clone(est).fit(X), clone(est).set_params(n_jobs=2).fit(X))


def test_sample_follows_the_model():
    X, _, _, _ = _planted(n_samples=300, n_features=10)
    bm = BernoulliMixtureEM(2, random_state=0).fit(X)
    samples, labels = bm.sample(20000)
    assert samples.shape == (20000, 10)
    assert set(np.unique(samples)) <= {0.0, 1.0}
    for k in range(2):
        assert_allclose(samples[labels == k].mean(axis=0), bm.means_[k], atol=0.03)
    assert_allclose(np.bincount(labels) / 20000, bm.weights_, atol=0.02)


def test_grid_search_chooses_components_by_likelihood():
    X, _, _, _ = _planted(n_samples=300, n_features=30)
    search = GridSearchCV(
        BernoulliMixtureEM(random_state=0), {"n_components": [1, 3]}, cv=3
    ).fit(X)
    assert search.best_params_ == {"n_components": 3}
    assert search.best_estimator_.bic(X) < BernoulliMixtureEM(1).fit(X).bic(X)


def test_feature_names_out_and_pandas_output():
    pytest.importorskip("pandas")
    X, _, _, _ = _planted(n_samples=100, n_features=6)
    bm = BernoulliMixtureEM(3, random_state=0).set_output(transform="pandas").fit(X)
    out = bm.transform(X)
    expected = [f"bernoullimixtureem{k}" for k in range(3)]
    assert list(bm.get_feature_names_out()) == expected
    assert list(out.columns) == expected


# ----------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "X, match",
    [
        ([[0, 1], [1, 0.5], [0, 0]], "only 0 and 1"),
        ([[0, 1], [1, -1], [0, 0]], "negative"),
        ([[0, 1], [1, np.inf], [0, 0]], "infinity"),
        # NaN marks a missing value: the observed values are still checked.
        ([[0, 1], [np.nan, 0.5], [0, 0]], "only 0 and 1"),
    ],
)
def test_non_binary_input_without_binarize(X, match):
    with pytest.raises(ValueError, match=match):
        BernoulliMixtureEM(binarize=None).fit(X)
    with pytest.raises(ValueError, match=match):
        BernoulliMixtureEM(binarize=None).fit(sparse.csr_matrix(np.asarray(X)))


def test_bad_input():
    X = _random_binary(n_samples=20, n_features=4)
    with pytest.raises(ValueError, match="2D"):
        BernoulliMixtureEM().fit(X[:, 0])
    bm = BernoulliMixtureEM(2, random_state=0, binarize=None).fit(X)
    with pytest.raises(ValueError, match="features"):
        bm.predict(X[:, :3])
    with pytest.raises(ValueError, match="only 0 and 1"):
        bm.predict(X * 2)
    with pytest.raises(ValueError, match="shape"):
        BernoulliMixtureEM(2, means_init=np.full((2, 3), 0.5)).fit(X)
    with pytest.raises(ValueError, match=r"range \[0, 1\]"):
        BernoulliMixtureEM(2, means_init=np.full((2, 4), 1.5)).fit(X)
    with pytest.raises(ValueError, match="alpha"):
        BernoulliMixtureEM(2, alpha=1.0).fit(X)
    with pytest.raises(ValueError, match="beta"):
        BernoulliMixtureEM(2, beta=0.5).fit(X)
    with pytest.raises(ValueError, match="threshold < 0"):
        BernoulliMixtureEM(2, binarize=-0.5).fit(sparse.csr_matrix(X))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        BernoulliMixtureEM(30).fit(X)
