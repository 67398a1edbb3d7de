"""
==================================================
VAE codes as features for a linear classifier
==================================================

A :class:`~sklearn_em.VAETransformer` in a :class:`~sklearn.pipeline.Pipeline`
turns images into a few latent coordinates, the posterior means
:math:`\\mu(x)`, that a linear classifier can use like the components of a
:class:`~sklearn.decomposition.PCA`. On the 8x8 digits with 8 dimensions:

- the pixels lie in [0, 1], so the Bernoulli likelihood fits them better
  than the default Gaussian one;
- a KL warm-up (``n_iter_kl_warmup``: the weight of the KL term grows from 0
  to 1 over the first epochs) lets the encoder learn codes that reconstruct
  the images before the prior pulls them together. Without it, some latent
  units collapse to the prior: their posterior mean barely varies across the
  data, and they carry no information for the classifier.

With both, the VAE's codes beat PCA's of the same dimension. We count the
*active* units as those whose posterior mean has a variance above 0.01 across
the data (Burda et al., 2016).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_em import VAETransformer

X, y = load_digits(return_X_y=True)
X = X / 16  # grey levels in [0, 1]
n_components = 8


def classifier():
    return LogisticRegression(max_iter=2000)


models = {
    "PCA": PCA(n_components),
    "VAE, Bernoulli": VAETransformer(
        n_components, likelihood="bernoulli", random_state=0
    ),
    "VAE, Bernoulli, KL warm-up": VAETransformer(
        n_components, likelihood="bernoulli", n_iter_kl_warmup=50, random_state=0
    ),
}

# %%
# Three-fold accuracy of the same classifier on each set of codes
# ----------------------------------------------------------------
accuracy = {}
for name, transformer in models.items():
    scores = cross_val_score(make_pipeline(transformer, classifier()), X, y, cv=3)
    accuracy[name] = scores.mean()
    print(f"{name:>27}: accuracy {scores.mean():.3f} (folds {np.round(scores, 3)})")

assert accuracy["VAE, Bernoulli, KL warm-up"] > accuracy["PCA"]

# %%
# Active latent units
# -------------------
# Fitted on all the images, the variance of every unit's posterior mean.
variances = {
    name: np.sort(model.fit(X).transform(X).var(axis=0))[::-1]
    for name, model in models.items()
    if name != "PCA"
}
for name, variance in variances.items():
    print(f"{name:>27}: {np.sum(variance > 0.01)} active units of {n_components}")

fig, (ax_accuracy, ax_units) = plt.subplots(1, 2, figsize=(11, 4))
ax_accuracy.barh(list(accuracy), list(accuracy.values()))
ax_accuracy.set(
    xlim=(0.8, 0.92),
    xlabel="3-fold accuracy of LogisticRegression",
    title=f"{n_components}-dimensional codes",
)
width = 0.4
for i, (name, variance) in enumerate(variances.items()):
    ax_units.bar(
        np.arange(n_components) + (i - 0.5) * width, variance, width, label=name
    )
ax_units.axhline(0.01, color="k", linestyle=":", label="active above 0.01")
ax_units.set(
    yscale="log",
    xlabel="latent unit (sorted)",
    ylabel="variance of the posterior mean",
    title="Active latent units",
)
ax_units.legend()
fig.tight_layout()
plt.show()
