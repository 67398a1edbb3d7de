"""Fitting and predicting on Dask arrays, on a real two-process LocalCluster."""

import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_em import BernoulliMixtureEM, GaussianMixtureEM
from sklearn_em.mixture import _dask

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

N_SAMPLES, N_FEATURES, N_COMPONENTS = 1500, 3, 3
CHUNKS = 250


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes on loopback, closed at teardown."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _blobs(seed=0, n_samples=N_SAMPLES):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 2.0], [0.0, 6.0, -2.0]])
    labels = rng.integers(N_COMPONENTS, size=n_samples)
    X = centres[labels] + rng.normal(size=(n_samples, N_FEATURES))
    X[labels == 1] *= 0.5
    return X, centres


def _precisions_init(covariance_type):
    eye = np.eye(N_FEATURES)
    return {
        "full": np.stack([eye] * N_COMPONENTS),
        "tied": eye,
        "diag": np.ones((N_COMPONENTS, N_FEATURES)),
        "spherical": np.ones(N_COMPONENTS),
    }[covariance_type]


def _assert_same_model(a, b, names, rtol=1e-8):
    for name in names:
        assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_fit_on_dask_equals_in_memory_fit(client, covariance_type):
    X, centres = _blobs()
    params = dict(
        n_components=N_COMPONENTS,
        covariance_type=covariance_type,
        means_init=centres + 0.5,
        weights_init=np.full(N_COMPONENTS, 1 / N_COMPONENTS),
        precisions_init=_precisions_init(covariance_type),
    )
    expected = GaussianMixtureEM(**params).fit(X)
    result = GaussianMixtureEM(**params).fit(da.from_array(X, chunks=(CHUNKS, -1)))
    assert result.n_iter_ == expected.n_iter_ >= 2
    assert result.n_features_in_ == N_FEATURES
    _assert_same_model(
        result,
        expected,
        ["weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bound_"],
    )


@pytest.mark.parametrize("dask_weights", [False, True])
def test_gaussian_fit_on_dask_with_sample_weight(client, dask_weights):
    X, centres = _blobs(seed=1)
    sample_weight = np.random.default_rng(1).integers(0, 4, size=X.shape[0])
    params = dict(
        n_components=N_COMPONENTS,
        means_init=centres,
        weights_init=np.full(N_COMPONENTS, 1 / N_COMPONENTS),
        precisions_init=_precisions_init("full"),
    )
    expected = GaussianMixtureEM(**params).fit(X, sample_weight=sample_weight)
    # Blocks of uneven sizes, and several blocks along the features.
    X_dask = da.from_array(X, chunks=((400, 700, 400), (2, 1)))
    w = da.from_array(sample_weight, chunks=300) if dask_weights else sample_weight
    result = GaussianMixtureEM(**params).fit(X_dask, sample_weight=w)
    assert result.n_iter_ == expected.n_iter_
    _assert_same_model(result, expected, ["weights_", "means_", "covariances_"])


def test_bernoulli_fit_on_dask_equals_in_memory_fit(client):
    rng = np.random.default_rng(2)
    prototypes = np.array([[0.9] * 4 + [0.1] * 4, [0.1] * 4 + [0.9] * 4])
    labels = rng.integers(2, size=1000)
    # Grey levels: the model binarises each block as it binarises X.
    X = rng.random((1000, 8)) * 0.5 + (rng.random((1000, 8)) < prototypes[labels])
    params = dict(
        n_components=2,
        binarize=0.5,
        means_init=np.array([[0.6] * 4 + [0.4] * 4, [0.4] * 4 + [0.6] * 4]),
        weights_init=[0.5, 0.5],
    )
    expected = BernoulliMixtureEM(**params).fit(X)
    result = BernoulliMixtureEM(**params).fit(da.from_array(X, chunks=300))
    assert result.n_iter_ == expected.n_iter_
    _assert_same_model(result, expected, ["weights_", "means_", "lower_bound_"])


@pytest.mark.parametrize("init_params", ["kmeans", "random_from_data"])
def test_initialisation_on_dask_equals_in_memory_when_small(client, init_params):
    """X smaller than the initialisation sample is used whole, in order."""
    X, _ = _blobs(seed=3)
    params = dict(n_components=N_COMPONENTS, init_params=init_params, random_state=0)
    expected = GaussianMixtureEM(**params).fit(X)
    result = GaussianMixtureEM(**params).fit(da.from_array(X, chunks=CHUNKS))
    assert result.n_iter_ == expected.n_iter_
    _assert_same_model(result, expected, ["weights_", "means_", "covariances_"])


