"""EM of many candidates in lockstep (``_lockstep``) against one at a time."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning

from sklearn_em import GaussianMixtureEM, GaussianMixtureIC
from sklearn_em.mixture import _lockstep, _selection
from sklearn_em.mixture._lockstep import fit_in_lockstep
from sklearn_em.mixture._selection import (
    COVARIANCE_TYPES,
    _gaussian_initial_parameters,
    _lockstep_groups,
    _partition_statistics,
)


def _data(n_samples=240, random_state=0):
    """Three overlapping anisotropic clusters in 3-D, away from the origin."""
    X, _ = make_blobs(
        n_samples=n_samples,
        n_features=3,
        centers=3,
        cluster_std=[1.0, 2.0, 0.5],
        random_state=random_state,
    )
    return X @ np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0]]) + 50


def _direct_e_step(batch, XT):
    """A batch's responsibilities and log-likelihoods from the differences
    x_n - mu_k of every component: the reference for the expanded forms."""
    factors = batch.factors[batch.owner] if batch.shared else batch.factors
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_prob = _lockstep._blocked_log_prob(
            XT, batch.means, factors, np.log(batch.weights), batch.kind
        )
        return _lockstep._normalise_runs(log_prob, batch.offsets, batch.owner)


def _partition_starts(X, n_components, covariance_type, sample_weight):
    """Two starts from two random partitions, as the search makes them."""
    starts = []
    for seed in (1, 2):
        labels = np.random.RandomState(seed).randint(n_components, size=len(X))
        labels[:n_components] = np.arange(n_components)
        stats = _partition_statistics(X, sample_weight, labels, n_components, True)
        starts.append(
            _gaussian_initial_parameters(*stats, covariance_type, reg_covar=1e-6)
        )
    return starts


def _given(n_components, covariance_type, start):
    """The engine's initial parameters of a start, as the search takes them."""
    estimator = GaussianMixtureEM(
        n_components, covariance_type=covariance_type, tol=1e-6, **start
    )
    estimator._check_parameters(np.empty((1, 3)))
    assert estimator._initialize_from_given(None)
    return estimator.weights_, estimator.means_, estimator.precisions_cholesky_


def _assert_lockstep_is_fit_one(X, covariance_type, sample_weight, grid):
    """Fit the grid's candidates in lockstep and one at a time (_fit_one),
    from the same two partitions each; check they are the same fits.

    Returns
    -------
    leaders : set of int
        The starts kept.

    n_iter : list of int
    """
    starts = {k: _partition_starts(X, k, covariance_type, sample_weight) for k in grid}
    fits = fit_in_lockstep(
        X,
        sample_weight,
        [[_given(k, covariance_type, s) for s in starts[k]] for k in grid],
        covariance_type,
        reg_covar=1e-6,
        tol=1e-6,
        max_iter=200,
        race=3,
    )
    leaders, n_iter = set(), []
    for k, fit in zip(grid, fits):

        def make_estimator(k=k, **start):
            return GaussianMixtureEM(
                k, covariance_type=covariance_type, tol=1e-6, max_iter=200, **start
            )

        estimator, values = _selection._fit_one(
            make_estimator,
            [lambda start=start: start for start in starts[k]],
            X,
            sample_weight,
            lambda estimator: estimator._log_prob_chunk_function(np.float64),
            race=3,
        )
        assert fit is not None
        assert fit["n_iter"] == estimator.n_iter_
        n_iter.append(fit["n_iter"])
        assert fit["converged"] == estimator.converged_
        leaders.add(fit["start"])
        assert_allclose(fit["lower_bounds"], estimator.lower_bounds_, rtol=1e-12)
        weights, means, covariances, factors = fit["parameters"]
        assert_allclose(weights, estimator.weights_, rtol=1e-8, atol=1e-12)
        assert_allclose(means, estimator.means_, rtol=1e-10)
        assert_allclose(covariances, estimator.covariances_, rtol=1e-8)
        assert_allclose(factors, estimator.precisions_cholesky_, rtol=1e-8, atol=1e-12)
        assert factors.shape == estimator.precisions_cholesky_.shape
        assert_allclose(fit["log_likelihood"], values["log_likelihood"], rtol=1e-12)
        assert_allclose(fit["entropy"], values["entropy"], rtol=1e-8, atol=1e-9)
    return leaders, n_iter


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_lockstep_equals_one_candidate_at_a_time(covariance_type, weighted):
    # Every candidate of the lockstep is the fit _fit_one makes from the same
    # starts: the same leader after the race, the same iterations, the same
    # parameters and criteria up to rounding.
    X = _data()
    sample_weight = None
    if weighted:
        sample_weight = np.random.RandomState(0).randint(1, 4, len(X)).astype(float)
    leaders, n_iter = _assert_lockstep_is_fit_one(
        X, covariance_type, sample_weight, [1, 2, 3, 5]
    )
    # Both partitions lead somewhere, and the leaders run on after the race.
    assert leaders == {0, 1} and max(n_iter) > 10


