"""Tests of the ELBO estimators, the reparameterisation trick and the
importance-weighted bound."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import VAETransformer
from sklearn_em.vae._elbo import (
    _elbo,
    _gaussian_entropy,
    _gaussian_kl,
    _importance_weighted_bound,
    _reparameterise,
    _reparameterised_log_q,
    _standard_normal_log_pdf,
)
from sklearn_em.vae._likelihoods import (
    _bernoulli_grad,
    _bernoulli_log_likelihood,
    _gaussian_log_likelihood,
    _log_sigmoid,
    _softplus,
)

ESTIMATORS = ["analytic_kl", "entropy", "monte_carlo"]


@pytest.fixture(scope="module")
def fitted_vae():
    X, _ = load_digits(return_X_y=True)
    X = X[:400] / 16
    vae = VAETransformer(
        n_components=4,
        hidden_layer_sizes=(32,),
        likelihood="bernoulli",
        max_iter=60,
        random_state=0,
    )
    with warnings.catch_warnings():
        # A fixed budget of epochs, not a converged fit.
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(X)
    return vae, X[:40]


def _elbo_draws(vae, X, elbo, n_draws, seed):
    """Single-draw ELBO estimates, shape (n_draws, n_samples)."""
    rng = np.random.RandomState(seed)
    eps = rng.standard_normal((n_draws, 1, X.shape[0], vae.n_components))
    return np.array(
        [
            _elbo(
                X,
                e,
                vae._params(),
                activation="relu",
                likelihood="bernoulli",
                elbo=elbo,
            )
            for e in eps
        ]
    )


def test_estimators_agree_on_a_fitted_model(fitted_vae):
    """The three estimators have the same mean. On a fitted model q(z|x) is
    close to the posterior, where the Monte Carlo form has the least variance:
    its ln p(z) - ln q(z|x) cancels the fluctuations of ln p(x|z)."""
    vae, X = fitted_vae
    draws = {elbo: _elbo_draws(vae, X, elbo, 1000, seed=0) for elbo in ESTIMATORS}
    for elbo in ESTIMATORS[1:]:
        # Same draws for all: the difference is that of the latent terms.
        difference = draws[elbo] - draws["analytic_kl"]
        stderr = difference.std(axis=0) / np.sqrt(difference.shape[0])
        assert np.all(np.abs(difference.mean(axis=0)) < 5 * stderr)
    variances = {elbo: d.var(axis=0).mean() for elbo, d in draws.items()}
    assert variances["monte_carlo"] < variances["analytic_kl"]
    assert variances["monte_carlo"] < variances["entropy"]


def _uninformative_decoder_params(rng, n_features, n_components, mu, sigma):
    """q(z|x) = N(mu, sigma^2 I) for every x, and a decoder ignoring z."""
    return (
        [np.zeros((n_features, 2 * n_components))],
        [np.r_[np.full(n_components, mu), np.full(n_components, 2 * np.log(sigma))]],
        [np.zeros((n_components, n_features))],
        [rng.normal(size=n_features)],
        None,
    )


def test_variances_are_ordered_when_the_likelihood_is_uninformative():
    """If ln p(x|z) does not depend on z and q(z|x) is narrower than the
    prior, each estimator adds noise to the previous one: the analytic KL
    form is exact, the entropy form estimates ln p(z), and the Monte Carlo
    form estimates both ln p(z) and ln q(z|x)."""
    rng = np.random.RandomState(0)
    n_features, n_components = 3, 2
    params = _uninformative_decoder_params(
        rng, n_features, n_components, mu=1.0, sigma=0.3
    )
    X = rng.uniform(size=(5, n_features))
    eps = rng.standard_normal((500, 1, 5, n_components))
    config = dict(activation="relu", likelihood="bernoulli")
    variances = {
        elbo: np.array([_elbo(X, e, params, elbo=elbo, **config) for e in eps])
        .var(axis=0)
        .mean()
        for elbo in ESTIMATORS
    }
    assert variances["analytic_kl"] < 1e-20
    assert 0.05 < variances["entropy"] < variances["monte_carlo"]


def test_monte_carlo_estimator_has_zero_variance_at_the_prior():
    """With q(z|x) = p(z) and a decoder ignoring z, ln p(x, z) - ln q(z|x) is
    constant: only the Monte Carlo form has no variance left, while the
    analytic KL (also exact here) and the entropy form differ."""
    rng = np.random.RandomState(0)
    n_features, n_components = 3, 2
    params = _uninformative_decoder_params(
        rng, n_features, n_components, mu=0.0, sigma=1.0
    )
    X = rng.uniform(size=(5, n_features))
    eps = rng.standard_normal((200, 5, n_components))
    values = {
        elbo: _elbo(
            X, eps, params, activation="relu", likelihood="bernoulli", elbo=elbo
        )
        for elbo in ESTIMATORS
    }
    single = {
        elbo: np.array(
            [
                _elbo(
                    X,
                    e[None],
                    params,
                    activation="relu",
                    likelihood="bernoulli",
                    elbo=elbo,
                )
                for e in eps
            ]
        )
        for elbo in ESTIMATORS
    }
    assert_allclose(single["analytic_kl"].var(axis=0), 0, atol=1e-20)
    assert_allclose(single["monte_carlo"].var(axis=0), 0, atol=1e-20)
    assert np.all(single["entropy"].var(axis=0) > 0.1)
    assert_allclose(values["monte_carlo"], values["analytic_kl"])


def test_reparameterisation_gradient_matches_analytic_gradient():
    """For f(z) = sum(c z^2 + b z) and q = N(mu, diag exp(log_var)), the
    average pathwise gradient through z = mu + sigma * eps matches the
    gradient of E_q[f] = sum(c (mu^2 + sigma^2) + b mu)."""
    rng = np.random.RandomState(0)
    n_components, n_draws = 3, 200_000
    mu = rng.normal(size=(1, n_components))
    log_var = rng.normal(size=(1, n_components))
    c = rng.uniform(0.5, 2, n_components)
    b = rng.normal(size=n_components)
    eps = rng.standard_normal((n_draws, 1, n_components))
    z = np.empty((n_draws, n_components))
    sigma = _reparameterise(mu, log_var, eps, out=z)
    df_dz = 2 * c * z + b
    pathwise_mu = df_dz.mean(axis=0)
    pathwise_log_var = (df_dz * 0.5 * sigma * eps[:, 0]).mean(axis=0)
    analytic_mu = 2 * c * mu[0] + b
    analytic_log_var = c * np.exp(log_var[0])
    stderr_mu = df_dz.std(axis=0) / np.sqrt(n_draws)
    stderr_log_var = (df_dz * 0.5 * sigma * eps[:, 0]).std(axis=0) / np.sqrt(n_draws)
    assert np.all(np.abs(pathwise_mu - analytic_mu) < 5 * stderr_mu)
    assert np.all(np.abs(pathwise_log_var - analytic_log_var) < 5 * stderr_log_var)
    assert_allclose(pathwise_mu, analytic_mu, rtol=0.02)
    assert_allclose(pathwise_log_var, analytic_log_var, rtol=0.02)


def test_kl_and_entropy_match_monte_carlo():
    rng = np.random.RandomState(0)
    mu = rng.normal(size=(2, 3))
    log_var = rng.normal(size=(2, 3))
    eps = rng.standard_normal((100_000, 2, 3))
    z = mu + np.exp(0.5 * log_var) * eps
    log_q = _reparameterised_log_q(eps, log_var)
    assert_allclose(-log_q.mean(axis=0), _gaussian_entropy(log_var), atol=0.02)
    kl = (log_q - _standard_normal_log_pdf(z)).mean(axis=0)
    assert_allclose(kl, _gaussian_kl(mu, log_var), atol=0.03)


def test_stable_softplus_and_log_likelihoods():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    assert_allclose(_softplus(x), np.logaddexp(0, x))
    assert_allclose(_log_sigmoid(x), -np.logaddexp(0, -x))
    X = np.array([[0.0, 1.0, 0.3]])
    logits = np.array([[-200.0, 200.0, 0.5]])
    for dtype in [np.float32, np.float64]:
        grad = np.empty_like(logits, dtype=dtype)
        ll = _bernoulli_log_likelihood(X.astype(dtype), logits.astype(dtype), grad=grad)
        expected = np.sum(X * logits - np.logaddexp(0, logits))
        assert np.isfinite(ll).all()
        assert_allclose(ll[0, 0], expected, rtol=1e-6)
        assert_allclose(grad, 1 / (1 + np.exp(-logits)) - X, rtol=1e-6, atol=1e-7)
    mean = np.array([[0.5, 1.0, 0.0]])
    log_var = np.array([0.0, -1.0, 2.0])
    ll = _gaussian_log_likelihood(X, mean, log_var)
    var = np.exp(log_var)
    expected = np.sum(-0.5 * ((X - mean) ** 2 / var + np.log(2 * np.pi * var)))
    assert_allclose(ll[0, 0], expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per_row_scale", [False, True])
def test_bernoulli_gradient_with_the_likelihood_is_the_gradient_alone(
    dtype, per_row_scale
):
    # The likelihood's gradient reuses its exponential; in place over the
    # logits too. Two draws of three samples.
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(3, 5)).astype(dtype)
    logits = (rng.normal(scale=30.0, size=(6, 5))).astype(dtype)
    logits[0, :2] = [0.0, -0.0]
    scale = rng.uniform(size=(2, 3)).astype(dtype) if per_row_scale else 0.25
    expected = np.empty_like(logits)
    _bernoulli_grad(X, logits, expected, scale=scale)
    grad = np.empty_like(logits)
    ll = _bernoulli_log_likelihood(X, logits, grad=grad, scale=scale)
    assert_allclose(grad, expected, rtol=1e-6, atol=1e-7)
    assert_allclose(ll, _bernoulli_log_likelihood(X, logits), rtol=1e-6)
    in_place = logits.copy()
    ll_in_place = _bernoulli_log_likelihood(X, in_place, grad=in_place, scale=scale)
    assert_allclose(in_place, expected, rtol=1e-6, atol=1e-7)
    assert_allclose(ll_in_place, ll, rtol=1e-6)


def test_importance_weighted_bound(fitted_vae):
    """With one draw it is the Monte Carlo ELBO."""
    vae, X = fitted_vae
    rng = np.random.RandomState(0)
    eps = rng.standard_normal((1, X.shape[0], vae.n_components))
    config = dict(activation="relu", likelihood="bernoulli")
    assert_allclose(
        _importance_weighted_bound(X, eps, vae._params(), **config),
        _elbo(X, eps, vae._params(), elbo="monte_carlo", **config),
    )
    assert np.isfinite(vae.set_params(score_bound="iwae", n_score_draws=20).score(X))


def test_importance_weighted_bound_converges_to_log_likelihood():
    """With a decoder ignoring z, ln p(x) = ln p(x|z) is known exactly: the
    ELBO falls short of it by KL(q || p), and the importance-weighted bound
    rises towards it as the number of draws grows."""
    rng = np.random.RandomState(0)
    n_features, n_components = 3, 2
    params = _uninformative_decoder_params(
        rng, n_features, n_components, mu=0.5, sigma=0.7
    )
    X = rng.uniform(size=(4, n_features))
    logits = params[3][0]
    log_px = (X * logits - np.logaddexp(0, logits)).sum(axis=1)
    config = dict(activation="relu", likelihood="bernoulli")
    mu = np.full((1, n_components), 0.5)
    log_var = np.full((1, n_components), 2 * np.log(0.7))
    eps = rng.standard_normal((4000, 4, n_components))
    elbo = _elbo(X, eps, params, elbo="analytic_kl", **config)
    assert_allclose(elbo, log_px - _gaussian_kl(mu, log_var))
    bounds = [
        np.mean(
            [
                _importance_weighted_bound(X, e, params, **config)
                for e in eps.reshape(-1, k, 4, n_components)
            ]
        )
        for k in [1, 10, 100]
    ]
    assert bounds[0] < bounds[1] < bounds[2] < log_px.mean()
    assert log_px.mean() - bounds[2] < 0.1 * (log_px.mean() - bounds[0])
