"""Imputation by the conditional expectation under a Gaussian mixture."""

import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import MissingIndicator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ..mixture import GaussianMixtureEM
from ..mixture._data import as_data
from ..mixture._missing import gaussian_impute_rows

#: Candidates of ``n_components="auto"``.
_AUTO_COMPONENTS = (1, 2, 3)

#: "auto" fits a candidate only if it has at most this many free parameters
#: per observed value.
_OBSERVED_PER_PARAMETER = 0.1


def _n_free_parameters(n_components, n_features, covariance_type):
    """Free parameters of a Gaussian mixture: weights, means, covariances."""
    covariance = {
        "full": n_components * n_features * (n_features + 1) // 2,
        "tied": n_features * (n_features + 1) // 2,
        "diag": n_components * n_features,
        "spherical": n_components,
    }[covariance_type]
    return n_components - 1 + n_components * n_features + covariance


def _mean_and_scale(X):
    """Each column's mean and standard deviation over its observed values.

    Computed on the column divided by a power of two near its largest
    magnitude where its squares could overflow (values beyond 1e150): the
    standard deviation of values of 1e200 had been infinite, and the
    imputations NaN. A power of two divides and multiplies exactly, so
    other columns are computed as ``np.nanmean`` and ``np.nanstd`` compute
    them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float64, NaN for missing values.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,)
        NaN for a column without an observed value; ``scale`` is 1 where the
        column is constant or empty.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty features
        largest = np.nanmax(np.abs(X), axis=0) if len(X) else np.zeros(X.shape[1])
        unit = np.ones(X.shape[1])
        large = largest > _LARGEST_SCALED
        unit[large] = np.exp2(np.ceil(np.log2(largest[large])))
        mean = np.nanmean(X / unit, axis=0) * unit
        scale = np.nanstd(X / unit, axis=0) * unit
    scale[~(scale > 0)] = 1.0
    return mean, scale


#: Columns with larger values are scaled to about 1 before their moments
#: (see _mean_and_scale).
_LARGEST_SCALED = 1e150


def _is_nan(value):
    """Whether ``value`` is a float NaN (the default missing-value marker)."""
    return bool(isinstance(value, Real) and np.isnan(value))


class GaussianMixtureImputer(TransformerMixin, BaseEstimator):
    """Impute missing values with their expectation under a Gaussian mixture.

    A :class:`~sklearn_em.GaussianMixtureEM` is fitted to the data *with* its
    missing values: EM marginalises them out (see :ref:`missing_values`), so
    no value is filled in to fit the model. Each missing value is then
    replaced by its conditional expectation given the row's observed values,

    ``E[x_m | x_o] = sum_k p(k | x_o) (mu_km + Sigma_k,mo Sigma_k,oo^-1
    (x_o - mu_ko))``,

    the regression of the missing coordinates on the observed ones within
    each component, weighted by the posterior of the components. With
    ``sample_posterior=True``, a draw from that conditional distribution
    replaces the expectation, for multiple imputation.

    The features are standardised (with the mean and standard deviation of
    their observed values) before the mixture is fitted, so that
    ``reg_covar`` is relative to each feature's variance; the output is in
    the original units, and observed values are returned unchanged.

    Parameters
    ----------
    n_components : int or "auto", default="auto"
        The number of mixture components. "auto" fits 1, 2 and 3 components
        and keeps the mixture with the lowest Bayesian information criterion
        (BIC) of the observed values. A mixture with more free parameters
        than a tenth of the observed values is not fitted (one component
        always is): with fewer than ten observed values per parameter its
        covariances are mostly ``reg_covar``, BIC's penalty outweighs its
        gain, and its EM, with many missing values, is the slowest of all.
        Each full covariance has ``n_features (n_features + 1) / 2``
        parameters, and on the benchmark's data sets more components did not
        impute better (see :ref:`missing_values`); pass an int for more.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        The covariance structure of the components. Only 'full' and 'tied'
        covariances relate the features within a component; with 'diag' and
        'spherical' a missing value is predicted from the posterior of the
        components alone.

    missing_values : int or float, default=np.nan
        The placeholder for the missing values: all its occurrences are
        imputed.

    sample_posterior : bool, default=False
        Whether to draw each row's missing values from their conditional
        distribution under the mixture (a component from its posterior,
        then a Gaussian draw) instead of taking their expectation. Each
        call to :meth:`transform` draws anew from ``random_state``; fit
        several imputers with different ``random_state`` for multiple
        imputations.

    add_indicator : bool, default=False
        If True, a :class:`~sklearn.impute.MissingIndicator` transform is
        stacked onto the output: one binary column per feature that had
        missing values at fit time.

    keep_empty_features : bool, default=False
        If True, features that consist only of missing values when
        :meth:`fit` is called are kept in the output, imputed with 0.
        Otherwise they are dropped.

    reg_covar : float, default=1e-2
        Non-negative regularisation added to the diagonal of the
        covariances of the standardised features.

    tol : float, default=3e-2
        EM stops when the gain in mean log-likelihood per sample is below
        this threshold. Looser than the mixtures' default: the imputations
        change little in the last iterations of EM with many missing values,
        which are slow (the benchmark's errors were as low or lower than
        with ``tol=1e-3``, in a third to a half of the iterations).

    max_iter : int, default=100
        The maximum number of EM iterations of each fit.

    n_init : int, default=1
        The number of initialisations of each fit; the best is kept.

    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, \
            default='kmeans'
        The initialisation of the mixture, on mean-imputed data (see
        :class:`~sklearn_em.GaussianMixtureEM`).

    random_state : int, RandomState instance or None, default=None
        Controls the initialisations and the draws of
        ``sample_posterior=True``. Pass an int for reproducible results.

    n_jobs : int, default=None
        Threads of the mixture's E-step, see
        :class:`~sklearn_em.GaussianMixtureEM`.

    Attributes
    ----------
    mixture_ : GaussianMixtureEM
        The mixture of the standardised non-empty features; None when every
        feature is empty.

    n_components_ : int
        The number of components of ``mixture_``.

    bic_ : dict
        Number of components -> Bayesian information criterion of the
        standardised data, for every candidate that was fitted.

    n_iter_ : int
        Number of EM iterations of ``mixture_``.

    mean_ : ndarray of shape (`n_features_in_`,)
        Mean of the observed values of each feature (NaN for empty ones).

    scale_ : ndarray of shape (`n_features_in_`,)
        Standard deviation of the observed values of each feature (1 where
        it is 0 or undefined).

    indicator_ : sklearn.impute.MissingIndicator
        Indicator for the missing values; None when ``add_indicator`` is
        False.

    random_state_ : numpy.random.RandomState
        The random number generator of the fit, from ``random_state``; the
        draws of ``sample_posterior=True`` continue its stream.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.impute.IterativeImputer : Chained regressions, one per feature.
    sklearn.impute.KNNImputer : The mean of the nearest neighbours.
    sklearn.impute.SimpleImputer : One statistic per feature.
    sklearn_em.GaussianMixtureEM : The mixture itself, which takes missing
        values as well.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_em import GaussianMixtureImputer
    >>> rng = np.random.RandomState(0)
    >>> x = rng.normal(size=200)
    >>> X = np.column_stack([x, 2 * x + 0.1 * rng.normal(size=200)])
    >>> X[:5, 1] = np.nan
    >>> imputer = GaussianMixtureImputer(random_state=0).fit(X)
    >>> X_filled = imputer.transform(X[:5])
    >>> bool(np.allclose(X_filled[:, 1], 2 * x[:5], atol=0.3))
    True
    """

    _parameter_constraints: dict = {
        "n_components": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "covariance_type": [StrOptions({"full", "tied", "diag", "spherical"})],
        "missing_values": [Real],
        "sample_posterior": ["boolean"],
        "add_indicator": ["boolean"],
        "keep_empty_features": ["boolean"],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [
            StrOptions({"kmeans", "random", "random_from_data", "k-means++"})
        ],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        n_components="auto",
        *,
        covariance_type="full",
        missing_values=np.nan,
        sample_posterior=False,
        add_indicator=False,
        keep_empty_features=False,
        reg_covar=1e-2,
        tol=3e-2,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        random_state=None,
        n_jobs=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.missing_values = missing_values
        self.sample_posterior = sample_posterior
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features
        self.reg_covar = reg_covar
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _validate_input(self, X, *, reset):
        """Validated float ``X`` and the same with NaN for every missing value."""
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan" if _is_nan(self.missing_values) else True,
            ensure_min_samples=2 if reset else 1,
        )
        if _is_nan(self.missing_values):
            return X, X
        X_nan = X.copy()
        X_nan[X == self.missing_values] = np.nan
        return X, X_nan

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the Gaussian mixture on ``X``, missing values included.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data, with missing values marked by ``missing_values``.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        X, X_nan = self._validate_input(X, reset=True)
        self.random_state_ = check_random_state(self.random_state)
        if self.add_indicator:
            self.indicator_ = MissingIndicator(
                missing_values=self.missing_values, error_on_new=False
            ).fit(X)
        else:
            self.indicator_ = None

        observed = ~np.isnan(X_nan)
        self._valid = observed.any(axis=0)
        Xv = X_nan[:, self._valid].astype(np.float64)
        self.mean_, self.scale_ = _mean_and_scale(X_nan.astype(np.float64))
        self.bic_ = {}
        if not self._valid.any():
            self.mixture_, self.n_components_, self.n_iter_ = None, 0, 0
            return self
        Z = (Xv - self.mean_[self._valid]) / self.scale_[self._valid]
        n_informative = int(observed[:, self._valid].any(axis=1).sum())
        if self.n_components == "auto":
            n_observed = int(observed[:, self._valid].sum())
            candidates = [
                k
                for k in _AUTO_COMPONENTS
                if k == 1
                or (
                    k <= n_informative
                    and _n_free_parameters(k, Z.shape[1], self.covariance_type)
                    <= _OBSERVED_PER_PARAMETER * n_observed
                )
            ]
        else:
            candidates = [self.n_components]
        seed = self.random_state_.randint(np.iinfo(np.int32).max)
        best = None
        for n_components in candidates:
            mixture = GaussianMixtureEM(
                n_components,
                covariance_type=self.covariance_type,
                reg_covar=self.reg_covar,
                tol=self.tol,
                max_iter=self.max_iter,
                n_init=self.n_init,
                init_params=self.init_params,
                random_state=seed,
                n_jobs=self.n_jobs,
            )
            if len(candidates) > 1:
                # The candidates are compared by BIC whether or not each
                # converged; only the kept one reports (below).
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    mixture.fit(Z)
            else:
                mixture.fit(Z)
            bic = mixture.bic(Z)
            self.bic_[n_components] = bic
            if best is None or bic < self.bic_[best.n_components]:
                best = mixture
        if len(candidates) > 1 and not best.converged_:
            warnings.warn(
                f"The selected mixture ({best.n_components} components) did not "
                "converge. Increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.mixture_ = best
        self.n_components_ = best.n_components
        self.n_iter_ = best.n_iter_
        return self

    def transform(self, X):
        """Impute every missing value of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data to complete.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features_out)
            ``X`` with its missing values imputed, without the features that
            were empty at fit time unless ``keep_empty_features``, followed
            by the missing indicator if ``add_indicator``.
        """
        check_is_fitted(self)
        X, X_nan = self._validate_input(X, reset=False)
        out = X_nan.copy()
        valid = self._valid
        if self.mixture_ is not None:
            Xv = out[:, valid]
            missing = np.isnan(Xv)
            if missing.any():
                Z = (Xv.astype(np.float64) - self.mean_[valid]) / self.scale_[valid]
                filled = self._impute_standardised(Z)
                filled = filled * self.scale_[valid] + self.mean_[valid]
                Xv[missing] = filled[missing]
                out[:, valid] = Xv
        if self.keep_empty_features:
            out[:, ~valid] = np.where(np.isnan(out[:, ~valid]), 0, out[:, ~valid])
        else:
            out = out[:, valid]
        if self.add_indicator:
            indicator = self.indicator_.transform(X).astype(out.dtype)
            out = np.hstack([out, indicator])
        return out

    def _impute_standardised(self, Z):
        """Conditional expectations (or draws) of the missing values of ``Z``."""
        parameters = self.mixture_._missing_parameters()
        if self.sample_posterior:
            return gaussian_impute_rows(Z, rng=self.random_state_, **parameters)
        data = as_data(self.mixture_, Z, reset=False)
        return data.map_rows(
            partial(gaussian_impute_rows, **parameters),
            n_outputs=Z.shape[1],
            dtype=np.float64,
        )

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input features. If None, ``feature_names_in_`` is used if
            defined, else ``["x0", "x1", ..., "x(n_features_in_ - 1)"]``.
            An array-like must match ``feature_names_in_`` if that is
            defined.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The kept input features, then the indicator's features.
        """
        check_is_fitted(self, "n_features_in_")
        input_features = _input_feature_names(self, input_features)
        names = (
            input_features if self.keep_empty_features else input_features[self._valid]
        )
        if self.add_indicator:
            names = np.concatenate(
                [names, self.indicator_.get_feature_names_out(input_features)]
            )
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = _is_nan(self.missing_values)
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _input_feature_names(estimator, input_features):
    """The input feature names, checked against ``feature_names_in_``.

    Parameters
    ----------
    estimator : fitted estimator

    input_features : array-like of str or None

    Returns
    -------
    names : ndarray of str objects of shape (n_features_in_,)
    """
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if input_features is None:
        if fitted_names is not None:
            return np.asarray(fitted_names, dtype=object)
        return np.asarray(
            [f"x{i}" for i in range(estimator.n_features_in_)], dtype=object
        )
    input_features = np.asarray(input_features, dtype=object)
    if fitted_names is not None and not np.array_equal(fitted_names, input_features):
        raise ValueError("input_features is not equal to feature_names_in_")
    if len(input_features) != estimator.n_features_in_:
        raise ValueError(
            f"input_features should have length equal to number of features "
            f"({estimator.n_features_in_}), got {len(input_features)}"
        )
    return input_features
