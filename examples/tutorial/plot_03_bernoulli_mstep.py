"""
3. The Bernoulli mixture's M-step and its prototypes
====================================================

For binary images ``x in {0, 1}^D``, component ``k`` switches pixel ``d`` on
with probability ``theta_kd``:

.. math::

    \\ln p(x \\mid k)
    = \\sum_d x_d \\ln \\theta_{kd} + (1 - x_d) \\ln(1 - \\theta_{kd}) .

The expected complete-data log-likelihood, plus a ``Beta(alpha, beta)``
log-prior on every ``theta_kd``, is maximised by

.. math::

    \\theta_{kd} = \\frac{\\sum_n r_{nk} x_{nd} + \\alpha - 1}
                        {N_k + \\alpha + \\beta - 2} :

a responsibility-weighted average of the images, smoothed by ``alpha - 1``
pseudo-ones and ``beta - 1`` pseudo-zeros, so that no pixel is ever certain
and a held-out image never has likelihood zero. Each ``theta_k`` is a
*prototype*: an image of pixel probabilities. We check one EM step against
:class:`~sklearn_em.BernoulliMixtureEM` and look at the prototypes learned
from scikit-learn's 8x8 handwritten digits.
"""

# %%
# The data: scikit-learn's handwritten digits, binarised
# ------------------------------------------------------
# :func:`sklearn.datasets.load_digits` ships with scikit-learn: 1,797 images
# of 8x8 pixels with grey levels 0..16. A pixel is "on" above half intensity.
# (The README's figure shows the same prototypes learned from 28x28 MNIST
# digits, drawn by ``benchmarks/plot_bernoulli_prototypes.py``.)
import warnings

import numpy as np
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import BernoulliMixtureEM
from sklearn_em.plotting import PrototypeDisplay

digits, labels = load_digits(return_X_y=True)
X = (digits / 16 > 0.5).astype(float)
image_shape = (8, 8)
print(f"{X.shape[0]} binary images of {image_shape[0]}x{image_shape[1]} pixels")

# %%
# One EM step by hand
# -------------------
K, alpha, beta = 10, 2.0, 2.0
rng = np.random.default_rng(0)
pi0 = np.full(K, 1 / K)
# Start from K random images, blurred towards 1/2.
theta0 = 0.25 + 0.5 * X[rng.choice(X.shape[0], K, replace=False)]

# E-step: the log-likelihood is linear in x, one matrix product for all.
log_prob = np.log(pi0) + X @ np.log(theta0).T + (1 - X) @ np.log1p(-theta0).T
resp = np.exp(log_prob - logsumexp(log_prob, axis=1, keepdims=True))
# M-step.
Nk = resp.sum(axis=0)
pi1 = Nk / X.shape[0]
theta1 = (resp.T @ X + alpha - 1) / (Nk[:, np.newaxis] + alpha + beta - 2)

bm = BernoulliMixtureEM(
    K,
    alpha=alpha,
    beta=beta,
    weights_init=pi0,
    means_init=theta0,
    max_iter=1,
    binarize=None,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # one step
    bm.fit(X)
assert_allclose(bm.weights_, pi1, rtol=1e-9)
assert_allclose(bm.means_, theta1, rtol=1e-9)
print("one hand-written EM step == BernoulliMixtureEM(max_iter=1)")

# %%
# Smoothing keeps every probability inside (0, 1)
# -----------------------------------------------
# A pixel that is off in every image of a component gets
# ``theta = (alpha - 1) / (N_k + alpha + beta - 2) > 0``, not zero.
bm = BernoulliMixtureEM(K, n_init=2, max_iter=50, random_state=0, binarize=None)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    bm.fit(X)
assert bm.means_.min() > 0 and bm.means_.max() < 1
assert np.all(np.isfinite(bm.score_samples(1 - X[:50])))  # even inverted images

# %%
# The prototypes
# --------------
# The digit labels were never used in fitting, yet in at least half of the
# components one digit makes up more than three quarters of the images the
# component is most responsible for. Some digits are split over two
# components (two ways of writing them), and some components gather two
# digits that look alike once binarised at 8x8.
assigned = bm.predict(X)
print("weight  most common digit  its share")
shares, majority = [], []
for k in np.argsort(-bm.weights_):
    counts = np.bincount(labels[assigned == k], minlength=10)
    majority.append(counts.argmax())
    shares.append(counts.max() / counts.sum())
    print(f"{bm.weights_[k]:6.3f}  {majority[-1]:17d}  {shares[-1]:9.0%}")
shares = np.array(shares)
assert np.sum(shares > 0.75) >= K // 2  # half of them are over 3/4 one digit
assert len(set(majority)) < K  # some digit leads two components...
assert shares.min() < 0.5  # ...and some component mixes two digits

# %%
# Sorted by weight, each prototype is the average binarised digit of its
# component, with the pixel probabilities as grey levels.
display = PrototypeDisplay.from_estimator(bm, image_shape=image_shape)
