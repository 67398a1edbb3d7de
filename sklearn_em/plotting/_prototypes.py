"""PrototypeDisplay: the means of a mixture shown as images."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._utils import _get_axes, _image_shape


class PrototypeDisplay:
    """The component means of a mixture as images, one per component.

    For a Bernoulli mixture of binary images, ``means_[k, d]`` is the
    probability that pixel ``d`` is on in component ``k``: each mean is the
    component's prototype image. Gaussian mixtures of images work alike.

    Use :meth:`from_estimator` to create one.

    Parameters
    ----------
    images : ndarray of shape (n_components, height, width)
        The prototypes.

    weights : ndarray of shape (n_components,), default=None
        Mixture weights, written above the images.

    Attributes
    ----------
    images_ : list of matplotlib AxesImage
        One image per component, in the order of ``images``, all on ``ax_``.

    texts_ : list of matplotlib Text
        The weight above each image (empty without weights).

    ax_ : matplotlib Axes
        Axes of the plot.

    figure_ : matplotlib Figure
        Figure of the plot.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_em import GaussianMixtureEM
    >>> from sklearn_em.plotting import PrototypeDisplay
    >>> X, _ = load_digits(return_X_y=True)
    >>> gm = GaussianMixtureEM(4, covariance_type="diag", random_state=0).fit(X)
    >>> disp = PrototypeDisplay.from_estimator(gm)
    >>> len(disp.images_), disp.images_[0].get_array().shape
    (4, (8, 8))
    """

    def __init__(self, *, images, weights=None):
        self.images = images
        self.weights = weights

    @classmethod
    def from_estimator(
        cls, estimator, *, image_shape=None, sort_by_weight=True, ax=None, **kwargs
    ):
        """Show the means of a fitted mixture as images.

        Parameters
        ----------
        estimator : fitted mixture
            An estimator with ``means_`` of shape (n_components, n_features)
            and, optionally, ``weights_``.

        image_shape : tuple of int (height, width), default=None
            Shape of one image; inferred as a square if None.

        sort_by_weight : bool, default=True
            Whether to show the components by decreasing weight.

        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : PrototypeDisplay
        """
        check_is_fitted(estimator)
        means = np.asarray(estimator.means_, dtype=float)
        weights = getattr(estimator, "weights_", None)
        height, width = _image_shape(means.shape[1], image_shape)
        order = np.arange(means.shape[0])
        if sort_by_weight and weights is not None:
            order = np.argsort(-np.asarray(weights), kind="stable")
        display = cls(
            images=means[order].reshape(-1, height, width),
            weights=None if weights is None else np.asarray(weights)[order],
        )
        return display.plot(ax=ax, **kwargs)

    def plot(self, ax=None, *, n_cols=None, cmap="gray_r", vmin=None, vmax=None):
        """Draw the images on a grid within one Axes.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        n_cols : int, default=None
            Images per row; ``ceil(sqrt(n_components))`` if None.

        cmap : str or matplotlib Colormap, default="gray_r"
            Colour map of the images.

        vmin, vmax : float, default=None
            Range of the colour map, shared by all images; the range of all
            the images if None.

        Returns
        -------
        display : PrototypeDisplay
        """
        ax, figure = _get_axes(ax, "PrototypeDisplay.plot")
        images = np.asarray(self.images, dtype=float)
        n_images, height, width = images.shape
        if n_cols is None:
            n_cols = int(np.ceil(np.sqrt(n_images)))
        n_rows = -(-n_images // n_cols)
        vmin = images.min() if vmin is None else vmin
        vmax = images.max() if vmax is None else vmax
        gap = 0.15 * max(height, width)
        text_room = 0.3 * height if self.weights is not None else 0
        self.images_, self.texts_ = [], []
        for i, image in enumerate(images):
            r, c = divmod(i, n_cols)
            left = c * (width + gap)
            top = -r * (height + gap + text_room)
            extent = (left, left + width, top - height, top)
            self.images_.append(
                ax.imshow(
                    image,
                    cmap=cmap,
                    vmin=vmin,
                    vmax=vmax,
                    extent=extent,
                    interpolation="nearest",
                )
            )
            if self.weights is not None:
                self.texts_.append(
                    ax.text(
                        left + width / 2,
                        top + 0.05 * height,
                        f"{self.weights[i]:.3f}",
                        ha="center",
                        va="bottom",
                        fontsize="x-small",
                    )
                )
        ax.set_xlim(-gap / 2, n_cols * (width + gap) - gap / 2)
        ax.set_ylim(-n_rows * (height + gap + text_room) + gap / 2, text_room + gap / 2)
        ax.set_aspect("equal")
        ax.set_axis_off()
        self.ax_, self.figure_ = ax, figure
        return self
