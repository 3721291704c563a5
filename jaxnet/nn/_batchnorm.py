"""BatchNorm with running statistics, kept as explicit state (see :class:`Layer`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .._errors import ShapeError, StateError
from .._types import Array, Params, PRNGKey, ShapeTree
from ._checks import check_number, float_input, is_number
from ._layer import (
    Layer,
    constructor,
    fmt_shape,
    missing_state_error,
    require_params,
    require_rank,
)


def _bcast(v: Array, ndim: int) -> Array:
    """A per-feature vector reshaped to broadcast over ``ndim``-rank inputs."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def batch_norm_stats(x: Array) -> tuple[Array, Array]:
    """Mean and biased variance over every axis but the last (the batch statistics).

    The variance is ``mean((x - mean)^2)``: two passes, no cancellation for inputs
    with a large mean.
    """
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    centred = x - _bcast(mean, x.ndim)
    return mean, jnp.mean(centred * centred, axis=axes)


def batch_norm_vjp(
    params: Params,
    x: Array,
    g: Array,
    *,
    mean: Array,
    var: Array,
    epsilon: float,
    train: bool,
) -> tuple[Params, Array]:
    """BatchNorm backward. With ``xhat = (x - mu) / sigma``, ``sigma = sqrt(var + eps)``,
    ``y = scale * xhat + offset`` and means over the N batch positions (every axis but
    the last)::

        dscale  = sum g * xhat            doffset = sum g
        dxhat   = g * scale
        train:  dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sigma
        eval:   dx = dxhat / sigma        (mu, var are the running statistics: constants)

    The training formula carries the batch statistics' own dependence on ``x``.
    """
    n = x.ndim
    axes = tuple(range(n - 1))
    sigma = jnp.sqrt(var + epsilon)
    xhat = (x - _bcast(mean, n)) / _bcast(sigma, n)
    grads: Params = {}
    scale = params.get("scale")
    dxhat = g * _bcast(scale, n) if scale is not None else g
    if scale is not None:
        grads["scale"] = jnp.sum(g * xhat, axis=axes)
    if "offset" in params:
        grads["offset"] = jnp.sum(g, axis=axes)
    if train:
        m1 = jnp.mean(dxhat, axis=axes)
        m2 = jnp.mean(dxhat * xhat, axis=axes)
        dx = (dxhat - _bcast(m1, n) - xhat * _bcast(m2, n)) / _bcast(sigma, n)
    else:
        dx = dxhat / _bcast(sigma, n)
    return grads, dx


