"""The sufficient-statistics engine shared by every mixture model.

All of EM's statistics are sums over samples. One EM iteration is therefore a
*map* of a per-chunk function over row chunks of ``X`` -- the E-step plus the
accumulation of the sums the M-step needs -- followed by a *reduction* (adding
the per-chunk dictionaries) and an M-step that only reads the reduced sums.

That single shape gives:

- bounded memory: only one chunk's temporaries are alive per worker;
- threads: chunks are independent, so they are mapped with joblib threads
  (NumPy and BLAS release the GIL);
- ``sample_weight``: the weight multiplies each row's responsibilities;
- ``partial_fit``: running sums updated batch by batch;
- distributed fits: the same chunk function is mapped over Dask blocks.

The functions here are model-agnostic: a model provides two callables, one
computing ``log pi_k + log p(x_n | k)`` for a chunk and one accumulating its
sufficient statistics from a chunk and its (weighted) responsibilities.
"""

import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from joblib import cpu_count, effective_n_jobs
from sklearn import get_config
from threadpoolctl import ThreadpoolController

# Rows per chunk are chosen so that the chunk's temporaries stay in the CPU's
# caches (16 MiB: large enough that the per-chunk Python overhead, which
# holds the GIL, stays small beside the chunk's products when two threads
# share it; measured best for every covariance type of the benchmark, with
# one thread and with two); the user-level cap is scikit-learn's
# ``working_memory`` setting.
_CACHE_BYTES = 2**24

# The most rows of a chunk, whatever its budget (a model whose rows cost
# little may allow more when they are split over threads: ``chunk_rows``'s
# ``max_threaded_rows``).
_MAX_CHUNK_ROWS = 32768

# Chunks with at least this many values (rows x features) run multi-threaded
# BLAS when there is one thread over chunks (measured on the Bernoulli
# mixture's MNIST chunks, 7,000 x 784: twice as fast as one BLAS thread).
_LARGE_CHUNK = 2**20


# Data smaller than this is not worth threads (k-means's blocks, the first
# M-step's clusters): handing work to threads costs tens of microseconds,
# more than it saves on, say, 10,000 x 8 data with 3 components.
_MIN_THREADED_BYTES = 2**23

# Data whose chunk temporaries would total less than this is not split over
# threads by the E-step and prediction. A second thread's chunk ran slower
# than the first's (waking it, the shared caches): E-steps alternated with
# one thread and two on 45 shapes of every covariance type took 0.90x the
# threads' time on one thread at 8.5 MiB (38 shapes faster), 0.94x at 11 MiB
# (32), 1.00x at 15 MiB (31, the others up to 1.3x slower); from 64 MiB the
# threads won nearly everywhere, 1.3-1.9x from 128 MiB.
_MIN_SPLIT_BYTES = 2**24


class CollapseError(ValueError):
    """An M-step gave a component a covariance that is not positive definite.

    A :class:`ValueError`, as scikit-learn raises; the EM loop also catches
    it to stop a diverging run (see ``BaseMixtureEM._fit``).
    """


#: The smallest log-probability relative to a row's largest that
#: logsumexp_rows keeps in float32: e^20 times the smallest normal number
#: (1.1e-29), so that neither the probabilities nor their products with a
#: chunk's features are subnormal numbers.
_FLOAT32_LOG_FLOOR = np.float32(np.log(np.finfo(np.float32).tiny) + 20.0)

#: The log of the smallest normal float64 number: probabilities below it are
#: set to zero.
_FLOAT64_LOG_TINY = np.log(np.finfo(np.float64).tiny)

#: The E-step's floor on float64 log-probabilities relative to a row's
#: largest (see :func:`negligible_floor`): masses below 2^-64 of it may be
#: zero.
_FLOAT64_LOG_NEGLIGIBLE = np.log(2.0**-64)

#: Components whose weight is below 2^-30 keep every normal mass.
_LOG_LIGHT_COMPONENT = np.log(2.0**-30)

#: From this fraction of a chunk's entries below their floor (on a sample
#: of its rows), only the others are exponentiated (gathered, then
#: scattered into zeros); below it, all of them.
_SPARSE_EXP_FRACTION = 0.5


#: Up to this many columns a row-wise maximum of a row-major array is taken
#: column by column. NumPy reduces a short contiguous axis row by row, at
#: about 40 ns a row whatever its length (100,000 x 4: 4.1 ms, more than the
#: exponentials' 2.8 ms); one element-wise maximum per column costs 2.3 ns
#: a row at 4 columns and 25 at 16, while from 24 columns on the strided
#: columns cost more than the reduction. A column-major array (the
#: log-probabilities' usual layout) is reduced in one call instead: NumPy
#: then runs along the columns itself, as fast as the loop or faster (5,000
#: x 12: 13 against 20 us), and a chunk's calls are what its threads wait
#: on each other for (see :func:`_column_major`).
_COLUMN_MAX = 16

#: Below this many columns a row-wise sum is taken column by column, in
#: NumPy's own order for so short a row (so the sums are bit for bit
#: ``a.sum(axis=1)``'s); from it on, as a product with ones (2-3 ns a row
#: against 23-25 up to 16 columns, 12 against 30 at 32).
_COLUMN_SUM = 8


#: What float64 log-probabilities are shifted by beyond their row's largest
#: before the exponential. The largest would otherwise be exactly zero, and
#: glibc's ``exp`` (which NumPy calls for float64 without AVX-512) takes a
#: separate branch for arguments below 2^-54 in size: one entry in K of a
#: row, at random positions, is mispredicted often enough to cost 2 ns of
#: the exponential's 5-7 an entry at 2-4 components (measured on 100,000
#: rows). The shift cancels in the normalised probabilities up to rounding
#: and is added back to the log-normaliser.
_EXP_SHIFT = 2.0**-20


def _column_major(a):
    """Whether the columns of the 2-D array ``a`` are its contiguous axis.

    Then NumPy's reductions along the rows run down the columns in one
    call, which on a chunk's threads matters more than the call's own
    speed: each NumPy call releases the GIL and takes it back, and while
    the other thread holds it, taking it back costs a wake-up of tens of
    microseconds (a row maximum of 5,000 x 12 column by column ran at 0.45x
    of one thread's rate on two). With the row maxima, sums and arg-maxima
    in one call each, alternated in blocks of calls: diag 50,000 x 2,
    K = 16, ``predict`` 0.73 of its time; float32 diag 50,000 x 8, K = 12,
    0.85; full 100,000 x 4, K = 8, ``score_samples`` 0.92.
    """
    return a.shape[1] > 1 and a.strides[0] < a.strides[1]


def _row_max(a):
    """``a.max(axis=1)`` of a 2-D array with at least one column, faster.

    See ``_COLUMN_MAX``. NaN propagates as in ``a.max(axis=1)``.
    """
    n_columns = a.shape[1]
    if n_columns == 1:
        return a[:, 0].copy()
    if n_columns > _COLUMN_MAX or (n_columns > 2 and _column_major(a)):
        return np.maximum.reduce(a, axis=1)
    out = np.maximum(a[:, 0], a[:, 1])
    for j in range(2, n_columns):
        np.maximum(out, a[:, j], out=out)
    return out


