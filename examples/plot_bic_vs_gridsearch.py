"""
Choosing the number of components: BIC versus cross-validation
===============================================================

Two ways to choose the number of components ``K`` of a Gaussian mixture, on
the same data:

- the **Bayesian information criterion**,
  ``BIC = -2 ln L + p ln N`` with ``p`` free parameters, computed on the
  training data by :meth:`~sklearn_em.GaussianMixtureEM.bic`;
- **cross-validation**: :class:`~sklearn.model_selection.GridSearchCV` scores
  every candidate by its mean held-out log-likelihood
  (:meth:`~sklearn_em.GaussianMixtureEM.score`), with no penalty: a mixture
  that overfits scores badly on the held-out folds.
"""

# %%
# Data: four Gaussian clusters with different shapes
# --------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_em import GaussianMixtureEM
from sklearn_em.plotting import MixtureDisplay

rng = np.random.default_rng(0)
centres = np.array([[0, 0], [6, 1], [1, 7], [7, 8]])
shapes = [
    np.array([[1.0, 0.0], [0.0, 1.0]]),
    np.array([[1.5, 0.9], [0.0, 0.5]]),
    np.array([[0.4, 0.0], [0.6, 1.6]]),
    np.array([[1.0, -0.7], [0.0, 0.8]]),
]
X = np.vstack([c + rng.standard_normal((150, 2)) @ s for c, s in zip(centres, shapes)])

# %%
# BIC on the training data
# ------------------------
ks = np.arange(1, 9)
bic = np.array(
    [GaussianMixtureEM(k, n_init=2, random_state=0).fit(X).bic(X) for k in ks]
)
k_bic = ks[np.argmin(bic)]

# %%
# Held-out log-likelihood by GridSearchCV
# ---------------------------------------
search = GridSearchCV(
    GaussianMixtureEM(n_init=2, random_state=0),
    {"n_components": ks},
    cv=KFold(5, shuffle=True, random_state=0),
).fit(X)
cv_score = search.cv_results_["mean_test_score"]
k_cv = search.best_params_["n_components"]
print(f"K chosen by BIC: {k_bic}; by 5-fold cross-validation: {k_cv}")
assert k_bic == 4 and k_cv == 4, (k_bic, k_cv)

# %%
# Side by side
# ------------
# BIC is minimised, the held-out log-likelihood maximised. Both criteria
# find the four clusters; the held-out score flattens beyond the true ``K``
# (extra components overfit a little), while BIC's penalty grows linearly in
# the number of parameters.
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].plot(ks, bic, marker="o")
axes[0].axvline(k_bic, color="k", linestyle=":")
axes[0].set(xlabel="K", ylabel="BIC (lower is better)", title="BIC")
axes[1].errorbar(
    ks, cv_score, yerr=search.cv_results_["std_test_score"], marker="o", capsize=3
)
axes[1].axvline(k_cv, color="k", linestyle=":")
axes[1].set(
    xlabel="K",
    ylabel="held-out log-likelihood per sample",
    title="GridSearchCV",
)
fig.tight_layout()

# %%
# The selected mixture
# --------------------
# The four components found, each drawn with its 1- and 2-sigma ellipses
# over the data coloured by responsibilities.
display = MixtureDisplay.from_estimator(search.best_estimator_, X)
_ = display.ax_.set_title(f"selected mixture, K={k_cv}")
