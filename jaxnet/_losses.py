"""Losses, each with its hand-written VJP right beside it.

A loss maps ``(predictions, targets)`` to **per-example** values; the caller reduces
(usually ``jnp.mean``). Elementwise losses (squared, absolute, Huber, the binary
cross-entropies) return an array shaped like ``predictions``; class losses (softmax
cross-entropy) drop the class axis; ``mse`` averages the last (feature) axis.

Every ``*_vjp(predictions, targets, g)`` returns the cotangent of ``predictions`` given
the cotangent ``g`` of the per-example loss (for a mean over a batch of n, ``g = 1/n``).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._errors import DTypeError, ShapeError
from ._types import Array, ArrayLike, Params
from .nn._checks import as_input, check_number, float_input


def _pair(name: str, predictions: ArrayLike, targets: ArrayLike) -> tuple[Array, Array]:
    """Check an elementwise loss's inputs: float predictions, same-shape targets."""
    p = float_input(name, predictions, "predictions")
    t = as_input(name, targets, "targets")
    if t.shape != p.shape:
        raise ShapeError(
            f"{name}: predictions and targets must have the same shape, got "
            f"predictions {tuple(p.shape)} and targets {tuple(t.shape)}. "
            + (
                "Reshape one of them (e.g. targets[:, None] or predictions[..., 0])."
                if t.size == p.size
                else "Check that the batch sizes match."
            )
        )
    if not jnp.issubdtype(t.dtype, jnp.inexact):
        t = t.astype(p.dtype)
    elif t.dtype != p.dtype:
        t = t.astype(p.dtype)
    return p, t


# ---------------------------------------------------------------------- regression


def squared_error(predictions: ArrayLike, targets: ArrayLike) -> Array:
    """Elementwise squared error, ``(p - t)^2``.

    Args:
      predictions: float array, any shape.
      targets: same shape.

    Returns:
      An array shaped like ``predictions``.

    Raises:
      ShapeError: when the shapes differ.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> jaxnet.losses.squared_error(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]))
      Array([1., 4.], dtype=float32)
    """
    p, t = _pair("squared_error", predictions, targets)
    return jnp.square(p - t)


def squared_error_vjp(predictions: Array, targets: Array, g: Array) -> Array:
    """d/dp (p - t)^2 = 2 (p - t): ``dp = 2 g (p - t)``."""
    p, t = _pair("squared_error_vjp", predictions, targets)
    return 2 * g * (p - t)


def half_squared_error(predictions: ArrayLike, targets: ArrayLike) -> Array:
    """Elementwise half squared error, ``(p - t)^2 / 2`` (optax's ``l2_loss``)."""
    p, t = _pair("half_squared_error", predictions, targets)
    return 0.5 * jnp.square(p - t)


def half_squared_error_vjp(predictions: Array, targets: Array, g: Array) -> Array:
    """d/dp (p - t)^2 / 2 = p - t: ``dp = g (p - t)``."""
    p, t = _pair("half_squared_error_vjp", predictions, targets)
    return g * (p - t)


def mse(predictions: ArrayLike, targets: ArrayLike) -> Array:
    """Mean squared error over the last (feature) axis: one value per example.

    ``mse = mean_j (p_j - t_j)^2``, shape ``predictions.shape[:-1]``.
    """
    p, t = _pair("mse", predictions, targets)
    if p.ndim < 1:
        raise ShapeError("mse: expected predictions of rank >= 1, got a scalar.")
    return jnp.mean(jnp.square(p - t), axis=-1)


def mse_vjp(predictions: Array, targets: Array, g: Array) -> Array:
    """d/dp_j mean_k (p_k - t_k)^2 = 2 (p_j - t_j) / d: ``dp = 2 g[..., None] (p - t) / d``."""
    p, t = _pair("mse_vjp", predictions, targets)
    return 2 * g[..., None] * (p - t) / p.shape[-1]


