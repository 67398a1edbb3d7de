"""Tests of GaussianMixtureEM: the maths, the drop-in promise, and what it adds."""

import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.datasets import load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_em import GaussianMixtureEM

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
INIT_PARAMS = ["kmeans", "k-means++", "random", "random_from_data"]


def _blobs(n_samples=300, n_features=3, centers=3, random_state=0, scale=1.0):
    X, y = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=centers,
        cluster_std=scale,
        random_state=random_state,
    )
    return X, y


def _datasets():
    rng = np.random.RandomState(42)
    X_blobs, _ = _blobs()
    X_iris = load_iris().data
    # anisotropic, correlated data far from the origin
    A = rng.randn(4, 4)
    X_aniso = rng.randn(400, 4) @ A + 50.0
    return {"blobs": X_blobs, "iris": X_iris, "aniso": X_aniso}


def _fit_quietly(estimator, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, **fit_params)


def _assert_same_model(a, b, rtol=1e-6, atol=1e-10):
    assert_allclose(a.weights_, b.weights_, rtol=rtol, atol=atol)
    assert_allclose(a.means_, b.means_, rtol=rtol, atol=atol)
    assert_allclose(a.covariances_, b.covariances_, rtol=rtol, atol=atol)
    assert_allclose(a.precisions_, b.precisions_, rtol=rtol, atol=atol)
    assert_allclose(
        a.precisions_cholesky_, b.precisions_cholesky_, rtol=rtol, atol=atol
    )
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol)


# ----------------------------------------------------------------------
# The maths


