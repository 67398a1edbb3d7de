"""Property-based tests of GaussianMixtureEM (issue 11) and of the model
selection's lockstep (issue 14), with hypothesis.

Each property holds for every input hypothesis draws: shapes, scales from
1e-8 to 1e8, offsets up to 1e6, ties and duplicated rows, the four
covariance types of scikit-learn, float32 and float64. Every fit starts from
given parameters (``means_init`` and friends, or an explicit
``random_state``), so that the comparisons with scikit-learn are from the
same start.

Profiles (see ``tests/conftest.py``): the default runs a few examples per
property so that CI stays within its budget; ``pytest
--hypothesis-profile=long tests/test_properties.py`` runs many more.
"""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from sklearn_em import GaussianMixtureEM

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@st.composite
def mixture_data(draw, dtypes=(np.float64, np.float32)):
    """Data from a few clusters, scaled and offset, with ties and duplicates."""
    n_features = draw(st.integers(1, 5))
    n_components = draw(st.integers(1, 3))
    n_clusters = draw(st.integers(1, 3))
    n_samples = draw(st.integers(max(3 * n_components, 8), 60))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = 10.0 ** draw(st.integers(-8, 8))
    offset = draw(st.sampled_from([0.0, 1.0, -1e3, 1e6]))
    dtype = draw(st.sampled_from(dtypes))
    covariance_type = draw(st.sampled_from(COVARIANCE_TYPES))
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=5.0, size=(n_clusters, n_features))
    X = centres[rng.randint(n_clusters, size=n_samples)]
    X = X + rng.normal(size=X.shape)
    if draw(st.booleans()):
        # Ties in one feature (rounded values) and repeated rows.
        X[:, 0] = np.round(X[:, 0])
        X[: n_samples // 4] = X[0]
    X = (X * scale + offset).astype(dtype)
    # Enough distinct rows for the components; otherwise a collapse is the
    # right answer (and scikit-learn raises too).
    assume(len(np.unique(X, axis=0)) >= 2 * n_components + 1)
    return X, n_components, covariance_type, seed


def _fit(estimator, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, **fit_params)


def _fit_or_none(estimator, X, **fit_params):
    """The fitted estimator, or None if it raised a ValueError."""
    try:
        return _fit(estimator, X, **fit_params)
    except ValueError:
        return None


def _covariance_matrices(model):
    """Every component's covariance as a (n_components, D, D) array."""
    covariances = np.asarray(model.covariances_, dtype=np.float64)
    n_components, n_features = model.means_.shape
    if model.covariance_type == "full":
        return covariances
    if model.covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    if model.covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return covariances[:, None, None] * np.eye(n_features)


def _precision_diagonals(model):
    """The diagonals of the precisions' Cholesky factors (all positive)."""
    chol = np.asarray(model.precisions_cholesky_)
    if model.covariance_type in ("full", "tied"):
        return np.diagonal(chol, axis1=-2, axis2=-1)
    return chol


def _well_conditioned(model, X):
    """EM did not diverge, every component holds more than D + 1 points, and
    none has collapsed onto a subspace (variance reg_covar in a direction,
    as for points that share a value of a feature)."""
    n_points = model.weights_ * len(X)
    smallest = np.linalg.eigvalsh(_covariance_matrices(model)).min()
    return (
        model.n_iter_ == model.max_iter
        and n_points.min() > X.shape[1] + 1
        and smallest > 1e4 * model.reg_covar
    )


def _estimator(n_components, covariance_type, seed, **params):
    return GaussianMixtureEM(
        n_components,
        covariance_type=covariance_type,
        random_state=seed,
        reg_covar=params.pop("reg_covar", 1e-6),
        **params,
    )


@given(mixture_data())
def test_fitted_model_is_well_formed(data):
    """Finite parameters, positive definite covariances, proba rows sum to 1,
    the data's dtype kept, and EM's lower bound never decreasing."""
    X, n_components, covariance_type, seed = data
    model = _fit_or_none(_estimator(n_components, covariance_type, seed), X)
    reference = _fit_or_none(
        GaussianMixture(
            n_components, covariance_type=covariance_type, random_state=seed
        ),
        X,
    )
    if model is None:
        # Never a failure where scikit-learn, from the same start, fits.
        assert reference is None
        return
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        value = getattr(model, name)
        assert value.dtype == X.dtype, name
        assert np.all(np.isfinite(value)), name
    # Positive definite, up to the rounding of the stored matrices (a float32
    # covariance of condition 1e12 is positive definite only in float64,
    # where the precisions are computed).
    eigenvalues = np.linalg.eigvalsh(_covariance_matrices(model))
    rounding = 10 * np.finfo(X.dtype).eps * np.abs(eigenvalues).max(axis=1)
    assert np.all(eigenvalues > -rounding[:, np.newaxis])
    assert np.all(_precision_diagonals(model) > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        proba = model.predict_proba(X)
        scores = model.score_samples(X)
    assert proba.dtype == X.dtype
    assert_allclose(
        proba.sum(axis=1), 1.0, rtol=1e-5 if X.dtype == np.float32 else 1e-10
    )
    assert np.all(np.isfinite(scores))
    # EM with reg_covar > 0 is not exact EM (the M-step adds reg_covar to the
    # maximiser), so the bound may fall slightly, as scikit-learn's does from
    # the same start; never by more than it, up to rounding of the
    # per-sample log-likelihoods the bound is the mean of.
    tolerance = 1e3 * np.finfo(X.dtype).eps * (1.0 + np.abs(scores).mean())
    # The data's own rounding relative to the narrowest direction of a
    # component (a component of two points has variance reg_covar across
    # them): the second moments are rounded to eps |x - c|^2, which the
    # smallest eigenvalue of a covariance feels in relative terms, and so
    # does the log-likelihood.
    Xc = X.astype(np.float64) - X.astype(np.float64).mean(axis=0)
    # (Each component's known only up to its eigenvalues' own rounding: a
    # regularised direction of a covariance of 1e13 reads as zero or below.)
    smallest = max(
        np.maximum(eigenvalues.min(axis=1), rounding).min(), np.finfo(X.dtype).tiny
    )
    eps = np.finfo(X.dtype).eps
    tolerance += 100 * eps * np.square(Xc).sum(axis=1).max() / smallest
    # And the rounding of the data themselves, in units of that direction's
    # spread, in a squared distance of about D.
    r = eps * np.abs(X.astype(np.float64)).max() / np.sqrt(smallest)
    tolerance += 100 * (r**2 + r * np.sqrt(X.shape[1]))
    drop = -np.diff(np.asarray(model.lower_bounds_, dtype=np.float64), prepend=-np.inf)
    # scikit-learn's drop, or that of its fit of the centred data in float64
    # (the accurate one: far from the origin scikit-learn's bound jitters).
    centred = _fit_or_none(
        GaussianMixture(
            n_components, covariance_type=covariance_type, random_state=seed
        ),
        X.astype(np.float64) - X.astype(np.float64).mean(axis=0),
    )
    allowed = max(
        [0.0]
        + [
            np.max(-np.diff(fit.lower_bounds_), initial=0.0)
            for fit in (reference, centred)
            if fit is not None
        ]
    )
    assert np.max(drop, initial=0.0) <= allowed + tolerance


@given(
    mixture_data(dtypes=(np.float64,)),
    st.integers(-60, 60),
    st.sampled_from([1.0, 0.3, 0.625, 1.5, 3.0]),
)
def test_weights_times_a_constant_give_the_same_model(data, exponent, factor):
    """Frequency weights times c: the same model, for c of any size."""
    X, n_components, covariance_type, seed = data
    rng = np.random.RandomState(seed)
    weights = rng.uniform(0.5, 2.0, size=len(X))
    c = factor * 2.0**exponent
    # A fixed number of iterations: a convergence test on the change of the
    # bound could stop the two fits one iteration apart.
    fixed = dict(tol=0, max_iter=10)
    a = _fit_or_none(
        _estimator(n_components, covariance_type, seed, **fixed),
        X,
        sample_weight=weights,
    )
    b = _fit_or_none(
        _estimator(n_components, covariance_type, seed, **fixed),
        X,
        sample_weight=weights * c,
    )
    if factor == 1.0:
        # Weights times a power of two: bit-identical (they are normalised
        # by a power of two, which is exact).
        assert (a is None) == (b is None)
        if a is not None:
            for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        return
    # Any other constant: equal up to rounding, which EM amplifies without
    # bound only on degenerate fits (a component of at most D + 1 points,
    # whose covariance is reg_covar across them, or a run that diverged).
    assume(a is not None and _well_conditioned(a, X))
    assert b is not None
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=1e-6, atol=1e-8)
    assert_allclose(a.weights_, b.weights_, rtol=1e-5, atol=1e-8)


@given(mixture_data(dtypes=(np.float64,)))
def test_integer_weights_equal_repeated_rows(data):
    """Integer frequency weights give the model of the repeated rows."""
    X, n_components, covariance_type, seed = data
    rng = np.random.RandomState(seed)
    counts = rng.randint(1, 4, size=len(X))
    X_repeated = np.repeat(X, counts, axis=0)
    # The same start for both: the initial parameters are given.
    start = _fit_or_none(
        _estimator(n_components, covariance_type, seed, max_iter=1), X_repeated
    )
    assume(start is not None)
    init = dict(
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
    )
    init.update(tol=0, max_iter=10)  # the same iterations for both
    weighted = _fit_or_none(
        _estimator(n_components, covariance_type, seed, **init),
        X,
        sample_weight=counts.astype(float),
    )
    repeated = _fit_or_none(
        _estimator(n_components, covariance_type, seed, **init), X_repeated
    )
    assume(repeated is not None and _well_conditioned(repeated, X_repeated))
    assert weighted is not None
    assert weighted.n_iter_ == repeated.n_iter_
    assert_allclose(weighted.lower_bound_, repeated.lower_bound_, rtol=1e-8)
    assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-6, atol=1e-10)
    scale = np.abs(X).max() + 1.0
    assert_allclose(weighted.means_, repeated.means_, rtol=1e-6, atol=1e-10 * scale)


