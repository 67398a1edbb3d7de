"""Mixture of multivariate Bernoullis fitted by EM on sufficient statistics."""

from functools import partial
from numbers import Real

import numpy as np
from scipy import sparse
from scipy.special import betaln
from sklearn.preprocessing import binarize as _binarize
from sklearn.utils._param_validation import Interval

from ._arrays import validate_rows
from ._base import BaseMixtureEM, _check_parameter_array, _dense_resp
from ._missing import (
    bernoulli_initial_statistics,
    bernoulli_missing_e_step_chunk,
    bernoulli_missing_log_prob_chunk,
    check_missing,
)
from ._suffstats import chunk_rows, column_sums, resp_chunk


# ----------------------------------------------------------------------
# Input and initial parameters.
def _check_binary(X):
    """Raise a ValueError unless every value of ``X`` is 0 or 1.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Validated data, finite apart from NaN (missing values).
    """
    values = X.data if sparse.issparse(X) else X
    values = values[~np.isnan(values)]
    if values.size == 0:
        return
    if values.min() < 0:
        raise ValueError(
            "BernoulliMixtureEM with binarize=None requires binary input, but X "
            "contains negative values. Pass binarize=<threshold> to binarise it."
        )
    if not np.all((values == 0) | (values == 1)):
        raise ValueError(
            "BernoulliMixtureEM with binarize=None requires binary input (only "
            "0 and 1), but X contains other values. Pass binarize=<threshold> "
            "to binarise it, as in BernoulliNB."
        )


def _binarize_keeping_nan(X, threshold):
    """Binarise ``X`` at ``threshold``; NaN (missing) stays NaN.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)

    threshold : float

    Returns
    -------
    X : ndarray or CSR matrix of shape (n_samples, n_features)
        A new array of zeros, ones and NaN (explicit NaN entries when sparse).
    """
    if sparse.issparse(X):
        if threshold < 0:
            # scikit-learn's error for sparse input.
            return _binarize(X, threshold=threshold, copy=True)
        X = X.copy()
        nan = np.isnan(X.data)
        X.data = np.where(nan, np.nan, X.data > threshold).astype(X.dtype)
        X.eliminate_zeros()
        return X
    nan = np.isnan(X)
    X = _binarize(np.where(nan, 0, X), threshold=threshold, copy=False)
    X[nan] = np.nan
    return X


def _check_bernoulli_means(means, n_components, n_features):
    """Validate user-provided probabilities, shape (n_components, n_features)."""
    means = _check_parameter_array(means, (n_components, n_features), "means")
    if np.any(means < 0.0) or np.any(means > 1.0):
        raise ValueError(
            "The parameter 'means' holds Bernoulli probabilities and should be "
            f"in the range [0, 1], but got min value {means.min():.5f}, max value "
            f"{means.max():.5f}"
        )
    return means


def _clip_probabilities(means):
    """Move probabilities inside (0, 1) by the machine epsilon, so logs are finite.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)

    Returns
    -------
    means : ndarray of shape (n_components, n_features)
        A clipped copy.
    """
    eps = np.finfo(means.dtype).eps
    return np.clip(means, eps, 1.0 - eps)


# ----------------------------------------------------------------------
# E-step.
def _bernoulli_log_terms(means, weights):
    """The two terms of the E-step's matrix product.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)
        theta, strictly inside (0, 1).

    weights : ndarray of shape (n_components,)
        pi; a zero weight gives a log-weight of -inf.

    Returns
    -------
    log_odds : ndarray of shape (n_features, n_components)
        ``(log theta - log(1 - theta))^T``, C-contiguous so that sparse
        products read it without a copy.

    log_bias : ndarray of shape (n_components,)
        ``sum_d log(1 - theta_kd) + log pi_k``.
    """
    log_1m = np.log1p(-means)
    log_odds = np.ascontiguousarray((np.log(means) - log_1m).T)
    with np.errstate(divide="ignore"):
        log_bias = log_1m.sum(axis=1) + np.log(weights)
    return log_odds, log_bias


def _weighted_log_bernoulli_prob(X, *, log_odds, log_bias):
    """``log pi_k + log p(x_n | theta_k)`` as one matrix product.

    ``log p(x | theta_k) = sum_d x_d log theta_kd + (1 - x_d) log(1 - theta_kd)
    = x . (log theta_k - log(1 - theta_k)) + sum_d log(1 - theta_kd)``.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Binary data; a sparse product costs O(nnz * n_components).

    log_odds : ndarray of shape (n_features, n_components)

    log_bias : ndarray of shape (n_components,)
        Both from :func:`_bernoulli_log_terms`.

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
    """
    log_prob = np.asarray(X @ log_odds)
    log_prob += log_bias
    return log_prob