def absolute_error(predictions: ArrayLike, targets: ArrayLike) -> Array:
    """Elementwise absolute error, ``|p - t|``.

    The gradient at ``p == t`` is 0 (the subgradient that keeps a perfect fit still;
    written as ``max(e, -e)``, whose tie ``jax.grad`` splits evenly).
    """
    p, t = _pair("absolute_error", predictions, targets)
    e = p - t
    return jnp.maximum(e, -e)


def absolute_error_vjp(predictions: Array, targets: Array, g: Array) -> Array:
    """d/dp |p - t| = sign(p - t) (0 at p == t): ``dp = g sign(p - t)``.

    0 also where ``p - t`` is nan (both comparisons are false), as ``jax.grad``.
    """
    p, t = _pair("absolute_error_vjp", predictions, targets)
    e = p - t
    return g * ((e > 0).astype(e.dtype) - (e < 0).astype(e.dtype))


def huber(predictions: ArrayLike, targets: ArrayLike, *, delta: float = 1.0) -> Array:
    """Elementwise Huber loss with threshold ``delta`` (as optax's ``huber_loss``).

    ``e^2 / 2`` for ``|e| <= delta``, else ``delta (|e| - delta / 2)``, ``e = p - t``.
    """
    p, t = _pair("huber", predictions, targets)
    if not delta > 0:
        raise ValueError(f"huber(delta={delta!r}): delta must be > 0.")
    e = p - t
    a = jnp.maximum(e, -e)
    quad = jnp.minimum(a, delta)
    return 0.5 * quad * quad + delta * (a - quad)


def huber_vjp(
    predictions: Array, targets: Array, g: Array, *, delta: float = 1.0
) -> Array:
    """d/dp huber = clip(p - t, -delta, delta): ``dp = g clip(e, -delta, delta)``."""
    p, t = _pair("huber_vjp", predictions, targets)
    return g * jnp.clip(p - t, -delta, delta)


# -------------------------------------------------------------------- binary labels


def _check_eps(eps: Any) -> float:
    return check_number(
        f"binary_cross_entropy(eps={eps!r})", "eps", eps, at_least=0, below=0.5
    )


def _default_eps(dtype: Any) -> float:
    # 1e-7 as Keras for float32; relative to the dtype's resolution otherwise.
    return (
        max(1e-7, float(jnp.finfo(dtype).eps)) if jnp.finfo(dtype).bits <= 32 else 1e-12
    )


def binary_cross_entropy(
    probabilities: ArrayLike, labels: ArrayLike, *, eps: float | None = None
) -> Array:
    """Binary cross-entropy from probabilities, clipped to ``[eps, 1 - eps]``.

    ``-(y log p + (1 - y) log(1 - p))``, elementwise. Prefer
    :func:`sigmoid_binary_cross_entropy` on logits: it needs no clipping.

    Args:
      probabilities: float array of values in [0, 1].
      labels: same shape, values in [0, 1] (hard or soft).
      eps: clipping margin; default ``max(1e-7, finfo(dtype).eps)`` for float32 and
        narrower (``2**-23`` for float32), 1e-12 for float64.

    The gradient is 0 at and outside the clip bounds (``p <= eps``, ``p >= 1 - eps``),
    as :func:`binary_cross_entropy_vjp`.
    """
    p, y = _pair("binary_cross_entropy", probabilities, labels)
    eps = _default_eps(p.dtype) if eps is None else _check_eps(eps)
    # Not a bare clip: at p == eps or 1 - eps its tie would pass half the gradient.
    inside = (p > eps) & (p < 1 - eps)
    pc = jnp.where(inside, p, jax.lax.stop_gradient(jnp.clip(p, eps, 1 - eps)))
    return -(y * jnp.log(pc) + (1 - y) * jnp.log1p(-pc))


