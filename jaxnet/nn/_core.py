"""Core layers, each with its hand-written backward (VJP) right beside its forward.

Every ``*_vjp`` function here is public through :mod:`jaxnet.analytic`. Elementwise
VJPs take ``(x, y, g)``: the input, the forward output (so ``sigmoid' = y (1 - y)``
costs no extra exp), and the output cotangent.

Conventions at kinks (chosen to match ``jax.grad`` exactly, tested at the points):
relu'(0) = 0; leaky_relu'(0) = 1; elu'(0) = alpha; selu'(0) = scale * alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf

from .._errors import MissingKeyError, ShapeError
from .._types import Array, Params, PRNGKey, ShapeTree
from . import _init as initializers
from ._checks import (
    arg_error,
    as_input,
    check_axis,
    check_axis_arg,
    check_int,
    check_number,
    float_input,
)
from ._layer import (
    Layer,
    compute_dtype,
    constructor,
    fmt_shape,
    matmul_last,
    numel,
    require_params,
    require_rank,
)

# ----------------------------------------------------------------------------- Dense


def dense(params: Params, x: Array) -> Array:
    """Dense forward: ``y = x @ w + b`` over the last axis of ``x``."""
    w = params["w"]
    dt = compute_dtype(x.dtype, *(p.dtype for p in params.values()))
    y = matmul_last(x.astype(dt), w.astype(dt))
    if "b" in params:
        b = params["b"].astype(dt)
        y = y + b.reshape((1,) * (y.ndim - 1) + b.shape)  # explicit rank: no promotion
    return y


def dense_vjp(params: Params, x: Array, g: Array) -> tuple[Params, Array]:
    """Dense backward for ``y = x @ w + b``.

    With leading axes flattened (``x: (n, in)``, ``g: (n, out)``)::

        dw = x^T g          (in, out)
        db = sum_n g        (out,)
        dx = g w^T          (n, in)

    Args:
      params: ``{"w": (in, out), "b": (out,)}`` (``b`` optional).
      x: input, shape ``(..., in)``.
      g: cotangent of ``y``, shape ``(..., out)``.

    Returns:
      ``(dparams, dx)`` with ``dparams`` shaped like ``params``.
    """
    w = params["w"]
    x2 = x.reshape(-1, x.shape[-1])
    g2 = g.reshape(-1, g.shape[-1])
    grads = {"w": jnp.dot(x2.T, g2).astype(w.dtype)}
    if "b" in params:
        grads["b"] = jnp.sum(g2, axis=0).astype(params["b"].dtype)
    dx = jnp.dot(g, w.T.astype(g.dtype)).astype(x.dtype)
    return grads, dx


@constructor
def Dense(
    out_dim: int,
    *,
    w_init: Callable[..., Array] | None = None,
    b_init: Callable[..., Array] | None = None,
    use_bias: bool = True,
    dtype: Any = jnp.float32,
) -> Layer:
    """A fully connected layer, ``y = x @ w + b``, acting on the last axis.

    ``(..., in_dim) -> (..., out_dim)``; ``in_dim`` is inferred at ``init``.

    Args:
      out_dim: number of output features.
      w_init: a ``jax.nn.initializers`` function ``(key, shape, dtype)``, called
        as given; default ``jaxnet.initializers.lecun_normal()`` (Flax's law,
        drawn on the host: no compile; not JAX's numbers for the same key).
      b_init: likewise for the bias; default ``zeros``.
      use_bias: whether to add ``b``.
      dtype: parameter dtype (default float32). The product is computed in the wider
        of the input and parameter dtypes.

    Returns:
      A :class:`~jaxnet.Layer` named ``"dense"`` with params ``{"w": (in_dim,
      out_dim), "b": (out_dim,)}`` and an analytic backward (:func:`dense_vjp`).

    Raises:
      ShapeError: at ``init``/``apply`` when the input's last axis does not match.
      DTypeError: at ``apply`` for integer inputs.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> layer = jaxnet.Dense(2, w_init=jax.nn.initializers.ones)
      >>> _, params = layer.init(jax.random.key(0), (None, 3))
      >>> layer.apply(params, jnp.ones((1, 3)))
      Array([[3., 3.]], dtype=float32)
    """
    check_int(f"Dense(out_dim={out_dim!r})", "out_dim", out_dim)
    w_init = w_init if w_init is not None else initializers.lecun_normal()
    b_init = b_init if b_init is not None else initializers.zeros
    desc = f"Dense(out_dim={out_dim})"
    names = ["w", "b"] if use_bias else ["w"]

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        require_rank(desc, input_shape, 1)
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ShapeError(
                f"{desc}: the last axis of the input must be known, got "
                f"{fmt_shape(input_shape)}. Only batch axes may be None."
            )
        kw, kb = initializers.split(key)
        params = {"w": w_init(kw, (in_dim, out_dim), dtype)}
        if use_bias:
            params["b"] = b_init(kb, (out_dim,), dtype)
        return tuple(input_shape[:-1]) + (out_dim,), params

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, names)
        x = float_input(desc, x)
        in_dim = params["w"].shape[0]
        if x.ndim < 1 or x.shape[-1] != in_dim:
            raise ShapeError(
                f"{desc}: expected input of shape (..., {in_dim}), got "
                f"{tuple(x.shape)}. The layer was initialised for in_dim={in_dim}."
            )
        return dense(params, x)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return dense_vjp(params, x, g)

    return Layer("dense", init, apply, backward, desc)


# ----------------------------------------------------------------------- activations


def _activation(
    name: str,
    desc: str,
    fwd: Callable[[Array], Array],
    vjp: Callable[..., Array],
    axis: int | None = None,
) -> Layer:
    """An elementwise (or, with ``axis``, along-an-axis) parameter-free layer.

    Float input only (the rule of :mod:`jaxnet.nn._checks`); ``axis`` must exist in it.
    """

    def check_shape(shape: Any) -> None:
        if axis is not None:
            check_axis(desc, axis, len(shape))

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        require_rank(desc, input_shape, 0)
        check_shape(input_shape)
        return input_shape, {}

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, [])
        x = float_input(desc, x)
        check_shape(x.shape)
        return fwd(x)

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return {}, vjp(x, y, g)

    return Layer(name, init, apply, backward, desc)


def relu_vjp(x: Array, y: Array, g: Array) -> Array:
    """relu'(x) = 1 if x > 0 else 0 (0 at the kink x = 0, as ``jax.nn.relu``)."""
    return jnp.where(x > 0, g, jnp.zeros_like(g))


@constructor
def Relu() -> Layer:
    """Rectified linear unit, ``max(x, 0)``. Backward: :func:`relu_vjp`."""
    return _activation("relu", "Relu()", jax.nn.relu, relu_vjp)


def sigmoid_vjp(x: Array, y: Array, g: Array) -> Array:
    """sigmoid'(x) = s (1 - s) with s = sigmoid(x) = y: ``dx = g y (1 - y)``."""
    return g * y * (1 - y)


@constructor
def Sigmoid() -> Layer:
    """Logistic sigmoid, ``1 / (1 + exp(-x))``. Backward: :func:`sigmoid_vjp`."""
    return _activation("sigmoid", "Sigmoid()", jax.nn.sigmoid, sigmoid_vjp)


def tanh_vjp(x: Array, y: Array, g: Array) -> Array:
    """tanh'(x) = 1 - tanh(x)^2 = 1 - y^2: ``dx = g (1 - y^2)``."""
    return g * (1 - y * y)


@constructor
def Tanh() -> Layer:
    """Hyperbolic tangent. Backward: :func:`tanh_vjp`."""
    return _activation("tanh", "Tanh()", jnp.tanh, tanh_vjp)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def gelu_exact_vjp(x: Array, y: Array, g: Array) -> Array:
    """gelu(x) = x Phi(x); gelu'(x) = Phi(x) + x phi(x).

    Phi(x) = (1 + erf(x / sqrt 2)) / 2, phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
    """
    cdf = 0.5 * (1 + erf(x / math.sqrt(2.0)))
    pdf = jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return g * (cdf + x * pdf)


def gelu_tanh_vjp(x: Array, y: Array, g: Array) -> Array:
    """gelu_tanh(x) = x (1 + tanh u) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3).

    gelu_tanh'(x) = (1 + t) / 2 + x (1 - t^2) / 2 * sqrt(2/pi) (1 + 3 * 0.044715 x^2),
    with t = tanh u.
    """
    t = jnp.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x * x * x))
    du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x * x)
    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)