#: From this many rows :func:`_row_argmax` goes column by column: below,
#: its calls cost more than ``argmax``'s copy (1,000 x 8: 21 against 14
#: us; 2,000 x 8: 31 against 39).
_COLUMN_ARGMAX_ROWS = 2048

#: Up to this many columns :func:`_row_argmax` compares each column with the
#: row maxima; from one more, it searches the comparison's booleans.
_COLUMN_ARGMAX_LOOP = 3


def _row_argmax(a):
    """``a.argmax(axis=1)`` of a 2-D array with at least one column, faster.

    NumPy's ``argmax`` along the rows of a column-major array (the
    log-probabilities' usual layout) copies it to row-major first and then
    runs one short search per row; up to ``_COLUMN_MAX`` columns the row
    maxima (:func:`_row_max`) and the first position where each row equals
    its maximum, found by ``argmax`` on the comparison's booleans, are
    faster at 5,000 x 12 (119 against 166 us) and as fast at 50,000 x 12;
    up to ``_COLUMN_ARGMAX_LOOP`` columns, one comparison a column, from the
    last, is faster still (5,000 x 3: 52 against 76 us). Rows holding
    NaN, whose first NaN is ``argmax``'s answer, are searched by
    ``argmax``.
    """
    n_rows, n_columns = a.shape
    if n_columns > _COLUMN_MAX or n_rows < _COLUMN_ARGMAX_ROWS or a.flags.c_contiguous:
        return a.argmax(axis=1)
    top = _row_max(a)
    if n_columns <= _COLUMN_ARGMAX_LOOP:
        labels = np.zeros(n_rows, dtype=np.intp)
        # From the last column back, so that the first of equal maxima stays.
        for j in range(n_columns - 1, -1, -1):
            labels[a[:, j] == top] = j
    else:
        # In three calls, not two a column (see _column_major; 5,000 x 12
        # on two threads, 0.40 -> 0.14 ms a call).
        labels = np.equal(a, top[:, np.newaxis]).argmax(axis=1)
    nan = np.isnan(top)
    if nan.any():
        labels[nan] = a[nan].argmax(axis=1)
    return labels


def _row_sum(a):
    """``a.sum(axis=1)`` of a 2-D float array with at least one column, faster.

    See ``_COLUMN_SUM``: the same sums bit for bit below it, and from it on
    the same up to rounding (a product's order of additions).
    """
    n_columns = a.shape[1]
    if n_columns == 1:
        return a[:, 0].copy()
    if n_columns >= _COLUMN_SUM:
        return np.dot(a, np.ones(n_columns, dtype=a.dtype))
    if n_columns > 2 and _column_major(a):
        # One call (see _column_major), adding the columns in order as the
        # loop below: NumPy reduces the non-contiguous axis element-wise.
        return np.add.reduce(a, axis=1)
    out = np.add(a[:, 0], a[:, 1])
    for j in range(2, n_columns):
        np.add(out, a[:, j], out=out)
    return out


def column_sums(a, dtype=None):
    """``a.sum(axis=0, dtype=dtype)`` of a 2-D array, bit for bit, faster.

    NumPy reduces a C-ordered array along its first axis row after row,
    from zero, one inner-loop call per row: about 20 ns a row, most of the
    time for a few columns (10,000 x 8: 208 us). ``einsum`` adds the rows
    in the same order, from zero, in one loop: 48 us there, 1.4 against
    4.1 ms at 200,000 x 16.

    Parameters
    ----------
    a : ndarray of shape (n_samples, n_columns)

    dtype : dtype, default=None
        The accumulator's, as ``ndarray.sum``'s.

    Returns
    -------
    sums : ndarray of shape (n_columns,)
    """
    # einsum's iterator puts the axis of smallest stride innermost: the
    # rows' order holds only while that is the columns'. (On a few dozen
    # rows its set-up costs more than the reduction's calls, and from a
    # few hundred columns NumPy's vectorised loop gains more than the calls
    # cost: 3,000 x 200 took 135 against 122 us, 10,000 x 128 300 against
    # 445.)
    if (
        a.ndim != 2
        or a.shape[0] < 64
        or not 2 <= a.shape[1] <= 128
        or a.strides[1] != a.itemsize
        or a.strides[0] < a.shape[1] * a.itemsize
    ):
        return a.sum(axis=0, dtype=dtype)
    return np.einsum("ij->j", a, dtype=dtype)


def mass_sums(resp):
    """Float64 column sums of responsibilities, by one matrix-vector product.

    The rows are added in order, as by :func:`column_sums`, but in BLAS's
    vectorised loop rather than NumPy's reduction: the same sums up to
    rounding. A float32 ``resp`` is cast to float64 first: its sums are
    float64 sums of the exact values. C-ordered, one thread, 25,000 x 4: 25
    against column_sums' 75 us (float64) and 98 us (float32, whose einsum
    with a float64 accumulator casts in buffers); 6,250 x 16: 9 against 31
    and 47.

    Parameters
    ----------
    resp : ndarray of shape (n_samples, n_components)

    Returns
    -------
    nk : ndarray of shape (n_components,), float64
    """
    if len(resp) < 64 or resp.strides[1] != resp.itemsize:
        # On a few rows the product's set-up costs more than it saves; the
        # columns of an F-ordered ``resp`` are contiguous, and NumPy's own
        # reduction of them was as fast (float32 50,000 x 4 in a fit's two
        # threads: the product, with its cast copy, took 1.06x the fit's
        # time).
        return column_sums(resp, np.float64)
    return np.dot(np.ones(len(resp)), resp)


# Rows of the centre tiled for subtract_centre: the inner loop of the
# subtraction runs over this many rows at once instead of one row.
_TILE_ROWS = 64


def subtract_centre(X, centre, out):
    """``out = X - centre`` for a C-ordered ``X``, in long vectorised loops.

    Broadcasting ``centre`` over the rows makes NumPy loop over one row of
    n_features values at a time; viewing the rows in blocks of
    ``_TILE_ROWS`` and subtracting the tiled centre makes the inner loop
    ``_TILE_ROWS`` times longer (about twice as fast on narrow data).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    centre : ndarray of shape (n_features,)

    out : ndarray of shape (n_samples, n_features), C-ordered
    """
    n_samples, n_features = X.shape
    if not X.flags.c_contiguous or n_samples < 4 * _TILE_ROWS:
        # (On a few rows tiling the centre costs more than it saves.)
        np.subtract(X, centre, out=out)
        return
    head = n_samples - n_samples % _TILE_ROWS
    width = _TILE_ROWS * n_features
    np.subtract(
        X[:head].reshape(-1, width),
        np.tile(centre, _TILE_ROWS),
        out=out[:head].reshape(-1, width),
    )
    np.subtract(X[head:], centre, out=out[head:])