def _log_gaussian_reference(X, means, covariances, covariance_type):
    """log N(x_n | mu_k, Sigma_k) with scipy, component by component."""
    n_components, n_features = means.shape
    out = np.empty((X.shape[0], n_components))
    for k in range(n_components):
        if covariance_type == "full":
            cov = covariances[k]
        elif covariance_type == "tied":
            cov = covariances
        elif covariance_type == "diag":
            cov = np.diag(covariances[k])
        else:
            cov = covariances[k] * np.eye(n_features)
        out[:, k] = multivariate_normal(means[k], cov).logpdf(X)
    return out


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_is_normalised_weighted_likelihood(covariance_type):
    """r_nk = pi_k N(x_n|k) / sum_j pi_j N(x_n|j), computed independently."""
    X, _ = _blobs(random_state=1)
    gm = _fit_quietly(
        GaussianMixtureEM(
            3, covariance_type=covariance_type, max_iter=3, random_state=0
        ),
        X,
    )
    log_dens = _log_gaussian_reference(X, gm.means_, gm.covariances_, covariance_type)
    joint = np.exp(log_dens) * gm.weights_
    assert_allclose(
        gm.predict_proba(X), joint / joint.sum(1, keepdims=True), atol=1e-10
    )
    assert_allclose(gm.score_samples(X), np.log(joint.sum(1)), rtol=1e-10)
    assert_array_equal(gm.predict(X), joint.argmax(1))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_against_hand_computation(covariance_type):
    """One EM iteration from a known start equals the textbook M-step."""
    rng = np.random.RandomState(0)
    X = rng.randn(60, 2) + np.repeat([[0, 0], [4, 4]], 30, axis=0)
    weights0 = np.array([0.5, 0.5])
    means0 = np.array([[0.5, 0.0], [3.0, 3.5]])
    reg = 1e-6
    precisions0 = {
        "full": np.array([np.eye(2), np.eye(2)]),
        "tied": np.eye(2),
        "diag": np.ones((2, 2)),
        "spherical": np.ones(2),
    }[covariance_type]
    gm = GaussianMixtureEM(
        2,
        covariance_type=covariance_type,
        weights_init=weights0,
        means_init=means0,
        precisions_init=precisions0,
        max_iter=1,
        reg_covar=reg,
    )
    _fit_quietly(gm, X)

    # independent E-step with the initial (unit-covariance) parameters
    dens = np.column_stack([multivariate_normal(m, np.eye(2)).pdf(X) for m in means0])
    resp = dens * weights0
    resp /= resp.sum(1, keepdims=True)
    # textbook M-step, written with explicit sums
    nk = resp.sum(0)
    means = np.array([(resp[:, k : k + 1] * X).sum(0) / nk[k] for k in range(2)])
    full = np.array(
        [
            sum(
                resp[n, k] * np.outer(X[n] - means[k], X[n] - means[k])
                for n in range(60)
            )
            / nk[k]
            for k in range(2)
        ]
    )
    expected_cov = {
        "full": full + reg * np.eye(2),
        "tied": (full * nk[:, None, None]).sum(0) / nk.sum() + reg * np.eye(2),
        "diag": np.array([np.diag(c) for c in full]) + reg,
        "spherical": np.array([np.diag(c).mean() for c in full]) + reg,
    }[covariance_type]
    assert_allclose(gm.weights_, nk / 60, rtol=1e-12)
    assert_allclose(gm.means_, means, rtol=1e-12)
    assert_allclose(gm.covariances_, expected_cov, rtol=1e-10)
    # the lower bound reported is the log-likelihood of the E-step's parameters
    assert_allclose(
        gm.lower_bound_, np.log((dens * weights0).sum(1)).mean(), rtol=1e-12
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weights", ["learn", "uniform"])
def test_lower_bound_never_decreases(covariance_type, weights):
    X = _datasets()["aniso"]
    gm = GaussianMixtureEM(
        4,
        covariance_type=covariance_type,
        weights=weights,
        init_params="random",
        tol=0,
        max_iter=60,
        random_state=3,
    )
    _fit_quietly(gm, X)
    bounds = np.asarray(gm.lower_bounds_)
    assert len(bounds) == 60
    assert np.all(np.diff(bounds) >= -1e-10 * np.abs(bounds[1:]))
    assert bounds[-1] > bounds[0]


# ----------------------------------------------------------------------
# The drop-in promise


@pytest.mark.parametrize("dataset", ["blobs", "iris", "aniso"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_as_sklearn_from_same_start(dataset, covariance_type):
    X = _datasets()[dataset]
    init = GaussianMixture(
        3, covariance_type=covariance_type, max_iter=0, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init.fit(X)
        params = dict(
            n_components=3,
            covariance_type=covariance_type,
            weights_init=init.weights_,
            means_init=init.means_,
            precisions_init=init.precisions_,
            tol=1e-10,
            max_iter=30,
        )
        ref = GaussianMixture(**params).fit(X)
        ours = GaussianMixtureEM(**params).fit(X)
    _assert_same_model(ours, ref)
    assert ours.n_iter_ == ref.n_iter_
    assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_same_as_sklearn_with_same_random_state(covariance_type, init_params):
    """Every init method draws the same random numbers as scikit-learn."""
    X = _datasets()["iris"]
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        init_params=init_params,
        n_init=2,
        random_state=7,
        max_iter=40,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(**params).fit(X)
        ours = GaussianMixtureEM(**params).fit(X)
    _assert_same_model(ours, ref)
    assert ours.converged_ == ref.converged_
    assert_array_equal(ours.predict(X), ref.predict(X))
    assert_allclose(ours.bic(X), ref.bic(X), rtol=1e-8)
    assert_allclose(ours.aic(X), ref.aic(X), rtol=1e-8)
    assert_allclose(ours.score(X), ref.score(X), rtol=1e-8)
    X_ours, y_ours = ours.sample(50)
    X_ref, y_ref = ref.sample(50)
    assert_array_equal(y_ours, y_ref)
    assert_allclose(X_ours, X_ref, rtol=1e-6, atol=1e-8)


def test_same_attributes_and_parameters_as_sklearn():
    ours = GaussianMixtureEM()
    ref_params = GaussianMixture().get_params()
    our_params = ours.get_params()
    for name, value in ref_params.items():
        assert our_params[name] == value, name
    X = _datasets()["iris"]
    ours.fit(X)
    for attribute in [
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
        "converged_",
        "n_iter_",
        "lower_bound_",
        "lower_bounds_",
        "n_features_in_",
    ]:
        assert hasattr(ours, attribute), attribute


def test_warm_start_continues_like_sklearn():
    X = _datasets()["aniso"]
    params = dict(n_components=3, warm_start=True, max_iter=2, random_state=0)
    ref = GaussianMixture(**params)
    ours = GaussianMixtureEM(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            ref.fit(X)
            ours.fit(X)
    _assert_same_model(ours, ref)


def test_fit_predict_equals_fit_then_predict():
    X = _datasets()["aniso"]
    gm = GaussianMixtureEM(4, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = gm.fit_predict(X)
    assert_array_equal(labels, gm.predict(X))


def test_convergence_warning():
    X = _datasets()["aniso"]
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        GaussianMixtureEM(3, max_iter=1, tol=0, random_state=0).fit(X)


def test_verbose_output(capsys):
    X = _datasets()["blobs"]
    GaussianMixtureEM(2, verbose=2, verbose_interval=1, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert "Initialization 0" in out
    assert "Iteration 1" in out
    assert "Initialization converged" in out


# ----------------------------------------------------------------------
# sample_weight: frequency semantics


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(covariance_type):
    rng = np.random.RandomState(0)
    X, _ = _blobs(n_samples=120, random_state=2)
    w = rng.randint(1, 4, size=X.shape[0])
    X_rep = np.repeat(X, w, axis=0)
    start = GaussianMixture(
        3, covariance_type=covariance_type, max_iter=0, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(X_rep)
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
        tol=1e-10,
        max_iter=20,
    )
    weighted = _fit_quietly(GaussianMixtureEM(**params), X, sample_weight=w)
    repeated = _fit_quietly(GaussianMixtureEM(**params), X_rep)
    _assert_same_model(weighted, repeated, rtol=1e-10)
    assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_zero_weight_equals_removal(covariance_type, init_params):
    """Exactly, for every init method: zero-weight rows never enter the fit."""
    rng = np.random.RandomState(1)
    X, _ = _blobs(n_samples=150, random_state=3)
    w = np.ones(X.shape[0])
    w[rng.choice(X.shape[0], 40, replace=False)] = 0
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=0,
    )
    weighted = GaussianMixtureEM(**params).fit(X, sample_weight=w)
    removed = GaussianMixtureEM(**params).fit(X[w > 0])
    _assert_same_model(weighted, removed, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_integer_weights_fit_like_repetition_for_every_init(
    covariance_type, init_params
):
    """Each init method honours the weights: the fits reach the same optimum."""
    rng = np.random.RandomState(2)
    X, _ = _blobs(n_samples=150, random_state=4, scale=0.5)
    w = rng.randint(1, 4, size=X.shape[0])
    X_rep = np.repeat(X, w, axis=0)
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=0,
        n_init=3,
        tol=1e-9,
        max_iter=500,
    )
    weighted = GaussianMixtureEM(**params).fit(X, sample_weight=w)
    repeated = GaussianMixtureEM(**params).fit(X_rep)
    order_w = np.lexsort(weighted.means_.T)
    order_r = np.lexsort(repeated.means_.T)
    assert_allclose(weighted.means_[order_w], repeated.means_[order_r], rtol=1e-5)
    assert_allclose(weighted.weights_[order_w], repeated.weights_[order_r], rtol=1e-5)
    assert_allclose(weighted.lower_bound_, repeated.lower_bound_, rtol=1e-7)


def test_random_from_data_never_picks_zero_weight_rows():
    X, _ = _blobs(n_samples=100, random_state=5)
    w = np.zeros(X.shape[0])
    w[:10] = 1.0
    for seed in range(5):
        gm = GaussianMixtureEM(
            3, init_params="random_from_data", max_iter=0, random_state=seed
        ).fit(X, sample_weight=w)
        # the initial means are data points of positive weight
        dist = np.abs(gm.means_[:, None, :] - X[None, :10, :]).sum(-1).min(1)
        assert_allclose(dist, 0, atol=1e-12)


def test_uniform_weights_mode():
    """weights='uniform' keeps pi_k = 1/K and r_nk is the normalised likelihood."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(270, 2), rng.randn(30, 2) + 5])
    gm = GaussianMixtureEM(2, weights="uniform", random_state=0).fit(X)
    assert_allclose(gm.weights_, [0.5, 0.5])
    lik = np.exp(_log_gaussian_reference(X, gm.means_, gm.covariances_, "full"))
    assert_allclose(gm.predict_proba(X), lik / lik.sum(1, keepdims=True), atol=1e-10)
    learned = GaussianMixtureEM(2, random_state=0).fit(X)
    assert_allclose(np.sort(learned.weights_), [0.1, 0.9], atol=0.02)
    # a fixed weight is not a free parameter
    assert gm._n_parameters() == learned._n_parameters() - 1


def test_uniform_weights_rejects_weights_init():
    X = _datasets()["blobs"]
    with pytest.raises(ValueError, match="weights_init cannot be combined"):
        GaussianMixtureEM(2, weights="uniform", weights_init=[0.3, 0.7]).fit(X)


# ----------------------------------------------------------------------
# transform and pipelines


def test_transform_is_responsibilities_and_feature_names():
    pd = pytest.importorskip("pandas")
    X = _datasets()["iris"]
    gm = GaussianMixtureEM(3, random_state=0).fit(X)
    resp = gm.transform(X)
    assert resp.shape == (X.shape[0], 3)
    assert_allclose(resp, gm.predict_proba(X))
    assert_allclose(resp.sum(1), 1)
    names = gm.get_feature_names_out()
    assert_array_equal(
        names, ["gaussianmixtureem0", "gaussianmixtureem1", "gaussianmixtureem2"]
    )
    df = gm.set_output(transform="pandas").transform(X)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(names)


def test_pipeline_and_grid_search():
    X, _ = _blobs(n_samples=300, centers=3, random_state=6)
    pipe = make_pipeline(StandardScaler(), GaussianMixtureEM(random_state=0))
    search = GridSearchCV(
        pipe, {"gaussianmixtureem__n_components": [1, 2, 3, 4, 5]}, cv=3
    )
    search.fit(X)
    assert search.best_params_["gaussianmixtureem__n_components"] == 3


# ----------------------------------------------------------------------
# float32


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_end_to_end(covariance_type):
    X = _datasets()["aniso"].astype(np.float32)
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    for name in [
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
    ]:
        assert getattr(gm, name).dtype == np.float32, name
    assert gm.predict_proba(X).dtype == np.float32
    assert gm.transform(X).dtype == np.float32
    assert gm.score_samples(X).dtype == np.float32
    ref = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(
        X.astype(np.float64)
    )
    assert_allclose(gm.lower_bound_, ref.lower_bound_, rtol=1e-3)


def test_float32_no_negative_variances_far_from_origin():
    """scikit-learn #30382: uncentred moments in float32 give variances < 0."""
    rng = np.random.RandomState(0)
    X = (1e4 + 1e-2 * rng.randn(500, 2)).astype(np.float32)
    X[250:] += 1.0
    for covariance_type in ["diag", "spherical", "full", "tied"]:
        gm = GaussianMixtureEM(
            2, covariance_type=covariance_type, reg_covar=0, random_state=0
        ).fit(X)
        cov = gm.covariances_
        if covariance_type in ("full", "tied"):
            cov = np.linalg.eigvalsh(cov)
        assert np.all(cov > 0), covariance_type
        assert np.all(np.isfinite(gm.score_samples(X)))


# ----------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "X, message",
    [
        # NaN marks a missing value; a feature never observed is an error.
        (np.array([[1.0, np.nan], [2.0, np.nan], [4.0, np.nan]]), "no observed"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [4.0, 5.0]]), "infinity"),
        (np.empty((0, 2)), "0 sample"),
        (np.arange(6.0), "Expected 2D"),
        (np.zeros((3, 2, 2)), "dim 3"),
        (np.array([["a", "b"], ["c", "d"]]), "could not convert|dtype"),
    ],
)
def test_bad_X_at_fit(X, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(1).fit(X)


def test_fewer_samples_than_components():
    X = np.random.RandomState(0).randn(3, 2)
    with pytest.raises(ValueError, match="Expected n_samples >= n_components"):
        GaussianMixtureEM(4).fit(X)


def test_wrong_n_features_after_fit():
    X = _datasets()["blobs"]
    gm = GaussianMixtureEM(2, random_state=0).fit(X)
    for method in [gm.predict, gm.predict_proba, gm.transform, gm.score_samples]:
        with pytest.raises(ValueError, match="features"):
            method(X[:, :2])


def test_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianMixtureEM().predict(np.zeros((2, 2)))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"precisions_init": -np.ones(2)}, "should be positive"),
        (
            {
                "covariance_type": "full",
                "precisions_init": np.array([[[1, 2], [2, 1]], [[1, 0], [0, 1]]]),
            },
            "symmetric, positive-definite",
        ),
        (
            # float64: the second of the stacked matrices is not definite
            {
                "covariance_type": "full",
                "precisions_init": np.array([[[1.0, 0], [0, 1]], [[1, 2], [2, 1]]]),
            },
            "symmetric, positive-definite",
        ),
        (
            {
                "covariance_type": "tied",
                "precisions_init": np.array([[2.0, 1.0], [0.0, 2.0]]),
            },
            "symmetric, positive-definite",
        ),
        ({"covariance_type": "full", "precisions_init": np.ones((2, 3))}, "shape"),
        ({"precisions_init": np.array([1.0, np.nan])}, "precisions contains NaN"),
        ({"means_init": np.array([[0.0, np.inf], [1, 1]])}, "means contains inf"),
        ({"weights_init": np.array([0.5, np.nan])}, "weights contains NaN"),
        ({"weights_init": [0.2, 0.2]}, "normalized"),
        ({"weights_init": [1.2, -0.2]}, "range"),
        ({"weights_init": [0.5, 0.25, 0.25]}, "shape"),
        ({"means_init": np.zeros((2, 3))}, "shape"),
        ({"n_components": 0}, "n_components"),
        ({"covariance_type": "banana"}, "covariance_type"),
        ({"init_params": "nope"}, "init_params"),
        ({"weights": "fixed"}, "weights"),
        ({"reg_covar": -1.0}, "reg_covar"),
        ({"tol": -1.0}, "tol"),
    ],
)
def test_bad_parameters(params, message):
    X = _datasets()["blobs"][:, :2]
    params = {"n_components": 2, "covariance_type": "spherical", **params}
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(**params).fit(X)