def _with_tight_far_cluster():
    """_data's clusters around the origin, and a tight cluster far away."""
    rng = np.random.RandomState(0)
    tight = rng.normal(scale=0.01, size=(40, 3)) + 12.0
    return np.vstack([_data(200) - 50, tight])


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_expanded_lockstep_takes_the_differences_where_it_must(
    covariance_type, monkeypatch
):
    # 'full', diagonal and spherical structures run on the expanded features,
    # except components too narrow for their distance from the data's centre
    # (a tight cluster far from the others): their log-densities and their
    # updates come from the differences x - mu_k. The fits are still
    # _fit_one's.
    X = _with_tight_far_cluster()
    partial = []
    stacked = _lockstep._direct_log_prob

    def counting(XT, means, factors, log_w, kind):
        partial.append(len(means))
        return stacked(XT, means, factors, log_w, kind)

    monkeypatch.setattr(_lockstep, "_direct_log_prob", counting)
    _assert_lockstep_is_fit_one(X, covariance_type, None, [3, 4, 6])
    # Some E-steps computed a few components directly.
    assert partial and min(partial) < 3


@pytest.mark.parametrize(
    "covariance_type", ["full", "diag", "spherical", "tied_diag", "tied_spherical"]
)
def test_expanded_m_step_is_the_m_step_of_the_differences(
    covariance_type, workspace_requests
):
    # The M-step from the expanded moments gives _m_step's parameters, also
    # for the components whose variance would lose too many digits that way
    # (the one on the tight far cluster), which it updates from the
    # differences.
    X = _with_tight_far_cluster()
    runs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in (4, 5):
            gm = GaussianMixtureEM(
                k, covariance_type=covariance_type, random_state=0, max_iter=3
            ).fit(X)
            runs.append((gm.weights_, gm.means_, gm.precisions_cholesky_))
    batch = _lockstep._Batch(runs, covariance_type)
    XT = np.ascontiguousarray(X.T)
    resp, _ = _direct_e_step(batch, XT)
    diff = XT[np.newaxis] - batch.means[:, :, np.newaxis]
    layout = (batch.kind, batch.shared, batch.offsets, batch.owner)
    reference = _lockstep._m_step(diff.copy(), resp, batch.means, *layout, 1e-6)
    features, centre, _ = _lockstep._expanded_features(X, None, batch.kind)
    differences = workspace_requests(_lockstep, "lockstep_diff")
    expanded = _lockstep._expanded_m_step(
        features, XT, resp, centre, batch.means, *layout, 1e-6
    )
    for ours, theirs in zip(expanded, reference):
        assert_allclose(ours, theirs, rtol=1e-10)
    # One component of each run (the tight cluster's) from its differences.
    assert [shape[0] for shape in differences] == [2]


@pytest.mark.parametrize("far", [False, True])
def test_tied_lockstep_is_the_tied_direct_form(far, monkeypatch):
    # 'tied' runs whiten once per run and take each run's scatter from the
    # data's: the log-densities and parameters of the differences' E-step
    # and M-step. With clusters 1e4 standard deviations apart, the scatter
    # would lose too many digits that way and the M-step takes the
    # differences, as do the E-step's components beyond its budget.
    X = _data(200) - 50
    if far:
        X = X + np.repeat([[0.0, 0.0, 0.0], [1e4, 0, 0]], 100, axis=0)
    runs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in (3, 4):
            gm = GaussianMixtureEM(
                k, covariance_type="tied", random_state=0, max_iter=3
            ).fit(X)
            runs.append((gm.weights_, gm.means_, gm.precisions_cholesky_))
    batch = _lockstep._Batch(runs, "tied")
    XT = np.ascontiguousarray(X.T)
    resp, log_norm = _direct_e_step(batch, XT)
    diff = XT[np.newaxis] - batch.means[:, :, np.newaxis]
    reference = _lockstep._m_step(
        diff.copy(), resp, batch.means, "full", True, batch.offsets, batch.owner, 1e-6
    )
    tied = _lockstep._tied_features(X, None)
    calls = []
    m_step, stacked = _lockstep._m_step, _lockstep._direct_log_prob
    monkeypatch.setattr(
        _lockstep, "_m_step", lambda *args: calls.append("m") or m_step(*args)
    )
    monkeypatch.setattr(
        _lockstep,
        "_direct_log_prob",
        lambda *args: calls.append("e") or stacked(*args),
    )
    ours, ours_norm = batch.tied_e_step(XT, tied)
    assert_allclose(ours_norm, log_norm, rtol=1e-12)
    assert_allclose(ours, resp, rtol=1e-10, atol=1e-14)
    parameters = _lockstep._tied_m_step(
        tied, XT, resp, batch.means, batch.offsets, batch.stops, batch.owner, 1e-6
    )
    for value, expected in zip(parameters, reference):
        assert_allclose(value, expected, rtol=1e-10)
    assert calls == (["e", "m"] if far else [])


