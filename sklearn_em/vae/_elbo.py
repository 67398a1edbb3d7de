"""Evidence lower bounds of the VAE, their gradients, and the importance-weighted
bound.

Notation: the encoder maps ``x`` to the mean ``mu`` and log-variance
``log_var`` of ``q(z|x) = N(mu, diag exp(log_var))``; latent draws are
reparameterised as ``z = mu + exp(log_var / 2) * eps`` with
``eps ~ N(0, I)``; the prior is ``p(z) = N(0, I)``. With ``L`` draws per
sample, the three ELBO estimators of a sample are

- ``"analytic_kl"``: ``1/L sum_l ln p(x|z_l) - beta KL(q(z|x) || p(z))``;
- ``"entropy"``: ``1/L sum_l [ln p(x|z_l) + beta ln p(z_l)] + beta H(q(z|x))``;
- ``"monte_carlo"``: ``1/L sum_l [ln p(x|z_l) + beta (ln p(z_l) - ln q(z_l|x))]``.

All three have the same expectation. Each replaces a closed-form term of the
previous one by a Monte Carlo estimate, so when ln p(x|z) barely depends on z
their variances increase in that order. As ``ln p(x|z) + ln p(z) - ln q(z|x)
= ln p(x) + ln p(z|x) - ln q(z|x)``, the Monte Carlo form has no variance when
q(z|x) is the true posterior, and is often the least noisy on a fitted model.

Parameters travel as a tuple ``(encoder_coefs, encoder_intercepts,
decoder_coefs, decoder_intercepts, decoder_log_var)``; ``decoder_log_var``
is ``None`` for the Bernoulli likelihood.
"""

import numpy as np
from scipy.special import logsumexp

from ._likelihoods import (
    LOG_2PI,
    LOG_VAR_MAX,
    LOG_VAR_MIN,
    _bernoulli_grad,
    _bernoulli_log_likelihood,
    _gaussian_log_likelihood,
)
from ._network import _allocate_activations, _backward_pass, _forward_pass


def _standard_normal_log_pdf(z):
    """Log-density of the standard normal prior.

    Parameters
    ----------
    z : ndarray of shape (..., n_components)

    Returns
    -------
    log_pdf : ndarray of shape (...)
    """
    return -0.5 * (np.square(z).sum(axis=-1) + z.shape[-1] * LOG_2PI)


def _reparameterised_log_q(eps, log_var):
    """Log-density ln q(z|x) of the draws ``z = mu + exp(log_var / 2) * eps``.

    Since ``(z - mu) / sigma = eps``, ``ln q(z|x) = -1/2 sum(eps^2 + log_var
    + ln 2 pi)``, which does not depend on ``mu``.

    Parameters
    ----------
    eps : ndarray of shape (n_draws, n_samples, n_components)
        Standard normal noise (``n_samples`` may be 1, broadcast).

    log_var : ndarray of shape (n_samples, n_components)

    Returns
    -------
    log_q : ndarray of shape (n_draws, n_samples)
    """
    n_components = log_var.shape[-1]
    return -0.5 * (
        np.square(eps).sum(axis=-1) + log_var.sum(axis=-1) + n_components * LOG_2PI
    )


def _gaussian_kl(mu, log_var):
    """KL(N(mu, diag exp(log_var)) || N(0, I)), in closed form.

    Parameters
    ----------
    mu, log_var : ndarray of shape (n_samples, n_components)

    Returns
    -------
    kl : ndarray of shape (n_samples,)
    """
    return 0.5 * (np.square(mu) + np.exp(log_var) - log_var - 1).sum(axis=-1)


def _gaussian_entropy(log_var):
    """Entropy of N(mu, diag exp(log_var)).

    Parameters
    ----------
    log_var : ndarray of shape (n_samples, n_components)

    Returns
    -------
    entropy : ndarray of shape (n_samples,)
    """
    return 0.5 * (log_var + 1 + LOG_2PI).sum(axis=-1)


