"""The EM loop shared by every mixture model of the package.

:class:`BaseMixtureEM` is a template method, shaped like scikit-learn's
``BaseMixture``: it owns ``n_init``, ``warm_start``, convergence on ``tol``,
the ``ConvergenceWarning``, keeping the best initialisation, ``sample_weight``
and the prediction methods. A model fills in its maths through a few hooks:

- ``_check_parameters(X)``: validate the user's initial parameters;
- ``_weighted_log_prob_function()``: a picklable callable returning
  ``log pi_k + log p(x_n | k)`` for a chunk of rows;
- ``_accumulate_function(shift)``: a picklable callable returning the chunk's
  sufficient statistics from its weighted responsibilities;
- ``_m_step(stats)``: new parameters from the reduced statistics;
- ``_initialize_from_given(X)``: the case where the user supplied every
  initial parameter;
- ``_get_parameters``, ``_set_parameters``, ``_n_parameters`` and
  ``_sample_components``;
- ``_missing_e_step_function(complete)`` and
  ``_missing_log_prob_function(complete)``: the per-chunk functions for data
  with missing values (NaN), given the complete-data ones; used only when
  the data holds a NaN (see :mod:`._missing`).

Every pass over the data goes through :mod:`._data`: ``X`` is validated and
wrapped once per call in the object of its kind (in memory or Dask), whose
``map_reduce`` and ``map_rows`` run the model's per-chunk functions. The loop
below never asks what kind of data it holds, so chunking, threads, weights,
``partial_fit`` and Dask share one code path.
"""

import copy
import warnings
from abc import ABCMeta, abstractmethod
from functools import cache, partial
from numbers import Integral, Real
from time import time

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import row_norms
from sklearn.utils.validation import check_is_fitted

from ._arrays import ArrayData, check_enough_samples, validate_rows
from ._data import as_data
from ._kmeans import AVAILABLE as _EXACT_KMEANS
from ._kmeans import kmeans_labels
from ._kmeans import kmeans_plusplus as _seeds
from ._missing import check_missing, check_missing_magnitude
from ._online import blend_statistics, recentre_statistics, step_size
from ._suffstats import (
    CollapseError,
    blas_limit_for,
    chunk_rows,
    e_step_chunk,
    foreign_blas_limits,
    label_rows,
    log_likelihood_rows,
    n_threads,
    proba_rows,
    resp_chunk,
    single_threaded_blas,
)

# What partial_fit keeps between calls; fit discards it.
_ONLINE_STATE = ("n_batch_iter_", "_online_stats", "_online_shift", "_online_weight")


def _check_shape(param, param_shape, name):
    """Raise a ValueError unless ``param`` has shape ``param_shape``."""
    param = np.asarray(param)
    if param.shape != param_shape:
        raise ValueError(
            f"The parameter '{name}' should have the shape of {param_shape}, "
            f"but got {param.shape}"
        )


def _check_parameter_array(
    param, param_shape, name, input_name=None, **check_array_params
):
    """Validate a user-provided initial parameter of shape ``param_shape``.

    A finite float64 or float32 ndarray of that shape is returned as it is,
    without :func:`~sklearn.utils.check_array`'s conversions (a tenth of a
    millisecond a call, every fit from given parameters: the candidates of
    a model-selection search); anything else goes through ``check_array``
    (``dtype`` float64 or float32, ``ensure_2d=False``, ``input_name``,
    by default ``name``, and ``check_array_params``) and the shape check,
    for their errors.

    Returns
    -------
    param : ndarray of shape ``param_shape``
    """
    if (
        isinstance(param, np.ndarray)
        and param.dtype in (np.float64, np.float32)
        and param.shape == param_shape
        and np.isfinite(param).all()
    ):
        return param
    param = check_array(
        param,
        dtype=[np.float64, np.float32],
        ensure_2d=False,
        input_name=name if input_name is None else input_name,
        **check_array_params,
    )
    _check_shape(param, param_shape, name)
    return param


def _check_weights(weights, n_components):
    """Validate user-provided mixture weights.

    Parameters
    ----------
    weights : array-like of shape (n_components,)

    n_components : int

    Returns
    -------
    weights : ndarray of shape (n_components,)
    """
    weights = _check_parameter_array(weights, (n_components,), "weights")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got "
            f"max value {weights.max():.5f}, min value {weights.min():.5f}"
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    # np.allclose(|1 - sum|, 0, atol), without its overhead (a fifth of a
    # small fit's validation).
    if not abs(1.0 - float(weights.sum())) <= atol:
        raise ValueError(
            "The parameter 'weights' should be normalized, but got "
            f"sum(weights) = {weights.sum():.5f}"
        )
    return weights


