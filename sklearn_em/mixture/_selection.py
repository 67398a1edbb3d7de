"""Choosing the number of components and the covariance structure.

:class:`GaussianMixtureIC` and :class:`BernoulliMixtureIC` fit one mixture
per candidate -- every number of components K of a grid and, for Gaussians,
every covariance structure of a list -- score each by an information
criterion (BIC, AIC or ICL) and keep the best, like scikit-learn's
``LassoLarsIC`` for the Lasso's penalty. The search shares its work across
candidates instead of fitting each one from scratch:

- the data are validated once;
- shared initialisations: one agglomeration of a bounded random subset of
  rows (``ward_max_samples``) is cut at every K, and each candidate starts
  from that partition's M-step: no k-means per candidate.
  ``init_params="mclust"`` is R's mclust initialisation, a model-based
  agglomeration (``hc()`` with the VVV criterion on the SVD-transformed
  data, in :mod:`._hierarchical`; the other rows join their most probable
  cluster); ``"ward"`` is Ward's agglomeration (the other rows join the
  nearest cluster mean); ``"ward+mclust"``, the default for Gaussians,
  starts every candidate from both and keeps the better fit: with
  ``n_init=1`` the starts race (3 EM iterations each, then only the leader
  goes on to convergence; :func:`_fit_one`). Bernoulli mixtures use
  ``"ward"``;
- with ``n_init >= 2``, a richer covariance structure at one K also starts
  from the fitted solution of the structures nested in it (``spherical``
  from ``tied_spherical``, ``full`` from the better of ``diag`` and
  ``tied``, ...): a point of the richer model, from which EM can only gain;
- the K's are independent tasks, which ``n_jobs`` runs in parallel with
  joblib (by default, on large data, two at a time on threads).

Every candidate is still a complete EM fit, to ``tol`` or ``max_iter``.
"""

import copy
import time
import warnings
from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from scipy.cluster.hierarchy import linkage
from sklearn import config_context
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.preprocessing import binarize as _binarize
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._arrays import check_sample_weight
from ._bernoulli import BernoulliMixtureEM, _check_binary
from ._gaussian import (
    GaussianMixtureEM,
    _compute_precision_cholesky_from_precisions,
    _engine_covariance_type,
    _one_hot_weights,
    _scaled_for_kmeans,
)
from ._gaussian import _partition_statistics as _gaussian_partition_statistics
from ._hierarchical import _hc_cuts, _hc_vvv, _svd_transform
from ._lockstep import _run_reduce, fit_in_lockstep
from ._suffstats import (
    blas_limit_for,
    logsumexp_rows,
    map_in_threads,
    map_reduce,
    n_threads,
    normalise_weights,
    single_threaded_blas,
)

#: Every covariance structure, from the most constrained to the richest: the
#: order candidates of one K are fitted in, so that nested structures are
#: fitted before the structures that contain them.
COVARIANCE_TYPES = ("tied_spherical", "spherical", "tied_diag", "diag", "tied", "full")

#: mclust's name of each structure (volume, shape, orientation: E equal,
#: V variable, I identity).
MCLUST_NAMES = {
    "tied_spherical": "EII",
    "spherical": "VII",
    "tied_diag": "EEI",
    "diag": "VVI",
    "tied": "EEE",
    "full": "VVV",
}

#: The structures nested in each one: a fitted solution of any of them is a
#: point of the richer model, from which its EM can start.
_NESTED_IN = {
    "tied_spherical": (),
    "spherical": ("tied_spherical",),
    "tied_diag": ("tied_spherical",),
    "diag": ("spherical", "tied_diag"),
    "tied": ("tied_diag",),
    "full": ("diag", "tied"),
}

_CRITERIA = ("bic", "aic", "icl")

#: Criteria within this relative distance of the lowest are ties (see
#: _BaseMixtureIC._store_results): rounding differences between equal models
#: are ~1e-15 relative; the criteria of different fits differ by far more.
_TIE_RTOL = 1e-10


# ----------------------------------------------------------------------
# Validation of the grid.
def _check_n_components(n_components):
    """The grid of numbers of components, sorted and without repeats.

    Parameters
    ----------
    n_components : int or array-like of int
        An int K means 1, ..., K.

    Returns
    -------
    grid : ndarray of int of shape (n_candidates,)
    """
    if isinstance(n_components, Integral):
        return np.arange(1, int(n_components) + 1)
    values = np.asarray(n_components)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            "n_components must be an int or a non-empty 1-D array-like of ints, "
            f"got {n_components!r}."
        )
    if not (
        np.issubdtype(values.dtype, np.integer)
        or (
            np.issubdtype(values.dtype, np.floating)
            and np.all(np.isfinite(values))
            and np.all(values == np.round(values))
        )
    ):
        raise ValueError(
            f"n_components must hold integers, got {list(values.tolist())!r}."
        )
    values = values.astype(np.int64)
    if values.min() < 1:
        raise ValueError(f"n_components must be >= 1, got {list(values.tolist())!r}.")
    return np.unique(values)


def _check_covariance_types(covariance_type):
    """The covariance structures to search, in the fitting order.

    Parameters
    ----------
    covariance_type : str or array-like of str

    Returns
    -------
    covariance_types : tuple of str
        A subset of :data:`COVARIANCE_TYPES`, in its order.
    """
    if isinstance(covariance_type, str):
        requested = COVARIANCE_TYPES if covariance_type == "all" else (covariance_type,)
    else:
        requested = tuple(covariance_type)
        if not requested:
            raise ValueError("covariance_type must not be empty.")
    unknown = [
        t for t in requested if not isinstance(t, str) or t not in COVARIANCE_TYPES
    ]
    if unknown:
        raise ValueError(
            f"Unknown covariance_type {unknown!r}: choose among "
            f"{list(COVARIANCE_TYPES)} or 'all'."
        )
    return tuple(t for t in COVARIANCE_TYPES if t in requested)


# ----------------------------------------------------------------------
# The shared initialisation: one Ward tree, cut at every K.
def _merges_by_smallest_row(children):
    """A SciPy linkage's merges, named as mclust's ``hcPairs`` name them.

    Parameters
    ----------
    children : ndarray of int of shape (n_leaves - 1, 2)
        Merge i joins clusters ``children[i]`` into cluster ``n_leaves + i``
        (the first two columns of a SciPy linkage matrix).

    Returns
    -------
    merges : ndarray of int of shape (n_leaves - 1, 2)
        Merge i joins the clusters whose smallest rows are ``merges[i, 0] <
        merges[i, 1]``, the input of :func:`_hierarchical._hc_cuts`.
    """
    n_leaves = children.shape[0] + 1
    # Each node's smallest row (Python lists: a loop of scalar steps).
    smallest = list(range(n_leaves))
    merges = []
    for a, b in children.tolist():
        pair = (smallest[a], smallest[b])
        merges.append(pair if pair[0] < pair[1] else pair[::-1])
        smallest.append(min(pair))
    return np.array(merges, dtype=np.intp).reshape(-1, 2)


def _agglomeration_subset(
    n_samples, sample_weight, max_samples, min_size, random_state
):
    """The rows a shared agglomeration runs on (Ward's or mclust's).

    All rows; or a random subset of ``max_samples`` rows; or, when the
    sample weights vary, the rows repeated by their integer weights (if
    they are integers summing to at most ``max_samples``) or drawn with
    probability proportional to them.

    Parameters
    ----------
    n_samples : int

    sample_weight : ndarray of shape (n_samples,) or None

    max_samples : int

    min_size : int
        The largest number of clusters the tree is cut into: fewer rows
        raise a ValueError.

    random_state : RandomState instance

    Returns
    -------
    subset : ndarray of int of shape (n_subset,)
        Row indices, sorted, possibly repeated.
    """
    uniform = sample_weight is None or np.all(sample_weight == sample_weight[0])
    integral = sample_weight is not None and np.all(
        sample_weight == np.round(sample_weight)
    )
    if uniform and n_samples <= max_samples:
        subset = np.arange(n_samples)
    elif uniform:
        subset = np.sort(random_state.choice(n_samples, max_samples, replace=False))
    elif integral and sample_weight.sum() <= max_samples:
        # Integer weights count repeated rows: the tree of the repeated rows.
        subset = np.repeat(np.arange(n_samples), sample_weight.astype(np.intp))
    else:
        size = min(n_samples, max_samples)
        p = sample_weight / sample_weight.sum()
        subset = np.sort(random_state.choice(n_samples, size, replace=True, p=p))
    if len(subset) < min_size:
        raise ValueError(
            f"ward_max_samples={max_samples} is smaller than the largest number "
            f"of components, {min_size}: the agglomeration cannot be cut into "
            "that many clusters."
        )
    return subset


def _dense_subset(X, subset):
    """``X[subset]`` as a dense float64 array."""
    X_subset = X[subset]
    if sparse.issparse(X_subset):
        X_subset = X_subset.toarray()
    return np.asarray(X_subset, dtype=np.float64)


def _ordered_by_means(X_subset, subset_labels, n_components):
    """Number the clusters in the lexicographic order of their means.

    So that the components' order does not depend on the rows' order.

    Parameters
    ----------
    X_subset : ndarray of shape (n_subset, n_features)

    subset_labels : ndarray of int of shape (n_subset,)

    n_components : int

    Returns
    -------
    subset_labels : ndarray of int of shape (n_subset,)
        Renumbered.

    centres : ndarray of shape (n_components, n_features)
        The clusters' means, in the new order.
    """
    centres = _cluster_means(X_subset, subset_labels, n_components)
    rank = np.empty(len(centres), dtype=np.intp)
    rank[np.lexsort(centres.T[::-1])] = np.arange(len(centres))
    return rank[subset_labels], centres[np.argsort(rank)]


def _ward_partitions(X, sample_weight, grid, max_samples, random_state, subset=None):
    """Partitions of all rows into K clusters, for every K, from one Ward tree.

    The tree is built on at most ``max_samples`` rows (see
    :func:`_agglomeration_subset`), or on the rows ``subset`` when given.
    Cut into K clusters, each row of the subset keeps its cluster; every
    other row joins the cluster whose subset mean is nearest.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,) or None

    grid : ndarray of int of shape (n_candidates,)

    max_samples : int

    random_state : RandomState instance

    subset : ndarray of int of shape (n_subset,), default=None
        The rows of the tree, ``n_subset >= grid.max()``, instead of a draw.

    Returns
    -------
    partitions : dict of int to ndarray of int of shape (n_samples,)
        The labels of every row, for every K of the grid.
    """
    if subset is None:
        subset = _agglomeration_subset(
            X.shape[0], sample_weight, max_samples, grid.max(), random_state
        )
    X_subset = _dense_subset(X, subset)
    children = linkage(X_subset, method="ward")[:, :2].astype(np.intp)
    squared_norms = cache(partial(_row_squared_norms, X))
    return _partitions_of_every_row(
        X_subset,
        subset,
        X.shape[0],
        _hc_cuts(_merges_by_smallest_row(children), grid),
        lambda labels, centres, k: _nearest_centre(X, squared_norms(), centres),
    )


