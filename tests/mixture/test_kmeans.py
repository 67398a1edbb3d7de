"""The k-means initialisation is scikit-learn's KMeans, to the last bit.

``init_params="kmeans"`` runs :mod:`sklearn_em.mixture._kmeans` instead of
``KMeans.fit``; these tests compare its labels, centres, iteration count
and the state it leaves the ``RandomState`` in with ``KMeans``'s, and the
fitted mixtures with scikit-learn's ``GaussianMixture``, so that they fail
as soon as the two diverge.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.cluster import KMeans
from sklearn.cluster._kmeans import _kmeans_plusplus, _kmeans_single_lloyd
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from sklearn.utils.extmath import row_norms
from threadpoolctl import threadpool_info

import sklearn_em.mixture._base as base_module
from sklearn_em import GaussianMixtureEM
from sklearn_em.mixture import _kmeans
from sklearn_em.mixture._suffstats import n_threads as _suffstats_n_threads
from sklearn_em.mixture._suffstats import single_threaded_blas

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _data(kind, seed):
    """(X, n_clusters, sample_weight) of one kind of data set."""
    rng = np.random.RandomState(seed)
    if kind == "blobs":
        X, _ = make_blobs(600, n_features=3, centers=5, random_state=seed)
        return X, 5, None
    if kind == "uniform":
        return rng.uniform(size=(500, 4)), 7, None
    if kind == "anisotropic":
        X, _ = make_blobs(800, n_features=2, centers=4, random_state=seed)
        return X @ np.array([[0.6, -0.6], [-0.4, 0.8]]) * 50 + 1e3, 4, None
    if kind == "float32":
        X, _ = make_blobs(700, n_features=5, centers=6, random_state=seed)
        return X.astype(np.float32), 6, None
    if kind == "float32_weighted":
        X, _ = make_blobs(700, n_features=5, centers=6, random_state=seed)
        return X.astype(np.float32), 6, rng.uniform(0.1, 3, size=700)
    if kind == "weighted":
        X, _ = make_blobs(500, n_features=3, centers=4, random_state=seed)
        return X, 4, rng.uniform(0.01, 5, size=500)
    if kind == "integer_weights":
        X, _ = make_blobs(400, n_features=2, centers=3, random_state=seed)
        return X, 3, rng.randint(0, 4, size=400).astype(float)
    if kind == "duplicated":
        # Fewer distinct rows than clusters: zero distances, ties and
        # clusters that stay empty.
        X = np.repeat(rng.normal(size=(4, 3)), 30, axis=0)
        return X[rng.permutation(len(X))], 6, None
    if kind == "integer_grid":
        # Exact ties between centres are common on a small integer grid.
        return rng.randint(0, 3, size=(300, 2)).astype(float), 5, None
    if kind == "one_cluster":
        return rng.normal(size=(200, 3)), 1, None
    if kind == "k_close_to_n":
        return rng.normal(size=(40, 2)), 37, None
    if kind == "k_equals_n":
        return rng.normal(size=(12, 3)), 12, None
    if kind == "large":
        # Over 256 rows per OpenMP block and several blocks: KMeans's
        # chunking and its threads' sums.
        X, _ = make_blobs(20_000, n_features=6, centers=10, random_state=seed)
        return X, 10, None
    if kind == "wide":
        # n_features x n_clusters over _BOUNDED_MIN_SIZE, overlapping
        # clusters, over many iterations (Hamerly's bounds with
        # bounded="always"; on so few rows the kernel by default).
        X, _ = make_blobs(
            3000, n_features=16, centers=20, cluster_std=4.0, random_state=seed
        )
        return X, 20, None
    if kind == "wide_float32_weighted":
        X, _ = make_blobs(
            3000, n_features=20, centers=16, cluster_std=5.0, random_state=seed
        )
        return X.astype(np.float32), 16, rng.uniform(0.1, 3, size=3000)
    raise ValueError(kind)


KINDS = [
    "blobs",
    "uniform",
    "anisotropic",
    "float32",
    "float32_weighted",
    "weighted",
    "integer_weights",
    "duplicated",
    "integer_grid",
    "one_cluster",
    "k_close_to_n",
    "k_equals_n",
    "large",
    "wide",
    "wide_float32_weighted",
]


def _sklearn_kmeans(X, n_clusters, sample_weight, seed):
    random_state = np.random.RandomState(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters, n_init=1, random_state=random_state).fit(
            X, sample_weight=sample_weight
        )
    return km, random_state


def _ours(X, n_clusters, sample_weight, seed, n_jobs=None):
    random_state = np.random.RandomState(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels, centers, n_iter = _kmeans.kmeans_lloyd(
            X, n_clusters, sample_weight, random_state, n_jobs
        )
    return labels, centers, n_iter, random_state


def _assert_same_state(rs1, rs2):
    s1, s2 = rs1.get_state(), rs2.get_state()
    assert s1[0] == s2[0]
    assert_array_equal(s1[1], s2[1])
    assert s1[2:] == s2[2:]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bounded", ["default", "always", "certified"])
def test_same_as_sklearn_kmeans(kind, seed, bounded, monkeypatch):
    if bounded in ("always", "certified"):
        # Hamerly's bounds on every shape, not only where they pay: their
        # labels must still be KMeans's, ties and near-ties included.
        monkeypatch.setattr(_kmeans, "_BOUNDED_MIN_SIZE", 0)
        monkeypatch.setattr(_kmeans, "_BOUNDED_MIN_ROWS", 0)
    if bounded == "certified":
        # And sums that follow the rows that moved, within a bound of
        # KMeans's (float64, unit weights), on every shape: labels,
        # iterations and centres still KMeans's. The rows the labeller
        # says it moved are those whose labels changed.
        monkeypatch.setattr(_kmeans, "_INCREMENTAL_ROWS", 0)
        update = _kmeans._CertifiedSums.update

        def checked(self, labels, changed):
            assert_array_equal(changed, np.flatnonzero(labels != self.labels))
            return update(self, labels, changed)

        monkeypatch.setattr(_kmeans._CertifiedSums, "update", checked)
    X, n_clusters, sample_weight = _data(kind, seed)
    km, rs_sk = _sklearn_kmeans(X, n_clusters, sample_weight, seed)
    labels, centers, n_iter, rs_ours = _ours(X, n_clusters, sample_weight, seed)
    assert labels.dtype == km.labels_.dtype
    assert_array_equal(labels, km.labels_)
    assert n_iter == km.n_iter_
    assert centers.dtype == km.cluster_centers_.dtype
    if _openmp_effective_n_threads() <= 2:
        # KMeans's threads' sums are added in a fixed order for up to two
        # threads, and ours are the same sums.
        assert_array_equal(centers, km.cluster_centers_)
    else:
        assert_allclose(centers, km.cluster_centers_, rtol=1e-5, atol=1e-6)
    # The same draws: the generator is left where KMeans leaves it.
    _assert_same_state(rs_sk, rs_ours)


@pytest.mark.parametrize("kind", ["large", "float32", "weighted", "duplicated"])
@pytest.mark.parametrize("n_jobs", [1, 2, 3])
def test_threads_change_nothing(kind, n_jobs):
    X, n_clusters, sample_weight = _data(kind, 0)
    reference = _ours(X, n_clusters, sample_weight, 0, n_jobs=1)
    labels, centers, n_iter, _ = _ours(X, n_clusters, sample_weight, 0, n_jobs)
    assert_array_equal(labels, reference[0])
    assert_array_equal(centers, reference[1])
    assert n_iter == reference[2]


@pytest.mark.parametrize("kind", ["large", "float32", "weighted", "anisotropic"])
@pytest.mark.parametrize("n_jobs", [2, 3])
def test_threaded_preparation_is_sklearns(kind, n_jobs, monkeypatch):
    # Large data is centred over threads, a range of rows each, and its
    # row norms and column sums of squares taken side by side: KMeans's
    # labels, centres, iterations and draws all the same.
    monkeypatch.setattr(_kmeans, "_MIN_THREADED_BYTES", 0)
    calls = []
    original = _kmeans.map_in_threads

    def spy(function, items, threads):
        calls.append((len(items), threads))
        return original(function, items, threads)

    monkeypatch.setattr(_kmeans, "map_in_threads", spy)
    X, n_clusters, sample_weight = _data(kind, 1)
    km, rs_sk = _sklearn_kmeans(X, n_clusters, sample_weight, 1)
    labels, centers, n_iter, rs_ours = _ours(X, n_clusters, sample_weight, 1, n_jobs)
    ranges = min(n_jobs, _suffstats_n_threads(n_jobs))
    assert calls[0] == (ranges, ranges) and ranges > 1
    assert calls[1][0] == (1 if X.dtype == np.float32 else 2)
    assert_array_equal(labels, km.labels_)
    assert n_iter == km.n_iter_
    if _openmp_effective_n_threads() <= 2:
        assert_array_equal(centers, km.cluster_centers_)
    _assert_same_state(rs_sk, rs_ours)


@pytest.mark.parametrize(
    "kind", ["large", "weighted", "anisotropic", "duplicated", "integer_grid"]
)
@pytest.mark.parametrize("n_jobs", [2, 3])
@pytest.mark.parametrize("first", [False, True])
def test_threaded_seeding_is_sklearns(kind, n_jobs, first, monkeypatch):
    # k-means++'s distances split over the engine's threads, a range of rows
    # each (from _THREADED_SEEDING values a step on data of
    # _MIN_THREADED_BYTES, and the first centre's from _THREADED_FIRST
    # values a thread: lowered here to reach small data): KMeans's labels,
    # centres and draws to the last bit.
    monkeypatch.setattr(_kmeans, "_MIN_THREADED_BYTES", 0)
    monkeypatch.setattr(_kmeans, "_THREADED_SEEDING", 0)
    monkeypatch.setattr(_kmeans, "_BUFFERED_DISTANCES", 0)
    if first:
        monkeypatch.setattr(_kmeans, "_THREADED_FIRST", 0)
    calls = []
    threaded = _kmeans._threaded_candidate_distances

    def spy(*args, threads, **kwargs):
        calls.append(threads)
        return threaded(*args, threads=threads, **kwargs)

    monkeypatch.setattr(_kmeans, "_threaded_candidate_distances", spy)
    X, n_clusters, sample_weight = _data(kind, 1)
    km, rs_sk = _sklearn_kmeans(X, n_clusters, sample_weight, 1)
    labels, centers, n_iter, rs_ours = _ours(X, n_clusters, sample_weight, 1, n_jobs)
    assert calls == [n_jobs] * (n_clusters - 1 + first)
    assert_array_equal(labels, km.labels_)
    assert n_iter == km.n_iter_
    if _openmp_effective_n_threads() <= 2:
        assert_array_equal(centers, km.cluster_centers_)
    _assert_same_state(rs_sk, rs_ours)


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_threaded_candidate_distances_are_sklearns(threads):
    # The seeds of threaded k-means++ directly, on rows that do not divide
    # evenly among the threads, against scikit-learn's function.
    rng = np.random.RandomState(threads)
    X = rng.normal(size=(10_007, 9)) * 10.0 ** rng.uniform(-2, 3, size=9) + 7
    X -= X.mean(axis=0)
    sample_weight = rng.uniform(0.2, 3, size=len(X))
    norms = row_norms(X, squared=True)
    rs_sk, rs_ours = np.random.RandomState(0), np.random.RandomState(0)
    centers_sk, indices_sk = _kmeans_plusplus(
        X, 12, x_squared_norms=norms, sample_weight=sample_weight, random_state=rs_sk
    )
    with single_threaded_blas():
        centers, indices = _kmeans.kmeans_plusplus(
            X, 12, norms, sample_weight, rs_ours, threads=threads
        )
    assert_array_equal(indices, indices_sk)
    assert_array_equal(centers, centers_sk)
    _assert_same_state(rs_sk, rs_ours)
    # Each step's distances, every row of them, are the one-call function's.
    from sklearn.metrics.pairwise import _euclidean_distances

    candidates = X[rng.randint(len(X), size=4)]
    expected = _euclidean_distances(candidates, X, Y_norm_squared=norms, squared=True)
    closest = expected[0] * rng.uniform(0.5, 1.5, size=len(X))
    out = np.full_like(expected, np.nan)
    with single_threaded_blas():
        distances = _kmeans._threaded_candidate_distances(
            candidates, X, norms.reshape(1, -1), out, closest, threads
        )
    assert distances is out
    assert_array_equal(distances, np.minimum(closest, expected))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_empty_cluster_relocated_as_sklearn(dtype, monkeypatch):
    # Initial centres of which two are far from every row: both clusters are
    # empty after the first assignment and are relocated to the rows
    # farthest from their centres.
    X, _ = make_blobs(3000, n_features=3, centers=4, random_state=0)
    X = (X - X.mean(axis=0)).astype(dtype)
    w = np.random.RandomState(1).uniform(0.5, 2, size=len(X)).astype(dtype)
    centers_init = np.vstack([X[:4], np.full((2, 3), 1e3)]).astype(dtype)
    calls = []
    relocate = _kmeans._relocate_empty_clusters

    def spy(X, sample_weight, centers_old, sums, weights, labels):
        calls.append(int(np.sum(weights == 0)))
        return relocate(X, sample_weight, centers_old, sums, weights, labels)

    monkeypatch.setattr(_kmeans, "_relocate_empty_clusters", spy)
    tol = np.mean(np.var(X, axis=0)) * 1e-4
    labels, centers, n_iter = _kmeans._lloyd(X, w, centers_init, tol)
    assert calls[0] == 2
    ref_labels, _, ref_centers, ref_n_iter = _kmeans_single_lloyd(
        X, w, centers_init.copy(), tol=tol, n_threads=_openmp_effective_n_threads()
    )
    assert_array_equal(labels, ref_labels)
    assert_array_equal(centers, ref_centers)
    assert n_iter == ref_n_iter


def test_distinct_clusters_warning():
    X, n_clusters, _ = _data("duplicated", 0)
    with pytest.warns(ConvergenceWarning, match="Number of distinct clusters"):
        _kmeans.kmeans_labels(X, n_clusters, None, np.random.RandomState(0))


def test_too_few_samples():
    with pytest.raises(ValueError, match="n_samples=3 should be >= n_clusters=4"):
        _kmeans.kmeans_labels(np.eye(3), 4, None, np.random.RandomState(0))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "kind", ["blobs", "uniform", "anisotropic", "float32", "large", "k_close_to_n"]
)
@pytest.mark.parametrize("seed", range(3))
def test_default_fit_same_as_sklearn(covariance_type, kind, seed):
    X, n_clusters, _ = _data(kind, seed)
    if kind == "k_close_to_n":
        n_clusters = 8
    kwargs = dict(
        n_components=n_clusters,
        covariance_type=covariance_type,
        random_state=seed,
        reg_covar=1e-4,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = GaussianMixture(**kwargs).fit(X)
        ours = GaussianMixtureEM(**kwargs).fit(X)
    assert ours.n_iter_ == sk.n_iter_
    rtol = 1e-3 if X.dtype == np.float32 else 1e-7
    assert_allclose(ours.lower_bound_, sk.lower_bound_, rtol=rtol)
    assert_allclose(ours.weights_, sk.weights_, rtol=rtol, atol=1e-7)
    assert_allclose(ours.means_, sk.means_, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("weighted", [False, True])
def test_one_cluster_labels_skip_kmeans_but_not_its_draw(dtype, weighted):
    # One cluster: every label is 0 without the Lloyd iterations, and the
    # generator is left where KMeans leaves it (its k-means++ draws the
    # first centre), so that later initialisations draw the same numbers.
    rng = np.random.RandomState(0)
    X = (rng.normal(size=(300, 4)) * 10).astype(dtype)
    sample_weight = rng.uniform(0.1, 3, size=300) if weighted else None
    km, rs_sk = _sklearn_kmeans(X, 1, sample_weight, 5)
    rs_ours = np.random.RandomState(5)
    labels = _kmeans.kmeans_labels(X, 1, sample_weight, rs_ours)
    assert labels.dtype == np.int32
    assert_array_equal(labels, km.labels_)
    _assert_same_state(rs_sk, rs_ours)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_component_fit_same_as_sklearn(covariance_type):
    # Three initialisations of one component: each draws from the
    # generator as KMeans does, and the fit is scikit-learn's.
    X, _ = make_blobs(400, n_features=3, centers=2, random_state=0)
    kwargs = dict(n_components=1, covariance_type=covariance_type, n_init=3)
    sk = GaussianMixture(random_state=0, **kwargs).fit(X)
    rs = np.random.RandomState(0)
    ours = GaussianMixtureEM(random_state=rs, **kwargs).fit(X)
    rs_sk = np.random.RandomState(0)
    GaussianMixture(random_state=rs_sk, **kwargs).fit(X)
    _assert_same_state(rs_sk, rs)
    assert ours.n_iter_ == sk.n_iter_
    assert_allclose(ours.lower_bound_, sk.lower_bound_, rtol=1e-12)
    assert_allclose(ours.means_, sk.means_, rtol=1e-12)
    assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-10)


def _reference_labels(
    X, n_clusters, sample_weight, random_state, n_jobs=None, threaded_after=False
):
    """The labels through scikit-learn's KMeans, as before this module."""
    return (
        KMeans(n_clusters, n_init=1, random_state=random_state)
        .fit(X, sample_weight=sample_weight)
        .labels_
    )


