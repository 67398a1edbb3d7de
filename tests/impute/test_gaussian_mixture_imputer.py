"""GaussianMixtureImputer: the conditional expectation under a fitted mixture."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_em import GaussianMixtureEM, GaussianMixtureImputer
from sklearn_em.impute._gaussian_mixture import _n_free_parameters


def _correlated(n_samples=300, seed=0):
    """Two clusters of strongly correlated features."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(2, size=n_samples)
    a = np.array([[1.0, 0.9, -0.5], [0.0, 0.5, 0.4], [0.0, 0.0, 0.3]])
    X = rng.normal(size=(n_samples, 3)) @ a + 6.0 * labels[:, None]
    return X * [1.0, 100.0, 0.01], labels  # very different scales


def _remove(X, fraction, seed=0):
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < fraction] = np.nan
    return X


def _conditional_expectation(X, weights, means, covariances):
    """sum_k p(k | x_o) E[x_m | x_o, k], row by row with scipy."""
    out = X.copy()
    for n, x in enumerate(X):
        o, m = ~np.isnan(x), np.isnan(x)
        if not m.any():
            continue
        log_post, fills = [], []
        for w, mu, S in zip(weights, means, covariances):
            if o.any():
                log_post.append(
                    np.log(w) + multivariate_normal(mu[o], S[np.ix_(o, o)]).logpdf(x[o])
                )
                B = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
                fills.append(mu[m] + B @ (x[o] - mu[o]))
            else:
                log_post.append(np.log(w))
                fills.append(mu[m])
        post = np.exp(np.array(log_post) - logsumexp(log_post))
        out[n, m] = post @ np.array(fills)
    return out


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_transform_is_the_conditional_expectation(covariance_type):
    X, _ = _correlated()
    X_missing = _remove(X, 0.3)
    X_missing[0] = np.nan  # nothing observed: the mixture's mean
    imputer = GaussianMixtureImputer(
        2, covariance_type=covariance_type, random_state=0
    ).fit(X_missing)
    mixture = imputer.mixture_
    n_features = X.shape[1]
    covariances = {
        "full": lambda c: c,
        "tied": lambda c: np.stack([c, c]),
        "diag": lambda c: np.stack([np.diag(v) for v in c]),
        "spherical": lambda c: np.stack([np.eye(n_features) * v for v in c]),
    }[covariance_type](mixture.covariances_)
    # The mixture is of the standardised features.
    Z = (X_missing - imputer.mean_) / imputer.scale_
    expected = _conditional_expectation(
        Z, mixture.weights_, mixture.means_, covariances
    )
    expected = expected * imputer.scale_ + imputer.mean_
    observed = ~np.isnan(X_missing)
    expected[observed] = X_missing[observed]  # observed values exactly
    result = imputer.transform(X_missing)
    assert_allclose(result, expected, rtol=1e-9)
    assert_array_equal(result[observed], X_missing[observed])
    assert_allclose(
        result[0],
        mixture.weights_ @ mixture.means_ * imputer.scale_ + imputer.mean_,
        rtol=1e-9,
    )
    assert not np.isnan(result).any()


def test_imputation_uses_the_correlations():
    X, _ = _correlated(2000)
    X_missing = _remove(X, 0.2)
    X_copy = X_missing.copy()
    missing = np.isnan(X_missing)
    imputed = GaussianMixtureImputer(random_state=0).fit_transform(X_missing)
    assert_array_equal(X_missing, X_copy)  # the input is not modified
    column_means = np.nanmean(X_missing, axis=0)
    for j in range(3):
        rows = missing[:, j]
        error = np.sqrt(np.mean((imputed[rows, j] - X[rows, j]) ** 2))
        mean_error = np.sqrt(np.mean((column_means[j] - X[rows, j]) ** 2))
        assert error < 0.35 * mean_error


def test_auto_selects_the_lowest_bic():
    X, _ = _correlated(400)
    X_missing = _remove(X, 0.2)
    imputer = GaussianMixtureImputer(random_state=0).fit(X_missing)
    assert imputer.n_components_ == min(imputer.bic_, key=imputer.bic_.get) == 2
    assert imputer.mixture_.n_components == 2
    assert imputer.n_iter_ == imputer.mixture_.n_iter_
    # Each BIC is the fitted candidate's, on the standardised data.
    Z = (X_missing - imputer.mean_) / imputer.scale_
    assert_allclose(imputer.bic_[2], imputer.mixture_.bic(Z), rtol=1e-12)
    candidate = GaussianMixtureEM(
        3, reg_covar=1e-2, tol=3e-2, random_state=imputer.mixture_.random_state
    ).fit(Z)
    assert_allclose(imputer.bic_[3], candidate.bic(Z), rtol=1e-10)
    assert sorted(imputer.bic_) == [1, 2, 3]
    # At most as many components as samples, and a tenth of a free parameter
    # per observed value.
    few = GaussianMixtureImputer(random_state=0).fit(X_missing[:2])
    assert sorted(few.bic_) == [1]


