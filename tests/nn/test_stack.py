"""Stack (blocks scanned over stacked parameters) and remat.

The layer battery (tests/nn/test_layers.py and friends, via the registry) already checks
Stack and remat like every layer: analytic backward vs jax.grad vs complex step, jit,
vmap, dtypes. Here: that a Stack *is* the serial composition of its blocks, that every
block gets its own parameters and key, the unrolled and rematerialised variants, and
the errors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_leaves_close

import jaxnet
from jaxnet.testing import tolerance

TOL = tolerance(jnp.float64)
NUM = 3


def _block(drop: float = 0.0) -> jaxnet.Layer:
    return jaxnet.TransformerBlock(2, 8, mlp_ratio=2, causal=True, drop_rate=drop)


def _setup(**kw):
    stack = jaxnet.Stack(_block(0.2), NUM, **kw)
    _, params = stack.init(jax.random.key(0), (None, 5, 8))
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    x = jax.random.normal(jax.random.key(1), (2, 5, 8), jnp.float64)
    return stack, params, x


def _serial_equivalent(params, key):
    """The blocks chained by hand, block i with its slice of the stacked params and
    the i-th of Stack's sub-keys."""
    sliced = {f"b{i}": jax.tree.map(lambda a, i=i: a[i], params) for i in range(NUM)}
    keys = jax.random.split(key, NUM)

    def apply(p, x):
        for i in range(NUM):
            x = _block(0.2).apply(p[f"b{i}"], x, key=keys[i], train=True)
        return x

    return apply, sliced


@pytest.mark.slow
def test_stack_is_the_serial_composition_of_its_blocks():
    stack, params, x = _setup()
    key = jax.random.key(2)
    apply, sliced = _serial_equivalent(params, key)
    y = jax.jit(lambda p, x: stack.apply(p, x, key=key, train=True))(params, x)
    assert_leaves_close(y, jax.jit(apply)(sliced, x), TOL)

    def loss_stack(p):
        return jnp.sum(jnp.sin(stack.apply(p, x, key=key, train=True)))

    def loss_serial(p):
        return jnp.sum(jnp.sin(apply(p, x)))

    g_stack = jax.jit(jax.grad(loss_stack))(params)
    g_serial = jax.jit(jax.grad(loss_serial))(sliced)
    for i in range(NUM):
        assert_leaves_close(
            jax.tree.map(lambda a, i=i: a[i], g_stack), g_serial[f"b{i}"], TOL
        )


@pytest.mark.slow
def test_every_block_has_its_own_params_and_dropout_key():
    stack, params, x = _setup()
    w = params["mlp"]["dense_1"]["w"]
    assert w.shape == (NUM, 8, 16)
    assert all(not np.allclose(w[i], w[j]) for i in range(NUM) for j in range(i))
    # Same params in every slice: any difference between blocks comes from the keys.
    same = jax.tree.map(lambda a: jnp.broadcast_to(a[:1], a.shape), params)
    key = jax.random.key(3)
    one = _block(0.2)
    keys = jax.random.split(key, NUM)
    ref = x
    for i in range(NUM):
        ref = one.apply(
            jax.tree.map(lambda a: a[0], params), ref, key=keys[i], train=True
        )
    assert_leaves_close(stack.apply(same, x, key=key, train=True), ref, TOL)
    shared = x
    for _ in range(NUM):
        shared = one.apply(
            jax.tree.map(lambda a: a[0], params), shared, key=keys[0], train=True
        )
    assert not np.allclose(ref, shared)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kw", [{"unroll": True}, {"remat": True}, {"remat": "dots_saveable"}]
)
def test_unrolled_and_rematerialised_stacks_give_the_same_numbers(kw):
    base, params, x = _setup()
    other = jaxnet.Stack(_block(0.2), NUM, **kw)
    key = jax.random.key(4)

    def loss(layer):
        return lambda p, x: jnp.sum(jnp.tanh(layer.apply(p, x, key=key, train=True)))

    # Values and gradients (value_and_grad: the loss is a function of the outputs).
    assert_leaves_close(
        jax.jit(jax.value_and_grad(loss(other), argnums=(0, 1)))(params, x),
        jax.jit(jax.value_and_grad(loss(base), argnums=(0, 1)))(params, x),
        TOL,
    )