def _one_by_one(monkeypatch):
    monkeypatch.setattr(
        GaussianMixtureIC, "_fit_together", lambda self, *args: ({}, {}), raising=True
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_search_in_lockstep_equals_the_search_one_by_one(monkeypatch, weighted):
    X = load_iris().data
    sample_weight = None
    if weighted:
        sample_weight = np.random.RandomState(1).randint(1, 4, len(X)).astype(float)
    calls = []
    real = _selection.fit_in_lockstep
    monkeypatch.setattr(
        _selection,
        "fit_in_lockstep",
        lambda *args, **kwargs: calls.append(args[3]) or real(*args, **kwargs),
    )
    search = GaussianMixtureIC(8, random_state=0).fit(X, sample_weight=sample_weight)
    # Every structure's candidates ran together.
    assert sorted(calls) == sorted(COVARIANCE_TYPES)
    _one_by_one(monkeypatch)
    reference = GaussianMixtureIC(8, random_state=0).fit(X, sample_weight=sample_weight)
    results, expected = search.results_, reference.results_
    assert_array_equal(results["n_components"], expected["n_components"])
    assert_array_equal(results["covariance_type"], expected["covariance_type"])
    for key in ("bic", "aic", "icl", "log_likelihood"):
        assert_allclose(results[key], expected[key], rtol=1e-9)
    assert_array_equal(results["n_parameters"], expected["n_parameters"])
    # An iteration's lower bound can sit at tol from the previous one, where
    # rounding decides: allow a few candidates one iteration apart.
    n_iter_diff = np.abs(results["n_iter"] - expected["n_iter"])
    assert n_iter_diff.max() <= 1 and (n_iter_diff > 0).sum() <= 3
    assert (results["fit_time"] > 0).all()
    assert search.best_params_ == reference.best_params_
    best, expected_best = search.best_estimator_, reference.best_estimator_
    assert_allclose(best.means_, expected_best.means_, rtol=1e-7)
    assert_allclose(search.predict_proba(X), reference.predict_proba(X), atol=1e-7)
    assert best.n_features_in_ == 4 and best.lower_bounds_[-1] == best.lower_bound_
    # Its validated start, as GaussianMixtureEM's own validation leaves it.
    checked = GaussianMixtureEM(**best.get_params())
    checked._check_parameters(X)
    for name in ("_weights_init", "_means_init", "_precisions_init"):
        value, expected = getattr(best, name), getattr(checked, name)
        assert type(value) is type(expected) and value.dtype == expected.dtype
        assert_array_equal(value, expected)
    assert best._fit_dtype == checked._fit_dtype
    # The winner is a complete GaussianMixtureEM: it fits on from its solution.
    again = GaussianMixtureEM(
        best.n_components,
        covariance_type=best.covariance_type,
        weights_init=best.weights_,
        means_init=best.means_,
        precisions_init=best.precisions_,
    ).fit(X, sample_weight=sample_weight)
    assert again.n_iter_ <= 2


def test_collapsing_candidates_are_left_to_the_engine(monkeypatch):
    # Without regularisation, components collapse onto repeated points: the
    # candidates concerned are fitted one by one, exactly as without the
    # lockstep (NaN where they fail), and the others in lockstep.
    X = np.repeat([[0.0, 0.0], [5.0, 5.0], [0.0, 5.0]], 10, axis=0)
    X = X + np.random.RandomState(0).normal(scale=1e-3, size=X.shape)
    kwargs = dict(covariance_type=["full", "diag"], reg_covar=0.0, random_state=0)
    fit_one = _selection._fit_one
    alone = []
    monkeypatch.setattr(
        _selection,
        "_fit_one",
        lambda *args, **kwargs: alone.append(1) or fit_one(*args, **kwargs),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FitFailedWarning, ConvergenceWarning))
        search = GaussianMixtureIC(5, **kwargs).fit(X)
        n_alone = len(alone)
        _one_by_one(monkeypatch)
        reference = GaussianMixtureIC(5, **kwargs).fit(X)
    assert 0 < n_alone < 10
    assert_array_equal(
        np.isnan(search.results_["bic"]), np.isnan(reference.results_["bic"])
    )
    assert_allclose(search.results_["bic"], reference.results_["bic"], rtol=1e-9)
    assert_array_equal(search.results_["error"], reference.results_["error"])