def test_auto_fits_no_candidate_with_too_few_observed_values_per_parameter():
    # 8 features, full covariances: 44, 89 and 134 free parameters.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(240, 8)) @ rng.normal(size=(8, 8))
    X_missing = _remove(X, 0.5)
    n_observed = int((~np.isnan(X_missing)).sum())
    assert 890 <= n_observed < 1340
    imputer = GaussianMixtureImputer(random_state=0).fit(X_missing)
    assert sorted(imputer.bic_) == [1, 2]
    assert _n_free_parameters(2, 8, "full") == 89
    assert _n_free_parameters(3, 8, "full") == 134
    # Diagonal covariances have few parameters: all three are fitted.
    diag = GaussianMixtureImputer(covariance_type="diag", random_state=0)
    assert sorted(diag.fit(X_missing).bic_) == [1, 2, 3]
    # One component always is, and an int is never capped.
    few = GaussianMixtureImputer(random_state=0).fit(X_missing[:12])
    assert sorted(few.bic_) == [1]
    forced = GaussianMixtureImputer(n_components=3, random_state=0)
    assert sorted(forced.fit(X_missing[:40]).bic_) == [3]
    # The count of free parameters is the mixture's own.
    for covariance_type in ["full", "tied", "diag", "spherical"]:
        gm = GaussianMixtureEM(3, covariance_type=covariance_type).fit(X)
        assert _n_free_parameters(3, 8, covariance_type) == gm._n_parameters()


def test_sample_posterior_draws_from_the_conditional():
    # One Gaussian: x2 | x1 is N(rho x1, 1 - rho^2).
    rng = np.random.default_rng(0)
    rho = 0.8
    X = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=4000)
    X_missing = X.copy()
    X_missing[:2000, 1] = np.nan
    imputer = GaussianMixtureImputer(
        1, sample_posterior=True, reg_covar=0, tol=1e-8, max_iter=500, random_state=0
    )
    imputer.fit(X_missing)
    draws = np.stack([imputer.transform(X_missing[:2000])[:, 1] for _ in range(20)])
    assert not np.allclose(draws[0], draws[1])  # each call draws anew
    fitted = imputer.mixture_
    cov = fitted.covariances_[0] * np.outer(imputer.scale_, imputer.scale_)
    mu = imputer.mean_ + imputer.scale_ * fitted.means_[0]
    slope = cov[0, 1] / cov[0, 0]
    mean = mu[1] + slope * (X_missing[:2000, 0] - mu[0])
    variance = cov[1, 1] - cov[0, 1] ** 2 / cov[0, 0]
    residuals = draws - mean
    assert_allclose(residuals.mean(), 0.0, atol=0.01)
    assert_allclose(residuals.var(), variance, rtol=0.03)
    assert_allclose(variance, 1 - rho**2, rtol=0.1)
    # The expectation is the mean of the draws.
    expected = clone(imputer).set_params(sample_posterior=False).fit(X_missing)
    assert_allclose(expected.transform(X_missing[:2000])[:, 1], mean, rtol=1e-8)
    # Reproducible: the same seed gives the same imputations.
    a = clone(imputer).fit_transform(X_missing)
    b = clone(imputer).fit_transform(X_missing)
    assert_array_equal(a, b)


def test_draws_follow_the_posterior_of_the_components():
    # Two clusters, x2 = x1 in one and x2 = -x1 in the other: given x1 = 2,
    # x2 is near +2 or -2 with the posterior of the components.
    rng = np.random.default_rng(1)
    labels = rng.integers(2, size=4000)
    x1 = rng.normal(size=4000) * np.where(labels, 2.0, 1.5)
    X = np.column_stack([x1, np.where(labels, x1, -x1) + 0.1 * rng.normal(size=4000)])
    imputer = GaussianMixtureImputer(2, sample_posterior=True, random_state=0)
    imputer.fit(_remove(X, 0.1))
    query = np.tile([[2.0, np.nan]], (4000, 1))
    draws = imputer.transform(query)[:, 1]
    posterior = imputer.mixture_.predict_proba(
        (query[:1] - imputer.mean_) / imputer.scale_
    )[0]
    # The component where x2 grows with x1.
    up = np.argmax(imputer.mixture_.covariances_[:, 0, 1])
    assert 0.2 < posterior[up] < 0.8
    assert_allclose(np.mean(draws > 0), posterior[up], atol=0.03)
    assert_allclose(np.abs(draws).mean(), 2.0, atol=0.1)
    # The mean of the draws is the imputed expectation.
    expected = clone(imputer).set_params(sample_posterior=False).fit(_remove(X, 0.1))
    assert_allclose(draws.mean(), expected.transform(query[:1])[0, 1], atol=0.1)


