"""The layer contract: ``Layer(name, init, apply)`` and the shape helpers.

A :class:`Layer` is a small frozen record of pure functions. It holds no arrays, so it
is hashable and can be a static argument of ``jax.jit``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._errors import DTypeError, ParamsError, ShapeError
from ._types import ApplyFn, BackwardFn, InitFn, Params, PRNGKey, ShapeTree


def _is_shape(s: Any) -> bool:
    return isinstance(s, (tuple, list)) and all(
        d is None or isinstance(d, (int, np.integer)) for d in s
    )


def normalize_shape(s: Any) -> ShapeTree:
    """Turn a shape, an example array, or a tuple of either into canonical form.

    ``-1`` becomes ``None`` (a free axis); arrays and ``jax.ShapeDtypeStruct`` give
    their shape; tuples of shapes stay tuples (inputs of ``parallel`` and fan-ins).

    Raises:
      ShapeError: for negative sizes other than ``-1`` or for unsupported objects.
    """
    if hasattr(s, "shape") and hasattr(s, "dtype"):
        return tuple(int(d) for d in s.shape)
    if _is_shape(s):
        out = []
        for d in s:
            if d is None or int(d) == -1:
                out.append(None)
            elif int(d) < 0:
                raise ShapeError(
                    f"invalid shape {tuple(s)}: sizes must be >= 0, or None/-1 for a "
                    "free (batch) axis."
                )
            else:
                out.append(int(d))
        return tuple(out)
    if isinstance(s, (tuple, list)):
        return tuple(normalize_shape(e) for e in s)
    raise ShapeError(
        f"expected a shape such as (None, 784), an example array, or a tuple of "
        f"those; got {type(s).__name__}: {s!r}."
    )


#: While ``jaxnet.summary`` runs: the list it records ``(path, desc, out_shape,
#: params)`` into, and the parameter path of the layer being initialised.
_RECORD: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "jaxnet_summary_record", default=None
)
_PATH: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "jaxnet_summary_path", default=()
)
#: While ``jaxnet.testing.check_model`` records: the list every layer's ``apply``
#: appends ``(path, layer, params, x, options)`` to (concrete calls only: a call under
#: a trace, e.g. inside ``Stack``'s scan, is checked as part of its parent).
_CALLS: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "jaxnet_check_model_calls", default=None
)


def _recording() -> bool:
    return _RECORD.get() is not None or _CALLS.get() is not None


def _concrete(tree: Any) -> bool:
    return not any(isinstance(l, jax.core.Tracer) for l in jax.tree.leaves(tree))


def _wrap_apply(raw: Any, owner: list[Any]) -> Any:
    def apply(params: Params, x: Any, **kwargs: Any) -> Any:
        calls = _CALLS.get()
        if calls is not None and _concrete((params, x)):
            calls.append((_PATH.get(), owner[0], params, x, dict(kwargs)))
        return raw(params, x, **kwargs)

    apply.__wrapped__ = raw  # type: ignore[attr-defined]
    apply.__jaxnet_apply__ = True  # type: ignore[attr-defined]
    return apply


def _wrap_init(raw: InitFn, desc: str = "") -> InitFn:
    def init(key: PRNGKey, input_shape: Any) -> tuple[ShapeTree, Params]:
        try:
            shape = normalize_shape(input_shape)
        except ShapeError as exc:  # name the layer whose init got the bad shape
            raise ShapeError(f"{desc}.init: {exc}" if desc else str(exc)) from None
        out_shape, params = raw(key, shape)
        record = _RECORD.get()
        if record is not None:
            record.append((_PATH.get(), desc, out_shape, params))
        return out_shape, params

    init.__wrapped__ = raw  # type: ignore[attr-defined]
    return init


@dataclasses.dataclass(frozen=True)
class Layer:
    """A layer: a name and two pure functions, ``init`` and ``apply``.

    The contract::

        out_shape, params = layer.init(key, input_shape)   # or an example input
        y = layer.apply(params, x, *, key=None, **options)

    * ``input_shape`` may use ``None`` or ``-1`` for a free (batch) axis; an example
      array is accepted in place of a shape. ``init`` infers ``out_shape`` without
      running the layer.
    * ``params`` is a nested dict of arrays only (``{"w": ..., "b": ...}``); sizes and
      initialisers live in the closure, never in ``params``.
    * ``apply`` is pure. Randomness is explicit and keyword-only (``key=``); options
      such as ``train=True`` are keyword-only and passed to every sub-layer, and a layer
      ignores the options it does not use.
    * ``backward`` (optional) is the layer's hand-written vector-Jacobian product,
      ``backward(params, x, y, g, *, key=None, **options) -> (dparams, dx)`` where
      ``y = apply(params, x)`` and ``g`` is the cotangent of ``y``. It is what
      :mod:`jaxnet.analytic` uses; every built-in layer has one.
    * ``desc`` is the human-readable constructor call, used in error messages.

    **State** (one design, used by every stateful layer and threaded through every
    combinator): a layer with running statistics (``BatchNorm``) has ``init_state``,
    ``init_state(input_shape) -> (output_shape, state)``, and is *stateful*
    (``layer.stateful``). Its ``apply`` takes the state as a keyword and returns the
    new one beside the output::

        out_shape, params = model.init(key, input_shape)
        _, state = model.init_state(input_shape)
        y, state = model.apply(params, x, state=state, train=True)   # updates state
        y, _ = model.apply(params, x, state=state)                   # evaluation

    ``state`` is a nested dict of arrays keyed like ``params`` but holding only the
    stateful layers' entries; it is never differentiated (keep it out of ``jax.grad``:
    return it as auxiliary output). A combinator is stateful iff one of its
    sub-layers is; a model without stateful layers never sees state: its ``apply``
    returns the output alone and takes no ``state``. The backward of a stateful layer
    takes the same ``state=`` and options as its ``apply`` and differentiates the
    output only.

    Args:
      name: the stem of the parameter key when the layer sits in a combinator
        (``"dense"`` becomes ``"dense_0"``).
      init: ``init(key, input_shape) -> (output_shape, params)``.
      apply: ``apply(params, x, *, key=None, **options) -> y``.
      backward: optional hand-written VJP, see above.
      desc: the constructor call for messages, e.g. ``"Dense(out_dim=16)"``.
      init_state: for stateful layers only, ``init_state(input_shape) ->
        (output_shape, state)``.

    Examples:
      >>> import jax, jaxnet
      >>> layer = jaxnet.Dense(4)
      >>> out_shape, params = layer.init(jax.random.key(0), (None, 3))
      >>> out_shape, params["w"].shape
      ((None, 4), (3, 4))
    """

    name: str
    init: InitFn
    apply: ApplyFn
    backward: BackwardFn | None = None
    desc: str = ""
    init_state: Callable[..., tuple[ShapeTree, Params]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(
                f"Layer name must be a non-empty string without '/', got {self.name!r}."
            )
        if not self.desc:
            object.__setattr__(self, "desc", self.name)
        if getattr(self.init, "__wrapped__", None) is None:
            object.__setattr__(self, "init", _wrap_init(self.init, self.desc))
        if not getattr(self.apply, "__jaxnet_apply__", False):
            owner: list[Any] = []
            object.__setattr__(self, "apply", _wrap_apply(self.apply, owner))
            owner.append(self)

    @property
    def stateful(self) -> bool:
        """True when the layer (or a sub-layer) keeps state such as running statistics."""
        return self.init_state is not None

    def __call__(self, params: Params, x: Any, **kwargs: Any) -> Any:
        """Shorthand for ``self.apply(params, x, **kwargs)``."""
        return self.apply(params, x, **kwargs)

    def __repr__(self) -> str:
        return self.desc


# --------------------------------------------------------------------------- helpers


def fmt_shape(s: Any) -> str:
    """Render a shape with ``None`` for free axes: ``(None, 3)``."""
    return str(tuple(s)) if _is_shape(s) else str(s)


def require_rank(desc: str, shape: Any, min_rank: int, what: str = "input") -> None:
    """Raise :class:`ShapeError` unless ``shape`` is a single shape of rank >= min_rank."""
    if not _is_shape(shape):
        raise ShapeError(
            f"{desc}: expected a single {what} shape, got {shape!r}. A tuple of inputs "
            "goes to parallel(...) or a fan-in layer."
        )
    if len(shape) < min_rank:
        raise ShapeError(
            f"{desc}: expected {what} of rank >= {min_rank}, got shape "
            f"{fmt_shape(shape)}."
        )


def require_float(desc: str, x: Any, what: str = "input") -> jax.Array:
    """Return ``x`` as an array, raising :class:`DTypeError` unless it is inexact."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise DTypeError(
            f"{desc}: expected a floating-point {what}, got {x.dtype} of shape "
            f"{tuple(x.shape)}. Cast it first, e.g. x.astype(jnp.float32)."
        )
    return x


