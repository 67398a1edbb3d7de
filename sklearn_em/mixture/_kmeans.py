"""scikit-learn's k-means, run as a faster map over row blocks.

``init_params="kmeans"`` must give the model scikit-learn's
``GaussianMixture`` gives, so its labels are those of
``KMeans(n_clusters=K, n_init=1, random_state=random_state)``. Calling
``KMeans.fit`` costs more than its arithmetic: it validates and copies the
data again, and its Lloyd iterations run on OpenMP threads whose barriers,
on a machine whose cores are busy, wait for a descheduled thread every
iteration (measured on 2 cores under a load of 3-4: 23 ms per iteration at
10,000 x 8 with 2 threads, 0.2 ms with one; 26 ms against 12 ms at
200,000 x 16). This module runs the same computation, step by step:

- the tolerance, centring and squared norms are computed by the same NumPy
  calls as ``KMeans.fit``;
- the seeds are scikit-learn's own ``_kmeans_plusplus``, called with the
  same arrays and ``RandomState``: the same draws, consumed the same way
  (a version computing the candidates' distances block by block on threads
  was no faster: 70 against 59-73 ms at 200,000 x 16, K = 16, its serial
  cumulative sums and products being a third of the time);
- every Lloyd iteration labels the rows with scikit-learn's own Cython
  kernel (``lloyd_iter_chunked_dense`` without its centre update), on
  blocks of whole 256-row chunks, so that its matrix products have the
  shapes, hence the rounding, of ``KMeans``'s;
- the new centres are the weighted sums of each block's rows in row order
  (a sparse one-hot product), added block after block: the blocks are
  those OpenMP's static schedule gives ``KMeans``'s threads, so the sums
  are ``KMeans``'s to the last bit (whatever the thread count for one or
  two threads; beyond, ``KMeans`` adds its threads' sums in whatever order
  they finish, we add them in order);
- empty clusters are relocated, centres averaged and their shift measured
  with the arithmetic of scikit-learn's ``_k_means_common``.

The blocks run on the engine's threads (:mod:`._suffstats`), without
barriers that spin, and only when the data is large enough to pay for them.
"""

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.extmath import row_norms

try:  # scikit-learn's private k-means internals (checked with 1.9)
    from sklearn.cluster._k_means_common import CHUNK_SIZE
    from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense
    from sklearn.cluster._kmeans import _kmeans_plusplus
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
except ImportError:  # pragma: no cover - another scikit-learn layout
    #: False: the mixtures call ``KMeans`` itself.
    AVAILABLE = False
else:
    AVAILABLE = True

from ._suffstats import _MIN_THREADED_BYTES, n_threads, thread_pool

#: scikit-learn's KMeans defaults, which GaussianMixture uses.
_TOL = 1e-4
_MAX_ITER = 300


def kmeans_labels(X, n_clusters, sample_weight, random_state, n_jobs=None):
    """Labels of ``KMeans(n_clusters, n_init=1, random_state).fit(X)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Dense float32 or float64 data (other dtypes are cast to float64, as
        ``KMeans`` does).

    n_clusters : int

    sample_weight : ndarray of shape (n_samples,) or None
        None means all ones.

    random_state : numpy.random.RandomState
        Consumed exactly as ``KMeans.fit`` consumes it.

    n_jobs : int or None, default=None
        Threads over row blocks; see :func:`._suffstats.n_threads`.

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype int32
    """
    return kmeans_lloyd(X, n_clusters, sample_weight, random_state, n_jobs)[0]