def negligible_floor(log_weights):
    """The E-step's floor on float64 log-probabilities, per component.

    Computing ``exp`` is most of an E-step's element-wise time in float64
    (5 ns a value with glibc: NumPy vectorises it only with AVX-512), and
    on separated clusters most entries of a row are tens or hundreds of
    nats below its largest. Masses below ``2^-64`` of their row's largest
    may therefore be exactly zero in a fit's E-step, and are not computed
    where most entries are (see :func:`_exp_above`): a row's normaliser, at
    least about 1, loses
    less than ``(K - 1) 2^-64``, below its rounding for K up to 2048, and a
    component's sums less than ``2^-64`` per row, ``2^-34`` of them relative
    to a component of weight ``2^-30``. Lighter components, whose sums are
    made of such masses, keep every mass down to the smallest normal number
    (the exact zeros below it are scikit-learn's). Prediction keeps them
    all.

    Parameters
    ----------
    log_weights : ndarray of shape (n_components,)
        The current log mixture weights.

    Returns
    -------
    floor : float or ndarray of shape (n_components,)
        A float when every component has the same floor.
    """
    light = log_weights < _LOG_LIGHT_COMPONENT
    if not light.any():
        return _FLOAT64_LOG_NEGLIGIBLE
    return np.where(light, _FLOAT64_LOG_TINY, _FLOAT64_LOG_NEGLIGIBLE)


def logsumexp_rows(a, floor=None):
    """Row-wise log-sum-exp, and the row-normalised exponentials in place.

    Parameters
    ----------
    a : ndarray of shape (n_samples, n_components)
        Unnormalised log-probabilities. It is overwritten with the
        normalised probabilities ``exp(a - logsumexp(a, axis=1))`` (zeros for
        a row whose entries are all -inf).

    floor : float or ndarray of shape (n_components,), default=None
        float64 only: the log-masses relative to a row's largest below which
        the probabilities may be exactly zero (:func:`negligible_floor`'s;
        below the smallest normal number they are); None means the smallest
        normal number's.

    Returns
    -------
    log_norm : ndarray of shape (n_samples,)
        ``log(sum_k exp(a[:, k]))`` for every row.
    """
    if a.shape[1] == 1:
        return _logsumexp_single(a)
    if floor is None:
        floor = _FLOAT64_LOG_TINY
    if a.shape[1] == 2 and a.dtype == np.float64:
        log_norm = _logsumexp_pair(a, np.min(floor))
        if log_norm is not None:
            return log_norm
    a_max = _row_max(a)
    # A row whose entries are all -inf has no mass at all: keep it finite so
    # that it yields -inf rather than NaN.
    a_max[~np.isfinite(a_max)] = 0
    if a.dtype == np.float64:
        # Slightly more than the largest: see _EXP_SHIFT.
        a_max += _EXP_SHIFT
    a -= a_max[:, np.newaxis]
    if a.dtype == np.float64:
        # float64's subnormal band (708 to 745 nats below a row's largest)
        # is reached by well-separated clusters in many dimensions, where it
        # slowed the moments' products 3x (D = 64, full and diag): masses
        # below the smallest normal number (or the E-step's higher floor)
        # become exactly zero, as those more than 745 nats down already are.
        _exp_above(a, floor)
        return _normalise_rows(a, a_max)
    # Components of zero probability (-inf) keep exactly zero below.
    impossible = a == -np.inf
    if a.dtype == np.float32:
        # exp of anything below log(tiny) is a subnormal number, on which the
        # floating-point units of many processors are tens of times slower:
        # a float32 chunk's exp and products over such responsibilities took
        # 3-7x longer (the 16 nats from 87 to 103 below a row's largest are
        # common in float32; float64's, 708 to 745, are not). Relative
        # masses below _FLOAT32_LOG_FLOOR, far below rounding, are raised to
        # it instead (one fast pass; masking them to zero cost as much as
        # the exp). float64 keeps scikit-learn's exact zeros, which its
        # handling of collapsing components relies on.
        raise_to(a, _FLOAT32_LOG_FLOOR)
    np.exp(a, out=a)
    if impossible.any():
        a[impossible] = 0
    return _normalise_rows(a, a_max)


#: Values per call of :func:`raise_to`, and the size of its arrays of
#: constants.
_RAISE_BLOCK = 2**16

#: Arrays of fewer values :func:`raise_to` raises with NumPy's maximum.
_RAISE_SMALL = 8192

_RAISE_CONSTANTS = {}


def raise_to(a, value):
    """``np.maximum(a, value, out=a)``, for a scalar ``value``, faster.

    NumPy's maximum of an array and a scalar runs a scalar loop, while that
    of two arrays runs its SIMD one: a contiguous ``a`` is raised a block at
    a time against a cached array of ``value`` (NumPy 2.4, 200,000 values in
    random order, one thread: float32 22 against 69 us, float64 40 against
    96). The same values, NaN included. Under ``_RAISE_SMALL`` values the
    scalar loop is kept: there the calls cost more than the loop (300
    values: 1.4 against 0.5 us; 10,000: 1.9 against 5.6).

    Parameters
    ----------
    a : ndarray
        Modified in place.

    value : float

    Returns
    -------
    a : ndarray
    """
    if a.size < _RAISE_SMALL or not (a.flags.c_contiguous or a.flags.f_contiguous):
        return np.maximum(a, value, out=a)
    flat = a.ravel(order="K")
    key = (a.dtype.str, repr(float(value)))
    constants = _RAISE_CONSTANTS.get(key)
    if constants is None:
        constants = _RAISE_CONSTANTS[key] = np.full(_RAISE_BLOCK, value, a.dtype)
    for start in range(0, flat.size, _RAISE_BLOCK):
        block = flat[start : start + _RAISE_BLOCK]
        np.maximum(block, constants[: block.size], out=block)
    return a


def _exp_above(a, floor):
    """``exp(a)`` in place, where ``a`` may be below ``floor`` only at zero.

    Where few entries are above their floor (separated clusters: about one
    a row), only those are exponentiated, gathered and scattered back into
    zeros (a chunk with 10% of its entries above: 1.8 against 5.0 ns an
    entry). Otherwise every entry is, and those below the floor are zeroed
    (with a floor below ``_FAST_EXP_LOG``, or one per component, those
    below the smallest normal number): raised to ``_FAST_EXP_LOG`` first,
    since NumPy's exponentials of results near or below the smallest normal
    number take a slow path (11 ns each at its log, -708.4; up to 80 ns in
    the subnormal range below), then multiplied by zero (masked copies and
    ``exp(-inf)`` in random positions cost 4 and 5 ns an entry in
    mispredicted branches). With the
    smallest normal number as the floor, the few entries between it and
    ``_FAST_EXP_LOG`` are exponentiated apart, where many entries are far
    below (on a sample of rows, ``_DEEP_EXP_FRACTION``); where few are,
    the others are raised to the smallest normal number's log instead, one
    pass fewer. The masses below the floor are too small to change a row's
    normaliser or, beyond rounding, a component's sums (see
    :func:`negligible_floor`).

    Parameters
    ----------
    a : ndarray of shape (n_samples, n_components) or (n_samples,)
        float64 log-masses relative to their row's largest (at most zero).

    floor : float or ndarray of shape (n_components,)
        At least :data:`_FLOAT64_LOG_TINY`.
    """
    contiguous = a.flags.c_contiguous or a.flags.f_contiguous
    if a.size <= _SMALL_EXP:
        # A few calls, decided on every entry: those below become exp(-inf),
        # exactly zero, or, where most are, only the others are computed
        # (the exponential of -inf is a slow path: 100 x 40 entries, 97% of
        # them below, 12.6 against 4.5 us).
        below = np.less(a, floor)
        if contiguous and np.count_nonzero(below) >= _SPARSE_EXP_FRACTION * a.size:
            _exp_scattered(a, below)
            return
        np.copyto(a, -np.inf, where=below)
        np.exp(a, out=a)
        return
    if not contiguous:
        b = a.copy(order="C")
        _exp_above(b, floor)
        a[...] = b
        return
    # Which way is decided on every 16th row (the full count cost a tenth
    # of the exponentials where all of them are needed).
    sample = a[::_SAMPLED_ROWS]
    if np.count_nonzero(np.less(sample, floor)) >= _SPARSE_EXP_FRACTION * sample.size:
        _exp_scattered(a, np.less(a, floor))
        return
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    flat = a.ravel(order=order)
    rescue = False
    if np.ndim(floor) == 0 and floor >= _FAST_EXP_LOG:
        # A fit's E-step (one floor, above _FAST_EXP_LOG): the entries below
        # it are zeroed, as the other way does. Raised to the smallest
        # normal number's log, their exponentials took NumPy's slow path
        # (25,000 x 8 with 30% of the entries beyond 708 nats: 1.40 against
        # 0.37 ms).
        cut, raised = floor, _FAST_EXP_LOG
    elif (
        np.count_nonzero(np.less(sample, _FAST_EXP_LOG))
        >= _DEEP_EXP_FRACTION * sample.size
    ):
        # Predictions (and fits with light components) keep every normal
        # mass: those above the smallest normal number's log but below
        # _FAST_EXP_LOG are exponentiated apart (predict_proba of 100,000 x
        # 16 rows, 12 diagonal components, a third of the entries that far:
        # see the design note).
        cut = raised = _FAST_EXP_LOG
        rescue = True
    else:
        cut = raised = _FLOAT64_LOG_TINY
    below = np.less(flat, cut)
    if not below.any():
        np.exp(flat, out=flat)
        return
    if rescue:
        rescued = np.flatnonzero(below & np.greater_equal(flat, _FLOAT64_LOG_TINY))
        rescued_values = np.exp(flat[rescued])
    # (With a cut above it, only entries below _FAST_EXP_LOG need raising:
    # often none, and the test costs a fifth of np.maximum.)
    if cut == raised or np.less(flat, raised).any():
        raise_to(flat, raised)
    np.exp(flat, out=flat)
    np.logical_not(below, out=below)
    flat *= below
    if rescue:
        flat[rescued] = rescued_values


