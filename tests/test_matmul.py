"""``jaxnet._layer.matmul``: ``x @ w`` whose JVP writes the weight term as a 2-D
product, so ``jax.grad``'s weight gradient is ``x2.T @ g2`` (the hand-written
``dense_vjp``) also for a rank-3 ``x`` (issue 5: autodiff no slower than hand-written;
plain autodiff of a rank-3 ``x @ w`` made XLA:CPU copy a transposed cotangent, 1.33x
the hand-written time for a Dense on (8, 128, 256), measured in ``jaxnet bench``, not
here). These tests pin the numbers (float64) and the structure of the gradient
program (jaxpr), never a timing.
"""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet._layer import matmul
from jaxnet.analytic import dense_vjp
from jaxnet.testing import tolerance

F64 = tolerance(jnp.float64, "analytic")
# Second derivatives sum more terms: 10x the first-order tolerance, as test_norm.
F64_2 = type(F64)(rtol=10 * F64.rtol, atol=10 * F64.atol)


def _data(x_shape, out=5, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(x_shape))
    w = jnp.asarray(rng.standard_normal((x_shape[-1], out)))
    g = jnp.asarray(rng.standard_normal(x_shape[:-1] + (out,)))
    return x, w, g


def _close(a, b, tol=F64, what=""):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb, strict=True):
        assert u.shape == v.shape and u.dtype == v.dtype, what
        np.testing.assert_allclose(u, v, rtol=tol.rtol, atol=tol.atol, err_msg=what)


@pytest.mark.parametrize("x_shape", [(4,), (6, 4), (2, 3, 4), (2, 2, 3, 4)])
def test_value_and_vjp_equal_plain_dot_and_dense_vjp(x_shape):
    """Forward is jnp.dot; jax.vjp equals plain autodiff of jnp.dot and the
    hand-written dense_vjp, for every rank of x, float64."""
    x, w, g = _data(x_shape)
    y, vjp = jax.vjp(matmul, x, w)
    y0, vjp0 = jax.vjp(jnp.dot, x, w)
    np.testing.assert_array_equal(y, y0)
    dx, dw = vjp(g)
    _close((dx, dw), vjp0(g), what="vs plain autodiff")
    if len(x_shape) > 1:
        hand, hand_dx = dense_vjp({"w": w}, x, g)
        _close((dx, dw), (hand_dx, hand["w"]), what="vs dense_vjp")
    assert float(jnp.max(jnp.abs(dw))) > 0.1  # a real gradient, not zeros


def test_forward_mode_and_second_order_equal_plain_dot():
    """jax.jvp (both tangents, one, none perturbed), jax.hessian and reverse over
    reverse through the rule equal those of plain jnp.dot, float64."""
    x, w, g = _data((2, 3, 4), seed=1)
    rng = np.random.default_rng(2)
    dx = jnp.asarray(rng.standard_normal(x.shape))
    dw = jnp.asarray(rng.standard_normal(w.shape))

    def scalar(mm):
        return lambda x, w: jnp.sum(g * jnp.tanh(mm(x, w)))

    for tangents in ((dx, dw), (dx, jnp.zeros_like(dw)), (jnp.zeros_like(dx), dw)):
        _close(
            jax.jvp(matmul, (x, w), tangents),
            jax.jvp(jnp.dot, (x, w), tangents),
            what="jvp",
        )
    _close(
        jax.jvp(lambda w: matmul(x, w), (w,), (dw,)),
        jax.jvp(lambda w: jnp.dot(x, w), (w,), (dw,)),
        what="jvp, x constant (symbolic-zero tangent)",
    )
    h = jax.hessian(scalar(matmul), (0, 1))(x, w)
    _close(h, jax.hessian(scalar(jnp.dot), (0, 1))(x, w), F64_2, "hessian")
    assert float(jnp.max(jnp.abs(h[1][1]))) > 1e-2
    rr = jax.jacrev(jax.grad(scalar(matmul), 1), 0)(x, w)
    _close(rr, jax.jacrev(jax.grad(scalar(jnp.dot), 1), 0)(x, w), F64_2, "jacrev")


def test_vmap_of_grad_equals_per_example():
    x, w, g = _data((3, 2, 4), seed=3)

    def grad_w(x, g):
        return jax.grad(lambda w: jnp.sum(g * matmul(x, w)))(w)

    batched = jax.vmap(grad_w)(x, g)
    for i in range(x.shape[0]):
        _close(batched[i], x[i].T @ g[i], what=f"example {i}")


def _dot_dims(jaxpr) -> list[tuple]:
    """(lhs shape, rhs shape, contracting dims) of every dot_general, recursively."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), shapes = eqn.params["dimension_numbers"], eqn.invars
            out.append((shapes[0].aval.shape, shapes[1].aval.shape, contract))
        for v in eqn.params.values():
            if isinstance(v, jax.extend.core.ClosedJaxpr):
                out.extend(_dot_dims(v.jaxpr))
            elif isinstance(v, jax.extend.core.Jaxpr):
                out.extend(_dot_dims(v))
    return out


@pytest.mark.parametrize("custom", [True, False], ids=["matmul", "plain-dot"])
def test_dense_weight_gradient_is_a_2d_product(custom):
    """The gradient program of a Dense on a rank-3 input computes dw by contracting
    ONE axis of a 2-D x (x2.T @ g2), never two batch axes at once. The plain-dot
    variant shows the check can fail: it is the form the rule replaces."""
    x, w, g = _data((2, 3, 4), seed=4)
    mm = matmul if custom else jnp.dot
    jaxpr = jax.make_jaxpr(jax.grad(lambda w: jnp.sum(g * mm(x, w))))(w).jaxpr
    dots = _dot_dims(jaxpr)
    weight_grads = [d for d in dots if len(d[0]) + len(d[1]) - 2 * len(d[2][0]) == 2]
    assert weight_grads, dots
    multi_axis = [d for d in weight_grads if len(d[2][0]) > 1]
    if custom:
        assert not multi_axis, f"dw contracts several axes: {weight_grads}"
    else:
        assert multi_axis, f"plain dot expected to contract (0, 1): {weight_grads}"


@pytest.mark.parametrize(
    "layer",
    [
        jaxnet.Dense(6, dtype=jnp.float64),
        jaxnet.MultiHeadAttention(2, causal=True, dtype=jnp.float64),
    ],
    ids=["Dense", "MultiHeadAttention"],
)
def test_dense_and_attention_use_the_rule(layer):
    """Dense and MultiHeadAttention's projections route through matmul: their
    jax.grad equals the hand-written backward to float64 rounding on rank-3 input."""
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((2, 3, 8)))
    _, params = layer.init(jax.random.key(0), x.shape)
    assert "custom_jvp_call" in str(jax.make_jaxpr(layer.apply)(params, x))
    g = jnp.asarray(rng.standard_normal(jax.eval_shape(layer.apply, params, x).shape))
    auto = jax.grad(lambda p: jnp.sum(g * layer.apply(p, x)))(params)
    hand, _ = jaxnet.analytic.vjp(layer, params, x, g)
    _close(auto, hand, what=layer.desc)