@pytest.mark.parametrize("kind", ["weighted", "integer_weights", "float32_weighted"])
@pytest.mark.parametrize("n_init", [1, 3])
def test_weighted_fit_same_as_through_kmeans(kind, n_init, monkeypatch):
    # GaussianMixture takes no weights: compare with the same model whose
    # initialisation calls KMeans.fit with the weights. n_init=3 also checks
    # that the later initialisations draw the same numbers.
    X, n_clusters, sample_weight = _data(kind, 0)
    kwargs = dict(n_components=n_clusters, random_state=0, n_init=n_init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixtureEM(**kwargs).fit(X, sample_weight=sample_weight)
        monkeypatch.setattr(base_module, "kmeans_labels", _reference_labels)
        reference = GaussianMixtureEM(**kwargs).fit(X, sample_weight=sample_weight)
    assert ours.n_iter_ == reference.n_iter_
    assert_array_equal(ours.means_, reference.means_)
    assert_array_equal(ours.weights_, reference.weights_)
    assert ours.lower_bound_ == reference.lower_bound_


def _seeding_blas_threads(monkeypatch, **kwargs):
    """BLAS's thread counts during k-means++'s seeding of a small data set,
    and the labels, through :func:`_kmeans.kmeans_labels`."""
    from threadpoolctl import threadpool_info

    seen = []
    seeds = _kmeans.kmeans_plusplus

    def recorded(*args, **kw):
        seen.append(
            {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
        )
        return seeds(*args, **kw)

    monkeypatch.setattr(_kmeans, "kmeans_plusplus", recorded)
    X, _ = make_blobs(3000, n_features=50, centers=8, random_state=0)
    labels = _kmeans.kmeans_labels(X, 8, None, np.random.RandomState(0), **kwargs)
    monkeypatch.setattr(_kmeans, "kmeans_plusplus", seeds)
    assert len(seen) == 1
    return seen[0], labels


def test_small_seeding_keeps_blas_on_one_thread_before_threaded_work(monkeypatch):
    # k-means++ on small data runs where BLAS leaves it (its threads, as in
    # KMeans), unless the caller then runs its E-steps on the engine's
    # threads: BLAS's woken threads busy-wait on the cores those want.
    # The same labels either way.
    outside = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    if max(outside) == 1:
        pytest.skip("BLAS already runs one thread: nothing to keep it from")
    free, labels = _seeding_blas_threads(monkeypatch)
    kept, kept_labels = _seeding_blas_threads(monkeypatch, threaded_after=True)
    assert free == outside
    assert kept == {1}
    assert_array_equal(kept_labels, labels)


@pytest.mark.parametrize(
    "n_jobs, n_samples, n_components, expected",
    [(2, 3000, 40, True), (None, 30, 4, False), (1, 3000, 40, False)],
)
def test_default_fit_seeds_on_one_blas_thread_when_em_is_threaded(
    n_jobs, n_samples, n_components, expected, monkeypatch
):
    # The mixture tells k-means whether its E-steps run on the engine's
    # threads (several chunks, more than one thread): exactly when they do.
    from sklearn_em.mixture import _suffstats

    calls, maps = [], []
    labels, map_in_threads = _kmeans.kmeans_labels, _suffstats.map_in_threads

    def recorded_labels(*args, **kwargs):
        calls.append(kwargs.get("threaded_after"))
        return labels(*args, **kwargs)

    def recorded_map(function, items, threads):
        maps.append(min(threads, len(items)))
        return map_in_threads(function, items, threads)

    monkeypatch.setattr(base_module, "kmeans_labels", recorded_labels)
    monkeypatch.setattr(_suffstats, "map_in_threads", recorded_map)
    X, _ = make_blobs(n_samples, n_features=200, centers=4, random_state=0)
    model = GaussianMixtureEM(n_components, covariance_type="diag", n_jobs=n_jobs)
    model.set_params(random_state=0, max_iter=2, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    # (k-means on data this small maps nothing over threads itself.)
    threaded = any(threads > 1 for threads in maps)
    assert threaded == expected
    assert calls == [threaded]


def test_default_fit_does_not_call_kmeans(monkeypatch):
    class NoKMeans:
        def __init__(self, *args, **kwargs):
            raise AssertionError("KMeans.fit called")

    monkeypatch.setattr(base_module, "KMeans", NoKMeans)
    X, _ = make_blobs(300, n_features=2, centers=3, random_state=0)
    GaussianMixtureEM(3, random_state=0).fit(X)


def test_single_threaded_blas_window_unchanged():
    # Inside the engine's BLAS window (as the initialisation runs) and
    # outside it, the same labels.
    X, n_clusters, _ = _data("large", 0)
    outside = _ours(X, n_clusters, None, 0)[0]
    with single_threaded_blas():
        inside = _ours(X, n_clusters, None, 0)[0]
    assert_array_equal(inside, outside)


@pytest.mark.parametrize("layout", ["fortran", "strided", "int"])
def test_layouts_same_as_sklearn(layout):
    # KMeans copies to a C-ordered float array first: its column sums (the
    # mean and the tolerance's variances) are added row by row.
    X, n_clusters, _ = _data("large", 3)
    if layout == "fortran":
        X = np.asfortranarray(X)
    elif layout == "strided":
        X = np.hstack([X, X])[:, ::2]
    else:
        X = np.round(X * 10).astype(np.int64)
    km, rs_sk = _sklearn_kmeans(X, n_clusters, None, 3)
    labels, centers, n_iter, rs_ours = _ours(X, n_clusters, None, 3)
    assert_array_equal(labels, km.labels_)
    assert n_iter == km.n_iter_
    assert_allclose(centers, km.cluster_centers_, rtol=1e-12)
    _assert_same_state(rs_sk, rs_ours)


def _bisector(rng, n_rows=3000, n_features=8, n_clusters=4):
    """Four centres, and rows spread over the bisector of the first two.

    Returns the centres, the bisector's middle point and unit normal, and
    the rows' offsets from the middle point within the bisector.
    """
    centers = rng.normal(scale=3, size=(n_clusters, n_features))
    middle = (centers[0] + centers[1]) / 2
    normal = centers[1] - centers[0]
    normal /= np.linalg.norm(normal)
    along = rng.normal(size=(n_rows, n_features))
    along -= np.outer(along @ normal, normal)
    return centers, middle, normal, along


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(3))
def test_bounded_labels_defer_near_ties_to_the_kernel(dtype, seed):
    # Rows on the bisector of two centres, up to their rounding: which of
    # the two the kernel picks depends on its rounding, not on the exact
    # distances. The bounded labeller's comparison must give the kernel's
    # label to every one of them (without the margin, 10-40% differ).
    rng = np.random.RandomState(seed)
    centers, middle, normal, along = _bisector(rng)
    X = np.ascontiguousarray(middle + along, dtype=dtype)
    centers = centers.astype(dtype)
    weights = np.ones(len(X), dtype=dtype)
    everything = slice(0, len(X))

    expected = np.empty(len(X), dtype=np.int32)
    kernel = _kmeans._BoundedLabeller(X, weights, bounded=False)
    kernel.move(centers)
    kernel.label(centers, expected, everything)

    bounded = _kmeans._BoundedLabeller(X, weights, bounded=True)
    bounded.move(centers)  # first iteration: the kernel
    bounded.move(centers)  # second: every row compared, bounds set
    labels = np.full(len(X), -1, dtype=np.int32)
    bounded.label(centers, labels, everything)
    assert_array_equal(labels, expected)
    # Both centres are chosen: the rows are near-ties indeed.
    assert set(np.unique(expected)) >= {0, 1}


@pytest.mark.parametrize("seed", range(3))
def test_bounded_labels_from_centres_within_a_bound(seed):
    # Centres within a bound of the exact ones (as _CertifiedSums gives
    # them): rows near the bisector, whose label depends on the centres'
    # last bits, still get the kernel's label from the exact centres.
    rng = np.random.RandomState(seed)
    centers, middle, normal, along = _bisector(rng)
    n_clusters = len(centers)
    # Some rows on the bisector, others up to 1e-9 off it.
    off = rng.uniform(-1e-9, 1e-9, 3000) * (rng.uniform(size=3000) < 0.5)
    along += np.outer(off, normal)
    X = middle + along
    weights = np.ones(len(X))
    everything = slice(0, len(X))
    expected = np.empty(len(X), dtype=np.int32)
    kernel = _kmeans._BoundedLabeller(X, weights, bounded=False)
    kernel.move(centers)
    kernel.label(centers, expected, everything)

    shift = rng.normal(size=centers.shape)
    shift *= 1e-10 / np.linalg.norm(shift, axis=1, keepdims=True)
    error = np.full(n_clusters, 1.5e-10)
    calls = []

    def exact():
        calls.append(1)
        return centers

    bounded = _kmeans._BoundedLabeller(X, weights, bounded=True)
    bounded.move(centers + shift, error, exact)
    bounded.move(centers + shift, error, exact)
    labels = np.full(len(X), -1, dtype=np.int32)
    bounded.label(centers + shift, labels, everything)
    assert_array_equal(labels, expected)
    assert calls and set(np.unique(expected)) >= {0, 1}
    # Without the bound, the shifted centres label some rows differently.
    unbounded = _kmeans._BoundedLabeller(X, weights, bounded=True)
    unbounded.move(centers + shift)
    unbounded.move(centers + shift)
    unbounded.label(centers + shift, labels, everything)
    assert np.any(labels != expected)


def test_labels_without_exact_centres(monkeypatch):
    # kmeans_labels only uses the labels: its k-means skips KMeans's final
    # centres where they were only known within a bound, with the same
    # labels and iterations, and centres within that bound.
    monkeypatch.setattr(_kmeans, "_INCREMENTAL_ROWS", 0)
    X, n_clusters, _ = _data("wide", 1)
    X = np.ascontiguousarray(np.vstack([X] * 3))
    sums = []
    original = _kmeans._BlockSums.__call__

    def spy(self, labels):
        sums.append(1)
        return original(self, labels)

    monkeypatch.setattr(_kmeans._BlockSums, "__call__", spy)
    exact = _kmeans.kmeans_lloyd(X, n_clusters, None, np.random.RandomState(0))
    n_exact = len(sums)
    sums.clear()
    labels, centers, n_iter = _kmeans.kmeans_lloyd(
        X, n_clusters, None, np.random.RandomState(0), exact_centers=False
    )
    assert_array_equal(labels, exact[0])
    assert n_iter == exact[2]
    assert len(sums) < n_exact
    assert_allclose(centers, exact[1], rtol=0, atol=1e-9 * np.abs(X).max())


@pytest.mark.parametrize("seed", range(3))
def test_certified_sums_bound_kmeans_centres(seed):
    # Sums moved by the rows that changed cluster: centres within their
    # bound of KMeans's (its blocks' sums, added in order), the bound a few
    # 1e-12 of the largest row norm; None where a cluster empties or too
    # many rows move.
    rng = np.random.RandomState(seed)
    n_samples, n_features, n_clusters = 30_000, 5, 9
    X = rng.normal(size=(n_samples, n_features)) * 10.0 ** rng.uniform(
        -3, 3, n_features
    )
    X += rng.normal(size=n_features) * 1e3
    weights = np.ones(n_samples)
    blocks = [slice(0, 12_000), slice(12_000, n_samples)]
    radius = float(np.sqrt(row_norms(X, squared=True).max()))

    def kmeans_centres(labels):
        sums, counts = _kmeans._added_blocks(
            [_kmeans._BlockSums(X, weights, b, n_clusters)(labels) for b in blocks]
        )
        centres = sums.copy()
        _kmeans._average_centers(centres, counts)
        return sums, counts, centres

    labels = rng.randint(n_clusters, size=n_samples).astype(np.int32)
    certified = _kmeans._CertifiedSums(X, radius)
    sums, counts, _ = kmeans_centres(labels)
    certified.sync(labels, sums, counts)
    exceeded = []
    for _ in range(30):
        moved = rng.choice(n_samples, size=rng.randint(1, 2_000), replace=False)
        labels[moved] = rng.randint(n_clusters, size=moved.size)
        centres, error = certified.update(labels)
        _, _, expected = kmeans_centres(labels)
        distance = np.sqrt(((centres - expected) ** 2).sum(axis=1))
        assert np.all(distance <= error)
        assert np.all(error < 1e-11 * radius)
        exceeded.append(np.any(distance > 0))
    # The sums did drift from KMeans's, within the bound.
    assert any(exceeded)
    labels[labels == 3] = 4
    assert certified.update(labels) is None
    certified.sync(labels, *kmeans_centres(labels)[:2])
    labels[: n_samples // 4] = (labels[: n_samples // 4] + 1) % n_clusters
    assert certified.update(labels) is None


@pytest.mark.parametrize("kind", ["uniform", "anisotropic", "large"])
@pytest.mark.parametrize("forced", ["undecided", "many_moves", "emptied", "wide_error"])
def test_certified_fallbacks_are_kmeans(kind, forced, monkeypatch):
    # Each way out of the certified sums, forced, gives KMeans's labels,
    # iterations and centres: its own tolerance test every other iteration
    # (from centres that were only within a bound of its own), its own sums
    # where "many" rows moved (before the update) or "a cluster emptied"
    # (after it: the last labels are recovered), and the kernel's labels
    # from its exact centres where a bound 1e9 times wider makes near-ties
    # common.
    monkeypatch.setattr(_kmeans, "_BOUNDED_MIN_SIZE", 0)
    monkeypatch.setattr(_kmeans, "_BOUNDED_MIN_ROWS", 0)
    monkeypatch.setattr(_kmeans, "_INCREMENTAL_ROWS", 0)
    taken = []
    update = _kmeans._CertifiedSums.update
    if forced == "undecided":
        decide = _kmeans._certified_convergence
        calls = []

        def undecided(old, old_error, *args):
            calls.append(1)
            if len(calls) % 2:
                return decide(old, old_error, *args)
            taken.append(old_error is not None)
            return None

        monkeypatch.setattr(_kmeans, "_certified_convergence", undecided)
    elif forced == "many_moves":

        def counted(self, labels, *args):
            taken.append(True)
            return update(self, labels, *args)

        monkeypatch.setattr(_kmeans._CertifiedSums, "update", counted)
        monkeypatch.setattr(_kmeans, "_CERTIFIED_MOVES", 0)
    elif forced == "emptied":
        calls = []

        def emptied(self, labels, *args):
            moved = update(self, labels, *args)
            calls.append(1)
            if moved is not None and self.undo is not None and len(calls) % 2 == 0:
                taken.append(True)
                return None
            return moved

        monkeypatch.setattr(_kmeans._CertifiedSums, "update", emptied)
    else:
        kernel_rows = _kmeans._BoundedLabeller._kernel_rows

        def wide(self, labels, *args):
            moved = update(self, labels, *args)
            return None if moved is None else (moved[0], moved[1] * 1e9)

        def spy(self, *args):
            if self.exact is not None:
                taken.append(True)
            return kernel_rows(self, *args)

        monkeypatch.setattr(_kmeans._CertifiedSums, "update", wide)
        monkeypatch.setattr(_kmeans._BoundedLabeller, "_kernel_rows", spy)
    X, n_clusters, sample_weight = _data(kind, 2)
    km, _ = _sklearn_kmeans(X, n_clusters, sample_weight, 2)
    labels, centers, n_iter, _ = _ours(X, n_clusters, sample_weight, 2)
    assert_array_equal(labels, km.labels_)
    assert n_iter == km.n_iter_
    if _openmp_effective_n_threads() <= 2:
        assert_array_equal(centers, km.cluster_centers_)
    assert any(taken)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_features", [1, 2, 5, 16])
@pytest.mark.parametrize("n_samples", [100, 4096, 4097, 30_001])
def test_column_sums_of_squares_are_numpys(dtype, n_features, n_samples):
    # KMeans's tolerance is np.mean(np.var(X, axis=0)) * tol: the squares'
    # column sums must be NumPy's to the last bit.
    rng = np.random.RandomState(n_samples + n_features)
    X = (rng.normal(size=(n_samples, n_features)) * 1e3 + 5).astype(dtype)
    assert_array_equal(_kmeans._column_sums_of_squares(X), np.add.reduce(X * X, axis=0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3), (5, 1), (100, 2), (10_000, 8), (3, 40)])
def test_column_means_are_numpys(dtype, shape):
    # KMeans centres the data on X.mean(axis=0): our means are NumPy's to
    # the last bit (its row-by-row sum, then its division), in X's dtype.
    rng = np.random.RandomState(shape[0])
    X = (rng.normal(size=shape) * 10.0 ** rng.uniform(-5, 5, size=shape) + 3).astype(
        dtype
    )
    means = _kmeans._column_means(X)
    assert means.dtype == X.dtype
    assert_array_equal(means, X.mean(axis=0))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(3))
def test_kmeans_plusplus_is_sklearns(kind, seed):
    # The seeds of our k-means++ (float64: scikit-learn's arithmetic without
    # its dispatch) are scikit-learn's to the last bit, and the generator is
    # left where scikit-learn leaves it.
    X, n_clusters, sample_weight = _data(kind, seed)
    X = X - X.mean(axis=0)
    if sample_weight is None:
        sample_weight = np.ones(len(X))
    sample_weight = sample_weight.astype(X.dtype)
    norms = row_norms(X, squared=True) if X.dtype == np.float64 else None
    rs_sk, rs_ours = np.random.RandomState(seed), np.random.RandomState(seed)
    centers_sk, indices_sk = _kmeans_plusplus(
        X,
        n_clusters,
        x_squared_norms=norms,
        sample_weight=sample_weight,
        random_state=rs_sk,
    )
    centers, indices = _kmeans.kmeans_plusplus(
        X, n_clusters, norms, sample_weight, rs_ours
    )
    assert_array_equal(indices, indices_sk)
    assert_array_equal(centers, centers_sk)
    assert centers.dtype == centers_sk.dtype
    _assert_same_state(rs_sk, rs_ours)


def _spy_whole_cumsums(monkeypatch, n_values):
    """Count the calls of np.cumsum on ``n_values`` values (the fallback)."""
    calls = []
    cumsum = np.cumsum

    def spy(a, *args, **kwargs):
        if np.shape(a) == (n_values,):
            calls.append(1)
        return cumsum(a, *args, **kwargs)

    monkeypatch.setattr(np, "cumsum", spy)
    return calls


@pytest.mark.parametrize("seed", range(6))
def test_cumulative_search_is_numpys(seed, monkeypatch):
    # Where draws fall in the cumulative sum: NumPy's positions, found
    # without its cumulative sum unless a target is within rounding of a
    # sum (exact hits, zeros, integers, targets past the total).
    rng = np.random.RandomState(seed)
    n_values = [8192, 20_000, 33_333, 65_536, 100_001, 1000][seed]
    values = rng.exponential(size=n_values) * 10.0 ** rng.uniform(-6, 6)
    if seed % 2:
        values[rng.uniform(size=n_values) < 0.5] = 0.0
    if seed == 2:
        values = np.round(values * 10)
    sums = np.cumsum(values)
    calls = _spy_whole_cumsums(monkeypatch, n_values)
    targets = rng.uniform(0, 1, size=50) * sums[-1]
    targets[:2] = [sums[-1] * 1.01, sums[-1] * (1 - 1e-3)]
    assert_array_equal(
        _kmeans._cumulative_search(values, targets), np.searchsorted(sums, targets)
    )
    # Decided without the whole sum (on fewer than four blocks, NumPy's way).
    small = n_values < 4 * _kmeans._SEARCH_BLOCK
    assert calls == ([1] if small else [])
    # A target on a sum (or at zero, on a leading zero) is left to NumPy's
    # cumulative sum.
    hits = np.append(sums[rng.randint(n_values, size=4)], 0.0)
    assert_array_equal(
        _kmeans._cumulative_search(values, hits), np.searchsorted(sums, hits)
    )
    assert len(calls) == (2 if small else 1)


@pytest.mark.parametrize("seed", range(4))
def test_cumulative_search_of_fractions_is_numpys(seed, monkeypatch):
    # RandomState.choice's placement of uniform draws in the normalised
    # cumulative sum (side="right"), without the whole sum unless a draw is
    # within rounding of one of its values.
    rng = np.random.RandomState(seed)
    n_values = [8192, 20_000, 65_536, 100_001][seed]
    values = rng.exponential(size=n_values) * 10.0 ** rng.uniform(-6, 6)
    if seed % 2:
        values[rng.uniform(size=n_values) < 0.5] = 0.0
    cdf = np.cumsum(values)
    cdf /= cdf[-1]
    calls = _spy_whole_cumsums(monkeypatch, n_values)
    targets = rng.uniform(size=50)
    assert_array_equal(
        _kmeans._cumulative_search(values, targets, fractions=True),
        np.searchsorted(cdf, targets, side="right"),
    )
    assert calls == []
    # On a value of the normalised sum: NumPy's way, after equal values.
    hits = cdf[rng.randint(n_values - 1, size=3)]
    assert_array_equal(
        _kmeans._cumulative_search(values, hits, fractions=True),
        np.searchsorted(cdf, hits, side="right"),
    )
    assert calls == [1]


@pytest.mark.parametrize(
    "kind", ["ones", "uniform", "zeros", "spread", "few_rows", "float32"]
)
def test_weighted_choice_is_choice(kind):
    # k-means++'s first centre: RandomState.choice's index, and the
    # generator left where choice leaves it, over many draws.
    rng = np.random.RandomState(0)
    n_samples = 5_000 if kind == "few_rows" else 40_000
    weights = {
        "ones": np.ones(n_samples),
        "uniform": rng.uniform(0.1, 3, n_samples),
        "zeros": rng.uniform(size=n_samples) * (rng.uniform(size=n_samples) < 0.3),
        "spread": 10.0 ** rng.uniform(-8, 8, n_samples),
        "few_rows": rng.uniform(0.1, 3, n_samples),
        "float32": rng.uniform(0.1, 3, n_samples).astype(np.float32),
    }[kind]
    for seed in range(40):
        ours, theirs = np.random.RandomState(seed), np.random.RandomState(seed)
        index = _kmeans._weighted_choice(ours, weights)
        assert index == theirs.choice(n_samples, p=weights / weights.sum())
        _assert_same_state(ours, theirs)


def test_weighted_choice_rejects_as_choice():
    # Weights choice rejects are left to it: the same error.
    weights = np.ones(40_000)
    weights[7] = -1.0
    with pytest.raises(ValueError, match="probabilities are not non-negative"):
        _kmeans._weighted_choice(np.random.RandomState(0), weights)
    with (
        np.errstate(invalid="ignore"),
        pytest.raises(ValueError, match="probabilities contain NaN"),
    ):
        _kmeans._weighted_choice(np.random.RandomState(0), np.zeros(40_000))


def test_cumulative_search_where_roundings_differ():
    # After 2^53 NumPy's running sum cannot add 1 (it stays at 2^53), while
    # the blocks' sums add their ones first: positions the blocked sums
    # would put elsewhere must be decided by NumPy's cumulative sum.
    values = np.ones(20_000)
    values[0] = 2.0**53
    targets = np.array([2.0**53 + 1000, 2.0**53 - 1, 2.0**53 + 19_000])
    assert_array_equal(
        _kmeans._cumulative_search(values, targets),
        np.searchsorted(np.cumsum(values), targets),
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_large_kmeans_plusplus_is_sklearns(weighted, monkeypatch):
    # Above _SEARCH_ROWS_PER_DRAW rows a draw (the blocked search) and
    # _BUFFERED_DISTANCES; unit weights (no products with them) and others.
    searches = []
    search = _kmeans._cumulative_search

    def spy(values, targets, **kwargs):
        searches.append(len(values))
        return search(values, targets, **kwargs)

    monkeypatch.setattr(_kmeans, "_cumulative_search", spy)
    rng = np.random.RandomState(3)
    X, _ = make_blobs(30_000, n_features=5, centers=12, random_state=3)
    X -= X.mean(axis=0)
    sample_weight = rng.uniform(0.1, 3, size=len(X)) if weighted else np.ones(len(X))
    norms = row_norms(X, squared=True)
    rs_sk, rs_ours = np.random.RandomState(0), np.random.RandomState(0)
    centers_sk, indices_sk = _kmeans_plusplus(
        X, 12, x_squared_norms=norms, sample_weight=sample_weight, random_state=rs_sk
    )
    centers, indices = _kmeans.kmeans_plusplus(X, 12, norms, sample_weight, rs_ours)
    # (The first centre's draw too: see _weighted_choice.)
    assert searches == [len(X)] * 12
    assert_array_equal(indices, indices_sk)
    assert_array_equal(centers, centers_sk)
    _assert_same_state(rs_sk, rs_ours)


@pytest.mark.parametrize("norms", ["none", "float32", "float64"])
@pytest.mark.parametrize("n_samples", [50, 2_999, 12_345])
@pytest.mark.parametrize("upcast_once", [True, False])
def test_float32_kmeans_plusplus_is_sklearns(
    norms, n_samples, upcast_once, monkeypatch
):
    # float32 data: scikit-learn computes each candidate's distances on
    # float64 copies of batches of rows (several batches from a few thousand
    # rows), with float64 norms if given and recomputed otherwise; ours are
    # the same seeds to the last bit, and leave the generator where it does,
    # whether the rows are converted once for all steps (up to
    # _UPCAST_ROWS_VALUES values) or batch by batch at every step.
    if not upcast_once:
        monkeypatch.setattr(_kmeans, "_UPCAST_ROWS_VALUES", 0)
    rng = np.random.RandomState(n_samples)
    X = (rng.normal(size=(n_samples, 7)) * [1, 10, 100, 1e3, 0.1, 1, 5] + 50).astype(
        np.float32
    )
    sample_weight = rng.uniform(0.5, 2, size=n_samples).astype(np.float32)
    x_norms = {
        "none": None,
        "float32": row_norms(X, squared=True),
        "float64": row_norms(X.astype(np.float64), squared=True),
    }[norms]
    for seed in range(3):
        rs_sk, rs_ours = np.random.RandomState(seed), np.random.RandomState(seed)
        centers_sk, indices_sk = _kmeans_plusplus(
            X,
            9,
            x_squared_norms=x_norms,
            sample_weight=sample_weight,
            random_state=rs_sk,
        )
        centers, indices = _kmeans.kmeans_plusplus(
            X, 9, x_norms, sample_weight, rs_ours
        )
        assert_array_equal(indices, indices_sk)
        assert_array_equal(centers, centers_sk)
        assert centers.dtype == np.float32
        _assert_same_state(rs_sk, rs_ours)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3), (5, 40), (3_000, 20), (20_000, 2)])