def test_groups_of_bounded_memory(monkeypatch):
    grid = np.arange(1, 16)
    groups = _lockstep_groups(grid, 1000)
    assert [i for group in groups for i in group] == list(range(15))
    for group in groups:
        size = sum(2 * grid[i] * 1000 for i in group)
        assert size <= _selection._LOCKSTEP_GROUP_VALUES or len(group) == 1
    monkeypatch.setattr(_selection, "_LOCKSTEP_GROUP_VALUES", 2 * 4 * 150 * 4)
    assert _lockstep_groups(grid, 600)[:2] == [[0, 1], [2]]
    X = load_iris().data
    split = GaussianMixtureIC(6, covariance_type=["full", "tied"], random_state=0)
    split.fit(X)
    monkeypatch.undo()
    whole = GaussianMixtureIC(6, covariance_type=["full", "tied"], random_state=0)
    whole.fit(X)
    assert_allclose(split.results_["bic"], whole.results_["bic"], rtol=1e-12)
    assert_array_equal(split.results_["n_iter"], whole.results_["n_iter"])


@pytest.mark.parametrize(
    "X, covariance_types",
    [
        (load_iris().data.astype(np.float32), ["full", "diag"]),
        (
            np.random.RandomState(0).normal(size=(18000, 15)),
            ["full", "tied", "diag", "spherical"],
        ),
        (np.random.RandomState(0).normal(size=(1200, 15)), ["tied_diag"]),
        (np.random.RandomState(0).normal(size=(900, 100)), ["full"]),
    ],
    ids=["float32", "large", "large-shared", "wide-full"],
)
def test_lockstep_only_where_it_pays(monkeypatch, X, covariance_types):
    # float32 data keep the engine's float32 fits; data past a structure's
    # limit the engine's fits (its threads, its forms), and so do 'full'
    # candidates whose quadratic features would be too many.
    n_samples, n_features = X.shape
    if covariance_types == ["full"]:
        assert X.size <= _selection._LOCKSTEP_MAX_VALUES["full"]
        features = n_samples * n_features * (n_features + 3) // 2
        assert features > _selection._LOCKSTEP_FULL_FEATURES
    elif X.dtype == np.float64:
        assert all(
            X.size > _selection._LOCKSTEP_MAX_VALUES[t] for t in covariance_types
        )
    monkeypatch.setattr(
        _selection, "fit_in_lockstep", lambda *args, **kwargs: pytest.fail("lockstep")
    )
    GaussianMixtureIC(3, covariance_type=covariance_types, random_state=0).fit(X)


@pytest.mark.parametrize("shape", [(11,), (11, 7), (11, 3, 3)])
def test_run_reduce_is_reduceat(shape):
    # Each run's block reduced on its own: reduceat's maxima exactly, its
    # sums up to the order of the additions, for 1-D to 3-D stacks.
    values = np.random.RandomState(0).normal(size=shape)
    values[4] = np.inf
    offsets = np.array([0, 1, 4, 5, 9])
    maxima = _lockstep._run_reduce(np.maximum, values, offsets)
    assert_array_equal(maxima, np.maximum.reduceat(values, offsets, axis=0))
    finite = np.where(np.isfinite(values), values, 0.0)
    sums = _lockstep._run_reduce(np.add, finite, offsets)
    assert sums.shape == (len(offsets), *shape[1:])
    assert_allclose(
        sums, np.add.reduceat(finite, offsets, axis=0), rtol=1e-14, atol=1e-14
    )


