"""Stateless normalisation layers (LayerNorm, RMSNorm, GroupNorm), each with its
hand-written backward (VJP) right beside its forward.

All three standardise ``x`` over a set of axes ``A`` (``N`` elements per statistic)::

    mu    = mean_A(x)                     (LayerNorm, GroupNorm; 0 for RMSNorm)
    var   = mean_A((x - mu)^2)            (the mean square for RMSNorm)
    r     = 1 / sqrt(var + epsilon)
    xhat  = (x - mu) r
    y     = xhat * scale + offset         (per channel: scale, offset of shape (C,))

and share one backward. With ``dxhat = g * scale`` (``g`` the cotangent of ``y``)::

    dx     = r (dxhat - mean_A(dxhat) - xhat mean_A(dxhat xhat))   (centred)
    dx     = r (dxhat - xhat mean_A(dxhat xhat))                   (RMSNorm)
    dscale = sum over all axes but the last of g xhat
    doffset = sum over all axes but the last of g

This is exact with ``epsilon`` inside ``r``: ``d xhat_i / d x_j = r (delta_ij - 1/N -
xhat_i xhat_j / N)`` (drop the ``1/N`` term without centring).

That Jacobian is symmetric, so the JVP ``dxhat = r (dx - mean(dx) - xhat mean(dx
xhat))`` has the backward above as its transpose. LayerNorm (by default) and RMSNorm
(``custom_grad=True``) register this linear JVP as a ``jax.custom_jvp`` rule: then
``jax.grad`` transposes it into the hand-written backward instead of differentiating
the forward's operations (an extra pass over the activations), and
forward mode and higher derivatives still work, which a ``custom_vjp`` would break.

Numerics. The variance is the two-pass ``mean((x - mu)^2)``, never the one-pass
``mean(x^2) - mu^2``, which cancels catastrophically when ``|mu| >> std`` (for
float32 inputs of mean 1e3 and std 1 it loses most digits). Flax's default
``use_fast_variance=True`` is the one-pass form; jaxnet matches
``flax.linen.LayerNorm(use_fast_variance=False)`` to float32 rounding everywhere, and
the Flax default wherever the latter is accurate. Statistics are computed in at least
float32 (as Flax does), the output in the input/parameter dtype.

The formulation (``mean``, products, ``lax.rsqrt``; no ``abs``, ``var`` or ``maximum``)
is real-analytic, so a complex input is normalised by analytic continuation
(``x^2``, not ``|x|^2``): that is what the complex-step derivative check needs. It is
not a normalisation of genuinely complex data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .._errors import ParamsError, ShapeError
from .._types import Array, Params, PRNGKey, ShapeTree
from . import _init as initializers
from ._checks import check_number, float_input
from ._layer import (
    Layer,
    compute_dtype,
    constructor,
    fmt_shape,
    is_symbolic_zero,
    require_params,
    require_rank,
    sum_terms,
)

# --------------------------------------------------------------------------- helpers


def _dtypes(params: Params, x: Array) -> tuple[Any, Any]:
    """(statistics dtype: at least float32; output dtype: widest of x and params)."""
    pdts = [p.dtype for p in params.values()]
    out = compute_dtype(x.dtype, *pdts)
    return compute_dtype(out, jnp.float32), out


def _standardize(
    x: Array, axes: tuple[int, ...], epsilon: float, center: bool
) -> tuple[Array, Array]:
    """``(xhat, r)``: ``xhat = (x - mu) r``, ``r = rsqrt(var + eps)`` (kept dims)."""
    d = x - jnp.mean(x, axis=axes, keepdims=True) if center else x
    var = jnp.mean(d * d, axis=axes, keepdims=True)  # two-pass: no cancellation
    r = lax.rsqrt(var + epsilon)
    return d * r, r


def _channel(p: Array, ndim: int, dt: Any) -> Array:
    """A per-channel ``(C,)`` parameter reshaped to full rank (no rank promotion)."""
    return p.astype(dt).reshape((1,) * (ndim - 1) + p.shape)


def _affine(params: Params, xhat: Array, dt: Any) -> Array:
    y = xhat
    if "scale" in params:
        y = y * _channel(params["scale"], y.ndim, dt)
    if "offset" in params:
        y = y + _channel(params["offset"], y.ndim, dt)
    return y


def _standardize_vjp(
    dxhat: Array, xhat: Array, r: Array, axes: tuple[int, ...], center: bool
) -> Array:
    """``dx = r (dxhat - [mean(dxhat)] - xhat mean(dxhat xhat))`` over ``axes``."""
    t = dxhat - xhat * jnp.mean(dxhat * xhat, axis=axes, keepdims=True)
    if center:
        t = t - jnp.mean(dxhat, axis=axes, keepdims=True)
    return t * r


def _chan_affine(chan: Params, xhat: Array) -> Array:
    """``xhat * scale + offset`` with full-rank ``chan`` (see :func:`_channel`)."""
    y = xhat
    if "scale" in chan:
        y = y * chan["scale"]
    if "offset" in chan:
        y = y + chan["offset"]
    return y


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _normalize(chan: Params, x: Array, epsilon: float, center: bool) -> Array:
    """``_chan_affine(chan, xhat(x))`` over the last axis, with the linear JVP rule
    :func:`_normalize_jvp` (whose transpose is the hand-written backward)."""
    xhat, _ = _standardize(x, (-1,), epsilon, center)
    return _chan_affine(chan, xhat)


def _normalize_jvp(
    epsilon: float, center: bool, primals: tuple, tangents: tuple
) -> tuple[Array, Array]:
    """The JVP of :func:`_normalize` in projection form::

        dxhat = r (dx - [mean(dx)] - xhat mean(dx xhat))
        dy    = dxhat * scale + xhat * dscale + doffset

    Linear in ``(dx, dscale, doffset)`` with ``xhat``, ``r``, ``scale`` as
    residuals, so ``jax.grad``'s transpose of it is exactly :func:`_standardize_vjp`
    and :func:`_affine_vjp`; forward mode (``jax.jvp``, ``jacfwd``, ``hessian``)
    uses it directly. Unperturbed inputs arrive as symbolic zeros and add nothing.
    """
    (chan, x), (dchan, dx) = primals, tangents
    xhat, r = _standardize(x, (-1,), epsilon, center)
    y = _chan_affine(chan, xhat)
    terms = []
    if not is_symbolic_zero(dx):
        t = dx - xhat * jnp.mean(dx * xhat, axis=-1, keepdims=True)
        if center:
            t = t - jnp.mean(dx, axis=-1, keepdims=True)
        dxhat = t * r
        terms.append(dxhat * chan["scale"] if "scale" in chan else dxhat)
    if "scale" in chan and not is_symbolic_zero(dchan["scale"]):
        terms.append(xhat * dchan["scale"])
    if "offset" in chan and not is_symbolic_zero(dchan["offset"]):
        terms.append(jnp.broadcast_to(dchan["offset"], y.shape))
    return y, sum_terms(terms, y)


_normalize.defjvp(_normalize_jvp, symbolic_zeros=True)


def _norm_last(
    params: Params, x: Array, epsilon: float, center: bool, custom_grad: bool
) -> Array:
    """LayerNorm (``center``) or RMSNorm over the last axis, in the output dtype.

    The custom rule takes ``epsilon`` as a static (non-differentiable) argument, so
    an array ``epsilon`` (possibly traced, differentiated) takes the plain path.
    """
    sdt, dt = _dtypes(params, x)
    xs = x.astype(sdt)
    if not custom_grad or not isinstance(epsilon, (int, float)):
        xhat, _ = _standardize(xs, (-1,), epsilon, center)
        return _affine(params, xhat, sdt).astype(dt)
    chan = {k: _channel(v, x.ndim, sdt) for k, v in params.items()}
    return _normalize(chan, xs, epsilon, center).astype(dt)


def _affine_vjp(params: Params, xhat: Array, g: Array, dt: Any) -> tuple[Params, Array]:
    """``(dparams, dxhat)`` of ``y = xhat * scale + offset``."""
    lead = tuple(range(g.ndim - 1))
    grads = {}
    if "scale" in params:
        grads["scale"] = jnp.sum(g * xhat, axis=lead).astype(params["scale"].dtype)
        dxhat = g * _channel(params["scale"], g.ndim, dt)
    else:
        dxhat = g
    if "offset" in params:
        grads["offset"] = jnp.sum(g, axis=lead).astype(params["offset"].dtype)
    return grads, dxhat


def _names(use_scale: bool, use_bias: bool) -> list[str]:
    return [n for n, on in (("scale", use_scale), ("offset", use_bias)) if on]


def _desc(cls: str, lead: str, epsilon: float, **flags: bool) -> str:
    parts = [lead] if lead else []
    parts.append(f"epsilon={epsilon!r}")
    parts += [f"{k}=False" for k, v in flags.items() if not v]
    return f"{cls}({', '.join(parts)})"


def _check_epsilon(desc: str, epsilon: Any) -> None:
    check_number(desc, "epsilon", epsilon, at_least=0)


def _check_features(
    desc: str, params: Params, x: Array, min_rank: int, layout: str
) -> None:
    """Rank and feature-size checks at ``apply`` (after ``require_params``)."""
    if x.ndim < min_rank:
        raise ShapeError(
            f"{desc}: expected input of rank >= {min_rank} {layout}, got shape "
            f"{tuple(x.shape)}."
        )
    if not params:
        return
    sizes = {k: tuple(v.shape) for k, v in params.items()}
    c = next(iter(sizes.values()))
    if len(c) != 1 or any(s != c for s in sizes.values()):
        raise ParamsError(
            f"{desc}: expected params of shape (C,) with one size C, got "
            f"{sizes}. Pass the params returned by this layer's init."
        )
    if x.shape[-1] != c[0]:
        raise ShapeError(
            f"{desc}: expected input of shape (..., {c[0]}), got {tuple(x.shape)}. "
            f"The layer was initialised for {c[0]} features (last axis); "
            "re-initialise it for the new size or fix the input."
        )


def _make_init(
    desc: str,
    names: list[str],
    min_rank: int,
    scale_init: Callable[..., Array],
    offset_init: Callable[..., Array],
    dtype: Any,
    check: Callable[[int], object] | None = None,
) -> Callable[[PRNGKey, ShapeTree], tuple[ShapeTree, Params]]:
    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        require_rank(desc, input_shape, min_rank)
        c = input_shape[-1]
        if c is None and (names or check is not None):
            raise ShapeError(
                f"{desc}: the last (feature) axis of the input must be known, got "
                f"{fmt_shape(input_shape)}. Only batch axes may be None."
            )
        if check is not None:
            check(c)
        k_scale, k_offset = initializers.split(key)
        params = {}
        if "scale" in names:
            params["scale"] = scale_init(k_scale, (c,), dtype)
        if "offset" in names:
            params["offset"] = offset_init(k_offset, (c,), dtype)
        return tuple(input_shape), params

    return init


# ------------------------------------------------------------------------- LayerNorm


def layer_norm(
    params: Params, x: Array, *, epsilon: float = 1e-6, custom_grad: bool = True
) -> Array:
    """LayerNorm forward over the last axis: ``y = (x - mu) / sqrt(var + eps) * scale
    + offset`` with ``mu``, ``var`` the mean and (two-pass) variance of ``x[..., :]``.

    Args:
      params: ``{"scale": (d,), "offset": (d,)}``; either may be absent.
      x: input, shape ``(..., d)``.
      epsilon: added to the variance.
      custom_grad: differentiate through the hand-derived linear JVP rule (default;
        its transpose is :func:`layer_norm_vjp`); ``False``: plain autodiff of the
        forward's operations. Same values either way. See :func:`LayerNorm`. An
        array ``epsilon`` always takes plain autodiff (the rule treats ``epsilon``
        as a constant, which would silently zero its gradient).

    Returns:
      ``y``, shape ``(..., d)``, in the wider of the input and parameter dtypes.
    """
    return _norm_last(params, x, epsilon, True, custom_grad)


def layer_norm_vjp(
    params: Params, x: Array, g: Array, *, epsilon: float = 1e-6
) -> tuple[Params, Array]:
    """LayerNorm backward. With ``xhat = (x - mu) / sigma``, ``sigma = sqrt(var +
    eps)``, over the ``N = d`` features of the last axis::

        dxhat   = g * scale
        dx      = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sigma
        dscale  = sum over leading axes of g * xhat
        doffset = sum over leading axes of g

    (means over the last axis). Exact with ``eps``: ``d xhat_i / d x_j = (delta_ij -
    1/N - xhat_i xhat_j / N) / sigma``.

    Args:
      params: ``{"scale": (d,), "offset": (d,)}``; either may be absent.
      x: input, shape ``(..., d)``.
      g: cotangent of ``y``, shape ``(..., d)``.
      epsilon: as in the forward.

    Returns:
      ``(dparams, dx)`` with ``dparams`` shaped like ``params``.
    """
    sdt, _ = _dtypes(params, x)
    xhat, r = _standardize(x.astype(sdt), (-1,), epsilon, True)
    grads, dxhat = _affine_vjp(params, xhat, g.astype(sdt), sdt)
    dx = _standardize_vjp(dxhat, xhat, r, (-1,), True)
    return grads, dx.astype(x.dtype)


@constructor
def LayerNorm(
    *,
    epsilon: float = 1e-6,
    use_scale: bool = True,
    use_bias: bool = True,
    scale_init: Callable[..., Array] | None = None,
    offset_init: Callable[..., Array] | None = None,
    dtype: Any = jnp.float32,
    custom_grad: bool = True,
) -> Layer:
    """Layer normalisation (Ba et al. 2016) over the last axis.

    ``y = (x - mean(x)) / sqrt(var(x) + epsilon) * scale + offset``, statistics over
    the last axis of each example; ``(..., d) -> (..., d)``. Defaults are those of
    ``flax.linen.LayerNorm`` (``epsilon=1e-6``, scale ones, offset zeros), whose
    ``bias`` is jaxnet's ``offset``. The variance is the stable two-pass form (Flax's
    ``use_fast_variance=False``); see the module notes. Backward:
    :func:`layer_norm_vjp`.

    Gradients. By default (``custom_grad=True``) ``jax.grad`` does not differentiate
    the forward's operations: the layer carries a ``jax.custom_jvp`` rule in the
    linear projection form ``dy = scale * r * (dx - mean(dx) - xhat * mean(dx *
    xhat)) + dscale * xhat + doffset``, whose transpose (what ``jax.grad`` runs) is
    the hand-written :func:`layer_norm_vjp`: XLA compiles the same program for both,
    so autodiff costs what the hand-written backward costs. Plain autodiff of the
    forward (``custom_grad=False``) runs an extra pass over the activations (the
    benchmark ``layernorm_dx``, ``python -m benchmarks --case layernorm_dx``, times
    both; see docs/benchmarks.md). A ``custom_vjp`` would be as fast but
    breaks forward mode; this rule keeps ``jax.jvp``, ``jax.jacfwd``,
    ``jax.hessian`` and reverse-over-reverse working (they differentiate the rule,
    which is ordinary JAX code). Values are identical either way; gradients agree
    to rounding (float64: ~1e-15 relative).

    Args:
      epsilon: added to the variance (>= 0).
      use_scale: learn a per-feature ``scale`` (gamma).
      use_bias: learn a per-feature ``offset`` (beta).
      scale_init: ``(key, shape, dtype)`` initialiser; default ones.
      offset_init: likewise; default zeros.
      dtype: parameter dtype (default float32). Statistics are computed in at least
        float32; the output has the wider of the input and parameter dtypes.
      custom_grad: differentiate through the hand-derived JVP rule (default; see
        Gradients) or, with ``False``, by plain autodiff of the forward.

    Returns:
      A :class:`~jaxnet.Layer` named ``"layer_norm"`` with params ``{"scale": (d,),
      "offset": (d,)}`` (those enabled).

    Raises:
      ShapeError: at ``init`` for a scalar shape or a free last axis; at ``apply``
        when the last axis differs from the ``d`` it was initialised for.
      DTypeError: at ``apply`` for integer inputs.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> layer = jaxnet.LayerNorm()
      >>> _, params = layer.init(jax.random.key(0), (None, 3))
      >>> y = layer.apply(params, jnp.array([[1.0, 2.0, 3.0]]))
      >>> [round(float(v), 4) for v in y[0]]
      [-1.2247, 0.0, 1.2247]
    """
    desc = _desc(
        "LayerNorm",
        "",
        epsilon,
        use_scale=use_scale,
        use_bias=use_bias,
        custom_grad=custom_grad,
    )
    _check_epsilon(desc, epsilon)
    names = _names(use_scale, use_bias)
    init = _make_init(
        desc,
        names,
        1,
        scale_init or initializers.ones,
        offset_init or initializers.zeros,
        dtype,
    )

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, names)
        x = float_input(desc, x)
        _check_features(desc, params, x, 1, "(..., features)")
        return layer_norm(params, x, epsilon=epsilon, custom_grad=custom_grad)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return layer_norm_vjp(params, x, g, epsilon=epsilon)

    return Layer("layer_norm", init, apply, backward, desc)


# --------------------------------------------------------------------------- RMSNorm


def rms_norm(
    params: Params, x: Array, *, epsilon: float = 1e-6, custom_grad: bool = False
) -> Array:
    """RMSNorm forward over the last axis: ``y = x / sqrt(mean(x^2) + eps) * scale``.

    Args:
      params: ``{"scale": (d,)}`` or ``{}``.
      x: input, shape ``(..., d)``.
      epsilon: added to the mean square.
      custom_grad: differentiate through the hand-derived linear JVP rule (its
        transpose is :func:`rms_norm_vjp`) instead of by plain autodiff (default).
        See :func:`RMSNorm`. Ignored for an array ``epsilon``, as in
        :func:`layer_norm`.

    Returns:
      ``y``, shape ``(..., d)``.
    """
    return _norm_last(params, x, epsilon, False, custom_grad)


def rms_norm_vjp(
    params: Params, x: Array, g: Array, *, epsilon: float = 1e-6
) -> tuple[Params, Array]:
    """RMSNorm backward. With ``rms = sqrt(mean(x^2) + eps)`` and ``xhat = x / rms``
    over the last axis::

        dxhat  = g * scale
        dx     = (dxhat - xhat * mean(dxhat * xhat)) / rms
        dscale = sum over leading axes of g * xhat

    (``d xhat_i / d x_j = (delta_ij - xhat_i xhat_j / N) / rms``.)

    Args:
      params: ``{"scale": (d,)}`` or ``{}``.
      x: input, shape ``(..., d)``.
      g: cotangent of ``y``, shape ``(..., d)``.
      epsilon: as in the forward.

    Returns:
      ``(dparams, dx)`` with ``dparams`` shaped like ``params``.
    """
    sdt, _ = _dtypes(params, x)
    xhat, r = _standardize(x.astype(sdt), (-1,), epsilon, False)
    grads, dxhat = _affine_vjp(params, xhat, g.astype(sdt), sdt)
    dx = _standardize_vjp(dxhat, xhat, r, (-1,), False)
    return grads, dx.astype(x.dtype)


@constructor
def RMSNorm(
    *,
    epsilon: float = 1e-6,
    use_scale: bool = True,
    scale_init: Callable[..., Array] | None = None,
    dtype: Any = jnp.float32,
    custom_grad: bool = False,
) -> Layer:
    """Root-mean-square normalisation (Zhang & Sennrich 2019) over the last axis.

    ``y = x / sqrt(mean(x^2) + epsilon) * scale``: no centring, no offset;
    ``(..., d) -> (..., d)``. Defaults as ``flax.linen.RMSNorm`` (``epsilon=1e-6``,
    scale ones). Backward: :func:`rms_norm_vjp`.

    Gradients. Plain autodiff by default. ``custom_grad=True`` differentiates
    through the same kind of linear ``jax.custom_jvp`` rule as :func:`LayerNorm`
    (``dy = scale * r * (dx - xhat * mean(dx * xhat)) + dscale * xhat``, transpose
    :func:`rms_norm_vjp`; forward mode and higher order keep working). It is opt-in
    because, unlike LayerNorm's, it saves no pass: without the centring, XLA
    already fuses plain autodiff's backward into as many passes as the hand-written
    one (docs/benchmarks.md).

    Args:
      epsilon: added to the mean square (>= 0).
      use_scale: learn a per-feature ``scale``.
      scale_init: ``(key, shape, dtype)`` initialiser; default ones.
      dtype: parameter dtype (default float32).
      custom_grad: differentiate through the hand-derived JVP rule instead of by
        plain autodiff of the forward (default ``False``; see Gradients).

    Returns:
      A :class:`~jaxnet.Layer` named ``"rms_norm"`` with params ``{"scale": (d,)}``
      (or ``{}`` without scale).

    Raises:
      ShapeError: at ``init`` for a scalar shape or a free last axis; at ``apply``
        when the last axis differs from the ``d`` it was initialised for.
      DTypeError: at ``apply`` for integer inputs.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> layer = jaxnet.RMSNorm(epsilon=0.0)
      >>> _, params = layer.init(jax.random.key(0), (None, 2))
      >>> layer.apply(params, jnp.array([[3.0, 4.0]])) * jnp.sqrt(12.5)
      Array([[3., 4.]], dtype=float32)
    """
    desc = _desc("RMSNorm", "", epsilon, use_scale=use_scale)
    if custom_grad:
        desc = desc[:-1] + ", custom_grad=True)"
    _check_epsilon(desc, epsilon)
    names = _names(use_scale, False)
    init = _make_init(
        desc,
        names,
        1,
        scale_init or initializers.ones,
        initializers.zeros,
        dtype,
    )

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, names)
        x = float_input(desc, x)
        _check_features(desc, params, x, 1, "(..., features)")
        return rms_norm(params, x, epsilon=epsilon, custom_grad=custom_grad)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return rms_norm_vjp(params, x, g, epsilon=epsilon)

    return Layer("rms_norm", init, apply, backward, desc)


# ------------------------------------------------------------------------- GroupNorm


def _grouped(x: Array, num_groups: int) -> tuple[Array, tuple[int, ...]]:
    """``x: (B, *S, C) -> (B, *S, G, C/G)`` and the statistics axes (S and C/G)."""
    xg = x.reshape(x.shape[:-1] + (num_groups, x.shape[-1] // num_groups))
    return xg, tuple(range(1, xg.ndim - 2)) + (xg.ndim - 1,)


def group_norm(
    params: Params, x: Array, *, num_groups: int, epsilon: float = 1e-6
) -> Array:
    """GroupNorm forward, channels-last ``x: (batch, *spatial, C)``.

    The ``C`` channels are split into ``num_groups`` contiguous groups of ``C / G``;
    each example's group is standardised over its spatial positions and channels
    (``N = prod(spatial) * C / G`` elements), then ``y = xhat * scale + offset`` per
    channel.

    Args:
      params: ``{"scale": (C,), "offset": (C,)}``; either may be absent.
      x: input, shape ``(batch, *spatial, C)``, ``C`` divisible by ``num_groups``.
      num_groups: the number of channel groups ``G``.
      epsilon: added to the variance.

    Returns:
      ``y``, shape of ``x``.
    """
    sdt, dt = _dtypes(params, x)
    xg, axes = _grouped(x.astype(sdt), num_groups)
    xhat, _ = _standardize(xg, axes, epsilon, True)
    return _affine(params, xhat.reshape(x.shape), sdt).astype(dt)


def group_norm_vjp(
    params: Params, x: Array, g: Array, *, num_groups: int, epsilon: float = 1e-6
) -> tuple[Params, Array]:
    """GroupNorm backward: the LayerNorm formula over each (example, group)'s ``N``
    elements (its spatial positions times its ``C / G`` channels)::

        dxhat   = g * scale                                     (per channel)
        dx      = (dxhat - mean_grp(dxhat) - xhat mean_grp(dxhat xhat)) / sigma_grp
        dscale  = sum over batch and spatial axes of g * xhat
        doffset = sum over batch and spatial axes of g

    Args:
      params: ``{"scale": (C,), "offset": (C,)}``; either may be absent.
      x: input, shape ``(batch, *spatial, C)``.
      g: cotangent of ``y``, shape of ``x``.
      num_groups: as in the forward.
      epsilon: as in the forward.

    Returns:
      ``(dparams, dx)`` with ``dparams`` shaped like ``params``.
    """
    sdt, _ = _dtypes(params, x)
    xg, axes = _grouped(x.astype(sdt), num_groups)
    xhat, r = _standardize(xg, axes, epsilon, True)
    grads, dxhat = _affine_vjp(params, xhat.reshape(x.shape), g.astype(sdt), sdt)
    dx = _standardize_vjp(dxhat.reshape(xg.shape), xhat, r, axes, True)
    return grads, dx.reshape(x.shape).astype(x.dtype)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@constructor
def GroupNorm(
    num_groups: int | None = 32,
    *,
    group_size: int | None = None,
    epsilon: float = 1e-6,
    use_scale: bool = True,
    use_bias: bool = True,
    scale_init: Callable[..., Array] | None = None,
    offset_init: Callable[..., Array] | None = None,
    dtype: Any = jnp.float32,
) -> Layer:
    """Group normalisation (Wu & He 2018), channels-last.

    For ``x: (batch, *spatial, C)`` the channels are split into ``G`` contiguous
    groups; each example's group is standardised over all its spatial positions and
    its ``C / G`` channels, then scaled and offset per channel::

        y = (x - mean_grp) / sqrt(var_grp + epsilon) * scale + offset

    As ``flax.linen.GroupNorm``: the first axis is the batch (never reduced), every
    axis between it and the channels is spatial; ``GroupNorm(1)`` is LayerNorm over
    ``(*spatial, C)``, ``GroupNorm(None, group_size=1)`` is InstanceNorm. Backward:
    :func:`group_norm_vjp`.

    Args:
      num_groups: the number of groups ``G`` (default 32, as Flax). Pass
        ``num_groups=None`` with ``group_size`` instead.
      group_size: channels per group, ``G = C / group_size``.
      epsilon: added to the variance (>= 0).
      use_scale: learn a per-channel ``scale``.
      use_bias: learn a per-channel ``offset``.
      scale_init: ``(key, shape, dtype)`` initialiser; default ones.
      offset_init: likewise; default zeros.
      dtype: parameter dtype (default float32).

    Returns:
      A :class:`~jaxnet.Layer` named ``"group_norm"`` with params ``{"scale": (C,),
      "offset": (C,)}`` (those enabled).

    Raises:
      ValueError: at construction unless exactly one of ``num_groups`` and
        ``group_size`` is a positive integer.
      ShapeError: at ``init``/``apply`` for inputs of rank < 2, an unknown channel
        axis, ``C`` not divisible by the group count (the message lists the
        divisors), or a channel count different from the one initialised for.
      DTypeError: at ``apply`` for integer inputs.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> layer = jaxnet.GroupNorm(2)
      >>> out_shape, params = layer.init(jax.random.key(0), (None, 8, 8, 4))
      >>> out_shape, params["scale"].shape
      ((None, 8, 8, 4), (4,))
    """
    if group_size is None:
        lead = f"num_groups={num_groups}"
    else:
        lead = f"group_size={group_size}"
    if group_size is not None and num_groups is not None:
        raise ValueError(
            f"GroupNorm(num_groups={num_groups}, group_size={group_size}): give "
            "either num_groups or group_size, not both; for a group size write "
            f"GroupNorm(num_groups=None, group_size={group_size})."
        )
    kind, count = (
        ("group_size", group_size)
        if group_size is not None
        else ("num_groups", num_groups)
    )
    if count is None or not isinstance(count, int) or count < 1:
        raise ValueError(
            f"GroupNorm({kind}={count!r}): {kind} must be an integer >= 1."
        )
    desc = _desc("GroupNorm", lead, epsilon, use_scale=use_scale, use_bias=use_bias)
    _check_epsilon(desc, epsilon)
    names = _names(use_scale, use_bias)

    def groups_for(c: int) -> int:
        if c % count:
            divs = ", ".join(str(d) for d in _divisors(c))
            raise ShapeError(
                f"{desc}: the input's {c} channels are not divisible by "
                f"{kind}={count}. Use a {kind} that divides {c}: one of {divs}."
            )
        return count if kind == "num_groups" else c // count

    layout = "(batch, *spatial, channels)"
    init = _make_init(
        desc,
        names,
        2,
        scale_init or initializers.ones,
        offset_init or initializers.zeros,
        dtype,
        check=groups_for,
    )

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, names)
        x = float_input(desc, x)
        _check_features(desc, params, x, 2, layout)
        g = groups_for(x.shape[-1])
        return group_norm(params, x, num_groups=g, epsilon=epsilon)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        groups = groups_for(x.shape[-1])
        return group_norm_vjp(params, x, g, num_groups=groups, epsilon=epsilon)

    return Layer("group_norm", init, apply, backward, desc)
