"""The shared checks of constructor arguments and layer inputs.

One helper per kind of check, so that every layer says the same thing the same way:
the layer and its settings (its ``desc``), what was expected, what it got, and the fix.

Rules (the same for every public layer; ``tests/test_bad_inputs.py`` walks them all):

* **Constructor arguments** are checked at construction. A bad value is a
  ``ValueError`` (``Dense(out_dim=0): out_dim must be an integer >= 1.``); a layer
  argument that is not a :class:`~jaxnet.Layer` is a ``TypeError``.
* **Inputs** are checked at the top of ``init``/``apply``:

  - ``None`` is a :class:`~jaxnet.DTypeError`; a Python list (nested, of numbers) is
    converted with ``jnp.asarray``, as NumPy and stax do; where a layer takes a tuple
    of inputs, a list of arrays is that tuple.
  - Layers that compute on their input refuse integer and bool input (a
    :class:`~jaxnet.DTypeError` saying ``x.astype(jnp.float32)``): gradients of
    integers are meaningless, ``Relu`` included. Layers that only move data
    (``Flatten``, ``Reshape``, ``Identity``, ``FanOut``, ``FanInConcat``) take any
    dtype.
  - A wrong rank or an ``axis`` outside the input is a :class:`~jaxnet.ShapeError`.
  - A zero-size batch works: the output has batch size 0.

* ``strides=None`` means all ones.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from .._errors import DTypeError, ShapeError

# -------------------------------------------------------------- constructor arguments


def arg_error(
    desc: str, name: str, value: Any, expected: str, fix: str = ""
) -> ValueError:
    """``ValueError("<desc>: <name> must be <expected>, got <value>. <fix>")``.

    ``got`` is left out when ``desc`` already shows ``name=value``.
    """
    shown = f"{name}={value!r}" in desc or f"{name}={value}" in desc
    got = "" if shown else f", got {value!r}"
    return ValueError(
        f"{desc}: {name} must be {expected}{got}." + (f" {fix}" if fix else "")
    )


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(desc: str, name: str, value: Any, *, min_value: int = 1) -> int:
    """``value`` as an int ``>= min_value``, else :func:`arg_error`."""
    if not is_int(value) or value < min_value:
        raise arg_error(desc, name, value, f"an integer >= {min_value}")
    return int(value)


def check_number(
    desc: str,
    name: str,
    value: Any,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    fix: str = "",
) -> float:
    """``value`` as a finite float within the bounds (``above``/``below`` exclusive,
    ``at_least`` inclusive), else :func:`arg_error` stating them."""
    bounds = []
    if above is not None:
        bounds.append(f"> {above}")
    if at_least is not None:
        bounds.append(f">= {at_least}")
    if below is not None:
        bounds.append(f"< {below}")
    expected = "a number " + " and ".join(bounds) if bounds else "a finite number"
    ok = is_number(value) and math.isfinite(value)
    if ok and above is not None and not value > above:
        ok = False
    if ok and at_least is not None and not value >= at_least:
        ok = False
    if ok and below is not None and not value < below:
        ok = False
    if not ok:
        raise arg_error(desc, name, value, expected, fix)
    return float(value)


def check_axis_arg(desc: str, name: str, value: Any) -> int:
    """An ``axis`` argument: a Python int (its range is checked against the input)."""
    if not is_int(value):
        raise arg_error(desc, name, value, "an integer axis such as -1")
    return int(value)


def int_tuple(
    desc: str,
    name: str,
    value: Any,
    n: int,
    *,
    min_value: int = 1,
    none: int | None = None,
) -> tuple[int, ...]:
    """Broadcast an int (or ``None``, read as ``none`` when given) to ``n`` entries, or
    check a sequence of ``n`` ints ``>= min_value``."""
    if value is None and none is not None:
        value = none
    if is_int(value):
        t: Any = (int(value),) * n
    elif isinstance(value, Sequence) and not isinstance(value, str):
        t = tuple(value)
    else:
        t = None
    if t is None or len(t) != n or not all(is_int(e) and e >= min_value for e in t):
        raise ValueError(
            f"{desc}: {name} must be an int or {n} ints >= {min_value} (one per "
            f"spatial axis), got {value!r}."
        )
    return tuple(int(e) for e in t)


def check_layer(desc: str, name: str, value: Any) -> Any:
    """``value`` unless it is not a :class:`~jaxnet.Layer` (``TypeError``, naming an
    uncalled constructor)."""
    from ._layer import Layer

    if isinstance(value, Layer):
        return value
    fn = getattr(value, "__name__", "") if callable(value) else ""
    fix = (
        f" Constructors are always called: write jaxnet.{fn}(...), not jaxnet.{fn}."
        if fn
        else ""
    )
    raise TypeError(
        f"{desc}: {name} must be a jaxnet.Layer, got {type(value).__name__}"
        f"{' ' + fn if fn else ''}.{fix}"
    )


# ------------------------------------------------------------------------- inputs


def _asarray(desc: str, x: Any, what: str) -> jax.Array:
    if x is None:
        raise DTypeError(
            f"{desc}: expected an array {what}, got None. Pass the {what} as an array, "
            "e.g. jnp.asarray(x)."
        )
    if isinstance(x, jax.Array):
        return x
    try:
        return jnp.asarray(x)
    except (TypeError, ValueError) as exc:
        raise DTypeError(
            f"{desc}: expected an array {what}, got {type(x).__name__} that "
            f"jnp.asarray cannot convert ({exc}). Pass an array, or a list of numbers "
            "of a regular (non-ragged) shape."
        ) from None


def as_input(desc: str, x: Any, what: str = "input") -> jax.Array:
    """``x`` as an array of any dtype: ``None`` refused, lists converted."""
    return _asarray(desc, x, what)


def float_input(desc: str, x: Any, what: str = "input") -> jax.Array:
    """``x`` as a floating-point (or complex) array, else :class:`DTypeError`."""
    x = _asarray(desc, x, what)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise DTypeError(
            f"{desc}: expected a floating-point {what}, got {x.dtype} of shape "
            f"{tuple(x.shape)}. Cast it first, e.g. x.astype(jnp.float32)."
        )
    return x


def as_inputs(desc: str, x: Any, what: str = "input") -> Any:
    """A tree of inputs with its arrays converted: a tuple stays a tuple (of inputs),
    a list of arrays becomes a tuple of inputs, other lists are array data; arrays
    (and tracers, ``ShapeDtypeStruct``) pass through unchanged."""
    if isinstance(x, tuple):
        return tuple(as_inputs(desc, e, what) for e in x)
    if isinstance(x, list) and x and all(hasattr(e, "shape") for e in x):
        return tuple(as_inputs(desc, e, what) for e in x)
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    return _asarray(desc, x, what)


def check_rank(
    desc: str,
    shape: Sequence[Any],
    min_rank: int,
    layout: str = "",
    what: str = "input",
) -> None:
    """:class:`ShapeError` unless ``shape`` has rank ``>= min_rank``."""
    if len(shape) < min_rank:
        want = layout or f"rank >= {min_rank}"
        raise ShapeError(
            f"{desc}: expected {what} of {want}, got shape {tuple(shape)} (rank "
            f"{len(shape)})."
        )


def check_axis(desc: str, axis: int, ndim: int, what: str = "input") -> int:
    """``axis`` normalised to ``[0, ndim)``, else :class:`ShapeError`."""
    if not -ndim <= axis < ndim:
        raise ShapeError(
            f"{desc}: expected an axis in [{-ndim}, {ndim}) for an {what} of rank "
            f"{ndim}, got axis={axis}. Pick an axis the {what} has, or add axes to it."
        )
    return axis % ndim