def _normalised_run_by_run(log_prob, offsets):
    """Each run's responsibilities and log-likelihoods below its own largest
    log-probability, with scipy's logsumexp."""
    from scipy.special import logsumexp

    stops = np.append(offsets[1:], len(log_prob))
    resp = np.empty_like(log_prob)
    log_norm = np.empty((len(offsets), log_prob.shape[1]))
    for r, (start, stop) in enumerate(zip(offsets, stops)):
        block = log_prob[start:stop]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_norm[r] = logsumexp(block, axis=0)
            resp[start:stop] = np.where(
                np.isfinite(log_norm[r]), np.exp(block - log_norm[r]), 0.0
            )
    return resp, log_norm


def test_normalise_runs_is_each_runs_logsumexp():
    # The exponentials are taken below every run's largest log-probability
    # of a sample; runs far below it (here 600 and 2,000 nats), runs with no
    # mass at a sample and a NaN run are normalised on their own, and leave
    # the others untouched.
    rng = np.random.RandomState(0)
    offsets = np.array([0, 1, 4, 6, 9])
    owner = np.repeat(np.arange(5), np.diff(np.append(offsets, 11)))
    log_prob = rng.normal(scale=30, size=(11, 64)) - 100
    log_prob[4:6, 2] -= 600
    log_prob[1:4, 3] -= 2000
    log_prob[6:9, 5] = -np.inf
    log_prob[9, 6] = np.nan
    log_prob[0, 7] = -1000.0
    original = log_prob.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        resp, log_norm = _lockstep._normalise_runs(log_prob, offsets, owner)
    assert_array_equal(log_prob, original)
    expected_resp, expected_log_norm = _normalised_run_by_run(original, offsets)
    finite = np.isfinite(expected_log_norm)
    assert_allclose(log_norm[finite], expected_log_norm[finite], rtol=1e-14)
    assert log_norm[3, 5] == -np.inf
    assert np.isnan(log_norm[4, 6])
    clean = np.isfinite(expected_log_norm)[owner]
    assert_allclose(resp[clean], expected_resp[clean], rtol=1e-12, atol=1e-300)
    assert_array_equal(resp[6:9, 5], 0.0)
    # A run's only component has exactly 1 (a K = 1 candidate's entropy is 0).
    assert_array_equal(resp[0], 1.0)
    # The columns of every run but the NaN one sum to one where it has mass.
    sums = np.add.reduceat(resp, offsets, axis=0)
    assert_allclose(sums[finite], 1.0, rtol=1e-14)


@pytest.mark.parametrize("n_matrices", [3, 60])
@pytest.mark.parametrize("n_features", [1, 2, 5, 13])
def test_lower_inverse_is_the_inverse(n_features, n_matrices):
    # Few matrices are inverted one by one, many by forward substitution.
    rng = np.random.RandomState(n_features)
    A = rng.normal(size=(n_matrices, n_features, n_features))
    covariances = A @ A.transpose(0, 2, 1) + 1e-3 * np.eye(n_features)
    L = np.linalg.cholesky(covariances)
    inverse = _lockstep._lower_inverse(L)
    assert_allclose(
        inverse @ L, np.broadcast_to(np.eye(n_features), L.shape), atol=1e-9
    )
    assert_allclose(inverse, np.linalg.inv(L), rtol=1e-9, atol=1e-12)
    assert not np.triu(inverse, 1).any()


def test_precision_factors_flag_each_collapse():
    covariances = np.stack(
        [np.eye(2), [[1.0, 1.0], [1.0, 1.0]], np.full((2, 2), np.nan)]
    )
    covariances[1, 0, 0] = 1.0 - 1e-3
    factors, failed = _lockstep._precision_factors(covariances, "full")
    assert_array_equal(failed, [False, True, True])
    assert_allclose(factors[0], np.eye(2))
    variances = np.array([[1.0, 4.0], [0.0, 1.0], [1.0, np.inf]])
    factors, failed = _lockstep._precision_factors(variances, "diag")
    assert_array_equal(failed, [False, True, True])
    assert_allclose(factors[0], [1.0, 0.5])
    factors, failed = _lockstep._precision_factors(np.array([4.0, -1.0]), "spherical")
    assert_array_equal(failed, [False, True])
    assert_allclose(factors[0], 0.5)


