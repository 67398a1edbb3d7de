"""Dask data for the EM engine: blocks on the cluster, chunks inside each block.

:class:`DaskData` is the Dask kind of :mod:`._data`'s interface. Dask is
optional: nothing here imports it at module level, and a Dask collection
passed without Dask installed raises an :class:`ImportError` naming the
``sklearn-em[dask]`` extra.

Statistics. Every EM iteration maps the model's picklable per-chunk E-step
(the same ``functools.partial`` the in-memory fit uses) over the blocks of
``X`` -- inside a block, over cache-sized row chunks -- and tree-reduces the
per-block statistics with :func:`~._suffstats.add_statistics`. Only the
parameters travel to the workers and only the sums (O(n_components *
n_features ** 2) numbers per block) travel back: ``X`` is never gathered.

Initialisation. ``init_params`` runs in memory on a uniform random sample of
at most ``INIT_SAMPLE_SIZE`` rows drawn from the blocks (each block keeps every
row independently with the same probability, from its own seeded stream):
k-means on the sample for 'kmeans', a draw of sample rows for
'random_from_data', and so on. EM then iterates on all of ``X``. User-given
initial parameters skip the sample; an ``X`` of at most ``INIT_SAMPLE_SIZE``
rows is used whole, which makes the initialisation the in-memory one.

Prediction. The row-wise map returns a lazy Dask array: ``map_blocks`` of
the in-memory row map (:func:`~._suffstats.map_rows`) over each block.

Validation. Shapes and dtypes are checked at once; values are checked
lazily, block by block, by the model's own in-memory validation, so every
pass over the data checks (or, for a binarising model, transforms) each
block as an in-memory fit would. Empty blocks are allowed.

Missing values. Whether ``X`` holds a NaN is not known without reading it,
so ``has_missing`` is None: the models then use their missing-value kernels,
which send every chunk without a NaN to the complete-data kernel (the same
numbers) and leave out rows with every value missing. The initialisation
sample is in memory and is checked like an in-memory fit's data.
"""

import numpy as np

from ._arrays import (
    ArrayData,
    cast_to_model_dtype,
    check_enough_samples,
    check_sample_weight,
    drop_empty_rows,
)
from ._missing import has_missing_values
from ._suffstats import (
    add_statistics,
    map_reduce,
    map_rows,
    normalise_weights,
    rows_shape,
)

#: Largest number of rows the initialisation is run on.
INIT_SAMPLE_SIZE = 100_000

_EXTRA_MESSAGE = (
    "{what} requires Dask: install the optional dependencies with "
    "pip install 'sklearn-em[dask]' (dask[array,distributed])."
)


def is_dask_collection(X):
    """Whether ``X`` is a Dask collection (without importing Dask)."""
    return getattr(type(X), "__dask_graph__", None) is not None


def _import_dask(what="Passing a Dask collection"):
    """Import dask and dask.array, or raise an ImportError naming the extra."""
    try:
        import dask
        import dask.array as da
    except ImportError as exc:
        raise ImportError(_EXTRA_MESSAGE.format(what=what)) from exc
    return dask, da


def _validate_block(X, estimator, dtype):
    """The model's in-memory validation of one block (finiteness, binarising)."""
    if X.shape[0] == 0:
        # Nothing to check in an empty block (validate_data rejects it).
        return X.astype(dtype, copy=False)
    return cast_to_model_dtype(estimator._validate_X(X, reset=False), dtype)


def validate(estimator, X, *, reset, blockwise=True, dtype=None):
    """Validate a Dask array: shape, dtype and number of features.

    Values are not read here: with ``blockwise``, the model's own in-memory
    validation (``_validate_X``) is mapped lazily over the blocks, so every
    pass over the data checks (or, for a binarising model, transforms) each
    block as an in-memory fit would.

    Parameters
    ----------
    estimator : BaseMixtureEM

    X : dask.array.Array of shape (n_samples, n_features)

    reset : bool
        Whether to set ``n_features_in_`` (fit) or check it (otherwise).

    blockwise : bool, default=True
        Whether to map the model's validation over the blocks.

    dtype : numpy dtype, default=None
        The dtype of a fitted model that ``X`` updates (``partial_fit``);
        None keeps the validated dtype.

    Returns
    -------
    X : dask.array.Array
        Floating point, with one block along the features.
    """
    _, da = _import_dask()
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{type(estimator).__name__} accepts Dask arrays, got "
            f"{type(X).__name__}; convert a Dask DataFrame with "
            "X.to_dask_array(lengths=True)."
        )
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D Dask array, got {X.ndim}D array instead. Reshape "
            "your data to (n_samples, n_features)."
        )
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            "The Dask array has unknown chunk sizes; call "
            "X.compute_chunk_sizes() first."
        )
    if X.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.bool_)):
            raise TypeError(f"Expected numeric data, got a Dask array of {X.dtype}.")
        X = X.astype(np.float64)
    if reset:
        estimator.n_features_in_ = X.shape[1]
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
            f"expecting {estimator.n_features_in_} features as input."
        )
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    if dtype is not None:
        X = X.astype(dtype)
    if blockwise:
        X = X.map_blocks(
            _validate_block, estimator, X.dtype, dtype=X.dtype, meta=X._meta
        )
    return X


