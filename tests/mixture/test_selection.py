"""GaussianMixtureIC and BernoulliMixtureIC: choosing K and the covariance structure."""

import warnings
from concurrent.futures import Future

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from scipy.cluster.hierarchy import cut_tree, linkage
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator_sparse_array

from sklearn_em import (
    BernoulliMixtureEM,
    BernoulliMixtureIC,
    GaussianMixtureEM,
    GaussianMixtureIC,
)
from sklearn_em.mixture import _selection
from sklearn_em.mixture._hierarchical import _hc_cut, _hc_cuts
from sklearn_em.mixture._selection import (
    COVARIANCE_TYPES,
    _ward_partitions,
)

FOUR_TYPES = ["full", "tied", "diag", "spherical"]


def _blobs(n_samples=300, centers=3, random_state=0):
    X, y = make_blobs(
        n_samples=n_samples,
        n_features=2,
        centers=centers,
        cluster_std=0.8,
        random_state=random_state,
    )
    return X, y


def _binary_data(n_samples=400, random_state=0):
    """Two Bernoulli prototypes over 12 features."""
    rng = np.random.RandomState(random_state)
    prototypes = np.array([[0.9] * 6 + [0.1] * 6, [0.1] * 6 + [0.9] * 6])
    y = rng.randint(2, size=n_samples)
    return (rng.rand(n_samples, 12) < prototypes[y]).astype(np.float64), y