@pytest.mark.parametrize(
    "sample_weight, message",
    [
        (-np.ones(300), "Negative"),
        (np.full(300, np.nan), "NaN"),
        (np.ones(299), re.escape("sample_weight.shape == (299,)")),
        (np.zeros(300), "weights are zero"),
        (np.ones((300, 2)), "1D"),
    ],
)
def test_bad_sample_weight(sample_weight, message):
    X = _datasets()["blobs"]
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(2).fit(X, sample_weight=sample_weight)


def test_collapsed_component_says_what_to_do():
    # A component collapsing during EM stops it (scikit-learn #18216): the
    # parameters stay those of the iteration before, with a warning that
    # says what to do.
    X = np.vstack([np.zeros((5, 2)), np.random.RandomState(0).randn(20, 2)])
    precisions = np.array([np.eye(2) * 1e8, np.eye(2)])
    gm = GaussianMixtureEM(
        2,
        reg_covar=0,
        means_init=[[0, 0], [0.1, 0.1]],
        weights_init=[0.5, 0.5],
        precisions_init=precisions,
    )
    with pytest.warns(
        ConvergenceWarning, match="increase reg_covar, or scale the input data"
    ):
        gm.fit(X)
    assert not gm.converged_
    assert gm.n_iter_ == 1
    assert_allclose(gm.precisions_, precisions, rtol=1e-12)
    assert np.isfinite(gm.lower_bound_)
    # A collapse at initialisation has no iteration to fall back on.
    with pytest.raises(ValueError, match="increase reg_covar, or scale the input data"):
        GaussianMixtureEM(2, reg_covar=0, random_state=0).fit(np.repeat(X[3:7], 3, 0))


