"""``jaxnet.hand_grad``: ``jax.grad`` through it runs the layer's hand-written
backward (a ``custom_vjp``). Issue 5: where autodiff is slower than the hand-written
backward (the GPT block, ``jaxnet bench``), a ``jax.grad`` training step can cost what
the hand-written step costs. Timings live in the benchmark suite; these tests pin the
numbers (float64), the transformations it must survive and the one it gives up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_close, second_order

import jaxnet
from jaxnet.nn._layer import Layer
from jaxnet.testing import tolerance

F64 = tolerance(jnp.float64, "analytic")
F64_2 = second_order(F64)


def _block(drop_rate=0.0):
    return jaxnet.TransformerBlock(
        2, 8, causal=True, drop_rate=drop_rate, dtype=jnp.float64
    )


def _cheap_block():
    """A residual block with the same in and out shape, quick to compile."""
    return jaxnet.residual(
        jaxnet.LayerNorm(dtype=jnp.float64),
        jaxnet.Dense(8, dtype=jnp.float64),
        jaxnet.Tanh(),
    )


def _problem(model, shape=(2, 5, 8), seed=0):
    rng = np.random.default_rng(seed)
    _, params = model.init(jax.random.key(seed), shape)
    x = jnp.asarray(rng.standard_normal(shape))
    g = jnp.asarray(rng.standard_normal(jax.eval_shape(model.apply, params, x).shape))
    return params, x, g


def _grads(layer, params, x, g, **kw):
    """jax.grad of sum(g * sin(layer(params, x))) w.r.t. (params, x)."""

    def f(p, x):
        return jnp.sum(g * jnp.sin(layer.apply(p, x, **kw)))

    return jax.jit(jax.grad(f, (0, 1)))(params, x)


@pytest.mark.slow
def test_grad_is_the_hand_written_backward_with_dropout_and_mask():
    """A transformer block in training mode (dropout key) with an array mask option:
    jax.grad through hand_grad equals jaxnet.analytic.vjp (the same computation) and
    plain autodiff, float64."""
    block = _block(drop_rate=0.3)
    fast = jaxnet.hand_grad(block)
    params, x, g = _problem(block)
    rng = np.random.default_rng(1)
    mask = jnp.asarray((rng.random((5, 5)) > 0.3) | np.eye(5, dtype=bool))[None, None]
    kw = {"key": jax.random.key(7), "train": True, "mask": mask}
    y = block.apply(params, x, **kw)
    np.testing.assert_array_equal(fast.apply(params, x, **kw), y)
    got = _grads(fast, params, x, g, **kw)
    want = _grads(block, params, x, g, **kw)
    assert_trees_close(got, want, F64, "vs plain autodiff")
    hand = jaxnet.analytic.vjp(block, params, x, g * jnp.cos(y), **kw)
    assert_trees_close(got, hand, F64, "vs analytic.vjp")
    assert float(jnp.max(jnp.abs(got[1]))) > 1e-2  # dx is a real gradient
    # The key and the mask matter: another key gives other gradients.
    other = _grads(fast, params, x, g, **{**kw, "key": jax.random.key(8)})
    assert float(jnp.max(jnp.abs(other[1] - got[1]))) > 1e-3


def test_runs_the_hand_written_backward_not_autodiff():
    """A layer whose ``backward`` is deliberately 2x the true gradient: hand_grad
    returns the doubled one, so jax.grad really runs ``backward``."""
    dense = jaxnet.Dense(3, dtype=jnp.float64)

    def doubled(params, x, y, g, **kw):
        dp, dx = dense.backward(params, x, y, g, **kw)
        return jax.tree.map(lambda a: 2 * a, dp), 2 * dx

    wrong = Layer(dense.name, dense.init, dense.apply, doubled, "doubled")
    params, x, g = _problem(dense, (4, 5))
    got = _grads(jaxnet.hand_grad(wrong), params, x, g)
    want = _grads(dense, params, x, g)
    assert_trees_close(
        got, jax.tree.map(lambda a: 2 * a, want), F64, "doubled backward"
    )


@pytest.mark.slow
def test_integer_inputs_get_no_cotangent():
    """Token ids (an Embedding first) have no float cotangent; the params' gradient
    equals plain autodiff."""
    model = jaxnet.serial(
        jaxnet.Embedding(11, 8, dtype=jnp.float64), _cheap_block(), jaxnet.Dense(3)
    )
    fast = jaxnet.hand_grad(model)
    ids = jnp.asarray(np.random.default_rng(2).integers(0, 11, (2, 5)))
    _, params = model.init(jax.random.key(0), ids)
    g = jnp.asarray(np.random.default_rng(3).standard_normal((2, 5, 3)))

    def grad(layer):
        return jax.grad(lambda p: jnp.sum(g * layer.apply(p, ids)))(params)

    assert_trees_close(grad(fast), grad(model), F64, "Embedding model")


@pytest.mark.slow
def test_vmap_remat_and_stack():
    """Per-example gradients under vmap; remat(hand_grad(block)) and
    Stack(hand_grad(block), 2) give plain autodiff's gradients."""
    block = _cheap_block()
    fast = jaxnet.hand_grad(block)
    params, x, g = _problem(block)

    def per_example(layer):
        def one(x, g):
            return jax.grad(lambda p: jnp.sum(g * layer.apply(p, x[None])[0]))(params)

        return jax.vmap(one)(x, g)

    assert_trees_close(per_example(fast), per_example(block), F64, "vmap")
    assert_trees_close(
        _grads(jaxnet.remat(fast), params, x, g),
        _grads(block, params, x, g),
        F64,
        "remat",
    )
    stack, plain_stack = jaxnet.Stack(fast, 2), jaxnet.Stack(block, 2)
    _, sparams = plain_stack.init(jax.random.key(3), x.shape)
    assert_trees_close(
        _grads(stack, sparams, x, g), _grads(plain_stack, sparams, x, g), F64, "Stack"
    )


