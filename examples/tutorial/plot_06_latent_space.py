"""
6. A 2-D latent space: the aggregate posterior, its holes, and poor samples
===========================================================================

A VAE generates by drawing ``z`` from the prior ``p(z) = N(0, I)`` and
decoding it. The decoder is trained only on codes drawn from the encoder,
that is from the **aggregate posterior**

.. math::

    q(z) = \\frac1N \\sum_n q(z \\mid x_n) .

The ELBO's KL term pulls every ``q(z|x_n)`` towards the prior, and averaging
it over the data gives
``E_x KL(q(z|x) || p(z)) = KL(q(z) || p(z)) + I(x; z)``, so ``q(z)`` is
pushed towards ``p(z)``, but the mutual information term lets it keep the
structure that encodes the data: clusters separated by gaps. A region that is
likely under the prior but empty under ``q(z)`` is a **hole**: the decoder
never learned what to put there, and samples drawn from it look poor.

We fit a VAE with a 2-D latent space, measure the holes, and compare the
samples decoded from holes with those decoded where the data are.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm
from sklearn.datasets import load_digits
from sklearn.metrics import pairwise_distances

from sklearn_em import VAETransformer
from sklearn_em.plotting import LatentSpaceDisplay, ManifoldDisplay

# scikit-learn's 8x8 digits (bundled with it) keep this part fast.
X, y = load_digits(return_X_y=True)
X, image_shape = X / 16, (8, 8)
vae = VAETransformer(
    n_components=2,
    hidden_layer_sizes=(128,),
    likelihood="bernoulli",
    max_iter=60,
    random_state=0,
).fit(X)

# %%
# The aggregate posterior against the prior
# -----------------------------------------
# Ten draws ``z ~ q(z|x_n)`` per image sample ``q(z)``. Its first two moments
# are close to the prior's: mean near 0 and covariance near the identity.
Z = vae.sample_posterior(X, n_samples=10, random_state=0)
print("mean of q(z):", Z.mean(axis=0).round(2))
print("covariance of q(z):\n", np.cov(Z.T).round(2))
assert np.all(np.abs(Z.mean(axis=0)) < 0.3)
assert np.all(np.abs(np.cov(Z.T) - np.eye(2)) < 1.5)

latent_display = LatentSpaceDisplay.from_estimator(vae, X, y, random_state=0)

# %%
# Measuring the holes
# -------------------
# Map ``z`` through the normal CDF: ``u = Phi(z)`` is uniform on ``[0, 1]^2``
# under the prior, so on a regular ``n x n`` grid of ``u`` every cell holds
# prior mass ``1 / n^2``. The ratio of the aggregate posterior's mass in a
# cell to that is 1 everywhere if ``q(z) = p(z)``; a cell with ratio below
# 0.5 (less than half the prior's mass) is a hole. We count holes in
# the region of high prior density, the disc
# ``|z| < 2`` (86% of the prior's mass).
n = 20
edges = np.linspace(0, 1, n + 1)
counts, _, _ = np.histogram2d(*norm.cdf(Z).T, bins=[edges, edges])
ratio = counts / counts.sum() * n**2  # q-mass / p-mass, per cell
centres = norm.ppf((np.arange(n) + 0.5) / n)
c1, c2 = np.meshgrid(centres, centres, indexing="ij")
central = c1**2 + c2**2 < 4
holes = central & (ratio < 0.5)
dense = central & (ratio > 1.0)
hole_mass = holes.sum() / n**2
print(
    f"{holes.sum()} of {central.sum()} central cells are holes: "
    f"{hole_mass:.1%} of the prior's mass, where q(z) has "
    f"{counts[holes].sum() / counts.sum():.2%} of its mass"
)
assert holes.sum() > 0

fig, ax = plt.subplots()
image = ax.imshow(
    np.log10(np.maximum(ratio, 1e-2)).T,
    origin="lower",
    extent=(0, 1, 0, 1),
    cmap="coolwarm_r",
    vmin=-2,
    vmax=2,
)
ax.contour(
    (np.arange(n) + 0.5) / n,
    (np.arange(n) + 0.5) / n,
    holes.T.astype(float),
    levels=[0.5],
    colors="k",
)
ax.set(
    xlabel="Phi(z_1)", ylabel="Phi(z_2)", title="holes (outlined) in the disc |z| < 2"
)
colorbar = fig.colorbar(image, label="log10 q(z) / p(z), per cell")

# %%
# Samples from the holes are poor
# -------------------------------
# Decode the centres of the hole cells and of the densely covered cells, and
# measure how far each decoded image is from the nearest training image. The
# images decoded from the holes are farther from every real digit: they are
# blends that the decoder was never trained to produce.
hole_images = vae.inverse_transform(np.column_stack([c1[holes], c2[holes]]))
dense_images = vae.inverse_transform(np.column_stack([c1[dense], c2[dense]]))
hole_distance = pairwise_distances(hole_images, X).min(axis=1)
dense_distance = pairwise_distances(dense_images, X).min(axis=1)
print(
    f"distance to the nearest training image: holes {hole_distance.mean():.2f}, "
    f"dense cells {dense_distance.mean():.2f}"
)
assert hole_distance.mean() > dense_distance.mean()

fig, axes = plt.subplots(2, 8, figsize=(8, 2.4))
for row, images, title in [(0, hole_images, "holes"), (1, dense_images, "dense")]:
    for ax, image in zip(axes[row], images[:8]):
        ax.imshow(image.reshape(image_shape), cmap="gray_r")
        ax.set_axis_off()
    axes[row, 0].set_title(title, loc="left", fontsize="small")

# %%
# The decoded manifold
# --------------------
# The grid maps a uniform mesh of ``[0, 1]^2`` through the normal inverse
# CDF: every image covers the same prior mass, so this is what sampling from
# the prior produces, holes included.
manifold_display = ManifoldDisplay.from_estimator(
    vae, n_points=15, image_shape=image_shape
)
