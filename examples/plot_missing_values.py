"""
Mixtures and imputation with missing values
===========================================

EM was invented for incomplete data: :class:`~sklearn_em.GaussianMixtureEM`
fits directly on data with ``NaN``, scoring each row by the marginal density
of its observed values and taking expected sufficient statistics in the
M-step (see :ref:`missing_values`). This example

1. removes 40% of the values of two correlated Gaussian clusters at random
   and compares the mixture fitted *with* the missing values to one fitted
   after replacing them by their feature's mean;
2. imputes the missing values with
   :class:`~sklearn_em.GaussianMixtureImputer` (each one's conditional
   expectation under the mixture) and with scikit-learn's imputers, on the
   wine data set.
"""

# %%
# Two correlated clusters, 40% of the values missing
# --------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.impute import SimpleImputer

from sklearn_em import GaussianMixtureEM, GaussianMixtureImputer
from sklearn_em.plotting import MixtureDisplay

rng = np.random.default_rng(0)
shapes = [np.array([[1.0, 0.9], [0.0, 0.4]]), np.array([[1.0, -0.8], [0.0, 0.5]])]
centres = np.array([[0.0, 0.0], [4.0, 0.5]])
labels = rng.integers(2, size=600)
X = np.stack([centres[k] + rng.standard_normal(2) @ shapes[k] for k in labels])

X_missing = X.copy()
X_missing[rng.random(X.shape) < 0.4] = np.nan
both_missing = np.isnan(X_missing).all(axis=1)
print(
    f"{np.isnan(X_missing).mean():.0%} of the values are missing; "
    f"{np.isnan(X_missing).any(axis=1).mean():.0%} of the rows miss at least one, "
    f"{both_missing.mean():.0%} miss both (they carry no information)."
)

# %%
# Fit with the missing values, and after mean imputation
# ------------------------------------------------------
# The mixture fitted with the missing values recovers the two tilted
# clusters; mean imputation piles the incomplete rows onto two lines through
# the feature means, which shrinks and distorts the covariances.
with_missing = GaussianMixtureEM(2, random_state=0).fit(X_missing)
X_mean_imputed = SimpleImputer().fit_transform(X_missing)
after_imputation = GaussianMixtureEM(2, random_state=0).fit(X_mean_imputed)

fig, axes = plt.subplots(1, 3, figsize=(13, 4))
MixtureDisplay.from_estimator(
    GaussianMixtureEM(2, random_state=0).fit(X), X, ax=axes[0]
)
axes[0].set_title("Fitted on the complete data")
MixtureDisplay.from_estimator(with_missing, X, ax=axes[1])
axes[1].set_title("Fitted with 40% missing (EM)")
MixtureDisplay.from_estimator(after_imputation, X_mean_imputed, ax=axes[2])
axes[2].set_title("Fitted after mean imputation")
fig.tight_layout()

# %%
# The observed-data log-likelihood of held-out incomplete rows is higher
# under the mixture fitted with the missing values (``score`` takes NaN):
X_test = np.stack([centres[k] + rng.standard_normal(2) @ shapes[k] for k in labels])
X_test[rng.random(X_test.shape) < 0.4] = np.nan
print(f"fitted with NaN:          {with_missing.score(X_test):.3f}")
print(f"fitted after imputation:  {after_imputation.score(X_test):.3f}")

# %%
# Imputation: conditional expectations
# ------------------------------------
# For a row with ``x1`` observed and ``x2`` missing, the imputer returns
# ``sum_k p(k | x1) E[x2 | x1, k]``: the regression line of the component
# the row most likely belongs to, not the feature mean.
imputer = GaussianMixtureImputer(2, random_state=0).fit(X_missing)
X_imputed = imputer.transform(X_missing)
second_missing = np.isnan(X_missing[:, 1]) & ~np.isnan(X_missing[:, 0])

fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(*X.T, s=6, c="0.8", label="complete data")
ax.scatter(X[second_missing, 0], X_mean_imputed[second_missing, 1], s=8, label="mean")
ax.scatter(
    X[second_missing, 0],
    X_imputed[second_missing, 1],
    s=8,
    label="GaussianMixtureImputer",
)
ax.set(xlabel="x1 (observed)", ylabel="x2 (imputed)")
ax.legend(loc="lower right")
for name, filled in [("mean", X_mean_imputed), ("mixture", X_imputed)]:
    error = filled[second_missing, 1] - X[second_missing, 1]
    print(f"RMSE of the imputed x2, {name}: {np.sqrt(np.mean(error**2)):.3f}")

# %%
# On a real data set
# ------------------
# Wine (178 samples, 13 features): 30% of the values removed at random, and
# the error of each imputer on them, in units of each feature's standard
# deviation. ``benchmarks/bench_missing.py`` runs the same comparison on
# larger data sets and at other rates (see the user guide).
from sklearn.datasets import load_wine
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer

X_wine = load_wine().data
removed = np.random.default_rng(1).random(X_wine.shape) < 0.3
X_wine_missing = np.where(removed, np.nan, X_wine)
scale = X_wine.std(axis=0)
imputers = {
    "SimpleImputer": SimpleImputer(),
    "KNNImputer": KNNImputer(),
    # 20 rounds: its default 10 stop short of its criterion on these data.
    "IterativeImputer": IterativeImputer(max_iter=20, random_state=0),
    "GaussianMixtureImputer": GaussianMixtureImputer(random_state=0),
}
for name, wine_imputer in imputers.items():
    filled = wine_imputer.fit_transform(X_wine_missing)
    error = ((filled - X_wine) / scale)[removed]
    print(f"{name:>24}: RMSE {np.sqrt(np.mean(error**2)):.3f}")
print("components chosen by BIC:", imputers["GaussianMixtureImputer"].n_components_)
