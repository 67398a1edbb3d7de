"""
5. Three forms of the ELBO and the variance of their estimates
==============================================================

For a VAE with prior ``p(z) = N(0, I)``, decoder ``p(x|z)`` and encoder
``q(z|x) = N(mu(x), diag sigma^2(x))``, the evidence lower bound can be
written in three equivalent ways:

.. math::

    \\mathrm{ELBO}(x)
    &= \\mathbb E_q[\\ln p(x|z)] - \\mathrm{KL}(q(z|x) \\,\\|\\, p(z))
       && \\text{("analytic_kl")} \\\\
    &= \\mathbb E_q[\\ln p(x|z) + \\ln p(z)] + \\mathrm H(q(z|x))
       && \\text{("entropy")} \\\\
    &= \\mathbb E_q[\\ln p(x|z) + \\ln p(z) - \\ln q(z|x)]
       && \\text{("monte_carlo")}

with, for a diagonal Gaussian, the closed forms

.. math::

    \\mathrm{KL} = \\tfrac12 \\sum_l (\\mu_l^2 + \\sigma_l^2 - \\ln \\sigma_l^2 - 1),
    \\qquad
    \\mathrm H = \\tfrac12 \\sum_l (\\ln \\sigma_l^2 + 1 + \\ln 2\\pi) .

Estimating the expectations by one draw ``z ~ q(z|x)`` gives three unbiased
estimators: each replaces a closed-form term of the previous one by a Monte
Carlo estimate. We fit a small VAE and measure their means and variances.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from sklearn_em import VAETransformer

X, _ = load_digits(return_X_y=True)
X = X / 16
vae = VAETransformer(
    n_components=4,
    hidden_layer_sizes=(64,),
    likelihood="bernoulli",
    max_iter=30,
    random_state=0,
).fit(X)


# %%
# The encoder's output, from the fitted weights
# ---------------------------------------------
# The encoder's last layer outputs the means and the log-variances of
# ``q(z|x)``. We run it from the public weights and check the means against
# ``transform``.
def encode(vae, X):
    h = X
    for coef, intercept in zip(vae.encoder_coefs_[:-1], vae.encoder_intercepts_[:-1]):
        h = np.maximum(h @ coef + intercept, 0)  # relu
    out = h @ vae.encoder_coefs_[-1] + vae.encoder_intercepts_[-1]
    L = vae.n_components
    return out[:, :L], out[:, L:]


mu, log_var = encode(vae, X)
np.testing.assert_allclose(mu, vae.transform(X), rtol=1e-6, atol=1e-8)
sigma = np.exp(0.5 * log_var)


def log_bernoulli(X, p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return (X * np.log(p) + (1 - X) * np.log1p(-p)).sum(axis=-1)


def log_normal(z, mean, var):
    return -0.5 * (((z - mean) ** 2) / var + np.log(2 * np.pi * var)).sum(axis=-1)


# %%
# One-draw estimates, many draws per sample
# -----------------------------------------
def elbo_estimates(vae, x, n_draws, rng):
    """One-draw estimates of the three forms, each of shape (n_draws, n_rows)."""
    m, lv = encode(vae, x)
    s = np.exp(0.5 * lv)
    kl = 0.5 * (m**2 + s**2 - lv - 1).sum(axis=1)
    entropy = 0.5 * (lv + 1 + np.log(2 * np.pi)).sum(axis=1)
    estimates = {"analytic_kl": [], "entropy": [], "monte_carlo": []}
    for _ in range(n_draws):
        z = m + s * rng.standard_normal(m.shape)
        log_px_z = log_bernoulli(x, vae.inverse_transform(z))
        log_pz = log_normal(z, 0.0, 1.0)
        log_qz = log_normal(z, m, s**2)
        estimates["analytic_kl"].append(log_px_z - kl)
        estimates["entropy"].append(log_px_z + log_pz + entropy)
        estimates["monte_carlo"].append(log_px_z + log_pz - log_qz)
    return {name: np.array(e) for name, e in estimates.items()}


rng = np.random.default_rng(0)
n_draws, x = 100, X[:300]
estimates = elbo_estimates(vae, x, n_draws, rng)
means = {name: e.mean() for name, e in estimates.items()}
variances = {name: e.var(axis=0).mean() for name, e in estimates.items()}
for name in estimates:
    print(
        f"{name:>12}: mean ELBO {means[name]:8.3f} nats, "
        f"variance of one draw {variances[name]:.3f}"
    )

# %%
# Same expectation
# ----------------
# The three means agree up to the Monte Carlo error of the mean over all
# draws and samples.
for name, e in estimates.items():
    standard_error = e.mean(axis=1).std() / np.sqrt(n_draws)
    assert abs(means[name] - means["analytic_kl"]) < 5 * standard_error, name

# ...and match the estimator's own ELBO: ``score_samples`` with many draws.
own = vae.set_params(n_score_draws=100).score_samples(x).mean()
assert abs(own - means["analytic_kl"]) < 0.1, (own, means["analytic_kl"])

# %%
# Different variances, depending on how good q is
# -----------------------------------------------
# Each form trades a closed-form term for a Monte Carlo one, but these terms
# are correlated with ``ln p(x|z)``, so more Monte Carlo terms can mean *less*
# variance. If ``q(z|x)`` were the exact posterior, the "monte_carlo" form
# would be ``ln p(x, z) - ln q(z|x) = ln p(x)`` for every draw: zero variance.
# A trained encoder comes close, and there "monte_carlo" is the least noisy;
# an untrained one (after one epoch) is far from the posterior and the
# closed-form KL is then the better choice. The measured numbers:
early = VAETransformer(
    n_components=4,
    hidden_layer_sizes=(64,),
    likelihood="bernoulli",
    max_iter=1,
    random_state=0,
).fit(X)
early_variances = {
    name: e.var(axis=0).mean()
    for name, e in elbo_estimates(early, x, n_draws, rng).items()
}
print(f"{'':>12}  {'1 epoch':>9}  {'30 epochs':>9}")
for name in estimates:
    print(f"{name:>12}  {early_variances[name]:9.3f}  {variances[name]:9.3f}")

assert variances["monte_carlo"] < variances["analytic_kl"] < variances["entropy"]
assert early_variances["analytic_kl"] < early_variances["monte_carlo"]

fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, v, title in [
    (axes[0], early_variances, "after 1 epoch"),
    (axes[1], variances, "after 30 epochs"),
]:
    ax.bar(list(v), list(v.values()))
    ax.set(title=title, ylabel="variance of a one-draw ELBO estimate")