@constructor
def Gelu(approximate: bool = False) -> Layer:
    """Gaussian error linear unit, ``x Phi(x)``.

    Args:
      approximate: False (default) for the exact erf form; True for the tanh
        approximation of Hendrycks & Gimpel (GPT-2's).

    Backward: :func:`gelu_exact_vjp` or :func:`gelu_tanh_vjp`.
    """
    vjp = gelu_tanh_vjp if approximate else gelu_exact_vjp
    return _activation(
        "gelu",
        f"Gelu(approximate={approximate})",
        lambda x: jax.nn.gelu(x, approximate=approximate),
        vjp,
    )


def silu_vjp(x: Array, y: Array, g: Array) -> Array:
    """silu(x) = x s(x); silu'(x) = s (1 + x (1 - s)), s = sigmoid(x)."""
    s = jax.nn.sigmoid(x)
    return g * s * (1 + x * (1 - s))


@constructor
def Silu() -> Layer:
    """Sigmoid linear unit (swish), ``x sigmoid(x)``. Backward: :func:`silu_vjp`."""
    return _activation("silu", "Silu()", jax.nn.silu, silu_vjp)


def softplus_vjp(x: Array, y: Array, g: Array) -> Array:
    """softplus(x) = log(1 + e^x); softplus'(x) = sigmoid(x)."""
    return g * jax.nn.sigmoid(x)


