"""
1. Responsibilities are normalised likelihoods
==============================================

A mixture explains every sample ``x`` as drawn from one of ``K`` components.
The *responsibility* of component ``k`` for ``x`` is the posterior
probability of that component, by Bayes' rule:

.. math::

    r_k(x) = p(k \\mid x)
           = \\frac{\\pi_k\\, p(x \\mid k)}{\\sum_j \\pi_j\\, p(x \\mid j)} .

Under a **uniform prior**, ``pi_k = 1/K``, the priors cancel and the
responsibilities are just the likelihoods ``p(x | k)`` normalised to sum to
one over the components. We check this against
:class:`~sklearn_em.GaussianMixtureEM` with ``weights="uniform"``.
"""

# %%
import numpy as np
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA

from sklearn_em import GaussianMixtureEM
from sklearn_em.plotting import MixtureDisplay

X, y = load_iris(return_X_y=True)
X = PCA(n_components=2).fit_transform(X)
gm = GaussianMixtureEM(3, weights="uniform", random_state=0).fit(X)
assert_allclose(gm.weights_, 1 / 3)

# %%
# Normalised likelihoods, by hand
# -------------------------------
likelihood = np.column_stack(
    [multivariate_normal(gm.means_[k], gm.covariances_[k]).pdf(X) for k in range(3)]
)
resp = likelihood / likelihood.sum(axis=1, keepdims=True)
assert_allclose(resp, gm.predict_proba(X), rtol=1e-8, atol=1e-12)
print("responsibilities of the first sample:", resp[0].round(4))

# %%
# In log space
# ------------
# Likelihoods of far-away components underflow to zero in high dimensions;
# the estimators therefore work with log-likelihoods and normalise by
# ``logsumexp``: ``ln r_k = ln p(x|k) - ln sum_j exp(ln p(x|j))``.
log_likelihood = np.column_stack(
    [multivariate_normal(gm.means_[k], gm.covariances_[k]).logpdf(X) for k in range(3)]
)
log_resp = log_likelihood - logsumexp(log_likelihood, axis=1, keepdims=True)
assert_allclose(np.exp(log_resp), gm.predict_proba(X), rtol=1e-8, atol=1e-12)

# %%
# With learned weights, the prior no longer cancels: the responsibilities
# are the likelihoods *times the weights*, normalised.
gm_w = GaussianMixtureEM(3, random_state=0).fit(X)
weighted = gm_w.weights_ * np.column_stack(
    [multivariate_normal(gm_w.means_[k], gm_w.covariances_[k]).pdf(X) for k in range(3)]
)
assert_allclose(
    weighted / weighted.sum(axis=1, keepdims=True),
    gm_w.predict_proba(X),
    rtol=1e-8,
    atol=1e-12,
)

# %%
# The picture
# -----------
# Each point's colour mixes the component colours by its responsibilities:
# points between two ellipses take a blend of the two colours.
display = MixtureDisplay.from_estimator(gm, X)
