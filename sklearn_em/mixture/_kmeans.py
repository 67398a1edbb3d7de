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

- the tolerance, centring and squared norms are ``KMeans.fit``'s to the
  last bit (its column sums, NumPy's row-by-row reductions, from one
  ``einsum`` loop in the same order: :func:`._suffstats.column_sums`);
- the seeds are scikit-learn's ``_kmeans_plusplus``, run with the same
  arrays and ``RandomState`` (for float64, by :func:`kmeans_plusplus`, the
  same arithmetic without its dispatch): the same draws, consumed the same way;
  on large data each step's distances are one product into a reused
  buffer, finished in cache-sized blocks (:func:`_candidate_distances`),
  and on large float64 data split over the engine's threads by rows
  (:func:`_threaded_candidate_distances`), whose workers, unlike BLAS's, do not
  busy-wait on the cores after the seeding; each step's draws are placed in
  the cumulative sum of the weighted distances from blocked sums, without
  the whole sum unless a draw falls within its rounding
  (:func:`_cumulative_search`);
- every Lloyd iteration labels the rows with scikit-learn's own Cython
  kernel (``lloyd_iter_chunked_dense`` without its centre update), on
  blocks of whole 256-row chunks, so that its matrix products have the
  shapes, hence the rounding, of ``KMeans``'s; or, where distances cost
  more than their bookkeeping (``n_features x n_clusters >= 256`` on
  8,192 rows or more, ``>= 1024`` on fewer), from
  the second iteration on, only the rows that Hamerly's distance bounds do
  not keep in their cluster are compared with the centres, with a margin
  for the kernel's rounding, and near-ties go to the kernel (see
  :class:`_BoundedLabeller`): 200,000 x 16 rows in 16 clusters take 1.4x
  less time, 100,000 x 64 in 64 clusters 2.3x;
- the new centres are the weighted sums of each block's rows in row order
  (a sparse one-hot product), added block after block: the blocks are
  those OpenMP's static schedule gives ``KMeans``'s threads, so the sums
  are ``KMeans``'s to the last bit (whatever the thread count for one or
  two threads; beyond, ``KMeans`` adds its threads' sums in whatever order
  they finish, we add them in order);
- from the third iteration on (float64 rows of unit weight, with bounds),
  the sums are moved by the few rows that changed cluster, and a bound on
  their distance from ``KMeans``'s sums goes with them
  (:class:`_CertifiedSums`): the bounds on the distances widen by a few
  ``1e-12`` of the largest row norm, near-ties are labelled by the kernel
  from ``KMeans``'s own centres, computed then, and the tolerance test is
  decided from the bounds unless it is too close to call, when it is
  ``KMeans``'s own; the labels, iteration count and final centres stay
  ``KMeans``'s to the last bit (200,000 x 16 in 16 clusters: the later
  iterations 24 -> 16 ms);
- empty clusters are relocated, centres averaged and their shift measured
  with the arithmetic of scikit-learn's ``_k_means_common``.

The iterations that compute every row's distances (the kernel's, and the
second, which sets the bounds) run their blocks on the engine's threads
(:mod:`._suffstats`), without barriers that spin, and only when the data is
large enough to pay for them; the later ones, a few passes of bookkeeping
and the sums of the few clusters whose rows changed, run in one thread,
which waits on no other for the GIL.
"""

import math
import warnings
from contextlib import nullcontext
from functools import cache, partial

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

from ._suffstats import (
    _MIN_THREADED_BYTES,
    column_sums,
    map_in_threads,
    n_threads,
    release_blas_limit,
    single_threaded_blas,
    split_range,
    subtract_centre,
    workspace,
)

#: Columns of k-means++'s distances computed at a time after their product
#: (see _candidate_distances).
_DISTANCE_BLOCK = 32768

#: k-means++ reuses buffers for its distances from this many values a step.
_BUFFERED_DISTANCES = 2**15

#: k-means++ splits float64 distances over the engine's threads from this
#: many a step (candidates x rows x features; see kmeans_lloyd): below, a
#: step's pool dispatch cost what it saved (70,000 x 16, three candidates:
#: 1.03x; 200,000 x 16 with four: 0.94x, and 0.7x at 100,000 x 64 with six;
#: whole fits, see kmeans_lloyd).
_THREADED_SEEDING = 2**23

#: With threads, k-means++'s first centre's distances are split over them
#: from this many values a thread (rows x features): each thread's product
#: then stays past OpenBLAS's small-matrix kernels (at most 100^3
#: multiply-adds), whose rounding may differ from the whole product's.
_THREADED_FIRST = 2**20

#: k-means++ draws its candidates without the whole cumulative sum of the
#: weighted distances (see :func:`_cumulative_search`) from this many rows a
#: candidate, summed in blocks of ``_SEARCH_BLOCK``: each draw costs about
#: 7 us, the cumulative sum 2.7 ns a row (4 draws: 43 against 38 us at
#: 16,384 rows, 91 against 43 at 32,768; 2 draws even at 8,192).
_SEARCH_ROWS_PER_DRAW = 6144
_SEARCH_BLOCK = 256

#: Rows compared with every centre at a time (see _BoundedLabeller).
_COMPARE_ROWS = 8192

#: Bounds are kept where n_features x n_clusters is at least this, on at
#: least _BOUNDED_MIN_ROWS rows.
_BOUNDED_MIN_SIZE = 256
_BOUNDED_MIN_ROWS = 8192

#: Blocks of this many rows or more sum only the clusters whose rows changed.
_INCREMENTAL_ROWS = 8192

#: scikit-learn's KMeans defaults, which GaussianMixture uses.
_TOL = 1e-4
_MAX_ITER = 300


def kmeans_labels(
    X, n_clusters, sample_weight, random_state, n_jobs=None, threaded_after=False
):
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

    threaded_after : bool, default=False
        Whether the caller then runs its work on the engine's threads; see
        :func:`kmeans_lloyd`.

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype int32
    """
    if n_clusters == 1:
        # Every row is in the one cluster. KMeans's only draw is k-means++'s
        # first centre, made here from the same weights so that the
        # generator ends where KMeans leaves it (a one-component fit of
        # 1,000 x 200 spent a quarter of its time in k-means).
        X, sample_weight = _kmeans_input(X, n_clusters, sample_weight)
        random_state.choice(len(X), p=sample_weight / sample_weight.sum())
        return np.zeros(len(X), dtype=np.int32)
    return kmeans_lloyd(
        X,
        n_clusters,
        sample_weight,
        random_state,
        n_jobs,
        exact_centers=False,
        threaded_after=threaded_after,
    )[0]


def _kmeans_input(X, n_clusters, sample_weight):
    """``X`` and ``sample_weight`` as ``KMeans.fit`` validates them.

    KMeans validates to a C-ordered float32 or float64 array (its column
    sums, the mean and the variances, are added row by row, not pairwise)
    and weights of the same dtype.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    n_clusters : int

    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32 or float64

    sample_weight : ndarray of shape (n_samples,), of ``X``'s dtype
    """
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
    return X, sample_weight


