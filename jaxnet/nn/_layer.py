"""The layer contract: ``Layer(name, init, apply)`` and the shape helpers.

A :class:`Layer` is a small frozen record of pure functions. It holds no arrays, so it
is hashable and can be a static argument of ``jax.jit``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import functools
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import JAXNET_ERRORS, DTypeError, ParamsError, ShapeError
from .._types import (
    ApplyFn,
    Array,
    BackwardFn,
    InitFn,
    InitStateFn,
    Params,
    PRNGKey,
    PyTree,
    ShapeTree,
)


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
        out: list[int | None] = []
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


#: True while a layer's ``apply`` runs: the checks of the whole call (options, params
#: shapes, a traced ``train``) run once, at the outermost ``apply``; the sub-layers'
#: calls inside it skip them.
_INSIDE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "jaxnet_inside_apply", default=False
)

#: Options every model accepts, read or not: ``key`` (deterministic layers ignore it)
#: and ``train`` (layers without a training mode ignore it), so that one training step
#: serves every model.
UNIVERSAL_OPTIONS = frozenset({"key", "train"})


def path_str(path: Sequence[Any]) -> str:
    """Render a ``jax.tree_util`` key path as ``dense_0/w``."""
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def _input_shape(x: Any) -> Any:
    """The shape (or tuple of shapes) ``init`` would take for input ``x``; ``None``
    when ``x`` is not an array or a tuple of arrays (the layer's own checks speak)."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return tuple(int(d) for d in x.shape)
    if isinstance(x, tuple) and x:
        parts = tuple(_input_shape(e) for e in x)
        return None if any(p is None for p in parts) else parts
    return None


def _kind(dtype: Any) -> str:
    """The dtype class a parameter must keep: its precision may change (float64 for
    verification, bfloat16 for mixed precision, complex for a complex-step probe),
    its kind may not."""
    for kind, base in (
        ("PRNG key", jax.dtypes.prng_key),
        ("bool", jnp.bool_),
        ("integer", jnp.integer),
        ("floating-point", jnp.inexact),
    ):
        if jnp.issubdtype(dtype, base):
            return kind
    return str(dtype)


@functools.lru_cache(maxsize=256)
def _expected_params(layer: Layer, input_shape: Any) -> dict[str, tuple] | None:
    """``{path: (shape, kind)}`` of the params ``layer.init`` gives for
    ``input_shape`` (traced with ``jax.eval_shape``: nothing is computed), or ``None``
    when init refuses that shape (then ``apply`` reports the problem itself)."""
    tokens = (_RECORD.set(None), _CALLS.set(None))
    try:
        tree = jax.eval_shape(lambda: layer.init(jax.random.key(0), input_shape)[1])
    except Exception:  # noqa: BLE001 - the layer's own apply names the problem
        return None
    finally:
        _RECORD.reset(tokens[0])
        _CALLS.reset(tokens[1])
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_str(p): (tuple(a.shape), _kind(a.dtype)) for p, a in leaves}


def _params_problem(layer: Layer, params: Any, x: Any) -> ParamsError | None:
    """A :class:`ParamsError` when a leaf of ``params`` has another shape or dtype
    kind than ``layer.init`` gives for ``x``'s shape (found at trace time under jit).

    Paths missing or unexpected are left to the layer's own ``require_params``,
    which names the keys."""
    shape = _input_shape(x)
    if shape is None:
        return None
    expected = _expected_params(layer, shape)
    if not expected:
        return None
    wrong = []
    for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        path = path_str(p)
        if path not in expected or not hasattr(leaf, "dtype"):
            continue
        got = (tuple(jnp.shape(leaf)), _kind(leaf.dtype))
        if got != expected[path]:
            (es, ek), (gs, gk) = expected[path], got
            wrong.append(
                f"{path}: expected shape {es} ({ek}), got {gs} ({gk}, {leaf.dtype})"
            )
    if not wrong:
        return None
    more = f"; and {len(wrong) - 5} more" if len(wrong) > 5 else ""
    return ParamsError(
        f"{layer.desc}: params do not match the model for input of shape "
        f"{shape}: " + "; ".join(wrong[:5]) + more + ". The params were made for "
        "another model or input size: pass the params this model's init returned "
        "(init(key, x) with this input), or rebuild the model to match them."
    )


