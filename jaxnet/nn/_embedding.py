"""Embeddings: token lookup, learned, sinusoidal and rotary positional embeddings,
each forward beside its hand-written backward."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import DTypeError, ShapeError
from .._types import Array, Params, PRNGKey, ShapeTree
from . import _init as initializers
from ._checks import check_number, float_input
from ._layer import (
    Layer,
    compute_dtype,
    constructor,
    fmt_shape,
    require_params,
    require_rank,
)

# ------------------------------------------------------------------------- Embedding


def _safe_ids(ids: Array, num: int) -> Array:
    """Map negative ids past the end, so that they count as out of range (no wrap)."""
    return jnp.where(ids < 0, jnp.asarray(num, ids.dtype), ids)


def embedding_lookup(params: Params, ids: Array) -> Array:
    """Embedding forward: ``y[..., :] = embedding[ids[...], :]``.

    Out-of-range ids (``< 0`` or ``>= num_embeddings``) give rows of NaN
    (``jnp.take(..., mode="fill", fill_value=nan)``; negative ids do not wrap).
    """
    table = params["embedding"]
    ids = _safe_ids(ids, table.shape[0])
    return jnp.take(table, ids, axis=0, mode="fill", fill_value=jnp.nan)


def embedding_vjp(params: Params, ids: Array, g: Array) -> tuple[Params, None]:
    """Embedding backward for ``y = embedding[ids]``: a scatter-add of ``g`` into rows.

    ::

        d embedding = zeros((num, features)).at[ids].add(g)   (repeated ids sum)
        dx = None                                              (integer input)

    Out-of-range ids contribute nothing (``mode="drop"``), matching the NaN-filled
    forward.

    Args:
      params: ``{"embedding": (num, features)}``.
      ids: integer ids, any shape ``(...)``.
      g: cotangent of ``y``, shape ``(..., features)``.

    Returns:
      ``({"embedding": (num, features)}, None)``.
    """
    table = params["embedding"]
    ids = _safe_ids(ids, table.shape[0])
    d = jnp.zeros(table.shape, g.dtype).at[ids].add(g, mode="drop")
    return {"embedding": d.astype(table.dtype)}, None


def _concrete(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array when it is concrete (eager), ``None`` under tracing."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


@constructor
def Embedding(
    num_embeddings: int,
    features: int,
    *,
    dtype: Any = jnp.float32,
    init: Callable[..., Array] | None = None,
) -> Layer:
    """A lookup table of ``num_embeddings`` vectors of size ``features``.

    ``y[..., :] = embedding[ids[...], :]``: integer ids of any shape ``(...)`` ->
    ``(..., features)``.

    Out-of-range ids (``< 0`` or ``>= num_embeddings``): in eager mode ``apply``
    raises a :class:`ValueError` naming the layer, the valid range and the offending
    min/max. Under ``jit`` the ids are not known, so no check is possible: the forward
    uses ``jnp.take(..., mode="fill", fill_value=nan)`` (as Flax's ``Embed``), so an
    out-of-range id gives a row of NaN (negative ids do not wrap around), and the
    backward drops its gradient.

    Gradient: ids are integers, so there is no gradient w.r.t. the input;
    ``backward`` returns ``dx = None`` (see :func:`embedding_vjp`).

    Args:
      num_embeddings: vocabulary size.
      features: size of each vector.
      dtype: dtype of the table (and of the output); default float32.
      init: initialiser ``(key, shape, dtype)``; default the law of Flax's
        ``Embed`` (``variance_scaling(1.0, "fan_in", "normal", out_axis=0)``),
        normal with std ``1 / sqrt(features)``, drawn on the host
        (``jaxnet.initializers.normal``).

    Returns:
      A :class:`~jaxnet.Layer` named ``"embedding"`` with params
      ``{"embedding": (num_embeddings, features)}``.

    Raises:
      DTypeError: at ``apply`` for non-integer ids.
      ValueError: at ``apply`` (eager) for ids out of range.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> layer = jaxnet.Embedding(10, 3)
      >>> out_shape, params = layer.init(jax.random.key(0), (None, 5))
      >>> out_shape, params["embedding"].shape
      ((None, 5, 3), (10, 3))
      >>> layer.apply(params, jnp.array([[1, 2]])).shape
      (1, 2, 3)
    """
    for n, v in (("num_embeddings", num_embeddings), ("features", features)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(
                f"Embedding(num_embeddings={num_embeddings!r}, features={features!r}):"
                f" {n} must be an integer >= 1."
            )
    init_fn = (
        init
        if init is not None
        else initializers.normal(1.0 / math.sqrt(features))  # Flax's Embed default
    )
    desc = f"Embedding(num_embeddings={num_embeddings}, features={features})"

    def _init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        require_rank(desc, input_shape, 0, "ids")
        params = {"embedding": init_fn(key, (num_embeddings, features), dtype)}
        return tuple(input_shape) + (features,), params

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, ["embedding"])
        ids = jnp.asarray(x)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise DTypeError(
                f"{desc}: expected integer token ids, got {ids.dtype} of shape "
                f"{tuple(ids.shape)}. Cast them first, e.g. ids.astype(jnp.int32)."
            )
        num = params["embedding"].shape[0]
        concrete = _concrete(x)
        if concrete is not None and concrete.size:
            lo, hi = int(concrete.min()), int(concrete.max())
            if lo < 0 or hi >= num:
                raise ValueError(
                    f"{desc}: token ids must be in [0, {num}), got min {lo}, max {hi}. "
                    f"Check the tokenizer's vocabulary size against num_embeddings."
                )
        return embedding_lookup(params, ids)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return embedding_vjp(params, jnp.asarray(x), g)

    return Layer("embedding", _init, apply, backward, desc)


# ------------------------------------------------------------ positional embeddings


def _require_seq_input(desc: str, shape: Any, what: str = "(batch, seq, d)") -> None:
    require_rank(desc, shape, 2)
    if shape[-1] is None or shape[-2] is None:
        raise ShapeError(
            f"{desc}: expected input of shape {what} with known seq and d, got "
            f"{fmt_shape(shape)}. Only batch axes may be None."
        )


def learned_positional_vjp(params: Params, x: Array, g: Array) -> tuple[Params, Array]:
    """Backward of ``y = x + embedding[:seq]`` (broadcast over leading axes).

    ::

        d embedding[:seq] = sum over leading axes of g,  d embedding[seq:] = 0
        dx = g

    Args:
      params: ``{"embedding": (max_len, d)}``.
      x: input ``(..., seq, d)``.
      g: cotangent ``(..., seq, d)``.
    """
    table = params["embedding"]
    seq = x.shape[-2]
    gs = jnp.sum(g.reshape((-1,) + g.shape[-2:]), axis=0)
    d = jnp.zeros(table.shape, gs.dtype).at[:seq].set(gs)
    return {"embedding": d.astype(table.dtype)}, g


@constructor
def LearnedPositionalEmbedding(
    max_len: int,
    *,
    dtype: Any = jnp.float32,
    init: Callable[..., Array] | None = None,
) -> Layer:
    """Adds a learned position table: ``y[..., t, :] = x[..., t, :] + embedding[t]``.

    ``(..., seq, d) -> (..., seq, d)`` for any ``seq <= max_len``; ``d`` is inferred at
    ``init``. Backward: :func:`learned_positional_vjp`.

    Args:
      max_len: the longest sequence; the table is ``(max_len, d)``.
      dtype: parameter dtype (default float32).
      init: initialiser ``(key, shape, dtype)``; default ``normal(0.02)`` (BERT/GPT-2).

    Returns:
      A :class:`~jaxnet.Layer` named ``"pos_embedding"`` with params
      ``{"embedding": (max_len, d)}``.

    Raises:
      ShapeError: when ``seq > max_len`` or ``d`` differs from the table's.

    Examples:
      >>> import jax, jaxnet
      >>> layer = jaxnet.LearnedPositionalEmbedding(16)
      >>> out_shape, params = layer.init(jax.random.key(0), (None, 8, 4))
      >>> out_shape, params["embedding"].shape
      ((None, 8, 4), (16, 4))
    """
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(
            f"LearnedPositionalEmbedding(max_len={max_len!r}): max_len must be an "
            "integer >= 1."
        )
    init_fn = init if init is not None else initializers.normal(0.02)
    desc = f"LearnedPositionalEmbedding(max_len={max_len})"

    def _check_len(seq: int) -> None:
        if seq > max_len:
            raise ShapeError(
                f"{desc}: sequence length {seq} exceeds max_len={max_len}. Build the "
                "layer with a larger max_len or truncate the input."
            )

    def _init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        _require_seq_input(desc, input_shape, "(..., seq, d)")
        _check_len(input_shape[-2])
        return input_shape, {
            "embedding": init_fn(key, (max_len, input_shape[-1]), dtype)
        }

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, ["embedding"])
        x = float_input(desc, x)
        d = params["embedding"].shape[1]
        if x.ndim < 2 or x.shape[-1] != d:
            raise ShapeError(
                f"{desc}: expected input of shape (..., seq, {d}), got "
                f"{tuple(x.shape)}. The layer was initialised for d={d}."
            )
        _check_len(x.shape[-2])
        dt = compute_dtype(x.dtype, params["embedding"].dtype)
        pe = params["embedding"][: x.shape[-2]].astype(dt)
        return x.astype(dt) + pe.reshape((1,) * (x.ndim - 2) + pe.shape)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return learned_positional_vjp(params, x, g)

    return Layer("pos_embedding", _init, apply, backward, desc)


def sinusoidal_table(seq: int, d: int, base: float = 10000.0) -> np.ndarray:
    """The Vaswani et al. (2017) table, float64 NumPy of shape ``(seq, d)``.

    ``PE[t, 2i] = sin(t / base^(2i/d))``, ``PE[t, 2i+1] = cos(t / base^(2i/d))``
    (an odd ``d`` drops the last cosine column).
    """
    half = (d + 1) // 2
    t = np.arange(seq, dtype=np.float64)[:, None]
    freq = base ** (-2.0 * np.arange(half, dtype=np.float64) / d)
    table = np.zeros((seq, 2 * half))
    table[:, 0::2] = np.sin(t * freq)
    table[:, 1::2] = np.cos(t * freq)
    return table[:, :d]


@constructor
def SinusoidalPositionalEmbedding(base: float = 10000.0) -> Layer:
    """Adds the fixed sinusoidal position table of Vaswani et al. (2017); no params.

    ``y[..., t, :] = x[..., t, :] + PE[t]`` with ``PE[t, 2i] = sin(t / base^(2i/d))``
    and ``PE[t, 2i+1] = cos(t / base^(2i/d))`` (:func:`sinusoidal_table`).
    ``(..., seq, d) -> (..., seq, d)``. Backward: ``dx = g`` (the table is constant).

    Args:
      base: the wavelength base (10000 in the paper).

    Returns:
      A parameter-free :class:`~jaxnet.Layer` named ``"sinusoidal_pos"``.

    Raises:
      ShapeError: for inputs of rank < 2.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> y = jaxnet.SinusoidalPositionalEmbedding().apply({}, jnp.zeros((1, 2, 2)))
      >>> y[0, 1].round(4)
      Array([0.8415, 0.5403], dtype=float32)

    References:
      Vaswani et al., "Attention is all you need", 2017, section 3.5.
    """
    check_number(
        f"SinusoidalPositionalEmbedding(base={base!r})",
        "base",
        base,
        above=1,
        fix="The wavelengths grow as base^(2i/d); the usual base is 10000.0.",
    )
    desc = f"SinusoidalPositionalEmbedding(base={base})"

    def _init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        _require_seq_input(desc, input_shape, "(..., seq, d)")
        return input_shape, {}

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, [])
        x = float_input(desc, x)
        _require_seq_input(desc, tuple(x.shape), "(..., seq, d)")
        pe = jnp.asarray(sinusoidal_table(x.shape[-2], x.shape[-1], base), x.dtype)
        return x + pe.reshape((1,) * (x.ndim - 2) + pe.shape)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return {}, g

    return Layer("sinusoidal_pos", _init, apply, backward, desc)


def rotary_tables(seq: int, dim: int, base: float = 10000.0) -> tuple[np.ndarray, ...]:
    """``(cos, sin)`` of shape ``(seq, dim)`` for RoPE, "rotate_half" layout.

    ``theta_i = base^(-2i/dim)`` for ``i < dim/2``, angle ``t * theta_i``, repeated for
    both halves: ``cos[t] = concat(cos(t theta), cos(t theta))`` (likewise sin).
    """
    theta = base ** (-2.0 * np.arange(dim // 2, dtype=np.float64) / dim)
    ang = np.arange(seq, dtype=np.float64)[:, None] * theta
    ang = np.concatenate([ang, ang], axis=-1)
    return np.cos(ang), np.sin(ang)


def _rotate_half(x: Array) -> Array:
    h = x.shape[-1] // 2
    return jnp.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def _rotate_half_t(g: Array) -> Array:
    """Transpose of :func:`_rotate_half`: ``concat(g2, -g1)``."""
    h = g.shape[-1] // 2
    return jnp.concatenate([g[..., h:], -g[..., :h]], axis=-1)


def _rope_cs(x: Array, base: float) -> tuple[Array, Array]:
    seq, dim = x.shape[1], x.shape[-1]
    cos, sin = rotary_tables(seq, dim, base)
    shape = (1, seq) + (1,) * (x.ndim - 3) + (dim,)
    return (
        jnp.asarray(cos, x.dtype).reshape(shape),
        jnp.asarray(sin, x.dtype).reshape(shape),
    )


def rotary(x: Array, base: float = 10000.0) -> Array:
    """RoPE forward: ``y = x * cos + rotate_half(x) * sin`` (positions on axis 1)."""
    cos, sin = _rope_cs(x, base)
    return x * cos + _rotate_half(x) * sin


def rotary_vjp(x: Array, g: Array, base: float = 10000.0) -> Array:
    """RoPE backward: the transposed rotation, ``dx = g cos + rotate_half^T(g) sin``.

    With halves ``x = (x1, x2)``: ``y1 = x1 c - x2 s``, ``y2 = x2 c + x1 s``, so
    ``dx1 = g1 c + g2 s`` and ``dx2 = g2 c - g1 s``, i.e.
    ``rotate_half^T(g) = concat(g2, -g1)``.
    """
    cos, sin = _rope_cs(x, base)
    return g * cos + _rotate_half_t(g) * sin


@constructor
def RotaryEmbedding(base: float = 10000.0) -> Layer:
    """Rotary position embedding (RoPE), GPT-NeoX/LLaMA "rotate_half" convention.

    Feature ``j`` of the first half is rotated together with feature ``j + dim/2``
    (halves, not interleaved pairs): with ``x = (x1, x2)``, position ``t`` and
    ``theta_j = base^(-2j/dim)``::

        y1 = x1 cos(t theta) - x2 sin(t theta)
        y2 = x2 cos(t theta) + x1 sin(t theta)

    i.e. ``y = x * cos + rotate_half(x) * sin``, ``rotate_half(x) = concat(-x2, x1)``.
    Inputs ``(batch, seq, heads, head_dim)`` (rotate each head; the usual place, on
    queries and keys) or ``(batch, seq, d)``; positions are ``0..seq-1`` on axis 1 and
    the last axis (even) is rotated. No params. Backward: :func:`rotary_vjp`.

    Args:
      base: the frequency base (10000 in RoFormer and LLaMA).

    Returns:
      A parameter-free :class:`~jaxnet.Layer` named ``"rotary"``.

    Raises:
      ShapeError: for a rank other than 3 or 4, or an odd last axis.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> x = jnp.ones((1, 2, 2))
      >>> y = jaxnet.RotaryEmbedding().apply({}, x)   # position 1: rotated by 1 rad
      >>> [round(float(v), 4) for v in y[0, 1]]   # (cos 1 - sin 1, cos 1 + sin 1)
      [-0.3012, 1.3818]

    References:
      Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021.
    """
    check_number(
        f"RotaryEmbedding(base={base!r})",
        "base",
        base,
        above=1,
        fix="The wavelengths grow as base^(2j/dim); the usual base is 10000.0.",
    )
    desc = f"RotaryEmbedding(base={base})"

    def _check(shape: tuple) -> None:
        if len(shape) not in (3, 4) or shape[-1] is None or shape[-1] % 2:
            raise ShapeError(
                f"{desc}: expected input of shape (batch, seq, heads, head_dim) or "
                f"(batch, seq, d) with an even last axis, got {fmt_shape(shape)}."
            )

    def _init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        require_rank(desc, input_shape, 3)
        _check(input_shape)
        return input_shape, {}

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, [])
        x = float_input(desc, x)
        _check(tuple(x.shape))
        return rotary(x, base)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return {}, rotary_vjp(x, g, base)

    return Layer("rotary", _init, apply, backward, desc)