@pytest.mark.slow
def test_analytic_backward_matches_autodiff_with_dropout():
    stack, params, x = _setup(remat=True)
    key = jax.random.key(5)

    @jax.jit
    def both(params, x):
        y, vjp = jax.vjp(lambda p, x: stack.apply(p, x, key=key, train=True), params, x)
        g = jnp.cos(y)
        return stack.backward(params, x, y, g, key=key, train=True), vjp(g)

    hand, ref = both(params, x)
    assert_leaves_close(hand, ref, TOL)


@pytest.mark.slow
def test_scan_compiles_the_block_once():
    """The scanned program holds one copy of the block; the unrolled one holds N."""
    x = jnp.ones((2, 5, 8), jnp.float32)
    counts = {}
    for unroll in (False, True):
        stack = jaxnet.Stack(_block(), 6, unroll=unroll)
        _, params = stack.init(jax.random.key(0), (None, 5, 8))
        text = jax.jit(stack.apply).lower(params, x).as_text()
        counts[unroll] = text.count("dot_general")
    per_block = counts[True] // 6
    assert per_block > 0 and counts[True] == 6 * per_block
    assert counts[False] == per_block


@pytest.mark.slow
def test_remat_lowers_the_saved_activations():
    """jax.checkpoint keeps fewer residuals: XLA's temp memory for the gradient drops."""
    x = jnp.ones((4, 64, 32), jnp.float32)
    temp = {}
    for policy in (False, True):
        stack = jaxnet.Stack(
            jaxnet.TransformerBlock(2, 32, causal=True), 4, remat=policy
        )
        _, params = stack.init(jax.random.key(0), (None, 64, 32))
        grad = jax.jit(jax.grad(lambda p, s=stack: jnp.sum(s.apply(p, x) ** 2)))
        temp[policy] = grad.lower(params).compile().memory_analysis().temp_size_in_bytes
    assert temp[True] < temp[False]


def test_key_none_init_broadcasts_a_paramless_block():
    stack = jaxnet.Stack(jaxnet.Tanh(), 4)
    shape, params = stack.init(None, (None, 3))
    assert shape == (None, 3) and params == {}
    np.testing.assert_allclose(
        stack.apply(params, jnp.ones((2, 3))),
        np.tanh(np.tanh(np.tanh(np.tanh(1.0)))) * np.ones((2, 3)),
        rtol=1e-12,
    )


def test_errors_name_the_stack_and_the_fix():
    with pytest.raises(ValueError, match=r"num must be an int >= 1"):
        jaxnet.Stack(_block(), 0)
    with pytest.raises(ValueError, match=r"keeps state .* Use serial"):
        jaxnet.Stack(jaxnet.serial(jaxnet.Dense(4), jaxnet.BatchNorm()), 2)
    with pytest.raises(ValueError, match=r"keeps state"):
        jaxnet.remat(jaxnet.BatchNorm())
    with pytest.raises(jaxnet.ShapeError, match=r"maps \(None, 4\) to \(None, 3\)"):
        jaxnet.Stack(jaxnet.Dense(3), 2).init(jax.random.key(0), (None, 4))
    with pytest.raises(ValueError, match=r"unknown remat policy 'dots'.*dots_saveable"):
        jaxnet.Stack(_block(), 2, remat="dots")
    with pytest.raises(TypeError, match=r"remat must be a bool"):
        jaxnet.remat(jaxnet.Dense(2), 3)
    stack = jaxnet.Stack(jaxnet.Dense(4), 3)
    _, params = stack.init(jax.random.key(0), (None, 4))
    bad = {"w": params["w"][:2], "b": params["b"]}
    with pytest.raises(
        jaxnet.ParamsError,
        match=r"leading axis of size 3.*\['w'\] has shape \(2, 4, 4\)",
    ):
        stack.apply(bad, jnp.ones((1, 4)))