def kmeans_lloyd(
    X,
    n_clusters,
    sample_weight,
    random_state,
    n_jobs=None,
    exact_centers=True,
    threaded_after=False,
):
    """scikit-learn's ``KMeans`` (k-means++, Lloyd, ``n_init=1``) on dense data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    n_clusters : int

    sample_weight : ndarray of shape (n_samples,) or None

    random_state : numpy.random.RandomState

    n_jobs : int or None, default=None

    exact_centers : bool, default=True
        False: the centres may be within a bound of ``KMeans``'s instead
        (see :func:`_lloyd`); the labels are its own either way.

    threaded_after : bool, default=False
        Whether the caller then runs its work on the engine's threads (a
        mixture whose E-step has several chunks): k-means++ on data below
        ``_MIN_THREADED_BYTES`` then keeps BLAS on one thread, as KMeans
        does not, so that BLAS's threads are not left busy-waiting on the
        cores that work wants. The same products, the same labels.

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype int32
        ``KMeans.labels_``.

    centers : ndarray of shape (n_clusters, n_features)
        ``KMeans.cluster_centers_``.

    n_iter : int
        ``KMeans.n_iter_``.
    """
    X, sample_weight = _kmeans_input(X, n_clusters, sample_weight)
    n_samples = X.shape[0]
    # KMeans.fit: centre a C-ordered copy, then the rows' squared norms
    # (which k-means++ recomputes in float64 for float32 data).
    X_mean = _column_means(X)
    # Large data is centred on threads, a range of rows each, and its rows'
    # norms and columns' sums of squares are taken side by side: the same
    # element-wise differences, and each sum in its own order (200,000 x
    # 16: 12 -> 7 ms).
    prep_threads = n_threads(n_jobs) if X.nbytes >= _MIN_THREADED_BYTES else 1
    # (The same differences in long loops: see subtract_centre.)
    Xc = np.empty_like(X)
    map_in_threads(
        lambda rows: subtract_centre(X[rows], X_mean, out=Xc[rows]),
        split_range(n_samples, prep_threads),
        prep_threads,
    )
    # KMeans._check_params_vs_input's tolerance, np.mean(np.var(X, axis=0))
    # times tol: np.var's mean and deviations are X.mean(axis=0) and Xc, so
    # only the squares are left to add up.
    sums = [_column_sums_of_squares]
    if X.dtype == np.float64:
        sums.append(partial(row_norms, squared=True))
    variances, *x_squared_norms = map_in_threads(lambda f: f(Xc), sums, prep_threads)
    x_squared_norms = x_squared_norms[0] if x_squared_norms else None
    variances /= n_samples
    tol = np.mean(variances) * _TOL
    # k-means++'s products of a few candidates with every row are worth
    # threads where the data is large (0.29 against 0.45 s at 100,000 x 64,
    # K = 64): float64 data's on the engine's from _THREADED_SEEDING values
    # a step, in a one-thread BLAS window. BLAS's own threads, as in KMeans,
    # busy-wait after each product: their spinning outlived the seeding by
    # a tenth of a second, on the core the Lloyd iterations and the first
    # E-step wanted (200,000 x 16, K = 16: the first E-step took 40 against
    # the next ones' 25 ms; the whole fit 0.87-0.92 of its time on separated
    # clusters, about the same on overlapping ones). Other large data gets
    # BLAS's threads (with fewer values a step, the three ways were even);
    # the Lloyd iterations run in a one-thread window.
    # Small data's seeding runs where BLAS leaves it (its threads, outside a
    # fit's window), unless the caller's next work runs on the engine's
    # threads: BLAS's threads busy-wait for about a tenth of a second after
    # the seeding's last product, on the cores that work wants. A default
    # fit of 3,000 x 200 with 40 diagonal components (EM on two threads)
    # took 0.68-0.70 (float32) and 0.78 (float64) of its time seeded in a
    # one-thread window, its EM iterations 1.5 against 2.1 ms (1.6 with
    # OpenBLAS's wait cut short, OPENBLAS_THREAD_TIMEOUT=4); 5,000 x 200
    # with 16, 0.77; full 10,000 x 64 with 8, 0.90; the same labels. With
    # 12 spherical components, whose EM runs in one chunk on this thread,
    # BLAS's threads saved 0.7 of the seeding's 3 ms and spun on an idle
    # core (seeded on one thread, 1.02-1.03x the fit's time).
    threads = 1
    small = Xc.nbytes < _MIN_THREADED_BYTES
    if not small:
        step_values = _n_local_trials(n_clusters) * Xc.size
        if X.dtype == np.float64 and step_values >= _THREADED_SEEDING:
            threads = n_threads(n_jobs)
        if threads == 1:
            release_blas_limit()
    one_blas_thread = threads > 1 or (small and threaded_after)
    with single_threaded_blas() if one_blas_thread else nullcontext():
        centers = kmeans_plusplus(
            Xc, n_clusters, x_squared_norms, sample_weight, random_state, threads
        )[0]
    with single_threaded_blas():
        labels, centers, n_iter = _lloyd(
            Xc,
            sample_weight,
            centers,
            tol,
            n_jobs,
            x_squared_norms=x_squared_norms,
            exact_centers=exact_centers,
        )
    centers += X_mean
    # (Counted without sorting: np.unique cost 0.1 ms at 10,000 rows.)
    n_distinct = np.count_nonzero(np.bincount(labels, minlength=n_clusters))
    if n_distinct < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({n_distinct}) found "
            f"smaller than n_clusters ({n_clusters}). Possibly due to duplicate "
            "points in X.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return labels, centers, n_iter


def kmeans_plusplus(
    X, n_clusters, x_squared_norms, sample_weight, random_state, threads=1
):
    """``sklearn.cluster._kmeans._kmeans_plusplus``'s seeds, to the last bit.

    The same draws from ``random_state``, consumed the same way, and the
    same arithmetic on the same arrays: each candidate's distances are
    ``_euclidean_distances``'s (the product ``-2 C X^T`` as ``C @ X.T``,
    the candidates' squared norms by ``einsum``, then the data's, clipped
    at zero; for float32 data, on float64 copies of the same batches of
    rows, see :func:`_candidate_distances_upcast`), without its namespace,
    dtype and parameter dispatch, a fifth to two fifths of the seeding on
    small float64 data (10,000 x 8, K = 8: 2.1 -> 1.75 ms; 1,000 x 30,
    K = 20: 2.5 -> 1.75; 50 x 2, K = 50: 4.4 -> 2.5), more on float32 data,
    whose batches each paid it. Sparse data takes scikit-learn's own
    function.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    n_clusters : int

    x_squared_norms : ndarray of shape (n_samples,) or None
        The rows' squared norms as ``row_norms`` gives them; for float64
        data None takes scikit-learn's function, and for float32 data
        float32 norms are not used (as in scikit-learn, which recomputes
        them in float64).

    sample_weight : ndarray of shape (n_samples,)
        Of ``X``'s dtype.

    random_state : numpy.random.RandomState

    threads : int, default=1
        Threads of the engine's pool over which large float64 data's
        distances are split, a contiguous range of rows each (the products'
        rounding does not depend on the columns a product has, so the bits
        are the same; the sums over the rows stay whole). Called in a
        one-thread BLAS window, this replaces BLAS's threads, which
        busy-wait for a tenth of a second after each step's product, on the
        cores the iterations that follow need.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features)

    indices : ndarray of shape (n_clusters,)
        The rows of ``X`` chosen as centres.
    """
    # scikit-learn uses given norms unless they are float32.
    if x_squared_norms is not None and x_squared_norms.dtype == np.float32:
        x_squared_norms = None
    if (
        sp.issparse(X)
        or X.dtype not in (np.float32, np.float64)
        or (X.dtype == np.float64 and x_squared_norms is None)
    ):
        return _kmeans_plusplus(
            X,
            n_clusters,
            x_squared_norms=x_squared_norms,
            sample_weight=sample_weight,
            random_state=random_state,
        )
    if x_squared_norms is not None:
        x_squared_norms = x_squared_norms.reshape(1, -1)
    # The rows and norms each step's distances read: for float32 data on
    # float64 copies of batches of rows, converted once (see _upcast_rows).
    distance_rows, distance_norms = X, x_squared_norms
    if X.dtype == np.float64:
        distances = _candidate_distances
    else:
        distances = _candidate_distances_upcast
        if X.size <= _UPCAST_ROWS_VALUES:
            distance_rows, distance_norms = _upcast_rows(X, x_squared_norms)
    n_samples, n_features = X.shape
    centers = np.empty((n_clusters, n_features), dtype=X.dtype)
    n_local_trials = _n_local_trials(n_clusters)
    center_id = _weighted_choice(random_state, sample_weight)
    indices = np.full(n_clusters, -1, dtype=int)
    centers[0] = X[center_id]
    indices[0] = center_id
    if threads > 1 and X.dtype == np.float64 and X.size >= threads * _THREADED_FIRST:
        # The first centre's distances on the threads too (200,000 x 16:
        # 1.5 -> 0.8 ms), each a product of one row with a range of rows.
        closest_dist_sq = _threaded_candidate_distances(
            centers[0, np.newaxis],
            X,
            x_squared_norms,
            out=np.empty((1, n_samples)),
            closest=None,
            threads=threads,
        )
    else:
        closest_dist_sq = distances(
            centers[0, np.newaxis], distance_rows, distance_norms
        )
    current_pot = closest_dist_sq @ sample_weight
    # (A row of shape (1, n) until here, as in scikit-learn: its products
    # above are matrix-vector products.)
    closest_dist_sq = closest_dist_sq.reshape(-1)
    weight_column = sample_weight.reshape(-1, 1)
    # Large float64 distances: two buffers for the candidates' distances,
    # taken in turn (the closest distances are a row of the last one), and
    # one for the cumulative sums (new arrays of these sizes cost page
    # faults every step); on small data the buffers' extra calls cost more
    # (a few microseconds a step: 1,000 x 30, K = 20, 1.04x).
    buffered = (
        X.dtype == np.float64 and n_local_trials * n_samples >= _BUFFERED_DISTANCES
    )
    if buffered:
        buffers = np.empty((2, n_local_trials, n_samples))
        weighted = np.empty(n_samples)
        step_distances = _candidate_distances
        if threads > 1:
            step_distances = partial(_threaded_candidate_distances, threads=threads)
    # (float32 data's distances are float32: NumPy's way, see
    # _cumulative_search.)
    blocked = (
        X.dtype == np.float64 and n_samples >= _SEARCH_ROWS_PER_DRAW * n_local_trials
    )
    # Weights of one change nothing in their products with the distances.
    unit_weights = blocked and bool(np.all(sample_weight == 1))
    for c in range(1, n_clusters):
        rand_vals = random_state.uniform(size=n_local_trials) * current_pot
        if unit_weights:
            weighted = closest_dist_sq
        elif buffered:
            np.multiply(sample_weight, closest_dist_sq, out=weighted)
        else:
            weighted = sample_weight * closest_dist_sq
        if blocked:
            candidate_ids = _cumulative_search(weighted, rand_vals)
        else:
            candidate_ids = np.searchsorted(
                np.cumsum(weighted, out=weighted), rand_vals
            )
        # (np.clip with no lower bound, without its Python-level dispatch.)
        np.minimum(candidate_ids, n_samples - 1, out=candidate_ids)
        if buffered:
            # The distances, then their minima with the closest, in one pass.
            distance_to_candidates = step_distances(
                X[candidate_ids],
                X,
                x_squared_norms,
                out=buffers[c % 2],
                closest=closest_dist_sq,
            )
        else:
            distance_to_candidates = distances(
                X[candidate_ids], distance_rows, distance_norms
            )
            np.minimum(
                closest_dist_sq, distance_to_candidates, out=distance_to_candidates
            )
        candidates_pot = distance_to_candidates @ weight_column
        best_candidate = np.argmin(candidates_pot)
        current_pot = candidates_pot[best_candidate]
        closest_dist_sq = distance_to_candidates[best_candidate]
        best_candidate = candidate_ids[best_candidate]
        centers[c] = X[best_candidate]
        indices[c] = best_candidate
    return centers, indices