def test_add_indicator_keep_empty_features_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, _ = _correlated(100)
    X = np.column_stack([X, np.full(100, np.nan)])  # an empty feature
    X[:10, 0] = np.nan
    frame = pd.DataFrame(X, columns=["a", "b", "c", "empty"])

    imputer = GaussianMixtureImputer(1, random_state=0).fit(frame)
    assert imputer.transform(frame).shape == (100, 3)
    assert list(imputer.get_feature_names_out()) == ["a", "b", "c"]

    imputer.set_params(add_indicator=True, keep_empty_features=True)
    imputer.set_output(transform="pandas").fit(frame)
    out = imputer.transform(frame)
    assert list(out.columns) == [
        "a",
        "b",
        "c",
        "empty",
        "missingindicator_a",
        "missingindicator_empty",
    ]
    assert_array_equal(out["empty"], 0.0)
    assert_array_equal(out["missingindicator_a"], np.isnan(X[:, 0]))
    assert_array_equal(out["missingindicator_empty"], 1.0)
    assert not out.isna().any().any()
    with pytest.raises(ValueError, match="input_features is not equal"):
        imputer.get_feature_names_out(["w", "x", "y", "z"])
    # All features empty: nothing to model.
    empty = GaussianMixtureImputer().fit(np.full((5, 2), np.nan))
    assert empty.mixture_ is None
    assert empty.transform(np.full((3, 2), np.nan)).shape == (3, 0)


def test_missing_values_placeholder_and_dtypes():
    X, _ = _correlated(200)
    X_int = np.round(np.abs(X[:, :2]) * 10).astype(np.int64)
    X_int[::7, 1] = -1
    imputer = GaussianMixtureImputer(1, missing_values=-1, random_state=0)
    out = imputer.fit_transform(X_int)
    assert out.dtype == np.float64
    assert (out[::7, 1] > 0).all()
    assert_array_equal(out[1::7], X_int[1::7])
    # float32 in, float32 out.
    X32 = _remove(X, 0.2).astype(np.float32)
    assert GaussianMixtureImputer(1, random_state=0).fit_transform(X32).dtype == (
        np.float32
    )
    # Infinity is not a missing value.
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixtureImputer().fit(np.array([[1.0, np.inf], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixtureImputer(missing_values=-1).fit(
            np.array([[1.0, np.nan], [2.0, 3.0]])
        )


@pytest.mark.parametrize("magnitude", [1e153, 1e200, 1e300])
def test_imputes_values_whose_squares_overflow(magnitude):
    # The standard deviations of such columns had been infinite: the
    # imputations were NaN (0 * inf), with a RuntimeWarning. Columns are
    # scaled by a power of two before their moments: the imputations are
    # those of the unit-scale data, times the magnitude.
    X = _remove(_correlated(200)[0], 0.2)
    missing = np.isnan(X)
    expected = GaussianMixtureImputer(2, random_state=0).fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imputed = GaussianMixtureImputer(2, random_state=0).fit_transform(X * magnitude)
    assert np.isfinite(imputed).all()
    assert_allclose(imputed[missing] / magnitude, expected[missing], rtol=1e-8)


def test_works_in_a_pipeline_before_a_classifier():
    X, y = _correlated(300)
    X = _remove(X, 0.3)
    pipeline = make_pipeline(
        GaussianMixtureImputer(random_state=0), LogisticRegression()
    )
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.mean() > 0.9


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_mean_of_many_draws_is_the_expectation(covariance_type):
    X, _ = _correlated(400)
    X_missing = _remove(X, 0.3)
    params = dict(n_components=2, covariance_type=covariance_type, random_state=0)
    expected = GaussianMixtureImputer(**params).fit(X_missing)
    sampler = GaussianMixtureImputer(sample_posterior=True, **params).fit(X_missing)
    rows = X_missing[:40]
    draws = np.stack([sampler.transform(rows) for _ in range(400)])
    missing = np.isnan(rows)
    observed = rows[~missing]
    assert_array_equal(
        draws[:, ~missing], np.broadcast_to(observed, (400, observed.size))
    )
    spread = draws.std(axis=0)[missing]
    assert np.all(spread > 0)
    # Within five standard errors of the conditional expectation.
    error = np.abs(draws.mean(axis=0) - expected.transform(rows))[missing]
    assert np.all(error < 5 * spread / np.sqrt(400))
