"""Adapters: lift Flax (linen and nnx) and Equinox modules into jaxnet layers.

A lifted module is an ordinary :class:`~jaxnet.Layer`: its params are a nested plain
dict of arrays, so it composes with :func:`jaxnet.serial`, ``jax.grad``, ``jax.jit``
and Optax like any built-in layer. Adapted layers have no hand-written backward
(``layer.backward is None``): they train with ``jax.grad``.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp

from .._errors import MissingKeyError, ParamsError, ShapeError
from .._types import Params, PRNGKey, ShapeTree
from ._layer import Layer, fmt_shape, require_rank

#: ``flax.linen.Module.apply`` keywords that an option must never be forwarded as.
_LINEN_RESERVED = frozenset({"rngs", "method", "mutable", "capture_intermediates"})

# ---------------------------------------------------------------------------- helpers


def _snake(name: str, default: str) -> str:
    """``"MyMLP"`` -> ``"my_mlp"``, ``"HTTPBlock"`` -> ``"http_block"``."""
    s = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z0-9])(?=[A-Z][a-z])", "_", name)
    s = re.sub(r"[^a-z0-9_]+", "_", s.lower()).strip("_")
    return s or default


def _option_filter(
    fn: Callable[..., Any], reserved: frozenset[str] = frozenset()
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return ``keep(options)``: the options that ``fn`` accepts as keywords.

    ``fn`` is a bound ``__call__``; its first positional parameter is the input and
    is never filled from options. With ``**kwargs`` every option except ``reserved``
    is kept; when the signature cannot be read, all are.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins, C callables: pass everything through
        return lambda options: {k: v for k, v in options.items() if k not in reserved}
    params = list(sig.parameters.values())
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    input_name = positional[0].name if positional else None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        named = {p.name for p in params if p.kind is not p.POSITIONAL_ONLY}
        return lambda options: {
            k: v
            for k, v in options.items()
            if k != input_name and (k in named or k not in reserved)
        }
    names = frozenset(
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != input_name
    )
    return lambda options: {k: v for k, v in options.items() if k in names}


def _takes(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` accepts the keyword ``name`` (or any keyword)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD
        or (p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        for p in sig.parameters.values()
    )


def _rng_keys(key: PRNGKey, collections: Sequence[str]) -> dict[str, PRNGKey]:
    """Collection ``i`` gets ``key`` for ``i == 0``, else ``fold_in(key, i)``."""
    return {
        c: key if i == 0 else jax.random.fold_in(key, i)
        for i, c in enumerate(collections)
    }


def _plain(tree: Any) -> Any:
    """Mappings (``FrozenDict`` included) to plain nested ``dict``s."""
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def _default_float() -> Any:
    """JAX's default float dtype: float32, or float64 with ``jax_enable_x64``."""
    return jax.dtypes.canonicalize_dtype(float)


def _probe_shape(
    desc: str, fn: Callable[[Any], Any], input_shape: tuple[int | None, ...], dtype: Any
) -> ShapeTree:
    """The output shape(s) of ``fn`` on ``input_shape``, free axes reported as None.

    ``fn`` is traced with ``jax.eval_shape`` (nothing runs) with every free input axis
    set to 2, then to 3; output axes whose size changes follow the free axes and are
    free too.
    """

    def at(n: int) -> Any:
        shape = tuple(n if d is None else d for d in input_shape)
        return jax.eval_shape(fn, jax.ShapeDtypeStruct(shape, dtype))

    first = at(2)
    if None not in input_shape:
        return jax.tree.map(lambda o: tuple(o.shape), first)
    second = at(3)

    def merge(a: Any, b: Any) -> tuple[int | None, ...]:
        if len(a.shape) != len(b.shape):
            raise ShapeError(
                f"{desc}: the rank of the output depends on the size of the free "
                f"axes of the input {fmt_shape(input_shape)}; give all input sizes."
            )
        return tuple(None if p != q else p for p, q in zip(a.shape, b.shape))

    return jax.tree.map(merge, first, second)


