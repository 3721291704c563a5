"""Default initial values, drawn on the host: no XLA program to compile per shape.

Why. An eager ``jax.random`` draw compiles one XLA program per new shape and per
operation (split, the draw, the scaling): building and initialising a three-layer MLP
in a fresh process ran 13 such compiles, 1.7 of its 2.0 s, on the 2-core CPU. The
default initialisers here draw the same distributions with NumPy on the host and put
the result on the device (``jax.device_put`` compiles nothing), so a fresh-process
build + init costs the key and the transfers (``jaxnet.bench.peers.init_times``).

What the values are. A pure function of the key's raw words
(``jax.random.key_data``), the shape and the dtype, and nothing else:

* a sub-key ``i`` of ``key`` (:func:`split`) is the key whose words are
  ``SeedSequence([*words, 2, i]).generate_state(len(words), uint32)``;
* a draw from ``key`` reads the Philox-4x64 bit stream keyed by
  ``SeedSequence([*words, 1]).generate_state(2, uint64)``; 53-bit uniforms from it
  go through Box-Muller (pairs, cosine first) to standard normals, in float64;
  truncation to ``(-2, 2)`` keeps the normals inside in stream order (rejection,
  the exact truncated law); the result is scaled in float64 and rounded once to the
  parameter dtype.

NumPy documents ``SeedSequence`` and the raw ``Philox`` stream as stable across
versions and platforms; the float64 ``log``/``cos``/``sin`` of the host's libm can
differ in the last bit between machines, which moves a float32 value only when it
lies on a rounding boundary. The values do not depend on the accelerator: a GPU and
a CPU run draw the same parameters.

Eager, ``jax.jit`` and ``jax.vmap`` give the same values: under a trace the same
host function runs through ``jax.pure_callback`` (``vmap_method="sequential"``: one
call per key). Only public JAX API is used (``key_data``, ``wrap_key_data``,
``key_impl``, ``pure_callback``, ``device_put``).

These are not JAX's values: ``jax.nn.initializers.lecun_normal()`` with the same
key gives different (identically distributed) numbers. Pass
``w_init=jax.nn.initializers.lecun_normal()`` to a layer to get JAX's, called
exactly as given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ShapeError
from .._types import Array, PRNGKey

__all__ = [
    "lecun_normal",
    "normal",
    "ones",
    "orthogonal",
    "split",
    "split_array",
    "zeros",
]

Initializer = Callable[..., Array]

_DRAW, _SPLIT = 1, 2  # domain tags: a draw and a split never share a seed
_TN_BOUND = 2.0  # lecun_normal truncates the standard normal to (-2, 2), as JAX
_TN_STD = 0.87962566103423978  # stddev of a standard normal truncated to (-2, 2)


# --------------------------------------------------------------------------- keys


def _is_typed(key: Any) -> bool:
    return jax.dtypes.issubdtype(jnp.result_type(key), jax.dtypes.prng_key)


def _words(where: str, key: Any) -> Any:
    """The raw uint32 words of one key: a NumPy array when ``key`` is concrete, a
    traced array under ``jit``/``vmap``."""
    if _is_typed(key):
        if jnp.shape(key) != ():
            raise ShapeError(
                f"{where}: expected one PRNG key, got a key array of shape "
                f"{tuple(jnp.shape(key))}. Pass jax.random.key(seed), or one element "
                "of a split."
            )
        data = jax.random.key_data(key)
    else:
        data = key
        if jnp.ndim(data) != 1 or jnp.result_type(data) != jnp.uint32:
            raise ShapeError(
                f"{where}: expected a PRNG key (jax.random.key(seed), or a legacy "
                f"uint32 key of shape (2,)), got an array of shape "
                f"{tuple(jnp.shape(key))} and dtype {jnp.result_type(key)}."
            )
    if isinstance(data, jax.core.Tracer):
        return data
    return np.asarray(data, dtype=np.uint32)


def _entropy(words: np.ndarray, *tag: int) -> list[int]:
    return [int(w) for w in np.asarray(words).ravel()] + list(tag)


def _split_words(words: np.ndarray, n: int) -> np.ndarray:
    """``(n, *words.shape)`` uint32: the words of the ``n`` sub-keys."""
    words = np.asarray(words, dtype=np.uint32)
    out = np.empty((n, *words.shape), np.uint32)
    for i in range(n):
        state = np.random.SeedSequence(_entropy(words, _SPLIT, i))
        out[i] = state.generate_state(words.size, np.uint32).reshape(words.shape)
    return out


def split_array(key: PRNGKey, num: int) -> PRNGKey:
    """:func:`split`'s ``num`` sub-keys as one key array of shape ``(num,)`` (for
    ``jax.vmap``); eagerly wrapped from host words, no compile."""
    words = _words("jaxnet.initializers.split", key)
    if isinstance(words, jax.core.Tracer):
        out = jax.pure_callback(
            lambda w: _split_words(w, num),
            jax.ShapeDtypeStruct((num, *words.shape), jnp.uint32),
            words,
            vmap_method="sequential",
        )
    else:
        out = _split_words(words, num)
    if _is_typed(key):
        return jax.random.wrap_key_data(out, impl=jax.random.key_impl(key))
    return out if isinstance(out, jax.core.Tracer) else jax.device_put(out)


def split(key: PRNGKey, num: int = 2) -> list[PRNGKey]:
    """``num`` sub-keys of ``key`` for initialisation, computed on the host.

    A list of keys of ``key``'s kind (a typed key gives typed keys of the same
    implementation; a legacy uint32 key gives uint32 keys). Independent of
    ``jax.random.split`` (different values); the same eagerly, under ``jit`` and
    under ``vmap``.

    Examples:
      >>> import jax, jaxnet
      >>> a, b = jaxnet.initializers.split(jax.random.key(0))
      >>> bool((jax.random.key_data(a) != jax.random.key_data(b)).any())
      True
    """
    words = _words("jaxnet.initializers.split", key)
    if isinstance(words, jax.core.Tracer):
        keys = split_array(key, num)
        return [keys[i] for i in range(num)]
    subs = _split_words(words, num)  # wrapped one by one: indexing a key array compiles
    if _is_typed(key):
        impl = jax.random.key_impl(key)
        return [jax.random.wrap_key_data(s, impl=impl) for s in subs]
    return [jax.device_put(s) for s in subs]


# -------------------------------------------------------------------------- draws


def _bits(words: np.ndarray) -> np.random.Philox:
    state = np.random.SeedSequence(_entropy(words, _DRAW))
    return np.random.Philox(key=state.generate_state(2, np.uint64))


def _unit(bits: np.ndarray) -> np.ndarray:
    """53-bit uniforms on (0, 1] (never 0: Box-Muller takes a log)."""
    return ((bits >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53


def _standard_normal(gen: np.random.Philox, n: int) -> np.ndarray:
    pairs = (n + 1) // 2
    b = gen.random_raw(2 * pairs)
    r = np.sqrt(-2.0 * np.log(_unit(b[0::2])))
    t = (2.0 * np.pi) * _unit(b[1::2])
    z = np.empty(2 * pairs)
    z[0::2] = r * np.cos(t)
    z[1::2] = r * np.sin(t)
    return z[:n]


def _truncated_normal(gen: np.random.Philox, n: int, bound: float) -> np.ndarray:
    kept: list[np.ndarray] = []
    have = 0
    while have < n:  # P(|z| < 2) = 0.954: one round nearly always suffices
        need = n - have
        z = _standard_normal(gen, need + need // 16 + 16)
        z = z[np.abs(z) < bound]
        kept.append(z)
        have += z.size
    return np.concatenate(kept)[:n]


def _host(words: np.ndarray, shape: tuple[int, ...], dtype: Any, kind: str, scale):
    """The values of one draw, a NumPy array of ``shape`` and ``dtype``."""
    gen = _bits(words)
    n = math.prod(shape)
    if kind == "truncated_normal":
        z = _truncated_normal(gen, n, _TN_BOUND)
    else:
        z = _standard_normal(gen, n)
    z = z.reshape(shape)
    if kind == "orthogonal":
        cols = shape[-1]
        rows = n // cols
        wide = rows < cols
        q, r = np.linalg.qr(z.reshape((cols, rows) if wide else (rows, cols)))
        q = q * np.sign(np.diag(r))
        z = (q.T if wide else q).reshape(shape)
    return np.asarray(z * scale).astype(dtype)


def _draw(where: str, key: PRNGKey, shape, dtype, kind: str, scale: float) -> Array:
    shape = tuple(int(d) for d in shape)
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{where}: expected a real floating dtype (float32, bfloat16, ...), got "
            f"{dtype}. For complex parameters pass a jax.nn.initializers function "
            "as the layer's initialiser."
        )
    words = _words(where, key)
    if isinstance(words, jax.core.Tracer):
        return jax.pure_callback(
            lambda w: _host(w, shape, dtype, kind, scale),
            jax.ShapeDtypeStruct(shape, dtype),
            words,
            vmap_method="sequential",
        )
    return jax.device_put(_host(words, shape, dtype, kind, scale))


def _fan_in(where: str, shape: tuple[int, ...]) -> int:
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise ShapeError(
            f"{where}: expected a weight shape of rank >= 2, got {shape}. Pass "
            "(in, out) or a kernel shape (*spatial, in, out)."
        )
    return shape[-2] * math.prod(shape[:-2])


def lecun_normal() -> Initializer:
    """LeCun normal, as ``jax.nn.initializers.lecun_normal()``, drawn on the host.

    A standard normal truncated to ``(-2, 2)``, scaled to variance ``1 / fan_in``
    with ``fan_in = shape[-2] * prod(shape[:-2])`` (the input axis times the
    receptive field of a ``(*spatial, in, out)`` kernel). Values: see the module.

    Examples:
      >>> import jax, jaxnet
      >>> w = jaxnet.initializers.lecun_normal()(jax.random.key(0), (512, 256))
      >>> w.shape, round(float(w.std() * 512**0.5), 1)
      ((512, 256), 1.0)
    """

    def init(key: PRNGKey, shape: tuple[int, ...], dtype: Any = jnp.float32):
        where = "jaxnet.initializers.lecun_normal"
        scale = 1.0 / (math.sqrt(_fan_in(where, shape)) * _TN_STD)
        return _draw(where, key, shape, dtype, "truncated_normal", scale)

    return init


def normal(stddev: float = 1e-2) -> Initializer:
    """Normal with mean 0 and ``stddev``, as ``jax.nn.initializers.normal``.

    Examples:
      >>> import jax, jaxnet
      >>> e = jaxnet.initializers.normal(0.02)(jax.random.key(0), (64, 32))
      >>> round(float(e.std()), 2)
      0.02
    """

    def init(key: PRNGKey, shape: tuple[int, ...], dtype: Any = jnp.float32):
        return _draw("jaxnet.initializers.normal", key, shape, dtype, "normal", stddev)

    return init


def orthogonal(scale: float = 1.0) -> Initializer:
    """A (semi-)orthogonal matrix, as ``jax.nn.initializers.orthogonal()``.

    ``Q`` of the QR decomposition of a standard normal matrix, columns signed by
    ``diag(R)`` (the Haar measure); a wide shape gives orthonormal rows. The shape
    is read as ``(prod(shape[:-1]), shape[-1])``, as JAX's ``column_axis=-1``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> q = jaxnet.initializers.orthogonal()(jax.random.key(0), (4, 4))
      >>> bool(jnp.allclose(q.T @ q, jnp.eye(4), atol=1e-6))
      True
    """

    def init(key: PRNGKey, shape: tuple[int, ...], dtype: Any = jnp.float32):
        where = "jaxnet.initializers.orthogonal"
        if len(shape) < 2:
            raise ShapeError(
                f"{where}: expected a shape of rank >= 2, got {tuple(shape)}. Pass "
                "(rows, cols)."
            )
        return _draw(where, key, shape, dtype, "orthogonal", scale)

    return init


def zeros(key: PRNGKey, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    """Zeros, as ``jax.nn.initializers.zeros``: a host array put on the device
    eagerly (``jnp.zeros`` compiles a program per shape); ``jnp.zeros`` under a
    trace."""
    if isinstance(key, jax.core.Tracer):
        return jnp.zeros(shape, dtype)
    return jax.device_put(np.zeros(shape, jnp.dtype(dtype)))


def concatenate(values: list[Array], axis: int = -1) -> Array:
    """Initial values joined along ``axis``: on the host eagerly (``jnp.concatenate``
    compiles a program per shape), ``jnp.concatenate`` under a trace."""
    if any(isinstance(v, jax.core.Tracer) for v in values):
        return jnp.concatenate(values, axis=axis)
    return jax.device_put(np.concatenate([np.asarray(v) for v in values], axis=axis))


def ones(key: PRNGKey, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    """Ones, as ``jax.nn.initializers.ones``; host-built eagerly like :func:`zeros`."""
    if isinstance(key, jax.core.Tracer):
        return jnp.ones(shape, dtype)
    return jax.device_put(np.ones(shape, jnp.dtype(dtype)))