@pytest.mark.parametrize("block", [None, 7])
def test_candidate_distances_are_sklearns(dtype, shape, block, monkeypatch):
    # Each k-means++ step's distances, bit for bit: scikit-learn's
    # _euclidean_distances (float32 on float64 copies of its batches); for
    # float64 also block by block (block=7: many blocks and a shorter last
    # one), into a given array and with k-means++'s minima.
    from sklearn.metrics.pairwise import _euclidean_distances

    if block is not None:
        monkeypatch.setattr(_kmeans, "_DISTANCE_BLOCK", block)
    rng = np.random.RandomState(shape[0])
    X = (rng.normal(size=shape) * 10.0 ** rng.uniform(-2, 3, size=shape[1]) + 7).astype(
        dtype
    )
    candidates = X[rng.randint(shape[0], size=4)]
    norms = row_norms(X.astype(np.float64), squared=True)
    expected = _euclidean_distances(candidates, X, Y_norm_squared=norms, squared=True)
    if dtype == np.float64:
        ours = _kmeans._candidate_distances(candidates, X, norms.reshape(1, -1))
        closest = expected[0] * rng.uniform(0.5, 1.5, size=shape[0])
        out = np.full_like(expected, np.nan)
        minima = _kmeans._candidate_distances(
            candidates, X, norms.reshape(1, -1), out=out, closest=closest
        )
        assert minima is out
        assert_array_equal(minima, np.minimum(closest, expected))
    else:
        ours = _kmeans._candidate_distances_upcast(candidates, X, norms.reshape(1, -1))
        assert_array_equal(
            _kmeans._candidate_distances_upcast(candidates, X),
            _euclidean_distances(candidates, X, squared=True),
        )
    assert ours.dtype == expected.dtype
    assert_array_equal(ours, expected)