def test_sample_needs_positive_n_samples():
    gm = GaussianMixtureEM(2, random_state=0).fit(_datasets()["blobs"])
    with pytest.raises(ValueError, match="n_samples"):
        gm.sample(0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_inputs_never_modified(covariance_type):
    X = _datasets()["aniso"]
    w = np.random.RandomState(0).rand(X.shape[0])
    means_init = X[:3].copy()
    X0, w0, m0 = X.copy(), w.copy(), means_init.copy()
    gm = GaussianMixtureEM(
        3, covariance_type=covariance_type, means_init=means_init, random_state=0
    )
    _fit_quietly(gm, X, sample_weight=w)
    gm.predict_proba(X)
    gm.score_samples(X)
    assert_array_equal(X, X0)
    assert_array_equal(w, w0)
    assert_array_equal(means_init, m0)


def test_clone_keeps_parameters():
    gm = GaussianMixtureEM(3, covariance_type="diag", weights="uniform", n_jobs=2)
    assert clone(gm).get_params() == gm.get_params()


def test_sample_float32_model():
    """float32 weights that sum to just over one in float64 still sample."""
    X = _datasets()["aniso"].astype(np.float32)
    gm = GaussianMixtureEM(3, random_state=0).fit(X)
    gm.weights_ = np.array([0.3333334, 0.3333334, 0.3333334], dtype=np.float32)
    assert gm.weights_.astype(np.float64).sum() > 1
    X_new, y_new = gm.sample(20)
    assert X_new.shape == (20, X.shape[1])
    assert np.bincount(y_new, minlength=3).sum() == 20


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_prediction_follows_parameters_changed_by_hand(covariance_type):
    # Prediction keeps its coefficients while the fitted parameters are
    # unchanged; parameters replaced or modified in place are seen at once.
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(size=(100, 3)), rng.normal(size=(100, 3)) + 4])
    gm = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
    gm.fit(X)
    before = gm.score_samples(X)
    assert_allclose(gm.score_samples(X), before)

    def reference(model):
        fresh = GaussianMixtureEM(2, covariance_type=covariance_type)
        for name in ("weights_", "means_", "covariances_"):
            setattr(fresh, name, np.array(getattr(model, name), copy=True))
        fresh.precisions_cholesky_ = np.array(model.precisions_cholesky_, copy=True)
        fresh.n_features_in_ = model.n_features_in_
        return fresh.score_samples(X)

    gm.means_ = gm.means_ + 1.0  # replaced
    shifted = gm.score_samples(X)
    assert not np.allclose(shifted, before)
    assert_allclose(shifted, reference(gm))
    gm.means_[0] -= 2.0  # modified in place
    assert_allclose(gm.score_samples(X), reference(gm))
    gm.weights_[:] = [0.9, 0.1]
    assert_allclose(gm.score_samples(X), reference(gm))