def validate_sample_weight(sample_weight, X):
    """Frequency weights aligned with the blocks of ``X``.

    Parameters
    ----------
    sample_weight : array-like or dask.array.Array of shape (n_samples,), \
            number or None

    X : dask.array.Array of shape (n_samples, n_features)

    Returns
    -------
    sample_weight : dask.array.Array of shape (n_samples,) or None
        Chunked like the rows of ``X``.
    """
    if sample_weight is None:
        return None
    dask, da = _import_dask()
    if not is_dask_collection(sample_weight):
        sample_weight = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        return da.from_array(sample_weight, chunks=(X.chunks[0],))
    if sample_weight.ndim != 1 or sample_weight.shape[0] != X.shape[0]:
        raise ValueError(
            f"sample_weight.shape == {sample_weight.shape}, expected ({X.shape[0]},)!"
        )
    sample_weight = sample_weight.astype(X.dtype).rechunk((X.chunks[0],))
    low, high = dask.compute(sample_weight.min(), sample_weight.max())
    if low < 0:
        raise ValueError("Negative values in data passed to `sample_weight`.")
    if not high > 0:
        raise ValueError(
            "All sample weights are zero: at least one sample must have a "
            "positive weight."
        )
    return sample_weight


def _delayed_blocks(X, sample_weight):
    """Pairs of delayed (rows of X, weights or None), one per block."""
    blocks = X.to_delayed().ravel()
    if sample_weight is None:
        return [(block, None) for block in blocks]
    return list(zip(blocks, sample_weight.to_delayed().ravel()))


def _sample_rows(X, sample_weight, seed, fraction):
    """Keep every row with probability ``fraction``, from a seeded stream."""
    if seed is None:
        return X, sample_weight
    keep = np.random.default_rng(seed).random(X.shape[0]) < fraction
    return X[keep], None if sample_weight is None else sample_weight[keep]


def initial_sample(estimator, X, sample_weight, random_state):
    """A uniform random sample of the rows of ``X``, in memory.

    Parameters
    ----------
    estimator : BaseMixtureEM
        Its in-memory validation is run on the sample.

    X : dask.array.Array of shape (n_samples, n_features)

    sample_weight : dask.array.Array of shape (n_samples,) or None

    random_state : RandomState instance

    Returns
    -------
    X_sample : ndarray of shape (n_sample, n_features)
        About ``min(n_samples, INIT_SAMPLE_SIZE)`` rows with a positive
        weight.

    sample_weight_sample : ndarray of shape (n_sample,) or None
    """
    dask, _ = _import_dask()
    n_samples = X.shape[0]
    fraction = min(1.0, INIT_SAMPLE_SIZE / n_samples)
    pairs = _delayed_blocks(X, sample_weight)
    if fraction == 1.0:
        # All the rows, in order, and the random stream untouched: the
        # initialisation is exactly the in-memory one.
        seeds = [None] * len(pairs)
    else:
        seeds = random_state.randint(np.iinfo(np.int32).max, size=len(pairs))
    parts = dask.compute(
        *[
            dask.delayed(_sample_rows)(block, weight, seed, fraction)
            for (block, weight), seed in zip(pairs, seeds)
        ]
    )
    X_sample = np.concatenate([part[0] for part in parts])
    weights = None
    if sample_weight is not None:
        weights = np.concatenate([part[1] for part in parts])
        keep = weights > 0
        X_sample, weights = X_sample[keep], weights[keep]
    if X_sample.shape[0] < estimator.n_components:
        raise ValueError(
            f"The initialisation sample has {X_sample.shape[0]} rows with a "
            f"positive weight, fewer than n_components = "
            f"{estimator.n_components}."
        )
    X_sample = estimator._validate_X(X_sample, reset=False)
    if has_missing_values(X_sample):
        X_sample, weights = drop_empty_rows(X_sample, weights)
        if X_sample.shape[0] < estimator.n_components:
            raise ValueError(
                f"The initialisation sample has {X_sample.shape[0]} rows with an "
                f"observed value, fewer than n_components = "
                f"{estimator.n_components}."
            )
    return X_sample, weights


def _block_statistics(X, sample_weight, *, chunk_function, rows):
    """Statistics of one block, mapped over cache-sized row chunks."""
    return map_reduce(chunk_function, X, sample_weight, n_jobs=1, rows=rows)


def _block_rows(X, *, row_function, rows, n_outputs, out_dtype):
    """The row map of one block, over cache-sized row chunks."""
    out = np.empty(rows_shape(X.shape[0], n_outputs), out_dtype)
    return map_rows(row_function, X, out, n_jobs=1, rows=rows)


def _block_fill(X, *, value, n_outputs, out_dtype):
    """One block's rows, each ``value``: see :meth:`DaskData.fill_rows`."""
    return np.full(rows_shape(X.shape[0], n_outputs), value, dtype=out_dtype)