@pytest.mark.slow
def test_hessian_vector_products_work_forward_mode_raises():
    """Hessian-vector products (forward over reverse and reverse over reverse,
    through the backward's own operations) equal plain autodiff's; jax.jvp through the custom_vjp raises, the
    documented price of the opt-in."""
    block = _block()
    fast = jaxnet.hand_grad(block)
    params, x, g = _problem(block)
    v = jnp.asarray(np.random.default_rng(4).standard_normal(x.shape))

    def hvps(layer):
        def gx(x):
            return jax.grad(lambda x: jnp.sum(g * jnp.tanh(layer.apply(params, x))))(x)

        def both(x, v):
            fwd_rev = jax.jvp(gx, (x,), (v,))[1]
            rev_rev = jax.grad(lambda x: jnp.sum(gx(x) * v))(x)
            return fwd_rev, rev_rev

        return jax.jit(both)(x, v)

    got = hvps(fast)
    assert_trees_close(
        got, hvps(block), F64_2, "forward-over-reverse and reverse-over-reverse"
    )
    assert_trees_close(
        got[0], got[1], F64_2, "the Hessian is symmetric: both HVPs agree"
    )
    assert float(jnp.max(jnp.abs(got[0]))) > 1e-3
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda x: fast.apply(params, x), (x,), (v,))


def test_errors_name_the_layer_and_the_fix():
    bare = Layer("bare", jaxnet.Tanh().init, jaxnet.Tanh().apply, None, "Bare()")
    with pytest.raises(NotImplementedError, match=r"hand_grad\(Bare\(\)\).*no hand"):
        jaxnet.hand_grad(bare)
    with pytest.raises(ValueError, match=r"hand_grad\(.*BatchNorm.*keeps state"):
        jaxnet.hand_grad(jaxnet.serial(jaxnet.Dense(3), jaxnet.BatchNorm()))
