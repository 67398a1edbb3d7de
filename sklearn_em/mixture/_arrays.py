"""In-memory data for the EM engine: NumPy arrays and SciPy sparse matrices.

:class:`ArrayData` is the in-memory kind of :mod:`._data`'s interface: the
rows are validated once, rows with a zero weight are dropped, and every pass
over the data maps a per-chunk function over cache-sized row chunks on the
engine's thread pool (:func:`~._suffstats.map_reduce` for statistics,
:func:`~._suffstats.map_rows` for prediction).
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

from ._missing import empty_features, has_missing_values, row_missing_counts
from ._suffstats import map_reduce, map_rows, normalise_weights, rows_shape


def validate_rows(estimator, X, *, reset, accept_sparse=False):
    """``validate_data`` of a mixture's rows: float32 or float64, NaN allowed.

    A fitted estimator's prediction on a plain float array with its number
    of features, fitted without feature names, takes ``X`` as it is: for
    such an array ``validate_data`` returns ``X`` itself, raises and warns
    nothing, and took a third of a ``predict_proba`` on iris (62 of 188
    us). Everything else goes through ``validate_data``, with its errors
    and warnings.

    Parameters
    ----------
    estimator : BaseMixtureEM

    X : array-like or sparse matrix of shape (n_samples, n_features)

    reset : bool
        True at fit time: sets ``n_features_in_`` (and requires two rows).

    accept_sparse : str or False, default=False
        As in ``validate_data``.

    Returns
    -------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Infinity and NaN are not checked here (see
        :func:`~._missing.check_missing`).
    """
    if (
        not reset
        and type(X) is np.ndarray
        and X.dtype in (np.float64, np.float32)
        and X.ndim == 2
        and X.shape[0] >= 1
        and X.shape[1] == getattr(estimator, "n_features_in_", None)
        and not hasattr(estimator, "feature_names_in_")
    ):
        return X
    return validate_data(
        estimator,
        X,
        accept_sparse=accept_sparse,
        dtype=[np.float64, np.float32],
        ensure_min_samples=2 if reset else 1,
        # check_missing rejects infinity and finds NaN in the same pass.
        ensure_all_finite=False,
        reset=reset,
    )


def check_sample_weight(sample_weight, n_samples, dtype):
    """Validate frequency weights.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,), number or None

    n_samples : int

    dtype : numpy dtype
        The dtype of the data; the weights are cast to it.

    Returns
    -------
    sample_weight : ndarray of shape (n_samples,) or None
        None when no weights were given.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, Real | Integral) and not isinstance(
        sample_weight, bool
    ):
        sample_weight = np.full(n_samples, sample_weight, dtype=dtype)
    sample_weight = check_array(
        sample_weight,
        ensure_2d=False,
        dtype=[np.float64, np.float32],
        input_name="sample_weight",
        copy=False,
    ).astype(dtype, copy=False)
    if sample_weight.ndim != 1:
        raise ValueError(
            f"sample_weight must be 1D array or scalar, got {sample_weight.ndim}D "
            "array."
        )
    if sample_weight.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight.shape == ({sample_weight.shape[0]},), expected "
            f"({n_samples},)!"
        )
    if np.any(sample_weight < 0):
        raise ValueError("Negative values in data passed to `sample_weight`.")
    if not np.any(sample_weight > 0):
        raise ValueError(
            "All sample weights are zero: at least one sample must have a "
            "positive weight."
        )
    return sample_weight


def check_enough_samples(n_samples, n_components, weighted):
    """Raise a ValueError when there are fewer samples than components."""
    if n_samples < n_components:
        raise ValueError(
            "Expected n_samples >= n_components "
            f"but got n_components = {n_components}, "
            f"n_samples = {n_samples}"
            + (" (samples with a positive sample_weight)" if weighted else "")
        )