def _centred_reference(X, n_components, covariance_type, init):
    """A float64 fit of the centred data, shifted back: the accurate answer."""
    centre = X.astype(np.float64).mean(axis=0)
    init = dict(init, means_init=init["means_init"] - centre)
    model = GaussianMixture(
        n_components, covariance_type=covariance_type, max_iter=5, tol=0, **init
    )
    model = _fit_or_none(model, X.astype(np.float64) - centre)
    if model is not None:
        model.means_ = model.means_ + centre
    return model


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@given(mixture_data())
def test_agrees_with_scikit_learn_where_it_is_accurate(data):
    """From the same start, the same model as scikit-learn's wherever
    scikit-learn itself agrees with a float64 fit of the centred data."""
    X, n_components, covariance_type, seed = data
    first = _fit_or_none(
        GaussianMixture(
            n_components,
            covariance_type=covariance_type,
            random_state=seed,
            max_iter=1,
        ),
        X,
    )
    assume(first is not None)
    init = dict(
        weights_init=first.weights_.astype(np.float64),
        means_init=first.means_.astype(np.float64),
        precisions_init=first.precisions_.astype(np.float64),
    )
    params = dict(covariance_type=covariance_type, max_iter=5, tol=0, **init)
    theirs = _fit_or_none(GaussianMixture(n_components, **params), X)
    reference = _centred_reference(X, n_components, covariance_type, init)
    ours = _fit_or_none(GaussianMixtureEM(n_components, **params), X)
    if theirs is None:
        return
    # Never a failure where scikit-learn fits.
    assert ours is not None
    if reference is None:
        return
    scale = np.abs(X.astype(np.float64)).max() + 1.0

    def close(model, rtol):
        return np.allclose(
            model.means_, reference.means_, rtol=rtol, atol=rtol * scale
        ) and np.allclose(model.weights_, reference.weights_, rtol=rtol, atol=rtol)

    if not close(theirs, 1e-6):
        return
    assert close(ours, 1e-6)