def test_initialisation_on_a_sample_of_the_blocks(client, monkeypatch):
    X, _ = _blobs(seed=3)
    monkeypatch.setattr(_dask, "INIT_SAMPLE_SIZE", 300)
    X_dask = da.from_array(X, chunks=CHUNKS)
    random_state = np.random.RandomState(0)
    sample, weights = _dask.initial_sample(
        GaussianMixtureEM().fit(X[:10]), X_dask, None, random_state
    )
    assert weights is None
    assert 200 < sample.shape[0] < 400
    # Rows of X, in block order, without repetition.
    rows = [np.flatnonzero((X == row).all(axis=1))[0] for row in sample]
    assert np.all(np.diff(rows) > 0)
    # k-means on the sample, then EM on all the rows: the in-memory optimum.
    params = dict(n_components=N_COMPONENTS, random_state=0, tol=1e-5)
    result = GaussianMixtureEM(**params).fit(X_dask)
    expected = GaussianMixtureEM(**params).fit(X)
    order_r = np.argsort(result.means_[:, 0] - result.means_[:, 1])
    order_e = np.argsort(expected.means_[:, 0] - expected.means_[:, 1])
    assert_allclose(result.means_[order_r], expected.means_[order_e], atol=1e-2)
    assert_allclose(result.lower_bound_, expected.lower_bound_, rtol=1e-5)


def test_predictions_are_lazy_and_match_numpy(client):
    X, centres = _blobs(seed=4)
    gm = GaussianMixtureEM(N_COMPONENTS, random_state=0).fit(X)
    X_dask = da.from_array(X, chunks=(CHUNKS, 2))
    for method in ["predict", "predict_proba", "transform", "score_samples"]:
        lazy = getattr(gm, method)(X_dask)
        assert isinstance(lazy, da.Array), method
        expected = getattr(gm, method)(X)
        assert lazy.shape == expected.shape
        assert lazy.dtype == expected.dtype
        computed = lazy.compute()
        if method == "predict":
            assert_array_equal(computed, expected)
        else:
            assert_allclose(computed, expected, rtol=1e-12, atol=1e-12)
    assert_allclose(gm.score(X_dask), gm.score(X), rtol=1e-12)


def test_partial_fit_on_dask_batches_equals_numpy_batches(client):
    X, _ = _blobs(seed=5)
    batches = [slice(0, 700), slice(700, 1500)]
    expected = GaussianMixtureEM(N_COMPONENTS, random_state=0)
    result = GaussianMixtureEM(N_COMPONENTS, random_state=0)
    for s in batches:
        expected.partial_fit(X[s])
    # A first batch small enough to be its own initialisation sample.
    for s in batches:
        result.partial_fit(da.from_array(X[s], chunks=300))
    _assert_same_model(result, expected, ["weights_", "means_", "covariances_"])


def test_dask_input_errors():
    X, _ = _blobs(seed=6, n_samples=20)
    gm = GaussianMixtureEM(2)
    with pytest.raises(ValueError, match="2D Dask array"):
        gm.fit(da.from_array(X[:, 0], chunks=5))
    unknown = da.from_array(X, chunks=5)
    unknown = unknown[unknown[:, 0] > -100]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        gm.fit(unknown)
    with pytest.raises(ValueError, match="Negative values"):
        gm.fit(da.from_array(X, chunks=5), sample_weight=-np.ones(20))
    gm.fit(X)
    with pytest.raises(ValueError, match="X has 2 features"):
        gm.predict(da.from_array(X[:, :2], chunks=5))


class _LooksLikeDask:
    """Implements the Dask collection protocol's entry point only."""

    shape = (10, 2)

    def __dask_graph__(self):  # pragma: no cover - never called
        return {}


def test_dask_collection_without_dask_names_the_extra(monkeypatch):
    X, _ = _blobs(seed=7, n_samples=20)
    fitted = GaussianMixtureEM(2, random_state=0).fit(X)
    # A None entry in sys.modules makes `import dask` raise ImportError.
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"sklearn-em\[dask\]"):
        GaussianMixtureEM(2).fit(_LooksLikeDask())
    with pytest.raises(ImportError, match=r"sklearn-em\[dask\]"):
        fitted.predict_proba(_LooksLikeDask())


