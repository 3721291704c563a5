"""Combinators: serial, parallel, FanOut, FanInSum, FanInConcat, Identity, residual.

Each combinator is itself a :class:`~jaxnet.Layer` with a hand-written ``backward`` that
chains its children's backwards (backpropagation through the composition), so every
model built from layers with analytic gradients has an analytic gradient too.
"""

from __future__ import annotations

from typing import Any, overload

import jax
import jax.numpy as jnp

from .._errors import ParamsError, ShapeError, StateError
from .._types import BackwardFn, Params, PRNGKey, ShapeTree
from . import _init as initializers
from ._checks import as_inputs, check_axis, check_axis_arg, check_int, float_input
from ._layer import (
    Layer,
    _is_shape,
    constructor,
    fmt_shape,
    in_sublayer,
    missing_state_error,
    output_shape,
    require_params,
    union_options,
)

LayerSpec = Layer | tuple[str, Layer]


def _named(combinator: str, layers: tuple[LayerSpec, ...]) -> list[tuple[str, Layer]]:
    """Give every child a parameter key: the user's name or ``<stem>_<index>``."""
    if not layers:
        raise ValueError(f"{combinator}: expected at least one layer, got none.")
    named: list[tuple[str, Layer]] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(layers):
        if isinstance(spec, tuple):
            if len(spec) != 2 or not isinstance(spec[0], str):
                raise TypeError(
                    f"{combinator}: layer {i} must be a Layer or a (name, Layer) pair, "
                    f"got {spec!r}."
                )
            key, layer = spec
            if not key or "/" in key:
                raise ValueError(
                    f"{combinator}: layer name {key!r} at position {i} must be a "
                    "non-empty string without '/'."
                )
        else:
            layer = spec
            key = f"{getattr(layer, 'name', '?')}_{i}"
        if not isinstance(layer, Layer):
            # Name the uncalled constructor (or plain function) actually passed.
            fn = getattr(layer, "__name__", "") if callable(layer) else ""
            got = f"{type(layer).__name__} {fn}" if fn else type(layer).__name__
            if fn and not getattr(layer, "__module__", "").startswith("jaxnet"):
                fix = f"Wrap a plain function as a layer: jaxnet.Lambda({fn})."
            elif fn:
                fix = (
                    "Constructors are always called: write "
                    f"jaxnet.{fn}(), not jaxnet.{fn}."
                )
            else:
                fix = "Pass a layer such as jaxnet.Dense(8) or jaxnet.Relu()."
            raise TypeError(
                f"{combinator}: layer {i} must be a jaxnet.Layer, got {got}. {fix}"
            )
        if key in seen:
            raise ValueError(
                f"{combinator}: duplicate layer name {key!r} at positions {seen[key]} "
                f"and {i}; parameter names must be unique. Rename one of them."
            )
        seen[key] = i
        named.append((key, layer))
    return named


@overload
def _split(key: PRNGKey, n: int) -> list[PRNGKey]: ...
@overload
def _split(key: None, n: int) -> list[None]: ...
def _split(key: PRNGKey | None, n: int) -> list[PRNGKey] | list[None]:
    """Split ``key`` into ``n`` sub-keys with ``jax.random.split`` (``None`` stays
    ``None``): the apply-time keys (dropout)."""
    if key is None:
        return [None] * n
    return list(jax.random.split(key, n))


def _init_split(key: PRNGKey | None, n: int) -> list[Any]:
    """The sub-keys an ``init`` hands its sub-layers: ``initializers.split``, drawn on
    the host (no XLA compile in a fresh process); ``apply`` keeps ``jax.random.split``
    (traced with the step, as the rest of training)."""
    return [None] * n if key is None else initializers.split(key, n)


def _backward_of(combinator: str, name: str, layer: Layer) -> BackwardFn:
    """``layer.backward``; NotImplementedError naming the sub-layer when it has none
    (the checker's probe for "no hand-written backward" catches it)."""
    if layer.backward is None:
        raise NotImplementedError(
            f"{combinator}: layer '{name}' ({layer.desc}) has no hand-written backward. "
            "Give it one (e.g. Lambda(fn, backward=...)) or use jax.grad."
        )
    return layer.backward


def _state_kw(
    desc: str, layer: Layer, name: str, state: Any, *, key_in_state: bool = True
) -> dict[str, Any]:
    """``{"state": state[name]}`` for a stateful sub-layer, ``{}`` otherwise."""
    if not layer.stateful:
        return {}
    if state is None:
        raise missing_state_error(desc)
    if key_in_state:
        if not isinstance(state, dict) or name not in state:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise StateError(
                f"{desc}: state has no entry {name!r} (got {got}). Pass the state "
                "made by this model's init_state."
            )
        return {"state": state[name]}
    return {"state": state}