class DaskData:
    """A Dask array's rows: blocks on the current scheduler, chunks inside.

    Use :meth:`from_user` to validate user input.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Validated (lazily, block by block), with one block along the
        features.

    sample_weight : dask.array.Array of shape (n_samples,) or None
        Chunked like the rows of ``X``.

    estimator : BaseMixtureEM
        Sizes the chunks inside a block and validates the initialisation
        sample.

    split_every : int, default=8
        Fan-in of the reduction tree.

    Attributes
    ----------
    has_missing : None
        Unknown without reading the data: the models' missing-value kernels
        test every chunk (see the module docstring).
    """

    has_missing = None

    def __init__(
        self,
        X,
        sample_weight,
        *,
        estimator,
        split_every=8,
        weight_scale=1.0,
        prediction=False,
    ):
        self.X = X
        self.sample_weight = sample_weight
        self.weight_scale = weight_scale
        self.estimator = estimator
        self.split_every = split_every
        # Inside a block the chunks run in the worker's thread: Dask's
        # workers are the parallelism.
        self.rows = estimator._chunk_rows(
            max(1, int(max(X.chunks[0]))),
            X.shape[1],
            X.dtype.itemsize,
            1,
            prediction=prediction,
        )

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
        """Validate a Dask ``X`` and its weights for ``estimator``.

        Zero-weight rows are kept: they add nothing to the sums. See
        :meth:`._arrays.ArrayData.from_user` for the parameters.
        """
        X = validate(estimator, X, reset=reset, dtype=dtype)
        if reset:
            check_enough_samples(X.shape[0], estimator.n_components, False)
        sample_weight, weight_scale = normalise_weights(
            validate_sample_weight(sample_weight, X), weight_scale
        )
        return cls(
            X,
            sample_weight,
            estimator=estimator,
            weight_scale=weight_scale,
            prediction=prediction,
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

    def map_reduce(self, chunk_function):
        """Map ``chunk_function`` over the blocks and tree-reduce the sums.

        Parameters
        ----------
        chunk_function : callable
            ``chunk_function(X_chunk, w_chunk)`` returns a dict of ndarray
            sums.

        Returns
        -------
        stats : dict of ndarray
            Computed on the current Dask scheduler (a ``distributed.Client``
            if one is active).
        """
        dask, _ = _import_dask()
        block_function = dask.delayed(_block_statistics)
        parts = [
            block_function(block, weight, chunk_function=chunk_function, rows=self.rows)
            for block, weight in _delayed_blocks(self.X, self.sample_weight)
        ]
        reduce = dask.delayed(add_statistics)
        while len(parts) > 1:
            parts = [
                reduce(parts[i : i + self.split_every])
                for i in range(0, len(parts), self.split_every)
            ]
        (stats,) = dask.compute(parts[0])
        return stats

    def map_rows(self, row_function, *, n_outputs=None, dtype):
        """``row_function`` of every row, lazily, as a Dask array.

        See :meth:`._arrays.ArrayData.map_rows` for the parameters.

        Returns
        -------
        result : dask.array.Array of shape (n_samples,) or \
                (n_samples, n_outputs)
        """
        return self._map_blocks(
            _block_rows,
            n_outputs,
            dtype,
            row_function=row_function,
            rows=self.rows,
        )

    def fill_rows(self, value, *, n_outputs=None, dtype):
        """``value`` for every row, lazily, as a Dask array.

        See :meth:`._arrays.ArrayData.fill_rows`. Each block is still
        validated when computed.
        """
        return self._map_blocks(_block_fill, n_outputs, dtype, value=value)

    def _map_blocks(self, block_function, n_outputs, dtype, **kwargs):
        """``block_function`` of each block of rows, with ``n_outputs``
        columns (None: one value per row) of ``dtype``."""
        dtype = np.dtype(dtype)
        if n_outputs is None:
            return self.X.map_blocks(
                block_function,
                n_outputs=None,
                drop_axis=1,
                dtype=dtype,
                meta=np.empty((0,), dtype=dtype),
                out_dtype=dtype,
                **kwargs,
            )
        return self.X.map_blocks(
            block_function,
            n_outputs=n_outputs,
            chunks=(self.X.chunks[0], (n_outputs,)),
            dtype=dtype,
            meta=np.empty((0, 0), dtype=dtype),
            out_dtype=dtype,
            **kwargs,
        )

    def init_sample(self, random_state):
        """An in-memory random sample of the rows, for the initialisation.

        Returns
        -------
        data : ArrayData
            At most about ``INIT_SAMPLE_SIZE`` rows with a positive weight.
        """
        X, sample_weight = initial_sample(
            self.estimator, self.X, self.sample_weight, random_state
        )
        estimator = self.estimator
        rows = estimator._chunk_rows(
            X.shape[0], X.shape[1], X.dtype.itemsize, estimator.n_jobs
        )
        return ArrayData(
            X,
            sample_weight,
            rows=rows,
            n_jobs=estimator.n_jobs,
            weight_scale=self.weight_scale,
        )
