"""EM for many small Gaussian mixtures at once: a model selection's candidates.

On small data one EM iteration of one candidate is a few dozen NumPy calls
on arrays of a few thousand values, and their fixed cost, not the arithmetic,
is the time: ~0.3 ms an iteration on iris, whose search over K = 1..15 and
four covariance structures runs ~650 of them. Here the candidates of one
covariance structure run together: their components are stacked along one
axis, so that a single E-step and a single M-step of NumPy calls serve all of
them. Each candidate still runs its own EM -- its own responsibilities,
normalised over its own components, its own convergence test on its own
log-likelihood -- and leaves the batch when it converges or reaches
``max_iter``.

'full', 'diag' and 'spherical' iterate on the expanded features of the
centred rows, ``[z_i z_j, z]`` (``[z^2, z]``, ``[|z|^2, z]``)
(:func:`_expanded_log_prob`, :func:`_expanded_m_step`): one product for
every stacked component's log-density and one for their moments, instead
of a batch of small products over the differences ``x_n - mu_k`` of each
component. 'tied' whitens the centred rows once per run and takes each
run's scatter from the data's (:func:`_tied_features`,
:meth:`_Batch.tied_e_step`, :func:`_tied_m_step`). Both keep the engine's
precision guards, which compute the few components (or M-steps) that need
it from the differences, as the engine's direct form
(``_gaussian._direct_e_step_chunk``, with the same
:func:`_direct_log_prob`) does: exact log-densities, and second
moments taken around the new means (two passes).

Layout: ``R`` runs (a start of a candidate each) with ``K_r`` components;
their ``K = sum_r K_r`` components are stacked run after run. ``owner[k]`` is
the run of component ``k`` and ``offsets[r]`` the first component of run
``r``; per-run sums over components are ``np.add.reduceat(..., offsets)``.
The shared covariance structures ('tied', 'tied_diag', 'tied_spherical') hold
one covariance per run, the others one per component.
"""

# Authors: The sklearn-em developers
# SPDX-License-Identifier: BSD-3-Clause

import math

import numpy as np

from ._gaussian import (
    _RECENTRE_ERROR,
    _compute_log_det_cholesky,
    _direct_log_prob,
    _engine_covariance_type,
    _expanded_coefficients,
    _expansion_limit,
    _factor_inverses,
    _triu_diagonal,
    _triu_indices,
    _triu_positions,
)
from ._suffstats import _EXP_SHIFT, _FLOAT64_LOG_TINY, normalise_weights, workspace

#: The structures whose covariance is shared by a run's components.
_SHARED = ("tied", "tied_diag", "tied_spherical")


def _kind(covariance_type):
    """The layout of a structure's per-component density and factors.

    The engine's E-step type (``_engine_covariance_type``), with 'tied'
    stacked as 'full': its shared factor is repeated for every component.

    Returns
    -------
    kind : {'full', 'diag', 'spherical'}
    """
    kind = _engine_covariance_type(covariance_type)
    return "full" if kind == "tied" else kind


_LOG_2PI = math.log(2 * math.pi)

#: scikit-learn's guard on a component's mass (its M-step's ``10 eps``).
_EMPTY_MASS = 10 * np.finfo(np.float64).eps

#: ``_RECENTRE_ERROR`` in units of float64's epsilon.
_RECENTRE_LIMIT = _RECENTRE_ERROR[np.dtype(np.float64)] / np.finfo(np.float64).eps

#: The expansion's precision budget for float64 (``_expansion_limit``).
_EXPANSION_LIMIT = _expansion_limit(np.float64)


#: Differences x_n - mu_k (components x features x samples) computed at a
#: time where the expanded forms fall back on them (the precision guards):
#: 16 MiB.
_DIRECT_BLOCK_VALUES = 2**21


