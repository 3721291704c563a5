"""Hand-written gradients of whole models: backpropagation through the layer chain.

The per-layer and per-loss VJPs sit beside their forwards (``_layers.py``,
``_losses.py``); this module chains them. Nothing here calls ``jax.grad`` or
``jax.vjp``: these are the oracle that autodiff is tested and benchmarked against.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from . import _losses as L
from ._types import Array, Params, PRNGKey
from .nn._layer import Layer

#: Each built-in loss and its hand-written VJP ``vjp(predictions, targets, g)``.
LOSS_VJPS: dict[Callable[..., Array], Callable[..., Array]] = {
    L.squared_error: L.squared_error_vjp,
    L.half_squared_error: L.half_squared_error_vjp,
    L.mse: L.mse_vjp,
    L.absolute_error: L.absolute_error_vjp,
    L.huber: L.huber_vjp,
    L.binary_cross_entropy: L.binary_cross_entropy_vjp,
    L.sigmoid_binary_cross_entropy: L.sigmoid_binary_cross_entropy_vjp,
    L.softmax_cross_entropy: L.softmax_cross_entropy_vjp,
    L.softmax_cross_entropy_with_integer_labels: (
        L.softmax_cross_entropy_with_integer_labels_vjp
    ),
}


def loss_vjp(loss: Callable[..., Array]) -> Callable[..., Array]:
    """The hand-written VJP of a built-in loss (``functools.partial`` keeps options).

    Args:
      loss: a function from :mod:`jaxnet.losses`, or a ``functools.partial`` of one
        (e.g. ``partial(huber, delta=0.5)``).

    Returns:
      ``vjp(predictions, targets, g) -> d predictions``.

    Raises:
      NotImplementedError: for a loss without a hand-written VJP.
    """
    if isinstance(loss, functools.partial):
        return functools.partial(loss_vjp(loss.func), *loss.args, **loss.keywords)
    try:
        return LOSS_VJPS[loss]
    except (KeyError, TypeError):
        name = getattr(loss, "__name__", repr(loss))
        raise NotImplementedError(
            f"loss_vjp: {name} has no hand-written VJP. Built-in losses with one: "
            + ", ".join(f.__name__ for f in LOSS_VJPS)
            + "."
        ) from None


def vjp(
    layer: Layer,
    params: Params,
    x: Any,
    g: Any,
    *,
    key: PRNGKey | None = None,
    **options: Any,
) -> tuple[Params, Any]:
    """Hand-written vector-Jacobian product of any layer or model.

    For ``y = layer.apply(params, x, key=key, **options)`` and output cotangent ``g``,
    returns ``(dparams, dx)``: the gradients of ``sum(g * y)``. For a ``serial`` model
    this is backpropagation through the chain, each layer's formula applied in
    reverse order.

    Raises:
      NotImplementedError: naming the first layer that has no hand-written backward.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> layer = jaxnet.Dense(1, w_init=jax.nn.initializers.ones)
      >>> _, p = layer.init(jax.random.key(0), (None, 2))
      >>> dp, dx = jaxnet.analytic.vjp(layer, p, jnp.array([[1.0, 2.0]]),
      ...                               jnp.ones((1, 1)))
      >>> dp["w"][:, 0], dx
      (Array([1., 2.], dtype=float32), Array([[1., 1.]], dtype=float32))
    """
    if layer.backward is None:
        raise NotImplementedError(
            f"{layer.desc}: no hand-written backward. Give the layer one or use jax.grad."
        )
    y = layer.apply(params, x, key=key, **options)
    if layer.stateful:  # (y, new_state): the state is not differentiated
        y = y[0]
    return layer.backward(params, x, y, g, key=key, **options)


def value_and_grad(
    model: Layer,
    loss: Callable[..., Array],
    *,
    reduction: str = "mean",
) -> Callable[..., tuple[Any, Params]]:
    """A hand-written ``value_and_grad`` of ``reduce(loss(model(params, x), y))``.

    The loss's VJP seeds the cotangent (``1/n`` per example for ``"mean"``, ``1`` for
    ``"sum"``); :func:`vjp` carries it back through the model.

    Args:
      model: a layer or model whose layers all have hand-written backwards.
      loss: a built-in loss (or a ``functools.partial`` of one).
      reduction: ``"mean"`` or ``"sum"`` over the per-example losses.

    Returns:
      ``f(params, x, targets, *, key=None, **options) -> (loss_value, dparams)``,
      matching ``jax.value_and_grad`` of the same objective. For a stateful model
      (``state=`` among the options) it returns ``((loss_value, new_state),
      dparams)``, as ``jax.value_and_grad(..., has_aux=True)`` would.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> model = jaxnet.serial(jaxnet.Dense(3), jaxnet.Tanh(), jaxnet.Dense(2))
      >>> _, params = model.init(jax.random.key(0), (None, 4))
      >>> loss = jaxnet.losses.softmax_cross_entropy_with_integer_labels
      >>> f = jaxnet.analytic.value_and_grad(model, loss)
      >>> x, y = jnp.ones((5, 4)), jnp.array([0, 1, 0, 1, 1])
      >>> value, grads = f(params, x, y)
      >>> def objective(p):
      ...     return jnp.mean(loss(model.apply(p, x), y))
      >>> auto = jax.grad(objective)(params)
      >>> bool(jnp.allclose(grads["dense_0"]["w"], auto["dense_0"]["w"], atol=1e-6))
      True
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(
            f"value_and_grad: reduction must be 'mean' or 'sum', got {reduction!r}."
        )
    dloss = loss_vjp(loss)

    def f(
        params: Params,
        x: Any,
        targets: Any,
        *,
        key: PRNGKey | None = None,
        **options: Any,
    ) -> tuple[Any, Params]:  # (value, grads); ((value, state), grads) when stateful
        y = model.apply(params, x, key=key, **options)
        new_state = None
        if model.stateful:
            y, new_state = y
        per_example = loss(y, targets)
        n = per_example.size
        if reduction == "mean":
            value = jnp.sum(per_example) / n
            seed = jnp.full(per_example.shape, 1.0 / n, per_example.dtype)
        else:
            value = jnp.sum(per_example)
            seed = jnp.ones(per_example.shape, per_example.dtype)
        gy = dloss(y, targets, seed)
        if model.backward is None:
            raise NotImplementedError(f"{model.desc}: no hand-written backward.")
        grads, _ = model.backward(params, x, y, gy, key=key, **options)
        return ((value, new_state), grads) if model.stateful else (value, grads)

    return f