def _latent_term(z, eps, mu, log_var, elbo, beta):
    """Latent part of the ELBO estimate: the ELBO minus the mean ln p(x|z_l).

    Parameters
    ----------
    z, eps : ndarray of shape (n_draws, n_samples, n_components)
        Latent draws and their standard normal noise (``eps`` may have one
        row, broadcast over the samples).

    mu, log_var : ndarray of shape (n_samples, n_components)
        Parameters of q(z|x).

    elbo : {"analytic_kl", "entropy", "monte_carlo"}
        The estimator.

    beta : float
        Weight of the latent part.

    Returns
    -------
    term : ndarray of shape (n_samples,)
    """
    if elbo == "analytic_kl":
        term = -_gaussian_kl(mu, log_var)
    elif elbo == "entropy":
        term = _standard_normal_log_pdf(z).mean(axis=0) + _gaussian_entropy(log_var)
    else:  # "monte_carlo"
        term = (
            _standard_normal_log_pdf(z) - _reparameterised_log_q(eps, log_var)
        ).mean(axis=0)
    return beta * term


def _encode(X, params, activation, activations):
    """Encoder pass: the parameters of q(z|x).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    params : tuple
        The network parameters (see the module docstring).

    activation : str
        Activation of the hidden layers.

    activations : list of ndarray
        Buffers of the encoder layers, the last of shape
        ``(n_samples, 2 * n_components)``.

    Returns
    -------
    mu : ndarray of shape (n_samples, n_components)
        View into the last buffer.

    log_var : ndarray of shape (n_samples, n_components)
        Log-variances clipped to ``[LOG_VAR_MIN, LOG_VAR_MAX]``, in place.

    clipped : ndarray of shape (n_samples, n_components), dtype=bool
        Where the log-variance was clipped (its gradient is zero there).
    """
    output = _forward_pass(X, params[0], params[1], activation, activations)
    n_components = output.shape[1] // 2
    mu = output[:, :n_components]
    log_var = output[:, n_components:]
    clipped = (log_var < LOG_VAR_MIN) | (log_var > LOG_VAR_MAX)
    np.clip(log_var, LOG_VAR_MIN, LOG_VAR_MAX, out=log_var)
    return mu, log_var, clipped


def _reparameterise(mu, log_var, eps, out):
    """Latent draws ``z = mu + exp(log_var / 2) * eps``.

    Parameters
    ----------
    mu, log_var : ndarray of shape (n_samples, n_components)

    eps : ndarray of shape (n_draws, n_samples, n_components)
        Standard normal noise (``n_samples`` may be 1, broadcast).

    out : ndarray of shape (n_draws * n_samples, n_components)
        Filled with the draws, ``n_draws`` blocks of ``n_samples`` rows.

    Returns
    -------
    sigma : ndarray of shape (n_samples, n_components)
        The standard deviations ``exp(log_var / 2)``.
    """
    sigma = np.exp(0.5 * log_var)
    z = out.reshape(-1, *mu.shape)
    np.multiply(eps, sigma, out=z)
    z += mu
    return sigma


def _decoder_log_likelihood(X, z, params, activation, likelihood, activations):
    """Decoder pass and ln p(x|z) of every draw, without gradients.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    z : ndarray of shape (n_draws * n_samples, n_components)

    params : tuple
        The network parameters (see the module docstring).

    activation : str
        Activation of the hidden layers.

    likelihood : {"bernoulli", "gaussian"}

    activations : list of ndarray
        Buffers of the decoder layers with ``n_draws * n_samples`` rows.

    Returns
    -------
    log_likelihood : ndarray of shape (n_draws, n_samples)
    """
    output = _forward_pass(z, params[2], params[3], activation, activations)
    if likelihood == "bernoulli":
        return _bernoulli_log_likelihood(X, output)
    log_var = np.clip(params[4], LOG_VAR_MIN, LOG_VAR_MAX)
    return _gaussian_log_likelihood(X, output, log_var)


