"""Latent draws for scoring that depend on each sample only.

``score_samples`` averages over latent draws ``eps ~ N(0, I)``. For the mean
over samples to average the Monte Carlo noise away, every sample needs its
own, independent draws; for the score of a sample to be a function of that
sample (the same whatever other rows are scored with it, and in whatever
order), its draws must not depend on its position either. Both hold when the
draws of a row are generated from a key computed from the row's values and a
seed: a counter-based generator, vectorised over rows, draws and components.

The mixing function is the finaliser of SplitMix64 (Steele, Lea and Flood,
"Fast splittable pseudorandom number generators", OOPSLA 2014), whose
outputs for consecutive counters pass the BigCrush statistical tests; the
normal deviates come from the Box-Muller transform of two 32-bit uniforms.
"""

import numpy as np

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _mix64(x):
    """SplitMix64's finaliser, a bijection of 64-bit integers.

    Parameters
    ----------
    x : ndarray of dtype uint64, any shape

    Returns
    -------
    out : ndarray of dtype uint64, same shape as ``x``
    """
    x = x ^ (x >> np.uint64(30))
    x *= _MIX_1
    x ^= x >> np.uint64(27)
    x *= _MIX_2
    x ^= x >> np.uint64(31)
    return x


def _row_keys(X, seed):
    """A 64-bit key per row, from the row's values and a seed.

    Rows with the same values (as float64, with ``-0.0`` equal to ``0.0``)
    get the same key; any other difference changes the key, as does the
    seed.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    seed : int
        Non-negative, below ``2**63``.

    Returns
    -------
    keys : ndarray of shape (n_samples,), dtype uint64
    """
    seed = np.uint64(seed)
    # x + 0.0 maps -0.0 to 0.0 and float32 values to the same float64 values.
    bits = np.add(X, 0.0, dtype=np.float64).view(np.uint64)
    column_keys = _mix64(
        np.arange(1, X.shape[1] + 1, dtype=np.uint64) * _GOLDEN_GAMMA + seed
    )
    bits ^= column_keys
    keys = _mix64(bits).sum(axis=1, dtype=np.uint64)
    keys ^= seed
    return _mix64(keys)


def _keyed_standard_normal(keys, n_draws, n_components, dtype=np.float64):
    """Standard normal draws, those of a row a function of its key only.

    Parameters
    ----------
    keys : ndarray of shape (n_samples,), dtype uint64
        One key per row, see :func:`_row_keys`.

    n_draws : int

    n_components : int

    dtype : numpy dtype, default=np.float64

    Returns
    -------
    eps : ndarray of shape (n_draws, n_samples, n_components)
        ``eps[:, i]`` depends on ``keys[i]`` only.
    """
    n_pairs = (n_components + 1) // 2
    counters = np.arange(1, n_draws * n_pairs + 1, dtype=np.uint64) * _GOLDEN_GAMMA
    state = keys[np.newaxis, :, np.newaxis] + counters.reshape(n_draws, 1, n_pairs)
    bits = _mix64(state)
    # Two uniforms in (0, 1) from the high and the low 32 bits.
    scale = 2.0**-32
    u1 = (bits >> np.uint64(32)).astype(np.float64)
    u1 += 0.5
    u1 *= scale
    u2 = (bits & np.uint64(0xFFFFFFFF)).astype(np.float64)
    u2 += 0.5
    u2 *= 2 * np.pi * scale
    radius = np.sqrt(-2 * np.log(u1))
    eps = np.empty((n_draws, keys.shape[0], 2 * n_pairs), dtype=dtype)
    np.multiply(radius, np.cos(u2), out=eps[..., :n_pairs])
    np.multiply(radius, np.sin(u2), out=eps[..., n_pairs:])
    return eps[..., :n_components]