def _key_str(k: Any) -> str:
    """A pytree path entry as a params key: attribute, index or dict key."""
    for attr in ("name", "idx", "key"):  # GetAttrKey, SequenceKey, DictKey/Flattened
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _nest(desc: str, items: list[tuple[tuple[str, ...], Any]]) -> Params:
    """``[(("a", "0"), leaf), ...]`` -> ``{"a": {"0": leaf}}``."""
    out: Params = {}
    for path, leaf in items:
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TypeError(f"{desc}: parameter path {'/'.join(path)} collides.")
        if path[-1] in node:
            raise TypeError(
                f"{desc}: two parameters render to the same path {'/'.join(path)}."
            )
        node[path[-1]] = leaf
    return out


def _take(desc: str, params: Any, paths: list[tuple[str, ...]]) -> list[Any]:
    """The leaves of ``params`` at ``paths`` (by path, never by leaf order).

    Raises:
      ParamsError: when ``params`` is not a dict, or has missing or extra entries.
    """
    if not isinstance(params, dict):
        raise ParamsError(
            f"{desc}: expected params to be a dict, got {type(params).__name__}. "
            "Pass the params returned by this layer's init."
        )
    leaves, missing = [], []
    for path in paths:
        node: Any = params
        for part in path:
            if not isinstance(node, dict) or part not in node:
                missing.append("/".join(path))
                node = None
                break
            node = node[part]
        leaves.append(node)
    got = {"/".join(str(e) for e in p) for p, _ in _flat_with_str_paths(params)}
    extra = sorted(got - {"/".join(p) for p in paths})
    if missing or extra:
        raise ParamsError(
            f"{desc}: params do not match the module: missing {missing}, unexpected "
            f"{extra}. Pass the params returned by this layer's init."
        )
    return leaves


def _flat_with_str_paths(tree: Any) -> list[tuple[tuple[str, ...], Any]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(tuple(_key_str(k) for k in path), leaf) for path, leaf in flat]


def _check_input_shape(desc: str, input_shape: Any) -> tuple[int | None, ...]:
    require_rank(desc, input_shape, 0)
    return tuple(input_shape)


# -------------------------------------------------------------------------- from_flax