def _partitions_of_every_row(X_subset, subset, n_samples, cuts, extend):
    """Partitions of all rows from the cuts of a tree of the rows ``subset``.

    Each cut is numbered in the lexicographic order of its clusters' means
    (:func:`_ordered_by_means`); the subset's rows keep their cluster and
    the other rows take ``extend``'s, unless the subset is every row once.

    Parameters
    ----------
    X_subset : ndarray of shape (n_subset, n_features)

    subset : ndarray of int of shape (n_subset,)

    n_samples : int

    cuts : dict of int to ndarray of int of shape (n_subset,)
        The tree's labels at every K.

    extend : callable
        ``extend(subset_labels, centres, n_components)`` returns the labels
        of all ``n_samples`` rows, given the renumbered cut and its means.

    Returns
    -------
    partitions : dict of int to ndarray of int of shape (n_samples,)
        In increasing K.
    """
    everything = np.array_equal(subset, np.arange(n_samples))
    partitions = {}
    for n_components in sorted(cuts):
        subset_labels, centres = _ordered_by_means(
            X_subset, cuts[n_components], n_components
        )
        if everything:
            partitions[n_components] = subset_labels
            continue
        labels = extend(subset_labels, centres, n_components)
        labels[subset] = subset_labels
        partitions[n_components] = labels
    return partitions


def _mclust_partitions(X, grid, subset, reg_covar):
    """Partitions of all rows into K clusters, for every K, as R's mclust.

    One model-based agglomeration (mclust's ``hc(X, "VVV", use="SVD")``, see
    :mod:`._hierarchical`) of the rows ``subset`` (see
    :func:`_agglomeration_subset`), cut into K clusters (mclust's
    ``hclass``). Each row of the subset keeps its cluster; every other row
    joins its most probable cluster under the Gaussian mixture of the
    subset partition's M-step with full covariances (mclust E-steps all
    rows from the subset's M-step), or the cluster whose subset mean is
    nearest if a covariance is singular.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Dense.

    grid : ndarray of int of shape (n_candidates,)

    subset : ndarray of int of shape (n_subset,)
        The rows of the agglomeration, ``n_subset >= grid.max()``.

    reg_covar : float
        Added to the diagonal of the subset clusters' covariances.

    Returns
    -------
    partitions : dict of int to ndarray of int of shape (n_samples,)
        The labels of every row, for every K of the grid.
    """
    X_subset = _dense_subset(X, subset)
    merges, _ = _hc_vvv(_svd_transform(X_subset))

    def extend(subset_labels, centres, n_components):
        try:
            return _gaussian_classification(
                X, X_subset, subset_labels, n_components, reg_covar
            )
        except np.linalg.LinAlgError:
            return _nearest_centre(X, _row_squared_norms(X), centres)

    return _partitions_of_every_row(
        X_subset, subset, X.shape[0], _hc_cuts(merges, grid), extend
    )


def _gaussian_classification(X, X_subset, subset_labels, n_components, reg_covar):
    """Most probable cluster of every row under a partition's M-step.

    The Gaussian mixture with full covariances of the partition of
    ``X_subset`` (a cluster too small for its own covariance takes the
    pooled one, as in :func:`_gaussian_initial_parameters`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    X_subset : ndarray of shape (n_subset, n_features)

    subset_labels : ndarray of int of shape (n_subset,)

    n_components : int

    reg_covar : float

    Returns
    -------
    labels : ndarray of int of shape (n_samples,)
    """
    nk, sums, scatter = _partition_statistics(
        X_subset, None, subset_labels, n_components, True
    )
    init = _gaussian_initial_parameters(nk, sums, scatter, "full", reg_covar)
    # The engine's prediction under these parameters (max_iter=0: no EM),
    # on its threads and in its fastest form. A singular covariance
    # (reg_covar=0) raises LinAlgError, here or when the mixture checks its
    # precisions: the caller then falls back to the nearest mean.
    mixture = GaussianMixtureEM(
        n_components, covariance_type="full", reg_covar=reg_covar, max_iter=0, **init
    )
    try:
        # X is the search's, validated once (see _quiet_fit).
        mixture._fit_validated(X, None)
    except ValueError as exc:
        raise np.linalg.LinAlgError(str(exc)) from exc
    return mixture.predict(X)


def _row_squared_norms(X):
    """``|x_n|^2`` of every row, shape (n_samples,), float64."""
    if sparse.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel()
    X = np.asarray(X, dtype=np.float64)
    return np.einsum("ij,ij->i", X, X)


def _cluster_means(X, labels, n_clusters):
    """Mean of every cluster of a dense ``X``, shape (n_clusters, n_features)."""
    n_features = X.shape[1]
    counts = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    # Every (cluster, feature) sum over the rows in their order, as
    # np.add.at adds them (the same sums to the last bit), in one bincount
    # (a third of np.add.at's time at 178 x 13).
    bins = (labels[:, np.newaxis] * n_features + np.arange(n_features)).ravel()
    sums = np.bincount(
        bins,
        weights=np.asarray(X, dtype=np.float64).ravel(),
        minlength=n_clusters * n_features,
    )
    return sums.reshape(n_clusters, n_features) / counts[:, np.newaxis]


def _nearest_centre(X, squared_norms, centres, rows=65536):
    """Index of the nearest centre of every row, in chunks of ``rows``.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)

    squared_norms : ndarray of shape (n_samples,)

    centres : ndarray of shape (n_clusters, n_features)

    Returns
    -------
    labels : ndarray of int of shape (n_samples,)
    """
    labels = np.empty(X.shape[0], dtype=np.intp)
    centre_norms = np.einsum("ij,ij->i", centres, centres)
    for start in range(0, X.shape[0], rows):
        s = slice(start, start + rows)
        distances = np.asarray(X[s] @ centres.T, dtype=np.float64)
        distances *= -2
        distances += centre_norms
        distances += squared_norms[s, np.newaxis]
        labels[s] = distances.argmin(axis=1)
    return labels


#: Up to this many multiplications (rows x clusters x features^2) a
#: partition's statistics are taken for all clusters at once (see
#: _one_hot_statistics): its product multiplies every row by every
#: cluster's weight, zeros included (breast cancer, 569 x 30 in 15
#: clusters: 7.7 million a partition, slower than cluster by cluster).
_ONE_HOT_PRODUCTS = 2**20


def _one_hot_statistics(X, sample_weight, labels, n_components):
    """:func:`_partition_statistics`' second moments, all clusters at once.

    The engine's statistics take each cluster's rows in turn, about ten
    NumPy calls a cluster: on small data, where a search cuts some 240
    clusters from its 30 partitions, those calls are the time (wine: 6.5 ms
    of a 110 ms search). Here each row is centred at its own cluster's mean
    (two passes, as the engine) and the scatters are one batched product
    with the rows' one-hot weights.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), dense

    sample_weight : ndarray of shape (n_samples,) or None

    labels : ndarray of int of shape (n_samples,)

    n_components : int

    Returns
    -------
    nk, sums, scatter
        As :func:`_partition_statistics`.
    """
    X = X.astype(np.float64, copy=False)
    one_hot = _one_hot_weights(labels, n_components, sample_weight)
    nk = one_hot.sum(axis=1)
    # (Sums beyond the float range are infinite, without warnings: the
    # candidates that start from them fail, see _gaussian_initial_parameters.)
    with np.errstate(over="ignore", invalid="ignore"):
        sums = one_hot @ X
        means = sums / np.maximum(nk, 10 * np.finfo(np.float64).eps)[:, np.newaxis]
        diff = X - means[labels]
        weighted = one_hot[:, np.newaxis, :] * diff.T
        scatter = np.matmul(weighted, diff)
    return nk, sums, scatter


def _partition_statistics(X, sample_weight, labels, n_components, second_moments):
    """Weighted counts, means and scatter matrices of a partition.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,) or None

    labels : ndarray of int of shape (n_samples,)

    n_components : int

    second_moments : bool
        Whether to compute the scatter matrices (dense X only).

    Returns
    -------
    nk : ndarray of shape (n_components,)
        sum of the weights of each cluster.

    sums : ndarray of shape (n_components, n_features)
        sum_n w_n x_n over each cluster.

    scatter : ndarray of shape (n_components, n_features, n_features) or None
        sum_n w_n (x_n - mu_k)(x_n - mu_k)^T over each cluster, mu_k its
        weighted mean.
    """
    if not second_moments:
        n_samples = X.shape[0]
        w = None if sample_weight is None else sample_weight.astype(np.float64)
        nk = np.bincount(labels, weights=w, minlength=n_components)
        nk = nk.astype(np.float64)
        # One sparse product: no copy of X, sparse or dense.
        indicator = sparse.csr_matrix(
            (
                np.ones(n_samples) if w is None else w,
                (labels, np.arange(n_samples)),
            ),
            shape=(n_components, n_samples),
        )
        sums = indicator @ X
        if sparse.issparse(sums):
            sums = sums.toarray()
        return nk, np.asarray(sums, dtype=np.float64), None
    if X.shape[0] * n_components * X.shape[1] ** 2 <= _ONE_HOT_PRODUCTS:
        return _one_hot_statistics(X, sample_weight, labels, n_components)
    # Each cluster's rows once, in float64 (the first M-step of a k-means
    # start computes the same statistics).
    with np.errstate(over="ignore", invalid="ignore"):
        stats = _gaussian_partition_statistics(
            X, sample_weight, labels, n_components, covariance_type="full", float64=True
        )
    return stats["nk"], stats["sx"], stats["sxx"]


def _gaussian_initial_parameters(nk, sums, scatter, covariance_type, reg_covar):
    """Initial parameters of one covariance structure from a partition.

    The M-step of the hard partition. A cluster too small for its own
    covariance (weight at most n_features for 'full', at most one for the
    per-component diagonal and spherical structures) takes the pooled
    within-cluster one instead of a singular matrix.

    Parameters
    ----------
    nk, sums, scatter : ndarray
        From :func:`_partition_statistics`.

    covariance_type : str

    reg_covar : float

    Returns
    -------
    init : dict
        ``weights_init``, ``means_init`` and ``precisions_init`` for
        :class:`GaussianMixtureEM`.
    """
    n_components, n_features = sums.shape
    means = sums / nk[:, np.newaxis]
    total = nk.sum()
    with np.errstate(over="ignore", invalid="ignore"):
        pooled = scatter.sum(axis=0) / total
        if not np.isfinite(pooled).all():
            # Data near the float range: the clusters' shares first (see
            # _gaussian._pooled_near_the_float_range). A cluster's own sums
            # beyond it leave the pooled scatter infinite or NaN.
            pooled = (scatter / total).sum(axis=0)
    if not np.isfinite(pooled).all():
        raise ValueError(
            "The values of X are too large for a Gaussian mixture of this "
            "partition in float64: its sums of squares overflow. Scale the "
            "data, for instance with sklearn.preprocessing.StandardScaler."
        )
    variances = np.diagonal(scatter, axis1=1, axis2=2) / nk[:, np.newaxis]
    small = nk <= 1
    variances[small] = np.diag(pooled)
    if covariance_type == "full":
        covariances = scatter / nk[:, np.newaxis, np.newaxis]
        covariances[nk <= n_features] = pooled
        covariances += reg_covar * np.eye(n_features)
        precisions = _symmetric_inverse(covariances)
    elif covariance_type == "tied":
        precisions = _symmetric_inverse(pooled + reg_covar * np.eye(n_features))
    elif covariance_type == "diag":
        precisions = 1.0 / (variances + reg_covar)
    elif covariance_type == "spherical":
        precisions = 1.0 / (variances.mean(axis=1) + reg_covar)
    elif covariance_type == "tied_diag":
        precisions = 1.0 / (np.diag(pooled) + reg_covar)
    else:  # tied_spherical
        precisions = np.float64(1.0 / (np.diag(pooled).mean() + reg_covar))
    return {
        "weights_init": nk / total,
        "means_init": means,
        "precisions_init": precisions,
    }