def _weighted_choice(random_state, weights):
    """``random_state.choice(n, p=weights / weights.sum())``, to the last bit.

    ``choice`` checks the probabilities (a compensated sum), takes their
    cumulative sum and divides it by its last value: three passes over the
    rows, 2.2 ms at 200,000, for one uniform draw placed in them. On many
    float64 rows the draw is placed by :func:`_cumulative_search` instead,
    from blocked sums, where they decide it; probabilities that ``choice``
    would reject (negative, NaN, or not summing to one) go to ``choice``.

    Parameters
    ----------
    random_state : numpy.random.RandomState
        One uniform draw is consumed, as ``choice`` consumes it.

    weights : ndarray of shape (n_samples,)

    Returns
    -------
    index : int
    """
    n_samples = weights.shape[0]
    p = weights / weights.sum()
    if (
        p.dtype != np.float64
        or n_samples < _SEARCH_ROWS_PER_DRAW
        # (NaN is not; choice rejects probabilities whose sum is more than
        # 1.5e-8 from one.)
        or not np.all(p >= 0)
        or not abs(p.sum() - 1) < 1e-10
    ):
        return random_state.choice(n_samples, p=p)
    # choice's draw: random_sample(None), one double.
    target = np.array([random_state.random_sample()])
    return int(_cumulative_search(p, target, fractions=True)[0])


def _cumulative_search(values, targets, fractions=False):
    """``np.searchsorted(np.cumsum(values), targets)``, to the last bit.

    k-means++ draws its candidates where uniform draws fall in the
    cumulative sum of the weighted distances, which NumPy adds one value
    after the other: a chain of dependent additions, about half a
    millisecond at 200,000 rows, a sixth of a seeding step. Only where the
    targets fall matters. The sums of blocks of ``_SEARCH_BLOCK`` values
    (vectorised) and their cumulative sum find
    each target's block, and the cumulative sum of that block alone its
    position. These sums are rounded differently from NumPy's, but both are
    within ``(n + m + B + 64) eps / 2`` of the exact sums, relative to the
    total (``n`` values, ``m`` blocks of ``B``: the bound of a recursive
    sum of non-negative values): where a target is further than twice that
    from the sums on either side of its position, NumPy's cumulative sum
    puts it at the same position. Otherwise (a chance of about ``2 n eps``
    per draw, on smooth values) the whole cumulative sum is computed.

    float32 values (float32 data's seeding) take NumPy's way: their bound,
    ``n`` float32 epsilons, is too wide to decide anything at such sizes.

    With ``fractions``, ``np.searchsorted(cdf, targets, side="right")``
    with ``cdf = np.cumsum(values) / np.cumsum(values)[-1]``, as
    ``RandomState.choice`` places its draws: the targets are scaled by the
    total, and the margin widened by the total's rounding and the
    division's (where a target is further than that from every sum, no
    sum equals it, so the side does not matter).

    Parameters
    ----------
    values : ndarray of shape (n_values,)
        Non-negative.

    targets : ndarray of shape (n_targets,)

    fractions : bool, default=False
        Whether the targets are fractions of the total.

    Returns
    -------
    indices : ndarray of shape (n_targets,), dtype intp
    """

    def numpys():
        sums = np.cumsum(values)
        if not fractions:
            return np.searchsorted(sums, targets)
        sums /= sums[-1]
        return np.searchsorted(sums, targets, side="right")

    n_values = values.shape[0]
    block = _SEARCH_BLOCK
    n_blocks = n_values // block
    if n_blocks < 4 or values.dtype != np.float64:
        return numpys()
    ends = np.cumsum(values[: n_blocks * block].reshape(n_blocks, block).sum(axis=1))
    total = ends[-1] + values[n_blocks * block :].sum()
    eps = np.finfo(np.float64).eps
    margin = 2 * (n_values + n_blocks + block + 64) * eps * total
    positions = targets
    if fractions:
        positions = targets * total
        margin = 2 * margin + 4 * eps * total
    indices = np.empty(targets.shape[0], dtype=np.intp)
    for i, target in enumerate(positions):
        # The block whose approximate end first reaches the target (a
        # target past them all is in the remainder, possibly empty).
        b = int(np.searchsorted(ends, target))
        start = b * block
        below = ends[b - 1] if b else -np.inf
        local = np.cumsum(values[start : min(start + block, n_values)])
        if b:
            local += ends[b - 1]
        j = int(np.searchsorted(local, target))
        if j:
            below = local[j - 1]
        if j < local.shape[0]:
            above = local[j]
        elif start + j == n_values and not fractions:
            # Past the last sum: NumPy's position is n_values too.
            above = np.inf
        else:
            # (Rounded past its block's end: not decided here.)
            return numpys()
        if not (below < target - margin and above >= target + margin):
            return numpys()
        indices[i] = start + j
    return indices


def _candidate_distances(candidates, X, x_squared_norms, out=None, closest=None):
    """``_euclidean_distances(candidates, X, Y_norm_squared=..., squared=True)``.

    With ``out`` or ``closest``: the product ``candidates @ X.T`` as one
    matrix product, then its scaling by -2, the norms' additions and the
    clipping (and with ``closest``, k-means++'s minima) ``_DISTANCE_BLOCK``
    columns at a time, while they are in cache: each value gets the same
    operations as in scikit-learn, in the same order, so the same bits
    (200,000 x 16, four candidates: 3.2 -> 2.5 ms). Without them,
    scikit-learn's expressions on the whole array (fewer calls, for small
    data).

    Parameters
    ----------
    candidates : ndarray of shape (n_candidates, n_features)
        float64.

    X : ndarray of shape (n_samples, n_features)
        float64.

    x_squared_norms : ndarray of shape (1, n_samples)

    out : ndarray of shape (n_candidates, n_samples), default=None
        C-ordered float64 array to write the distances to.

    closest : ndarray of shape (n_samples,), default=None
        If given, the result is ``np.minimum(closest, distances)``.

    Returns
    -------
    distances : ndarray of shape (n_candidates, n_samples)
        Squared distances, clipped at zero; ``out`` when given.
    """
    candidate_norms = np.einsum("ij,ij->i", candidates, candidates)[:, np.newaxis]
    if out is None and closest is None:
        # scikit-learn's own expressions: fewer calls on small data.
        distances = -2 * (candidates @ X.T)
        distances += candidate_norms
        distances += x_squared_norms
        np.maximum(distances, 0, out=distances)
        return distances
    distances = np.matmul(candidates, X.T, out=out)
    n_samples = X.shape[0]
    for start in range(0, n_samples, _DISTANCE_BLOCK):
        stop = min(start + _DISTANCE_BLOCK, n_samples)
        block = distances[:, start:stop]
        block *= -2
        block += candidate_norms
        block += x_squared_norms[:, start:stop]
        # np.maximum(block, 0) only where a distance is negative (rounding,
        # near coincident rows): the test costs a fifth of the clipping,
        # and most blocks have none. After the minima with the closest
        # distances (never negative), the same values. (A masked fill was
        # 3x faster without negatives, 3-8x slower with 10-50% of them.)
        if closest is not None:
            np.minimum(closest[start:stop], block, out=block)
        if np.less(block, 0).any():
            np.maximum(block, 0, out=block)
    return distances