def compute_dtype(*dtypes: Any) -> jnp.dtype:
    """The widest inexact dtype among ``dtypes`` (complex wins over real).

    Explicit, so that layers work under ``jax_numpy_dtype_promotion="strict"`` and so
    that a complex-step probe (complex input, real weights) is carried through.
    """
    dts = [jnp.dtype(d) for d in dtypes]
    bits = max(jnp.finfo(d).bits for d in dts)
    if any(jnp.issubdtype(d, jnp.complexfloating) for d in dts):
        return jnp.dtype(f"complex{2 * bits}")
    # bfloat16 and float16 both have 16 bits: keep the first one given.
    for d in dts:
        if jnp.finfo(d).bits == bits:
            return d
    raise AssertionError("unreachable")


def numel(shape: tuple[int | None, ...]) -> int | None:
    """Product of the sizes, or ``None`` when any is free."""
    if any(d is None for d in shape):
        return None
    return math.prod(shape)


@contextlib.contextmanager
def in_sublayer(combinator: str, key: str, *, nest: bool = True) -> Iterator[None]:
    """Add ``(in <combinator> layer '<key>')`` to any exception raised inside.

    While :func:`jaxnet.summary` records, it also extends the current parameter path
    by ``key`` (unless ``nest=False``: a residual's branch shares its path).
    """
    token = _PATH.set(_PATH.get() + (key,)) if nest and _recording() else None
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        exc.add_note(f"(in {combinator} layer '{key}')")
        raise
    finally:
        if token is not None:
            _PATH.reset(token)