def test_equal_models_are_chosen_by_their_parameters_not_by_rounding():
    # In one dimension 'spherical', 'diag' and 'full' (and the three shared
    # structures) are the same models: their criteria differ by rounding
    # only, and the most constrained structure is chosen, whichever way the
    # rounding goes (with or without the lockstep). (Compared at tol: the
    # selected one alone is then refined.)
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.randn(60), rng.randn(60) * 0.3 + 4])[:, np.newaxis]
    search = GaussianMixtureIC(4, refine_tol=None, random_state=0).fit(X)
    bic = search.results_["bic"]
    k = search.n_components_
    same_k = search.results_["n_components"] == k
    assert search.covariance_type_ in ("tied_spherical", "spherical")
    chosen = bic[search.best_index_]
    ties = same_k & np.isclose(bic, chosen, rtol=1e-10)
    assert ties.sum() >= 2
    first = np.flatnonzero(ties)[0]
    assert search.best_index_ == first
    assert search.results_["rank_bic"][search.best_index_] == 1
    assert sorted(search.results_["rank_bic"]) == list(range(1, len(bic) + 1))


def test_partition_statistics_once_per_k_when_both_paths_fit(monkeypatch):
    # 1,000 x 40: 'tied' runs in lockstep, 'tied_diag' one by one (see
    # _LOCKSTEP_MAX_VALUES); both read each K's partition statistics, which
    # are computed once.
    X, _ = make_blobs(1000, n_features=40, centers=3, random_state=0)
    assert (
        _selection._LOCKSTEP_MAX_VALUES["tied_diag"]
        < X.size
        <= _selection._LOCKSTEP_MAX_VALUES["tied"]
    )
    calls, real = [], _selection._partition_statistics
    monkeypatch.setattr(
        _selection,
        "_partition_statistics",
        lambda *args: calls.append(args[3]) or real(*args),
    )
    lockstep = []
    fit = _selection.fit_in_lockstep
    monkeypatch.setattr(
        _selection,
        "fit_in_lockstep",
        lambda *args, **kwargs: lockstep.append(args[3]) or fit(*args, **kwargs),
    )
    search = GaussianMixtureIC(4, covariance_type=["tied_diag", "tied"], random_state=0)
    search.fit(X)
    assert set(lockstep) == {"tied"}
    assert (search.results_["covariance_type"] == "tied_diag").sum() == 4
    # One call per K and partition (Ward's and mclust's, unless they agree).
    assert sorted(set(calls)) == [1, 2, 3, 4]
    assert all(calls.count(k) <= 2 for k in range(1, 5))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_differences_in_blocks_are_the_same_fits(covariance_type, monkeypatch):
    # Where the expanded forms fall back on the differences x_n - mu_k (the
    # tight far cluster's components; for 'tied', whose shared covariance is
    # wide, the components of clusters 1e4 standard deviations apart), they
    # take them in blocks of bounded size: one component at a time gives the
    # same fits to the last bit.
    X = _with_tight_far_cluster()
    if covariance_type == "tied":
        X = _data(200) - 50 + np.repeat([[0.0, 0.0, 0.0], [1e4, 0, 0]], 100, axis=0)
    grid = [3, 4, 6]
    starts = [
        [
            _given(k, covariance_type, s)
            for s in _partition_starts(X, k, covariance_type, None)
        ]
        for k in grid
    ]

    def fit():
        return fit_in_lockstep(
            X,
            None,
            starts,
            covariance_type,
            reg_covar=1e-6,
            tol=1e-6,
            max_iter=200,
            race=3,
        )

    whole = fit()
    blocks = []
    component_blocks = _lockstep._component_blocks
    monkeypatch.setattr(_lockstep, "_DIRECT_BLOCK_VALUES", 1)
    monkeypatch.setattr(
        _lockstep,
        "_component_blocks",
        lambda n, XT: blocks.append(n) or component_blocks(n, XT),
    )
    one_by_one = fit()
    # Some blocks held several components, now one each.
    assert max(blocks) > 1
    for ours, expected in zip(one_by_one, whole):
        assert ours["n_iter"] == expected["n_iter"]
        assert ours["log_likelihood"] == expected["log_likelihood"]
        for value, reference in zip(ours["parameters"], expected["parameters"]):
            assert_array_equal(value, reference)


def test_lockstep_groups_are_bounded_by_their_largest_array():
    # 'tied' may fall back on every component's differences; the others
    # hold one row of log-probabilities a component (two threads: the grid
    # split in about halves, packed in order).
    grid = np.arange(1, 16)
    shape = (8000, 20)
    tied = _lockstep_groups(grid, _selection._lockstep_values("tied", shape), 2)
    full = _lockstep_groups(grid, _selection._lockstep_values("full", shape), 2)
    assert len(tied) == 13 and len(full) == 3
    assert sorted(i for group in full for i in group) == list(range(15))