def _threaded_candidate_distances(
    candidates, X, x_squared_norms, out, closest, threads
):
    """:func:`_candidate_distances` with ``out`` and ``closest``, on threads.

    Each of ``threads`` threads (the calling one and the engine's pool's, see
    :func:`._suffstats.map_in_threads`) computes the distances
    of a contiguous range of rows into its columns of ``out``: a product of
    the candidates with those rows, then the same element-wise operations.
    A product's value for one pair is the same whichever columns the
    product has (BLAS blocks the columns, not the sum over the features),
    so the result is the one-call function's to the last bit.

    Parameters
    ----------
    candidates : ndarray of shape (n_candidates, n_features)
        float64.

    X : ndarray of shape (n_samples, n_features)
        float64.

    x_squared_norms : ndarray of shape (1, n_samples)

    out : ndarray of shape (n_candidates, n_samples)
        C-ordered float64 array to write the distances to.

    closest : ndarray of shape (n_samples,) or None
        If given, the result is ``np.minimum(closest, distances)``.

    threads : int

    Returns
    -------
    distances : ndarray of shape (n_candidates, n_samples)
        ``out``.
    """

    def task(rows):
        _candidate_distances(
            candidates,
            X[rows],
            x_squared_norms[:, rows],
            out=out[:, rows],
            closest=None if closest is None else closest[rows],
        )

    map_in_threads(task, split_range(X.shape[0], threads), threads)
    return out


def _n_local_trials(n_clusters):
    """k-means++'s candidates a step, as scikit-learn's ``_kmeans_plusplus``."""
    return 2 + int(np.log(n_clusters))


#: float32 data of at most this many values is converted to float64 once for
#: all of k-means++'s steps (see :func:`_upcast_rows`; its copy is kept
#: while the seeding runs).
_UPCAST_ROWS_VALUES = 2**21


def _upcast_rows(X, x_squared_norms=None):
    """float32 rows in float64 and their norms, for every k-means++ step.

    scikit-learn converts each batch of rows to float64, and computes its
    norms, at every step; their values do not change from step to step. On
    small data converting them once saves a fifth of the seeding (100 x 200,
    K = 12: 0.64 -> 0.5 ms).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32

    x_squared_norms : ndarray of shape (1, n_samples) or None
        float64 norms, used as given.

    Returns
    -------
    X64 : ndarray of shape (n_samples, n_features), float64

    x_squared_norms : ndarray of shape (1, n_samples)
        The given norms, or those of ``X64``.
    """
    X64 = X.astype(np.float64)
    if x_squared_norms is None:
        x_squared_norms = np.einsum("ij,ij->i", X64, X64)[np.newaxis, :]
    return X64, x_squared_norms


def _candidate_distances_upcast(candidates, X, x_squared_norms=None):
    """:func:`_candidate_distances` of float32 data, as scikit-learn computes them.

    ``_euclidean_distances_upcast``: batches of candidates and of rows,
    sized to add about a tenth of the memory the data and the distances
    take (at least 10 MiB), are copied to float64; each pair of batches
    gives ``-2 C X^T + |c|^2 + |x|^2`` in float64 (the norms of the float64
    copies, unless float64 norms are given), rounded to float32, then
    clipped at zero. The same batches, copies and operations, without a
    parameter validation and a namespace dispatch per batch (which had
    made float32 seeding at 10,000 x 8, K = 8, several times float64's).

    Parameters
    ----------
    candidates : ndarray of shape (n_candidates, n_features)
        float32.

    X : ndarray of shape (n_samples, n_features)
        float32, or float32 rows already converted to float64 (see
        :func:`_upcast_rows`: the values each batch's copy would hold).

    x_squared_norms : ndarray of shape (1, n_samples), default=None
        float64 norms of the rows; None computes them batch by batch.

    Returns
    -------
    distances : ndarray of shape (n_candidates, n_samples), float32
    """
    n_candidates, n_features = candidates.shape
    n_samples = X.shape[0]
    maxmem = max(
        ((n_candidates + n_samples) * n_features + n_candidates * n_samples) / 10,
        10 * 2**17,
    )
    width = 2 * n_features
    batch = max(int((-width + math.sqrt(width**2 + 4 * maxmem)) / 2), 1)
    distances = np.empty((n_candidates, n_samples), dtype=np.float32)
    for x_start in range(0, n_candidates, batch):
        x_slice = slice(x_start, min(x_start + batch, n_candidates))
        C = candidates[x_slice].astype(np.float64)
        c_norms = np.einsum("ij,ij->i", C, C)[:, np.newaxis]
        for y_start in range(0, n_samples, batch):
            y_slice = slice(y_start, min(y_start + batch, n_samples))
            Y = X[y_slice].astype(np.float64, copy=False)
            if x_squared_norms is None:
                y_norms = np.einsum("ij,ij->i", Y, Y)[np.newaxis, :]
            else:
                y_norms = x_squared_norms[:, y_slice]
            d = -2 * (C @ Y.T)
            d += c_norms
            d += y_norms
            distances[x_slice, y_slice] = d.astype(np.float32, copy=False)
    np.maximum(distances, 0, out=distances)
    return distances


def _column_sums_of_squares(X, block=4096):
    """``np.add.reduce(X * X, axis=0)`` to the last bit, without ``X * X``.

    NumPy adds a C-ordered array's rows one after the other along axis 0
    (as :func:`._suffstats.column_sums` does, faster), so carrying the
    running sum as the first row of each block's squares adds them in the
    same order (a single column is summed pairwise, as a contiguous vector:
    it is left to NumPy). The product of the whole array would be a fresh
    array the size of the data (at 200,000 x 16, 35 ms of page faults
    against 3 ms for this).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        C-ordered.

    block : int, default=4096
        Rows squared at a time.

    Returns
    -------
    sums : ndarray of shape (n_features,)
    """
    n_samples, n_features = X.shape
    if n_samples <= block or n_features == 1:
        return column_sums(X * X)
    buffer = np.empty((block + 1, n_features), dtype=X.dtype)
    sums = None
    for start in range(0, n_samples, block):
        rows = X[start : start + block]
        m = rows.shape[0]
        if sums is None:
            np.multiply(rows, rows, out=buffer[:m])
            sums = column_sums(buffer[:m])
        else:
            buffer[0] = sums
            np.multiply(rows, rows, out=buffer[1 : m + 1])
            sums = column_sums(buffer[: m + 1])
    return sums


def _column_means(X):
    """``X.mean(axis=0)`` to the last bit (NumPy's sum, then its division).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    means : ndarray of shape (n_features,)
    """
    sums = column_sums(X)
    return np.true_divide(sums, np.intp(X.shape[0]), out=sums, casting="unsafe")


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


