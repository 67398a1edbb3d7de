"""Gaussian mixture fitted by EM on sufficient statistics."""

import contextlib
import math
import weakref
from functools import lru_cache, partial
from numbers import Real

import numpy as np
from scipy import linalg
from sklearn.utils._param_validation import Interval, StrOptions

from ._arrays import ArrayData
from ._base import BaseMixtureEM, _check_parameter_array, _dense_resp
from ._missing import (
    available_case_moments,
    gaussian_initial_statistics,
    gaussian_missing_e_step_chunk,
    gaussian_missing_log_prob_chunk,
    gaussian_missing_parameters,
    pairwise_initial_covariances,
)
from ._suffstats import (
    _FLOAT32_LOG_FLOOR,
    _FLOAT64_LOG_TINY,
    _LOG_LIGHT_COMPONENT,
    _MIN_THREADED_BYTES,
    CollapseError,
    _row_max,
    _row_sum,
    blas_limit_for,
    e_step_chunk,
    map_in_threads,
    mass_sums,
    n_threads,
    negligible_floor,
    release_blas_limit,
    resp_chunk,
    single_threaded_blas,
    small_gemm_work,
    split_range,
    subtract_centre,
    workspace,
)

_COLLAPSE_MESSAGE = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)


def _abs_max(X):
    """``max |x|`` over the values that are not NaN, without a temporary copy.

    A Dask array is computed.
    """
    return max(float(np.nanmax(X)), -float(np.nanmin(X)))


def _magnitude_error(X, top=None):
    """The ValueError for data whose squares would overflow its dtype.

    ``top``: ``max |x|`` if known (computed otherwise).
    """
    top = _abs_max(X) if top is None else top
    message = (
        f"X has values of magnitude up to {top:.3g}, too large for a Gaussian "
        f"mixture in {np.dtype(X.dtype)}: the squares it is fitted from would "
        "overflow. Scale the data, for instance with "
        "sklearn.preprocessing.StandardScaler"
    )
    if X.dtype == np.float32:
        message += ", or fit it in float64: X.astype(numpy.float64)"
    return ValueError(message + ".")


def _variance_range_error(X, dtype):
    """The ValueError for fitted variances whose inverses overflow ``dtype``."""
    return ValueError(
        f"X has values of magnitude up to {_abs_max(X):.3g}: the fitted "
        f"variances are too small for {np.dtype(dtype)}, their inverses "
        "overflow. Scale the data, for instance with "
        "sklearn.preprocessing.StandardScaler, or increase reg_covar."
    )


def _singular_in_float32(covariance_type, n_samples, n_features, n_components):
    """Whether a float32 fit's covariances are singular but for ``reg_covar``.

    A full covariance of no more rows than features (``n_samples`` at most
    ``n_components * n_features``: a component's share), or a tied one of
    ``n_samples - n_components`` at most ``n_features``, has a scatter of
    deficient rank: in its null directions the precision is ``1 /
    reg_covar`` (1e6 by default), which float32 differences, rounded to
    ``6e-8`` of the data, cannot resolve. On 500 x 1,000 with three full
    components, float32 E-steps put the lower bound 35 nats above the
    float64 fit's after one iteration, going up and down after that
    (scikit-learn's float32 fit raises there). Such fits compute in
    float64 from the start, their parameters still float32.

    Returns
    -------
    singular : bool
    """
    if covariance_type == "full":
        return n_samples <= n_components * n_features
    if covariance_type == "tied":
        return n_samples - n_components <= n_features
    return False


def _check_magnitude(X, total_weight=None, uncentred=False, magnitude=None):
    """Check that a Gaussian mixture in ``X``'s dtype can be fitted to ``X``.

    What a fit squares is bounded by the data's extent: a component's
    variance by its feature's squared range (plus ``reg_covar``), and a
    fit's centred sums of squares by the total weight times that. The
    k-means initialisation adds up uncentred squared distances, up to ``4 D
    max |x|^2`` each, over every row. An earlier check refused data whose
    ``4 N D max |x|^2`` overflowed, which scikit-learn fits (float32 at 1e16
    in 20,000 x 3, float64 at 1e151).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite, validated data (NaN for missing values).

    total_weight : float, default=None
        The sum of the sample weights; None means ``n_samples``.

    uncentred : bool, default=False
        The fit adds up uncentred squares (the missing-value kernels): ``X``
        is refused wherever ``4 N D max |x|^2`` could overflow.

    magnitude : float, default=None
        A bound on ``max |x|`` known from validation (see
        :func:`~._missing.check_missing_magnitude`). Where the checks below
        pass with ``2 magnitude`` for the extent and ``magnitude`` for the
        largest value, they pass with the data's own (every check bounds
        them from above): the data is not read.

    Returns
    -------
    scale : float
        A power of two by which k-means's data is multiplied (1.0 where its
        sums cannot overflow; see :func:`_scaled_for_kmeans`).

    sums : bool
        Whether the fit's sums of squares could overflow ``X``'s dtype:
        float32 data then computes them in float64, float64 data's initial
        statistics are checked.

    Raises
    ------
    ValueError
        Where a covariance could not be represented in ``X``'s dtype.
    """
    if X.size == 0:
        return 1.0, False
    weight = max(float(len(X) if total_weight is None else total_weight), 1.0)
    if magnitude is not None:
        # Every limit bounds the data from above: where the bound passes
        # them all, so does the data.
        refused, scale, sums = _magnitude_verdict(
            magnitude, 2.0 * magnitude, weight, X, uncentred
        )
        if not refused and scale == 1.0 and not sums:
            return 1.0, False
    high, low = float(np.nanmax(X)), float(np.nanmin(X))
    top = max(high, -low)
    refused, scale, sums = _magnitude_verdict(top, high - low, weight, X, uncentred)
    if refused:
        raise _magnitude_error(X, top)
    return scale, sums


def _magnitude_verdict(top, extent, weight, X, uncentred):
    """:func:`_check_magnitude`'s limits for data of largest magnitude ``top``
    spanning ``extent``: whether it is refused, k-means's scale, and whether
    the fit's sums could overflow."""
    largest = float(np.finfo(X.dtype).max)
    # (Compared as square roots: the squares can overflow Python's floats.)
    refused = extent > math.sqrt(largest) or (
        uncentred and top > math.sqrt(largest / (4.0 * X.size))
    )
    scale = 1.0
    kmeans_limit = math.sqrt(largest / (4.0 * X.shape[1] * weight))
    if top > kmeans_limit:
        # Half the limit (one more halving than needed): the sums' rounding.
        scale = 2.0 ** -math.ceil(math.log2(top / kmeans_limit) + 1)
    return refused, scale, _sums_may_overflow(extent, weight, X.dtype)


def _sums_may_overflow(extent, weight, dtype):
    """Whether centred sums of squares of data spanning ``extent``, over a
    total weight ``weight``, could overflow ``dtype`` (see
    :func:`_check_magnitude`)."""
    return bool(extent > math.sqrt(float(np.finfo(dtype).max) / weight))


def _scaled_for_kmeans(X, sample_weight, magnitude=None):
    """``X`` for an initialisation that sums squared distances, and whether
    the fit's own sums of squares could overflow (see :func:`_check_magnitude`).

    Where those distances' sums could overflow, ``X`` times a power of two:
    every product and sum is scaled exactly, so k-means's labels (and the
    agglomerations' partitions) are those of ``X`` wherever their
    arithmetic does not overflow.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        ``X`` itself, or a scaled copy.

    sums : bool
    """
    scale, sums = _check_magnitude(
        X,
        None if sample_weight is None else float(np.sum(sample_weight)),
        magnitude=magnitude,
    )
    if scale != 1.0:
        X = X * np.asarray(scale, dtype=X.dtype)
    return X, sums


#: No overflow guard (see :func:`_overflow_guard`); reusable.
_NO_GUARD = contextlib.nullcontext()


def _overflow_guard(far):
    """NumPy's overflow and invalid-value warnings off where ``far`` (means
    that may lie far beyond the data: a ``means_init`` of 1e200), else a
    no-op context."""
    return np.errstate(over="ignore", invalid="ignore") if far else _NO_GUARD


# ----------------------------------------------------------------------
# Validation of user-provided initial parameters.
def _check_means(means, n_components, n_features):
    """Validate user-provided means, shape (n_components, n_features)."""
    means = _check_parameter_array(means, (n_components, n_features), "means")
    return means


def _check_precision_matrix(precision, covariance_type):
    """Check that precision matrices are symmetric and positive-definite.

    Parameters
    ----------
    precision : ndarray of shape (..., n_features, n_features)
        One matrix, or a stack of them (checked together: one call for the
        K matrices of 'full', not K).

    covariance_type : str
        For the message.
    """
    if not (
        np.allclose(precision, np.swapaxes(precision, -1, -2))
        and np.all(np.linalg.eigvalsh(precision) > 0.0)
    ):
        raise ValueError(
            f"'{covariance_type} precision' should be symmetric, positive-definite"
        )


def _check_precisions(precisions, covariance_type, n_components, n_features):
    """Validate user-provided precisions.

    Parameters
    ----------
    precisions : array-like
        'full' : shape (n_components, n_features, n_features)
        'tied' : shape (n_features, n_features)
        'diag' : shape (n_components, n_features)
        'spherical' : shape (n_components,)
        'tied_diag' : shape (n_features,)
        'tied_spherical' : shape () (a number)

    covariance_type : {'full', 'tied', 'diag', 'spherical', 'tied_diag', \
            'tied_spherical'}

    n_components, n_features : int

    Returns
    -------
    precisions : ndarray
    """
    shape = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
        "tied_diag": (n_features,),
        "tied_spherical": (),
    }[covariance_type]
    precisions = _check_parameter_array(
        precisions,
        shape,
        f"{covariance_type} precision",
        input_name="precisions",
        allow_nd=covariance_type == "full",
        ensure_min_samples=0 if covariance_type == "tied_spherical" else 1,
    )
    if covariance_type in ("full", "tied"):
        _check_precision_matrix(precisions, covariance_type)
    elif np.any(precisions <= 0.0):
        raise ValueError(f"'{covariance_type} precision' should be positive")
    return precisions


# ----------------------------------------------------------------------
# Sufficient statistics (the per-chunk map).
def _accumulate_gaussian(X, resp, *, shift, covariance_type, float64=False):
    """Sufficient statistics of a chunk.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    resp : ndarray of shape (n_samples, n_components)
        Responsibilities, already multiplied by the sample weights.

    shift : ndarray of shape (n_components, n_features) or None
        Point around which each component's second moments are accumulated
        (the current means). None skips the second moments.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    float64 : bool, default=False
        Compute the products in float64 too, whatever the chunk's dtype
        (see :meth:`GaussianMixtureEM._initialize_parameters`).

    Returns
    -------
    stats : dict
        ``"nk"`` (n_components,): sum_n r_nk;
        ``"sx"`` (n_components, n_features): sum_n r_nk x_n;
        ``"sxx"``: sum_n r_nk (x_n - c_k)(x_n - c_k)^T, shape
        (n_components, n_features, n_features) for full and tied, or its
        diagonal, shape (n_components, n_features), for diag and spherical.
        All float64: a float32 chunk's sums are added up in float64.
    """
    if float64:
        X = X.astype(np.float64, copy=False)
        resp = resp.astype(np.float64, copy=False)
    stats = {
        "nk": mass_sums(resp),
        "sx": np.dot(resp.T, X).astype(np.float64),
    }
    if shift is None:
        return stats
    n_components, n_features = shift.shape
    shift = shift.astype(X.dtype, copy=False)
    full = covariance_type in ("full", "tied")
    sxx = np.empty((n_components, n_features, n_features) if full else shift.shape)
    for k in range(n_components):
        # Sparse responsibilities (the one row per component of the
        # 'k-means++' and 'random_from_data' starts; k-means labels go to
        # _partition_statistics): a component's scatter over its own rows
        # only, not K passes over all of them (see _kept_rows).
        Xk, resp_k = _gathered(_kept_rows(resp[:, k]), X, resp[:, k])
        sxx[k] = _direct_scatter(Xk, shift[k], resp_k, full)[0]
    stats["sxx"] = sxx
    return stats


#: Diagonal and spherical partitions with at most this many values
#: ``n_samples x n_features x n_components`` take their statistics from
#: products with the one-hot weights (see :func:`_partition_statistics`) ...
_ONE_HOT_VALUES = 2**19

#: ... on data of at most this many values (half as many in float32, which is
#: copied to float64 first). With a few clusters on more rows, the products'
#: multiplications by zero and the float64 temporaries cost more than the
#: per-cluster calls they save (1,000 x 200 in 2 clusters: 510 against 451 us;
#: float32, 556 against 173; 3,000 x 64 in 2: 521 against 451).
_ONE_HOT_DATA_VALUES = 2**16


def _one_hot_weights(labels, n_components, sample_weight=None):
    """Each row's weight in its cluster's column: shape (n_components, n_samples).

    float64; the weights are ones when ``sample_weight`` is None.
    """
    n_samples = len(labels)
    one_hot = np.zeros((n_components, n_samples))
    one_hot[labels, np.arange(n_samples)] = (
        1.0 if sample_weight is None else sample_weight
    )
    return one_hot


def _partition_statistics(
    X, sample_weight, labels, n_components, *, covariance_type, float64=False, n_jobs=1
):
    """Sufficient statistics of a hard partition, cluster by cluster.

    The statistics :func:`_accumulate_gaussian` gives for one-hot
    responsibilities (each cluster's second moments around its own mean),
    from each cluster's rows only: no ``n_samples x n_components``
    responsibilities, and one pass instead of two. Small diagonal and
    spherical partitions (``_ONE_HOT_VALUES``, ``_ONE_HOT_DATA_VALUES``)
    take every cluster at once, in float64, from products with the one-hot
    weights.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,) or None

    labels : ndarray of int of shape (n_samples,)

    n_components : int

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    float64 : bool, default=False
        As in :func:`_accumulate_gaussian`.

    n_jobs : int or None, default=1
        Threads over the clusters, for data of at least
        ``_MIN_THREADED_BYTES`` (see :func:`~._suffstats.n_threads`).

    Returns
    -------
    stats : dict
        As :func:`_accumulate_gaussian`'s, around the clusters' means
        ``sx / max(nk, 10 eps)`` (the shift of the initial M-step).
    """
    if float64:
        X = X.astype(np.float64, copy=False)
    n_samples, n_features = X.shape
    full = covariance_type in ("full", "tied")
    nk = np.bincount(labels, weights=sample_weight, minlength=n_components)
    nk = nk.astype(np.float64)
    guard = np.maximum(nk, 10 * np.finfo(X.dtype).eps)
    data_limit = _ONE_HOT_DATA_VALUES // (1 if X.dtype == np.float64 else 2)
    if (
        not full
        and n_samples * n_features * n_components <= _ONE_HOT_VALUES
        and n_samples * n_features <= data_limit
    ):
        # Few rows: every cluster at once, by products with the one-hot
        # weights, rather than about ten NumPy calls a cluster (in float64,
        # float32 rows too: a copy of so few costs less than those calls).
        X = X.astype(np.float64, copy=False)
        one_hot = _one_hot_weights(labels, n_components, sample_weight)
        sx = np.dot(one_hot, X)
        diff = X - (sx / guard[:, np.newaxis])[labels]
        diff *= diff
        return {"nk": nk, "sx": sx, "sxx": np.dot(one_hot, diff)}
    # NumPy's stable sort of integers of 16 bits or less is a radix sort, in
    # linear time: the same order as of the int64 labels, 7 times faster
    # (100,000 rows: 0.6 against 4.2 ms, for each K of a model selection).
    small = np.uint8 if n_components <= 256 else np.uint16
    if n_components <= 2**16:
        order = np.argsort(labels.astype(small, copy=False), kind="stable")
    else:
        order = np.argsort(labels, kind="stable")
    bounds = np.zeros(n_components + 1, dtype=np.intp)
    np.cumsum(np.bincount(labels, minlength=n_components), out=bounds[1:])
    sx = np.empty((n_components, n_features))
    sxx = np.empty(
        (n_components, n_features, n_features) if full else (n_components, n_features)
    )

    def cluster(k):
        rows = order[bounds[k] : bounds[k + 1]]
        block = np.take(X, rows, axis=0)
        if sample_weight is None:
            weights = np.ones(rows.size, dtype=X.dtype)
        else:
            weights = sample_weight[rows].astype(X.dtype)
        sx[k] = _inner_product(weights[np.newaxis], block)[0]
        shift = (sx[k] / guard[k]).astype(X.dtype)
        sxx[k] = _direct_scatter(block, shift, weights, full)[0]

    # Each cluster's arithmetic is its own: threads change no result (at
    # 200,000 x 16 in 16 clusters, 'diag', 25 -> 11-13 ms).
    threads = 1
    if X.nbytes >= _MIN_THREADED_BYTES and n_components > 1:
        threads = min(n_threads(n_jobs), n_components)
    if threads == 1:
        for k in range(n_components):
            cluster(k)
    else:
        with single_threaded_blas():
            map_in_threads(cluster, range(n_components), threads)
    return {"nk": nk, "sx": sx, "sxx": sxx}


def _direct_scatter(X, shift, resp, full):
    """``sum_n r_n (x_n - c)(x_n - c)^T``, or its diagonal, in a reused buffer.

    The full scatter is ``W^T W`` with the rows of ``W`` ``sqrt(r_n) (x_n -
    c)``: NumPy runs the product of a matrix with its own transpose as a
    symmetric rank-k update (BLAS syrk), half a general product's arithmetic
    (at 1,190 x 128: 0.55 against 1.3 ms, the buffer's reuse included), and
    :func:`_gram` adds float32 blocks up in float64.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    shift : ndarray of shape (n_features,)
        The point ``c``, in the dtype of ``X``.

    resp : ndarray of shape (n_samples,)
        Non-negative weights (responsibilities times sample weights).

    full : bool
        The whole matrix, or only its diagonal.

    Returns
    -------
    scatter : ndarray of shape (n_features, n_features) or (n_features,)

    first : ndarray of shape (n_features,)
        ``sum_n r_n (x_n - c)``, float64: with ``c`` near the rows, the sum
        of ``r_n x_n`` without the rounding of rows centred far from them
        (a float32 fit of tight clusters 1,000 apart lost a third of their
        spread to it).
    """
    diff = workspace("weighted_difference", X.shape, X.dtype)
    np.subtract(X, shift, out=diff)
    if full:
        root = np.sqrt(resp)
        diff *= root[:, np.newaxis]
        first = _inner_product(root[np.newaxis], diff)[0]
        return _gram(diff), first.astype(np.float64, copy=False)
    first = _inner_product(resp[np.newaxis], diff)[0]
    diff *= diff
    return np.dot(resp, diff), first.astype(np.float64, copy=False)


def _row_scatter(X, sample_weight):
    """``{"row_scatter": sum_n w_n x_n x_n^T}``, shape (n_features, n_features)."""
    # Uncentred by definition: accumulate in float64 to limit cancellation.
    X = X.astype(np.float64)
    Xw = X if sample_weight is None else X * sample_weight[:, np.newaxis]
    return {"row_scatter": Xw.T @ X}


def _pooled_near_the_float_range(sxx, weighted, delta, total):
    """The tied covariance (before ``reg_covar``) where its scatter overflows.

    On data near the float range (1e153 in float64) the components' scatters
    can add up beyond it while the covariance, their sum over ``total``, is
    within it: the scatters are divided first. (Elsewhere the sum is
    divided, as scikit-learn's.)

    Parameters
    ----------
    sxx : ndarray of shape (n_components, n_features, n_features)
        The second moments around the shift.

    weighted, delta : ndarray of shape (n_components, n_features)
        ``N_k`` times the means' moves from the shift, and the moves.

    total : float
        ``sum_k N_k``.

    Returns
    -------
    covariance : ndarray of shape (n_features, n_features)
    """
    return (sxx / total).sum(axis=0) - (weighted / total).T @ delta


def _estimate_gaussian_parameters(
    stats, shift, reg_covar, covariance_type, dtype=None, near_range=False
):
    """M-step: weights, means and covariances from reduced statistics.

    Parameters
    ----------
    stats : dict
        Output of :func:`_accumulate_gaussian`, summed over chunks.

    shift : ndarray of shape (n_components, n_features)
        The shift the second moments were accumulated around.

    reg_covar : float

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    dtype : numpy dtype, default=None
        The data's dtype, whose epsilon sets the guard on N_k (scikit-learn's
        ``10 eps`` of the data's dtype, whatever the precision of ``stats``);
        None means that of ``stats``.

    near_range : bool, default=False
        Whether the fit's sums of squares may be near the float range (see
        ``GaussianMixtureEM._near_float_range``): scatters pooled over
        the components are then taken beyond it without overflow warnings,
        and divided before they are added up where they do.

    Returns
    -------
    nk : ndarray of shape (n_components,)
        Weighted counts N_k, at least 10 eps (empty components).

    means : ndarray of shape (n_components, n_features)
        mu_k = sum_n r_nk x_n / N_k.

    covariances : ndarray
        Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg_covar I, in
        the layout of ``covariance_type``.
    """
    if covariance_type in _SHARED_VARIANCE_TYPES:
        return _estimate_shared_variances(
            stats, shift, reg_covar, covariance_type, dtype, near_range
        )
    # scikit-learn adds 10 eps to N_k so that an empty component's mean is
    # 0 / 10 eps, not NaN; it also shrinks every mean towards the origin by
    # a relative 10 eps / N_k, which float32 data far from the origin feels
    # (0.4 at 1e6 for N_k = 3). Only the empty components get the guard.
    nk = np.maximum(stats["nk"], 10 * np.finfo(dtype or stats["nk"].dtype).eps)
    means = stats["sx"] / nk[:, np.newaxis]
    # sum r (x - c)(x - c)^T = sum r (x - mu)(x - mu)^T + N_k (mu - c)(mu - c)^T
    delta = means - shift
    ratio = stats["nk"] / nk
    if covariance_type in ("full", "tied"):
        # The N_k delta delta^T terms written once, then updated in place:
        # their (K, D, D) temporaries, fresh megabytes at every M-step, cost
        # more than the arithmetic (100 x 64, K = 40, 'tied': 0.8 ms).
        weighted = delta * (ratio * stats["nk"])[:, np.newaxis]
        if covariance_type == "full":
            covariances = weighted[:, :, None] * delta[:, None, :]
            np.subtract(stats["sxx"], covariances, out=covariances)
            covariances /= nk[:, None, None]
            idx = np.arange(means.shape[1])
            covariances[:, idx, idx] += reg_covar
        else:
            # Only the sum over the components (which data near the float
            # range can take beyond it, see _pooled_near_the_float_range).
            with _overflow_guard(near_range):
                scatter = stats["sxx"].sum(axis=0) - weighted.T @ delta
                covariances = scatter / nk.sum()
            if near_range and not np.isfinite(covariances).all():
                covariances = _pooled_near_the_float_range(
                    stats["sxx"], weighted, delta, nk.sum()
                )
            covariances.flat[:: means.shape[1] + 1] += reg_covar
    else:
        variances = stats["sxx"] / nk[:, np.newaxis] - ratio[:, None] * delta**2
        if covariance_type == "spherical":
            # Only the mean over features is meaningful (the fused E-step
            # splits sum_n r_nk |x_n - c_k|^2 equally over the features).
            variances = variances.mean(1)
        # Rounding can leave a tiny negative value where the variance is 0.
        np.maximum(variances, 0, out=variances)
        variances += reg_covar
        covariances = variances
    return nk, means, covariances


# ----------------------------------------------------------------------
# Variances shared by every component: 'tied_diag' (one diagonal covariance,
# mclust's EEI) and 'tied_spherical' (one variance, mclust's EII). Their
# sufficient statistics, E-step and density are those of the per-component
# type they restrict ('diag', 'spherical') with the shared parameters repeated
# for every component; only the M-step pools the scatters and the layout of
# the fitted attributes differ.

#: Each shared-variance covariance type and the per-component type whose
#: statistics and E-step it uses.
_SHARED_VARIANCE_TYPES = {"tied_diag": "diag", "tied_spherical": "spherical"}


def _engine_covariance_type(covariance_type):
    """The covariance type whose statistics and E-step ``covariance_type`` uses.

    Parameters
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical', 'tied_diag', \
            'tied_spherical'}

    Returns
    -------
    engine_type : {'full', 'tied', 'diag', 'spherical'}
    """
    return _SHARED_VARIANCE_TYPES.get(covariance_type, covariance_type)


def _per_component(array, covariance_type, n_components):
    """Shared variances (or factors) repeated in the per-component layout.

    Parameters
    ----------
    array : ndarray
        'tied_diag' : shape (n_features,)
        'tied_spherical' : shape ()
        any other type : returned unchanged.

    covariance_type : str

    n_components : int

    Returns
    -------
    array : ndarray
        Shape (n_components, n_features) for 'tied_diag', (n_components,)
        for 'tied_spherical'; a new array, so it may be written to.
    """
    if covariance_type not in _SHARED_VARIANCE_TYPES:
        return array
    array = np.asarray(array)
    return np.repeat(array[np.newaxis], n_components, axis=0)


def _estimate_shared_variances(
    stats, shift, reg_covar, covariance_type, dtype=None, near_range=False
):
    """M-step of 'tied_diag' and 'tied_spherical': pooled within scatter.

    ``Sigma = diag(sum_k sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T) / N +
    reg_covar I`` for 'tied_diag', and its mean over the features times the
    identity for 'tied_spherical'.

    Parameters
    ----------
    stats : dict
        Output of :func:`_accumulate_gaussian` for the per-component type
        (``"sxx"`` of shape (n_components, n_features)), summed over chunks.

    shift : ndarray of shape (n_components, n_features)

    reg_covar : float

    covariance_type : {'tied_diag', 'tied_spherical'}

    dtype : numpy dtype, default=None
        The data's dtype (see :func:`_estimate_gaussian_parameters`).

    near_range : bool, default=False
        As in :func:`_estimate_gaussian_parameters`: the pooled scatter may
        be beyond the float range, the variance not.

    Returns
    -------
    nk : ndarray of shape (n_components,)

    means : ndarray of shape (n_components, n_features)

    covariances : ndarray of shape (n_features,) for 'tied_diag', \
            or of shape () for 'tied_spherical'
    """
    engine_type = _SHARED_VARIANCE_TYPES[covariance_type]
    # Per-component variances without regularisation: N_k times them is
    # component k's within scatter (its diagonal, or the mean of it).
    nk, means, variances = _estimate_gaussian_parameters(
        stats, shift, 0.0, engine_type, dtype
    )
    with _overflow_guard(near_range):
        if engine_type == "diag":
            covariances = (nk[:, np.newaxis] * variances).sum(axis=0) / nk.sum()
        else:
            covariances = np.asarray((nk * variances).sum() / nk.sum())
    if near_range and not np.isfinite(covariances).all():
        # Data near the float range: the pooled scatter overflows, the
        # variance need not (the components' shares first).
        covariances = (nk / nk.sum()) @ variances
    covariances = covariances + reg_covar
    return nk, means, np.asarray(covariances, dtype=means.dtype)


#: Covariances of at least this many features are factorised on BLAS's
#: threads where a fit's E-steps run in one chunk, or on at most half as
#: many rows as features, where the factorisations (K D^3) outweigh the
#: E-steps (N K D^2) whatever their threads (see
#: GaussianMixtureEM._check_parameters). Default fits alternated against one
#: thread: 150 x 2,000 ('full', K = 2) 0.75 of the time, 200 x 800 0.89,
#: 100 x 1,000 0.83-0.84, 300 x 1,500 ('tied', K = 3) 0.89, 1,000 x 768
#: 0.93, 1,000 x 1,000 0.95-0.97; in several chunks, 500 x 2,000 ('full',
#: K = 3) 0.71, 600 x 1,500 0.86, 800 x 1,600 1.00. Below 768 features,
#: BLAS's woken threads cost more than they saved (300 x 600, 1.04x; 1,000
#: x 128-512, 1.12-1.25x), and so they did with E-steps on the engine's
#: threads over more rows (20,000 x 256, 1.33x; 1,000 x 1,000 and 3,000 x
#: 800 in several chunks, 1.23x and 1.37x).
_THREADED_FACTOR_FEATURES = 768


def _compute_precision_cholesky(
    covariances, covariance_type, dtype=None, regularised=False, blas_threads=False
):
    """Cholesky factors of the precisions, from the covariances.

    Parameters
    ----------
    covariances : ndarray
        'full' : shape (n_components, n_features, n_features)
        'tied' : shape (n_features, n_features)
        'diag' : shape (n_components, n_features)
        'spherical' : shape (n_components,)

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    dtype : numpy dtype, default=None
        The data's dtype, for the error message (float32 data gets advice on
        precision); None means that of ``covariances``.

    regularised : bool, default=False
        Whether the covariances are an M-step's, with ``reg_covar > 0`` on
        their diagonal: positive definite in exact arithmetic, and not
        numerically only through their own rounding when a component holds
        no more points than dimensions and ``reg_covar`` is below the
        rounding of its largest variance. Such a factorisation that fails is
        tried once more with ``D eps`` times the largest variance added to
        the diagonal, that rounding's size, before the component counts as
        collapsed. scikit-learn's factorisation of the same matrices
        succeeds or fails by its own rounding (of 1,500 fits of 6-15 rows
        in 2-5 dimensions at scales 1e5-1e8, 48 failed with ours alone and
        65 with scikit-learn's alone); a matrix it factorises leaves this
        test alone.

    blas_threads : bool, default=False
        Factorise on BLAS's threads (a held one-thread limit is released),
        rather than in a one-thread window: for wide covariances whose fit
        runs its E-steps in one chunk (see ``_THREADED_FACTOR_FEATURES``).

    Returns
    -------
    precisions_cholesky : ndarray
        Upper-triangular U with precision = U U^T ('full', 'tied'), or the
        square roots of the precisions ('diag', 'spherical'); same shape.
    """
    message = _COLLAPSE_MESSAGE
    if np.dtype(dtype or covariances.dtype) == np.float32:
        message += (
            " The numerical accuracy can also be improved by passing float64"
            " data instead of float32."
        )
    if not np.isfinite(covariances).all():
        raise CollapseError(message)
    if covariance_type in ("full", "tied"):
        stacked = covariances if covariance_type == "full" else covariances[None]
        n_features = stacked.shape[-1]
        eye = np.eye(n_features, dtype=stacked.dtype)
        prec_chol = np.empty_like(stacked)
        # LAPACK's own routines, as scipy.linalg.cholesky(lower=True) and
        # solve_triangular(lower=True) call them on these arrays (the same
        # factors bit for bit, tested against scikit-learn's): their
        # wrappers' checks cost ~40 us a component, a fifth of an iteration
        # at 569 x 30 with 8 components. The covariances are finite
        # (checked above).
        potrf, trtrs = linalg.get_lapack_funcs(("potrf", "trtrs"), (stacked,))
        # Small factorisations: multi-threaded BLAS would only wake threads
        # that then spin on the cores the E-step's chunk threads need.
        # (A window still open in this or another thread keeps the limit.)
        if blas_threads:
            release_blas_limit()
            window = contextlib.nullcontext()
        else:
            window = single_threaded_blas()
        with window:
            for k, covariance in enumerate(stacked):
                cov_chol, info = potrf(covariance, lower=1, clean=1)
                if info != 0 and regularised:
                    rounding = n_features * np.finfo(stacked.dtype).eps
                    rounding *= np.abs(np.diagonal(covariance)).max()
                    covariance = covariance + rounding * eye
                    cov_chol, info = potrf(covariance, lower=1, clean=1)
                if info != 0:
                    raise CollapseError(message)
                solved, info = trtrs(cov_chol, eye, lower=1)
                if info != 0:
                    raise CollapseError(message)
                prec_chol[k] = solved.T
        return prec_chol if covariance_type == "full" else prec_chol[0]
    if (covariances <= 0.0).any():
        raise CollapseError(message)
    return 1.0 / np.sqrt(covariances)


