"""Mixtures fitted and used with missing values (NaN).

The incomplete-data E-step and its expected statistics are checked against a
brute-force computation (scipy's marginal densities and explicit conditional
moments, row by row); EM on incomplete data against its guarantees (the
observed-data likelihood never decreases, the estimates are consistent); and
complete data against the complete-data code, which it must still run.
"""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import BernoulliMixtureEM, GaussianMixtureEM
from sklearn_em.mixture import _gaussian, _missing
from sklearn_em.mixture._arrays import ArrayData
from sklearn_em.mixture._data import as_data
from sklearn_em.mixture._gaussian import _estimate_log_gaussian_prob

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical", "tied_diag", "tied_spherical"]
INIT_PARAMS = ["kmeans", "k-means++", "random", "random_from_data"]


def _mixture_data(n_samples, seed=0, n_features=3):
    """Two correlated Gaussian clusters; the truth is returned too."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [4.0, 3.0, -2.0]])[:, :n_features]
    a = np.array([[1.0, 0.6, 0.3], [0.0, 0.8, -0.4], [0.0, 0.0, 0.5]])
    b = np.array([[0.7, -0.3, 0.0], [0.0, 1.2, 0.5], [0.0, 0.0, 0.9]])
    covariances = np.stack([a.T @ a, b.T @ b])[:, :n_features, :n_features]
    weights = np.array([0.4, 0.6])
    labels = rng.choice(2, size=n_samples, p=weights)
    X = np.empty((n_samples, n_features))
    for k in range(2):
        rows = labels == k
        X[rows] = rng.multivariate_normal(means[k], covariances[k], rows.sum())
    return X, (weights, means, covariances)


def _remove(X, fraction, seed=0):
    """A copy of X with ``fraction`` of its values missing completely at random."""
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < fraction] = np.nan
    return X


def _dense_covariances(gm):
    """Each component's covariance matrix, shape (K, D, D)."""
    n_components, n_features = gm.means_.shape
    cov = gm.covariances_
    return {
        "full": lambda: cov,
        "tied": lambda: np.stack([cov] * n_components),
        "diag": lambda: np.stack([np.diag(v) for v in cov]),
        "spherical": lambda: np.stack([np.eye(n_features) * v for v in cov]),
        "tied_diag": lambda: np.stack([np.diag(cov)] * n_components),
        "tied_spherical": lambda: np.stack([np.eye(n_features) * cov] * n_components),
    }[gm.covariance_type]()


def _brute_force(X, weights, means, covariances):
    """Marginal log-densities and conditional moments, row by row.

    Returns log pi_k + log p(x_o | k) (n, K), E[x | x_o, k] (K, n, D) and
    Cov[x | x_o, k] (K, n, D, D), from explicit submatrices.
    """
    n_samples, n_features = X.shape
    n_components = len(means)
    log_prob = np.zeros((n_samples, n_components))
    mean = np.zeros((n_components, n_samples, n_features))
    cov = np.zeros((n_components, n_samples, n_features, n_features))
    for n in range(n_samples):
        o = ~np.isnan(X[n])
        m = ~o
        for k in range(n_components):
            S, mu = covariances[k], means[k]
            mean[k, n] = np.where(o, X[n], mu)
            if o.any():
                log_prob[n, k] = multivariate_normal(mu[o], S[np.ix_(o, o)]).logpdf(
                    X[n, o]
                )
            if m.any() and o.any():
                B = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
                mean[k, n, m] = mu[m] + B @ (X[n, o] - mu[o])
                cov[k, n][np.ix_(m, m)] = S[np.ix_(m, m)] - B @ S[np.ix_(o, m)]
            elif m.any():
                cov[k, n] = S
    return log_prob + np.log(weights), mean, cov