def from_flax(
    module: Any,
    *,
    name: str | None = None,
    rng_collections: Sequence[str] = ("dropout",),
    input_dtype: Any = None,
) -> Layer:
    """Lift a Flax module (``flax.linen`` or ``flax.nnx``) into a jaxnet layer.

    The layer's params are the module's ``params`` collection as a nested plain dict
    of arrays (``{"Dense_0": {"kernel": ..., "bias": ...}}``, Flax's own names), so
    the layer composes with :func:`jaxnet.serial`, ``jax.grad``, ``jax.jit`` and
    Optax. For a given ``key``, ``layer.init(key, shape)`` gives exactly the params
    of ``module.init(key, x)``, and ``layer.apply(params, x)`` is
    ``module.apply({"params": params}, x)``.

    * ``init(key, input_shape)``: ``input_shape`` may hold ``None`` for free (batch)
      axes, or be an example array. The module is initialised on a dummy input
      (zeros, free axes of size 1, dtype ``input_dtype``); the output shape is found
      with ``jax.eval_shape``, free output axes reported as ``None``.
    * ``apply(params, x, *, key=None, **options)``: ``key`` feeds every collection
      in ``rng_collections`` (the first gets ``key`` itself, the others
      ``jax.random.fold_in(key, i)``). Options the module's ``__call__`` accepts
      (``train=``, ``deterministic=``) are passed on; the others are dropped, since
      jaxnet passes options such as ``train=True`` to every layer of a model.

    An ``nnx.Module`` is already initialised: ``from_flax`` takes a snapshot of it
    (``nnx.split``). ``init`` returns the snapshot's ``nnx.Param`` values as a pure
    dict (integer keys such as list indices become strings: ``{"layers": {"0":
    ...}}``) and **ignores its key**. Other state (batch statistics, RNG streams)
    is held fixed at the snapshot: ``apply`` never updates it. With a ``key``, the
    streams named in ``rng_collections`` are reseeded for the call (``nnx.reseed``).

    Args:
      module: an unbound ``flax.linen.Module`` instance (``MLP()``, not ``MLP``), or
        a ``flax.nnx.Module`` instance.
      name: the parameter-key stem in a combinator; default the module's class name
        in snake case (``MLP`` gives ``"mlp"``, hence ``"mlp_0"`` in a serial).
      rng_collections: the RNG collections (nnx: stream names) that ``key`` feeds.
      input_dtype: dtype of the dummy input traced at ``init``; default JAX's
        default float dtype (float32, or float64 with ``jax_enable_x64``). Pass
        ``jnp.int32`` for a module that takes token ids.

    Returns:
      A :class:`~jaxnet.Layer` with ``desc`` ``"from_flax(<ClassName>)"`` and no
      hand-written backward.

    Raises:
      TypeError: at construction when ``module`` is not a Flax module instance.
      ValueError: at ``init`` when a linen module has variable collections other
        than ``params`` (e.g. ``batch_stats``): only parameters are supported.
      MissingKeyError: at ``apply`` when the module needs randomness and no ``key``
        was given.
      ShapeError: at ``apply`` when ``x`` does not fit the params' shapes.
      ParamsError: at ``apply`` when params lack an entry the module needs.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxnet
      >>> class MLP(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         x = nn.relu(nn.Dense(8)(x))
      ...         return nn.Dense(2)(x)
      >>> model = jaxnet.serial(jaxnet.from_flax(MLP()), jaxnet.Tanh())
      >>> out_shape, params = model.init(jax.random.key(0), (None, 3))
      >>> out_shape, sorted(params)
      ((None, 2), ['mlp_0', 'tanh_1'])
      >>> jax.tree.map(jnp.shape, params["mlp_0"])
      {'Dense_0': {'bias': (8,), 'kernel': (3, 8)}, 'Dense_1': {'bias': (2,), 'kernel': (8, 2)}}
      >>> model.apply(params, jnp.ones((5, 3))).shape
      (5, 2)
    """
    import flax.linen as linen
    from flax import nnx  # part of every flax >= 0.12 (the declared minimum)

    if isinstance(rng_collections, str):
        rng_collections = (rng_collections,)
    rng_collections = tuple(rng_collections)
    kinds: list[type] = [linen.Module, nnx.Module]
    if isinstance(module, type) and issubclass(module, tuple(kinds)):
        raise TypeError(
            f"from_flax: got the class {module.__name__}, expected an instance of a "
            f"Flax module. Construct it first: from_flax({module.__name__}(...))."
        )
    if isinstance(module, linen.Module):
        return _from_linen(module, name, rng_collections, input_dtype)
    if isinstance(module, nnx.Module):
        return _from_nnx(nnx, module, name, rng_collections, input_dtype)
    expected = "a flax.linen.Module or flax.nnx.Module"
    raise TypeError(
        f"from_flax: expected {expected} instance, got {type(module).__name__}: "
        f"{module!r:.80}. For an Equinox module use from_equinox; a plain function "
        "of x goes to jaxnet.Lambda."
    )