class _BoundedLabeller:
    """KMeans's labels of every row, most of them without a distance.

    Hamerly's bounds (Hamerly, 2010, "Making k-means even faster") carried
    from iteration to iteration: ``u_i`` above the distance from row ``i``
    to its centre, ``l_i`` below its distance to every other centre. When
    the centres move by ``delta_j``, ``u_i`` grows by its centre's shift
    and ``l_i`` shrinks by the largest; a row whose bounds stay apart (or
    whose ``u_i`` is under half the distance ``s_j`` from its centre to the
    next) keeps its centre, and only the others are compared with every
    centre. After the first iterations few rows are near a boundary, so an
    iteration computes a few distances, not ``n_samples x n_clusters``
    (at 200,000 x 16 and 16 clusters, 2-5% of the rows).

    The first iteration, from the k-means++ seeds, moves the centres too
    far for bounds to help: its rows are labelled by scikit-learn's kernel.
    The second compares every row with every centre and sets the bounds.

    The labels are ``KMeans``'s to the last bit, not only those of exact
    arithmetic: its kernel compares ``|c_j|^2 - 2 x . c_j``, each computed
    with an error under ``(3 D + 6) eps R^2`` (``R`` the largest row norm,
    which bounds every centre's, the centres being weighted means of rows).
    A row keeps its label only where the bounds put the squared distances
    of the other centres more than ``tau = 2 (8 D + 16) eps R^2`` above its
    own: more than the errors of the kernel's comparison of two such values
    and of ours added up (``4 (3 D + 6) eps R^2``); where ours are closer than
    ``tau`` (ties, near-ties), the row's 256-row chunk is labelled by
    scikit-learn's own kernel, with the products ``KMeans`` computes for it.

    The bounds are stored with the cumulated shifts taken out (``u_i -
    U_{a_i}``, ``u_i - U_{a_i} - l_i - L``), so an iteration updates two
    cumulated shifts, not two arrays of ``n_samples`` values.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Centred, C-ordered data.

    sample_weight : ndarray of shape (n_samples,)

    bounded : bool, default=True
        False labels every row with the kernel, every iteration.

    squared_norms : ndarray of shape (n_samples,), default=None
        The rows' squared norms in float64 (k-means++'s, for float64 data);
        None computes them.
    """

    def __init__(self, X, sample_weight, bounded=True, squared_norms=None):
        self.X, self.sample_weight, self.bounded = X, sample_weight, bounded
        self.iteration = 0
        if not bounded:
            return
        n_samples, n_features = X.shape
        if squared_norms is None:
            squared_norms = row_norms(X.astype(np.float64, copy=False), squared=True)
        self.row_norms = squared_norms
        eps = np.finfo(X.dtype).eps
        self.tau = 2 * (8 * n_features + 16) * eps * float(np.max(self.row_norms))
        self.margin = np.sqrt(self.tau)
        self.radius = float(np.sqrt(np.max(self.row_norms)))
        # Stored bounds: upper[i] = u_i - U[labels[i]]; gap[i] = upper[i] -
        # (l_i + L).
        self.upper = np.empty(n_samples)
        self.gap = np.empty(n_samples)

    def move(self, centers, error=None, exact=None):
        """Take the next centres: their cumulated shifts and separations.

        Parameters
        ----------
        centers : ndarray of shape (n_clusters, n_features)
            ``KMeans``'s centres, or centres within ``error`` of them.

        error : ndarray of shape (n_clusters,), default=None
            Bounds on the Euclidean distances from ``centers`` to
            ``KMeans``'s centres (see :class:`_CertifiedSums`); None means
            they are ``KMeans``'s.

        exact : callable, default=None
            With ``error``: returns ``KMeans``'s centres, in the data's
            dtype, for the rows that only its kernel can label.
        """
        self.iteration += 1
        # The rows this iteration's comparisons move (see moved_rows).
        self.moved = []
        if self.by_kernel:
            return
        centers64 = centers.astype(np.float64)
        n_clusters = centers.shape[0]
        if error is None:
            error = np.zeros(n_clusters)
        if self.iteration <= 2:
            self.shift_sum = np.zeros(n_clusters)
            self.shift_max_sum = 0.0
            self.last_max_shift = 0.0
            self.watched = None
        else:
            # The exact centres moved by at most this.
            shift = np.sqrt(((centers64 - self.centers) ** 2).sum(axis=1))
            shift += self.error
            shift += error
            self.shift_sum += shift
            self.last_max_shift = float(shift.max())
            self.shift_max_sum += self.last_max_shift
        if n_clusters > 1:
            between = centers64[:, np.newaxis] - centers64[np.newaxis]
            between = np.sqrt((between**2).sum(axis=2))
            between -= error[:, np.newaxis]
            between -= error[np.newaxis]
            np.fill_diagonal(between, np.inf)
            self.half_separation = 0.5 * np.maximum(between.min(axis=1), 0)
        else:
            self.half_separation = np.full(1, np.inf)
        self.centers = centers64
        self.error = error
        self.exact = exact
        # Our comparisons of |c|^2 - 2 x.c with such centres are within
        # (4 R + e) e of those with the exact ones (R the largest row norm,
        # which bounds the exact centres'): a tie is a gap under tau plus
        # twice that.
        largest = float(error.max())
        self.tie = self.tau + 2 * (4 * self.radius + largest) * largest
        self.scaled_centers = -2 * centers64
        self.center_norms = (centers64**2).sum(axis=1)

    @property
    def by_kernel(self):
        """Whether this iteration labels every row with the kernel."""
        return self.iteration == 1 or not self.bounded

    @property
    def every_row(self):
        """Whether this iteration computes every row's distances.

        The kernel's iterations, and the second, which sets the bounds.
        """
        return self.iteration <= 2 or not self.bounded

    def label(self, centers, labels, block):
        """Label the rows of ``block`` against the centres; changed count.

        Parameters
        ----------
        centers : ndarray of shape (n_clusters, n_features)
            The centres of the last :meth:`move`, in the data's dtype, as
            ``KMeans``'s kernel takes them.

        labels : ndarray of shape (n_samples,), dtype int32
            Written for the rows of ``block`` that change.

        block : slice
            Whole 256-row chunks.

        Returns
        -------
        n_changed : int
        """
        if self.by_kernel:
            old = labels[block].copy()
            self._kernel(centers, labels, block)
            return int(np.count_nonzero(labels[block] != old))
        if self.iteration == 2:
            return self._compare(centers, labels, block)
        # A row keeps its centre if u_i < l_i - margin, that is (see
        # _compare) gap_i + U_a + L < -margin; U_a <= L, so every row with
        # gap_i < -margin - 2 L does. Only the rows that may not are
        # watched, listed once for all iterations until L exceeds a budget.
        if self.watched is None or self.shift_max_sum > self.watch_budget:
            self.watch_budget = self.shift_max_sum + 4 * self.last_max_shift
            self.watched = np.flatnonzero(
                self.gap[block] >= -(self.margin + 2 * self.watch_budget)
            )
            self.watched += block.start
            # Their labels and bounds side by side, kept up to date below:
            # gathered from the whole arrays every iteration, they cost
            # more than the tests.
            self.watched_labels = np.take(labels, self.watched)
            self.watched_gap = np.take(self.gap, self.watched)
            self.watched_upper = np.take(self.upper, self.watched)
        own = self.watched_labels
        near = np.take(self.shift_sum, own)
        near += self.watched_gap
        near = near >= -(self.shift_max_sum + self.margin)
        # Or u_i < s_a - margin / 2: (u_i - U_a) + (U_a - s_a) < -margin / 2.
        inside = np.take(self.shift_sum - self.half_separation, own)
        inside += self.watched_upper
        near &= inside >= -0.5 * self.margin
        positions = np.flatnonzero(near)
        if positions.size == 0:
            return 0
        rows = np.take(self.watched, positions)
        n_changed = self._compare(centers, labels, rows)
        np.put(self.watched_labels, positions, np.take(labels, rows))
        np.put(self.watched_gap, positions, np.take(self.gap, rows))
        np.put(self.watched_upper, positions, np.take(self.upper, rows))
        return n_changed

    def moved_rows(self):
        """The rows whose labels changed in a bounded iteration, sorted.

        From the third iteration on, only :meth:`_compare` changes labels,
        a sorted set of rows at a time.

        Returns
        -------
        rows : ndarray of shape (n_moved,)
        """
        if not self.moved:
            return np.empty(0, dtype=np.intp)
        return np.concatenate(self.moved)

    def _compare(self, centers, labels, rows):
        """Compare ``rows`` with every centre; set their labels and bounds.

        ``rows`` is a slice or sorted indices, taken ``_COMPARE_ROWS`` at a
        time so that the distances stay in cache (one array of them for
        200,000 rows and 16 clusters took 8 ms of page faults alone).
        """
        if isinstance(rows, slice):
            pieces = [
                slice(start, min(start + _COMPARE_ROWS, rows.stop))
                for start in range(rows.start, rows.stop, _COMPARE_ROWS)
            ]
        else:
            pieces = [
                rows[start : start + _COMPARE_ROWS]
                for start in range(0, rows.size, _COMPARE_ROWS)
            ]
        return sum(self._compare_piece(centers, labels, piece) for piece in pieces)

    def _compare_piece(self, centers, labels, rows):
        """:meth:`_compare` of at most ``_COMPARE_ROWS`` rows."""
        indexed = not isinstance(rows, slice)
        if indexed:
            # (np.take and np.put: NumPy's indexing of scattered rows is 2-4x
            # slower, a third of the later iterations' comparisons.)
            def gather(a):
                return np.take(a, rows, axis=0)

            def scatter(a, values):
                np.put(a, rows, values)

        else:

            def gather(a):
                return a[rows]

            def scatter(a, values):
                a[rows] = values

        X = gather(self.X)
        if X.dtype != np.float64:
            X = X.astype(np.float64)
        n_clusters, m = self.centers.shape[0], X.shape[0]
        # |c_j|^2 - 2 c_j . x, clusters along the first axis: NumPy's
        # minima over rows of a few values are slower than over columns.
        distances = np.dot(self.scaled_centers, X.T)
        distances += self.center_norms[:, np.newaxis]
        nearest = distances.min(axis=0)
        new = _first_minima(distances, nearest)
        if n_clusters > 1:
            np.put(distances, new * m + np.arange(m), np.inf)
            second = distances.min(axis=0)
        else:
            second = np.full(m, np.inf)
        # (Exact ties have second == nearest.)
        close = np.flatnonzero(second - nearest <= self.tie)
        if close.size:
            if self.exact is not None:
                centers = self.exact()
            if indexed:
                self._kernel_rows(centers, rows[close], new, close)
            else:
                self._kernel_rows(centers, close + rows.start, new, close)
        moved = gather(labels) != new
        n_changed = int(np.count_nonzero(moved))
        if n_changed and indexed:
            self.moved.append(rows[moved])
        scatter(labels, new)
        norms = gather(self.row_norms)
        upper = norms + nearest
        upper += self.tau
        np.maximum(upper, 0, out=upper)
        np.sqrt(upper, out=upper)
        # A row labelled by the kernel is compared again next time.
        upper[close] = np.inf
        lower = norms + second
        lower -= self.tau
        np.maximum(lower, 0, out=lower)
        np.sqrt(lower, out=lower)
        if self.error.any():
            # Bounds on the distances to the exact centres.
            upper += np.take(self.error, new)
            lower -= self.error.max()
        upper -= np.take(self.shift_sum, new)
        scatter(self.upper, upper)
        upper -= lower
        upper -= self.shift_max_sum
        scatter(self.gap, upper)
        return n_changed

    def _kernel(self, centers, labels, block):
        """scikit-learn's labels of the rows of ``block`` (whole chunks)."""
        dummy = np.empty(centers.shape[0], dtype=self.X.dtype)
        lloyd_iter_chunked_dense(
            self.X[block],
            self.sample_weight[block],
            centers,
            centers,
            dummy,
            labels[block],
            dummy,
            1,
            update_centers=False,
        )

    def _kernel_rows(self, centers, rows, new, where):
        """``new[where]``: the kernel's labels of ``rows`` (sorted)."""
        n_samples = self.X.shape[0]
        chunk = min(CHUNK_SIZE, n_samples)
        chunk_labels = np.empty(n_samples, dtype=np.int32)
        chunk_ids = rows // chunk
        for c in np.unique(chunk_ids):
            # The last chunk takes the remainder, as in the kernel.
            block = slice(c * chunk, min((c + 1) * chunk, n_samples))
            self._kernel(centers, chunk_labels, block)
            in_chunk = chunk_ids == c
            new[where[in_chunk]] = chunk_labels[rows[in_chunk]]