def _lockstep_starts(partitions, covariance_type, reg_covar):
    """:func:`_gaussian_initial_parameters` and :func:`_given_parameters` of
    many partitions at once.

    A search's lockstep group starts from some 30 partitions; one by one,
    their parameters and factors are a dozen NumPy calls each (wine: 8 ms of
    a 110 ms search). Here the clusters of every partition are stacked (see
    :func:`_stacked_starts`), with the same values to the last bit; where a
    stacked step fails (a singular covariance), partition by partition.

    Parameters
    ----------
    partitions : list of tuple
        ``(nk, sums, scatter)`` of each partition, from
        :func:`_partition_statistics`.

    covariance_type : str

    reg_covar : float

    Returns
    -------
    starts : list of tuple or None
        Per partition, ``(start, given)``: the start's dict and
        :func:`_given_parameters`' tuple; None where the start is not a
        valid mixture (the caller leaves its candidate to the one-by-one
        search).
    """
    try:
        return _stacked_starts(partitions, covariance_type, reg_covar)
    except (ValueError, np.linalg.LinAlgError):
        pass
    starts = []
    for partition in partitions:
        try:
            start = _gaussian_initial_parameters(*partition, covariance_type, reg_covar)
            starts.append((start, _given_parameters(start, covariance_type)))
        except (ValueError, np.linalg.LinAlgError):
            starts.append(None)
    return starts


def _stacked_starts(partitions, covariance_type, reg_covar):
    """:func:`_lockstep_starts` with every partition's clusters stacked.

    One call per step, and the same arithmetic on every matrix (LAPACK
    factors and inverts each matrix of a stack on its own, and each
    partition's sums are reduced on their own). Raises where a stacked
    factorisation fails.

    Returns
    -------
    starts : list of tuple or None
        As :func:`_lockstep_starts`'.
    """
    sizes = np.array([len(nk) for nk, _, _ in partitions])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    owner = np.repeat(np.arange(len(sizes)), sizes)
    nk = np.concatenate([nk for nk, _, _ in partitions])
    sums = np.concatenate([sums for _, sums, _ in partitions])
    scatter = np.concatenate([scatter for _, _, scatter in partitions])
    n_features = sums.shape[1]
    eye = np.eye(n_features)
    means = sums / nk[:, np.newaxis]
    # Each partition's sums as _gaussian_initial_parameters takes them.
    total = _run_reduce(np.add, nk, offsets)
    pooled = _run_reduce(np.add, scatter, offsets) / total[:, None, None]
    variances = np.diagonal(scatter, axis1=1, axis2=2) / nk[:, np.newaxis]
    small = nk <= 1
    pooled_diagonal = np.diagonal(pooled, axis1=1, axis2=2)
    variances[small] = pooled_diagonal[owner[small]]
    shared = covariance_type.startswith("tied")
    if covariance_type == "full":
        covariances = scatter / nk[:, np.newaxis, np.newaxis]
        few = nk <= n_features
        covariances[few] = pooled[owner[few]]
        covariances += reg_covar * eye
        precisions = _symmetric_inverse(covariances)
    elif covariance_type == "tied":
        precisions = _symmetric_inverse(pooled + reg_covar * eye)
    elif covariance_type == "diag":
        precisions = 1.0 / (variances + reg_covar)
    elif covariance_type == "spherical":
        precisions = 1.0 / (variances.mean(axis=1) + reg_covar)
    elif covariance_type == "tied_diag":
        precisions = 1.0 / (pooled_diagonal + reg_covar)
    else:  # tied_spherical, each mean as _gaussian_initial_parameters takes it
        precisions = np.array(
            [1.0 / (np.diag(matrix).mean() + reg_covar) for matrix in pooled]
        )
    kind = _engine_covariance_type(covariance_type)
    factors = None
    if kind in ("full", "tied") and np.isfinite(precisions).all():
        try:
            factors = _compute_precision_cholesky_from_precisions(
                precisions.reshape(-1, n_features, n_features), "full"
            )
        except np.linalg.LinAlgError:
            pass  # a start that is not positive definite: one by one below
    starts = []
    for p, (offset, size) in enumerate(zip(offsets, sizes)):
        clusters = slice(offset, offset + size)
        # One covariance per partition for the shared structures.
        own = p if shared else clusters
        start = {
            "weights_init": nk[clusters] / total[p],
            "means_init": means[clusters],
            "precisions_init": precisions[own],
        }
        try:
            if factors is None:
                given = _given_parameters(start, covariance_type)
            else:
                given = (start["weights_init"], start["means_init"], factors[own])
        except (ValueError, np.linalg.LinAlgError):
            starts.append(None)
            continue
        starts.append((start, given))
    return starts


def _adopt_checked_start(estimator, start, dtype):
    """Set the attributes ``GaussianMixtureEM._check_parameters`` sets.

    For a start of the lockstep: the selection's own arrays (float64, in the
    layout of the estimator's ``covariance_type``), whose precisions
    :func:`_given_parameters` has checked (finite, positive definite).
    Validating them again took 5 ms of iris's 106 ms search (60 candidates).

    Parameters
    ----------
    estimator : GaussianMixtureEM
        Made with ``start`` as its initial parameters.

    start : dict
        ``weights_init``, ``means_init`` and ``precisions_init``.

    dtype : numpy dtype
        The data's.
    """
    estimator._weights_init = start["weights_init"]
    estimator._means_init = start["means_init"]
    estimator._precisions_init = start["precisions_init"]
    estimator._fit_dtype = np.dtype(dtype)


def _given_parameters(start, covariance_type):
    """The parameters ``GaussianMixtureEM`` starts EM from, given ``start``.

    Parameters
    ----------
    start : dict
        ``weights_init``, ``means_init`` and ``precisions_init`` (from
        :func:`_gaussian_initial_parameters`).

    covariance_type : str

    Returns
    -------
    weights, means, precisions_cholesky : ndarray
        As ``GaussianMixtureEM._initialize_from_given`` sets them.

    Raises
    ------
    ValueError
        When the precisions are not finite and positive definite (the
        estimator's validation rejects such a start).
    """
    precisions = np.asarray(start["precisions_init"], dtype=np.float64)
    if not np.isfinite(precisions).all() or (
        covariance_type not in ("full", "tied") and (precisions <= 0).any()
    ):
        raise ValueError("precisions_init must be finite and positive.")
    factors = _compute_precision_cholesky_from_precisions(
        precisions, _engine_covariance_type(covariance_type)
    )
    return start["weights_init"], start["means_init"], factors


def _symmetric_inverse(matrices):
    """Inverse of symmetric positive-definite matrices, exactly symmetric.

    Parameters
    ----------
    matrices : ndarray of shape (..., n_features, n_features)

    Returns
    -------
    inverses : ndarray of the same shape
    """
    inverses = np.linalg.inv(matrices)
    return (inverses + np.swapaxes(inverses, -1, -2)) / 2


def _embedded_precisions(estimator, covariance_type):
    """A fitted solution's precisions in the layout of a richer structure.

    The solution of a nested structure is a point of the richer model: its
    precisions are repeated or expanded into the richer layout, unchanged.

    Parameters
    ----------
    estimator : fitted GaussianMixtureEM
        Its ``covariance_type`` is nested in ``covariance_type`` (see
        ``_NESTED_IN``).

    covariance_type : str

    Returns
    -------
    precisions : ndarray
        In the layout of ``covariance_type``.
    """
    source = estimator.covariance_type
    precisions = np.asarray(estimator.precisions_, dtype=np.float64)
    n_components, n_features = estimator.means_.shape
    if source == "tied_spherical":
        if covariance_type == "spherical":
            return np.full(n_components, float(precisions))
        return np.full(n_features, float(precisions))  # tied_diag
    if source == "spherical":  # to diag
        return np.repeat(precisions[:, np.newaxis], n_features, axis=1)
    if source == "tied_diag":
        if covariance_type == "diag":
            return np.repeat(precisions[np.newaxis], n_components, axis=0)
        return np.diag(precisions)  # tied
    if source == "diag":  # to full
        return precisions[:, :, np.newaxis] * np.eye(n_features)
    # tied to full
    return np.repeat(precisions[np.newaxis], n_components, axis=0)


# ----------------------------------------------------------------------
# The criteria.
def _criteria_chunk(X, sample_weight, *, weighted_log_prob):
    """Log-likelihood and entropy of the responsibilities over a chunk.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)

    sample_weight : ndarray of shape (n_samples,) or None

    weighted_log_prob : callable
        ``X -> log pi_k + log p(x_n | k)``, shape (n_samples, n_components).

    Returns
    -------
    stats : dict
        ``"log_likelihood"``: sum_n w_n log p(x_n); ``"entropy"``:
        -sum_n w_n sum_k r_nk log r_nk.
    """
    resp = weighted_log_prob(X)
    if resp.dtype == np.float64:
        # log r_nk = log(pi_k p(x_n | k)) - log p(x_n): the entropy of a row
        # is log p(x_n) - sum_k r_nk log(pi_k p(x_n | k)), without a
        # logarithm per entry (the criteria of a search on 100,000 x 10 took
        # 0.76 s, half of it those logarithms). Entries of zero probability
        # (log 0, or below the smallest normal number) count as a finite
        # value times r_nk = 0. float32 keeps the logarithms: its rounding
        # of log p(x_n) would swamp the entropy of well separated clusters.
        log_joint = np.maximum(resp, np.finfo(np.float64).min)
        log_norm = logsumexp_rows(resp)
        row_entropy = log_norm - np.einsum("ij,ij->i", resp, log_joint)
        row_entropy[~np.isfinite(log_norm)] = 0.0
    else:
        log_norm = logsumexp_rows(resp)
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(resp > 0, resp * np.log(resp), 0.0)
        row_entropy = -plogp.sum(axis=1, dtype=np.float64)
    if sample_weight is None:
        return {
            "log_likelihood": np.asarray(log_norm.sum(dtype=np.float64)),
            "entropy": np.asarray(row_entropy.sum()),
        }
    w = sample_weight.astype(np.float64)
    return {
        "log_likelihood": np.asarray(w @ log_norm.astype(np.float64)),
        "entropy": np.asarray(w @ row_entropy),
    }


def _information_criteria(estimator, X, sample_weight, log_prob_function):
    """BIC, AIC and ICL of a fitted mixture on its training data.

    ``BIC = -2 log L + p log N``, ``AIC = -2 log L + 2 p`` and
    ``ICL = BIC + 2 E`` with ``log L = sum_n w_n log p(x_n)``, ``N =
    sum_n w_n``, p the number of free parameters and ``E = -sum_n w_n sum_k
    r_nk log r_nk`` the entropy of the responsibilities; all lower is better.

    Returns
    -------
    values : dict
        ``log_likelihood``, ``entropy``, ``n_parameters``, ``bic``, ``aic``
        and ``icl``.
    """
    stats = map_reduce(
        _CriteriaChunk(log_prob_function),
        X,
        sample_weight,
        n_jobs=estimator.n_jobs,
        rows=estimator._rows(X),
    )
    n_weight = X.shape[0] if sample_weight is None else float(sample_weight.sum())
    return _criteria_values(
        float(stats["log_likelihood"]),
        float(stats["entropy"]),
        int(estimator._n_parameters()),
        n_weight,
    )


def _criteria_values(log_likelihood, entropy, n_parameters, n_weight):
    """The values of :func:`_information_criteria` from the sums it takes.

    Parameters
    ----------
    log_likelihood, entropy : float
        Sums over the training data (weighted).

    n_parameters : int

    n_weight : float
        N, the number (total weight) of the training samples.

    Returns
    -------
    values : dict
    """
    entropy = max(entropy, 0.0)
    bic = -2 * log_likelihood + n_parameters * np.log(n_weight)
    return {
        "log_likelihood": log_likelihood,
        "entropy": entropy,
        "n_parameters": n_parameters,
        "bic": bic,
        "aic": -2 * log_likelihood + 2 * n_parameters,
        "icl": bic + 2 * entropy,
    }