def binary_cross_entropy_vjp(
    probabilities: Array, labels: Array, g: Array, *, eps: float | None = None
) -> Array:
    """d/dp = (p - y) / (p (1 - p)) inside ``(eps, 1 - eps)``, 0 outside the clip."""
    p, y = _pair("binary_cross_entropy_vjp", probabilities, labels)
    eps = _default_eps(p.dtype) if eps is None else _check_eps(eps)
    inside = (p > eps) & (p < 1 - eps)
    safe = jnp.where(inside, p, 0.5)
    return jnp.where(inside, g * (safe - y) / (safe * (1 - safe)), jnp.zeros_like(p))


def sigmoid_binary_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> Array:
    """Binary cross-entropy from logits, ``softplus(z) - y z``, elementwise.

    Stable for any ``z``: ``max(z, 0) - y z + log1p(exp(-|z|))``.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> jaxnet.losses.sigmoid_binary_cross_entropy(jnp.array([0.0]), jnp.array([1.0]))
      Array([0.6931472], dtype=float32)
    """
    z, y = _pair("sigmoid_binary_cross_entropy", logits, labels)
    # One branch for max(z, 0) and |z|: with jnp.maximum (tie: 1/2) and jnp.abs
    # (1 at 0) jax.grad at z == 0 would be -y instead of sigmoid(0) - y.
    pos = z >= 0
    relu_z = jnp.where(pos, z, jnp.zeros_like(z))
    abs_z = jnp.where(pos, z, -z)
    return relu_z - y * z + jnp.log1p(jnp.exp(-abs_z))


def sigmoid_binary_cross_entropy_vjp(logits: Array, labels: Array, g: Array) -> Array:
    """d/dz (softplus(z) - y z) = sigmoid(z) - y: ``dz = g (sigmoid(z) - y)``."""
    z, y = _pair("sigmoid_binary_cross_entropy_vjp", logits, labels)
    return g * (jax.nn.sigmoid(z) - y)


# ---------------------------------------------------------------------- many classes


def _soft_labels(
    name: str, logits: ArrayLike, labels: ArrayLike
) -> tuple[Array, Array]:
    z = float_input(name, logits, "logits")
    y = as_input(name, labels, "labels")
    if not jnp.issubdtype(y.dtype, jnp.inexact):
        raise DTypeError(
            f"{name}: expected one-hot or soft float labels of shape {tuple(z.shape)}, "
            f"got {y.dtype} labels of shape {tuple(y.shape)}. For integer class ids "
            "use softmax_cross_entropy_with_integer_labels, or one-hot them with "
            f"jax.nn.one_hot(labels, {z.shape[-1] if z.ndim else 'num_classes'})."
        )
    if y.shape != z.shape:
        raise ShapeError(
            f"{name}: labels must have the logits' shape {tuple(z.shape)}, got "
            f"{tuple(y.shape)}."
        )
    if z.ndim < 1:
        raise ShapeError(
            f"{name}: expected logits of shape (..., num_classes), got ()."
        )
    return z, y.astype(z.dtype)


def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> Array:
    """Cross-entropy between ``softmax(logits)`` and one-hot or soft labels.

    ``-sum_c y_c log_softmax(z)_c`` over the last axis; shape ``logits.shape[:-1]``.
    A class with ``y_c = 0`` contributes exactly 0, also where ``log_softmax(z)_c``
    underflows to ``-inf`` (finite logits near the dtype's limit: ``0 * -inf`` would
    be nan), as in the integer-label version.
    """
    z, y = _soft_labels("softmax_cross_entropy", logits, labels)
    ls = jax.nn.log_softmax(z, axis=-1)
    return -jnp.sum(y * jnp.where(y == 0, jnp.zeros_like(ls), ls), axis=-1)


def softmax_cross_entropy_vjp(logits: Array, labels: Array, g: Array) -> Array:
    """d/dz = softmax(z) sum_c y_c - y (= softmax(z) - y for labels summing to 1)."""
    z, y = _soft_labels("softmax_cross_entropy_vjp", logits, labels)
    s = jax.nn.softmax(z, axis=-1)
    return g[..., None] * (s * jnp.sum(y, axis=-1, keepdims=True) - y)