# ----------------------------------------------------------------------
# Sufficient statistics and M-step.
def _accumulate_bernoulli(X, resp):
    """Sufficient statistics of a chunk.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Binary data; with a sparse matrix the product costs
        O(nnz * n_components) and ``X`` is never densified.

    resp : ndarray of shape (n_samples, n_components)
        Responsibilities, already multiplied by the sample weights.

    Returns
    -------
    stats : dict
        ``"nk"`` (n_components,): sum_n r_nk;
        ``"sx"`` (n_components, n_features): sum_n r_nk x_n.
    """
    # R^T X computed as (X^T R)^T. For CSR X, X^T is CSC and the product
    # never densifies X. For dense X it is the same BLAS product: as fast on
    # an idle machine, but on a loaded one multi-threaded OpenBLAS ran the
    # `resp.T @ X` layout (few output rows, long inner dimension) 7-15x slower.
    sx = np.ascontiguousarray(np.asarray(X.T @ resp).T)
    return {"nk": column_sums(resp), "sx": sx}


def _estimate_bernoulli_parameters(stats, alpha, beta, weight_scale=1.0):
    """M-step: the MAP estimate of theta under a Beta(alpha, beta) prior.

    Parameters
    ----------
    stats : dict
        Output of :func:`_accumulate_bernoulli`, summed over chunks.

    alpha, beta : float
        Shape parameters of the Beta prior on every theta_kd, both > 1.

    weight_scale : float, default=1.0
        The factor the sample weights behind ``stats`` were multiplied by
        (see :func:`~._suffstats.normalise_weights`): the prior's
        pseudo-counts are in units of the user's weights, so they are
        multiplied by it too.

    Returns
    -------
    nk : ndarray of shape (n_components,)
        Weighted counts N_k (with a 10 eps guard, as for Gaussians).

    means : ndarray of shape (n_components, n_features)
        ``theta_kd = (sum_n r_nk x_nd + alpha - 1) / (N_k + alpha + beta - 2)``,
        strictly inside (0, 1). With missing values, the statistics hold
        ``"n_missing"``, the weight of the rows where feature d is missing,
        and ``N_k`` becomes the weight of the rows where it is observed,
        ``N_k - n_missing_kd`` (the maximiser of the expected log-likelihood
        of the observed values).
    """
    nk = stats["nk"]
    ones = (alpha - 1.0) * weight_scale
    both = (alpha + beta - 2.0) * weight_scale
    if "n_missing" in stats:
        counts = np.maximum(nk[:, np.newaxis] - stats["n_missing"], 0)
        means = (stats["sx"] + ones) / (counts + both)
        means = _clip_probabilities(means)
        return nk + 10 * np.finfo(nk.dtype).eps, means
    means = (stats["sx"] + ones) / (nk + both)[:, np.newaxis]
    # alpha, beta > 1 keep theta inside (0, 1); the clip only guards against
    # rounding when N_k dwarfs the prior.
    means = _clip_probabilities(means)
    return nk + 10 * np.finfo(nk.dtype).eps, means


def _log_beta_prior(means, alpha, beta):
    """Log density of the Beta(alpha, beta) prior at every theta_kd, summed.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)

    alpha, beta : float

    Returns
    -------
    log_prior : float
    """
    means = means.astype(np.float64)
    return float(
        (alpha - 1.0) * np.log(means).sum()
        + (beta - 1.0) * np.log1p(-means).sum()
        - means.size * betaln(alpha, beta)
    )