def test_fit_from_given_parameters_seeds_no_random_state(monkeypatch):
    # Seeding a RandomState costs ~0.1 ms: a fit that draws nothing (every
    # initial parameter given) makes none; one that initialises from the
    # data makes one for all its n_init, and its fit is unchanged.
    import sklearn_em.mixture._base as base_module

    made = []
    original = base_module.check_random_state

    def counting(seed):
        made.append(seed)
        return original(seed)

    monkeypatch.setattr(base_module, "check_random_state", counting)
    X, _ = _blobs()
    start = GaussianMixture(3, random_state=0).fit(X)
    given = GaussianMixtureEM(
        3,
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
        random_state=0,
    ).fit(X)
    assert made == []
    assert_allclose(given.means_, start.means_, rtol=1e-6)
    drawn = GaussianMixtureEM(3, n_init=2, random_state=0).fit(X)
    assert made == [0]
    monkeypatch.setattr(base_module, "check_random_state", original)
    expected = GaussianMixture(3, n_init=2, random_state=0).fit(X)
    assert_allclose(drawn.means_, expected.means_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("weighted", [False, True])
def test_partition_statistics_threads_change_nothing(covariance_type, weighted):
    # The first M-step of a k-means start sums each cluster's rows on its
    # own: over threads (data over _MIN_THREADED_BYTES), the same bits.
    from sklearn_em.mixture import _gaussian

    rng = np.random.RandomState(0)
    X = rng.normal(size=(70_000, 16)) * 10 + 3
    assert X.nbytes >= _gaussian._MIN_THREADED_BYTES
    labels = rng.randint(0, 7, len(X))
    weights = rng.uniform(0.1, 2, len(X)) if weighted else None
    calls = []
    original = _gaussian.map_in_threads

    def spy(function, items, threads):
        calls.append(threads)
        return original(function, items, threads)

    _gaussian.map_in_threads = spy
    try:
        one, two = (
            _gaussian._partition_statistics(
                X, weights, labels, 7, covariance_type=covariance_type, n_jobs=n_jobs
            )
            for n_jobs in (1, 2)
        )
    finally:
        _gaussian.map_in_threads = original
    assert calls == [2]
    for key in one:
        assert_array_equal(one[key], two[key])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_one_component_labels_and_responsibilities_are_not_computed(
    covariance_type, monkeypatch
):
    # With one component every row's responsibility is 1 and its label 0:
    # predict and predict_proba (and transform) return them after the
    # prediction's validation, without computing a log-density, and they
    # are what the computation gives, for rows with missing values and
    # rows far from the model too.
    from sklearn_em.mixture._suffstats import label_rows, proba_rows

    rng = np.random.RandomState(0)
    gm = GaussianMixtureEM(1, covariance_type=covariance_type, random_state=0)
    gm.fit(rng.normal(size=(200, 3)))
    X = rng.normal(size=(50, 3))
    X[3, 1] = np.nan
    X[4] = 1e9
    computed_proba = gm._map_rows(X, proba_rows, n_outputs=1)
    computed_labels = gm._map_rows(X, label_rows, dtype=np.intp)
    assert_array_equal(computed_proba, np.ones((50, 1)))

    def computed(*args, **kwargs):
        raise AssertionError("a log-density was computed")

    monkeypatch.setattr(gm, "_log_prob_chunk_function", computed)
    proba = gm.predict_proba(X)
    assert proba.dtype == computed_proba.dtype
    assert_array_equal(proba, computed_proba)
    assert_array_equal(gm.transform(X), computed_proba)
    labels = gm.predict(X)
    assert labels.dtype == computed_labels.dtype
    assert_array_equal(labels, computed_labels)
    with pytest.raises(ValueError, match="3 features"):
        gm.predict(X[:, :2])
    with pytest.raises(ValueError, match="infinity|inf"):
        gm.predict_proba(np.full((2, 3), np.inf))
    # Two components compute them.
    two = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0)
    two.fit(rng.normal(size=(200, 3)))
    monkeypatch.setattr(two, "_log_prob_chunk_function", computed)
    with pytest.raises(AssertionError, match="computed"):
        two.predict(X)