def _exp_scattered(a, below):
    """``exp(a)`` in place where ``below`` is False, zero where it is True.

    Only the entries kept are exponentiated, gathered and scattered back into
    zeros (NaN is not below: it propagates).

    Parameters
    ----------
    a : ndarray of shape (n_samples, n_components) or (n_samples,)
        C- or F-contiguous.

    below : ndarray of bool, of the shape of ``a``
        Modified.
    """
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    flat = a.ravel(order=order)
    keep = below.ravel(order=order)
    np.logical_not(keep, out=keep)
    where = np.flatnonzero(keep)
    values = np.exp(flat[where])
    flat.fill(0)
    flat[where] = values


#: :func:`_exp_above` samples one row in this many.
_SAMPLED_ROWS = 16

#: With the smallest normal number as the floor, from this fraction of a
#: chunk's sampled entries below ``_FAST_EXP_LOG``, :func:`_exp_above`
#: raises them to it (and exponentiates those above the floor apart).
_DEEP_EXP_FRACTION = 0.05

#: Up to this many entries, :func:`_exp_above` makes the fewest calls (on
#: small data, each costs more than its arithmetic).
_SMALL_EXP = 2**12

#: NumPy's float64 ``exp`` takes its fast path from here up; from about the
#: smallest normal number's log down (-708.4) each value costs 10-100 times
#: as much (4,000 values: 3.2 us at -700, 47 at -708.39, 330 at -720, 17 at
#: -inf).
_FAST_EXP_LOG = -700.0


def _logsumexp_single(a):
    """:func:`logsumexp_rows` of one column: the column itself.

    A one-component model's log-likelihoods are its log-densities (exactly,
    as scipy's ``logsumexp`` gives them; the general case's shift off zero
    left them within rounding) and its probabilities 1: 0 where the entry
    is ``-inf``, NaN where it is ``+inf`` or NaN, as in the general case.
    Its dozen passes over the rows were a tenth of a one-component
    ``score_samples`` on narrow data.

    Parameters
    ----------
    a : ndarray of shape (n_samples, 1)
        Overwritten as in :func:`logsumexp_rows`.

    Returns
    -------
    log_norm : ndarray of shape (n_samples,)
    """
    column = a[:, 0]
    log_norm = column.copy()
    with np.errstate(invalid="ignore"):
        # 0 where finite, NaN where not: exp gives 1 and NaN.
        np.subtract(column, log_norm, out=column)
    np.exp(column, out=column)
    column[log_norm == -np.inf] = 0.0
    return log_norm


def _logsumexp_pair(a, floor=_FLOAT64_LOG_TINY):
    """:func:`logsumexp_rows` of two columns, with one exponential per row.

    Once a row's largest entry is subtracted from it, that entry's
    exponential is exactly 1: only the other one is computed. The
    exponentials (and logarithms) are most of the element-wise time of an
    E-step with two components: float64's cost 5-10 ns each (NumPy
    vectorises them only with AVX-512), where every other pass costs under
    1 ns a value; float32's are vectorised and cheap, and keep the general
    case, whose passes are fewer. The results are the general case's up to
    rounding (which shifts its exponentials' arguments by ``_EXP_SHIFT``);
    the larger entry's probability is ``1 / (1 + e)``, exactly 1 alone.

    Parameters
    ----------
    a : ndarray of shape (n_samples, 2), float64
        Overwritten as in :func:`logsumexp_rows`.

    floor : float, default=_FLOAT64_LOG_TINY
        As :func:`logsumexp_rows`'s, for both columns.

    Returns
    -------
    log_norm : ndarray of shape (n_samples,) or None
        None, with ``a`` unchanged, when a row has no finite entry (left to
        the general case).
    """
    first, second = a[:, 0], a[:, 1]
    a_max = np.maximum(first, second)
    if not np.isfinite(a_max).all():
        return None
    first_larger = first >= second
    # The smaller entry relative to the larger: the general case's a - a_max
    # in the other column.
    low = np.minimum(first, second)
    low -= a_max
    _exp_above(low, floor)
    norm = low + 1
    log_norm = np.log(norm)
    np.reciprocal(norm, out=norm)
    low *= norm
    # The larger entry's probability is 1 * norm.
    np.copyto(first, np.where(first_larger, norm, low))
    np.copyto(second, np.where(first_larger, low, norm))
    log_norm += a_max
    return log_norm


def _normalise_rows(a, a_max):
    """The end of :func:`logsumexp_rows`: ``a`` holds ``exp(a - a_max)``."""
    norm = _row_sum(a)
    with np.errstate(divide="ignore"):
        log_norm = np.log(norm)
    # A massless row has no probabilities to normalise: leave it at zero.
    norm[norm == 0] = 1
    np.reciprocal(norm, out=norm)
    a *= norm[:, np.newaxis]
    log_norm += a_max
    return log_norm