def _check_options(layer: Layer, kwargs: dict[str, Any]) -> None:
    """Raise ``TypeError`` for an option no layer of the model reads (a typo such as
    ``trian=True`` would otherwise run silently in evaluation mode)."""
    if layer.options is None:  # a layer that forwards options it does not declare
        return
    valid = layer.options | UNIVERSAL_OPTIONS
    if not layer.stateful:  # combinators take state= for stateful sub-layers only
        valid = valid - {"state"}
    given = set(kwargs)
    empty = kwargs.get("state") is None or kwargs.get("state") == {}
    if "state" in given and not layer.stateful and empty:
        given.discard("state")  # state=None or {} from generic code: harmless
    names = sorted(valid)
    for name in sorted(given - valid):
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TypeError(
            f"{layer.desc}.apply: unknown option {name}=; no layer of this model reads "
            f"it. The options it accepts: {', '.join(names)}.{hint}"
        )


def _check_call(layer: Layer, params: Any, x: Any, kwargs: dict[str, Any]) -> None:
    """The checks of a whole call that need no run of the layer (see ``_wrap_apply``
    for the params)."""
    if x is None:
        raise DTypeError(
            f"{layer.desc}.apply: expected an array input, got None. Pass the input "
            "as an array, e.g. jnp.asarray(x)."
        )
    if isinstance(kwargs.get("train"), jax.core.Tracer):
        raise TypeError(
            f"{layer.desc}.apply: train= is a traced value; it must be a Python bool, "
            "because it chooses which computation runs. Mark it static, e.g. "
            "jax.jit(model.apply, static_argnames='train'), or close over it."
        )
    _check_options(layer, kwargs)


def _wrap_apply(raw: ApplyFn, owner: list[Layer]) -> ApplyFn:
    """The layer's public ``apply``: the checks of a whole call at the outermost
    ``apply``, the ``check_model`` recording, and ``jax.named_scope(layer.name)``
    around the raw function, so that every layer shows by name in profiles and in
    the lowered program (applied here only, never by a layer itself)."""

    def apply(params: Params, x: PyTree, **kwargs: Any) -> Any:
        layer = owner[0]
        calls = _CALLS.get()
        if calls is not None and _concrete((params, x)):
            calls.append((_PATH.get(), layer, params, x, dict(kwargs)))
        if _INSIDE.get():
            with jax.named_scope(layer.name):
                return raw(params, x, **kwargs)
        _check_call(layer, params, x, kwargs)
        problem = _params_problem(layer, params, x)
        token = _INSIDE.set(True)
        try:
            if problem is None:
                with jax.named_scope(layer.name):
                    return raw(params, x, **kwargs)
            # Params and input disagree. When the layer's own checks name the input
            # ("expected input of shape (..., 3)"), that message is the more useful;
            # otherwise (it would compute wrong shapes or fail in XLA) the params'.
            try:
                raw(params, x, **kwargs)
            except JAXNET_ERRORS:
                raise
            except Exception:  # noqa: BLE001 - a raw error: the params' message instead
                pass
            raise problem from None
        finally:
            _INSIDE.reset(token)

    apply.__wrapped__ = raw  # type: ignore[attr-defined]
    apply.__jaxnet_apply__ = True  # type: ignore[attr-defined]
    return apply


def _wrap_backward(raw: BackwardFn) -> BackwardFn:
    """A backward calls its sub-layers' ``apply`` with the parent's options: mark
    them as inner calls, as inside the parent's ``apply``."""

    def backward(
        params: Params, x: PyTree, y: PyTree, g: PyTree, **kwargs: Any
    ) -> tuple[Params, PyTree]:
        token = _INSIDE.set(True)
        try:
            return raw(params, x, y, g, **kwargs)
        finally:
            _INSIDE.reset(token)

    backward.__wrapped__ = raw  # type: ignore[attr-defined]
    backward.__jaxnet_backward__ = True  # type: ignore[attr-defined]
    return backward