@pytest.mark.parametrize("n_samples, threaded", [(10_000, True), (200_000, False)])
def test_wide_covariances_are_factorised_on_blas_threads_in_one_chunk(
    n_samples, threaded, monkeypatch
):
    # The M-step's factorisations of covariances of _THREADED_FACTOR_FEATURES
    # or more run on BLAS's threads where the E-steps run in one chunk (no
    # engine threads for BLAS's woken threads to take cores from), and in a
    # one-thread window otherwise. The threshold is lowered to 8 features
    # to test both on small data.
    from threadpoolctl import threadpool_info

    from sklearn_em.mixture import _gaussian

    outside = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    if max(outside) == 1:
        pytest.skip("BLAS already runs one thread: nothing to release")
    monkeypatch.setattr(_gaussian, "_THREADED_FACTOR_FEATURES", 8)
    get_lapack_funcs = _gaussian.linalg.get_lapack_funcs
    seen = []

    def recording(names, arrays):
        functions = get_lapack_funcs(names, arrays)
        if tuple(names) != ("potrf", "trtrs"):
            return functions
        potrf, trtrs = functions

        def recorded_potrf(*args, **kwargs):
            seen.append(
                max(
                    i["num_threads"]
                    for i in threadpool_info()
                    if i["user_api"] == "blas"
                )
            )
            return potrf(*args, **kwargs)

        return recorded_potrf, trtrs

    monkeypatch.setattr(_gaussian.linalg, "get_lapack_funcs", recording)
    X, _ = make_blobs(n_samples, n_features=8, centers=2, random_state=0)
    model = GaussianMixtureEM(2, random_state=0, max_iter=2, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    assert model._factors_on_blas_threads is threaded
    # The initial M-step and the two iterations' (one factorisation a
    # component each).
    assert len(seen) == 6
    assert set(seen) == ({max(outside)} if threaded else {1})


@pytest.mark.parametrize("covariance_type", ["tied", "full"])
def test_predictions_with_every_component_direct_skip_the_features(
    covariance_type, monkeypatch
):
    # A tied covariance fitted on fewer rows than features has reg_covar's
    # directions, which put every component beyond the expansion's limit:
    # each is computed from x - mu_k, and the expanded features' product
    # (one more D x D product per chunk) is not computed. The log-densities
    # are the exact ones.
    from sklearn_em.mixture import _gaussian

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 150)) + rng.randint(0, 3, size=(60, 1)) * 3.0
    model = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0)
    model.set_params(max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    parameters = model._fused_parameters(X.dtype, fitting=False)
    if covariance_type == "tied":
        assert len(parameters["direct"]) == 3 and not parameters.get("per_component")

    def no_features(*args, **kwargs):
        raise AssertionError("the features were computed")

    if covariance_type == "tied":
        monkeypatch.setattr(_gaussian, "_fused_features", no_features)
    scores = model.score_samples(X)
    covariances = (
        [model.covariances_] * 3 if covariance_type == "tied" else model.covariances_
    )
    expected = logsumexp(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(model.weights_, model.means_, covariances)
        ],
        axis=0,
    )
    assert_allclose(scores, expected, rtol=1e-10)