def _run(layer: Layer, params: Params, x: Any, kw: dict[str, Any]) -> tuple[Any, Any]:
    """Apply a sub-layer; return ``(output, new_state or None)``."""
    out = layer.apply(params, x, **kw)
    return out if layer.stateful else (out, None)


def _desc(kind: str, named: list[tuple[str, Layer]]) -> str:
    return f"{kind}(" + ", ".join(layer.desc for _, layer in named) + ")"


@constructor
def serial(*layers: LayerSpec) -> Layer:
    """Compose layers in sequence: ``serial(f, g, h)(x) = h(g(f(x)))``.

    Parameters are a dict keyed by ``<stem>_<index>`` (``dense_0``, ``relu_1``) or by the
    name given in a ``(name, layer)`` pair. A PRNG key is split into one sub-key per
    layer; options (``train=True``) go to every layer.

    The hand-written backward runs the forward pass keeping each layer's input, then
    the layers' backwards in reverse order (backpropagation through the chain).

    Args:
      *layers: layers, or ``(name, layer)`` pairs with unique names.

    Returns:
      A :class:`~jaxnet.Layer` named ``"serial"``.

    Raises:
      ValueError: on duplicate names or no layers.

    Examples:
      >>> import jax, jaxnet
      >>> mlp = jaxnet.serial(("hidden", jaxnet.Dense(8)), jaxnet.Relu(),
      ...                     jaxnet.Dense(2))
      >>> out_shape, params = mlp.init(jax.random.key(0), (None, 3))
      >>> out_shape, sorted(params)
      ((None, 2), ['dense_2', 'hidden', 'relu_1'])
    """
    named = _named("serial", layers)
    desc = _desc("serial", named)
    keys = [k for k, _ in named]
    stateful = any(layer.stateful for _, layer in named)

    def init(rng: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        params: Params = {}
        shape = input_shape
        for (name, layer), sub in zip(named, _init_split(rng, len(named))):
            with in_sublayer("serial", name):
                shape, params[name] = layer.init(sub, shape)
        return shape, params

    def init_state(input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        state: Params = {}
        shape = input_shape
        for name, layer in named:
            with in_sublayer("serial", name):
                if layer.init_state is not None:  # stateful
                    shape, state[name] = layer.init_state(shape)
                else:
                    shape = output_shape(layer, shape)
        return shape, state

    def forward(
        params: Params, x: Any, key: PRNGKey | None, state: Any, kw: dict[str, Any]
    ) -> tuple[list[Any], Params]:
        """Every layer's input and the model's output, and the new state."""
        require_params(desc, params, keys)
        xs, new_state = [x], {}
        for (name, layer), sub in zip(named, _split(key, len(named))):
            with in_sublayer("serial", name), jax.named_scope(name):
                skw = _state_kw(desc, layer, name, state)
                out, s = _run(layer, params[name], xs[-1], {"key": sub, **skw, **kw})
            xs.append(out)
            if layer.stateful:
                new_state[name] = s
        return xs, new_state

    def apply(
        params: Params,
        x: Any,
        *,
        key: PRNGKey | None = None,
        state: Any = None,
        **kw: Any,
    ) -> Any:
        if stateful and state is None:
            raise missing_state_error(desc)
        xs, new_state = forward(params, x, key, state, kw)
        return (xs[-1], new_state) if stateful else xs[-1]

    def backward(
        params: Params,
        x: Any,
        y: Any,
        g: Any,
        *,
        key: PRNGKey | None = None,
        state: Any = None,
        **kw: Any,
    ) -> tuple[Params, Any]:
        if stateful and state is None:
            raise missing_state_error(desc)
        subkeys = _split(key, len(named))
        xs, _ = forward(params, x, key, state, kw)
        xs[-1] = y
        grads: Params = {}
        for i in reversed(range(len(named))):
            name, layer = named[i]
            with in_sublayer("serial", name):
                bwd = _backward_of("serial", name, layer)
                skw = _state_kw(desc, layer, name, state)
                grads[name], g = bwd(
                    params[name], xs[i], xs[i + 1], g, key=subkeys[i], **skw, **kw
                )
        return grads, g

    return Layer(
        "serial",
        init,
        apply,
        backward,
        desc,
        init_state if stateful else None,
        union_options(*(layer for _, layer in named)),
    )


def _require_tuple(desc: str, x: Any, n: int, what: str) -> None:
    # A single shape such as (None, 4) is a tuple too: it is not a tuple of shapes.
    if not isinstance(x, (tuple, list)) or _is_shape(x) or len(x) != n:
        got = (
            fmt_shape(x)
            if _is_shape(x)
            else (
                f"{type(x).__name__} of length {len(x)}"
                if isinstance(x, (tuple, list))
                else type(x).__name__
            )
        )
        raise ShapeError(f"{desc}: expected a tuple of {n} {what}, got {got}.")


@constructor
def parallel(*layers: LayerSpec) -> Layer:
    """Apply layers side by side: ``(x1, ..., xn) -> (f1(x1), ..., fn(xn))``.

    Usually sits between :func:`FanOut` and a fan-in. Parameters are keyed like
    :func:`serial`.

    Args:
      *layers: layers, or ``(name, layer)`` pairs with unique names.

    Returns:
      A :class:`~jaxnet.Layer` named ``"parallel"`` taking and returning tuples.

    Examples:
      >>> import jax, jaxnet
      >>> two = jaxnet.serial(jaxnet.FanOut(2),
      ...                     jaxnet.parallel(jaxnet.Dense(3), jaxnet.Dense(5)),
      ...                     jaxnet.FanInConcat())
      >>> two.init(jax.random.key(0), (None, 4))[0]
      (None, 8)
    """
    named = _named("parallel", layers)
    desc = _desc("parallel", named)
    keys = [k for k, _ in named]
    n = len(named)
    stateful = any(layer.stateful for _, layer in named)

    def init(rng: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        _require_tuple(desc, input_shape, n, "input shapes")
        params: Params = {}
        shapes = []
        for (name, layer), sub, s in zip(named, _init_split(rng, n), input_shape):
            with in_sublayer("parallel", name):
                out, params[name] = layer.init(sub, s)
            shapes.append(out)
        return tuple(shapes), params

    def init_state(input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        _require_tuple(desc, input_shape, n, "input shapes")
        state: Params = {}
        shapes = []
        for (name, layer), s in zip(named, input_shape):
            with in_sublayer("parallel", name):
                if layer.init_state is not None:  # stateful
                    out, state[name] = layer.init_state(s)
                else:
                    out = output_shape(layer, s)
            shapes.append(out)
        return tuple(shapes), state

    def forward(
        params: Params, x: Any, key: PRNGKey | None, state: Any, kw: dict[str, Any]
    ) -> tuple[tuple[Any, ...], Params]:
        require_params(desc, params, keys)
        _require_tuple(desc, x, n, "inputs")
        outs, new_state = [], {}
        for (name, layer), sub, xi in zip(named, _split(key, n), x):
            with in_sublayer("parallel", name), jax.named_scope(name):
                skw = _state_kw(desc, layer, name, state)
                out, s = _run(layer, params[name], xi, {"key": sub, **skw, **kw})
            outs.append(out)
            if layer.stateful:
                new_state[name] = s
        return tuple(outs), new_state

    def apply(
        params: Params,
        x: Any,
        *,
        key: PRNGKey | None = None,
        state: Any = None,
        **kw: Any,
    ) -> Any:
        if stateful and state is None:
            raise missing_state_error(desc)
        y, new_state = forward(params, x, key, state, kw)
        return (y, new_state) if stateful else y

    def backward(
        params: Params,
        x: Any,
        y: Any,
        g: Any,
        *,
        key: PRNGKey | None = None,
        state: Any = None,
        **kw: Any,
    ) -> tuple[Params, Any]:
        grads: Params = {}
        dxs = []
        for (name, layer), sub, xi, yi, gi in zip(named, _split(key, n), x, y, g):
            with in_sublayer("parallel", name):
                bwd = _backward_of("parallel", name, layer)
                skw = _state_kw(desc, layer, name, state)
                grads[name], dx = bwd(params[name], xi, yi, gi, key=sub, **skw, **kw)
            dxs.append(dx)
        return grads, tuple(dxs)

    return Layer(
        "parallel",
        init,
        apply,
        backward,
        desc,
        init_state if stateful else None,
        union_options(*(layer for _, layer in named)),
    )


def _no_params(desc: str, params: Any) -> None:
    if params != {}:
        raise ParamsError(f"{desc}: expected empty params {{}}, got {params!r}.")


@constructor
def FanOut(num: int) -> Layer:
    """Copy the input ``num`` times: ``x -> (x, ..., x)``.

    Backward: the input's cotangent is the sum of the copies' cotangents,
    ``dx = g_1 + ... + g_num``.

    Args:
      num: number of copies, >= 1.

    Examples:
      >>> import jax, jaxnet
      >>> jaxnet.FanOut(2).init(jax.random.key(0), (None, 3))
      (((None, 3), (None, 3)), {})
    """
    check_int(f"FanOut(num={num!r})", "num", num)
    desc = f"FanOut(num={num})"

    def init(rng: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        return (input_shape,) * num, {}

    def apply(params: Params, x: Any, **_: Any) -> Any:
        _no_params(desc, params)
        return (as_inputs(desc, x),) * num

    def backward(
        params: Params, x: Any, y: Any, g: Any, **_: Any
    ) -> tuple[Params, Any]:
        total = g[0]
        for gi in g[1:]:
            total = jax.tree.map(jnp.add, total, gi)
        return {}, total

    return Layer("fan_out", init, apply, backward, desc)


def _same_shapes(desc: str, shapes: tuple[Any, ...]) -> None:
    for s in shapes[1:]:
        if s != shapes[0]:
            raise ShapeError(
                f"{desc}: all inputs must have the same shape, got "
                + ", ".join(fmt_shape(t) for t in shapes)
                + ". Project the branches to a common width first."
            )


@constructor
def FanInSum() -> Layer:
    """Sum a tuple of inputs of equal shape: ``(x1, ..., xn) -> x1 + ... + xn``.

    Backward: every input receives the output's cotangent, ``dx_i = g``.

    Examples:
      >>> import jax, jaxnet
      >>> jaxnet.FanInSum().init(jax.random.key(0), ((None, 3), (None, 3)))
      ((None, 3), {})
    """
    desc = "FanInSum()"

    def init(rng: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        if _is_shape(input_shape) or not input_shape:
            raise ShapeError(
                f"{desc}: expected a tuple of input shapes, got {input_shape!r}. "
                "Put FanOut(n) and parallel(...) before it."
            )
        _same_shapes(desc, tuple(input_shape))
        return input_shape[0], {}

    def apply(params: Params, x: Any, **_: Any) -> Any:
        _no_params(desc, params)
        if not isinstance(x, (tuple, list)) or not x:
            raise ShapeError(
                f"{desc}: expected a tuple of inputs, got {type(x).__name__}."
            )
        x = tuple(float_input(desc, xi, f"input {i}") for i, xi in enumerate(x))
        _same_shapes(desc, tuple(tuple(jnp.shape(xi)) for xi in x))
        total = x[0]
        for xi in x[1:]:
            total = total + xi
        return total

    def backward(
        params: Params, x: Any, y: Any, g: Any, **_: Any
    ) -> tuple[Params, Any]:
        return {}, (g,) * len(x)

    return Layer("fan_in_sum", init, apply, backward, desc)


@constructor
def FanInConcat(axis: int = -1) -> Layer:
    """Concatenate a tuple of inputs along ``axis`` (default: the feature axis).

    Backward: split the cotangent at the inputs' sizes along ``axis``.

    Args:
      axis: the axis to concatenate along; the other axes must agree.

    Examples:
      >>> import jax, jaxnet
      >>> jaxnet.FanInConcat().init(jax.random.key(0), ((None, 3), (None, 5)))
      ((None, 8), {})
    """
    check_axis_arg(f"FanInConcat(axis={axis!r})", "axis", axis)
    desc = f"FanInConcat(axis={axis})"

    def out_shape(input_shape: ShapeTree) -> ShapeTree:
        """The concatenated shape; a ShapeError for shapes that do not concatenate."""
        if _is_shape(input_shape) or not input_shape:
            raise ShapeError(
                f"{desc}: expected a tuple of input shapes, got {input_shape!r}. "
                "Put FanOut(n) and parallel(...) before it."
            )
        rank = len(input_shape[0])
        ax = check_axis(desc, axis, rank, "input")
        for s in input_shape:
            if len(s) != rank or any(
                a != b for i, (a, b) in enumerate(zip(s, input_shape[0])) if i != ax
            ):
                raise ShapeError(
                    f"{desc}: inputs must agree on every axis but {axis}, got "
                    + ", ".join(fmt_shape(t) for t in input_shape)
                    + "."
                )
        sizes = [s[ax] for s in input_shape]
        out = list(input_shape[0])
        out[ax] = None if any(d is None for d in sizes) else sum(sizes)
        return tuple(out)

    def init(rng: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        return out_shape(input_shape), {}

    def apply(params: Params, x: Any, **_: Any) -> Any:
        _no_params(desc, params)
        if not isinstance(x, (tuple, list)) or not x:
            raise ShapeError(
                f"{desc}: expected a tuple of inputs, got {type(x).__name__}."
            )
        x = tuple(as_inputs(desc, xi, f"input {i}") for i, xi in enumerate(x))
        out_shape(tuple(tuple(jnp.shape(xi)) for xi in x))  # the shape check
        return jnp.concatenate(x, axis=axis)

    def backward(
        params: Params, x: Any, y: Any, g: Any, **_: Any
    ) -> tuple[Params, Any]:
        sizes = [jnp.shape(xi)[axis] for xi in x]
        cuts = [sum(sizes[: i + 1]) for i in range(len(sizes) - 1)]
        return {}, tuple(jnp.split(g, cuts, axis=axis))

    return Layer("fan_in_concat", init, apply, backward, desc)


@constructor
def Identity() -> Layer:
    """The identity layer, ``x -> x``; backward ``dx = g``.

    Examples:
      >>> import jax, jaxnet
      >>> jaxnet.Identity().init(jax.random.key(0), (None, 3))
      ((None, 3), {})
    """
    desc = "Identity()"

    def init(rng: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        return input_shape, {}

    def apply(params: Params, x: Any, **_: Any) -> Any:
        _no_params(desc, params)
        return as_inputs(desc, x)

    def backward(
        params: Params, x: Any, y: Any, g: Any, **_: Any
    ) -> tuple[Params, Any]:
        return {}, g

    return Layer("identity", init, apply, backward, desc)


@constructor
def residual(*layers: LayerSpec) -> Layer:
    """A residual connection: ``x -> x + f(x)`` with ``f = serial(*layers)``.

    With one layer, ``f`` is that layer and the parameters are its own (no extra
    nesting). ``f`` must preserve the shape of its input.

    Backward: ``dparams = f.backward(g)[0]`` and ``dx = g + f.backward(g)[1]``.

    Args:
      *layers: the residual branch.

    Raises:
      ShapeError: when ``f`` changes the shape.

    Examples:
      >>> import jax, jaxnet
      >>> block = jaxnet.residual(jaxnet.Dense(4), jaxnet.Tanh())
      >>> block.init(jax.random.key(0), (None, 4))[0]
      (None, 4)
    """
    if len(layers) == 1 and isinstance(layers[0], Layer):
        f = layers[0]
    else:
        f = serial(*layers)
    desc = f"residual({f.desc})"

    def check_same(input_shape: ShapeTree, out: ShapeTree) -> None:
        if out != input_shape:
            raise ShapeError(
                f"{desc}: the branch maps {fmt_shape(input_shape)} to {fmt_shape(out)}; "
                "x + f(x) needs equal shapes. End the branch with a layer that maps "
                "back to the input width."
            )

    def init(rng: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        with in_sublayer("residual", f.name, nest=False):
            out, params = f.init(rng, input_shape)
        check_same(input_shape, out)
        return out, params

    def init_state(input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        assert f.init_state is not None  # installed only for a stateful branch
        with in_sublayer("residual", f.name):
            out, state = f.init_state(input_shape)
        check_same(input_shape, out)
        return out, state

    def branch(
        params: Params, x: Any, key: Any, state: Any, kw: dict
    ) -> tuple[Any, Any]:
        skw = _state_kw(desc, f, f.name, state, key_in_state=False)
        # nest=False: the branch's params are the residual's own (as in init).
        with in_sublayer("residual", f.name, nest=False):
            fx, new_state = _run(f, params, x, {"key": key, **skw, **kw})
        if jnp.shape(fx) != jnp.shape(x):
            raise ShapeError(
                f"{desc}: the branch maps {jnp.shape(x)} to {jnp.shape(fx)}; x + f(x) "
                "needs equal shapes."
            )
        return fx, new_state

    def apply(
        params: Params,
        x: Any,
        *,
        key: PRNGKey | None = None,
        state: Any = None,
        **kw: Any,
    ) -> Any:
        x = as_inputs(desc, x)
        fx, new_state = branch(params, x, key, state, kw)
        return (x + fx, new_state) if f.stateful else x + fx

    def backward(
        params: Params,
        x: Any,
        y: Any,
        g: Any,
        *,
        key: PRNGKey | None = None,
        state: Any = None,
        **kw: Any,
    ) -> tuple[Params, Any]:
        fx, _ = branch(params, x, key, state, kw)
        skw = _state_kw(desc, f, f.name, state, key_in_state=False)
        with in_sublayer("residual", f.name):
            bwd = _backward_of("residual", f.name, f)
            dp, dx = bwd(params, x, fx, g, key=key, **skw, **kw)
        return dp, g + dx

    return Layer(
        "residual",
        init,
        apply,
        backward,
        desc,
        init_state if f.stateful else None,
        f.options,
    )
