"""Displays of a 2-D latent space: posterior draws and the decoded manifold."""

import numpy as np
from scipy.stats import norm
from sklearn.utils.validation import check_is_fitted

from ._utils import _component_colors, _get_axes, _image_shape, _tile


def _check_2d_latent(estimator, caller_name):
    check_is_fitted(estimator)
    if estimator.n_components != 2:
        raise ValueError(
            f"{caller_name} needs a 2-D latent space; the estimator has "
            f"n_components={estimator.n_components}."
        )


def _prior_density_levels(radii):
    """Density of N(0, I_2) on the circles of the given radii (increasing order).

    ``p(z) = exp(-|z|^2 / 2) / (2 pi)``; the circle of radius r holds a prior
    mass ``1 - exp(-r^2 / 2)`` inside it.
    """
    radii = np.sort(np.asarray(radii, dtype=float))[::-1]
    return np.exp(-0.5 * radii**2) / (2 * np.pi)


def _normal_grid(n_points):
    """Latent grid covering the prior, shape (n_points, n_points, 2).

    A uniform mesh of cell midpoints ``u = (i + 1/2) / n`` in ``[0, 1]^2`` is
    mapped through the standard normal inverse CDF, so every cell holds the
    same prior mass ``1 / n^2``: cells are narrow near the origin and wide in
    the tails (a fish-eye view). Row 0 is the top of the picture (largest
    ``z_2``), column 0 its left (smallest ``z_1``).
    """
    z = norm.ppf((np.arange(n_points) + 0.5) / n_points)
    z1, z2 = np.meshgrid(z, z[::-1])
    return np.stack([z1, z2], axis=-1)


class LatentSpaceDisplay:
    """Draws ``z ~ q(z|x_n)`` of a 2-D VAE coloured by label, over the prior.

    The circles are the prior ``N(0, I)``'s density contours of Mahalanobis
    radius 1, 2 and 3 (holding 39%, 86% and 99% of its mass). If the VAE fits
    well, the aggregate posterior ``q(z) = 1/N sum_n q(z|x_n)`` — the cloud of
    points — resembles the prior.

    Use :meth:`from_estimator` to create one.

    Parameters
    ----------
    Z : ndarray of shape (n_points, 2)
        Latent points.

    labels : ndarray of shape (n_points,), default=None
        Class of every point, for the colours.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
        The latent points.

    contour_ : matplotlib ContourSet
        The prior's contours.

    ax_ : matplotlib Axes
        Axes of the plot.

    figure_ : matplotlib Figure
        Figure of the plot.
    """

    def __init__(self, *, Z, labels=None):
        self.Z = Z
        self.labels = labels

    @classmethod
    def from_estimator(
        cls, estimator, X, y=None, *, n_samples=1, random_state=None, ax=None, **kwargs
    ):
        """Draw from q(z|x) for every row of X and plot the draws.

        Parameters
        ----------
        estimator : VAETransformer
            Fitted VAE with ``n_components=2``.

        X : array-like of shape (n_samples_X, n_features)
            Data to encode.

        y : array-like of shape (n_samples_X,), default=None
            Labels, for the colours.

        n_samples : int, default=1
            Draws per row of X.

        random_state : int, RandomState instance or None, default=None
            Determines the draws.

        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : LatentSpaceDisplay
        """
        _check_2d_latent(estimator, "LatentSpaceDisplay")
        Z = estimator.sample_posterior(
            X, n_samples=n_samples, random_state=random_state
        )
        labels = None if y is None else np.repeat(np.asarray(y), n_samples)
        return cls(Z=Z, labels=labels).plot(ax=ax, **kwargs)

    def plot(self, ax=None, *, radii=(1, 2, 3), scatter_kwargs=None):
        """Draw the points and the prior's contours.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        radii : tuple of float, default=(1, 2, 3)
            Radii of the prior's contours.

        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter``.

        Returns
        -------
        display : LatentSpaceDisplay
        """
        ax, figure = _get_axes(ax, "LatentSpaceDisplay.plot")
        Z = np.asarray(self.Z, dtype=float)
        scatter_kwargs = {"s": 4, "alpha": 0.6, **(scatter_kwargs or {})}
        if self.labels is not None:
            classes, codes = np.unique(self.labels, return_inverse=True)
            colors = _component_colors(len(classes))
            self.scatter_ = ax.scatter(
                Z[:, 0], Z[:, 1], c=colors[codes], **scatter_kwargs
            )
            for k, label in enumerate(classes):
                ax.scatter([], [], color=colors[k], label=str(label), s=15)
            ax.legend(loc="upper right", fontsize="x-small", markerscale=1.5)
        else:
            self.scatter_ = ax.scatter(Z[:, 0], Z[:, 1], **scatter_kwargs)
        limit = max(np.max(radii) + 0.5, np.percentile(np.abs(Z), 99.5))
        grid = np.linspace(-limit, limit, 201)
        z1, z2 = np.meshgrid(grid, grid)
        density = np.exp(-0.5 * (z1**2 + z2**2)) / (2 * np.pi)
        self.contour_ = ax.contour(
            z1,
            z2,
            density,
            levels=_prior_density_levels(radii),
            colors="k",
            linewidths=0.8,
        )
        ax.set(xlim=(-limit, limit), ylim=(-limit, limit), xlabel="z_1", ylabel="z_2")
        ax.set_aspect("equal")
        self.ax_, self.figure_ = ax, figure
        return self