def test_tied_e_steps_with_every_component_direct_skip_the_whitening(monkeypatch):
    # The same for a fit's E-steps: a tied chunk whose every component is
    # direct needs only its centred rows (the moments); the whitened rows
    # are not computed, and the fit is the one that computed them.
    from sklearn_em.mixture import _gaussian

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 150)) + rng.randint(0, 3, size=(60, 1)) * 3.0
    fused_features = _gaussian._fused_features
    whitened = []

    def recording(*args, whiten=True, **kwargs):
        whitened.append(whiten)
        return fused_features(*args, whiten=whiten, **kwargs)

    def always(*args, whiten=True, **kwargs):
        return fused_features(*args, **kwargs)

    model = GaussianMixtureEM(3, covariance_type="tied", random_state=0, max_iter=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        monkeypatch.setattr(_gaussian, "_fused_features", recording)
        skipped = clone(model).fit(X)
        monkeypatch.setattr(_gaussian, "_fused_features", always)
        computed = clone(model).fit(X)
    assert whitened and not any(whitened)
    for name in ("weights_", "means_", "covariances_"):
        assert_array_equal(getattr(skipped, name), getattr(computed, name))
    assert skipped.lower_bound_ == computed.lower_bound_


@pytest.mark.parametrize(
    "n_samples, rows, n_features, threaded",
    [(150, 150, 400, True), (150, 50, 400, True), (300, 50, 400, False)],
)
def test_factorisations_on_blas_threads_rule(
    n_samples, rows, n_features, threaded, monkeypatch
):
    # Wide covariances (the threshold lowered to 8 features here) are
    # factorised on BLAS's threads where the E-steps run in one chunk, or
    # on at most half as many rows as features; not where several chunks'
    # E-steps over more rows run on the engine's threads.
    from sklearn_em.mixture import _gaussian
    from sklearn_em.mixture._arrays import ArrayData

    monkeypatch.setattr(_gaussian, "_THREADED_FACTOR_FEATURES", 8)
    X = np.random.RandomState(0).normal(size=(n_samples, n_features))
    model = GaussianMixtureEM(2)
    model.n_features_in_ = n_features
    model._check_parameters(ArrayData(X, None, rows=rows, n_jobs=None))
    assert model._factors_on_blas_threads is threaded


@pytest.mark.parametrize("n_components", [1, 2])
def test_prediction_follows_parameters_changed_in_place(n_components, monkeypatch):
    # Predictions keep their coefficients while the parameters are equal
    # (compared by value), except one tied component of many features
    # (the threshold lowered to 4 here), which computes them afresh: both
    # follow a parameter changed in place, and give the same values.
    from sklearn_em.mixture import _gaussian

    X, _ = make_blobs(200, n_features=6, centers=2, random_state=0)
    model = GaussianMixtureEM(n_components, covariance_type="tied", random_state=0)
    model.fit(X)
    cached = model.score_samples(X)
    monkeypatch.setattr(_gaussian, "_UNCACHED_TIED_FEATURES", 4)
    other = clone(model).fit(X)
    fresh = other.score_samples(X)
    assert_allclose(fresh, cached, rtol=1e-13)
    assert (other in _gaussian._PREDICTION_CACHE) is (n_components > 1)
    for threshold in (4, np.inf):
        monkeypatch.setattr(_gaussian, "_UNCACHED_TIED_FEATURES", threshold)
        before = model.score_samples(X)
        model.means_[0, 0] += 1.0
        after = model.score_samples(X)
        model.means_[0, 0] -= 1.0
        assert not np.allclose(after, before)
        assert_allclose(model.score_samples(X), before, rtol=1e-13)


@pytest.mark.parametrize("block_values", [16, 30, 2**16])
def test_move_scatter_in_row_blocks_is_the_same_sum(block_values, monkeypatch):
    # Wide scatters take d e^T a block of rows at a time (block_values
    # lowered here so that 10 features need 1-3 row blocks): the same sums,
    # bit for bit, and a symmetric scatter stays exactly symmetric.
    from sklearn_em.mixture import _gaussian

    rng = np.random.RandomState(0)
    scatter = rng.normal(size=(3, 10, 10))
    scatter = scatter + scatter.transpose(0, 2, 1)
    first, d = rng.normal(size=(3, 10)), rng.normal(size=(3, 10)) * 1e3
    nk = rng.uniform(1, 50, size=3)
    e = first - 0.5 * nk[:, np.newaxis] * d
    expected = scatter - (
        e[:, :, np.newaxis] * d[:, np.newaxis, :]
        + d[:, :, np.newaxis] * e[:, np.newaxis, :]
    )
    monkeypatch.setattr(_gaussian, "_MOVE_BLOCK_VALUES", block_values)
    moved = scatter.copy()
    _gaussian._move_scatter(moved, first, nk, d)
    assert_array_equal(moved, expected)
    assert_array_equal(moved, moved.transpose(0, 2, 1))


@pytest.mark.parametrize("n_features, wider", [(600, True), (128, False)])
def test_wide_per_component_chunks_are_sized_by_their_statistics(
    n_features, wider, monkeypatch
):
    # A fit's per-component chunks of _WIDE_PER_COMPONENT_FEATURES or more
    # take a cache budget of four times their K D^2 statistics (up to
    # _WIDE_PER_COMPONENT_CACHE_BYTES): longer chunks than the form's own
    # budget gives, fewer statistics to move and reduce. Narrower data keeps
    # the form's budget.
    from sklearn_em.mixture import _gaussian
    from sklearn_em.mixture._data import as_data

    X = np.zeros((20_000, n_features))
    model = GaussianMixtureEM(2, covariance_type="full")
    assert model._uses_per_component_form(n_features, np.float64)
    rows = as_data(model, X, None, reset=True).rows
    monkeypatch.setattr(_gaussian, "_WIDE_PER_COMPONENT_FEATURES", np.inf)
    base_rows = as_data(model, X, None, reset=True).rows
    assert (rows > base_rows) is wider
    assert rows >= base_rows