def _first_minima(distances, nearest):
    """Where each column of ``distances`` first reaches ``nearest``.

    ``np.equal(distances, nearest).argmax(axis=0)``, 2.7x faster at 16 x
    8,192: ``np.argmin`` and ``argmax`` along the first axis run column by
    column (``argmin`` is slower still), while the products of the equality
    indicators with ``0, ..., K - 1`` and with ones give the index of every
    column with a single minimum, exactly (small integers), and find the
    columns with ties, whose first minimum is then found by ``argmax``
    (columns of NaN, without a minimum, get 0 as from ``argmax``).

    Parameters
    ----------
    distances : ndarray of shape (n_clusters, n_rows)

    nearest : ndarray of shape (n_rows,)
        ``distances.min(axis=0)``.

    Returns
    -------
    labels : ndarray of shape (n_rows,), dtype int32
    """
    n_clusters, m = distances.shape
    equal = workspace("kmeans_equal", (n_clusters, m), np.float64)
    np.equal(distances, nearest, out=equal, casting="unsafe")
    counts = np.ones(n_clusters) @ equal
    labels = (np.arange(n_clusters, dtype=np.float64) @ equal).astype(np.int32)
    ties = np.flatnonzero(counts > 1)
    if ties.size:
        labels[ties] = np.equal(distances[:, ties], nearest[ties]).argmax(axis=0)
    return labels


class _BlockSums:
    """Per-cluster weighted sums of one block's rows, added in row order.

    A cluster's sum depends only on which of the block's rows it holds: once
    the labels settle, an iteration moves rows between a few clusters (at
    200,000 x 16 in 16 clusters, from the second iteration on, about 2 of
    the 16 in each thread's block). With ``incremental``, only the clusters
    that gained or lost a row since the last call are summed again, over
    their own rows, with the product's additions: the same sums to the last
    bit.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,)

    block : slice

    n_clusters : int

    incremental : bool, default=False
    """

    def __init__(self, X, sample_weight, block, n_clusters, incremental=False):
        self.X, self.block = X[block], block
        self.sample_weight = sample_weight[block]
        self.n_clusters, self.incremental = n_clusters, incremental
        m = self.X.shape[0]
        # The block's one-hot matrix in CSC form, column i holding w_i at
        # row labels[i]: its product with the rows adds w_i x_i row after
        # row, as KMeans's thread does. Built once; its row indices are
        # the labels, updated in place.
        self.onehot = sp.csc_array(
            (
                self.sample_weight,
                np.zeros(m, dtype=np.int32),
                np.arange(m + 1, dtype=np.int32),
            ),
            shape=(n_clusters, m),
        )
        # In X's dtype, row after row (bincount would add float32 weights
        # in float64).
        self.ones = np.ones(m, dtype=X.dtype)
        self.unit_weights = incremental and bool(np.all(self.sample_weight == 1))
        self.labels = None

    def __call__(self, labels):
        """The block's ``(sums, weights)``.

        Parameters
        ----------
        labels : ndarray of shape (n_samples,), dtype int32

        Returns
        -------
        sums : ndarray of shape (n_clusters, n_features)
            ``sum_i w_i x_i`` over the block's rows of each cluster.

        weights : ndarray of shape (n_clusters,)
            ``sum_i w_i`` likewise.
        """
        new = labels[self.block]
        if self.labels is not None:
            changed = np.flatnonzero(new != self.labels)
            left = np.take(self.labels, changed)
            joined = np.take(new, changed)
            touched = np.zeros(self.n_clusters, dtype=bool)
            touched[left] = True
            touched[joined] = True
            if 2 * np.count_nonzero(touched) <= self.n_clusters:
                if changed.size:
                    self._update(new, touched, changed, left, joined)
                    self.labels[changed] = joined
                return self.sums, self.weights
        self.onehot.indices[:] = new
        sums, weights = self.onehot @ self.X, self.onehot @ self.ones
        if self.incremental:
            self.labels, self.sums, self.weights = new.copy(), sums, weights
            # Each cluster's rows, sorted, listed when first needed.
            self.members = [None] * self.n_clusters
        return sums, weights

    def _update(self, new, touched, changed, left, joined):
        """Sum the rows of the ``touched`` clusters again.

        Each cluster's rows in order: their products ``w_i x_i`` (none for
        unit weights), added row after row from zero by ``einsum``, the
        additions of the sparse product's loop, without building a sparse
        matrix (0.6 -> 0.4 ms a block and iteration at 200,000 x 16 in 16
        clusters); its weights by a cumulative sum, the same additions
        (with unit weights, the count of its rows, where the additions of
        ones are exact). A cluster's rows are kept from call to call, the
        rows that left it deleted and those that joined it inserted in
        order: a search of the whole block's labels for each cluster took
        half of the update (0.07 ms a cluster at 100,000 rows).

        Parameters
        ----------
        new : ndarray of shape (n_rows,)
            The block's labels.

        touched : ndarray of shape (n_clusters,), dtype bool

        changed : ndarray of shape (n_changed,)
            The rows whose labels changed, sorted.

        left, joined : ndarray of shape (n_changed,)
            Their labels before and now.
        """
        for j in np.flatnonzero(touched):
            rows = self.members[j]
            if rows is None:
                rows = np.flatnonzero(new == j)
            else:
                leaving = changed[left == j]
                if leaving.size:
                    rows = np.delete(rows, np.searchsorted(rows, leaving))
                joining = changed[joined == j]
                if joining.size:
                    rows = np.insert(rows, np.searchsorted(rows, joining), joining)
            self.members[j] = rows
            if rows.size == 0:
                self.sums[j] = 0
                self.weights[j] = 0
                continue
            products = np.take(self.X, rows, axis=0)
            if self.unit_weights and rows.size <= _EXACT_COUNT[self.X.dtype]:
                self.weights[j] = rows.size
            else:
                weights = np.take(self.sample_weight, rows)
                products *= weights[:, np.newaxis]
                self.weights[j] = np.cumsum(weights)[-1]
            if products.shape[1] == 1:
                # (One column: einsum would add it pairwise.)
                self.sums[j] = np.cumsum(products[:, 0])[-1]
            else:
                self.sums[j] = np.einsum("ij->j", products)


#: The largest count of ones whose sum in each dtype is exact.
_EXACT_COUNT = {np.dtype(np.float32): 2**24, np.dtype(np.float64): 2**53}