def drop_empty_rows(X, sample_weight):
    """Remove the rows whose every value is missing, which carry no information.

    Also raises a ValueError when a feature has no observed value at all,
    which a mixture cannot model.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Validated, with NaN for missing values.

    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    X : ndarray or sparse matrix of shape (n_informative, n_features)

    sample_weight : ndarray of shape (n_informative,) or None
    """
    empty = row_missing_counts(X) == X.shape[1]
    if empty.all():
        raise ValueError("Every value of X is missing (NaN): there is nothing to fit.")
    features = empty_features(X[~empty] if empty.any() else X)
    if len(features):
        raise ValueError(
            f"Feature(s) {features.tolist()} of X have no observed value (all "
            "NaN): a mixture cannot estimate their distribution. Remove these "
            "features, or impute them first."
        )
    if empty.any():
        X = X[~empty]
        sample_weight = None if sample_weight is None else sample_weight[~empty]
    return X, sample_weight


def cast_to_model_dtype(X, dtype):
    """``X`` in the dtype of a fitted model, whose dtype its first fit fixed.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Validated: finite apart from NaN (missing values).

    dtype : numpy dtype

    Returns
    -------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        A new array when the dtype changes.
    """
    if dtype is None or X.dtype == dtype:
        return X
    with np.errstate(over="ignore"):
        X = X.astype(dtype)
    values = X.data if hasattr(X, "tocsr") else X
    if np.isinf(values).any():
        raise ValueError(
            f"X has values too large for the model's dtype {np.dtype(dtype).name}, "
            "fixed by its first fit."
        )
    return X