@st.composite
def kmeans_data(draw):
    """Data for k-means with ties, duplicates, weights and far offsets."""
    n_features = draw(st.integers(1, 6))
    n_clusters = draw(st.integers(1, 8))
    # (Past one 256-row chunk, where the bounded labeller can run.)
    n_samples = draw(st.integers(max(n_clusters, 10), 1500))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    if draw(st.booleans()):
        # A small integer grid: exact ties between centres are common.
        X = rng.randint(0, 3, size=(n_samples, n_features)).astype(np.float64)
    else:
        centres = rng.normal(scale=4.0, size=(draw(st.integers(1, 6)), n_features))
        X = centres[rng.randint(len(centres), size=n_samples)]
        X = X + rng.normal(size=X.shape)
    X = X * 10.0 ** draw(st.integers(-3, 3)) + draw(st.sampled_from([0.0, 1e3]))
    X = X.astype(draw(st.sampled_from([np.float64, np.float32])))
    weights = None
    if draw(st.booleans()):
        weights = rng.uniform(0.1, 3, size=n_samples)
    return X, n_clusters, weights, seed


@given(kmeans_data(), st.booleans())
def test_bounded_kmeans_is_sklearn_kmeans(data, certified):
    # Hamerly's bounds on every shape (not only where they pay), and with
    # ``certified`` the sums that follow the moved rows within a bound of
    # KMeans's (float64 rows of unit weight): the labels, centres and
    # iteration count are still KMeans's, bit for bit.
    from sklearn.cluster import KMeans
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    from sklearn_em.mixture import _kmeans

    X, n_clusters, weights, seed = data
    names = ["_BOUNDED_MIN_SIZE", "_BOUNDED_MIN_ROWS"]
    if certified:
        names.append("_INCREMENTAL_ROWS")
    saved = {name: getattr(_kmeans, name) for name in names}
    for name in names:
        setattr(_kmeans, name, 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reference = KMeans(n_clusters, n_init=1, random_state=seed).fit(
                X, sample_weight=weights
            )
            labels, centers, n_iter = _kmeans.kmeans_lloyd(
                X, n_clusters, weights, np.random.RandomState(seed)
            )
    finally:
        for name, value in saved.items():
            setattr(_kmeans, name, value)
    np.testing.assert_array_equal(labels, reference.labels_)
    assert n_iter == reference.n_iter_
    if _openmp_effective_n_threads() <= 2:
        # Beyond two threads KMeans adds its threads' sums in the order
        # they finish (see tests/mixture/test_kmeans.py).
        np.testing.assert_array_equal(centers, reference.cluster_centers_)


@given(mixture_data(dtypes=(np.float64,)), st.booleans())
def test_model_selection_in_lockstep_equals_one_candidate_at_a_time(data, weighted):
    # GaussianMixtureIC runs the candidates of small data in lockstep (see
    # sklearn_em/mixture/_lockstep.py): on every draw, its table is the
    # one the candidates fitted one at a time give, and so is its choice.
    from sklearn_em import GaussianMixtureIC
    from sklearn_em.mixture._selection import COVARIANCE_TYPES as ALL_TYPES

    X, n_components, _, seed = data
    # Covariances whose condition is bounded by reg_covar (data at most 100
    # wide, any offset) and no repeated rows: on nearly singular ones (two
    # rows 1e4 wide, reg_covar=1e-6) rounding alone moves the fits of either
    # implementation by 1e-5 in log-likelihood, and the comparison would
    # measure that rather than the lockstep.
    assume(np.ptp(X, axis=0).max() <= 100)
    assume(len(np.unique(X, axis=0)) == len(X))
    sample_weight = None
    if weighted:
        sample_weight = np.random.RandomState(seed).randint(1, 4, len(X))
    search = GaussianMixtureIC(n_components + 1, covariance_type="all")
    results = {}
    for together in (True, False):
        if not together:
            search._fit_together = lambda *args: ({}, {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                search.fit(X, sample_weight=sample_weight)
            except ValueError as exc:  # every candidate collapsed
                results[together] = str(exc)
                continue
        results[together] = (
            dict(search.results_),
            search.best_params_,
        )
    lockstep, alone = results[True], results[False]
    if isinstance(alone, str) or isinstance(lockstep, str):
        assert lockstep == alone
        return
    assert len(lockstep[0]["bic"]) == len(ALL_TYPES) * (n_components + 1)
    # A candidate whose EM ran another number of iterations met a tie up to
    # rounding: between two starts at the end of the race (the leader goes
    # on) or at the convergence threshold. Its two fits are then the same
    # only within EM's tolerance, tol per unit of weight in log-likelihood
    # (the long profile found such draws of 11 x 2, 29 x 1 and a few dozen
    # rows x 4; on the first, 5 and 3 iterations, BICs 5.9e-7 apart).
    tied = np.asarray(lockstep[0]["n_iter"]) != np.asarray(alone[0]["n_iter"])
    total_weight = len(X) if sample_weight is None else sample_weight.sum()
    for key, scale in (("bic", 2.0), ("log_likelihood", 1.0)):
        a, b = lockstep[0][key], alone[0][key]
        assert_allclose(a[~tied], b[~tied], rtol=1e-7, atol=1e-7 * np.nanmax(np.abs(b)))
        assert np.all(np.abs(a[tied] - b[tied]) <= scale * search.tol * total_weight)
    if lockstep[1] != alone[1]:
        # Only between candidates that tie up to rounding (or within EM's
        # tolerance, as above).
        bic = alone[0]["bic"]
        chosen = [
            np.flatnonzero(
                (alone[0]["n_components"] == params["n_components"])
                & (alone[0]["covariance_type"] == params["covariance_type"])
            )[0]
            for params in (lockstep[1], alone[1])
        ]
        if tied[chosen].any():
            # Each of the two rows within EM's tolerance of its other fit.
            assert abs(bic[chosen[0]] - bic[chosen[1]]) <= 4 * search.tol * (
                total_weight
            )
        else:
            assert_allclose(bic[chosen[0]], bic[chosen[1]], rtol=1e-7)


@st.composite
def tight_far_mixtures(draw):
    """A mixture of tight clusters far from the data's centre (components the
    expansion refuses), and rows both at its clusters and between them."""
    n_features = draw(st.integers(2, 60))
    n_components = draw(st.integers(2, 16))
    covariance_type = draw(st.sampled_from(["diag", "spherical"]))
    seed = draw(st.integers(0, 2**31 - 1))
    spread = 10.0 ** draw(st.floats(-4, 0))
    offset = draw(st.sampled_from([0.0, 50.0, -1e3]))
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-30, 30, size=(n_components, n_features)) + offset
    labels = np.arange(4 * n_components) % n_components
    X = centres[labels] + spread * rng.normal(size=(len(labels), n_features))
    # Rows on the segments between two clusters, anywhere along them.
    a = rng.randint(n_components, size=20)
    b = (a + 1 + rng.randint(n_components - 1, size=20)) % n_components
    t = rng.uniform(0, 1, size=(20, 1))
    bridges = centres[a] + t * (centres[b] - centres[a])
    return X, np.vstack([X, bridges]), n_components, covariance_type


@given(data=tight_far_mixtures())
def test_skipped_direct_entries_have_zero_mass(data, expanded_log_probs):
    # The E-step computes a directly computed component's entries only where
    # their mass can survive the normalisation (see
    # _gaussian._surviving_direct_pairs): the responsibilities and
    # log-likelihoods are exactly those of computing every entry.
    from sklearn_em.mixture._suffstats import logsumexp_rows

    X, rows, n_components, covariance_type = data
    model = _fit_or_none(
        GaussianMixtureEM(
            n_components,
            covariance_type=covariance_type,
            random_state=0,
            max_iter=2,
            reg_covar=1e-8,
        ),
        X,
    )
    assume(model is not None)
    every, _, parameters = expanded_log_probs(model, rows)
    assume(not parameters.get("per_component") and len(parameters["direct"]))
    skipped = expanded_log_probs(model, rows, normalised=True)[0]
    every_norm, skipped_norm = logsumexp_rows(every), logsumexp_rows(skipped)
    np.testing.assert_array_equal(skipped_norm, every_norm)
    np.testing.assert_array_equal(skipped, every)