def _signature_options(apply: Any) -> tuple[frozenset[str], bool] | None:
    """The options a raw ``apply(params, x, *, ...)`` reads, its keyword parameters,
    and whether it also takes ``**kwargs`` under a name other than ``_`` (the house
    spelling of "ignores the rest"): then it may forward them to sub-layers. ``None``
    when the signature cannot be read."""
    raw = getattr(apply, "__wrapped__", apply)
    try:
        sig = inspect.signature(raw)
    except (TypeError, ValueError):
        return None
    names, forwards = set(), False
    for i, p in enumerate(sig.parameters.values()):
        if p.kind is p.VAR_KEYWORD:
            forwards = p.name != "_"
        elif p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and i >= 2):
            names.add(p.name)
    return frozenset(names), forwards


def union_options(*layers: Layer) -> frozenset[str] | None:
    """The options a combinator of ``layers`` reads (``None`` if one is undeclared)."""
    out: set[str] = set()
    for layer in layers:
        if layer.options is None:
            return None
        out |= layer.options
    return frozenset(out)


def accepted_options(layer: Layer, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less those ``layer`` does not read: for calling one sub-layer alone
    with the options its parent passed on to every sub-layer."""
    if layer.options is None:
        return dict(options)
    keep = layer.options | UNIVERSAL_OPTIONS
    return {k: v for k, v in options.items() if k in keep}


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


@dataclasses.dataclass(frozen=True, eq=False)
class Layer:
    r"""A layer: a name and two pure functions, ``init`` and ``apply``.

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
      ignores the options it does not use; an option that no layer reads is an error.
    * ``backward`` (optional) is the layer's hand-written vector-Jacobian product,
      ``backward(params, x, y, g, *, key=None, **options) -> (dparams, dx)`` where
      ``y = apply(params, x)`` and ``g`` is the cotangent of ``y``. It is what
      :mod:`jaxnet.analytic` uses; every built-in layer has one.
    * ``desc`` is the human-readable constructor call, used in error messages.
    * **Equality by value**: layers made by jaxnet's constructors compare equal (and
      hash equal) when made by the same constructor calls: ``Dense(16) ==
      Dense(16)``, and two models rebuilt by the same code are equal, so
      ``jax.jit(f, static_argnums=...)`` over a rebuilt model hits its cache. An
      argument that is a function (an initialiser, ``Lambda``'s ``fn``) or an array
      compares by identity: ``Lambda(jnp.tanh) == Lambda(jnp.tanh)``, but two
      ``lambda``\ s with the same body are different functions. A ``Layer`` built
      directly (``Layer(name, init, apply)``) compares by identity.

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
      options: the keyword options the layer's sub-layers read, for a combinator
        whose ``apply`` forwards ``**kw`` to them (``union_options(*layers)``). A
        layer's own keyword parameters are read from its ``apply`` signature; an
        ``apply`` taking ``**kwargs`` (under any name but ``_``) with no ``options``
        given is *undeclared* and accepts any option.

    **Checks of a call.** The outermost ``apply`` of a model checks, once (at trace
    time under ``jit``), before running: the input is not ``None``; ``train`` is a
    Python bool, not a traced value; every option is read by some layer of the model
    (``key`` and ``train`` are always accepted; ``trian=True`` is a ``TypeError`` that
    suggests ``train``); and every parameter has the shape and dtype kind
    (floating-point, integer, bool, key) that ``init`` gives for this input, else a
    :class:`~jaxnet.ParamsError` names the path, the expected and the actual shape.
    Precision may differ from init's: float64 params for verification, bfloat16 for
    mixed precision and complex ones for a complex-step probe are all accepted.

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
    init_state: InitStateFn | None = None
    options: frozenset[str] | None = None
    #: The constructor call that made the layer, as a hashable key (set by
    #: :func:`constructor`); ``None``: compared by identity.
    spec: Any = dataclasses.field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Layer) or self.spec is None or other.spec is None:
            return False
        return bool(self.spec == other.spec)

    def __hash__(self) -> int:
        return hash(self.spec) if self.spec is not None else id(self)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(
                f"Layer name must be a non-empty string without '/', got {self.name!r}."
            )
        if not self.desc:
            object.__setattr__(self, "desc", self.name)
        sig = _signature_options(self.apply)
        if self.options is not None:  # declared: what the sub-layers read, too
            own = frozenset(self.options) | (sig[0] if sig else frozenset())
        elif sig is None or sig[1]:  # undeclared, and may forward: accepts any
            own = None
        else:
            own = sig[0]
        object.__setattr__(self, "options", own)
        if self.backward is not None and not getattr(
            self.backward, "__jaxnet_backward__", False
        ):
            object.__setattr__(self, "backward", _wrap_backward(self.backward))
        if getattr(self.init, "__wrapped__", None) is None:
            object.__setattr__(self, "init", _wrap_init(self.init, self.desc))
        if not getattr(self.apply, "__jaxnet_apply__", False):
            owner: list[Layer] = []
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