def _average_centers_loop(centers, weights):
    """scikit-learn's ``_average_centers``, its loop written out."""
    argmax = np.argmax(weights)
    for j in range(centers.shape[0]):
        if weights[j] > 0:
            centers[j] *= centers.dtype.type(1.0 / float(weights[j]))
        else:
            centers[j] = centers[argmax]


def _center_shift_loop(centers_old, centers_new):
    """scikit-learn's ``_center_shift``: groups of four, then the rest."""
    sq = (centers_new - centers_old) ** 2
    n4 = sq.shape[1] // 4
    result = np.zeros(sq.shape[0], dtype=sq.dtype)
    for g in range(n4):
        group = sq[:, 4 * g] + sq[:, 4 * g + 1]
        group += sq[:, 4 * g + 2]
        group += sq[:, 4 * g + 3]
        result += group
    for k in range(4 * n4, sq.shape[1]):
        result += sq[:, k]
    return np.sqrt(result)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(40))
def test_centre_updates_are_the_kernels_arithmetic(dtype, seed):
    # The vectorised centre averaging and shift add and round as the Cython
    # kernel's loops do, bit for bit, empty clusters (before and after the
    # biggest) included.
    rng = np.random.RandomState(seed)
    n_clusters, n_features = rng.randint(1, 20), rng.randint(1, 40)
    sums = rng.normal(size=(n_clusters, n_features)) * 10.0 ** rng.uniform(-3, 3)
    sums = sums.astype(dtype)
    weights = rng.uniform(0.1, 50, size=n_clusters).astype(dtype)
    if seed % 3 == 0:
        weights[rng.randint(n_clusters, size=rng.randint(1, n_clusters + 1))] = 0
        weights[rng.randint(n_clusters)] = 7
    expected, centers = sums.copy(), sums.copy()
    _average_centers_loop(expected, weights)
    _kmeans._average_centers(centers, weights)
    assert_array_equal(centers, expected)

    moved = (sums + rng.normal(size=sums.shape) * 10.0 ** rng.uniform(-8, 0)).astype(
        dtype
    )
    assert_array_equal(
        _kmeans._center_shift(sums, moved), _center_shift_loop(sums, moved)
    )


