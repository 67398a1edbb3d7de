"""Tests of the sufficient-statistics engine and of the fused Gaussian E-step."""

import math
import threading
import warnings

import numpy as np
import pytest
import sklearn
from joblib import cpu_count
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

from sklearn_em import BernoulliMixtureEM, GaussianMixtureEM
from sklearn_em.mixture import _gaussian, _suffstats
from sklearn_em.mixture._data import as_data
from sklearn_em.mixture._gaussian import (
    _accumulate_gaussian,
    _centred_features,
    _estimate_log_gaussian_prob,
    _triu_indices,
    _triu_positions,
)
from sklearn_em.mixture._suffstats import (
    _TILE_ROWS,
    chunk_rows,
    logsumexp_rows,
    map_reduce,
    n_threads,
    subtract_centre,
    workspace,
)

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]

# Fits run a fixed number of iterations (tol=0), which never converge.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("n_features", [1, 2, 5, 32])
def test_triu_positions_unpack_packed_triangles(n_features):
    # The expanded moments come packed, the upper triangle row by row; one
    # gather by _triu_positions unpacks them into symmetric matrices.
    rng = np.random.RandomState(0)
    full = rng.normal(size=(3, n_features, n_features))
    full += full.transpose(0, 2, 1)
    iu, ju = _triu_indices(n_features)
    packed = full[:, iu, ju]
    unpacked = np.take(packed, _triu_positions(n_features), axis=1)
    assert_array_equal(unpacked.reshape(full.shape), full)


def _blobs(n_samples=1500, n_features=3, n_components=3, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=4.0, size=(n_components, n_features))
    labels = rng.randint(n_components, size=n_samples)
    return centres[labels] + rng.normal(size=(n_samples, n_features))


def _fitted(X, covariance_type, **kwargs):
    return GaussianMixtureEM(
        n_components=3,
        covariance_type=covariance_type,
        max_iter=3,
        tol=0,
        random_state=0,
        **kwargs,
    )


# ----------------------------------------------------------------------
# logsumexp_rows
def test_logsumexp_rows_matches_scipy():
    rng = np.random.RandomState(0)
    a = rng.normal(scale=50.0, size=(40, 6))
    a[3, 2] = -np.inf
    a[5] = -np.inf  # a row with no mass at all
    a[7, :5] = -np.inf
    expected = logsumexp(a, axis=1)
    probabilities = a.copy()
    log_norm = logsumexp_rows(probabilities)
    assert_allclose(log_norm, expected, rtol=1e-13)
    assert log_norm[5] == -np.inf
    finite = np.isfinite(expected)
    assert_allclose(
        probabilities[finite],
        np.exp(a[finite] - expected[finite, None]),
        rtol=1e-12,
        atol=1e-300,
    )
    assert_allclose(probabilities[finite].sum(axis=1), 1.0, rtol=1e-12)
    assert_array_equal(probabilities[5], 0.0)
    assert_array_equal(probabilities[7], [0, 0, 0, 0, 0, 1])


