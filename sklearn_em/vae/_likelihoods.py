"""Decoder log-likelihoods ln p(x|z) and their gradients, numerically stable.

The decoder outputs, for every row, either Bernoulli logits or Gaussian means.
Decoder outputs may hold ``n_draws`` latent draws per sample, stacked as
``n_draws`` blocks of ``n_samples`` rows; ``X`` is then broadcast over the
draws without being copied.
"""

import numpy as np

LOG_2PI = np.log(2 * np.pi)

# Bounds of the learned log-variances, so that their exponentials neither
# overflow nor underflow (also in float32).
LOG_VAR_MIN = -20.0
LOG_VAR_MAX = 20.0


def _softplus(x):
    """Stable softplus ``ln(1 + exp(x))``.

    Parameters
    ----------
    x : ndarray of any shape

    Returns
    -------
    out : ndarray of the same shape as ``x``
    """
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _log_sigmoid(x):
    """Stable ``ln sigmoid(x) = -softplus(-x)``.

    Parameters
    ----------
    x : ndarray of any shape

    Returns
    -------
    out : ndarray of the same shape as ``x``
    """
    return -_softplus(-x)


def _as_draws(A, n_samples):
    """View an ``(n_draws * n_samples, n_features)`` array as 3-D.

    Parameters
    ----------
    A : ndarray of shape (n_draws * n_samples, n_features)

    n_samples : int

    Returns
    -------
    view : ndarray of shape (n_draws, n_samples, n_features)
    """
    return A.reshape(-1, n_samples, A.shape[-1])


def _row_scale(scale, n_samples):
    """A gradient factor as an array broadcastable to the decoder outputs.

    Parameters
    ----------
    scale : float or ndarray of shape (n_draws, n_samples)

    n_samples : int

    Returns
    -------
    scale : float or ndarray of shape (n_draws, n_samples, 1)
    """
    if np.ndim(scale) == 0:
        return scale
    return np.reshape(scale, (-1, n_samples, 1))


def _bernoulli_log_likelihood(X, logits, grad=None, scale=1.0):
    """Bernoulli log-likelihood of ``X`` given the decoder logits.

    ``ln p(x|z) = sum_j x_j a_j - softplus(a_j)`` computed without overflow,
    valid for ``x`` anywhere in [0, 1] (the continuous Bernoulli's
    unnormalised form, i.e. the binary cross-entropy).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data in [0, 1].

    logits : ndarray of shape (n_draws * n_samples, n_features)
        Decoder outputs, ``n_draws`` blocks of ``n_samples`` rows.

    grad : ndarray of shape (n_draws * n_samples, n_features), default=None
        If given, filled by :func:`_bernoulli_grad`. It may be ``logits``
        itself, which is then overwritten after use.

    scale : float or ndarray of shape (n_draws, n_samples), default=1.0
        Factor of the gradient, per row if an array.

    Returns
    -------
    log_likelihood : ndarray of shape (n_draws, n_samples)
        ``ln p(x|z)`` for every draw and sample, in nats.
    """
    n_samples = X.shape[0]
    a = _as_draws(logits, n_samples)
    # softplus(a) = max(a, 0) + ln(1 + exp(-|a|)), with exp(-|a|) in (0, 1]. The
    # logarithm of 1 + exp(-|a|) is computed as such rather than with log1p,
    # which is several times slower: the absolute error is below the dtype's
    # resolution.
    e = np.abs(a)
    np.negative(e, out=e)
    np.exp(e, out=e)
    e += 1  # 1 + exp(-|a|)
    ll = np.multiply(a, X)
    ll -= np.maximum(a, 0)
    if grad is not None:
        # sigmoid(a) = (1 + tanh(a / 2)) / 2, four passes without a branch on
        # the sign of a (a masked subtraction costs several passes), with an
        # absolute error of the order of the dtype's resolution. ``grad`` may be
        # ``logits``: nothing reads ``a`` after this.
        g = _as_draws(grad, n_samples)
        np.multiply(a, 0.5, out=g)
        np.tanh(g, out=g)
        g *= 0.5
        g += 0.5
        g -= X
        scale = _row_scale(scale, n_samples)
        if np.ndim(scale) or scale != 1.0:
            g *= scale
    np.log(e, out=e)
    ll -= e
    return ll.sum(axis=-1)


