"""InformationCriterionDisplay: criterion against K, one line per structure."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..mixture._selection import MCLUST_NAMES
from ._utils import _check_matplotlib_support, _get_axes

_CRITERION_LABELS = {"bic": "BIC", "aic": "AIC", "icl": "ICL"}


class InformationCriterionDisplay:
    """Information criterion against the number of components.

    The picture R's mclust draws with ``plot(fit, what = "BIC")``: one line
    per covariance structure, the criterion of every candidate against its
    number of components K, and the selected candidate marked. The criteria
    are lower-is-better, as in :class:`~sklearn_em.GaussianMixtureIC` (mclust
    draws minus BIC, higher-is-better). Failed candidates leave gaps.

    With the training data, :meth:`from_estimator` draws the selected
    mixture over them beside the curves, with
    :class:`~sklearn_em.plotting.MixtureDisplay` (in the plane of the first
    two principal components when there are more than two features).

    Use :meth:`from_estimator` to create one.

    Parameters
    ----------
    n_components : array-like of int of shape (n_k,)
        The numbers of components searched, increasing.

    values : dict of str to array-like of shape (n_k,)
        The criterion of every K, by curve label (a covariance structure);
        NaN where a candidate failed.

    criterion : {"bic", "aic", "icl"}, default="bic"
        The criterion shown, for the axis label.

    best : tuple of (int, str) or None, default=None
        ``(n_components, label)`` of the candidate to mark.

    Attributes
    ----------
    lines_ : dict of str to matplotlib Line2D
        One line per curve.

    best_marker_ : matplotlib PathCollection or None
        The mark on the selected candidate.

    mixture_display_ : MixtureDisplay or None
        The selected mixture over the data, when :meth:`from_estimator` got
        them.

    ax_ : matplotlib Axes
        Axes of the curves.

    figure_ : matplotlib Figure
        Figure of the plot.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_em import GaussianMixtureIC
    >>> from sklearn_em.plotting import InformationCriterionDisplay
    >>> X, _ = load_iris(return_X_y=True)
    >>> search = GaussianMixtureIC(n_components=5, random_state=0).fit(X)
    >>> disp = InformationCriterionDisplay.from_estimator(search, X)
    >>> sorted(disp.lines_)
    ['diag', 'full', 'spherical', 'tied', 'tied_diag', 'tied_spherical']
    >>> disp.mixture_display_.ellipses_.shape[0] == search.n_components_
    True
    """

    def __init__(self, *, n_components, values, criterion="bic", best=None):
        self.n_components = n_components
        self.values = values
        self.criterion = criterion
        self.best = best

    @classmethod
    def from_estimator(cls, estimator, X=None, *, criterion=None, ax=None, **kwargs):
        """Plot the criteria of a fitted search, and its mixture over ``X``.

        Parameters
        ----------
        estimator : GaussianMixtureIC or BernoulliMixtureIC
            A fitted search, with ``results_``.

        X : array-like of shape (n_samples, n_features), default=None
            Data to draw the selected Gaussian mixture over, on a second
            Axes. None draws the curves alone.

        criterion : {"bic", "aic", "icl"}, default=None
            The criterion drawn; the estimator's own if None. The candidate
            marked is the one this criterion selects.

        ax : matplotlib Axes, or sequence of two Axes when X is given, \
                default=None
            Where to draw; a new figure is created if None.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : InformationCriterionDisplay
        """
        check_is_fitted(estimator, "results_")
        criterion = estimator.criterion if criterion is None else criterion
        results = estimator.results_
        if criterion not in _CRITERION_LABELS:
            raise ValueError(
                f"criterion must be one of {sorted(_CRITERION_LABELS)}; "
                f"got {criterion!r}."
            )
        n_components = np.unique(results["n_components"])
        types = results.get("covariance_type")
        labels = (
            list(dict.fromkeys(types.tolist())) if types is not None else ["mixture"]
        )
        values = {}
        for label in labels:
            curve = np.full(len(n_components), np.nan)
            rows = (
                np.arange(len(results[criterion]))
                if types is None
                else np.flatnonzero(types == label)
            )
            positions = np.searchsorted(n_components, results["n_components"][rows])
            curve[positions] = results[criterion][rows]
            values[label] = curve
        scores = np.asarray(results[criterion], dtype=float)
        best = None
        if np.isfinite(scores).any():
            i = int(np.nanargmin(scores))
            best = (
                int(results["n_components"][i]),
                "mixture" if types is None else str(types[i]),
            )
        display = cls(
            n_components=n_components,
            values=values,
            criterion=criterion,
            best=best,
        )
        if X is None:
            return display.plot(ax=ax, **kwargs)
        if types is None:
            raise ValueError(
                "X can only be drawn for a Gaussian mixture search "
                "(GaussianMixtureIC); call from_estimator without X."
            )
        from ._mixture import MixtureDisplay

        if ax is None:
            _check_matplotlib_support("InformationCriterionDisplay.from_estimator")
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(1, 2, figsize=(11, 4.5))
        if np.ndim(ax) != 1 or len(ax) != 2:
            raise ValueError(
                "With X, ax must be a sequence of two matplotlib Axes: one for "
                "the criteria and one for the mixture."
            )
        display.plot(ax=ax[0], **kwargs)
        display.mixture_display_ = MixtureDisplay.from_estimator(
            estimator.best_estimator_, X, ax=ax[1]
        )
        display.mixture_display_.ax_.set_title(
            f"selected: K={estimator.n_components_}, {estimator.covariance_type_}"
        )
        return display

    def plot(self, ax=None, *, line_kwargs=None, best_kwargs=None):
        """Draw one line per curve and mark the selected candidate.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.

        line_kwargs : dict, default=None
            Passed to ``ax.plot`` for every curve.

        best_kwargs : dict, default=None
            Passed to ``ax.scatter`` for the mark of the selected candidate.

        Returns
        -------
        display : InformationCriterionDisplay
            Object that stores the computed values and the artists.
        """
        ax, figure = _get_axes(ax, "InformationCriterionDisplay.plot")
        n_components = np.asarray(self.n_components)
        markers = "osD^vP*Xh<>"
        self.lines_ = {}
        for i, (label, curve) in enumerate(self.values.items()):
            name = (
                label
                if label not in MCLUST_NAMES
                else (f"{label} ({MCLUST_NAMES[label]})")
            )
            kwargs = {
                "marker": markers[i % len(markers)],
                "markersize": 5,
                "label": name,
                **(line_kwargs or {}),
            }
            (self.lines_[label],) = ax.plot(
                n_components, np.asarray(curve, dtype=float), **kwargs
            )
        self.best_marker_ = None
        if self.best is not None:
            k, label = self.best
            value = np.asarray(self.values[label], dtype=float)[
                np.searchsorted(n_components, k)
            ]
            color = self.lines_[label].get_color()
            kwargs = {
                "s": 250,
                "facecolors": "none",
                "edgecolors": color,
                "linewidths": 2,
                "zorder": 3,
                "label": f"selected: K={k}"
                + ("" if label == "mixture" else f", {label}"),
                **(best_kwargs or {}),
            }
            self.best_marker_ = ax.scatter([k], [value], **kwargs)
        criterion = _CRITERION_LABELS.get(self.criterion, self.criterion)
        ax.set(
            xlabel="number of components K",
            ylabel=f"{criterion} (lower is better)",
        )
        if 0 < n_components.size <= 20:
            ax.set_xticks(n_components)
        ax.legend(loc="best", fontsize="small")
        self.mixture_display_ = getattr(self, "mixture_display_", None)
        self.ax_, self.figure_ = ax, figure
        return self