def _from_linen(
    module: Any, name: str | None, rng_collections: tuple[str, ...], input_dtype: Any
) -> Layer:
    import flax.errors

    cls = type(module).__name__
    desc = f"from_flax({cls})"
    keep = _option_filter(module.__call__, _LINEN_RESERVED)

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        shape = _check_input_shape(desc, input_shape)
        dtype = input_dtype if input_dtype is not None else _default_float()
        dummy = jnp.zeros(tuple(1 if d is None else d for d in shape), dtype)
        rngs = {"params": key}
        for c, k in _rng_keys(jax.random.fold_in(key, 1), rng_collections).items():
            rngs.setdefault(c, k)
        try:
            variables = module.init(rngs, dummy)
        except Exception as exc:  # noqa: BLE001 - re-raised with context
            exc.add_note(
                f"(in {desc}.init, traced on a dummy input of shape {dummy.shape} and "
                f"dtype {jnp.dtype(dtype)}; pass input_dtype= if the module expects "
                "another dtype)"
            )
            raise
        others = sorted(c for c in variables if c != "params")
        if others:
            raise ValueError(
                f"{desc}: the module has variable collections {others} besides "
                "'params' (e.g. BatchNorm running statistics in 'batch_stats', or "
                "values stored with self.sow); from_flax supports parameters only. "
                "Use jaxnet.BatchNorm in the jaxnet model instead of nn.BatchNorm, a "
                "stateless normalisation (nn.LayerNorm, nn.GroupNorm) inside the "
                "module, or remove the sow calls."
            )
        params = _plain(variables.get("params", {}))

        def run(x: Any) -> Any:
            return module.apply({"params": params}, x, rngs=rngs)

        return _probe_shape(desc, run, shape, dtype), params

    def apply(
        params: Params, x: Any, *, key: PRNGKey | None = None, **options: Any
    ) -> Any:
        if not isinstance(params, Mapping):
            raise ParamsError(
                f"{desc}: expected params to be a dict, got {type(params).__name__}. "
                "Pass the params returned by this layer's init."
            )
        rngs = _rng_keys(key, rng_collections) if key is not None else None
        try:
            return module.apply({"params": params}, x, rngs=rngs, **keep(options))
        except flax.errors.InvalidRngError as exc:
            if key is None:
                raise MissingKeyError(
                    f"{desc}: the module needs a PRNG key ({exc}). Call "
                    "layer.apply(params, x, key=jax.random.key(0), ...) with a fresh "
                    "key each step (jax.random.split)."
                ) from exc
            raise MissingKeyError(
                f"{desc}: the module asks for an RNG collection that key= does not "
                f"feed ({exc}). key= feeds rng_collections={rng_collections}; add "
                "the missing one, e.g. from_flax(module, rng_collections=(...))."
            ) from exc
        except flax.errors.ScopeParamShapeError as exc:
            raise ShapeError(
                f"{desc}: input of shape {tuple(jnp.shape(x))} does not fit the "
                f"params: {exc}"
            ) from exc
        except (
            flax.errors.ScopeParamNotFoundError,
            flax.errors.ScopeCollectionNotFound,
        ) as exc:
            raise ParamsError(
                f"{desc}: params do not match the module: {exc} Pass the params "
                "returned by this layer's init."
            ) from exc

    return Layer(name or _snake(cls, "flax_module"), init, apply, None, desc)


def _from_nnx(
    nnx: Any,
    module: Any,
    name: str | None,
    rng_collections: tuple[str, ...],
    input_dtype: Any,
) -> Layer:
    cls = type(module).__name__
    desc = f"from_flax({cls})"
    keep = _option_filter(module.__call__)
    graphdef, param_state, rest = nnx.split(module, nnx.Param, ...)
    template = list(nnx.to_flat_state(param_state))  # [(path, Param)]
    rest_flat = list(nnx.to_flat_state(rest))
    paths = [tuple(str(p) for p in path) for path, _ in template]
    snapshot = _nest(desc, [(p, v.get_value()) for p, (_, v) in zip(paths, template)])

    def merged(params: Params) -> Any:
        leaves = _take(desc, params, paths)
        state = nnx.from_flat_state(
            [(path, var.replace(leaf)) for (path, var), leaf in zip(template, leaves)]
        )
        # Fresh copies: the snapshot's variables must not be mutated (under jit, a
        # reseed would write a tracer into them).
        fixed = nnx.from_flat_state([(path, var.copy()) for path, var in rest_flat])
        return nnx.merge(graphdef, state, fixed)

    def call(params: Params, x: Any, key: PRNGKey | None, options: Any) -> Any:
        m = merged(params)
        if key is not None:
            nnx.reseed(m, **_rng_keys(key, rng_collections))
        return m(x, **keep(options))

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        shape = _check_input_shape(desc, input_shape)
        dtype = input_dtype if input_dtype is not None else _default_float()
        params = jax.tree.map(lambda a: a, snapshot)  # a fresh dict each call
        out = _probe_shape(desc, lambda x: call(params, x, None, {}), shape, dtype)
        return out, params

    def apply(
        params: Params, x: Any, *, key: PRNGKey | None = None, **options: Any
    ) -> Any:
        return call(params, x, key, options)

    return Layer(name or _snake(cls, "nnx_module"), init, apply, None, desc)


