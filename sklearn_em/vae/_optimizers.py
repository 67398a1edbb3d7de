"""Stochastic optimiser of the VAE: Adam, updating parameters in place."""

import numpy as np

#: Values of one block of the update: the block's slices of the parameters,
#: gradients, both moments and a work buffer (5 x 16 KiB values in float32)
#: stay in a core's cache through the update's ten passes, which NumPy would
#: otherwise stream from memory ten times.
_BLOCK = 16384

#: Steps between flushes of the moments' tiny values to zero (see
#: ``AdamOptimizer._flush_tiny_moments``).
_FLUSH_INTERVAL = 100


def _adam_block(param, grad, m, v, work, beta_1, beta_2, step, epsilon):
    """One Adam step on 1-D slices, in place, with moments kept scaled.

    Parameters
    ----------
    param, grad, m, v, work : ndarray of shape (n_values,)
        ``m`` holds ``m_t / (1 - beta_1)`` and ``v`` ``v_t / (1 - beta_2)``:
        scaled so that each moment update is two passes, ``m <- beta_1 m +
        g``, instead of three. ``work`` is overwritten.

    beta_1, beta_2 : float

    step : float
        The step size times the bias corrections and the moments' scales.

    epsilon : float
        Epsilon divided by the scale of the root of ``v``.
    """
    m *= beta_1
    m += grad
    v *= beta_2
    np.multiply(grad, grad, out=work)
    v += work
    np.sqrt(v, out=work)
    work += epsilon
    np.divide(m, work, out=work)
    work *= step
    param -= work


class AdamOptimizer:
    """Adam (Kingma & Ba, 2015) with in-place, allocation-free updates.

    Parameters
    ----------
    params : list of ndarray
        The parameters that will be updated, C-contiguous; their shapes and
        dtypes define those of the moment estimates.

    learning_rate : float, default=1e-3
        Step size.

    beta_1, beta_2 : float, default=0.9, 0.999
        Exponential decay rates of the first and second moment estimates.

    epsilon : float, default=1e-8
        Added to the root of the second moment for numerical stability.

    Attributes
    ----------
    t : int
        Number of updates done.

    ms, vs : list of ndarray
        First and second moment estimates, one per parameter array, divided
        by ``1 - beta_1`` and ``1 - beta_2`` respectively.
    """

    def __init__(
        self, params, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8
    ):
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]
        dtype = params[0].dtype if params else np.float64
        self._work = np.empty(_BLOCK, dtype=dtype)

    def update_params(self, params, grads):
        """Take one Adam step, modifying ``params`` in place.

        ``param -= lr * m_hat / (sqrt(v_hat) + epsilon)`` with the
        bias-corrected moments ``m_hat = m_t / (1 - beta_1^t)`` and ``v_hat
        = v_t / (1 - beta_2^t)``, computed from the scaled moments.

        Parameters
        ----------
        params : list of ndarray
            The parameters, as given to the constructor.

        grads : list of ndarray
            Gradients of the loss, same shapes as ``params``.
        """
        self.t += 1
        beta_1, beta_2 = self.beta_1, self.beta_2
        # m_hat = (1 - beta_1) m / (1 - beta_1^t), sqrt(v_hat) = sqrt((1 -
        # beta_2) v / (1 - beta_2^t)) with the scaled m and v.
        root_scale = np.sqrt((1 - beta_2) / (1 - beta_2**self.t))
        step = float(
            self.learning_rate * (1 - beta_1) / (1 - beta_1**self.t) / root_scale
        )
        epsilon = float(self.epsilon / root_scale)
        for param, grad, m, v in zip(params, grads, self.ms, self.vs):
            param, grad = param.reshape(-1), grad.reshape(-1)
            m, v = m.reshape(-1), v.reshape(-1)
            work = self._work
            if work.dtype != param.dtype:
                work = np.empty(_BLOCK, dtype=param.dtype)
            for start in range(0, param.size, _BLOCK):
                block = slice(start, start + _BLOCK)
                _adam_block(
                    param[block],
                    grad[block],
                    m[block],
                    v[block],
                    work[: len(param[block])],
                    beta_1,
                    beta_2,
                    step,
                    epsilon,
                )
        if self.t % _FLUSH_INTERVAL == 0:
            self._flush_tiny_moments()

    def _flush_tiny_moments(self):
        """Set to zero the moments that could become subnormal before the next
        flush.

        The moments of a parameter whose gradient has become zero (a dead
        ReLU unit's, say) decay geometrically, by ``beta_1`` per step for
        ``m``: within about 700 steps from 1e-6 they reach float32's
        subnormal range, where every operation on them is some hundred times
        slower. Training the benchmark's VAE on binarised MNIST, 6% of the
        first moments were subnormal after 50 epochs, and from the 13th epoch
        on the epochs took up to 1.6 times as long. A value below
        ``tiny / beta**_FLUSH_INTERVAL`` (4e-34 in float32 for beta 0.9)
        moves its parameter by less than ``learning_rate * 4e-34 / epsilon``
        per step: it is set to zero, and no moment is subnormal for long.
        """
        for moments, beta in ((self.ms, self.beta_1), (self.vs, self.beta_2)):
            for moment in moments:
                tiny = np.finfo(moment.dtype).tiny
                # Values below the square root of tiny are negligible whatever
                # beta is; a beta below it decays to zero in a few steps.
                threshold = min(tiny / max(beta**_FLUSH_INTERVAL, tiny), np.sqrt(tiny))
                np.copyto(moment, 0, where=np.abs(moment) < threshold)
