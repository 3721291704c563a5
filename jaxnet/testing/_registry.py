"""The registry of every built-in layer and loss, shared by the tests and ``jaxnet check``.

Each case says how to build the layer for a dtype, the input shape, how to draw inputs
(away from kinks, where the derivative is one-sided), and which numerical method fits:
``"complex"`` where the function is real-analytic and written with complex-safe ops,
``"central"`` otherwise. Adding a layer to jaxnet means adding a case here; the test
battery and ``jaxnet check`` then cover it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .. import _losses as L
from .._analytic import loss_vjp
from .._types import Array, Params, PRNGKey
from ._case import LayerCase, LossCase, away_from, host_rng
from ._check import GradReport, check_grads
from ._numeric import total
from .cases.attention import ATTENTION_CASES
from .cases.batchnorm import BATCHNORM_CASES
from .cases.combinators import COMBINATOR_CASES, _mlp
from .cases.conv import CONV_CASES
from .cases.core import CORE_CASES
from .cases.embedding import EMBEDDING_CASES
from .cases.norm import NORM_CASES
from .cases.pool import POOL_CASES
from .cases.recurrent import RNN_CASES
from .cases.stack import STACK_CASES
from .cases.transformer import TRANSFORMER_CASES

#: Every registered layer, family by family (one module per family in
#: :mod:`jaxnet.testing.cases`, named after the family's module in :mod:`jaxnet.nn`).
LAYER_CASES: tuple[LayerCase, ...] = (
    CORE_CASES
    + COMBINATOR_CASES
    + BATCHNORM_CASES
    + CONV_CASES
    + POOL_CASES
    + NORM_CASES
    + EMBEDDING_CASES
    + ATTENTION_CASES
    + RNN_CASES
    + TRANSFORMER_CASES
    + STACK_CASES
)


def _regression(
    key: PRNGKey, dt: Any, kinks: tuple[float, ...] = ()
) -> tuple[Array, Array]:
    k1, k2 = jax.random.split(key)
    t = jax.random.normal(k2, (4, 3), dt)
    e = (
        away_from(*kinks)(k1, (4, 3), dt)
        if kinks
        else jax.random.normal(k1, (4, 3), dt)
    )
    return t + e, t


def _probs(key: PRNGKey, dt: Any) -> tuple[Array, Array]:
    k1, k2 = jax.random.split(key)
    p = jax.random.uniform(k1, (4, 3), dt, 0.05, 0.95)
    return p, jax.random.bernoulli(k2, 0.5, (4, 3)).astype(dt)


def _logits_binary(key: PRNGKey, dt: Any) -> tuple[Array, Array]:
    k1, k2 = jax.random.split(key)
    return (
        3 * jax.random.normal(k1, (4, 3), dt),
        jax.random.uniform(k2, (4, 3), dt),  # soft labels in [0, 1]
    )


def _logits_soft(key: PRNGKey, dt: Any) -> tuple[Array, Array]:
    k1, k2 = jax.random.split(key)
    return (
        2 * jax.random.normal(k1, (4, 5), dt),
        jax.nn.softmax(jax.random.normal(k2, (4, 5), dt)),
    )


def _logits_int(key: PRNGKey, dt: Any) -> tuple[Array, Array]:
    k1, k2 = jax.random.split(key)
    return 2 * jax.random.normal(k1, (4, 5), dt), jax.random.randint(k2, (4,), 0, 5)


LOSS_CASES: tuple[LossCase, ...] = (
    LossCase("squared_error", L.squared_error, _regression, "complex"),
    LossCase("half_squared_error", L.half_squared_error, _regression, "complex"),
    LossCase("mse", L.mse, _regression, "complex"),
    LossCase(
        "absolute_error", L.absolute_error, functools.partial(_regression, kinks=(0.0,))
    ),
    LossCase(
        "huber(delta=0.5)",
        functools.partial(L.huber, delta=0.5),
        functools.partial(_regression, kinks=(-0.5, 0.0, 0.5)),
    ),
    LossCase("binary_cross_entropy", L.binary_cross_entropy, _probs),
    LossCase(
        "sigmoid_binary_cross_entropy", L.sigmoid_binary_cross_entropy, _logits_binary
    ),
    LossCase("softmax_cross_entropy", L.softmax_cross_entropy, _logits_soft),
    LossCase(
        "softmax_cross_entropy_with_integer_labels",
        L.softmax_cross_entropy_with_integer_labels,
        _logits_int,
    ),
)


def _cotangent(key: PRNGKey, like: Any) -> Any:
    """A random cotangent shaped like ``like`` (arrays or ``ShapeDtypeStruct``s)."""
    leaves, treedef = jax.tree.flatten(like)
    rng = host_rng(key)
    return jax.tree.unflatten(
        treedef,
        [jax.device_put(rng.standard_normal(l.shape).astype(l.dtype)) for l in leaves],
    )


def _dot(a: Any, b: Any) -> Array:
    """``<a, b>`` in ``b``'s precision (a float64 reference of a float32 case)."""
    return total(
        jnp.sum(x.astype(y.dtype) * y)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def _like(t: Any, p: Array) -> Any:
    """Float targets in the predictions' precision; integer labels unchanged."""
    return t.astype(p.dtype) if jnp.issubdtype(t.dtype, jnp.floating) else t


def layer_problem(
    case: LayerCase, dtype: Any, seed: int = 0
) -> tuple[Callable, Callable, dict]:
    """``(f, analytic, point)`` for checking a layer: ``f = sum(g * layer(params, x))``.

    The gradient is taken w.r.t. ``{"params": params, "x": x}``; ``analytic`` is the
    layer's hand-written backward. ``g`` is a fixed random cotangent. An input with
    integer leaves (token ids) is not differentiable: then the point is
    ``{"params": params}`` alone, ``x`` is held fixed and the backward's ``dx`` unused.
    """
    layer = case.make(dtype)
    k_init, k_x, k_g = jax.random.split(jax.random.key(seed), 3)
    _, params = layer.init(k_init, case.input_shape)
    x = case.inputs(k_x, dtype)
    opts = case.options_for(layer)

    def out(p: Params, xp: Any) -> Any:
        # A stateful layer returns (y, new_state); only y is differentiated.
        y = layer.apply(p, xp, **opts)
        return y[0] if layer.stateful else y

    g = _cotangent(k_g, jax.eval_shape(out, params, x))
    with_x = all(jnp.issubdtype(a.dtype, jnp.inexact) for a in jax.tree.leaves(x))

    def f(point: dict) -> Array:
        return _dot(g, out(point["params"], point.get("x", x)))

    def analytic(point: dict) -> dict:
        if layer.backward is None:
            raise NotImplementedError(f"{case.id}: {layer.desc} has no backward.")
        xp = point.get("x", x)
        y = out(point["params"], xp)
        dp, dx = layer.backward(
            point["params"],
            xp,
            y,
            jax.tree.map(lambda c, o: c.astype(o.dtype), g, y),
            **opts,
        )
        return {"params": dp, "x": dx} if with_x else {"params": dp}

    point = {"params": params, "x": x} if with_x else {"params": params}
    return f, analytic, point


def loss_problem(
    case: LossCase, dtype: Any, seed: int = 0
) -> tuple[Callable, Callable, Array]:
    """``(f, analytic, predictions)`` for checking a loss: ``f = sum(g * loss(p, t))``."""
    k_args, k_g = jax.random.split(jax.random.key(seed))
    pred, targets = case.make_args(k_args, dtype)
    g = _cotangent(k_g, case.loss(pred, targets))
    vjp = loss_vjp(case.loss)

    def f(p: Array) -> Array:
        return _dot(g, case.loss(p, _like(targets, p)))

    def analytic(p: Array) -> Array:
        return vjp(p, _like(targets, p), g.astype(p.dtype))

    return f, analytic, pred


def check_layer(
    case: LayerCase, dtype: Any = jnp.float64, method: str | None = "auto"
) -> GradReport:
    """Three-way check of one registered layer (autodiff, analytic, numerical).

    ``method="auto"`` uses the case's numerical method; ``None`` checks
    ``jax.grad`` against the analytic gradient only.
    """
    f, analytic, point = layer_problem(case, dtype)
    method = case.method if method == "auto" else method
    # Jitted: one program per function instead of one per operation (op-by-op
    # dispatch compiles every op of a TransformerBlock's gradient separately).
    return check_grads(
        jax.jit(f), point, analytic=jax.jit(analytic), method=method, name=case.id
    )


def check_loss(
    case: LossCase, dtype: Any = jnp.float64, method: str | None = "auto"
) -> GradReport:
    """Three-way check of one registered loss w.r.t. its predictions (see check_layer)."""
    f, analytic, pred = loss_problem(case, dtype)
    method = case.method if method == "auto" else method
    return check_grads(f, pred, analytic=analytic, method=method, name=case.id)


def check_l2_penalty(dtype: Any = jnp.float64) -> GradReport:
    """Three-way check of :func:`jaxnet.losses.l2_penalty` on an MLP's params."""
    _, params = _mlp(dtype).init(jax.random.key(3), (None, 4))
    return check_grads(
        L.l2_penalty,
        params,
        analytic=lambda p: L.l2_penalty_vjp(p, jnp.ones((), dtype)),
        method="complex",
        name="l2_penalty",
    )