class ArrayData:
    """Validated in-memory rows, mapped over row chunks on a thread pool.

    Use :meth:`from_user` to validate user input; the constructor takes data
    that is already validated.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Validated rows (CSR when sparse).

    sample_weight : ndarray of shape (n_samples,) or None
        Validated frequency weights; None means all ones.

    rows : int
        Rows per chunk.

    n_jobs : int or None
        Threads over chunks, see :func:`~._suffstats.n_threads`.

    has_missing : bool or None, default=None
        Whether ``X`` holds a NaN (a missing value); None finds out. The
        models choose their missing-value kernels only when it does, so
        complete data runs exactly the complete-data code.

    weight_scale : float, default=1.0
        The power of two the weights were multiplied by.

    magnitude : float or None, default=None
        A bound on ``max |x|`` known from validation (see
        :func:`~._missing.check_missing_magnitude`), or None.
    """

    def __init__(
        self,
        X,
        sample_weight,
        *,
        rows,
        n_jobs,
        has_missing=None,
        weight_scale=1.0,
        magnitude=None,
    ):
        self.X = X
        self.magnitude = magnitude
        self.sample_weight = sample_weight
        self.weight_scale = weight_scale
        self.rows = rows
        self.n_jobs = n_jobs
        if has_missing is None:
            has_missing = has_missing_values(X)
        self.has_missing = has_missing

    @classmethod
    def from_user(
        cls,
        estimator,
        X,
        sample_weight=None,
        *,
        reset,
        dtype=None,
        weight_scale=None,
        prediction=False,
    ):
        """Validate a user's ``X`` and weights for ``estimator``.

        Parameters
        ----------
        estimator : BaseMixtureEM
            Its ``_validate_rows`` validates (and, for a binarising model,
            transforms) ``X`` and finds whether it holds a NaN; its
            ``_chunk_rows`` sizes the chunks.

        X : array-like or sparse matrix of shape (n_samples, n_features)

        sample_weight : array-like of shape (n_samples,), number or None

        reset : bool
            True when fitting from scratch: sets ``n_features_in_``, drops
            the rows with a zero weight (exactly the removal of the row, which
            makes even the random initialisations agree) and the rows with
            every value missing, and requires at least ``n_components`` rows
            and an observed value in every feature.

        dtype : numpy dtype, default=None
            The dtype of a fitted model that ``X`` updates (``partial_fit``);
            None keeps the validated dtype.

        weight_scale : float, default=None
            The power of two to multiply the weights by; None chooses it (see
            :func:`~._suffstats.normalise_weights`).

        prediction : bool, default=False
            As in :meth:`from_validated`.

        Returns
        -------
        data : ArrayData
        """
        X, has_missing, magnitude = estimator._validate_rows(X, reset=reset)
        validated_dtype = X.dtype
        X = cast_to_model_dtype(X, dtype)
        if X.dtype != validated_dtype:
            # (A bound on the values before their cast is not one after it.)
            magnitude = None
        sample_weight = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        if reset:
            if sample_weight is not None and not np.all(sample_weight > 0):
                keep = sample_weight > 0
                X, sample_weight = X[keep], sample_weight[keep]
            if has_missing:
                X, sample_weight = drop_empty_rows(X, sample_weight)
            check_enough_samples(
                X.shape[0], estimator.n_components, sample_weight is not None
            )
        return cls.from_validated(
            estimator,
            X,
            sample_weight,
            has_missing=has_missing,
            weight_scale=weight_scale,
            prediction=prediction,
            magnitude=magnitude,
        )

    @classmethod
    def from_validated(
        cls,
        estimator,
        X,
        sample_weight=None,
        *,
        has_missing,
        weight_scale=None,
        prediction=False,
        magnitude=None,
    ):
        """Wrap data already validated for ``estimator``.

        The second half of :meth:`from_user`, for a caller that validated
        ``X`` and ``sample_weight`` once for many fits (the model-selection
        search): no pass over the data.

        Parameters
        ----------
        estimator : BaseMixtureEM
            Its ``_chunk_rows`` sizes the chunks.

        X : ndarray or CSR matrix of shape (n_samples, n_features)
            As ``estimator._validate_rows`` returns it.

        sample_weight : ndarray of shape (n_samples,) or None
            As :func:`~._suffstats.check_sample_weight` returns it.

        has_missing : bool
            Whether ``X`` holds a NaN.

        weight_scale : float, default=None
            As in :meth:`from_user`.

        prediction : bool, default=False
            The data of a prediction: ``estimator._chunk_rows`` sizes its
            chunks for prediction.

        magnitude : float or None, default=None
            A bound on ``max |x|``, as ``estimator._validate_rows`` returns
            it, or None.

        Returns
        -------
        data : ArrayData
        """
        # Only the weights' relative sizes matter to the model: an exact
        # power-of-two rescaling keeps the sums in range.
        sample_weight, weight_scale = normalise_weights(sample_weight, weight_scale)
        rows = estimator._chunk_rows(
            X.shape[0],
            X.shape[1],
            X.dtype.itemsize,
            estimator.n_jobs,
            missing=has_missing,
            prediction=prediction,
        )
        return cls(
            X,
            sample_weight,
            rows=rows,
            n_jobs=estimator.n_jobs,
            has_missing=has_missing,
            weight_scale=weight_scale,
            magnitude=magnitude,
        )

    @property
    def shape(self):
        return self.X.shape

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def dtype(self):
        return self.X.dtype

    def map_reduce(self, chunk_function, *extra):
        """Sum ``chunk_function(X_chunk, w_chunk, *extra_chunks)`` over chunks.

        Parameters
        ----------
        chunk_function : callable
            Returns a dict of ndarray sums.

        *extra : ndarray of shape (n_samples, ...)
            Per-row arrays chunked alongside ``X`` (initial
            responsibilities).

        Returns
        -------
        stats : dict of ndarray
        """
        return map_reduce(
            chunk_function,
            self.X,
            self.sample_weight,
            *extra,
            n_jobs=self.n_jobs,
            rows=self.rows,
        )

    def map_rows(self, row_function, *, n_outputs=None, dtype):
        """``row_function`` of every row chunk, gathered into one array.

        Parameters
        ----------
        row_function : callable
            ``row_function(X_chunk)`` returns an ndarray of shape
            (n_chunk_samples,) or (n_chunk_samples, n_outputs).

        n_outputs : int or None, default=None
            Columns of the result; None for one value per row.

        dtype : numpy dtype
            The result's dtype.

        Returns
        -------
        result : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        out = np.empty(rows_shape(self.n_samples, n_outputs), dtype=dtype)
        return map_rows(row_function, self.X, out, n_jobs=self.n_jobs, rows=self.rows)

    def fill_rows(self, value, *, n_outputs=None, dtype):
        """``value`` for every row: :meth:`map_rows`'s result for a
        ``row_function`` that returns ``value`` (same ``n_outputs`` and
        ``dtype``), without calling one."""
        return np.full(rows_shape(self.n_samples, n_outputs), value, dtype=dtype)

    def init_sample(self, random_state):
        """The rows the initialisation runs on: all of them, in memory."""
        return self