class BernoulliMixtureEM(BaseMixtureEM):
    """Mixture of multivariate Bernoullis fitted by EM, for binary data.

    Each component k is a product of independent Bernoullis,
    ``p(x | k) = prod_d theta_kd^x_d (1 - theta_kd)^(1 - x_d)``: the model of
    binarised images, presence/absence features, bag-of-words presence and
    latent class analysis. The E-step is one matrix product in log space,
    ``X (log theta - log(1 - theta))^T + sum_d log(1 - theta_kd) + log pi_k``,
    so scipy.sparse input stays sparse and costs O(nnz * n_components).

    Every theta_kd has a Beta(alpha, beta) prior and the M-step is its MAP
    estimate,

    ``theta_kd = (sum_n r_nk x_nd + alpha - 1) / (N_k + alpha + beta - 2)``.

    With ``alpha, beta > 1``, every theta stays strictly inside (0, 1), so a
    pixel never seen "on" in a component gets a small probability rather
    than zero, and every log-likelihood, held-out ones included, is finite.
    The default ``alpha = beta = 2`` is add-one (Laplace) smoothing: one
    pseudo-observation of each value per component and feature, the same
    estimate as :class:`~sklearn.naive_bayes.BernoulliNB` with its default
    ``alpha=1.0``. EM then increases the penalised log-likelihood
    ``log p(X | theta, pi) + log p(theta)`` at every iteration; that is the
    quantity in ``lower_bound_``.

    ``X`` may hold missing values (NaN; explicit NaN entries of a sparse
    matrix): the product over features then runs over the observed ones, and
    the M-step divides each feature's count by the weight of the rows where
    it is observed. See :ref:`missing_values`.

    Parameters
    ----------
    n_components : int, default=1
        The number of mixture components.

    alpha : float, default=2.0
        First shape parameter of the Beta prior on every theta_kd, > 1:
        ``alpha - 1`` pseudo-observations of a one per component and feature.

    beta : float, default=2.0
        Second shape parameter of the Beta prior, > 1: ``beta - 1``
        pseudo-observations of a zero.

    binarize : float or None, default=0.0
        Threshold for binarising the input, as in
        :class:`~sklearn.naive_bayes.BernoulliNB`: values above it become 1,
        the others 0. The default leaves 0/1 data unchanged and binarises
        real-valued data at zero, so the estimator accepts any real input;
        for grey-scale images in [0, 1] use ``binarize=0.5``. None means the
        input must already be binary: any value other than 0 or 1 raises a
        ValueError. Sparse input needs a threshold >= 0 (or None).

    tol : float, default=1e-3
        EM stops when the gain in the mean penalised log-likelihood is below
        this threshold.

    max_iter : int, default=100
        The number of EM iterations to perform.

    n_init : int, default=1
        The number of initialisations; the best result is kept.

    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, \
            default='kmeans'
        How the initial responsibilities are chosen: from a k-means
        clustering, from k-means++ seeds, at random, or from randomly chosen
        data points. All work on sparse input, and dense and sparse ``X``
        give the same model: k-means and k-means++ always run on a CSR copy
        of the data (scikit-learn's KMeans computes differently on dense and
        sparse input, which changed the initial clusters of data that are not
        well separated; on binarised MNIST it is also faster).

    weights_init : array-like of shape (n_components,), default=None
        User-provided initial mixture weights.

    means_init : array-like of shape (n_components, n_features), default=None
        User-provided initial theta, in [0, 1]. Values of exactly 0 or 1 are
        moved inside by the machine epsilon so that logs stay finite.

    random_state : int, RandomState instance or None, default=None
        Controls the initialisation and :meth:`sample`. Pass an int for
        reproducible results.

    warm_start : bool, default=False
        If True, each call to :meth:`fit` starts from the previous solution
        and ``n_init`` is ignored after the first call.

    verbose : int, default=0
        1 prints the initialisation and each iteration; 2 adds timings and
        the change in the objective.

    verbose_interval : int, default=10
        Number of iterations between two messages.

    weights : {'learn', 'uniform'}, default='learn'
        'learn' estimates the mixture weights, pi_k = N_k / N. 'uniform'
        holds them at 1 / n_components, the case of the textbook derivation.

    n_jobs : int, default=None
        Number of threads the chunks of each E-step are mapped over; each
        thread runs single-threaded BLAS. None means as many threads as BLAS
        may use: all the cores unless limited by
        :func:`threadpoolctl.threadpool_limits` or the ``OMP_NUM_THREADS`` /
        ``OPENBLAS_NUM_THREADS`` variables (joblib's process workers set
        them), as scikit-learn's ``KMeans`` uses its OpenMP threads. So a
        default fit uses the cores scikit-learn's ``GaussianMixture`` uses
        through BLAS (and a prediction on data of one chunk leaves BLAS its
        own threads). ``1`` runs one thread; -1 means all processors.

    learning_decay : float, default=0.7
        Exponent kappa in (0.5, 1] of :meth:`partial_fit`'s step size
        ``rho_t = (t + learning_offset) ** -kappa``.

    learning_offset : float, default=10.0
        Offset t0 >= 0 of :meth:`partial_fit`'s step size; larger values
        damp the first steps.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        The weight of each mixture component.

    means_ : ndarray of shape (n_components, n_features)
        theta: the probability that each feature is 1 in each component,
        strictly inside (0, 1). For images, each row is a prototype.

    converged_ : bool
        True when the best initialisation converged.

    n_iter_ : int
        Number of EM iterations of the best initialisation.

    lower_bound_ : float
        Penalised log-likelihood of the training data per sample,
        ``(log p(X | theta, pi) + log p(theta)) / n_samples``, at the last
        E-step of the best initialisation. :meth:`score` gives the plain
        mean log-likelihood.

    lower_bounds_ : list of float
        The same quantity at every iteration of the best initialisation;
        it never decreases.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    GaussianMixtureEM : Gaussian mixture on the same EM engine.
    sklearn.naive_bayes.BernoulliNB : The supervised counterpart.
    sklearn.neural_network.BernoulliRBM : Another latent-variable model of
        binary data.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_em import BernoulliMixtureEM
    >>> X = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0],
    ...               [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]])
    >>> bm = BernoulliMixtureEM(n_components=2, random_state=0).fit(X)
    >>> labels = bm.predict(X)
    >>> bool(labels[0] == labels[1] == labels[2] != labels[3] == labels[4])
    True
    >>> bm.means_[labels[0]].round(1)
    array([0.8, 0.6, 0.2, 0.2])
    >>> bool(np.isfinite(bm.score([[0, 1, 1, 0]])))
    True
    """

    _parameter_constraints: dict = {
        **BaseMixtureEM._parameter_constraints,
        "alpha": [Interval(Real, 1.0, None, closed="neither")],
        "beta": [Interval(Real, 1.0, None, closed="neither")],
        "binarize": [None, Interval(Real, None, None, closed="neither")],
    }

    def __init__(
        self,
        n_components=1,
        *,
        alpha=2.0,
        beta=2.0,
        binarize=0.0,
        tol=1e-3,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        weights="learn",
        n_jobs=None,
        learning_decay=0.7,
        learning_offset=10.0,
    ):
        super().__init__(
            n_components=n_components,
            tol=tol,
            max_iter=max_iter,
            n_init=n_init,
            init_params=init_params,
            weights=weights,
            weights_init=weights_init,
            means_init=means_init,
            n_jobs=n_jobs,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            verbose_interval=verbose_interval,
            learning_decay=learning_decay,
            learning_offset=learning_offset,
        )
        self.alpha = alpha
        self.beta = beta
        self.binarize = binarize

    # ------------------------------------------------------------------
    # Input.
    def _validate_rows(self, X, *, reset):
        """Validate ``X`` (dense, or sparse as CSR) and binarise or check it.

        Returns ``X``, whether it holds a NaN (a missing value) and None
        (no bound on the binarised values is needed).
        """
        # Every sparse format becomes CSR: the engine slices rows. NaN marks
        # a missing value (an explicit NaN entry when sparse).
        X = validate_rows(self, X, reset=reset, accept_sparse="csr")
        has_missing = check_missing(X, self.n_jobs)
        if self.binarize is None:
            _check_binary(X)
        elif has_missing:
            X = _binarize_keeping_nan(X, self.binarize)
        else:
            X = _binarize(X, threshold=self.binarize, copy=True)
        return X, has_missing, None

    def _check_parameters(self, X):
        super()._check_parameters(X)
        self._means_init = (
            None
            if self.means_init is None
            else _check_bernoulli_means(self.means_init, self.n_components, X.shape[1])
        )
        if self.warm_start and hasattr(self, "converged_"):
            # A warm start continues the fitted model, in its dtype.
            self._fit_dtype = self.means_.dtype
        else:
            self._fit_dtype = X.dtype

    def _initial_weights(self):
        if self.weights == "uniform":
            return np.full(self.n_components, 1 / self.n_components, self._fit_dtype)
        return self._weights_init.astype(self._fit_dtype)

    def _initial_means(self):
        return _clip_probabilities(self._means_init.astype(self._fit_dtype))

    def _initial_resp(self, X, sample_weight, random_state, **kwargs):
        if self.init_params in ("kmeans", "k-means++"):
            # The same input whatever the user's format: canonical CSR (no
            # stored zeros, sorted indices; binarising keeps stored zeros).
            X = sparse.csr_matrix(X, copy=sparse.issparse(X))
            X.eliminate_zeros()
            X.sort_indices()
        return super()._initial_resp(X, sample_weight, random_state, **kwargs)

    def _initialize_from_given(self, X):
        if self._means_init is None or (
            self._weights_init is None and self.weights == "learn"
        ):
            return False
        self.weights_ = self._initial_weights()
        self.means_ = self._initial_means()
        return True

    # ------------------------------------------------------------------
    # The model's maths for the shared EM loop.
    def _chunk_rows(
        self, n_samples, n_features, itemsize, n_jobs, missing=None, prediction=False
    ):
        # A chunk's temporaries are the rows of X (a view when dense) and a
        # few arrays of n_components values per row -- not n_features *
        # n_components as for Gaussians -- so chunks can be larger.
        return chunk_rows(n_samples, 1, self.n_components, itemsize, n_jobs=n_jobs)

    def _weighted_log_prob_function(self):
        log_odds, log_bias = _bernoulli_log_terms(self.means_, self.weights_)
        return partial(
            _weighted_log_bernoulli_prob, log_odds=log_odds, log_bias=log_bias
        )

    def _accumulate_function(self, shift):
        return _accumulate_bernoulli

    # Missing values (NaN): see _missing.py. Used only for data with NaN.
    def _missing_terms(self):
        log_odds, log_bias = _bernoulli_log_terms(self.means_, self.weights_)
        return dict(
            log_odds=log_odds,
            log_bias=log_bias,
            log_1m=np.ascontiguousarray(np.log1p(-self.means_).T),
        )

    def _missing_e_step_function(self, complete):
        return partial(
            bernoulli_missing_e_step_chunk, complete=complete, **self._missing_terms()
        )

    def _missing_log_prob_function(self, complete):
        return partial(
            bernoulli_missing_log_prob_chunk,
            complete=complete,
            **self._missing_terms(),
        )

    def _statistics_from_resp(self, data, resp):
        if data.has_missing:
            resp = _dense_resp(resp, self.n_components, data.dtype)
            return data.map_reduce(
                partial(resp_chunk, accumulate=bernoulli_initial_statistics), resp
            )
        return super()._statistics_from_resp(data, resp)

    def _shift(self):
        return None

    def _means_from_statistics(self, stats):
        # First-order statistics only: no second pass around the means.
        return None

    def _m_step(self, stats, initial=False):
        nk, means = _estimate_bernoulli_parameters(
            stats, self.alpha, self.beta, getattr(self, "_weight_scale", 1.0)
        )
        if self.weights == "uniform":
            weights = np.full(self.n_components, 1 / self.n_components, nk.dtype)
        else:
            weights = nk / nk.sum()
        if initial:
            if self._weights_init is not None:
                weights = self._weights_init.astype(nk.dtype)
            if self._means_init is not None:
                means = self._initial_means()
        # In the model's dtype, whatever the batch's (partial_fit).
        dtype = self._fit_dtype
        self.weights_ = weights.astype(dtype, copy=False)
        self.means_ = _clip_probabilities(means.astype(dtype, copy=False))

    def _lower_bound(self, stats):
        """Mean penalised log-likelihood: MAP-EM's non-decreasing objective."""
        log_likelihood = float(stats["log_likelihood"] / stats["sum_weight"])
        if not np.isfinite(log_likelihood):  # pragma: no cover - defensive
            # theta stays inside (0, 1) and the weights are normalised, so
            # only a bug can get here; say so without naming reg_covar.
            raise ValueError(
                "The log-likelihood of the data is not finite; please report "
                "this with the data that produced it."
            )
        log_prior = _log_beta_prior(self.means_, self.alpha, self.beta)
        # The prior is per unit of the user's weights.
        scale = getattr(self, "_weight_scale", 1.0)
        return log_likelihood + log_prior * scale / float(stats["sum_weight"])

    def _get_parameters(self):
        return (self.weights_, self.means_)

    def _set_parameters(self, params):
        self.weights_, self.means_ = params

    def _n_parameters(self):
        n_features = self.means_.shape[1]
        weight_params = self.n_components - 1 if self.weights == "learn" else 0
        return int(self.n_components * n_features + weight_params)

    def _sample_components(self, rng, n_samples_comp):
        parts = [
            (rng.uniform(size=(int(n), theta.shape[0])) < theta).astype(
                self.means_.dtype
            )
            for theta, n in zip(self.means_, n_samples_comp)
        ]
        return np.vstack(parts)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