class ManifoldDisplay:
    """Decoded images of a 2-D latent grid that covers the prior's mass.

    A uniform mesh in ``[0, 1]^2`` is mapped through the standard normal
    inverse CDF, so each cell of the grid holds the same prior mass: the grid
    is dense near the origin and sparse in the tails, a fish-eye view of the
    latent space in which every image is equally likely a priori.

    Use :meth:`from_estimator` to create one.

    Parameters
    ----------
    images : ndarray of shape (n_points, n_points, height, width)
        ``images[i, j]`` decodes ``grid[i, j]``.

    grid : ndarray of shape (n_points, n_points, 2)
        The latent points; row 0 has the largest ``z_2``.

    Attributes
    ----------
    image_ : matplotlib AxesImage
        The mosaic of decoded images.

    ax_ : matplotlib Axes
        Axes of the plot.

    figure_ : matplotlib Figure
        Figure of the plot.
    """

    def __init__(self, *, images, grid):
        self.images = images
        self.grid = grid

    @classmethod
    def from_estimator(
        cls, estimator, *, n_points=15, image_shape=None, ax=None, **kwargs
    ):
        """Decode the grid with ``estimator.inverse_transform`` and plot it.

        Parameters
        ----------
        estimator : VAETransformer
            Fitted VAE with ``n_components=2``.

        n_points : int, default=15
            Grid points per axis.

        image_shape : tuple of int (height, width), default=None
            Shape of one image; inferred as a square if None.

        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : ManifoldDisplay
        """
        _check_2d_latent(estimator, "ManifoldDisplay")
        grid = _normal_grid(n_points)
        decoded = np.asarray(estimator.inverse_transform(grid.reshape(-1, 2)))
        height, width = _image_shape(decoded.shape[1], image_shape)
        images = decoded.reshape(n_points, n_points, height, width)
        return cls(images=images, grid=grid).plot(ax=ax, **kwargs)

    def plot(self, ax=None, *, cmap="gray_r"):
        """Draw the mosaic, with the latent coordinates as tick labels.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        cmap : str or matplotlib Colormap, default="gray_r"
            Colour map of the images.

        Returns
        -------
        display : ManifoldDisplay
        """
        ax, figure = _get_axes(ax, "ManifoldDisplay.plot")
        images = np.asarray(self.images, dtype=float)
        n_rows, n_cols, height, width = images.shape
        mosaic = _tile(images.reshape(-1, height, width), n_cols, pad=0)
        self.image_ = ax.imshow(mosaic, cmap=cmap, interpolation="nearest")
        ax.set_xticks(width * np.arange(n_cols) + (width - 1) / 2)
        ax.set_xticklabels([f"{z:.1f}" for z in self.grid[0, :, 0]], fontsize=6)
        ax.set_yticks(height * np.arange(n_rows) + (height - 1) / 2)
        ax.set_yticklabels([f"{z:.1f}" for z in self.grid[:, 0, 1]], fontsize=6)
        ax.set(xlabel="z_1", ylabel="z_2")
        self.ax_, self.figure_ = ax, figure
        return self