def _serial_sums(X, sample_weight, blocks, n_clusters):
    """Every block's sums at once, in this thread.

    The same arithmetic as :class:`_BlockSums` on each block in turn,
    without its per-block calls: one sparse product adds every block's
    rows, block ``b``'s into rows ``b K`` to ``b K + K - 1`` of the result,
    each row in order from zero, as a block's own product does. The one-hot
    matrix is built once and its row indices updated in place. float64
    weights are added by ``np.bincount`` instead of a second product: the
    same additions of ``w_i * 1`` in row order, in float64, without the
    product's dispatch (10,000 x 8 in 8 clusters: 0.3 ms of a fit's Lloyd
    iterations; float32 weights are added in float32, as the product does).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,)

    blocks : list of slice
        The blocks of :func:`_omp_blocks`.

    n_clusters : int

    Returns
    -------
    sums : callable
        ``sums(labels)`` returns one ``(sums, weights)`` per block, as
        :class:`_BlockSums`.
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
    ones = None if X.dtype == np.float64 else np.ones(n_samples, dtype=X.dtype)

    def sums(labels):
        # One entry per column: the indices stay sorted and canonical.
        np.add(labels, offsets, out=onehot.indices)
        totals = onehot @ X
        if ones is None:
            weights = np.bincount(
                onehot.indices, weights=sample_weight, minlength=n_blocks * n_clusters
            )
        else:
            weights = onehot @ ones
        return [
            (
                totals[b * n_clusters : (b + 1) * n_clusters],
                weights[b * n_clusters : (b + 1) * n_clusters],
            )
            for b in range(n_blocks)
        ]

    return sums


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
    if weights.all():
        return
    empty = np.where(np.equal(weights, 0))[0].astype(np.int32)
    n_empty = empty.shape[0]
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
    if weights.min() > 0:
        # (Every cluster holds rows: a few microseconds an iteration less.)
        centers *= (1.0 / weights.astype(np.float64)).astype(centers.dtype)[:, None]
        return
    argmax = np.argmax(weights)
    positive = weights > 0
    empty = np.flatnonzero(~positive)
    # The kernel's loop copies the biggest cluster's centre into an empty
    # one as it is at that point: still its sum if it comes later.
    unscaled = centers[argmax].copy() if len(empty) and empty[0] < argmax else None
    # 1.0 / w in double, then rounded to the centres' dtype.
    scale = (1.0 / weights[positive].astype(np.float64)).astype(centers.dtype)
    if positive.all():
        centers *= scale[:, np.newaxis]
    else:
        centers[positive] *= scale[:, np.newaxis]
    for j in empty:
        centers[j] = unscaled if j < argmax else centers[argmax]


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
    sq = centers_new - centers_old
    sq *= sq
    n_clusters, n_features = sq.shape
    n4 = n_features // 4
    if n_features == 0:
        return np.zeros(n_clusters, dtype=sq.dtype)
    # Every group's ((a + b) + c) + d at once, then the groups and the
    # remainder added one after the other from zero: cumulative sums add in
    # those orders (a loop over the groups cost 35 us an iteration at 30
    # features).
    terms = sq
    if n4:
        groups = np.cumsum(sq[:, : 4 * n4].reshape(n_clusters, n4, 4), axis=2)
        terms = groups[:, :, 3]
        if 4 * n4 < n_features:
            terms = np.concatenate([terms, sq[:, 4 * n4 :]], axis=1)
    return np.sqrt(np.cumsum(terms, axis=1)[:, -1])


def _lloyd(
    X,
    sample_weight,
    centers_init,
    tol,
    n_jobs=None,
    x_squared_norms=None,
    exact_centers=True,
):
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

    x_squared_norms : ndarray of shape (n_samples,), default=None
        The rows' float64 squared norms, if known (see
        :class:`_BoundedLabeller`).

    exact_centers : bool, default=True
        False returns centres within a bound of ``KMeans``'s where they were
        only known so (see :class:`_CertifiedSums`), for callers that only
        use the labels, which are ``KMeans``'s either way.

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype int32

    centers : ndarray of shape (n_clusters, n_features)

    n_iter : int
    """
    n_samples = X.shape[0]
    n_clusters = centers_init.shape[0]
    if n_samples <= CHUNK_SIZE:
        return _lloyd_one_chunk(X, sample_weight, centers_init, tol)
    blocks = _omp_blocks(n_samples, _openmp_effective_n_threads())
    if len(blocks) == 1 or (
        n_jobs is None and n_samples * n_clusters * X.itemsize < _MIN_THREADED_BYTES
    ):
        threads = 1
    else:
        threads = min(n_threads(n_jobs), len(blocks))
    # Bounds pay where a distance costs more than their bookkeeping (at
    # 100,000 x 16 and 8 clusters, they take 5% longer; at 16 clusters, 25%
    # less time, at 64 x 64, 45% less), on many rows: their per-iteration
    # bookkeeping made 569 x 30 in 12 clusters, 2,000 x 32 in 16 and 5,000
    # x 16 in 16 take 1.35-1.4x the kernel's time. Below 8,192 rows they
    # had been kept from n_features x n_clusters >= 1,024, where default
    # fits without them took 0.64-0.99 of their time on overlapping
    # clusters (float32 spherical 3,000 x 200, K = 12: 0.64; diag 1,000 x
    # 64, K = 40: 0.83-0.88; 300 x 64, K = 40: 0.83) and 0.91-0.99 on
    # separated blobs (2,000 x 32, K = 32: 0.94), except near 8,192 rows
    # (7,000 x 32, K = 40: 1.06; 5,000 x 64, K = 32: 1.02).
    size = X.shape[1] * n_clusters
    bounded = size >= _BOUNDED_MIN_SIZE and n_samples >= _BOUNDED_MIN_ROWS
    labeller = _BoundedLabeller(
        X, sample_weight, bounded=bounded, squared_norms=x_squared_norms
    )
    everything = slice(0, n_samples)
    # Blocks of _INCREMENTAL_ROWS rows or more sum only the clusters whose
    # rows changed (see _BlockSums); on fewer, every cluster, in one product.
    incremental = n_samples >= _INCREMENTAL_ROWS * len(blocks)
    if threads == 1:
        if incremental:
            summers = [
                _BlockSums(X, sample_weight, block, n_clusters, incremental=True)
                for block in blocks
            ]

            def serial_sums(labels):
                return [summer(labels) for summer in summers]

        else:
            serial_sums = _serial_sums(X, sample_weight, blocks, n_clusters)

        def run(centers, labels, with_sums):
            n_changed = labeller.label(centers, labels, everything)
            return n_changed, serial_sums(labels) if with_sums else None

    else:
        summers = [
            _BlockSums(X, sample_weight, block, n_clusters, incremental)
            for block in blocks
        ]

        def run(centers, labels, with_sums):
            if labeller.every_row:
                # Every row's distances (the kernel's, or the second
                # iteration's, 18 -> 15 ms at 200,000 x 16 in 16 clusters)
                # on each block's thread, then its sums.
                def task(summer):
                    n_changed = labeller.label(centers, labels, summer.block)
                    return n_changed, summer(labels) if with_sums else None

                results = map_in_threads(task, summers, threads)
                n_changed = sum(result[0] for result in results)
                return n_changed, [result[1] for result in results]
            # The bounds' arithmetic is a few passes over the rows, which
            # one thread runs faster than two; so are the sums of the few
            # clusters whose rows changed: handed to the threads, they
            # waited on the GIL (the k-means of 200,000 x 16 in 16 clusters
            # 0.93-0.97 of its time in this thread, 400,000 x 32 0.89,
            # 1,000,000 x 16 0.86, 100,000 x 64 in 64 1.00).
            n_changed = labeller.label(centers, labels, everything)
            if not with_sums:
                return n_changed, None
            return n_changed, [summer(labels) for summer in summers]

    # From the third iteration on, with bounds on many rows of unit weight,
    # the clusters' sums follow the few rows that moved, within a bound of
    # KMeans's sums (see _CertifiedSums): its sums are only computed where
    # a decision needs them to the last bit (200,000 x 16 in 16 clusters:
    # 0.5 -> 0.1 ms an iteration).
    certified = None
    if (
        bounded
        and incremental
        and X.dtype == np.float64
        and bool(np.all(sample_weight == 1))
    ):
        certified = _CertifiedSums(X, labeller.radius)

    def exact_sums(labels_then):
        """KMeans's sums and weights of the clusters of ``labels_then``."""
        return _added_blocks([summer(labels_then) for summer in summers])

    def kmeans_centers():
        """KMeans's centres after the labels ``certified`` holds now.

        A function computing them when called, even after the next update
        (see _CertifiedSums.labels_at).
        """
        generation = certified.generation

        def compute():
            sums, weights = exact_sums(certified.labels_at(generation))
            _average_centers(sums, weights)
            return sums

        return cache(compute)

    centers = np.array(centers_init, dtype=X.dtype, order="C", copy=True)
    labels = np.full(n_samples, -1, dtype=np.int32)
    # Bounds on the distances from ``centers`` to KMeans's, and a function
    # that computes KMeans's; None where ``centers`` are KMeans's.
    error = exact = None
    strict_convergence = False
    for n_iter in range(1, _MAX_ITER + 1):  # noqa: B007
        labeller.move(centers, error, exact)
        if certified is not None and not labeller.every_row:
            n_changed, _ = run(centers, labels, False)
            moved = certified.update(labels, labeller.moved_rows())
            if moved is not None:
                new_centers, new_error = moved
                converged = _certified_convergence(
                    centers, error, new_centers, new_error, tol
                )
                if converged is None:
                    # Too close to call: KMeans's own centres and test.
                    old = centers if error is None else exact()
                    sums, weights = exact_sums(labels)
                    certified.sync(labels, sums, weights)
                    _average_centers(sums, weights)
                    converged = (_center_shift(old, sums) ** 2).sum() <= tol
                    new_centers, new_error = sums, None
                centers, error = new_centers, new_error
                exact = None if error is None else kmeans_centers()
                if n_changed == 0:
                    strict_convergence = True
                    break
                if converged:
                    break
                continue
            # Many rows moved, or a cluster emptied: KMeans's iteration.
            if error is not None:
                centers, error, exact = exact(), None, None
            results = [summer(labels) for summer in summers]
        else:
            n_changed, results = run(centers, labels, True)
        sums, weights = _added_blocks(results)
        if certified is not None:
            if weights.all():
                certified.sync(labels, sums, weights)
            else:
                # (Relocated centres are not their clusters' means.)
                certified = None
        _relocate_empty_clusters(X, sample_weight, centers, sums, weights, labels)
        _average_centers(sums, weights)
        center_shift = _center_shift(centers, sums)
        centers, error, exact = sums, None, None
        if n_changed == 0:
            strict_convergence = True
            break
        if (center_shift**2).sum() <= tol:
            break
    if not strict_convergence:
        # Labels that match the final centres.
        labeller.move(centers, error, exact)
        run(centers, labels, False)
    if error is not None and exact_centers:
        centers = exact()
    return labels, centers, n_iter