def _int_labels(name: str, logits: ArrayLike, labels: ArrayLike) -> tuple[Array, Array]:
    z = float_input(name, logits, "logits")
    y = as_input(name, labels, "labels")
    if z.ndim < 1:
        raise ShapeError(
            f"{name}: expected logits of shape (..., num_classes), got ()."
        )
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise DTypeError(
            f"{name}: expected integer class ids of shape {tuple(z.shape[:-1])}, got "
            f"{y.dtype} of shape {tuple(y.shape)}. For one-hot or soft labels use "
            "softmax_cross_entropy."
        )
    if y.shape != z.shape[:-1]:
        raise ShapeError(
            f"{name}: labels must have shape logits.shape[:-1] = {tuple(z.shape[:-1])}, "
            f"got {tuple(y.shape)}."
        )
    try:  # eager check of the range; under jit the values are unknown
        concrete = np.asarray(y)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        concrete = None
    if concrete is not None and concrete.size:
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < 0 or hi >= z.shape[-1]:
            raise ValueError(
                f"{name}: class ids must lie in [0, {z.shape[-1]}), got values in "
                f"[{lo}, {hi}]. (Under jit out-of-range ids are not checked and give "
                "a loss of logsumexp(z): no class term.)"
            )
    return z, y


def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike, labels: ArrayLike
) -> Array:
    """Cross-entropy with integer class ids: ``logsumexp(z) - z[label]``.

    Args:
      logits: ``(..., num_classes)`` floats.
      labels: ``(...)`` integers in ``[0, num_classes)``; checked eagerly outside jit.

    Returns:
      Shape ``logits.shape[:-1]``.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> loss = jaxnet.losses.softmax_cross_entropy_with_integer_labels
      >>> loss(jnp.zeros((1, 4)), jnp.array([2]))
      Array([1.3862944], dtype=float32)
    """
    z, y = _int_labels("softmax_cross_entropy_with_integer_labels", logits, labels)
    # take_along_axis wraps negative ids (-1 -> last class); send them out of range so
    # that every id outside [0, num_classes) picks nothing, as one_hot in the VJP does.
    idx = jnp.where(y < 0, z.shape[-1], y)
    picked = jnp.take_along_axis(z, idx[..., None], axis=-1, mode="fill", fill_value=0)
    # Shift by the row max first (as log_softmax): logsumexp(z) - z[label] would cancel
    # two numbers of size 1e4 and lose float32's digits.
    m = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True, initial=-jnp.inf))
    m = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
    return jax.nn.logsumexp(z - m, axis=-1) - (picked - m)[..., 0]


def softmax_cross_entropy_with_integer_labels_vjp(
    logits: Array, labels: Array, g: Array
) -> Array:
    """d/dz = softmax(z) - onehot(label): ``dz = g[..., None] (softmax(z) - onehot)``."""
    z, y = _int_labels("softmax_cross_entropy_with_integer_labels_vjp", logits, labels)
    onehot = jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype)
    return g[..., None] * (jax.nn.softmax(z, axis=-1) - onehot)


# ------------------------------------------------------------------- regularisation


def l2_penalty(params: Params) -> Array:
    """Half the squared L2 norm of every leaf: ``sum_leaves ||p||^2 / 2``.

    Its gradient is ``params`` itself. Add ``weight_decay * l2_penalty(params)`` to a
    reduced loss (or use ``optax.add_decayed_weights``).
    """
    leaves = jax.tree.leaves(params)
    if not leaves:
        return jnp.zeros(())
    return functools.reduce(jnp.add, (0.5 * jnp.sum(jnp.square(p)) for p in leaves))


def l2_penalty_vjp(params: Params, g: Array) -> Params:
    """d/dp ||p||^2 / 2 = p: ``dparams = g * params``."""
    return jax.tree.map(lambda p: g * p, params)