class _CriteriaChunk:
    """Picklable ``(X, w) -> _criteria_chunk(X, w, weighted_log_prob=f)``."""

    def __init__(self, weighted_log_prob):
        self.weighted_log_prob = weighted_log_prob

    def __call__(self, X, sample_weight):
        return _criteria_chunk(
            X, sample_weight, weighted_log_prob=self.weighted_log_prob
        )


# ----------------------------------------------------------------------
# Fitting the candidates of one K.
#: EM iterations every start of a candidate runs, with n_init=1, before
#: only the leaders go on (see _fit_one).
_RACE_ITER = 3

#: Rows of the race on larger data (drawn once per search).
_RACE_SAMPLES = 20_000

#: The largest data (n_samples x n_features) on which a structure's
#: candidates run EM in lockstep (see _lockstep). Its saving is the fixed
#: cost of a candidate's iteration (~0.3 ms); its price, where it computes
#: from the differences x - mu_k, their arithmetic against the engine's
#: expanded forms. Whole searches of K = 1..15, lockstep time over
#: one-by-one time (groups on two threads from 2^13 values, see
#: _LOCKSTEP_THREADED_VALUES): 'full' iterates on the expanded features
#: ``[z_i z_j, z]`` (one product for every candidate): 0.50 on breast cancer
#: (569 x 30), 0.69-0.71 on 1,000 x 10, 1,200 x 30 and 3,000 x 30, 0.84-0.94
#: on 2,000 to 20,000 x 10 and on 8,000 x 30, 0.68 / 0.80 / 0.89 on 4,000 /
#: 8,000 / 12,000 MNIST digits in 20 dimensions (its direct form had been
#: 0.91 at 2,000 x 10 and 1.04 at 3,000 x 10). 'tied' whitens once per run
#: and takes each run's scatter from the data's (see
#: _lockstep._tied_features): 0.67 on 569 x 10, 0.75 on 569 x 30, 0.82-0.91
#: from 1,200 to 8,000 rows in 10 and 30 dimensions (its direct form had
#: been 1.44 on breast cancer and 1.80 on 1,000 x 30). 'diag' and 'spherical'
#: iterate on the expanded features (one product for every candidate):
#: 0.78-0.81 on 569 x 10 and 569 x 30, 0.92-0.98 on 1,200 x 10 and x 30,
#: 0.94-0.96 on 3,000 x 10 and x 30, 0.87-0.98 on 8,000 x 10 and x 30
#: (drawn from a mixture); their shared variants 0.78-0.96 at 569 rows, but
#: 1.15 on 3,000 x 10 and 1.02-1.08 on 8,000 rows.
_LOCKSTEP_MAX_VALUES = {
    "full": 2**18,
    "tied": 2**18,
    "diag": 2**18,
    "spherical": 2**18,
    "tied_diag": 2**14,
    "tied_spherical": 2**14,
}

#: The most values of the features ``[z_i z_j, z]`` (n_samples x D (D + 3)
#: / 2) on which 'full' candidates run in lockstep: its products grow as
#: D^2 a sample and component, and from some tens of features the engine's
#: own forms for single fits do better. Lockstep over one-by-one time: 0.77 at 4,000 x
#: 40 (3.4 million values), 0.94 at 8,000 x 30 (4.0 million), 0.90 at 2,000
#: x 64 (4.3 million), 1.09 at 4,000 x 64 (8.6 million), 1.22 at 2,000 x 100
#: (10.3 million); 0.67-0.70 at 500 x 64 and 300 x 100.
_LOCKSTEP_FULL_FEATURES = 2**22

#: The smallest data (n_samples x n_features) whose lockstep groups run on
#: threads.
_LOCKSTEP_THREADED_VALUES = 2**13

#: Values of the data from which the K's fitted one by one (data too large
#: for the lockstep) are fitted two at a time, in at most
#: _PAIRED_MAX_FEATURES dimensions (see GaussianMixtureIC._pair_candidates),
#: and from which Ward's partitions take a thread of their own during
#: mclust's agglomeration (GaussianMixtureIC._shared_partitions): where
#: passes over the rows are long enough to leave the interpreter free.
_PAIRED_VALUES = 2**17
_PAIRED_MAX_FEATURES = 64

#: Values of the largest array of a lockstep group (see _lockstep_values;
#: times the components of its starts): 16 MiB.
_LOCKSTEP_GROUP_VALUES = 2**21


def _lockstep_values(covariance_type, shape):
    """Values of a lockstep group's largest array, per stacked component.

    'tied' falls back on the differences of every component (``_m_step``
    where its pooled scatter would lose digits): n_samples x n_features a
    component. The others hold one row of log-probabilities a component
    (n_samples), and compute their differences in bounded blocks
    (``_lockstep._component_blocks``): at 8,000 x 20, a search's groups
    went from 13 per structure to 3 (about one per thread), and MNIST's
    search from 2.89 to 2.46 s (alternated, the same BIC).

    Parameters
    ----------
    covariance_type : str

    shape : tuple of int
        ``(n_samples, n_features)``.

    Returns
    -------
    n_values : int
    """
    n_samples, n_features = shape
    return n_samples * n_features if covariance_type == "tied" else n_samples


