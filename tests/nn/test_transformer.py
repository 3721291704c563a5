"""TransformerBlock: a composition whose hand-written backward is the layers' chained."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet.testing import check_grads


def test_causal_block_ignores_the_future_and_dropout_needs_a_key():
    block = jaxnet.TransformerBlock(2, 8, causal=True, drop_rate=0.1)
    _, params = block.init(jax.random.key(0), (None, 5, 8))
    x = jax.random.normal(jax.random.key(1), (2, 5, 8), jnp.float32)
    y = block.apply(params, x)  # evaluation: no dropout, no key needed
    changed = x.at[:, 3:].set(0.0)  # change only positions 3 and 4
    y2 = block.apply(params, changed)
    np.testing.assert_array_equal(y[:, :3], y2[:, :3])  # earlier outputs unchanged
    assert not np.allclose(y[:, 3:], y2[:, 3:])
    with pytest.raises(jaxnet.MissingKeyError, match="train=True, key="):
        block.apply(params, x, train=True)
    k = jax.random.key(2)
    a = block.apply(params, x, train=True, key=k)
    np.testing.assert_array_equal(a, block.apply(params, x, train=True, key=k))
    assert not np.allclose(a, y)


@pytest.mark.slow
def test_hand_written_gradient_with_dropout_and_padding_mask_float64():
    with jax.enable_x64(True):
        block = jaxnet.TransformerBlock(2, 4, drop_rate=0.2, dtype=jnp.float64)
        _, params = block.init(jax.random.key(0), (None, 3, 4))
        x = jax.random.normal(jax.random.key(1), (2, 3, 4), jnp.float64)
        mask = jnp.array([True, True, False])[None, None, None, :]  # pad the last
        g = jax.random.normal(jax.random.key(3), (2, 3, 4), jnp.float64)
        opts = {"train": True, "key": jax.random.key(4), "mask": mask}

        def f(p):
            return jnp.sum(g * block.apply(p, x, **opts))

        report = check_grads(
            f,
            params,
            analytic=lambda p: jaxnet.analytic.vjp(block, p, x, g, **opts)[0],
            method=None,
        )
        report.assert_ok()
        assert max(r.max_rel for r in report.rows) < 1e-12


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match=r"num_heads must divide d_model"):
        jaxnet.TransformerBlock(3, 8)