def _tiny_fitted(covariance_type, seed=0):
    """A fitted model and a tiny incomplete data set with every kind of row."""
    X, _ = _mixture_data(40, seed=seed)
    gm = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    X = _remove(X[:12], 0.4, seed=seed)
    X[0] = np.nan  # a row with nothing observed
    X[1] = [0.5, -0.2, 0.1]  # a complete row
    X[2, [0, 2]] = np.nan  # one observed value
    return gm, X


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("threaded", [False, True])
def test_check_missing_finds_nan_and_rejects_infinity(order, threaded, monkeypatch):
    # Large data is summed in parts on threads (forced here on small data):
    # a NaN or an infinity anywhere is found, in the last part too, and a
    # finite sum that overflows is neither, without a warning.
    if threaded:
        monkeypatch.setattr(_missing, "_MIN_THREADED_BYTES", 0)
    X = np.asarray(np.random.RandomState(0).normal(size=(300, 7)), order=order)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not _missing.check_missing(X, n_jobs=2)
        for where in [(0, 0), (299, 6), (150, 3)]:
            Y = X.copy(order=order)
            Y[where] = np.nan
            assert _missing.check_missing(Y, n_jobs=2)
            Y[where] = -np.inf
            with pytest.raises(ValueError, match="infinity"):
                _missing.check_missing(Y, n_jobs=2)
        large = np.full((300, 7), np.finfo(np.float64).max, order=order)
        assert not _missing.check_missing(large, n_jobs=2)
    calls = []
    original = _missing.map_in_threads

    def spy(function, items, threads):
        calls.append(len(items))
        return original(function, items, threads)

    monkeypatch.setattr(_missing, "map_in_threads", spy)
    _missing.check_missing(X, n_jobs=2)
    assert calls == ([2] if threaded else [])


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_samples", [500, 3000])
def test_check_missing_bounds_the_values(threaded, dtype, n_samples, monkeypatch):
    # The same pass's sum of squares bounds every value, for any layout and
    # in parts on threads, by a BLAS dot on few values and einsum on more;
    # none where the pass finds a NaN or the squares overflow.
    if threaded:
        monkeypatch.setattr(_missing, "_MIN_THREADED_BYTES", 0)
    rng = np.random.RandomState(0)
    X = rng.standard_t(2, size=(n_samples, 6)) * 10.0 ** rng.uniform(-3, 3, 6)
    X = X.astype(dtype)
    for Y in (X, np.asfortranarray(X), X[::3, 1:5], sparse.csr_matrix(X)):
        values = np.ravel(Y.data if sparse.issparse(Y) else Y)
        # The exact norm, which bounds the largest value: the bound is at
        # least that and at most a rounding's worth above it.
        exact = math.sqrt(math.fsum(float(x) ** 2 for x in values))
        has_missing, magnitude = _missing.check_missing_magnitude(Y, n_jobs=2)
        assert not has_missing
        assert float(np.abs(values).max()) <= exact
        assert exact * (1 - 1e-12) <= magnitude <= exact * (1 + 1e-3)
    Y = X.copy()
    Y[3, 2] = np.nan
    assert _missing.check_missing_magnitude(Y, n_jobs=2) == (True, None)
    Y[3, 2] = -np.inf
    with pytest.raises(ValueError, match="infinity"):
        _missing.check_missing_magnitude(Y, n_jobs=2)
    huge = np.full((10, 3), np.finfo(dtype).max / 4, dtype=dtype)
    assert _missing.check_missing_magnitude(huge, n_jobs=2) == (False, None)
    # float32 sums of squares are taken in parts of 2^20 values added in
    # float64: a bound on data of any size, within a few percent.
    many = rng.standard_normal(6_000_000).astype(dtype)
    exact = math.sqrt(np.dot(many.astype(np.float64), many.astype(np.float64)))
    magnitude = _missing.check_missing_magnitude(many, n_jobs=2)[1]
    assert exact * (1 - 1e-9) <= magnitude <= exact * 1.07


