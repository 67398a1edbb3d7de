"""MixtureDisplay: data coloured by responsibilities, components as ellipses."""

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

from ._utils import _component_colors, _get_axes


def _full_covariances(covariances, covariance_type, n_components, n_features):
    """Expand fitted covariances to shape (n_components, n_features, n_features)."""
    covariances = np.asarray(covariances, dtype=float)
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return covariances[:, :, np.newaxis] * np.eye(n_features)
    if covariance_type == "spherical":
        return covariances[:, np.newaxis, np.newaxis] * np.eye(n_features)
    if covariance_type == "tied_diag":
        return np.broadcast_to(
            np.diag(covariances), (n_components, n_features, n_features)
        )
    if covariance_type == "tied_spherical":
        return np.broadcast_to(
            covariances * np.eye(n_features), (n_components, n_features, n_features)
        )
    raise ValueError(f"Unknown covariance_type={covariance_type!r}.")


def _projection(X, projection):
    """Affine map to 2-D: ``(center, components)`` with ``x -> (x - center) W^T``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    projection : {"auto", "features", "pca"}

    Returns
    -------
    center : ndarray of shape (n_features,)

    components : ndarray of shape (2, n_features)
        Orthonormal rows.
    """
    n_features = X.shape[1]
    if projection == "auto":
        projection = "features" if n_features <= 2 else "pca"
    if projection == "features":
        if n_features < 2:
            raise ValueError("MixtureDisplay needs at least 2 features.")
        return np.zeros(n_features), np.eye(2, n_features)
    if projection == "pca":
        center = X.mean(axis=0)
        # Right singular vectors of the centred data: the principal axes.
        _, _, vt = np.linalg.svd(X - center, full_matrices=False)
        # Fix the signs as scikit-learn's PCA does (largest |loading| positive).
        signs = np.sign(vt[np.arange(2), np.argmax(np.abs(vt[:2]), axis=1)])
        return center, vt[:2] * signs[:, np.newaxis]
    raise ValueError(
        f"projection must be 'auto', 'features' or 'pca'; got {projection!r}."
    )


def _ellipse_geometry(covariance, n_std):
    """Width, height and angle (degrees) of the ``n_std``-sigma ellipse.

    The ellipse ``{x : (x - m)^T Sigma^{-1} (x - m) = n_std^2}`` has semi-axes
    ``n_std * sqrt(lambda_i)`` along the eigenvectors of ``Sigma`` (2, 2).
    """
    eigvals, eigvecs = np.linalg.eigh(covariance)
    eigvals = np.clip(eigvals, 0, None)
    width, height = 2 * n_std * np.sqrt(eigvals[::-1])
    angle = np.degrees(np.arctan2(eigvecs[1, -1], eigvecs[0, -1]))
    return width, height, angle


