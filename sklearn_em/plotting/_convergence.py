"""ConvergenceDisplay: the objective per iteration of an EM or VAE fit."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._utils import _get_axes


class ConvergenceDisplay:
    """The training objective per iteration.

    For a mixture fitted by EM, ``lower_bounds_``: the mean log-likelihood per
    sample after every iteration, which EM never decreases. For a VAE, the
    negative training loss per epoch (the ELBO, with the KL term weighted by
    ``beta``) and, with early stopping, the validation ELBO.

    Use :meth:`from_estimator` to create one.

    Parameters
    ----------
    curves : dict of str to array-like
        Curves by legend label.

    ylabel : str, default="objective"
        Label of the vertical axis.

    Attributes
    ----------
    lines_ : list of matplotlib Line2D
        One line per curve, in the order of ``curves``.

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
    >>> from sklearn_em.plotting import ConvergenceDisplay
    >>> X, _ = load_iris(return_X_y=True)
    >>> gm = GaussianMixtureEM(3, random_state=0).fit(X)
    >>> disp = ConvergenceDisplay.from_estimator(gm)
    >>> len(disp.lines_[0].get_ydata()) == gm.n_iter_
    True
    """

    def __init__(self, *, curves, ylabel="objective"):
        self.curves = curves
        self.ylabel = ylabel

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, **kwargs):
        """Plot the training history of a fitted estimator.

        Parameters
        ----------
        estimator : fitted mixture or VAETransformer
            An estimator with ``lower_bounds_`` (mixtures) or ``loss_curve_``
            and ``validation_scores_`` (VAE).

        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : ConvergenceDisplay
        """
        check_is_fitted(estimator)
        if hasattr(estimator, "lower_bounds_"):
            curves = {"lower bound": np.asarray(estimator.lower_bounds_)}
            ylabel = "mean log-likelihood per sample"
        elif hasattr(estimator, "loss_curve_"):
            curves = {"training: -loss": -np.asarray(estimator.loss_curve_)}
            validation = getattr(estimator, "validation_scores_", None)
            if validation is not None:
                curves["validation ELBO"] = np.asarray(validation)
            ylabel = "ELBO per sample (nats)"
        else:
            raise TypeError(
                "ConvergenceDisplay needs an estimator with lower_bounds_ or "
                f"loss_curve_; got {type(estimator).__name__}."
            )
        return cls(curves=curves, ylabel=ylabel).plot(ax=ax, **kwargs)

    def plot(self, ax=None, **line_kwargs):
        """Draw one line per curve against the iteration number (from 1).

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        **line_kwargs : dict
            Passed to ``ax.plot``.

        Returns
        -------
        display : ConvergenceDisplay
        """
        ax, figure = _get_axes(ax, "ConvergenceDisplay.plot")
        line_kwargs = {"marker": ".", **line_kwargs}
        self.lines_ = []
        for label, values in self.curves.items():
            values = np.asarray(values, dtype=float)
            (line,) = ax.plot(
                np.arange(1, len(values) + 1), values, label=label, **line_kwargs
            )
            self.lines_.append(line)
        ax.set(xlabel="iteration", ylabel=self.ylabel)
        ax.legend(loc="lower right")
        self.ax_, self.figure_ = ax, figure
        return self