def _forward_draws(X, eps, params, activation, likelihood):
    """Encode ``X``, draw ``z`` with the noise ``eps`` and evaluate ln p(x|z).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    eps : ndarray of shape (n_draws, n_samples, n_components)
        Standard normal noise (``n_samples`` may be 1, broadcast).

    params : tuple
        The network parameters (see the module docstring).

    activation : str
        Activation of the hidden layers.

    likelihood : {"bernoulli", "gaussian"}

    Returns
    -------
    log_likelihood : ndarray of shape (n_draws, n_samples)

    z : ndarray of shape (n_draws, n_samples, n_components)

    mu, log_var : ndarray of shape (n_samples, n_components)
    """
    n_samples = X.shape[0]
    n_draws = eps.shape[0]
    dtype = params[0][0].dtype
    encoder_units = [X.shape[1]] + [c.shape[1] for c in params[0]]
    decoder_units = [params[2][0].shape[0]] + [c.shape[1] for c in params[2]]
    mu, log_var, _ = _encode(
        X, params, activation, _allocate_activations(n_samples, encoder_units, dtype)
    )
    z = np.empty((n_draws * n_samples, mu.shape[1]), dtype=dtype)
    _reparameterise(mu, log_var, eps, out=z)
    log_likelihood = _decoder_log_likelihood(
        X,
        z,
        params,
        activation,
        likelihood,
        _allocate_activations(n_draws * n_samples, decoder_units, dtype),
    )
    return log_likelihood, z.reshape(n_draws, n_samples, -1), mu, log_var


def _elbo(X, eps, params, *, activation, likelihood, elbo, beta=1.0):
    """Per-sample ELBO estimate, averaged over the draws of ``eps``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    eps : ndarray of shape (n_draws, n_samples, n_components)
        Standard normal noise (``n_samples`` may be 1, broadcast).

    params : tuple
        The network parameters (see the module docstring).

    activation : str
        Activation of the hidden layers.

    likelihood : {"bernoulli", "gaussian"}

    elbo : {"analytic_kl", "entropy", "monte_carlo"}

    beta : float, default=1.0
        Weight of the latent part (1 for the true ELBO).

    Returns
    -------
    elbo : ndarray of shape (n_samples,)
        In nats, float64.
    """
    log_likelihood, z, mu, log_var = _forward_draws(
        X, eps, params, activation, likelihood
    )
    values = log_likelihood.mean(axis=0, dtype=np.float64)
    values += _latent_term(z, eps, mu, log_var, elbo, beta)
    return values


def _log_prior_ratio(z, eps, log_var):
    """``ln p(z) - ln q(z|x)`` of reparameterised draws.

    With ``z = mu + exp(log_var / 2) * eps`` the ``ln 2 pi`` terms cancel:
    ``1/2 sum(eps^2 + log_var - z^2)``.

    Parameters
    ----------
    z, eps : ndarray of shape (n_draws, n_samples, n_components)
        Latent draws and their standard normal noise (``eps`` may have one
        row, broadcast over the samples).

    log_var : ndarray of shape (n_samples, n_components)

    Returns
    -------
    log_ratio : ndarray of shape (n_draws, n_samples), float64
    """
    log_ratio = np.square(z, dtype=np.float64).sum(axis=-1)
    log_ratio -= np.square(eps, dtype=np.float64).sum(axis=-1)
    log_ratio -= log_var.sum(axis=-1, dtype=np.float64)
    log_ratio *= -0.5
    return log_ratio


def _importance_weighted_bound(X, eps, params, *, activation, likelihood, beta=1.0):
    """Importance-weighted bound on ln p(x) (Burda et al., 2016).

    ``ln 1/K sum_k p(x, z_k) / q(z_k|x)`` with ``K = eps.shape[0]`` draws from
    q(z|x); it is a lower bound on ln p(x), tighter than the ELBO, and
    converges to ln p(x) as ``K`` grows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    eps : ndarray of shape (n_draws, n_samples, n_components)
        Standard normal noise (``n_samples`` may be 1, broadcast).

    params : tuple
        The network parameters (see the module docstring).

    activation : str
        Activation of the hidden layers.

    likelihood : {"bernoulli", "gaussian"}

    beta : float, default=1.0
        Weight of ``ln p(z) - ln q(z|x)`` in the log-weights (1 for the
        bound on ln p(x)).

    Returns
    -------
    bound : ndarray of shape (n_samples,)
        In nats, float64.
    """
    log_likelihood, z, mu, log_var = _forward_draws(
        X, eps, params, activation, likelihood
    )
    return _log_mean_exp(_log_weights(log_likelihood, z, eps, log_var, beta))