@pytest.mark.parametrize("Estimator", [GaussianMixtureEM, BernoulliMixtureEM])
def test_empty_blocks_equal_the_in_memory_fit(client, Estimator):
    X, _ = _blobs(seed=8, n_samples=120)
    if Estimator is BernoulliMixtureEM:
        X = (X > 1).astype(float)
    X_dask = da.from_array(X, chunks=((60, 0, 60), (N_FEATURES,)))
    params = dict(n_components=N_COMPONENTS, random_state=0, tol=1e-8, max_iter=500)
    result = Estimator(**params).fit(X_dask)
    expected = Estimator(**params).fit(X)
    _assert_same_model(result, expected, ["weights_", "means_"], rtol=1e-8)
    for method in ["predict", "predict_proba", "score_samples"]:
        lazy = getattr(result, method)(X_dask)
        assert lazy.chunks[0] == (60, 0, 60)
        computed = lazy.compute()
        assert_allclose(computed, getattr(expected, method)(X), rtol=1e-7, atol=1e-8)
    # Weighted, with an empty block of weights too.
    w = np.linspace(0.5, 2.0, 120)
    weighted = Estimator(**params).fit(
        X_dask, sample_weight=da.from_array(w, chunks=((60, 0, 60),))
    )
    _assert_same_model(
        weighted, Estimator(**params).fit(X, sample_weight=w), ["means_"], rtol=1e-7
    )


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_fit_on_dask_with_missing_values(client, covariance_type):
    X, centres = _blobs(seed=7)
    rng = np.random.default_rng(7)
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:CHUNKS] = np.where(np.isnan(X[:CHUNKS]), 0.0, X[:CHUNKS])  # a complete block
    X[CHUNKS + 3] = np.nan  # a row with nothing observed
    sample_weight = rng.integers(1, 3, size=X.shape[0])
    params = dict(
        n_components=N_COMPONENTS,
        covariance_type=covariance_type,
        means_init=centres + 0.5,
        weights_init=np.full(N_COMPONENTS, 1 / N_COMPONENTS),
        precisions_init=_precisions_init(covariance_type),
    )
    expected = GaussianMixtureEM(**params).fit(X, sample_weight=sample_weight)
    X_dask = da.from_array(X, chunks=(CHUNKS, -1))
    result = GaussianMixtureEM(**params).fit(X_dask, sample_weight=sample_weight)
    assert result.n_iter_ == expected.n_iter_ >= 2
    _assert_same_model(
        result, expected, ["weights_", "means_", "covariances_", "lower_bound_"]
    )
    for method in ["predict_proba", "score_samples"]:
        assert_allclose(
            getattr(result, method)(X_dask).compute(),
            getattr(expected, method)(X),
            rtol=1e-10,
            atol=1e-12,
        )
    # The initialisation (k-means on the mean-imputed sample) too.
    expected = GaussianMixtureEM(N_COMPONENTS, random_state=0).fit(X)
    result = GaussianMixtureEM(N_COMPONENTS, random_state=0).fit(X_dask)
    _assert_same_model(result, expected, ["weights_", "means_", "covariances_"])


def test_bernoulli_fit_on_dask_with_missing_values(client):
    rng = np.random.default_rng(8)
    prototypes = np.array([[0.9] * 4 + [0.1] * 4, [0.1] * 4 + [0.9] * 4])
    labels = rng.integers(2, size=1000)
    X = (rng.random((1000, 8)) < prototypes[labels]).astype(float)
    X[rng.random(X.shape) < 0.25] = np.nan
    params = dict(n_components=2, random_state=0)
    expected = BernoulliMixtureEM(**params).fit(X)
    result = BernoulliMixtureEM(**params).fit(da.from_array(X, chunks=300))
    assert result.n_iter_ == expected.n_iter_
    _assert_same_model(result, expected, ["weights_", "means_", "lower_bound_"])


def test_one_component_prediction_stays_lazy_and_validated():
    # One component's labels and responsibilities are filled in without a
    # log-density: on a Dask array still a lazy array of the same blocks,
    # each block validated when computed.
    X, _ = _blobs()
    gm = GaussianMixtureEM(1, random_state=0).fit(X)
    X_dask = da.from_array(X, chunks=(400, X.shape[1]))
    proba = gm.predict_proba(X_dask)
    labels = gm.predict(X_dask)
    assert isinstance(proba, da.Array) and isinstance(labels, da.Array)
    assert proba.chunks[0] == X_dask.chunks[0]
    assert_array_equal(proba.compute(), gm.predict_proba(X))
    assert_array_equal(labels.compute(), gm.predict(X))
    bad = X.copy()
    bad[-10, 0] = np.inf
    with pytest.raises(ValueError, match="inf"):
        gm.predict_proba(da.from_array(bad, chunks=(400, X.shape[1]))).compute()