def _log_entropy(resp):
    """-sum_n sum_k r_nk log r_nk, with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(resp > 0, resp * np.log(resp), 0).sum()


# ----------------------------------------------------------------------
# The table and the choice


def test_results_table_covers_every_candidate():
    pd = pytest.importorskip("pandas")
    X, _ = _blobs()
    search = GaussianMixtureIC(
        [1, 2, 4], covariance_type=["diag", "full"], random_state=0
    ).fit(X)
    table = pd.DataFrame(search.results_)
    assert len(table) == 6
    # in order of K, then of structure from the simplest
    assert table["n_components"].tolist() == [1, 1, 2, 2, 4, 4]
    assert table["covariance_type"].tolist() == ["diag", "full"] * 3
    for column in ["bic", "aic", "icl", "log_likelihood", "entropy", "fit_time"]:
        assert table[column].dtype == np.float64
    assert table["converged"].dtype == bool
    assert table["rank_bic"].min() == 1
    assert table["rank_bic"].iloc[search.best_index_] == 1
    assert sorted(table["rank_bic"]) == list(range(1, 7))
    assert (table["error"] == "").all()
    assert search.best_index_ == int(np.argmin(search.results_["bic"]))
    assert search.criterion_ == search.results_["bic"][search.best_index_]


@pytest.mark.parametrize("criterion", ["bic", "aic", "icl"])
def test_criteria_match_independent_computation(criterion):
    X, _ = _blobs()
    search = GaussianMixtureIC(
        4, covariance_type=["spherical", "full"], criterion=criterion, random_state=0
    ).fit(X)
    best = search.best_estimator_
    n = X.shape[0]
    log_likelihood = best.score_samples(X).sum()
    p = best._n_parameters()
    expected = {
        "bic": -2 * log_likelihood + p * np.log(n),
        "aic": -2 * log_likelihood + 2 * p,
        "icl": -2 * log_likelihood
        + p * np.log(n)
        + 2 * _log_entropy(best.predict_proba(X)),
    }
    i = search.best_index_
    assert_allclose(search.results_["log_likelihood"][i], log_likelihood, rtol=1e-10)
    for name, value in expected.items():
        assert_allclose(search.results_[name][i], value, rtol=1e-10)
    assert_allclose(search.results_["bic"][i], best.bic(X), rtol=1e-10)
    assert_allclose(search.results_["aic"][i], best.aic(X), rtol=1e-10)
    assert search.results_["n_parameters"][i] == p
    assert i == int(np.argmin(search.results_[criterion]))


def test_icl_penalises_overlap():
    """ICL - BIC is twice the entropy: zero for K=1, positive with overlap."""
    X, _ = _blobs(centers=[[0, 0], [2.5, 0]], random_state=1)
    search = GaussianMixtureIC(3, covariance_type="spherical", random_state=0).fit(X)
    gap = search.results_["icl"] - search.results_["bic"]
    assert_allclose(gap, 2 * search.results_["entropy"], rtol=1e-12)
    assert gap[0] == 0
    assert np.all(gap[1:] > 1)


def test_recovers_k_of_separated_blobs():
    X, y = _blobs(n_samples=600, centers=4, random_state=3)
    search = GaussianMixtureIC(8, random_state=0).fit(X)
    assert search.n_components_ == 4
    # the components are the blobs
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, search.predict(X)) > 0.95


@pytest.mark.parametrize(
    "covariance_type, make_covariance",
    [
        ("tied_diag", lambda rng, k: np.diag([0.2, 3.0, 1.0])),
        ("tied_spherical", lambda rng, k: 0.7 * np.eye(3)),
        ("spherical", lambda rng, k: (0.3 + k) * np.eye(3)),
        ("full", lambda rng, k: (A := rng.randn(3, 3)) @ A.T + 0.1 * np.eye(3)),
    ],
)
def test_recovers_covariance_structure(covariance_type, make_covariance):
    """BIC picks the structure the data were drawn from (and its K)."""
    rng = np.random.RandomState(0)
    means = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 8]])
    X = np.vstack(
        [
            rng.multivariate_normal(m, make_covariance(rng, k), 700)
            for k, m in enumerate(means)
        ]
    )
    search = GaussianMixtureIC(5, random_state=0).fit(X)
    assert search.best_params_ == {
        "n_components": 3,
        "covariance_type": covariance_type,
    }


# ----------------------------------------------------------------------
# The fitted selector is the chosen mixture


def test_behaves_as_the_selected_mixture():
    X, _ = _blobs()
    search = GaussianMixtureIC(5, random_state=0).fit(X)
    best = search.best_estimator_
    assert isinstance(best, GaussianMixtureEM)
    assert best.n_components == search.n_components_
    assert best.covariance_type == search.covariance_type_
    assert search.best_params_ == {
        "n_components": search.n_components_,
        "covariance_type": search.covariance_type_,
    }
    for attr in [
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
    ]:
        assert_array_equal(getattr(search, attr), getattr(best, attr))
    assert search.n_iter_ == best.n_iter_
    assert search.converged_ == best.converged_
    X_new = X[:20] + 0.1
    assert_array_equal(search.predict(X_new), best.predict(X_new))
    assert_allclose(search.predict_proba(X_new), best.predict_proba(X_new))
    assert_allclose(search.transform(X_new), best.predict_proba(X_new))
    assert_allclose(search.score_samples(X_new), best.score_samples(X_new))
    assert search.score(X_new) == pytest.approx(best.score(X_new))
    assert search.bic(X_new) == pytest.approx(best.bic(X_new))
    assert search.aic(X_new) == pytest.approx(best.aic(X_new))
    assert_array_equal(search.fit_predict(X), search.predict(X))
    X_sample, y_sample = search.sample(50)
    assert X_sample.shape == (50, 2)
    assert set(y_sample) <= set(range(search.n_components_))
    assert search.transform(X_new).shape == (20, search.n_components_)


def test_refitting_the_selected_mixture_reproduces_it():
    """best_estimator_ holds its initial parameters: a clone refits the same."""
    X, _ = _blobs()
    search = GaussianMixtureIC(4, random_state=0).fit(X)
    refit = clone(search.best_estimator_).fit(X)
    assert_allclose(refit.means_, search.means_, rtol=1e-10)
    assert_allclose(refit.covariances_, search.covariances_, rtol=1e-10)


def test_pipeline_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _blobs()
    frame = pd.DataFrame(X, columns=["a", "b"])
    pipe = make_pipeline(
        StandardScaler(), GaussianMixtureIC(4, random_state=0), LogisticRegression()
    )
    pipe.fit(frame, y)
    assert pipe.score(frame, y) > 0.95
    search = GaussianMixtureIC(4, random_state=0).set_output(transform="pandas")
    out = search.fit(frame).transform(frame)
    assert list(out.columns) == [
        f"gaussianmixtureic{k}" for k in range(search.n_components_)
    ]
    assert_array_equal(search.feature_names_in_, ["a", "b"])
    with pytest.raises(ValueError, match="feature names"):
        search.predict(pd.DataFrame(np.ones((2, 2)), columns=["a", "c"]))


def test_float32_preserved():
    X, _ = _blobs()
    search = GaussianMixtureIC(3, random_state=0).fit(X.astype(np.float32))
    assert search.means_.dtype == np.float32
    assert search.transform(X.astype(np.float32)).dtype == np.float32
    search64 = GaussianMixtureIC(3, random_state=0).fit(X)
    assert search.best_params_ == search64.best_params_
    assert_allclose(search.results_["bic"], search64.results_["bic"], rtol=1e-5)


# ----------------------------------------------------------------------
# Weights


def test_zero_weight_equals_removal():
    X, _ = _blobs()
    w = (np.arange(300) % 4 != 0).astype(float)
    weighted = GaussianMixtureIC(4, random_state=0).fit(X, sample_weight=w)
    removed = GaussianMixtureIC(4, random_state=0).fit(X[w > 0])
    for key in ["bic", "aic", "icl", "log_likelihood"]:
        assert_allclose(weighted.results_[key], removed.results_[key], rtol=1e-10)
    assert_allclose(weighted.means_, removed.means_, rtol=1e-10)


@pytest.mark.parametrize("estimator", [GaussianMixtureIC, BernoulliMixtureIC])
def test_integer_weights_equal_repetition(estimator):
    """N is the sum of the weights; the Ward tree is that of repeated rows."""
    if estimator is GaussianMixtureIC:
        X, _ = _blobs(n_samples=120)
    else:
        X, _ = _binary_data(n_samples=120)
    w = np.random.RandomState(0).randint(1, 4, size=X.shape[0])
    weighted = estimator(4, random_state=0).fit(X, sample_weight=w)
    repeated = estimator(4, random_state=0).fit(np.repeat(X, w, axis=0))
    for key in ["bic", "aic", "icl", "log_likelihood"]:
        assert_allclose(weighted.results_[key], repeated.results_[key], rtol=1e-8)
    assert weighted.best_params_ == repeated.best_params_
    assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), atol=1e-8)


def test_results_do_not_depend_on_row_order():
    X, _ = _blobs()
    order = np.random.RandomState(1).permutation(X.shape[0])
    a = GaussianMixtureIC(4, random_state=0).fit(X)
    b = GaussianMixtureIC(4, random_state=0).fit(X[order])
    assert_allclose(a.results_["bic"], b.results_["bic"], rtol=1e-8)
    assert_allclose(a.means_, b.means_, rtol=1e-8)


# ----------------------------------------------------------------------
# Sharing work across candidates


def test_cuts_at_every_k_match_scipy():
    # A Ward tree's merges, renamed by their clusters' smallest rows, cut as
    # mclust's trees are: scipy's partitions, numbered in the order of their
    # first row.
    X = np.random.RandomState(1).randn(70, 4)
    tree = linkage(X, method="ward")
    children = tree[:, :2].astype(np.intp)
    merges = _selection._merges_by_smallest_row(children)
    assert np.all(merges[:, 0] < merges[:, 1])
    grid = [3, 70, 1, 12, 2, 40]
    cuts = _hc_cuts(merges, grid)
    for n_clusters in grid:
        theirs = cut_tree(tree, n_clusters=n_clusters).ravel()
        assert len(set(zip(cuts[n_clusters], theirs))) == n_clusters
        assert len(np.unique(cuts[n_clusters])) == n_clusters
        # numbered by their first rows' order
        first_rows = np.unique(cuts[n_clusters], return_index=True)[1]
        assert np.all(np.diff(first_rows) > 0)


def test_cut_tree_matches_scipy():
    X = np.random.RandomState(0).randn(60, 3)
    tree = linkage(X, method="ward")
    merges = _selection._merges_by_smallest_row(tree[:, :2].astype(np.intp))
    for n_clusters in [1, 2, 5, 17, 60]:
        ours = _hc_cut(merges, n_clusters)
        theirs = cut_tree(tree, n_clusters=n_clusters).ravel()
        assert len(np.unique(ours)) == n_clusters
        # the same partition, whatever the numbering
        pairs = set(zip(ours, theirs))
        assert len(pairs) == n_clusters


def test_ward_partitions_on_a_subset():
    """Subset rows keep their Ward cluster; the others join the nearest mean."""
    X, y = _blobs(n_samples=500, centers=3, random_state=2)
    rng = np.random.RandomState(0)
    partitions = _ward_partitions(X, None, np.array([1, 3]), 50, rng)
    assert_array_equal(partitions[1], 0)
    labels = partitions[3]
    assert labels.shape == (500,)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, labels) > 0.95
    with pytest.raises(ValueError, match="ward_max_samples=2"):
        _ward_partitions(X, None, np.array([1, 3]), 2, rng)


def test_nested_starts_order_the_likelihoods():
    """With n_init=2 a structure also starts from the structures nested in it.

    EM from a point of the richer model can only increase the likelihood, so
    at every K the richer structure fits at least as well as those nested in
    it (independent fits do not guarantee this).
    """
    rng = np.random.RandomState(0)
    X = np.vstack(
        [rng.randn(150, 3) @ rng.randn(3, 3) + 4 * rng.randn(3) for _ in range(4)]
    )
    search = GaussianMixtureIC(6, n_init=2, random_state=0).fit(X)
    table = search.results_
    nested = {
        "spherical": ["tied_spherical"],
        "tied_diag": ["tied_spherical"],
        "diag": ["spherical", "tied_diag"],
        "tied": ["tied_diag"],
        "full": ["diag", "tied"],
    }
    for k in range(1, 7):
        ll = {
            t: table["log_likelihood"][
                (table["n_components"] == k) & (table["covariance_type"] == t)
            ][0]
            for t in COVARIANCE_TYPES
        }
        for richer, simpler in nested.items():
            for t in simpler:
                assert ll[richer] >= ll[t] - 1e-6 * abs(ll[t]), (k, richer, t)


def test_n_init_keeps_the_best_start():
    X, _ = _blobs(centers=5, random_state=4)
    one = GaussianMixtureIC(6, covariance_type="full", random_state=0).fit(X)
    three = GaussianMixtureIC(6, covariance_type="full", n_init=3, random_state=0)
    three.fit(X)
    assert np.all(
        three.results_["log_likelihood"] >= one.results_["log_likelihood"] - 1e-8
    )


def _refit_from(best, X, tol):
    """EM again from a fitted mixture's own parameters."""
    return GaussianMixtureEM(
        best.n_components,
        covariance_type=best.covariance_type,
        weights_init=best.weights_,
        means_init=best.means_,
        precisions_init=best.precisions_,
        tol=tol,
    ).fit(X)