@constructor
def Softplus() -> Layer:
    """``log(1 + exp(x))``, computed stably. Backward: :func:`softplus_vjp`."""
    return _activation("softplus", "Softplus()", jax.nn.softplus, softplus_vjp)


def leaky_relu_vjp(x: Array, y: Array, g: Array, negative_slope: float = 0.01) -> Array:
    """leaky_relu'(x) = 1 if x >= 0 else negative_slope (1 at x = 0, as jax)."""
    return jnp.where(x >= 0, g, negative_slope * g)


@constructor
def LeakyRelu(negative_slope: float = 0.01) -> Layer:
    """``x if x >= 0 else negative_slope * x``. Backward: :func:`leaky_relu_vjp`."""
    check_number(
        f"LeakyRelu(negative_slope={negative_slope!r})",
        "negative_slope",
        negative_slope,
    )
    return _activation(
        "leaky_relu",
        f"LeakyRelu(negative_slope={negative_slope})",
        lambda x: jax.nn.leaky_relu(x, negative_slope),
        lambda x, y, g: leaky_relu_vjp(x, y, g, negative_slope),
    )


def elu_vjp(x: Array, y: Array, g: Array, alpha: float = 1.0) -> Array:
    """elu'(x) = 1 if x > 0 else alpha e^x (alpha at x = 0, as jax)."""
    neg = alpha * jnp.exp(jnp.where(x > 0, jnp.zeros_like(x), x))
    return jnp.where(x > 0, g, g * neg)


@constructor
def Elu(alpha: float = 1.0) -> Layer:
    """``x if x > 0 else alpha (e^x - 1)``. Backward: :func:`elu_vjp`."""
    check_number(f"Elu(alpha={alpha!r})", "alpha", alpha)
    return _activation(
        "elu",
        f"Elu(alpha={alpha})",
        lambda x: jax.nn.elu(x, alpha),
        lambda x, y, g: elu_vjp(x, y, g, alpha),
    )


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu_vjp(x: Array, y: Array, g: Array) -> Array:
    """selu(x) = scale elu(x, alpha); selu'(x) = scale * (1 if x > 0 else alpha e^x)."""
    return SELU_SCALE * elu_vjp(x, y, g, SELU_ALPHA)


@constructor
def Selu() -> Layer:
    """Scaled ELU (Klambauer et al. 2017). Backward: :func:`selu_vjp`."""
    return _activation("selu", "Selu()", jax.nn.selu, selu_vjp)


def softmax_vjp(x: Array, y: Array, g: Array, axis: int = -1) -> Array:
    """Softmax backward with s = softmax(x) = y: ``dx = s * (g - sum(g * s, axis))``.

    (The Jacobian is diag(s) - s s^T.)
    """
    return y * (g - jnp.sum(g * y, axis=axis, keepdims=True))


@constructor
def Softmax(axis: int = -1) -> Layer:
    """``exp(x) / sum(exp(x), axis)``, computed stably. Backward: :func:`softmax_vjp`."""
    check_axis_arg(f"Softmax(axis={axis!r})", "axis", axis)
    return _activation(
        "softmax",
        f"Softmax(axis={axis})",
        lambda x: jax.nn.softmax(x, axis=axis),
        lambda x, y, g: softmax_vjp(x, y, g, axis),
        axis,
    )


def log_softmax_vjp(x: Array, y: Array, g: Array, axis: int = -1) -> Array:
    """Log-softmax backward: ``dx = g - softmax(x) * sum(g, axis)``, softmax = e^y."""
    return g - jnp.exp(y) * jnp.sum(g, axis=axis, keepdims=True)