def _added_blocks(results):
    """KMeans's sums and weights: its threads' blocks added in order.

    Parameters
    ----------
    results : list of tuple
        Each block's ``(sums, weights)``, as :class:`_BlockSums` gives them.

    Returns
    -------
    sums : ndarray of shape (n_clusters, n_features)

    weights : ndarray of shape (n_clusters,)
    """
    sums, weights = results[0][0].copy(), results[0][1].copy()
    for block_sums, block_weights in results[1:]:
        sums += block_sums
        weights += block_weights
    return sums, weights


#: Past this fraction of the rows moved, KMeans's sums are computed instead
#: (see _CertifiedSums.update).
_CERTIFIED_MOVES = 1 / 8

#: The unit roundoff of float64.
_UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2


def _sums_error(counts, radius):
    """Bounds on the distances from ``KMeans``'s clusters' sums to the exact.

    ``gamma_n n R``: ``n`` rows of norm at most ``R``, added in any order.
    """
    return _gamma(counts) * counts * radius


def _gamma(n):
    """Higham's ``gamma_n = n u / (1 - n u)``: a sum of ``n`` terms' error.

    Any order of ``n`` additions of values ``a_i`` is within
    ``gamma_n sum |a_i|`` of their exact sum.
    """
    nu = np.asarray(n, dtype=np.float64) * _UNIT_ROUNDOFF
    return nu / (1 - nu)


class _CertifiedSums:
    """The clusters' sums, moved by the rows that changed cluster.

    After the first iterations few rows change cluster, yet ``KMeans``'s
    sums add every row of a cluster that gained or lost one, in order, to
    get its rounding. Its centres are only needed to the last bit where a
    decision is too close to call: the labels of rows within the bounded
    labeller's tie margin, and the tolerance test. Elsewhere the sums
    ``S_j + sum(joined) - sum(left)`` do, with a bound on their distance
    from the exact sums: each product of the moved rows adds at most
    ``gamma_m sum ||x_i|| + u ||S_j||`` (``m`` rows moved, each of norm at
    most ``R``), and ``KMeans``'s own sums are within ``gamma_n n R`` of the
    exact ones (``n`` rows). So the centres are within

        ``e_j = 2 ((E_j + gamma_n n R) / n + 2 u (||c_j|| + R))``

    of ``KMeans``'s, a few ``1e-12 R`` where bounds on distances have
    margins of ``1e-7 R`` (see :class:`_BoundedLabeller`). For unit weights,
    whose sums are exact counts, and float64 data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float64.

    radius : float
        The largest row norm, ``R``.
    """

    def __init__(self, X, radius):
        self.X, self.radius = X, radius
        # Counts the changes of the labels held; undo reverts the last.
        self.generation, self.undo = 0, None

    def sync(self, labels, sums, weights):
        """Start from ``KMeans``'s sums and weights of ``labels``.

        Parameters
        ----------
        labels : ndarray of shape (n_samples,), dtype int32

        sums : ndarray of shape (n_clusters, n_features)

        weights : ndarray of shape (n_clusters,)
            The clusters' row counts.
        """
        self.labels = labels.copy()
        self.sums = sums.copy()
        self.counts = weights.copy()
        # Bounds on the distances from the exact sums.
        self.error = _sums_error(self.counts, self.radius)
        self.generation += 1
        self.undo = None

    def labels_at(self, generation):
        """The labels this object held at ``generation``: now or one update ago.

        Parameters
        ----------
        generation : int
            A value of ``self.generation``, at most one update old.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int32
        """
        if generation == self.generation:
            return self.labels
        if generation != self.generation - 1 or self.undo is None:
            raise RuntimeError("labels from before the last update are gone")
        changed, left = self.undo
        labels = self.labels.copy()
        labels[changed] = left
        return labels

    def update(self, labels, changed=None):
        """The centres after ``labels``, with bounds; None if not certified.

        Parameters
        ----------
        labels : ndarray of shape (n_samples,), dtype int32

        changed : ndarray of shape (n_changed,), default=None
            The rows whose labels differ from the last call's, if known.

        Returns
        -------
        centers : ndarray of shape (n_clusters, n_features)

        error : ndarray of shape (n_clusters,)
            Bounds on the distances from ``centers`` to ``KMeans``'s.

        None instead where a cluster is empty (``KMeans`` relocates a row
        into it) or many rows moved (its sums cost less).
        """
        if changed is None:
            changed = np.flatnonzero(labels != self.labels)
        n_moved = changed.size
        if n_moved > _CERTIFIED_MOVES * labels.size:
            return None
        if n_moved:
            n_clusters = self.counts.shape[0]
            left = np.take(self.labels, changed)
            joined = np.take(labels, changed)
            moves = np.zeros((n_clusters, n_moved))
            columns = np.arange(n_moved)
            moves[joined, columns] = 1
            moves[left, columns] = -1
            self.sums += moves @ np.take(self.X, changed, axis=0)
            gained = np.bincount(joined, minlength=n_clusters)
            lost = np.bincount(left, minlength=n_clusters)
            self.counts += gained - lost
            np.put(self.labels, changed, joined)
            self.generation += 1
            self.undo = changed, left
            self.error += _gamma(n_moved) * (gained + lost) * self.radius
            self.error += _UNIT_ROUNDOFF * np.sqrt((self.sums**2).sum(axis=1))
        if not self.counts.all():
            return None
        centers = self.sums.copy()
        _average_centers(centers, self.counts)
        error = (self.error + _sums_error(self.counts, self.radius)) / self.counts
        error += 2 * _UNIT_ROUNDOFF * (np.sqrt((centers**2).sum(axis=1)) + self.radius)
        return centers, 2 * error


def _certified_convergence(old, old_error, new, new_error, tol):
    """Whether ``KMeans`` stops: True, False, or None if too close to call.

    ``KMeans`` stops where the sum of its centres' squared shifts
    (:func:`_center_shift`) is at most ``tol``. From centres within
    ``old_error`` and ``new_error`` of its own, its shifts are within their
    sum of ours, up to both computations' rounding (relative, a few
    ``(n_features + 8) u``), and its sum of their squares within
    ``(n_clusters + 4) u`` of the exact one.

    Parameters
    ----------
    old, new : ndarray of shape (n_clusters, n_features)

    old_error : ndarray of shape (n_clusters,) or None
        None: ``old`` are ``KMeans``'s centres.

    new_error : ndarray of shape (n_clusters,)

    tol : float

    Returns
    -------
    converged : bool or None
    """
    n_clusters, n_features = new.shape
    rho = 2 * (n_features + 8) * _UNIT_ROUNDOFF
    shift = _center_shift(old, new).astype(np.float64)
    slack = new_error if old_error is None else old_error + new_error
    high = (shift / (1 - rho) + slack) * (1 + rho)
    low = np.maximum(shift / (1 + rho) - slack, 0) * (1 - rho)
    total = 2 * (n_clusters + 4) * _UNIT_ROUNDOFF
    if (high**2).sum() * (1 + total) <= tol:
        return True
    if (low**2).sum() * (1 - total) > tol:
        return False
    return None


def _lloyd_one_chunk(X, sample_weight, centers_init, tol):
    """``_kmeans._kmeans_single_lloyd`` on data of one 256-row chunk.

    Whatever ``KMeans``'s thread count, one thread computes the only chunk
    and the others add zeros: the kernel with its centre update, on one
    thread, is ``KMeans``'s iteration to the last bit. Without the block
    machinery of :func:`_lloyd` and the BLAS limit ``_kmeans_single_lloyd``
    sets, an iteration on iris takes a few microseconds (the Lloyd
    iterations of a fit: 0.25 -> 0.07 ms).

    Parameters and returns as :func:`_lloyd`.
    """
    n_clusters = centers_init.shape[0]
    centers = np.array(centers_init, dtype=X.dtype, order="C", copy=True)
    centers_new = np.zeros_like(centers)
    labels = np.full(X.shape[0], -1, dtype=np.int32)
    labels_old = labels.copy()
    weight_in_clusters = np.zeros(n_clusters, dtype=X.dtype)
    center_shift = np.zeros(n_clusters, dtype=X.dtype)
    strict_convergence = False
    for n_iter in range(1, _MAX_ITER + 1):  # noqa: B007
        lloyd_iter_chunked_dense(
            X,
            sample_weight,
            centers,
            centers_new,
            weight_in_clusters,
            labels,
            center_shift,
            1,
        )
        centers, centers_new = centers_new, centers
        if np.array_equal(labels, labels_old):
            strict_convergence = True
            break
        if (center_shift**2).sum() <= tol:
            break
        labels_old[:] = labels
    if not strict_convergence:
        lloyd_iter_chunked_dense(
            X,
            sample_weight,
            centers,
            centers,
            weight_in_clusters,
            labels,
            center_shift,
            1,
            update_centers=False,
        )
    return labels, centers, n_iter
