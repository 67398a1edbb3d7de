"""The data layer of the EM engine: the kind of data is chosen once.

Every pass a mixture makes over its data has one shape::

    X -> validate -> blocks of chunks -> per-chunk function -> reduce -> M-step
                                                            \\-> rows (prediction)

:func:`as_data` validates the user's ``X`` (and ``sample_weight``) and wraps
it in the object for its kind; the EM loop in :mod:`._base` then only calls
the methods below and never asks what kind of data it holds:

=====================  ==============================================
kind                   implementation
=====================  ==============================================
ndarray, scipy.sparse  :class:`._arrays.ArrayData`: row chunks over the
                       engine's thread pool
dask.array.Array       :class:`._dask.DaskData`: blocks on the Dask
                       scheduler, row chunks inside each block
=====================  ==============================================

The interface (duck-typed, :class:`MixtureData` documents it):

- ``shape`` (``(n_samples, n_features)``), ``n_samples``, ``n_features``,
  ``dtype``; ``weight_scale``, the exact power of two the weights were
  multiplied by (only their relative sizes matter to a mixture);
- ``has_missing``: whether ``X`` holds a NaN (a missing value), found once at
  validation; None where that is unknown without reading the data (Dask).
  The models use their missing-value kernels unless it is False;
- ``map_reduce(chunk_function)``: the sum over chunks of
  ``chunk_function(X_chunk, w_chunk)``, a dict of sufficient statistics
  (in memory; the E-step);
- ``map_rows(row_function, n_outputs=None, dtype)``: ``row_function`` of every
  chunk gathered row-wise (lazy for Dask; prediction);
- ``init_sample(random_state)``: an in-memory :class:`._arrays.ArrayData` of
  the rows the initialisation runs on (all rows, or a sample of a Dask
  array).

A new kind of data plugs in as one class with these members, built from
user input by a ``from_user(estimator, X, sample_weight, *, reset, dtype)``
class method, and one line in :func:`as_data`. The per-chunk functions
themselves (:mod:`._suffstats` and the models' maths) never change: they
always receive in-memory chunks.
"""

from typing import Protocol

from ._arrays import ArrayData
from ._dask import DaskData, is_dask_collection


class MixtureData(Protocol):
    """The interface every kind of data offers the EM loop."""

    shape: tuple
    n_samples: int
    n_features: int
    has_missing: bool | None

    def map_reduce(self, chunk_function):
        """Sum of ``chunk_function(X_chunk, w_chunk)`` over all chunks."""

    def map_rows(self, row_function, *, n_outputs=None, dtype):
        """``row_function(X_chunk)`` of every chunk, gathered row-wise."""

    def init_sample(self, random_state):
        """An in-memory ArrayData of the rows the initialisation runs on."""


def as_data(
    estimator,
    X,
    sample_weight=None,
    *,
    reset,
    dtype=None,
    weight_scale=None,
    prediction=False,
):
    """Validate ``X`` and wrap it in the data object of its kind.

    Parameters
    ----------
    estimator : BaseMixtureEM
        The model whose validation and chunk sizes apply.

    X : array-like, sparse matrix or dask.array.Array of shape \
            (n_samples, n_features)

    sample_weight : array-like of shape (n_samples,), number or None, \
            default=None

    reset : bool
        True when fitting from scratch (sets ``n_features_in_``).

    dtype : numpy dtype, default=None
        The dtype of a fitted model that ``X`` updates (``partial_fit``):
        ``X`` is cast to it. None keeps the validated dtype.

    weight_scale : float, default=None
        The power of two the weights are multiplied by (that of a first
        batch); None chooses it from the weights (see
        :func:`~._suffstats.normalise_weights`) and records it as the data's
        ``weight_scale``.

    prediction : bool, default=False
        The data of a prediction, whose chunks the model may size otherwise
        (see ``BaseMixtureEM._chunk_sizing``).

    Returns
    -------
    data : ArrayData or DaskData
    """
    kind = DaskData if is_dask_collection(X) else ArrayData
    return kind.from_user(
        estimator,
        X,
        sample_weight,
        reset=reset,
        dtype=dtype,
        weight_scale=weight_scale,
        prediction=prediction,
    )