def _compute_precision_cholesky_from_precisions(precisions, covariance_type):
    """Upper-triangular U with precision = U U^T, from the precisions.

    The precision's rows and columns are reversed, its lower Cholesky factor
    taken, and the result reversed back (scikit-learn #26415).

    Parameters
    ----------
    precisions : ndarray
        In the layout of ``covariance_type`` (see
        :func:`_compute_precision_cholesky`).

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    precisions_cholesky : ndarray of the same shape.
    """
    if covariance_type in ("full", "tied"):
        stacked = precisions if covariance_type == "full" else precisions[None]
        # One batched call: the same factorisation of each matrix (tested
        # equal to the per-matrix calls), without their per-call overhead
        # (every model-selection candidate starts from given precisions).
        chol = np.linalg.cholesky(stacked[:, ::-1, ::-1])[:, ::-1, ::-1]
        return chol if covariance_type == "full" else chol[0]
    return np.sqrt(precisions)


def _compute_log_det_cholesky(matrix_chol, covariance_type, n_features):
    """Log-determinant of Cholesky factors, one per component.

    Parameters
    ----------
    matrix_chol : ndarray
        'full' : shape (n_components, n_features, n_features)
        'tied' : shape (n_features, n_features)
        'diag' : shape (n_components, n_features)
        'spherical' : shape (n_components,)

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    n_features : int

    Returns
    -------
    log_det : ndarray of shape (n_components,) (a scalar for 'tied')
    """
    if covariance_type == "full":
        return np.log(np.diagonal(matrix_chol, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(matrix_chol)).sum()
    if covariance_type == "diag":
        return np.log(matrix_chol).sum(axis=1)
    return n_features * np.log(matrix_chol)


def _estimate_log_gaussian_prob(X, means, precisions_chol, covariance_type):
    """Log density of every sample under every component.

    The data are centred on the mean of the means before the quadratic forms,
    so that data far from the origin lose no precision.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    means : ndarray of shape (n_components, n_features)

    precisions_chol : ndarray
        Cholesky factors of the precisions, in the layout of
        ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
        ``log N(x_n | mu_k, Sigma_k)``.
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    centre = means.mean(axis=0)
    Xc = X - centre
    mc = means - centre
    log_det = _compute_log_det_cholesky(precisions_chol, covariance_type, n_features)
    if covariance_type == "full":
        # One product with the stacked factors [U_1 ... U_K]: (n, K * D).
        stacked = precisions_chol.transpose(1, 0, 2).reshape(n_features, -1)
        y = Xc @ stacked
        y -= np.einsum("kd,kde->ke", mc, precisions_chol).reshape(-1)
        y *= y
        maha = y.reshape(n_samples, n_components, n_features).sum(axis=2)
    elif covariance_type == "tied":
        y = Xc @ precisions_chol
        b = mc @ precisions_chol
        diff = y[:, np.newaxis, :] - b[np.newaxis, :, :]
        diff *= diff
        maha = diff.sum(axis=2)
    elif covariance_type == "diag":
        precisions = precisions_chol**2
        maha = (mc**2 * precisions).sum(axis=1) - 2.0 * (Xc @ (mc * precisions).T)
        maha += (Xc * Xc) @ precisions.T
    else:
        precisions = precisions_chol**2
        maha = (mc**2).sum(axis=1) * precisions - 2.0 * (Xc @ mc.T) * precisions
        maha += np.outer(np.einsum("ij,ij->i", Xc, Xc), precisions)
    return -0.5 * (n_features * math.log(2 * math.pi) + maha) + log_det


def _weighted_log_gaussian_prob(X, *, means, precisions_chol, covariance_type, log_w):
    """``log pi_k + log N(x_n | mu_k, Sigma_k)``, shape (n_samples, n_components).

    Rows far from the model are resolved by :func:`_resolve_far_rows`.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        log_prob = _estimate_log_gaussian_prob(
            X, means, precisions_chol, covariance_type
        )
        log_prob += log_w
    return _resolve_far_rows(
        log_prob,
        X,
        means=means,
        precisions_chol=precisions_chol,
        covariance_type=covariance_type,
        log_w=log_w,
    )


def _resolve_far_rows(log_prob, X, *, means, precisions_chol, covariance_type, log_w):
    """Recompute the rows of ``log_prob`` whose components cannot be told apart.

    Rows whose components the plain computation cannot tell apart -- an
    overflow, or log-densities so large that their rounding exceeds the gap
    between the best two, as for samples millions of standard deviations
    away -- are computed again by :func:`_far_log_prob`.

    Parameters
    ----------
    log_prob : ndarray of shape (n_samples, n_components)
        ``log pi_k + log N(x_n | mu_k, Sigma_k)`` as computed; its rows are
        overwritten where they are recomputed.

    X : ndarray of shape (n_samples, n_features)

    means, precisions_chol, covariance_type, log_w
        As for :func:`_weighted_log_gaussian_prob`.

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
        ``log_prob`` itself.
    """
    n_components = log_prob.shape[1]
    if n_components == 1:
        # Nothing to tell apart: only the non-finite rows.
        rows = np.flatnonzero(~np.isfinite(log_prob[:, 0]))
    else:
        rows = _unresolved_rows(log_prob, n_components)
    if len(rows):
        log_prob[rows] = _far_log_prob(
            X[rows], means, precisions_chol, covariance_type, log_w
        ).astype(log_prob.dtype)
    return log_prob


def _unresolved_rows(log_prob, n_components):
    """The rows :func:`_resolve_far_rows` computes again, of two or more
    components: non-finite, or with their best two within rounding."""
    # The best two are apart by at most the rounding where two values are
    # at least the best minus the rounding: counted, not sorted out (a
    # partition of each row took 4 times as long). The log-probabilities
    # are usually the transpose of a C-ordered product: the row maxima and
    # sums go column by column (see _row_max), and the count is a sum of
    # small integers (count_nonzero's, in intp after a boolean copy, was
    # most of this function and a sixth of a prediction: 10,000 x 96,
    # K = 12, diagonal, 0.38 of 2.5 ms a chunk).
    with np.errstate(invalid="ignore", over="ignore"):
        top = _row_max(log_prob)
        rounding = 16 * np.finfo(log_prob.dtype).eps * np.abs(top)
        close = np.add.reduce(
            log_prob >= (top - rounding)[:, np.newaxis],
            axis=1,
            dtype=np.uint8 if n_components < 256 else np.intp,
        )
        # Any NaN or infinity (or a sum past the largest float) in the row.
        finite = np.isfinite(_row_sum(log_prob))
        unresolved = ~finite | ((close >= 2) & (rounding > 0))
    return np.flatnonzero(unresolved)


def _full_precisions(precisions_chol, covariance_type, n_components, n_features):
    """Every component's precision matrix, shape (n_components, D, D), float64."""
    chol = np.asarray(precisions_chol, dtype=np.float64)
    if covariance_type == "full":
        return chol @ chol.transpose(0, 2, 1)
    if covariance_type == "tied":
        return np.broadcast_to(chol @ chol.T, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return np.stack([np.diag(c**2) for c in chol])
    return chol[:, None, None] ** 2 * np.eye(n_features)


def _far_log_prob(X, means, precisions_chol, covariance_type, log_w):
    """``log pi_k + log N(x_n | mu_k, Sigma_k)`` for samples far from the model.

    With ``z = x - c`` (c the mean of the means) written ``t z'`` (t a power
    of two, ``|z'| <= 1``), each squared distance is ``q_k = t^2 z'^T P_k z'
    - 2 t z'^T P_k m_k + m_k^T P_k m_k``. Differences between components are
    taken term by term (``z'^T (P_k - P_j) z'``: exactly zero for equal
    precisions), so they keep their precision however far the sample, and
    the densities are rebuilt around the best component ``j``. A density
    below the float range saturates at the most negative float (it would be
    -inf) and its component keeps responsibility one: the nearest component
    in Mahalanobis terms, as the exact answer. Components more than 745
    nats below the best get -inf.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    means : ndarray of shape (n_components, n_features)

    precisions_chol : ndarray
        In the layout of ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    log_w : ndarray of shape (n_components,)

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components), float64
    """
    n_components, n_features = means.shape
    means = means.astype(np.float64)
    P = _full_precisions(precisions_chol, covariance_type, n_components, n_features)
    log_det = _compute_log_det_cholesky(
        np.asarray(precisions_chol, dtype=np.float64), covariance_type, n_features
    )
    const = np.broadcast_to(
        log_det + np.asarray(log_w, dtype=np.float64), (n_components,)
    )
    centre = means.mean(axis=0)
    Z = X.astype(np.float64) - centre
    m = means - centre
    # Row scales: powers of two, so that the scaled rows are exact.
    top = np.abs(Z).max(axis=1)
    t = np.ldexp(1.0, np.frexp(np.where(top > 0, top, 1.0))[1])
    Zs = Z / t[:, np.newaxis]
    Pm = np.einsum("kde,ke->kd", P, m)
    kappa = np.einsum("kd,kd->k", Pm, m)
    a = np.einsum("nd,kde,ne->nk", Zs, P, Zs)
    b = Zs @ Pm.T
    with np.errstate(over="ignore", invalid="ignore"):
        # A first best component from the scaled distances...
        scaled = a - 2 * b / t[:, None] + (kappa - 2 * const) / (t**2)[:, None]
        best = np.argmin(scaled, axis=1)
        rows = np.arange(len(X))
        # ... then every difference to it, term by term.
        dP = P[np.newaxis] - P[best][:, np.newaxis]
        da = np.einsum("nd,nkde,ne->nk", Zs, dP, Zs)
        db = b - b[rows, best][:, None]
        # t^2 may overflow: a zero difference (equal precisions) stays zero.
        quadratic = np.where(da == 0, 0.0, (t**2)[:, None] * da)
        dq = quadratic - 2 * t[:, None] * db + (kappa - kappa[best, None])
        delta = -0.5 * dq + (const - const[best, None])
        # Where rounding picked a wrong first best, move to the true one.
        shift = delta.max(axis=1)
        delta -= shift[:, None]
        q_best = t**2 * a[rows, best] - 2 * t * b[rows, best] + kappa[best]
        log_best = -0.5 * (n_features * math.log(2 * math.pi) + q_best) + (
            const[best] + shift
        )
        floor = -np.finfo(np.float64).max
        log_best = np.where(np.isnan(log_best), floor, np.maximum(log_best, floor))
        log_prob = log_best[:, None] + delta
        log_prob[~(delta > -745.0)] = -np.inf
        # A far sample's density is so small that its rounding may exceed
        # the differences between components: where one that matters (less
        # than 745 nats below the best) is lost, no single array of
        # log-densities can hold the responsibilities.
        kept = log_prob - log_best[:, None]
        lost = (delta > -745.0) & ~(np.abs(kept - delta) <= 1e-6 * (1 - delta))
    if np.any(lost):
        row = int(np.flatnonzero(lost.any(axis=1))[0])
        raise ValueError(
            f"A sample of X is so far from the mixture (log-density about "
            f"{log_best[row]:.3g}) that the densities of its components, "
            "though they differ by less than 745 nats, cannot be told apart in "
            "floating point: its responsibilities cannot be represented. "
            "Check such samples, or scale the data."
        )
    return log_prob


# ----------------------------------------------------------------------
# The fused E-step: one feature matrix per chunk, shared by the E-step and
# the accumulation of the sufficient statistics.
#
# With z = x - c (c a common centre), the squared Mahalanobis distance is a
# linear function of the features phi(z) = [z_i z_j (i <= j), z]:
#
#     (z - m_k)^T P_k (z - m_k) = phi(z) . a_k + m_k^T P_k m_k,
#
# so one matrix product phi @ A gives every component's log-density, and one
# product resp^T @ phi gives every component's first and second moments. The
# expansion cancels terms of size kappa_k = |U_k^T (m_k)|^2 (the distance of the
# component's mean from c in its own metric), losing about eps * kappa_k in
# absolute precision; components with a large kappa_k fall back to the direct,
# per-component form.

#: Largest absolute error of a log-density the expanded form may introduce;
#: components whose expansion could exceed it use the direct form.
_EXPANSION_ERROR = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}


#: float32's budget for diagonal and spherical expansions, per feature: a
#: log-density of ``D`` features may lose ``D`` times this (and at least
#: ``_EXPANSION_ERROR``'s 1e-4). Their expansion adds up about ``2 D`` terms
#: whatever the centre, so its rounding grows with ``D`` as the rounding of
#: the float32 data itself does; a fixed 1e-4 computed every component of a
#: float32 fit in float64 from about 32 features on well-separated data
#: (100,000 x 64, K = 16: 1.02x float64's time), at float64's speed.
#: scikit-learn's float32 E-step and M-step for these types expand around
#: the origin, not the mixture's centre, and lose more on the same model:
#: measured against a long-double reference at the fitted parameters of
#: data at the origin (bench_small_shapes' data, 300-3,000 rows, 64-200
#: features, 3-40 components), the mean error of a row's log-densities,
#: weighted by its responsibilities, was 1e-4 to 4.5e-4 nats for this
#: expansion and 2.6e-4 to 1.2e-3 for scikit-learn's (with an offset of
#: 100, 0.07-0.4 nats).
_FLOAT32_FEATURE_ERROR = 2e-5


def _expansion_limit(dtype, n_features=0):
    """Largest measure of cancellation the expanded form is used for.

    For data of ``dtype``; ``n_features`` raises float32's budget for
    diagonal and spherical expansions (see ``_FLOAT32_FEATURE_ERROR``), 0
    keeps ``_EXPANSION_ERROR``'s.
    """
    dtype = np.dtype(dtype)
    error = _EXPANSION_ERROR.get(dtype, 1e-10)
    if dtype == np.float32:
        error = max(error, _FLOAT32_FEATURE_ERROR * n_features)
    return error / np.finfo(dtype).eps


#: The per-component form's rounding of a log-density, in units of ``eps
#: sqrt(kappa_k)``: its products add the mean's term ``-(mu_k - c) U_k``, of
#: norm ``sqrt(kappa_k)``, inside the whitened difference, so its error grows
#: with ``sqrt(kappa_k)``, not with ``kappa_k`` as the expansion's. Measured
#: in float32 (rows drawn around a component of covariance ``A A^T / D +
#: I / 2`` at ``kappa_k`` 1e3-1e5 from the centre, 20,000 rows, D = 16 to
#: 512), the largest error of a row's log-density beyond the direct form's
#: own was at most 9.2 ``eps sqrt(kappa_k)`` (3.7-9.2, not growing with D);
#: the expanded form at its limit (``eps kappa_k = 1e-4``) was 1.1e-4 at D =
#: 16 and 2e-4 at 128.
_PER_COMPONENT_ROUNDING = 10.0


def _per_component_limit(dtype):
    """Largest ``kappa_k`` the per-component form takes around the centre.

    Where ``_PER_COMPONENT_ROUNDING eps sqrt(kappa_k)`` stays within the
    expanded form's budget (``_EXPANSION_ERROR``): in float32 ``kappa_k <=
    7,036`` (the expansion's limit is 839), in float64 about 2e9.
    """
    # (_expansion_limit is the budget over eps.)
    return (_expansion_limit(dtype) / _PER_COMPONENT_ROUNDING) ** 2


@lru_cache
def _triu_indices(n_features):
    """Cached ``np.triu_indices(n_features)``."""
    return np.triu_indices(n_features)


@lru_cache
def _triu_positions(n_features):
    """Position of each entry ``(i, j)`` of a symmetric matrix among its
    upper triangle's (cached, shape (n_features ** 2,), row-major): the
    packed triangle of each row of ``packed`` unpacks to full matrices as
    ``np.take(packed, _triu_positions(D), axis=1)``."""
    iu, ju = _triu_indices(n_features)
    positions = np.empty((n_features, n_features), dtype=np.intp)
    positions[iu, ju] = positions[ju, iu] = np.arange(len(iu))
    return positions.ravel()


def _move_scatter(scatter, first, nk, d):
    """Move second moments by ``d``, in place: ``S - s d^T - d s^T + N d d^T``.

    Computed as ``S - (e d^T + d e^T)`` with ``e = s - N d / 2``: three
    passes over the ``D^2`` values (the direct expression's nine were a
    sixth of the moments' time at D = 128, K = 16), and symmetric by
    construction, so a symmetric ``S`` stays exactly symmetric.

    Parameters
    ----------
    scatter : ndarray of shape (..., n_features, n_features)
        ``S``, the sums ``sum_n r_n z_n z_n^T``; modified.

    first : ndarray of shape (..., n_features)
        ``s = sum_n r_n z_n``.

    nk : float or ndarray of shape (...)
        ``N = sum_n r_n``.

    d : ndarray of shape (..., n_features)
        The new point less the one ``z`` is taken from.
    """
    e = first - 0.5 * np.expand_dims(nk, -1) * d
    correction = e[..., :, np.newaxis] * d[..., np.newaxis, :]
    n_features = d.shape[-1]
    if n_features * n_features <= _MOVE_BLOCK_VALUES:
        correction += d[..., :, np.newaxis] * e[..., np.newaxis, :]
    else:
        # d e^T a block of rows at a time, into one small buffer: a second
        # D x D temporary cost more than its arithmetic (one component of
        # 2,000 features: 11.4 against 6.6 ms; 1,000: 3.5 against 1.2),
        # and the sums are the same.
        rows = _MOVE_BLOCK_VALUES // n_features
        buffer = np.empty((rows, n_features), dtype=correction.dtype)
        for c, dk, ek in zip(
            correction.reshape(-1, n_features, n_features),
            d.reshape(-1, n_features),
            e.reshape(-1, n_features),
        ):
            for start in range(0, n_features, rows):
                stop = min(start + rows, n_features)
                c[start:stop] += np.multiply(
                    dk[start:stop, np.newaxis], ek, out=buffer[: stop - start]
                )
    scatter -= correction


#: The most values of ``d e^T`` :func:`_move_scatter` computes at once.
_MOVE_BLOCK_VALUES = 2**16


@lru_cache
def _triu_weights(n_features):
    """Each entry of the upper triangle's weight in a quadratic form: 1 on
    the diagonal, 2 off it (cached, shape (n_features (n_features + 1) / 2,))."""
    iu, ju = _triu_indices(n_features)
    return np.where(iu == ju, 1.0, 2.0)


@lru_cache
def _triu_diagonal(n_features):
    """Positions of the diagonal among the upper triangle's entries (cached)."""
    iu, ju = _triu_indices(n_features)
    return np.flatnonzero(iu == ju)


def _n_quadratic_features(covariance_type, n_features):
    """Number of quadratic features per row in :func:`_centred_features`."""
    return {"full": n_features * (n_features + 1) // 2, "spherical": 1}.get(
        covariance_type, n_features
    )


def _centred_features(
    X, centre, covariance_type, precisions_chol=None, dtype=None, whiten=True
):
    """Quadratic and linear features of the centred chunk, one per row.

    The features are stored transposed, one contiguous row per feature, so
    that each product below is one long vectorised loop.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    centre : ndarray of shape (n_features,)

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    precisions_chol : ndarray of shape (n_features, n_features), default=None
        The shared factor U of 'tied' (unused otherwise).

    dtype : numpy dtype, default=None
        The features' dtype; None means ``X``'s. A float32 chunk computed in
        float64 is cast by the centring itself (exactly: every float32 is a
        float64), not by a pass of its own; a zero centre needs ``X`` in
        ``dtype``.

    whiten : bool, default=True
        'tied' only: compute the whitened rows; False returns ``(None, z)``
        (for a chunk whose every component is computed directly).

    Returns
    -------
    features : ndarray of shape (n_samples, n_quadratic + n_features), or \
            a pair of ndarrays
        With z = x - centre: ``[z_i z_j for i <= j, z]`` (n_quadratic =
        n_features (n_features + 1) / 2) for 'full', ``[z ** 2, z]``
        (n_quadratic = n_features) for 'diag' below
        ``_DIAG_BLOCK_FEATURES`` features and ``[|z|^2, z]`` (n_quadratic =
        1) for 'spherical', the transpose of a C-ordered array (the last
        n_features columns are z). For 'tied', the pair ``(z U, z)``: the
        whitened rows, the transpose of a C-ordered array (C-ordered itself
        on chunks of no more rows than features), and the centred chunk,
        C-ordered. For 'diag' from ``_DIAG_BLOCK_FEATURES`` features,
        and for 'spherical' from ``_SPHERICAL_BLOCK_FEATURES`` (see
        :func:`_feature_blocks`), two C-ordered blocks: ``(z ** 2, z)``, or
        ``(|z|^2, z)`` with ``|z|^2`` of shape (n_samples, 1). Each is then
        built by long vectorised loops (short rows of a wider array make
        NumPy's loops short), and each product of the E-step is two
        products. A zero centre (see
        :meth:`GaussianMixtureEM._fused_parameters`) takes ``z`` to be
        ``X`` itself, without a pass.
    """
    n_samples, n_features = X.shape
    dtype = X.dtype if dtype is None else np.dtype(dtype)
    if _feature_blocks(covariance_type, n_features, dtype):
        diag = covariance_type == "diag"
        features = workspace(
            "features", (2 if diag else 1, n_samples, n_features), dtype
        )
        if centre.any():
            subtract_centre(X, centre, out=features[-1])
            Z = features[-1]
        else:
            Z = X
        if diag:
            np.multiply(Z, Z, out=features[0])
            return features[0], Z
        # |z|^2 by einsum, one pass over z, from _SPHERICAL_BLOCK_FEATURES
        # features on (the squares written out, then their product with
        # ones, took up to 3.5x as long: 5,000 x 96, float64, 463 against
        # 141 us; about as long at 16 features; and predictions with one
        # component at 96-200 features ran at half scikit-learn's speed).
        norms = workspace("squared_norms", (n_samples, 1), dtype)
        np.einsum("ij,ij->i", Z, Z, out=norms[:, 0])
        return norms, Z
    if covariance_type == "tied":
        # The chunk centred in its own order, which the whitening product
        # reads transposed: a transposing subtraction reads the chunk's rows
        # with a long stride (10,000 x 96 in two chunks: 5.2 of a
        # prediction's 9.6 ms).
        whitened = workspace("features", (n_features, n_samples), dtype)
        if centre.any() or X.dtype != dtype:
            Z = workspace("centred", (n_samples, n_features), dtype)
            subtract_centre(X, centre, out=Z)
        else:
            Z = X
        if not whiten:
            return None, Z
        if n_samples <= n_features:
            # Few rows of many features: the product row-major, as z U
            # (one thread, 100 x 2,000: 9.0 against 12.3 ms; 300 x 1,000:
            # 6.1 against 7.1), where the transposed one wins on long
            # chunks of few features (25,000 x 16: 0.41 against 0.51).
            rows = workspace("whitened_rows", (n_samples, n_features), dtype)
            return np.matmul(Z, precisions_chol, out=rows), Z
        np.matmul(precisions_chol.T, Z.T, out=whitened)
        return whitened.T, Z
    full = covariance_type == "full"
    n_quad = _n_quadratic_features(covariance_type, n_features)
    features = workspace("features", (n_quad + n_features, n_samples), dtype)
    Z = features[n_quad:]
    np.subtract(X.T, centre[:, np.newaxis], out=Z)
    if full:
        start = 0
        for i in range(n_features):
            stop = start + n_features - i
            np.multiply(Z[i], Z[i:], out=features[start:stop])
            start = stop
    elif covariance_type == "diag":
        np.multiply(Z, Z, out=features[:n_quad])
    else:
        np.einsum("ij,ij->j", Z, Z, out=features[0])
    return features.T


#: From this many features, 'spherical' builds its features as 'diag' does,
#: in two C-ordered blocks ``(|z|^2, z)``, instead of the transpose of one
#: array: the transposing centring reads the chunk's short rows with a long
#: stride. At 2,000 x 64 the features and the E-step's product took 446 us
#: that way against 229 (144 without centring; 25,000 x 16: 1,175 against
#: 652), while at 8 features and fewer the transposed layout is the faster.
_SPHERICAL_BLOCK_FEATURES = 16

#: From this many features (by the features' dtype), 'diag' builds its
#: features in two C-ordered blocks ``(z ** 2, z)``; below, as the
#: transpose of one array ``[z ** 2, z]``, like 'full' and narrow
#: 'spherical'. On few features the transposing centring costs little, and
#: each of the E-step's two products is one product of inner dimension
#: ``2 D`` over long rows, where the blocks' are two of inner dimension
#: ``D`` over rows of ``D`` values (and the log-densities' second adds a
#: temporary). 3-iteration fits at 100,000 rows with 2-16 components,
#: alternated against the blocks: float64 at 2-6 features 0.84-0.97 of
#: their time, at 8 features 0.92-1.09 (and a default fit of 10,000 x 8
#: with 8 components 1.04x); float32 at 2-6 features 0.79-0.96, at 8 and
#: 12 features 0.86-0.98, at 16 0.94-1.06.
_DIAG_BLOCK_FEATURES = {np.dtype(np.float64): 8, np.dtype(np.float32): 16}


def _feature_blocks(covariance_type, n_features, dtype=np.float64):
    """Whether :func:`_centred_features` returns two C-ordered blocks.

    Parameters
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    n_features : int

    dtype : numpy dtype, default=np.float64
        The dtype the features are computed in.

    Returns
    -------
    blocks : bool
        True for 'diag' from ``_DIAG_BLOCK_FEATURES`` features, and for
        'spherical' from ``_SPHERICAL_BLOCK_FEATURES``: the features are then the
        pair ``(quadratic, z)`` of arrays of shape (n_samples, n_quadratic)
        and (n_samples, n_features), and the centre may be zero (no
        centring pass; see :meth:`GaussianMixtureEM._fused_parameters`).
    """
    if covariance_type == "diag":
        return n_features >= _DIAG_BLOCK_FEATURES[np.dtype(dtype)]
    return covariance_type == "spherical" and n_features >= _SPHERICAL_BLOCK_FEATURES


def _expanded_coefficients(
    means, precisions_chol, covariance_type, log_w, centre, spread=None, far=False
):
    """Coefficients of the E-step's single matrix product.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)

    precisions_chol : ndarray
        In the layout of ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    log_w : ndarray of shape (n_components,)

    centre : ndarray of shape (n_features,)

    spread : ndarray of shape (n_features,), default=None
        The standard deviations around ``centre`` that ``cancelled``
        measures with; None means the mixture's (ignored for 'tied').

    far : bool, default=False
        Whether a mean may be far beyond the data (a ``means_init`` of
        1e200): its spread and cancellation are then infinite, without
        overflow warnings, and its component is computed directly.

    Returns
    -------
    coef : ndarray of shape (n_features_phi, n_components), float64
        ``features @ coef + intercept`` is ``log pi_k + log N(x | mu_k,
        Sigma_k)``. For 'tied', shape (n_features, n_components): with the
        whitened features ``y`` (see :func:`_centred_features`),
        ``y @ coef + intercept - |y|^2 / 2``.

    intercept : ndarray of shape (n_components,), float64

    cancelled : ndarray of shape (n_components,), float64
        The size of the terms the expansion adds up for a typical sample
        (one standard deviation of the mixture from ``centre`` in every
        feature), relative to which it loses ``eps`` in absolute precision:
        ``s^T |P_k| s + 2 |P_k m_k|^T s + kappa_k`` with ``s`` those standard
        deviations, ``m_k = mu_k - centre`` and ``kappa_k = m_k^T P_k m_k``
        (for 'tied', ``(sqrt(E|y|^2) + sqrt(kappa_k))^2`` in the whitened
        features). It grows with the distance of the mean from the centre
        (kappa) and with ill-conditioned precisions (``|P_k|``, whose terms
        cancel).
    """
    # Small products: see _compute_precision_cholesky.
    with single_threaded_blas():
        means = np.asarray(means, dtype=np.float64)
        prec_chol = np.asarray(precisions_chol, dtype=np.float64)
        n_components, n_features = means.shape
        m = means - centre
        log_det = _compute_log_det_cholesky(prec_chol, covariance_type, n_features)
        if covariance_type == "tied":
            # Whitened features y = z U: (z - m)^T P (z - m) = |y|^2 - 2 y.v + |v|^2
            # with v = U^T m, so only the cross term depends on the component.
            v = m @ prec_chol
            kappa = np.einsum("kd,kd->k", v, v)
            intercept = (
                -0.5 * (n_features * math.log(2 * math.pi) + kappa) + log_det + log_w
            )
            # E|y|^2 = tr(P (Sigma + sum_k pi_k m_k m_k^T)) = D + sum_k pi_k kappa_k
            spread = np.sqrt(n_features + np.exp(log_w) @ kappa)
            cancelled = (spread + np.sqrt(kappa)) ** 2
            return v.T.copy(), intercept, cancelled
        variances = None  # (Only where ``spread`` is computed.)
        if covariance_type == "full":
            stacked = prec_chol
            precisions = stacked @ stacked.transpose(0, 2, 1)
            iu, ju = _triu_indices(n_features)
            quad = precisions[:, iu, ju] * _triu_weights(n_features)
            pm = np.einsum("kde,ke->kd", precisions, m)
            if spread is None:
                # diag(Sigma_k): squared column norms of U_k^-1 (a scale for
                # the precision guard only).
                inverse = _factor_inverses(prec_chol)
                variances = np.einsum("kij,kij->kj", inverse, inverse)
        else:
            precisions = prec_chol**2
            if covariance_type == "spherical":
                # One quadratic feature, |z|^2, shared by every dimension.
                quad = precisions[:, None]
                precisions = np.repeat(quad, n_features, axis=1)
            else:
                quad = precisions
            pm = precisions * m
            variances = 1.0 / precisions
        kappa = np.einsum("kd,kd->k", pm, m)
        # -0.5 [quad, -2 pm]^T, filled in place (hstack's copies and
        # dispatch cost a fifth of this function on small models).
        n_quad = quad.shape[1]
        coef = np.empty((n_quad + n_features, n_components))
        np.multiply(quad.T, -0.5, out=coef[:n_quad])
        coef[n_quad:] = pm.T
        intercept = (
            -0.5 * (n_features * math.log(2 * math.pi) + kappa) + log_det + log_w
        )
        with _overflow_guard(far):
            cancelled = _cancelled(
                precisions, pm, kappa, m, variances, log_w, spread, covariance_type
            )
        return coef, intercept, cancelled


def _cancelled(precisions, pm, kappa, m, variances, log_w, spread, covariance_type):
    """The ``cancelled`` of :func:`_expanded_coefficients` ('full', 'diag',
    'spherical'), from its intermediate values.

    Returns
    -------
    cancelled : ndarray of shape (n_components,)
    """
    if spread is None:
        # The mixture's standard deviation around the centre, per feature.
        spread = np.sqrt(np.exp(log_w) @ (variances + m**2))
    if covariance_type == "full":
        # s^T |P_k| s, one product (the three-operand einsum took 3x as long).
        quadratic = np.abs(precisions).reshape(len(m), -1) @ np.outer(
            spread, spread
        ).reshape(-1)
    else:
        quadratic = precisions @ spread**2
    return quadratic + 2.0 * np.abs(pm) @ spread + kappa


def _refused_at_zero(means, precisions_chol, dtype):
    """Whether the expansion around zero is refused for its ``kappa_k`` alone.

    :func:`_expanded_coefficients`'s measure of cancellation is ``kappa_k``
    (``mu_k^T P_k mu_k`` around zero) plus positive terms: a component
    whose ``kappa_k`` alone exceeds the limit (a tight cluster far from the
    origin) refuses the expansion around zero, and the coefficients there
    need not be computed. (On standardised breast cancer, 569 x 30, K = 12,
    'diag', they were computed at every iteration, then again around the
    mixture's centre: 0.07 of about 0.8 ms.) A margin of ``1e-12`` keeps
    the decision :func:`_expanded_coefficients`'s despite rounding.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)

    precisions_chol : ndarray of shape (n_components, n_features) or \
            (n_components,)
        Diagonal or spherical factors.

    dtype : numpy dtype
        The expansion's dtype, which sets the limit.

    Returns
    -------
    refused : bool
    """
    means = means.astype(np.float64, copy=False)
    precisions = np.asarray(precisions_chol, dtype=np.float64) ** 2
    if precisions.ndim == 1:
        kappa = precisions * np.einsum("kd,kd->k", means, means)
    else:
        kappa = np.einsum("kd,kd->k", precisions * means, means)
    limit = _expansion_limit(dtype, means.shape[1])
    return bool(kappa.max() > limit * (1 + 1e-12))


def _factor_inverses(factors, triangle=None):
    """Inverses of stacked precision factors, by LAPACK's ``trtri`` where
    they are triangular (fitted factors are upper triangular, those derived
    from given precisions lower; see :func:`_triangle`).

    A triangular inverse, called directly, takes a fifth of NumPy's batched
    general inverse (8 factors of 30 x 30: 28 against 135 us, a tenth of an
    iteration at 569 x 30), and the wrappers of SciPy's triangular solves
    cost more than the arithmetic on small models.

    Parameters
    ----------
    factors : ndarray of shape (n_components, n_features, n_features)

    triangle : {'upper', 'lower'}, default=None
        The factors' triangle when the caller knows it; None finds it.

    Returns
    -------
    inverses : ndarray of shape (n_components, n_features, n_features)
    """
    if triangle is None:
        triangle = _triangle(factors)
    if triangle is None:
        return np.linalg.inv(factors)
    (trtri,) = linalg.get_lapack_funcs(("trtri",), (factors,))
    inverses = np.empty_like(factors)
    for k, factor in enumerate(factors):
        inverses[k], info = trtri(factor, lower=int(triangle == "lower"))
        if info != 0:
            # Singular: as NumPy's inverse would say.
            return np.linalg.inv(factors)
    return inverses


def _in_dtype(X, dtype):
    """The chunk ``X`` in ``dtype``, cast into this thread's workspace.

    float32 chunks computed in float64 (see
    :meth:`GaussianMixtureEM._fused_parameters`) reuse one buffer rather
    than a fresh array per chunk, whose pages are faulted in every time.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    dtype : numpy dtype

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        ``X`` itself if already of ``dtype``.
    """
    if X.dtype == dtype:
        return X
    out = workspace("chunk_in_dtype", X.shape, dtype)
    np.copyto(out, X)
    return out


#: Arrays of at least this many values are checked on their own by
#: :func:`_all_finite`.
_FINITE_CHECK_ALONE = 4096


def _all_finite(arrays):
    """Whether every value of ``arrays`` is finite, in few NumPy calls.

    The small arrays are checked in one concatenation (six checks of their
    own cost ~25 us, a tenth of an iteration on small data), the large ones
    each in place: copying a per-component scatter of 40 x 64 x 64 values
    into the concatenation took 0.33 ms an iteration.
    """
    small = []
    for array in arrays:
        array = np.ravel(array)
        if len(array) < _FINITE_CHECK_ALONE:
            small.append(array)
        elif not np.isfinite(array).all():
            return False
    return not small or bool(np.isfinite(np.concatenate(small)).all())


def _gaussian_e_step_chunk(X, sample_weight, **parameters):
    """E-step and sufficient statistics of one chunk, on shared features.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Computed in the dtype of ``log_w`` (the model's), whatever its own.

    sample_weight : ndarray of shape (n_samples,) or None

    **parameters
        The keyword arguments of :func:`_gaussian_e_step_chunk_body`:

    means : ndarray of shape (n_components, n_features)
        The current means.

    precisions_chol : ndarray
        In the layout of ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    log_w : ndarray of shape (n_components,)

    centre : ndarray of shape (n_features,), default=None
        Common centre of the features.

    coef, intercept : ndarray, default=None
        From :func:`_expanded_coefficients`, in the dtype of ``log_w`` (the
        expanded form); for the per-component form ``coef`` holds the
        augmented factors of :func:`_per_component_factors`.

    direct : ndarray of int, default=None
        Components computed in the direct form (large kappa_k).

    shift : ndarray of shape (n_components, n_features), default=None
        The points the second moments are returned around; None means
        ``means``.

    per_component : bool, default=False
        Skip the quadratic features: one product and one scatter per
        component (see :func:`_prefer_per_component`).

    triangle : {'upper', 'lower'}, default=None
        The triangle ``precisions_chol`` is zero outside of, if any (for the
        per-component form's products and the direct components'; see
        :func:`_triangle`).

    stacked : _LazyStack, default=None
        The per-component form's factors of the components not in
        ``direct``, side by side (:func:`_stacked_factors`), for chunks of
        at least ``_STACKED_MIN_ROWS`` rows; None multiplies by one factor
        at a time.

    shifted : ndarray of int, default=None
        Components of the per-component form whose scatter is accumulated
        around their own shift rather than the centre (see
        :func:`_accumulate_per_component`).

    floor : float or ndarray of shape (n_components,), default=None
        float64: the fit's E-step lets masses below this (relative to their
        row's largest, :func:`~._suffstats.negligible_floor`'s) be zero; see
        :meth:`GaussianMixtureEM._keep_negligible_mass`. None keeps every
        normal mass. float32: ``_FLOAT32_LOG_FLOOR`` lets the direct
        diagonal and spherical components' masses below it be zero rather
        than raised to it (see :func:`_surviving_direct_pairs`); None
        raises every one.

    Returns
    -------
    stats : dict
        As :func:`~._suffstats.e_step_chunk`, with the keys of
        :func:`_accumulate_gaussian` around ``shift`` (float64).
    """
    # Values too large for the sums of squares overflow quietly here; the
    # model raises a clear error on the non-finite statistics instead.
    with np.errstate(over="ignore", invalid="ignore"):
        return _gaussian_e_step_chunk_body(X, sample_weight, **parameters)


def _gaussian_e_step_chunk_body(
    X,
    sample_weight,
    *,
    means,
    precisions_chol,
    covariance_type,
    log_w,
    centre=None,
    coef=None,
    intercept=None,
    direct=None,
    shift=None,
    per_component=False,
    triangle=None,
    floor=None,
    stacked=None,
    shifted=None,
):
    """The body of :func:`_gaussian_e_step_chunk` (same parameters)."""
    dtype = log_w.dtype
    if per_component or len(direct) or centre is None or not centre.any():
        # The chunk itself is read in the model's dtype; otherwise only the
        # centring reads it (see _centred_features).
        X = _in_dtype(X, dtype)
    if sample_weight is not None:
        sample_weight = sample_weight.astype(log_w.dtype, copy=False)
    if per_component:
        # No quadratic features: one product with each augmented factor for
        # the log-densities, one scatter per component for the moments.
        return e_step_chunk(
            _augmented_centred(X, centre, triangle),
            sample_weight,
            weighted_log_prob=partial(
                _per_component_log_prob,
                means=means,
                precisions_chol=precisions_chol,
                covariance_type=covariance_type,
                log_w=log_w,
                factors=coef,
                triangle=triangle,
                direct=direct,
                X=X,
                stacked=stacked,
            ),
            accumulate=partial(
                _accumulate_per_component,
                shift=means if shift is None else shift,
                centre=centre,
                direct=direct,
                X=X,
                triangle=triangle,
                shifted=shifted,
            ),
            floor=floor,
        )
    # A tied chunk whose every component is direct (fewer rows than
    # features: reg_covar's directions put every kappa_k beyond the
    # expansion's limit) needs only its centred rows, for the moments.
    features, product = _fused_features(
        X,
        centre,
        covariance_type,
        precisions_chol,
        coef,
        dtype,
        whiten=len(direct) < len(log_w),
    )
    # Blocked diagonal features: the moments' products in blocks of rows
    # within the same small-matrix kernels, where BLAS has them.
    moment_rows = None
    if product is not None:
        moment_rows = _kernel_rows(X.shape[1], coef.shape[1])
    return e_step_chunk(
        features,
        sample_weight,
        weighted_log_prob=partial(
            _expanded_log_prob,
            means=means,
            precisions_chol=precisions_chol,
            covariance_type=covariance_type,
            log_w=log_w,
            centre=centre,
            coef=coef,
            intercept=intercept,
            direct=direct,
            X=X,
            triangle=triangle,
            normalised=dtype == np.float64 or floor is not None,
            product=product,
        ),
        accumulate=partial(
            _accumulate_expanded,
            means=means if shift is None else shift,
            covariance_type=covariance_type,
            centre=centre,
            direct=direct,
            X=X,
            block_rows=moment_rows,
        ),
        floor=floor,
    )


#: float64 diagonal chunks of at least this many features and at most
#: ``_BLOCKED_DIAG_COMPONENTS`` components take :func:`_blocked_diag_features`.
#: On two threads, whose extra calls a block wait on each other for the GIL,
#: 3-iteration fits at 100,000 rows took 0.93 of their time at 128 features
#: with 2 and 4 components and 0.96-0.97 at 64, but 1.14-1.17x at 32 (in
#: blocks of 1,024 rows); with 8 components, 1.01.
_BLOCKED_DIAG_FEATURES = 64
_BLOCKED_DIAG_COMPONENTS = 4

#: Where BLAS has small-matrix kernels (see
#: :func:`~._suffstats.small_gemm_work`), float64 diagonal chunks take
#: :func:`_blocked_diag_features` from this many features with
#: ``_BLOCKED_DIAG_COMPONENTS`` to ``_SMALL_BLOCKED_DIAG_COMPONENTS``
#: components (and from ``_BLOCKED_DIAG_FEATURES`` with fewer), in blocks
#: within the kernels' size, their moments' products too. 3-iteration fits
#: at 100,000 rows, alternated against the whole chunk's products (or 2 MiB
#: blocks): 0.75, 0.84 and 0.88 of their time at 128 features with 4, 8 and
#: 16 components, 0.84, 0.84 and 0.88 at 64, 0.86, 0.98 and 1.01 at 32.
#: Measured before the rule was drawn, blocked paths beyond it lost: 1.07-1.17x
#: with 32 and 64 components (blocks of a few hundred rows cost more than
#: the packed products), 1.07x at 32 features with 2 components, 1.8x at 16
#: features with 8. A chunk whose products are within the kernels already
#: is one block, to which the path only adds its calls (per iteration,
#: bench_small_shapes' data, 100 x 64 to 300 x 200 with 12 components:
#: 1.00-1.05x): it keeps the whole chunk's products.
_SMALL_BLOCKED_DIAG_FEATURES = 32
_SMALL_BLOCKED_DIAG_COMPONENTS = 16

#: Bytes of a block of rows of :func:`_blocked_diag_features`: this
#: machine's L2 cache. (Blocks of 2,048 rows at 200 features, 3.2 MiB, made
#: a default fit of 3,000 x 200 with 3 components 1.05x.)
_BLOCKED_DIAG_BYTES = 2**21


def _blocked_diag(covariance_type, X, n_components, dtype):
    """Whether a chunk's E-step takes :func:`_blocked_diag_features`."""
    if not (
        covariance_type == "diag" and dtype == np.float64 and X.dtype == np.float64
    ):
        return False
    n_samples, n_features = X.shape
    work = small_gemm_work()
    if work and n_components <= _SMALL_BLOCKED_DIAG_COMPONENTS:
        if n_components >= _BLOCKED_DIAG_COMPONENTS:
            # (A chunk whose products are within the kernels already is
            # one block: the blocked path would only add its calls.)
            return (
                n_features >= _SMALL_BLOCKED_DIAG_FEATURES
                and n_samples * n_features * n_components > work
            )
    elif n_components > _BLOCKED_DIAG_COMPONENTS:
        return False
    return n_features >= _BLOCKED_DIAG_FEATURES


def _kernel_rows(n_features, n_components):
    """Most rows whose product with ``n_features x n_components``
    coefficients BLAS's small-matrix kernels take; None without them."""
    work = small_gemm_work()
    return work // (n_features * n_components) if work else None


def _diag_block_rows(n_features, n_components):
    """Rows of a block of :func:`_blocked_diag_features`.

    ``_BLOCKED_DIAG_BYTES`` of rows, and, where BLAS has small-matrix
    kernels, few enough that each product of the block stays within them.
    """
    rows = _BLOCKED_DIAG_BYTES // (8 * n_features)
    kernel_rows = _kernel_rows(n_features, n_components)
    if kernel_rows is not None:
        rows = min(rows, kernel_rows)
    return max(64, rows)


def _fused_features(
    X,
    centre,
    covariance_type,
    precisions_chol,
    coef,
    dtype,
    keep_features=True,
    whiten=True,
):
    """A chunk's features for the fused forms, the E-step's and predictions'.

    keep_features : bool, default=True
        As :func:`_blocked_diag_features`'s (the other forms always keep
        them).

    whiten : bool, default=True
        As :func:`_centred_features`'s.

    Returns
    -------
    features : ndarray or tuple of ndarrays or None
        :func:`_centred_features`'s, or :func:`_blocked_diag_features`'s
        where :func:`_blocked_diag` says so.

    product : ndarray of shape (n_components, n_samples) or None
        The features' products with ``coef`` when the blocks computed them.
    """
    if _blocked_diag(covariance_type, X, coef.shape[1], dtype):
        block_rows = _diag_block_rows(X.shape[1], coef.shape[1])
        return _blocked_diag_features(X, centre, coef, block_rows, keep_features)
    features = _centred_features(
        X, centre, covariance_type, precisions_chol, dtype, whiten=whiten
    )
    return features, None


def _blocked_diag_features(X, centre, coef, block_rows, keep_features=True):
    """A float64 'diag' chunk's features and their products with ``coef``.

    :func:`_centred_features` squares the whole chunk, then the E-step
    multiplies both feature blocks by a few columns of coefficients: on
    wide data each pass reads the chunk from memory again, and OpenBLAS's
    product of a few coefficient rows with the transposed chunk is slow.
    Here a block of ``block_rows`` rows at a time (see
    :func:`_diag_block_rows`) is centred, squared and multiplied,
    ``(rows, D) @ (D, K)``, while it is in cache
    (one thread, the products and squares of a chunk: 0.64-0.82 of their
    time from 32 features with 2 to 8 components, in blocks of 1,024
    rows); the column-major log-densities are then one copy. The same
    products in the other orientation, so the same values up to rounding.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64
        The chunk.

    centre : ndarray of shape (n_features,)

    coef : ndarray of shape (2 n_features, n_components)
        From :func:`_expanded_coefficients`.

    block_rows : int
        Rows of a block (:func:`_diag_block_rows`).

    keep_features : bool, default=True
        Keep the chunk's features, for the moments. Without them (a
        prediction, which needs only the products) each block's features
        are written to one block's buffers, reused, rather than the
        chunk's: ``predict_proba`` of 100,000 x 32-128 with 4-16
        components took 0.90-0.99 of its time, the same bits. (A fit's
        moments computing them again from ``X`` a block at a time were
        0.87-1.15x as long: kept.)

    Returns
    -------
    features : tuple of two ndarrays of shape (n_samples, n_features) or None
        ``(z ** 2, z)`` as :func:`_centred_features`; None unless
        ``keep_features``.

    product : ndarray of shape (n_components, n_samples)
        ``(features @ coef).T``, C-ordered.
    """
    n_samples, n_features = X.shape
    n_components = coef.shape[1]
    rows = workspace("log_prob_rows", (n_samples, n_components), np.float64)
    linear = workspace(
        "log_prob_linear",
        (min(block_rows, n_samples), n_components),
        np.float64,
    )
    quadratic_coef, linear_coef = coef[:n_features], coef[n_features:]
    centre = centre if centre.any() else None
    features = kept = None
    if keep_features:
        kept = workspace("features", (2, n_samples, n_features), np.float64)
        features = (kept[0], X if centre is None else kept[1])
    for start in range(0, n_samples, block_rows):
        block = slice(start, min(start + block_rows, n_samples))
        out = None if kept is None else kept[:, block]
        squares, z = _diag_block_features(X[block], centre, out)
        np.matmul(squares, quadratic_coef, out=rows[block])
        part = linear[: len(z)]
        np.matmul(z, linear_coef, out=part)
        rows[block] += part
    product = workspace("log_prob", (n_components, n_samples), np.float64)
    np.copyto(product.T, rows)
    return features, product


def _diag_block_features(X, centre, out=None):
    """``(z ** 2, z)`` of a block of rows.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features), float64

    centre : ndarray of shape (n_features,) or None
        ``z = X - centre``; None for ``X`` itself.

    out : ndarray of shape (2, n_rows, n_features), default=None
        The buffers of ``z ** 2`` and ``z``; None means this thread's block
        buffers, reused by the next block.

    Returns
    -------
    squares, z : ndarrays of shape (n_rows, n_features)
        Views of ``out`` (``z`` is ``X`` without a centre).
    """
    if out is None:
        out = workspace("block_features", (2,) + X.shape, np.float64)
    z = X if centre is None else np.subtract(X, centre, out=out[1])
    return np.multiply(z, z, out=out[0]), z


#: Fits whose every E-step holds at most this many differences
#: ``x_n - mu_k`` (n_samples x n_components x n_features) take
#: :func:`_direct_e_step_chunk`: on data this small an iteration is a few
#: dozen NumPy calls of microseconds each, and the fused forms' coefficients
#: (computed twice for 'diag' when the expansion around zero is refused),
#: precision guard, direct components and quadratic features cost more than
#: the differences. Per iteration, with 15 components: iris 'diag' 0.45 ->
#: 0.25 ms (scikit-learn: 0.30), 'full' 0.75 -> 0.45 (2.1); with one, iris
#: 'full' 0.45 -> 0.23 (0.37). Up to here the direct form was the faster
#: for every type measured; by 2^16 the fused forms are ahead with many
#: components ('tied' first).
_DIRECT_VALUES = 2**15

#: The fewest rows a one-component diagonal (or wide spherical) fit splits
#: over threads (see GaussianMixtureEM._chunk_sizing).
_MIN_THREADED_ROWS_ONE_COMPONENT = 8192

#: From this many features, diagonal and spherical covariances take the
#: direct form up to twice ``_DIRECT_VALUES`` (see
#: :meth:`GaussianMixtureEM._uses_direct_form`) ...
_DIRECT_WIDE_FEATURES = 16

#: ... and tied covariances up to this many (see
#: :meth:`GaussianMixtureEM._uses_direct_form`) ...
_DIRECT_TIED_VALUES = 20_000

#: ... and both up to three times with fewer rows than this per component: on
#: so few rows a component holds a point or two, and the fused forms'
#: precision guard computes many of them directly anyway.
_DIRECT_FEW_ROWS_PER_COMPONENT = 4


#: Full covariances take the direct form on at most this many rows ...
_DIRECT_FULL_SAMPLES = 320

#: ... when they are at most this many per feature ...
_DIRECT_FULL_SAMPLES_PER_FEATURE = 10

#: ... and the differences at most this many values (8 MiB an array), at any
#: count of components (see :meth:`GaussianMixtureEM._uses_direct_form`).
_DIRECT_FULL_VALUES = 2**20


#: From this many values, the direct form's arrays are reused buffers.
_DIRECT_REUSED_VALUES = 2**14


def _direct_buffers(shape):
    """The direct form's two arrays of ``shape``: the differences and work.

    This thread's workspace for large arrays: fresh arrays of a megabyte or
    more are mapped from the system at every call, and their page faults
    made the iteration 3-4x slower (1,000 x 200, K = 1: 2.2 against 0.6
    ms). Below ``_DIRECT_REUSED_VALUES`` a buffer's look-up costs more than
    the allocation.
    """
    if math.prod(shape) >= _DIRECT_REUSED_VALUES:
        return (
            workspace("direct_difference", shape, np.float64),
            workspace("direct_work", shape, np.float64),
        )
    return np.empty(shape), np.empty(shape)


def _direct_log_prob(XT, means, factors, log_w, kind, sample_major=False):
    """``log pi_k + log N(x_n | mu_k, Sigma_k)`` from every difference at once.

    The differences are seen as (component, feature, sample) arrays, and
    stored so (the default: NumPy's element-wise loops then run along the
    samples) or, with ``sample_major``, as (component, sample, feature);
    :func:`_feature_major` chooses for the direct E-step. The lockstep
    search calls it feature-major.

    Parameters
    ----------
    XT : ndarray of shape (n_features, n_samples), float64
        The data, transposed: C-contiguous, or ``X.T`` for
        ``sample_major``.

    means : ndarray of shape (n_components, n_features)

    factors : ndarray
        The precision factors in the layout of ``kind`` (see
        :func:`_compute_log_det_cholesky`): the factors themselves for
        'full' and 'tied', the square roots of the precisions for 'diag' and
        'spherical'.

    log_w : ndarray of shape (n_components,)

    kind : {'full', 'tied', 'diag', 'spherical'}

    sample_major : bool, default=False
        Store the differences (component, sample, feature).

    Returns
    -------
    log_prob : ndarray of shape (n_components, n_samples)

    diff : ndarray of shape (n_components, n_features, n_samples)
        ``x_n - mu_k``, in :func:`_direct_buffers`' first (a transposed
        view of it for ``sample_major``).

    squares : ndarray of shape (n_components, n_features, n_samples) or None
        ``diff ** 2`` for 'diag' and 'spherical' (in the second, laid out as
        ``diff``), None for 'full' and 'tied'.
    """
    n_features, n_samples = XT.shape
    if sample_major:
        stored = _direct_buffers((len(means), n_samples, n_features))
        np.subtract(XT.T[np.newaxis], means[:, np.newaxis], out=stored[0])
        diff, work = stored[0].transpose(0, 2, 1), stored[1].transpose(0, 2, 1)
    else:
        diff, work = _direct_buffers((len(means), n_features, n_samples))
        np.subtract(XT[np.newaxis], means[:, :, np.newaxis], out=diff)
    squares = None
    if kind in ("full", "tied"):
        # (x_n - mu_k) U_k, batched over the components (U broadcast for
        # 'tied'), and its squared norms; products of the arrays as stored.
        if sample_major:
            whitened = np.matmul(stored[0], factors, out=stored[1])
            whitened *= whitened
            maha = np.matmul(whitened, np.ones(n_features))
        else:
            whitened = np.matmul(np.swapaxes(factors, -1, -2), diff, out=work)
            whitened *= whitened
            maha = np.matmul(np.ones((1, n_features)), whitened)[:, 0]
    else:
        squares = np.multiply(diff, diff, out=work)
        if kind == "diag":
            maha = np.matmul((factors**2)[:, np.newaxis], squares)[:, 0]
        else:
            maha = np.matmul(np.ones((1, n_features)), squares)[:, 0]
            maha *= (factors**2)[:, np.newaxis]
    log_det = _compute_log_det_cholesky(factors, kind, n_features)
    maha *= -0.5
    maha += (log_det + log_w - 0.5 * n_features * math.log(2 * math.pi))[:, np.newaxis]
    return maha, diff, squares


#: The direct form stores its differences feature-major from this many
#: samples per feature (see :func:`_feature_major`).
_FEATURE_MAJOR_SAMPLES = 8

#: ... and below this many features.
_FEATURE_MAJOR_FEATURES = 32


def _feature_major(n_samples, n_features, n_components):
    """Whether the direct form stores its differences feature-major.

    Feature-major needs a transposed copy of the chunk, and pays where the
    sample-major loops are short: with several components, few features
    and many samples per feature. Alternated on one chunk's E-step
    (feature-major against sample-major): 300 x 4, K = 12, 0.76; 1,000 x 4,
    K = 2, 0.82; 300 x 16, K = 12, 0.85-0.94; 1,000 x 16, K = 2, 1.00;
    1,000 x 32, K = 2, 1.11; 1,000 x 64, K = 2, 1.33; with one component
    1.02-1.10 at 8-16 features, 1.58 at 64; 100 x 16, K = 3 ('full'), 1.04;
    30 x 200, K = 3, 1.12.
    """
    return (
        n_components > 1
        and n_features < _FEATURE_MAJOR_FEATURES
        and n_samples >= _FEATURE_MAJOR_SAMPLES * n_features
    )


def _direct_e_step_chunk(
    X, sample_weight, *, means, precisions_chol, covariance_type, log_w
):
    """E-step and statistics of a small chunk, from every difference at once.

    On little data (see ``_DIRECT_VALUES``): the differences of every row
    from every mean, in one array (:func:`_direct_log_prob`), give
    the log-densities without an expansion (exact, so no precision guard)
    and the moments around the means.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Computed in float64 whatever its dtype (a float32 chunk this small
        costs nothing to convert, and its statistics are float64 anyway).

    sample_weight : ndarray of shape (n_samples,) or None

    means : ndarray of shape (n_components, n_features), float64

    precisions_chol : ndarray, float64
        The precisions' factors, in the layout of ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    log_w : ndarray of shape (n_components,), float64

    Returns
    -------
    stats : dict
        As :func:`~._suffstats.e_step_chunk`, with the keys of
        :func:`_accumulate_gaussian` around ``means``; for 'spherical',
        ``"sxx"`` holds per-feature moments, whose mean over the features is
        what its M-step reads.
    """
    if sample_weight is not None:
        sample_weight = sample_weight.astype(np.float64, copy=False)
    n_samples, n_features = X.shape
    sample_major = not _feature_major(n_samples, n_features, len(means))
    if sample_major:
        XT = X.astype(np.float64, copy=False).T
    else:
        XT = np.ascontiguousarray(X.T, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        log_prob, diff, squares = _direct_log_prob(
            XT, means, precisions_chol, log_w, covariance_type, sample_major
        )
        # (n_samples, n_components), column-major as the other forms'.
        return e_step_chunk(
            (diff, squares),
            sample_weight,
            weighted_log_prob=lambda features: log_prob.T,
            accumulate=partial(_accumulate_direct, means=means),
        )


def _accumulate_direct(features, resp, *, means):
    """Statistics around the means from :func:`_direct_e_step_chunk`'s arrays.

    Parameters
    ----------
    features : tuple of ndarray of shape (n_components, n_features, n_samples)
        The differences ``x_n - mu_k`` and their squares (None for 'full' and
        'tied', whose scatters are whole matrices), in either of
        :func:`_direct_log_prob`'s layouts.

    resp : ndarray of shape (n_samples, n_components)
        Responsibilities multiplied by the sample weights.

    means : ndarray of shape (n_components, n_features)

    Returns
    -------
    stats : dict
        The keys of :func:`_accumulate_gaussian` around ``means``, float64.
    """
    diff, squares = features
    nk = mass_sums(resp)
    # One column of weights per component: (K, D, n) @ (K, n, 1).
    weights = resp.T[:, :, np.newaxis]
    sz = np.matmul(diff, weights)[:, :, 0]
    if squares is None:
        # 'full', 'tied': the scatters (K, D, n) @ (K, n, D).
        sxx = np.matmul(diff * weights.transpose(0, 2, 1), diff.transpose(0, 2, 1))
    else:
        sxx = np.matmul(squares, weights)[:, :, 0]
    return {"nk": nk, "sx": sz + nk[:, np.newaxis] * means, "sxx": sxx}


def _gaussian_log_prob_chunk(X, **parameters):
    """``log pi_k + log N(x | mu_k, Sigma_k)`` of a chunk, on the fused features.

    Prediction's half of :func:`_gaussian_e_step_chunk` (same keyword
    arguments, without ``shift``); returns an ndarray of shape
    (n_samples, n_components), a view of the thread's workspace.
    """
    X = _in_dtype(X, parameters["log_w"].dtype)
    parameters = dict(parameters)
    per_component = parameters.pop("per_component", False)
    triangle = parameters.pop("triangle", None)
    stacked = parameters.pop("stacked", None)
    parameters.pop("shifted", None)
    exact = {
        key: parameters[key]
        for key in ("means", "precisions_chol", "covariance_type", "log_w")
    }
    with np.errstate(over="ignore", invalid="ignore"):
        if per_component:
            log_prob = _per_component_log_prob(
                _augmented_centred(X, parameters["centre"], triangle),
                factors=parameters["coef"],
                triangle=triangle,
                direct=parameters["direct"],
                X=X,
                stacked=stacked,
                **exact,
            )
        elif len(parameters["direct"]) == len(parameters["log_w"]):
            # Every component computed directly (a tied covariance fitted on
            # fewer rows than features: its reg_covar directions make every
            # kappa_k large): the features' product would go unused, one
            # more D x D product per chunk than the K direct ones.
            log_prob = _expanded_log_prob(None, X=X, triangle=triangle, **parameters)
        else:
            # (A prediction's log-densities need no kept features.)
            features, product = _fused_features(
                X,
                parameters["centre"],
                parameters["covariance_type"],
                parameters["precisions_chol"],
                parameters["coef"],
                parameters["log_w"].dtype,
                keep_features=False,
            )
            log_prob = _expanded_log_prob(
                features, X=X, triangle=triangle, product=product, **parameters
            )
    return _resolve_far_rows(log_prob, X, **exact)


def _per_component_log_prob(
    features,
    *,
    means,
    precisions_chol,
    covariance_type,
    log_w,
    factors,
    triangle,
    direct,
    X,
    stacked=None,
):
    """``log pi_k + log N(x_n | mu_k, Sigma_k)`` without quadratic features.

    One product per component, ``[z, 1] A_k`` with ``z = x - centre`` and
    the augmented factor ``A_k = [U_k; -(mu_k - centre) U_k]`` (see
    :func:`_per_component_factors`): the whitened difference ``(x - mu_k)
    U_k`` with the mean's term added inside the product, not by a pass over
    the chunk per component. That sum cancels digits in proportion to
    ``sqrt(kappa_k)``, ``kappa_k = |(mu_k - centre) U_k|^2`` (scikit-learn's
    uncentred ``x U_k - mu_k U_k`` made float32 fits of 300 samples in 200
    dimensions jitter for tens of iterations): components beyond
    :func:`_per_component_limit` (``direct``) subtract their mean first. ``2 N D^2 K``
    operations on ``N D`` inputs, against the expanded form's ``N D^2 K`` on
    ``N D^2 / 2`` features, less the zero blocks of triangular factors.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features + 1)
        The chunk's :func:`_augmented_centred` rows.

    means, precisions_chol, covariance_type, log_w
        As for :func:`_weighted_log_gaussian_prob`, in the dtype of ``X``
        ('full' only).

    factors : ndarray of shape (n_components, n_features + 1, n_features)
        From :func:`_per_component_factors`.

    triangle : {'upper', 'lower'} or None
        The triangle the factors are zero outside of (see
        :func:`_triangle`), whose zero blocks the products then skip.

    direct : ndarray of int
        Components computed from ``x - mu_k``.

    X : ndarray of shape (n_samples, n_features)
        The chunk.

    stacked : _LazyStack, default=None
        The factors of the components not in ``direct``, side by side
        (:func:`_stacked_factors`), multiplied a block of components at a
        time on chunks of at least ``_STACKED_MIN_ROWS`` rows; None
        multiplies by each component's factor in turn.

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
    """
    n_samples, n_features = X.shape
    log_det = _compute_log_det_cholesky(precisions_chol, covariance_type, n_features)
    log_prob = np.empty((n_samples, len(means)), dtype=X.dtype)
    log_2pi = n_features * math.log(2 * math.pi)
    if stacked is not None and n_samples < _STACKED_MIN_ROWS:
        stacked = None
    if stacked is not None:
        components, maha = _stacked_whitened_norms(features, stacked.get())
        if len(components) == len(means):
            # (Every component, in order: no gather or scatter.)
            np.add(-0.5 * (log_2pi + maha), log_det, out=log_prob)
            log_prob += log_w
        else:
            log_prob[:, components] = (
                -0.5 * (log_2pi + maha) + log_det[components] + log_w[components]
            )
    # Products go to this thread's reused buffers: fresh N x D arrays per
    # component made the E-step 1.5x slower at 1,190 x 128 (page faults on
    # every allocation).
    whitened = workspace("whitened", X.shape, X.dtype)
    leading = _bias_first(triangle)
    # (The stacked components are done: only the direct ones are left.)
    remaining = range(len(means)) if stacked is None else direct.tolist()
    direct = set(direct.tolist())
    for k in remaining:
        if k in direct:
            maha = _direct_mahalanobis(
                X, means[k], precisions_chol[k], covariance_type, triangle
            )
        else:
            maha = _whitened_norms(features, factors[k], triangle, whitened, leading)
        log_prob[:, k] = -0.5 * (log_2pi + maha) + log_det[k] + log_w[k]
    return log_prob


def _direct_mahalanobis(X, mean, chol, covariance_type, triangle=None):
    """Squared Mahalanobis distances of the rows to one mean, in reused buffers.

    The difference is taken first (exact for rows near the mean), then
    whitened on the non-zero blocks of a triangular factor.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    mean : ndarray of shape (n_features,)

    chol : ndarray
        One component's factor: (n_features, n_features) for 'full' and
        'tied', (n_features,) for 'diag', a scalar for 'spherical'.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    triangle : {'upper', 'lower'}, default=None
        See :func:`_triangle`.

    Returns
    -------
    maha : ndarray of shape (n_samples,)
    """
    diff = workspace("difference", X.shape, X.dtype)
    whitened = workspace("whitened", X.shape, X.dtype)
    np.subtract(X, mean, out=diff)
    if covariance_type in ("full", "tied"):
        return _whitened_norms(diff, chol, triangle, whitened)
    np.multiply(diff, chol, out=whitened)
    return np.einsum("ij,ij->i", whitened, whitened)


def _bias_first(triangle):
    """Whether the column of ones leads the augmented rows (1) or ends them (0).

    Where it sits next to the rows of an upper (lower) triangular factor's
    leading (trailing) blocks, each block's product is on contiguous rows.
    """
    return 1 if triangle == "upper" else 0


def _augmented_centred(X, centre, triangle):
    """The chunk's rows ``[z, 1]`` (or ``[1, z]``), ``z = x - centre``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    centre : ndarray of shape (n_features,)

    triangle : {'upper', 'lower'} or None
        The ones lead for 'upper' (see :func:`_bias_first`).

    Returns
    -------
    features : ndarray of shape (n_samples, n_features + 1)
        A view of this thread's workspace.
    """
    n_samples, n_features = X.shape
    features = workspace("augmented", (n_samples, n_features + 1), X.dtype)
    leading = _bias_first(triangle)
    np.subtract(X, centre, out=features[:, leading : leading + n_features])
    features[:, n_features if leading == 0 else 0] = 1.0
    return features


def _per_component_factors(means, precisions_chol, centre, triangle):
    """Augmented factors of the per-component form, and their cancellation.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)

    precisions_chol : ndarray of shape (n_components, n_features, n_features)

    centre : ndarray of shape (n_features,)

    triangle : {'upper', 'lower'} or None

    Returns
    -------
    factors : ndarray of shape (n_components, n_features + 1, n_features)
        ``[U_k; -(mu_k - centre) U_k]``, the row of the mean's term first
        instead where :func:`_bias_first` says so, so that ``[z, 1] A_k =
        (x - mu_k) U_k``.

    kappa : ndarray of shape (n_components,)
        ``|(mu_k - centre) U_k|^2``, float64.
    """
    with single_threaded_blas():
        prec_chol = np.asarray(precisions_chol, dtype=np.float64)
        m = means.astype(np.float64) - centre
        bias = -np.einsum("kd,kde->ke", m, prec_chol)
        n_components, n_features = means.shape
        factors = np.empty((n_components, n_features + 1, n_features))
        if _bias_first(triangle):
            factors[:, 0] = bias
            factors[:, 1:] = prec_chol
        else:
            factors[:, :n_features] = prec_chol
            factors[:, n_features] = bias
        return factors, np.einsum("kd,kd->k", bias, bias)


def _accumulate_per_component(
    features, resp, *, shift, centre, direct, X, triangle, shifted=None
):
    """Sufficient statistics of the per-component form, around ``shift``.

    ``sum_n r_nk z z^T`` as ``W^T W`` with the rows of ``W`` ``sqrt(r_nk) z``:
    NumPy runs the product of a matrix with its own transpose as a
    symmetric rank-k update (BLAS ``syrk``), half a general product's
    arithmetic (at 1,190 x 128: 0.55 against 1.3 ms). Taken around the
    centre, then moved to ``shift`` in float64 as the expanded form's
    (:func:`_accumulate_expanded`); the components of ``direct`` (far from
    the centre) are accumulated from ``x - shift_k`` instead, and those of
    ``shifted`` (float32's beyond ``kappa_k = D``, float64's beyond the
    expansion's limit) from ``z + (centre - shift_k)``, next to their
    shift.

    The components with few rows of non-zero weight (see
    :func:`_kept_mask`) have their rows of ``W`` gathered together, a few
    calls over the chunk for a group of them (:func:`_component_grams`),
    then one product each, and the moves to the
    shifts of few values are one call for every component. Each
    component's own gathers and move had been a dozen NumPy calls on its
    few rows, which two threads ran one at a time, each waiting for the
    other's hold of the GIL: at 100,000 x 32 with 16 float32 components,
    the moments took as long on each of two threads as on one for all the
    chunks, and a fit's iteration ran at 1.34x of one thread's speed on
    two (float64's expanded form at 1.78x). Alternated against one
    component at a time (3-iteration fits, two threads, the same bits):
    float32 100,000 x 32 with 16 components 0.78-0.85 of the time, x 64
    with 16 0.83-0.91, 20,000 x 64 with 80 0.82; float64 100,000 x 64
    with 16 0.94, x 32 and x 64 with 8 0.94-0.96, 5,000 x 64 with 80
    0.84-0.87.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features + 1)
        The chunk's :func:`_augmented_centred` rows.

    resp : ndarray of shape (n_samples, n_components)
        Responsibilities multiplied by the sample weights (non-negative).

    shift : ndarray of shape (n_components, n_features)

    centre : ndarray of shape (n_features,)

    direct : ndarray of int

    X : ndarray of shape (n_samples, n_features)

    triangle : {'upper', 'lower'} or None
        Where the ones are in ``features`` (see :func:`_bias_first`).

    shifted : ndarray of int, default=None
        Further components whose scatter is taken next to their own shift
        (see :meth:`GaussianMixtureEM._per_component_parameters`); none of
        them in ``direct``.

    Returns
    -------
    stats : dict
        The keys of :func:`_accumulate_gaussian`, float64.
    """
    n_samples, n_features = X.shape
    n_components = resp.shape[1]
    leading = _bias_first(triangle)
    Z = features[:, leading : leading + n_features]
    nk = mass_sums(resp)
    sz = _inner_product(resp.T, features)[:, leading : leading + n_features]
    sz = sz.astype(np.float64, copy=False)
    sx = sz + nk[:, np.newaxis] * centre
    d = shift.astype(np.float64) - centre
    is_direct = np.zeros(n_components, dtype=bool)
    is_direct[direct] = True
    offsets = [None] * n_components
    if shifted is not None and len(shifted):
        # Their scatter around c - a, next to their shift, from the centred
        # rows already in cache: z + a, a = c - shift_k rounded to the
        # chunk's dtype (gathering the chunk's own rows again took a fifth
        # of a float32 iteration at 100,000 x 32 with 4 components). Their
        # rounding, about eps |x - c| a value and uncorrelated with the
        # rows, moves a covariance by about eps sqrt(kappa_k / D / N_k) of
        # itself (where the centred scatter's move lost eps kappa_k / D;
        # measured, the covariances' error is as the differences x -
        # shift_k gave). The first moment is the centred one's, moved in
        # float64 (sx, above, is already the uncentred sum); then both are
        # moved to the shift as the centred components' are.
        rounded = (centre - shift[shifted].astype(np.float64)).astype(X.dtype)
        added = rounded.astype(np.float64)
        sz[shifted] += nk[shifted, np.newaxis] * added
        d[shifted] = shift[shifted] - (centre - added)
        for k, offset in zip(shifted.tolist(), rounded):
            offsets[k] = offset
    weights, kept, counts, few = _kept_mask(resp)
    sxx = np.empty((n_components, n_features, n_features))
    for k in np.flatnonzero(is_direct):
        # Far from the centre: its sums around its own shift.
        rows = np.flatnonzero(kept[k]) if few[k] else None
        Xk, resp_k = _gathered(rows, X, weights[k])
        sxx[k], first = _direct_scatter(Xk, shift[k], resp_k, full=True)
        sx[k] = first + nk[k] * shift[k]
    # Moved to the shift all at once where the moments are few (a dozen
    # calls fewer per component); otherwise a component at a time, while
    # its scatter is in cache (for all the components at once, the passes
    # over K D^2 values were an eighth of a float32 iteration at D = 128,
    # K = 64).
    move_each = n_components * n_features**2 > _BATCHED_MOVE_VALUES
    moved = np.flatnonzero(~is_direct)
    for k, gram in _component_grams(Z, weights, kept, counts, few, moved, offsets):
        sxx[k] = gram
        if move_each:
            _move_scatter(sxx[k], sz[k], nk[k], d[k])
    if not move_each:
        if len(moved) == n_components:
            _move_scatter(sxx, sz, nk, d)
        else:
            scatter = sxx[moved]
            _move_scatter(scatter, sz[moved], nk[moved], d[moved])
            sxx[moved] = scatter
    return {"nk": nk, "sx": sx, "sxx": sxx}


#: Per-component moments of at most this many values (``K D^2``) are moved
#: to their shifts in one call (see :func:`_accumulate_per_component`).
#: Alternated against 2^17 (3-iteration fits, two threads, the same bits):
#: 100,000 x 64 with 64 components 0.90 (float32) and 0.96 (float64) of
#: the time, x 128 with 16, float64, 0.98; 2^21 took 128 x 64 float32 to
#: 1.05 and x 128 with 32, float64, 1.00.
_BATCHED_MOVE_VALUES = 2**19


#: Groups of up to this many components (see :func:`_kept_groups`) gather
#: each component's rows in turn (:func:`_weighted_gram`), in cache for its
#: product: with so few, the calls per component cost little, and the
#: group's rows together had been 1.03-1.10x as long to fit (float32
#: 100,000 x 64 with 2 components, per iteration; noisy).
_GATHERED_MIN_COMPONENTS = 4

#: The most bytes of the rows :func:`_accumulate_per_component` gathers
#: together (a component with more is gathered alone), half a core's L2
#: cache: at 100,000 x 128 with 16 float64 components the chunk's rows
#: gathered together (2.3 MB) made a fit 1.05x as long as one component at
#: a time; groups of this size, 0.95.
_GATHERED_BYTES = 2**19


def _component_grams(Z, weights, kept, counts, few, components, offsets):
    """Each component's ``sum_n r_nk (z_n + a_k)(z_n + a_k)^T``.

    The components over every row first, one at a time; then those with
    few kept rows (``few``), in groups (:func:`_kept_groups`): a group's
    rows gathered, offset and weighted in a few calls over the chunk
    (:func:`_gathered_rows`), then one product each, or, in groups of up to
    ``_GATHERED_MIN_COMPONENTS``, one component's rows at a time.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        The centred rows.

    weights, kept, counts, few
        From :func:`_kept_mask`.

    components : ndarray of int
        The components, in order.

    offsets : list of ndarray of shape (n_features,) or None
        ``a_k`` of each component, in the dtype of ``Z``; None for zero.

    Yields
    ------
    k : int

    gram : ndarray of shape (n_features, n_features)
    """
    weighted = workspace("weighted_difference", Z.shape, Z.dtype)
    for k in components[~few[components]].tolist():
        yield k, _weighted_gram(Z, np.sqrt(weights[k]), weighted, None, offsets[k])
    max_rows = max(1, _GATHERED_BYTES // (Z.shape[1] * Z.dtype.itemsize))
    for group in _kept_groups(counts, components[few[components]], max_rows):
        if len(group) <= _GATHERED_MIN_COMPONENTS:
            for k in group.tolist():
                rows = np.flatnonzero(kept[k])
                root = np.sqrt(weights[k])
                yield k, _weighted_gram(Z, root, weighted, rows, offsets[k])
            continue
        W, root = _gathered_rows(Z, weights, kept, counts, group)
        stops = np.cumsum(counts[group]).tolist()
        segments = list(zip(group.tolist(), [0] + stops[:-1], stops))
        for k, start, stop in segments:
            if offsets[k] is not None:
                W[start:stop] += offsets[k]
        W *= root[:, np.newaxis]
        for k, start, stop in segments:
            yield k, _gram(W[start:stop])


def _kept_mask(resp):
    """:func:`_kept_rows` of every component at once.

    Parameters
    ----------
    resp : ndarray of shape (n_samples, n_components)
        Responsibilities times the sample weights.

    Returns
    -------
    weights : ndarray of shape (n_components, n_samples), C-ordered
        ``resp.T``: each component's weights contiguous (a row-major
        ``resp``'s maxima along its short rows took 0.26 ms at 12,000 x 2,
        its transposed copy's 6 us).

    kept : ndarray of shape (n_components, n_samples), bool
        The rows whose weight adds to each component's moments.

    counts : ndarray of shape (n_components,), int
        Their numbers.

    few : ndarray of shape (n_components,), bool
        The components whose moments are taken over their kept rows only
        (at most ``_KEPT_ROWS_FRACTION`` of the chunk's); the others are
        taken over every row.
    """
    n_samples = resp.shape[0]
    weights = np.ascontiguousarray(resp.T)
    if weights.dtype == np.float32 and n_samples:
        threshold = np.float32(2.0**-64) * weights.max(axis=1)
        kept = weights > threshold[:, np.newaxis]
    else:
        kept = weights != 0
    counts = np.count_nonzero(kept, axis=1)
    return weights, kept, counts, counts <= _KEPT_ROWS_FRACTION * n_samples


def _kept_groups(counts, selected, max_rows):
    """The ``selected`` components (ndarray of int, in order) in consecutive
    groups of at most ``max_rows`` kept rows together (or one component, if
    more).

    Yields
    ------
    group : ndarray of int
    """
    if counts[selected].sum() <= max_rows:
        if len(selected):
            yield selected
        return
    group, total = [], 0
    for k in selected.tolist():
        if group and total + counts[k] > max_rows:
            yield np.array(group)
            group, total = [], 0
        group.append(k)
        total += counts[k]
    yield np.array(group)


def _gathered_rows(Z, weights, kept, counts, group):
    """Several components' kept rows of ``Z``, and their weights' square roots.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)

    weights, kept, counts
        From :func:`_kept_mask`.

    group : ndarray of int
        The components, in order.

    Returns
    -------
    rows : ndarray of shape (n_kept, n_features)
        The components' kept rows one after the other, each component's in
        the chunk's order: the rows :func:`_weighted_gram` gathers for each.

    root : ndarray of shape (n_kept,)
        The square roots of their weights.
    """
    n_samples = kept.shape[1]
    counts = counts[group]
    every = len(group) == len(kept)
    # (One flat search: NumPy's two-dimensional nonzero took 5-10x as long.)
    flat = np.flatnonzero(kept if every else kept[group])
    rows = flat - np.repeat(np.arange(len(group)) * n_samples, counts)
    if not every:
        flat = rows + np.repeat(group * n_samples, counts)
    return Z[rows], np.sqrt(weights.take(flat))


def _triangle(factors):
    """The triangle of the stacked square ``factors`` outside which they are zero.

    Fitted precision factors are upper triangular (as scikit-learn's);
    those derived from given precisions, lower triangular.

    Parameters
    ----------
    factors : ndarray of shape (..., n_features, n_features)

    Returns
    -------
    triangle : {'upper', 'lower'} or None
    """
    if not np.tril(factors, -1).any():
        return "upper"
    if not np.triu(factors, 1).any():
        return "lower"
    return None


#: Column blocks of a triangular factor in :func:`_whitened_norms`.
_TRIANGLE_BLOCK = 32


def _whitened_norms(diff, chol, triangle, out, leading=0):
    """Squared row norms of ``diff @ chol``, skipping the zero blocks of ``chol``.

    With ``chol`` triangular, column block ``j`` of the product needs only
    the rows of ``chol`` up to (upper) or from (lower) that block: in blocks
    of 32 columns, 56% of the arithmetic at D = 128 (0.63 against 0.80 ms
    per component at 1,190 x 128, 0.40 against 0.45 at 2,048 x 64).

    Parameters
    ----------
    diff : ndarray of shape (n_samples, n_rows)

    chol : ndarray of shape (n_rows, n_features)
        Triangular in its rows ``leading`` to ``leading + n_features``; the
        others (a mean's term) are in every block's product.

    triangle : {'upper', 'lower'} or None

    out : ndarray of shape (n_samples, n_features)
        Workspace for the product.

    leading : int, default=0
        Rows of ``chol`` before its triangle.

    Returns
    -------
    norms : ndarray of shape (n_samples,)
    """
    n_samples, n_features = out.shape
    if triangle is None or n_features < 2 * _TRIANGLE_BLOCK:
        np.dot(diff, chol, out=out)
        return np.einsum("ij,ij->i", out, out)
    norms = np.zeros(n_samples, dtype=diff.dtype)
    for rows, columns in _column_blocks(n_features, triangle, leading):
        width = columns.stop - columns.start
        # np.matmul into a contiguous block: np.dot would copy the strided
        # operand; the result here is large, so matmul releases the GIL.
        block = out.reshape(-1)[: n_samples * width]
        block = np.matmul(
            diff[:, rows], chol[rows, columns], out=block.reshape(n_samples, width)
        )
        norms += np.einsum("ij,ij->i", block, block)
    return norms


#: Columns of one product of :func:`_stacked_whitened_norms`: a column block
#: of as many components' factors side by side as fit in this many columns.
_STACKED_COLUMNS = 512


def _column_blocks(n_features, triangle, leading):
    """The column blocks of a factor's product, and the rows each needs.

    As :func:`_whitened_norms` splits a triangular factor: blocks of
    ``_TRIANGLE_BLOCK`` columns (twice that from 192 features), each with
    the rows up to (upper) or from (lower) its end, plus the mean's row;
    one block of every row and column for a full factor or fewer than
    ``2 * _TRIANGLE_BLOCK`` features.

    Returns
    -------
    blocks : list of (slice, slice)
        The rows and the columns of each block.
    """
    if triangle is None or n_features < 2 * _TRIANGLE_BLOCK:
        return [(slice(None), slice(0, n_features))]
    width = _TRIANGLE_BLOCK if n_features < 6 * _TRIANGLE_BLOCK else 2 * _TRIANGLE_BLOCK
    blocks = []
    for start in range(0, n_features, width):
        stop = min(start + width, n_features)
        if triangle == "upper":
            rows = slice(None, leading + stop)
        else:
            rows = slice(leading + start, None)
        blocks.append((rows, slice(start, stop)))
    return blocks


def _stacked_factors(factors, components, triangle):
    """Several components' factors side by side, block by block.

    The per-component form multiplies a chunk by each component's factor,
    a column block of a triangular factor at a time (see
    :func:`_whitened_norms`): products of a few dozen columns, which BLAS
    runs well below its rate. Here each column block of the factors of
    ``components`` is laid side by side, ``_STACKED_COLUMNS`` columns at a
    time, so that one product covers that block of several components
    (at 1,190 x 128 with 8 upper triangular factors, one thread: 4.7 -> 3.9
    ms). Each column of the product is the same sum of the same products as
    in its component's own product: the fits measured gave the same
    results to the last bit, though BLAS may add a sum in another order
    for another shape of product (a few units in the last place).

    Parameters
    ----------
    factors : ndarray of shape (n_components, n_features + 1, n_features)
        From :func:`_per_component_factors`, in the chunks' dtype.

    components : ndarray of int
        The components to stack (those not computed directly).

    triangle : {'upper', 'lower'} or None

    Returns
    -------
    stacked : dict
        ``"components"``, the stacked components, and ``"blocks"``: per
        column block, its rows of the augmented chunk and its groups, each
        a slice of ``components`` and the group's factors' columns of the
        block side by side, of shape (n_rows, n_group * width), C-ordered.
    """
    components = np.asarray(components)
    n_features = factors.shape[2]
    stacked = []
    for rows, columns in _column_blocks(n_features, triangle, _bias_first(triangle)):
        width = columns.stop - columns.start
        size = max(1, _STACKED_COLUMNS // width)
        groups = []
        for start in range(0, len(components), size):
            members = slice(start, min(start + size, len(components)))
            block = factors[components[members]][:, rows, columns]
            block = np.ascontiguousarray(block.transpose(1, 0, 2))
            groups.append((members, block.reshape(block.shape[0], -1)))
        stacked.append((rows, groups))
    return {"components": components, "blocks": stacked}


#: A fit's E-step whose expansion around zero was refused, its largest
#: ``cancelled`` beyond ``_ZERO_SKIP_MARGIN`` times the limit, expands its
#: next ``_ZERO_SKIPS`` E-steps around the centre without computing the
#: coefficients around zero again (see
#: :meth:`GaussianMixtureEM._fused_parameters`), unless they are judged
#: again and accepted (a float32 model's chunks that fall back to float64).
#: On small data a call of the coefficients is a sixteenth of an iteration
#: (18 of 290 us at 300 x 16 with 40 diagonal components), and such fits
#: made two every E-step, around zero and around the centre. Alternated
#: against computing them every E-step, the same bits: 300 x 16 with 40
#: diagonal components 0.91-0.93 of the time an iteration (float32
#: 0.89-0.92), default fits 0.90-0.96 (spherical float32 0.91-0.96; 'diag'
#: 300 x 64 with 12, float32, 0.94-0.96); 0.98-1.01 where the expansion
#: around zero is accepted (standardised data), or on 20,000 and 100,000
#: rows. Where it is accepted it is tried at every E-step, as before.
_ZERO_SKIP_MARGIN = 2.0
_ZERO_SKIPS = 4


#: The fewest rows of a chunk whose per-component products are stacked: on
#: shorter ones the stacked product was no faster (569 x 30 with 3
#: components: 104 against 97 us on one thread; default fits on breast
#: cancer, 569 x 30, 1.07-1.09x their time), and the stacked factors' copy
#: (216 us at 200 features with 3 components) is not repaid.
_STACKED_MIN_ROWS = 1024


class _LazyStack:
    """:func:`_stacked_factors` of an E-step's factors, built on first use.

    Chunks shorter than ``_STACKED_MIN_ROWS`` multiply one factor at a
    time, and a model whose every chunk is short never builds them.
    """

    def __init__(self, factors, components, triangle):
        self._arguments = (factors, components, triangle)
        self._stacked = None

    def get(self):
        """The stacked factors (a dict, see :func:`_stacked_factors`)."""
        if self._stacked is None:
            self._stacked = _stacked_factors(*self._arguments)
        return self._stacked


def _last_axis_squares(a, out=None):
    """Sums of squares along the last axis of ``a``.

    Parameters
    ----------
    a : ndarray of shape (..., n)

    out : ndarray of shape (...), default=None

    Returns
    -------
    squares : ndarray of shape (...)
        ``out`` when given.
    """
    if _VECDOT is None or a.shape[-1] < _VECDOT_MIN_LENGTH[a.dtype]:
        return np.einsum("...j,...j->...", a, a, out=out)
    return _VECDOT(a, a, out=out)


#: ``np.vecdot`` (NumPy 2), one dot of each row's block of a component's
#: columns in :func:`_stacked_whitened_norms`: 0.5-0.9 of einsum's time on
#: one thread from ``_VECDOT_MIN_LENGTH`` columns a block (float64 1,024 x
#: 4 x 64: 29 against 57 us; 2,048 x 8 x 16: 80 against 91; float32 2,048 x
#: 8 x 32: 77 against 91); full fits at D = 32-128 0.95-0.98 of their time,
#: alternated. (Not for the 2-D norms elsewhere: spherical 100,000 x 128 and
#: tied x 32 fits took 1.03-1.05x.) Older NumPy takes einsum.
_VECDOT = getattr(np, "vecdot", None)

#: ... but below this many columns its dots cost more than einsum's loop
#: (8 columns: 1.3x; float32 at 16: 1.85x, a float32 fit at 100,000 x 16
#: with 2 components 1.07x).
_VECDOT_MIN_LENGTH = {np.dtype(np.float64): 16, np.dtype(np.float32): 32}


def _stacked_whitened_norms(features, stacked):
    """:func:`_whitened_norms` of several components, their blocks at once.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features + 1)
        The chunk's :func:`_augmented_centred` rows.

    stacked : dict
        From :func:`_stacked_factors`.

    Returns
    -------
    components : ndarray of int
        The stacked components.

    norms : ndarray of shape (n_samples, n_stacked)
        Their squared whitened norms, in the order of ``components``.

    Notes
    -----
    A chunk whose widest product holds at least twice
    ``_STACKED_PRODUCT_BYTES`` is multiplied in as many parts of its rows,
    as even as can be (:func:`~._suffstats.split_range`), as hold that many
    bytes each, so that each part's
    product is read by its norms while it is still in cache. Each row's
    products and norms are the same sums of the same products.
    """
    n_samples = features.shape[0]
    components = stacked["components"]
    norms = np.empty((n_samples, len(components)), dtype=features.dtype)
    width = max(
        block.shape[1] for _, blocks in stacked["blocks"] for _, block in blocks
    )
    n_parts = n_samples * width * features.itemsize // _STACKED_PRODUCT_BYTES
    for part in split_range(n_samples, max(1, min(n_parts, n_samples))):
        n_part = part.stop - part.start
        for index, (rows, groups) in enumerate(stacked["blocks"]):
            rows = features[part, rows]
            for members, block in groups:
                n_group = members.stop - members.start
                product = workspace(
                    "stacked_product", (n_part, block.shape[1]), block.dtype
                )
                np.matmul(rows, block, out=product)
                product = product.reshape(n_part, n_group, block.shape[1] // n_group)
                if index == 0:
                    # (The first block's norms written, not added to zeros.)
                    _last_axis_squares(product, out=norms[part, members])
                else:
                    norms[part, members] += _last_axis_squares(product)
    return components, norms


#: The bytes of a part of the rows of :func:`_stacked_whitened_norms`'s
#: products. A chunk's stacked product has up to ``_STACKED_COLUMNS``
#: columns: at D = 64 with 16 components, 4,167 rows of 512 float64 columns,
#: 16 MiB written by BLAS and read back by the norms from memory. In parts
#: of 2 MiB, alternated in one process against whole chunks (3-iteration
#: fits at 100,000 rows, two threads, the same results to the last bit):
#: float64 full D = 32 with 8 components 0.76-0.79 of the time, with 4
#: 0.90; D = 64 with 4, 8 and 16 0.88, 0.81-0.85 and 0.83-0.85; float32
#: D = 32 with 8 0.82, D = 64 with 16 and 64 0.92 and 0.94, D = 128 with 8
#: and 16 0.97-0.98; float64 D = 128 with 64 0.99-1.02; 0.98-1.04 where
#: no product reaches 4 MiB, the same computation (D = 16 and 32 with 2
#: components, 64 with 2, 128 with 2 and 4). predict_proba at 100,000 rows:
#: D = 32 with 8 components 0.83, D = 64 with 16 0.95, 20,000 x 64 with 64
#: 0.84, 1.00 elsewhere. Parts of 1 MiB took 1.01-1.08x the time of 2 MiB
#: ones (row blocks of 128-512 rows had been tried before, no faster than
#: whole chunks); parts of 4 MiB 1.00-1.04x.
_STACKED_PRODUCT_BYTES = 2**21


#: float32 per-component components with ``kappa_k`` above this many times
#: the features accumulate their scatter around their own shift (see
#: :meth:`GaussianMixtureEM._per_component_parameters`).
_FLOAT32_SCATTER_KAPPA = 1.0


def _prefer_per_component(
    covariance_type, n_features, n_components, dtype=np.float64, fitting=True
):
    """Whether the per-component form is cheaper than the expanded features.

    The expanded form builds ``D (D + 1) / 2`` quadratic features per row and
    multiplies them by ``K`` columns of coefficients, twice: its cost is
    about that of building the features plus ``N D^2 K``. The per-component
    form runs ``N D^2 K`` operations too (a triangular product per component
    for the log-densities, a symmetric rank-k update for the moments), with
    no features to build, but in ``2 K`` products of ``D`` columns and with
    ``4 K`` element-wise passes over the chunk. So it wins with few
    components, and up to more of them the more features there are.
    Measured per iteration on 100,000 rows, after the triangular and
    symmetric products (expanded / per-component, ms): D = 16: 18 / 17
    (K = 2), 19 / 29 (K = 4); D = 24: 32 / 26 (K = 2), 34 / 40 (K = 4);
    D = 32: 62 / 50 (K = 4), 67 / 98 (K = 8); D = 40: 93 / 63 (K = 4),
    104 / 115 (K = 8); D = 48: 151 / 146 (K = 8), 177 / 277 (K = 16);
    D = 64: 339 / 310 (K = 12), 360 / 413 (K = 16); D = 96: 845 / 628
    (K = 16), 1397 / 1403 (K = 32), 2827 / 3332 (K = 64); D = 128:
    3465 / 2308 (K = 32), 7170 / 5355 (K = 64). Hence the per-component
    form for ``K <= max(D / 8, D^3 / 20000)``, from 16 features on. On the
    AMD EPYC of the later sweeps (no AVX-512), alternated in one process
    (ms per iteration; 100,000 rows, 50,000 marked *): D = 20: 21.1 /
    22.5 (K = 4*); D = 24: 38.7 / 35.4 (K = 4), 29.5 / 26.0 (K = 6*);
    D = 32: 82.7 / 83.5 (K = 8), 113.9 / 156.1 (K = 16); D = 40: 79.1 /
    66.9 (K = 10*); D = 48: 115.8 / 105.1 (K = 12*), 238.5 / 272.8 (K =
    16); D = 64: 490.7 / 395.6 (K = 16), 278.2 / 259.7 (K = 20*), 309.4 /
    307.2 (K = 24*), 349.5 / 409.2 (K = 32*); D = 80: 576.4 / 582.6 (K =
    32*), 646.0 / 706.1 (K = 40*); D = 96: 1661 / 1537 (K = 64*), the same
    on overlapping clusters (D = 64, K = 16: 268 / 220*). The
    per-component form also takes ``K <= max(D / 4, D^3 / 16000)`` from
    24 features on.

    Since its products take several components' column blocks at once
    (:func:`_stacked_factors`), it wins up to more components still, from
    32 features on ``K <= max(D^2 / 85, D^3 / 4000)``. Measured on this
    machine's Xeon, alternated in one process (expanded / per-component,
    ms per iteration at 100,000 rows, on the sweep's separated blobs, then
    on one overlapping cloud): D = 32: 82.5 / 73.7 and 103.4 / 101.0
    (K = 12), 82.7 / 91.5 and 143.5 / 139.5 (K = 16); D = 40: 135 / 123
    (K = 16), 152.8 / 155.1 and 253.4 / 238.8 (K = 24); D = 48: 224 / 205
    (K = 24), 261.9 / 261.7 and 396.0 / 371.8 (K = 32), 336.7 / 390.8 and
    595.5 / 582.4 (K = 48); D = 56: 413.1 / 410.5 and 611.6 / 554.0
    (K = 40), 466.4 / 484.2 and 728.2 / 677.6 (K = 48); D = 64: 685.5 /
    542.3 and 820.3 / 722.1 (K = 48), 896 / 711 (K = 64), 2071 / 1822 and
    2474 / 2301 (K = 128); D = 80: 1624 / 1021 (K = 64); D = 96: 2774 /
    1321 and 2381 / 1848 (K = 64). Below 32 features the rules above
    stand (D = 24: 40.9 / 36.9 and 38.8 / 42.4 at K = 6; D = 28: 50.6 /
    49.5 and 66.9 / 65.2 at K = 8).

    From 64 features the triangular factors' zero blocks are skipped, and
    the form wins up to more components still: ``K <= D^2 / 40``. Measured
    on an AMD EPYC with AVX-512, alternated in one process (per-component
    time over the expanded form's, 100,000 rows, separated blobs then one
    overlapping cloud, where every component has every row): D = 64: 0.46
    and 0.91 (K = 96), 0.47 and 0.85 (K = 128), 0.49 and 0.76 (K = 160);
    D = 72: 0.58 and 1.00 (K = 128); D = 80: 0.41 and 0.61 (K = 160);
    D = 96: 0.54 and 0.45 (K = 256). Below 64 features the cloud keeps
    the rule above (D = 32, K = 16: 0.96 and 1.37; D = 40, K = 24: 0.81
    and 1.40; D = 48, K = 36: 0.84 and 1.36; D = 56, K = 48: 0.75 and
    1.31), and so does the Xeon's D = 48, K = 48 (336.7 / 390.8 on the
    blobs); its D = 64, K = 128 was per-component's on both (above).
    Default fits (k-means start) of 5,000 x 64 with 80 components and
    20,000 x 64 with 100 took 0.62-0.75 of their time, blobs and cloud.
    A fit's only: predictions, which have no moments, keep the expanded
    form there (see ``fitting``; an earlier comparison of the two forms'
    predictions had reused one form's cached coefficients for the other).
    'full' only: 'tied' whitens once for every component, and 'diag' and
    'spherical' have no quadratic cross terms.

    float32 alike: from 32 features the expansion cancels too many of
    float32's digits for most components, and the expanded form is computed
    in float64 (see :meth:`GaussianMixtureEM._fused_parameters`), while the
    per-component form stays in float32. Measured before the stacked
    products (float64 expanded / float32 per-component, ms per iteration,
    100,000 rows): D = 32: 60 / 47 (K = 8), 73 / 88 (K = 16); D = 48: 165 /
    125 (K = 16); D = 64: 313 / 180 (K = 16), 191 / 133 (K = 24, 50,000
    rows), 390 / 434 (K = 64, 50,000 rows); whence float32's ``K <= D^2 /
    85`` from 32 features, which float64 now shares. With stacked products
    float32's per-component form wins up to more components still, against
    either fate of its expansion: on the sweep's separated blobs, where it
    is computed in float64, and on one overlapping cloud, where it was as
    slow. Alternated in one process (float32 per-component time over the
    expanded form's, 100,000 rows, blobs then cloud): D = 32: 0.63 (K =
    16), 0.78 and 0.58 (K = 24), 0.85 (K = 32), 0.98 and 0.58 (K = 48),
    1.08 (K = 64); D = 40: 0.80 (K = 48), 0.89 (K = 64), 1.03 (K = 96);
    D = 48: 0.54 (K = 32), 0.73 and 0.55 (K = 64), 0.93 (K = 128); D = 64:
    0.66 (K = 128). Hence float32's ``K <= D^3 / 700`` from 32 features.
    (Below 32 features it lost on the cloud: D = 24, 1.16 and 1.43 at
    K = 12 and 16, though 0.73 and 0.83 on the blobs.) Since its products
    are taken in cache-sized parts of the rows it also wins beyond that
    rule, up to 128 components at 32-47 features (0.55-0.81 of the time,
    blobs and cloud), but not taken: there the expansion runs in float64,
    and a float32 fit of an overlapping 40-D cloud with 128 components
    ended 5 iterations 2.7e-2 from the float64 fit's covariances in this
    form, 3.4e-5 in that one, 8.1e-3 in scikit-learn's float32 fit from
    the same float64 start.

    Parameters
    ----------
    covariance_type : str
        The engine's covariance type.

    n_features, n_components : int

    dtype : numpy dtype, default=np.float64
        The dtype of the data.

    fitting : bool, default=True
        False for a prediction, which keeps the expanded form beyond the
        rules before the one from 64 features: it has the log-densities'
        products only, without the moments' (alternated against the
        expanded form, ``predict_proba`` of 10,000-100,000 x 64 with 80 and
        96 components took 1.19-1.39x its time in this form).

    Returns
    -------
    per_component : bool
    """
    if covariance_type != "full" or n_features < 16:
        return False
    if 8 * n_components <= n_features or 20_000 * n_components <= n_features**3:
        return True
    if n_features >= 24 and (
        4 * n_components <= n_features or 16_000 * n_components <= n_features**3
    ):
        return True
    if n_features < 32:
        return False
    if 85 * n_components <= n_features**2 or 4_000 * n_components <= n_features**3:
        return True
    if fitting and n_features >= 64 and 40 * n_components <= n_features**2:
        return True
    return np.dtype(dtype) == np.float32 and 700 * n_components <= n_features**3


#: Cache budget of the per-component form's chunks (see
#: :meth:`GaussianMixtureEM._chunk_sizing`): 4 MiB until its products were
#: stacked (:func:`_stacked_factors`), whose longer chunks then cost less
#: per row. 3-iteration fits at 100,000 rows, alternated against 4 MiB:
#: D = 16 and 32, K = 2, 0.85 and 0.83 of their time; D = 64, K = 4, 0.90,
#: K = 16 0.95, K = 64 0.95; D = 128, K = 8, 0.93, K = 16 0.89; default
#: fits of 2,000-20,000 rows 0.93-1.01. 16 MiB made D = 64, K = 16, 1.22x
#: and D = 32, K = 8, 1.14x.
_PER_COMPONENT_CACHE_BYTES = 2**23

#: From this many features a fit's per-component chunks are sized by their
#: statistics too (see :meth:`GaussianMixtureEM._chunk_sizing`): each
#: chunk's K scatters, K D^2 values, are moved, added up and reduced, and
#: on wide data they outweigh the rows (500 x 2,000 with three components:
#: 125-row chunks, four a fit's E-step).
_WIDE_PER_COMPONENT_FEATURES = 512

#: The largest cache budget of such chunks.
_WIDE_PER_COMPONENT_CACHE_BYTES = 2**26

#: ... and of float32 fits' chunks when they are split over threads:
#: twice that (4-byte values, as the expanded form's
#: ``_FLOAT32_THREADED_CACHE_BYTES``). A float32 chunk's calls take half
#: a float64 one's time, and two threads' hand-offs of the GIL between them
#: were much of it (100,000 x 64 with 2 components: 1.24 ms a 5,269-row
#: chunk on one thread, 1.75 ms a 5,000-row one on each of two).
#: Alternated against 8 MiB (3-iteration fits, two threads): 100,000 rows
#: at D = 16, 32, 64 and 128 with 2 components 0.95, 0.95, 0.81-0.83 and
#: 0.94; 32 x 4 0.91, 64 x 8 0.99, 32 x 16 0.95-1.03, 64 x 16 0.96,
#: 128 x 16 0.95, 64 x 64 0.96; 20,000 x 64 with 8 0.88, 30,000 x 128
#: with 4 0.91. 32 MiB took 64 x 64 to 1.05-1.08.
_PER_COMPONENT_FLOAT32_THREADED_BYTES = 2**24

#: Chunks of complete data in the expanded form whose rows' features
#: (quadratic and linear) take at most ``_NARROW_ROW_BYTES`` (float64: 'full'
#: up to 2 dimensions, 'tied' and 'diag' up to 4, 'spherical' up to 7;
#: float32 twice the features: 'full' up to 4 dimensions, 'tied' and 'diag'
#: up to 8, 'spherical' up to 15) take up to ``_NARROW_CHUNK_ROWS`` rows
#: rather than the engine's 32,768 when they are split over threads (see
#: ``_suffstats.chunk_rows``), within the same cache budget. Such rows cost
#: so little that the threads' hand-offs of the GIL between a chunk's NumPy
#: calls were much of its time: float32 100,000 x 2 with two diagonal
#: components, 0.35 ms a 25,000-row chunk on each of two threads against
#: 0.19 ms a 32,768-row one on one thread. Two threads, alternated against
#: 32,768-row chunks (3-iteration fits; ``predict_proba``): full 100,000 x 2
#: 0.76 of the time (0.78), in float32 with 4 components 0.76 (0.77),
#: float32 1,000,000 x 2 0.65 (0.81); diag float32 100,000 x 2 0.77
#: (0.82), 1,000,000 x 4 0.69 (0.87); tied 100,000 x 4 0.80-0.91 (0.77);
#: spherical 1,000,000 x 4 0.88 (0.89), float32 200,000 x 6 0.82 (0.82);
#: float32 fits with 9-16 features a row (full 100,000 x 3 and 200,000 x 4,
#: tied 200,000 x 8, diag 100,000 x 8, K = 2, and 1,000,000 x 6, spherical
#: 200,000 x 12) 0.86-0.97. One thread keeps 32,768 rows (longer chunks
#: took 1.07-1.11x as long); with more bytes a row, longer chunks were
#: slower to fit (float64 full at 3 and 4 dimensions 1.02-1.23, tied
#: 1,000,000 x 8 1.08-1.14).
_NARROW_ROW_BYTES = 64
_NARROW_CHUNK_ROWS = 65536

#: The most features of full covariances whose fits' threads share the cache
#: budget of their chunks' features (see ``_chunk_sizing``).
_FULL_SHARED_MAX_FEATURES = 48

#: float32 chunks of complete data split over threads count their values
#: at float32's 4 bytes in the cache budget (twice the engine's 16 MiB of
#: 8-byte values; see ``_suffstats.chunk_rows``'s ``threaded_cache_bytes``),
#: where the budget binds before the caps for the features the threads
#: share (``shared_row_values``). The budget had cut diag 100,000 x 8 with
#: 4 components to four chunks of 25,000 rows on two threads, not one of
#: 50,000 each, and short chunks' hand-offs of the GIL cost float32 much of
#: its threads' gain. Alternated against the budget of 8-byte values (13-
#: less 3-iteration fits at 100,000 rows, two threads; twice the rows a
#: chunk): narrow rows diag 8 x 4 0.91-0.93 of the time, 4 x 8 0.84, 6 x 8
#: 0.95, 8 x 16 0.92, 2 x 16 0.82; full 2 x 8 0.88, 3 x 16 0.77-0.81,
#: 4 x 4 0.84; spherical 8 x 8 0.94; tied 8 x 4 1.01-1.03 (its 3-iteration
#: fits 0.94-0.95); wider rows spherical 16 x 16 0.78, 32 x 8 0.78, 128 x
#: 16 1.02; diag 16 x 16 0.90, 16 x 64 0.87; tied 16 x 8 0.98. float64's
#: were 0.97-1.08 (diag 4 x 8, 2 x 16; full 2 x 8): left as they were. One
#: thread keeps the budget of 8-byte values, which measured float32 chunks
#: of float64's rows 12% faster than twice the rows.
_FLOAT32_THREADED_CACHE_BYTES = 2**25

#: ... and of its predictions' chunks, which hold a difference and its
#: product per component, not the scatter's weighted difference as well
#: (twice the fits' budget until that became 8 MiB too). Per call, against
#: 4 MiB, alternated in blocks of calls with this code's
#: block right after scikit-learn's (whose spinning BLAS threads slow it:
#: these ratios favour 4 MiB, if anything): 'full' float32 2,000 x 96,
#: K = 3, predict 0.68 of its time; float32 2,000 x 200, K = 12,
#: predict_proba 0.83; float32 10,000 x 96, K = 12, predict 0.83; float64
#: 10,000 x 32, K = 2, and 2,000 x 96, K = 12, 1.04-1.11; 2,000 x 200,
#: K = 3, 0.98.
_PER_COMPONENT_PREDICTION_CACHE_BYTES = 2**23

#: ... and twice that with one component (``score_samples``; its ``predict``
#: and ``predict_proba`` compute nothing): its product per chunk is the
#: whole model's, and a few thousand wide rows in one chunk run it on
#: BLAS's threads rather than as two threads' smaller triangular blocks.
#: Against 4 MiB, measured as above: float32 2,000 x 200 0.66 of its time,
#: float32 10,000 x 32 0.64, float32 10,000 x 96 0.88, float64 50,000 x 96
#: 0.87, float64 10,000 x 96-200 0.88-0.94, float64 500 x 200 1.01.
_ONE_COMPONENT_PREDICTION_CACHE_BYTES = 2**24


def _expanded_log_prob(
    features,
    *,
    means,
    precisions_chol,
    covariance_type,
    log_w,
    centre,
    coef,
    intercept,
    direct,
    X,
    triangle=None,
    normalised=False,
    product=None,
):
    """``log pi_k + log N(x | mu_k, Sigma_k)`` from the chunk's features.

    See :func:`_gaussian_e_step_chunk` for the parameters (``X`` is the
    chunk, in the dtype of ``coef``: the direct components are computed
    from ``x - mu_k``, which is exact for x near mu_k, where the centred
    ``(x - centre) - (mu_k - centre)`` keeps the rounding of ``x - centre``);
    returns an ndarray of shape (n_samples, n_components).

    ``normalised``: the result is only normalised into responsibilities
    (the E-step's :func:`~._suffstats.logsumexp_rows`, which zeroes every
    float64 mass below the smallest normal number relative to its row's
    largest, and raises float32 ones to ``_FLOAT32_LOG_FLOOR``). The
    chunk's direct diagonal and spherical components are then computed, in
    float64, only where their mass can survive that or exceed the floor
    (see :func:`_surviving_direct_pairs`), and are ``-inf`` elsewhere.

    ``product``: the features' products with ``coef``, of shape
    (n_components, n_samples) and C-ordered, if already computed (see
    :func:`_blocked_diag_features`; ``features`` may then be None unless
    the result is ``normalised``). Where every component is ``direct``
    (and the diagonal and spherical ones are not ``normalised``, whose
    screen reads the expanded values) neither is read.
    """
    # Computed as (coef^T features^T)^T: the result is column-major, so the
    # row-wise reductions of the log-sum-exp run over contiguous columns.
    blocks = isinstance(features, tuple)
    n_samples = len(X)
    out = workspace("log_prob", (len(intercept), n_samples), coef.dtype)
    if len(direct) == len(intercept) and not (
        normalised and covariance_type in ("diag", "spherical")
    ):
        # Every component is direct (filled below): no product, and no
        # features needed (None, or 'tied''s pair without the whitened rows).
        log_prob = out.T
    elif product is not None:
        log_prob = product.T
        log_prob += intercept
    elif covariance_type == "tied":
        Y = features[0]
        log_prob = _component_product(coef.T, Y.T, out=out).T
        log_prob += intercept
        log_prob -= 0.5 * np.einsum("ij,ij->i", Y, Y)[:, np.newaxis]
    elif blocks:
        quadratic, Z = features
        n_quad = quadratic.shape[1]
        if n_quad == 1:
            # ('spherical') An outer product: broadcast, not a rank-1 BLAS
            # product (20% slower at 25,000 x 16).
            _component_product(coef[1:].T, Z.T, out=out)
            out += coef[0][:, np.newaxis] * quadratic[:, 0]
        else:
            _summed_component_products(
                (coef[:n_quad].T, quadratic.T), (coef[n_quad:].T, Z.T), out
            )
        log_prob = out.T
        log_prob += intercept
    else:
        log_prob = _component_product(coef.T, features.T, out=out).T
        log_prob += intercept
    if len(direct):
        n_features = means.shape[1]
        log_det = _compute_log_det_cholesky(
            precisions_chol, covariance_type, n_features
        )
        if normalised and covariance_type in ("diag", "spherical"):
            pairs = _surviving_direct_pairs(
                log_prob, features, means, precisions_chol, centre, direct
            )
            if pairs is not None:
                rows, components = pairs
                maha = _paired_direct_mahalanobis(
                    X, means, precisions_chol, rows, components
                )
                log_prob[:, direct] = -np.inf
                log_prob[rows, components] = (
                    -0.5 * (n_features * math.log(2 * math.pi) + maha)
                    + log_det[components]
                    + log_w[components]
                )
                return log_prob
        grouped = _direct_group_size(X.shape) > 1 and (
            covariance_type in ("diag", "spherical")
            or (covariance_type == "tied" and X.dtype == np.float64)
        )
        if grouped:
            maha = _grouped_direct_mahalanobis(
                X, means, precisions_chol, direct, covariance_type, triangle
            )
            if covariance_type == "tied":
                log_det = np.full(len(means), log_det)
            log_prob[:, direct] = (
                -0.5 * (n_features * math.log(2 * math.pi) + maha)
                + log_det[direct]
                + log_w[direct]
            )
            return log_prob
        for k in direct:
            chol = precisions_chol if covariance_type == "tied" else precisions_chol[k]
            maha = _direct_mahalanobis(X, means[k], chol, covariance_type, triangle)
            log_det_k = log_det if covariance_type == "tied" else log_det[k]
            log_prob[:, k] = (
                -0.5 * (n_features * math.log(2 * math.pi) + maha)
                + log_det_k
                + log_w[k]
            )
    return log_prob


#: The fewest multiply-adds of a one-chunk fit's E-step product for which
#: its E-steps run on BLAS's threads (see
#: GaussianMixtureEM._fits_on_blas_threads).
_THREADED_FIT_WORK = 2**22


#: The most values ``x_n - mu_k`` of several components' differences computed
#: at once for a chunk's directly computed diagonal and spherical components
#: (see :func:`_direct_group_size`).
_DIRECT_GROUP_VALUES = 2**16


def _direct_group_size(shape):
    """How many direct components of a chunk of ``shape`` to compute at once.

    Components computed directly (those whose expansion would cancel too
    many digits: tight clusters far from the centre) cost a handful of
    NumPy calls each, whatever the chunk's size. On small data that
    overhead was most of an iteration: 100 rows in 64 or 200 dimensions
    with 40 diagonal components, 20 of them direct, took 2.2-2.3x
    scikit-learn's time per iteration. Their differences are computed a
    group at a time, in one array of at most ``_DIRECT_GROUP_VALUES``:
    the log-densities and moments of diagonal and spherical components, the
    second moments of tied ones. A chunk too large for two at once keeps
    one call per component, on reused buffers.

    Parameters
    ----------
    shape : tuple of int
        The chunk's ``(n_samples, n_features)``.

    Returns
    -------
    size : int
        Components per group; 1 means one at a time.
    """
    return max(1, _DIRECT_GROUP_VALUES // max(1, shape[0] * shape[1]))


def _direct_groups(direct, shape):
    """The groups of :func:`_direct_group_size`, in order.

    Yields
    ------
    where : slice
        The group's positions in ``direct``.

    group : ndarray of int
        The group's components.
    """
    size = _direct_group_size(shape)
    for start in range(0, len(direct), size):
        yield slice(start, start + size), direct[start : start + size]


def _grouped_differences(X, means, group):
    """``x_n - mu_k`` for the components of ``group``, in float64.

    Returns
    -------
    diff : ndarray of shape (len(group), n_samples, n_features)
        A view of this thread's workspace.
    """
    n_samples, n_features = X.shape
    diff = workspace("direct_group", (len(group), n_samples, n_features), np.float64)
    np.subtract(X[np.newaxis], means[group].astype(np.float64)[:, np.newaxis], out=diff)
    return diff


def _grouped_direct_mahalanobis(
    X, means, precisions_chol, direct, covariance_type="diag", triangle=None
):
    """Squared Mahalanobis distances to the ``direct`` means, a group at a time.

    :func:`_direct_mahalanobis` of several components per call (see
    :func:`_direct_group_size`), in float64: for 'tied', one product of the
    group's differences with the shared factor (one product per component
    took 0.50 of an iteration's 3.0 ms at 100 x 64 with 40 components, 17
    of them direct).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    means : ndarray of shape (n_components, n_features)

    precisions_chol : ndarray of shape (n_components, n_features), \
            (n_components,) or (n_features, n_features)
        In the layout of ``covariance_type``.

    direct : ndarray of int
        The components computed.

    covariance_type : {'diag', 'spherical', 'tied'}, default='diag'
        ('diag' and 'spherical' are told apart by the factors' shape.)

    triangle : {'upper', 'lower'}, default=None
        'tied': the triangle the factor is zero outside of, whose zero
        blocks the product skips (see :func:`_whitened_norms`).

    Returns
    -------
    maha : ndarray of shape (n_samples, len(direct))
    """
    maha = np.empty((X.shape[0], len(direct)))
    for where, group in _direct_groups(direct, X.shape):
        diff = _grouped_differences(X, means, group)
        if covariance_type == "tied":
            n_features = X.shape[1]
            whitened = workspace("direct_group_whitened", diff.shape, np.float64)
            norms = _whitened_norms(
                diff.reshape(-1, n_features),
                precisions_chol.astype(np.float64, copy=False),
                triangle,
                whitened.reshape(-1, n_features),
            )
            maha[:, where] = norms.reshape(len(group), -1).T
            continue
        chol = precisions_chol[group].astype(np.float64)
        if chol.ndim == 1:
            diff *= chol[:, np.newaxis, np.newaxis]
        else:
            diff *= chol[:, np.newaxis, :]
        maha[:, where] = np.einsum("knd,knd->nk", diff, diff)
    return maha


def _grouped_direct_moments(X, means, resp, direct):
    """First and (per-feature) second moments around the ``direct`` means.

    :func:`_direct_scatter`'s diagonal, for several components per call (see
    :func:`_direct_group_size`), in float64.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    means : ndarray of shape (n_components, n_features)
        The shifts the moments are taken around.

    resp : ndarray of shape (n_samples, n_components)
        Responsibilities times the sample weights.

    direct : ndarray of int

    Returns
    -------
    second : ndarray of shape (len(direct), n_features)
        ``sum_n r_nk (x_n - mu_k)^2``, feature by feature.

    first : ndarray of shape (len(direct), n_features)
        ``sum_n r_nk (x_n - mu_k)``.
    """
    n_features = X.shape[1]
    second = np.empty((len(direct), n_features))
    first = np.empty((len(direct), n_features))
    for where, group in _direct_groups(direct, X.shape):
        diff = _grouped_differences(X, means, group)
        weights = resp[:, group].T.astype(np.float64)[:, np.newaxis, :]
        first[where] = np.matmul(weights, diff)[:, 0]
        diff *= diff
        second[where] = np.matmul(weights, diff)[:, 0]
    return second, first


#: The direct entries a chunk computes row by row (see
#: :func:`_surviving_direct_pairs`) rather than for every row: at most this
#: fraction of them.
_DIRECT_PAIRS_FRACTION = 0.5

#: The fewest features with which a float32 fit's E-step computes its
#: direct diagonal and spherical components by surviving pairs rather than
#: every chunk in float64 (see GaussianMixtureEM._fused_parameters). On
#: fewer, overlapping components leave many pairs and float32's products
#: save little. Default fits by pairs, against float64 chunks: 4 features,
#: 1.39x the time (1,000 rows, K = 40; spherical 1.09x); 16, 0.98-1.07x;
#: 32, 0.96-1.01x; 64 and 200, 0.72-1.02x (spherical 1,000 x 64, K = 40,
#: 0.72; diag 1,000 x 200, K = 40, 0.77).
_FLOAT32_PAIRED_FEATURES = 32


def _surviving_direct_pairs(log_prob, features, means, precisions_chol, centre, direct):
    """The direct entries of an E-step whose mass can be nonzero.

    The E-step normalises each row of log-probabilities and zeroes every
    mass below ``exp(_FLOAT64_LOG_TINY)`` times the row's largest (see
    :func:`~._suffstats.logsumexp_rows`); a float32 fit's E-step raises the
    masses below ``exp(_FLOAT32_LOG_FLOOR)`` times it to that floor, and
    lets those of its direct components be zero instead (their share of a
    row, 6e-30, is far below float32's rounding). Tight diagonal or spherical
    components far from the features' centre are computed directly (their
    expansion would cancel too many digits), but most rows are far from
    them too: hundreds of nats below their row's largest entry. The expanded
    value of an entry, already computed, is within a known bound of its
    exact value; an entry whose expanded value is below its row's largest
    by more than ``-_FLOAT64_LOG_TINY`` plus twice the row's bound is zeroed
    by the exact computation as well, and only the others need computing
    (on 100 rows in 200 dimensions with 40 diagonal components, 23 of them
    direct, one row in 40 of their entries).

    The bound: the expanded ``-0.5 sum_d p_kd (z_d - m_kd)^2`` (``z`` the
    centred row, ``m_k`` the centred mean, ``p_k`` the precisions) adds up
    ``2 D + 1`` terms whose absolute values sum to at most
    ``2 (max_d p_kd |z|^2 + kappa_k)`` (``kappa_k = sum_d p_kd m_kd^2``), so
    its rounding error is below ``(2 D + 8) eps`` times that (``eps`` the
    chunk's: float32 features and coefficients round as float64 ones do).
    A row's bound is taken as four times that with the largest precision
    and the largest ``kappa`` of the direct components.

    Parameters
    ----------
    log_prob : ndarray of shape (n_samples, n_components)
        The expanded log-probabilities of every component, float64 or
        float32.

    features : pair of ndarray or ndarray
        The chunk's features (:func:`_centred_features`), for ``|z|^2``.

    means : ndarray of shape (n_components, n_features)

    precisions_chol : ndarray of shape (n_components, n_features) or \
            (n_components,)

    centre : ndarray of shape (n_features,)

    direct : ndarray of int
        The directly computed components.

    Returns
    -------
    pairs : tuple of two ndarrays of int, or None
        ``(rows, components)`` of the entries to compute, component by
        component; None when more than ``_DIRECT_PAIRS_FRACTION`` of the
        direct entries survive (they are then all computed, a group of
        components at a time).
    """
    n_features = means.shape[1]
    dtype = log_prob.dtype
    precisions = np.asarray(precisions_chol[direct], dtype=np.float64) ** 2
    offsets = means[direct].astype(np.float64) - centre
    if precisions.ndim == 1:
        kappa = precisions * np.einsum("kd,kd->k", offsets, offsets)
    else:
        kappa = np.einsum("kd,kd->k", precisions, offsets**2)
    scale = 4 * (2 * n_features + 8) * np.finfo(dtype).eps
    cut = (_FLOAT64_LOG_TINY if dtype == np.float64 else _FLOAT32_LOG_FLOOR) - 1.0
    # The other components' entries are within the expansion's budget.
    budget = _expansion_limit(dtype, n_features) * np.finfo(dtype).eps
    if isinstance(features, tuple):
        quadratic = features[0]
    else:
        # (Transposed features: |z|^2, or the n_features squares, first.)
        quadratic = features[:, : n_features if precisions.ndim == 2 else 1]
    if dtype == np.float32 and precisions.ndim == 2:
        return _surviving_pairs_by_entry(
            log_prob, quadratic, precisions, kappa, direct, scale, cut, budget
        )
    squared = quadratic[:, 0] if quadratic.shape[1] == 1 else quadratic.sum(axis=1)
    largest = precisions if precisions.ndim == 1 else precisions.max(axis=1)
    # Each row's largest bound over the direct components, bounded in turn
    # by the largest precision and kappa (one pass over the rows).
    slack = squared.astype(np.float64) * largest.max()
    slack += kappa.max()
    slack *= scale
    slack += budget
    floor = _row_max(log_prob).astype(np.float64)
    floor += cut
    floor -= 2 * slack
    return _pairs_above(log_prob[:, direct] >= floor[:, np.newaxis], floor, direct)


def _pairs_above(survive, floor, direct):
    """``(rows, components)`` of the entries ``survive`` marks, or None.

    Rows without a finite ``floor`` (no finite entry) keep every entry;
    None when more than ``_DIRECT_PAIRS_FRACTION`` of the entries survive.
    ``survive`` (n_samples, len(direct)) is modified.
    """
    survive[~np.isfinite(floor)] = True
    if np.count_nonzero(survive) > _DIRECT_PAIRS_FRACTION * survive.size:
        return None
    where, rows = np.nonzero(survive.T)
    return rows, direct[where]


def _surviving_pairs_by_entry(
    log_prob, squares, precisions, kappa, direct, scale, cut, budget
):
    """:func:`_surviving_direct_pairs` for float32 'diag', with a bound per entry.

    float32's rounding is 2^29 times float64's, and a row's bound from the
    direct components' largest precision times ``|z|^2`` is far above that
    of a component tight in a few features only: it kept 15% of the direct
    entries of a float32 fit at 1,000 x 64 with 40 components (5 direct),
    where each entry's own bound, from ``sum_d p_kd z_d^2``, keeps 3%
    (default fits 0.93-0.94 of their time; in float64, where few entries
    survive either way, the product cost more than it saved: 1.05). The
    exact row's largest is at least every entry's expanded value less that
    entry's bound: the floor is taken from the largest of these.

    Parameters
    ----------
    log_prob : ndarray of shape (n_samples, n_components)

    squares : ndarray of shape (n_samples, n_features)
        The chunk's ``z ** 2`` (the first block of its features).

    precisions : ndarray of shape (len(direct), n_features)
        float64.

    kappa : ndarray of shape (len(direct),)

    direct : ndarray of int

    scale : float
        The bound's factor on ``sum_d p_kd z_d^2 + kappa_k``.

    cut : float
        The log-mass relative to a row's largest below which an entry may
        be dropped (less a nat).

    budget : float
        The other components' entries' largest error.

    Returns
    -------
    pairs : tuple of two ndarrays of int, or None
        As :func:`_surviving_direct_pairs`.
    """
    # (A bound: computed in the features' dtype.)
    slack = np.dot(squares, precisions.T.astype(squares.dtype))
    slack = slack.astype(np.float64, copy=False)
    slack += kappa
    slack *= scale
    # (The row maxima of these differences, one call, cost less than the
    # arg-maxima and lookups of the largest entry's own, which is one of
    # them: NumPy's float32 arg-maximum of 40 columns took 80 us on 1,000
    # rows, against 28 us for float64.)
    expanded = log_prob[:, direct].astype(np.float64)
    lowest = log_prob.astype(np.float64)
    lowest -= budget
    lowest[:, direct] = expanded - slack
    floor = _row_max(lowest)
    floor += cut
    expanded += slack
    return _pairs_above(expanded >= floor[:, np.newaxis], floor, direct)


def _paired_direct_mahalanobis(X, means, precisions_chol, rows, components):
    """Squared Mahalanobis distances of the pairs ``(rows[i], components[i])``.

    Diagonal or spherical components, from the differences ``x - mu_k``
    as :func:`_grouped_direct_mahalanobis`, in float64.

    Returns
    -------
    maha : ndarray of shape (n_pairs,)
    """
    diff = X[rows].astype(np.float64, copy=False)
    diff -= means[components]
    chol = np.asarray(precisions_chol, dtype=np.float64)[components]
    if chol.ndim == 1:
        diff *= chol[:, np.newaxis]
    else:
        diff *= chol
    return np.einsum("pd,pd->p", diff, diff)


def _paired_direct_moments(X, means, resp, direct):
    """:func:`_grouped_direct_moments` over the rows of nonzero responsibility.

    Rows whose responsibility for a component is exactly zero add nothing to
    its moments: on few rows and many tight components most of them (see
    :func:`_surviving_direct_pairs`). Returns None when more than
    ``_DIRECT_PAIRS_FRACTION`` of the entries are nonzero.

    Returns
    -------
    second, first : ndarray of shape (len(direct), n_features), or None
    """
    nonzero = resp[:, direct].T > 0
    if np.count_nonzero(nonzero) > _DIRECT_PAIRS_FRACTION * nonzero.size:
        return None
    where, rows = np.nonzero(nonzero)
    components = direct[where]
    diff = X[rows].astype(np.float64, copy=False)
    diff -= means[components]
    # The pairs' weights as a (direct, pairs) matrix: each component's sums
    # are one product (no empty-group cases).
    weights = np.zeros((len(direct), len(rows)))
    weights[where, np.arange(len(rows))] = resp[rows, components]
    first = weights @ diff
    diff *= diff
    return weights @ diff, first


#: Rows per partial sum of a float32 chunk's products: a float32 product
#: accumulates rounding errors along its inner dimension (the chunk's rows),
#: so a chunk's sums are added up in float64 from blocks of this many rows.
#: On 20,000 x 16 data with 16 full components this took the covariances'
#: error against a float64 fit from 1.9e-6 to 5e-7 (scikit-learn's float32
#: fit: 3e-7), for 6% more time in the product.
_FLOAT32_BLOCK = 1024

#: The float32 row blocks are this many rows instead where the product's
#: other two sides make at least ``_FLOAT32_SHORT_BLOCK_PRODUCT`` values
#: (``m k``; see :func:`_inner_product`): more accurate, and
#: faster where 1,024 rows overflowed the cache or, on OpenBLAS's AVX-512
#: cores, its small-matrix kernels (at most 10^6 multiply-adds a product:
#: 1,024 rows at 128 features and 8 components are past them). 3-iteration
#: float32 fits at 100,000 rows, alternated against 1,024-row blocks: 'diag'
#: 0.91 of their time at 128 features with 8 components and at 64 with 16,
#: 'full' 0.93 at 16 with 4, elsewhere 0.97-1.01 (16 x 16, 32 x 4, 8 x 8,
#: 'full' 16 x 16, 8 x 64); the covariances' largest error against the
#: float64 fit's 1.3-6x smaller (diag 128 x 8: 3.3e-7 against 6.0e-7; 32 x
#: 4: 1.6e-7 against 9.9e-7; 16 x 16: 2.4e-7 against 6.3e-7; 'full' 16 x
#: 16: 1.7e-7 against 3.5e-7), the means' as close or closer. With fewer
#: values the products are so small that their calls cost more ('full' at
#: 2 features with 16 components, 5 x 16 values: 1.25x).
_FLOAT32_SHORT_BLOCK = 256
_FLOAT32_SHORT_BLOCK_PRODUCT = 128


#: float32 products over a chunk's rows with 2 or 3 components on one side
#: (the log-densities' coefficients, the responsibilities) are computed one
#: matrix-vector product per component: OpenBLAS's general float32 product
#: is slow for so few rows (one thread, 5,000 x 96, three components: 267
#: against 104 us; float32 fits at 100,000 x 128, two and three diagonal
#: components, took 1.1x longer without them). float64 keeps the single
#: product: on this machine's OpenBLAS it was as fast or faster (the moments
#: of 12,500 x 16: 25 against 60 us; 3,846 x 128, three components: 243
#: against 406), and float64 fits without the vectors took 0.83-0.99 of
#: their time ('diag' at 100,000 x 16-128 with two or three components,
#: 'full' 0.85-0.96, 'tied' and 'spherical' 0.96-1.02, small default fits
#: 0.95-0.99), where an older measurement had found them 1.1-2.9x faster.
#: With one and with four components or more the single product is kept,
#: and so are float32's row blocks (see :func:`_inner_product`).
_VECTOR_PRODUCTS = 3

#: The fewest columns a float32 chunk needs for its moments' matrix-vector
#: products.
_VECTOR_MOMENTS = 16

#: The fewest features a chunk needs for its log-densities' matrix-vector
#: products, by dtype (float32 only).
_VECTOR_FEATURES = {np.dtype(np.float32): 32}


#: float32 products of the coefficients with a chunk's features, with this
#: many components (inclusive), are computed rows first, ``B^T A^T``:
#: OpenBLAS's float32 product of a few rows with the long transposed chunk
#: ran at half the speed of the transposed orientation's, whose row-major
#: result is then copied into the column-major log-densities (the copy
#: costs a few percent up to 16 components, but most of the gain at 64).
#: One thread, 2,000-12,500 rows, the product's time over the transposed
#: one and its copy: 1.1-1.9x from 32 features at 4-16 components; 0.4-1.0x
#: below 32 features, and at 64 components.
_ROWS_FIRST = (4, 16)

#: ... from this many features (the product's inner dimension).
_ROWS_FIRST_FEATURES = 32

#: More components than ``_ROWS_FIRST``'s, up to this many, are computed
#: rows first too where the product's inner dimension is at least
#: ``_ROWS_FIRST_WIDE_RATIO`` times the components (wide diagonal and
#: spherical data): there the transposed orientation's product still ran
#: at 0.6-0.9 of the other's speed, and its copy is a small part of it.
#: ``_component_product`` alone, float32, 2,000 and 8,000 rows, its time
#: rows first over the other's: 24 components 0.60-0.94 from 64 features,
#: 32 from 128 features 0.56-0.94, 40 and 48 at 200-400 features
#: 0.67-1.00 (0.73-0.86 on one thread); fewer features a component lost,
#: up to 2-6x at 32 features with 64-128 components. Alternated in one
#: process (3-iteration float32 fits of 50,000 rows from the same start,
#: the same covariances to the last bit): diag 128 x 32 0.875, 200 x 40
#: 0.916, spherical 200 x 40 0.978, full 16 x 24 and 16 x 32 (152
#: features) 0.97-1.04; predict_proba at 100,000 rows 0.86, 0.89 and
#: 0.98; default fits of 3,000 x 200 with 40 diagonal components (the
#: small-shape scan's slowest float32 point) 0.90 of their time.
_ROWS_FIRST_WIDE = 48
_ROWS_FIRST_WIDE_RATIO = 4


def _short_side(A, B):
    """Which side of a moments product ``A @ B`` goes a vector at a time.

    Parameters
    ----------
    A : ndarray of shape (m, n_samples)

    B : ndarray of shape (n_samples, k)

    Returns
    -------
    side : {'rows', 'columns'} or None
        'rows' when ``A`` has 2 to ``_VECTOR_PRODUCTS`` rows and ``B`` at
        least ``_VECTOR_MOMENTS`` columns, 'columns' the other way round,
        None otherwise.
    """
    m, k = A.shape[0], B.shape[1]
    if 2 <= m <= _VECTOR_PRODUCTS and k >= _VECTOR_MOMENTS:
        return "rows"
    if 2 <= k <= _VECTOR_PRODUCTS and m >= _VECTOR_MOMENTS:
        return "columns"
    return None


def _rows_first(A, B):
    """Whether :func:`_component_product` computes ``A @ B`` rows first.

    Parameters
    ----------
    A : ndarray of shape (n_components, m)

    B : ndarray of shape (m, n_samples)

    Returns
    -------
    rows_first : bool
        True for float32 with ``_ROWS_FIRST`` components and
        ``_ROWS_FIRST_FEATURES`` features or more, or up to
        ``_ROWS_FIRST_WIDE`` components with ``_ROWS_FIRST_WIDE_RATIO``
        features a component or more, where ``B`` is the transpose of a
        C-ordered chunk.
    """
    n_components, n_features = A.shape
    if A.dtype != np.float32 or not B.flags.f_contiguous:
        return False
    if _ROWS_FIRST[0] <= n_components <= _ROWS_FIRST[1]:
        return n_features >= _ROWS_FIRST_FEATURES
    return (
        _ROWS_FIRST[1] < n_components <= _ROWS_FIRST_WIDE
        and n_features >= _ROWS_FIRST_WIDE_RATIO * n_components
    )


def _summed_component_products(first, second, out):
    """``A_1 @ B_1 + A_2 @ B_2`` into ``out``: the coefficients' products
    with a chunk's two feature blocks (see :func:`_feature_blocks`).

    Where both products are computed rows first (see :func:`_rows_first`),
    their row-major results are added and copied into ``out`` once, rather
    than each copied or added into it: those passes write ``out`` with a
    long stride, the rows-first orientation's cost. One thread, float32
    diagonal blocks of 8,000 and 25,000 rows with 32-128 features and 4-16
    components: 0.71-0.95 of the time of a copy and a strided sum. The same
    float32 addition: the same bits.

    Parameters
    ----------
    first, second : pairs (A_i, B_i) of ndarrays of shapes \
            (n_components, m_i) and (m_i, n_samples)

    out : ndarray of shape (n_components, n_samples), C-ordered

    Returns
    -------
    out : ndarray of shape (n_components, n_samples)
    """
    if not (_rows_first(*first) and _rows_first(*second)):
        _component_product(*first, out=out)
        return _component_product(*second, out=out, add=True)
    shape = (out.shape[1], out.shape[0])
    total = workspace("rows_first", shape, out.dtype)
    term = workspace("rows_first_term", shape, out.dtype)
    np.matmul(first[1].T, first[0].T, out=total)
    np.matmul(second[1].T, second[0].T, out=term)
    total += term
    np.copyto(out.T, total)
    return out


def _component_product(A, B, out=None, add=False):
    """``A @ B`` for a short ``A``, in the fastest of three ways.

    For the E-step's products of the coefficients with a chunk's features:
    one matrix-vector product per row of ``A`` (see ``_VECTOR_PRODUCTS``
    and ``_VECTOR_FEATURES``); for float32, the transposed product ``B^T
    A^T`` into a row-major buffer, then copied (see ``_ROWS_FIRST``);
    otherwise one matrix product.

    Parameters
    ----------
    A : ndarray of shape (n_components, m)

    B : ndarray of shape (m, n_samples)
        The transpose of a C-ordered chunk of features.

    out : ndarray of shape (n_components, n_samples), C-ordered, default=None

    add : bool, default=False
        Add the product to ``out`` (which must be given) rather than
        overwrite it.

    Returns
    -------
    product : ndarray of shape (n_components, n_samples)
        ``out`` when given.
    """
    n_components, n_features = A.shape
    if _rows_first(A, B):
        rows_first = workspace("rows_first", (B.shape[1], n_components), A.dtype)
        np.matmul(B.T, A.T, out=rows_first)
        if out is None:
            return rows_first.T.copy()
        if add:
            np.add(out.T, rows_first, out=out.T)
        else:
            np.copyto(out.T, rows_first)
        return out
    if add:
        out += _component_product(A, B)
        return out
    if not (
        2 <= n_components <= _VECTOR_PRODUCTS
        and n_features >= _VECTOR_FEATURES.get(A.dtype, np.inf)
    ):
        if out is None:
            return np.matmul(A, B)
        return np.matmul(A, B, out=out)
    if out is None:
        out = np.empty((A.shape[0], B.shape[1]), dtype=np.result_type(A, B))
    for i in range(len(A)):
        np.dot(A[i], B, out=out[i])
    return out


def _inner_product(A, B, block_rows=None):
    """``A @ B``; for float32, float64 sums of products over row blocks.

    Computed with ``np.dot``, as every product over a chunk's rows in this
    module: ``np.matmul`` (``@``) keeps the GIL while it multiplies when
    the result is small (the K x D moments), so the E-step's threads ran
    their products one at a time (on 100,000 x 16 data with two diagonal
    components, two threads' chunks took 1.8x one chunk's time with
    ``@``, 1.1x with ``np.dot``). float32 with 2 or 3 components on one
    side: one matrix-vector product per component (see
    :func:`_short_side`), except in its row blocks.

    Parameters
    ----------
    A : ndarray of shape (m, n_samples)

    B : ndarray of shape (n_samples, k)

    block_rows : int, default=None
        Not float32: the sum of the products of blocks of this many rows
        (within BLAS's small-matrix kernels, see
        :func:`_blocked_diag_features`); None is one product.

    Returns
    -------
    product : ndarray of shape (m, k)
        In the dtype of the operands, or float64 for float32 operands longer
        than ``_FLOAT32_BLOCK``.
    """
    n_samples = A.shape[1]
    if A.dtype != np.float32:
        if block_rows is None or block_rows >= n_samples:
            return np.dot(A, B)
        product = np.dot(A[:, :block_rows], B[:block_rows])
        for start in range(block_rows, n_samples, block_rows):
            stop = start + block_rows
            product += np.dot(A[:, start:stop], B[start:stop])
        return product
    if n_samples <= _FLOAT32_BLOCK:
        side = _short_side(A, B)
        if side == "rows":
            return np.vstack([np.dot(row, B) for row in A])
        if side == "columns":
            return np.column_stack([np.dot(A, column) for column in B.T])
        return np.dot(A, B)
    # (float32 keeps its blocks' single stacked product: split a component
    # at a time, the stacked products' small results hold the GIL twice as
    # often, and two threads' chunks took 1.7x longer at 25,000 x 16.)
    # The blocks' products in one stacked product (a loop of np.dot over
    # the blocks cost 45% more than one float32 product at 7,143 x 152 by
    # 16; this, 10%), then added up in float64.
    m, k = A.shape[0], B.shape[1]
    size = _FLOAT32_BLOCK
    if m * k >= _FLOAT32_SHORT_BLOCK_PRODUCT:
        size = _FLOAT32_SHORT_BLOCK
    n_blocks = n_samples // size
    head = n_blocks * size
    blocks = np.matmul(
        A[:, :head].reshape(m, n_blocks, size).transpose(1, 0, 2),
        B[:head].reshape(n_blocks, size, k),
    )
    product = blocks.sum(axis=0, dtype=np.float64)
    if head < n_samples:
        product += np.dot(A[:, head:], B[head:])
    return product


#: A component's moments are taken over only its rows of non-negligible
#: responsibility where they are at most this fraction of the chunk's (see
#: :func:`_kept_rows`).
_KEPT_ROWS_FRACTION = 0.75


def _kept_rows(weights):
    """The rows whose weight adds to a component's moments, if few.

    Rows of zero weight add exact zeros: on separated clusters, where the
    E-step's responsibilities are exactly zero outside a component's own
    rows (see :func:`~._suffstats.negligible_floor`), its moments need only
    the others, gathered, and the products (``syrk`` for a full scatter,
    the moments' largest cost) run over those alone. float32's E-step
    raises negligible masses to a floor rather than to zero (see
    :func:`~._suffstats.logsumexp_rows`): there the rows below 2^-64 of the
    component's largest weight are left out as zeros are (they add less
    than 2^-64 n of its sums, far below float32's rounding).

    Parameters
    ----------
    weights : ndarray of shape (n_samples,)
        A component's responsibilities times the sample weights.

    Returns
    -------
    rows : ndarray of int or None
        The rows to keep, or None (every row) when more than
        ``_KEPT_ROWS_FRACTION`` of them are.
    """
    _, kept, _, few = _kept_mask(weights[:, np.newaxis])
    return np.flatnonzero(kept[0]) if few[0] else None


def _gathered(rows, X, weights):
    """``X`` and ``weights`` at ``rows`` (all of them for None)."""
    if rows is None:
        return X, weights
    return X[rows], weights[rows]


def _weighted_gram(Z, root, out, rows=None, offset=None):
    """``sum_n root_n^2 z_n z_n^T`` as ``W^T W`` with ``W = root * Z``.

    Over ``rows`` only when given (see :func:`_kept_rows`): the same sums up
    to the order of their additions (and the masses left out). With
    ``offset``, of ``z_n + offset`` instead.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)

    root : ndarray of shape (n_samples,)
        Square roots of the weighted responsibilities (non-negative).

    out : ndarray of shape (n_samples, n_features), C-ordered
        Workspace for ``W`` over every row.

    rows : ndarray of int, default=None
        The rows to gather into ``W``; None for every row, in ``out``.

    offset : ndarray of shape (n_features,), default=None
        Added to the rows first, in the dtype of ``Z``.

    Returns
    -------
    gram : ndarray of shape (n_features, n_features)
    """
    if rows is None:
        if offset is None:
            return _gram(np.multiply(Z, root[:, np.newaxis], out=out))
        W = np.add(Z, offset, out=out)
    else:
        # (Indexing gathers the strided rows several times faster than
        # np.take into a buffer: 1,000 of 4,000 rows of 128 features, 62
        # against 481 us.)
        W = Z[rows]
        if offset is not None:
            W += offset
        root = root[rows]
    W *= root[:, np.newaxis]
    return _gram(W)


def _gram(W):
    """``W^T W`` as a symmetric rank-k update; for float32, float64 sums of
    row blocks' products (see :func:`_inner_product`).

    Parameters
    ----------
    W : ndarray of shape (n_samples, n_features), C-ordered

    Returns
    -------
    gram : ndarray of shape (n_features, n_features)
    """
    n_samples = len(W)
    if W.dtype != np.float32 or n_samples <= _FLOAT32_BLOCK:
        return np.dot(W.T, W)
    gram = np.zeros((W.shape[1], W.shape[1]))
    for start in range(0, n_samples, _FLOAT32_BLOCK):
        block = W[start : start + _FLOAT32_BLOCK]
        gram += np.dot(block.T, block)
    return gram


def _accumulate_expanded(
    features, resp, *, means, covariance_type, centre, direct, X, block_rows=None
):
    """Sufficient statistics from the chunk's features, around ``means``.

    Parameters
    ----------
    features : ndarray
        The output of :func:`_centred_features`.

    resp : ndarray of shape (n_samples, n_components)
        Responsibilities multiplied by the sample weights.

    means : ndarray of shape (n_components, n_features)
        The shift c_k the second moments are returned around.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    centre : ndarray of shape (n_features,)

    direct : ndarray of int
        Components whose second moments are accumulated directly, from
        ``x - means_k``.

    X : ndarray of shape (n_samples, n_features)
        The chunk, in the dtype of ``features``.

    block_rows : int, default=None
        float64 feature blocks: the moments' products are summed over blocks
        of this many rows (see :func:`_blocked_diag_features`); None
        multiplies the whole chunk at once.

    Returns
    -------
    stats : dict
        The keys of :func:`_accumulate_gaussian`, float64. For 'spherical',
        the expanded components' ``"sxx"`` rows hold the right mean over
        features (all the spherical M-step reads), not the per-feature
        moments.
    """
    n_features = means.shape[1]
    nk = mass_sums(resp)
    if covariance_type == "tied":
        return _accumulate_tied(features[1], resp, nk, means, centre, direct, X)
    if isinstance(features, tuple):
        moments = _inner_product(resp.T, features[0], block_rows)
        sz = _inner_product(resp.T, features[1], block_rows)
    else:
        # features is the transpose of a C-ordered array: float32 BLAS runs
        # this product order 1.8x faster than resp.T @ features (float64
        # takes the same time either way).
        moments = _inner_product(features.T, resp).T
        sz = moments[:, -n_features:]
    # Second moments around c_k from those around the centre, with
    # d_k = c_k - centre: S - sz d^T - d sz^T + N_k d d^T, in float64 (a
    # float32 chunk's products are added up in float64).
    moments = moments.astype(np.float64, copy=False)
    sz = sz.astype(np.float64, copy=False)
    d = means.astype(np.float64, copy=False) - centre
    if covariance_type == "full":
        # Unpacked by one gather and moved by _move_scatter: at 100,000 x
        # 32 with 64 components, the triangle's two fancy-index scatters and
        # the five passes of the direct expression over the chunk's K D^2
        # values were 1.2 ms a chunk, a seventh of a one-thread iteration
        # (now 0.12 ms).
        n_packed = n_features * (n_features + 1) // 2
        sxx = np.take(moments[:, :n_packed], _triu_positions(n_features), axis=1)
        sxx = sxx.reshape(len(nk), n_features, n_features)
        _move_scatter(sxx, sz, nk, d)
    elif covariance_type == "spherical":
        # Only sum_n r_nk |z_n|^2 is known: split equally over the features.
        # The spherical M-step reads only the mean over features.
        sxx = moments[:, :1] / n_features - 2 * sz * d + nk[:, None] * d**2
    else:
        sxx = moments[:, :n_features] - 2 * sz * d + nk[:, None] * d**2
    sx = sz + nk[:, np.newaxis] * centre
    if not len(direct):
        return {"nk": nk, "sx": sx, "sxx": sxx}
    shift = means.astype(X.dtype, copy=False)
    moments = None
    if covariance_type in ("diag", "spherical"):
        moments = _paired_direct_moments(X, shift, resp, direct)
        if moments is None and _direct_group_size(X.shape) > 1:
            moments = _grouped_direct_moments(X, shift, resp, direct)
    if moments is not None:
        sxx[direct], first = moments
        sx[direct] = first + nk[direct, np.newaxis] * shift[direct]
    else:
        for k in direct:
            # Far from the centre: its sums around its own shift (over its
            # own rows where they are few, see _kept_rows).
            Xk, resp_k = _gathered(_kept_rows(resp[:, k]), X, resp[:, k])
            sxx[k], first = _direct_scatter(
                Xk, shift[k], resp_k, covariance_type == "full"
            )
            sx[k] = first + nk[k] * shift[k]
    return {"nk": nk, "sx": sx, "sxx": sxx}


def _accumulate_tied(Z, resp, nk, means, centre, direct, X):
    """Sufficient statistics of a tied-covariance chunk, around ``means``.

    The tied M-step only needs ``sum_k sum_n r_nk (z_n - d_k)(z_n - d_k)^T``
    (``d_k = means_k - centre``), which is the weighted scatter around the
    centre, ``sum_n w_n z_n z_n^T`` with ``w_n = sum_k r_nk`` -- one product
    whose cost does not depend on the number of components -- minus
    ``sum_k (s_k d_k^T + d_k s_k^T - N_k d_k d_k^T)``, ``s_k = sum_n r_nk z_n``.
    That sum is returned split over the components: component k gets its own
    correction terms and an equal share of the common scatter, so the sum
    over components, all the M-step reads, is exact (and moving every
    component's moments to another shift, as stepwise EM does, keeps it
    exact). Components in ``direct`` (a large ``kappa_k``, for which the
    correction would cancel too many digits) are left out of the common
    scatter: their scatter around their own means is computed directly
    (:func:`_tied_direct_scatter`) and shared equally among them.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        The centred chunk, ``x - centre``.

    resp : ndarray of shape (n_samples, n_components)
        Responsibilities multiplied by the sample weights.

    nk : ndarray of shape (n_components,)
        ``resp.sum(axis=0)``.

    means : ndarray of shape (n_components, n_features)

    centre : ndarray of shape (n_features,)

    direct : ndarray of int

    X : ndarray of shape (n_samples, n_features)
        The chunk (the direct components use ``x - means_k``).

    Returns
    -------
    stats : dict
        The keys of :func:`_accumulate_gaussian`; ``"sxx"`` has shape
        (n_components, n_features, n_features) and only its sum over
        components is the tied scatter.
    """
    n_components, n_features = means.shape
    # (Z is C-ordered: the products read Z.T transposed.) Sums in float64.
    sz = _inner_product(Z.T, resp).T.astype(np.float64, copy=False)
    d = means.astype(np.float64, copy=False) - centre
    # N_k d d^T - s d^T - d s^T = (N_k d - s) d^T - d s^T: one batched
    # product of (D, 2) and (2, D) factors per component writes the (K, D,
    # D) result once (its element-wise terms, each a fresh (K, D, D) array,
    # took 4 ms at 100 x 64, K = 40).
    left = np.stack([nk[:, np.newaxis] * d - sz, -d], axis=2)
    sxx = np.matmul(left, np.stack([d, sz], axis=1))
    n_expanded = n_components - len(direct)
    if n_expanded:
        if len(direct):
            # (A mask: setdiff1d sorted and took 0.15 ms on 40 components.)
            expanded = np.ones(n_components, dtype=bool)
            expanded[direct] = False
            w = resp[:, expanded].sum(axis=1)
        else:
            w = resp.sum(axis=1)
        # Added to every component; the direct ones are overwritten below.
        sxx += _inner_product(Z.T * w, Z) / n_expanded
    if len(direct):
        # Their scatter around their own means, summed over them and shared
        # equally as the common scatter is (the sum is all the M-step reads).
        sxx[direct] = _tied_direct_scatter(X, means, resp, direct) / len(direct)
    return {"nk": nk, "sx": sz + nk[:, np.newaxis] * centre, "sxx": sxx}


def _tied_direct_scatter(X, means, resp, direct):
    """``sum_k sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T`` over the ``direct`` means.

    Only the pairs of nonzero responsibility, in blocks of at most
    ``_DIRECT_GROUP_VALUES`` differences, one product a block, in float64.
    Directly computed components are tight clusters far from the centre:
    most rows' responsibilities for them are exactly zero. On 100 x 64 with
    40 tied components, 17 of them direct, a scatter per component over
    every row was 7 million multiply-adds an iteration, and this about
    0.4 million (0.9 -> 0.1 ms; scikit-learn's whole tied M-step is one
    product of that size).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    means : ndarray of shape (n_components, n_features)

    resp : ndarray of shape (n_samples, n_components)
        Responsibilities multiplied by the sample weights.

    direct : ndarray of int

    Returns
    -------
    scatter : ndarray of shape (n_features, n_features)
    """
    n_features = X.shape[1]
    where, rows = np.nonzero(resp[:, direct].T)
    components = direct[where]
    weights = resp[rows, components].astype(np.float64, copy=False)
    means = means.astype(np.float64, copy=False)
    scatter = np.zeros((n_features, n_features))
    step = max(1, _DIRECT_GROUP_VALUES // n_features)
    for start in range(0, len(rows), step):
        block = slice(start, start + step)
        diff = X[rows[block]].astype(np.float64, copy=False)
        diff -= means[components[block]]
        scatter += (diff.T * weights[block]) @ diff
    return scatter


#: Relative error of the covariances that moving the second moments to the
#: new means may cost before the E-step is run again around them.
_RECENTRE_ERROR = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}


def _recentred_shift(stats, shift, reg_covar, covariance_type, dtype, far=False):
    """The new means, if the second moments must be accumulated around them.

    The M-step moves the moments from the shift ``c_k`` to the new means
    ``mu_k``: ``S_mu = S_c - N_k (mu_k - c_k)(mu_k - c_k)^T``. Where
    ``N_k (mu_k - c_k)^2`` dwarfs what remains, the subtraction cancels the
    digits the covariance is made of: ``S_c`` was computed to the data's
    precision ``eps``, so the covariance loses ``eps`` times that ratio.

    Parameters
    ----------
    stats : dict
        Statistics around ``shift`` (see :func:`_accumulate_gaussian`).

    shift : ndarray of shape (n_components, n_features)

    reg_covar : float

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    dtype : numpy dtype
        The data's dtype.

    far : bool, default=False
        Whether ``shift`` may be far beyond the data (a ``means_init`` of
        1e200), or the data's sums of squares near the float range (1e153
        in float64): an infinite move is then lossy, an empty component's
        NaN not, without overflow warnings.

    Returns
    -------
    means : ndarray of shape (n_components, n_features) or None
        The new means, or None when every covariance keeps a relative
        precision of ``_RECENTRE_ERROR[dtype]``.
    """
    dtype = np.dtype(dtype)
    eps = np.finfo(dtype).eps
    nk = stats["nk"]
    column = nk[:, np.newaxis]
    means = stats["sx"] / np.maximum(column, 10 * eps)
    sxx = stats["sxx"]
    diagonal = np.diagonal(sxx, axis1=1, axis2=2) if sxx.ndim == 3 else sxx
    moved = means - shift.astype(np.float64, copy=False)
    regularised = reg_covar * column
    # (With ``far``, a move or a sum beyond the float range is infinite:
    # lossy, without overflow warnings.)
    with _overflow_guard(far):
        moved *= moved
        moved *= column
        if covariance_type == "tied":
            moved, diagonal, regularised = (
                moved.sum(axis=0),
                diagonal.sum(axis=0),
                regularised.sum(axis=0),
            )
        elif covariance_type == "spherical":
            moved, diagonal = moved.mean(axis=1), diagonal.mean(axis=1)
            regularised = regularised[:, 0]
    # What the covariance is made of, and what is cancelled to get it: lossy
    # where moved > 0 and not moved <= limit kept (a NaN is not lossy), in
    # few calls (this runs at every iteration; on small data each NumPy call
    # is a few percent of one).
    kept = diagonal - moved
    kept += regularised
    np.maximum(kept, 0, out=kept)
    # (moved scaled down rather than kept up: on data near the float range,
    # kept times 1e-12 / eps overflowed.)
    moved *= eps / _RECENTRE_ERROR.get(dtype, 1e-12)
    return means if np.greater(moved, kept).any() else None


class GaussianMixtureEM(BaseMixtureEM):
    """Gaussian mixture fitted by EM, a drop-in for scikit-learn's GaussianMixture.

    It takes the same parameters, exposes the same fitted attributes and,
    from the same initial parameters, reaches the same solution as
    :class:`sklearn.mixture.GaussianMixture`. It adds frequency
    ``sample_weight``, fixed uniform mixture weights, :meth:`transform`
    (responsibilities as features) and an EM engine organised around
    sufficient statistics that works chunk by chunk, in bounded memory and
    in parallel threads.

    ``X`` may hold missing values (NaN, missing at random): the E-step uses
    each component's marginal density of a row's observed values and the
    M-step the expected sufficient statistics, and :meth:`predict`,
    :meth:`predict_proba` and :meth:`score_samples` (the log-likelihood of
    the observed values) take NaN too. See :ref:`missing_values`.

    Parameters
    ----------
    n_components : int, default=1
        The number of mixture components.

    covariance_type : {'full', 'tied', 'diag', 'spherical', 'tied_diag', \
            'tied_spherical'}, default='full'
        The form of the covariance matrices: one general matrix per component
        ('full'), one matrix shared by all ('tied'), one diagonal matrix per
        component ('diag'), one variance per component ('spherical'), one
        diagonal matrix shared by all ('tied_diag') or one variance shared by
        all ('tied_spherical'). In mclust's names: VVV, EEE, VVI, VII, EEI
        and EII.

    tol : float, default=1e-3
        EM stops when the gain in mean log-likelihood is below this
        threshold.

    reg_covar : float, default=1e-6
        Non-negative regularisation added to the diagonal of covariances, so
        that they stay positive definite.

    max_iter : int, default=100
        The number of EM iterations to perform.

    n_init : int, default=1
        The number of initialisations; the best result is kept.

    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, \
            default='kmeans'
        How the initial responsibilities are chosen: from a k-means
        clustering, from k-means++ seeds, at random, or from randomly chosen
        data points. With ``sample_weight``, k-means and k-means++ are
        weighted and 'random_from_data' draws points with probability
        proportional to their weight.

    weights_init : array-like of shape (n_components,), default=None
        User-provided initial mixture weights.

    means_init : array-like of shape (n_components, n_features), default=None
        User-provided initial means.

    precisions_init : array-like, default=None
        User-provided initial precisions (inverse covariances), of shape
        (n_components,) for 'spherical', (n_features, n_features) for 'tied',
        (n_components, n_features) for 'diag',
        (n_components, n_features, n_features) for 'full', (n_features,) for
        'tied_diag' and a number (shape ()) for 'tied_spherical'.

    random_state : int, RandomState instance or None, default=None
        Controls the initialisation and :meth:`sample`. Pass an int for
        reproducible results.

    warm_start : bool, default=False
        If True, each call to :meth:`fit` starts from the previous solution
        and ``n_init`` is ignored after the first call.

    verbose : int, default=0
        1 prints the initialisation and each iteration; 2 adds timings and
        the change in log-likelihood.

    verbose_interval : int, default=10
        Number of iterations between two messages.

    weights : {'learn', 'uniform'}, default='learn'
        'learn' estimates the mixture weights, pi_k = N_k / N. 'uniform'
        holds them at 1 / n_components, so that responsibilities are the
        normalised likelihoods r_nk = p(x_n | k) / sum_j p(x_n | j).

    n_jobs : int, default=None
        Number of threads the chunks of each E-step are mapped over; each
        thread runs single-threaded BLAS. None means as many threads as BLAS
        may use: all the cores unless limited by
        :func:`threadpoolctl.threadpool_limits` or the ``OMP_NUM_THREADS`` /
        ``OPENBLAS_NUM_THREADS`` variables (joblib's process workers set
        them), as scikit-learn's ``KMeans`` uses its OpenMP threads. So a
        default fit uses the cores scikit-learn's ``GaussianMixture`` uses
        through BLAS (and a prediction on data of one chunk leaves BLAS its
        own threads, as scikit-learn's products use them). ``1`` runs one
        thread; -1 means all processors.

    learning_decay : float, default=0.7
        Exponent kappa in (0.5, 1] of :meth:`partial_fit`'s step size
        ``rho_t = (t + learning_offset) ** -kappa``.

    learning_offset : float, default=10.0
        Offset t0 >= 0 of :meth:`partial_fit`'s step size; larger values
        damp the first steps.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        The weight of each mixture component.

    means_ : ndarray of shape (n_components, n_features)
        The mean of each mixture component.

    covariances_ : ndarray
        The covariance of each component; shape (n_components,) for
        'spherical', (n_features, n_features) for 'tied',
        (n_components, n_features) for 'diag',
        (n_components, n_features, n_features) for 'full', (n_features,) for
        'tied_diag' (the shared diagonal) and () for 'tied_spherical' (the
        shared variance).

    precisions_ : ndarray
        The precision matrices (inverse covariances), in the same layout.

    precisions_cholesky_ : ndarray
        Cholesky factors U of the precisions (precision = U U^T), in the
        same layout.

    converged_ : bool
        True when the best initialisation converged.

    n_iter_ : int
        Number of EM iterations of the best initialisation.

    lower_bound_ : float
        Mean log-likelihood of the training data at the last E-step of the
        best initialisation.

    lower_bounds_ : list of float
        Mean log-likelihood at every iteration of the best initialisation.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.mixture.GaussianMixture : The scikit-learn estimator this one
        replaces.
    BernoulliMixtureEM : Mixture of multivariate Bernoullis for binary data.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_em import GaussianMixtureEM
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> gm = GaussianMixtureEM(n_components=2, random_state=0).fit(X)
    >>> gm.means_[np.argsort(gm.means_[:, 0])]
    array([[ 1.,  2.],
           [10.,  2.]])
    >>> gm.predict([[0, 0], [12, 3]]).tolist() == gm.predict([[1, 0], [10, 2]]).tolist()
    True
    >>> gm.transform([[0, 0]]).round(3)
    array([[...]])
    """

    # Every row's log-density is resolved to a finite value (see
    # _resolve_far_rows): one component's responsibility is always 1.
    _certain_when_alone = True

    _parameter_constraints: dict = {
        **BaseMixtureEM._parameter_constraints,
        "covariance_type": [
            StrOptions(
                {"full", "tied", "diag", "spherical", "tied_diag", "tied_spherical"}
            )
        ],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        # A number is the precision of 'tied_spherical'.
        "precisions_init": ["array-like", Real, None],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        weights="learn",
        n_jobs=None,
        learning_decay=0.7,
        learning_offset=10.0,
    ):
        super().__init__(
            n_components=n_components,
            tol=tol,
            max_iter=max_iter,
            n_init=n_init,
            init_params=init_params,
            weights=weights,
            weights_init=weights_init,
            means_init=means_init,
            n_jobs=n_jobs,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            verbose_interval=verbose_interval,
            learning_decay=learning_decay,
            learning_offset=learning_offset,
        )
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.precisions_init = precisions_init

    #: Whether the means are the user's ``means_init``, not yet an M-step's:
    #: they may lie far beyond the data (see _recentred_shift's ``far``).
    _given_means = False

    #: E-steps left before the expansion around zero is tried again (see
    #: ``_ZERO_SKIPS``).
    _zero_skips = 0

    #: Whether the fit's sums of squares may overflow the data's dtype (data
    #: near the float range, see _check_magnitude): sums pooled over the
    #: components and the recentring test then tolerate it.
    _near_float_range = False

    def _check_parameters(self, X):
        super()._check_parameters(X)
        n_features = X.shape[1]
        self._zero_skips = 0
        if not (self.warm_start and hasattr(self, "converged_")):
            # (Set by the initialisation; a warm start keeps its fit's.)
            self._near_float_range = False
        # Wide covariances' factorisations on BLAS's threads, where the
        # E-steps run in one chunk or on at most half as many rows as
        # features (see _THREADED_FACTOR_FEATURES).
        self._factors_on_blas_threads = (
            isinstance(X, ArrayData)
            and n_features >= _THREADED_FACTOR_FEATURES
            and (X.n_samples <= X.rows or 2 * X.n_samples <= n_features)
        )
        self._means_init = (
            None
            if self.means_init is None
            else _check_means(self.means_init, self.n_components, n_features)
        )
        self._precisions_init = (
            None
            if self.precisions_init is None
            else _check_precisions(
                self.precisions_init,
                self.covariance_type,
                self.n_components,
                n_features,
            )
        )
        if self.warm_start and hasattr(self, "converged_"):
            # A warm start continues the fitted model, in its dtype.
            self._fit_dtype = self.means_.dtype
        else:
            self._fit_dtype = X.dtype
        # A float32 fit's E-steps are computed in float64 from an M-step
        # that collapsed in float32 on (see _statistics_after_collapse), and
        # from the start where its covariances are singular but for
        # reg_covar (_singular_in_float32).
        self._float64_e_steps = self._fit_dtype == np.float32 and (
            _singular_in_float32(
                _engine_covariance_type(self.covariance_type),
                X.shape[0],
                n_features,
                self.n_components,
            )
        )

    def _initial_weights(self):
        if self.weights == "uniform":
            return np.full(self.n_components, 1 / self.n_components, self._fit_dtype)
        return self._weights_init.astype(self._fit_dtype)

    def _initialize_from_given(self, X):
        if (
            (self._weights_init is None and self.weights == "learn")
            or self._means_init is None
            or self._precisions_init is None
        ):
            return False
        self.weights_ = self._initial_weights()
        self.means_ = self._means_init.astype(self._fit_dtype)
        self._given_means = True
        if isinstance(X, ArrayData) and X.has_missing is False and X.X.size:
            weight = X.n_samples if X.sample_weight is None else X.sample_weight.sum()
            weight = max(float(weight), 1.0)
            if X.magnitude is not None and not _sums_may_overflow(
                2.0 * X.magnitude, weight, X.X.dtype
            ):
                # (Bounded by validation's pass: no pass of its own.)
                self._near_float_range = False
            else:
                # Finite data: its extent in two reductions (5.5 ms at
                # 100,000 x 128).
                extent = float(X.X.max()) - float(X.X.min())
                self._near_float_range = _sums_may_overflow(extent, weight, X.X.dtype)
        self._set_precisions_from_init()
        return True

    def _set_precisions_from_init(self):
        # Factorised in float64, as the M-step's covariances are, then
        # stored in the model's dtype: rounded to float32 first, a precision
        # of condition number 4e5 lost that many times float32's rounding
        # in its weakest direction, and a float32 fit's first iteration
        # moved its covariances 5.7e-4 (relative) from float64's, against
        # scikit-learn's 5e-8, whose float32 fit keeps float64 parameters.
        precisions_cholesky = _compute_precision_cholesky_from_precisions(
            self._precisions_init.astype(np.float64, copy=False), self.covariance_type
        )
        self.precisions_cholesky_ = precisions_cholesky.astype(
            self._fit_dtype, copy=False
        )
        # Covariances are only known once an M-step has run; start from the
        # inverse of the given precisions so that the attribute always exists.
        self.covariances_ = _covariances_from_precisions_cholesky(
            precisions_cholesky, self.covariance_type
        ).astype(self._fit_dtype)

    def _chunk_sizing(self, n_features, itemsize, missing, prediction=False):
        # On complete data the chunk's temporaries are the kernels' own
        # (_chunk_row_values), which do not grow with n_features *
        # n_components: chunks are sized by them alone. Per iteration on
        # 100,000 rows with diagonal covariances (ms, by rows per chunk):
        # D = 32, K = 16: 26, 14 and 16 for 1,000, 5,000 and 50,000 rows
        # (the generic estimate gave 3,800); D = 128, K = 16: 59, 51 and 65
        # (1,000 from the generic estimate). The per-component form's
        # passes want a smaller budget, 4 MiB: at D = 128, K = 64, 5.5 s
        # per iteration with the generic 250-row chunks, 4.0 s with 1,000
        # rows; at D = 32, K = 4: 59, 55, 50 and 53 ms for 16, 8, 4 and
        # 2 MiB (8 MiB since its products are stacked; see
        # _PER_COMPONENT_CACHE_BYTES). A prediction's chunks hold less of
        # it (no weighted differences) and take that budget too, twice with
        # one component (see _PER_COMPONENT_PREDICTION_CACHE_BYTES and
        # _ONE_COMPONENT_PREDICTION_CACHE_BYTES). Data with missing values
        # (or unknown: Dask) keeps the generic estimate for its kernels.
        if missing is not False:
            return {}
        dtype = np.float64 if itemsize == 8 else np.float32
        per_component = self._uses_per_component_form(
            n_features, dtype, fitting=not prediction
        )
        if per_component:
            if not prediction:
                cache_bytes = _PER_COMPONENT_CACHE_BYTES
                if n_features >= _WIDE_PER_COMPONENT_FEATURES:
                    # Four times the chunk's statistics, K D^2 values.
                    statistics = 4 * self.n_components * n_features**2 * itemsize
                    cache_bytes = min(
                        max(cache_bytes, statistics), _WIDE_PER_COMPONENT_CACHE_BYTES
                    )
            elif self.n_components == 1:
                cache_bytes = _ONE_COMPONENT_PREDICTION_CACHE_BYTES
            else:
                cache_bytes = _PER_COMPONENT_PREDICTION_CACHE_BYTES
            sizing = {"exact": True, "cache_bytes": cache_bytes}
            if itemsize < 8 and not prediction:
                sizing["threaded_cache_bytes"] = _PER_COMPONENT_FLOAT32_THREADED_BYTES
            return sizing
        engine_type = _engine_covariance_type(self.covariance_type)
        sizing = {"exact": True}
        if itemsize < 8:
            sizing["threaded_cache_bytes"] = _FLOAT32_THREADED_CACHE_BYTES
        n_row_features = _n_quadratic_features(engine_type, n_features) + n_features
        if n_row_features * itemsize <= _NARROW_ROW_BYTES:
            sizing["max_threaded_rows"] = _NARROW_CHUNK_ROWS
        if engine_type == "full":
            # As the diagonal blocks below: both halves of the E-step read
            # the chunk's quadratic features. 3-iteration fits at 100,000
            # rows, two threads, alternated (three runs): D = 24, K = 12,
            # 0.86-0.92 of the time (float32 0.85-0.91); D = 32 with 16, 20
            # and 24 components 0.82-0.95, 0.85-0.87 and 0.92; D = 40, K = 24,
            # 0.91; 0.98-1.04 at D = 16 (K = 4-64; 200,000 rows with 16
            # components 0.94-1.03), D = 32 with 64 components and D = 48
            # with 32 and 40, whose chunks were about that short already.
            # (An earlier machine's fits had lost up to 10% with such chunks.)
            # Beyond ``_FULL_SHARED_MAX_FEATURES`` the shared budget leaves
            # chunks of a few hundred rows (D = 64: 489 on two threads), and
            # fits took longer: 30,000 x 64 with 120 components 1.18x the
            # time of the chunks' own budget (D = 48, K = 40: 0.99; D = 32,
            # K = 16: 0.82). Predictions alike (without it, predict_proba of
            # 200,000 x 16 and 100,000 x 32 with 16 components 1.11-1.12x).
            if n_features <= _FULL_SHARED_MAX_FEATURES:
                sizing["shared_row_values"] = n_row_features
            return sizing
        if not _feature_blocks(engine_type, n_features, dtype):
            return sizing
        # Both halves of the E-step read the two feature blocks: split over
        # threads, the chunks' blocks together stay within the cache budget.
        # Per E-step at 100,000 rows, 'diag', K = 2, two threads: D = 32,
        # 7.9 -> 6.5 ms; D = 64, 17.4 -> 12.6; D = 128, 30.5 -> 21.2 (at
        # K = 16 the chunks were already that short).
        # Counted in float64 for float32 data too: a float32 chunk is
        # computed in float64 where its expansion would lose too many digits
        # (wide diagonal data far from its centre), and chunks sized for
        # float32 features then overflowed the cache the same way (100,000 x
        # 128, K = 2: float32 fits 0.70x float64's).
        sizing["shared_row_values"] = n_row_features
        if self.n_components == 1:
            # One component: its features' bytes are many for their
            # arithmetic, and two threads' hand-offs cost more than they save
            # on fewer rows (per iteration, one thread against the split,
            # alternated: 3,000 x 200 1.23x, spherical 1.20x; 6,000 x 100
            # 1.20x; spherical 8,000 x 100 1.04x; from 12,000 x 64 the split
            # was as fast or faster, 1.12-1.27x at 20,000-30,000 rows).
            sizing["min_threaded_rows"] = _MIN_THREADED_ROWS_ONE_COMPONENT
        return sizing

    def _chunk_row_values(self, n_features, itemsize=8, fitting=True):
        dtype = np.float64 if itemsize == 8 else np.float32
        if self._uses_per_component_form(n_features, dtype, fitting):
            # One component's difference, its product with the factor and
            # its weighted difference at a time (reused buffers), and the
            # log-probabilities, responsibilities and their square roots.
            return 3 * n_features + 3 * self.n_components
        # The fused E-step's features (see _centred_features), and the
        # log-probabilities, responsibilities and their normalisation's
        # temporaries, counted as 8 values per component: with 2, chunks of
        # 16 components were too long (spherical and tied, 100,000 x 16:
        # 8.8 and 12.9 ms per iteration in 25,000-row chunks, 6.8 and 10.9
        # in 12,500-row ones).
        engine_type = _engine_covariance_type(self.covariance_type)
        n_quadratic = _n_quadratic_features(engine_type, n_features)
        if engine_type == "spherical" and _feature_blocks(
            engine_type, n_features, dtype
        ):
            # The squares z ** 2 from which |z|^2 is summed.
            n_quadratic += n_features
        return n_quadratic + n_features + 8 * self.n_components

    def _largest_product(self, n_samples, n_features, itemsize=8, fitting=True):
        # Beside the E-step's product over the components: the per-component
        # form's products with each (n_features + 1)-square factor and its
        # Gram matrices, and 'tied''s whitening and shared scatter, each
        # n_samples x n_features x n_features. In a fit these alternate with
        # the M-step's factorisations, which SciPy's own OpenBLAS runs: with
        # both libraries' threads awake, each one's spinning workers took the
        # cores the other needed (counted as the E-step's product alone, a
        # fit of 569 x 30 with 1 to 3 full components ran at 8-14 ms an
        # iteration instead of 0.7-1.1). A prediction calls NumPy's BLAS
        # alone, where its products are as fast on BLAS's threads (569 x 30,
        # K = 3, 'full': 0.8-0.9 ms, when setting the limit cost ~0.2 ms).
        # The E-step's product of the features with the coefficients (and
        # the responsibilities' with the features), as it is run: for
        # wide 'diag' and 'spherical' two blocks of n_features columns,
        # otherwise one of the quadratic and linear features, not the
        # chunk's every value and temporary per row (counted so, fits of
        # 300 x 16 in 12 diagonal components or 300 x 4 in 12 tied ones set
        # BLAS's limit and restored it, ~0.3 ms each way, around products
        # that BLAS runs on one thread anyway). The per-component form has
        # no such product: its rows' values stand for its products with the
        # factors, which a prediction leaves to BLAS. (The direct form's
        # products with a factor, n_samples x n_features^2, are within the
        # fused count from two components on; with one, under 16 features
        # and on at most 320 rows, far below BLAS's threads.)
        engine_type = _engine_covariance_type(self.covariance_type)
        dtype = np.float64 if itemsize == 8 else np.float32
        per_component = self._uses_per_component_form(n_features, dtype, fitting)
        if per_component:
            work = super()._largest_product(n_samples, n_features, itemsize, fitting)
        elif _feature_blocks(engine_type, n_features, dtype):
            work = n_samples * (n_features + 1) * self.n_components
        else:
            n_quadratic = _n_quadratic_features(engine_type, n_features)
            work = n_samples * (n_quadratic + n_features) * self.n_components
        if not fitting:
            return work
        if per_component:
            work = max(work, n_samples * (n_features + 1) ** 2)
        elif self.covariance_type == "tied":
            work = max(work, n_samples * n_features**2)
        if engine_type in ("full", "tied"):
            # The M-step's triangular solve with n_features right-hand sides
            # (SciPy's OpenBLAS): on 30 rows and 64 features, counted out,
            # its threads woke at every iteration and took the cores from the
            # rest (tied, K = 3: 14.9 against 8.2 ms a fit of 10 iterations;
            # full: 16.5 against 9.4). At 40 features the limit only costs
            # its setting (~0.3 ms a fit).
            work = max(work, n_features**3)
        return work

    def _fits_on_blas_threads(self, data):
        """Whether a fit's E-steps on ``data`` run on BLAS's threads.

        A default fit (``n_jobs=None``) of float64 data in one chunk has no
        threads of its own, and BLAS's are worth waking where the E-step's
        products are large: diagonal and spherical covariances (whose M-step
        makes no LAPACK call, so SciPy's OpenBLAS threads never wake beside
        NumPy's; see :meth:`_largest_product`) with more than
        ``_SMALL_BLOCKED_DIAG_COMPONENTS`` components (fewer take BLAS's
        small-matrix kernels in row blocks, on one thread) and products of
        at least ``_THREADED_FIT_WORK`` multiply-adds. Only the E-steps
        lift the fit's limit: with none for the whole fit, BLAS's threads,
        spinning after the products, took the cores from the k-means
        initialisation (default fits of 1,000 x 200, K = 40, 1.5-1.8x the
        time; 3,000 x 64, 3.5x). Per iteration, alternated against the
        limit (bench_small_shapes' data): 1,000 x 200, K = 40, 0.78-0.82 of
        the time (scikit-learn, on BLAS's threads, about as fast as the
        limited fit); 1,000 x 120, 0.78; 2,000 and 3,000 x 64, 0.74-0.84,
        though 1.17-1.20 in a run where other work took the second core;
        spherical 1,000 x 200, 0.84-0.89 in four runs, 1.07 in a fifth,
        3,000 x 64, 0.83-0.95. Default fits: 1,000 x 200, 0.85-0.87;
        3,000 x 64, 0.83 and 1.10 in two runs; spherical 0.82-0.87. Not
        below that size (1,000 x 64 and 300 x 200, K = 40: 0.87-1.27 and
        0.89-1.16 between runs), nor with 12 components (the small-matrix
        blocks): 1,000 x 200, 1.35x the time.
        """
        if (
            self.n_jobs is not None
            or self.n_components <= _SMALL_BLOCKED_DIAG_COMPONENTS
            or not isinstance(data, ArrayData)
            or data.has_missing is not False
            or data.dtype != np.float64
            or _engine_covariance_type(self.covariance_type)
            not in ("diag", "spherical")
        ):
            return False
        # (No such fit takes the direct form: it stops at 3 x 2^15 values
        # n_samples x n_features x n_components, far below this product.)
        n_samples, n_features = data.shape
        return (
            n_samples <= data.rows
            and self._largest_product(n_samples, n_features) >= _THREADED_FIT_WORK
        )

    def _engine_parameters(self):
        """The E-step's covariance type and per-component precision factors.

        Shared variances ('tied_diag', 'tied_spherical') run the E-step of
        the per-component type they restrict, with their factor repeated
        for every component.
        """
        return _engine_covariance_type(self.covariance_type), _per_component(
            self.precisions_cholesky_, self.covariance_type, self.n_components
        )

    # The model's maths for the shared EM loop.
    def _weighted_log_prob_function(self):
        engine_type, precisions_chol = self._engine_parameters()
        return partial(
            _weighted_log_gaussian_prob,
            means=self.means_,
            precisions_chol=precisions_chol,
            covariance_type=engine_type,
            log_w=np.log(self.weights_),
        )

    def _e_step_statistics(self, data):
        # Second moments are accumulated around the current means. When the
        # new means land far from them (relative to the new covariances:
        # means_init far from the data, a float32 fit's first steps), moving
        # the moments to the new means would cancel most of their digits, so
        # the same E-step is run again around the new means. See
        # _recentred_shift. (The missing-value kernels accumulate around the
        # means: data with NaN takes one pass.)
        self._moments_shift = self.means_
        direct = self._uses_direct_form(data)
        if direct:
            engine_type, precisions_chol = self._engine_parameters()
            stats = data.map_reduce(
                partial(
                    _direct_e_step_chunk,
                    means=self.means_.astype(np.float64, copy=False),
                    precisions_chol=precisions_chol.astype(np.float64, copy=False),
                    covariance_type=engine_type,
                    log_w=np.log(self.weights_.astype(np.float64, copy=False)),
                )
            )
        elif self._fits_on_blas_threads(data):
            # The fit's limit is lifted for this E-step alone.
            release_blas_limit()
            with blas_limit_for(0):
                stats = super()._e_step_statistics(data)
        else:
            stats = super()._e_step_statistics(data)
        if not _all_finite(stats.values()):
            # Only sums of squares beyond the float range get here (X and
            # the weights are finite, the weights normalised). A float32
            # fit's E-steps go on in float64 (from given parameters, which
            # skip _initial_resp's check). Moments moved to means far from
            # the data (a means_init of 1e200, which scikit-learn fits) are
            # accumulated again around the new means, as below; the data's
            # own squares cannot be helped.
            if self._dtype() == np.float32 and not getattr(
                self, "_float64_e_steps", False
            ):
                self._float64_e_steps = True
                return self._e_step_statistics(data)
            if (
                data.has_missing is False
                and self._moments_shift is self.means_
                and _all_finite((stats["nk"], stats["sx"]))
            ):
                self._moments_shift = self._means_from_statistics(stats)
                stats = self._keep_negligible_mass(
                    data, super()._e_step_statistics(data)
                )
                if _all_finite(stats.values()):
                    return stats
            chol = np.abs(self.precisions_cholesky_)
            if chol.max() > math.sqrt(float(np.finfo(chol.dtype).max)):
                # Not the data's squares but the precisions, of variances
                # near the smallest normal number (data at 1e-160 with
                # reg_covar=0; scikit-learn's fit returns NaN there).
                raise _variance_range_error(data.X, chol.dtype)
            raise _magnitude_error(data.X)
        if data.has_missing is not False:
            return stats
        if not direct:
            # (The direct form keeps every mass.)
            stats = self._keep_negligible_mass(data, stats)
        shift = _recentred_shift(
            stats,
            self.means_,
            self.reg_covar,
            _engine_covariance_type(self.covariance_type),
            self._dtype(),
            far=self._tolerates_overflow(),
        )
        if shift is not None:
            self._moments_shift = shift
            stats = self._keep_negligible_mass(data, super()._e_step_statistics(data))
        return stats

    def _keep_negligible_mass(self, data, stats):
        """The fused E-step's ``stats``, or the same E-step keeping every mass.

        The fused E-step drops masses below ``2^-64`` of their row's
        largest, except for components lighter than ``2^-30`` (see
        :func:`~._suffstats.negligible_floor`): a component's sums lose
        less than ``2^-64`` per row. A component that had weight but now
        has less than ``2^-34`` of the total (one far from every row,
        ``means_init`` far from the data) may be made of such masses: its
        E-step is then run again keeping them all, as scikit-learn's
        (exact zeros only below the smallest normal number). (float32
        models too: their chunks may compute in float64.)
        """
        if getattr(self, "_exact_e_step", False):
            return stats
        low = stats["nk"] < float(stats["sum_weight"]) * 2.0**-34
        if not low.any():
            return stats
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights_.astype(np.float64))
        if not np.any(low & (log_w >= _LOG_LIGHT_COMPONENT)):
            return stats
        self._exact_e_step = True
        try:
            return super()._e_step_statistics(data)
        finally:
            del self._exact_e_step

    def _uses_direct_form(self, data):
        """Whether the E-step on ``data`` takes :func:`_direct_e_step_chunk`.

        Complete data in memory (float32 computed in float64) and at most
        ``_DIRECT_VALUES`` differences ``n_samples x n_features x
        n_components``; diagonal and spherical covariances from
        ``_DIRECT_WIDE_FEATURES`` features up to twice as many, tied ones up
        to ``_DIRECT_TIED_VALUES``, both up to three times ``_DIRECT_VALUES``
        with fewer than ``_DIRECT_FEW_ROWS_PER_COMPONENT`` rows a component;
        full covariances of float64 data on few rows up to
        ``_DIRECT_FULL_VALUES``.
        """
        if not isinstance(data, ArrayData) or data.has_missing is not False:
            return False
        n_samples, n_features = data.shape
        limit = _DIRECT_VALUES
        n_values = n_samples * n_features * self.n_components
        engine_type = _engine_covariance_type(self.covariance_type)
        few_rows = n_samples < _DIRECT_FEW_ROWS_PER_COMPONENT * self.n_components
        if engine_type in ("diag", "spherical") and n_features >= _DIRECT_WIDE_FEATURES:
            # Their products with the precisions are long enough there: per
            # iteration, alternated (direct against fused, ms), the direct
            # form is ahead up to twice the differences (100 x 16, K = 40:
            # 0.34 against 0.37; 1,000 x 16, K = 3: 0.27 against 0.29;
            # 100 x 32, K = 20: 0.31 against 0.34), and beyond only on rows
            # so few that the fused form's guard computes most components
            # directly (30 x 200, K = 12: 0.35 against 0.39; float32, 0.36
            # against 0.48). Elsewhere the fused form is ahead: 100 x 64,
            # K = 12, 0.34 against 0.25 (float32 0.36 against 0.31); K = 20,
            # 0.56 against 0.27-0.33; 100 x 100, K = 12, 0.51 against 0.41-0.43;
            # 300 x 64, K = 6, 0.49 against 0.27; 30 x 200, K = 20, 0.52-0.55
            # against 0.45-0.49. (At 300 x 16, K = 12, and 300 x 32, K = 6,
            # within twice the differences, the fused form is 15% ahead: no
            # rule measured told them from the shapes above.)
            limit = 3 * _DIRECT_VALUES if few_rows else 2 * _DIRECT_VALUES
        elif engine_type == "tied":
            # Tied covariances' fused form has no per-component products:
            # per iteration (direct against fused, ms) it is ahead from about
            # 20,000 differences (100 x 16, K = 20: 0.38 against 0.30; 300 x
            # 16, K = 6: 0.34 against 0.30; 200 x 32, K = 4: 0.35 against
            # 0.33), the direct form below (100 x 64, K = 3: 0.49 against
            # 0.53; 300 x 4, K = 20: 0.28 against 0.29) and, again, on fewer
            # than _DIRECT_FEW_ROWS_PER_COMPONENT rows a component (30 x 64,
            # K = 20: 0.78 against 0.99; 30 x 128, K = 20: 2.18 against 2.32).
            limit = 3 * _DIRECT_VALUES if few_rows else _DIRECT_TIED_VALUES
        elif (
            self.covariance_type == "full"
            and data.dtype == np.float64
            and n_samples <= _DIRECT_FULL_SAMPLES
            and n_samples <= _DIRECT_FULL_SAMPLES_PER_FEATURE * n_features
        ):
            # Few rows per feature: the fused forms' costs per component (the
            # expanded coefficients, D (D + 1) / 2 of them, and the factors'
            # inverses for the precision guard, D^3 / 3 operations) and the
            # quadratic features outweigh the direct form's K D^2 products
            # a row. Alternated per iteration (direct against fused, ms):
            # 100 x 64, K = 40: 6.3 against 11.2 (scikit-learn 6.9); K = 12:
            # 2.2 against 2.8 (2.3); 100 x 16, K = 12: 0.43 against 0.73;
            # 300 x 32, K = 12: 1.36 against 1.80; 240 x 24, K = 40: 2.3
            # against 3.0; 100 x 200, K = 12: 24 against 30. More rows per
            # feature, or more than 320 rows, and the fused forms were
            # ahead or even (500 x 64, K = 12: 5.2 against 4.5; 1,000 x 16,
            # K = 12: 1.6 against 1.2; 300 x 64, K = 12: 3.8 against 3.6).
            # float64 only: float32 data's fused forms compute in float32,
            # the direct form in float64 (300 x 64, K = 8: 3.9 against 2.1
            # ms an iteration).
            limit = _DIRECT_FULL_VALUES
        return n_values <= limit

    def _initial_resp(self, X, sample_weight, random_state, magnitude=None, **kwargs):
        # Before k-means squares the data (in memory: X or Dask's sample).
        # Where k-means's sums could overflow it runs on the data scaled by
        # a power of two (the same labels where they do not), and float32
        # data whose sums of squares float32 cannot hold is fitted with
        # float64 E-steps and initial statistics (scikit-learn's float32 fit
        # returns NaN or fails there).
        X, sums = _scaled_for_kmeans(X, sample_weight, magnitude)
        if sums and X.dtype == np.float32:
            self._float64_e_steps = True
        self._near_float_range = sums
        return super()._initial_resp(X, sample_weight, random_state, **kwargs)

    def _tolerates_overflow(self):
        # Whether the recentring test and the M-step's pooled sums may meet
        # values beyond the float range: means the user gave (far beyond
        # the data), or data near that range.
        return self._given_means or self._near_float_range

    def _shift(self):
        # Where the last E-step's second moments are (until the M-step).
        return getattr(self, "_moments_shift", self.means_)

    def _dtype(self):
        # The model's dtype is fixed by its first fit (or the current fit).
        return np.dtype(getattr(self, "_fit_dtype", None) or self.means_.dtype)

    def _e_step_chunk_function(self):
        # The fused E-step: one feature matrix per chunk for both halves.
        dtype = self._dtype()
        if getattr(self, "_float64_e_steps", False):
            dtype = np.dtype(np.float64)
        shift = getattr(self, "_moments_shift", None)
        recentred = shift is not None and shift is not self.means_
        exact = getattr(self, "_exact_e_step", False)
        parameters = self._fused_parameters(
            dtype, recentred=recentred, paired=not exact
        )
        # Masses negligible next to their row's largest are not computed
        # (see _keep_negligible_mass).
        floor = None
        log_w = parameters["log_w"]
        if not exact:
            floor = (
                negligible_floor(log_w)
                if log_w.dtype == np.float64
                else _FLOAT32_LOG_FLOOR
            )
        return partial(
            _gaussian_e_step_chunk,
            shift=shift if recentred else None,
            floor=floor,
            **parameters,
        )

    def _log_prob_chunk_function(self, dtype):
        # Prediction on the E-step's fused features, in the chunks' dtype.
        # The coefficients depend on the fitted parameters only: on small
        # data computing them was a third of a prediction (0.5 of 1.4 ms on
        # 2,000 x 4), so they are kept for as long as the parameters are
        # equal (compared by value: attributes may be set by hand).
        if (
            self.covariance_type == "tied"
            and self.n_components == 1
            and self.means_.shape[1] >= _UNCACHED_TIED_FEATURES
        ):
            # One tied component: its coefficients (one product with the
            # factor) cost less than comparing the factor with the cached
            # one (2,000 features: 0.85 against 1.9 ms).
            return partial(
                _gaussian_log_prob_chunk, **self._fused_parameters(dtype, fitting=False)
            )
        key = (
            np.dtype(dtype),
            self.covariance_type,
            self.weights_,
            self.means_,
            self.precisions_cholesky_,
        )
        # (Kept outside the estimator: predicting must not change its
        # __dict__.)
        cached = _PREDICTION_CACHE.get(self)
        if cached is None or not _same_key(cached[0], key):
            key = key[:2] + tuple(np.array(value, copy=True) for value in key[2:])
            cached = (key, self._fused_parameters(dtype, fitting=False))
            _PREDICTION_CACHE[self] = cached
        return partial(_gaussian_log_prob_chunk, **cached[1])

    def _fused_parameters(
        self, dtype, recentred=False, expanded=None, paired=False, fitting=True
    ):
        """Keyword arguments of the fused kernels, for chunks of ``dtype``.

        ``recentred``: the E-step accumulates its second moments around
        ``_moments_shift``, not the means (see :meth:`_e_step_statistics`).
        ``expanded``: a dict of the expanded coefficients already computed,
        around ``"zero"`` and the ``"centre"`` (float64 whatever the chunks'
        dtype), filled in here: a float32 model's chunks that fall back to
        float64 reuse them.
        ``paired``: for a fit's E-step, whose float32 chunks may compute
        their direct diagonal and spherical components by surviving pairs
        (see :func:`_surviving_direct_pairs`).
        ``fitting``: False for a prediction's kernels (see
        :func:`_prefer_per_component`).
        """
        dtype = np.result_type(dtype, self._dtype())
        engine_type, precisions_chol = self._engine_parameters()
        log_w = np.log(self.weights_.astype(np.float64, copy=False))

        def in_dtype(dtype):
            return dict(
                means=self.means_.astype(dtype, copy=False),
                precisions_chol=precisions_chol.astype(dtype, copy=False),
                covariance_type=engine_type,
                log_w=log_w.astype(dtype, copy=False),
            )

        parameters = in_dtype(dtype)
        n_features = self.means_.shape[1]
        limit = _expansion_limit(
            dtype, n_features if engine_type in ("diag", "spherical") else 0
        )
        # Centred on the mixture's mean, or on the mean of the points the
        # moments go around when they are not the means.
        anchor = self._moments_shift if recentred else self.means_
        weights = self.weights_.astype(np.float64, copy=False)
        centre = weights @ anchor.astype(np.float64, copy=False)
        # A float32 chunk's features are centred on the centre in float32:
        # the coefficients must expand around that same point (a float32
        # centre 1e5 from the origin is 3e-3 away from its float64 value,
        # which moved a row's log-densities by about D times that). Rounded
        # to the model's dtype, not the chunks': a float32 model's chunks
        # computed in float64 reuse these coefficients (``expanded``).
        centre = centre.astype(self._dtype(), copy=False).astype(np.float64, copy=False)
        expanded = {} if expanded is None else expanded
        blocks = _feature_blocks(engine_type, n_features, dtype) and not recentred
        if blocks and "zero" not in expanded and fitting and self._zero_skips > 0:
            # Refused far beyond the limit at a recent E-step of this fit:
            # not tried again yet (see _ZERO_SKIPS).
            self._zero_skips -= 1
            expanded["zero"] = None
        if (
            blocks
            and expanded.get("zero", ()) is not None
            and not _refused_at_zero(self.means_, precisions_chol, dtype)
        ):
            # Diagonal (and wide spherical) covariances around zero when the
            # expansion there is within the precision budget for every
            # component (data near the origin: standardised, or 'iris'): the
            # E-step's features are then x ** 2 (|x|^2) and x itself, without
            # the centring pass (a fifth of an iteration at 100,000 x 128,
            # K = 2).
            zero = np.zeros(len(centre))
            if "zero" not in expanded:
                expanded["zero"] = _expanded_coefficients(
                    self.means_,
                    precisions_chol,
                    engine_type,
                    log_w,
                    zero,
                    far=self._given_means,
                )
            coef, intercept, cancelled = expanded["zero"]
            if fitting:
                # (A float32 model's chunks that fall back to float64 judge
                # the same coefficients again, by float64's limit.)
                refused = cancelled.max() > _ZERO_SKIP_MARGIN * limit
                self._zero_skips = _ZERO_SKIPS if refused else 0
            if (cancelled <= limit).all():
                return dict(
                    parameters,
                    centre=zero.astype(dtype, copy=False),
                    coef=coef.astype(dtype, copy=False),
                    intercept=intercept.astype(dtype, copy=False),
                    direct=np.arange(0),
                )
        if self._uses_per_component_form(n_features, dtype, fitting):
            return self._per_component_parameters(
                parameters, precisions_chol, centre, dtype, recentred
            )
        if "centre" not in expanded:
            expanded["centre"] = _expanded_coefficients(
                self.means_,
                precisions_chol,
                engine_type,
                log_w,
                centre,
                far=self._given_means,
            )
        coef, intercept, cancelled = expanded["centre"]
        # (NaN too: precisions beyond the float range, of variances near the
        # smallest normal number, whose factors the direct form reads.)
        direct = np.flatnonzero(~(cancelled <= limit))
        # Where float32's expansion would cancel too many digits for more
        # than a few components (most of them from about 32 features with
        # full covariances), computing them directly on top of the expanded
        # products made float32 fits up to 3x slower than float64 ones
        # (100,000 x 32, K = 64; 100,000 x 16, K = 64, with 9 of them:
        # 0.74x): the chunks are computed in float64 instead.
        # A diagonal expansion is so cheap that one direct component costs
        # more than float32 saves (100,000 x 16, K = 16: 18.7 ms per
        # iteration, 15.8 in float64), unless a fit's E-step computes it
        # only where its mass survives: tight components far from the
        # centre, near few rows (1,000 x 64, K = 40, with 5 of them: a
        # default float32 fit takes 0.89 of its time in float64), from
        # _FLOAT32_PAIRED_FEATURES features and for up to one component in
        # eight: 2 of 8 components whose pairs kept a quarter of the rows
        # each (50,000 x 64, direct as far from a centre moved by far
        # clusters) took 1.37x the time of float64 chunks.
        if engine_type in ("full", "tied"):
            allowed = self.n_components / 16
        elif paired and not recentred and n_features >= _FLOAT32_PAIRED_FEATURES:
            allowed = self.n_components / 8
        else:
            allowed = 0
        if dtype == np.float32 and len(direct) > allowed:
            if _feature_blocks(engine_type, n_features, np.float64):
                # float64 may expand around zero (see above); if not, around
                # the centre with these coefficients.
                return self._fused_parameters(
                    np.float64, recentred, expanded, paired, fitting
                )
            # The same coefficients (computed in float64), float64's limit.
            dtype = np.dtype(np.float64)
            parameters = in_dtype(dtype)
            direct = np.flatnonzero(~(cancelled <= _expansion_limit(dtype)))
        if (
            engine_type == "full"
            and n_features >= 16
            and len(direct)
            and 4 * len(direct) >= self.n_components
            and not recentred
        ):
            # A quarter of the components or more computed directly on top
            # of the expanded products (ill-conditioned covariances:
            # standardised breast cancer, 569 x 30, has 1 of 4 and 3 of 8):
            # the per-component form, whose centred factors lose only
            # kappa_k's digits, computes fewer of them directly and builds
            # no quadratic features (there 1.5-2x faster an iteration for
            # every K from 2 to 15).
            return self._per_component_parameters(
                parameters, precisions_chol, centre, dtype, recentred
            )
        if recentred:
            # A second pass (see _e_step_statistics), for data far from the
            # model: every component in the direct form, as scikit-learn.
            direct = np.arange(self.n_components)
        # The direct components' products skip the factors' zero blocks.
        triangle = None
        if len(direct) and engine_type in ("full", "tied"):
            triangle = _triangle(parameters["precisions_chol"])
        return dict(
            parameters,
            centre=centre.astype(dtype, copy=False),
            coef=coef.astype(dtype, copy=False),
            intercept=intercept.astype(dtype, copy=False),
            direct=direct,
            triangle=triangle,
        )

    def _per_component_parameters(
        self, parameters, precisions_chol, centre, dtype, recentred
    ):
        """The per-component form's part of :meth:`_fused_parameters`.

        No quadratic features: an augmented factor per component, and the
        mean's difference first where the centred sums would lose more than
        the expanded form is allowed to.
        """
        triangle = _triangle(parameters["precisions_chol"])
        factors, kappa = _per_component_factors(
            self.means_, precisions_chol, centre, triangle
        )
        # The log-densities lose about eps sqrt(kappa_k) (see
        # _PER_COMPONENT_ROUNDING); the scatters, moved from the centre to
        # the component's shift, about eps kappa_k / D of a covariance.
        direct = np.flatnonzero(kappa > _per_component_limit(dtype))
        if recentred:
            direct = np.arange(self.n_components)
        if dtype == np.float32:
            # (On separated clusters 10x scikit-learn's float32 error of a
            # covariance): beyond kappa_k = D, around the shift itself.
            far = kappa > _FLOAT32_SCATTER_KAPPA * self.means_.shape[1]
        else:
            # float64's loss, eps kappa_k / D, is far below its budget up to
            # the expansion's limit (beyond it, the direct components' was).
            far = kappa > _expansion_limit(dtype)
        far[direct] = False
        shifted = np.flatnonzero(far)
        factors = factors.astype(dtype)
        stacked = None
        if len(direct) < self.n_components:
            stacked_components = np.ones(self.n_components, dtype=bool)
            stacked_components[direct] = False
            stacked = _LazyStack(factors, np.flatnonzero(stacked_components), triangle)
        return dict(
            parameters,
            per_component=True,
            triangle=triangle,
            centre=centre.astype(dtype),
            coef=factors,
            direct=direct,
            stacked=stacked,
            shifted=shifted,
        )

    def _uses_per_component_form(self, n_features, dtype, fitting=True):
        """Whether the E-step skips the quadratic features (cost model).

        float32 too: its products are on the centred rows (the difference of
        a mean from the centre in float64 inside them), its sums added up in
        float64 from blocks of rows, and components far from the centre
        computed directly, as in the expanded form. (An earlier, uncentred
        float32 per-component E-step lost nats of the lower bound on data
        far from the origin.) ``fitting`` False: a prediction's form.
        """
        return _prefer_per_component(
            _engine_covariance_type(self.covariance_type),
            n_features,
            self.n_components,
            dtype,
            fitting,
        )

    def _accumulate_function(self, shift):
        return partial(
            _accumulate_gaussian,
            shift=shift,
            covariance_type=_engine_covariance_type(self.covariance_type),
            float64=self._initial_float64(),
        )

    def _initial_m_step_window(self):
        # Wide covariances' factorisations on BLAS's threads (see
        # _THREADED_FACTOR_FEATURES), the first M-step's too.
        if getattr(self, "_factors_on_blas_threads", False):
            return contextlib.nullcontext()
        return super()._initial_m_step_window()

    def _initial_float64(self):
        # Whether the initial statistics are computed in float64 whatever
        # the data's dtype: after a float32 start collapsed (below), or for
        # float32 data whose sums of squares could overflow (_initial_resp).
        return getattr(self, "_initial_statistics_in_float64", False) or getattr(
            self, "_float64_e_steps", False
        )

    def _initialize_parameters(self, data, random_state):
        if data.has_missing:
            # The missing-value kernels add up uncentred squares in the data's
            # dtype: data whose squares could overflow there is refused.
            _check_magnitude(data.X, uncentred=True)
        # A component of a few points has a covariance whose smallest
        # eigenvalues are reg_covar: a float32 scatter's rounding (eps |x|^2)
        # can make it indefinite where the exact one is not. Then the same
        # start (the same random draws) is taken again, with the initial
        # statistics computed in float64.
        state = random_state.get_state()
        try:
            super()._initialize_parameters(data, random_state)
        except CollapseError:
            if self._dtype() != np.float32:
                raise
            random_state.set_state(state)
            self._initial_statistics_in_float64 = True
            try:
                super()._initialize_parameters(data, random_state)
            finally:
                del self._initial_statistics_in_float64

    def _statistics_after_collapse(self, data):
        # A float32 E-step's scatter rounds by eps |x - c|^2, which swamps
        # a covariance's smallest eigenvalues when the covariance is very
        # ill-conditioned (a smallest variance 1e-8 of the largest): its
        # M-step gives an indefinite matrix where the float64 one is not
        # (20,000 rows in 48 dimensions with 64 components, the data's
        # variances spread over 8 decades: the float32 fit stopped at its
        # start, 8 nats a row below float64's lower bound, where
        # scikit-learn's float32 fit ran on). The same E-step is computed in
        # float64, as are the rest of this fit's (the precision guard's
        # float64 chunks), as the initialisation does (above).
        if self._dtype() != np.float32 or getattr(self, "_float64_e_steps", False):
            return None
        self._float64_e_steps = True
        return self._e_step_statistics(data)

    # Missing values (NaN): see _missing.py. Used only for data with NaN.
    def _missing_parameters(self):
        # Shared variances use the kernels of the type they restrict; the
        # M-step pools their statistics.
        engine_type, precisions_chol = self._engine_parameters()
        return gaussian_missing_parameters(
            self.means_, precisions_chol, engine_type, self.weights_
        )

    def _missing_e_step_function(self, complete):
        return partial(
            gaussian_missing_e_step_chunk,
            complete=complete,
            **self._missing_parameters(),
        )

    def _missing_log_prob_function(self, complete):
        return partial(
            gaussian_missing_log_prob_chunk,
            complete=complete,
            **self._missing_parameters(),
        )

    def _statistics_from_resp(self, data, resp):
        # (Near the float range, sums beyond it are checked below, without
        # overflow warnings.)
        with _overflow_guard(self._near_float_range):
            stats = self._initial_statistics(data, resp)
        if (
            self._near_float_range
            and data.dtype != np.float32
            and not _all_finite(stats.values())
        ):
            # Sums of squares beyond the float range, as in
            # _e_step_statistics, where _initial_resp found they could be
            # (float32 data whose sums float32 cannot hold has them in
            # float64).
            raise _magnitude_error(data.X)
        return stats

    def _initial_statistics(self, data, resp):
        # The statistics of the initial responsibilities (or labels).
        if resp.ndim == 1 and not data.has_missing and isinstance(data.X, np.ndarray):
            # k-means labels: one pass over each cluster's own rows.
            return _partition_statistics(
                data.X,
                data.sample_weight,
                resp,
                self.n_components,
                covariance_type=_engine_covariance_type(self.covariance_type),
                float64=self._initial_float64(),
                n_jobs=self.n_jobs,
            )
        resp = _dense_resp(resp, self.n_components, data.dtype)
        if data.has_missing:
            # Available-case moments first, then the expected statistics
            # under them (see gaussian_initial_statistics).
            engine_type = _engine_covariance_type(self.covariance_type)
            first = data.map_reduce(
                partial(
                    resp_chunk,
                    accumulate=partial(
                        _initial_missing_accumulate,
                        covariance_type=engine_type,
                        moments=None,
                    ),
                ),
                resp,
            )
            moments = available_case_moments(first)
            stats = data.map_reduce(
                partial(
                    resp_chunk,
                    accumulate=partial(
                        _initial_missing_accumulate,
                        covariance_type=engine_type,
                        moments=moments,
                    ),
                ),
                resp,
            )
            if "pair_weight" in stats:
                stats = pairwise_initial_covariances(stats)
            return stats
        stats = super()._statistics_from_resp(data, resp)
        if self.covariance_type == "tied" and not np.allclose(resp.sum(axis=1), 1):
            # scikit-learn's tied M-step uses the rows' total second moment
            # sum_n w_n x_n x_n^T, which equals the responsibility-weighted
            # one only when every row's responsibilities sum to one. At
            # initialisation from data points ('random_from_data',
            # 'k-means++') they do not; reproduce its initial covariance.
            stats["row_scatter"] = data.map_reduce(_row_scatter)["row_scatter"]
        return stats

    def _means_from_statistics(self, stats):
        # The guard of _estimate_gaussian_parameters.
        nk = np.maximum(stats["nk"], 10 * np.finfo(self._dtype()).eps)
        return stats["sx"] / nk[:, np.newaxis]

    def _m_step(self, stats, initial=False):
        # The M-step consumes the E-step's shift (see _e_step_statistics).
        moments_shift = self.__dict__.pop("_moments_shift", None)
        if initial:
            shift = self._means_from_statistics(stats)
        else:
            shift = self.means_ if moments_shift is None else moments_shift
        if "sxx" not in stats:  # pragma: no cover - defensive
            raise ValueError("second moments are missing from the statistics")
        dtype = self._dtype()
        nk, means, covariances = _estimate_gaussian_parameters(
            stats,
            shift,
            self.reg_covar,
            self.covariance_type,
            dtype=dtype,
            near_range=self._tolerates_overflow(),
        )
        if "row_scatter" in stats:
            means64 = means.astype(np.float64)
            scatter = stats["row_scatter"] - (nk * means64.T) @ means64
            covariances = (scatter / nk.sum()).astype(means.dtype)
            covariances.flat[:: means.shape[1] + 1] += self.reg_covar
        if self.weights == "uniform":
            weights = np.full(self.n_components, 1 / self.n_components, nk.dtype)
        else:
            weights = nk / nk.sum()
        if initial:
            if self._weights_init is not None:
                weights = self._weights_init.astype(nk.dtype)
            if self._means_init is not None:
                means = self._means_init.astype(nk.dtype)
            self._given_means = self._means_init is not None
            if self._precisions_init is not None:
                self.weights_ = weights.astype(dtype, copy=False)
                self.means_ = means.astype(dtype, copy=False)
                self._set_precisions_from_init()
                return
        # The sums are float64 whatever the data: factorise in float64, then
        # store the parameters in the model's dtype. Nothing is set when a
        # covariance is ill-defined, or beyond the dtype's range (float32
        # data near its limit, whose float64 sums do not overflow: the
        # initial tied covariance from data points, scikit-learn's, is
        # n_samples / n_components times the data's; a covariance's largest
        # entry is on its diagonal, so one maximum checks it).
        # (Only a first M-step or float32 data whose sums need float64 can
        # get there: the data's extent bounds the others.)
        if (
            dtype == np.float32
            and (initial or getattr(self, "_float64_e_steps", False))
            and covariances.max() > np.finfo(np.float32).max
        ):
            raise ValueError(
                "The fitted covariances are beyond float32's range: X's values "
                "are too large for a Gaussian mixture in float32. Scale the "
                "data, for instance with sklearn.preprocessing.StandardScaler, "
                "or fit it in float64: X.astype(numpy.float64)."
            )
        precisions_cholesky = _compute_precision_cholesky(
            covariances,
            self.covariance_type,
            dtype=dtype,
            regularised=self.reg_covar > 0,
            blas_threads=getattr(self, "_factors_on_blas_threads", False),
        )
        self.weights_ = weights.astype(dtype, copy=False)
        self.means_ = means.astype(dtype, copy=False)
        self.covariances_ = covariances.astype(dtype, copy=False)
        self.precisions_cholesky_ = precisions_cholesky.astype(dtype, copy=False)
        if not initial:
            self._given_means = False

    def _get_parameters(self):
        return (
            self.weights_,
            self.means_,
            self.covariances_,
            self.precisions_cholesky_,
        )

    def _set_parameters(self, params):
        (
            self.weights_,
            self.means_,
            self.covariances_,
            self.precisions_cholesky_,
        ) = params
        self.precisions_ = _precisions_from_cholesky(
            self.precisions_cholesky_, self.covariance_type
        )

    def _n_parameters(self):
        n_features = self.means_.shape[1]
        cov_params = {
            "full": self.n_components * n_features * (n_features + 1) / 2.0,
            "diag": self.n_components * n_features,
            "tied": n_features * (n_features + 1) / 2.0,
            "spherical": self.n_components,
            "tied_diag": n_features,
            "tied_spherical": 1,
        }[self.covariance_type]
        mean_params = n_features * self.n_components
        weight_params = self.n_components - 1 if self.weights == "learn" else 0
        return int(cov_params + mean_params + weight_params)

    def _sample_components(self, rng, n_samples_comp):
        n_features = self.means_.shape[1]
        means, covariances = self.means_, self.covariances_
        if covariances.dtype != np.float64:
            # Samples are float64, as scikit-learn's; a float32 covariance is
            # symmetric only to float32 precision, which NumPy rejects.
            means = means.astype(np.float64)
            covariances = covariances.astype(np.float64)
            if self.covariance_type in ("full", "tied"):
                covariances = (covariances + np.swapaxes(covariances, -1, -2)) / 2
        if self.covariance_type == "full":
            parts = [
                rng.multivariate_normal(mean, covariance, int(n))
                for mean, covariance, n in zip(means, covariances, n_samples_comp)
            ]
        elif self.covariance_type == "tied":
            parts = [
                rng.multivariate_normal(mean, covariances, int(n))
                for mean, n in zip(means, n_samples_comp)
            ]
        else:
            covariances = _per_component(
                covariances, self.covariance_type, self.n_components
            )
            parts = [
                mean + rng.standard_normal(size=(n, n_features)) * np.sqrt(covariance)
                for mean, covariance, n in zip(means, covariances, n_samples_comp)
            ]
        return np.vstack(parts)


#: Each fitted mixture's prediction coefficients, with the parameters they
#: were computed from (see GaussianMixtureEM._log_prob_chunk_function).
_PREDICTION_CACHE = weakref.WeakKeyDictionary()

#: One tied component of at least this many features computes its
#: prediction coefficients afresh rather than comparing its factor with the
#: cached one's (768 features: 0.083 against 0.099 ms; 512: 0.059 against
#: 0.055).
_UNCACHED_TIED_FEATURES = 768


def _same_key(cached, key):
    """Whether a cached key of dtype, type and parameter arrays equals ``key``."""
    return cached[:2] == key[:2] and all(
        a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
        for a, b in zip(cached[2:], key[2:])
    )


def _initial_missing_accumulate(X, resp, *, covariance_type, moments):
    """:func:`gaussian_initial_statistics` as a ``resp_chunk`` accumulator.

    ``resp`` is already weighted. The second pass's moments are around the
    available-case means, which equal its ``sx / nk``: the shift the initial
    M-step takes.
    """
    return gaussian_initial_statistics(
        X, None, resp, covariance_type=covariance_type, moments=moments
    )


def _precisions_from_cholesky(precisions_chol, covariance_type):
    """Precisions U U^T from their Cholesky factors, in the same layout."""
    if covariance_type == "full":
        return precisions_chol @ precisions_chol.transpose(0, 2, 1)
    if covariance_type == "tied":
        return precisions_chol @ precisions_chol.T
    return precisions_chol**2


def _covariances_from_precisions_cholesky(precisions_chol, covariance_type):
    """Covariances (U U^T)^-1 from the precisions' Cholesky factors."""
    if covariance_type in ("full", "tied"):
        # (U U^T)^-1 = U^-T U^-1
        full = covariance_type == "full"
        stacked = precisions_chol if full else precisions_chol[None]
        eye = np.eye(stacked.shape[-1], dtype=stacked.dtype)
        # LAPACK's trtrs as scipy.linalg.solve_triangular(u, eye) calls it
        # (the transposed system for a C-ordered factor), without its
        # wrapper's checks (the factors are finite); small solves: see
        # _compute_precision_cholesky.
        (trtrs,) = linalg.get_lapack_funcs(("trtrs",), (stacked, eye))
        inv = np.empty_like(stacked)
        with single_threaded_blas():
            for k, u in enumerate(stacked):
                if u.flags.f_contiguous:
                    inv[k], info = trtrs(u, eye, lower=0, trans=0)
                else:
                    inv[k], info = trtrs(u.T, eye, lower=1, trans=1)
                if info != 0:
                    raise np.linalg.LinAlgError("singular precision factor")
        cov = inv.transpose(0, 2, 1) @ inv
        return cov if covariance_type == "full" else cov[0]
    return 1.0 / precisions_chol**2