@pytest.mark.parametrize("n_columns", [1, 2, 3, 7, 8, 9, 16, 17, 40])
def test_row_reductions_are_numpys(n_columns):
    # The row-wise maximum and sum taken column by column (or as a product)
    # are NumPy's reductions along the rows: the maximum exactly, NaN and
    # infinities included; the sum bit for bit below _COLUMN_SUM columns.
    rng = np.random.RandomState(n_columns)
    a = rng.normal(scale=100.0, size=(500, n_columns))
    # (Enough rows for the column-wise argmax.)
    a = np.tile(a, (_suffstats._COLUMN_ARGMAX_ROWS // 500 + 1, 1))
    a[::7, 0] = -np.inf
    a[::11, -1] = np.inf
    a[3] = np.nan
    a[4] = -np.inf
    # Ties (the first maximum is argmax's) and a NaN after a maximum.
    a[5] = 1.0
    a[6, -1] = np.nan
    a[7, :] = a[7, ::-1].max()
    f = np.asfortranarray(a)
    # Row-major, column-major (reduced in one call), strided, float32 both ways.
    for array in (a, f, a[:, ::-1], f[::2], a.astype(np.float32), f.astype(np.float32)):
        assert_array_equal(_suffstats._row_max(array), array.max(axis=1))
        assert_array_equal(_suffstats._row_argmax(array), array.argmax(axis=1))
        finite = np.where(np.isfinite(array), array, 1.0)
        expected = finite.sum(axis=1)
        if n_columns < _suffstats._COLUMN_SUM:
            assert_array_equal(_suffstats._row_sum(finite), expected)
        else:
            # Within rounding of the sum of the magnitudes.
            bound = n_columns * np.finfo(array.dtype).eps * np.abs(finite).sum(axis=1)
            error = np.abs(_suffstats._row_sum(finite) - expected)
            assert np.all(error <= bound)
        assert _suffstats._row_sum(finite).dtype == array.dtype


@pytest.mark.parametrize("n_columns", [1, 2, 3, 8, 17, 64, 200])
@pytest.mark.parametrize("n_rows", [1, 2, 9, 1000, 20_001])
def test_column_sums_are_numpys(n_columns, n_rows):
    # einsum's column sums are ndarray.sum(axis=0)'s bit for bit, in the
    # accumulator's dtype, whatever the layout (strided and Fortran-ordered
    # arrays take NumPy's own reduction), signed zeros and non-finite values
    # included, on values of very different magnitudes (where the order of
    # the additions shows).
    rng = np.random.RandomState(n_columns * n_rows)
    a = rng.normal(size=(n_rows, n_columns)) * np.exp(
        rng.uniform(-30, 30, size=(n_rows, n_columns))
    )
    if n_rows > 2:
        a[:, 0] = -0.0
        a[1, -1] = np.nan if n_columns > 2 else a[1, -1]
        a[2, n_columns // 2] = np.inf
    views = (a, a[::3], a[:, : max(1, n_columns // 2)], a[:, ::2], np.asfortranarray(a))
    for array in views:
        for values in (array, array.astype(np.float32)):
            for dtype in (None, np.float64):
                expected = values.sum(axis=0, dtype=dtype)
                sums = _suffstats.column_sums(values, dtype)
                assert sums.dtype == expected.dtype
                assert_array_equal(sums, expected)
                assert_array_equal(np.signbit(sums), np.signbit(expected))


@pytest.mark.parametrize("n_rows", [10, 63, 64, 3000])
def test_mass_sums_are_float64_column_sums(n_rows):
    # Responsibilities' column sums in float64, by one product where the
    # rows are contiguous (NumPy's reduction otherwise): ndarray.sum's in
    # float64 up to rounding, float32 responsibilities summed exactly cast.
    rng = np.random.RandomState(n_rows)
    resp = rng.dirichlet(np.full(5, 0.3), size=n_rows)
    for values in (resp, resp.astype(np.float32)):
        for view in (values, np.asfortranarray(values), values[::2], values[:, 1:4]):
            exact = np.array([math.fsum(column) for column in view.T.astype(float)])
            sums = _suffstats.mass_sums(view)
            assert sums.dtype == np.float64
            assert_allclose(sums, exact, rtol=1e-14)


@pytest.mark.parametrize("n_columns", [3, 4, 8, 20])
def test_logsumexp_rows_largest_probability_is_exact_alone(n_columns):
    # The shift off zero leaves a row's only finite entry a probability of
    # exactly 1, and a row of equal entries exactly 1 / K.
    a = np.full((2, n_columns), -np.inf)
    a[0, 1] = 12.5
    a[1] = -3.25
    log_norm = logsumexp_rows(a)
    assert_array_equal(a[0], np.eye(n_columns)[1])
    assert_array_equal(a[1], 1.0 / n_columns)
    assert_allclose(log_norm, [12.5, -3.25 + np.log(n_columns)], rtol=1e-15)


@pytest.mark.parametrize("order", ["C", "F"])
def test_logsumexp_rows_of_two_columns_are_the_general_case(order):
    # Two float64 columns take one exponential per row (the larger entry's is
    # exactly 1): the same probabilities and log-norms, up to rounding, as
    # the general case, here run on the same two columns and a third of
    # zero mass. Ties, far entries (zeros below the smallest normal number),
    # impossible ones, and rows without mass (left to the general case).
    rng = np.random.RandomState(0)
    a = rng.normal(size=(3000, 2)) * rng.choice([1, 30, 400, 2000], (3000, 1))
    a[::17, 0] = a[::17, 1]
    a[::23, 1] = -np.inf
    a[::29, 0] = -np.inf
    a[np.isinf(a).all(axis=1), 0] = 0.0  # every row has mass
    a[5, 1] = a[5, 0] - 720.0  # subnormal: zero
    # The first array takes the pair's path, the second (a massless row) not.
    assert _suffstats._logsumexp_pair(a.copy()) is not None
    for rows in (a, np.vstack([a, [[-np.inf, -np.inf]]])):
        pair = np.array(rows, order=order)
        log_norm = logsumexp_rows(pair)
        general = np.hstack([rows, np.full((len(rows), 1), -np.inf)])
        expected = logsumexp_rows(general)
        assert_allclose(log_norm, expected, rtol=1e-15, atol=1e-15)
        assert_allclose(pair, general[:, :2], rtol=1e-15, atol=1e-300)
        assert_array_equal(pair == 0, general[:, :2] == 0)
    assert pair[5, 1] == 0.0
    assert log_norm[-1] == -np.inf and not pair[-1].any()
    assert_allclose(log_norm[:-1], logsumexp(a, axis=1), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("far_fraction", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("n_rows", [4000, 500])
@pytest.mark.parametrize("floor", ["columns", "fit", "prediction"])
def test_exp_above_floor(layout, far_fraction, n_rows, floor):
    # exp(a) to the last bit where a is at or above its column's floor;
    # below it, zero where most entries are (only the others are computed),
    # the array is small or the floor is one above _FAST_EXP_LOG (a fit's
    # E-step without light components), and otherwise exp(a) down to the
    # smallest normal number, zero below, including the entries between it
    # and _FAST_EXP_LOG where many are far below (exponentiated apart). NaN
    # propagates either way.
    rng = np.random.RandomState(0)
    tiny = _suffstats._FLOAT64_LOG_TINY
    floors = {
        "columns": np.array([-44.0, -44.0, tiny]),
        "fit": -44.0,
        "prediction": tiny,
    }[floor]
    a = -rng.uniform(0, 30, size=(n_rows, 3))
    far = rng.uniform(size=(n_rows, 3)) < far_fraction
    a[far] = -rng.uniform(45, 900, size=far.sum())
    a[7, 0], a[11, 1] = np.nan, -np.inf
    if layout == "strided":
        buffer = np.zeros((n_rows, 5))
        buffer[:, ::2] = a
        out = buffer[:, ::2]
    else:
        out = np.array(a, order=layout)
    _suffstats._exp_above(out, floors)
    with np.errstate(under="ignore"):
        exact = np.exp(a)
    above = ~(a < floors)
    assert np.isnan(out[7, 0]) and out[11, 1] == 0
    assert_array_equal(out[above], exact[above])
    small = a.size <= _suffstats._SMALL_EXP
    assert small == (n_rows == 500)
    sparse = np.mean(a[::16] < floors) >= _suffstats._SPARSE_EXP_FRACTION
    assert sparse == (far_fraction == 0.9 and floor != "prediction")
    # Entries between the smallest normal number and _FAST_EXP_LOG.
    band = (a >= tiny) & (a < _suffstats._FAST_EXP_LOG)
    assert band.any() == (far_fraction > 0)
    if floor == "prediction" and not small:
        deep = np.mean(a[::16] < _suffstats._FAST_EXP_LOG)
        assert (deep >= _suffstats._DEEP_EXP_FRACTION) == (far_fraction > 0)
        assert_array_equal(out[band], exact[band])
    below = ~above
    if sparse or small or floor == "fit":
        assert not out[below].any()
    else:
        normal = below & (a >= tiny)
        if floor == "columns":
            assert normal.any() == (far_fraction > 0)
        assert_array_equal(out[normal], exact[normal])
        assert not out[below & ~normal].any()
    if layout == "strided":
        assert not buffer[:, 1::2].any()


def test_negligible_floor_spares_light_components():
    log_w = np.log([0.5, 0.5 - 2.0**-31, 2.0**-31])
    assert_array_equal(
        _suffstats.negligible_floor(log_w),
        [np.log(2.0**-64), np.log(2.0**-64), _suffstats._FLOAT64_LOG_TINY],
    )
    assert _suffstats.negligible_floor(np.log([0.5, 0.5])) == np.log(2.0**-64)


def test_fit_e_step_drops_negligible_masses_only():
    # Separated clusters: the fit's E-step computes about one exponential a
    # row and drops masses below 2^-64 of the row's largest (prediction
    # keeps them); the statistics are the exact ones up to rounding. A
    # component moved away from every row keeps its masses (far below
    # 2^-64, all of them): its E-step runs again without dropping them.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20000, 6)) + 8 * (np.arange(20000) % 3)[:, None]
    gm = GaussianMixtureEM(3, covariance_type="diag", max_iter=2, random_state=0)
    gm.fit(X)
    data = as_data(gm, X, None, reset=False)
    assert not gm._uses_direct_form(data)

    def exact_statistics():
        gm._exact_e_step = True
        try:
            return gm._e_step_statistics(data)
        finally:
            del gm._exact_e_step

    proba = gm.predict_proba(X)
    assert np.mean(proba < 2.0**-64) > 0.6
    assert np.any((proba > 0) & (proba < 2.0**-64))
    chunk = gm._e_step_chunk_function()(X, None)
    assert_allclose(chunk["nk"], exact_statistics()["nk"], rtol=1e-15)
    stats, exact = gm._e_step_statistics(data), exact_statistics()
    for key in stats:
        assert_allclose(stats[key], exact[key], rtol=1e-14, atol=1e-300)

    gm.means_ = gm.means_.copy()
    gm.means_[0] = -14.0
    assert 0 < gm.predict_proba(X)[:, 0].max() < 1e-100
    assert gm._e_step_chunk_function()(X, None)["nk"][0] == 0
    stats, exact = gm._e_step_statistics(data), exact_statistics()
    assert 0 < stats["nk"][0] < 1e-100
    for key in stats:
        assert_allclose(stats[key], exact[key], rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("n_rows", [1, 3000, 40_000])
def test_raise_to_is_maximum_in_place(dtype, layout, n_rows):
    # raise_to takes the maximum with a cached array of the constant, a
    # block at a time (faster than NumPy's maximum with a scalar): the same
    # values, NaN and infinities included, in place, on chunks longer than
    # a block and on strided arrays.
    from sklearn_em.mixture._suffstats import _RAISE_BLOCK, raise_to

    rng = np.random.RandomState(0)
    a = rng.uniform(-300, 10, size=(n_rows, 5)).astype(dtype)
    a.flat[::7] = -np.inf
    a.flat[3::11] = np.nan
    a.flat[5::13] = np.inf
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided":
        a = a[:, ::2]
    if n_rows == 40_000:
        assert a.size > 2 * _RAISE_BLOCK or layout == "strided"
    for value in (dtype(-87.0), -100.5, 0.0):
        b = a.copy()
        expected = np.maximum(a, value)
        result = raise_to(b, value)
        assert result is b
        assert result.dtype == dtype
        assert_array_equal(result, expected)


def test_logsumexp_rows_float32_large_values():
    a = np.array([[1000.0, 1000.0], [-1000.0, -1001.0]], dtype=np.float32)
    expected = logsumexp(a.astype(np.float64), axis=1)
    assert_allclose(logsumexp_rows(a), expected, rtol=1e-6)
    assert a.dtype == np.float32


# ----------------------------------------------------------------------
# Chunking and threads.
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_chunked_statistics_equal_unchunked(covariance_type):
    X = _blobs()
    gm = _fitted(X, covariance_type).fit(X)
    chunk_function = gm._e_step_chunk_function()
    w = np.random.RandomState(1).uniform(0.5, 2.0, size=X.shape[0])
    whole = map_reduce(chunk_function, X, w, rows=X.shape[0])
    for rows in (1, 37, 500):
        chunked = map_reduce(chunk_function, X, w, rows=rows)
        assert chunked.keys() == whole.keys()
        for key in whole:
            assert_allclose(chunked[key], whole[key], rtol=1e-10, atol=1e-9)


def test_working_memory_bounds_chunk_rows():
    n_features, n_components = 16, 16
    row_bytes = 8 * (n_features + 2) * n_components
    with sklearn.config_context(working_memory=1):
        small = chunk_rows(10**6, n_features, n_components, 8)
    large = chunk_rows(10**6, n_features, n_components, 8)
    assert small * row_bytes <= 2**20
    assert small < large < 10**6


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_same_under_small_working_memory(covariance_type):
    # Far more rows than one chunk holds under 1 MiB: many chunks.
    X = _blobs(n_samples=20_000, n_features=8)
    default = _fitted(X, covariance_type).fit(X)
    with sklearn.config_context(working_memory=1):
        assert default._rows(X) < X.shape[0]
        small = _fitted(X, covariance_type).fit(X)
    assert_allclose(small.lower_bounds_, default.lower_bounds_, rtol=1e-10)
    assert_allclose(small.covariances_, default.covariances_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_n_jobs_two_equals_one(covariance_type):
    X = _blobs(n_samples=3000)
    one = _fitted(X, covariance_type, n_jobs=1).fit(X)
    two = _fitted(X, covariance_type, n_jobs=2).fit(X)
    assert two._rows(X) < X.shape[0]  # at least two chunks
    assert_allclose(two.lower_bounds_, one.lower_bounds_, rtol=1e-10)
    assert_allclose(two.means_, one.means_, rtol=1e-10)
    assert_allclose(two.covariances_, one.covariances_, rtol=1e-10)


def test_default_threads_follow_the_blas_limit():
    # n_jobs=None uses the threads BLAS may use, and so honours
    # threadpool_limits (and the variables joblib's process workers set).
    n_cores = cpu_count(only_physical_cores=False)
    with threadpool_limits(limits=1, user_api="blas"):
        assert n_threads(None) == 1
    with threadpool_limits(limits=2, user_api="blas"):
        assert n_threads(None) == min(2, n_cores)
    assert 1 <= n_threads(None) <= n_cores
    # An explicit value is joblib's convention.
    assert n_threads(1) == 1
    assert n_threads(3) == 3
    assert n_threads(-1) == cpu_count()


def _default_threads():
    return n_threads(None)


def test_default_threads_in_joblib_process_workers():
    # joblib's process workers limit BLAS to their share of the cores, so a
    # default fit inside GridSearchCV(n_jobs=2) does not oversubscribe them.
    from joblib import Parallel, delayed

    shares = Parallel(n_jobs=2)(delayed(_default_threads)() for _ in range(2))
    assert shares == [max(1, cpu_count() // 2)] * 2


def test_default_fit_uses_threads_and_equals_one_thread(monkeypatch):
    X = _blobs(n_samples=3000)
    used = []
    original = _suffstats.thread_pool

    def recording(n_jobs):
        used.append(n_jobs)
        return original(n_jobs)

    monkeypatch.setattr(_suffstats, "thread_pool", recording)
    with threadpool_limits(limits=2, user_api="blas"):
        # Data this small is not worth splitting by default...
        _fitted(X, "full").fit(X)
        assert used == []
        # ... but is with an explicit n_jobs, or once it counts as large.
        _fitted(X, "full", n_jobs=2).fit(X)
        assert used and used == [2] * len(used)
        used.clear()
        monkeypatch.setattr(_suffstats, "_MIN_SPLIT_BYTES", 0)
        default = _fitted(X, "full").fit(X)
    expected = min(2, cpu_count(only_physical_cores=False))
    assert used == ([2] * len(used) if expected == 2 else [])
    if expected == 2:
        assert used  # the default fit did map over two threads
    used.clear()
    with threadpool_limits(limits=1, user_api="blas"):
        single = _fitted(X, "full").fit(X)
    assert used == []
    assert_allclose(default.lower_bounds_, single.lower_bounds_, rtol=1e-10)
    assert_allclose(default.covariances_, single.covariances_, rtol=1e-10)


@pytest.mark.parametrize(
    "n_samples", [0, 1, _TILE_ROWS - 1, _TILE_ROWS, _TILE_ROWS + 1, 3 * _TILE_ROWS + 5]
)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_subtract_centre_equals_broadcasting(n_samples, order, dtype):
    rng = np.random.RandomState(0)
    X = np.asarray(rng.normal(size=(n_samples, 5)), dtype=dtype, order=order)
    X_before = X.copy()
    centre = rng.normal(size=5).astype(dtype)
    out = np.full((n_samples, 5), np.nan, dtype=dtype)
    subtract_centre(X, centre, out=out)
    assert_array_equal(out, X - centre)
    assert_array_equal(X, X_before)


def test_thread_pool_is_reused_and_replaced_after_fork(monkeypatch):
    pool = _suffstats.thread_pool(2)
    assert _suffstats.thread_pool(2) is pool
    assert list(pool.map(abs, [-1, -2, -3])) == [1, 2, 3]
    # In a forked child the inherited pool has no threads: a new one is made.
    monkeypatch.setattr(_suffstats.os, "getpid", lambda: -1)
    child_pool = _suffstats.thread_pool(2)
    assert child_pool is not pool
    assert list(child_pool.map(abs, [-4])) == [4]


def test_map_in_threads_runs_items_in_order_and_on_the_caller_too():
    # Two items on two threads: one must wait at the barrier for the other,
    # and with one pool task submitted the other is the calling thread.
    barrier = threading.Barrier(2, timeout=10)
    runners = {}

    def square(item):
        barrier.wait()
        runners[item] = threading.get_ident()
        return item * item

    assert _suffstats.map_in_threads(square, [3, 4], 2) == [9, 16]
    assert threading.get_ident() in runners.values()
    assert len(set(runners.values())) == 2
    # More items than threads, in order; one thread runs them here.
    assert _suffstats.map_in_threads(abs, range(-20, 0), 2) == list(range(20, 0, -1))
    assert _suffstats.map_in_threads(abs, [-1, -2], 1) == [1, 2]
    assert _suffstats.map_in_threads(abs, [], 2) == []
    # The blocks of rows the maps split: contiguous, the first ones longer.
    assert _suffstats.split_range(7, 3) == [slice(0, 3), slice(3, 5), slice(5, 7)]
    assert _suffstats.split_range(2, 3) == [slice(0, 1), slice(1, 2), slice(2, 2)]

    def fail(item):
        if item == 5:
            raise ValueError("item 5")
        return item

    with pytest.raises(ValueError, match="item 5"):
        _suffstats.map_in_threads(fail, range(10), 2)

    # With the pool's threads busy, the calling thread does every item and
    # does not wait for them.
    pool = _suffstats.thread_pool(2)
    release = threading.Event()
    busy = [pool.submit(release.wait, 10) for _ in range(2)]
    try:
        assert _suffstats.map_in_threads(abs, [-1, -2, -3], 2) == [1, 2, 3]
        # (Not waiting for a busy pool: its threads are still held here.)
        assert not any(future.done() for future in busy)
    finally:
        release.set()
        for future in busy:
            future.result()


# ----------------------------------------------------------------------
# The fused E-step against the direct formulas.
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("force_direct", [False, True])
def test_fused_e_step_matches_direct_formulas(
    covariance_type, force_direct, monkeypatch
):
    X = _blobs(n_samples=400)
    gm = _fitted(X, covariance_type).fit(X)
    if force_direct:
        # Every component through the guard's fallback.
        monkeypatch.setattr(
            "sklearn_em.mixture._gaussian._expansion_limit", lambda *args: -1.0
        )
    stats = gm._e_step_chunk_function()(X, None)

    log_prob = _estimate_log_gaussian_prob(
        X, gm.means_, gm.precisions_cholesky_, covariance_type
    ) + np.log(gm.weights_)
    expected_ll = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - expected_ll[:, None])
    expected = _accumulate_gaussian(
        X, resp, shift=gm.means_, covariance_type=covariance_type
    )
    assert_allclose(stats["log_likelihood"], expected_ll.sum(), rtol=1e-12)
    assert stats["sum_weight"] == X.shape[0]
    if covariance_type == "tied":
        # The tied moments are split over the components: only their sum,
        # the tied scatter, is meaningful.
        stats["sxx"], expected["sxx"] = stats["sxx"].sum(0), expected["sxx"].sum(0)
    if covariance_type == "spherical":
        # Split equally over the features: only their mean is meaningful.
        stats["sxx"], expected["sxx"] = stats["sxx"].mean(1), expected["sxx"].mean(1)
    for key in ("nk", "sx", "sxx"):
        assert_allclose(stats[key], expected[key], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("force_direct", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunk_statistics_survive_the_next_chunk(
    covariance_type, force_direct, dtype, monkeypatch
):
    # The chunk function reuses its thread's feature and log-probability
    # buffers: nothing it returns may be a view of them.
    X = _blobs(n_samples=600).astype(dtype)
    gm = _fitted(X, covariance_type).fit(X)
    if force_direct:
        monkeypatch.setattr(
            "sklearn_em.mixture._gaussian._expansion_limit", lambda *args: -1.0
        )
    chunk_function = gm._e_step_chunk_function()
    first = chunk_function(X[:300], None)
    kept = {key: np.array(value, copy=True) for key, value in first.items()}
    chunk_function(X[300:] * 3 + 1, None)
    for key, value in kept.items():
        assert_array_equal(first[key], value)
    # And a pass reusing the buffers equals one on fresh arrays.
    reused = chunk_function(X[:300], None)
    for key, value in kept.items():
        assert_array_equal(reused[key], value)


def test_workspace_is_reused_per_thread_and_grown():
    a = workspace("test", (3, 4), np.float64)
    b = workspace("test", (2, 5), np.float64)
    assert np.shares_memory(a, b)  # same buffer, another shape
    bigger = workspace("test", (10, 10), np.float64)
    assert bigger.shape == (10, 10) and not np.shares_memory(a, bigger)
    other_dtype = workspace("test", (2, 5), np.float32)
    assert other_dtype.dtype == np.float32
    # Another thread gets its own buffer.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as executor:
        elsewhere = executor.submit(workspace, "test", (2, 5), np.float32).result()
    assert not np.shares_memory(elsewhere, other_dtype)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("working_memory", [2, 4])
def test_chunk_features_fit_the_working_memory(covariance_type, working_memory):
    # The quadratic features of full covariances grow as n_features ** 2:
    # the chunk size accounts for them, so working_memory bounds them (with
    # enough components for 'full' to build them; see
    # test_per_component_form_matches_the_expanded_form).
    n_features = 48
    X = np.zeros((50_000, n_features))
    gm = GaussianMixtureEM(49, covariance_type=covariance_type, n_jobs=1)
    assert not gm._uses_per_component_form(n_features, np.float64)
    with sklearn.config_context(working_memory=working_memory):
        rows = gm._rows(X)
    features = _centred_features(
        X[:rows], np.ones(n_features), covariance_type, np.eye(n_features)
    )
    if isinstance(features, tuple):
        # 'diag': (z ** 2, z), two blocks of the chunk's shape; 'spherical'
        # (wide data): (|z|^2, z), with |z|^2 summed from the squares.
        assert len(features) == 2
        nbytes = sum(block.nbytes for block in features)
        if covariance_type == "spherical":
            nbytes += features[1].nbytes
    else:
        nbytes = features.nbytes
    assert rows > 64  # above the floor, so the budget decides
    assert nbytes <= working_memory * 2**20


# ----------------------------------------------------------------------
# BLAS's process-wide thread count
def _blas_threads():
    return [
        info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"
    ]


def _concurrent_rounds(fit, n_rounds, n_threads=8):
    """Run ``fit(i)`` in ``n_threads`` threads at once, ``n_rounds`` times;
    return BLAS's thread counts after the first round that changed them."""
    before = _blas_threads()
    for _ in range(n_rounds):
        threads = [threading.Thread(target=fit, args=(i,)) for i in range(n_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if _blas_threads() != before:
            break
    return before, _blas_threads()


def test_concurrent_fits_leave_blas_threads_unchanged():
    # Each fit limits BLAS to one thread around its chunks, factorisations
    # and k-means initialisation; overlapping fits used to leave it at one
    # thread for the whole process (a stale "original" restored last).
    if max(_blas_threads()) == 1:
        pytest.skip("BLAS already runs one thread: nothing could leak")
    X = _blobs(n_samples=300)
    Xb = (X > 0).astype(np.float64)
    failures = []

    def fit(i):
        try:
            if i % 4 == 3:
                BernoulliMixtureEM(3, random_state=i).fit(Xb)
            else:
                covariance_type = COVARIANCE_TYPES[i % 4]
                _fitted(X, covariance_type).set_params(random_state=i).fit(X)
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    before, after = _concurrent_rounds(fit, n_rounds=15)
    assert not failures
    assert after == before


def test_dask_threaded_scheduler_leaves_blas_threads_unchanged():
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    if max(_blas_threads()) == 1:
        pytest.skip("BLAS already runs one thread: nothing could leak")
    X = da.from_array(_blobs(n_samples=1200), chunks=100)

    def fit(i):
        _fitted(X, COVARIANCE_TYPES[i % 4]).set_params(random_state=i).fit(X)

    with dask.config.set(scheduler="threads"):
        before, after = _concurrent_rounds(fit, n_rounds=3, n_threads=4)
    assert after == before


def test_blas_window_is_shared_and_reports_the_original():
    # Nested and overlapping limits form one window: BLAS is limited while
    # any is open, restored when the last closes, and the default number of
    # chunk threads inside it is the one outside.
    if max(_blas_threads()) == 1:
        pytest.skip("BLAS already runs one thread")
    outside = _blas_threads()
    default = n_threads(None)
    entered, leave = threading.Event(), threading.Event()

    def other_thread():
        with _suffstats.single_threaded_blas():
            entered.set()
            leave.wait()

    thread = threading.Thread(target=other_thread)
    with _suffstats.single_threaded_blas():
        assert set(_blas_threads()) == {1}
        assert n_threads(None) == default
        thread.start()
        entered.wait()
    # The other thread still holds the window.
    assert set(_blas_threads()) == {1}
    leave.set()
    thread.join()
    assert _blas_threads() == outside


def test_held_blas_limit_spans_windows_and_is_restored():
    # Within a hold, the limit set by the first window stays between windows
    # (no second setting), release() lifts it, and BLAS is back to its
    # own count when the hold ends.
    if max(_blas_threads()) == 1:
        pytest.skip("BLAS already runs one thread")
    outside = _blas_threads()
    with _suffstats.held_blas_limit():
        assert _blas_threads() == outside
        with _suffstats.single_threaded_blas():
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}
        assert n_threads(None) == min(_suffstats._n_cpus(), *outside)
        _suffstats.release_blas_limit()
        assert _blas_threads() == outside
        with _suffstats.single_threaded_blas():
            assert set(_blas_threads()) == {1}
    assert _blas_threads() == outside


def test_fit_sets_the_blas_limit_once_not_per_iteration(blas_limit_sets):
    # An EM loop sets the limit once for all its iterations, not once a
    # window.
    if max(_blas_threads()) == 1:
        pytest.skip("BLAS already runs one thread")
    calls = blas_limit_sets
    outside = _blas_threads()
    X = _blobs(n_samples=20000)
    gm = GaussianMixtureEM(3, max_iter=30, tol=0, random_state=0).fit(X)
    assert gm.n_iter_ == 30
    # One hold spans the initialisation's windows and the loop's.
    assert len(calls) == 1
    assert _blas_threads() == outside
    # A prediction on one chunk leaves BLAS its threads (see
    # BaseMixtureEM._blas_limit); on several, one window for all of them.
    gm.predict_proba(X)
    assert len(calls) == 1
    X_large = np.tile(X, (5, 1))
    assert gm._rows(X_large) < len(X_large)
    gm.predict_proba(X_large)
    assert len(calls) == 2
    assert _blas_threads() == outside
    # An explicit n_jobs keeps BLAS at one thread on one chunk too.
    gm.set_params(n_jobs=1).predict_proba(X)
    assert len(calls) == 3
    assert _blas_threads() == outside


def test_small_fits_and_predictions_leave_blas_alone(blas_limit_sets):
    # Where every product is below the size at which BLAS starts threads,
    # setting and restoring its limit is all the limit would do:
    # a fit and predictions on a few hundred rows never set it.
    calls = blas_limit_sets
    outside = _blas_threads()
    X = _blobs(n_samples=300)
    for covariance_type in ("full", "tied", "diag", "spherical"):
        gm = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0)
        gm.fit(X).predict_proba(X)
        gm.score_samples(X)
    assert calls == []
    assert _blas_threads() == outside
    # scikit-learn's KMeans (the Bernoulli mixture's initialisation) limits
    # BLAS itself: it runs inside a real window, the fit's only one.
    BernoulliMixtureEM(3, random_state=0).fit(X > 0).predict(X > 0)
    assert len(calls) == 1
    assert _blas_threads() == outside
    # Another thread's window is a real one meanwhile: skipping is per thread.
    seen = []

    def other_thread():
        with _suffstats.single_threaded_blas():
            seen.append(_blas_threads())

    with _suffstats.blas_limit_for(0):
        with _suffstats.single_threaded_blas():
            assert len(calls) == 1
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(calls) == 2
    if max(outside) > 1:
        assert set(seen[0]) == {1}
    assert _blas_threads() == outside


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize(
    "shape", [(300, 16, 12), (100, 200, 12), (100, 16, 40), (2000, 5, 3), (60, 3, 2)]
)
def test_diagonal_fits_count_their_largest_product(monkeypatch, covariance_type, shape):
    # The window policy of diagonal and spherical fits counts the E-step's
    # products as they are run, two blocks of n_features columns (not a
    # row's every value and temporary, which had made fits of a few hundred
    # rows set and restore BLAS's limit for products that BLAS runs on one
    # thread): no product of a fit or a prediction is larger than the count.
    n_samples, n_features, n_components = shape
    X = _blobs(n_samples, n_features, n_components)
    gm = GaussianMixtureEM(
        n_components, covariance_type=covariance_type, max_iter=3, tol=0
    )
    sizes = []

    def spying(original):
        def spy(a, b, *args, **kwargs):
            a_, b_ = np.asarray(a), np.asarray(b)
            m = a_.shape[-2] if a_.ndim >= 2 else 1
            n = b_.shape[-1] if b_.ndim >= 2 else 1
            sizes.append(m * a_.shape[-1] * n)
            return original(a, b, *args, **kwargs)

        return spy

    for name in ("dot", "matmul"):
        monkeypatch.setattr(np, name, spying(getattr(np, name)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.set_params(random_state=0).fit(X)
    gm.predict_proba(X)
    assert sizes
    assert max(sizes) <= gm._largest_product(n_samples, n_features)
    # With K components and D features, about n D K (n 2 D K for narrow
    # 'diag', one product of inner dimension 2 D): these shapes' fits are
    # under the size at which BLAS starts threads, or over it, as counted.
    row_features = n_features + 1 if covariance_type == "spherical" else 2 * n_features
    assert gm._largest_product(n_samples, n_features) <= (
        n_samples * row_features * n_components
    )


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_small_diagonal_fits_leave_blas_alone(blas_limit_sets, covariance_type):
    # 300 x 16 in 12 components and 100 x 200 in 12: every product is under
    # the size at which BLAS starts threads, so the fits set no limit (they
    # had, at ~0.3 ms each, a tenth of such a fit); 20,000 x 16 in 3 holds it.
    outside = _blas_threads()
    for n_samples, n_features, n_components in [(300, 16, 12), (100, 200, 12)]:
        X = _blobs(n_samples, n_features, n_components)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            GaussianMixtureEM(
                n_components, covariance_type=covariance_type, random_state=0
            ).fit(X).predict_proba(X)
    assert blas_limit_sets == []
    assert _blas_threads() == outside
    if max(outside) > 1:
        X = _blobs(20_000, 16, 3)
        GaussianMixtureEM(3, covariance_type=covariance_type, max_iter=2).fit(X)
        assert len(blas_limit_sets) == 1
        assert _blas_threads() == outside


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "tied_diag"])
def test_wide_one_chunk_fits_with_many_components_use_blas_threads(
    blas_limit_sets, monkeypatch, covariance_type
):
    # 1,000 x 200 in 40 diagonal components: one chunk whose E-step products
    # (8 million multiply-adds) are faster on BLAS's threads, and an M-step
    # without LAPACK. Every E-step runs on BLAS's own thread count; the
    # k-means initialisation keeps the fit's limit (set once). The model is
    # that of a fit on one BLAS thread.
    outside = _blas_threads()
    X = _blobs(1000, 200, 40)
    params = dict(covariance_type=covariance_type, max_iter=3, tol=0, random_state=0)
    gm = GaussianMixtureEM(40, **params)
    assert gm._fits_on_blas_threads(as_data(gm, X, None, reset=False))
    seen = {"e_step": []}

    def recording(function, key):
        def record(*args, **kwargs):
            seen[key].append(_blas_threads())
            return function(*args, **kwargs)

        return record

    original = _gaussian._gaussian_e_step_chunk
    monkeypatch.setattr(
        _gaussian, "_gaussian_e_step_chunk", recording(original, "e_step")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
        assert len(seen["e_step"]) >= gm.n_iter_ == 3
        assert all(threads == outside for threads in seen["e_step"])
        assert len(blas_limit_sets) == 1
        assert _blas_threads() == outside
        # An explicit n_jobs keeps the limit (and the model, up to rounding).
        seen["e_step"].clear()
        single = GaussianMixtureEM(40, n_jobs=1, **params).fit(X)
        if max(outside) > 1:
            assert all(set(threads) == {1} for threads in seen["e_step"])
    assert_allclose(gm.means_, single.means_, rtol=1e-10, atol=1e-10)
    assert_allclose(gm.covariances_, single.covariances_, rtol=1e-9)
    assert_allclose(gm.lower_bound_, single.lower_bound_, rtol=1e-12)
    # No fit that large takes the direct form (the rule does not check it):
    # its largest limit, 3 x _DIRECT_VALUES differences, is far below the
    # threaded size even counted at two features' products a feature.
    assert 2 * 3 * _gaussian._DIRECT_VALUES < _gaussian._THREADED_FIT_WORK
    # Not for 12 components (BLAS's small-matrix blocks, on one thread), full
    # covariances (SciPy's LAPACK in the M-step), float32 data, several
    # chunks, or products under the size.
    for n_components, kind, dtype, n_samples in [
        (12, covariance_type, np.float64, 1000),
        (40, "full", np.float64, 300),
        (40, covariance_type, np.float32, 1000),
        (40, covariance_type, np.float64, 100_000),
        (40, covariance_type, np.float64, 300),
    ]:
        other = GaussianMixtureEM(n_components, covariance_type=kind)
        rows = np.tile(X, (100, 1))[:n_samples].astype(dtype)
        data = as_data(other, rows, None, reset=False)
        assert not other._fits_on_blas_threads(data)
    assert _blas_threads() == outside


@pytest.mark.parametrize(
    "covariance_type, n_components", [("full", 1), ("full", 3), ("tied", 1)]
)
def test_fits_with_large_factor_products_hold_the_blas_limit(
    blas_limit_sets, monkeypatch, covariance_type, n_components
):
    # 569 x 30 with few components: the E-step's product over the components
    # is small, but the per-component form's (and 'tied''s) products with
    # each 30 x 30 factor are above the size at which OpenBLAS starts its
    # threads. Counted as the former alone, such fits ran with BLAS's own
    # threads, 10-15x slower than with one (8-14 ms an iteration, not 1).
    if max(_blas_threads()) == 1:
        pytest.skip("BLAS already runs one thread")
    outside = _blas_threads()
    X = _blobs(n_samples=569, n_features=30, n_components=3)
    gm = GaussianMixtureEM(
        n_components, covariance_type=covariance_type, max_iter=3, random_state=0
    )
    n_samples, n_features = X.shape
    assert gm._largest_product(n_samples, n_features) >= n_samples * n_features**2
    assert n_samples * n_features**2 >= _suffstats._BLAS_ONE_THREAD_WORK
    seen = []
    original = _gaussian._estimate_gaussian_parameters

    def recording(*args, **kwargs):
        seen.append(_blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(_gaussian, "_estimate_gaussian_parameters", recording)
    gm.fit(X)
    assert len(blas_limit_sets) == 1
    # Every M-step (between the chunks' windows) ran under the held limit.
    assert seen and all(set(threads) == {1} for threads in seen)
    assert _blas_threads() == outside
    # A prediction calls NumPy's BLAS alone (no factorisations in SciPy's):
    # there setting the limit would cost more than BLAS's threads do.
    gm.predict_proba(X)
    assert len(blas_limit_sets) == 1


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_fits_with_wide_factorisations_hold_the_blas_limit(
    blas_limit_sets, covariance_type
):
    # 30 rows in 64 dimensions: every product of the E-step is small, but
    # the M-step's triangular solve with 64 right-hand sides wakes SciPy's
    # OpenBLAS threads (a fit of 10 iterations took twice as long). The fit
    # holds the limit; at 40 features, and for diagonal covariances, it
    # does not (setting it would cost more).
    if max(_blas_threads()) == 1:
        pytest.skip("BLAS already runs one thread")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 64))
    gm = GaussianMixtureEM(3, covariance_type=covariance_type, max_iter=3)
    assert gm._largest_product(30, 64) >= _suffstats._BLAS_ONE_THREAD_WORK
    gm.fit(X)
    assert len(blas_limit_sets) == 1
    GaussianMixtureEM(3, covariance_type=covariance_type, max_iter=3).fit(X[:, :40])
    GaussianMixtureEM(3, covariance_type="diag", max_iter=3).fit(X)
    assert len(blas_limit_sets) == 1


def test_logsumexp_rows_makes_no_subnormal_probabilities():
    # A probability below the smallest normal number is a subnormal, on which
    # the products of the M-step run many times slower: in float32 it is
    # raised to e^20 times that number, far below rounding.
    tiny = np.finfo(np.float32).tiny
    gap = np.log(tiny)  # exp(gap) relative to the row's largest: subnormal
    floor = np.exp(20.0) * tiny
    a = np.array(
        [[0.0, gap - 1.0, gap + 30.0, -np.inf], [-np.inf] * 4], dtype=np.float32
    )
    log_norm = _suffstats.logsumexp_rows(a)
    assert_allclose(a[0, 1], floor, rtol=1e-4)
    assert a[0, 3] == 0  # an impossible component stays impossible
    assert_allclose(a[0, 2], np.exp(gap + 30.0), rtol=1e-4)
    assert_allclose(log_norm[0], 0.0, atol=1e-30)
    assert not np.any((a > 0) & (a < tiny))
    # A row without mass keeps zero probabilities and a log-norm of -inf.
    assert_array_equal(a[1], 0.0)
    assert log_norm[1] == -np.inf
    # float64 keeps scikit-learn's exact values, zeros included, but for
    # subnormal ones, which become zero.
    b = np.array([[0.0, -800.0, -720.0, -700.0]])
    _suffstats.logsumexp_rows(b)
    assert b[0, 1] == 0.0 and b[0, 2] == 0.0
    assert_allclose(b[0, 3], np.exp(-700.0), rtol=1e-12)
    # Impossible components and massless rows, in float64 too.
    c = np.array([[0.0, -np.inf], [-np.inf, -np.inf]])
    log_norm = _suffstats.logsumexp_rows(c)
    assert_array_equal(c, [[1.0, 0.0], [0.0, 0.0]])
    # (Up to the rounding of the shift that keeps exp's argument off zero.)
    assert_allclose(log_norm, [0.0, -np.inf], atol=1e-15)


def test_map_reduce_memory_does_not_grow_with_the_number_of_chunks():
    # Each chunk returns 1 MiB of statistics; 64 chunks on one thread must
    # not hold them all before adding them up.
    import tracemalloc

    X = np.zeros((64 * 10, 2))

    def chunk_function(X_chunk, w_chunk):
        return {"s": np.full(2**17, float(len(X_chunk)))}

    tracemalloc.start()
    try:
        total = _suffstats.map_reduce(chunk_function, X, n_jobs=1, rows=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_array_equal(total["s"], np.full(2**17, 640.0))
    assert peak < 8 * 2**20


@pytest.mark.parametrize(
    "n_samples, n_features, n_components",
    [(3000, 40, 1), (3000, 40, 3), (8000, 64, 70)],
)
def test_per_component_form_matches_the_expanded_form(
    monkeypatch, n_samples, n_features, n_components
):
    # 'full' float64 with few components next to the features skips the
    # quadratic features (see _prefer_per_component; from 64 features up to
    # K <= D^2 / 40, where 70 components on 8,000 rows are all stacked, in
    # groups of 16 of a column block): the same statistics and the same
    # predictions as the expanded form, and as a float64 reference.
    dtype = np.float64
    from sklearn_em.mixture import _gaussian

    rng = np.random.RandomState(0)
    X = rng.normal(size=(n_samples, n_features))
    X += 3 * (np.arange(n_samples) % 3)[:, None]
    X = X.astype(dtype)
    gm = GaussianMixtureEM(n_components, random_state=0, max_iter=3, tol=0)
    gm.fit(X)  # (ConvergenceWarning ignored module-wide)
    assert gm._uses_per_component_form(n_features, dtype)
    assert gm._uses_per_component_form(n_features, np.float32)
    data = as_data(gm, X, None, reset=False, dtype=gm._dtype())
    per_component = gm._e_step_statistics(data)
    proba = gm.predict_proba(X)
    monkeypatch.setattr(_gaussian, "_prefer_per_component", lambda *args: False)
    assert not gm._uses_per_component_form(n_features, dtype)
    expanded = gm._e_step_statistics(data)
    # A float64 reference of the same E-step.
    X64 = X.astype(np.float64)
    log_prob = _gaussian._estimate_log_gaussian_prob(
        X64,
        gm.means_.astype(np.float64),
        gm.precisions_cholesky_.astype(np.float64),
        "full",
    ) + np.log(gm.weights_.astype(np.float64))
    resp = np.exp(log_prob - logsumexp(log_prob, axis=1)[:, None])
    reference = _brute_force_statistics(X64, resp, gm.means_)
    rtol = 1e-9
    for key in ("nk", "sx", "sxx"):
        scale = np.abs(reference[key]).max()
        assert_allclose(
            per_component[key], reference[key], rtol=rtol, atol=rtol * scale
        )
        assert_allclose(expanded[key], reference[key], rtol=rtol, atol=rtol * scale)
    assert_allclose(
        per_component["log_likelihood"], logsumexp(log_prob, axis=1).sum(), rtol=rtol
    )
    assert_allclose(gm.predict_proba(X), proba, atol=10 * rtol)
    assert_allclose(proba, resp, atol=10 * rtol)


@pytest.mark.parametrize("vecdot", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("length", [7, 16, 32])
def test_last_axis_squares(monkeypatch, vecdot, dtype, length):
    # The stacked products' norms: np.vecdot where NumPy has it and the
    # blocks are long enough, einsum otherwise; both the sums of squares,
    # written to ``out`` when given.
    if not vecdot:
        monkeypatch.setattr(_gaussian, "_VECDOT", None)
    elif _gaussian._VECDOT is None:
        pytest.skip("NumPy without vecdot")
    a = np.random.RandomState(0).normal(size=(50, 3, length)).astype(dtype)
    rtol = 1e-14 if dtype == np.float64 else 1e-6
    expected = np.array([[math.fsum(v * v) for v in row] for row in a])
    assert_allclose(_gaussian._last_axis_squares(a), expected, rtol=rtol)
    out = np.full((60, 3), np.nan, dtype=dtype)
    result = _gaussian._last_axis_squares(a, out=out[5:55])
    assert np.shares_memory(result, out)
    assert_allclose(out[5:55], expected, rtol=rtol)
    assert np.isnan(out[:5]).all() and np.isnan(out[55:]).all()


@pytest.mark.parametrize(
    "covariance_type",
    ["full", "tied", "diag", "spherical", "tied_diag", "tied_spherical"],
)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("feature_major", [True, False])
def test_direct_small_e_step_matches_the_fused_form(
    covariance_type, weighted, feature_major, monkeypatch
):
    # Small fits take _direct_e_step_chunk (every x - mu_k at once), larger
    # ones the fused form: the same statistics, and fits that agree but for
    # rounding. Both layouts of the differences (see test_accuracy.py).
    monkeypatch.setattr(_gaussian, "_feature_major", lambda *shape: feature_major)
    X = _blobs(n_samples=400, n_features=4, n_components=3)
    sample_weight = np.random.RandomState(1).uniform(0.5, 2, size=len(X))
    sample_weight = sample_weight if weighted else None
    gm = GaussianMixtureEM(
        3, covariance_type=covariance_type, random_state=0, max_iter=2
    ).fit(X, sample_weight=sample_weight)
    data = as_data(gm, X, sample_weight, reset=False, dtype=np.float64)
    assert gm._uses_direct_form(data)
    calls = []
    original = _gaussian._direct_e_step_chunk

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_gaussian, "_direct_e_step_chunk", counting)
    direct = gm._e_step_statistics(data)
    assert calls
    with monkeypatch.context() as patch:
        patch.setattr(_gaussian, "_DIRECT_VALUES", 0)
        patch.setattr(_gaussian, "_DIRECT_TIED_VALUES", 0)
        assert not gm._uses_direct_form(data)
        fused = gm._e_step_statistics(data)
    assert len(calls) == 1
    for key in ("nk", "sx", "log_likelihood", "sum_weight"):
        assert_allclose(direct[key], fused[key], rtol=1e-11)
    sxx_direct, sxx_fused = direct["sxx"], fused["sxx"]
    if covariance_type.endswith("spherical"):
        # Only the mean over the features is defined.
        sxx_direct, sxx_fused = sxx_direct.mean(axis=1), sxx_fused.mean(axis=1)
    if covariance_type == "tied":
        # Only the sum over the components (the fused form splits it).
        sxx_direct, sxx_fused = sxx_direct.sum(axis=0), sxx_fused.sum(axis=0)
    assert_allclose(sxx_direct, sxx_fused, rtol=1e-11, atol=1e-9)
    # Against the definition, around the means.
    engine = _gaussian._engine_covariance_type(covariance_type)
    log_prob = _estimate_log_gaussian_prob(
        X,
        gm.means_,
        _gaussian._per_component(gm.precisions_cholesky_, covariance_type, 3),
        engine,
    ) + np.log(gm.weights_)
    resp = np.exp(log_prob - logsumexp(log_prob, axis=1)[:, None])
    if weighted:
        resp *= data.sample_weight[:, None]
    reference = _brute_force_statistics(X, resp, gm.means_)
    assert_allclose(direct["nk"], reference["nk"], rtol=1e-11)
    assert_allclose(direct["sx"], reference["sx"], rtol=1e-11, atol=1e-9)
    expected = reference["sxx"]
    if engine == "tied":
        expected = expected.sum(axis=0)
    if engine in ("diag", "spherical"):
        expected = np.einsum("kdd->kd", expected)
    if engine == "spherical":
        expected = expected.mean(axis=1)
    assert_allclose(sxx_direct, expected, rtol=1e-11, atol=1e-9)
    # Whole fits agree.
    params = dict(covariance_type=covariance_type, random_state=0, tol=1e-8)
    small = GaussianMixtureEM(3, **params).fit(X, sample_weight=sample_weight)
    with monkeypatch.context() as patch:
        patch.setattr(_gaussian, "_DIRECT_VALUES", 0)
        patch.setattr(_gaussian, "_DIRECT_TIED_VALUES", 0)
        large = GaussianMixtureEM(3, **params).fit(X, sample_weight=sample_weight)
    assert small.n_iter_ == large.n_iter_
    for name in ("weights_", "means_", "covariances_"):
        assert_allclose(getattr(small, name), getattr(large, name), rtol=1e-8)
    assert_allclose(small.lower_bound_, large.lower_bound_, rtol=1e-12)


def test_direct_form_layout_by_shape():
    # Feature-major where the sample-major loops would be short: several
    # components, few features, many samples per feature; the transposed
    # copy is not worth it with one component or wide rows.
    assert _gaussian._feature_major(300, 4, 12)
    assert _gaussian._feature_major(8 * 16, 16, 2)
    assert not _gaussian._feature_major(8 * 16 - 1, 16, 2)
    assert not _gaussian._feature_major(300, 4, 1)
    assert not _gaussian._feature_major(1000, 32, 2)
    assert not _gaussian._feature_major(30, 200, 3)


def test_direct_small_e_step_only_where_it_is_small_complete_float64():
    X = _blobs(n_samples=400, n_features=4, n_components=3)
    gm = GaussianMixtureEM(3, covariance_type="diag", max_iter=1).fit(X)
    assert gm._uses_direct_form(as_data(gm, X, reset=False))
    # More differences than _DIRECT_VALUES: the fused form.
    big = np.tile(X, (50, 1))
    assert not gm._uses_direct_form(as_data(gm, big, reset=False))
    # Diagonal covariances from 16 features: up to twice as many.
    wide = np.tile(X, (1, 4))
    wide_gm = GaussianMixtureEM(3, covariance_type="diag", max_iter=1).fit(wide)
    limit = _gaussian._DIRECT_VALUES
    for n_samples, expected in [(2 * limit // 48, True), (2 * limit // 48 + 1, False)]:
        rows = np.resize(wide, (n_samples, 16))
        assert (
            wide_gm._uses_direct_form(as_data(wide_gm, rows, reset=False)) is expected
        )
    # With fewer than _DIRECT_FEW_ROWS_PER_COMPONENT rows per component, three
    # times as many; not with more rows, however few per feature.
    many = GaussianMixtureEM(60, covariance_type="diag", max_iter=1).fit(
        np.resize(wide, (240, 16))
    )
    assert 3 * limit // (60 * 16) < _gaussian._DIRECT_FEW_ROWS_PER_COMPONENT * 60
    for n_samples, expected in [
        (3 * limit // (60 * 16), True),
        (3 * limit // (60 * 16) + 1, False),
    ]:
        rows = np.resize(wide, (n_samples, 16))
        assert many._uses_direct_form(as_data(many, rows, reset=False)) is expected
    wider = np.tile(X, (1, 32))
    wider_gm = GaussianMixtureEM(3, covariance_type="diag", max_iter=1).fit(wider)
    for n_samples, expected in [
        (2 * limit // (3 * 128), True),
        (2 * limit // (3 * 128) + 1, False),
    ]:
        rows = np.resize(wider, (n_samples, 128))
        assert (
            wider_gm._uses_direct_form(as_data(wider_gm, rows, reset=False)) is expected
        )
    # Missing values: their own kernels.
    holed = X.copy()
    holed[0, 0] = np.nan
    assert not gm._uses_direct_form(as_data(gm, holed, reset=False))
    # float32 data takes it too (computed in float64).
    gm32 = GaussianMixtureEM(3, covariance_type="diag", max_iter=1).fit(
        X.astype(np.float32)
    )
    assert gm32._uses_direct_form(as_data(gm32, X.astype(np.float32), reset=False))
    for covariance_type in ("full", "tied"):
        other = GaussianMixtureEM(3, covariance_type=covariance_type, max_iter=1)
        other.fit(X)
        assert other._uses_direct_form(as_data(other, X, reset=False))
        assert not other._uses_direct_form(as_data(other, big, reset=False))


def _brute_force_statistics(X, resp, shift):
    """N_k, sum_n r_nk x_n and sum_n r_nk (x_n - c_k)(x_n - c_k)^T by einsum."""
    diff = X[:, None, :] - shift[None, :, :]
    return {
        "nk": resp.sum(axis=0),
        "sx": resp.T @ X,
        "sxx": np.einsum("nk,nkd,nke->kde", resp, diff, diff),
    }


@pytest.mark.parametrize("n_features", [5, 64, 70, 200])
def test_triangular_factors_skip_their_zero_blocks(n_features):
    # The per-component E-step multiplies column blocks of a triangular
    # factor by the rows it is non-zero in: the same norms as the whole
    # product, for upper (fitted) and lower (from given precisions) factors.
    rng = np.random.RandomState(0)
    diff = rng.normal(size=(300, n_features))
    A = rng.normal(size=(n_features, n_features))
    upper = np.triu(A) + n_features * np.eye(n_features)
    general = A + n_features * np.eye(n_features)
    out = np.empty_like(diff)
    for factor, triangle in [(upper, "upper"), (upper.T, "lower"), (general, None)]:
        assert _gaussian._triangle(factor) == triangle
        expected = np.einsum("ij,ij->i", diff @ factor, diff @ factor)
        norms = _gaussian._whitened_norms(diff, factor, triangle, out)
        assert_allclose(norms, expected, rtol=1e-12)
    # Every block skipped where it is zero: a wrong triangle gives other norms.
    wrong = _gaussian._whitened_norms(diff, upper, "lower", out)
    if n_features >= 2 * _gaussian._TRIANGLE_BLOCK:
        assert not np.allclose(wrong, np.einsum("ij,ij->i", diff @ upper, diff @ upper))


@pytest.mark.parametrize("n_features", [5, 64, 70, 200])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stacked_factors_give_each_components_own_norms(n_features, dtype):
    # Several components' column blocks side by side, one product a group:
    # every component's squared norms are those of its own blocked product
    # (the same sums of products, which BLAS may round in another order for
    # another shape of product), for upper, lower and general factors, with
    # groups split at _STACKED_COLUMNS and components left out (the direct
    # ones).
    rng = np.random.RandomState(0)
    n_components = 20
    rtol = 1e-13 if dtype == np.float64 else 1e-5
    features = rng.normal(size=(300, n_features + 1)).astype(dtype)
    A = rng.normal(size=(n_components, n_features + 1, n_features))
    out = np.empty((300, n_features), dtype=dtype)
    for triangle in ("upper", "lower", None):
        leading = _gaussian._bias_first(triangle)
        factors = A.copy()
        square = factors[:, leading : leading + n_features]
        if triangle == "upper":
            square[...] = np.triu(square)
        elif triangle == "lower":
            square[...] = np.tril(square)
        factors = factors.astype(dtype)
        components = np.delete(np.arange(n_components), [0, 7, 19])
        stacked = _gaussian._stacked_factors(factors, components, triangle)
        width = (
            n_features
            if triangle is None or n_features < 2 * _gaussian._TRIANGLE_BLOCK
            else _gaussian._TRIANGLE_BLOCK * (1 if n_features < 192 else 2)
        )
        assert len(stacked["blocks"]) == -(-n_features // width)
        for rows, groups in stacked["blocks"]:
            # (The last block of a triangular factor may be narrower.)
            members, block = groups[0]
            block_width = block.shape[1] // (members.stop - members.start)
            assert block.shape[0] == len(features[0, rows])
            per_group = max(1, _gaussian._STACKED_COLUMNS // block_width)
            assert len(groups) == -(-len(components) // per_group)
        got_components, norms = _gaussian._stacked_whitened_norms(features, stacked)
        assert_array_equal(got_components, components)
        assert norms.dtype == dtype
        for j, k in enumerate(components):
            expected = _gaussian._whitened_norms(
                features, factors[k], triangle, out, leading
            )
            assert_allclose(norms[:, j], expected, rtol=rtol)
            full = features @ factors[k].astype(np.float64)
            assert_allclose(norms[:, j], np.einsum("ij,ij->i", full, full), rtol=1e-3)


@pytest.mark.parametrize("n_parts", [1, 2, 7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stacked_norms_in_parts_of_the_rows(
    monkeypatch, workspace_requests, n_parts, dtype
):
    # A chunk whose stacked products hold at least twice
    # _STACKED_PRODUCT_BYTES is multiplied in that many parts as even as can
    # be (300 rows in 7 parts: six of 43 rows, one of 42), each row's norms
    # those of the whole chunk's product.
    rng = np.random.RandomState(0)
    n_samples, n_features, n_components = 300, 70, 12
    features = rng.normal(size=(n_samples, n_features + 1)).astype(dtype)
    factors = rng.normal(size=(n_components, n_features + 1, n_features))
    factors[:, 1:] = np.triu(factors[:, 1:])
    factors = factors.astype(dtype)
    stacked = _gaussian._stacked_factors(factors, np.arange(1, 12), "upper")
    whole_components, whole = _gaussian._stacked_whitened_norms(features, stacked)
    width = max(b.shape[1] for _, groups in stacked["blocks"] for _, b in groups)
    product_bytes = n_samples * width * features.itemsize // n_parts
    monkeypatch.setattr(_gaussian, "_STACKED_PRODUCT_BYTES", product_bytes)
    products = workspace_requests(_gaussian, "stacked_product")
    components, norms = _gaussian._stacked_whitened_norms(features, stacked)
    assert_array_equal(components, whole_components)
    n_products = sum(len(groups) for _, groups in stacked["blocks"])
    size, extra = divmod(n_samples, n_parts)
    expected = [size + (i < extra) for i in range(n_parts)]
    assert [shape[0] for shape in products] == [
        n for n in expected for _ in range(n_products)
    ]
    assert_allclose(norms, whole, rtol=1e-13 if dtype == np.float64 else 1e-5)
    # Less than twice the budget: one part.
    total = n_samples * width * features.itemsize
    monkeypatch.setattr(_gaussian, "_STACKED_PRODUCT_BYTES", total // 2 + 1)
    products.clear()
    _gaussian._stacked_whitened_norms(features, stacked)
    assert [shape[0] for shape in products] == [n_samples] * n_products
    # No rows: no product, no norms.
    _, empty = _gaussian._stacked_whitened_norms(features[:0], stacked)
    assert empty.shape == (0, len(components))


def test_per_component_parameters_stack_the_components_not_direct():
    # The fit's per-component parameters carry the stacked factors of every
    # component but the directly computed ones (a tight one far off).
    rng = np.random.RandomState(1)
    X = rng.normal(size=(3000, 40)) + 4 * (np.arange(3000) % 2)[:, None]
    X[:60] = 300 + 1e-2 * rng.normal(size=(60, 40))
    gm = GaussianMixtureEM(3, random_state=0, max_iter=2, tol=0).fit(X)
    parameters = gm._fused_parameters(np.float64)
    assert parameters["per_component"]
    assert len(parameters["direct"]) == 1
    stacked = parameters["stacked"].get()
    assert_array_equal(
        np.sort(np.concatenate([stacked["components"], parameters["direct"]])),
        np.arange(3),
    )
    gm._moments_shift = gm.means_.copy()
    parameters = gm._fused_parameters(np.float64, recentred=True)
    assert len(parameters["direct"]) == 3
    assert parameters["stacked"] is None


@pytest.mark.parametrize("n_samples", [600, 3000])
def test_only_long_chunks_stack_the_factors(monkeypatch, n_samples):
    # Chunks shorter than _STACKED_MIN_ROWS multiply one factor at a time
    # (the stacked product was no faster there), and a model whose chunks
    # are all short never builds the stacked factors; longer ones do, with
    # the same statistics.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n_samples, 40)) + 4 * (np.arange(n_samples) % 2)[:, None]
    gm = GaussianMixtureEM(2, random_state=0, max_iter=2, tol=0, n_jobs=1).fit(X)
    calls = []
    stacked_norms = _gaussian._stacked_whitened_norms

    def spy(*args):
        calls.append(len(args[0]))
        return stacked_norms(*args)

    monkeypatch.setattr(_gaussian, "_stacked_whitened_norms", spy)
    parameters = gm._fused_parameters(np.float64)
    assert parameters["per_component"] and len(parameters["direct"]) == 0
    data = as_data(gm, X, None, reset=False, dtype=np.float64)
    assert data.rows == n_samples
    stats = gm._e_step_chunk_function()(X, None)
    long = n_samples >= _gaussian._STACKED_MIN_ROWS
    assert calls == ([n_samples] if long else [])
    monkeypatch.setattr(_gaussian, "_STACKED_MIN_ROWS", 0 if not long else 10**9)
    other = gm._e_step_chunk_function()(X, None)
    assert len(calls) == 1
    for key in ("nk", "sx", "sxx", "log_likelihood"):
        assert_allclose(stats[key], other[key], rtol=1e-12)
    # Built on first use only.
    lazy = _gaussian._LazyStack(
        parameters["coef"], np.arange(2), parameters["triangle"]
    )
    assert lazy._stacked is None
    assert lazy.get() is lazy.get()


@pytest.mark.parametrize("far", [None, "shifted", "direct"])
@pytest.mark.parametrize("given", [False, True])
def test_per_component_statistics_match_a_brute_force_reference(given, far):
    # The per-component form at 70 features (blocked triangular products
    # with the mean's term inside, symmetric rank-k scatters around the
    # centre) against einsum, with fitted (upper) factors and with lower
    # ones set by hand; with a tight component far from the others, whose
    # centred scatter would cancel, taken from x - mu_k instead: its
    # log-densities still from the centred rows ("shifted", kappa_k about
    # 6e8, beyond the expansion's limit but within the form's), or from
    # x - mu_k as well ("direct", about 6e10).
    n_features, n_components = 70, 3
    rng = np.random.RandomState(1)
    labels = np.arange(5000) % 2
    X = rng.normal(size=(5000, n_features)) + 4 * labels[:, None]
    labels[:100] = 2
    X[:100] = 10 * rng.normal(size=(100, n_features)) - 10
    if far:
        # 2% of the rows: the centre stays near the others.
        X[:100] = 300 + (1e-2 if far == "shifted" else 1e-3) * X[:100]
    gm = GaussianMixtureEM(n_components, random_state=0, max_iter=2, tol=0).fit(X)
    if given:
        # Factors set by hand, as NumPy's Cholesky gives them: P = L L^T.
        gm.precisions_cholesky_ = np.linalg.cholesky(gm.precisions_)
    parameters = gm._fused_parameters(np.float64)
    assert parameters["per_component"]
    assert parameters["triangle"] == ("lower" if given else "upper")
    assert len(parameters["direct"]) == (1 if far == "direct" else 0)
    assert len(parameters["shifted"]) == (1 if far == "shifted" else 0)
    data = as_data(gm, X, None, reset=False, dtype=np.float64)
    stats = gm._e_step_statistics(data)
    log_prob = _estimate_log_gaussian_prob(
        X, gm.means_, gm.precisions_cholesky_, "full"
    ) + np.log(gm.weights_)
    resp = np.exp(log_prob - logsumexp(log_prob, axis=1)[:, None])
    reference = _brute_force_statistics(X, resp, gm.means_)
    for key in ("nk", "sx", "sxx"):
        for k in range(n_components):
            # Each component to its own scale: the far one's scatter is 1e-6
            # of the others'.
            scale = np.abs(reference[key][k]).max()
            assert_allclose(
                stats[key][k], reference[key][k], rtol=1e-9, atol=1e-9 * scale
            )
    # The log-densities of the predictions, from the same kernels.
    assert_allclose(gm.predict_proba(X), resp, atol=1e-9)
    assert_allclose(stats["log_likelihood"], logsumexp(log_prob, axis=1).sum())
    # The scatters are exactly symmetric.
    assert_array_equal(stats["sxx"], stats["sxx"].transpose(0, 2, 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("triangle", ["upper", "lower"])
@pytest.mark.parametrize("move_each", [False, True])
@pytest.mark.parametrize("gathered", [False, True])
def test_per_component_moments_of_every_kind_of_component(
    dtype, triangle, move_each, gathered, monkeypatch
):
    # The per-component moments gather the rows of the components with few
    # rows of non-zero weight together, in groups of a bounded number of
    # rows (here the chunk's), then take one product each (or, in groups of
    # few components, gather each one's rows in turn): here groups of
    # several components, an empty component, one at exactly the fraction
    # of rows kept apart, one over every row, one around its own shift and
    # one from x - shift_k, moved to their shifts all at once or one at a
    # time; against einsum over every row.
    monkeypatch.setattr(_gaussian, "_BATCHED_MOVE_VALUES", 0 if move_each else 10**9)
    monkeypatch.setattr(_gaussian, "_GATHERED_MIN_COMPONENTS", 0 if gathered else 10)
    rng = np.random.RandomState(0)
    n_samples, n_features, n_components = 400, 6, 7
    X = 10 + rng.normal(size=(n_samples, n_features))
    # Groups of at most the chunk's rows.
    itemsize = np.dtype(dtype).itemsize
    monkeypatch.setattr(_gaussian, "_GATHERED_BYTES", n_samples * n_features * itemsize)
    resp = np.zeros((n_samples, n_components))
    for k, rows in enumerate(
        [
            slice(0, 100),
            slice(50, 300),
            slice(None),
            slice(0, 0),
            slice(100, 400),
            slice(300, 400),
            slice(200, 280),
        ]
    ):
        resp[rows, k] = rng.uniform(0.1, 2, size=resp[rows, k].shape)
    # Masses that float32 leaves out (below 2^-64 of the component's
    # largest) and keeps.
    resp[0, 6], resp[1, 6] = 1e-25, 1e-15
    kept, counts, few = _gaussian._kept_mask(resp.astype(dtype))[1:]
    kept_far = 1 if dtype == np.float32 else 2
    assert counts.tolist() == [100, 250, 400, 0, 300, 100, 80 + kept_far]
    assert few.tolist() == [True, True, False, True, True, True, True]
    selected = np.flatnonzero(few & (np.arange(7) != 5))
    groups = list(_gaussian._kept_groups(counts, selected, n_samples))
    assert [g.tolist() for g in groups] == [[0, 1, 3], [4, 6]]
    shift = np.array(
        [X[resp[:, k] > 0].mean(axis=0) if k != 3 else X[0] for k in range(7)]
    )
    centre = X.mean(axis=0)
    X, resp, shift = X.astype(dtype), resp.astype(dtype), shift.astype(dtype)
    features = _gaussian._augmented_centred(X, centre.astype(dtype), triangle)
    stats = _gaussian._accumulate_per_component(
        features,
        resp,
        shift=shift,
        centre=centre,
        direct=np.array([5]),
        X=X,
        triangle=triangle,
        shifted=np.array([6]),
    )
    reference = _brute_force_statistics(
        X.astype(np.float64), resp.astype(np.float64), shift.astype(np.float64)
    )
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    for key in ("nk", "sx", "sxx"):
        assert stats[key].dtype == np.float64
        for k in range(n_components):
            scale = max(np.abs(reference[key][k]).max(), 1.0)
            assert_allclose(
                stats[key][k], reference[key][k], rtol=rtol, atol=rtol * scale
            )
    assert_array_equal(stats["sxx"][3], 0)
    assert_array_equal(stats["sxx"], stats["sxx"].transpose(0, 2, 1))


def test_per_component_chunks_are_sized_by_their_own_temporaries():
    # On complete data the per-component form holds three n_features-wide
    # buffers per row, not the generic estimate's n_features * n_components
    # values: its chunks are longer (cache budget 8 MiB), and working_memory
    # still caps them. Data with missing values keeps the generic estimate.
    n_features, n_components = 128, 64
    X = np.zeros((100_000, n_features))
    gm = GaussianMixtureEM(n_components, n_jobs=1)
    assert gm._uses_per_component_form(n_features, np.float64)
    row_values = 3 * n_features + 3 * n_components + 1

    def rows(X):
        return as_data(gm, X, None, reset=True).rows

    assert rows(X) == 2**23 // (8 * row_values)
    generic = chunk_rows(100_000, n_features, n_components, 8, n_jobs=1)
    assert rows(X) > 3 * generic
    with sklearn.config_context(working_memory=1):
        assert rows(X) == 2**20 // (8 * row_values)
    X_missing = X.copy()
    X_missing[0, 0] = np.nan
    assert rows(X_missing) == generic
    # float32 takes the same form, with the same rows (the cache budget
    # counts 8-byte values) on one thread; split over two threads, twice
    # the budget (4-byte values), and float64 keeps its own.
    assert gm._uses_per_component_form(n_features, np.float32)
    assert rows(X.astype(np.float32)) == rows(X)
    gm.set_params(n_jobs=2)

    def balanced(budget):
        # As many equal chunks as a multiple of the threads.
        n_chunks = 2 * math.ceil(math.ceil(100_000 / (budget // (8 * row_values))) / 2)
        return math.ceil(100_000 / n_chunks)

    assert rows(X) == balanced(2**23) == 1786
    assert rows(X.astype(np.float32)) == balanced(2**24) == 3572


@pytest.mark.parametrize("n_jobs", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_threads_chunks_share_the_cache_for_the_feature_blocks(n_jobs, dtype):
    # Diagonal covariances' feature blocks (x^2 and x, read by both halves
    # of the E-step): the chunks of all the threads together keep them
    # within the 16 MiB budget (at 100,000 x 128 with two components each
    # chunk alone had filled it, and every second read went to memory).
    # Full covariances' chunks are sized as before.
    n_samples, n_features = 100_000, 128
    itemsize = np.dtype(dtype).itemsize

    def rows(covariance_type):
        gm = GaussianMixtureEM(2, covariance_type=covariance_type, n_jobs=n_jobs)
        return gm._chunk_rows(n_samples, n_features, itemsize, n_jobs, missing=False)

    shared = n_jobs * rows("diag") * 2 * n_features * itemsize
    assert shared * 8 // itemsize <= 2**24
    alone = chunk_rows(
        n_samples,
        n_features,
        2,
        itemsize,
        n_jobs=n_jobs,
        exact=True,
        model_row_values=2 * n_features + 16,
    )
    if n_jobs == 1:
        assert rows("diag") == alone
    else:
        # (float32 chunks are sized for float64 features: they may be
        # computed in float64.)
        assert rows("diag") < alone
        assert shared * 8 // itemsize > 2**23
    full_values = GaussianMixtureEM(2)._chunk_row_values(n_features, itemsize)
    assert rows("full") == chunk_rows(
        n_samples,
        n_features,
        2,
        itemsize,
        n_jobs=n_jobs,
        exact=True,
        model_row_values=full_values,
        cache_bytes=_gaussian._PER_COMPONENT_CACHE_BYTES,
        threaded_cache_bytes=(
            _gaussian._PER_COMPONENT_FLOAT32_THREADED_BYTES if itemsize == 4 else None
        ),
    )


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_chunks_are_split_evenly_over_the_threads(n_jobs):
    # As many chunks as a multiple of the threads, of equal sizes: the
    # 32,768-row cap used to leave 100,000 rows in three long chunks and a
    # short one.
    rows = chunk_rows(100_000, 16, 2, 8, n_jobs=n_jobs, model_row_values=36)
    n_chunks = -(-100_000 // rows)
    assert n_chunks % n_jobs == 0
    assert 100_000 - (n_chunks - 1) * rows >= rows - n_chunks


def test_several_chunks_of_unsplit_data_are_even_over_the_threads(monkeypatch):
    # Data too small to be split over threads (below _MIN_SPLIT_BYTES) whose
    # temporaries still take several cache-sized chunks runs them on the
    # threads all the same: as many equal chunks as a multiple of the
    # threads, not two of 868 rows and one of 264 (one thread doing two
    # thirds of the work). Below ``min_threaded_rows`` they stay as they
    # are, and data of one chunk stays one chunk.
    monkeypatch.setattr(_suffstats, "n_threads", lambda n_jobs: 2)
    row_values = 3 * 200 + 3
    assert 2000 * 8 * (row_values + 1) < _suffstats._MIN_SPLIT_BYTES
    kwargs = dict(model_row_values=row_values, exact=True, cache_bytes=2**22)
    alone = 2**22 // (8 * (row_values + 1))
    assert 2000 / 3 < alone < 1000
    rows = chunk_rows(2000, 200, 1, 8, n_jobs=None, **kwargs)
    assert rows == 500
    assert (
        chunk_rows(2000, 200, 1, 8, n_jobs=None, min_threaded_rows=4096, **kwargs)
        == alone
    )
    assert chunk_rows(alone, 200, 1, 8, n_jobs=None, **kwargs) == alone


@pytest.mark.parametrize("n_jobs", [None, 1, 2, 3])
def test_longer_chunks_over_threads_only_where_allowed(monkeypatch, n_jobs):
    # ``max_threaded_rows`` lengthens the chunks only where they go to
    # threads, within the cache budget and the working memory; one thread
    # keeps the 32,768-row cap, and data of one chunk stays one chunk.
    monkeypatch.setattr(_suffstats, "n_threads", lambda n_jobs: n_jobs or 2)
    threads = n_jobs or 2
    kwargs = dict(n_jobs=n_jobs, model_row_values=20, exact=True)

    def rows(n_samples, **more):
        return chunk_rows(n_samples, 2, 2, 8, **kwargs, **more)

    if threads == 1:
        assert rows(100_000) == rows(100_000, max_threaded_rows=65536) == 32768
    else:
        # Chunks of at most 32,768 rows, as many as a multiple of the
        # threads (4 or 6); with 65,536, one a thread.
        assert rows(100_000) == -(-100_000 // (2 * threads))
        assert rows(100_000, max_threaded_rows=65536) == -(-100_000 // threads)
        n_chunks = threads * -(-16 // threads)
        assert rows(10**6, max_threaded_rows=65536) == -(-(10**6) // n_chunks)
    # The cache budget still bounds them (8 MiB of 21 values a row) ...
    assert rows(10**6, max_threaded_rows=65536, cache_bytes=2**23) <= 2**23 // 168
    # ... and so does the working memory (1 MiB).
    with sklearn.config_context(working_memory=1):
        assert rows(10**6, max_threaded_rows=65536) <= 2**20 // 168
    if n_jobs is None:
        # Data of one chunk, too small to split, stays one chunk.
        assert rows(30_000, max_threaded_rows=65536) == 30_000


@pytest.mark.parametrize("n_jobs", [None, 1, 2])
def test_threaded_cache_budget_only_over_threads(monkeypatch, n_jobs):
    # ``threaded_cache_bytes`` replaces the cache budget where the chunks go
    # to threads; one thread keeps ``cache_bytes``'s. 8 MiB of 49 values a
    # row is 21,399 rows, 16 MiB 42,799.
    monkeypatch.setattr(_suffstats, "n_threads", lambda n_jobs: n_jobs or 2)
    kwargs = dict(
        n_jobs=n_jobs,
        model_row_values=48,
        exact=True,
        cache_bytes=2**23,
        max_threaded_rows=65536,
    )

    def rows(n_samples, **more):
        return chunk_rows(n_samples, 8, 4, 4, **kwargs, **more)

    if n_jobs == 1:
        assert rows(100_000) == rows(100_000, threaded_cache_bytes=2**24) == 21_399
    else:
        # 100,000 rows in 6 chunks within 8 MiB, in 4 within 16 MiB, and one
        # a thread within 32 MiB.
        assert rows(100_000) == -(-100_000 // 6)
        assert rows(100_000, threaded_cache_bytes=2**24) == 25_000
        assert rows(100_000, threaded_cache_bytes=2**25) == 50_000
        # The working memory still bounds them (1 MiB of 196 bytes a row).
        with sklearn.config_context(working_memory=1):
            assert rows(100_000, threaded_cache_bytes=2**25) <= 2**20 // 196


def test_float32_chunks_count_float32_bytes_over_threads(monkeypatch):
    # float32 chunks of complete data split over threads count their values
    # at 4 bytes in the cache budget: diag 100,000 x 8 with 4 components
    # takes one chunk a thread (two of 50,000 rows), not four of 25,000, and
    # spherical 100,000 x 16 with 16 four of 25,000, not eight of 12,500;
    # one thread, float64 and data with missing values keep theirs, and the
    # per-component form's fits double its own budget.
    monkeypatch.setattr(_suffstats, "n_threads", lambda n_jobs: n_jobs or 2)
    gm = GaussianMixtureEM(4, covariance_type="diag")
    for n_features in (8, 16, 64):
        assert gm._chunk_sizing(n_features, 4, False)["threaded_cache_bytes"] == 2**25
        assert "threaded_cache_bytes" not in gm._chunk_sizing(n_features, 8, False)
    assert gm._chunk_sizing(8, 4, None) == {}
    per_component = GaussianMixtureEM(2)
    assert per_component._chunk_sizing(64, 4, False)["threaded_cache_bytes"] == 2**24
    assert "threaded_cache_bytes" not in per_component._chunk_sizing(64, 8, False)
    assert "threaded_cache_bytes" not in per_component._chunk_sizing(64, 4, False, True)
    assert gm._chunk_rows(100_000, 8, 4, None, missing=False) == 50_000
    assert gm._chunk_rows(100_000, 8, 4, 1, missing=False) == 32_768
    assert gm._chunk_rows(100_000, 8, 8, None, missing=False) == 25_000
    spherical = GaussianMixtureEM(16, covariance_type="spherical")
    assert spherical._chunk_rows(100_000, 16, 4, None, missing=False) == 25_000
    assert spherical._chunk_rows(100_000, 16, 8, None, missing=False) == 12_500


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_full_quadratic_features_of_threads_share_the_cache(n_jobs):
    # Full covariances' quadratic features (read by both halves of the
    # E-step), as diagonal ones: over threads, the chunks' features together
    # stay within the 16 MiB budget (at 32 features with 16 components a
    # chunk alone had filled nearly all of it); on one thread the chunk keeps
    # its budget, and the per-component form its own.
    n_samples, n_features = 100_000, 32
    gm = GaussianMixtureEM(16, n_jobs=n_jobs)
    assert not gm._uses_per_component_form(n_features, np.float64)
    rows = gm._chunk_rows(n_samples, n_features, 8, n_jobs, missing=False)
    n_row_features = n_features * (n_features + 1) // 2 + n_features
    alone = chunk_rows(
        n_samples,
        n_features,
        16,
        8,
        n_jobs=n_jobs,
        exact=True,
        model_row_values=gm._chunk_row_values(n_features, 8),
    )
    if n_jobs == 1:
        assert rows == alone
    else:
        assert rows < alone
        assert n_jobs * rows * n_row_features * 8 <= 2**24
    # From 49 features the shared budget would leave chunks of a few hundred
    # rows: fits and predictions there keep the chunk's own budget.
    wide = GaussianMixtureEM(40)
    for prediction in (False, True):
        assert "shared_row_values" in wide._chunk_sizing(48, 8, False, prediction)
        assert "shared_row_values" not in wide._chunk_sizing(49, 8, False, prediction)


@pytest.mark.parametrize(
    "covariance_type, widest",
    [("full", 2), ("tied", 4), ("diag", 4), ("spherical", 7)],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_narrow_rows_take_longer_chunks_over_threads(covariance_type, widest, dtype):
    # Complete data whose rows' quadratic and linear features take at most
    # 64 bytes (8 in float64, 16 in float32) take chunks of up to 65,536
    # rows over threads (a thread's hand-offs of the GIL between a chunk's
    # NumPy calls cost much of such short chunks' time); wider rows, data
    # with missing values and one thread keep the engine's cap. The fit is
    # the one-thread fit's to rounding.
    itemsize = np.dtype(dtype).itemsize
    if dtype == np.float32:
        widest = {"full": 4, "tied": 8, "diag": 8, "spherical": 15}[covariance_type]

    def sizing(n_features, missing=False):
        gm = GaussianMixtureEM(3, covariance_type=covariance_type)
        return gm._chunk_sizing(n_features, itemsize, missing)

    assert sizing(widest)["max_threaded_rows"] == 65536
    assert "max_threaded_rows" not in sizing(widest + 1)
    assert sizing(widest, missing=None) == {}
    X = _blobs(n_samples=100_000, n_features=widest, n_components=3).astype(dtype)
    rows = {}
    fits = {}
    for n_jobs in (1, 2):
        gm = GaussianMixtureEM(
            3,
            covariance_type=covariance_type,
            n_jobs=n_jobs,
            max_iter=3,
            tol=0,
            random_state=0,
        )
        rows[n_jobs] = gm._chunk_rows(100_000, widest, itemsize, n_jobs, missing=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[n_jobs] = gm.fit(X)
    assert rows == {1: 32768, 2: 50_000}
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    assert_allclose(fits[2].means_, fits[1].means_, rtol=rtol, atol=rtol)
    # (Relative to the largest: a float32 tied covariance's off-diagonal
    # entries near zero move by its sums' rounding, 1e-7 of 1e-4.)
    scale = np.abs(fits[1].covariances_).max()
    assert_allclose(
        fits[2].covariances_, fits[1].covariances_, rtol=rtol * 10, atol=rtol * scale
    )
    assert_allclose(fits[2].lower_bound_, fits[1].lower_bound_, rtol=rtol)


@pytest.mark.parametrize(
    "covariance_type, n_features", [("diag", 12), ("spherical", 20)]
)
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_block_features_around_zero_near_the_origin(
    covariance_type, n_features, offset
):
    # Diagonal covariances from 8 features (and spherical ones from 16) build their
    # features as two C-ordered blocks, and skip the centring pass where the
    # expansion around zero is within the precision budget (data near the
    # origin), and keep it where it is not (data far from it): the same
    # statistics either way.
    X = _blobs(n_samples=3000, n_features=n_features, n_components=3)
    X = X + offset
    gm = GaussianMixtureEM(
        3, covariance_type=covariance_type, random_state=0, max_iter=2
    )
    gm.fit(X)
    parameters = gm._fused_parameters(np.float64)
    assert (not parameters["centre"].any()) == (offset == 0)
    quadratic, Z = _centred_features(X, parameters["centre"], covariance_type)
    assert np.shares_memory(Z, X) == (offset == 0)
    squares = (X - parameters["centre"]) ** 2
    if covariance_type == "spherical":
        squares = squares.sum(axis=1, keepdims=True)
    assert_allclose(quadratic, squares)
    data = as_data(gm, X, None, reset=False, dtype=np.float64)
    stats = gm._e_step_statistics(data)
    precisions_chol = gm.precisions_cholesky_
    log_prob = _estimate_log_gaussian_prob(
        X, gm.means_, precisions_chol, covariance_type
    ) + np.log(gm.weights_)
    # Prediction runs on the same features.
    assert_allclose(gm.score_samples(X), logsumexp(log_prob, axis=1), rtol=1e-10)
    resp = np.exp(log_prob - logsumexp(log_prob, axis=1)[:, None])
    reference = _brute_force_statistics(X, resp, gm.means_)
    reference["sxx"] = np.einsum("kdd->kd", reference["sxx"])
    if covariance_type == "spherical":
        # Only the sum over the features is known (all the M-step reads).
        stats = dict(stats, sxx=stats["sxx"].sum(axis=1))
        reference["sxx"] = reference["sxx"].sum(axis=1)
    for key in ("nk", "sx", "sxx"):
        scale = np.abs(reference[key]).max()
        assert_allclose(stats[key], reference[key], rtol=1e-9, atol=1e-9 * scale)
    assert_allclose(stats["log_likelihood"], logsumexp(log_prob, axis=1).sum())


@pytest.mark.parametrize("given", [False, True])
def test_float32_per_component_statistics_match_a_float64_reference(given):
    # float32 takes the per-component form too: its block sums in float64
    # keep the statistics within float32's rounding of the float64 ones.
    n_features, n_components = 70, 3
    rng = np.random.RandomState(2)
    labels = np.arange(6000) % n_components
    X = (rng.normal(size=(6000, n_features)) + 4 * labels[:, None]).astype(np.float32)
    gm = GaussianMixtureEM(n_components, random_state=0, max_iter=2, tol=0).fit(X)
    assert gm.means_.dtype == np.float32
    if given:
        gm.precisions_cholesky_ = np.linalg.cholesky(gm.precisions_)
    parameters = gm._fused_parameters(np.float32)
    assert parameters["per_component"]
    data = as_data(gm, X, None, reset=False, dtype=np.float32)
    stats = gm._e_step_statistics(data)
    X64 = X.astype(np.float64)
    means = gm.means_.astype(np.float64)
    log_prob = _estimate_log_gaussian_prob(
        X64, means, gm.precisions_cholesky_.astype(np.float64), "full"
    ) + np.log(gm.weights_.astype(np.float64))
    resp = np.exp(log_prob - logsumexp(log_prob, axis=1)[:, None])
    reference = _brute_force_statistics(X64, resp, means)
    for key in ("nk", "sx", "sxx"):
        assert stats[key].dtype == np.float64
        scale = np.abs(reference[key]).max()
        assert_allclose(stats[key], reference[key], rtol=1e-5, atol=1e-5 * scale)
    assert_allclose(
        stats["log_likelihood"], logsumexp(log_prob, axis=1).sum(), rtol=1e-6
    )


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("one_hot", [False, True])
def test_partition_statistics_equal_one_hot_responsibilities(
    covariance_type, dtype, weighted, one_hot, monkeypatch
):
    # k-means labels go to the statistics cluster by cluster, or for small
    # diagonal float64 partitions all clusters at once (products with the
    # one-hot weights, up to _ONE_HOT_VALUES); either way they must be
    # those of the one-hot responsibilities, each cluster's second moments
    # around its own mean, an empty cluster included.
    assert 3000 * 5 * 6 <= _gaussian._ONE_HOT_VALUES
    assert 3000 * 5 <= _gaussian._ONE_HOT_DATA_VALUES // 2
    if not one_hot:
        monkeypatch.setattr(_gaussian, "_ONE_HOT_VALUES", 0)
    rng = np.random.RandomState(0)
    n_samples, n_features, n_components = 3000, 5, 6
    X = (rng.normal(size=(n_samples, n_features)) * 3 + 100).astype(dtype)
    labels = rng.randint(n_components - 1, size=n_samples)  # the last is empty
    weights = rng.uniform(0.2, 3, size=n_samples).astype(dtype) if weighted else None
    stats = _gaussian._partition_statistics(
        X, weights, labels, n_components, covariance_type=covariance_type
    )
    resp = np.zeros((n_samples, n_components), dtype=dtype)
    resp[np.arange(n_samples), labels] = 1
    if weighted:
        resp *= weights[:, np.newaxis]
    shift = stats["sx"] / np.maximum(stats["nk"], 10 * np.finfo(dtype).eps)[:, None]
    reference = _gaussian._accumulate_gaussian(
        X, resp, shift=shift, covariance_type=covariance_type
    )
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert stats["nk"][-1] == 0
    for key in ("nk", "sx", "sxx"):
        assert stats[key].dtype == np.float64
        assert_allclose(stats[key], reference[key], rtol=rtol, atol=1e-9)
    # And directly: the scatter of each cluster around its weighted mean.
    for k in range(n_components - 1):
        rows = X[labels == k].astype(np.float64)
        w = np.ones(len(rows)) if weights is None else weights[labels == k]
        mean = w @ rows / w.sum()
        scatter = (rows - mean).T * w @ (rows - mean)
        expected = scatter if covariance_type == "full" else np.diag(scatter)
        assert_allclose(stats["sxx"][k], expected, rtol=100 * rtol)


@pytest.mark.parametrize("n_components", [3, 256, 300])
def test_partition_statistics_sum_each_cluster_in_row_order(n_components, monkeypatch):
    # The labels are sorted as uint8 (up to 256 clusters) or uint16, which
    # NumPy's stable sort does by radix: each cluster's rows come in their
    # order in X, as with the int64 labels, so the sums are bit for bit those
    # of the rows taken in that order.
    # (Cluster by cluster: not the one-hot products of small partitions.)
    monkeypatch.setattr(_gaussian, "_ONE_HOT_VALUES", 0)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(5000, 3)) + 10
    labels = rng.randint(n_components, size=len(X))
    stats = _gaussian._partition_statistics(
        X, None, labels, n_components, covariance_type="diag"
    )
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_components + 1))
    for k in (0, n_components // 2, n_components - 1):
        rows = order[bounds[k] : bounds[k + 1]]
        assert_array_equal(rows, np.flatnonzero(labels == k))
        expected = _gaussian._partition_statistics(
            X[rows], None, np.zeros(len(rows), dtype=int), 1, covariance_type="diag"
        )
        assert stats["nk"][k] == len(rows)
        assert_array_equal(stats["sx"][k], expected["sx"][0])
        assert_array_equal(stats["sxx"][k], expected["sxx"][0])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_default_fit_starts_from_partition_statistics(covariance_type, monkeypatch):
    # A default fit's k-means labels go to _partition_statistics, and the
    # fit is the one the one-hot responsibilities give.
    from sklearn.datasets import make_blobs

    from sklearn_em.mixture._base import _dense_resp

    X, _ = make_blobs(2000, n_features=4, centers=5, random_state=1)
    w = np.random.RandomState(0).uniform(0.5, 2, size=len(X))
    calls = []
    partition = _gaussian._partition_statistics

    def spy(*args, **kwargs):
        calls.append(1)
        return partition(*args, **kwargs)

    monkeypatch.setattr(_gaussian, "_partition_statistics", spy)
    kwargs = dict(covariance_type=covariance_type, random_state=0)
    by_labels = GaussianMixtureEM(5, **kwargs).fit(X, sample_weight=w)
    assert calls == [1]

    original = GaussianMixtureEM._statistics_from_resp

    def one_hot(self, data, resp):
        return original(self, data, _dense_resp(resp, self.n_components, data.dtype))

    monkeypatch.setattr(GaussianMixtureEM, "_statistics_from_resp", one_hot)
    by_resp = GaussianMixtureEM(5, **kwargs).fit(X, sample_weight=w)
    assert calls == [1]
    assert by_labels.n_iter_ == by_resp.n_iter_
    assert_allclose(by_labels.means_, by_resp.means_, rtol=1e-10)
    assert_allclose(by_labels.covariances_, by_resp.covariances_, rtol=1e-10)
    assert_allclose(by_labels.lower_bound_, by_resp.lower_bound_, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", [1, 4, "widest"])
@pytest.mark.parametrize("tight", [False, True])
def test_narrow_diagonal_features_are_one_transposed_array(
    n_features, dtype, tight, monkeypatch
):
    # Below _DIAG_BLOCK_FEATURES features (8 in float64, 16 in float32),
    # 'diag' builds [z ** 2, z] as the transpose of one array (one product
    # each way), not two C-ordered blocks: the same statistics as the
    # blocks, and as the brute force, including where tight clusters far
    # from the centre are computed directly (whose moments a float32 fit
    # takes in float64, in blocks from 8 features).
    threshold = _gaussian._DIAG_BLOCK_FEATURES[np.dtype(dtype)]
    if n_features == "widest":
        n_features = threshold - 1
    assert not _gaussian._feature_blocks("diag", n_features, dtype)
    assert _gaussian._feature_blocks("diag", threshold, dtype)
    if tight:
        X = _tight_far_clusters(600, n_features, 6)
    else:
        X = _blobs(n_samples=3000, n_features=n_features, n_components=3) + 50.0
    X = X.astype(dtype)
    n_components = 6 if tight else 3
    gm = GaussianMixtureEM(
        n_components, covariance_type="diag", random_state=0, max_iter=2
    ).fit(X)
    parameters = gm._fused_parameters(dtype)
    if tight:
        assert len(parameters["direct"]) > 0
    else:
        assert parameters["centre"].dtype == dtype
    centre = parameters["centre"]
    features = _centred_features(X, centre, "diag", dtype=centre.dtype)
    if isinstance(features, tuple):
        # Only a float32 fit's chunks computed in float64, from 8 features.
        assert centre.dtype != dtype and n_features >= 8
        squares, Z = features
    else:
        assert features.flags.f_contiguous
        squares, Z = features[:, :n_features], features[:, n_features:]
    assert_allclose(Z, X.astype(centre.dtype) - centre, rtol=0, atol=0)
    assert_allclose(squares, Z**2, rtol=0, atol=0)
    data = as_data(gm, X, None, reset=False, dtype=dtype)
    transposed = gm._e_step_statistics(data)
    with monkeypatch.context() as patch:
        patch.setattr(
            _gaussian,
            "_DIAG_BLOCK_FEATURES",
            {np.dtype(np.float64): 1, np.dtype(np.float32): 1},
        )
        blocks = gm._e_step_statistics(data)
    X64 = X.astype(np.float64)
    log_prob = _estimate_log_gaussian_prob(
        X64, gm.means_, gm.precisions_cholesky_, "diag"
    ) + np.log(gm.weights_)
    resp = np.exp(log_prob - logsumexp(log_prob, axis=1)[:, None])
    reference = _brute_force_statistics(X64, resp, gm.means_)
    reference["sxx"] = np.einsum("kdd->kd", reference["sxx"])
    # (The blocks may skip the centring where the expansion around zero is
    # within the budget, data at 50 here: float64 moments to about 1e-11.
    # The transposed features are always centred.)
    tolerances = {np.float64: (1e-12, 1e-9), np.float32: (1e-4, 1e-4)}[dtype]
    for stats, rtol in zip((transposed, blocks), tolerances):
        for key in ("nk", "sx", "sxx"):
            scale = np.abs(reference[key]).max()
            assert_allclose(stats[key], reference[key], rtol=rtol, atol=rtol * scale)


def _tight_far_clusters(n_samples, n_features, n_components, seed=0):
    """Few rows, tight clusters far from the origin and from each other:
    the expansion refuses many components (computed directly)."""
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-30, 30, size=(n_components, n_features))
    labels = np.arange(n_samples) % n_components
    return centres[labels] + 0.01 * rng.normal(size=(n_samples, n_features))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grouped_direct_components_are_the_one_at_a_time_sums(
    covariance_type, dtype, monkeypatch
):
    # Directly computed diagonal and spherical components of a small chunk
    # are computed a group at a time: the same statistics as one component
    # at a time (the differences are taken in float64 either way). (float64
    # computes only the entries of nonzero mass, unless most are: forced
    # here, see test_paired_direct_entries_are_the_grouped_statistics.)
    monkeypatch.setattr(_gaussian, "_DIRECT_PAIRS_FRACTION", -1.0)
    X = _tight_far_clusters(120, 40, 30).astype(dtype)
    gm = GaussianMixtureEM(
        30, covariance_type=covariance_type, random_state=0, max_iter=2
    ).fit(X)
    data = as_data(gm, X, None, reset=False, dtype=dtype)
    assert not gm._uses_direct_form(data)
    calls = []
    original = _gaussian._grouped_direct_mahalanobis

    def counting(*args, **kwargs):
        calls.append(len(args[3]))
        return original(*args, **kwargs)

    monkeypatch.setattr(_gaussian, "_grouped_direct_mahalanobis", counting)
    grouped = gm._e_step_statistics(data)
    # Several components, in more than one group.
    assert calls and calls[0] > 1
    assert _gaussian._direct_group_size(X.shape) < calls[0]
    with monkeypatch.context() as patch:
        patch.setattr(_gaussian, "_DIRECT_GROUP_VALUES", 0)
        single = gm._e_step_statistics(data)
    assert len(calls) == 1
    _assert_same_statistics(grouped, single, covariance_type)


def _assert_same_statistics(stats, reference, covariance_type):
    """E-step statistics equal up to rounding ('spherical': the moments'
    mean over features, all its M-step reads)."""
    for key in ("nk", "sx", "log_likelihood", "sum_weight"):
        assert_allclose(stats[key], reference[key], rtol=1e-12)
    sxx, sxx_reference = stats["sxx"], reference["sxx"]
    if covariance_type == "spherical":
        sxx, sxx_reference = sxx.mean(axis=1), sxx_reference.mean(axis=1)
    assert_allclose(sxx, sxx_reference, rtol=1e-12, atol=1e-15)


def _tight_mixture_and_bridges(covariance_type, spread, seed=0):
    """A mixture of 20 tight, far clusters in 40 dimensions (two EM
    iterations from k-means), whose components the expansion refuses, and
    data: its clusters' rows plus 60 rows on segments between two of its
    means, where the second's log-density is below the first's by up to
    ``spread`` nats (none for 0). With a spread beyond
    ``-_FLOAT64_LOG_TINY`` (708) the masses of two direct components run
    through the E-step's cut-off rather than far below it."""
    rng = np.random.RandomState(seed)
    X = _tight_far_clusters(160, 40, 20, seed)
    gm = GaussianMixtureEM(
        20, covariance_type=covariance_type, random_state=0, max_iter=2
    ).fit(X)
    if not spread:
        return gm, X
    a = rng.randint(20, size=60)
    b = (a + 1 + rng.randint(19, size=60)) % 20
    target = rng.uniform(0, spread, size=60)
    means, chol = gm.means_, gm.precisions_cholesky_
    log_w = np.log(gm.weights_)

    def gap(t):
        # log p(a) - log p(b) at a + t (b - a), row by row.
        rows = means[a] + t[:, np.newaxis] * (means[b] - means[a])
        log_prob = (
            _gaussian._estimate_log_gaussian_prob(rows, means, chol, covariance_type)
            + log_w
        )
        return log_prob[np.arange(60), a] - log_prob[np.arange(60), b]

    low, high = np.zeros(60), np.ones(60)
    for _ in range(100):
        middle = (low + high) / 2
        above = gap(middle) > target
        low, high = np.where(above, middle, low), np.where(above, high, middle)
    t = (low + high)[:, np.newaxis] / 2
    return gm, np.vstack([X, means[a] + t * (means[b] - means[a])])


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("spread", [0.0, 1500.0])
def test_direct_entries_of_zero_mass_are_skipped_exactly(
    covariance_type, spread, expanded_log_probs
):
    # The E-step computes a direct component's entries only where their
    # mass can survive the normalisation: the responsibilities and
    # log-likelihoods are those of computing every entry directly, and the
    # entries skipped have exactly zero mass there.
    gm, X = _tight_mixture_and_bridges(covariance_type, spread)
    every, features, parameters = expanded_log_probs(gm, X)
    direct = parameters["direct"]
    assert len(direct) > 0 and not parameters.get("per_component")
    pairs = _gaussian._surviving_direct_pairs(
        every,
        features,
        parameters["means"],
        parameters["precisions_chol"],
        parameters["centre"],
        direct,
    )
    assert pairs is not None and 0 < len(pairs[0]) < X.shape[0] * len(direct) / 2
    skipped = expanded_log_probs(gm, X, normalised=True)[0]
    exact_resp, sparse_resp = every.copy(), skipped.copy()
    exact_norm = logsumexp_rows(exact_resp)
    sparse_norm = logsumexp_rows(sparse_resp)
    assert_array_equal(sparse_norm, exact_norm)
    assert_array_equal(sparse_resp, exact_resp)
    dropped = np.ones(every.shape, dtype=bool)
    dropped[:, np.setdiff1d(np.arange(20), direct)] = False
    dropped[pairs] = False
    assert dropped.any()
    assert np.all(exact_resp[dropped] == 0)
    # Some kept entries have a mass near the cut-off (the bridge rows).
    if spread:
        kept = exact_resp[pairs]
        assert np.any((kept > 0) & (kept < 1e-250))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_paired_direct_entries_are_the_grouped_statistics(covariance_type, monkeypatch):
    # A float64 E-step computes the direct components' entries and moments
    # only over the rows of nonzero mass: the statistics of computing them
    # over every row.
    gm, X = _tight_mixture_and_bridges(covariance_type, 1500.0)
    data = as_data(gm, X, None, reset=False, dtype=np.float64)
    calls = []
    original = _gaussian._paired_direct_mahalanobis

    def counting(X, means, precisions_chol, rows, components):
        calls.append(len(rows))
        return original(X, means, precisions_chol, rows, components)

    monkeypatch.setattr(_gaussian, "_paired_direct_mahalanobis", counting)
    paired = gm._e_step_statistics(data)
    n_direct = len(gm._fused_parameters(np.float64)["direct"])
    assert calls and calls[0] < X.shape[0] * n_direct / 2
    with monkeypatch.context() as patch:
        patch.setattr(_gaussian, "_DIRECT_PAIRS_FRACTION", -1.0)
        grouped = gm._e_step_statistics(data)
    assert len(calls) == 1
    _assert_same_statistics(paired, grouped, covariance_type)


def test_tied_direct_form_limits():
    # Tied covariances take the direct form up to _DIRECT_TIED_VALUES
    # differences, or three times _DIRECT_VALUES on fewer than
    # _DIRECT_FEW_ROWS_PER_COMPONENT rows a component.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 16))

    def direct(n_samples, n_components):
        gm = GaussianMixtureEM(n_components, covariance_type="tied", max_iter=1)
        gm.fit(X)
        rows = X[:n_samples]
        return gm._uses_direct_form(as_data(gm, rows, reset=False))

    limit = _gaussian._DIRECT_TIED_VALUES
    assert direct(limit // (16 * 5), 5)
    assert not direct(limit // (16 * 5) + 1, 5)
    few = 3 * _gaussian._DIRECT_VALUES // (16 * 60)
    assert few < _gaussian._DIRECT_FEW_ROWS_PER_COMPONENT * 60
    assert limit < few * 16 * 60
    assert direct(few, 60)
    assert not direct(few + 1, 60)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_few_wide_rows_take_the_direct_form(covariance_type, monkeypatch):
    # A few rows in many dimensions, fewer than _DIRECT_FEW_ROWS_PER_COMPONENT
    # per component, take the direct form up to three times _DIRECT_VALUES
    # differences; its fit is the fused form's.
    X = _tight_far_clusters(30, 200, 12)
    gm = GaussianMixtureEM(12, covariance_type=covariance_type, random_state=0)
    gm.fit(X)
    data = as_data(gm, X, None, reset=False, dtype=np.float64)
    assert 2 * _gaussian._DIRECT_VALUES < 30 * 200 * 12 < 3 * _gaussian._DIRECT_VALUES
    assert gm._uses_direct_form(data)
    # 17 components: more than three times.
    wide = GaussianMixtureEM(17, covariance_type=covariance_type, random_state=0)
    assert 30 * 200 * 17 > 3 * _gaussian._DIRECT_VALUES
    assert not wide._uses_direct_form(data)
    # The same differences on rows enough per component: the fused form.
    more_rows = np.tile(X, (2, 1))
    fewer = GaussianMixtureEM(
        6, covariance_type=covariance_type, max_iter=1, random_state=0
    ).fit(more_rows)
    assert 60 * 200 * 6 == 30 * 200 * 12
    assert not fewer._uses_direct_form(as_data(fewer, more_rows, reset=False))
    with monkeypatch.context() as patch:
        patch.setattr(_gaussian, "_DIRECT_FEW_ROWS_PER_COMPONENT", 0)
        assert not gm._uses_direct_form(data)
        fused = GaussianMixtureEM(
            12, covariance_type=covariance_type, random_state=0
        ).fit(X)
    assert gm.n_iter_ == fused.n_iter_
    assert_allclose(gm.lower_bound_, fused.lower_bound_, rtol=1e-12)
    assert_allclose(gm.means_, fused.means_, rtol=1e-12, atol=1e-12)
    assert_allclose(gm.covariances_, fused.covariances_, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("seed", range(20))
def test_expansion_around_zero_is_refused_as_before(covariance_type, seed, monkeypatch):
    # The check of kappa alone skips the coefficients around zero only where
    # they would be refused: the fused parameters are unchanged.
    rng = np.random.RandomState(seed)
    n_components, n_features = rng.randint(1, 8), rng.randint(16, 40)
    means = rng.normal(size=(n_components, n_features)) * 10.0 ** rng.uniform(-1, 2)
    shape = (n_components,) if covariance_type == "spherical" else means.shape
    chol = 10.0 ** rng.uniform(-1, 3, size=shape)
    weights = rng.dirichlet(np.ones(n_components))
    gm = GaussianMixtureEM(n_components, covariance_type=covariance_type)
    gm.weights_, gm.means_, gm.precisions_cholesky_ = weights, means, chol
    gm._moments_shift = means
    for dtype in (np.float64, np.float32):
        limit = _gaussian._expansion_limit(dtype)
        cancelled = _gaussian._expanded_coefficients(
            means, chol, covariance_type, np.log(weights), np.zeros(n_features)
        )[2]
        if _gaussian._refused_at_zero(means, chol, dtype):
            assert (cancelled > limit).any()
        fast = gm._fused_parameters(dtype)
        with monkeypatch.context() as patch:
            patch.setattr(_gaussian, "_refused_at_zero", lambda *args: False)
            slow = gm._fused_parameters(dtype)
        assert fast.keys() == slow.keys()
        for key, value in fast.items():
            if isinstance(value, np.ndarray):
                assert_array_equal(value, slow[key])
            else:
                assert value == slow[key]


def _zero_expansions(monkeypatch):
    """Count a fit's E-steps and its coefficients around zero."""
    counts = {"e_steps": 0, "zero": 0}
    expand = _gaussian._expanded_coefficients
    chunk_function = GaussianMixtureEM._e_step_chunk_function

    def spy_expand(*args, **kwargs):
        counts["zero"] += not np.any(args[4])
        return expand(*args, **kwargs)

    def spy_e_step(self):
        counts["e_steps"] += 1
        return chunk_function(self)

    monkeypatch.setattr(_gaussian, "_expanded_coefficients", spy_expand)
    monkeypatch.setattr(GaussianMixtureEM, "_e_step_chunk_function", spy_e_step)
    return counts


def _far_with_tight_cluster():
    """Clusters 3 to 9 from the origin, and a tight one at it."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 20)) + rng.randint(1, 4, size=(300, 1)) * 3.0
    X[:20] = 1e-3 * rng.normal(size=(20, 20))
    return X


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_refused_expansion_around_zero_is_not_recomputed(covariance_type, monkeypatch):
    # Clusters far from the origin and a tight one at it: the expansion
    # around zero is refused far beyond the limit (by the tight component's
    # precisions times the data's spread, not by kappa alone), and a fit
    # computes its coefficients once in _ZERO_SKIPS + 1 E-steps, with the
    # same results as computing them at every E-step.
    X = _far_with_tight_cluster()
    params = dict(covariance_type=covariance_type, max_iter=10, tol=0, random_state=0)
    counts = _zero_expansions(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        skipping = GaussianMixtureEM(12, **params).fit(X)
        n_e_steps = counts["e_steps"]
        assert n_e_steps >= 10
        assert 1 <= counts["zero"] <= -(-n_e_steps // (_gaussian._ZERO_SKIPS + 1))
        monkeypatch.setattr(_gaussian, "_ZERO_SKIPS", 0)
        counts.update(e_steps=0, zero=0)
        every = GaussianMixtureEM(12, **params).fit(X)
    assert counts == {"e_steps": n_e_steps, "zero": n_e_steps}
    assert every.lower_bound_ == skipping.lower_bound_
    assert_array_equal(every.means_, skipping.means_)
    assert_array_equal(every.covariances_, skipping.covariances_)


def test_accepted_expansion_around_zero_is_tried_at_every_e_step(monkeypatch):
    # Standardised data: the expansion around zero is accepted at every
    # E-step, and a model refitted on it after a fit that refused the
    # expansion (the skips are the fit's own) tries it at every E-step too,
    # with the results of a new model.
    far = _far_with_tight_cluster()
    near = np.random.RandomState(1).normal(size=(300, 20))
    params = dict(covariance_type="diag", max_iter=10, tol=0, random_state=0)
    counts = _zero_expansions(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        refitted = GaussianMixtureEM(12, **params).fit(far)
        assert counts["zero"] < counts["e_steps"]
        refitted._zero_skips = _gaussian._ZERO_SKIPS
        counts.update(e_steps=0, zero=0)
        refitted.fit(near)
        assert counts["e_steps"] >= 10
        assert counts["zero"] == counts["e_steps"]
        new = GaussianMixtureEM(12, **params).fit(near)
    assert new.lower_bound_ == refitted.lower_bound_
    assert_array_equal(new.means_, refitted.means_)


@pytest.mark.parametrize("direct", [[], [1, 3], [0, 1, 2, 3, 4, 5]])
@pytest.mark.parametrize("group_values", [0, 2**16])
def test_tied_statistics_are_the_definitions(direct, group_values, monkeypatch):
    # The tied E-step's second moments: the components computed directly
    # share their scatter around their own means equally (summed over their
    # rows of nonzero responsibility, a block of pairs at a time), the
    # others get the correction terms and an equal share of the common
    # scatter; the sum over the components, all the tied M-step reads, is
    # the definition's.
    monkeypatch.setattr(_gaussian, "_DIRECT_GROUP_VALUES", group_values)
    rng = np.random.RandomState(len(direct))
    X = rng.normal(size=(200, 7)) @ rng.normal(size=(7, 7)) + 3.0
    resp = rng.dirichlet(np.ones(6), size=200)
    means = rng.normal(size=(6, 7)) + 3.0
    centre = X.mean(axis=0)
    direct = np.array(direct, dtype=np.intp)
    nk = resp.sum(axis=0)
    stats = _gaussian._accumulate_tied(X - centre, resp, nk, means, centre, direct, X)
    reference = _brute_force_statistics(X, resp, means)
    assert_allclose(stats["sx"], reference["sx"], rtol=1e-12)
    assert_allclose(
        stats["sxx"][direct].sum(axis=0),
        reference["sxx"][direct].sum(axis=0),
        rtol=1e-12,
    )
    assert_allclose(stats["sxx"].sum(axis=0), reference["sxx"].sum(axis=0), rtol=1e-12)
    if len(direct):
        # A component's responsibilities of exactly zero add nothing.
        resp[::3, direct[0]] = 0.0
        resp /= resp.sum(axis=1, keepdims=True)
        nk = resp.sum(axis=0)
        stats = _gaussian._accumulate_tied(
            X - centre, resp, nk, means, centre, direct, X
        )
        reference = _brute_force_statistics(X, resp, means)
        assert_allclose(
            stats["sxx"].sum(axis=0), reference["sxx"].sum(axis=0), rtol=1e-12
        )


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_m_step_covariances_are_the_definition(covariance_type):
    # Second moments around a shift away from the new means: the M-step's
    # correction N_k (mu_k - c_k)(mu_k - c_k)^T gives the scatter around the
    # means.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    resp = rng.dirichlet(np.ones(4), size=300)
    shift = rng.normal(size=(4, 5))
    stats = _brute_force_statistics(X, resp, shift)
    nk, means, covariances = _gaussian._estimate_gaussian_parameters(
        stats, shift, 1e-6, covariance_type
    )
    assert_allclose(means, (resp.T @ X) / resp.sum(axis=0)[:, None], rtol=1e-12)
    expected = _brute_force_statistics(X, resp, means)["sxx"]
    if covariance_type == "tied":
        expected = expected.sum(axis=0) / 300
    else:
        expected = expected / nk[:, None, None]
    expected = expected + 1e-6 * np.eye(5)
    assert_allclose(covariances, expected, rtol=1e-11)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_one_component_splits_over_threads_only_on_many_rows(
    covariance_type, monkeypatch
):
    # A single diagonal (or wide spherical) component costs little
    # arithmetic for its features' bytes: its rows are split over threads
    # (by default) only from _MIN_THREADED_ROWS_ONE_COMPONENT rows. An
    # explicit n_jobs still splits, and two components split as before.
    monkeypatch.setattr(_suffstats, "n_threads", lambda n_jobs: 2)

    def rows(n_samples, n_features, n_components, n_jobs=None):
        gm = GaussianMixtureEM(n_components, covariance_type=covariance_type)
        return gm._chunk_rows(n_samples, n_features, 8, n_jobs, missing=False)

    few = 6000
    assert few < _gaussian._MIN_THREADED_ROWS_ONE_COMPONENT
    # Over _MIN_SPLIT_BYTES, yet the chunks of one thread (cache-sized: a
    # chunk and a remainder); split over two, at most half the rows each.
    assert few * (2 * 200 + 8) * 8 >= _suffstats._MIN_SPLIT_BYTES
    assert few / 2 < rows(few, 200, 1) < few
    assert rows(few, 200, 1, n_jobs=2) <= few // 2
    assert rows(few, 200, 2) <= few // 2
    many = 2 * _gaussian._MIN_THREADED_ROWS_ONE_COMPONENT
    assert rows(many, 64, 1) < many


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logsumexp_rows_of_one_column_is_the_column(dtype):
    # One column: the log-normaliser is the column itself, exactly (as
    # scipy's), and the probabilities those of the general case: 1, 0 for a
    # row without mass, NaN for +inf and NaN.
    column = np.array([[3.5], [-1e30], [0.0], [-np.inf], [np.inf], [np.nan]])
    a = column.astype(dtype)
    log_norm = logsumexp_rows(a)
    assert log_norm.dtype == dtype
    assert_array_equal(log_norm, column[:, 0].astype(dtype))
    assert_array_equal(log_norm[:3], logsumexp(column[:3].astype(dtype), axis=1))
    assert_array_equal(a[:, 0], [1.0, 1.0, 1.0, 0.0, np.nan, np.nan])
    # The general case on the same entries and a column of no mass.
    general = np.hstack([column, np.full((6, 1), -np.inf)]).astype(dtype)
    with np.errstate(invalid="ignore"):
        general_norm = logsumexp_rows(general)
    # (The general case's shift off zero leaves 0 within rounding, 1e-19.)
    assert_allclose(general_norm[:4], log_norm[:4], rtol=1e-6, atol=1e-15)
    assert_array_equal(general[:4, 0], a[:4, 0])
    assert np.isnan(general[4:, 0]).all()


def test_predictions_of_the_per_component_form_take_their_own_chunks(monkeypatch):
    # A prediction's chunks hold no weighted differences: the per-component
    # form sizes them with _PER_COMPONENT_PREDICTION_CACHE_BYTES (one
    # component: _ONE_COMPONENT_PREDICTION_CACHE_BYTES), and predict,
    # predict_proba and score_samples ask for them. (The fit's budget is
    # the same now: the prediction's is set apart here to tell them apart.)
    monkeypatch.setattr(
        _gaussian,
        "_PER_COMPONENT_PREDICTION_CACHE_BYTES",
        2 * _gaussian._PER_COMPONENT_CACHE_BYTES,
    )
    rng = np.random.RandomState(0)
    X = rng.normal(size=(10_000, 96)).astype(np.float32)
    # (One thread: split over threads, float32 fits double their budget.)
    gm = GaussianMixtureEM(3, max_iter=2, random_state=0, n_jobs=1).fit(X)
    assert gm._uses_per_component_form(96, np.float32)
    row_values = gm._chunk_row_values(96, 4)

    def rows(cache_bytes):
        return chunk_rows(
            10_000,
            96,
            3,
            4,
            n_jobs=1,
            exact=True,
            model_row_values=row_values,
            cache_bytes=cache_bytes,
        )

    fit_rows = as_data(gm, X, reset=False).rows
    assert fit_rows == rows(_gaussian._PER_COMPONENT_CACHE_BYTES)
    prediction_rows = as_data(gm, X, reset=False, prediction=True).rows
    assert prediction_rows == rows(_gaussian._PER_COMPONENT_PREDICTION_CACHE_BYTES)
    assert prediction_rows > fit_rows
    # One component: a budget of its own.
    one = GaussianMixtureEM(1, max_iter=2, random_state=0).fit(X)
    assert one._uses_per_component_form(96, np.float32)
    assert as_data(one, X, reset=False, prediction=True).rows == chunk_rows(
        10_000,
        96,
        1,
        4,
        n_jobs=None,
        exact=True,
        model_row_values=one._chunk_row_values(96, 4),
        cache_bytes=_gaussian._ONE_COMPONENT_PREDICTION_CACHE_BYTES,
    )
    calls = []
    chunk_rows_of = GaussianMixtureEM._chunk_rows

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("prediction", False))
        return chunk_rows_of(self, *args, **kwargs)

    monkeypatch.setattr(GaussianMixtureEM, "_chunk_rows", spy)
    expected = gm.predict_proba(X)
    for method in ("predict", "predict_proba", "score_samples"):
        getattr(gm, method)(X)
    assert calls and all(calls)
    # The chunks change no result beyond rounding: float32 log-densities of
    # about 150 nats here (96 features), whose rounding, ~150 x 6e-8 =
    # 1e-5, moves a probability near 1/2 by up to about that much.
    monkeypatch.setattr(
        _gaussian,
        "_PER_COMPONENT_PREDICTION_CACHE_BYTES",
        _gaussian._PER_COMPONENT_CACHE_BYTES,
    )
    assert np.abs(gm.score_samples(X)).max() < 400
    assert_allclose(gm.predict_proba(X), expected, rtol=1e-5, atol=3e-5)


@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_blocked_diag_chunks_are_the_whole_chunks(offset, monkeypatch):
    # Wide float64 diagonal chunks with few components are centred, squared
    # and multiplied a cache-sized block of rows at a time, the products the
    # other way round: the statistics of the whole chunk's passes up to
    # rounding, around zero (offset 0) and around the mixture's centre.
    monkeypatch.setattr(_gaussian, "small_gemm_work", lambda: 0)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(3000, 64)) * rng.uniform(0.5, 2, 64) + offset
    X[:1000] += 3
    gm = GaussianMixtureEM(3, covariance_type="diag", max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    # Up to 4 components; not float32, nor 'spherical'.
    assert not _gaussian._blocked_diag("diag", X, 5, np.float64)
    assert not _gaussian._blocked_diag("diag", X.astype(np.float32), 2, np.float32)
    assert not _gaussian._blocked_diag("spherical", X, 2, np.float64)
    assert _gaussian._blocked_diag("diag", X, 4, np.float64)
    assert not _gaussian._blocked_diag("diag", X[:, :63], 4, np.float64)
    # Blocks of 700 rows: four, the last shorter.
    monkeypatch.setattr(_gaussian, "_BLOCKED_DIAG_BYTES", 8 * 64 * 700)
    assert _gaussian._diag_block_rows(64, 3) == 700
    calls = []
    original = _gaussian._blocked_diag_features

    def spy(X, centre, coef, block_rows, keep_features=True):
        calls.append((bool(centre.any()), block_rows))
        return original(X, centre, coef, block_rows, keep_features)

    monkeypatch.setattr(_gaussian, "_blocked_diag_features", spy)
    blocked = gm._e_step_chunk_function()(X, None)
    assert calls == [(offset != 0, 700)]
    monkeypatch.setattr(_gaussian, "_BLOCKED_DIAG_FEATURES", 65)
    whole = gm._e_step_chunk_function()(X, None)
    assert len(calls) == 1
    _assert_same_statistics(blocked, whole, "diag")


@pytest.mark.parametrize("offset", [5.0, 300.0])
@pytest.mark.parametrize("n_components", [4, 9])
def test_blocked_diag_within_small_matrix_kernels(n_components, offset, monkeypatch):
    # Where BLAS has small-matrix kernels (OpenBLAS on AVX-512 cores),
    # diagonal chunks from 32 features with 4 to 16 components are blocked
    # too, in blocks whose products stay within the kernels' m n k, the
    # moments' products summed over such blocks: the whole chunk's
    # statistics and log-densities up to rounding. Near the origin the
    # features are expanded around zero (no centring), far from it around
    # the centre.
    rng = np.random.RandomState(1)
    X = rng.normal(size=(2500, 40)) * rng.uniform(0.5, 2, 40) + offset
    X[:800] += 3
    gm = GaussianMixtureEM(
        n_components, covariance_type="diag", max_iter=2, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    monkeypatch.setattr(_gaussian, "small_gemm_work", lambda: 0)
    assert not _gaussian._blocked_diag("diag", X, n_components, np.float64)
    whole = gm._e_step_chunk_function()(X, None)
    whole_proba = gm.predict_proba(X)
    whole_scores = gm.score_samples(X)

    # (A kernel size of 700 rows' products: four blocks, the last shorter.)
    work = 40 * n_components * 700
    monkeypatch.setattr(_gaussian, "small_gemm_work", lambda: work)
    assert _gaussian._blocked_diag("diag", X, n_components, np.float64)
    # Not below 32 features, nor below 4 components under 64 features, nor
    # beyond 16 components; 64 features with 2 as without the kernels.
    assert not _gaussian._blocked_diag("diag", X[:, :31], n_components, np.float64)
    assert not _gaussian._blocked_diag("diag", X, 3, np.float64)
    assert not _gaussian._blocked_diag("diag", X, 17, np.float64)
    # Nor a chunk whose products are within the kernels already (one block).
    assert not _gaussian._blocked_diag("diag", X[:700], n_components, np.float64)
    assert _gaussian._blocked_diag("diag", X[:701], n_components, np.float64)
    wide = np.zeros((10, 64))
    assert _gaussian._blocked_diag("diag", wide, 2, np.float64)
    assert not _gaussian._blocked_diag("diag", wide.astype(np.float32), 8, np.float32)
    rows = _gaussian._diag_block_rows(40, n_components)
    assert rows == 700
    blocks, moments = [], []
    original_features = _gaussian._blocked_diag_features
    original_product = _gaussian._inner_product
    keep = {"always": False}

    def spy_features(X, centre, coef, block_rows, keep_features=True):
        keep_features = keep_features or keep["always"]
        blocks.append((block_rows, keep_features))
        return original_features(X, centre, coef, block_rows, keep_features)

    def spy_product(A, B, block_rows=None):
        moments.append(block_rows)
        return original_product(A, B, block_rows)

    monkeypatch.setattr(_gaussian, "_blocked_diag_features", spy_features)
    monkeypatch.setattr(_gaussian, "_inner_product", spy_product)
    parameters = gm._fused_parameters(X.dtype)
    assert bool(parameters["centre"].any()) == (offset > 100)
    blocked = gm._e_step_chunk_function()(X, None)
    assert blocks == [(rows, True)]
    assert moments == [rows, rows]
    _assert_same_statistics(blocked, whole, "diag")
    # A prediction keeps no features (each block's are written to one
    # block's buffers): the same products, bit for bit.
    proba = gm.predict_proba(X)
    assert blocks[-1] == (rows, False)
    keep["always"] = True
    assert_array_equal(gm.predict_proba(X), proba)
    assert blocks[-1] == (rows, True)
    assert_allclose(proba, whole_proba, rtol=1e-9, atol=1e-12)
    assert_allclose(gm.score_samples(X), whole_scores, rtol=1e-12)
    assert len(blocks) > 1


def test_inner_product_in_row_blocks():
    # float64 moments summed over blocks of rows (the last one shorter): the
    # one product's up to rounding; blocks as long as the rows are one.
    rng = np.random.RandomState(0)
    A, B = rng.uniform(size=(5, 1001)), rng.normal(size=(1001, 7))
    assert_allclose(_gaussian._inner_product(A, B, 300), A @ B, rtol=1e-12)
    assert_array_equal(_gaussian._inner_product(A, B, 1001), np.dot(A, B))


@pytest.mark.parametrize(
    "libraries, expected",
    [
        ([("numpy.libs/libopenblas64_.so", "SkylakeX")], 100**3),
        ([("numpy.libs/libopenblas64_.so", "Haswell")], 0),
        ([("lib/libopenblas.so", "SapphireRapids")], 100**3),
        # SciPy's wheel brings its own: NumPy's decides.
        (
            [
                ("scipy.libs/libopenblas.so", "SkylakeX"),
                ("numpy.libs/libopenblas64_.so", "Zen"),
            ],
            0,
        ),
        (
            [
                ("scipy.libs/libopenblas.so", "Haswell"),
                ("numpy.libs/libopenblas64_.so", "Cooperlake"),
            ],
            100**3,
        ),
        # Two libraries, neither NumPy's: unknown.
        ([("a/libopenblas.so", "SkylakeX"), ("b/libopenblas.so", "SkylakeX")], 0),
        ([], 0),
    ],
)
def test_small_gemm_work(libraries, expected, monkeypatch):
    # The small-matrix kernels' size where NumPy's OpenBLAS runs an AVX-512
    # core, 0 otherwise (MKL, other cores, or a library it cannot tell).
    class Library:
        def __init__(self, filepath, architecture):
            self.filepath = "/site-packages/" + filepath
            self.architecture = architecture

    class Selection:
        lib_controllers = [Library(*library) for library in libraries]

    class Controller:
        def select(self, **kwargs):
            assert kwargs == {"internal_api": "openblas"}
            return Selection()

    monkeypatch.setattr(_suffstats, "_controller", Controller)
    _suffstats.small_gemm_work.cache_clear()
    try:
        assert _suffstats.small_gemm_work() == expected
    finally:
        _suffstats.small_gemm_work.cache_clear()