def _two_starts(X, n_components):
    """Two different starts of a full-covariance mixture: means drawn from X."""
    rng = np.random.RandomState(3)
    return [
        {"means_init": X[rng.choice(len(X), n_components, replace=False)]}
        for _ in range(2)
    ]


def test_raced_start_finishes_as_an_uninterrupted_fit():
    X, _ = _blobs(n_samples=500, centers=4, random_state=2)
    start = _two_starts(X, 4)[0]
    kwargs = dict(
        covariance_type="full", tol=1e-6, max_iter=200, random_state=0, **start
    )
    whole = GaussianMixtureEM(4, **kwargs).fit(X)
    assert whole.n_iter_ > 5
    raced = GaussianMixtureEM(4, **{**kwargs, "max_iter": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        raced.fit(X)
    _selection._finish(raced, X, None, 200)
    assert raced.n_iter_ == whole.n_iter_
    assert raced.converged_ and raced.max_iter == 200 and not raced.warm_start
    assert_allclose(raced.lower_bounds_, whole.lower_bounds_, rtol=1e-12)
    assert_allclose(raced.means_, whole.means_, rtol=1e-12)
    assert_allclose(raced.covariances_, whole.covariances_, rtol=1e-12)


def test_race_fits_only_the_leader_to_convergence(monkeypatch):
    X, _ = _blobs(n_samples=500, centers=4, random_state=2)
    starts = _two_starts(X, 4)

    def make_estimator(**start):
        return GaussianMixtureEM(
            4, covariance_type="full", tol=1e-6, random_state=0, **start
        )

    # Which start leads after 3 iterations, and what each ends at.
    after_race, final = [], []
    for start in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            after_race.append(make_estimator(max_iter=3, **start).fit(X).lower_bound_)
        final.append(make_estimator(**start).fit(X))
    assert after_race[0] != after_race[1]
    leader = int(np.argmax(after_race))

    finished = []
    finish = _selection._finish
    monkeypatch.setattr(
        _selection,
        "_finish",
        lambda estimator, *args: finished.append(estimator) or finish(estimator, *args),
    )
    estimator, values = _selection._fit_one(
        make_estimator,
        [lambda start=start: start for start in starts],
        X,
        None,
        lambda estimator: estimator._log_prob_chunk_function(np.float64),
        race=3,
    )
    assert finished == [estimator]
    assert_allclose(estimator.means_, final[leader].means_, rtol=1e-10)
    assert values["n_iter"] == final[leader].n_iter_
    # Never below any start's log-likelihood after the race.
    assert values["log_likelihood"] >= max(after_race) * len(X)


def test_race_on_a_subsample_of_larger_data(monkeypatch):
    # Above _RACE_SAMPLES rows the starts race on a subsample drawn once per
    # search, and only the leader's EM runs on every row, from where its
    # race ended, to convergence.
    monkeypatch.setattr(_selection, "_RACE_SAMPLES", 200)
    X, _ = make_blobs(1500, n_features=3, centers=4, cluster_std=1.5, random_state=0)
    fits = []
    fit = GaussianMixtureEM._fit_validated

    def spy(self, X, sample_weight, **kwargs):
        fits.append((X.shape[0], self.max_iter))
        return fit(self, X, sample_weight, **kwargs)

    # (The candidates are fitted on the search's validated data.)
    monkeypatch.setattr(GaussianMixtureEM, "_fit_validated", spy)
    kwargs = dict(covariance_type=["diag", "full"], tol=1e-5, random_state=0)
    search = GaussianMixtureIC(4, **kwargs).fit(X)
    raced = [rows for rows, max_iter in fits if max_iter == _selection._RACE_ITER]
    on_all = [rows for rows, max_iter in fits if max_iter == search.max_iter]
    # Two starts (Ward's and mclust's partitions) race for most candidates.
    assert len(raced) > 8 and set(raced) == {200}
    assert on_all == [1500] * 8
    assert search.results_["converged"].all()
    assert _refit_from(search.best_estimator_, X, tol=1e-5).n_iter_ <= 2
    # The subsample is drawn up front: joblib's workers race on it too.
    monkeypatch.setattr(GaussianMixtureEM, "_fit_validated", fit)
    parallel = GaussianMixtureIC(4, n_jobs=2, **kwargs).fit(X)
    assert_allclose(parallel.results_["bic"], search.results_["bic"], rtol=1e-10)


class _FailsOnFewRows(GaussianMixtureEM):
    """A mixture whose fit fails on fewer than 100 rows, as a component left
    with too few rows of a subsample can."""

    def _fit_validated(self, X, sample_weight, **kwargs):
        if X.shape[0] < 100:
            raise ValueError("a component collapsed")
        return super()._fit_validated(X, sample_weight, **kwargs)


def test_race_falls_back_to_every_row_when_the_subsample_fails():
    X, _ = _blobs(n_samples=500, centers=4, random_state=2)
    estimator, values = _selection._fit_one(
        lambda **start: _FailsOnFewRows(4, random_state=0, **start),
        [lambda start=start: start for start in _two_starts(X, 4)],
        X,
        None,
        lambda estimator: estimator._log_prob_chunk_function(np.float64),
        race=3,
        race_rows=np.arange(0, 500, 10),
        resume=lambda estimator: None,
    )
    assert estimator is not None and values["error"] == ""
    assert values["converged"]


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data"])
def test_other_initialisations(init_params):
    """Every candidate initialised on its own finds what the shared tree finds."""
    X, _ = _blobs(n_samples=400, centers=3, random_state=7)
    search = GaussianMixtureIC(
        5, covariance_type=FOUR_TYPES, init_params=init_params, random_state=0
    ).fit(X)
    ward = GaussianMixtureIC(5, covariance_type=FOUR_TYPES, random_state=0).fit(X)
    assert search.init_time_ == 0
    assert (
        search.best_params_
        == ward.best_params_
        == {
            "n_components": 3,
            "covariance_type": "spherical",
        }
    )
    assert_allclose(search.criterion_, ward.criterion_, rtol=1e-6)


def test_parallel_equals_sequential():
    X, _ = _blobs()
    sequential = GaussianMixtureIC(4, covariance_type=FOUR_TYPES, random_state=0)
    parallel = clone(sequential).set_params(n_jobs=2)
    sequential.fit(X)
    parallel.fit(X)
    assert_allclose(parallel.results_["bic"], sequential.results_["bic"], rtol=1e-10)
    assert parallel.best_params_ == sequential.best_params_


class _InlineExecutor:
    """A ThreadPoolExecutor that runs each task when it is submitted."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def submit(self, function, *args, **kwargs):
        future = Future()
        future.set_result(function(*args, **kwargs))
        return future


def test_large_searches_fit_two_ks_at_a_time(monkeypatch):
    """Data too large for the lockstep (here 30,000 x 5): with n_jobs=None,
    two K's are fitted at a time, each on half the threads, the same fits
    as one after another on those threads; the candidates keep n_jobs=None."""
    X, _ = make_blobs(30_000, n_features=5, centers=3, random_state=0)
    # Two threads, whatever this machine has.
    monkeypatch.setattr(_selection, "n_threads", lambda n_jobs: 2)
    engine_jobs = set()
    quiet_fit = _selection._quiet_fit

    def spy(estimator, *args):
        engine_jobs.add(estimator.n_jobs)
        return quiet_fit(estimator, *args)

    monkeypatch.setattr(_selection, "_quiet_fit", spy)
    kwargs = dict(covariance_type=["full", "diag"], random_state=0)
    filters = list(warnings.filters)
    paired = GaussianMixtureIC([1, 2, 3, 4], **kwargs).fit(X)
    assert engine_jobs == {1}
    # The candidates' convergence warnings are silenced without touching
    # the process's filters (warnings.catch_warnings is not thread-safe).
    assert warnings.filters == filters
    assert paired.best_estimator_.n_jobs is None
    monkeypatch.setattr(_selection, "ThreadPoolExecutor", _InlineExecutor)
    engine_jobs.clear()
    one_by_one = GaussianMixtureIC([1, 2, 3, 4], **kwargs).fit(X)
    assert engine_jobs == {1}
    for key in ["bic", "log_likelihood", "entropy", "n_iter"]:
        assert_array_equal(paired.results_[key], one_by_one.results_[key])
    assert_array_equal(paired.means_, one_by_one.means_)
    # Below the size, or with n_jobs given, the engine's own threads.
    engine_jobs.clear()
    GaussianMixtureIC([1, 2], n_jobs=1, **kwargs).fit(X)
    GaussianMixtureIC([1, 2], **kwargs).fit(X[:20_000])
    assert engine_jobs == {None}


def test_every_candidate_is_fitted_to_convergence():
    X, _ = _blobs()
    # At this tol a start of the default 'ward+mclust' needs 222 iterations.
    search = GaussianMixtureIC(4, tol=1e-6, max_iter=500, random_state=0).fit(X)
    assert search.results_["converged"].all()
    # starting EM again from the selected solution barely moves it
    again = _refit_from(search.best_estimator_, X, tol=1e-6)
    assert again.n_iter_ <= 2
    assert_allclose(again.means_, search.best_estimator_.means_, atol=1e-3)


# ----------------------------------------------------------------------
# Failures and bad input


# ----------------------------------------------------------------------
# The selected candidate, refined to refine_tol


def _overlapping_blobs():
    """Three overlapping blobs: EM at tol=1e-3 stops short of its optimum."""
    X, _ = make_blobs(
        400, n_features=2, centers=[[0, 0], [3, 0], [1.5, 2.5]], random_state=0
    )
    return X


def test_selected_candidate_runs_on_to_refine_tol():
    X = _overlapping_blobs()
    kwargs = dict(covariance_type=["full", "diag"], random_state=0)
    compared = GaussianMixtureIC(4, refine_tol=None, **kwargs).fit(X)
    refined = GaussianMixtureIC(4, **kwargs).fit(X)
    i = refined.best_index_
    assert i == compared.best_index_
    assert_array_equal(refined.results_["rank_bic"], compared.results_["rank_bic"])
    # Only the selected candidate's row changes, and only for the better,
    # but for its convergence at tol.
    others = np.arange(len(refined.results_["bic"])) != i
    for key in ["bic", "aic", "log_likelihood", "n_iter", "converged"]:
        assert_array_equal(
            refined.results_[key][others], compared.results_[key][others]
        )
    assert refined.results_["converged"][i] == compared.results_["converged"][i]
    assert refined.n_iter_ > compared.n_iter_ + 10
    assert refined.results_["n_iter"][i] == refined.n_iter_
    assert refined.criterion_ < compared.criterion_ - 1
    assert refined.criterion_ == refined.results_["bic"][i]
    # The row describes the refined mixture.
    best = refined.best_estimator_
    assert best.tol == 1e-5 and compared.best_estimator_.tol == 1e-3
    assert_allclose(refined.results_["bic"][i], best.bic(X), rtol=1e-10)
    assert_allclose(
        refined.results_["log_likelihood"][i], best.score_samples(X).sum(), rtol=1e-10
    )
    assert_array_equal(refined.means_, best.means_)
    assert refined.converged_ and best.converged_
    # The fit that tol=refine_tol gives from the same start, uninterrupted.
    whole = clone(compared.best_estimator_).set_params(tol=1e-5).fit(X)
    assert whole.n_iter_ == best.n_iter_
    assert_allclose(whole.lower_bounds_, best.lower_bounds_, rtol=1e-12)
    assert_allclose(whole.means_, best.means_, rtol=1e-10)


@pytest.mark.parametrize("refine_tol", [None, 1e-3, 0.1])
def test_no_refinement_keeps_the_compared_fit(refine_tol):
    X = _overlapping_blobs()
    kwargs = dict(covariance_type=["full", "diag"], random_state=0)
    search = GaussianMixtureIC(3, refine_tol=refine_tol, **kwargs).fit(X)
    reference = GaussianMixtureIC(3, refine_tol=None, **kwargs).fit(X)
    assert search.best_estimator_.tol == 1e-3
    assert search.n_iter_ == reference.n_iter_
    assert_array_equal(search.results_["bic"], reference.results_["bic"])


def test_run_on_equals_an_uninterrupted_fit():
    X = _overlapping_blobs()
    start = _two_starts(X, 3)[0]
    kwargs = dict(covariance_type="full", max_iter=300, random_state=0, **start)
    for tol in [1e-3, 1e-2]:
        fitted = GaussianMixtureEM(3, tol=tol, **kwargs).fit(X)
        for new_tol in [1e-5, 1e-7]:
            ran = clone(fitted).fit(X)
            assert _selection._run_on(ran, X, None, new_tol)
            whole = GaussianMixtureEM(3, tol=new_tol, **kwargs).fit(X)
            assert ran.n_iter_ == whole.n_iter_ > fitted.n_iter_
            assert ran.converged_ and ran.tol == new_tol and not ran.warm_start
            assert_allclose(ran.lower_bounds_, whole.lower_bounds_, rtol=1e-12)
            assert_allclose(ran.means_, whole.means_, rtol=1e-12)
    # A fit whose last gain is below the new tol already stopped where the
    # uninterrupted one does: nothing runs.
    fitted = GaussianMixtureEM(3, tol=1e-3, **kwargs).fit(X)
    gain = abs(fitted.lower_bounds_[-1] - fitted.lower_bounds_[-2])
    assert not _selection._run_on(fitted, X, None, gain * 1.01)
    whole = GaussianMixtureEM(3, tol=gain * 1.01, **kwargs).fit(X)
    assert fitted.n_iter_ == whole.n_iter_ and fitted.converged_
    # Out of iterations: not converged at the new tol, as the whole fit.
    short = GaussianMixtureEM(3, tol=1e-3, **{**kwargs, "max_iter": 4})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        short.fit(X)
    assert not _selection._run_on(short, X, None, 1e-5)
    assert short.n_iter_ == 4 and not short.converged_


def test_refinement_that_worsens_the_criterion_is_not_kept(monkeypatch):
    # EM never lowers the likelihood, but ICL adds the responsibilities'
    # entropy, which it can raise: a refinement is kept only if it lowers
    # the criterion (here made worse on purpose).
    X = _overlapping_blobs()
    run_on = _selection._run_on

    def worse(estimator, *args):
        ran = run_on(estimator, *args)
        estimator.means_ = estimator.means_ + 1.0
        estimator.precisions_cholesky_ = estimator.precisions_cholesky_ * 2
        return ran

    kwargs = dict(covariance_type=["full", "diag"], random_state=0)
    reference = GaussianMixtureIC(4, refine_tol=None, **kwargs).fit(X)
    assert reference.n_components_ == 3
    monkeypatch.setattr(_selection, "_run_on", worse)
    search = GaussianMixtureIC(4, **kwargs).fit(X)
    assert search.best_estimator_.tol == 1e-3
    assert search.n_iter_ == reference.n_iter_
    assert search.criterion_ == reference.criterion_
    assert_array_equal(search.results_["bic"], reference.results_["bic"])
    assert_array_equal(search.means_, reference.means_)


def test_bernoulli_selected_candidate_is_refined():
    rng = np.random.RandomState(0)
    prototypes = np.array([[0.7] * 6 + [0.3] * 6, [0.3] * 6 + [0.7] * 6])
    X = (rng.rand(400, 12) < prototypes[rng.randint(2, size=400)]).astype(float)
    compared = BernoulliMixtureIC(4, refine_tol=None, random_state=0).fit(X)
    refined = BernoulliMixtureIC(4, random_state=0).fit(X)
    assert refined.n_components_ == compared.n_components_ == 2
    assert refined.best_estimator_.tol == 1e-5
    assert refined.n_iter_ > compared.n_iter_
    assert refined.criterion_ < compared.criterion_
    assert_allclose(refined.criterion_, refined.best_estimator_.bic(X), rtol=1e-10)


def test_more_components_than_samples_are_recorded_not_fitted():
    X, _ = _blobs(n_samples=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        search = GaussianMixtureIC([1, 2, 8], covariance_type="spherical").fit(X)
    errors = search.results_["error"]
    assert errors.tolist() == ["", "", "n_components > n_samples"]
    assert np.isnan(search.results_["bic"][2])
    assert search.results_["rank_bic"][2] == 3
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixtureIC([7, 8]).fit(X)


def test_collapsed_candidates_warn_and_are_skipped():
    # three distinct points, each repeated: more components collapse
    X = np.repeat([[0.0, 0.0], [5.0, 5.0], [0.0, 5.0]], 10, axis=0)
    search = GaussianMixtureIC(5, covariance_type="full", reg_covar=0.0)
    with pytest.warns(FitFailedWarning, match="failed to fit"):
        search.fit(X)
    failed = np.isnan(search.results_["bic"])
    assert failed.any() and not failed.all()
    assert all(search.results_["error"][failed] != "")
    assert not np.isnan(search.criterion_)


def test_warns_when_the_selected_candidate_did_not_converge():
    X, _ = _blobs()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        GaussianMixtureIC(3, max_iter=1, tol=0, random_state=0).fit(X)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_components": 0}, "n_components"),
        ({"n_components": []}, "non-empty"),
        ({"n_components": [1.5, 2]}, "integers"),
        ({"n_components": [[1, 2]]}, "1-D"),
        ({"n_components": [0, 2]}, ">= 1"),
        ({"covariance_type": "cubic"}, "covariance_type"),
        ({"covariance_type": ["full", "cubic"]}, "Unknown covariance_type"),
        ({"covariance_type": []}, "must not be empty"),
        ({"criterion": "mdl"}, "criterion"),
        ({"ward_max_samples": 0}, "ward_max_samples"),
        ({"n_init": 0}, "n_init"),
        ({"refine_tol": -1.0}, "refine_tol"),
    ],
)
def test_bad_parameters(params, message):
    X, _ = _blobs()
    with pytest.raises(ValueError, match=message):
        GaussianMixtureIC(**{"n_components": 3, **params}).fit(X)


def test_bad_sample_weight():
    X, _ = _blobs()
    with pytest.raises(ValueError, match="Negative"):
        GaussianMixtureIC(3).fit(X, sample_weight=-np.ones(300))
    with pytest.raises(ValueError, match="sample_weight.shape"):
        GaussianMixtureIC(3).fit(X, sample_weight=np.ones(3))


def test_bad_X():
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixtureIC(2).fit([[0.0, np.nan], [1.0, 2.0], [3.0, 1.0]])
    with pytest.raises(ValueError, match="minimum of 2"):
        GaussianMixtureIC(1).fit([[0.0, 1.0]])


def test_inputs_never_modified():
    X, _ = _blobs()
    w = np.random.RandomState(0).rand(300)
    X0, w0 = X.copy(), w.copy()
    search = GaussianMixtureIC(3, random_state=0).fit(X, sample_weight=w)
    search.predict_proba(X)
    assert_array_equal(X, X0)
    assert_array_equal(w, w0)


def test_verbose(capsys):
    X, _ = _blobs()
    GaussianMixtureIC(2, covariance_type=["diag", "full"], verbose=1).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("K=1") and "bic=" in lines[0]


def test_unfitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianMixtureIC().predict([[0.0, 1.0]])
    with pytest.raises(NotFittedError):
        GaussianMixtureIC().sample()


# ----------------------------------------------------------------------
# Bernoulli


def test_bernoulli_recovers_k_and_prototypes():
    X, y = _binary_data()
    search = BernoulliMixtureIC(5, random_state=0).fit(X)
    assert search.n_components_ == 2
    assert isinstance(search.best_estimator_, BernoulliMixtureEM)
    assert "covariance_type" not in search.results_
    assert search.best_params_ == {"n_components": 2}
    order = np.argsort(search.means_[:, 0])
    assert_allclose(search.means_[order[1], :6], 0.9, atol=0.05)
    assert_allclose(search.means_[order[0], :6], 0.1, atol=0.05)
    best = search.best_estimator_
    assert_allclose(search.results_["bic"][search.best_index_], best.bic(X), rtol=1e-10)
    assert_allclose(search.predict_proba(X), best.predict_proba(X))


def test_bernoulli_binarises_and_best_estimator_takes_raw_input():
    X, _ = _binary_data()
    raw = X * 0.8 + 0.1  # 0.1 and 0.9: binarised at 0.5
    search = BernoulliMixtureIC(4, binarize=0.5, random_state=0).fit(raw)
    binary = BernoulliMixtureIC(4, binarize=None, random_state=0).fit(X)
    assert_allclose(search.results_["bic"], binary.results_["bic"], rtol=1e-12)
    assert search.best_estimator_.binarize == 0.5
    assert_allclose(search.best_estimator_.predict_proba(raw), binary.predict_proba(X))
    with pytest.raises(ValueError, match="binary"):
        BernoulliMixtureIC(2, binarize=None).fit(raw)


def test_bernoulli_sparse_equals_dense():
    X, _ = _binary_data()
    dense = BernoulliMixtureIC(4, random_state=0).fit(X)
    sparse_fit = BernoulliMixtureIC(4, random_state=0).fit(sparse.csr_matrix(X))
    assert_allclose(sparse_fit.results_["bic"], dense.results_["bic"], rtol=1e-10)
    assert_allclose(
        sparse_fit.predict_proba(sparse.csr_matrix(X)), dense.predict_proba(X)
    )


def test_bernoulli_sklearn_sparse_container_check():
    """The sparse check test_common.py marks xfail, with the tag it reads.

    Once the tag exists the check expects predict_proba of shape (n, 2): the
    search is restricted to two components.
    """
    estimator = BernoulliMixtureIC([2], random_state=0)

    class _Tagged(BernoulliMixtureIC):
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            from sklearn.utils import ClassifierTags

            tags.classifier_tags = ClassifierTags(multi_class=False)
            return tags

    check_estimator_sparse_array(
        "BernoulliMixtureIC", _Tagged(**estimator.get_params())
    )


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_candidates_fit_validated_data_as_fit_does(binary, weighted):
    # The search fits its candidates on its own validated data, without
    # validating it again: the same model as a fit.
    X, _ = _blobs(n_samples=300, centers=3, random_state=4)
    if binary:
        X = (X > X.mean(axis=0)).astype(np.float64)
        estimator = BernoulliMixtureEM(3, random_state=0)
    else:
        estimator = GaussianMixtureEM(3, covariance_type="full", random_state=0)
    sample_weight = np.random.RandomState(0).uniform(0.5, 3, 300) if weighted else None
    fitted = clone(estimator).fit(X, sample_weight=sample_weight)
    direct = clone(estimator)._fit_validated(X, sample_weight)
    assert direct.n_features_in_ == fitted.n_features_in_ == 2
    assert direct.n_iter_ == fitted.n_iter_
    assert_allclose(direct.lower_bound_, fitted.lower_bound_, rtol=1e-12)
    assert_allclose(direct.means_, fitted.means_, rtol=1e-12)
    assert_allclose(direct.predict_proba(X), fitted.predict_proba(X), rtol=1e-12)
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        clone(estimator).set_params(n_components=4)._fit_validated(X[:3], None)


def test_small_search_sets_no_blas_limit_and_large_one_sets_it_once(
    blas_limit_sets,
):
    # The search takes one BLAS window policy, its largest candidate's: on
    # small data no window at all (every candidate's initial factors and
    # criteria outside its fit used to open one); on larger data one
    # setting held over every candidate.
    calls = blas_limit_sets
    X, _ = make_blobs(150, n_features=4, centers=3, random_state=0)
    GaussianMixtureIC(4, random_state=0).fit(X)
    assert calls == []
    X, _ = make_blobs(6000, n_features=8, centers=3, random_state=0)
    GaussianMixtureIC(4, covariance_type=["full", "diag"], random_state=0).fit(X)
    assert len(calls) == 1


@pytest.mark.parametrize("weighted", [False, True])
def test_one_hot_statistics_are_the_clusters_statistics(weighted, monkeypatch):
    # Small partitions take every cluster's statistics at once: the counts,
    # sums and scatters (around each cluster's mean) of the engine's
    # cluster-by-cluster computation, an empty cluster included.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 5)) * [1, 10, 100, 0.1, 1] + 50
    labels = rng.randint(6, size=90)
    labels[labels == 4] = 5  # cluster 4 is empty
    sample_weight = rng.uniform(0.2, 3, 90) if weighted else None
    assert 90 * 7 * 5**2 <= _selection._ONE_HOT_PRODUCTS
    one_hot = _selection._partition_statistics(X, sample_weight, labels, 7, True)
    monkeypatch.setattr(_selection, "_ONE_HOT_PRODUCTS", 0)
    per_cluster = _selection._partition_statistics(X, sample_weight, labels, 7, True)
    for ours, expected in zip(one_hot, per_cluster):
        assert_allclose(ours, expected, rtol=1e-12, atol=1e-9)
    assert one_hot[0][4] == 0 and not one_hot[2][4].any()


@pytest.mark.parametrize("covariance_type", _selection.COVARIANCE_TYPES)
def test_lockstep_starts_are_the_candidates_starts(covariance_type):
    # The starts of a lockstep group, computed for all its partitions at
    # once, are each partition's own to the last bit; a partition whose
    # start is not a valid mixture (here a cluster of one repeated point
    # without regularisation) is None, and leaves the others as they are.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    X[:6] = X[0]
    partitions = [
        _selection._partition_statistics(X, None, rng.randint(k, size=60), k, True)
        for k in range(1, 6)
    ]
    bad = np.zeros(60, dtype=int)
    bad[6:] = 1
    partitions.append(_selection._partition_statistics(X, None, bad, 2, True))
    for reg_covar in (1e-6, 0.0):
        with np.errstate(divide="ignore"):  # a zero variance without reg_covar
            starts = _selection._lockstep_starts(partitions, covariance_type, reg_covar)
        for partition, made in zip(partitions, starts):
            try:
                with np.errstate(divide="ignore"):
                    start = _selection._gaussian_initial_parameters(
                        *partition, covariance_type, reg_covar
                    )
                given = _selection._given_parameters(start, covariance_type)
            except (ValueError, np.linalg.LinAlgError):
                assert made is None
                continue
            for key, value in start.items():
                assert type(made[0][key]) is type(value)
                assert_array_equal(made[0][key], value)
            for value, expected in zip(made[1], given):
                assert_array_equal(value, expected)
    if covariance_type == "full":
        assert starts[-1] is None and all(made is not None for made in starts[:-1])


def test_cluster_means_add_each_clusters_rows_in_order():
    # The means are np.add.at's sums over the counts, to the last bit, for
    # C- and F-ordered data at very different scales and an empty cluster.
    rng = np.random.RandomState(0)
    for trial in range(20):
        n_samples, n_features = rng.randint(5, 200), rng.randint(1, 15)
        X = rng.normal(size=(n_samples, n_features)) * 10.0 ** rng.uniform(-5, 5)
        X += rng.uniform(-1e3, 1e3)
        if trial % 2:
            X = np.asfortranarray(X)
        n_clusters = rng.randint(2, 6)
        labels = rng.randint(n_clusters - 1, size=n_samples)  # the last is empty
        sums = np.zeros((n_clusters, n_features))
        np.add.at(sums, labels, X)
        counts = np.bincount(labels, minlength=n_clusters)[:, np.newaxis]
        with np.errstate(invalid="ignore"):
            expected = sums / counts
            means = _selection._cluster_means(X, labels, n_clusters)
        assert_array_equal(means, expected)


@pytest.mark.parametrize("init_params", ["ward", "mclust", "ward+mclust"])
def test_agglomerations_of_large_values_are_those_of_the_data(init_params, monkeypatch):
    # Where the agglomerations' sums of squares could overflow, they run on
    # the data times a power of two: every product and sum scaled exactly,
    # so the partitions are those of the data itself.
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(size=(150, 3)), rng.normal(size=(150, 3)) + 5] * 3e151
    grid = np.arange(1, 5)
    search = GaussianMixtureIC(4, init_params=init_params, random_state=0)
    scaled = search._shared_partitions(X, None, grid, np.random.RandomState(0))
    assert not np.array_equal(_selection._scaled_for_kmeans(X, None)[0], X)
    monkeypatch.setattr(
        _selection, "_scaled_for_kmeans", lambda X, sample_weight: (X, False)
    )
    plain = search._shared_partitions(X, None, grid, np.random.RandomState(0))
    assert scaled.keys() == plain.keys()
    for k in grid:
        for a, b in zip(scaled[k], plain[k]):
            assert_array_equal(a, b)


def test_search_on_values_near_the_float_range():
    # SciPy's Ward linkage raised that its distances were not finite at
    # 1e153. The candidates whose sums of squares overflow (one cluster of
    # all the rows) fail, and are reported with that reason, without
    # NumPy's overflow warnings; the others, tied structures included (their
    # pooled scatters beyond the float range had failed as collapsed), select
    # the model of the unit-scale data. Beyond, the data is refused with its
    # magnitude.
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(size=(150, 3)), rng.normal(size=(150, 3)) + 5]
    reference = GaussianMixtureIC(4, random_state=0).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = GaussianMixtureIC(4, random_state=0).fit(X * 1e153)
    assert [w.category for w in caught] == [FitFailedWarning]
    assert "too large for a Gaussian mixture" in str(caught[0].message)
    failed = search.results_["error"] != ""
    assert (search.results_["n_components"][failed] == 1).all()
    assert all("too large" in error for error in search.results_["error"][failed])
    assert search.best_params_ == reference.best_params_
    assert_array_equal(search.predict(X * 1e153), reference.predict(X))
    with pytest.raises(ValueError, match="too large for a Gaussian mixture"):
        GaussianMixtureIC(4, random_state=0).fit(X * 1e155)