@constructor
def LogSoftmax(axis: int = -1) -> Layer:
    """``x - logsumexp(x, axis)``. Backward: :func:`log_softmax_vjp`."""
    check_axis_arg(f"LogSoftmax(axis={axis!r})", "axis", axis)
    return _activation(
        "log_softmax",
        f"LogSoftmax(axis={axis})",
        lambda x: jax.nn.log_softmax(x, axis=axis),
        lambda x, y, g: log_softmax_vjp(x, y, g, axis),
        axis,
    )


# ------------------------------------------------------------------- shape layers


def reshape_vjp(x: Array, y: Array, g: Array) -> Array:
    """Reshape backward: ``dx = g.reshape(x.shape)`` (a reshape is a permutation-free
    relabelling of the same elements)."""
    return g.reshape(jnp.shape(x))


@constructor
def Flatten() -> Layer:
    """Flatten all axes but the first (batch): ``(n, d1, ..., dk) -> (n, d1 * ... * dk)``.

    Backward: :func:`reshape_vjp`.

    Examples:
      >>> import jax, jaxnet
      >>> jaxnet.Flatten().init(jax.random.key(0), (None, 8, 8, 1))
      ((None, 64), {})
    """
    desc = "Flatten()"

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        require_rank(desc, input_shape, 1)
        rest = numel(tuple(input_shape[1:]))
        if rest is None:
            raise ShapeError(
                f"{desc}: only the first (batch) axis may be free, got "
                f"{fmt_shape(input_shape)}."
            )
        return (input_shape[0], rest), {}

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, [])
        x = as_input(desc, x)
        if x.ndim < 1:
            raise ShapeError(f"{desc}: expected input of rank >= 1, got a scalar.")
        # Explicit sizes, no -1: a zero-size batch leaves -1 undetermined.
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return {}, reshape_vjp(x, y, g)

    return Layer("flatten", init, apply, backward, desc)


