"""Convolution and pooling layers, each with its hand-written backward beside it.

Layout is channels-last throughout: inputs ``(batch, *spatial, channels)``, kernels
``(*kernel, in_channels / groups, out_channels)`` (Flax's HWIO). Every layer here works
for 1, 2 and 3 spatial dimensions (the rank is set by ``kernel_size`` / ``window``).

One general convolution serves both :func:`Conv` and :func:`ConvTranspose`; per spatial
axis, with input length ``X``, kernel length ``K``, window stride ``s``, padding
``(lo, hi)``, input (lhs) dilation ``a`` and kernel (rhs) dilation ``d``::

    xd[a i] = x[i]                       (dilated input, length Xd = (X - 1) a + 1)
    xp[j]   = xd[j - lo]                 (zero padded, length Xp = Xd + lo + hi)
    y[o]    = sum_k w[k] xp[o s + k d]   (o < O = (Xp - (K - 1) d - 1) // s + 1)

summed over input channels (within a group). ``Conv`` is ``a = 1``; ``ConvTranspose``
(as ``flax.linen.ConvTranspose`` with ``transpose_kernel=False``, i.e.
``jax.lax.conv_transpose``) is ``s = 1`` and ``a = strides``.

Conventions: :func:`max_pool_vjp` routes each window's cotangent to the *first*
maximal element in row-major window order (ties), as ``jax.grad`` does;
:func:`AvgPool` divides by the full window size (``count_include_pad=True``, Flax's
default) unless asked otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from jax import lax

from .._errors import ShapeError
from .._types import Array, Params, PRNGKey, ShapeTree
from . import _init as initializers
from ._checks import float_input, int_tuple, is_int
from ._layer import (
    Layer,
    compute_dtype,
    constructor,
    fmt_shape,
    require_params,
    require_rank,
)

Pads = tuple[tuple[int, int], ...]

_LAYOUTS = {
    1: "(batch, length, channels)",
    2: "(batch, height, width, channels)",
    3: "(batch, depth, height, width, channels)",
}

# ------------------------------------------------------------------------- helpers


def _tuple(
    v: int | Sequence[int] | None, n: int, what: str, desc: str
) -> tuple[int, ...]:
    """Broadcast an int to ``n`` entries (``None``: all ones, as Flax and stax), or
    check a sequence has ``n`` entries >= 1."""
    return int_tuple(desc, what, v, n, none=1)


def _sizes(v: Any) -> Any:
    """A kernel or window size as a tuple (an int broadcasts); anything else is kept
    as given, for the caller's message."""
    if is_int(v):
        return (int(v),)
    if isinstance(v, Sequence) and not isinstance(v, str):
        return tuple(v)
    return v if isinstance(v, tuple) else (v,)


def _padding_spec(padding: Any, n: int, desc: str) -> str | Pads:
    """Canonicalise ``"SAME"``/``"VALID"``, an int, ints or ``(lo, hi)`` pairs."""
    if isinstance(padding, str):
        p = padding.upper()
        if p not in ("SAME", "VALID"):
            raise ValueError(
                f"{desc}: padding must be 'SAME', 'VALID', an int or {n} (low, high) "
                f"pairs, got {padding!r}."
            )
        return p
    if isinstance(padding, int):
        return ((padding, padding),) * n
    try:
        pads = tuple(
            (int(p), int(p)) if isinstance(p, int) else (int(p[0]), int(p[1]))
            for p in padding
        )
        if len(pads) != n or any(
            len(p) != 2 for p in padding if not isinstance(p, int)
        ):
            raise ValueError
    except (TypeError, ValueError, IndexError):
        raise ValueError(
            f"{desc}: padding must be 'SAME', 'VALID', an int or {n} (low, high) "
            f"pairs, got {padding!r}."
        ) from None
    return pads


