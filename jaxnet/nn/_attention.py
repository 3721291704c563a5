"""Multi-head attention (``softmax(q k^T / sqrt(d) + mask) v`` over heads), forward
beside its hand-written backward."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import DTypeError, ShapeError
from .._types import Array, Params, PRNGKey, ShapeTree
from . import _init as initializers
from ._checks import as_inputs, check_int, float_input
from ._core import dense, dense_vjp
from ._layer import (
    Layer,
    compute_dtype,
    constructor,
    fmt_shape,
    is_symbolic_zero,
    require_params,
    sum_terms,
)

# ---------------------------------------------------------------------- attention


def _large_negative(dtype: Any) -> float:
    # As jax.nn.dot_product_attention: finite, so a fully masked row stays finite.
    return -0.7 * float(jnp.finfo(dtype).max)


def _logits_dtype(dtype: Any) -> Any:
    """The scores' and softmax's dtype: at least float32 (as ``jax.nn``)."""
    return compute_dtype(dtype, jnp.float32)


def _scores(q: Array, k: Array, mask: Array | None) -> Array:
    """``S = where(mask, q k^T / sqrt(head_dim), -big)`` in :func:`_logits_dtype`."""
    dt = _logits_dtype(q.dtype)
    s = jnp.einsum("btnh,bsnh->bnts", q, k, preferred_element_type=dt)
    s = s * jnp.asarray(1.0 / math.sqrt(q.shape[-1]), dt)
    if mask is not None:
        s = jnp.where(mask, s, jnp.asarray(_large_negative(dt), dt))
    return s


def attention_weights(q: Array, k: Array, mask: Array | None) -> Array:
    """``P = softmax(where(mask, q k^T / sqrt(head_dim), -big))`` per head.

    The scores and the softmax are computed in at least float32 (as
    :func:`jax.nn.dot_product_attention`); ``P`` is returned in ``q``'s dtype.

    Args:
      q: ``(batch, q_len, heads, head_dim)``; k: ``(batch, kv_len, heads, head_dim)``.
      mask: boolean ``(batch, heads, q_len, kv_len)`` (True = attend) or ``None``.

    Returns:
      ``P`` of shape ``(batch, heads, q_len, kv_len)``.
    """
    return jax.nn.softmax(_scores(q, k, mask), axis=-1).astype(q.dtype)


@jax.custom_jvp
def attention_core(q: Array, k: Array, v: Array, mask: Array | None) -> Array:
    """``O = softmax(q k^T / sqrt(head_dim), masked) v``, shapes ``(b, len, heads, hd)``.

    Forward: :func:`jax.nn.dot_product_attention` for real dtypes up to float32; it
    computes the softmax in float32 even for float64 inputs, so float64 (and complex)
    take the same formula written out here, to keep float64 accurate to float64.

    Derivatives: a linear ``jax.custom_jvp`` rule, :func:`attention_core_jvp`, whose
    transpose is the hand-written backward :func:`attention_core_vjp`. ``jax.grad``
    transposes it (the backward keeps only ``P`` from the forward), and forward
    mode (``jax.jvp``, ``jacfwd``) and higher derivatives work, which a
    ``custom_vjp`` would break. Measured by ``jaxnet bench --case mha`` (CPU): plain
    autodiff of ``jax.nn.dot_product_attention`` was 1.21x the time of autodiff of
    the einsum formula; this rule is 0.98x of the latter.
    """
    dt = jnp.dtype(q.dtype)
    if jnp.issubdtype(dt, jnp.floating) and jnp.finfo(dt).bits <= 32:
        # jax's implementation promotes internally; allow it under strict promotion.
        with jax.numpy_dtype_promotion("standard"):
            return jax.nn.dot_product_attention(q, k, v, mask=mask)
    p = attention_weights(q, k, mask)
    return jnp.einsum("bnts,bsnh->btnh", p, v)


def attention_core_jvp(primals: tuple, tangents: tuple) -> tuple[Array, Array]:
    """The JVP of :func:`attention_core` (per batch and head, ``c = 1/sqrt(hd)``)::

        dS = c (dQ K^T + Q dK^T)              (zero where masked)
        dP = P * (dS - sum(dS * P, -1))
        dO = dP V + P dV

    Linear in ``(dq, dk, dv)`` with ``P`` (and ``q, k, v``) as residuals; its
    transpose is :func:`attention_core_vjp`. The scores' tangent is computed in at
    least float32, like the scores. Unperturbed inputs arrive as symbolic zeros and
    add nothing (cross-attention with a fixed key/value input, say); the mask's
    tangent is always zero.
    """
    (q, k, v, mask), (dq, dk, dv, _) = primals, tangents
    dt = _logits_dtype(q.dtype)
    c = jnp.asarray(1.0 / math.sqrt(q.shape[-1]), dt)
    p32 = jax.nn.softmax(_scores(q, k, mask), axis=-1)
    p = p32.astype(v.dtype)
    o = jnp.einsum("bnts,bsnh->btnh", p, v)
    terms, ds_terms = [], []
    if not is_symbolic_zero(dq):
        ds_terms.append(jnp.einsum("btnh,bsnh->bnts", dq, k, preferred_element_type=dt))
    if not is_symbolic_zero(dk):
        ds_terms.append(jnp.einsum("btnh,bsnh->bnts", q, dk, preferred_element_type=dt))
    if ds_terms:
        ds = sum_terms(ds_terms, o) * c
        if mask is not None:
            ds = jnp.where(mask, ds, jnp.zeros_like(ds))
        dp = p32 * (ds - jnp.sum(ds * p32, axis=-1, keepdims=True))
        terms.append(jnp.einsum("bnts,bsnh->btnh", dp.astype(v.dtype), v))
    if not is_symbolic_zero(dv):
        terms.append(jnp.einsum("bnts,bsnh->btnh", p, dv))
    return o, sum_terms(terms, o)


attention_core.defjvp(attention_core_jvp, symbolic_zeros=True)


def attention_core_vjp(
    q: Array, k: Array, v: Array, mask: Array | None, g: Array
) -> tuple[Array, Array, Array]:
    """Backward of :func:`attention_core` (per batch and head, ``c = 1/sqrt(hd)``).

    ::

        S = c Q K^T (masked),  P = softmax(S),  O = P V
        dV = P^T dO
        dP = dO V^T
        dS = P * (dP - sum(dP * P, -1))       (zero where masked)
        dQ = c dS K
        dK = c dS^T Q

    Returns:
      ``(dq, dk, dv)`` shaped like ``q, k, v``.
    """
    c = jnp.asarray(1.0 / math.sqrt(q.shape[-1]), q.dtype)
    p = attention_weights(q, k, mask)
    dv = jnp.einsum("bnts,btnh->bsnh", p, g)
    dp = jnp.einsum("btnh,bsnh->bnts", g, v)
    ds = p * (dp - jnp.sum(dp * p, axis=-1, keepdims=True))
    if mask is not None:
        ds = jnp.where(mask, ds, jnp.zeros_like(ds))
    dq = jnp.einsum("bnts,bsnh->btnh", ds, k) * c
    dk = jnp.einsum("bnts,btnh->bsnh", ds, q) * c
    return dq, dk, dv


def _heads(y: Array, heads: int) -> Array:
    return y.reshape(y.shape[:-1] + (heads, y.shape[-1] // heads))


def _merge(y: Array) -> Array:
    return y.reshape(y.shape[:-2] + (y.shape[-2] * y.shape[-1],))


Implementation = Literal["xla", "cudnn"] | None
IMPLEMENTATIONS: tuple[Implementation, ...] = (None, "xla", "cudnn")


def jax_attention(
    q: Array, k: Array, v: Array, mask: Array | None, implementation: Implementation
) -> Array:
    """:func:`jax.nn.dot_product_attention` with its own ``implementation`` and its own
    derivatives (``"cudnn"``: the fused cuDNN kernel and its ``custom_vjp``, which
    does not support forward mode), where :func:`attention_core` carries jaxnet's
    linear JVP rule."""
    with jax.numpy_dtype_promotion("standard"):
        return jax.nn.dot_product_attention(
            q, k, v, mask=mask, implementation=implementation
        )


def multi_head_attention(
    params: Params,
    xq: Array,
    xkv: Array,
    heads: int,
    mask: Array | None,
    implementation: Implementation = None,
) -> Array:
    """MHA forward: ``out(attention(query(xq), key(xkv), value(xkv)))``.

    Each projection is ``x @ w + b`` with ``w: (in, heads * head_dim)``, split into
    ``(heads, head_dim)`` head-major; ``mask`` is ``(batch, heads, q_len, kv_len)``.
    ``implementation`` ``None`` is :func:`attention_core`; ``"xla"`` or ``"cudnn"``
    is :func:`jax_attention`.
    """
    dt = compute_dtype(xq.dtype, xkv.dtype, *(a.dtype for a in jax.tree.leaves(params)))
    q = _heads(dense(params["query"], xq.astype(dt)), heads)
    k = _heads(dense(params["key"], xkv.astype(dt)), heads)
    v = _heads(dense(params["value"], xkv.astype(dt)), heads)
    if implementation is None:
        o = attention_core(q, k, v, mask)
    else:
        o = jax_attention(q, k, v, mask, implementation)
    return dense(params["out"], _merge(o))


def multi_head_attention_vjp(
    params: Params, xq: Array, xkv: Array, heads: int, mask: Array | None, g: Array
) -> tuple[Params, Array, Array]:
    """Backward of :func:`multi_head_attention`.

    Recompute ``q, k, v, O``; then ``d out = dense_vjp(O, g)`` gives ``dO``;
    :func:`attention_core_vjp` gives ``dq, dk, dv``; and each input projection's
    ``dense_vjp`` gives ``dw = x^T dq``, ``db = sum dq``, ``dx = dq w^T``. The input
    gradients are ``dxq = dq wq^T`` and ``dxkv = dk wk^T + dv wv^T`` (summed again
    by the caller for self-attention, where ``xq = xkv = x``).

    Returns:
      ``(dparams, dxq, dxkv)``.
    """
    dt = compute_dtype(xq.dtype, xkv.dtype, *(a.dtype for a in jax.tree.leaves(params)))
    xq, xkv, g = xq.astype(dt), xkv.astype(dt), g.astype(dt)
    q = _heads(dense(params["query"], xq.astype(dt)), heads)
    k = _heads(dense(params["key"], xkv.astype(dt)), heads)
    v = _heads(dense(params["value"], xkv.astype(dt)), heads)
    o = jnp.einsum("bnts,bsnh->btnh", attention_weights(q, k, mask), v)
    d_out, d_o = dense_vjp(params["out"], _merge(o), g)
    dq, dk, dv = attention_core_vjp(q, k, v, mask, _heads(d_o, heads))
    d_query, dxq = dense_vjp(params["query"], xq, _merge(dq))
    d_key, dxk = dense_vjp(params["key"], xkv, _merge(dk))
    d_value, dxv = dense_vjp(params["value"], xkv, _merge(dv))
    grads = {"query": d_query, "key": d_key, "value": d_value, "out": d_out}
    return grads, dxq, dxk + dxv


@constructor
def MultiHeadAttention(
    num_heads: int,
    *,
    qkv_features: int | None = None,
    out_features: int | None = None,
    causal: bool = False,
    use_bias: bool = True,
    dtype: Any = jnp.float32,
    w_init: Callable[..., Array] | None = None,
    b_init: Callable[..., Array] | None = None,
    implementation: Implementation = None,
) -> Layer:
    """Multi-head dot-product attention (self- or cross-attention).

    ::

        q = x_q W_q + b_q,  k = x_kv W_k + b_k,  v = x_kv W_v + b_v   (split into heads)
        O_h = softmax(q_h k_h^T / sqrt(head_dim), masked) v_h
        y = concat_h(O_h) W_out + b_out

    Input ``x: (batch, seq, d)`` (self-attention, ``x_q = x_kv = x``) or a tuple
    ``(x_q, x_kv)`` of ``(batch, q_len, d_q)`` and ``(batch, kv_len, d_kv)``
    (cross-attention). Output ``(batch, q_len, out_features)``.

    Masking: ``apply(..., mask=m)`` with a boolean ``m`` broadcastable to
    ``(batch, heads, q_len, kv_len)``, True = attend (e.g. a padding mask
    ``(batch, 1, 1, kv_len)``); ``causal=True`` also masks keys after the query
    position (``k > q``). Masked positions get zero probability and zero gradient.
    A row with every key masked gets uniform weights (as ``jax.nn`` and Flax).

    Params (plain 2-D kernels; heads are head-major blocks of the columns)::

        {"query": {"w": (d_q, qkv), "b": (qkv,)}, "key": {"w": (d_kv, qkv), ...},
         "value": {"w": (d_kv, qkv), ...}, "out": {"w": (qkv, out), "b": (out,)}}

    Flax's ``MultiHeadDotProductAttention`` kernels are the same numbers reshaped:
    ``query.kernel (d, heads, head_dim) -> (d, qkv)`` and
    ``out.kernel (heads, head_dim, out) -> (qkv, out)``.

    The forward uses :func:`jax.nn.dot_product_attention` up to float32 (float64 takes
    the same formula written out; see :func:`attention_core`). Backward:
    :func:`multi_head_attention_vjp`; for self-attention ``dx = dxq + dxkv``, for
    cross-attention ``dx = (dxq, dxkv)``.

    Args:
      num_heads: number of heads; must divide ``qkv_features``.
      qkv_features: total size of q, k, v over heads (default ``d_q``).
      out_features: output size (default ``d_q``).
      causal: mask future keys (self-attention with ``q_len == kv_len``).
      use_bias: whether the four projections have biases.
      dtype: parameter dtype (default float32).
      w_init: kernel initialiser, default ``lecun_normal()`` (as Flax).
      b_init: bias initialiser, default ``zeros``.
      implementation: ``None`` (default): :func:`attention_core`, whose derivative
        is jaxnet's linear JVP rule (forward and reverse mode, any dtype).
        ``"cudnn"``: :func:`jax.nn.dot_product_attention`'s fused cuDNN kernel on an
        NVIDIA GPU (float16/bfloat16), forward and backward, with JAX's own
        ``custom_vjp`` (so no ``jax.jvp``); ``"xla"``: JAX's XLA formula with
        plain autodiff (its softmax in float32 even for float64 inputs). The
        hand-written backward is the same for all three.

    Returns:
      A :class:`~jaxnet.Layer` named ``"attention"``.

    Raises:
      ShapeError: for inputs that are not rank 3, a feature size that does not match,
        batch sizes that differ, or a mask not broadcastable to
        ``(batch, heads, q_len, kv_len)``.
      DTypeError: for a non-boolean mask or integer inputs.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> mha = jaxnet.MultiHeadAttention(2, causal=True)
      >>> out_shape, params = mha.init(jax.random.key(0), (None, 5, 8))
      >>> out_shape, params["query"]["w"].shape
      ((None, 5, 8), (8, 8))
      >>> mha.apply(params, jnp.ones((1, 5, 8))).shape
      (1, 5, 8)

    References:
      Vaswani et al., "Attention is all you need", 2017.
    """
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(
            f"MultiHeadAttention(num_heads={num_heads!r}): num_heads must be an "
            "integer >= 1."
        )
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"MultiHeadAttention(num_heads={num_heads}, implementation="
            f"{implementation!r}): expected one of {IMPLEMENTATIONS}. Use None "
            "(jaxnet's rule, any device) or 'cudnn' (NVIDIA GPU, float16/bfloat16)."
        )
    w_init = w_init if w_init is not None else initializers.lecun_normal()
    b_init = b_init if b_init is not None else initializers.zeros
    for name, value in (("qkv_features", qkv_features), ("out_features", out_features)):
        if value is not None:
            check_int(
                f"MultiHeadAttention(num_heads={num_heads}, {name}={value!r})",
                name,
                value,
            )
    if qkv_features is not None and qkv_features % num_heads:
        raise ValueError(
            f"MultiHeadAttention(num_heads={num_heads}, qkv_features={qkv_features}): "
            f"qkv_features must be a multiple of num_heads={num_heads}, got "
            f"{qkv_features}. Each head gets qkv_features / num_heads features."
        )
    desc = f"MultiHeadAttention(num_heads={num_heads}"
    if qkv_features is not None:
        desc += f", qkv_features={qkv_features}"
    if out_features is not None:
        desc += f", out_features={out_features}"
    desc += f", causal={causal}"
    if implementation is not None:
        desc += f", implementation={implementation!r}"
    desc += ")"
    proj_names = ["w", "b"] if use_bias else ["w"]

    def _split_shapes(shape: Any) -> tuple[Any, Any, bool]:
        if isinstance(shape, (tuple, list)) and shape and isinstance(shape[0], tuple):
            if len(shape) != 2:
                raise ShapeError(
                    f"{desc}: expected x or a tuple (x_q, x_kv), got a tuple of "
                    f"{len(shape)} inputs."
                )
            return shape[0], shape[1], True
        return shape, shape, False

    def _check_shapes(sq: Any, skv: Any) -> None:
        for what, s in (("query input", sq), ("key/value input", skv)):
            if not (isinstance(s, tuple) and len(s) == 3):
                raise ShapeError(
                    f"{desc}: expected {what} of shape (batch, seq, features), got "
                    f"{fmt_shape(s) if isinstance(s, tuple) else s!r}."
                )
            if s[-1] is None or s[1] is None:
                raise ShapeError(
                    f"{desc}: the seq and feature axes of the {what} must be known, "
                    f"got {fmt_shape(s)}."
                )
        if sq[0] is not None and skv[0] is not None and sq[0] != skv[0]:
            raise ShapeError(
                f"{desc}: query and key/value batch sizes differ: {fmt_shape(sq)} vs "
                f"{fmt_shape(skv)}."
            )

    def _init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        sq, skv, _ = _split_shapes(input_shape)
        _check_shapes(sq, skv)
        qkv = qkv_features if qkv_features is not None else sq[-1]
        out = out_features if out_features is not None else sq[-1]
        if qkv % num_heads:
            raise ShapeError(
                f"{desc}: qkv_features={qkv} is not divisible by num_heads="
                f"{num_heads}. Pick qkv_features as a multiple of num_heads."
            )
        keys = initializers.split(key, 8)
        params: Params = {}
        for i, (name, din, dout) in enumerate(
            [
                ("query", sq[-1], qkv),
                ("key", skv[-1], qkv),
                ("value", skv[-1], qkv),
                ("out", qkv, out),
            ]
        ):
            p = {"w": w_init(keys[2 * i], (din, dout), dtype)}
            if use_bias:
                p["b"] = b_init(keys[2 * i + 1], (dout,), dtype)
            params[name] = p
        return (sq[0], sq[1], out), params

    def _inputs(params: Params, x: Any) -> tuple[Array, Array, bool]:
        for name in ("query", "key", "value", "out"):
            if name in params:
                require_params(f"{desc} ({name})", params[name], proj_names)
        require_params(desc, params, ["query", "key", "value", "out"])
        x = as_inputs(desc, x)
        cross = isinstance(x, tuple)
        if cross:
            if len(x) != 2:
                raise ShapeError(
                    f"{desc}: expected x or a tuple (x_q, x_kv), got a tuple of "
                    f"{len(x)} inputs."
                )
            xq = float_input(desc, x[0], "query input")
            xkv = float_input(desc, x[1], "key/value input")
        else:
            xq = xkv = float_input(desc, x)
        _check_shapes(tuple(xq.shape), tuple(xkv.shape))
        for what, arr, name in (("query", xq, "query"), ("key/value", xkv, "key")):
            d = params[name]["w"].shape[0]
            if arr.shape[-1] != d:
                raise ShapeError(
                    f"{desc}: expected {what} input of shape (batch, seq, {d}), got "
                    f"{tuple(arr.shape)}. The layer was initialised for {d} features."
                )
        return xq, xkv, cross

    def _mask(xq: Array, xkv: Array, mask: Any) -> Array | None:
        target = (xq.shape[0], num_heads, xq.shape[1], xkv.shape[1])
        m = None
        if mask is not None:
            m = jnp.asarray(mask)
            if m.dtype != jnp.bool_:
                raise DTypeError(
                    f"{desc}: expected a boolean mask (True = attend), got {m.dtype}. "
                    "Use e.g. mask=(ids != pad_id)[:, None, None, :]."
                )
            ok = m.ndim <= 4 and all(
                a in (1, b) for a, b in zip(m.shape[::-1], target[::-1])
            )
            if not ok:
                raise ShapeError(
                    f"{desc}: mask of shape {tuple(m.shape)} is not broadcastable to "
                    f"(batch, heads, q_len, kv_len) = {target}. A padding mask is "
                    "(batch, 1, 1, kv_len)."
                )
            m = jnp.broadcast_to(m.reshape((1,) * (4 - m.ndim) + m.shape), target)
        if causal:
            tri = jnp.asarray(np.tril(np.ones(target[2:], bool)))
            tri = jnp.broadcast_to(tri.reshape((1, 1) + tri.shape), target)
            m = tri if m is None else jnp.logical_and(m, tri)
        return m

    def apply(params: Params, x: Any, *, mask: Any = None, **_: Any) -> Array:
        xq, xkv = _inputs(params, x)[:2]
        m = _mask(xq, xkv, mask)
        try:
            return multi_head_attention(params, xq, xkv, num_heads, m, implementation)
        except (RuntimeError, ValueError) as e:
            if implementation != "cudnn":
                raise
            raise RuntimeError(
                f"{desc}: JAX's cuDNN attention refused these inputs ({e}). It "
                "needs an NVIDIA GPU with cuDNN and float16/bfloat16 inputs (e.g. "
                f"compute dtype bfloat16), got {xq.dtype} on {jax.default_backend()}."
                " Use implementation=None (jaxnet's rule) on other devices."
            ) from e

    def backward(
        params: Params, x: Any, y: Array, g: Array, *, mask: Any = None, **_: Any
    ):
        xq, xkv, cross = _inputs(params, x)
        m = _mask(xq, xkv, mask)
        grads, dxq, dxkv = multi_head_attention_vjp(params, xq, xkv, num_heads, m, g)
        if cross:
            return grads, (dxq.astype(xq.dtype), dxkv.astype(xkv.dtype))
        return grads, (dxq + dxkv).astype(xq.dtype)

    return Layer("attention", _init, apply, backward, desc)
