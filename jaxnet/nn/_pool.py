"""Pooling layers: max, average and sum pooling over N spatial dimensions and global
average pooling, each forward beside its hand-written backward."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax

from .._errors import ShapeError
from .._types import Array, Params, PRNGKey, ShapeTree
from ._checks import float_input, is_int
from ._conv import (
    Pads,
    _check_fits,
    _check_init_shape,
    _check_input,
    _fmt_pad,
    _out_len,
    _padding_spec,
    _resolve,
    _sizes,
    _tuple,
)
from ._layer import Layer, constructor, fmt_shape, require_params, require_rank

# -------------------------------------------------------------------------- pooling


def _pool_pads(
    padding: str | Pads,
    xs: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
) -> Pads:
    return _resolve(padding, xs, window, strides)


def _full(pads: Pads) -> tuple[tuple[int, int], ...]:
    return ((0, 0), *pads, (0, 0))


def sum_pool(
    x: Array, window: Sequence[int], strides: Sequence[int], padding: str | Pads
) -> Array:
    """Window sums ``y[o] = sum_k xp[o s + k]`` (``xp``: ``x`` zero-padded)."""
    pads = _pool_pads(padding, x.shape[1:-1], window, strides)
    return lax.reduce_window(
        x,
        np.zeros((), x.dtype),  # concrete: a traced init is not differentiable
        lax.add,
        (1, *window, 1),
        (1, *strides, 1),
        _full(pads),
    )


def sum_pool_vjp(
    x: Array,
    g: Array,
    window: Sequence[int],
    strides: Sequence[int],
    padding: str | Pads,
) -> Array:
    """Backward of :func:`sum_pool`: ``dx[i] = sum_{o s + k = i + lo} g[o]``.

    The transpose of a window sum is a window sum of ``g`` dilated by the strides:
    per axis, ``g`` is dilated (``s - 1`` zeros between elements) and padded by
    ``(K - 1 - lo, X + lo - (O - 1) s - 1)`` (negative pads crop), then summed over
    windows of size ``K`` at stride 1, which yields exactly ``X`` positions. Every
    input position receives each ``g`` whose window covers it, as is.
    """
    xs = x.shape[1:-1]
    pads = _pool_pads(padding, xs, window, strides)
    cfg = [(0, 0, 0)]
    for k, s, (lo, _), xi, o in zip(window, strides, pads, xs, g.shape[1:-1]):
        cfg.append((k - 1 - lo, xi + lo - (o - 1) * s - 1, s - 1))
    cfg.append((0, 0, 0))
    zero = np.zeros((), g.dtype)
    gp = lax.pad(g, zero, cfg)
    ones = (1,) * (x.ndim)
    dx = lax.reduce_window(gp, zero, lax.add, (1, *window, 1), ones, "VALID")
    return dx.astype(x.dtype)


def avg_pool_divisor(
    xs: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    padding: str | Pads,
    count_include_pad: bool,
    dtype: Any,
) -> Any:
    """``prod(window)``, or the count of real (unpadded) elements per window.

    Returns a Python number for ``count_include_pad=True``, otherwise an array of
    shape ``(1, *out_spatial, 1)``.
    """
    if count_include_pad:
        return math.prod(window)
    ones = jnp.ones((1, *xs, 1), dtype)
    return sum_pool(ones, window, strides, padding)


def max_pool(
    x: Array, window: Sequence[int], strides: Sequence[int], padding: str | Pads
) -> Array:
    """Window maxima ``y[o] = max_k xp[o s + k]`` (``xp``: ``x`` padded with -inf)."""
    pads = _pool_pads(padding, x.shape[1:-1], window, strides)
    return lax.reduce_window(
        x,
        np.array(-np.inf, x.dtype),
        lax.max,
        (1, *window, 1),
        (1, *strides, 1),
        _full(pads),
    )


def max_pool_vjp(
    x: Array,
    y: Array,
    g: Array,
    window: Sequence[int],
    strides: Sequence[int],
    padding: str | Pads,
) -> Array:
    """Backward of :func:`max_pool`: each window's ``g`` goes to its argmax.

    ``dx[i] = sum_o g[o] [i + lo = o s + k*(o)]`` with ``k*(o)`` the offset of the
    window's maximum. **Ties**: the *first* maximal element in row-major window
    order takes all of ``g`` (others get 0), which is what ``jax.grad`` of
    ``reduce_window(max)`` does (XLA's select-and-scatter with ``>=``).

    Written as a loop over the ``prod(window)`` offsets ``k``: ``xp[k + o s]`` (a
    strided slice of the -inf-padded input) is compared with ``y``; the first offset
    that matches and is not yet taken wins; ``g`` masked by the winners is scattered
    back to positions ``k + o s`` by a strided pad, and the padding is cropped.
    """
    xs = x.shape[1:-1]
    os_ = y.shape[1:-1]
    pads = _pool_pads(padding, xs, window, strides)
    neg = np.array(-np.inf, x.dtype)
    xp = lax.pad(x, neg, [(0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)])
    xp_shape = xp.shape[1:-1]
    zero = np.zeros((), g.dtype)
    taken = jnp.zeros(y.shape, bool)
    dxp = jnp.zeros(xp.shape, g.dtype)
    for k in itertools.product(*(range(w) for w in window)):
        start = (0, *k, 0)
        limit = (
            x.shape[0],
            *(ki + (o - 1) * s + 1 for ki, o, s in zip(k, os_, strides)),
            x.shape[-1],
        )
        xk = lax.slice(xp, start, limit, (1, *strides, 1))
        win = (xk == y) & ~taken
        taken = taken | win
        gk = jnp.where(win, g, jnp.zeros_like(g))
        cfg = [(0, 0, 0)]
        for ki, o, s, L in zip(k, os_, strides, xp_shape):
            cfg.append((ki, L - ki - (o - 1) * s - 1, s - 1))
        cfg.append((0, 0, 0))
        dxp = dxp + lax.pad(gk, zero, cfg)
    crop = [(0, 0, 0), *((-lo, -hi, 0) for lo, hi in pads), (0, 0, 0)]
    return lax.pad(dxp, zero, crop).astype(x.dtype)


def _pool_layer(
    kind: str,
    name: str,
    window: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: Any,
    count_include_pad: bool = True,
) -> Layer:
    win = _sizes(window)
    base = f"{kind}(window={win})"
    n = len(win)
    if n not in (1, 2, 3) or not all(is_int(k) and k >= 1 for k in win):
        raise ValueError(f"{base}: window must be 1, 2 or 3 ints >= 1.")
    st = _tuple(1 if strides is None else strides, n, "strides", base)
    pad = _padding_spec(padding, n, base)
    extras = []
    if st != (1,) * n:
        extras.append(f"strides={st}")
    if pad != "VALID":
        extras.append(f"padding={_fmt_pad(pad)}")
    if not count_include_pad:
        extras.append("count_include_pad=False")
    desc = base[:-1] + "".join(", " + e for e in extras) + ")"

    def pads_for(spatial: Sequence[int | None]) -> Pads:
        return _resolve(pad, spatial, win, st)

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        _check_init_shape(desc, input_shape, n)
        spatial = tuple(input_shape[1:-1])
        pads = pads_for(spatial)
        _check_fits(desc, spatial, pads, win, (1,) * n)
        out = tuple(
            None if x is None else _out_len(x + lo + hi, k, s)
            for x, (lo, hi), k, s in zip(spatial, pads, win, st)
        )
        return (input_shape[0], *out, input_shape[-1]), {}

    def prepare(params: Params, x: Any) -> tuple[Array, Pads]:
        require_params(desc, params, [])
        x = float_input(desc, x)
        _check_input(desc, x, n)
        pads = pads_for(x.shape[1:-1])
        _check_fits(desc, x.shape[1:-1], pads, win, (1,) * n)
        return x, pads

    def apply(params: Params, x: Any, **_: Any) -> Array:
        x, pads = prepare(params, x)
        if kind == "MaxPool":
            return max_pool(x, win, st, pads)
        y = sum_pool(x, win, st, pads)
        if kind == "AvgPool":
            div = avg_pool_divisor(
                x.shape[1:-1], win, st, pads, count_include_pad, y.dtype
            )
            y = y / div
        return y

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        x, pads = prepare(params, x)
        if kind == "MaxPool":
            return {}, max_pool_vjp(x, y, g, win, st, pads)
        if kind == "AvgPool":
            g = g / avg_pool_divisor(
                x.shape[1:-1], win, st, pads, count_include_pad, g.dtype
            )
        return {}, sum_pool_vjp(x, g, win, st, pads)

    return Layer(name, init, apply, backward, desc)


@constructor
def MaxPool(
    window: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: str | int | Sequence[Any] = "VALID",
) -> Layer:
    """Max pooling, ``y[o] = max_k xp[o s + k]``, as ``flax.linen.max_pool``.

    Padding counts as ``-inf`` (never the maximum). ``(batch, *spatial, c) ->
    (batch, *out_spatial, c)``. Backward: :func:`max_pool_vjp` (ties: the first
    maximum in row-major window order takes the gradient, as ``jax.grad``).

    Args:
      window: window size, one int per spatial axis (an int means 1-d).
      strides: window strides (int or one per axis); default 1, as Flax's pools
        (PyTorch and Keras default to the window size: pass ``strides=window``).
      padding: ``"VALID"`` (default, as Flax), ``"SAME"`` (output ``ceil(X / s)``),
        an int, or ``(low, high)`` pairs.

    Returns:
      A parameter-free :class:`~jaxnet.Layer` named ``"max_pool"``.

    Raises:
      ShapeError: for an input of the wrong rank or smaller than the window.

    Examples:
      >>> import jax, jaxnet
      >>> jaxnet.MaxPool((2, 2), strides=2).init(jax.random.key(0), (None, 6, 6, 3))
      ((None, 3, 3, 3), {})
    """
    return _pool_layer("MaxPool", "max_pool", window, strides, padding)


@constructor
def AvgPool(
    window: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: str | int | Sequence[Any] = "VALID",
    count_include_pad: bool = True,
) -> Layer:
    """Average pooling, ``y[o] = sum_k xp[o s + k] / D``, as ``flax.linen.avg_pool``.

    The divisor ``D`` is ``prod(window)`` (``count_include_pad=True``, the default,
    as Flax: zero padding counts, so border windows of a ``"SAME"`` pool average in
    zeros), or the number of real input elements in the window
    (``count_include_pad=False``). Backward (:func:`sum_pool_vjp` of ``g / D``):
    ``dx[i] = sum_{windows o covering i} g[o] / D[o]``, spread evenly.

    Args:
      window: window size, one int per spatial axis (an int means 1-d).
      strides: window strides; default 1, as Flax (pass ``strides=window`` for the
        PyTorch/Keras default).
      padding: ``"VALID"`` (default), ``"SAME"``, an int, or ``(low, high)`` pairs.
      count_include_pad: see above.

    Returns:
      A parameter-free :class:`~jaxnet.Layer` named ``"avg_pool"``.

    Raises:
      ShapeError: for an input of the wrong rank or smaller than the window.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> layer = jaxnet.AvgPool(2, strides=2)
      >>> layer.apply({}, jnp.arange(4.0).reshape(1, 4, 1))[..., 0]
      Array([[0.5, 2.5]], dtype=float32)
    """
    return _pool_layer(
        "AvgPool", "avg_pool", window, strides, padding, count_include_pad
    )


@constructor
def SumPool(
    window: int | Sequence[int],
    strides: int | Sequence[int] | None = None,
    padding: str | int | Sequence[Any] = "VALID",
) -> Layer:
    """Sum pooling, ``y[o] = sum_k xp[o s + k]`` (zero padding).

    Backward: :func:`sum_pool_vjp` (``g`` returned as is to every input position of
    each window).

    Args:
      window: window size, one int per spatial axis (an int means 1-d).
      strides: window strides; default 1, as Flax's pools.
      padding: ``"VALID"`` (default), ``"SAME"``, an int, or ``(low, high)`` pairs.

    Returns:
      A parameter-free :class:`~jaxnet.Layer` named ``"sum_pool"``.

    Raises:
      ShapeError: for an input of the wrong rank or smaller than the window.
    """
    return _pool_layer("SumPool", "sum_pool", window, strides, padding)


def global_avg_pool_vjp(x: Array, g: Array) -> Array:
    """Backward of the spatial mean: ``dx[n, *i, c] = g[n, c] / prod(spatial)``."""
    m = math.prod(x.shape[1:-1])
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return jnp.broadcast_to((g / m).reshape(shape), x.shape).astype(x.dtype)


@constructor
def GlobalAvgPool() -> Layer:
    """Mean over every spatial axis: ``(batch, *spatial, c) -> (batch, c)``.

    ``y[n, c] = mean_i x[n, i, c]``. Any number of spatial axes (rank >= 3).
    Backward: :func:`global_avg_pool_vjp`.

    Raises:
      ShapeError: for an input of rank < 3.

    Examples:
      >>> import jax, jaxnet
      >>> jaxnet.GlobalAvgPool().init(jax.random.key(0), (None, 7, 7, 16))
      ((None, 16), {})
    """
    desc = "GlobalAvgPool()"

    def check(shape: Any) -> None:
        if len(shape) < 3:
            raise ShapeError(
                f"{desc}: expected input of shape (batch, *spatial, channels) (rank "
                f">= 3), got {fmt_shape(shape)}."
            )

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        require_rank(desc, input_shape, 0)
        check(input_shape)
        return (input_shape[0], input_shape[-1]), {}

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, [])
        x = float_input(desc, x)
        check(x.shape)
        return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return {}, global_avg_pool_vjp(x, g)

    return Layer("global_avg_pool", init, apply, backward, desc)