def _same_pads(xd: int, k_eff: int, s: int) -> tuple[int, int]:
    """SAME padding (as ``jax.lax.padtype_to_pads``): output ``ceil(xd / s)``."""
    out = -(-xd // s)
    total = max((out - 1) * s + k_eff - xd, 0)
    return total // 2, total - total // 2


def _resolve(
    padding: str | Pads,
    xd: Sequence[int | None],
    k_eff: Sequence[int],
    strides: Sequence[int],
) -> Pads:
    """Explicit ``(lo, hi)`` pairs for the (dilated) input lengths ``xd``; a free
    (``None``) length gets ``(0, 0)`` under ``"SAME"`` (only its rank matters)."""
    if isinstance(padding, str):
        if padding == "VALID":
            return ((0, 0),) * len(xd)
        return tuple(
            (0, 0) if x is None else _same_pads(x, k, s)
            for x, k, s in zip(xd, k_eff, strides)
        )
    return tuple(padding)


def _dilate(x: int, a: int) -> int:
    return (x - 1) * a + 1 if x > 0 else 0


def _out_len(xp: int, k_eff: int, s: int) -> int:
    return (xp - k_eff) // s + 1


def _conv_dims(n: int) -> lax.ConvDimensionNumbers:
    """Channels-last input/output, ``(*kernel, in, out)`` kernel."""
    io = (0, n + 1, *range(1, n + 1))
    return lax.ConvDimensionNumbers(io, (n + 1, n, *range(n)), io)


def _layout(n: int) -> str:
    return _LAYOUTS.get(n, f"(batch, {n} spatial axes, channels)")


def _check_input(desc: str, x: Array, n: int) -> None:
    if x.ndim != n + 2:
        raise ShapeError(
            f"{desc}: expected input of shape {_layout(n)} (rank {n + 2}), got "
            f"{tuple(x.shape)}. Add the missing batch or channel axis, e.g. "
            "x[None] or x[..., None]."
        )


def _check_init_shape(desc: str, input_shape: Any, n: int) -> None:
    require_rank(desc, input_shape, 0)
    if len(input_shape) != n + 2:
        raise ShapeError(
            f"{desc}: expected input of shape {_layout(n)} (rank {n + 2}), got "
            f"{fmt_shape(input_shape)}."
        )
    if input_shape[-1] is None:
        raise ShapeError(
            f"{desc}: the channel (last) axis of the input must be known, got "
            f"{fmt_shape(input_shape)}. Only batch and spatial axes may be None."
        )


def _check_fits(
    desc: str,
    shape: Sequence[int | None],
    pads: Pads,
    k_eff: Sequence[int],
    lhs_dilation: Sequence[int],
) -> None:
    """A window (of effective size ``k_eff``) must fit the padded input."""
    for i, (x, (lo, hi), k, a) in enumerate(zip(shape, pads, k_eff, lhs_dilation)):
        if x is None:
            continue
        xp = _dilate(x, a) + lo + hi
        if xp < k:
            raise ShapeError(
                f"{desc}: spatial axis {i} has size {x} ({xp} after padding "
                f"{(lo, hi)}), smaller than the window's effective size {k}. Use a "
                "larger input, padding='SAME', or a smaller kernel/dilation."
            )


# --------------------------------------------------------------- general convolution


def conv(
    params: Params,
    x: Array,
    *,
    strides: Sequence[int],
    padding: str | Pads,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    groups: int = 1,
) -> Array:
    """General channels-last convolution ``y = conv(x, w) + b``.

    Per spatial axis (see the module docstring)
    ``y[o] = sum_{k, i} w[k, i, c] xp[o s + k d, i] + b[c]``, where ``xp`` is ``x``
    dilated by ``lhs_dilation`` and padded; the input channels are split into
    ``groups`` groups, group ``g`` feeding output channels ``g * out / groups``
    onwards. Computed in the widest of the input and parameter dtypes (complex
    inputs work, for complex-step checks).

    Args:
      params: ``{"w": (*kernel, in / groups, out), "b": (out,)}`` (``b`` optional).
      x: ``(batch, *spatial, in)``.
      strides: window strides ``s``, one per spatial axis.
      padding: ``"SAME"``, ``"VALID"`` or ``(lo, hi)`` pairs.
      lhs_dilation: input dilation ``a`` (transposed convolution); default 1.
      rhs_dilation: kernel dilation ``d`` (atrous convolution); default 1.
      groups: ``feature_group_count``.

    Returns:
      ``(batch, *out_spatial, out)``.
    """
    w = params["w"]
    n = w.ndim - 2
    one = (1,) * n
    a = tuple(lhs_dilation or one)
    d = tuple(rhs_dilation or one)
    k_eff = [_dilate(k, r) for k, r in zip(w.shape[:n], d)]
    xd = [_dilate(s, r) for s, r in zip(x.shape[1:-1], a)]
    pads = _resolve(padding, xd, k_eff, strides)
    dt = compute_dtype(x.dtype, *(p.dtype for p in params.values()))
    run = functools.partial(
        lax.conv_general_dilated,
        window_strides=tuple(strides),
        padding=pads,
        lhs_dilation=a,
        rhs_dilation=d,
        dimension_numbers=_conv_dims(n),
        feature_group_count=groups,
    )
    if jnp.issubdtype(dt, jnp.complexfloating):
        # JAX lowers a complex convolution on CPU/GPU with Gauss's three-product
        # trick, whose (re + im) sums round away a tiny imaginary part: the
        # complex step would see zero. Four real convolutions keep it exact.
        rt = jnp.finfo(dt).dtype
        xr, xi = jnp.real(x).astype(rt), jnp.imag(x).astype(rt)
        wr, wi = jnp.real(w).astype(rt), jnp.imag(w).astype(rt)
        y = lax.complex(run(xr, wr) - run(xi, wi), run(xr, wi) + run(xi, wr))
    else:
        y = run(x.astype(dt), w.astype(dt))
    if "b" in params:
        b = params["b"].astype(dt)
        y = y + b.reshape((1,) * (y.ndim - 1) + b.shape)
    return y


def conv_vjp(
    params: Params,
    x: Array,
    g: Array,
    *,
    strides: Sequence[int],
    padding: str | Pads,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    groups: int = 1,
) -> tuple[Params, Array]:
    """Backward of :func:`conv`, written as three forward convolutions.

    Per spatial axis, with ``X``, ``K``, ``O`` the input, kernel and output lengths,
    ``s`` the stride, ``(lo, hi)`` the padding, ``a`` the input and ``d`` the kernel
    dilation, ``Xd = (X - 1) a + 1``, ``Xp = Xd + lo + hi``, ``Ke = (K - 1) d + 1``:

    * **input**: ``dxp[j] = sum_{o s + k d = j} g[o] w[k]`` is a convolution of ``g``
      dilated by ``s`` (``lhs_dilation = s``) with the spatially flipped kernel,
      its in/out channel axes swapped per group (``(*K, in/G, G, out/G) ->
      (*K, out/G, G, in/G)``), kernel dilation ``d``, padding
      ``(Ke - 1 - lo, Xd + lo - (O - 1) s - 1)`` (the full correlation, cropped
      back to the unpadded input), and window stride ``a`` (keeping only the
      dilated input's real positions)::

          dx = conv(g, flip(w)^T; strides=a, lhs_dilation=s, rhs_dilation=d,
                    groups=G)

    * **kernel**: ``dw[k, i, c] = sum_{n, o} xp[n, o s + k d, i] g[n, o, c]`` is a
      correlation of ``x`` with ``g`` in which the batch axis is contracted: ``x``
      read with channels as batch and batch as features, ``g`` as a kernel with
      ``(batch, out)`` as ``(in, out)``; window stride ``d``, kernel dilation ``s``,
      input dilation ``a``, padding ``(lo, hi - r)`` with
      ``r = Xp - 1 - (O - 1) s - (K - 1) d`` (the rows no window reaches), and
      ``batch_group_count = G`` pairing input-channel group ``i`` with
      output-channel group ``i``.
    * **bias**: ``db[c] = sum g[..., c]`` over batch and spatial axes.

    Args:
      params, x, strides, padding, lhs_dilation, rhs_dilation, groups: as
        :func:`conv`.
      g: cotangent of ``y``, ``(batch, *out_spatial, out)``.

    Returns:
      ``(dparams, dx)`` with ``dparams`` shaped like ``params`` and ``dx`` like
      ``x``.
    """
    w = params["w"]
    n = w.ndim - 2
    one = (1,) * n
    a = tuple(lhs_dilation or one)
    d = tuple(rhs_dilation or one)
    s = tuple(strides)
    ks = w.shape[:n]
    k_eff = [_dilate(k, r) for k, r in zip(ks, d)]
    xs = x.shape[1:-1]
    xd = [_dilate(v, r) for v, r in zip(xs, a)]
    pads = _resolve(padding, xd, k_eff, s)
    os_ = g.shape[1:-1]
    dt = compute_dtype(x.dtype, g.dtype, *(p.dtype for p in params.values()))
    xc, gc, wc = x.astype(dt), g.astype(dt), w.astype(dt)
    cin_g, cout = w.shape[-2], w.shape[-1]

    # input: flipped kernel, in/out swapped within each group.
    wt = jnp.flip(wc, axis=tuple(range(n)))
    wt = wt.reshape(ks + (cin_g, groups, cout // groups))
    wt = jnp.swapaxes(wt, n, n + 2).reshape(ks + (cout // groups, groups * cin_g))
    dx_pads = tuple(
        (ke - 1 - lo, xdi + lo - (o - 1) * si - 1)
        for ke, (lo, _), xdi, o, si in zip(k_eff, pads, xd, os_, s)
    )
    dx = lax.conv_general_dilated(
        gc,
        wt,
        window_strides=a,
        padding=dx_pads,
        lhs_dilation=s,
        rhs_dilation=d,
        dimension_numbers=_conv_dims(n),
        feature_group_count=groups,
    )

    # kernel: correlate x with g, contracting the batch axis.
    dw_pads = []
    for (lo, hi), xdi, o, si, k, di in zip(pads, xd, os_, s, ks, d):
        r = xdi + lo + hi - 1 - (o - 1) * si - (k - 1) * di
        dw_pads.append((lo, hi - r))
    spatial = tuple(range(1, n + 1))
    dw = lax.conv_general_dilated(
        xc,
        gc,
        window_strides=d,
        padding=tuple(dw_pads),
        lhs_dilation=a,
        rhs_dilation=s,
        dimension_numbers=lax.ConvDimensionNumbers(
            (n + 1, 0, *spatial), (n + 1, 0, *spatial), (n, n + 1, *range(n))
        ),
        batch_group_count=groups,
    )
    grads = {"w": dw.astype(w.dtype)}
    if "b" in params:
        grads["b"] = jnp.sum(gc, axis=tuple(range(g.ndim - 1))).astype(
            params["b"].dtype
        )
    return grads, dx.astype(x.dtype)


def conv_transpose_padding(
    padding: str | Pads, kernel: Sequence[int], strides: Sequence[int]
) -> Pads:
    """Padding of the dilated-input convolution that a transposed convolution is.

    As ``jax.lax.conv_transpose`` (and so ``flax.linen.ConvTranspose``): with the
    effective kernel size ``Ke`` and stride ``s`` per axis, ``"SAME"`` pads
    ``(Ke - 1, s - 1)`` when ``s > Ke - 1`` and otherwise splits ``Ke + s - 2`` with
    the larger half first; ``"VALID"`` pads ``(Ke - 1, Ke - 1 + max(s - Ke, 0))``;
    explicit pairs are used as given. Output length: ``X s`` for ``"SAME"``,
    ``X s + max(Ke - s, 0)`` for ``"VALID"``.
    """
    if not isinstance(padding, str):
        return tuple(padding)
    out = []
    for k, s in zip(kernel, strides):
        if padding == "SAME":
            total = k + s - 2
            lo = k - 1 if s > k - 1 else -(-total // 2)
        else:
            total = k + s - 2 + max(k - s, 0)
            lo = k - 1
        out.append((lo, total - lo))
    return tuple(out)


# ----------------------------------------------------------------------------- Conv


def _fmt_pad(p: str | Pads) -> str:
    return repr(p) if isinstance(p, str) else str(tuple(p))


def _conv_layer(
    kind: str,
    out_channels: int,
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: Any,
    dilation: int | Sequence[int],
    groups: int,
    use_bias: bool,
    w_init: Callable[..., Array] | None,
    b_init: Callable[..., Array] | None,
    dtype: Any,
) -> Layer:
    name = "conv" if kind == "Conv" else "conv_transpose"
    ks = _sizes(kernel_size)
    base = f"{kind}(out_channels={out_channels}, kernel_size={ks})"
    if not isinstance(out_channels, int) or out_channels < 1:
        raise ValueError(f"{base}: out_channels must be an integer >= 1.")
    n = len(ks)
    if n not in (1, 2, 3) or not all(is_int(k) and k >= 1 for k in ks):
        raise ValueError(
            f"{base}: kernel_size must be 1, 2 or 3 ints >= 1 (one per spatial axis)."
        )
    st = _tuple(strides, n, "strides", base)
    dil = _tuple(dilation, n, "dilation", base)
    pad = _padding_spec(padding, n, base)
    extras = []
    if st != (1,) * n:
        extras.append(f"strides={st}")
    if pad != "SAME":
        extras.append(f"padding={_fmt_pad(pad)}")
    if dil != (1,) * n:
        extras.append(f"dilation={dil}")
    if groups != 1:
        extras.append(f"groups={groups}")
    if not use_bias:
        extras.append("use_bias=False")
    desc = base[:-1] + "".join(", " + e for e in extras) + ")"
    if not isinstance(groups, int) or groups < 1 or out_channels % groups:
        raise ValueError(
            f"{desc}: groups must be an integer >= 1 dividing out_channels="
            f"{out_channels}."
        )
    w_init = w_init if w_init is not None else initializers.lecun_normal()
    b_init = b_init if b_init is not None else initializers.zeros
    names = ["w", "b"] if use_bias else ["w"]
    k_eff = tuple(_dilate(k, r) for k, r in zip(ks, dil))
    transpose = kind == "ConvTranspose"

    def settings(spatial: Sequence[int | None]) -> dict[str, Any]:
        """The general-convolution arguments for inputs of these spatial sizes."""
        if transpose:
            return dict(
                strides=(1,) * n,
                padding=conv_transpose_padding(pad, k_eff, st),
                lhs_dilation=st,
                rhs_dilation=dil,
                groups=1,
            )
        pads = _resolve(pad, spatial, k_eff, st)
        return dict(
            strides=st, padding=pads, lhs_dilation=None, rhs_dilation=dil, groups=groups
        )

    def out_spatial(spatial: Sequence[int | None]) -> tuple[int | None, ...]:
        cfg = settings(spatial)
        a = cfg["lhs_dilation"] or (1,) * n
        out = []
        for x, (lo, hi), k, s, ai in zip(
            spatial, cfg["padding"], k_eff, cfg["strides"], a
        ):
            out.append(None if x is None else _out_len(_dilate(x, ai) + lo + hi, k, s))
        return tuple(out)

    def check_channels(c: int) -> None:
        if c % groups:
            raise ShapeError(
                f"{desc}: in_channels={c} is not divisible by groups={groups}. Each "
                "group needs the same number of input channels: pick groups dividing "
                "both in_channels and out_channels."
            )

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        _check_init_shape(desc, input_shape, n)
        c = input_shape[-1]
        check_channels(c)
        spatial = tuple(input_shape[1:-1])
        cfg = settings(spatial)
        _check_fits(
            desc, spatial, cfg["padding"], k_eff, cfg["lhs_dilation"] or (1,) * n
        )
        kw, kb = initializers.split(key)
        params = {"w": w_init(kw, ks + (c // groups, out_channels), dtype)}
        if use_bias:
            params["b"] = b_init(kb, (out_channels,), dtype)
        return (input_shape[0], *out_spatial(spatial), out_channels), params

    def prepare(params: Params, x: Any) -> tuple[Array, dict[str, Any]]:
        require_params(desc, params, names)
        x = float_input(desc, x)
        _check_input(desc, x, n)
        w = params["w"]
        if w.ndim != n + 2 or w.shape[:n] != ks or w.shape[-1] != out_channels:
            raise ShapeError(
                f"{desc}: params['w'] has shape {tuple(w.shape)}, expected "
                f"{ks + ('in_channels/groups', out_channels)}. Pass the params "
                "returned by this layer's init."
            )
        c = x.shape[-1]
        check_channels(c)
        if c // groups != w.shape[-2]:
            raise ShapeError(
                f"{desc}: expected input with {w.shape[-2] * groups} channels (last "
                f"axis), got shape {tuple(x.shape)}. The layer was initialised for "
                f"in_channels={w.shape[-2] * groups}."
            )
        spatial = x.shape[1:-1]
        cfg = settings(spatial)
        _check_fits(
            desc, spatial, cfg["padding"], k_eff, cfg["lhs_dilation"] or (1,) * n
        )
        return x, cfg

    def apply(params: Params, x: Any, **_: Any) -> Array:
        x, cfg = prepare(params, x)
        return conv(params, x, **cfg)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        x, cfg = prepare(params, x)
        return conv_vjp(params, x, g, **cfg)

    return Layer(name, init, apply, backward, desc)


@constructor
def Conv(
    out_channels: int,
    kernel_size: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = 1,
    padding: str | int | Sequence[Any] = "SAME",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    use_bias: bool = True,
    w_init: Callable[..., Array] | None = None,
    b_init: Callable[..., Array] | None = None,
    dtype: Any = jnp.float32,
) -> Layer:
    """An N-d convolution (N = 1, 2, 3), channels-last, as ``flax.linen.Conv``.

    ``y[n, o, c] = b[c] + sum_{k, i} w[k, i, c] xp[n, o * strides + k * dilation,
    g(c) * in/groups + i]`` (a cross-correlation, as in every deep-learning library),
    where ``xp`` is ``x`` zero-padded and ``g(c)`` is output channel ``c``'s group.
    ``(batch, *spatial, in) -> (batch, *out_spatial, out_channels)`` with
    ``out = ceil(X / s)`` for ``"SAME"`` and ``(X + lo + hi - Ke) // s + 1``
    otherwise (``Ke = (K - 1) dilation + 1``). Backward: :func:`conv_vjp`.

    Args:
      out_channels: number of output channels.
      kernel_size: one int per spatial axis; an int means a 1-d convolution.
      strides: window strides (int or one per axis; None: all ones, as Flax).
      padding: ``"SAME"`` (default; output ``ceil(X / s)``, extra padding at the
        end, as ``jax.lax``), ``"VALID"``, an int, or ``(low, high)`` pairs.
        Flax's ``"CIRCULAR"``/``"CAUSAL"`` are not supported.
      dilation: kernel (rhs) dilation, atrous convolution.
      groups: ``feature_group_count``; must divide ``in_channels`` and
        ``out_channels``. ``groups == in_channels`` is a depthwise convolution.
      use_bias: whether to add ``b``.
      w_init: ``(key, shape, dtype)`` initialiser; default ``lecun_normal()`` (Flax).
      b_init: likewise for ``b``; default ``zeros``.
      dtype: parameter dtype (default float32).

    Returns:
      A :class:`~jaxnet.Layer` named ``"conv"`` with params ``{"w": (*kernel_size,
      in_channels / groups, out_channels), "b": (out_channels,)}``.

    Raises:
      ValueError: at construction for bad settings.
      ShapeError: at ``init``/``apply`` for an input of the wrong rank or channel
        count, ``in_channels`` not divisible by ``groups``, or a kernel larger than
        the (padded) input.
      DTypeError: at ``apply`` for integer inputs.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> layer = jaxnet.Conv(4, (3, 3), strides=2)
      >>> out_shape, params = layer.init(jax.random.key(0), (None, 8, 8, 3))
      >>> out_shape, params["w"].shape
      ((None, 4, 4, 4), (3, 3, 3, 4))
    """
    return _conv_layer(
        "Conv",
        out_channels,
        kernel_size,
        strides,
        padding,
        dilation,
        groups,
        use_bias,
        w_init,
        b_init,
        dtype,
    )


def conv_transpose(
    params: Params,
    x: Array,
    *,
    strides: Sequence[int],
    padding: str | Pads,
    dilation: Sequence[int] | None = None,
) -> Array:
    """Transposed convolution, as ``jax.lax.conv_transpose(transpose_kernel=False)``.

    ``y = conv(x, w; strides=1, lhs_dilation=strides, rhs_dilation=dilation,
    padding=conv_transpose_padding(padding, Ke, strides)) + b``: the input is
    dilated by the strides and correlated with ``w`` (not flipped, not swapped).

    Args:
      params: ``{"w": (*kernel, in, out), "b": (out,)}``.
      x: ``(batch, *spatial, in)``.
      strides, padding, dilation: as :func:`ConvTranspose`.

    Returns:
      ``(batch, *out_spatial, out)``.
    """
    n = params["w"].ndim - 2
    d = tuple(dilation or (1,) * n)
    k_eff = [_dilate(k, r) for k, r in zip(params["w"].shape[:n], d)]
    return conv(
        params,
        x,
        strides=(1,) * n,
        padding=conv_transpose_padding(padding, k_eff, strides),
        lhs_dilation=strides,
        rhs_dilation=d,
    )


def conv_transpose_vjp(
    params: Params,
    x: Array,
    g: Array,
    *,
    strides: Sequence[int],
    padding: str | Pads,
    dilation: Sequence[int] | None = None,
) -> tuple[Params, Array]:
    """Backward of :func:`conv_transpose`: :func:`conv_vjp` with ``a = strides``.

    With ``s = 1`` and input dilation ``a``: ``dx = conv(g, flip(w)^T;
    strides=a, padding=(Ke - 1 - lo, Xd + lo - O)`` per axis, i.e. a strided
    ordinary convolution; ``dw = correlate(dilate(x, a), g)`` over the batch;
    ``db = sum g``. Same arguments as :func:`conv_transpose`.
    """
    n = params["w"].ndim - 2
    d = tuple(dilation or (1,) * n)
    k_eff = [_dilate(k, r) for k, r in zip(params["w"].shape[:n], d)]
    return conv_vjp(
        params,
        x,
        g,
        strides=(1,) * n,
        padding=conv_transpose_padding(padding, k_eff, strides),
        lhs_dilation=strides,
        rhs_dilation=d,
    )


@constructor
def ConvTranspose(
    out_channels: int,
    kernel_size: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = 1,
    padding: str | int | Sequence[Any] = "SAME",
    dilation: int | Sequence[int] = 1,
    use_bias: bool = True,
    w_init: Callable[..., Array] | None = None,
    b_init: Callable[..., Array] | None = None,
    dtype: Any = jnp.float32,
) -> Layer:
    """Transposed (fractionally strided) convolution, as ``flax.linen.ConvTranspose``.

    Semantics are Flax's default (``transpose_kernel=False``), i.e.
    ``jax.lax.conv_transpose``: the input is dilated by ``strides`` (``s - 1`` zeros
    between elements), padded per :func:`conv_transpose_padding` and correlated with
    ``w: (*kernel, in, out)`` at stride 1. The kernel is *not* flipped or
    channel-swapped, so with a ``Conv``'s kernel this is not that conv's exact
    transpose (Flax's ``transpose_kernel=True`` and Keras's ``Conv2DTranspose`` flip
    it). Output length per axis: ``X s`` for ``"SAME"``, ``X s + max(Ke - s, 0)``
    for ``"VALID"``; explicit pairs pad the dilated input directly. No ``groups``
    (Flax's ``ConvTranspose`` has none either). Backward: :func:`conv_transpose_vjp`.

    Args:
      out_channels: number of output channels.
      kernel_size: one int per spatial axis; an int means 1-d.
      strides: the upsampling factors (input dilation; None: all ones).
      padding: ``"SAME"`` (default), ``"VALID"``, an int or ``(low, high)`` pairs.
      dilation: kernel dilation.
      use_bias, w_init, b_init, dtype: as :func:`Conv`.

    Returns:
      A :class:`~jaxnet.Layer` named ``"conv_transpose"`` with params
      ``{"w": (*kernel_size, in_channels, out_channels), "b": (out_channels,)}``.

    Raises:
      ValueError, ShapeError, DTypeError: as :func:`Conv`.

    Examples:
      >>> import jax, jaxnet
      >>> layer = jaxnet.ConvTranspose(2, (3, 3), strides=2)
      >>> layer.init(jax.random.key(0), (None, 4, 4, 3))[0]
      (None, 8, 8, 2)
    """
    return _conv_layer(
        "ConvTranspose",
        out_channels,
        kernel_size,
        strides,
        padding,
        dilation,
        1,
        use_bias,
        w_init,
        b_init,
        dtype,
    )
