"""
4. The reparameterisation trick: pathwise versus score-function gradients
=========================================================================

Training a VAE needs the gradient, with respect to the parameters of
``q(z) = N(mu, sigma^2)``, of an expectation ``E_q[f(z)]``. Two unbiased
Monte Carlo estimators exist:

- the **score-function** (REINFORCE) estimator, from
  ``grad E_q[f] = E_q[f(z) grad ln q(z)]``:

  .. math::

      \\hat g_{\\mathrm{SF}} = f(z) \\frac{z - \\mu}{\\sigma^2},
      \\qquad z \\sim \\mathcal N(\\mu, \\sigma^2);

- the **pathwise** estimator, writing ``z = mu + sigma * eps`` with
  ``eps ~ N(0, 1)`` so that the randomness no longer depends on ``mu``:

  .. math::

      \\hat g_{\\mathrm{PW}} = f'(\\mu + \\sigma \\varepsilon) .

Both have expectation ``d/dmu E_q[f(z)]``. The pathwise one uses the slope of
``f``, the score-function one only its values, so its variance is typically
far larger. We measure both.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

rng = np.random.default_rng(0)


# %%
# A quadratic, where everything is in closed form
# -----------------------------------------------
# With ``f(z) = (z - c)^2``, ``E_q[f] = (mu - c)^2 + sigma^2`` and the true
# gradient is ``2 (mu - c)``.
def f(z, c=3.0):
    return (z - c) ** 2


def f_prime(z, c=3.0):
    return 2 * (z - c)


mu, sigma, n_draws = 0.5, 1.0, 200_000
eps = rng.standard_normal(n_draws)
z = mu + sigma * eps
g_sf = f(z) * (z - mu) / sigma**2
g_pw = f_prime(z)
true_gradient = 2 * (mu - 3.0)

for name, g in [("score function", g_sf), ("pathwise", g_pw)]:
    standard_error = g.std() / np.sqrt(n_draws)
    print(
        f"{name:>15}: mean {g.mean():+.4f} (true {true_gradient:+.4f}), "
        f"variance of one draw {g.var():.2f}"
    )
    # Unbiased: the mean is within 4 standard errors of the truth.
    assert abs(g.mean() - true_gradient) < 4 * standard_error

# The pathwise variance is 4 sigma^2 exactly; the score function's is larger.
np.testing.assert_allclose(g_pw.var(), 4 * sigma**2, rtol=0.02)
assert g_sf.var() > 10 * g_pw.var()

# %%
# The gap as a function of sigma and of the offset
# ------------------------------------------------
# The score-function variance grows with ``|mu - c|`` (large values of ``f``
# multiply the noise) and explodes as ``sigma`` shrinks (its ``1/sigma``
# factor), while the pathwise variance, ``4 sigma^2``, shrinks with ``sigma``.
sigmas = np.array([0.1, 0.3, 1.0, 3.0])
offsets = np.array([0.0, 1.0, 3.0])
eps = rng.standard_normal(100_000)
fig, ax = plt.subplots()
for offset in offsets:
    var_sf, var_pw = [], []
    for s in sigmas:
        z = offset + s * eps  # c = 0 here, so offset = mu - c
        var_sf.append(np.var(z**2 * (z - offset) / s**2))
        var_pw.append(np.var(2 * z))
    ax.loglog(sigmas, var_sf, marker="o", label=f"score function, mu - c = {offset}")
    assert np.all(np.array(var_sf) > np.array(var_pw))
ax.loglog(sigmas, var_pw, "k--", marker="s", label="pathwise (any mu - c)")
ax.set(xlabel="sigma", ylabel="variance of a one-draw gradient estimate")
legend = ax.legend(fontsize="small")

# %%
# In the VAE
# ----------
# :class:`~sklearn_em.VAETransformer` draws ``z = mu(x) + sigma(x) * eps``
# and back-propagates through ``z`` into the encoder: the pathwise estimator,
# with one draw per sample and minibatch (``n_mc_samples=1``) enough to train.