class MixtureDisplay:
    """Data coloured by responsibilities with Gaussian components as ellipses.

    Each point's colour mixes the components' colours in proportion to its
    responsibilities ``r_nk = p(k | x_n)``; every component is drawn as its
    1- and 2-sigma ellipses (Mahalanobis distance 1 and 2 from the mean).
    Data of more than two features are shown in the plane of their first two
    principal components, where a Gaussian ``N(mu, Sigma)`` projects to
    ``N(W (mu - c), W Sigma W^T)``.

    Use :meth:`from_estimator` to create one; all attributes are in the
    plane of the plot.

    Parameters
    ----------
    X : ndarray of shape (n_samples, 2)
        Projected data.

    resp : ndarray of shape (n_samples, n_components)
        Responsibilities.

    means : ndarray of shape (n_components, 2)
        Projected means.

    covariances : ndarray of shape (n_components, 2, 2)
        Projected covariances.

    weights : ndarray of shape (n_components,), default=None
        Mixture weights, shown in the legend.

    axis_labels : tuple of str, default=("x_0", "x_1")
        Labels of the horizontal and vertical axes.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
        The data points.

    ellipses_ : ndarray of matplotlib Ellipse of shape (n_components, n_std)
        ``ellipses_[k, j]`` is the ``n_std[j]``-sigma ellipse of component k.

    means_scatter_ : matplotlib PathCollection
        The component means.

    ax_ : matplotlib Axes
        Axes of the plot.

    figure_ : matplotlib Figure
        Figure of the plot.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_em import GaussianMixtureEM
    >>> from sklearn_em.plotting import MixtureDisplay
    >>> X, _ = load_iris(return_X_y=True)
    >>> gm = GaussianMixtureEM(3, random_state=0).fit(X)
    >>> disp = MixtureDisplay.from_estimator(gm, X)
    >>> disp.ellipses_.shape
    (3, 2)
    """

    def __init__(
        self, *, X, resp, means, covariances, weights=None, axis_labels=("x_0", "x_1")
    ):
        self.axis_labels = axis_labels
        self.X = X
        self.resp = resp
        self.means = means
        self.covariances = covariances
        self.weights = weights

    @classmethod
    def from_estimator(cls, estimator, X, *, projection="auto", ax=None, **kwargs):
        """Plot a fitted Gaussian mixture over the data X.

        Parameters
        ----------
        estimator : GaussianMixtureEM or sklearn.mixture.GaussianMixture
            Fitted Gaussian mixture (with ``means_``, ``covariances_``,
            ``covariance_type`` and ``predict_proba``).

        X : array-like of shape (n_samples, n_features)
            Data to show.

        projection : {"auto", "features", "pca"}, default="auto"
            "features" shows the first two features, "pca" the first two
            principal components of X; "auto" chooses "features" for two
            features and "pca" for more.

        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : MixtureDisplay
        """
        check_is_fitted(estimator)
        X = check_array(X, dtype=np.float64)
        center, W = _projection(X, projection)
        uses_features = projection == "features" or (
            projection == "auto" and X.shape[1] <= 2
        )
        axis_labels = ("feature 0", "feature 1") if uses_features else ("PC 1", "PC 2")
        n_components, n_features = estimator.means_.shape
        covariances = _full_covariances(
            estimator.covariances_,
            estimator.covariance_type,
            n_components,
            n_features,
        )
        display = cls(
            X=(X - center) @ W.T,
            resp=estimator.predict_proba(X),
            means=(estimator.means_ - center) @ W.T,
            covariances=W @ covariances @ W.T,
            weights=getattr(estimator, "weights_", None),
            axis_labels=axis_labels,
        )
        return display.plot(ax=ax, **kwargs)

    def plot(self, ax=None, *, n_std=(1, 2), scatter_kwargs=None, ellipse_kwargs=None):
        """Draw the data and the ellipses.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        n_std : tuple of float, default=(1, 2)
            Mahalanobis radii of the ellipses drawn for every component.

        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter`` for the data.

        ellipse_kwargs : dict, default=None
            Passed to ``matplotlib.patches.Ellipse``.

        Returns
        -------
        display : MixtureDisplay
            Object that stores the computed values and the artists.
        """
        ax, figure = _get_axes(ax, "MixtureDisplay.plot")
        from matplotlib.patches import Ellipse

        n_components = self.means.shape[0]
        colors = _component_colors(n_components)
        point_colors = np.clip(self.resp @ colors, 0, 1)
        scatter_kwargs = {"s": 10, "alpha": 0.8, **(scatter_kwargs or {})}
        self.scatter_ = ax.scatter(
            self.X[:, 0], self.X[:, 1], c=point_colors, **scatter_kwargs
        )
        n_std = tuple(n_std)
        self.ellipses_ = np.empty((n_components, len(n_std)), dtype=object)
        for k in range(n_components):
            for j, n in enumerate(n_std):
                width, height, angle = _ellipse_geometry(self.covariances[k], n)
                kwargs = {
                    "fill": False,
                    "edgecolor": colors[k],
                    "linewidth": 2 if j == 0 else 1,
                    "linestyle": "-" if j == 0 else "--",
                    **(ellipse_kwargs or {}),
                }
                if j == 0:
                    label = f"component {k}"
                    if self.weights is not None:
                        label += f" (weight {self.weights[k]:.2f})"
                    kwargs.setdefault("label", label)
                ellipse = Ellipse(self.means[k], width, height, angle=angle, **kwargs)
                ax.add_patch(ellipse)
                self.ellipses_[k, j] = ellipse
        self.means_scatter_ = ax.scatter(
            self.means[:, 0], self.means[:, 1], c=colors, marker="x", s=60
        )
        ax.set(xlabel=self.axis_labels[0], ylabel=self.axis_labels[1])
        ax.set_aspect("equal", adjustable="datalim")
        ax.autoscale_view()
        if n_components <= 10:
            ax.legend(loc="best", fontsize="small")
        self.ax_, self.figure_ = ax, figure
        return self