def _log_weights(log_likelihood, z, eps, log_var, beta):
    """Log importance weights ``ln p(x|z) + beta (ln p(z) - ln q(z|x))``.

    Parameters
    ----------
    log_likelihood : ndarray of shape (n_draws, n_samples)

    z, eps : ndarray of shape (n_draws, n_samples, n_components)

    log_var : ndarray of shape (n_samples, n_components)

    beta : float

    Returns
    -------
    log_weights : ndarray of shape (n_draws, n_samples), float64
    """
    log_weights = _log_prior_ratio(z, eps, log_var)
    log_weights *= beta
    log_weights += log_likelihood
    return log_weights


def _log_mean_exp(log_weights):
    """``ln 1/K sum_k exp(log_weights[k])``, stably.

    Parameters
    ----------
    log_weights : ndarray of shape (n_draws, n_samples)

    Returns
    -------
    out : ndarray of shape (n_samples,)
    """
    return logsumexp(log_weights, axis=0) - np.log(log_weights.shape[0])


def _elbo_loss_and_grad(
    X,
    eps,
    params,
    grads,
    buffers,
    *,
    activation,
    likelihood,
    elbo,
    beta,
    objective="elbo",
):
    """Mean negative ELBO (or importance-weighted bound) of a minibatch and its
    gradient, by backpropagation.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The minibatch.

    eps : ndarray of shape (n_draws, n_samples, n_components)
        Standard normal noise of the reparameterisation.

    params : tuple
        The network parameters (see the module docstring).

    grads : tuple
        Arrays of the same structure and shapes as ``params``, filled in
        place with the gradient of the loss.

    buffers : dict
        Work arrays with at least ``n_samples`` rows, see
        :func:`_allocate_buffers`.

    activation : str
        Activation of the hidden layers.

    likelihood : {"bernoulli", "gaussian"}

    elbo : {"analytic_kl", "entropy", "monte_carlo"}
        The ELBO estimator, for ``objective="elbo"``.

    beta : float
        Weight of the latent part of the ELBO, or of ``ln p(z) - ln q(z|x)``
        in the log-weights of the importance-weighted bound.

    objective : {"elbo", "iwae"}, default="elbo"
        "elbo": the ELBO averaged over the ``n_draws`` draws; "iwae": the
        importance-weighted bound with ``K = n_draws`` (Burda et al., 2016),
        whose gradient is that of the Monte Carlo ELBO with every draw
        weighted by its normalised importance weight.

    Returns
    -------
    loss : float
        ``-1/n_samples sum_i bound_i`` with the latent part weighted by
        ``beta``, in nats.
    """
    n_samples = X.shape[0]
    n_draws = eps.shape[0]
    n_rows = n_draws * n_samples
    encoder_acts = [a[:n_samples] for a in buffers["encoder_activations"]]
    encoder_deltas = [d[:n_samples] for d in buffers["encoder_deltas"]]
    decoder_acts = [a[:n_rows] for a in buffers["decoder_activations"]]
    decoder_deltas = [d[:n_rows] for d in buffers["decoder_deltas"]]
    z = buffers["z"][:n_rows]
    z_grad = buffers["z_grad"][:n_rows]
    z_draws = z.reshape(n_draws, n_samples, -1)

    # Forward: q(z|x), z = mu + sigma * eps, ln p(x|z).
    mu, log_var, clipped = _encode(X, params, activation, encoder_acts)
    sigma = _reparameterise(mu, log_var, eps, out=z)
    output = _forward_pass(z, params[2], params[3], activation, decoder_acts)
    if likelihood == "gaussian":
        log_var_x = np.clip(params[4], LOG_VAR_MIN, LOG_VAR_MAX)
    if objective == "iwae":
        # The weight of every draw in the gradient is its normalised
        # importance weight: the loss and the weights come before the
        # gradient of the likelihood.
        if likelihood == "bernoulli":
            log_likelihood = _bernoulli_log_likelihood(X, output)
        else:
            log_likelihood = _gaussian_log_likelihood(X, output, log_var_x)
        log_weights = _log_weights(log_likelihood, z_draws, eps, log_var, beta)
        loss = -float(np.mean(_log_mean_exp(log_weights)))
        log_weights -= logsumexp(log_weights, axis=0)
        scale = np.exp(log_weights, out=log_weights)
        scale /= n_samples
        scale = scale.astype(X.dtype, copy=False)
        if likelihood == "bernoulli":
            _bernoulli_grad(X, output, decoder_deltas[-1], scale=scale)
        else:
            _gaussian_log_likelihood(
                X,
                output,
                log_var_x,
                grad=decoder_deltas[-1],
                log_var_grad=grads[4],
                scale=scale,
            )
    else:
        scale = 1.0 / n_rows
        if likelihood == "bernoulli":
            log_likelihood = _bernoulli_log_likelihood(
                X, output, grad=decoder_deltas[-1], scale=scale
            )
        else:
            log_likelihood = _gaussian_log_likelihood(
                X,
                output,
                log_var_x,
                grad=decoder_deltas[-1],
                log_var_grad=grads[4],
                scale=scale,
            )
        loss = -(
            log_likelihood.sum(dtype=np.float64) / n_rows
            + _latent_term(z_draws, eps, mu, log_var, elbo, beta).sum(dtype=np.float64)
            / n_samples
        )
    if likelihood == "gaussian":
        grads[4][(params[4] < LOG_VAR_MIN) | (params[4] > LOG_VAR_MAX)] = 0

    # Backward through the decoder, down to z.
    _backward_pass(
        z,
        params[2],
        activation,
        decoder_acts,
        decoder_deltas,
        grads[2],
        grads[3],
        input_grad=z_grad,
    )
    z_grad_draws = z_grad.reshape(n_draws, n_samples, -1)
    if (objective == "iwae" or elbo != "analytic_kl") and beta != 0:
        # -ln p(z) contributes z to the gradient with respect to z (the
        # reparameterised ln q(z|x) does not depend on z, see
        # _reparameterised_log_q).
        if np.ndim(scale):
            z_grad_draws += (beta * scale)[:, :, np.newaxis] * z_draws
        else:
            z_grad_draws += (beta * scale) * z_draws

    # Through the reparameterisation: dz/dmu = 1, dz/dlog_var = sigma * eps / 2.
    encoder_output_grad = encoder_deltas[-1]
    n_components = mu.shape[1]
    mu_grad = encoder_output_grad[:, :n_components]
    log_var_grad = encoder_output_grad[:, n_components:]
    np.sum(z_grad_draws, axis=0, out=mu_grad)
    z_grad_draws *= eps
    np.sum(z_grad_draws, axis=0, out=log_var_grad)
    log_var_grad *= 0.5 * sigma
    if beta != 0:
        per_sample = beta / n_samples
        if objective == "elbo" and elbo == "analytic_kl":
            # KL = 1/2 sum(mu^2 + exp(log_var) - log_var - 1)
            mu_grad += per_sample * mu
            log_var_grad += (0.5 * per_sample) * (np.square(sigma) - 1)
        else:
            # -H(q) and the reparameterised ln q(z|x) both give -1/2 per
            # log_var (for the importance-weighted bound, the normalised
            # weights of a sample's draws sum to 1).
            log_var_grad -= 0.5 * per_sample
    log_var_grad[clipped] = 0

    _backward_pass(
        X,
        params[0],
        activation,
        encoder_acts,
        encoder_deltas,
        grads[0],
        grads[1],
    )
    return loss


def _allocate_buffers(n_samples, n_draws, encoder_units, decoder_units, dtype):
    """Work arrays of :func:`_elbo_loss_and_grad` for minibatches of up to
    ``n_samples`` samples.

    Parameters
    ----------
    n_samples : int
        Largest minibatch size.

    n_draws : int
        Number of latent draws per sample.

    encoder_units, decoder_units : list of int
        Units of every layer of the encoder and of the decoder.

    dtype : numpy dtype

    Returns
    -------
    buffers : dict of ndarray or list of ndarray
    """
    n_rows = n_samples * n_draws
    n_components = decoder_units[0]
    return {
        "encoder_activations": _allocate_activations(n_samples, encoder_units, dtype),
        "encoder_deltas": _allocate_activations(n_samples, encoder_units, dtype),
        "decoder_activations": _allocate_activations(n_rows, decoder_units, dtype),
        "decoder_deltas": _allocate_activations(n_rows, decoder_units, dtype),
        "z": np.empty((n_rows, n_components), dtype=dtype),
        "z_grad": np.empty((n_rows, n_components), dtype=dtype),
    }