def _component_blocks(n_components, XT):
    """Slices of components whose differences hold at most _DIRECT_BLOCK_VALUES."""
    size = max(1, _DIRECT_BLOCK_VALUES // max(1, XT.size))
    return [slice(start, start + size) for start in range(0, n_components, size)]


def _blocked_log_prob(XT, means, factors, log_w, kind):
    """:func:`_direct_log_prob`'s log-probabilities, in blocks of components.

    Parameters
    ----------
    XT, means, factors, log_w, kind
        As in :func:`_direct_log_prob`.

    Returns
    -------
    log_prob : ndarray of shape (n_stacked, n_samples)
    """
    log_prob = np.empty((len(means), XT.shape[1]))
    for block in _component_blocks(len(means), XT):
        log_prob[block] = _direct_log_prob(
            XT, means[block], factors[block], log_w[block], kind
        )[0]
    return log_prob


def _run_reduce(ufunc, values, offsets):
    """``ufunc.reduceat(values, offsets, axis=0)`` of the runs' rows, faster.

    NumPy's ``reduceat`` along the first axis of a 2-D array is several
    times slower than a reduction of each run's contiguous block of rows:
    over 240 stacked components of 30 runs, the maxima of 178 / 569 / 8,000
    samples took 135 / 448 / 7,360 us against 64 / 84 / 640, the sums 69 /
    226 / 4,090 against 103 / 82 / 620 (the sums are the same up to the
    order of the additions).

    Parameters
    ----------
    ufunc : numpy.ufunc
        ``np.maximum`` or ``np.add``.

    values : ndarray of shape (n_stacked, ...)

    offsets : ndarray of shape (n_runs,)
        See :func:`_normalise_runs`; every run has at least one row.

    Returns
    -------
    reduced : ndarray of shape (n_runs, ...)
        Each run's reduction, ``ufunc.reduce(values[run], axis=0)``.
    """
    reduced = np.empty((len(offsets), *values.shape[1:]), dtype=values.dtype)
    bounds = offsets.tolist() + [len(values)]
    for r in range(len(offsets)):
        ufunc.reduce(
            values[bounds[r] : bounds[r + 1]],
            axis=0,
            out=reduced[r : r + 1],
            keepdims=True,
        )
    return reduced


#: Where the sum of a run's exponentials, taken below the largest
#: log-probability of every run (see :func:`_normalise_runs`), is below
#: ``e^-490``, the run's own largest is at least 490 nats below it.
_SHARED_SHIFT_FLOOR = math.exp(-490.0)


def _normalise_runs(log_prob, offsets, owner):
    """Each run's responsibilities and log-likelihoods.

    The exponentials are taken below each sample's largest log-probability
    over all runs: one reduction, where each run's own largest took one per
    run (the most frequent NumPy call of a small search). That shift is
    exact to rounding, but for masses set to zero: those more than 708 nats
    (the smallest normal number) below it. In a run whose largest is ``g``
    nats below every run's, masses more than ``708 - g`` nats below that
    largest are lost: at ``g < 490``, more than 218 nats below it, where a
    component's mean or covariance would move by ``e^-218 n_samples /
    (10 eps)``, below rounding. The runs of a sample with ``g >= 490`` (a
    run that put the sample hundreds of nats from all its components, or
    whose components all give it zero mass) are normalised below their own
    largest, as ``logsumexp_rows`` normalises rows; so are those whose sum
    overflowed or is NaN. The caller ignores NumPy's floating-point errors
    (the log of a zero sum).

    Parameters
    ----------
    log_prob : ndarray of shape (n_stacked, n_samples)
        From :func:`_direct_log_prob`; left unchanged.

    offsets : ndarray of shape (n_runs,)

    owner : ndarray of shape (n_stacked,)

    Returns
    -------
    resp : ndarray of shape (n_stacked, n_samples)
        The responsibilities, each run's column sums equal to one (zeros
        for a sample no component of its run can have produced).

    log_norm : ndarray of shape (n_runs, n_samples)
        ``log p(x_n)`` under each run's mixture.
    """
    top = log_prob.max(axis=0)
    top[~np.isfinite(top)] = 0
    # Off zero, as logsumexp_rows (see _suffstats._EXP_SHIFT).
    top += _EXP_SHIFT
    resp = np.subtract(log_prob, top)
    # As logsumexp_rows: masses below the smallest normal number are zero.
    np.copyto(resp, -np.inf, where=resp < _FLOAT64_LOG_TINY)
    np.exp(resp, out=resp)
    norm = _run_reduce(np.add, resp, offsets)
    # Two reductions tell whether any run is far below the shift, or has a
    # sum that overflowed or is NaN (a sample where some run's
    # log-probability is NaN or infinite takes no shift): rare.
    if norm.min() >= _SHARED_SHIFT_FLOOR and norm.max() < np.inf:
        log_norm = np.log(norm)
    else:
        top = _renormalise_far_runs(log_prob, resp, norm, top, offsets, owner)
        log_norm = np.log(norm)
        norm[norm == 0] = 1
    # Divided, not multiplied by a reciprocal: a sample's only mass in a run
    # is then exactly 1, whatever the shift made of it (a K = 1 candidate's
    # entropy is exactly zero, its ICL its BIC).
    resp /= norm[owner]
    log_norm += top
    return resp, log_norm


def _renormalise_far_runs(log_prob, resp, norm, top, offsets, owner):
    """:func:`_normalise_runs`' runs far below the shift, on their own.

    Parameters
    ----------
    log_prob : ndarray of shape (n_stacked, n_samples)

    resp : ndarray of shape (n_stacked, n_samples)
        The exponentials below ``top``; those of the far runs' samples are
        replaced by the exponentials below each run's own largest.

    norm : ndarray of shape (n_runs, n_samples)
        Their sums, replaced likewise.

    top : ndarray of shape (n_samples,)
        The shift.

    offsets, owner : ndarray

    Returns
    -------
    top : ndarray of shape (n_runs, n_samples)
        The shift of every run and sample.
    """
    far = ~(norm >= _SHARED_SHIFT_FLOOR) | (norm == np.inf)
    top = np.broadcast_to(top, norm.shape).copy()
    stops = np.append(offsets[1:], len(owner))
    for r in far.any(axis=1).nonzero()[0]:
        # This run's samples below its own largest.
        rows = slice(offsets[r], stops[r])
        columns = far[r].nonzero()[0]
        own = log_prob[rows, columns].max(axis=0)
        own[~np.isfinite(own)] = 0
        own += _EXP_SHIFT
        shifted = log_prob[rows, columns] - own
        np.copyto(shifted, -np.inf, where=shifted < _FLOAT64_LOG_TINY)
        np.exp(shifted, out=shifted)
        resp[rows, columns] = shifted
        norm[r, columns] = shifted.sum(axis=0)
        top[r, columns] = own
    return top


def _component_weights(resp, offsets, owner):
    """Each component's mass and mixture weight, as the engine's M-step.

    Parameters
    ----------
    resp : ndarray of shape (n_stacked, n_samples)
        Responsibilities times the sample weights.

    offsets, owner : ndarray
        See :func:`_normalise_runs`.

    Returns
    -------
    nk : ndarray of shape (n_stacked,)
        ``sum_n r_nk``, at least ``10 eps`` (scikit-learn's guard).

    weights : ndarray of shape (n_stacked,)
        ``nk`` over its run's sum.

    empty : ndarray of bool of shape (n_stacked,)
        The components whose mass is below that guard.
    """
    nk = resp.sum(axis=1)
    empty = nk < _EMPTY_MASS
    nk = np.maximum(nk, _EMPTY_MASS)
    return nk, nk / np.add.reduceat(nk, offsets)[owner], empty


def _move_differences(diff, resp, nk):
    """The means' shifts, and ``diff`` moved to the new means in place.

    ``mu_k' = mu_k + sum_n r_nk (x_n - mu_k) / N_k``, from the differences
    (the first of the M-step's two passes).

    Parameters
    ----------
    diff : ndarray of shape (n_stacked, n_features, n_samples)
        ``x_n - mu_k``; overwritten with ``x_n - mu_k'``.

    resp : ndarray of shape (n_stacked, n_samples)

    nk : ndarray of shape (n_stacked,)

    Returns
    -------
    shift : ndarray of shape (n_stacked, n_features)
    """
    shift = np.matmul(diff, resp[:, :, np.newaxis])[:, :, 0] / nk[:, np.newaxis]
    diff -= shift[:, :, np.newaxis]
    return shift


def _scatter_from_differences(diff, resp, kind):
    """Each component's weighted scatter around its mean, from ``diff``.

    The second of the M-step's two passes (after :func:`_move_differences`).

    Parameters
    ----------
    diff : ndarray of shape (n_stacked, n_features, n_samples)
        ``x_n - mu_k`` around the new means.

    resp : ndarray of shape (n_stacked, n_samples)

    kind : {'full', 'diag', 'spherical'}

    Returns
    -------
    scatter : ndarray of shape (n_stacked, n_features, n_features) or \
            (n_stacked, n_features)
        ``sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T``, or its diagonal.
    """
    if kind == "full":
        weighted = np.multiply(
            diff,
            resp[:, np.newaxis],
            out=workspace("lockstep_work", diff.shape, np.float64),
        )
        return np.matmul(weighted, diff.transpose(0, 2, 1))
    squares = np.multiply(
        diff, diff, out=workspace("lockstep_work", diff.shape, np.float64)
    )
    return np.matmul(squares, resp[:, :, np.newaxis])[:, :, 0]


def _m_step(diff, resp, means, kind, shared, offsets, owner, reg_covar):
    """Weights, means and covariances of every run from its responsibilities.

    The M-step of ``GaussianMixtureEM`` (scikit-learn's, with its 10 eps
    guard on empty components), with each scatter computed around the new
    mean from the differences.

    Parameters
    ----------
    diff : ndarray of shape (n_stacked, n_features, n_samples)
        ``x_n - mu_k`` around the current means; overwritten with the
        differences from the new means.

    resp : ndarray of shape (n_stacked, n_samples)
        Responsibilities times the sample weights.

    means : ndarray of shape (n_stacked, n_features)

    kind : {'full', 'diag', 'spherical'}

    shared : bool
        One covariance per run (pooled over its components).

    offsets, owner : ndarray
        See :func:`_normalise_runs`.

    reg_covar : float

    Returns
    -------
    weights : ndarray of shape (n_stacked,)

    means : ndarray of shape (n_stacked, n_features)

    covariances : ndarray
        'full': shape (n_covariances, n_features, n_features); 'diag':
        (n_covariances, n_features); 'spherical': (n_covariances,), with
        ``n_covariances`` the number of runs when ``shared``, else of
        components.
    """
    n_features = diff.shape[1]
    nk, weights, _ = _component_weights(resp, offsets, owner)
    new_means = means + _move_differences(diff, resp, nk)
    if shared:
        nk = np.add.reduceat(nk, offsets)
    scatter = _scatter_from_differences(diff, resp, kind)
    if kind == "full":
        if shared:
            scatter = np.add.reduceat(scatter, offsets, axis=0)
        covariances = scatter / nk[:, np.newaxis, np.newaxis]
        idx = np.arange(n_features)
        covariances[:, idx, idx] += reg_covar
        return weights, new_means, covariances
    if shared:
        scatter = np.add.reduceat(scatter, offsets, axis=0)
    variances = scatter / nk[:, np.newaxis]
    if kind == "spherical":
        variances = variances.mean(axis=1)
    return weights, new_means, variances + reg_covar


def _precision_factors(covariances, kind):
    """Precision factors of covariances, and which covariances have none.

    Parameters
    ----------
    covariances : ndarray
        In the layout :func:`_m_step` returns.

    kind : {'full', 'diag', 'spherical'}

    Returns
    -------
    factors : ndarray of the same shape
        Upper-triangular U with ``Sigma^-1 = U U^T`` ('full'), or the square
        roots of the precisions; the identity (ones) where a covariance
        failed.

    failed : ndarray of bool of shape (n_covariances,)
        The covariances that are not finite and positive definite: the
        collapses that end ``GaussianMixtureEM``'s EM.
    """
    if kind != "full":
        good = np.isfinite(covariances) & (covariances > 0)
        if kind == "diag":
            good = good.all(axis=1)
        safe = np.where(good if kind == "spherical" else good[:, None], covariances, 1)
        return 1.0 / np.sqrt(safe), ~good
    failed = ~np.isfinite(covariances).all(axis=(1, 2))
    safe = covariances
    if failed.any():
        safe = covariances.copy()
        safe[failed] = np.eye(covariances.shape[-1])
    try:
        chol = np.linalg.cholesky(safe)
    except np.linalg.LinAlgError:
        chol = np.empty_like(safe)
        for k, matrix in enumerate(safe):
            try:
                chol[k] = np.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                failed[k] = True
                chol[k] = np.eye(len(matrix))
    return _lower_inverse(chol).transpose(0, 2, 1), failed


def _lower_inverse(L):
    """Inverses of lower-triangular matrices.

    A few matrices are inverted one by one with LAPACK's ``trtri`` (about 2
    us a call up to 13 dimensions, 6 at 30); more, by forward substitution:
    row ``i`` of ``L^-1`` is ``(e_i - L[i, :i] L^-1[:i]) / L[i, i]``, one
    batched product per row, whose fixed cost (about 5 us a dimension)
    pays from about 3.5 matrices a dimension. ``np.linalg.inv`` solves a
    general system per matrix: on 240 stacked factors it took 0.22 / 0.77 /
    6.9 ms in 4 / 13 / 30 dimensions, the substitution 0.15 / 0.35 / 1.6.

    Parameters
    ----------
    L : ndarray of shape (n_matrices, n_features, n_features)
        Lower triangular, with a nonzero diagonal.

    Returns
    -------
    inverse : ndarray of shape (n_matrices, n_features, n_features)
        Lower triangular (exact zeros above the diagonal).
    """
    n_features = L.shape[-1]
    if len(L) < 3.5 * n_features:
        return _factor_inverses(L, triangle="lower")
    inverse = np.zeros_like(L)
    reciprocal = 1.0 / np.diagonal(L, axis1=1, axis2=2)
    inverse[:, 0, 0] = reciprocal[:, 0]
    for i in range(1, n_features):
        row = np.matmul(L[:, i : i + 1, :i], inverse[:, :i, :i])[:, 0]
        row *= -reciprocal[:, i : i + 1]
        inverse[:, i, :i] = row
        inverse[:, i, i] = reciprocal[:, i]
    return inverse


def _expanded_features(X, sample_weight, kind):
    """The features of the expanded E-step, and their centre.

    Gaussian log-densities are linear in the quadratic and linear features
    of the centred rows ``z = x - c``: ``[z_i z_j for i <= j, z]`` ('full'),
    ``[z^2, z]`` ('diag') or ``[|z|^2, z]`` ('spherical'). One product then
    gives every stacked component's log-density, instead of the differences
    ``x - mu_k`` of each (see :func:`_expanded_log_prob`). The centre is the
    data's (weighted) mean.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64

    sample_weight : ndarray of shape (n_samples,) or None

    kind : {'full', 'diag', 'spherical'}

    Returns
    -------
    features : ndarray of shape (n_samples, n_quadratic + n_features)
        ``n_quadratic`` is ``n_features (n_features + 1) / 2`` ('full', the
        upper triangle row by row, as ``np.triu_indices``), ``n_features``
        ('diag') or 1 ('spherical').

    centre : ndarray of shape (n_features,)

    spread : ndarray of shape (n_features,)
        The data's standard deviation in each feature, for the precision
        budget (the engine's uses the mixture's, which an M-step makes the
        data's).
    """
    centre = np.average(X, axis=0, weights=sample_weight)
    Z = X - centre
    squares = Z * Z
    spread = np.sqrt(np.average(squares, axis=0, weights=sample_weight))
    if kind == "full":
        n_features = Z.shape[1]
        iu, ju = _triu_indices(n_features)
        squares = Z[:, iu] * Z[:, ju]
    elif kind == "spherical":
        squares = squares.sum(axis=1, keepdims=True)
    return np.hstack([squares, Z]), centre, spread


def _expanded_log_prob(XT, features, centre, spread, means, factors, log_w, kind):
    """:func:`_direct_log_prob`, expanded.

    ``features @ coef + intercept`` (``_gaussian._expanded_coefficients``)
    for every component within the expansion's precision budget -- the
    engine's: the terms a typical row adds up, ``s^T |P_k| s + 2 |P_k
    m_k|^T s + kappa_k`` with ``s`` the data's spread, times ``eps`` within
    a 1e-10 absolute error of the log-densities (``_expansion_limit``) --
    and from the differences ``x - mu_k`` for the others (a variance at
    ``reg_covar``, a component far from the data's centre).

    Parameters
    ----------
    XT : ndarray of shape (n_features, n_samples)

    features, centre, spread
        From :func:`_expanded_features`.

    means, factors, log_w, kind
        As in :func:`_direct_log_prob`.

    Returns
    -------
    log_prob : ndarray of shape (n_stacked, n_samples)
    """
    # The data's spread: the coefficients' own measure of it takes the
    # stacked runs for one mixture, whose weights add up to the number of runs.
    coef, intercept, cancelled = _expanded_coefficients(
        means, factors, kind, log_w, centre, spread
    )
    log_prob = np.dot(coef.T, features.T)
    log_prob += intercept[:, np.newaxis]
    direct = (~(cancelled <= _EXPANSION_LIMIT)).nonzero()[0]
    if len(direct):
        log_prob[direct] = _blocked_log_prob(
            XT, means[direct], factors[direct], log_w[direct], kind
        )
    return log_prob


def _expanded_m_step(
    features, XT, resp, centre, means, kind, shared, offsets, owner, reg_covar
):
    """:func:`_m_step` from the moments of the expanded features.

    The sums ``resp @ features`` give each component's mean ``c + E[z]``
    and its covariance ``E[z z^T] - E[z] E[z]^T`` (its diagonal for 'diag',
    their mean for 'spherical'). Where that subtraction would cancel more
    than the engine allows (``_RECENTRE_ERROR``, as
    ``_gaussian._recentred_shift`` measures it on the variances: a component
    narrow for its distance from the data's centre, whose mean too then
    needs more digits than ``c + E[z]`` keeps), and for components without
    mass, the component is updated as :func:`_m_step` updates it, from the
    differences from its mean.

    Parameters
    ----------
    features, centre
        From :func:`_expanded_features`.

    XT : ndarray of shape (n_features, n_samples)

    resp : ndarray of shape (n_stacked, n_samples)
        Responsibilities times the sample weights.

    means : ndarray of shape (n_stacked, n_features)
        The current means.

    kind, shared, offsets, owner, reg_covar
        As in :func:`_m_step`; ``shared`` only for 'diag' and 'spherical'.

    Returns
    -------
    weights, means, covariances : ndarray
        As :func:`_m_step`'s.
    """
    n_features = len(centre)
    n_quad = features.shape[1] - n_features
    nk, weights, empty = _component_weights(resp, offsets, owner)
    moments = np.dot(resp, features)
    moments /= nk[:, np.newaxis]
    first = moments[:, n_quad:]
    new_means = first + centre
    second = moments[:, :n_quad]
    moved = first * first
    if kind == "full":
        iu, ju = _triu_indices(n_features)
        variances = second[:, _triu_diagonal(n_features)]
    elif kind == "spherical":
        # |z|^2: a spherical variance is the mean over the features.
        moved = moved.mean(axis=1, keepdims=True)
        variances = second / n_features
    else:
        variances = second
    kept = variances - moved
    precise = np.all(
        moved <= _RECENTRE_LIMIT * (np.maximum(kept, 0) + reg_covar), axis=1
    )
    lossy = (~precise | empty).nonzero()[0]
    if kind == "full":
        packed = second - first[:, iu] * first[:, ju]
        covariances = np.take(packed, _triu_positions(n_features), axis=1)
        covariances = covariances.reshape(len(means), n_features, n_features)
    else:
        covariances = kept
    for block in _component_blocks(len(lossy), XT):
        # _m_step's two passes, for these components.
        some = lossy[block]
        diff = np.subtract(
            XT[np.newaxis],
            means[some][:, :, np.newaxis],
            out=workspace("lockstep_diff", (len(some), *XT.shape), np.float64),
        )
        new_means[some] = means[some] + _move_differences(diff, resp[some], nk[some])
        exact = _scatter_from_differences(diff, resp[some], kind)
        exact /= nk[some].reshape(-1, *[1] * (exact.ndim - 1))
        if kind == "spherical":
            exact = exact.mean(axis=1, keepdims=True)
        covariances[some] = exact
    if kind == "full":
        idx = np.arange(n_features)
        covariances[:, idx, idx] += reg_covar
        return weights, new_means, covariances
    if shared:
        scatter = np.add.reduceat(covariances * nk[:, np.newaxis], offsets, axis=0)
        covariances = scatter / np.add.reduceat(nk, offsets)[:, np.newaxis]
    if kind == "spherical":
        covariances = covariances[:, 0]
    return weights, new_means, covariances + reg_covar


def _tied_features(X, sample_weight):
    """The centred rows and their scatter, for the expanded 'tied' lockstep.

    With a shared precision ``P = U U^T`` a component's squared distance is
    ``|y - v_k|^2`` with ``y = U^T z`` the whitened centred row and ``v_k =
    U^T m_k``: one whitening per run, not per component (see
    :meth:`_Batch.tied_e_step`). And a run's pooled scatter is ``S_0 -
    sum_k N_k m_k m_k^T`` with ``S_0 = sum_n w_n z_n z_n^T`` the same for
    every run and iteration (see :func:`_tied_m_step`).

    Returns
    -------
    ZT : ndarray of shape (n_features, n_samples)
        ``z = x - c``, feature-major.

    centre : ndarray of shape (n_features,)
        ``c``, the data's (weighted) mean.

    scatter : ndarray of shape (n_features, n_features)
        ``S_0``.
    """
    centre = np.average(X, axis=0, weights=sample_weight)
    Z = X - centre
    weighted = Z if sample_weight is None else Z * sample_weight[:, np.newaxis]
    return np.ascontiguousarray(Z.T), centre, weighted.T @ Z


def _tied_m_step(tied, XT, resp, means, offsets, stops, owner, reg_covar):
    """:func:`_m_step` of 'tied' runs from the first moments and ``S_0``.

    Each run's scatter is ``S_0 - sum_k N_k m_k m_k^T`` (see
    :func:`_tied_features`). Where that subtraction would cancel more than
    the engine allows (``_RECENTRE_ERROR``, as ``_recentred_shift`` measures
    it for 'tied': a feature's sum of ``N_k m_k^2`` against what is left),
    the whole batch takes :func:`_m_step` from the differences instead.

    Returns
    -------
    weights, means, covariances : ndarray
        As :func:`_m_step`'s.
    """
    ZT, centre, scatter0 = tied
    nk, weights, empty = _component_weights(resp, offsets, owner)
    first = np.dot(resp, ZT.T) / nk[:, np.newaxis]
    # Each run's sum_k N_k m_k m_k^T, one small product per run (reduceat
    # of the stacked outer products along their first axis took 9x as long
    # for 240 components of 29 runs in 13 dimensions).
    weighted = first * nk[:, np.newaxis]
    between = np.empty((len(offsets), len(centre), len(centre)))
    for r, (start, stop) in enumerate(zip(offsets.tolist(), stops.tolist())):
        np.dot(weighted[start:stop].T, first[start:stop], out=between[r])
    n_run = np.add.reduceat(nk, offsets)
    scatter = scatter0 - between
    moved = np.diagonal(between, axis1=1, axis2=2)
    kept = np.diagonal(scatter, axis1=1, axis2=2) + reg_covar * n_run[:, np.newaxis]
    if empty.any() or not np.all(moved <= _RECENTRE_LIMIT * np.maximum(kept, 0)):
        diff = np.subtract(
            XT[np.newaxis],
            means[:, :, np.newaxis],
            out=workspace("lockstep_diff", (len(means), *XT.shape), np.float64),
        )
        return _m_step(diff, resp, means, "full", True, offsets, owner, reg_covar)
    covariances = scatter / n_run[:, np.newaxis, np.newaxis]
    idx = np.arange(len(centre))
    covariances[:, idx, idx] += reg_covar
    return weights, first + centre, covariances


class _Batch:
    """The stacked parameters of the runs still iterating.

    Parameters
    ----------
    runs : list of tuple
        ``(weights, means, precisions_cholesky)`` of each run, in
        ``GaussianMixtureEM``'s layout for ``covariance_type``.

    covariance_type : str
    """

    def __init__(self, runs, covariance_type):
        self.kind = _kind(covariance_type)
        self.shared = covariance_type in _SHARED
        self._set_sizes(np.array([len(means) for _, means, _ in runs]))
        self.weights = np.concatenate([weights for weights, _, _ in runs])
        self.means = np.concatenate([means for _, means, _ in runs])
        factors = [np.asarray(factor, dtype=np.float64) for _, _, factor in runs]
        if self.shared or self.kind == "spherical":
            factors = [np.atleast_1d(factor) for factor in factors]
        if self.shared:
            factors = [factor[np.newaxis] for factor in factors]
            if self.kind == "spherical":
                factors = [factor[:, 0] for factor in factors]
        self.factors = np.concatenate(factors)
        self.covariances = None

    def _set_sizes(self, sizes):
        """The layout of runs of ``sizes`` components: ``offsets``, ``stops``
        (one past each run's last component) and ``owner``."""
        self.stops = np.cumsum(sizes)
        self.offsets = self.stops - sizes
        self.owner = np.repeat(np.arange(len(sizes)), sizes)

    def expanded_e_step(self, XT, expanded):
        """The responsibilities of every run, and its log-likelihoods, on
        the expanded features (see :func:`_expanded_log_prob`).

        Parameters
        ----------
        XT : ndarray of shape (n_features, n_samples)

        expanded : tuple
            From :func:`_expanded_features`.

        Returns
        -------
        resp : ndarray of shape (n_stacked, n_samples)

        log_norm : ndarray of shape (n_runs, n_samples)
            ``log p(x_n)`` under each run's mixture.
        """
        factors = self.factors[self.owner] if self.shared else self.factors
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            resp = _expanded_log_prob(
                XT, *expanded, self.means, factors, np.log(self.weights), self.kind
            )
            return _normalise_runs(resp, self.offsets, self.owner)

    def tied_e_step(self, XT, tied):
        """:meth:`expanded_e_step` of 'tied' runs, one whitening per run.

        ``log pi_k + log N`` is ``-|y|^2 / 2 + y . v_k - |v_k|^2 / 2`` plus
        the run's log-determinant (see :func:`_tied_features`), for every
        component within the expansion's precision budget (the engine's
        measure for 'tied', ``(s + sqrt(kappa_k))^2`` with ``s^2`` the mean
        of ``|y|^2`` and ``kappa_k = |v_k|^2``); the others from their
        differences. The terms the run's components share at a sample
        (``-|y|^2 / 2`` and the normalising constant) cancel in the
        responsibilities: they are added to the run's log-likelihood after
        the normalisation, once per run rather than once per component.
        """
        ZT, centre, _ = tied
        factors = self.factors
        n_features = len(centre)
        whitened = np.matmul(factors.transpose(0, 2, 1), ZT)
        norms = np.einsum("rdn,rdn->rn", whitened, whitened)
        offsets = np.einsum("kij,ki->kj", factors[self.owner], self.means - centre)
        kappa = np.einsum("kd,kd->k", offsets, offsets)
        log_w = np.log(self.weights)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            resp = np.empty((len(self.owner), ZT.shape[1]))
            bounds = zip(self.offsets.tolist(), self.stops.tolist())
            for r, (start, stop) in enumerate(bounds):
                np.dot(offsets[start:stop], whitened[r], out=resp[start:stop])
            resp += (log_w - 0.5 * kappa)[:, np.newaxis]
            log_det = _compute_log_det_cholesky(factors, "full", n_features)
            shared = log_det[:, np.newaxis] - 0.5 * (norms + n_features * _LOG_2PI)
            spread = np.sqrt(norms.sum(axis=1) / norms.shape[1])[self.owner]
            cancelled = (spread + np.sqrt(kappa)) ** 2
            direct = (~(cancelled <= _EXPANSION_LIMIT)).nonzero()[0]
            if not len(direct):
                resp, log_norm = _normalise_runs(resp, self.offsets, self.owner)
                log_norm += shared
                return resp, log_norm
            # The differences' log-densities are far smaller than the shared
            # terms (which is why they are taken): every term in place.
            resp += shared[self.owner]
            resp[direct] = _blocked_log_prob(
                XT,
                self.means[direct],
                factors[self.owner[direct]],
                log_w[direct],
                "full",
            )
            return _normalise_runs(resp, self.offsets, self.owner)

    def keep(self, runs):
        """Only the runs at the (sorted) indices ``runs``."""
        mask = np.zeros(len(self.offsets), dtype=bool)
        mask[runs] = True
        components = mask[self.owner]
        self._set_sizes((self.stops - self.offsets)[mask])
        self.weights = self.weights[components]
        self.means = self.means[components]
        per = mask if self.shared else components
        self.factors = self.factors[per]
        if self.covariances is not None:
            self.covariances = self.covariances[per]

    def run_parameters(self, r):
        """``(weights, means, covariances, precisions_cholesky)`` of run r,
        in ``GaussianMixtureEM``'s layout."""
        start, stop = self.offsets[r], self.stops[r]
        per = slice(r, r + 1) if self.shared else slice(start, stop)
        covariances, factors = self.covariances[per], self.factors[per]
        if self.shared:
            covariances, factors = covariances[0], factors[0]
        return (
            self.weights[start:stop].copy(),
            self.means[start:stop].copy(),
            covariances.copy(),
            factors.copy(),
        )


def fit_in_lockstep(
    X, sample_weight, candidates, covariance_type, *, reg_covar, tol, max_iter, race
):
    """EM of many mixtures of one covariance structure, in lockstep.

    Each candidate has one or more starts. Every start runs ``race`` EM
    iterations; then only the one with the highest log-likelihood (the
    first on a tie) runs on to convergence, as ``_selection._fit_one`` does
    one candidate at a time: the kept runs are the same EM fits, up to
    rounding.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64

    sample_weight : ndarray of shape (n_samples,) or None
        Positive frequency weights. EM runs on them normalised as
        ``GaussianMixtureEM`` normalises them (:func:`normalise_weights`);
        the log-likelihood and entropy returned are sums over these.

    candidates : list of list of tuple
        The starts of each candidate: ``(weights, means,
        precisions_cholesky)`` in ``GaussianMixtureEM``'s layout for
        ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical', 'tied_diag', \
            'tied_spherical'}

    reg_covar, tol : float

    max_iter : int

    race : int
        Iterations of every start before the leaders go on alone.

    Returns
    -------
    fits : list of dict or None
        Per candidate: None when one of its starts collapsed (a covariance
        that is not positive definite, or a likelihood that is not finite):
        ``GaussianMixtureEM`` handles those, and the caller fits the
        candidate with it. Otherwise ``start`` (the index of the kept
        start), ``parameters`` (``(weights, means, covariances,
        precisions_cholesky)``), ``n_iter``, ``converged``,
        ``lower_bounds`` (the mean log-likelihood of every E-step), and the
        ``log_likelihood`` and ``entropy`` of the responsibilities of the
        fitted parameters (the sums over the samples, weighted).
    """
    XT = np.ascontiguousarray(np.asarray(X, dtype=np.float64).T)
    w, scale = normalise_weights(sample_weight)
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
    total_weight = XT.shape[1] if w is None else w.sum()
    runs = [
        (c, s, start)
        for c, starts in enumerate(candidates)
        for s, start in enumerate(starts)
    ]
    batch = _Batch([start for _, _, start in runs], covariance_type)
    # Every structure iterates on features of the centred rows: 'tied' on
    # the rows themselves, whitened once per run, the others on their
    # quadratic and linear features (see _expanded_log_prob).
    expanded = tied = None
    if covariance_type == "tied":
        tied = _tied_features(XT.T, w)
    else:
        expanded = _expanded_features(XT.T, None if w is None else w, batch.kind)
    run_candidate = np.array([c for c, _, _ in runs])
    run_start = np.array([s for _, s, _ in runs])
    n_runs = len(runs)
    lower_bounds = [[] for _ in range(n_runs)]
    n_iter = np.zeros(n_runs, dtype=np.int64)
    converged = np.zeros(n_runs, dtype=bool)
    failed = np.zeros(len(candidates), dtype=bool)
    ended = {}
    # The runs in the batch, by their index in `runs`.
    active = np.arange(n_runs)

    def iterate(limit):
        """EM on the batch until every run converges or reaches ``limit``."""
        nonlocal active
        previous = np.full(len(active), -np.inf)
        for r, run in enumerate(active):
            if lower_bounds[run]:
                previous[r] = lower_bounds[run][-1]
        while len(active):
            if tied is not None:
                log_prob, log_norm = batch.tied_e_step(XT, tied)
            else:
                log_prob, log_norm = batch.expanded_e_step(XT, expanded)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                lower = (log_norm.sum(axis=1) if w is None else log_norm @ w) / (
                    total_weight
                )
                if w is not None:
                    log_prob *= w
                layout = (batch.kind, batch.shared, batch.offsets, batch.owner)
                if tied is not None:
                    parameters = _tied_m_step(
                        tied,
                        XT,
                        log_prob,
                        batch.means,
                        batch.offsets,
                        batch.stops,
                        batch.owner,
                        reg_covar,
                    )
                else:
                    parameters = _expanded_m_step(
                        expanded[0],
                        XT,
                        log_prob,
                        expanded[1],
                        batch.means,
                        *layout,
                        reg_covar,
                    )
                weights, means, covariances = parameters
                factors, collapsed = _precision_factors(covariances, batch.kind)
            # A run collapses with a covariance that is not positive
            # definite, or a likelihood or mean that is not finite; then its
            # candidate leaves the batch (all its starts).
            collapse = (
                collapsed.any()
                or not np.isfinite(lower).all()
                or not np.isfinite(means).all()
            )
            if collapse:
                if not batch.shared:
                    collapsed = np.logical_or.reduceat(collapsed, batch.offsets)
                collapsed |= ~np.isfinite(lower)
                collapsed |= np.logical_or.reduceat(
                    ~np.isfinite(means).all(axis=1), batch.offsets
                )
                failed[run_candidate[active[collapsed]]] = True
            batch.weights = weights
            batch.means, batch.covariances, batch.factors = means, covariances, factors
            n_iter[active] += 1
            for run, value in zip(active.tolist(), lower.tolist()):
                lower_bounds[run].append(value)
            now = np.abs(lower - previous) < tol
            converged[active] = now
            previous = lower
            done = now | (n_iter[active] >= limit)
            if collapse:
                done |= failed[run_candidate[active]]
            if done.any():
                for r in done.nonzero()[0]:
                    ended[int(active[r])] = batch.run_parameters(r)
                stay = (~done).nonzero()[0]
                batch.keep(stay)
                active = active[stay]
                previous = previous[stay]

    iterate(min(race, max_iter))
    # The leader of each candidate: the highest last lower bound, the
    # first start on a tie (a stable sort, as _fit_one's).
    leaders = {}
    for run in range(n_runs):
        c = run_candidate[run]
        if failed[c]:
            continue
        best = leaders.get(c)
        if best is None or lower_bounds[run][-1] > lower_bounds[best][-1]:
            leaders[c] = run
    go_on = [
        run
        for run in sorted(leaders.values())
        if not converged[run] and n_iter[run] < max_iter
    ]
    if go_on:
        batch = _Batch([_factor_start(ended[run]) for run in go_on], covariance_type)
        active = np.array(go_on)
        iterate(max_iter)

    fits = [None] * len(candidates)
    kept = [run for c, run in sorted(leaders.items()) if not failed[c]]
    if not kept:
        return fits
    # The criteria's E-step, with the fitted parameters.
    final = _Batch([_factor_start(ended[run]) for run in kept], covariance_type)
    if tied is not None:
        log_prob, log_norm = final.tied_e_step(XT, tied)
    else:
        log_prob, log_norm = final.expanded_e_step(XT, expanded)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(log_prob > 0, log_prob * np.log(log_prob), 0.0)
    entropy_rows = -_run_reduce(np.add, plogp, final.offsets)
    if w is None:
        log_likelihood = log_norm.sum(axis=1)
        entropy = entropy_rows.sum(axis=1)
    else:
        # Multiplying by a power of two is exact: sums over the user's weights.
        log_likelihood, entropy = (log_norm @ w) / scale, (entropy_rows @ w) / scale
    for r, run in enumerate(kept):
        if not np.isfinite(log_likelihood[r]):
            continue
        fits[run_candidate[run]] = {
            "start": int(run_start[run]),
            "parameters": ended[run],
            "n_iter": int(n_iter[run]),
            "converged": bool(converged[run]),
            "lower_bounds": lower_bounds[run],
            "log_likelihood": float(log_likelihood[r]),
            "entropy": max(float(entropy[r]), 0.0),
        }
    return fits


def _factor_start(parameters):
    """A run's ``(weights, means, precisions_cholesky)`` from its parameters."""
    weights, means, _, factors = parameters
    return weights, means, factors
