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

from .. import _combinators as C
from .. import _layers as Ly
from .. import _losses as L
from .._analytic import loss_vjp
from .._batchnorm import BatchNorm
from .._layer import Layer
from .._stack import Stack, remat
from .._transformer import TransformerBlock
from .._types import Array, Params, PRNGKey
from ._case import LayerCase, LossCase, away_from, host_rng
from ._check import GradReport, check_grads
from .cases.conv import CONV_CASES
from .cases.norm import NORM_CASES
from .cases.recurrent import RNN_CASES
from .cases.seq import SEQ_CASES


def _mlp(dt: Any) -> Layer:
    return C.serial(
        Ly.Dense(6, dtype=dt),
        Ly.Tanh(),
        ("head", Ly.Dense(3, dtype=dt)),
        Ly.LogSoftmax(),
    )


def _branches(dt: Any) -> Layer:
    return C.serial(
        C.FanOut(3),
        C.parallel(Ly.Dense(4, dtype=dt), C.Identity(), Ly.Sigmoid()),
        C.FanInConcat(),
        Ly.Dense(2, dtype=dt),
    )


def _fan_in_sum(dt: Any) -> Layer:
    return C.serial(
        C.FanOut(2), C.parallel(Ly.Dense(4, dtype=dt), Ly.Tanh()), C.FanInSum()
    )


_ACT = functools.partial(LayerCase, input_shape=(None, 5))

CORE_CASES: tuple[LayerCase, ...] = (
    LayerCase("Dense", lambda dt: Ly.Dense(5, dtype=dt), (None, 4), "complex"),
    LayerCase(
        "Dense(use_bias=False)",
        lambda dt: Ly.Dense(3, use_bias=False, dtype=dt),
        (None, 2, 4),
        "complex",
    ),
    _ACT(id="Relu", make=lambda dt: Ly.Relu(), draw=away_from(0.0)),
    _ACT(id="Sigmoid", make=lambda dt: Ly.Sigmoid(), method="complex"),
    _ACT(id="Tanh", make=lambda dt: Ly.Tanh(), method="complex"),
    _ACT(id="Gelu(exact)", make=lambda dt: Ly.Gelu()),
    _ACT(id="Gelu(tanh)", make=lambda dt: Ly.Gelu(approximate=True), method="complex"),
    _ACT(id="Silu", make=lambda dt: Ly.Silu(), method="complex"),
    _ACT(id="Softplus", make=lambda dt: Ly.Softplus()),
    _ACT(id="LeakyRelu", make=lambda dt: Ly.LeakyRelu(0.1), draw=away_from(0.0)),
    _ACT(id="Elu", make=lambda dt: Ly.Elu(0.7), draw=away_from(0.0)),
    _ACT(id="Selu", make=lambda dt: Ly.Selu(), draw=away_from(0.0)),
    _ACT(id="Softmax", make=lambda dt: Ly.Softmax()),
    _ACT(id="LogSoftmax", make=lambda dt: Ly.LogSoftmax()),
    LayerCase("Flatten", lambda dt: Ly.Flatten(), (None, 2, 3), "complex"),
    LayerCase("Reshape", lambda dt: Ly.Reshape((3, -1)), (None, 6), "complex"),
    LayerCase(
        "Dropout",
        lambda dt: Ly.Dropout(0.5),
        (None, 6),
        "complex",
        options={"train": True},
        key_seed=7,
    ),
    LayerCase(
        "Lambda(square)",
        lambda dt: Ly.Lambda(
            jnp.square, name="square", backward=lambda x, y, g: 2 * x * g
        ),
        (None, 4),
        "complex",
    ),
    LayerCase("Identity", lambda dt: C.Identity(), (None, 4), "complex"),
    LayerCase("serial(MLP)", _mlp, (None, 4)),
    LayerCase("FanOut/parallel/FanInConcat", _branches, (None, 3)),
    LayerCase("FanInSum", _fan_in_sum, (None, 4), "complex"),
    LayerCase(
        "BatchNorm(train)",
        lambda dt: BatchNorm(dtype=dt),
        (None, 4),
        options={"train": True},
        batch=5,
        param_shapes={"scale": (4,), "offset": (4,)},
    ),
    LayerCase(
        "BatchNorm(train, NHWC)",
        lambda dt: BatchNorm(use_bias=False, dtype=dt),
        (None, 3, 3, 2),
        options={"train": True},
        batch=2,
        param_shapes={"scale": (2,)},
    ),
    LayerCase(
        "BatchNorm(eval)",
        lambda dt: BatchNorm(dtype=dt),
        (None, 4),
        param_shapes={"scale": (4,), "offset": (4,)},
    ),
    LayerCase(
        "serial(MLP with BatchNorm)",
        lambda dt: C.serial(
            Ly.Dense(5, dtype=dt), BatchNorm(dtype=dt), Ly.Tanh(), Ly.Dense(2, dtype=dt)
        ),
        (None, 3),
        options={"train": True},
        batch=4,
        param_shapes={
            "dense_0": {"w": (3, 5), "b": (5,)},
            "batch_norm_1": {"scale": (5,), "offset": (5,)},
            "tanh_2": {},
            "dense_3": {"w": (5, 2), "b": (2,)},
        },
    ),
    LayerCase(
        "TransformerBlock(causal)",
        lambda dt: TransformerBlock(2, 4, mlp_ratio=2, causal=True, dtype=dt),
        (None, 3, 4),
        batch=2,
        param_shapes={
            "attention": {
                "layer_norm_0": {"scale": (4,), "offset": (4,)},
                "mha": {
                    name: {"w": (4, 4), "b": (4,)}
                    for name in ("query", "key", "value", "out")
                },
            },
            "mlp": {
                "layer_norm_0": {"scale": (4,), "offset": (4,)},
                "dense_1": {"w": (4, 8), "b": (8,)},
                "gelu_2": {},
                "dense_3": {"w": (8, 4), "b": (4,)},
            },
        },
    ),
    LayerCase(
        "residual",
        lambda dt: C.residual(Ly.Dense(4, dtype=dt), Ly.Tanh()),
        (None, 4),
        "complex",
    ),
    LayerCase(
        "Stack(residual, 3)",
        lambda dt: Stack(C.residual(Ly.Dense(4, dtype=dt), Ly.Tanh()), 3),
        (None, 4),
        "complex",
        param_shapes={"dense_0": {"w": (3, 4, 4), "b": (3, 4)}, "tanh_1": {}},
    ),
    LayerCase(
        "Stack(dropout block, remat)",
        lambda dt: Stack(
            C.serial(Ly.Dense(4, dtype=dt), Ly.Tanh(), Ly.Dropout(0.3)), 2, remat=True
        ),
        (None, 2, 4),
        "complex",
        options={"train": True},
        key_seed=5,
        param_shapes={
            "dense_0": {"w": (2, 4, 4), "b": (2, 4)},
            "tanh_1": {},
            "dropout_2": {},
        },
    ),
    LayerCase(
        "remat(serial)",
        lambda dt: remat(
            C.serial(Ly.Dense(3, dtype=dt), Ly.Sigmoid()), "dots_saveable"
        ),
        (None, 4),
        "complex",
        param_shapes={"dense_0": {"w": (4, 3), "b": (3,)}, "sigmoid_1": {}},
    ),
)

#: Every registered layer: the core ones and each family's.
LAYER_CASES: tuple[LayerCase, ...] = (
    CORE_CASES + CONV_CASES + NORM_CASES + SEQ_CASES + RNN_CASES
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
    return sum(
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