class _ByIdentity:
    """A constructor argument compared by identity (arrays, unhashable objects)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _frozen(value: Any) -> Any:
    """A hashable stand-in for one constructor argument, equal iff the arguments
    make the same layer: layers by their own equality, containers element-wise,
    numbers with their type (``1``, ``1.0`` and ``True`` differ), functions and
    arrays by identity."""
    if isinstance(value, Layer):
        return value
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, np.ndarray | jax.Array):
        return _ByIdentity(value)
    try:
        hash(value)
    except TypeError:
        return _ByIdentity(value)
    return (type(value), value)


def constructor(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a public layer constructor: the layers it returns compare (and hash) by
    the call that made them, ``fn`` and its arguments with defaults filled in (see
    :class:`Layer`). The layer keeps the key in ``spec``; nothing else changes."""
    sig = inspect.signature(fn)
    where = (fn.__module__, fn.__qualname__)

    @functools.wraps(fn)
    def make(*args: Any, **kwargs: Any) -> Any:
        layer = fn(*args, **kwargs)
        if isinstance(layer, Layer):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            spec = (where, tuple((k, _frozen(v)) for k, v in bound.arguments.items()))
            object.__setattr__(layer, "spec", spec)
        return layer

    return make


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


def matmul_last(x: Array, w: Array) -> Array:
    """``x @ w`` over ``x``'s last axis, as one 2-D matmul over the flattened
    leading axes (reshaped back).

    The same numbers as ``jnp.dot(x, w)``; the difference is the gradient's
    program. ``jax.grad`` transposes an N-D ``dot`` into a ``dot_general``
    contracting several axes (``dw = x^T g`` over batch and sequence), which
    XLA:CPU ran 2x slower than the 2-D GEMM the hand-written backwards use (Dense
    on ``(8, 128, 256) -> 1024``: 18.8 ms vs 9.5 ms per step). Flattening first
    makes autodiff's ``dw`` that same GEMM. Inside the whole GPT block it is
    neutral (flattened / N-D 0.98-1.01 in three same-process rounds), where XLA
    fuses the transposes into neighbouring ops.
    """
    if x.ndim <= 2:
        return jnp.dot(x, w)
    y = jnp.dot(x.reshape(-1, x.shape[-1]), w)
    return y.reshape(x.shape[:-1] + w.shape[1:])


def is_symbolic_zero(t: Any) -> bool:
    """Whether a ``custom_jvp`` rule's tangent (``symbolic_zeros=True``) is a
    symbolic zero: an input that is not perturbed, whose term the rule skips."""
    return isinstance(t, jax.custom_derivatives.SymbolicZero)


def sum_terms(terms: list[Array], like: Array) -> Array:
    """``terms[0] + terms[1] + ...``, or zeros like ``like`` when there are none
    (a JVP whose inputs are all unperturbed)."""
    if not terms:
        return jnp.zeros_like(like)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def numel(shape: tuple[int | None, ...]) -> int | None:
    """Product of the sizes, or ``None`` when any is free."""
    sizes = [d for d in shape if d is not None]
    if len(sizes) < len(shape):
        return None
    return math.prod(sizes)


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
    from .._errors import StateError

    return StateError(
        f"{desc}: this model keeps state (running statistics) and was called without "
        "it. Create it once with `_, state = model.init_state(input_shape)`, then call "
        "`y, state = model.apply(params, x, state=state, train=True)` to train, or "
        "`y, _ = model.apply(params, x, state=state)` to evaluate."
    )
