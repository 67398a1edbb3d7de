"""Tests of the VAE's networks and of the gradients of its ELBO."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sklearn_em.vae._elbo import (
    _allocate_buffers,
    _elbo_loss_and_grad,
    _importance_weighted_bound,
)
from sklearn_em.vae._network import (
    ACTIVATIONS,
    DERIVATIVES,
    _allocate_activations,
    _backward_pass,
    _forward_pass,
    _glorot_uniform,
)


def _random_network(units, activation, rng):
    coefs, intercepts = [], []
    for n_in, n_out in zip(units, units[1:]):
        coef, intercept = _glorot_uniform(n_in, n_out, activation, rng, np.float64)
        coefs.append(coef)
        intercepts.append(intercept)
    return coefs, intercepts


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activation_derivatives(activation):
    """The in-place derivatives match central finite differences."""
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, size=(5, 4))
    X = X[np.abs(X) > 1e-3].reshape(-1, 2)  # away from the ReLU's kink
    h = 1e-6
    Z = X.copy()
    ACTIVATIONS[activation](Z)
    upper, lower = X + h, X - h
    ACTIVATIONS[activation](upper)
    ACTIVATIONS[activation](lower)
    delta = np.ones_like(X)
    DERIVATIVES[activation](Z, delta)
    assert_allclose(delta, (upper - lower) / (2 * h), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu"])
def test_backward_pass_matches_finite_differences(activation):
    """Gradients of sum(output * W) with respect to the weights and input."""
    rng = np.random.RandomState(0)
    units = [3, 5, 4, 2]
    X = rng.normal(size=(6, units[0]))
    weights = rng.normal(size=(6, units[-1]))
    coefs, intercepts = _random_network(units, activation, rng)

    def loss(X):
        acts = _allocate_activations(X.shape[0], units, np.float64)
        return np.sum(_forward_pass(X, coefs, intercepts, activation, acts) * weights)

    acts = _allocate_activations(X.shape[0], units, np.float64)
    deltas = _allocate_activations(X.shape[0], units, np.float64)
    _forward_pass(X, coefs, intercepts, activation, acts)
    deltas[-1][...] = weights
    coef_grads = [np.empty_like(c) for c in coefs]
    intercept_grads = [np.empty_like(b) for b in intercepts]
    input_grad = np.empty_like(X)
    _backward_pass(
        X, coefs, activation, acts, deltas, coef_grads, intercept_grads, input_grad
    )
    h = 1e-6
    for param, grad in zip(
        coefs + intercepts + [X], coef_grads + intercept_grads + [input_grad]
    ):
        numerical = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + h
            upper = loss(X)
            param[idx] = saved - h
            lower = loss(X)
            param[idx] = saved
            numerical[idx] = (upper - lower) / (2 * h)
        assert_allclose(grad, numerical, rtol=1e-5, atol=1e-7)


def _vae_params(n_features, hidden, n_components, likelihood, activation, rng):
    encoder = _random_network([n_features, *hidden, 2 * n_components], activation, rng)
    decoder = _random_network(
        [n_components, *hidden[::-1], n_features], activation, rng
    )
    log_var = rng.uniform(-1, 1, n_features) if likelihood == "gaussian" else None
    return (*encoder, *decoder, log_var)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize(
    "objective, elbo",
    [
        ("elbo", "analytic_kl"),
        ("elbo", "entropy"),
        ("elbo", "monte_carlo"),
        ("iwae", "analytic_kl"),
    ],
)
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_elbo_gradient(likelihood, objective, elbo, beta):
    """Analytic gradients of the ELBO estimators and of the importance-weighted
    bound (fixed eps) against central finite differences, for every parameter
    array, in float64."""
    rng = np.random.RandomState(42)
    n_samples, n_features, hidden, n_components = 7, 5, [6, 4], 3
    n_draws = 3 if objective == "iwae" else 2
    activation = "tanh"
    X = rng.uniform(size=(n_samples, n_features))
    if likelihood == "bernoulli":
        X[:, :2] = X[:, :2] > 0.5
    params = _vae_params(n_features, hidden, n_components, likelihood, activation, rng)
    eps = rng.normal(size=(n_draws, n_samples, n_components))
    encoder_units = [n_features, *hidden, 2 * n_components]
    decoder_units = [n_components, *hidden[::-1], n_features]
    config = dict(
        activation=activation,
        likelihood=likelihood,
        elbo=elbo,
        beta=beta,
        objective=objective,
    )

    def loss_and_grad():
        grads = tuple(
            None
            if p is None
            else [np.empty_like(a) for a in p]
            if isinstance(p, list)
            else np.empty_like(p)
            for p in params
        )
        buffers = _allocate_buffers(
            n_samples, n_draws, encoder_units, decoder_units, np.float64
        )
        loss = _elbo_loss_and_grad(X, eps, params, grads, buffers, **config)
        return loss, grads

    loss, grads = loss_and_grad()
    if objective == "iwae":
        # The loss is the negative importance-weighted bound.
        expected = -_importance_weighted_bound(
            X, eps, params, activation=activation, likelihood=likelihood, beta=beta
        ).mean()
        assert_allclose(loss, expected, rtol=1e-12)
    arrays = [a for group in params[:4] for a in group]
    grad_arrays = [g for group in grads[:4] for g in group]
    if likelihood == "gaussian":
        arrays.append(params[4])
        grad_arrays.append(grads[4])
    h = 1e-6
    for param, grad in zip(arrays, grad_arrays):
        numerical = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + h
            upper = loss_and_grad()[0]
            param[idx] = saved - h
            lower = loss_and_grad()[0]
            param[idx] = saved
            numerical[idx] = (upper - lower) / (2 * h)
        assert_allclose(grad, numerical, rtol=1e-5, atol=1e-8)
