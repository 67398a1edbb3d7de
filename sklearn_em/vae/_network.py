"""Multi-layer perceptrons for the encoder and the decoder of the VAE.

The forward and backward passes write into preallocated buffers so that a
training step allocates (almost) nothing. The layout follows
``sklearn/neural_network/_multilayer_perceptron.py``: ``coefs[i]`` has shape
``(n_units[i], n_units[i + 1])``, the hidden layers use the chosen activation
and the output layer is linear.
"""

import numpy as np
from scipy.special import expit as logistic_sigmoid


def inplace_identity(X):
    """Apply the identity function (does nothing), X of any shape."""


def inplace_logistic(X):
    """Apply the logistic sigmoid in place, X of any shape."""
    logistic_sigmoid(X, out=X)


def inplace_tanh(X):
    """Apply the hyperbolic tangent in place, X of any shape."""
    np.tanh(X, out=X)


def inplace_relu(X):
    """Apply the rectified linear unit max(X, 0) in place, X of any shape."""
    np.maximum(X, 0, out=X)


ACTIVATIONS = {
    "identity": inplace_identity,
    "logistic": inplace_logistic,
    "tanh": inplace_tanh,
    "relu": inplace_relu,
}


def inplace_identity_derivative(Z, delta):
    """Multiply ``delta`` in place by the identity's derivative (does nothing).

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_units)
        The activations of the layer (the output of the activation function).

    delta : ndarray of shape (n_samples, n_units)
        The backpropagated error, modified in place.
    """


def inplace_logistic_derivative(Z, delta):
    """Multiply ``delta`` in place by the logistic derivative ``Z * (1 - Z)``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_units)
        The activations of the layer (the output of the activation function).

    delta : ndarray of shape (n_samples, n_units)
        The backpropagated error, modified in place.
    """
    delta *= Z
    delta *= 1 - Z


def inplace_tanh_derivative(Z, delta):
    """Multiply ``delta`` in place by the tanh derivative ``1 - Z ** 2``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_units)
        The activations of the layer (the output of the activation function).

    delta : ndarray of shape (n_samples, n_units)
        The backpropagated error, modified in place.
    """
    delta *= 1 - Z**2


def inplace_relu_derivative(Z, delta):
    """Zero ``delta`` in place where the ReLU activation ``Z`` is zero.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_units)
        The activations of the layer (the output of the activation function).

    delta : ndarray of shape (n_samples, n_units)
        The backpropagated error, modified in place.
    """
    np.multiply(delta, Z > 0, out=delta)


DERIVATIVES = {
    "identity": inplace_identity_derivative,
    "logistic": inplace_logistic_derivative,
    "tanh": inplace_tanh_derivative,
    "relu": inplace_relu_derivative,
}


def _unflatten(flat, shapes):
    """Split a flat vector into views of the given shapes.

    Parameters
    ----------
    flat : ndarray of shape (n_params,)
        Contiguous vector, with ``n_params`` the total size of ``shapes``.

    shapes : list of tuple
        Shapes of the views, in order.

    Returns
    -------
    views : list of ndarray
        Views into ``flat``: writing to them writes to ``flat``.
    """
    views = []
    start = 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(flat[start : start + size].reshape(shape))
        start += size
    if start != flat.shape[0]:
        raise ValueError(f"Expected {start} parameters, got {flat.shape[0]}.")
    return views


def _glorot_uniform(fan_in, fan_out, activation, random_state, dtype):
    """Glorot-Bengio uniform initialisation, as in scikit-learn's MLP.

    Parameters
    ----------
    fan_in, fan_out : int
        Number of input and output units of the layer.

    activation : str
        Activation of the layer; "logistic" uses a smaller range.

    random_state : RandomState instance
        Source of randomness.

    dtype : numpy dtype
        Floating dtype of the returned arrays.

    Returns
    -------
    coef : ndarray of shape (fan_in, fan_out)

    intercept : ndarray of shape (fan_out,)
    """
    factor = 2.0 if activation == "logistic" else 6.0
    bound = np.sqrt(factor / (fan_in + fan_out))
    coef = random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)
    intercept = random_state.uniform(-bound, bound, fan_out).astype(dtype)
    return coef, intercept


def _allocate_activations(n_rows, layer_units, dtype):
    """Buffers for the activations (or the deltas) of every layer but the input.

    Parameters
    ----------
    n_rows : int
        Largest number of rows that will go through the network at once.

    layer_units : list of int
        Number of units of every layer, input and output included.

    dtype : numpy dtype
        Floating dtype of the buffers.

    Returns
    -------
    buffers : list of ndarray
        ``buffers[i]`` has shape ``(n_rows, layer_units[i + 1])``.
    """
    return [np.empty((n_rows, n_units), dtype=dtype) for n_units in layer_units[1:]]


def _forward_pass(X, coefs, intercepts, activation, activations):
    """Forward pass of an MLP with a linear output layer, into buffers.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_units_in)
        Input of the network.

    coefs : list of ndarray
        ``coefs[i]`` of shape ``(n_units[i], n_units[i + 1])``.

    intercepts : list of ndarray
        ``intercepts[i]`` of shape ``(n_units[i + 1],)``.

    activation : str
        Activation of the hidden layers, a key of ``ACTIVATIONS``.

    activations : list of ndarray
        Output buffers, ``activations[i]`` of shape ``(n_rows, n_units[i + 1])``;
        filled in place.

    Returns
    -------
    output : ndarray of shape (n_rows, n_units_out)
        The last buffer, the output of the linear output layer.
    """
    hidden_activation = ACTIVATIONS[activation]
    n_layers = len(coefs)
    layer_input = X
    for i in range(n_layers):
        out = activations[i]
        np.matmul(layer_input, coefs[i], out=out)
        out += intercepts[i]
        if i + 1 != n_layers:
            hidden_activation(out)
        layer_input = out
    return activations[-1]


def _backward_pass(
    X,
    coefs,
    activation,
    activations,
    deltas,
    coef_grads,
    intercept_grads,
    input_grad=None,
):
    """Backpropagate the gradient of the loss with respect to the output.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_units_in)
        Input that went through :func:`_forward_pass`.

    coefs : list of ndarray
        ``coefs[i]`` of shape ``(n_units[i], n_units[i + 1])``.

    activation : str
        Activation of the hidden layers, a key of ``DERIVATIVES``.

    activations : list of ndarray
        The buffers filled by :func:`_forward_pass`.

    deltas : list of ndarray
        ``deltas[i]`` of shape ``(n_rows, n_units[i + 1])``. On entry
        ``deltas[-1]`` holds the gradient of the loss with respect to the
        output; the others are overwritten.

    coef_grads, intercept_grads : list of ndarray
        Same shapes as the coefficients and intercepts; filled in place.

    input_grad : ndarray of shape (n_rows, n_units_in), default=None
        If given, filled with the gradient of the loss with respect to ``X``.
    """
    derivative = DERIVATIVES[activation]
    for i in range(len(coefs) - 1, -1, -1):
        layer_input = X if i == 0 else activations[i - 1]
        np.matmul(layer_input.T, deltas[i], out=coef_grads[i])
        np.sum(deltas[i], axis=0, out=intercept_grads[i])
        if i > 0:
            np.matmul(deltas[i], coefs[i].T, out=deltas[i - 1])
            derivative(activations[i - 1], deltas[i - 1])
    if input_grad is not None:
        np.matmul(deltas[0], coefs[0].T, out=input_grad)