def normalise_weights(sample_weight, scale=None):
    """Frequency weights divided by a power of two so that their mean is in [1, 2).

    A Gaussian mixture does not depend on the scale of the weights, but its
    sums do: weights of 1e308 overflow them, and an absolute guard such as
    scikit-learn's ``N_k + 10 eps`` swamps weights of 1e-20. Multiplying by
    a power of two is exact, so weights times ``2 ** k`` give bit-identical
    statistics, and weights times any constant the same up to rounding.

    Parameters
    ----------
    sample_weight : ndarray or dask.array.Array of shape (n_samples,) or None
        Non-negative weights, not all zero.

    scale : float, default=None
        A power of two to multiply by instead (that of earlier weights).

    Returns
    -------
    sample_weight : ndarray or dask.array.Array of shape (n_samples,) or None
        ``sample_weight * scale`` (the input itself when ``scale`` is 1).

    scale : float
        The power of two the weights were multiplied by; 1.0 for None.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_em.mixture._suffstats import normalise_weights
    >>> normalise_weights(np.array([0.25, 0.5]))
    (array([1., 2.]), 4.0)
    """
    if sample_weight is None:
        return None, 1.0 if scale is None else scale
    if scale is None:
        # The mean relative to the largest weight cannot overflow.
        top = float(sample_weight.max())
        mean = float((sample_weight / top).mean(dtype=np.float64)) * top
        exponent = math.frexp(mean)[1]  # mean = m 2^exponent, m in [0.5, 1)
        scale = math.ldexp(1.0, 1 - exponent)
    if scale == 1.0:
        return sample_weight, scale
    # In float64: the scale of float32 weights need not be a float32.
    scaled = sample_weight * np.float64(scale)
    return scaled.astype(sample_weight.dtype, copy=False), scale


def e_step_chunk(X, sample_weight, *, weighted_log_prob, accumulate, floor=None):
    """E-step on one chunk, returning its sufficient statistics.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        One chunk of the data, or any representation of it the two callables
        below take (the Gaussian mixture passes features of the chunk).

    sample_weight : ndarray of shape (n_samples,) or None
        Frequency weights of the chunk's rows; None means all ones.

    weighted_log_prob : callable
        ``weighted_log_prob(X)`` returns ``log pi_k + log p(x_n | k)`` as an
        ndarray of shape (n_samples, n_components).

    accumulate : callable
        ``accumulate(X, resp)`` returns a dict of sums over the chunk's rows,
        given responsibilities already multiplied by the sample weights.

    floor : float or ndarray of shape (n_components,), default=None
        As :func:`logsumexp_rows`'s (:func:`negligible_floor`'s).

    Returns
    -------
    stats : dict of ndarray
        The model's sums plus ``"log_likelihood"`` (the weighted sum of the
        rows' log-likelihoods) and ``"sum_weight"`` (the sum of the weights).
    """
    resp = weighted_log_prob(X)
    log_norm = logsumexp_rows(resp, floor)
    if sample_weight is None:
        log_likelihood = log_norm.sum(dtype=np.float64)
        sum_weight = float(resp.shape[0])
    else:
        resp *= sample_weight[:, np.newaxis]
        log_likelihood = np.dot(sample_weight.astype(np.float64), log_norm)
        sum_weight = sample_weight.sum(dtype=np.float64)
    stats = accumulate(X, resp)
    stats["log_likelihood"] = np.asarray(log_likelihood, dtype=np.float64)
    stats["sum_weight"] = np.asarray(sum_weight, dtype=np.float64)
    return stats


def resp_chunk(X, sample_weight, resp, *, accumulate):
    """Sufficient statistics of a chunk from given responsibilities.

    Used at initialisation, where responsibilities come from k-means or a
    random draw rather than from an E-step.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,) or None

    resp : ndarray of shape (n_samples, n_components)

    accumulate : callable
        As in :func:`e_step_chunk`.

    Returns
    -------
    stats : dict of ndarray
    """
    if sample_weight is not None:
        resp = resp * sample_weight[:, np.newaxis]
    return accumulate(X, resp)


def log_likelihood_rows(X, *, weighted_log_prob):
    """``log p(x_n)`` of a chunk's rows, shape (n_samples,).

    ``weighted_log_prob`` is as in :func:`e_step_chunk`.
    """
    return logsumexp_rows(weighted_log_prob(X))


def proba_rows(X, *, weighted_log_prob):
    """Responsibilities of a chunk's rows, shape (n_samples, n_components).

    ``weighted_log_prob`` is as in :func:`e_step_chunk`. The result may be
    the callable's own buffer, normalised in place.
    """
    resp = weighted_log_prob(X)
    logsumexp_rows(resp)
    return resp


def label_rows(X, *, weighted_log_prob):
    """Most probable component of a chunk's rows, shape (n_samples,).

    ``weighted_log_prob`` is as in :func:`e_step_chunk`.
    """
    return _row_argmax(weighted_log_prob(X))


def add_statistics(stats_list):
    """Add a sequence of statistics dictionaries key by key.

    Parameters
    ----------
    stats_list : iterable of dict of ndarray or None

    Returns
    -------
    total : dict of ndarray or None
        None entries (empty chunks or blocks) are skipped; None when every
        entry is None.
    """
    total, copied = None, False
    for stats in stats_list:
        if stats is None:
            # An empty chunk or block contributes nothing.
            continue
        if total is None:
            # Copied only when a second entry is added to it: the entries
            # are never modified, and one chunk's are returned as they are.
            total = stats
            continue
        if not copied:
            total = {key: np.array(value, copy=True) for key, value in total.items()}
            copied = True
        for key, value in stats.items():
            total[key] += value
    return total


def n_threads(n_jobs):
    """Number of threads to map chunks over.

    Parameters
    ----------
    n_jobs : int or None
        None means as many threads as BLAS may use: all the cores unless
        limited by ``threadpoolctl.threadpool_limits``, ``OMP_NUM_THREADS`` or
        ``OPENBLAS_NUM_THREADS`` (joblib's process workers set these), so a
        default fit uses the cores scikit-learn's ``GaussianMixture`` uses
        through BLAS, and never more. Otherwise joblib's convention: -1 means
        all processors, -2 all but one, and so on.

    Returns
    -------
    n_threads : int
    """
    if n_jobs is not None:
        return effective_n_jobs(n_jobs)
    # Inside another fit's single-thread window, BLAS's own setting is the
    # one the window will restore.
    limits = _BLAS_WINDOW.original_num_threads()
    if limits is None:
        controller = _controller().select(user_api="blas")
        limits = [lib.num_threads for lib in controller.lib_controllers]
    return max(1, min([_n_cpus(), *limits]))


@lru_cache(maxsize=1)
def _n_cpus():
    """The CPUs this process may use (cached: reading cgroups takes 50 us)."""
    return cpu_count(only_physical_cores=False)


