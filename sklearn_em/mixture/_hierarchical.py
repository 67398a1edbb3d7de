"""Model-based agglomerative hierarchical clustering, as R's mclust ``hc()``.

mclust initialises EM for every number of components K from one
agglomeration: ``hc(X, modelName="VVV", use="SVD")`` (Fraley 1998), cut into
K clusters by ``hclass``. Starting from singletons, every step merges the two
clusters whose union least increases the criterion

.. math::

    \\sum_k n_k \\log\\Big(\\det\\big(W_k / n_k\\big)
        + \\frac{\\operatorname{tr}(W_k) + \\alpha}{n_k}\\Big),

the classification likelihood of Gaussian clusters with unconstrained
covariances (mclust's VVV), regularised as in mclust's Fortran ``hcvvv``:
``W_k`` is the scatter matrix of cluster k, its determinant counts only when
``n_k`` exceeds the dimension (and is omitted otherwise), and ``alpha`` is the
total scatter of the data divided by ``n_samples * n_dims`` (``traceW`` of
``data / sqrt(n p)``, with mclust's ``alpha=1, beta=1``). The agglomeration
runs on mclust's ``"SVD"`` transform of the data (``mclust.options("hcUse")``):
the columns are standardised and rotated onto the right singular vectors,
each scaled by the inverse square root of its singular value.

The functions here are private numerical kernels: the selection module
(:mod:`sklearn_em.mixture._selection`) draws the rows, cuts the tree at every
K and extends the partitions to the other rows. Time and memory grow as the
square of the number of rows: the caller bounds it.

References
----------
C. Fraley, "Algorithms for model-based Gaussian hierarchical clustering",
SIAM Journal on Scientific Computing 20(1), 1998.

L. Scrucca, M. Fop, T. B. Murphy and A. E. Raftery, "mclust 5", The R
Journal 8(1), 2016 (the ``hc``, ``hcVVV`` and ``hclass`` functions of the R
package, version 6).
"""

import math

import numpy as np
from scipy.linalg.lapack import dpotrf as potrf
from scipy.linalg.lapack import dtrtri as trtri