@constructor
def Reshape(shape: tuple[int, ...]) -> Layer:
    """Reshape every example, keeping the first (batch) axis: ``(n, ...) -> (n, *shape)``.

    One entry of ``shape`` may be ``-1``. Backward: :func:`reshape_vjp`.

    Args:
      shape: the per-example target shape.

    Examples:
      >>> import jax, jaxnet
      >>> jaxnet.Reshape((8, 8, 1)).init(jax.random.key(0), (None, 64))
      ((None, 8, 8, 1), {})
    """
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape
    ):
        raise arg_error(
            f"Reshape(shape={shape!r})",
            "shape",
            shape,
            "a tuple of ints (the per-example shape), e.g. (8, 8, 1)",
        )
    shape = tuple(int(d) for d in shape)
    desc = f"Reshape(shape={shape})"
    if sum(d == -1 for d in shape) > 1 or any(d < -1 for d in shape):
        raise ValueError(f"{desc}: at most one -1 and no other negative sizes allowed.")
    if -1 in shape and 0 in shape:
        raise ValueError(
            f"{desc}: shape with a 0 size must not have a -1 (its size is "
            f"undetermined), got {shape}. Give every size."
        )

    def target(rest: int) -> tuple[int, ...]:
        known = math.prod(d for d in shape if d != -1)
        if -1 in shape:
            if known == 0 or rest % known:
                raise ShapeError(
                    f"{desc}: cannot reshape {rest} elements per example into {shape}."
                )
            return tuple(rest // known if d == -1 else d for d in shape)
        if known != rest:
            raise ShapeError(
                f"{desc}: expected {known} elements per example, got {rest}. "
                "The per-example shape must keep the number of elements."
            )
        return shape

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        require_rank(desc, input_shape, 1)
        rest = numel(tuple(input_shape[1:]))
        if rest is None:
            raise ShapeError(
                f"{desc}: only the first (batch) axis may be free, got "
                f"{fmt_shape(input_shape)}."
            )
        return (input_shape[0],) + target(rest), {}

    def apply(params: Params, x: Any, **_: Any) -> Array:
        require_params(desc, params, [])
        x = as_input(desc, x)
        if x.ndim < 1:
            raise ShapeError(f"{desc}: expected input of rank >= 1, got a scalar.")
        return x.reshape((x.shape[0],) + target(math.prod(x.shape[1:])))

    def backward(params: Params, x: Array, y: Array, g: Array, **_: Any):
        return {}, reshape_vjp(x, y, g)

    return Layer("reshape", init, apply, backward, desc)


# ------------------------------------------------------------------ lifted function


@constructor
def Lambda(
    fn: Callable[[Array], Array],
    *,
    name: str = "lambda",
    backward: Callable[[Array, Array, Array], Array] | None = None,
) -> Layer:
    """Lift a plain parameter-free function ``fn(x) -> y`` into a layer.

    The output shape is inferred with ``jax.eval_shape`` (a free batch axis is probed
    with size 1 and reported as free again).

    Args:
      fn: a pure function of one array.
      name: the parameter-key stem (``"lambda"`` gives ``lambda_3`` in a serial).
      backward: optional hand-written VJP ``backward(x, y, g) -> dx``; without it the
        model still trains with ``jax.grad`` but has no analytic gradient.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> square = jaxnet.Lambda(jnp.square, name="square",
      ...                        backward=lambda x, y, g: 2 * x * g)
      >>> square.init(jax.random.key(0), (None, 3))
      ((None, 3), {})
    """
    fname = getattr(fn, "__name__", type(fn).__name__)
    desc = f"Lambda(fn={fname})"

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        def probe(s: Any) -> Any:
            if isinstance(s, tuple) and all(d is None or isinstance(d, int) for d in s):
                return jax.ShapeDtypeStruct(
                    tuple(1 if d is None else d for d in s), jnp.float32
                )
            return tuple(probe(e) for e in s)

        out = jax.eval_shape(fn, probe(input_shape))
        free = isinstance(input_shape, tuple) and input_shape[:1] == (None,)

        def unprobe(o: Any) -> Any:
            s = tuple(o.shape)
            return (None,) + s[1:] if free and s[:1] == (1,) else s

        return jax.tree.map(unprobe, out), {}

    def apply(params: Params, x: Any, **_: Any) -> Any:
        require_params(desc, params, [])
        return fn(x)

    bwd = None
    if backward is not None:

        def bwd(params: Params, x: Array, y: Array, g: Array, **_: Any):
            return {}, backward(x, y, g)

    return Layer(name, init, apply, bwd, desc)


# ------------------------------------------------------------------------- Dropout


def dropout_mask(key: PRNGKey, drop_rate: float, shape: tuple[int, ...]) -> Array:
    """The keep-mask of :func:`Dropout`: True where an element is kept."""
    return jax.random.bernoulli(key, 1.0 - drop_rate, shape)


def dropout_vjp(mask: Array, drop_rate: float, g: Array) -> Array:
    """Dropout backward: ``dx = g * mask / (1 - drop_rate)``."""
    return jnp.where(mask, g / (1.0 - drop_rate), jnp.zeros_like(g))


@constructor
def Dropout(drop_rate: float) -> Layer:
    """Inverted dropout: zero each element with probability ``drop_rate`` in training.

    ``drop_rate`` is the probability of *zeroing* (unlike stax's ``Dropout(rate)``,
    where ``rate`` is the keep probability). Kept elements are scaled by
    ``1 / (1 - drop_rate)`` so the expectation is unchanged. In evaluation
    (``train=False``, the default) it is the identity.

    Call for training as ``model.apply(params, x, train=True, key=key)``.

    Args:
      drop_rate: probability in [0, 1) that an element is zeroed.

    Raises:
      ValueError: at construction for ``drop_rate`` outside [0, 1).
      MissingKeyError: at ``apply`` with ``train=True`` and no ``key``.
    """
    if not (isinstance(drop_rate, (int, float)) and 0.0 <= drop_rate < 1.0):
        raise ValueError(
            f"Dropout(drop_rate={drop_rate!r}): drop_rate is the probability of zeroing "
            "an element and must lie in [0, 1)."
        )
    desc = f"Dropout(drop_rate={drop_rate})"

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        return input_shape, {}

    def _mask(key: PRNGKey | None, x: Array) -> Array:
        if key is None:
            raise MissingKeyError(
                f"{desc}: training mode needs a PRNG key. Call "
                "model.apply(params, x, train=True, key=jax.random.key(0)) with a "
                "fresh key each step (jax.random.split), or pass train=False to "
                "evaluate."
            )
        return dropout_mask(key, drop_rate, jnp.shape(x))

    def apply(
        params: Params,
        x: Any,
        *,
        key: PRNGKey | None = None,
        train: bool = False,
        **_: Any,
    ) -> Array:
        require_params(desc, params, [])
        x = float_input(desc, x)
        if not train or drop_rate == 0.0:
            return x
        return jnp.where(_mask(key, x), x / (1.0 - drop_rate), jnp.zeros_like(x))

    def backward(
        params: Params,
        x: Array,
        y: Array,
        g: Array,
        *,
        key: PRNGKey | None = None,
        train: bool = False,
        **_: Any,
    ):
        if not train or drop_rate == 0.0:
            return {}, g
        return {}, dropout_vjp(_mask(key, x), drop_rate, g)

    return Layer("dropout", init, apply, backward, desc)
