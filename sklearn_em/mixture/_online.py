"""Stepwise (online) EM: the step-size schedule and the running statistics.

``partial_fit`` keeps running sufficient statistics ``s``, normalised per
unit of sample weight. For the t-th batch (t = 1, 2, ...) the E-step under the
current parameters gives the batch's sums ``S_t`` over a total weight
``W_t``, and

    s <- (1 - rho_t) s + rho_t S_t / W_t,    rho_t = (t + t0) ** (-kappa),

followed by an M-step from ``s`` (Cappé & Moulines, 2009; Liang & Klein,
2009). ``kappa`` is ``learning_decay``, in (0.5, 1] so that the steps satisfy
Robbins-Monro's conditions (sum rho_t = inf, sum rho_t^2 < inf); ``t0`` is
``learning_offset`` >= 0, which damps the first steps. The first step has no
previous statistics: ``s = S_1 / W_1``. With ``kappa = 1`` and ``t0 = 0``,
``s`` is the plain average of the batches' normalised statistics.

Second moments are accumulated around a per-component *shift* (the means of
the E-step that produced them; key ``"sxx"``, shape (n_components,
n_features, n_features) or its diagonal (n_components, n_features)). The
running statistics and a new batch's are around different shifts, so before
blending the running ones are moved exactly to the batch's shift with

    sum r (x - c')(x - c')^T = sum r (x - c)(x - c)^T + u d^T + d u^T
                               + N d d^T,     u = sum r x - N c, d = c - c',

(per component; the diagonal version for 2-D ``"sxx"``). The blend is then a
convex combination of sums around one point, which is exact, and the M-step
reads them around the shift it expects (the current means).
"""

import numpy as np


def step_size(t, learning_decay, learning_offset):
    """Step size of the t-th batch, ``(t + learning_offset) ** -learning_decay``.

    Parameters
    ----------
    t : int
        Index of the batch, starting at 1.

    learning_decay : float
        The exponent kappa, in (0.5, 1].

    learning_offset : float
        The offset t0 >= 0.

    Returns
    -------
    rho : float
        In (0, 1].

    Examples
    --------
    >>> from sklearn_em.mixture._online import step_size
    >>> step_size(1, 1.0, 0.0), step_size(4, 1.0, 0.0)
    (1.0, 0.25)
    """
    return min(1.0, float(t + learning_offset) ** -learning_decay)


def recentre_statistics(stats, old_shift, new_shift):
    """Move second moments from one shift to another, exactly.

    Parameters
    ----------
    stats : dict of ndarray
        Sufficient statistics with ``"nk"`` (n_components,), ``"sx"``
        (n_components, n_features) and optionally ``"sxx"``, the second
        moments around ``old_shift``: shape (n_components, n_features,
        n_features), or (n_components, n_features) for their diagonal.

    old_shift, new_shift : ndarray of shape (n_components, n_features) or None
        None, or statistics without ``"sxx"``, leave ``stats`` unchanged.

    Returns
    -------
    stats : dict of ndarray
        A new dict whose ``"sxx"`` is around ``new_shift``.
    """
    if "sxx" not in stats or old_shift is None or new_shift is None:
        return stats
    nk, sx, sxx = stats["nk"], stats["sx"], stats["sxx"]
    d = old_shift - new_shift
    u = sx - nk[:, np.newaxis] * old_shift
    if sxx.ndim == 3:
        ud = u[:, :, np.newaxis] * d[:, np.newaxis, :]
        dd = d[:, :, np.newaxis] * d[:, np.newaxis, :]
        sxx = sxx + ud + ud.transpose(0, 2, 1) + nk[:, None, None] * dd
    else:
        sxx = sxx + 2 * u * d + nk[:, np.newaxis] * d * d
    return {**stats, "sxx": sxx}


def blend_statistics(running, batch, rho):
    """One stepwise-EM update of the running normalised statistics.

    Parameters
    ----------
    running : dict of ndarray or None
        Running statistics, per unit weight, around the same shift as
        ``batch``; None at the first step.

    batch : dict of ndarray
        The batch's summed statistics, with ``"sum_weight"``.

    rho : float
        Step size in (0, 1]; ignored at the first step.

    Returns
    -------
    running : dict of ndarray
        ``(1 - rho) running + rho batch / batch["sum_weight"]``; every key of
        ``batch`` is divided by its total weight, so ``"sum_weight"`` becomes
        1 and ``"log_likelihood"`` the mean log-likelihood. A statistic that
        only one side holds is zero on the other (the missing-value counts
        of :class:`BernoulliMixtureEM`, which complete batches leave out).
    """
    scale = 1.0 / float(batch["sum_weight"])
    if running is None:
        return {key: np.asarray(value) * scale for key, value in batch.items()}
    blended = {key: (1.0 - rho) * value for key, value in running.items()}
    for key, value in batch.items():
        step = (rho * scale) * np.asarray(value)
        blended[key] = blended[key] + step if key in blended else step
    return blended