@constructor
def BatchNorm(
    *,
    momentum: float = 0.99,
    epsilon: float = 1e-5,
    use_scale: bool = True,
    use_bias: bool = True,
    dtype: Any = jnp.float32,
) -> Layer:
    """Batch normalisation over the last (feature) axis, with running statistics.

    ``y = scale * (x - mu) / sqrt(var + epsilon) + offset``. In training
    (``train=True``) ``mu`` and ``var`` are the batch's statistics over every axis but
    the last, and the running ones are updated as
    ``running = momentum * running + (1 - momentum) * batch`` (biased variance, as
    ``flax.linen.BatchNorm``, whose defaults these are). In evaluation (the default)
    the running statistics are used and the state comes back unchanged.

    The running statistics are explicit state: ``init_state(input_shape)`` gives
    ``{"mean": zeros(C), "var": ones(C)}``, and
    ``apply(params, x, *, state, train=False) -> (y, new_state)``. Works under
    ``jit``, ``vmap`` of the whole model and ``lax.scan``: it is a pure function.

    Args:
      momentum: decay of the running statistics, in [0, 1).
      epsilon: added to the variance.
      use_scale: learn ``scale`` (ones at init).
      use_bias: learn ``offset`` (zeros at init).
      dtype: parameter and state dtype.

    Returns:
      A stateful :class:`~jaxnet.Layer` named ``"batch_norm"``; backward:
      :func:`jaxnet.analytic.batch_norm_vjp`.

    Raises:
      StateError: when called without ``state``.
      ShapeError: when the feature axis does not match.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> bn = jaxnet.BatchNorm()
      >>> _, params = bn.init(jax.random.key(0), (None, 2))
      >>> _, state = bn.init_state((None, 2))
      >>> x = jnp.array([[1.0, 2.0], [3.0, 6.0]])
      >>> y, state = bn.apply(params, x, state=state, train=True)
      >>> y.round(3), state["mean"]
      (Array([[-1., -1.],
             [ 1.,  1.]], dtype=float32), Array([0.02, 0.04], dtype=float32))
    """
    if not (is_number(momentum) and 0.0 <= momentum < 1.0):
        raise ValueError(
            f"BatchNorm(momentum={momentum!r}): momentum must lie in [0, 1)."
        )
    check_number(f"BatchNorm(epsilon={epsilon!r})", "epsilon", epsilon, at_least=0)
    desc = f"BatchNorm(momentum={momentum}, epsilon={epsilon})"
    names = [n for n, on in (("scale", use_scale), ("offset", use_bias)) if on]

    def features(input_shape: ShapeTree) -> int:
        require_rank(desc, input_shape, 2)
        c = input_shape[-1]
        if c is None:
            raise ShapeError(
                f"{desc}: the feature (last) axis must be known, got "
                f"{fmt_shape(input_shape)}."
            )
        return c

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        c = features(input_shape)
        params: Params = {}
        if use_scale:
            params["scale"] = jnp.ones((c,), dtype)
        if use_bias:
            params["offset"] = jnp.zeros((c,), dtype)
        return input_shape, params

    def init_state(input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        c = features(input_shape)
        return input_shape, {
            "mean": jnp.zeros((c,), dtype),
            "var": jnp.ones((c,), dtype),
        }

    def check(params: Params, x: Any, state: Any) -> Array:
        require_params(desc, params, names)
        if state is None:
            raise missing_state_error(desc)
        if not isinstance(state, dict) or sorted(state) != ["mean", "var"]:
            raise StateError(
                f"{desc}: expected state {{'mean', 'var'}}, got {state!r:.80}. Pass the "
                "state made by init_state."
            )
        x = float_input(desc, x)
        c = state["mean"].shape[0]
        if x.ndim < 2 or x.shape[-1] != c:
            raise ShapeError(
                f"{desc}: expected input of shape (batch, ..., {c}), got "
                f"{tuple(x.shape)}. The layer was initialised for {c} features."
            )
        return x

    def stats(x: Array, state: Params, train: bool) -> tuple[Array, Array]:
        if train:
            return batch_norm_stats(x)
        return state["mean"].astype(x.dtype), state["var"].astype(x.dtype)

    def apply(
        params: Params, x: Any, *, state: Any = None, train: bool = False, **_: Any
    ) -> tuple[Array, Params]:
        x = check(params, x, state)
        mean, var = stats(x, state, train)
        n = x.ndim
        y = (x - _bcast(mean, n)) / _bcast(jnp.sqrt(var + epsilon), n)
        if use_scale:
            y = y * _bcast(params["scale"].astype(x.dtype), n)
        if use_bias:
            y = y + _bcast(params["offset"].astype(x.dtype), n)
        if not train or x.size == 0:  # an empty batch has no statistics to keep
            return y, state
        dt = state["mean"].dtype
        new_state = {
            "mean": momentum * state["mean"]
            + (1 - momentum) * jax.lax.stop_gradient(mean).astype(dt),
            "var": momentum * state["var"]
            + (1 - momentum) * jax.lax.stop_gradient(var).astype(dt),
        }
        return y, new_state

    def backward(
        params: Params,
        x: Array,
        y: Array,
        g: Array,
        *,
        state: Any = None,
        train: bool = False,
        **_: Any,
    ) -> tuple[Params, Array]:
        x = check(params, x, state)
        mean, var = stats(x, state, train)
        return batch_norm_vjp(
            params, x, g, mean=mean, var=var, epsilon=epsilon, train=train
        )

    return Layer("batch_norm", init, apply, backward, desc, init_state)