def kmeans_lloyd(X, n_clusters, sample_weight, random_state, n_jobs=None):
    """scikit-learn's ``KMeans`` (k-means++, Lloyd, ``n_init=1``) on dense data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    n_clusters : int

    sample_weight : ndarray of shape (n_samples,) or None

    random_state : numpy.random.RandomState

    n_jobs : int or None, default=None

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype int32
        ``KMeans.labels_``.

    centers : ndarray of shape (n_clusters, n_features)
        ``KMeans.cluster_centers_``.

    n_iter : int
        ``KMeans.n_iter_``.
    """
    # KMeans validates to a C-ordered float32 or float64 array: its column
    # sums (the mean, the variances) are added row by row, not pairwise.
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    X = np.ascontiguousarray(X)
    n_samples = X.shape[0]
    if n_samples < n_clusters:
        raise ValueError(f"n_samples={n_samples} should be >= n_clusters={n_clusters}.")
    if sample_weight is None:
        sample_weight = np.ones(n_samples, dtype=X.dtype)
    else:
        sample_weight = np.ascontiguousarray(sample_weight, dtype=X.dtype)
    # KMeans.fit: centre a C-ordered copy, then the rows' squared norms
    # (which k-means++ recomputes in float64 for float32 data).
    X_mean = X.mean(axis=0)
    Xc = X - X_mean
    x_squared_norms = row_norms(Xc, squared=True) if X.dtype == np.float64 else None
    # KMeans._check_params_vs_input's tolerance, np.mean(np.var(X, axis=0))
    # times tol: np.var's mean and deviations are X.mean(axis=0) and Xc, so
    # only the squares are left to add up.
    variances = np.add.reduce(Xc * Xc, axis=0)
    variances /= n_samples
    tol = np.mean(variances) * _TOL
    centers = _kmeans_plusplus(
        Xc,
        n_clusters,
        x_squared_norms=x_squared_norms,
        sample_weight=sample_weight,
        random_state=random_state,
    )[0]
    labels, centers, n_iter = _lloyd(Xc, sample_weight, centers, tol, n_jobs)
    centers += X_mean
    if len(np.unique(labels)) < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({len(np.unique(labels))}) found "
            f"smaller than n_clusters ({n_clusters}). Possibly due to duplicate "
            "points in X.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return labels, centers, n_iter


