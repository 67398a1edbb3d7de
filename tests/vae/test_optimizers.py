"""The VAE's Adam optimiser against the textbook update."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sklearn_em.vae._optimizers import _BLOCK, AdamOptimizer


def _textbook_adam(params, grads_per_step, lr, beta_1, beta_2, epsilon):
    """Kingma & Ba (2015), Algorithm 1, in float64 with fresh arrays."""
    params = [p.astype(np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            g = g.astype(np.float64)
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g**2
            m_hat = m[i] / (1 - beta_1**t)
            v_hat = v[i] / (1 - beta_2**t)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + epsilon)
    return params


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_matches_the_textbook_update(dtype):
    # Arrays smaller than a block, spanning blocks with a ragged end, and 2-D.
    rng = np.random.RandomState(0)
    shapes = [(7,), (2 * _BLOCK + 13,), (31, 29)]
    params = [rng.normal(size=s).astype(dtype) for s in shapes]
    grads_per_step = [
        [
            rng.normal(scale=10.0 ** rng.randint(-6, 2), size=s).astype(dtype)
            for s in shapes
        ]
        for _ in range(25)
    ]
    kwargs = dict(lr=3e-3, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    expected = _textbook_adam(params, grads_per_step, **kwargs)

    updated = [p.copy() for p in params]
    optimizer = AdamOptimizer(
        updated,
        learning_rate=kwargs["lr"],
        beta_1=kwargs["beta_1"],
        beta_2=kwargs["beta_2"],
        epsilon=kwargs["epsilon"],
    )
    for grads in grads_per_step:
        optimizer.update_params(updated, grads)
    assert optimizer.t == len(grads_per_step)
    # float32: each step rounds the parameters (|p| ~ 1) by about 6e-8.
    rtol, atol = (1e-4, 4e-6) if dtype == np.float32 else (1e-10, 1e-15)
    for got, want, original in zip(updated, expected, params):
        assert got.dtype == dtype
        # Compare the displacements, which are small next to the parameters.
        assert_allclose(got - original, want - original, rtol=rtol, atol=atol)


def test_adam_updates_in_place_and_minimises_a_quadratic():
    target = np.linspace(-2, 2, 3 * _BLOCK + 1)
    param = np.zeros_like(target)
    buffer = param
    optimizer = AdamOptimizer([param], learning_rate=0.05)
    for _ in range(500):
        optimizer.update_params([param], [param - target])
    assert param is buffer
    assert_allclose(param, target, atol=1e-2)


@pytest.mark.parametrize("dtype, n_steps", [(np.float32, 1500), (np.float64, 8000)])
def test_moments_of_vanished_gradients_do_not_stay_subnormal(dtype, n_steps):
    # After the first step the gradient is zero: the first moment decays by
    # beta_1 per step and would pass through the subnormal range (float32
    # after ~760 steps, float64 after ~6,700), where arithmetic is about a
    # hundred times slower. The optimiser flushes such values to zero without
    # moving the parameters measurably.
    rng = np.random.RandomState(0)
    param = rng.normal(size=500).astype(dtype)
    first_grad = rng.normal(scale=1e-3, size=500).astype(dtype)
    zero = np.zeros_like(param)
    updated = param.copy()
    optimizer = AdamOptimizer([updated], learning_rate=1e-3)
    tiny = np.finfo(dtype).tiny
    n_subnormal_steps = 0
    for step in range(n_steps):
        optimizer.update_params([updated], [first_grad if step == 0 else zero])
        for moment in (optimizer.ms[0], optimizer.vs[0]):
            n_subnormal_steps += np.any((moment != 0) & (np.abs(moment) < tiny))
    # Between flushes a moment cannot decay below tiny.
    assert n_subnormal_steps == 0
    # The first moments were flushed to zero.
    assert np.all(optimizer.ms[0] == 0)
    expected = _textbook_adam(
        [param],
        [[first_grad]] + [[zero]] * (n_steps - 1),
        lr=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
    )[0]
    # float32: each step rounds the parameters (|p| ~ 1) by about 6e-8.
    rtol, atol = (1e-4, 4e-6) if dtype == np.float32 else (1e-10, 1e-15)
    assert_allclose(updated - param, expected - param, rtol=rtol, atol=atol)