# ----------------------------------------------------------------------
# The E-step and the expected statistics against brute force.
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_prediction_is_the_observed_data_posterior(covariance_type):
    gm, X = _tiny_fitted(covariance_type)
    log_prob, _, _ = _brute_force(X, gm.weights_, gm.means_, _dense_covariances(gm))
    log_norm = logsumexp(log_prob, axis=1)
    assert_allclose(gm.score_samples(X), log_norm, rtol=1e-10, atol=1e-12)
    resp = np.exp(log_prob - log_norm[:, None])
    assert_allclose(gm.predict_proba(X), resp, rtol=1e-10, atol=1e-12)
    assert_array_equal(gm.predict(X), resp.argmax(axis=1))
    # Nothing observed: the prior, and a log-likelihood of log 1.
    assert_allclose(gm.score_samples(X[:1]), [0.0], atol=1e-12)
    assert_allclose(gm.predict_proba(X[:1])[0], gm.weights_, rtol=1e-12)
    n_parameters = gm._n_parameters()
    assert_allclose(
        gm.bic(X), -2 * log_norm.sum() + n_parameters * np.log(len(X)), rtol=1e-10
    )
    assert_allclose(gm.aic(X), -2 * log_norm.sum() + 2 * n_parameters, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_expected_statistics_match_brute_force(covariance_type):
    gm, X = _tiny_fitted(covariance_type, seed=1)
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=len(X))
    log_prob, mean, cov = _brute_force(
        X, gm.weights_, gm.means_, _dense_covariances(gm)
    )
    log_norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - log_norm[:, None])
    # Rows with nothing observed are left out.
    keep = ~np.isnan(X).all(axis=1)
    r = resp[keep] * sample_weight[keep, None]
    dev = mean[:, keep] - gm.means_[:, None, :]
    expected_sxx = np.einsum("nk,kni,knj->kij", r, dev, dev) + np.einsum(
        "nk,knij->kij", r, cov[:, keep]
    )

    chunk_function = gm._missing_e_step_function(gm._e_step_chunk_function())
    stats = chunk_function(X, sample_weight)
    assert_allclose(stats["nk"], r.sum(axis=0), rtol=1e-10)
    assert_allclose(stats["sx"], np.einsum("nk,knd->kd", r, mean[:, keep]), rtol=1e-10)
    assert_allclose(
        stats["log_likelihood"], sample_weight[keep] @ log_norm[keep], rtol=1e-10
    )
    assert_allclose(stats["sum_weight"], sample_weight[keep].sum(), rtol=1e-12)
    if covariance_type == "full":
        assert_allclose(stats["sxx"], expected_sxx, rtol=1e-10, atol=1e-12)
    elif covariance_type == "tied":
        # Only the sum over components is the tied statistic.
        assert_allclose(stats["sxx"].sum(0), expected_sxx.sum(0), rtol=1e-10)
    elif covariance_type == "diag":
        diagonal = np.einsum("kii->ki", expected_sxx)
        assert_allclose(stats["sxx"], diagonal, rtol=1e-10, atol=1e-12)
    else:
        # The spherical M-step reads the mean over features.
        diagonal = np.einsum("kii->ki", expected_sxx)
        assert_allclose(stats["sxx"].mean(1), diagonal.mean(1), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_em_step_is_the_expected_statistics_m_step(covariance_type):
    gm, X = _tiny_fitted(covariance_type, seed=2)
    covariances = _dense_covariances(gm)
    log_prob, mean, cov = _brute_force(X, gm.weights_, gm.means_, covariances)
    keep = ~np.isnan(X).all(axis=1)
    resp = np.exp(log_prob - logsumexp(log_prob, axis=1)[:, None])[keep]
    nk = resp.sum(axis=0)
    means = np.einsum("nk,knd->kd", resp, mean[:, keep]) / nk[:, None]
    dev = mean[:, keep] - means[:, None, :]
    scatter = np.einsum("nk,kni,knj->kij", resp, dev, dev) + np.einsum(
        "nk,knij->kij", resp, cov[:, keep]
    )
    reg = 1e-6
    expected = {
        "full": lambda: scatter / nk[:, None, None] + reg * np.eye(3),
        "tied": lambda: scatter.sum(0) / nk.sum() + reg * np.eye(3),
        "diag": lambda: np.einsum("kii->ki", scatter) / nk[:, None] + reg,
        "spherical": lambda: np.einsum("kii->k", scatter) / (3 * nk) + reg,
        "tied_diag": lambda: np.einsum("kii->i", scatter) / nk.sum() + reg,
        "tied_spherical": lambda: np.einsum("kii->", scatter) / (3 * nk.sum()) + reg,
    }[covariance_type]()

    step = GaussianMixtureEM(
        2,
        covariance_type=covariance_type,
        weights_init=gm.weights_,
        means_init=gm.means_,
        precisions_init=gm.precisions_,
        max_iter=1,
        tol=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        step.fit(X)
    assert_allclose(step.weights_, nk / nk.sum(), rtol=1e-10)
    assert_allclose(step.means_, means, rtol=1e-10, atol=1e-12)
    assert_allclose(step.covariances_, expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_incomplete_kernel_without_missing_values_is_the_complete_model(
    covariance_type,
):
    X, _ = _mixture_data(50)
    gm = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    conditionals = _missing._conditionals(
        X, np.zeros(X.shape, dtype=bool), **gm._missing_parameters()
    )
    engine_type, precisions_chol = gm._engine_parameters()
    expected = _estimate_log_gaussian_prob(
        X, gm.means_, precisions_chol, engine_type
    ) + np.log(gm.weights_)
    assert_allclose(conditionals.log_prob, expected, rtol=1e-10)
    assert_allclose(conditionals.deviations, X - gm.means_[:, None, :], atol=1e-12)


def test_rows_sharing_a_pattern_share_one_factorisation(monkeypatch):
    X, _ = _mixture_data(300)
    gm = GaussianMixtureEM(2, random_state=0).fit(X)
    X = X.copy()
    X[::2, 1] = np.nan  # 150 rows, one pattern
    X[1::4, [0, 2]] = np.nan  # 75 rows, another
    calls = []
    original = np.linalg.cholesky

    def counting(a):
        calls.append(a.shape)
        return original(a)

    monkeypatch.setattr(_missing.np.linalg, "cholesky", counting)
    stats = gm._missing_e_step_function(gm._e_step_chunk_function())(X, None)
    # One batched factorisation for the two components at once, of the two
    # patterns (one missing value padded to two).
    assert sorted(calls) == [(2, 2, 2, 2)]
    assert_allclose(stats["nk"].sum(), 300)


def test_padded_sizes_bound_the_padding_and_the_batches():
    rng = np.random.RandomState(0)
    n_missing = rng.binomial(64, 0.5, size=2000)
    n_missing[:5] = 0
    padded = _missing._padded_sizes(n_missing)
    assert_array_equal(padded[n_missing == 0], 0)
    some = n_missing > 0
    assert np.all(padded[some] >= n_missing[some])
    assert np.all(padded[some] - n_missing[some] <= np.maximum(2, 0.15 * padded[some]))
    assert len(np.unique(padded[some])) <= 8 < len(np.unique(n_missing[some]))


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_padded_e_step_equals_one_batch_per_size(covariance_type, monkeypatch):
    # Eight correlated features: missing blocks of 1 to 8 values.
    X, _ = _mixture_data(400)
    rng = np.random.RandomState(0)
    X = np.hstack([X, X @ rng.normal(size=(3, 5)) + rng.normal(size=(400, 5))])
    gm = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
    gm.fit(X)
    X = _remove(X, 0.5)
    e_step = gm._missing_e_step_function(gm._e_step_chunk_function())
    padded = e_step(X, None)
    imputed = _missing.gaussian_impute_rows(X, **gm._missing_parameters())
    monkeypatch.setattr(_missing, "_padded_sizes", lambda n_missing: n_missing)
    apart = e_step(X, None)
    for key in ["nk", "sx", "sxx", "log_likelihood"]:
        assert_allclose(padded[key], apart[key], rtol=1e-10, atol=1e-10)
    assert_allclose(
        imputed, _missing.gaussian_impute_rows(X, **gm._missing_parameters())
    )


# ----------------------------------------------------------------------
# Complete data runs the complete-data code.
def test_complete_data_never_calls_the_missing_value_kernels(monkeypatch):
    X, _ = _mixture_data(200)
    expected = GaussianMixtureEM(2, random_state=0).fit(X)

    def fail(self, complete):
        raise AssertionError("missing-value kernel used on complete data")

    monkeypatch.setattr(GaussianMixtureEM, "_missing_e_step_function", fail)
    monkeypatch.setattr(GaussianMixtureEM, "_missing_log_prob_function", fail)
    gm = GaussianMixtureEM(2, random_state=0).fit(X)
    clone(gm).partial_fit(X).partial_fit(X)
    for method in ["predict_proba", "score_samples"]:
        assert_array_equal(getattr(gm, method)(X), getattr(expected, method)(X))
    assert as_data(gm, X, reset=False).has_missing is False


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_missing_value_kernels_on_complete_chunks_change_nothing(
    covariance_type, monkeypatch
):
    # Where whether X has NaN is unknown (Dask), every chunk goes through the
    # missing-value kernels, which send complete chunks to the complete code.
    # (The fused form's: small diagonal fits of known-complete data take
    # another form, _direct_e_step_chunk, equal only up to rounding.)
    monkeypatch.setattr(_gaussian, "_DIRECT_VALUES", 0)
    monkeypatch.setattr(_gaussian, "_DIRECT_TIED_VALUES", 0)
    X, _ = _mixture_data(200)
    params = dict(n_components=2, covariance_type=covariance_type, random_state=0)
    expected = GaussianMixtureEM(**params).fit(X)
    init = ArrayData.__init__

    def unknown(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.has_missing = None

    monkeypatch.setattr(ArrayData, "__init__", unknown)
    gm = GaussianMixtureEM(**params).fit(X)
    assert as_data(gm, X, reset=False).has_missing is None
    assert gm.n_iter_ == expected.n_iter_
    for name in ["weights_", "means_", "covariances_", "lower_bound_"]:
        assert_array_equal(getattr(gm, name), getattr(expected, name))
    assert_array_equal(gm.score_samples(X), expected.score_samples(X))


# ----------------------------------------------------------------------
# EM on incomplete data.
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_observed_data_log_likelihood_never_decreases(covariance_type):
    X, _ = _mixture_data(400)
    X = _remove(X, 0.3)
    gm = GaussianMixtureEM(
        2,
        covariance_type=covariance_type,
        init_params="random",
        tol=1e-8,
        max_iter=60,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    bounds = np.asarray(gm.lower_bounds_)
    assert len(bounds) > 5
    assert np.all(np.diff(bounds) >= -1e-10 * np.abs(bounds[1:]))
    # EM moves (from random responsibilities, the pairwise-covariance start
    # of the shared types can already be close to a stationary point).
    assert bounds[-1] > bounds[0]


@pytest.mark.parametrize("fraction", [0.1, 0.4])
def test_estimates_approach_the_truth_as_n_grows(fraction):
    errors = []
    for n_samples in [300, 3000, 30000]:
        X, (weights, means, covariances) = _mixture_data(n_samples, seed=n_samples)
        gm = GaussianMixtureEM(2, random_state=0).fit(_remove(X, fraction))
        order = np.argsort(gm.means_[:, 0])
        errors.append(
            max(
                np.abs(gm.weights_[order] - weights).max(),
                np.abs(gm.means_[order] - means).max(),
                np.abs(gm.covariances_[order] - covariances).max(),
            )
        )
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.06


def test_rows_with_nothing_observed_contribute_nothing():
    X, _ = _mixture_data(200)
    X = _remove(X, 0.2)
    padded = np.vstack([np.full((7, 3), np.nan), X, np.full((3, 3), np.nan)])
    expected = GaussianMixtureEM(2, random_state=0).fit(X)
    gm = GaussianMixtureEM(2, random_state=0).fit(padded)
    for name in ["weights_", "means_", "covariances_", "lower_bound_"]:
        assert_allclose(getattr(gm, name), getattr(expected, name), rtol=1e-12)
    # Also in a partial_fit step, where rows are not dropped at validation.
    a = clone(expected).partial_fit(X).partial_fit(X)
    b = clone(expected).partial_fit(X).partial_fit(padded)
    assert_allclose(a.means_, b.means_, rtol=1e-12)
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_sample_weight_equals_repeated_rows(covariance_type):
    X, _ = _mixture_data(150)
    X = _remove(X, 0.3)
    sample_weight = np.random.default_rng(0).integers(0, 4, size=len(X))
    precisions_init = {
        "full": np.stack([np.eye(3)] * 2),
        "tied": np.eye(3),
        "diag": np.ones((2, 3)),
        "spherical": np.ones(2),
        "tied_diag": np.ones(3),
        "tied_spherical": 1.0,
    }[covariance_type]
    params = dict(
        n_components=2,
        covariance_type=covariance_type,
        tol=0,
        max_iter=20,
        means_init=[[0.0, 0.0, 0.0], [4.0, 3.0, -2.0]],
        weights_init=[0.5, 0.5],
        precisions_init=precisions_init,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = GaussianMixtureEM(**params).fit(X, sample_weight=sample_weight)
        repeated = GaussianMixtureEM(**params).fit(np.repeat(X, sample_weight, 0))
    for name in ["weights_", "means_", "covariances_", "lower_bound_"]:
        assert_allclose(
            getattr(weighted, name), getattr(repeated, name), rtol=1e-7, atol=1e-10
        )


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_every_initialisation_takes_missing_values(init_params):
    X, (weights, means, _) = _mixture_data(600)
    # A small tol: 'random' starts near the saddle where both components
    # are equal, and leaves it slowly (with complete data too).
    gm = GaussianMixtureEM(
        2, init_params=init_params, n_init=2, random_state=0, max_iter=500, tol=1e-6
    ).fit(_remove(X, 0.3))
    assert gm.converged_
    order = np.argsort(gm.means_[:, 0])
    assert_allclose(gm.means_[order], means, atol=0.3)
    assert_allclose(gm.weights_[order], weights, atol=0.06)


def test_partial_fit_with_missing_values_reaches_the_batch_fit():
    X, _ = _mixture_data(4000)
    X = _remove(X, 0.25)
    X_train, X_test = X[:3000], X[3000:]
    batch = GaussianMixtureEM(2, random_state=0).fit(X_train)
    online = GaussianMixtureEM(2, random_state=0)
    for _ in range(2):
        for start in range(0, 3000, 250):
            online.partial_fit(X_train[start : start + 250])
    assert online.n_batch_iter_ == 24
    assert abs(online.score(X_test) - batch.score(X_test)) < 0.01 * abs(
        batch.score(X_test)
    )


def test_fit_predict_and_float32_with_missing_values():
    X, _ = _mixture_data(300)
    X = _remove(X, 0.3)
    X_copy = X.copy()
    gm = GaussianMixtureEM(2, random_state=0)
    labels = gm.fit_predict(X)
    assert_array_equal(labels, gm.predict(X))
    assert_array_equal(X, X_copy)  # the input is not modified
    gm32 = GaussianMixtureEM(2, random_state=0).fit(X.astype(np.float32))
    assert gm32.means_.dtype == np.float32
    proba = gm32.predict_proba(X.astype(np.float32))
    assert proba.dtype == np.float32
    assert_allclose(proba, gm.predict_proba(X), atol=1e-3)
    assert_allclose(gm32.means_, gm.means_, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.full((5, 3), np.nan), "Every value of X is missing"),
        (
            np.array([[1.0, np.nan], [2.0, np.nan], [4.0, np.nan]]),
            r"Feature\(s\) \[1\] of X have no observed value",
        ),
        (np.array([[1.0, np.inf], [2.0, np.nan], [4.0, 5.0]]), "infinity"),
    ],
)
def test_bad_incomplete_data_at_fit(X, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(1).fit(X)


def test_partial_fit_of_rows_with_nothing_observed_says_so():
    X, _ = _mixture_data(50)
    gm = GaussianMixtureEM(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="no row with an observed value"):
        gm.partial_fit(np.full((4, 3), np.nan))


# ----------------------------------------------------------------------
# Bernoulli mixtures: the product over observed features only.
def _binary_data(n_samples, seed=0, fraction=0.3):
    rng = np.random.default_rng(seed)
    prototypes = np.array([[0.9, 0.8, 0.1, 0.2, 0.7], [0.1, 0.3, 0.9, 0.8, 0.4]])
    weights = np.array([0.35, 0.65])
    labels = rng.choice(2, size=n_samples, p=weights)
    X = (rng.random((n_samples, 5)) < prototypes[labels]).astype(float)
    return _remove(X, fraction, seed=seed), (weights, prototypes)


def _bernoulli_brute_force(X, weights, means):
    """log pi_k + sum over observed d of log p(x_d | theta_kd), row by row."""
    log_prob = np.zeros((len(X), len(weights)))
    for n, x in enumerate(X):
        o = ~np.isnan(x)
        for k in range(len(weights)):
            theta = means[k, o]
            log_prob[n, k] = np.log(weights[k]) + np.sum(
                x[o] * np.log(theta) + (1 - x[o]) * np.log1p(-theta)
            )
    return log_prob


@pytest.mark.parametrize("as_sparse", [False, True])
def test_bernoulli_e_step_and_m_step_match_brute_force(as_sparse):
    from scipy import sparse

    X, _ = _binary_data(40, seed=3)
    X[0] = np.nan  # nothing observed
    bm = BernoulliMixtureEM(2, random_state=0).fit(np.nan_to_num(X))
    # A sparse matrix stores every NaN as an explicit entry.
    data = sparse.csr_matrix(X) if as_sparse else X
    if as_sparse:
        assert np.isnan(data.data).sum() == np.isnan(X).sum()
    log_prob = _bernoulli_brute_force(X, bm.weights_, bm.means_)
    log_norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - log_norm[:, None])
    assert_allclose(bm.score_samples(data), log_norm, rtol=1e-10, atol=1e-12)
    assert_allclose(bm.predict_proba(data), resp, rtol=1e-10, atol=1e-12)
    assert_allclose(bm.score_samples(data)[0], 0.0, atol=1e-12)

    # One EM step: per-feature denominators, over the rows where each
    # feature is observed (rows with nothing observed are left out).
    keep = ~np.isnan(X).all(axis=1)
    r, observed = resp[keep], ~np.isnan(X[keep])
    counts = r.T @ observed
    ones = r.T @ np.nan_to_num(X[keep])
    alpha = beta = 2.0
    expected_means = (ones + alpha - 1) / (counts + alpha + beta - 2)
    step = BernoulliMixtureEM(
        2, means_init=bm.means_, weights_init=bm.weights_, max_iter=1, tol=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        step.fit(data)
    assert_allclose(step.means_, expected_means, rtol=1e-10)
    assert_allclose(step.weights_, r.sum(0) / r.sum(), rtol=1e-10)


def test_bernoulli_sparse_equals_dense_and_likelihood_never_decreases():
    from scipy import sparse

    X, _ = _binary_data(500)
    dense = BernoulliMixtureEM(2, random_state=0, tol=1e-8, max_iter=200).fit(X)
    sparse_fit = BernoulliMixtureEM(2, random_state=0, tol=1e-8, max_iter=200).fit(
        sparse.csr_matrix(X)
    )
    assert dense.converged_
    for name in ["weights_", "means_", "lower_bound_"]:
        assert_allclose(getattr(sparse_fit, name), getattr(dense, name), rtol=1e-8)
    bounds = np.asarray(dense.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-10 * np.abs(bounds[1:]))


@pytest.mark.parametrize("fraction", [0.1, 0.4])
def test_bernoulli_estimates_approach_the_truth_as_n_grows(fraction):
    errors = []
    for n_samples in [300, 3000, 30000]:
        X, (weights, prototypes) = _binary_data(n_samples, n_samples, fraction)
        bm = BernoulliMixtureEM(2, random_state=0, tol=1e-6).fit(X)
        order = np.argsort(-bm.means_[:, 0])
        errors.append(
            max(
                np.abs(bm.weights_[order] - weights).max(),
                np.abs(bm.means_[order] - prototypes).max(),
            )
        )
    assert errors[0] > errors[2] and errors[1] > errors[2]
    assert errors[2] < 0.03


def test_bernoulli_binarizes_observed_values_and_keeps_nan():
    from scipy import sparse

    X, _ = _binary_data(300)
    grey = np.where(np.isnan(X), np.nan, 0.6 * X + 0.3)  # 0 -> 0.3, 1 -> 0.9
    params = dict(n_components=2, random_state=0)
    expected = BernoulliMixtureEM(binarize=None, **params).fit(X)
    for data in [grey, sparse.csr_matrix(grey)]:
        bm = BernoulliMixtureEM(binarize=0.5, **params).fit(data)
        assert_allclose(bm.means_, expected.means_, rtol=1e-10)
        assert_allclose(
            bm.score_samples(data), expected.score_samples(X), rtol=1e-10, atol=1e-12
        )


def test_bernoulli_complete_data_never_calls_the_missing_value_kernels(monkeypatch):
    X, _ = _binary_data(200, fraction=0.0)
    expected = BernoulliMixtureEM(2, random_state=0).fit(X)

    def fail(self, complete):
        raise AssertionError("missing-value kernel used on complete data")

    monkeypatch.setattr(BernoulliMixtureEM, "_missing_e_step_function", fail)
    monkeypatch.setattr(BernoulliMixtureEM, "_missing_log_prob_function", fail)
    bm = BernoulliMixtureEM(2, random_state=0).fit(X)
    assert_array_equal(bm.means_, expected.means_)
    assert_array_equal(bm.predict_proba(X), expected.predict_proba(X))


def test_bernoulli_partial_fit_mixes_complete_and_incomplete_batches():
    X, _ = _binary_data(3000, fraction=0.25)
    complete = np.nan_to_num(X[:1000])  # a batch without missing values
    batch = BernoulliMixtureEM(2, random_state=0).fit(X)
    online = BernoulliMixtureEM(2, random_state=0, learning_offset=2.0)
    for _ in range(3):
        online.partial_fit(X[1000:2000])
        online.partial_fit(complete)
        online.partial_fit(X[2000:])
    assert np.all(np.isfinite(online.means_))
    order = np.argsort(online.means_[:, 0])
    reference = np.argsort(batch.means_[:, 0])
    assert_allclose(online.means_[order], batch.means_[reference], atol=0.1)


def test_bernoulli_integer_sample_weight_equals_repeated_rows():
    X, _ = _binary_data(150)
    sample_weight = np.random.default_rng(0).integers(0, 4, size=len(X))
    params = dict(
        n_components=2,
        means_init=[[0.6, 0.6, 0.4, 0.4, 0.5], [0.4, 0.4, 0.6, 0.6, 0.5]],
        weights_init=[0.5, 0.5],
        tol=0,
        max_iter=15,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = BernoulliMixtureEM(**params).fit(X, sample_weight=sample_weight)
        repeated = BernoulliMixtureEM(**params).fit(np.repeat(X, sample_weight, 0))
    for name in ["weights_", "means_", "lower_bound_"]:
        assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_parts_chunks_and_threads_give_the_same_statistics(
    covariance_type, monkeypatch
):
    import sklearn

    X, _ = _mixture_data(3000)
    X = _remove(X, 0.3)
    gm = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
    gm.fit(X)
    function = gm._missing_e_step_function(gm._e_step_chunk_function())
    expected = function(X, None)
    expected_proba = gm.predict_proba(X)
    # Rows split into many parts inside a chunk...
    monkeypatch.setattr(_missing, "_PART_VALUES", 500)
    assert len(_missing._incomplete_parts(np.isnan(X), 2, True)) > 10
    for key, value in function(X, None).items():
        assert_allclose(value, expected[key], rtol=1e-10, err_msg=key)
    monkeypatch.undo()
    # ... and many chunks over two threads.
    gm.set_params(n_jobs=2)
    with sklearn.config_context(working_memory=1):
        assert gm._rows(X) < X.shape[0]
        data = as_data(gm, X, reset=False)
        for key, value in gm._e_step_statistics(data).items():
            assert_allclose(value, expected[key], rtol=1e-10, err_msg=key)
        assert_allclose(gm.predict_proba(X), expected_proba, rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------
# The initialisation on incomplete data.
def _pairwise_covariance(X):
    """Pairwise-deletion covariance around the available-case means."""
    observed = ~np.isnan(X)
    means = np.nanmean(X, axis=0)
    n_features = X.shape[1]
    cov = np.empty((n_features, n_features))
    for i in range(n_features):
        for j in range(n_features):
            both = observed[:, i] & observed[:, j]
            if i == j:
                cov[i, j] = np.mean((X[observed[:, i], i] - means[i]) ** 2)
            else:
                d_i, d_j = X[both, i] - means[i], X[both, j] - means[j]
                cov[i, j] = np.sum(d_i * d_j) / both.sum()
    return cov


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_initial_covariance_is_the_pairwise_available_one(covariance_type):
    # One component: the start is the covariance of the pairs observed
    # together, not the independent one of the missing values.
    rng = np.random.RandomState(0)
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 2.0]])
    X = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=300)
    X = _remove(X, 0.3)
    gm = GaussianMixtureEM(
        1, covariance_type=covariance_type, max_iter=0, reg_covar=0.0
    ).fit(X)
    initial = gm.covariances_[0] if covariance_type == "full" else gm.covariances_
    assert_allclose(initial, _pairwise_covariance(X), rtol=1e-10)
    assert_allclose(gm.means_[0], np.nanmean(X, axis=0), rtol=1e-10)


def test_initial_pairwise_covariance_is_made_positive_definite():
    # Pairs observed in disjoint rows can give an indefinite pairwise
    # matrix: its eigenvalues are raised to 1e-3 times the smallest variance.
    rng = np.random.RandomState(0)
    z = rng.normal(size=(120, 1))
    X = np.hstack([z, z, -z]) + 0.01 * rng.normal(size=(120, 3))
    X[:40, 0] = np.nan  # x1, x2 together: +1 ; x2, x3: -1 ; x1, x3 in 40:80
    X[40:80, 1] = np.nan
    X[80:, 2] = np.nan
    X[40:80, 2] = -X[40:80, 0]  # x1 and x3 positively correlated there
    pairwise = _pairwise_covariance(X)
    assert np.linalg.eigvalsh(pairwise)[0] < 0
    gm = GaussianMixtureEM(1, max_iter=0, reg_covar=0.0).fit(X)
    initial = gm.covariances_[0]
    eigenvalues = np.linalg.eigvalsh(initial)
    assert eigenvalues[0] >= 1e-3 * np.diag(pairwise).min() * (1 - 1e-9)
    assert_allclose(np.diag(initial), np.diag(pairwise), rtol=0.2)
    # EM runs from there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = GaussianMixtureEM(1, max_iter=20, random_state=0).fit(X)
    assert np.isfinite(fitted.lower_bound_)
    assert fitted.lower_bounds_[-1] >= fitted.lower_bounds_[0]


@pytest.mark.parametrize("q", [1, 2, 3, 7, 16, 33])
def test_inverse_from_cholesky(q):
    rng = np.random.RandomState(q)
    A = rng.normal(size=(2, 5, q, 2 * q))
    P = A @ np.swapaxes(A, -1, -2) + 1e-3 * np.eye(q)
    inverse = _missing._inverse_from_cholesky(np.linalg.cholesky(P))
    assert inverse.shape == P.shape
    assert_allclose(inverse, np.linalg.inv(P), rtol=1e-9, atol=1e-12)
    assert_allclose(inverse, np.swapaxes(inverse, -1, -2), rtol=1e-12, atol=1e-15)