def _omp_blocks(n_samples, n_omp_threads):
    """Row slices of OpenMP's static schedule of ``KMeans``'s 256-row chunks.

    Parameters
    ----------
    n_samples : int

    n_omp_threads : int
        The threads ``KMeans`` would use (``_openmp_effective_n_threads``).

    Returns
    -------
    blocks : list of slice
        One slice of whole chunks per thread that gets any, in order.
    """
    chunk = min(CHUNK_SIZE, n_samples)
    n_chunks = -(-n_samples // chunk)
    n_omp_threads = max(1, min(n_omp_threads, n_chunks))
    # libgomp's schedule(static): the first n_chunks % T threads get one
    # chunk more than the others.
    q, r = divmod(n_chunks, n_omp_threads)
    blocks, start = [], 0
    for t in range(n_omp_threads):
        stop = start + q + (t < r)
        blocks.append(slice(start * chunk, min(stop * chunk, n_samples)))
        start = stop
    return blocks


def _label_block(X, sample_weight, centers, labels, block, with_sums):
    """Label one block's rows; optionally their per-cluster weighted sums.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,)

    centers : ndarray of shape (n_clusters, n_features)

    labels : ndarray of shape (n_samples,), dtype int32
        Written for the rows of ``block``.

    block : slice

    with_sums : bool

    Returns
    -------
    sums : ndarray of shape (n_clusters, n_features) or None
        ``sum_i w_i x_i`` over the block's rows of each cluster, added in
        row order.

    weights : ndarray of shape (n_clusters,) or None
        ``sum_i w_i`` likewise.
    """
    Xb, wb, lb = X[block], sample_weight[block], labels[block]
    n_clusters = centers.shape[0]
    dummy = np.empty(n_clusters, dtype=X.dtype)
    # One OpenMP thread: the centre update of the kernel is not used, only
    # its labels (the GEMM on 256-row chunks and the first minimum).
    lloyd_iter_chunked_dense(
        Xb, wb, centers, centers, dummy, lb, dummy, 1, update_centers=False
    )
    if not with_sums:
        return None
    m = Xb.shape[0]
    # The block's one-hot matrix in CSC form, column i holding w_i at row
    # labels[i]: its product with the rows adds w_i x_i row after row, as
    # KMeans's thread does.
    onehot = sp.csc_array(
        (wb, lb, np.arange(m + 1, dtype=np.int32)), shape=(n_clusters, m)
    )
    sums = onehot @ Xb
    # In X's dtype, row after row (bincount would add float32 weights in
    # float64).
    weights = onehot @ np.ones(m, dtype=X.dtype)
    return sums, weights


def _serial_labeller(X, sample_weight, blocks, n_clusters):
    """Every block's labels and sums at once, in this thread.

    The same arithmetic as :func:`_label_block` on each block in turn,
    without its per-block calls (two thirds of a Lloyd iteration on a few
    hundred rows): one kernel call labels all the rows (on the same 256-row
    chunks, hence with the same products), and one sparse product adds
    every block's rows, block ``b``'s into rows ``b K`` to ``b K + K - 1``
    of the result, each row in order from zero, as a block's own product
    does. The one-hot matrix is built once and its row indices updated in
    place.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,)

    blocks : list of slice
        The blocks of :func:`_omp_blocks`.

    n_clusters : int

    Returns
    -------
    run : callable
        ``run(centers, labels, with_sums)`` writes the labels and returns,
        if ``with_sums``, one ``(sums, weights)`` per block (None otherwise),
        as the threaded path's list of :func:`_label_block` results.
    """
    n_samples = X.shape[0]
    n_blocks = len(blocks)
    offsets = np.repeat(
        np.arange(n_blocks, dtype=np.int32) * n_clusters,
        [block.stop - block.start for block in blocks],
    )
    onehot = sp.csc_array(
        (sample_weight, offsets.copy(), np.arange(n_samples + 1, dtype=np.int32)),
        shape=(n_blocks * n_clusters, n_samples),
    )
    ones = np.ones(n_samples, dtype=X.dtype)
    dummy = np.empty(n_clusters, dtype=X.dtype)

    def run(centers, labels, with_sums):
        lloyd_iter_chunked_dense(
            X,
            sample_weight,
            centers,
            centers,
            dummy,
            labels,
            dummy,
            1,
            update_centers=False,
        )
        if not with_sums:
            return None
        # One entry per column: the indices stay sorted and canonical.
        np.add(labels, offsets, out=onehot.indices)
        sums = onehot @ X
        weights = onehot @ ones
        return [
            (
                sums[b * n_clusters : (b + 1) * n_clusters],
                weights[b * n_clusters : (b + 1) * n_clusters],
            )
            for b in range(n_blocks)
        ]

    return run


def _relocate_empty_clusters(X, sample_weight, centers_old, sums, weights, labels):
    """``_k_means_common._relocate_empty_clusters_dense``, in place.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,)

    centers_old : ndarray of shape (n_clusters, n_features)

    sums : ndarray of shape (n_clusters, n_features)
        Weighted sums of each cluster's rows; updated.

    weights : ndarray of shape (n_clusters,)
        Sums of each cluster's weights; updated.

    labels : ndarray of shape (n_samples,)
    """
    empty = np.where(np.equal(weights, 0))[0].astype(np.int32)
    n_empty = empty.shape[0]
    if n_empty == 0:
        return
    distances = ((X - centers_old[labels]) ** 2).sum(axis=1)
    far = np.argpartition(distances, -n_empty)[: -n_empty - 1 : -1].astype(np.int32)
    if np.max(distances) == 0:
        return
    for new_id, far_idx in zip(empty, far):
        weight = sample_weight[far_idx]
        old_id = labels[far_idx]
        sums[old_id] -= X[far_idx] * weight
        sums[new_id] = X[far_idx] * weight
        weights[new_id] = weight
        weights[old_id] -= weight


def _average_centers(centers, weights):
    """``_k_means_common._average_centers``, in place.

    Parameters
    ----------
    centers : ndarray of shape (n_clusters, n_features)
        The weighted sums; overwritten by the means.

    weights : ndarray of shape (n_clusters,)
    """
    argmax = np.argmax(weights)
    for j in range(centers.shape[0]):
        if weights[j] > 0:
            # 1.0 / w in double, then rounded to the centres' dtype.
            centers[j] *= centers.dtype.type(1.0 / float(weights[j]))
        else:
            # An empty cluster takes the biggest one's centre, as it is at
            # this point of the loop (already averaged if before it).
            centers[j] = centers[argmax]


def _center_shift(centers_old, centers_new):
    """``_k_means_common._center_shift``: distances between the centres.

    Parameters
    ----------
    centers_old, centers_new : ndarray of shape (n_clusters, n_features)

    Returns
    -------
    center_shift : ndarray of shape (n_clusters,)
        Summed as the Cython kernel sums: groups of four features, each
        group added left to right, then the remainder one by one.
    """
    diff = centers_new - centers_old
    sq = diff * diff
    n_features = sq.shape[1]
    n4 = n_features // 4
    result = np.zeros(sq.shape[0], dtype=sq.dtype)
    for g in range(n4):
        group = sq[:, 4 * g] + sq[:, 4 * g + 1]
        group += sq[:, 4 * g + 2]
        group += sq[:, 4 * g + 3]
        result += group
    for k in range(4 * n4, n_features):
        result += sq[:, k]
    return np.sqrt(result)


def _lloyd(X, sample_weight, centers_init, tol, n_jobs=None):
    """``_kmeans._kmeans_single_lloyd`` over row blocks on threads.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Centred, C-ordered data.

    sample_weight : ndarray of shape (n_samples,)
        Of ``X``'s dtype.

    centers_init : ndarray of shape (n_clusters, n_features)

    tol : float
        The absolute tolerance on the squared centre shift.

    n_jobs : int or None, default=None

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype int32

    centers : ndarray of shape (n_clusters, n_features)

    n_iter : int
    """
    n_samples = X.shape[0]
    n_clusters = centers_init.shape[0]
    blocks = _omp_blocks(n_samples, _openmp_effective_n_threads())
    if len(blocks) == 1 or (
        n_jobs is None and n_samples * n_clusters * X.itemsize < _MIN_THREADED_BYTES
    ):
        threads = 1
    else:
        threads = min(n_threads(n_jobs), len(blocks))
    if threads == 1:
        run = _serial_labeller(X, sample_weight, blocks, n_clusters)
    else:
        pool = thread_pool(threads)

        def run(centers, labels, with_sums):
            def task(block):
                return _label_block(X, sample_weight, centers, labels, block, with_sums)

            return list(pool.map(task, blocks))

    centers = np.array(centers_init, dtype=X.dtype, order="C", copy=True)
    labels = np.full(n_samples, -1, dtype=np.int32)
    labels_old = labels.copy()
    strict_convergence = False
    for n_iter in range(1, _MAX_ITER + 1):  # noqa: B007
        results = run(centers, labels, True)
        sums, weights = results[0][0].copy(), results[0][1].copy()
        for block_sums, block_weights in results[1:]:
            sums += block_sums
            weights += block_weights
        _relocate_empty_clusters(X, sample_weight, centers, sums, weights, labels)
        _average_centers(sums, weights)
        center_shift = _center_shift(centers, sums)
        centers = sums
        if np.array_equal(labels, labels_old):
            strict_convergence = True
            break
        if (center_shift**2).sum() <= tol:
            break
        labels_old[:] = labels
    if not strict_convergence:
        # Labels that match the final centres.
        run(centers, labels, False)
    return labels, centers, n_iter