def require_params(desc: str, params: Any, expected: list[str]) -> None:
    """Raise :class:`ParamsError` unless ``params`` is a dict with exactly these keys."""
    if not isinstance(params, dict):
        raise ParamsError(
            f"{desc}: expected params to be a dict with keys {expected}, got "
            f"{type(params).__name__}. Pass the params returned by this model's init."
        )
    got = sorted(params)
    if got != sorted(expected):
        missing = sorted(set(expected) - set(params))
        extra = sorted(set(params) - set(expected))
        raise ParamsError(
            f"{desc}: params do not match the model: missing {missing}, unexpected "
            f"{extra}. Pass the params returned by this model's init."
        )


def no_backward(layer: Layer) -> BackwardFn:
    """A ``backward`` that raises, for layers without a hand-written gradient."""

    def backward(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{layer.desc}: this layer has no hand-written backward. Pass backward=... "
            "when you build it, or use jax.grad."
        )

    return backward


def output_shape(layer: Layer, input_shape: ShapeTree) -> ShapeTree:
    """The output shape of ``layer`` for ``input_shape``, without creating parameters.

    ``init`` is traced under ``jax.eval_shape``, so no initialiser runs.
    """
    box: dict[str, Any] = {}

    def run() -> Params:
        box["shape"], params = layer.init(jax.random.key(0), input_shape)
        return params

    jax.eval_shape(run)
    return box["shape"]


def missing_state_error(desc: str) -> Exception:
    """The error for a stateful layer or model called without its state."""
    from ._errors import StateError

    return StateError(
        f"{desc}: this model keeps state (running statistics) and was called without "
        "it. Create it once with `_, state = model.init_state(input_shape)`, then call "
        "`y, state = model.apply(params, x, state=state, train=True)` to train, or "
        "`y, _ = model.apply(params, x, state=state)` to evaluate."
    )
