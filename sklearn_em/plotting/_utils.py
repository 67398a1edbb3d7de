"""Helpers shared by the Display classes: lazy matplotlib, axes, colours."""

import numpy as np


def _check_matplotlib_support(caller_name):
    """Import matplotlib, or raise an ImportError telling how to install it.

    Parameters
    ----------
    caller_name : str
        Name of the caller, quoted in the message.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"{caller_name} requires matplotlib, which is not installed. "
            'Install it with: pip install "sklearn-em[plot]"'
        ) from e


def _get_axes(ax, caller_name):
    """Return ``(ax, figure)``, creating a new figure when ``ax`` is None."""
    _check_matplotlib_support(caller_name)
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax, ax.figure


def _component_colors(n_colors):
    """RGB colours of ``n_colors`` categories, shape (n_colors, 3)."""
    import matplotlib as mpl

    if n_colors <= 10:
        colors = mpl.colormaps["tab10"](np.arange(n_colors))
    else:
        colors = mpl.colormaps["turbo"](np.linspace(0.05, 0.95, n_colors))
    return colors[:, :3]


def _image_shape(n_features, image_shape):
    """Validate ``image_shape`` against ``n_features``; infer a square one."""
    if image_shape is None:
        side = int(round(np.sqrt(n_features)))
        if side * side != n_features:
            raise ValueError(
                f"Cannot infer a square image shape from {n_features} features; "
                "pass image_shape=(height, width)."
            )
        return side, side
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 2 or image_shape[0] * image_shape[1] != n_features:
        raise ValueError(
            f"image_shape={image_shape} does not match {n_features} features: "
            "height * width must equal the number of features."
        )
    return image_shape


def _tile(images, n_cols, pad_value=np.nan, pad=1):
    """Tile images of shape (n_images, h, w) into one mosaic, row by row.

    Returns
    -------
    mosaic : ndarray of shape (n_rows * (h + pad) - pad, n_cols * (w + pad) - pad)
        Gaps between the images hold ``pad_value``.
    """
    n_images, h, w = images.shape
    n_rows = -(-n_images // n_cols)
    mosaic = np.full(
        (n_rows * (h + pad) - pad, n_cols * (w + pad) - pad), pad_value, dtype=float
    )
    for i, image in enumerate(images):
        r, c = divmod(i, n_cols)
        mosaic[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = (
            image
        )
    return mosaic