def _lockstep_groups(grid, n_values, n_parts=1):
    """Consecutive indices of ``grid`` whose lockstep arrays stay bounded.

    Parameters
    ----------
    grid : ndarray of int
        The numbers of components.

    n_values : int
        Values of the group's largest array per stacked component (see
        :func:`_lockstep_values`).

    n_parts : int, default=1
        At least this many groups (when the grid has that many K's), of
        about equal sizes: one per thread.

    Returns
    -------
    groups : list of list of int
        Indices into ``grid``; each group's candidates, with two starts
        each, have at most ``_LOCKSTEP_GROUP_VALUES`` values in that array (a
        group of one candidate may have more).
    """
    sizes = [2 * int(n_components) * n_values for n_components in grid]
    limit = min(_LOCKSTEP_GROUP_VALUES, -(-sum(sizes) // max(n_parts, 1)))
    groups, current, size = [], [], 0
    for i, values in enumerate(sizes):
        if current and size + values > limit:
            groups.append(current)
            current, size = [], 0
        current.append(i)
        size += values
    if current:
        groups.append(current)
    return groups


def _fit_one(
    make_estimator,
    starts,
    X,
    sample_weight,
    log_prob_function,
    race=None,
    race_rows=None,
    resume=None,
):
    """Fit a candidate from its starts; keep the best log-likelihood.

    With ``race`` and several starts, each start runs ``race`` EM
    iterations first; then only the one with the highest log-likelihood
    (the next, if it fails) runs on to convergence. The kept fit is a
    complete EM fit, and never worse than any start's log-likelihood after
    the race (EM never decreases it); a start that falls behind early is
    rarely the best at the end, but can be (see the user guide).

    With ``race_rows`` (large data), the race runs on those rows only, a
    fraction of an iteration on all of them, and the leader's EM on all
    the rows starts from the parameters its race ended at: a subsample's
    first iterations, the steepest, in place of the whole data's (on the
    search of 100,000 x 10, 20% less time than racing on every row, and
    306 -> 242 iterations on all the rows; the same models up to K = 6,
    and BICs mostly lower beyond). ``n_iter`` counts the iterations on all
    the rows.

    Parameters
    ----------
    make_estimator : callable
        ``make_estimator(**start)`` returns an unfitted mixture.

    starts : list of callable
        Each returns keyword arguments of ``make_estimator``: one fit each.

    X, sample_weight : ndarray
        Validated training data.

    log_prob_function : callable
        ``estimator -> picklable chunk function`` for the criteria.

    race : int or None, default=None
        Iterations of every start before only the leaders go on; None fits
        every start to convergence.

    race_rows : ndarray of int or None, default=None
        The rows the race runs on; None means all of them.

    resume : callable or None, default=None
        ``resume(estimator)`` returns the keyword arguments of
        ``make_estimator`` that start EM from a fitted estimator's
        parameters (after a race on ``race_rows``); None starts again from
        the start.

    Returns
    -------
    estimator : fitted mixture or None
        None when every start failed.

    values : dict
        The criteria of the kept fit, its ``n_iter`` and ``converged``, the
        total ``fit_time`` and, when every start failed, ``error``.
    """
    tic = time.perf_counter()
    if len(starts) < 2:
        race = None
    if race is None:
        race_rows = None
    runs, error = _race(make_estimator, starts, X, sample_weight, race, race_rows)
    if not runs and race_rows is not None:
        # Every start failed on the subsample (a component left with too
        # few of its rows): the race on every row, as for smaller data.
        race_rows = None
        runs, error = _race(make_estimator, starts, X, sample_weight, race, None)
    # The leader first: lower_bound_ is the mean log-likelihood of the
    # last E-step.
    runs.sort(key=lambda run: run[0].lower_bound_, reverse=True)
    best, best_values = None, None
    for estimator, max_iter, start in runs:
        if race is not None and best is not None:
            break
        try:
            if race_rows is not None:
                # On every row, from where the race ended (or from the start
                # for models that cannot resume).
                init = None if resume is None else resume(estimator)
                estimator = make_estimator(**(start() if init is None else init))
                _quiet_fit(estimator, X, sample_weight)
            elif race is not None:
                _finish(estimator, X, sample_weight, max_iter)
            values = _information_criteria(
                estimator, X, sample_weight, log_prob_function(estimator)
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            continue
        if not np.isfinite(values["log_likelihood"]):
            error = "The log-likelihood of the fitted mixture is not finite."
            continue
        if best is None or values["log_likelihood"] > best_values["log_likelihood"]:
            best, best_values = estimator, values
    fit_time = time.perf_counter() - tic
    if best is None:
        return None, {**_failed_values(error), "fit_time": fit_time}
    best_values.update(
        n_iter=int(best.n_iter_),
        converged=bool(best.converged_),
        fit_time=fit_time,
        error="",
    )
    return best, best_values


def _race(make_estimator, starts, X, sample_weight, race, race_rows):
    """Fit every start, for ``race`` iterations if not None, on ``race_rows``.

    Returns
    -------
    runs : list of tuple
        ``(estimator, max_iter, start)`` of every start that did not fail,
        ``max_iter`` the estimator's own.

    error : str or None
        The last failure's message.
    """
    if race_rows is not None:
        X = X[race_rows]
        sample_weight = None if sample_weight is None else sample_weight[race_rows]
    runs, error = [], None
    for start in starts:
        try:
            estimator = make_estimator(**start())
            max_iter = estimator.max_iter
            if race is not None:
                estimator.max_iter = min(race, max_iter)
            _quiet_fit(estimator, X, sample_weight)
        except (ValueError, np.linalg.LinAlgError) as exc:
            # A collapsed component (or a singular initial covariance): the
            # candidate has no finite likelihood.
            error = f"{type(exc).__name__}: {exc}"
            continue
        runs.append((estimator, max_iter, start))
    return runs, error


def _quiet_fit(estimator, X, sample_weight):
    """``estimator.fit`` on the search's validated data, without validating it
    again, nor its convergence warnings (they are in the table)."""
    estimator._fit_validated(X, sample_weight, warn=False)


def _finish(estimator, X, sample_weight, max_iter):
    """Run a raced start's EM on to convergence, as one fit of ``max_iter``.

    EM goes on from the parameters and lower bound where the race stopped
    (``warm_start``), so the iterations, their lower bounds and the result
    are those of an uninterrupted fit; ``n_iter_`` and ``lower_bounds_``
    count both parts.
    """
    n_iter = estimator.n_iter_
    if estimator.converged_ or n_iter >= max_iter:
        return
    lower_bounds = list(estimator.lower_bounds_)
    # (Set directly: set_params inspects the signature, ~0.1 ms a call.)
    estimator.max_iter, estimator.warm_start = max_iter - n_iter, True
    try:
        _quiet_fit(estimator, X, sample_weight)
    finally:
        estimator.max_iter, estimator.warm_start = max_iter, False
    estimator.n_iter_ += n_iter
    estimator.lower_bounds_ = lower_bounds + list(estimator.lower_bounds_)


def _run_on(estimator, X, sample_weight, tol):
    """Go on with a fitted mixture's EM to a smaller ``tol``.

    The iterations, the result and ``n_iter_`` are those of one fit with
    ``tol`` from the same start (and the same ``max_iter``, the budget of
    both parts); ``estimator.tol`` becomes ``tol``.

    Returns
    -------
    ran : bool
        False when the fit had already converged at ``tol`` (or used up
        ``max_iter``): nothing ran.
    """
    bounds = estimator.lower_bounds_
    estimator.tol = tol
    converged = len(bounds) > 1 and abs(bounds[-1] - bounds[-2]) < tol
    if converged or estimator.n_iter_ >= estimator.max_iter:
        estimator.converged_ = converged
        return False
    estimator.converged_ = False
    _finish(estimator, X, sample_weight, estimator.max_iter)
    return True


def _failed_values(error):
    """The values of ``results_`` for a candidate without a fitted mixture."""
    values = {key: np.nan for key in ("log_likelihood", "entropy", *_CRITERIA)}
    values.update(n_parameters=-1, n_iter=0, converged=False, fit_time=0.0)
    values["error"] = error
    return values


def _failed_row(n_components, covariance_type, error):
    """A row of ``results_`` for a candidate that was not fitted."""
    return {
        "n_components": n_components,
        "covariance_type": covariance_type,
        **_failed_values(error),
    }


class _BaseMixtureIC(
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    DensityMixin,
    BaseEstimator,
):
    """The search shared by the information-criterion mixtures.

    Subclasses define the candidates' estimator, the structures searched, the
    validation of X and the initial parameters from a partition.

    .. warning:: This class should not be used directly.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "criterion": [StrOptions(set(_CRITERIA))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "refine_tol": [Interval(Real, 0.0, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [
            StrOptions({"ward", "kmeans", "k-means++", "random", "random_from_data"})
        ],
        "ward_max_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    # ------------------------------------------------------------------
    # Hooks of the subclasses.
    @abstractmethod
    def _validate_X(self, X, *, reset):
        """Validate (and binarise, for Bernoulli) X."""

    @abstractmethod
    def _covariance_types(self):
        """The structures searched: a tuple of str, or (None,)."""

    @abstractmethod
    def _make_estimator(self, n_components, covariance_type, random_state, **init):
        """An unfitted candidate."""

    @abstractmethod
    def _partition_starts(self, stats, covariance_type):
        """Initial parameters of a candidate from partition statistics."""

    def _needs_second_moments(self):
        return False

    def _log_prob_function(self, estimator):
        """Picklable chunk function for the criteria of a fitted candidate."""
        return estimator._log_prob_chunk_function(estimator._dtype())

    def _nested_starts(self, fitted, covariance_type):
        """Starts from fitted nested structures at the same K (Gaussians)."""
        return []

    def _resume_start(self, estimator):
        """A start at a fitted candidate's parameters, or None (see _fit_one)."""
        return None

    # ------------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None):
        """Fit every candidate and keep the one with the best criterion.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.

        y : Ignored
            Not used, present for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights: an integer weight counts the row that many
            times, in the fits and in the criteria (N is the sum of the
            weights). A zero weight removes the row.

        Returns
        -------
        self : object
            The fitted selector.
        """
        return self._fit(X, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, sample_weight):
        grid = _check_n_components(self.n_components)
        covariance_types = self._covariance_types()
        X = self._validate_X(X, reset=True)
        sample_weight = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        if sample_weight is not None and not np.all(sample_weight > 0):
            keep = np.flatnonzero(sample_weight > 0)
            X, sample_weight = X[keep], sample_weight[keep]
        n_samples = X.shape[0]
        if grid.min() > n_samples:
            raise ValueError(
                "Expected n_samples >= n_components for at least one candidate, "
                f"but got n_components from {grid.min()} and n_samples = "
                f"{n_samples}"
                + (
                    " (samples with a positive sample_weight)"
                    if sample_weight is not None
                    else ""
                )
                + "."
            )
        # More components than samples cannot be fitted: such candidates are
        # kept in the table, as failures.
        infeasible = grid[grid > n_samples]
        grid = grid[grid <= n_samples]
        random_state = check_random_state(self.random_state)
        # One BLAS window policy for the whole search, the largest
        # candidate's (see BaseMixtureEM._blas_limit): on small data no
        # window at all, instead of setting and restoring BLAS's limit
        # around every candidate's initial factors and criteria outside its
        # fit (120 settings on iris; 5% of the search when each took a hop
        # to another thread).
        work = max(
            self._make_estimator(int(grid.max()), covariance_type, 0)._largest_product(
                n_samples, X.shape[1], X.dtype.itemsize
            )
            for covariance_type in covariance_types
        )
        with blas_limit_for(work):
            return self._search(
                X, sample_weight, grid, covariance_types, infeasible, random_state
            )

    def _search(
        self, X, sample_weight, grid, covariance_types, infeasible, random_state
    ):
        """Fit every candidate of the grid and store the results."""
        n_samples = X.shape[0]
        tic = time.perf_counter()
        # Products of a few columns: BLAS threads cost more than they save.
        with single_threaded_blas():
            partitions = self._shared_partitions(X, sample_weight, grid, random_state)
        self.init_time_ = 0.0 if partitions is None else time.perf_counter() - tic
        # One seed per candidate, drawn up front: the results do not depend
        # on n_jobs.
        seeds = random_state.randint(
            np.iinfo(np.int32).max, size=(len(grid), len(covariance_types))
        )
        # The rows on which the starts of a candidate race (see _fit_one).
        race_rows = None
        if self.n_init == 1 and n_samples > _RACE_SAMPLES:
            race_rows = np.sort(
                random_state.choice(n_samples, _RACE_SAMPLES, replace=False)
            )
        # Candidates fitted together (small data), then the others one by one.
        together, stats = {}, {}
        if race_rows is None:
            together, stats = self._fit_together(
                X, sample_weight, grid, covariance_types, partitions, seeds
            )
        left = [
            [j for j in range(len(covariance_types)) if (i, j) not in together]
            for i in range(len(grid))
        ]
        pair = self._pair_candidates(X, sum(map(bool, left)))
        tasks = [
            delayed(self._fit_components)(
                X,
                sample_weight,
                int(n_components),
                tuple(covariance_types[j] for j in left[i]),
                None if partitions is None else partitions[int(n_components)],
                seeds[i, left[i]],
                race_rows,
                stats.get(int(n_components)),
                engine_jobs=pair,
            )
            for i, n_components in enumerate(grid)
            if left[i]
        ]
        if pair is not None:
            # Two K's at a time, the largest first (the longest fits), each
            # on its share of the threads.
            order = sorted(range(len(tasks)), key=lambda t: -tasks[t][1][2])
            with ThreadPoolExecutor(2, thread_name_prefix="sklearn_em_ic") as pool:
                futures = {
                    t: pool.submit(tasks[t][0], *tasks[t][1], **tasks[t][2])
                    for t in order
                }
                fitted = [futures[t].result() for t in range(len(tasks))]
        elif self.n_jobs is None or self.n_jobs == 1:
            fitted = [function(*args, **kwargs) for function, args, kwargs in tasks]
        else:
            fitted = Parallel(n_jobs=self.n_jobs)(tasks)
        fitted = iter(fitted)
        per_k = []
        for i in range(len(grid)):
            alone = dict(zip(left[i], next(fitted))) if left[i] else {}
            per_k.append(
                [
                    together[(i, j)] if (i, j) in together else alone[j]
                    for j in range(len(covariance_types))
                ]
            )
        for n_components in infeasible:
            per_k.append(
                [
                    (None, _failed_row(n_components, t, "n_components > n_samples"))
                    for t in covariance_types
                ]
            )
        self._store_results(per_k, covariance_types)
        self._refine(X, sample_weight)
        return self

    def _fit_together(
        self, X, sample_weight, grid, covariance_types, partitions, seeds
    ):
        """Candidates fitted together rather than one by one (see GaussianMixtureIC).

        Returns
        -------
        fitted : dict
            ``{(i, j): (estimator, row)}`` for the K ``grid[i]`` and the
            structure ``covariance_types[j]`` of each candidate it fitted;
            the search fits the others one by one.

        stats : dict
            The partition statistics it computed (see
            :meth:`_partition_statistics`), by K: the one-by-one fits of
            the same K reuse them.
        """
        return {}, {}

    def _partition_statistics(self, X, sample_weight, n_components, labels):
        """The statistics of every shared partition at one K.

        Returns
        -------
        stats : list of tuple
            :func:`_partition_statistics` of each partition in ``labels``.
        """
        with single_threaded_blas():
            return [
                _partition_statistics(
                    X,
                    sample_weight,
                    one,
                    n_components,
                    self._needs_second_moments(),
                )
                for one in labels
            ]

    def _report(self, row):
        """The verbose line of a fitted candidate."""
        if self.verbose:
            print(
                f"K={row['n_components']:<3d} {row['covariance_type'] or '':<15s}"
                f" {self.criterion}={row[self.criterion]:.6g}"
                f" n_iter={row['n_iter']} time={row['fit_time']:.3f}s"
            )

    def _shared_partitions(self, X, sample_weight, grid, random_state):
        """The shared initialisations, or None for per-candidate ones.

        Returns
        -------
        partitions : dict of int to list of ndarray of shape (n_samples,), \
                or None
            For every K of the grid, the labels of every row in each shared
            partition (one per agglomeration).
        """
        if self.init_params != "ward":
            return None
        ward = _ward_partitions(
            X, sample_weight, grid, self.ward_max_samples, random_state
        )
        return {k: [labels] for k, labels in ward.items()}

    def _starts(self, stats, fitted, covariance_type):
        """The starts of one candidate.

        With a shared initialisation: the M-step of each shared partition,
        then (``n_init >= 2``) the fitted solution of the structures nested
        in ``covariance_type`` at the same K, then k-means++ draws up to
        ``n_init`` starts. Other ``init_params``: the candidate's own
        ``n_init`` initialisations.

        Parameters
        ----------
        stats : list of tuple or None
            The statistics (:func:`_partition_statistics`) of each shared
            partition at this K.

        fitted : dict
            The structures already fitted at this K: ``{covariance_type:
            (estimator, values)}``.

        covariance_type : str or None

        Returns
        -------
        starts : list of callable
            Each returns keyword arguments of the candidate's estimator (a
            singular initial covariance raises when it is called, inside the
            candidate's fit).
        """
        if stats is None:
            own = {"init_params": self.init_params, "n_init": self.n_init}
            return [lambda: own]
        starts = [
            partial(self._partition_starts, one, covariance_type) for one in stats
        ]
        if self.n_init >= 2:
            starts += [
                partial(lambda start: start, start)
                for start in self._nested_starts(fitted, covariance_type)
            ]
        n_draws = self.n_init - len(starts)
        if n_draws > 0:
            draws = {"init_params": "k-means++", "n_init": n_draws}
            starts.append(lambda: draws)
        return starts

    def _pair_candidates(self, X, n_tasks):
        """The threads of each candidate's engine when two K's are fitted at
        a time, or None to fit them one after another (see
        :meth:`GaussianMixtureIC._pair_candidates`)."""
        return None

    def _fit_components(
        self,
        X,
        sample_weight,
        n_components,
        covariance_types,
        labels,
        seeds,
        race_rows=None,
        stats=None,
        engine_jobs=None,
    ):
        """Fit every structure at one K; returns [(estimator, row), ...].

        ``stats``, when given, are the statistics of the partitions
        ``labels`` (already computed by :meth:`_fit_together`).
        ``engine_jobs``, when given, is the candidates' ``n_jobs`` during
        their fits (see :meth:`_pair_candidates`); they keep the default
        afterwards.
        """
        if stats is None and labels is not None:
            stats = self._partition_statistics(X, sample_weight, n_components, labels)
        fitted, out = {}, []
        for covariance_type, seed in zip(covariance_types, seeds):

            def make_estimator(covariance_type=covariance_type, seed=seed, **init):
                estimator = self._make_estimator(
                    n_components, covariance_type, int(seed), **init
                )
                # (Set directly: set_params inspects the signature.)
                estimator.n_jobs = engine_jobs
                return estimator

            starts = self._starts(stats, fitted, covariance_type)

            with config_context(assume_finite=True):
                estimator, values = _fit_one(
                    make_estimator,
                    starts,
                    X,
                    sample_weight,
                    self._log_prob_function,
                    race=_RACE_ITER if self.n_init == 1 else None,
                    race_rows=race_rows,
                    resume=self._resume_start,
                )
            if estimator is not None:
                estimator.n_jobs = None
                fitted[covariance_type] = (estimator, values)
            row = {"n_components": n_components, "covariance_type": covariance_type}
            row.update(values)
            self._report(row)
            out.append((estimator, row))
        return out

    def _store_results(self, per_k, covariance_types):
        rows = [row for candidates in per_k for _, row in candidates]
        estimators = [est for candidates in per_k for est, _ in candidates]
        columns = [
            "n_components",
            "covariance_type",
            "bic",
            "aic",
            "icl",
            "log_likelihood",
            "entropy",
            "n_parameters",
            "n_iter",
            "converged",
            "fit_time",
            "error",
        ]
        if covariance_types == (None,):
            columns.remove("covariance_type")
        dtypes = {
            "n_components": np.int64,
            "n_parameters": np.int64,
            "n_iter": np.int64,
            "converged": bool,
            "covariance_type": object,
            "error": object,
        }
        results = {
            column: np.array(
                [row[column] for row in rows], dtype=dtypes.get(column, np.float64)
            )
            for column in columns
        }
        values = results[self.criterion]
        failed = ~np.isfinite(values)
        if failed.all():
            raise ValueError(
                "Every candidate failed to fit: "
                f"{rows[0]['error']} Try to increase reg_covar, decrease "
                "n_components, or scale the input data."
            )
        collapsed = failed & (results["error"] != "n_components > n_samples")
        if collapsed.any():
            first = results["error"][np.flatnonzero(collapsed)[0]]
            warnings.warn(
                f"{collapsed.sum()} of {len(rows)} candidates failed to fit; "
                "their criteria are NaN in results_ and the messages are in "
                f"results_['error'] (the first: {first})",
                FitFailedWarning,
                stacklevel=3,
            )
        ranks = np.full(len(rows), len(rows), dtype=np.int64)
        order = np.argsort(np.where(failed, np.inf, values), kind="stable")
        # Equal criteria up to rounding are the same model fitted twice (in
        # one dimension, 'spherical', 'diag' and 'full' are one model): the
        # fewest parameters, then the first in the table (the smaller K, the
        # more constrained structure), not rounding, choose among them.
        lowest = values[order[0]]
        tied = np.flatnonzero(
            ~failed & (np.abs(values - lowest) <= _TIE_RTOL * max(abs(lowest), 1.0))
        )
        if tied.size > 1:
            winner = tied[np.lexsort((tied, results["n_parameters"][tied]))[0]]
            order = np.concatenate([[winner], order[order != winner]])
        ranks[order[: (~failed).sum()]] = np.arange(1, (~failed).sum() + 1)
        results[f"rank_{self.criterion}"] = ranks
        self.results_ = results
        self.best_index_ = int(order[0])
        best = estimators[self.best_index_]
        self.best_estimator_ = best
        self.n_components_ = int(results["n_components"][self.best_index_])
        if "covariance_type" in results:
            self.covariance_type_ = results["covariance_type"][self.best_index_]
        self.best_params_ = {"n_components": self.n_components_}
        if "covariance_type" in results:
            self.best_params_["covariance_type"] = self.covariance_type_
        self.criterion_ = float(values[self.best_index_])
        for attr in self._winner_attributes():
            setattr(self, attr, getattr(best, attr))
        if not best.converged_:
            warnings.warn(
                f"The selected candidate ({self.best_params_}) did not converge "
                f"in max_iter={self.max_iter} iterations. Try to increase "
                "max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _winner_attributes(self):
        return ("weights_", "means_", "converged_", "n_iter_", "lower_bound_")

    def _refine(self, X, sample_weight):
        """Run the selected candidate's EM on to ``refine_tol``.

        The candidates are compared at ``tol``; the selected one then goes on
        from where its EM stopped, as one uninterrupted fit with
        ``tol=refine_tol`` (and the same ``max_iter``) would have, and
        replaces it if its criterion is lower (EM never lowers the
        log-likelihood, so BIC and AIC only improve; ICL can worsen). Its
        row of ``results_`` then describes the refined fit, but for
        ``converged``, which stays its convergence at ``tol``.
        """
        if self.refine_tol is None or self.refine_tol >= self.tol:
            return
        tic = time.perf_counter()
        refined = copy.deepcopy(self.best_estimator_)
        if not _run_on(refined, X, sample_weight, self.refine_tol):
            # Converged at refine_tol already (or out of iterations): the
            # same fit, with its tol.
            self.best_estimator_ = refined
            self.converged_ = refined.converged_
            return
        values = _information_criteria(
            refined, X, sample_weight, self._log_prob_function(refined)
        )
        # (Not lower, or NaN: the compared fit stays.)
        if not values[self.criterion] < self.criterion_:
            return
        row = self.best_index_
        for key in ("log_likelihood", "entropy", *_CRITERIA):
            self.results_[key][row] = values[key]
        self.results_["n_iter"][row] = refined.n_iter_
        self.results_["fit_time"][row] += time.perf_counter() - tic
        self.criterion_ = float(values[self.criterion])
        self.best_estimator_ = refined
        for attr in self._winner_attributes():
            setattr(self, attr, getattr(refined, attr))

    # ------------------------------------------------------------------
    # The selected mixture's methods.
    def _check_and_validate(self, X):
        check_is_fitted(self)
        return self._validate_X(X, reset=False)

    def predict(self, X):
        """Most probable component of each sample under the selected mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels.
        """
        X = self._check_and_validate(X)
        return self.best_estimator_.predict(X)

    def predict_proba(self, X):
        """Responsibilities of the selected mixture's components.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        resp : ndarray of shape (n_samples, `n_components_`)
            Responsibilities; every row sums to one.
        """
        X = self._check_and_validate(X)
        return self.best_estimator_.predict_proba(X)

    def transform(self, X):
        """Responsibilities of ``X`` as features, as :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        resp : ndarray of shape (n_samples, `n_components_`)
            Responsibilities; every row sums to one.
        """
        return self.predict_proba(X)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Select the mixture on ``X`` and predict the component of every sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.

        y : Ignored
            Not used, present for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights, as in :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels.
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def score_samples(self, X):
        """Log-likelihood of each sample under the selected mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        X = self._check_and_validate(X)
        return self.best_estimator_.score_samples(X)

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` under the selected mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        log_likelihood : float
        """
        return float(np.mean(self.score_samples(X)))

    def bic(self, X):
        """BIC of the selected mixture on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        bic : float
        """
        X = self._check_and_validate(X)
        return self.best_estimator_.bic(X)

    def aic(self, X):
        """AIC of the selected mixture on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        aic : float
        """
        X = self._check_and_validate(X)
        return self.best_estimator_.aic(X)

    def sample(self, n_samples=1):
        """Generate random samples from the selected mixture.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Randomly generated samples.

        y : ndarray of shape (n_samples,)
            Component labels.
        """
        check_is_fitted(self)
        return self.best_estimator_.sample(n_samples)

    @property
    def _n_features_out(self):
        """Number of transformed output features: the selected K."""
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class GaussianMixtureIC(_BaseMixtureIC):
    """Gaussian mixture whose K and covariance structure are chosen by BIC, AIC or ICL.

    Fits a :class:`GaussianMixtureEM` for every number of components in
    ``n_components`` and every covariance structure in ``covariance_type``,
    scores each on the training data by ``criterion`` and keeps the best
    (the lowest). The fitted selector then behaves as the chosen mixture
    (:meth:`predict`, :meth:`predict_proba`, :meth:`transform`,
    :meth:`score_samples`, :meth:`sample`, and its fitted parameters),
    while ``results_`` holds the table of every candidate; it is the search
    of R's mclust ``Mclust()``, with scikit-learn's estimator API.

    The criteria, all lower-is-better as :meth:`GaussianMixtureEM.bic`, with
    ``log L`` the log-likelihood of the training data, ``p`` the number of
    free parameters and ``N`` the number of samples (the sum of
    ``sample_weight``):

    - ``"bic"``: ``-2 log L + p log N``;
    - ``"aic"``: ``-2 log L + 2 p``;
    - ``"icl"``: ``BIC + 2 E``, where ``E = -sum_n sum_k r_nk log r_nk`` is
      the entropy of the responsibilities: BIC plus a penalty for
      overlapping components, so it favours well separated clusters.

    mclust reports BIC and ICL with the opposite sign (higher is better):
    its ``BIC`` is minus ours.

    The search shares its work (see the user guide): agglomerations of at
    most ``ward_max_samples`` rows, cut at every K, initialise every
    candidate -- by default both R's mclust model-based agglomeration and
    Ward's: the two fits of a candidate race for 3 iterations and the one
    ahead runs on to convergence (with ``n_init >= 2`` both do); with
    ``n_init >= 2``, a structure also starts from the fitted solution of
    the structures nested in it at the same K (for instance 'full' from the
    better of 'diag' and 'tied'), so that its likelihood is at least theirs;
    and the K's can run in parallel (``n_jobs``). On small float64 data
    (``n_init=1``), a structure's candidates run their EM iterations
    together, their components stacked so that one E-step and one M-step
    serve them all (see the user guide). Every candidate is a complete EM
    fit to ``tol``; the selected one then runs on to ``refine_tol``.

    Parameters
    ----------
    n_components : int or array-like of int, default=10
        The numbers of components searched: an int K means 1, 2, ..., K.

    covariance_type : {'all', 'full', 'tied', 'diag', 'spherical', \
            'tied_diag', 'tied_spherical'} or list of them, default='all'
        The covariance structures searched (see
        :class:`GaussianMixtureEM`); 'all' means the six. In mclust's names:
        VVV, EEE, VVI, VII, EEI and EII.

    criterion : {'bic', 'aic', 'icl'}, default='bic'
        The criterion minimised.

    tol : float, default=1e-3
        Convergence threshold of every candidate's EM, on the gain in mean
        log-likelihood per sample.

    refine_tol : float or None, default=1e-5
        Convergence threshold of the selected candidate alone: once chosen,
        its EM goes on from where the search stopped it until the gain in
        mean log-likelihood per sample falls below ``refine_tol`` (within
        ``max_iter`` iterations in all), the fit that ``tol=refine_tol``
        would have given; ``best_estimator_.tol`` is ``refine_tol``. The
        candidates are compared at ``tol``, and only the selected one pays
        for the closer fit (mclust fits every candidate about this closely:
        its EM stops at a relative change of 1e-5 in log-likelihood). The
        refined fit is kept if it lowers the criterion, which EM's never
        decreasing log-likelihood ensures for BIC and AIC. None, or a value
        not below ``tol``, keeps the selected fit as compared.

    reg_covar : float, default=1e-6
        Non-negative regularisation added to the diagonal of covariances.

    max_iter : int, default=100
        Maximum number of EM iterations of every candidate.

    n_init : int, default=1
        Number of starts of every candidate; the best log-likelihood is
        kept. With a shared initialisation, the starts are the shared
        partitions (two with 'ward+mclust', unless they agree, even when
        ``n_init=1``), then, when ``n_init >= 2``, the fitted solution of the
        nested structures at the same K (when one was searched), then
        k-means++ draws while there are fewer than ``n_init`` starts. With
        ``n_init=1`` several starts race: each runs 3 EM iterations (on
        20,000 of the rows for larger data), and only the one with the
        highest log-likelihood then runs to convergence on all the rows;
        with ``n_init >= 2`` every start does.

    init_params : {'ward+mclust', 'mclust', 'ward', 'kmeans', 'k-means++', \
            'random', 'random_from_data'}, default='ward+mclust'
        The shared initialisations, each one agglomeration of at most
        ``ward_max_samples`` rows cut at every K:

        - 'mclust': R's mclust initialisation, the model-based agglomeration
          ``hc(X, modelName="VVV", use="SVD")`` (Fraley 1998): on the
          standardised data rotated onto their principal axes (each scaled
          by the inverse square root of its singular value), every merge
          least increases the classification likelihood of Gaussian clusters
          with unconstrained covariances. Rows outside the subset join their
          most probable cluster under the subset partition's M-step;
        - 'ward': Ward's agglomeration; rows outside the subset join the
          cluster whose mean is nearest;
        - 'ward+mclust': every candidate starts from both partitions (drawn
          on two subsets of larger data) and keeps the better fit. With
          ``n_init=1`` the two race (see ``n_init``): it costs about 1.2
          times the EM time of either. With ``n_init >= 2`` both run to
          convergence, up to twice the time, and the result is never worse
          than 'ward' with the same ``random_state``.

        The others initialise every candidate on its own, as
        :class:`GaussianMixtureEM` does (nested structures still start the
        richer ones).

    ward_max_samples : int, default=2000
        Number of rows each agglomeration runs on (mclust's ``subset``
        option, also 2000): a random subset when there are more rows (drawn
        with probability proportional to ``sample_weight`` when the weights
        vary). Their time and memory grow as the square of this number.

    random_state : int, RandomState instance or None, default=None
        Controls the subsets of the agglomerations, the other
        initialisations and :meth:`sample`. Pass an int for reproducible
        results.

    n_jobs : int, default=None
        Number of joblib workers fitting the K's in parallel. None means no
        joblib workers: the candidates are fitted one after another, each
        E-step using the EM engine's threads (see
        :class:`GaussianMixtureEM`'s ``n_jobs``), except on dense data of at
        least 2^17 values in at most 64 dimensions, where two K's are fitted
        at a time, each on half those threads (the same fits, which kept the
        cores busier: 0.85-0.95 of the time). Candidates fitted together on
        small data run on the engine's threads whatever ``n_jobs``.

    verbose : int, default=0
        Print one line per candidate when positive.

    Attributes
    ----------
    results_ : dict of ndarray
        One entry per candidate, in order of K then structure, ready for
        ``pandas.DataFrame(results_)``: ``n_components``,
        ``covariance_type``, ``bic``, ``aic``, ``icl`` (lower is better),
        ``log_likelihood`` (sum over the training data), ``entropy`` (of the
        responsibilities), ``n_parameters``, ``n_iter``, ``converged``,
        ``fit_time`` (seconds, criteria included; for candidates fitted
        together, their share of the group's time), ``error`` (why a
        candidate failed, or '') and ``rank_<criterion>`` (1 is the
        selected one). A candidate whose fit failed (a collapsed component)
        has NaN criteria. The selected candidate's row describes its fit
        refined to ``refine_tol``, but for ``converged``, which is at
        ``tol`` on every row.

    best_index_ : int
        Index of the selected candidate in ``results_``.

    best_estimator_ : GaussianMixtureEM
        The selected mixture, fitted on the training data.

    best_params_ : dict
        ``{"n_components": ..., "covariance_type": ...}`` of the selected
        candidate.

    n_components_ : int
        The selected number of components.

    covariance_type_ : str
        The selected covariance structure.

    criterion_ : float
        The selected candidate's criterion.

    weights_ : ndarray of shape (`n_components_`,)
        The selected mixture's weights.

    means_ : ndarray of shape (`n_components_`, n_features)
        The selected mixture's means.

    covariances_ : ndarray
        The selected mixture's covariances, in the layout of
        ``covariance_type_`` (see :class:`GaussianMixtureEM`).

    precisions_ : ndarray
        The selected mixture's precision matrices, in the same layout.

    precisions_cholesky_ : ndarray
        The Cholesky factors of its precisions, in the same layout.

    converged_ : bool
        Whether the selected mixture's EM converged, at ``refine_tol`` when
        it was refined.

    n_iter_ : int
        EM iterations of the selected mixture.

    lower_bound_ : float
        The selected mixture's ``lower_bound_``.

    init_time_ : float
        Seconds spent building the shared initialisations.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    GaussianMixtureEM : The mixture fitted for every candidate.
    BernoulliMixtureIC : The same search for Bernoulli mixtures.
    sklearn.linear_model.LassoLarsIC : scikit-learn's selection of the
        Lasso's penalty by an information criterion.

    References
    ----------
    C. Fraley, "Algorithms for model-based Gaussian hierarchical
    clustering", SIAM Journal on Scientific Computing 20(1), 1998.

    L. Scrucca, M. Fop, T. B. Murphy and A. E. Raftery, "mclust 5:
    clustering, classification and density estimation using Gaussian finite
    mixture models", The R Journal 8(1), 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_em import GaussianMixtureIC
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.randn(200, 2), rng.randn(200, 2) + [6, 0],
    ...                0.5 * rng.randn(200, 2) + [0, 6]])
    >>> search = GaussianMixtureIC(n_components=6, random_state=0).fit(X)
    >>> search.best_params_
    {'n_components': 3, 'covariance_type': 'spherical'}
    >>> len(search.results_["bic"])
    36
    >>> search.predict([[0, 0], [6, 0]]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **_BaseMixtureIC._parameter_constraints,
        "init_params": [
            StrOptions(
                {
                    "mclust",
                    "ward",
                    "ward+mclust",
                    "kmeans",
                    "k-means++",
                    "random",
                    "random_from_data",
                }
            )
        ],
        "covariance_type": [StrOptions({"all", *COVARIANCE_TYPES}), "array-like"],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
    }

    def __init__(
        self,
        n_components=10,
        *,
        covariance_type="all",
        criterion="bic",
        tol=1e-3,
        refine_tol=1e-5,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="ward+mclust",
        ward_max_samples=2000,
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.tol = tol
        self.refine_tol = refine_tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.ward_max_samples = ward_max_samples
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _validate_X(self, X, *, reset):
        return validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            ensure_min_samples=2 if reset else 1,
            reset=reset,
        )

    def _covariance_types(self):
        return _check_covariance_types(self.covariance_type)

    def _make_estimator(self, n_components, covariance_type, random_state, **init):
        return GaussianMixtureEM(
            n_components,
            covariance_type=covariance_type,
            tol=self.tol,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            random_state=random_state,
            **init,
        )

    def _pair_candidates(self, X, n_tasks):
        """The threads of each candidate's engine when two K's are fitted at
        a time, or None to fit them one after another.

        With the default ``n_jobs=None``, a K's fits on data too large for the
        lockstep run their E-steps on all the engine's threads, one K after
        another; but a fit's own steps between its E-steps, its small
        products and its starts' races on a subsample leave part of the
        cores idle (the search of 100,000 x 10 kept 1.6 of the 2 busy). Two
        K's at a time, each on half the threads, keep them busy: searches of
        10,000 to 100,000 rows in 3 to 64 dimensions took 0.85-0.95 of their
        time. Not from 128 dimensions, where the products keep the cores busy
        (1.02), nor for Bernoulli mixtures, whose fits are short (1.4). Every
        fit's arithmetic is its own (the threads change only how its chunks
        are grouped): the results are those of fits one by one on that many
        threads.
        """
        if self.n_jobs is not None or n_tasks < 2 or sparse.issparse(X):
            return None
        n_samples, n_features = X.shape
        if n_samples * n_features < _PAIRED_VALUES or n_features > _PAIRED_MAX_FEATURES:
            return None
        threads = n_threads(None)
        return None if threads < 2 else threads // 2

    def _needs_second_moments(self):
        return True

    def _shared_partitions(self, X, sample_weight, grid, random_state):
        if not sparse.issparse(X):
            # The agglomerations add up squared distances: where those could
            # overflow they run on the data times a power of two, which
            # scales every sum exactly (the same partitions where they do
            # not; SciPy's Ward had raised that its distances were not
            # finite at 1e153), and data no mixture can hold is refused here.
            X, _ = _scaled_for_kmeans(X, sample_weight)
        if self.init_params not in ("mclust", "ward+mclust"):
            return super()._shared_partitions(X, sample_weight, grid, random_state)
        draw = partial(
            _agglomeration_subset,
            X.shape[0],
            sample_weight,
            self.ward_max_samples,
            grid.max(),
            random_state,
        )
        if self.init_params == "mclust":
            return {
                k: [labels]
                for k, labels in _mclust_partitions(
                    X, grid, draw(), self.reg_covar
                ).items()
            }
        # Ward's subset drawn first (the same Ward partitions as
        # init_params="ward"), then mclust's own: two draws of a large data
        # set's rows.
        ward_subset, subset = draw(), draw()
        ward_partitions = partial(
            _ward_partitions, X, sample_weight, grid, None, None, ward_subset
        )
        if (
            sparse.issparse(X)
            or X.shape[0] * X.shape[1] < _PAIRED_VALUES
            or n_threads(None) < 2
        ):
            ward = ward_partitions()
            mclust = _mclust_partitions(X, grid, subset, self.reg_covar)
        else:
            # On large data Ward's partitions are passes over every row,
            # long NumPy calls that leave the interpreter free for the
            # agglomeration's many short ones: on another thread (100,000
            # x 10: 0.15 s of the 0.75 s of both).
            with ThreadPoolExecutor(1, thread_name_prefix="sklearn_em_ward") as pool:
                future = pool.submit(ward_partitions)
                mclust = _mclust_partitions(X, grid, subset, self.reg_covar)
                ward = future.result()
        # Both, unless they agree.
        return {
            k: [ward[k]] + ([] if np.array_equal(ward[k], mclust[k]) else [mclust[k]])
            for k in mclust
        }

    def _partition_starts(self, stats, covariance_type):
        nk, sums, scatter = stats
        return _gaussian_initial_parameters(
            nk, sums, scatter, covariance_type, self.reg_covar
        )

    def _resume_start(self, estimator):
        return {
            "weights_init": estimator.weights_,
            "means_init": estimator.means_,
            "precisions_init": estimator.precisions_,
        }

    def _nested_starts(self, fitted, covariance_type):
        nested = [fitted[t] for t in _NESTED_IN[covariance_type] if t in fitted]
        if not nested:
            return []
        # The nested solution with the best likelihood.
        estimator, _ = max(nested, key=lambda fit: fit[1]["log_likelihood"])
        start = self._resume_start(estimator)
        start["precisions_init"] = _embedded_precisions(estimator, covariance_type)
        return [start]

    def _fit_together(
        self, X, sample_weight, grid, covariance_types, partitions, seeds
    ):
        # Small dense float64 data with the shared starts and n_init=1: each
        # structure's candidates run EM in lockstep (see _lockstep), in
        # groups of bounded memory, the groups on the engine's threads. A
        # candidate one of whose starts is not a valid mixture, or
        # collapses, is left to the one-by-one search, which handles those
        # as GaussianMixtureEM does.
        n_samples, n_features = X.shape
        if (
            self.n_init != 1
            or partitions is None
            or sparse.issparse(X)
            or X.dtype != np.float64
        ):
            return {}, {}
        together = [
            j
            for j, covariance_type in enumerate(covariance_types)
            if n_samples * n_features <= _LOCKSTEP_MAX_VALUES[covariance_type]
            and (
                covariance_type != "full"
                or n_samples * n_features * (n_features + 3) // 2
                <= _LOCKSTEP_FULL_FEATURES
            )
        ]
        if not together:
            return {}, {}
        tic = time.perf_counter()
        stats = {
            int(k): self._partition_statistics(
                X, sample_weight, int(k), partitions[int(k)]
            )
            for k in grid
        }
        setup_time = (time.perf_counter() - tic) / len(together)
        # Threads only where NumPy's calls are long enough: on iris, two
        # threads contending for the interpreter took 1.4 times as long as
        # one; on breast cancer (569 x 30) they save 13%.
        threads = 1
        if n_samples * n_features >= _LOCKSTEP_THREADED_VALUES:
            threads = n_threads(None)
        tasks = [
            (j, group)
            for j in together
            for group in _lockstep_groups(
                grid, _lockstep_values(covariance_types[j], X.shape), threads
            )
        ]

        def fit_group(task):
            # (Data near the float range: statistics beyond it are infinite,
            # without warnings; their candidates are left to the one-by-one
            # search, which reports them. The state is the thread's own.)
            with np.errstate(over="ignore", invalid="ignore"):
                return _fit_group(task)

        def _fit_group(task):
            tic = time.perf_counter()
            j, group = task
            covariance_type = covariance_types[j]
            made = iter(
                _lockstep_starts(
                    [partition for i in group for partition in stats[int(grid[i])]],
                    covariance_type,
                    self.reg_covar,
                )
            )
            members = []
            for i in group:
                starts = [next(made) for _ in stats[int(grid[i])]]
                if all(start is not None for start in starts):
                    members.append((i, starts))
            if not members:
                return members, [], time.perf_counter() - tic
            fits = fit_in_lockstep(
                X,
                sample_weight,
                [[given for _, given in starts] for _, starts in members],
                covariance_type,
                reg_covar=self.reg_covar,
                tol=self.tol,
                max_iter=self.max_iter,
                race=_RACE_ITER,
            )
            return members, fits, time.perf_counter() - tic

        with single_threaded_blas():
            done = map_in_threads(fit_group, tasks, threads)

        n_weight = n_samples if sample_weight is None else float(sample_weight.sum())
        weight_scale = normalise_weights(sample_weight)[1]
        fitted = {}
        for (j, _), (members, fits, elapsed) in zip(tasks, done):
            covariance_type = covariance_types[j]
            # Every candidate's share of the group's time (and of the
            # partition statistics): by its iterations times its components,
            # the size of its part of every array.
            elapsed += setup_time * len(members) / len(grid)
            work = {
                i: fit["n_iter"] * int(grid[i])
                for (i, _), fit in zip(members, fits)
                if fit is not None
            }
            total = max(sum(work.values()), 1)
            for (i, starts), fit in zip(members, fits):
                if fit is None:
                    continue
                n_components = int(grid[i])
                estimator = self._make_estimator(
                    n_components,
                    covariance_type,
                    int(seeds[i, j]),
                    **starts[fit["start"]][0],
                )
                # The state GaussianMixtureEM's fit leaves.
                _adopt_checked_start(estimator, starts[fit["start"]][0], X.dtype)
                estimator._set_parameters(fit["parameters"])
                estimator._weight_scale = weight_scale
                estimator.n_features_in_ = n_features
                estimator.n_iter_ = fit["n_iter"]
                estimator.converged_ = fit["converged"]
                estimator.lower_bounds_ = fit["lower_bounds"]
                estimator.lower_bound_ = fit["lower_bounds"][-1]
                fitted[(i, j)] = (
                    estimator,
                    {
                        "n_components": n_components,
                        "covariance_type": covariance_type,
                        **_criteria_values(
                            fit["log_likelihood"],
                            fit["entropy"],
                            int(estimator._n_parameters()),
                            n_weight,
                        ),
                        "n_iter": fit["n_iter"],
                        "converged": fit["converged"],
                        "fit_time": elapsed * work[i] / total,
                        "error": "",
                    },
                )
        for i, j in sorted(fitted, key=lambda key: (grid[key[0]], key[1])):
            self._report(fitted[(i, j)][1])
        return fitted, stats

    def _winner_attributes(self):
        return (
            *super()._winner_attributes(),
            "covariances_",
            "precisions_",
            "precisions_cholesky_",
        )


class BernoulliMixtureIC(_BaseMixtureIC):
    """Bernoulli mixture whose number of components is chosen by BIC, AIC or ICL.

    Fits a :class:`BernoulliMixtureEM` for every number of components in
    ``n_components``, scores each on the training data by ``criterion`` and
    keeps the best (the lowest); the fitted selector then behaves as the
    chosen mixture, and ``results_`` holds the table of every candidate.

    The criteria are those of :class:`GaussianMixtureIC`, with ``log L`` the
    plain log-likelihood at the fitted (maximum a posteriori) parameters and
    ``p = K n_features + K - 1`` free parameters.

    With ``init_params="ward"``, one Ward agglomeration of at most
    ``ward_max_samples`` binarised rows, cut at every K, initialises every
    candidate: each row joins the cluster whose subset mean is nearest, and
    the candidate starts from that partition's M-step (with the Beta prior).

    Parameters
    ----------
    n_components : int or array-like of int, default=10
        The numbers of components searched: an int K means 1, 2, ..., K.

    criterion : {'bic', 'aic', 'icl'}, default='bic'
        The criterion minimised.

    alpha : float, default=2.0
        First shape parameter of the Beta prior (see
        :class:`BernoulliMixtureEM`), > 1.

    beta : float, default=2.0
        Second shape parameter of the Beta prior, > 1.

    binarize : float or None, default=0.0
        Threshold for binarising the input, as in
        :class:`BernoulliMixtureEM`; None means the input must be binary.

    tol : float, default=1e-3
        Convergence threshold of every candidate's EM.

    refine_tol : float or None, default=1e-5
        Convergence threshold of the selected candidate alone, whose EM runs
        on from where the search stopped it (as :class:`GaussianMixtureIC`'s
        does): the fit ``tol=refine_tol`` would have given, kept if it lowers
        the criterion; ``best_estimator_.tol`` is then ``refine_tol``. None,
        or a value not below ``tol``, keeps the selected fit as compared.

    max_iter : int, default=100
        Maximum number of EM iterations of every candidate.

    n_init : int, default=1
        Number of initialisations of every candidate; with 'ward', the first
        start is the shared one and the others are k-means++ draws.

    init_params : {'ward', 'kmeans', 'k-means++', 'random', \
            'random_from_data'}, default='ward'
        'ward' initialises every candidate from one shared Ward tree; the
        others initialise every candidate on its own.

    ward_max_samples : int, default=2000
        Number of rows the Ward agglomeration runs on.

    random_state : int, RandomState instance or None, default=None
        Controls the subset of the Ward tree, the other initialisations and
        :meth:`sample`.

    n_jobs : int, default=None
        Number of joblib workers fitting the K's in parallel; None means 1.

    verbose : int, default=0
        Print one line per candidate when positive.

    Attributes
    ----------
    results_ : dict of ndarray
        One entry per candidate, ready for ``pandas.DataFrame(results_)``:
        ``n_components``, ``bic``, ``aic``, ``icl``, ``log_likelihood``,
        ``entropy``, ``n_parameters``, ``n_iter``, ``converged``,
        ``fit_time``, ``error`` and ``rank_<criterion>``; the selected
        candidate's row describes its fit refined to ``refine_tol``, but
        for ``converged`` (at ``tol`` on every row).

    best_index_ : int
        Index of the selected candidate in ``results_``.

    best_estimator_ : BernoulliMixtureEM
        The selected mixture, fitted on the training data.

    best_params_ : dict
        ``{"n_components": ...}`` of the selected candidate.

    n_components_ : int
        The selected number of components.

    criterion_ : float
        The selected candidate's criterion.

    weights_ : ndarray of shape (`n_components_`,)
        The selected mixture's weights.

    means_ : ndarray of shape (`n_components_`, n_features)
        The selected mixture's Bernoulli probabilities.

    converged_ : bool
        Whether the selected mixture's EM converged, at ``refine_tol`` when
        it was refined.

    n_iter_ : int
        EM iterations of the selected mixture.

    lower_bound_ : float
        The selected mixture's ``lower_bound_``.

    init_time_ : float
        Seconds spent building the shared initialisation.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    BernoulliMixtureEM : The mixture fitted for every candidate.
    GaussianMixtureIC : The same search for Gaussian mixtures.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_em import BernoulliMixtureIC
    >>> rng = np.random.RandomState(0)
    >>> prototypes = np.array([[0.9] * 5 + [0.1] * 5, [0.1] * 5 + [0.9] * 5])
    >>> X = (rng.rand(400, 10) < prototypes[rng.randint(2, size=400)]).astype(int)
    >>> search = BernoulliMixtureIC(n_components=4, random_state=0).fit(X)
    >>> search.n_components_
    2
    >>> search.means_.round(1)[np.argsort(search.means_[:, 0])]
    array([[0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9],
           [0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]])
    """

    _parameter_constraints: dict = {
        **_BaseMixtureIC._parameter_constraints,
        "alpha": [Interval(Real, 1.0, None, closed="neither")],
        "beta": [Interval(Real, 1.0, None, closed="neither")],
        "binarize": [None, Interval(Real, None, None, closed="neither")],
    }

    def __init__(
        self,
        n_components=10,
        *,
        criterion="bic",
        alpha=2.0,
        beta=2.0,
        binarize=0.0,
        tol=1e-3,
        refine_tol=1e-5,
        max_iter=100,
        n_init=1,
        init_params="ward",
        ward_max_samples=2000,
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.criterion = criterion
        self.alpha = alpha
        self.beta = beta
        self.binarize = binarize
        self.tol = tol
        self.refine_tol = refine_tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.ward_max_samples = ward_max_samples
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _validate_X(self, X, *, reset):
        X = validate_data(
            self,
            X,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            ensure_min_samples=2 if reset else 1,
            reset=reset,
        )
        if self.binarize is None:
            _check_binary(X)
            return X
        return _binarize(X, threshold=self.binarize, copy=True)

    def _covariance_types(self):
        return (None,)

    def _make_estimator(self, n_components, covariance_type, random_state, **init):
        # The data are binarised once, by the selector: the candidates take
        # them as they are (binarize=None); the selected one gets the user's
        # threshold back afterwards, for raw input.
        return BernoulliMixtureEM(
            n_components,
            alpha=self.alpha,
            beta=self.beta,
            binarize=None,
            tol=self.tol,
            max_iter=self.max_iter,
            random_state=random_state,
            **init,
        )

    def _partition_starts(self, stats, covariance_type):
        nk, sums, _ = stats
        means = (sums + (self.alpha - 1.0)) / (nk + (self.alpha + self.beta - 2.0))[
            :, np.newaxis
        ]
        return {"weights_init": nk / nk.sum(), "means_init": np.clip(means, 0, 1)}

    def _store_results(self, per_k, covariance_types):
        super()._store_results(per_k, covariance_types)
        self.best_estimator_.set_params(binarize=self.binarize)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