# ----------------------------------------------------------------------- from_equinox


def from_equinox(
    module: Any,
    *,
    name: str | None = None,
    example_ndim: int | None = None,
    input_dtype: Any = None,
) -> Layer:
    """Lift an Equinox module into a jaxnet layer.

    The params are the module's inexact-array leaves
    (``eqx.partition(module, eqx.is_inexact_array)``) as a nested plain dict keyed
    by their pytree path, attributes and indices as strings: an ``eqx.nn.MLP`` gives
    ``{"layers": {"0": {"weight": ..., "bias": ...}, "1": ...}}``. Everything else
    (activations, sizes, integer arrays) is held fixed. ``apply`` rebuilds the
    module from params by path (``eqx.combine``) and calls it.

    The module is already initialised: ``init`` returns its current params and
    **ignores its key**; it infers the output shape with ``jax.eval_shape``.

    Equinox modules usually act on one example (``eqx.nn.MLP`` takes ``(in_size,)``).
    Give ``example_ndim``, the rank of one example, and the layer maps the module
    over all leading axes with ``jax.vmap``, so it takes ``(..., in_size)`` like
    every jaxnet layer; ``key=`` is then split into one key per example.

    ``apply(params, x, *, key=None, **options)`` passes ``key=`` only if the
    module's ``__call__`` takes it, and only the options ``__call__`` accepts
    (``inference=``); the others are dropped.

    Args:
      module: an ``equinox.Module`` instance. Stateful modules (``eqx.nn.BatchNorm``,
        anything holding an ``eqx.nn.StateIndex``) are not supported.
      name: the parameter-key stem in a combinator; default the class name in snake
        case (``MLP`` gives ``"mlp"``).
      example_ndim: rank of one example as the module sees it; leading axes of the
        input beyond it are mapped over. ``None`` (default): call the module on the
        whole input.
      input_dtype: dtype of the abstract input traced at ``init``; default JAX's
        default float dtype.

    Returns:
      A :class:`~jaxnet.Layer` with ``desc`` ``"from_equinox(<ClassName>)"`` and no
      hand-written backward.

    Raises:
      ImportError: when equinox is not installed.
      TypeError: when ``module`` is not an ``equinox.Module`` instance.
      ValueError: for a stateful module.
      ShapeError: at ``apply`` when ``x`` has fewer than ``example_ndim`` axes.
      ParamsError: at ``apply`` when params lack or add entries.

    Example (not run as a doctest, equinox being optional; the tests run it)::

        import equinox as eqx, jax, jaxnet
        from jaxnet.nn._adapters import from_equinox

        mlp = eqx.nn.MLP(3, 2, width_size=8, depth=1, key=jax.random.key(0))
        layer = from_equinox(mlp, example_ndim=1)
        out_shape, params = layer.init(None, (None, 3))   # ((None, 2), {...})
        y = layer.apply(params, jax.numpy.ones((5, 3)))    # == jax.vmap(mlp)(x)
    """
    try:
        import equinox as eqx
    except ImportError as exc:
        raise ImportError(
            "from_equinox needs equinox: pip install equinox (or pip install "
            "'jaxnet[peers]')."
        ) from exc

    if isinstance(module, type) and issubclass(module, eqx.Module):
        raise TypeError(
            f"from_equinox: got the class {module.__name__}, expected an instance. "
            f"Construct it first: from_equinox({module.__name__}(..., key=key))."
        )
    if not isinstance(module, eqx.Module):
        raise TypeError(
            f"from_equinox: expected an equinox.Module instance, got "
            f"{type(module).__name__}: {module!r:.80}. For a Flax module use "
            "from_flax; a plain function of x goes to jaxnet.Lambda."
        )
    if example_ndim is not None and (
        not isinstance(example_ndim, int) or example_ndim < 0
    ):
        raise ValueError(
            f"from_equinox: example_ndim must be an integer >= 0 or None, got "
            f"{example_ndim!r}."
        )
    cls = type(module).__name__
    desc = f"from_equinox({cls})"
    if any(
        isinstance(leaf, eqx.nn.StateIndex)
        for leaf in jax.tree.leaves(
            module, is_leaf=lambda n: isinstance(n, eqx.nn.StateIndex)
        )
    ):
        raise ValueError(
            f"{desc}: the module keeps state (an eqx.nn.StateIndex, e.g. "
            "eqx.nn.BatchNorm's running statistics); from_equinox supports "
            "stateless modules only. Use jaxnet.BatchNorm in the jaxnet model, or a "
            "stateless normalisation (eqx.nn.LayerNorm, eqx.nn.GroupNorm)."
        )

    dynamic, static = eqx.partition(module, eqx.is_inexact_array)
    flat, treedef = jax.tree_util.tree_flatten_with_path(dynamic)
    paths = [tuple(_key_str(k) for k in path) for path, _ in flat]
    snapshot = _nest(desc, [(p, leaf) for p, (_, leaf) in zip(paths, flat)])
    method = cast(Any, module).__call__  # eqx.Module's stubs declare no __call__
    takes_key = _takes(method, "key")
    keep = _option_filter(method, frozenset({"key"}))

    def call(params: Params, x: Any, key: PRNGKey | None, options: Any) -> Any:
        leaves = _take(desc, params, paths)
        m = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
        kw = keep(options)
        if example_ndim is None:
            return m(x, **kw, **({"key": key} if takes_key else {}))
        x = jnp.asarray(x)
        if x.ndim < example_ndim:
            raise ShapeError(
                f"{desc}: expected input of rank >= example_ndim={example_ndim}, got "
                f"shape {tuple(x.shape)}."
            )
        lead = x.shape[: x.ndim - example_ndim]
        n = math.prod(lead)
        xs = x.reshape((n,) + x.shape[len(lead) :])
        if takes_key and key is not None:
            ys = jax.vmap(lambda xi, ki: m(xi, **kw, key=ki))(
                xs, jax.random.split(key, n)
            )
        elif takes_key:
            ys = jax.vmap(lambda xi: m(xi, **kw, key=None))(xs)
        else:
            ys = jax.vmap(lambda xi: m(xi, **kw))(xs)
        return jax.tree.map(lambda a: a.reshape(lead + a.shape[1:]), ys)

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        shape = _check_input_shape(desc, input_shape)
        dtype = input_dtype if input_dtype is not None else _default_float()
        params = jax.tree.map(lambda a: a, snapshot)  # a fresh dict each call
        # A key for modules that need one by default (dropout not in inference).
        probe_key = key if key is not None else jax.random.key(0)
        out = _probe_shape(desc, lambda x: call(params, x, probe_key, {}), shape, dtype)
        return out, params

    def apply(
        params: Params, x: Any, *, key: PRNGKey | None = None, **options: Any
    ) -> Any:
        return call(params, x, key, options)

    return Layer(name or _snake(cls, "equinox_module"), init, apply, None, desc)