def _svd_transform(X):
    """mclust's ``"SVD"`` transform of the data before the agglomeration.

    The columns are centred and scaled to unit standard deviation (R's
    ``scale``: ``n - 1`` denominator); constant columns, which R's ``scale``
    turns into NaN and ``hc`` drops, are dropped. With the thin SVD
    ``X_std = U diag(s) V^T``, the result is ``X_std V diag(s)^(-1/2) =
    U diag(s)^(1/2)``. Directions with a negligible singular value (collinear
    columns, or fewer rows than columns), for which mclust's division yields
    infinities, are dropped too.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Dense, finite data, at least two rows.

    Returns
    -------
    Z : ndarray of shape (n_samples, n_dims)
        The transformed data, float64, ``n_dims <= min(n_samples,
        n_features)``; ``n_dims`` is 0 when every column is constant.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(
            "The agglomeration needs a 2-D array with at least 2 rows, got "
            f"shape {X.shape}."
        )
    if not np.all(np.isfinite(X)):
        raise ValueError("The agglomeration needs finite data (no NaN or inf).")
    centred = X - X.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=0) / (X.shape[0] - 1))
    keep = scale > 0
    if not keep.any():
        return np.zeros((X.shape[0], 0))
    standardised = centred[:, keep] / scale[keep]
    U, s, _ = np.linalg.svd(standardised, full_matrices=False)
    keep = s > s[0] * max(standardised.shape) * np.finfo(np.float64).eps
    return U[:, keep] * np.sqrt(s[keep])


def _vvv_terms(counts, traces, logdets, n_dims, alpha):
    """Each cluster's term of the VVV agglomeration criterion.

    ``n_k log(det(W_k / n_k) + (tr(W_k) + alpha) / n_k)``, the determinant
    counting only when ``n_k > n_dims`` (mclust's ``vvvtij``).

    Parameters
    ----------
    counts : ndarray of shape (n_clusters,)
        The clusters' sizes ``n_k``.

    traces : ndarray of shape (n_clusters,)
        ``tr(W_k)``.

    logdets : ndarray of shape (n_clusters,)
        ``log det(W_k)``; ``-inf`` for a singular scatter matrix. Ignored
        where ``n_k <= n_dims``.

    n_dims : int

    alpha : float
        The regularisation, > 0.

    Returns
    -------
    terms : ndarray of shape (n_clusters,)
    """
    counts, traces, logdets = np.broadcast_arrays(
        np.asarray(counts, dtype=np.float64), traces, logdets
    )
    log_counts = np.log(counts)
    terms = np.log(traces + alpha) - log_counts
    big = counts > n_dims
    if big.any():
        determinant = logdets[big] - n_dims * log_counts[big]
        terms[big] = np.logaddexp(terms[big], determinant)
    terms *= counts
    return terms


def _logdets(matrices):
    """``log det`` of symmetric positive semi-definite matrices.

    Parameters
    ----------
    matrices : ndarray of shape (n_matrices, n_dims, n_dims)

    Returns
    -------
    logdets : ndarray of shape (n_matrices,)
        ``-inf`` where a matrix is numerically singular (a non-positive
        determinant).
    """
    if matrices.shape[0] == 0:
        return np.empty(0)
    sign, logdet = np.linalg.slogdet(matrices)
    return np.where(sign > 0, logdet, -np.inf)


def _pair_costs(a, b, counts, means, traces, scatters, terms, alpha):
    """Exact increase of the criterion when clusters ``a[t]`` and ``b[t]`` merge.

    Parameters
    ----------
    a, b : ndarray of int of shape (n_pairs,)
        Active clusters, ``a[t] != b[t]``.

    counts, means, traces, scatters, terms : ndarray
        The clusters' statistics, as in :func:`_merge_costs`.

    alpha : float

    Returns
    -------
    costs : ndarray of shape (n_pairs,)
    """
    n_dims = means.shape[1]
    n_merged = counts[a] + counts[b]
    coef = counts[a] * counts[b] / n_merged
    diff = means[b] - means[a]
    traces_merged = traces[a] + traces[b] + coef * np.einsum("ij,ij->i", diff, diff)
    merged = scatters[a] + scatters[b]
    merged += coef[:, np.newaxis, np.newaxis] * (
        diff[:, :, np.newaxis] * diff[:, np.newaxis, :]
    )
    logdets = np.where(n_merged > n_dims, _logdets(merged), -np.inf)
    merged_terms = _vvv_terms(n_merged, traces_merged, logdets, n_dims, alpha)
    return merged_terms - terms[a] - terms[b]


def _trace_costs(i, n_active, counts, means, traces, terms, alpha):
    """The costs of merging cluster ``i`` with each other, determinants omitted.

    Exact where the merged cluster has at most ``n_dims`` rows, a lower bound
    elsewhere (see :func:`_merge_costs`).

    Parameters
    ----------
    i, n_active, counts, means, traces, terms, alpha
        As in :func:`_merge_costs`.

    Returns
    -------
    costs : ndarray of shape (n_active,)
        ``inf`` at ``i`` itself.

    n_merged, coef : ndarray of shape (n_active,)
        The merged clusters' sizes and ``n_i n_k / (n_i + n_k)``.

    diff : ndarray of shape (n_active, n_dims)
        ``mean_k - mean_i``.

    traces_merged : ndarray of shape (n_active,)
        The merged clusters' ``tr(W)``.
    """
    n_i = counts[i]
    n_other = counts[:n_active]
    n_merged = n_other + n_i
    coef = n_other * n_i
    coef /= n_merged
    diff = means[:n_active] - means[i]
    traces_merged = traces[:n_active] + traces[i]
    spread = np.einsum("ij,ij->i", diff, diff)
    spread *= coef
    traces_merged += spread
    # The terms without their determinant.
    costs = traces_merged + alpha
    np.log(costs, out=costs)
    costs -= np.log(n_merged)
    costs *= n_merged
    costs -= terms[i]
    costs -= terms[:n_active]
    costs[i] = np.inf
    return costs, n_merged, coef, diff, traces_merged


def _merge_costs(
    i, n_active, counts, means, traces, scatters, terms, alpha, cholesky, bounds
):
    """Increase of the criterion when cluster ``i`` merges with each other.

    Exact where it can matter, a lower bound elsewhere: the criterion's term
    is at least ``n log((tr(W) + alpha) / n)`` (the determinant omitted), so
    a pair whose bound is at least ``bounds`` (the other cluster's best
    cost so far) and at least the smallest exact cost of ``i`` cannot be
    the next merge of either cluster: its determinant is only computed if a
    later step needs it.

    The active clusters are the first ``n_active`` slots of the statistics
    (see :func:`_hc_vvv`): each array below is read as one contiguous
    slice, without gathering the other clusters' rows.

    Parameters
    ----------
    i : int
        The slot of the cluster merged with each other active cluster.

    n_active : int
        The number of active clusters, ``i < n_active``.

    counts : ndarray of shape (n_slots,)
        Sizes of the clusters.

    means : ndarray of shape (n_slots, n_dims)

    traces : ndarray of shape (n_slots,)

    scatters : ndarray of shape (n_slots, n_dims, n_dims)
        The clusters' scatter matrices ``W_k`` (zero for singletons).

    terms : ndarray of shape (n_slots,)
        The clusters' current terms of the criterion.

    alpha : float

    cholesky : ndarray of shape (n_dims, n_dims) or None
        The lower Cholesky factor of ``scatters[i]`` when it is well
        conditioned, else None.

    bounds : ndarray of shape (n_active,)
        The other clusters' current best costs (``-inf`` to force exact
        costs).

    Returns
    -------
    costs : ndarray of shape (n_active,)
        ``term(i + other) - term(i) - term(other)``, or a lower bound of it
        where ``exact`` is False; ``inf`` at ``i`` itself.

    exact : ndarray of bool of shape (n_active,)
    """
    n_dims = means.shape[1]
    n_other = counts[:n_active]
    costs, n_merged, coef, diff, traces_merged = _trace_costs(
        i, n_active, counts, means, traces, terms, alpha
    )
    exact = n_merged <= n_dims
    exact[i] = True
    todo = (~exact & (costs < bounds)).nonzero()[0]
    if not todo.size:
        todo = _below_smallest_exact(costs, exact)
    inverse = None
    while todo.size:
        logdets = np.empty(todo.size)
        dense = np.ones(todo.size, dtype=bool)
        if cholesky is not None:
            # A singleton joining a non-singular cluster: the determinant
            # lemma, det(W + c d d^T) = det(W) (1 + c d^T W^-1 d), O(D^2).
            dense = n_other[todo] > 1
            singles = todo[~dense]
            if singles.size:
                if inverse is None:
                    # (LAPACK's trtri: np.linalg.inv's LU for a triangle
                    # costs 6 us more; the merges of iris, wine, breast
                    # cancer and 2,000-row subsets were unchanged.)
                    inverse = trtri(cholesky, lower=True)[0].T
                    logdet_i = 2 * np.log(cholesky.diagonal()).sum()
                solved = diff[singles] @ inverse
                quadratic = np.einsum("ij,ij->i", solved, solved)
                logdets[~dense] = logdet_i + np.log1p(coef[singles] * quadratic)
        if dense.any():
            pairs = todo[dense]
            merged = scatters[pairs]
            merged += scatters[i]
            merged += coef[pairs, np.newaxis, np.newaxis] * (
                diff[pairs, :, np.newaxis] * diff[pairs, np.newaxis, :]
            )
            logdets[dense] = _logdets(merged)
        # _vvv_terms, where every count exceeds n_dims (the same operations).
        n_todo = n_merged[todo]
        log_counts = np.log(n_todo)
        merged_terms = traces_merged[todo]
        merged_terms += alpha
        np.log(merged_terms, out=merged_terms)
        merged_terms -= log_counts
        log_counts *= n_dims
        logdets -= log_counts
        np.logaddexp(merged_terms, logdets, out=merged_terms)
        merged_terms *= n_todo
        merged_terms -= terms[i]
        merged_terms -= terms[todo]
        costs[todo] = merged_terms
        exact[todo] = True
        todo = _below_smallest_exact(costs, exact)
    return costs, exact


def _below_smallest_exact(costs, exact):
    """The bounds that may hide a cost below the smallest exact one.

    The smallest of a new cluster's costs becomes its best merge, which may
    be the next merge of all: it must be exact. The bounds below the
    smallest exact cost are computed, or, while no cost is exact, the
    smallest bound. (Returning only the bounds below the other clusters'
    best costs let a bound become the cluster's best, and the next merge:
    40 rows in 3-D merged a pair whose exact cost, 19.5, was above
    another's, 17.2.)

    Parameters
    ----------
    costs : ndarray of shape (n_active,)

    exact : ndarray of bool of shape (n_active,)
        At least one True (the cluster's own, infinite, cost).

    Returns
    -------
    todo : ndarray of int
        Positions of ``costs`` to compute exactly; empty when the smallest
        cost is exact.
    """
    smallest = costs.min(where=exact, initial=np.inf)
    todo = (~exact & (costs < smallest)).nonzero()[0]
    if todo.size and smallest == np.inf:
        todo = todo[[costs[todo].argmin()]]
    return todo


def _cluster_term(count, trace, scatter, alpha):
    """The term of one cluster, and its scatter's Cholesky factor.

    Parameters
    ----------
    count : float

    trace : float

    scatter : ndarray of shape (n_dims, n_dims)

    alpha : float

    Returns
    -------
    term : float
        As :func:`_vvv_terms`.

    cholesky : ndarray of shape (n_dims, n_dims) or None
        The lower Cholesky factor of ``scatter`` when ``count > n_dims`` and
        it is well conditioned (its diagonal within a factor 1e7), else
        None.
    """
    n_dims = scatter.shape[0]
    regularised = math.log(trace + alpha) - math.log(count)
    if count <= n_dims:
        return count * regularised, None
    # LAPACK's potrf directly: scipy.linalg.cholesky calls the same routine
    # with its checks on top (the same factor to the last bit, tested), and
    # np.linalg.cholesky, NumPy's own LAPACK, gives it up to rounding for
    # about 4 us more a call.
    cholesky, info = potrf(scatter, lower=True, clean=True)
    diagonal = cholesky.diagonal()
    if info == 0 and diagonal.min() > 1e-7 * diagonal.max():
        logdet = 2 * float(np.log(diagonal).sum())
    else:
        cholesky = None
        logdet = float(_logdets(scatter[np.newaxis])[0])
    determinant = logdet - n_dims * math.log(count)
    return count * float(np.logaddexp(regularised, determinant)), cholesky


def _hc_vvv(Z):
    """The merges of mclust's ``hcVVV`` agglomeration, from singletons.

    Every step merges the two clusters whose union least increases the VVV
    criterion (see the module docstring). A cluster is named by its smallest
    row; the merged cluster keeps the smaller name, as in mclust's
    ``hcPairs``. Exact ties are broken differently from mclust (which takes
    the last pair in its own storage order): on data with tied distances
    the merge order can differ, not the partitions once the ties are
    resolved.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_dims)
        The data to agglomerate (mclust's ``hc`` passes the SVD transform,
        :func:`_svd_transform`), finite, at least 2 rows.

    Returns
    -------
    merges : ndarray of int of shape (n_samples - 1, 2)
        Merge t joins the clusters named ``merges[t, 0] < merges[t, 1]``:
        0-based, otherwise mclust's ``t(hcPairs) - 1``.

    costs : ndarray of shape (n_samples - 1,)
        The increase of the criterion at each merge.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise ValueError(
            f"The agglomeration needs a 2-D array with at least 2 rows, got "
            f"shape {Z.shape}."
        )
    if not np.all(np.isfinite(Z)):
        raise ValueError("The agglomeration needs finite data (no NaN or inf).")
    n_samples, n_dims = Z.shape
    if n_dims == 0:
        # Every row is the same point: any order of merges.
        merges = np.column_stack(
            [np.zeros(n_samples - 1, dtype=np.intp), np.arange(1, n_samples)]
        )
        return merges, np.zeros(n_samples - 1)
    centred = Z - Z.mean(axis=0)
    # traceW(data / sqrt(n p)), mclust's alpha with alpha = beta = 1.
    alpha = max(
        float(np.einsum("ij,ij->", centred, centred)) / (n_samples * max(n_dims, 1)),
        np.finfo(np.float64).eps,
    )
    counts = np.ones(n_samples, dtype=np.float64)
    means = Z.copy()
    traces = np.zeros(n_samples)
    scatters = np.zeros((n_samples, n_dims, n_dims))
    terms = np.full(n_samples, math.log(alpha))
    # Every pair of singletons: W = d d^T / 2 of their difference d.
    squared = np.einsum("ij,ij->i", centred, centred)
    costs = centred @ centred.T
    costs *= -2
    costs += squared[:, np.newaxis]
    costs += squared[np.newaxis, :]
    np.maximum(costs, 0, out=costs)
    costs /= 2
    if n_dims == 1:
        with np.errstate(divide="ignore"):
            logdets = np.log(costs)
        costs = _vvv_terms(2.0, costs, logdets, n_dims, alpha)
        costs -= 2 * math.log(alpha)
    else:
        # 2 log((tr + alpha) / 2) - 2 log(alpha).
        costs /= alpha
        np.log1p(costs, out=costs)
        costs -= math.log(2)
        costs *= 2
    np.fill_diagonal(costs, np.inf)
    # Whether each entry of costs is exact, or a lower bound.
    exact = np.ones((n_samples, n_samples), dtype=bool)
    best = costs.min(axis=1)
    nearest = costs.argmin(axis=1)
    # The active clusters fill the first n_active slots: a merge frees a
    # slot, and the last active cluster moves into it. Every pass over the
    # other clusters then reads contiguous slices rather than gathering
    # their rows (about a third of each step on 2,000 rows). names[slot]
    # is the cluster's name, its smallest row.
    names = np.arange(n_samples)
    merges = np.empty((n_samples - 1, 2), dtype=np.intp)
    merge_costs = np.empty(n_samples - 1)
    statistics = (counts, means, traces, scatters, terms, alpha)
    first = _trace_phase(
        merges, merge_costs, names, statistics, costs, exact, best, nearest
    )
    for step in range(first, n_samples - 1):
        n_active = n_samples - step
        a = int(best[:n_active].argmin())
        b = int(nearest[a])
        i, j = (a, b) if names[a] < names[b] else (b, a)
        merges[step] = names[i], names[j]
        merge_costs[step] = best[a]
        if step == n_samples - 2:
            break
        cholesky = _join(i, j, statistics)
        i, stale_mask = _free_slot(
            i, j, n_active, names, statistics, costs, exact, best, nearest
        )
        n_active -= 1
        new, new_exact = _merge_costs(
            i,
            n_active,
            *statistics,
            cholesky,
            np.where(stale_mask, np.inf, best[:n_active]),
        )
        costs[i, :n_active] = new
        costs[:n_active, i] = new
        exact[i, :n_active] = new_exact
        exact[:n_active, i] = new_exact
        k = int(new.argmin())
        best[i], nearest[i] = new[k], k
        stale = stale_mask.nonzero()[0]
        while stale.size:
            rows = costs[stale, :n_active]
            columns = rows.argmin(axis=1)
            best[stale] = rows[np.arange(stale.size), columns]
            nearest[stale] = columns
            bound = ~exact[stale, columns]
            stale, columns = stale[bound], columns[bound]
            if stale.size:
                values = _pair_costs(stale, columns, *statistics)
                costs[stale, columns] = values
                costs[columns, stale] = values
                exact[stale, columns] = True
                exact[columns, stale] = True
        closer = (new < best[:n_active]).nonzero()[0]
        best[closer] = new[closer]
        nearest[closer] = i
    return merges, merge_costs


def _join(i, j, statistics):
    """Cluster ``j`` joins cluster ``i``: ``i``'s statistics and term, in place.

    Parameters
    ----------
    i, j : int
        Slots of :func:`_hc_vvv`'s statistics.

    statistics : tuple
        ``(counts, means, traces, scatters, terms, alpha)``, as in
        :func:`_merge_costs`.

    Returns
    -------
    cholesky : ndarray of shape (n_dims, n_dims) or None
        See :func:`_cluster_term`.
    """
    counts, means, traces, scatters, terms, alpha = statistics
    n_i, n_j = counts[i], counts[j]
    diff = means[j] - means[i]
    coef = n_i * n_j / (n_i + n_j)
    scatters[i] += scatters[j]
    scatters[i] += coef * (diff[:, np.newaxis] * diff)
    traces[i] += traces[j] + coef * float(diff @ diff)
    means[i] += diff * (n_j / (n_i + n_j))
    counts[i] = n_i + n_j
    terms[i], cholesky = _cluster_term(counts[i], traces[i], scatters[i], alpha)
    return cholesky


def _trace_phase(merges, merge_costs, names, statistics, costs, exact, best, nearest):
    """The first merges of :func:`_hc_vvv`, while no determinant counts.

    As long as any two clusters together have at most ``n_dims`` rows, every
    term of the criterion is its trace part (see :func:`_vvv_terms`): every
    cost is exact, and a step is the merge, the new cluster's costs (the
    first half of :func:`_merge_costs`, :func:`_trace_costs`) and the rescan
    of the clusters whose nearest it took, without the bounds, the
    flags of exactness or the factorisations of the general loop. That is
    about two thirds of a step's NumPy calls, for 115 of wine's 177 merges
    (13 dimensions) and 353 of breast cancer's 568 (30); iris (4) has 3.

    The arrays are :func:`_hc_vvv`'s, updated in place; every entry of its
    ``exact`` stays True.

    Returns
    -------
    n_steps : int
        The merges done: ``_hc_vvv`` goes on from there.
    """
    counts, means, traces, _, terms, alpha = statistics
    n_samples, n_dims = means.shape
    largest = 1.0
    for step in range(n_samples - 2):
        n_active = n_samples - step
        a = int(best[:n_active].argmin())
        b = int(nearest[a])
        merged = counts[a] + counts[b]
        largest = max(largest, merged)
        # The new cluster's costs have at most merged + largest rows.
        if merged + largest > n_dims:
            return step
        i, j = (a, b) if names[a] < names[b] else (b, a)
        merges[step] = names[i], names[j]
        merge_costs[step] = best[a]
        _join(i, j, statistics)
        i, stale_mask = _free_slot(
            i, j, n_active, names, statistics, costs, exact, best, nearest
        )
        n_active -= 1
        new = _trace_costs(i, n_active, counts, means, traces, terms, alpha)[0]
        costs[i, :n_active] = new
        costs[:n_active, i] = new
        k = int(new.argmin())
        best[i], nearest[i] = new[k], k
        stale = stale_mask.nonzero()[0]
        if stale.size:
            columns = costs[stale, :n_active].argmin(axis=1)
            best[stale] = costs[stale, columns]
            nearest[stale] = columns
        closer = (new < best[:n_active]).nonzero()[0]
        best[closer] = new[closer]
        nearest[closer] = i
    return n_samples - 2


def _free_slot(i, j, n_active, names, statistics, costs, exact, best, nearest):
    """Free the slot of ``j``, merged into ``i``, for the last active cluster.

    Parameters
    ----------
    i, j : int
        The merged clusters' slots, ``j`` the one that joined.

    n_active : int
        The active clusters before the merge.

    names, statistics, costs, exact, best
        As in :func:`_move_slot`.

    nearest : ndarray of int of shape (n_slots,)
        Each active cluster's nearest, renumbered for the move.

    Returns
    -------
    i : int
        The merged cluster's slot after the move.

    stale : ndarray of bool of shape (n_active - 1,)
        The clusters other than ``i`` whose nearest was ``i`` or ``j``: their
        rows are to be rescanned.
    """
    stale = nearest[:n_active] == i
    stale |= nearest[:n_active] == j
    last = n_active - 1
    if j != last:
        _move_slot(last, j, n_active, names, statistics, costs, exact, best)
        nearest[j] = nearest[last]
        stale[j] = stale[last]
        nearest[:last][nearest[:last] == last] = j
        if i == last:
            i = j
    stale = stale[:last]
    stale[i] = False
    return i, stale


def _move_slot(source, target, n_active, names, statistics, costs, exact, best):
    """Move the cluster in slot ``source`` to the free slot ``target``.

    Parameters
    ----------
    source, target : int
        ``target < source < n_active``; the cluster in ``target`` is gone.

    n_active : int
        The number of slots in use, ``source`` included.

    names : ndarray of int of shape (n_slots,)

    statistics : tuple
        ``(counts, means, traces, scatters, terms, alpha)``, as in
        :func:`_merge_costs`.

    costs, exact : ndarray of shape (n_slots, n_slots)
        The pair costs and whether each is exact, symmetric.

    best : ndarray of shape (n_slots,)
    """
    for array in (names, best, *statistics[:-1]):
        array[target] = array[source]
    # The matrices are symmetric: the column is written from the moved row,
    # read contiguously (copying column to column took 4x as long).
    costs[target, :n_active] = costs[source, :n_active]
    costs[target, target] = np.inf
    costs[:n_active, target] = costs[target, :n_active]
    exact[target, :n_active] = exact[source, :n_active]
    exact[:n_active, target] = exact[target, :n_active]


def _hc_cut(merges, n_clusters):
    """The partition into ``n_clusters`` after the first merges of a tree.

    Parameters
    ----------
    merges : ndarray of int of shape (n_samples - 1, 2)
        As returned by :func:`_hc_vvv`: ``merges[t, 1]`` joins
        ``merges[t, 0]``, the smaller name.

    n_clusters : int
        Between 1 and n_samples.

    Returns
    -------
    labels : ndarray of int of shape (n_samples,)
        Exactly ``n_clusters`` labels, 0 to n_clusters - 1, numbered in the
        order of their first row (mclust's ``hclass`` minus 1).
    """
    return _hc_cuts(merges, [n_clusters])[n_clusters]


def _roots(parent):
    """Each node's root in a forest, by pointer jumping.

    Parameters
    ----------
    parent : ndarray of int of shape (n_nodes,)
        Each node's parent, a root its own.

    Returns
    -------
    roots : ndarray of int of shape (n_nodes,)
        After O(log depth) rounds of ``parent[parent]``.
    """
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent
        parent = jumped


def _hc_cuts(merges, n_clusters):
    """:func:`_hc_cut` at several numbers of clusters, from one pass.

    The finest partition by pointer jumping, then each coarser one by the
    next merge: the cluster of its second name joins that of its first.

    Parameters
    ----------
    merges : ndarray of int of shape (n_samples - 1, 2)

    n_clusters : iterable of int
        Each between 1 and n_samples.

    Returns
    -------
    labels : dict of int to ndarray of int of shape (n_samples,)
        ``_hc_cut(merges, k)`` for every ``k`` of ``n_clusters``.
    """
    n_samples = merges.shape[0] + 1
    wanted = sorted(set(int(k) for k in n_clusters), reverse=True)
    for k in wanted:
        if not 1 <= k <= n_samples:
            raise ValueError(f"n_clusters must be between 1 and {n_samples}, got {k}.")
    parent = np.arange(n_samples)
    done = merges[: n_samples - wanted[0]]
    parent[done[:, 1]] = done[:, 0]
    # Every row points to its cluster's smallest row.
    parent = _roots(parent)
    labels = {}
    current = wanted[0]
    for k in wanted:
        for first, second in merges[n_samples - current : n_samples - k]:
            parent[parent == second] = first
        current = k
        labels[k] = np.unique(parent, return_inverse=True)[1]
    return labels