def chunk_rows(
    n_samples,
    n_features,
    n_components,
    itemsize,
    n_jobs=1,
    model_row_values=0,
    exact=False,
    cache_bytes=None,
    shared_row_values=0,
    min_threaded_rows=0,
    max_threaded_rows=_MAX_CHUNK_ROWS,
    threaded_cache_bytes=None,
):
    """Number of rows per chunk.

    The chunk's largest temporaries are a few arrays of
    ``n_features * n_components`` values per row, or the model's own
    ``model_row_values`` if more. Rows are chosen so that they
    fit in a cache-sized budget, capped by scikit-learn's ``working_memory``
    setting, and so that every thread gets at least one chunk. By default
    (``n_jobs=None``) that split is made only when the data is large enough
    for threads to pay for their hand-offs (``_MIN_SPLIT_BYTES``);
    smaller data stays in one cache-sized chunk.

    Parameters
    ----------
    n_samples, n_features, n_components, itemsize : int

    n_jobs : int or None, default=1
        As in :func:`map_reduce`.

    model_row_values : int, default=0
        Values per row of the model's chunk temporaries when they can exceed
        the estimate above (the quadratic features of full covariances grow
        as ``n_features ** 2``).

    exact : bool, default=False
        ``model_row_values`` counts all of the chunk's temporaries: it
        replaces the estimate, even when smaller (a model whose temporaries
        do not grow with ``n_features * n_components``).

    cache_bytes : int, default=None
        The cache budget of a chunk's temporaries; None means 16 MiB.

    shared_row_values : int, default=0
        Values per row that each pass over a chunk reads more than once
        (the Gaussian mixture's features, read by both halves of the
        E-step). When the chunks are split over threads, the threads'
        chunks together keep these within ``cache_bytes``: the last-level
        cache is shared, and chunks that each filled it sent every re-read
        to memory.

    min_threaded_rows : int, default=0
        With ``n_jobs=None``, the fewest rows split over threads, whatever
        their bytes (a model whose rows cost little arithmetic for their
        size).

    max_threaded_rows : int, default=32768
        The most rows of a chunk within the cache budget when the chunks are
        split over threads (a model whose rows cost so little that the
        threads' hand-offs need longer chunks); otherwise 32,768.

    threaded_cache_bytes : int, default=None
        The cache budget of a chunk's temporaries, in place of
        ``cache_bytes``, when the chunks are split over threads; None keeps
        ``cache_bytes``.

    Returns
    -------
    rows : int
    """
    row_values = (n_features + 2) * max(n_components, 1)
    row_values = (model_row_values if exact else max(row_values, model_row_values)) + 1
    row_bytes = itemsize * row_values
    working_memory = get_config()["working_memory"] * 2**20
    # The cache budget counts 8-byte values whatever the dtype: float32
    # chunks of the same rows as float64 ones (half the bytes) measured 12%
    # faster than twice the rows on one thread -- a chunk's cost is not only
    # its bytes. (Over threads a model may count otherwise:
    # ``threaded_cache_bytes``.)
    cache_bytes = _CACHE_BYTES if cache_bytes is None else cache_bytes
    memory_rows = int(working_memory // row_bytes)
    budget_rows = min(cache_bytes // (8 * row_values), memory_rows)
    rows = max(64, min(budget_rows, _MAX_CHUNK_ROWS))
    # (Reading BLAS's thread count costs ~20 us: only where it can matter.)
    split = n_jobs is not None or (
        n_samples * row_bytes >= _MIN_SPLIT_BYTES and n_samples >= min_threaded_rows
    )
    if split or (n_samples > rows and n_samples >= min_threaded_rows):
        threads = n_threads(n_jobs)
        if threads > 1:
            if threaded_cache_bytes is not None:
                budget_rows = min(threaded_cache_bytes // (8 * row_values), memory_rows)
            rows = max(rows, min(budget_rows, max_threaded_rows))
            if split:
                if shared_row_values:
                    rows = min(
                        rows, max(64, cache_bytes // (8 * threads * shared_row_values))
                    )
                rows = min(rows, math.ceil(n_samples / threads))
            # As many equal chunks as a multiple of the threads: 100,000 rows
            # in chunks of 32,768 left one of two threads a chunk and a half
            # of work more than the other (diagonal covariances, D = 16,
            # K = 2: 6.3 against 3.5 ms per iteration in chunks of 25,000).
            # Data too small to split that still takes several chunks goes
            # to the threads too (see map_reduce): 2,000 x 200 in three
            # chunks of 868 rows left one thread two of them ('full', one
            # component: a prediction 1.3x the balanced chunks' time).
            n_chunks = threads * math.ceil(math.ceil(n_samples / rows) / threads)
            rows = math.ceil(n_samples / n_chunks)
    return max(1, min(rows, n_samples))


def gen_chunks(n_samples, rows):
    """Yield slices of ``rows`` consecutive samples covering ``n_samples``."""
    for start in range(0, n_samples, rows):
        yield slice(start, min(start + rows, n_samples))


def map_reduce(chunk_function, X, sample_weight=None, *extra, n_jobs=None, rows):
    """Map ``chunk_function`` over row chunks and add up the statistics.

    Parameters
    ----------
    chunk_function : callable
        ``chunk_function(X_chunk, w_chunk, *extra_chunks)`` returns a dict of
        ndarray sums.

    X : ndarray or sparse matrix of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,) or None

    *extra : ndarray of shape (n_samples, ...)
        Further per-row arrays chunked alongside ``X``.

    n_jobs : int or None
        Number of threads; see :func:`n_threads`.

    rows : int
        Rows per chunk.

    Returns
    -------
    stats : dict of ndarray or None
        None when ``X`` has no rows.
    """

    n_samples = X.shape[0]
    if 0 < n_samples <= rows and rows * X.shape[1] < _LARGE_CHUNK:
        # One chunk (small data): called directly, without planning blocks
        # (~20 us of a 100 us iteration on 'iris').
        with single_threaded_blas():
            return chunk_function(X, sample_weight, *extra)

    def block_function(block):
        # A generator: each chunk's statistics are added as they come, so
        # memory does not grow with the number of chunks (K D^2 values each).
        return add_statistics(
            chunk_function(
                X[s],
                None if sample_weight is None else sample_weight[s],
                *(e[s] for e in extra),
            )
            for s in block
        )

    return add_statistics(_map_chunk_blocks(block_function, X, n_jobs, rows))


def rows_shape(n_rows, n_outputs=None):
    """The shape of a row map's result: ``(n_rows,)``, or ``(n_rows,
    n_outputs)`` unless ``n_outputs`` is None."""
    return (n_rows,) if n_outputs is None else (n_rows, n_outputs)


def map_rows(row_function, X, out, *, n_jobs=None, rows):
    """``out[s] = row_function(X[s])`` for every row chunk ``s`` of ``X``.

    The row-wise counterpart of :func:`map_reduce`, used for prediction:
    the same chunks, threads and single-threaded BLAS.

    Parameters
    ----------
    row_function : callable
        ``row_function(X_chunk)`` returns an ndarray of shape
        (n_chunk_samples, ...) (it may be a view of a :func:`workspace`
        buffer: it is copied into ``out`` at once).

    X : ndarray or sparse matrix of shape (n_samples, n_features)

    out : ndarray of shape (n_samples, ...)
        Filled in place.

    n_jobs : int or None
        Number of threads; see :func:`n_threads`.

    rows : int
        Rows per chunk.

    Returns
    -------
    out : ndarray of shape (n_samples, ...)
    """

    def block_function(block):
        for s in block:
            out[s] = row_function(X[s])

    _map_chunk_blocks(block_function, X, n_jobs, rows)
    return out


def _map_chunk_blocks(block_function, X, n_jobs, rows):
    """Run ``block_function`` on contiguous blocks of row chunks, in threads.

    Parameters
    ----------
    block_function : callable
        ``block_function(slices)`` processes a list of row slices of ``X``.

    X : ndarray or sparse matrix of shape (n_samples, n_features)

    n_jobs : int or None
        Number of threads; see :func:`n_threads`.

    rows : int
        Rows per chunk.

    Returns
    -------
    results : list
        One result of ``block_function`` per thread (one in all when the
        chunks run in this thread).
    """
    slices = list(gen_chunks(X.shape[0], rows))
    if not slices:
        return []
    # (One chunk needs no thread count: reading BLAS's costs ~20 us.)
    n_jobs = 1 if len(slices) == 1 else min(n_threads(n_jobs), len(slices))
    if n_jobs == 1 and rows * X.shape[1] >= _LARGE_CHUNK:
        # Chunks this large (wide data) have products big enough for BLAS's
        # own threads to pay off (a limit held between windows is lifted).
        release_blas_limit()
        return [block_function(slices)]
    # A chunk's products are cache-sized: BLAS threads cost more to wake than
    # they save on them (and spin on a busy machine), so every chunk runs
    # single-threaded BLAS. Parallelism comes from threads over chunks, and
    # the two levels do not oversubscribe the cores. The limit is set once
    # per call, not per chunk.
    with single_threaded_blas():
        if n_jobs == 1:
            return [block_function(slices)]
        # One task per thread, each running a contiguous block of chunks
        # itself: no per-chunk dispatch, and one result per block, in order
        # whichever thread ran it. The calling thread runs a block instead
        # of waiting (waking a thread costs ~0.1 ms here, a large part of a
        # small E-step; see map_in_threads).
        return map_in_threads(
            lambda block: block_function(slices[block]),
            split_range(len(slices), n_jobs),
            n_jobs,
        )


def split_range(n_items, parts):
    """``parts`` contiguous slices of ``range(n_items)``, as even as can be.

    Parameters
    ----------
    n_items, parts : int

    Returns
    -------
    slices : list of slice
        The first ``n_items % parts`` one item longer than the others.
    """
    size, extra = divmod(n_items, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + size + (i < extra))
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def map_in_threads(function, items, threads):
    """``[function(item) for item in items]`` on ``threads`` threads.

    The calling thread is one of them: it takes items as the pool's threads
    do, rather than blocking until they are done. Handing an item to a
    waiting thread costs about 40 us on this machine (160 us after 50 ms of
    idleness), and a core left idle while its thread waits runs slower for
    a while when work comes back. k-means++'s steps, the first Lloyd
    iterations and the first M-step's clusters went to the pool with the
    caller waiting: default fits at 200,000 x 16, K = 16, now take 0.90
    ('diag'), 0.92 ('spherical') and 0.94 ('full') of their time,
    alternated; the E-step's map already ran its first block in the caller.

    Parameters
    ----------
    function : callable

    items : sequence

    threads : int

    Returns
    -------
    results : list
        In the order of ``items``.
    """
    n_items = len(items)
    threads = min(threads, n_items)
    if threads <= 1:
        return [function(item) for item in items]
    results = [None] * n_items
    # (next() on a count is atomic under the GIL.)
    counter = itertools.count()

    def work():
        while (i := next(counter)) < n_items:
            results[i] = function(items[i])

    pool = thread_pool(threads)
    futures = [pool.submit(work) for _ in range(threads - 1)]
    try:
        work()
    finally:
        # A task the pool has not started finds nothing left: cancelled, it
        # is not waited for (the pool's threads may be busy elsewhere).
        for future in futures:
            if not future.cancel():
                future.result()
    return results


_POOLS = {}


def thread_pool(n_jobs):
    """The process's pool of ``n_jobs`` threads, created on first use.

    Starting threads costs about a millisecond, more than a whole E-step on
    small data, so the pools live as long as the process (idle threads wait
    on a queue and use no CPU). A pool inherited through ``fork`` has no
    threads in the child and is replaced.

    Parameters
    ----------
    n_jobs : int

    Returns
    -------
    executor : concurrent.futures.ThreadPoolExecutor
    """
    pid, executor = _POOLS.get(n_jobs, (None, None))
    if pid != os.getpid():
        executor = ThreadPoolExecutor(
            max_workers=n_jobs, thread_name_prefix="sklearn_em"
        )
        _POOLS[n_jobs] = (os.getpid(), executor)
    return executor


_WORKSPACE = threading.local()


def workspace(name, shape, dtype):
    """An uninitialised array of this thread's, reused from chunk to chunk.

    Every chunk of a pass needs arrays of the same sizes (the Gaussian
    mixture's features and log-probabilities, say). Reusing one per thread,
    rather than allocating them per chunk, keeps them in cache and, above
    all, matters where the allocator returns every large block to the
    system at once: Dask's worker processes set ``MALLOC_TRIM_THRESHOLD_``,
    under which fresh arrays took 17,000 page faults per 250,000-row block
    and made the block 55% slower.
    Each thread holds at most one chunk's arrays (the chunk budget) per
    name; a buffer is replaced when a larger one or another dtype is needed.
    Nothing a chunk function returns may be a view of these arrays.

    Parameters
    ----------
    name : str
        The buffer's name, one per kind of temporary.

    shape : tuple of int

    dtype : numpy dtype

    Returns
    -------
    array : ndarray of shape ``shape``
        A view of the thread's buffer ``name``; its values are undefined.
    """
    size = math.prod(shape)
    buffers = _WORKSPACE.__dict__
    buffer = buffers.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.size < size:
        buffer = buffers[name] = np.empty(size, dtype=dtype)
    return buffer[:size].reshape(shape)


_CONTROLLER = []


class _BlasWindow:
    """Process-wide, reference-counted limit of BLAS to one thread.

    OpenBLAS's thread count is a process-wide setting. Setting it with a
    context manager per call, from several threads at once, loses the
    original value: a second thread that enters while the first holds the
    limit records 1 as "original" and restores 1 after the first has
    restored the real value, leaving BLAS single-threaded for good (seen in
    about one round in ten of eight concurrent fits; scikit-learn's KMeans,
    which every 'kmeans' initialisation runs, limits BLAS the same way).
    Here every limit of the process is one window: the first caller to enter
    sets the limit, the last to leave restores what the first saw, and the
    calls in between only count.

    The first and the last may be different threads. threadpoolctl (>= 3.8)
    lets one thread at a time set OpenBLAS's count (its "controlling
    thread"; the others' settings are silently ignored), so each setting
    here takes that control and gives it up at once (see
    :func:`_set_num_threads`), from whichever thread sets or restores: a
    few microseconds, where a hop to a dedicated thread that did both cost
    about 0.1 ms each way (0.2-0.27 ms of a 10 ms fit).
    Within :meth:`held` (the EM loop holds it) the limit is kept between
    windows and restored once, when the last hold ends; code that wants
    BLAS's own threads in between calls :meth:`release` first.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.pid = None
        self.local = threading.local()

    def _skipping(self):
        """Whether this thread is inside :meth:`skipped`."""
        return getattr(self.local, "skips", 0) > 0

    def _reset(self):
        # After a fork the child has none of the parent's threads.
        self.pid = os.getpid()
        self.depth = 0
        self.holds = 0
        self.libraries = None
        self.original = None

    def _check_process(self):
        if self.pid != os.getpid():
            self._reset()

    def __enter__(self):
        if self._skipping():
            return self
        with self.lock:
            self._check_process()
            if self.original is None:
                self._set()
            self.depth += 1
        return self

    def __exit__(self, *exc_info):
        if self._skipping():
            return
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and self.holds == 0:
                self._restore()

    @contextmanager
    def held(self):
        """Keep the limit, once a window has set it, until this block ends.

        Windows entered inside the block cost nothing after the first; BLAS
        stays limited between them (call :meth:`release` before code that
        wants its threads). Re-entrant and thread-safe like the windows.
        """
        if self._skipping():
            yield
            return
        with self.lock:
            self._check_process()
            self.holds += 1
        try:
            yield
        finally:
            with self.lock:
                self.holds -= 1
                if self.holds == 0 and self.depth == 0:
                    self._restore()

    @contextmanager
    def unskipped(self):
        """This thread's windows are real again until this block ends.

        For code that limits BLAS with its own threadpoolctl context (as
        scikit-learn's ``KMeans.fit`` does): only inside a real window can
        concurrent such limits not restore a stale thread count.
        """
        skips, self.local.skips = getattr(self.local, "skips", 0), 0
        try:
            yield
        finally:
            self.local.skips = skips

    @contextmanager
    def skipped(self):
        """No window in this thread until this block ends: its windows,
        holds and releases do nothing.

        For work whose every BLAS product is too small for BLAS to run on
        several threads (see :func:`blas_limit_for`): there the limit saves
        nothing, and setting and restoring it (about 15 us, under the
        process-wide lock) is all it would do.
        """
        self.local.skips = getattr(self.local, "skips", 0) + 1
        try:
            yield
        finally:
            self.local.skips -= 1

    def release(self):
        """Restore BLAS's threads now if no window is open (a held limit)."""
        if self._skipping():
            return
        with self.lock:
            self._check_process()
            if self.depth == 0:
                self._restore()

    def _set(self):
        # (Called with the lock held.)
        self.libraries = _controller().select(user_api="blas").lib_controllers
        self.original = [library.num_threads for library in self.libraries]
        _set_num_threads(self.libraries, [1] * len(self.libraries))

    def _restore(self):
        # (Called with the lock held; nothing to do if no limit is set.)
        if self.original is not None:
            original, self.original = self.original, None
            _set_num_threads(self.libraries, original)

    def original_num_threads(self):
        """BLAS's thread counts outside the window, or None if none is open."""
        return self.original if self.pid == os.getpid() else None


_BLAS_WINDOW = _BlasWindow()


def held_blas_limit():
    """Context manager keeping BLAS's one-thread limit between windows.

    See :meth:`_BlasWindow.held`: the EM loop holds it so that its
    iterations' windows set and restore BLAS's thread count once, not twice
    an iteration.
    """
    return _BLAS_WINDOW.held()


#: OpenBLAS runs a matrix product on one thread when m * n * k is below
#: SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD = 65536 * 4 (its
#: interface/gemm.c); other BLAS libraries thread later, not earlier.
_BLAS_ONE_THREAD_WORK = 65536 * 4


def blas_limit_for(work):
    """The BLAS window policy of a fit or prediction.

    Parameters
    ----------
    work : int or None
        Multiply-adds of the largest BLAS product the call makes at once
        (its E-step's over all the rows); None if unknown.

    Returns
    -------
    context : context manager
        :func:`held_blas_limit`, or, when ``work`` is below the size at
        which BLAS starts threads, a block in which this thread opens no
        window at all (:meth:`_BlasWindow.skipped`).
    """
    if work is not None and work < _BLAS_ONE_THREAD_WORK:
        return _BLAS_WINDOW.skipped()
    return _BLAS_WINDOW.held()


@contextmanager
def foreign_blas_limits():
    """Context manager for code that limits BLAS's threads itself.

    A real window (see :func:`single_threaded_blas`), even inside a small
    fit's :meth:`_BlasWindow.skipped` block: scikit-learn's ``KMeans``
    sets and restores its own limit, which concurrent fits would otherwise
    leave at one thread for good.
    """
    with _BLAS_WINDOW.unskipped(), _BLAS_WINDOW:
        yield


def release_blas_limit():
    """Give BLAS its threads back now, unless a window is open."""
    _BLAS_WINDOW.release()


def single_threaded_blas():
    """Context manager limiting BLAS to one thread, safely across threads.

    Re-entrant and thread-safe: all of the process's limits form one
    reference-counted window (see :class:`_BlasWindow`), so however fits
    overlap, BLAS's thread count is restored when the last one leaves.
    Used around every BLAS call of an EM iteration, the E-step's chunks and
    the models' small per-component factorisations alike, so that OpenBLAS's
    worker threads are never woken: once woken they busy-wait for a while on
    the cores the chunk threads need.
    """
    return _BLAS_WINDOW


def _set_num_threads(libraries, counts):
    """Set each BLAS library's thread count, from any thread.

    threadpoolctl (>= 3.8) ignores an OpenBLAS setting from any thread but
    its controlling one, the first to set a count until it gives up
    control: control is taken for the call (``clear_controlling_thread``
    with ``force=True``) and given up after it, so that neither this thread
    nor another keeps it (OpenBLAS's pthreads count is the process's
    either way).

    Parameters
    ----------
    libraries : list of threadpoolctl.LibController

    counts : list of int
    """
    for library, count in zip(libraries, counts):
        clear = getattr(type(library), "clear_controlling_thread", None)
        if clear is not None:
            clear(force=True)
        try:
            library.set_num_threads(count)
        finally:
            if clear is not None:
                clear(force=True)


#: OpenBLAS cores with small-matrix GEMM kernels: the AVX-512 ones, whose
#: kernel lists take SkylakeX's ``*gemm_small_kernel_*_skylakex.c``.
_SMALL_GEMM_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})

#: The largest ``m n k`` those kernels take (their
#: ``gemm_small_kernel_permit``: 100^3, for every orientation but a
#: transposed first operand with an inner dimension below 32). Larger
#: products pack both operands into buffers first, which for a long, narrow
#: product costs more than its arithmetic: one thread, ``(rows, 128) @ (128,
#: K)`` in float64 took 10-22 ns a row up to this size and 42-61 ns beyond
#: it (K = 2 to 8; float32 6-12 against 18-29 ns), the step at exactly this
#: many multiply-adds whatever the shape.
_SMALL_GEMM_WORK = 100**3


@lru_cache(maxsize=1)
def small_gemm_work():
    """The largest product NumPy's BLAS runs on small-matrix kernels.

    Returns
    -------
    work : int
        ``m n k`` of the largest ``(m, k) @ (k, n)`` product that takes
        OpenBLAS's small-matrix kernels (see ``_SMALL_GEMM_WORK``), where
        NumPy's BLAS is an OpenBLAS running one of ``_SMALL_GEMM_CORES``;
        0 for any other BLAS or core (none is known, so no product is cut
        to fit).
    """
    libraries = _controller().select(internal_api="openblas").lib_controllers
    # NumPy's own OpenBLAS (SciPy's wheel brings another): the one in NumPy's
    # directories, or the only one loaded.
    own = [
        lib
        for lib in libraries
        if "numpy" in os.path.basename(os.path.dirname(lib.filepath or ""))
    ]
    if len(own) != 1:
        own = libraries if len(libraries) == 1 else []
    if own and str(getattr(own[0], "architecture", "")).lower() in _SMALL_GEMM_CORES:
        return _SMALL_GEMM_WORK
    return 0


def _controller():
    """The process's ``ThreadpoolController``, created on first use."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]