def test_bounds_only_where_they_pay(monkeypatch):
    # Fewer than 8,192 rows keep the kernel, however costly the distances;
    # more take the bounds from n_features x n_clusters >= 256 (same labels
    # either way, see test_same_as_sklearn_kmeans).
    made = []
    labeller = _kmeans._BoundedLabeller

    def spy(X, sample_weight, bounded=True, **kwargs):
        made.append(bounded)
        return labeller(X, sample_weight, bounded=bounded, **kwargs)

    monkeypatch.setattr(_kmeans, "_BoundedLabeller", spy)
    rng = np.random.RandomState(0)
    for n_samples, n_features, n_clusters, bounded in [
        (3000, 16, 16, False),
        (3000, 32, 32, False),
        (8191, 64, 64, False),
        (9000, 16, 16, True),
        (9000, 8, 16, False),
    ]:
        X = rng.normal(size=(n_samples, n_features))
        _kmeans.kmeans_lloyd(X, n_clusters, None, np.random.RandomState(0))
        assert made[-1] is bounded


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_features", [1, 5])
def test_incremental_block_sums_are_the_full_products(dtype, weighted, n_features):
    # Summing again only the clusters that gained or lost rows gives every
    # cluster's sum to the last bit, whether one row moves, rows move
    # between a few clusters, a cluster empties, or rows move between most
    # of them (a full product).
    rng = np.random.RandomState(0)
    n_samples, n_clusters = 30_000, 12
    scales = 10.0 ** rng.uniform(-3, 3, n_features)
    X = (rng.normal(size=(n_samples, n_features)) * scales).astype(dtype)
    weights = rng.uniform(0.1, 3, n_samples) if weighted else np.ones(n_samples)
    weights = weights.astype(dtype)
    block = slice(1_000, 21_000)
    incremental = _kmeans._BlockSums(X, weights, block, n_clusters, incremental=True)
    labels = rng.randint(n_clusters, size=n_samples).astype(np.int32)
    updated = []
    original = _kmeans._BlockSums._update

    def spy(self, new, touched, *args):
        updated.append(np.count_nonzero(touched))
        return original(self, new, touched, *args)

    _kmeans._BlockSums._update = spy
    try:
        for step in range(12):
            if step % 4 == 1:
                labels[rng.randint(n_samples)] = rng.randint(n_clusters)
            elif step % 4 == 2:
                pair = rng.choice(n_clusters, 2, replace=False)
                rows = np.flatnonzero(np.isin(labels, pair))
                fraction = 1.0 if step == 6 else 0.1
                labels[rows[rng.uniform(size=rows.size) < fraction]] = pair[0]
            elif step % 4 == 3:
                labels[rng.uniform(size=n_samples) < 0.3] = rng.randint(n_clusters)
            sums, totals = incremental(labels)
            expected = _kmeans._BlockSums(X, weights, block, n_clusters)(labels)
            assert_array_equal(sums, expected[0])
            assert_array_equal(totals, expected[1])
    finally:
        _kmeans._BlockSums._update = original
    assert updated and max(updated) <= n_clusters // 2


def test_first_minima_is_argmax_of_equality():
    rng = np.random.RandomState(0)
    distances = rng.randint(0, 4, size=(7, 5000)).astype(float)
    distances[:, 3] = np.nan
    distances[2, 4] = np.nan
    nearest = distances.min(axis=0)
    expected = np.equal(distances, nearest).argmax(axis=0)
    labels = _kmeans._first_minima(distances, nearest)
    assert labels.dtype == np.int32
    assert_array_equal(labels, expected)
    # Most columns have ties here: those with one minimum too.
    single = np.equal(distances, nearest).sum(axis=0) == 1
    assert 0 < single.mean() < 1
