"""Stochastic optimiser of the VAE: Adam, updating parameters in place."""

import numpy as np


class AdamOptimizer:
    """Adam (Kingma & Ba, 2015) with in-place, allocation-free updates.

    Parameters
    ----------
    params : list of ndarray
        The parameters that will be updated; their shapes and dtypes define
        those of the moment estimates.

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
        First and second moment estimates, one per parameter array.
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
        self._work = [np.empty_like(p) for p in params]

    def update_params(self, params, grads):
        """Take one Adam step, modifying ``params`` in place.

        Parameters
        ----------
        params : list of ndarray
            The parameters, as given to the constructor.

        grads : list of ndarray
            Gradients of the loss, same shapes as ``params``.
        """
        self.t += 1
        beta_1, beta_2 = self.beta_1, self.beta_2
        step = self.learning_rate * np.sqrt(1 - beta_2**self.t) / (1 - beta_1**self.t)
        step = float(step)
        for param, grad, m, v, work in zip(params, grads, self.ms, self.vs, self._work):
            # m <- beta_1 m + (1 - beta_1) g ; v <- beta_2 v + (1 - beta_2) g^2
            m *= beta_1
            np.multiply(grad, 1 - beta_1, out=work)
            m += work
            v *= beta_2
            np.square(grad, out=work)
            work *= 1 - beta_2
            v += work
            # param <- param - step * m / (sqrt(v) + epsilon)
            np.sqrt(v, out=work)
            work += self.epsilon
            np.divide(m, work, out=work)
            work *= step
            param -= work