def _bernoulli_grad(X, logits, grad, scale=1.0, work=None):
    """Gradient of the negative Bernoulli log-likelihood in the logits.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data in [0, 1].

    logits : ndarray of shape (n_draws * n_samples, n_features)
        Decoder outputs, ``n_draws`` blocks of ``n_samples`` rows.

    grad : ndarray of shape (n_draws * n_samples, n_features)
        Filled with ``scale * d(-ln p(x|z)) / d logits``
        ``= scale * (sigmoid(logits) - X)``. It may be ``logits`` itself.

    scale : float or ndarray of shape (n_draws, n_samples), default=1.0
        Factor of the gradient, per row if an array.

    work : ndarray of shape (n_draws, n_samples, n_features), default=None
        Scratch space.
    """
    n_samples = X.shape[0]
    a = _as_draws(logits, n_samples)
    e = np.empty_like(a) if work is None else work
    g = _as_draws(grad, n_samples)
    # sigmoid(a) = 1 / (1 + exp(-a)); exp(-a) overflows to inf for very
    # negative a, which gives the correct limit 0.
    np.negative(a, out=e)
    with np.errstate(over="ignore"):
        np.exp(e, out=e)
    e += 1
    np.divide(1, e, out=g)
    g -= X
    scale = _row_scale(scale, n_samples)
    if np.ndim(scale) or scale != 1.0:
        g *= scale


def _gaussian_log_likelihood(X, mean, log_var, grad=None, log_var_grad=None, scale=1.0):
    """Gaussian log-likelihood of ``X`` with a per-feature learned variance.

    ``ln p(x|z) = -1/2 sum_j [(x_j - m_j)^2 / s_j^2 + ln s_j^2 + ln 2 pi]``
    with ``m = mean`` from the decoder and ``ln s^2 = log_var`` shared by all
    samples.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    mean : ndarray of shape (n_draws * n_samples, n_features)
        Decoder outputs, ``n_draws`` blocks of ``n_samples`` rows.

    log_var : ndarray of shape (n_features,)
        Log-variance of every feature, already within bounds.

    grad : ndarray of shape (n_draws * n_samples, n_features), default=None
        If given, filled with ``scale * d(-ln p(x|z)) / d mean``. It may be
        ``mean`` itself, which is then overwritten.

    log_var_grad : ndarray of shape (n_features,), default=None
        If given, filled with ``sum scale * d(-ln p(x|z)) / d log_var``,
        summed over draws and samples.

    scale : float or ndarray of shape (n_draws, n_samples), default=1.0
        Factor of the gradients, per row if an array.

    Returns
    -------
    log_likelihood : ndarray of shape (n_draws, n_samples)
        ``ln p(x|z)`` for every draw and sample, in nats.
    """
    n_samples, n_features = X.shape
    precision = np.exp(-log_var)
    residual = np.subtract(_as_draws(mean, n_samples), X)
    squared = np.square(residual)
    squared *= precision
    log_likelihood = squared.sum(axis=-1)
    log_likelihood += log_var.sum() + n_features * LOG_2PI
    log_likelihood *= -0.5
    row_scale = _row_scale(scale, n_samples)
    if log_var_grad is not None:
        # d(-ln p)/d log_var = (1 - r^2 / s^2) / 2, summed over the rows.
        if np.ndim(row_scale):
            squared -= 1
            squared *= row_scale
            np.sum(squared, axis=(0, 1), out=log_var_grad)
            log_var_grad *= -0.5
        else:
            n_rows = squared.shape[0] * squared.shape[1]
            np.sum(squared, axis=(0, 1), out=log_var_grad)
            log_var_grad -= n_rows
            log_var_grad *= -0.5 * row_scale
    if grad is not None:
        residual *= precision
        if np.ndim(row_scale) or row_scale != 1.0:
            residual *= row_scale
        _as_draws(grad, n_samples)[...] = residual
    return log_likelihood


def _decoder_mean(output, likelihood):
    """Mean of p(x|z) from the decoder output.

    Parameters
    ----------
    output : ndarray of shape (n_rows, n_features)
        Decoder outputs (logits or means).

    likelihood : {"bernoulli", "gaussian"}

    Returns
    -------
    mean : ndarray of shape (n_rows, n_features)
        Probabilities for "bernoulli", the output itself for "gaussian".
    """
    if likelihood == "bernoulli":
        e = np.exp(-np.abs(output))
        return np.where(output >= 0, 1, e) / (1 + e)
    return output
