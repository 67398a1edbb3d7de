"""
2. The Gaussian mixture's E- and M-steps, line by line
======================================================

One EM iteration from given parameters ``(pi, mu, Sigma)``:

**E-step**: the responsibilities (part 1)

.. math::

    r_{nk} = \\frac{\\pi_k \\mathcal N(x_n | \\mu_k, \\Sigma_k)}
                  {\\sum_j \\pi_j \\mathcal N(x_n | \\mu_j, \\Sigma_j)} .

**M-step**: maximise the expected complete-data log-likelihood
``sum_nk r_nk [ln pi_k + ln N(x_n | mu_k, Sigma_k)]``. Setting its gradients
to zero (with a Lagrange multiplier for ``sum_k pi_k = 1``) gives, with
``N_k = sum_n r_nk``,

.. math::

    \\pi_k = \\frac{N_k}{N}, \\quad
    \\mu_k = \\frac{1}{N_k} \\sum_n r_{nk} x_n, \\quad
    \\Sigma_k = \\frac{1}{N_k} \\sum_n r_{nk} (x_n - \\mu_k)(x_n - \\mu_k)^\\top
              + \\epsilon I .

We write both steps in a few lines of NumPy and check that they give exactly
what :class:`~sklearn_em.GaussianMixtureEM` computes in one iteration
(``max_iter=1``) from the same start.
"""

# %%
import warnings

import numpy as np
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import GaussianMixtureEM
from sklearn_em.plotting import ConvergenceDisplay

X, _ = load_iris(return_X_y=True)
n_samples, n_features = X.shape
rng = np.random.default_rng(0)
K = 3
pi0 = np.full(K, 1 / K)
mu0 = X[rng.choice(n_samples, K, replace=False)]
Sigma0 = np.stack([np.cov(X.T)] * K)
reg_covar = 1e-6

# %%
# The E-step
# ----------
log_prob = np.column_stack(
    [
        np.log(pi0[k]) + multivariate_normal(mu0[k], Sigma0[k]).logpdf(X)
        for k in range(K)
    ]
)
log_norm = logsumexp(log_prob, axis=1)
resp = np.exp(log_prob - log_norm[:, np.newaxis])

# %%
# The M-step
# ----------
Nk = resp.sum(axis=0)
pi1 = Nk / n_samples
mu1 = resp.T @ X / Nk[:, np.newaxis]
Sigma1 = np.empty((K, n_features, n_features))
for k in range(K):
    diff = X - mu1[k]
    Sigma1[k] = (resp[:, k] * diff.T) @ diff / Nk[k] + reg_covar * np.eye(n_features)

# %%
# The estimator, one iteration from the same start
# ------------------------------------------------
gm = GaussianMixtureEM(
    K,
    weights_init=pi0,
    means_init=mu0,
    precisions_init=np.linalg.inv(Sigma0),
    max_iter=1,
    reg_covar=reg_covar,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # one step: not converged
    gm.fit(X)

assert_allclose(gm.weights_, pi1, rtol=1e-10)
assert_allclose(gm.means_, mu1, rtol=1e-10)
assert_allclose(gm.covariances_, Sigma1, rtol=1e-8)
# The lower bound it records is the mean log-likelihood under the start.
assert_allclose(gm.lower_bounds_[0], log_norm.mean(), rtol=1e-10)
print("one hand-written EM step == GaussianMixtureEM(max_iter=1)")

# %%
# EM never decreases the likelihood
# ---------------------------------
# Iterating the two steps increases the mean log-likelihood monotonically
# until it converges.
gm = GaussianMixtureEM(
    K, weights_init=pi0, means_init=mu0, precisions_init=np.linalg.inv(Sigma0)
).fit(X)
assert np.all(np.diff(gm.lower_bounds_) >= -1e-12)
print(f"converged after {gm.n_iter_} iterations: {gm.lower_bounds_[-1]:.4f}")
display = ConvergenceDisplay.from_estimator(gm)