def _dense_resp(resp, n_components, dtype):
    """Responsibilities, shape (n_samples, n_components), from labels too.

    Parameters
    ----------
    resp : ndarray of shape (n_samples, n_components) or (n_samples,)
        Responsibilities, or the labels of a hard partition.

    n_components : int

    dtype : numpy dtype
        Of the one-hot responsibilities made from labels.

    Returns
    -------
    resp : ndarray of shape (n_samples, n_components)
    """
    if resp.ndim == 2:
        return resp
    dense = np.zeros((resp.shape[0], n_components), dtype=dtype)
    dense[np.arange(resp.shape[0]), resp] = 1
    return dense


class BaseMixtureEM(
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    DensityMixin,
    BaseEstimator,
    metaclass=ABCMeta,
):
    """Base class for mixture models fitted by EM on sufficient statistics.

    This abstract class owns the EM loop; subclasses implement the model's
    maths through the hooks listed in the module docstring.

    .. warning:: This class should not be used directly. Use derived classes
       instead.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [
            StrOptions({"kmeans", "random", "random_from_data", "k-means++"})
        ],
        "weights": [StrOptions({"learn", "uniform"})],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "learning_decay": [Interval(Real, 0.5, 1.0, closed="right")],
        "learning_offset": [Interval(Real, 0.0, None, closed="left")],
    }

    def __init__(
        self,
        n_components,
        *,
        tol,
        max_iter,
        n_init,
        init_params,
        weights,
        weights_init,
        means_init,
        n_jobs,
        random_state,
        warm_start,
        verbose,
        verbose_interval,
        learning_decay=0.7,
        learning_offset=10.0,
    ):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights = weights
        self.weights_init = weights_init
        self.means_init = means_init
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    # ------------------------------------------------------------------
    # Data validation: overridden by models with other input domains.
    def _validate_X(self, X, *, reset):
        """Validate ``X``; ``reset=True`` at fit time. NaN marks a missing value."""
        return self._validate_rows(X, reset=reset)[0]

    def _validate_rows(self, X, *, reset):
        """Validate ``X`` and find whether it holds a NaN (a missing value).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)

        has_missing : bool

        magnitude : float or None
            At fit time (``reset``), a bound on ``max |x|`` from the same
            pass, or None (see :func:`~._missing.check_missing_magnitude`).
        """
        X = validate_rows(self, X, reset=reset)
        if reset:
            return X, *check_missing_magnitude(X, self.n_jobs)
        return X, check_missing(X, self.n_jobs), None

    def _check_parameters(self, X):
        """Validate the initial parameters shared by every mixture."""
        if self.weights_init is not None:
            if self.weights == "uniform":
                raise ValueError(
                    "weights_init cannot be combined with weights='uniform': "
                    "uniform mixture weights are fixed to 1 / n_components."
                )
            self._weights_init = _check_weights(self.weights_init, self.n_components)
        else:
            self._weights_init = None

    # ------------------------------------------------------------------
    # Hooks implemented by each model.
    @abstractmethod
    def _weighted_log_prob_function(self):
        """Return a callable X -> log pi_k + log p(x | k), shape (n, K)."""

    @abstractmethod
    def _accumulate_function(self, shift):
        """Return a callable (X, resp) -> dict of sufficient statistics."""

    @abstractmethod
    def _m_step(self, stats):
        """Set the parameters from the reduced sufficient statistics."""

    @abstractmethod
    def _means_from_statistics(self, stats):
        """Component means from statistics, used as the shift of a 2nd pass."""

    @abstractmethod
    def _get_parameters(self):
        pass

    @abstractmethod
    def _set_parameters(self, params):
        pass

    @abstractmethod
    def _n_parameters(self):
        """Number of free parameters of the model."""

    @abstractmethod
    def _sample_components(self, rng, n_samples_comp):
        """Draw ``n_samples_comp[k]`` samples of each component k."""

    def _missing_e_step_function(self, complete):
        """The per-chunk E-step for data with NaN, given the complete-data one."""
        raise ValueError(f"{type(self).__name__} does not accept missing values.")

    def _missing_log_prob_function(self, complete):
        """The per-chunk ``log pi_k + log p(x_o | k)`` for data with NaN."""
        raise ValueError(f"{type(self).__name__} does not accept missing values.")

    def _initialize_from_given(self, X):
        """Initialise from the user's parameters alone, without a data pass.

        Returns True when the user supplied every initial parameter and the
        model was initialised from them, False otherwise.
        """
        return False

    # ------------------------------------------------------------------
    # Passes over the data.
    def _chunk_rows(
        self, n_samples, n_features, itemsize, n_jobs, missing=None, prediction=False
    ):
        """Rows per chunk of the model's per-chunk functions.

        ``missing``: whether the data has missing values (None: unknown),
        whose kernels have temporaries of their own. ``prediction``: the
        chunks of a prediction, not of a fit.
        """
        return chunk_rows(
            n_samples,
            n_features,
            self.n_components,
            itemsize,
            n_jobs=n_jobs,
            model_row_values=self._chunk_row_values(
                n_features, itemsize, fitting=not prediction
            ),
            **self._chunk_sizing(n_features, itemsize, missing, prediction),
        )

    def _chunk_sizing(self, n_features, itemsize, missing, prediction=False):
        """Further keyword arguments of :func:`._suffstats.chunk_rows`
        (``exact``, ``cache_bytes``), if the model knows better."""
        return {}

    def _rows(self, X):
        """Rows per chunk for the in-memory ``X``."""
        n_samples, n_features = X.shape
        itemsize = np.dtype(getattr(X, "dtype", np.float64)).itemsize
        return self._chunk_rows(n_samples, n_features, itemsize, self.n_jobs)

    def _chunk_row_values(self, n_features, itemsize=8, fitting=True):
        """Values per row of the model's own chunk temporaries, if known
        (``fitting`` False: a prediction's chunks)."""
        return 0

    def _blas_limit(self, data, fitting=True):
        """BLAS's one-thread limit held for a fit (or, ``fitting=False``, a
        prediction) on ``data``, or no limit at all where its products are
        too small for BLAS's threads (see :func:`._suffstats.blas_limit_for`)."""
        work = None
        if isinstance(data, ArrayData):
            n_samples, n_features = data.shape
            if not fitting and n_samples <= data.rows and self.n_jobs is None:
                # A default prediction on one chunk has no threads of its own
                # for BLAS's to oversubscribe: its products take BLAS's
                # threads, as scikit-learn's do, and it saves setting the
                # limit (a prediction's time at 2,000 x 96, 'tied', one
                # component: 0.6; 500 x 200 with 12 components, 'full' 0.8,
                # 'spherical' 0.7). An explicit n_jobs keeps BLAS at one
                # thread.
                work = 0
            else:
                work = self._largest_product(
                    n_samples, n_features, data.dtype.itemsize, fitting=fitting
                )
        return blas_limit_for(work)

    def _largest_product(self, n_samples, n_features, itemsize=8, fitting=True):
        """Multiply-adds of the largest BLAS product of an EM iteration.

        By default the E-step's product over all the rows at once: (n_samples
        x its features per row) times (features per row x n_components).
        Models whose products have another shape (a per-component factor,
        say) override this: a product under-counted here runs on BLAS's
        threads in a fit that was meant to need none of them. ``fitting``
        False: a prediction's products only.
        """
        row_values = max(
            n_features, self._chunk_row_values(n_features, itemsize, fitting)
        )
        return n_samples * row_values * self.n_components

    def _e_step_statistics(self, data):
        """One E-step over all of ``data``, reduced to sufficient statistics."""
        function = self._e_step_chunk_function()
        if data.has_missing is not False:
            function = self._missing_e_step_function(function)
        return data.map_reduce(function)

    def _e_step_chunk_function(self):
        """The picklable per-chunk E-step for the current parameters."""
        return partial(
            e_step_chunk,
            weighted_log_prob=self._weighted_log_prob_function(),
            accumulate=self._accumulate_function(self._shift()),
        )

    def _log_prob_chunk_function(self, dtype):
        """The picklable per-chunk ``log pi_k + log p(x | k)`` for prediction.

        ``dtype`` is the dtype of the chunks it will receive.
        """
        return self._weighted_log_prob_function()

    def _shift(self):
        """The point sums of squares are accumulated around (current means)."""
        return self.means_

    def _statistics_from_resp(self, data, resp):
        """Sufficient statistics of given responsibilities, in two passes.

        The first pass gives the means; the second accumulates second moments
        around them, so no precision is lost to cancellation. ``resp`` may
        also be labels, shape (n_samples,): models with a faster way to the
        statistics of a hard partition override this method.
        """
        resp = _dense_resp(resp, self.n_components, data.dtype)
        first = data.map_reduce(
            partial(resp_chunk, accumulate=self._accumulate_function(None)), resp
        )
        shift = self._means_from_statistics(first)
        if shift is None:
            return first
        return data.map_reduce(
            partial(resp_chunk, accumulate=self._accumulate_function(shift)), resp
        )

    # ------------------------------------------------------------------
    # Initialisation.
    def _initial_resp(
        self, X, sample_weight, random_state, threaded_after=False, magnitude=None
    ):
        """Initial responsibilities from ``init_params``, shape (n, K).

        For ``'kmeans'``, the labels instead, shape (n,): hard
        responsibilities (see :meth:`_statistics_from_resp`).
        ``threaded_after``: EM's E-steps will run on the engine's threads
        (see :func:`._kmeans.kmeans_lloyd`). ``magnitude``: a bound on
        ``max |x|`` known from validation, or None (models that check the
        data's magnitude read it).
        """
        n_samples = X.shape[0]
        n_components = self.n_components
        dtype = X.dtype
        if self.init_params == "kmeans":
            if _EXACT_KMEANS and isinstance(X, np.ndarray):
                # KMeans(n_clusters=K, n_init=1, random_state).fit(X)'s labels,
                # bit for bit, without its validation and spinning threads.
                label = kmeans_labels(
                    X,
                    n_components,
                    sample_weight,
                    random_state,
                    self.n_jobs,
                    threaded_after=threaded_after,
                )
            else:
                with foreign_blas_limits():
                    label = (
                        KMeans(
                            n_clusters=n_components, n_init=1, random_state=random_state
                        )
                        .fit(X, sample_weight=sample_weight)
                        .labels_
                    )
            resp = np.asarray(label, dtype=np.intp)
        elif self.init_params == "random":
            resp = np.asarray(
                random_state.uniform(size=(n_samples, n_components)), dtype=dtype
            )
            resp /= resp.sum(axis=1)[:, np.newaxis]
        elif self.init_params == "random_from_data":
            resp = np.zeros((n_samples, n_components), dtype=dtype)
            p = None if sample_weight is None else sample_weight / sample_weight.sum()
            indices = random_state.choice(
                n_samples, size=n_components, replace=False, p=p
            )
            resp[indices, np.arange(n_components)] = 1
        else:  # "k-means++"
            resp = np.zeros((n_samples, n_components), dtype=dtype)
            if _EXACT_KMEANS and isinstance(X, np.ndarray):
                # sklearn.cluster.kmeans_plusplus's seeds, without its
                # validation (see _kmeans.kmeans_plusplus).
                weights = (
                    np.ones(n_samples, dtype=dtype)
                    if sample_weight is None
                    else np.asarray(sample_weight, dtype=dtype)
                )
                _, indices = _seeds(
                    X,
                    n_components,
                    row_norms(X, squared=True),
                    weights,
                    random_state,
                )
            else:
                _, indices = kmeans_plusplus(
                    X,
                    n_components,
                    sample_weight=sample_weight,
                    random_state=random_state,
                )
            resp[indices, np.arange(n_components)] = 1
        return resp

    def _initialize_parameters(self, data, random_state):
        """Initialise the parameters: from the user's values or from data."""
        if self._initialize_from_given(data):
            return
        # In memory: all the rows, or a random sample of a Dask array's.
        sample = data.init_sample(random_state)
        sample_weight = sample.sample_weight
        # Weights that are all equal change nothing but the random stream:
        # keep scikit-learn's unweighted initialisation in that case.
        init_weight = sample_weight
        if sample_weight is not None and np.all(sample_weight == sample_weight[0]):
            init_weight = None
        X_init = sample.X
        magnitude = getattr(sample, "magnitude", None)
        if sample.has_missing:
            # k-means cannot take NaN: the initial responsibilities come from
            # the data with each missing value replaced by its feature's mean;
            # the statistics below and EM then use the incomplete data.
            X_init = _mean_imputed(X_init, sample_weight)
        # One window for the initialisation's products (none for small data,
        # see _blas_limit; scikit-learn's KMeans, which limits BLAS itself,
        # gets a real one in _initial_resp). k-means opens its own: its
        # k-means++ seeding runs with BLAS's threads, as in KMeans, unless
        # EM's E-steps then run on the engine's threads.
        if self.init_params == "kmeans":
            # Whether EM's E-steps run on the engine's threads (several
            # chunks of in-memory data): k-means then keeps BLAS's threads,
            # which busy-wait once woken, off their cores.
            threaded_after = (
                isinstance(data, ArrayData)
                and data.n_samples > data.rows
                and n_threads(self.n_jobs) > 1
            )
            resp = self._initial_resp(
                X_init,
                init_weight,
                random_state,
                threaded_after=threaded_after,
                magnitude=magnitude,
            )
        else:
            with single_threaded_blas():
                resp = self._initial_resp(
                    X_init, init_weight, random_state, magnitude=magnitude
                )
        # The first M-step's factorisations under the limit too (k-means's
        # own window had set it; one component skips k-means), unless the
        # model's M-step runs on BLAS's threads (_initial_m_step_window).
        with single_threaded_blas():
            stats = self._statistics_from_resp(sample, resp)
        with self._initial_m_step_window():
            self._m_step(stats, initial=True)

    def _initial_m_step_window(self):
        """The BLAS window of the initial M-step: one thread by default."""
        return single_threaded_blas()

    # ------------------------------------------------------------------
    # Fitting.
    def _transaction(self):
        """Context manager: a fit that raises leaves the model as it was.

        Every attribute but the constructor's parameters is restored, so a
        failed ``fit`` or ``partial_fit`` of a fitted model keeps its
        parameters, running statistics and predictions, and an unfitted
        model stays unfitted.
        """
        return _RestoreOnError(self)

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the model's parameters with the EM algorithm.

        The model is fitted ``n_init`` times and keeps the parameters with the
        largest log-likelihood. Each run alternates E- and M-steps until the
        change in mean log-likelihood is below ``tol`` or ``max_iter`` is
        reached, in which case a :class:`~sklearn.exceptions.ConvergenceWarning`
        is raised. With ``warm_start=True``, ``n_init`` is ignored after the
        first call and fitting resumes from the current parameters.

        With a :class:`dask.array.Array`, every E-step is a map-reduce of
        per-block sufficient statistics on the current Dask scheduler and the
        initialisation runs on a random sample of rows (see the user guide
        on scaling).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            Training data.

        y : Ignored
            Not used, present for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights: an integer weight is equivalent to repeating
            the row that many times and a zero weight to removing it. None
            means every row has weight one.

        Returns
        -------
        self : object
            The fitted mixture.
        """
        with self._transaction():
            self._fit(X, sample_weight)
        # A batch fit starts any later stream of partial_fit steps afresh.
        for attr in _ONLINE_STATE:
            self.__dict__.pop(attr, None)
        return self

    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of online (stepwise) EM on a batch of samples.

        The model keeps running sufficient statistics ``s``, normalised per
        unit weight. The batch's statistics ``S_t`` (total weight ``W_t``)
        are computed under the current parameters and blended in,
        ``s <- (1 - rho_t) s + rho_t S_t / W_t`` with
        ``rho_t = (t + learning_offset) ** -learning_decay``, before an
        M-step from ``s`` (scaled to the total weight seen so far, which
        matters only for priors such as :class:`BernoulliMixtureEM`'s). The
        blend is exact for second moments accumulated around different
        means (see :mod:`sklearn_em.mixture._online`). The first call on an
        unfitted model initialises
        it from its batch with ``init_params``; after :meth:`fit`, steps
        start from the fitted parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of samples.

        y : Ignored
            Not used, present for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights of the batch's samples.

        Returns
        -------
        self : object
            The updated mixture.
        """
        with self._transaction():
            self._partial_fit(X, sample_weight)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def _partial_fit(self, X, sample_weight):
        if not hasattr(self, "lower_bound_"):
            data = as_data(self, X, sample_weight, reset=True)
            self._weight_scale = data.weight_scale
            self._check_parameters(data)
            random_state = check_random_state(self.random_state)
            # The initialisation's windows set BLAS's limit once, as in fit.
            with self._blas_limit(data):
                self._initialize_parameters(data, random_state)
        else:
            # The model's dtype was fixed by its first fit, the units of the
            # weights by its first batch.
            data = as_data(
                self,
                X,
                sample_weight,
                reset=False,
                dtype=self._dtype(),
                weight_scale=getattr(self, "_weight_scale", 1.0),
            )
        stats = self._e_step_statistics(data)
        # Where the E-step accumulated the second moments (it may move them).
        shift = self._shift()
        lower_bound = self._lower_bound(stats)
        t = getattr(self, "n_batch_iter_", 0) + 1
        running = getattr(self, "_online_stats", None)
        if running is not None:
            running = recentre_statistics(running, self._online_shift, shift)
        rho = step_size(t, self.learning_decay, self.learning_offset)
        self._online_stats = blend_statistics(running, stats, rho)
        self._online_shift = None if shift is None else np.array(shift, copy=True)
        # The M-step reads the running averages scaled to the weight seen so
        # far, so that a model's prior weighs as in a batch fit of that data.
        weight = getattr(self, "_online_weight", 0.0) + float(stats["sum_weight"])
        self._online_weight = weight
        self._m_step({key: v * weight for key, v in self._online_stats.items()})
        self._set_parameters(self._get_parameters())
        self.n_batch_iter_ = t
        self.lower_bound_ = lower_bound
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the model and predict the component of every sample of ``X``.

        Equivalent to ``fit(X, sample_weight=sample_weight).predict(X)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.

        y : Ignored
            Not used, present for API consistency by convention.

        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights, as in :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels.
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, sample_weight):
        return self._fit_data(as_data(self, X, sample_weight, reset=True))

    def _fit_validated(self, X, sample_weight, *, warn=True):
        """``fit`` on data its caller validated for this model, once for many
        fits (the model-selection search's candidates).

        Neither the constructor's parameters (``_parameter_constraints``)
        nor the data are validated again: ``X`` is as ``_validate_rows``
        returns it, without missing values, and ``sample_weight`` (None or
        positive) as ``check_sample_weight`` does; initial parameters are
        still checked. On small data the validation was a third of a
        candidate's fit (``iris``: 0.4 ms of ``validate_data`` and
        parameter checks per fit).
        The model is fitted as :meth:`fit` fits it; it raises on failure
        without restoring a previous fit.

        Parameters
        ----------
        X : ndarray or CSR matrix of shape (n_samples, n_features)

        sample_weight : ndarray of shape (n_samples,) or None

        warn : bool, default=True
            Whether a fit that did not converge (or diverged) warns. The
            search records it in its table instead, and fits candidates on
            several threads, where ``warnings.catch_warnings`` is not safe.

        Returns
        -------
        self : object
        """
        check_enough_samples(X.shape[0], self.n_components, sample_weight is not None)
        self.n_features_in_ = X.shape[1]
        data = ArrayData.from_validated(self, X, sample_weight, has_missing=False)
        return self._fit_data(data, warn=warn)

    def _fit_data(self, data, *, warn=True):
        """The body of :meth:`fit` on validated data (``as_data``); ``warn``
        as in :meth:`_fit_validated`."""
        # A model with a prior reads the units the weights were put in.
        self._weight_scale = data.weight_scale
        self._check_parameters(data)

        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1

        max_lower_bound = -np.inf
        best_params, best_n_iter, best_lower_bounds = None, 0, []
        best_diverged = False
        self.converged_ = False
        # Made at the first initialisation that draws from it: seeding a
        # RandomState from an int costs ~0.1 ms, and a fit from given
        # parameters draws nothing (a model selection on iris makes 820 such
        # fits: a quarter of its time had gone to seeding).
        random_state = None

        # BLAS's one-thread limit, set once for the whole fit (the
        # initialisation's and every iteration's windows) rather than twice a
        # window (each setting and restoring, about 15 us, adds up over
        # the windows of a fit on small data).
        with self._blas_limit(data):
            for init in range(n_init):
                self._print_verbose_msg_init_beg(init)
                if do_init and not self._initialize_from_given(data):
                    if random_state is None:
                        random_state = check_random_state(self.random_state)
                    self._initialize_parameters(data, random_state)
                lower_bound = -np.inf if do_init else self.lower_bound_
                current_lower_bounds = []

                if self.max_iter == 0:
                    best_params = self._get_parameters()
                    best_n_iter = 0
                    continue

                converged = diverged = False
                for n_iter in range(1, self.max_iter + 1):
                    prev_lower_bound = lower_bound
                    stats = self._e_step_statistics(data)
                    lower_bound = self._lower_bound(stats)
                    current_lower_bounds.append(lower_bound)
                    diverged = not self._m_step_or_stop(stats)
                    if diverged:
                        # The same E-step, more accurately, if the model has
                        # a more accurate one: its M-step may not collapse.
                        stats = self._statistics_after_collapse(data)
                        if stats is not None:
                            lower_bound = self._lower_bound(stats)
                            current_lower_bounds[-1] = lower_bound
                            diverged = not self._m_step_or_stop(stats)
                    if diverged:
                        break

                    change = lower_bound - prev_lower_bound
                    self._print_verbose_msg_iter_end(n_iter, change)
                    if abs(change) < self.tol:
                        converged = True
                        break

                self._print_verbose_msg_init_end(lower_bound, converged)
                if lower_bound > max_lower_bound or max_lower_bound == -np.inf:
                    max_lower_bound = lower_bound
                    best_params = self._get_parameters()
                    best_n_iter = n_iter
                    best_lower_bounds = current_lower_bounds
                    best_diverged = diverged
                    self.converged_ = converged

        if warn and best_diverged:
            warnings.warn(
                f"Best performing initialization diverged at iteration "
                f"{best_n_iter}: the M-step gave some components an ill-defined "
                "empirical covariance (for instance collapsed onto a single "
                "sample), so the parameters of the iteration before are kept. "
                "Try to decrease the number of components, increase reg_covar, "
                "or scale the input data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif warn and not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different "
                "init parameters, or increase max_iter, tol, or check for "
                "degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )

        self._set_parameters(best_params)
        self.n_iter_ = best_n_iter
        self.lower_bound_ = max_lower_bound
        self.lower_bounds_ = best_lower_bounds
        return self

    def _m_step_or_stop(self, stats):
        """The M-step; False, with the parameters unchanged, if EM diverged.

        A component whose covariance collapses (scikit-learn #18216: no
        regularisation, a start that isolates a point) ends this run of EM:
        the parameters stay those the last E-step ran with and the run
        counts as not converged (``fit`` warns when it is the best).
        """
        previous = self._get_parameters()
        try:
            self._m_step(stats)
        except CollapseError:
            self._set_parameters(previous)
            return False
        return True

    def _statistics_after_collapse(self, data):
        """The last E-step's statistics again, computed more accurately.

        For a second M-step after one that collapsed (see
        :meth:`_m_step_or_stop`): None, the default, when the model has no
        more accurate E-step, and the run of EM ends there.
        """
        return None

    def _lower_bound(self, stats):
        """Mean log-likelihood of the data under the E-step's parameters."""
        if not stats["sum_weight"] > 0:
            raise ValueError(
                "X has no row with an observed value (every value is NaN): "
                "there is nothing to fit."
            )
        lower_bound = float(stats["log_likelihood"] / stats["sum_weight"])
        if not np.isfinite(lower_bound):
            raise ValueError(
                "The log-likelihood of the data is not finite: a component has "
                "collapsed or the data has extreme values. Try to increase "
                "reg_covar, decrease n_components, or scale the input data."
            )
        return lower_bound

    # ------------------------------------------------------------------
    # Prediction: a row-wise map of the model's per-chunk log-probabilities
    # on the same chunks and threads as fitting (lazy for Dask).
    def _map_rows(self, X, rows_function, *, n_outputs=None, dtype=None, alone=None):
        """``rows_function`` of every row of ``X``, on the log-densities.

        ``alone``: what every row gets from a model with one certain
        component (``_certain_when_alone``; 0 for labels, 1 for
        responsibilities), after the same validation and without computing
        a log-density (which was all of such a prediction's time: a quarter
        to three quarters of scikit-learn's speed at 96-200 features).
        """
        check_is_fitted(self)
        data = as_data(self, X, reset=False, prediction=True)
        dtype = self._dtype() if dtype is None else dtype
        if alone is not None and self.n_components == 1 and self._certain_when_alone:
            return data.fill_rows(alone, n_outputs=n_outputs, dtype=dtype)
        # One set and one restore of BLAS's limit for the whole call.
        with self._blas_limit(data, fitting=False):
            weighted_log_prob = self._log_prob_chunk_function(data.dtype)
            if data.has_missing is not False:
                weighted_log_prob = self._missing_log_prob_function(weighted_log_prob)
            function = partial(rows_function, weighted_log_prob=weighted_log_prob)
            return data.map_rows(function, n_outputs=n_outputs, dtype=dtype)

    def _dtype(self):
        return self.means_.dtype

    #: Whether a one-component model's responsibility is 1 for every row it
    #: predicts (its log-density always finite), so that ``predict`` and
    #: ``predict_proba`` need not compute it (see :meth:`_map_rows`).
    _certain_when_alone = False

    def score_samples(self, X):
        """Log-likelihood of each sample under the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            ``log p(x_n)`` for every sample.
        """
        return self._map_rows(X, log_likelihood_rows)

    def score(self, X, y=None):
        """Mean log-likelihood of the samples of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        log_likelihood : float
            Mean of :meth:`score_samples` over ``X``.
        """
        return float(np.mean(self.score_samples(X)))

    def predict(self, X):
        """Most probable component of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels.
        """
        return self._map_rows(X, label_rows, dtype=np.intp, alone=0)

    def predict_proba(self, X):
        """Responsibilities: the posterior probability of each component.

        ``r_nk = pi_k p(x_n | k) / sum_j pi_j p(x_n | j)``, computed in log
        space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            Responsibilities; every row sums to one.
        """
        return self._map_rows(X, proba_rows, n_outputs=self.n_components, alone=1)

    def transform(self, X):
        """Responsibilities of ``X``, as features for a pipeline.

        Same as :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            Responsibilities; every row sums to one.
        """
        return self.predict_proba(X)

    def sample(self, n_samples=1):
        """Generate random samples from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Randomly generated samples.

        y : ndarray of shape (n_samples,)
            Component labels.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling "
                "requires at least one sample."
            )
        rng = check_random_state(self.random_state)
        weights = self.weights_
        if weights.dtype != np.float64:
            # float32 weights may sum to slightly more than one in float64.
            weights = weights.astype(np.float64)
            weights /= weights.sum()
        n_samples_comp = rng.multinomial(n_samples, weights)
        X = self._sample_components(rng, n_samples_comp)
        y = np.concatenate(
            [np.full(int(n), k, dtype=np.int64) for k, n in enumerate(n_samples_comp)]
        )
        return X, y

    def bic(self, X):
        """Bayesian information criterion of the model on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        bic : float
            ``-2 log L + n_parameters log n_samples``; lower is better.
        """
        log_prob = self.score_samples(X)
        n_samples = log_prob.shape[0]
        return -2 * float(log_prob.sum()) + self._n_parameters() * np.log(n_samples)

    def aic(self, X):
        """Akaike information criterion of the model on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        aic : float
            ``-2 log L + 2 n_parameters``; lower is better.
        """
        return -2 * float(self.score_samples(X).sum()) + 2 * self._n_parameters()

    @property
    def _n_features_out(self):
        """Number of transformed output features: one per component."""
        return self.n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------
    # Verbose messages, as in scikit-learn.
    def _print_verbose_msg_init_beg(self, n_init):
        if self.verbose == 1:
            print(f"Initialization {n_init}")
        elif self.verbose >= 2:
            print(f"Initialization {n_init}")
            self._init_prev_time = time()
            self._iter_prev_time = self._init_prev_time

    def _print_verbose_msg_iter_end(self, n_iter, diff_ll):
        if n_iter % self.verbose_interval == 0:
            if self.verbose == 1:
                print(f"  Iteration {n_iter}")
            elif self.verbose >= 2:
                cur_time = time()
                print(
                    f"  Iteration {n_iter}\t time lapse "
                    f"{cur_time - self._iter_prev_time:.5f}s\t ll change {diff_ll:.5f}"
                )
                self._iter_prev_time = cur_time

    def _print_verbose_msg_init_end(self, lb, init_has_converged):
        converged_msg = "converged" if init_has_converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {converged_msg}.")
        elif self.verbose >= 2:
            t = time() - self._init_prev_time
            print(
                f"Initialization {converged_msg}. time lapse {t:.5f}s\t "
                f"lower bound {lb:.5f}."
            )


def _mean_imputed(X, sample_weight):
    """``X`` with every NaN replaced by its feature's (weighted) mean.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)
        Every feature has an observed value (the implicit zeros of a sparse
        matrix are observed; its explicit NaN entries are missing).

    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    X : ndarray or CSR matrix of shape (n_samples, n_features)
        A copy, in the same format.
    """
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    w = w.astype(np.float64)
    if hasattr(X, "tocsr"):
        X = X.tocsr(copy=True)
        nan = np.isnan(X.data)
        row = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        missing_weight = np.bincount(
            X.indices[nan], weights=w[row[nan]], minlength=X.shape[1]
        )
        X.data[nan] = 0
        sums = np.asarray(X.T @ w).ravel()
        means = sums / (w.sum() - missing_weight)
        X.data[nan] = means[X.indices[nan]]
        return X
    nan = np.isnan(X)
    means = (w @ np.where(nan, 0.0, X)) / (w @ ~nan)
    return np.where(nan, means.astype(X.dtype), X)


@cache
def _param_names(cls):
    """The constructor's parameter names of an estimator class.

    Cached: ``get_params`` reads them with ``inspect.signature`` on every
    call (~50 us, a few percent of a fit on small data).
    """
    return frozenset(cls._get_param_names())


class _RestoreOnError:
    """Restore an estimator's attributes if the block raises (see _transaction)."""

    def __init__(self, estimator):
        self.estimator = estimator

    def __enter__(self):
        params = _param_names(type(self.estimator))
        self.saved = {
            key: copy.deepcopy(value)
            for key, value in vars(self.estimator).items()
            if key not in params
        }
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        state = vars(self.estimator)
        params = _param_names(type(self.estimator))
        for key in [key for key in state if key not in params]:
            del state[key]
        state.update(self.saved)
        return False
