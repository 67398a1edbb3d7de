"""mclust's model-based agglomeration (``init_params="mclust"``).

The fixture under ``data/`` is R's ``hc()`` and ``hclass()`` output on iris
and wine; ``data/mclust_hc.R`` is the script that produced it (R is not
needed to run these tests).
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from sklearn_em import BernoulliMixtureIC, GaussianMixtureEM, GaussianMixtureIC
from sklearn_em.mixture import _hierarchical, _selection
from sklearn_em.mixture._hierarchical import _hc_cut, _hc_cuts, _hc_vvv, _svd_transform
from sklearn_em.mixture._selection import (
    _agglomeration_subset,
    _gaussian_initial_parameters,
    _mclust_partitions,
    _partition_statistics,
    _ward_partitions,
)

DATA = Path(__file__).parent / "data"
LOADERS = {"iris": load_iris, "wine": load_wine}
FOUR_TYPES = ["full", "tied", "diag", "spherical"]


def _fixture(name):
    pairs = np.loadtxt(DATA / f"{name}_hc_pairs.csv", delimiter=",", dtype=int)
    hclass = np.loadtxt(DATA / f"{name}_hclass.csv", delimiter=",", dtype=int)
    return pairs - 1, hclass - 1


def _same_partition(a, b):
    """Whether two labelings define the same partition."""
    return len(set(zip(a, b))) == len(np.unique(a)) == len(np.unique(b))


# ----------------------------------------------------------------------
# Against R's mclust


def test_merges_equal_mclust_hc_on_wine():
    """Every merge of hc(wine, "VVV", use="SVD"), in order."""
    pairs, _ = _fixture("wine")
    merges, costs = _hc_vvv(_svd_transform(load_wine().data))
    assert_array_equal(merges, pairs)
    assert np.all(np.isfinite(costs))


@pytest.mark.parametrize("name", ["iris", "wine"])
def test_cuts_equal_mclust_hclass(name):
    """hclass(hc(X), K) for K = 1..15, labels numbered alike.

    iris has tied distances (its values have one decimal), which mclust and
    we take in different orders: some merges come in another order, but the
    partitions at K <= 15 are the same.
    """
    pairs, hclass = _fixture(name)
    merges, _ = _hc_vvv(_svd_transform(LOADERS[name]().data))
    for n_clusters in range(1, 16):
        labels = _hc_cut(merges, n_clusters)
        assert_array_equal(labels, hclass[:, n_clusters - 1])
        assert_array_equal(_hc_cut(pairs, n_clusters), labels)


def test_mclust_start_reaches_mclust_on_breast_cancer():
    """The diagnosis of issue #14: from hclass(hc(X), 3), our EM reaches
    (and passes) mclust's VVV K=3 BIC on standardised breast cancer
    (mclust 6.0.0: BIC -4949.541), where the Ward start ends above 6,000."""
    X = StandardScaler().fit_transform(load_breast_cancer().data)
    search = GaussianMixtureIC(
        [3], covariance_type="full", init_params="mclust", random_state=0
    ).fit(X)
    assert search.criterion_ < 4949.541
    ward = GaussianMixtureIC(
        [3], covariance_type="full", init_params="ward", random_state=0
    ).fit(X)
    assert ward.criterion_ > 6000


def test_wine_search_is_at_least_mclust():
    """Mclust(scale(wine), G=1:15, c("VVV","EEE","VVI","VII")) selects 7 EEE
    with BIC -5509.72382 (mclust 6.0.0); 'mclust' alone, compared at tol,
    selects the same model with the same BIC, and the default, refined to
    refine_tol, does better."""
    X = StandardScaler().fit_transform(load_wine().data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = GaussianMixtureIC(
            15,
            covariance_type=FOUR_TYPES,
            init_params="mclust",
            refine_tol=None,
            random_state=0,
        ).fit(X)
        default = GaussianMixtureIC(15, covariance_type=FOUR_TYPES, random_state=0)
        default.fit(X)
    assert alone.best_params_ == {"n_components": 7, "covariance_type": "tied"}
    assert_allclose(alone.criterion_, 5509.72382, atol=1e-4)
    assert default.criterion_ < 5509.72382 - 0.01


# ----------------------------------------------------------------------
# The transform and the tree


def test_svd_transform_is_mclusts():
    """X_std V diag(s)^-1/2 (R's scale, n - 1 denominator), constant
    columns dropped."""
    rng = np.random.RandomState(0)
    X = rng.randn(50, 4) @ rng.randn(4, 4) + 3
    X = np.column_stack([X, np.full(50, 2.0)])
    Z = _svd_transform(X)
    standardised = (X[:, :4] - X[:, :4].mean(0)) / X[:, :4].std(0, ddof=1)
    _, s, Vt = np.linalg.svd(standardised, full_matrices=False)
    expected = standardised @ Vt.T / np.sqrt(s)
    assert Z.shape == (50, 4)
    # the same up to the signs of the singular vectors
    assert_allclose(np.abs(Z), np.abs(expected), atol=1e-10)
    assert_allclose(Z.T @ Z, np.diag(s), atol=1e-9)


def test_svd_transform_drops_null_directions():
    rng = np.random.RandomState(0)
    X = rng.randn(30, 3)
    X = np.column_stack([X, X[:, 0] + X[:, 1]])
    assert _svd_transform(X).shape == (30, 3)
    assert _svd_transform(np.ones((5, 2))).shape == (5, 0)


@pytest.mark.parametrize("n_dims", [1, 2, 5])
def test_cuts_have_exactly_k_labels(n_dims):
    X = np.random.RandomState(n_dims).randn(80, n_dims)
    merges, costs = _hc_vvv(X)
    assert merges.shape == (79, 2)
    assert np.all(merges[:, 0] < merges[:, 1])
    # every name is merged away once, the first row never
    assert_array_equal(np.sort(merges[:, 1]), np.arange(1, 80))
    for n_clusters in [1, 2, 7, 40, 80]:
        labels = _hc_cut(merges, n_clusters)
        assert_array_equal(np.unique(labels), np.arange(n_clusters))
        # numbered in the order of their first row (hclass)
        _, first = np.unique(labels, return_index=True)
        assert np.all(np.diff(first) > 0)
    # nested partitions
    coarse, fine = _hc_cut(merges, 3), _hc_cut(merges, 9)
    assert all(len(np.unique(coarse[fine == k])) == 1 for k in range(9))


def test_tree_does_not_depend_on_row_order():
    """Without tied distances, the same clusters merge whatever the order."""
    X = np.random.RandomState(0).randn(120, 3)
    order = np.random.RandomState(1).permutation(120)
    merges, costs = _hc_vvv(_svd_transform(X))
    merges_permuted, costs_permuted = _hc_vvv(_svd_transform(X[order]))
    assert_allclose(costs_permuted, costs, rtol=1e-8, atol=1e-10)
    for n_clusters in [2, 5, 30]:
        labels = _hc_cut(merges, n_clusters)
        permuted = _hc_cut(merges_permuted, n_clusters)
        assert _same_partition(labels[order], permuted)


def test_tree_does_not_depend_on_column_scale_or_shift():
    """The SVD transform standardises the columns first."""
    X = np.random.RandomState(0).randn(60, 3)
    merges, _ = _hc_vvv(_svd_transform(X))
    scaled, _ = _hc_vvv(_svd_transform(X * [1.0, 100.0, 0.01] + [5, -3, 0]))
    assert_array_equal(scaled, merges)


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2 rows"):
        _hc_vvv(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        _svd_transform(np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        _hc_vvv(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    with pytest.raises(ValueError, match="finite"):
        _svd_transform(np.array([[0.0, np.inf], [1.0, 2.0]]))
    merges, _ = _hc_vvv(np.random.RandomState(0).randn(10, 2))
    for bad in [0, 11]:
        with pytest.raises(ValueError, match="n_clusters must be between 1 and 10"):
            _hc_cut(merges, bad)


@pytest.mark.parametrize("n_dims", [4, 6, 13])
def test_trace_phase_is_the_general_loop(monkeypatch, n_dims):
    """The first merges, while no determinant counts, take the general loop's
    steps with fewer calls: the same merges and costs to the last bit (tied
    rows included), and the phase hands over at the first merge after which
    two clusters could together exceed n_dims rows."""
    X = np.random.RandomState(n_dims).randn(90, n_dims)
    X[30:40] = X[:10]  # exact ties
    # On this scale a determinant, once it counts, outweighs the trace.
    Z = 100 * X
    steps = []
    trace_phase = _hierarchical._trace_phase
    monkeypatch.setattr(
        _hierarchical,
        "_trace_phase",
        lambda *args: steps.append(trace_phase(*args)) or steps[-1],
    )
    merges, costs = _hc_vvv(Z)
    monkeypatch.setattr(_hierarchical, "_trace_phase", lambda *args: 0)
    expected_merges, expected_costs = _hc_vvv(Z)
    assert_array_equal(merges, expected_merges)
    assert_array_equal(costs, expected_costs)
    # Where the phase ended: the first merge into a cluster of n rows with
    # n + (the largest cluster's rows) > n_dims.
    sizes, largest, handover = np.ones(90), 1.0, None
    for step, (a, b) in enumerate(merges):
        merged = sizes[a] + sizes[b]
        largest = max(largest, merged)
        if merged + largest > n_dims:
            handover = step
            break
        sizes[a] = merged
    assert steps == [handover]
    assert handover > 5


def test_identical_rows():
    """Identical rows merge first; all-identical data still give a tree."""
    X = np.random.RandomState(0).randn(20, 3)
    X[7] = X[3]
    merges, costs = _hc_vvv(_svd_transform(X))
    assert_array_equal(merges[0], [3, 7])
    merges, _ = _hc_vvv(_svd_transform(np.ones((6, 2))))
    assert_array_equal(np.unique(_hc_cut(merges, 4)), np.arange(4))


# ----------------------------------------------------------------------
# In the search


def test_partitions_of_a_subset():
    """Subset rows keep their cut; the others join their most probable
    cluster; every K has exactly K labels."""
    X, y = make_blobs(500, n_features=3, centers=3, random_state=2)
    grid = np.array([1, 3, 6])
    subset = _agglomeration_subset(500, None, 100, 6, np.random.RandomState(0))
    partitions = _mclust_partitions(X, grid, subset, 1e-6)
    assert sorted(partitions) == [1, 3, 6]
    for n_components, labels in partitions.items():
        assert labels.shape == (500,)
        assert_array_equal(np.unique(labels), np.arange(n_components))
    merges, _ = _hc_vvv(_svd_transform(X[subset]))
    assert _same_partition(partitions[3][subset], _hc_cut(merges, 3))
    assert adjusted_rand_score(y, partitions[3]) > 0.95


def test_mclust_start_is_the_partition_m_step():
    """init_params='mclust' starts every candidate from the hclass cut."""
    X = StandardScaler().fit_transform(load_wine().data)
    _, hclass = _fixture("wine")
    search = GaussianMixtureIC(
        [4],
        covariance_type="diag",
        init_params="mclust",
        refine_tol=None,
        random_state=0,
    ).fit(X)
    stats = _partition_statistics(X, None, hclass[:, 3], 4, True)
    init = _gaussian_initial_parameters(*stats, "diag", 1e-6)
    direct = GaussianMixtureEM(4, covariance_type="diag", **init).fit(X)
    assert_allclose(search.lower_bound_, direct.lower_bound_, rtol=1e-10)


@pytest.mark.parametrize("init_params", ["mclust", "ward+mclust"])
def test_integer_weights_equal_repetition(init_params):
    """As the Ward path: the agglomeration of the repeated rows."""
    X, _ = make_blobs(120, centers=3, cluster_std=0.8, random_state=0)
    w = np.random.RandomState(0).randint(1, 4, size=120)
    search = GaussianMixtureIC(4, init_params=init_params, random_state=0)
    weighted = search.fit(X, sample_weight=w).results_
    repeated = GaussianMixtureIC(4, init_params=init_params, random_state=0)
    repeated = repeated.fit(np.repeat(X, w, axis=0)).results_
    for key in ["bic", "log_likelihood"]:
        assert_allclose(weighted[key], repeated[key], rtol=1e-8)


def test_weighted_subset_as_ward():
    """Varying weights on more rows than the subset: the same draw of rows
    for both agglomerations, with probability proportional to the weights."""
    X, _ = make_blobs(400, centers=3, random_state=0)
    w = np.random.RandomState(0).rand(400) + 0.5
    grid = np.array([2, 3])
    subset = _agglomeration_subset(400, w, 100, 3, np.random.RandomState(0))
    ward = _ward_partitions(X, w, grid, 100, np.random.RandomState(0))
    assert_array_equal(_ward_partitions(X, None, grid, None, None, subset)[3], ward[3])
    assert len(subset) == 100
    search = GaussianMixtureIC(
        3, init_params="mclust", ward_max_samples=100, random_state=0
    ).fit(X, sample_weight=w)
    assert search.n_components_ == 3


@pytest.mark.parametrize("threaded", [False, True])
def test_combined_partitions_draw_ward_first(monkeypatch, threaded):
    """'ward+mclust': Ward's partitions are init_params='ward''s and
    mclust's are init_params='mclust''s from the next draw of rows, whether
    Ward's run on another thread (large data) or not."""
    X, _ = make_blobs(3000, n_features=3, centers=4, random_state=0)
    monkeypatch.setattr(_selection, "_PAIRED_VALUES", 1 if threaded else 2**60)
    monkeypatch.setattr(_selection, "n_threads", lambda n_jobs: 2)
    executors = []
    executor = _selection.ThreadPoolExecutor

    def spy(*args, **kwargs):
        executors.append(kwargs.get("thread_name_prefix"))
        return executor(*args, **kwargs)

    monkeypatch.setattr(_selection, "ThreadPoolExecutor", spy)
    grid = np.array([1, 2, 4, 6])
    kwargs = dict(ward_max_samples=500, random_state=0)

    def partitions(init_params, random_state):
        search = GaussianMixtureIC(6, init_params=init_params, **kwargs)
        return search._shared_partitions(X, None, grid, random_state)

    both = partitions("ward+mclust", np.random.RandomState(0))
    ward = partitions("ward", np.random.RandomState(0))
    rng = np.random.RandomState(0)
    _agglomeration_subset(3000, None, 500, 6, rng)  # Ward's draw
    mclust = partitions("mclust", rng)
    for k in grid:
        expected = [ward[k][0]]
        if not np.array_equal(ward[k][0], mclust[k][0]):
            expected.append(mclust[k][0])
        assert len(both[k]) == len(expected)
        for labels, reference in zip(both[k], expected):
            assert_array_equal(labels, reference)
    assert any(len(both[k]) == 2 for k in grid)
    assert executors == (["sklearn_em_ward"] if threaded else [])


def test_combined_start_is_never_worse_than_ward():
    """With n_init=2 'ward+mclust' fits every start of a candidate to
    convergence (no race) and keeps the best, and it draws the Ward subset
    first: every log-likelihood is at least that of Ward's start alone."""
    X, _ = make_blobs(3000, n_features=4, centers=5, cluster_std=2.0, random_state=3)
    kwargs = dict(covariance_type=FOUR_TYPES, ward_max_samples=300, random_state=0)
    ward = GaussianMixtureIC(6, init_params="ward", **kwargs).fit(X)
    both = GaussianMixtureIC(6, init_params="ward+mclust", n_init=2, **kwargs)
    both.fit(X)
    assert np.all(
        both.results_["log_likelihood"] >= ward.results_["log_likelihood"] - 1e-8
    )
    assert both.init_time_ > 0


def test_results_do_not_depend_on_row_order():
    X, _ = make_blobs(200, centers=3, cluster_std=1.5, random_state=5)
    order = np.random.RandomState(1).permutation(200)
    a = GaussianMixtureIC(4, init_params="mclust", random_state=0).fit(X)
    b = GaussianMixtureIC(4, init_params="mclust", random_state=0).fit(X[order])
    assert_allclose(a.results_["bic"], b.results_["bic"], rtol=1e-8)
    assert_allclose(a.means_, b.means_, rtol=1e-8)


def test_bad_init_params():
    X, _ = make_blobs(50, random_state=0)
    with pytest.raises(ValueError, match="init_params"):
        GaussianMixtureIC(3, init_params="hc").fit(X)
    # the VVV agglomeration is for Gaussian mixtures
    with pytest.raises(ValueError, match="init_params"):
        BernoulliMixtureIC(3, init_params="mclust").fit(X > 0)
    with pytest.raises(ValueError, match="ward_max_samples=2"):
        GaussianMixtureIC(3, init_params="mclust", ward_max_samples=2).fit(X)


def test_mclust_partitions_survive_singular_subset_covariances():
    # reg_covar=0 and a cluster exactly on a plane: the subset's M-step has
    # a singular covariance, whose precision fails the mixture's checks (a
    # ValueError, in half of such draws) or its inversion. The rows outside
    # the subset then join the nearest cluster mean, and the search goes on.
    rng = np.random.RandomState(0)
    plane = rng.normal(size=(200, 2))
    X = np.vstack(
        [
            np.column_stack([plane, plane @ rng.normal(size=2)]),
            rng.normal(size=(200, 3)) + 5,
        ]
    )
    search = GaussianMixtureIC(
        3,
        covariance_type=["full"],
        init_params="mclust",
        ward_max_samples=100,
        reg_covar=0.0,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X)
    assert len(search.results_["bic"]) == 3


def _brute_force_hc(Z):
    """Every step recomputes the exact cost of every pair and merges the
    cheapest: the agglomeration without bounds, caches or moved slots."""
    from sklearn_em.mixture._hierarchical import _pair_costs, _vvv_terms

    n_samples, n_dims = Z.shape
    centred = Z - Z.mean(axis=0)
    alpha = float((centred**2).sum()) / (n_samples * n_dims)
    counts = np.ones(n_samples)
    means = Z.astype(np.float64).copy()
    traces = np.zeros(n_samples)
    scatters = np.zeros((n_samples, n_dims, n_dims))
    terms = _vvv_terms(counts, traces, np.full(n_samples, -np.inf), n_dims, alpha)
    active = list(range(n_samples))
    merges = []
    for _ in range(n_samples - 1):
        a, b = np.array([(i, j) for i in active for j in active if i < j]).T
        costs = _pair_costs(a, b, counts, means, traces, scatters, terms, alpha)
        i, j = a[np.argmin(costs)], b[np.argmin(costs)]
        merges.append((i, j))
        n_i, n_j = counts[i], counts[j]
        diff = means[j] - means[i]
        coef = n_i * n_j / (n_i + n_j)
        scatters[i] += scatters[j] + coef * np.outer(diff, diff)
        traces[i] += traces[j] + coef * diff @ diff
        means[i] += diff * n_j / (n_i + n_j)
        counts[i] += n_j
        logdet = np.linalg.slogdet(scatters[i])[1] if counts[i] > n_dims else -np.inf
        terms[i] = _vvv_terms(counts[[i]], traces[[i]], [logdet], n_dims, alpha)[0]
        active.remove(j)
    return np.array(merges)


@pytest.mark.parametrize("n_dims", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(6))
def test_tree_equals_brute_force_agglomeration(n_dims, seed):
    """The bounds, the cached costs and the slots the active clusters are
    kept in change nothing: every merge is the cheapest pair's. (A lower
    bound once became a cluster's best merge: 8 of 160 such trees differed,
    among them seed 2 in 3-D here.)"""
    rng = np.random.RandomState(seed)
    X = rng.randn(40, n_dims) * rng.uniform(0.3, 3, n_dims)
    merges, _ = _hc_vvv(X)
    expected = _brute_force_hc(X)
    # The same partition after every merge.
    for n_clusters in range(1, 41):
        labels = _hc_cut(merges, n_clusters)
        assert _same_partition(labels, _hc_cut(expected, n_clusters))


@pytest.mark.parametrize("seed", range(4))
def test_cuts_at_every_k_from_one_pass(seed):
    # _hc_cuts labels every K of a grid (any order, repeats) as _hc_cut's
    # definition does: each row numbered by its cluster's smallest row after
    # the first n - K merges, found here by a union-find of its own.
    rng = np.random.RandomState(seed)
    n_samples = 50
    merges, _ = _hc_vvv(rng.randn(n_samples, 3))
    grid = list(rng.permutation(np.arange(1, n_samples + 1))[:20]) + [1, 1]
    cuts = _hc_cuts(merges, grid)
    assert set(cuts) == set(grid)
    for n_clusters in set(grid):
        root = list(range(n_samples))

        def find(row, root=root):
            while root[row] != row:
                row = root[row]
            return row

        for first, second in merges[: n_samples - n_clusters]:
            root[find(second)] = find(first)
        smallest = np.array([find(row) for row in range(n_samples)])
        assert_array_equal(
            cuts[n_clusters], np.unique(smallest, return_inverse=True)[1]
        )
        assert_array_equal(_hc_cut(merges, n_clusters), cuts[n_clusters])


def test_cluster_term_factor_is_the_cholesky_factor():
    # The merge costs take a cluster's factor from LAPACK's potrf directly:
    # SciPy's cholesky to the last bit (the same LAPACK), NumPy's up to
    # rounding (NumPy and SciPy ship their own OpenBLAS, whose kernels may
    # round differently: seen at 13 dimensions with OpenBLAS 0.3.31 and
    # 0.3.30 on SkylakeX), None where the scatter is singular or
    # ill-conditioned (its log-determinant then from slogdet).
    from scipy import linalg

    rng = np.random.default_rng(0)
    for n_dims in [2, 4, 13, 30]:
        for _ in range(20):
            rows = rng.normal(size=(n_dims + 5, n_dims))
            scatter = rows.T @ rows
            term, factor = _hierarchical._cluster_term(n_dims + 5.0, 3.0, scatter, 0.5)
            assert_array_equal(factor, linalg.cholesky(scatter, lower=True))
            assert_allclose(factor, np.linalg.cholesky(scatter), rtol=1e-12)
            logdet = 2 * np.log(np.diag(np.linalg.cholesky(scatter))).sum()
            expected = _hierarchical._vvv_terms(
                np.array([n_dims + 5.0]), 3.0, logdet, n_dims, 0.5
            )
            assert_allclose(term, expected[0], rtol=1e-14)
    singular = np.diag([1.0, 1.0, 0.0])
    term, factor = _hierarchical._cluster_term(10.0, 2.0, singular, 0.5)
    assert factor is None
    assert_allclose(term, 10 * np.log((2.0 + 0.5) / 10))
    flat = np.diag([1.0, 1.0, 1e-20])
    term, factor = _hierarchical._cluster_term(10.0, 2.0, flat, 0.5)
    assert factor is None
    expected = _hierarchical._vvv_terms(np.array([10.0]), 2.0, np.log(1e-20), 3, 0.5)
    assert_allclose(term, expected[0], rtol=1e-12)
