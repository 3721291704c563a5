"""Deep models: ``Stack`` (N identical blocks scanned over stacked parameters),
``remat`` (recompute a layer's activations in the backward pass) and ``hand_grad``
(make ``jax.grad`` run a layer's hand-written backward).

``Stack(block, n)`` keeps one copy of the block's parameter tree whose every leaf has
a leading axis of size ``n`` and runs the blocks with :func:`jax.lax.scan`, so XLA
compiles the block once: compile time stays roughly flat in ``n`` instead of growing
linearly as it does for ``serial(block, block, ...)``. ``unroll=True`` runs the same
parameters through a Python loop (identical numbers, the unrolled compile time), which
is what the benchmark suite compares.

``remat`` is :func:`jax.checkpoint` with a named policy: the forward pass keeps only
what the policy saves and the backward pass recomputes the rest, trading compute for
activation memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ParamsError, ShapeError
from .._types import Params, PRNGKey, ShapeTree
from . import _init as initializers
from ._checks import as_inputs, check_layer
from ._layer import Layer, constructor, fmt_shape, in_sublayer

RematPolicy = bool | str | Callable[..., Any] | None


def _policy(desc: str, remat: RematPolicy) -> Callable[..., Any] | None | bool:
    """``False`` (no remat), ``None`` (remat, save nothing) or a checkpoint policy."""
    if remat is False or remat is None:
        return False
    if remat is True or remat == "nothing_saveable":
        return None
    if isinstance(remat, str):
        names = sorted(
            n
            for n in dir(jax.checkpoint_policies)
            if n.endswith("saveable") and not n.startswith("_")
        )
        fn = getattr(jax.checkpoint_policies, remat, None)
        if fn is None or remat not in names:
            raise ValueError(
                f"{desc}: unknown remat policy {remat!r}. Expected True (save "
                f"nothing), False, a callable policy, or one of {names}."
            )
        # Policies that take arguments (save_only_these_names, ...) are factories.
        return fn
    if callable(remat):
        return remat
    raise TypeError(
        f"{desc}: remat must be a bool, a jax.checkpoint_policies name or a policy "
        f"callable, got {type(remat).__name__}."
    )


def _checkpointed(fn: Callable[..., Any], policy: Any) -> Callable[..., Any]:
    if policy is False:
        return fn
    return jax.checkpoint(fn, policy=policy)


def _no_state(desc: str, layer: Layer) -> None:
    if layer.stateful:
        raise ValueError(
            f"{desc}: {layer.desc} keeps state (running statistics), which a scanned "
            "or rematerialised block does not thread. Use serial(...) for stateful "
            "blocks, or a stateless normalisation such as LayerNorm."
        )


@constructor
def remat(layer: Layer, policy: RematPolicy = True) -> Layer:
    """``layer`` whose activations are recomputed in the backward pass.

    The forward pass under :func:`jax.grad` keeps only what ``policy`` saves; the
    backward pass re-runs the layer to get the rest. Values and gradients are
    unchanged; activation memory drops, compute grows by about one forward.

    Args:
      layer: any stateless jaxnet layer or model.
      policy: ``True`` (save nothing but the inputs), the name of a
        ``jax.checkpoint_policies`` policy (e.g. ``"dots_saveable"``: keep matmul
        outputs, recompute the cheap elementwise ops), or a policy callable.

    Returns:
      A :class:`~jaxnet.Layer` with the same params, ``apply`` and ``backward``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> block = jaxnet.remat(jaxnet.serial(jaxnet.Dense(4), jaxnet.Tanh()))
      >>> _, params = block.init(jax.random.key(0), (None, 3))
      >>> loss = lambda p: jnp.sum(block.apply(p, jnp.ones((2, 3))))
      >>> jax.grad(loss)(params)["dense_0"]["w"].shape
      (3, 4)
    """
    check_layer(f"remat(policy={policy!r})", "layer", layer)
    desc = f"remat({layer.desc}, policy={policy!r})"
    _no_state(desc, layer)
    pol = _policy(desc, policy)

    def apply(params: Params, x: Any, *, key: PRNGKey | None = None, **kw: Any) -> Any:
        def run(p: Params, x: Any, k: PRNGKey | None) -> Any:
            return layer.apply(p, x, key=k, **kw)

        return _checkpointed(run, pol)(params, x, key)

    # The hand-written backward stores nothing between passes: it is the layer's own.
    return Layer(
        layer.name, layer.init, apply, layer.backward, desc, options=layer.options
    )


def _split_options(kw: dict[str, Any]) -> tuple[list[Any], Callable[..., Any]]:
    """``kw``'s array leaves (traced: ``mask=``) and a function rebuilding ``kw``
    from them; the other leaves (``train=True``) stay Python values (static)."""
    leaves, treedef = jax.tree.flatten(kw)
    is_array = [isinstance(v, (jax.Array, np.ndarray)) for v in leaves]
    static = [None if a else v for v, a in zip(leaves, is_array, strict=True)]

    def rebuild(arrays: list[Any]) -> dict[str, Any]:
        it = iter(arrays)
        return jax.tree.unflatten(
            treedef,
            [next(it) if a else v for v, a in zip(static, is_array, strict=True)],
        )

    return [v for v, a in zip(leaves, is_array, strict=True) if a], rebuild


def _float_only(dx: Any, x: Any) -> Any:
    """``dx`` with ``None`` (a zero cotangent) where ``x`` is integer or boolean
    (token ids): ``custom_vjp`` wants no float cotangent there."""
    if dx is None:
        return None
    return jax.tree.map(
        lambda d, v: d if jnp.issubdtype(jnp.result_type(v), jnp.inexact) else None,
        dx,
        x,
    )


@constructor
def hand_grad(layer: Layer) -> Layer:
    """``layer`` whose gradient under :func:`jax.grad` is its hand-written backward.

    ``apply`` is unchanged; ``jax.grad``/``jax.vjp`` through it run ``layer.backward``
    (a :func:`jax.custom_vjp`), the computation :mod:`jaxnet.analytic` runs, so a
    training step written with ``jax.grad`` runs exactly the hand-written backward.
    The built-in layers do not need it for speed (where autodiff was slower, the
    layer carries its backward as a linear ``custom_jvp`` rule: LayerNorm, the
    attention core; ``jaxnet bench`` shows ``autodiff_hand_grad`` for the GPT block);
    it is for a custom layer whose autodiff is slower than its backward, or to run
    a model's hand-written backward under ``jax.grad``. Works under ``jit``,
    ``vmap``, :func:`remat` and :func:`Stack`, with dropout keys and options.

    The price is forward mode: ``jax.jvp``, ``jax.jacfwd`` and ``jax.linearize``
    through a ``custom_vjp`` raise (reverse-over-reverse and forward-over-reverse
    Hessian-vector products still work, through the backward's own operations). That
    is why it is opt-in rather than the default.

    Args:
      layer: a stateless layer or model whose layers all have hand-written backwards.

    Returns:
      A :class:`~jaxnet.Layer` with the same params, ``apply`` and ``backward``.

    Raises:
      NotImplementedError: ``layer`` has no hand-written backward.
      ValueError: ``layer`` keeps state (BatchNorm).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> mlp = jaxnet.serial(jaxnet.Dense(4), jaxnet.Tanh(), jaxnet.Dense(1))
      >>> fast = jaxnet.hand_grad(mlp)
      >>> _, params = fast.init(jax.random.key(0), (None, 3))
      >>> x = jnp.ones((2, 3))
      >>> g = jax.grad(lambda p: jnp.sum(fast.apply(p, x)))(params)
      >>> auto = jax.grad(lambda p: jnp.sum(mlp.apply(p, x)))(params)
      >>> bool(jnp.allclose(g["dense_0"]["w"], auto["dense_0"]["w"], atol=1e-6))
      True
    """
    check_layer("hand_grad", "layer", layer)
    desc = f"hand_grad({layer.desc})"
    _no_state(desc, layer)
    if layer.backward is None:
        raise NotImplementedError(
            f"{desc}: {layer.desc} has no hand-written backward, so there is nothing "
            "to run in its place. Use the layer itself (jax.grad differentiates it)."
        )
    layer_backward = layer.backward

    def apply(params: Params, x: Any, *, key: PRNGKey | None = None, **kw: Any) -> Any:
        arrays, options = _split_options(kw)

        @jax.custom_vjp
        def run(p: Params, x: Any, k: PRNGKey | None, arrays: list[Any]) -> Any:
            return layer.apply(p, x, key=k, **options(arrays))

        def fwd(p: Params, x: Any, k: PRNGKey | None, arrays: list[Any]) -> Any:
            y = layer.apply(p, x, key=k, **options(arrays))
            return y, (p, x, y, k, arrays)

        def bwd(res: tuple, g: Any) -> tuple:
            p, x, y, k, arrays = res
            dp, dx = layer_backward(p, x, y, g, key=k, **options(arrays))
            return dp, _float_only(dx, x), None, [None] * len(arrays)

        run.defvjp(fwd, bwd)
        return run(params, x, key, arrays)

    return Layer(
        layer.name, layer.init, apply, layer.backward, desc, options=layer.options
    )


def _leading(desc: str, params: Params, num: int) -> None:
    bad = [
        (jax.tree_util.keystr(path), getattr(leaf, "shape", ()))
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if not getattr(leaf, "shape", ()) or leaf.shape[0] != num
    ]
    if bad:
        path, shape = bad[0]
        raise ParamsError(
            f"{desc}: every parameter needs a leading axis of size {num} (one slice "
            f"per block); params{path} has shape {tuple(shape)}. Pass the params "
            "returned by this Stack's init."
        )


@constructor
def Stack(
    layer: Layer, num: int, *, remat: RematPolicy = False, unroll: bool = False
) -> Layer:
    """``num`` copies of ``layer`` in sequence, run with :func:`jax.lax.scan`.

    Each copy has its own parameters: ``params`` is the block's parameter tree with a
    leading axis of size ``num`` on every leaf (block ``i`` reads ``leaf[i]``), so
    XLA compiles the block once, whatever ``num``. A PRNG key is split into one
    sub-key per block; options (``train=True``, ``mask=``) go to every block.

    The hand-written backward scans the blocks forward keeping each block's input,
    then scans the blocks' backwards in reverse.

    Args:
      layer: the block; stateless, with an output shape equal to its input shape
        (e.g. :func:`~jaxnet.TransformerBlock`).
      num: number of blocks, >= 1.
      remat: rematerialise each block in the backward pass (see :func:`remat`):
        ``False``, ``True`` or a ``jax.checkpoint_policies`` name / callable.
      unroll: run the blocks with a Python loop instead of a scan: the same
        parameters and numbers, one copy of the block per layer in the compiled
        program (longer compiles; occasionally faster steps).

    Returns:
      A :class:`~jaxnet.Layer` named ``"stack"``.

    Raises:
      ValueError: ``num < 1`` or a stateful block.
      ShapeError: the block changes the shape of its input.

    Examples:
      >>> import jax, jaxnet
      >>> deep = jaxnet.Stack(jaxnet.TransformerBlock(2, 8, causal=True), 6)
      >>> out_shape, params = deep.init(jax.random.key(0), (None, 5, 8))
      >>> out_shape, params["mlp"]["dense_1"]["w"].shape
      ((None, 5, 8), (6, 8, 32))
    """
    check_layer(f"Stack(num={num!r})", "layer", layer)
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(
            f"Stack({layer!r}, num={num!r}): num must be an int >= 1, got {num!r}."
        )
    desc = f"Stack({layer.desc}, num={num}" + (f", remat={remat!r}" if remat else "")
    desc += ", unroll=True)" if unroll else ")"
    _no_state(desc, layer)
    pol = _policy(desc, remat)

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        box: dict[str, Any] = {}

        def one(k: PRNGKey) -> Params:
            with in_sublayer("Stack", "block", nest=False):
                box["shape"], p = layer.init(k, input_shape)
            return p

        if key is None:  # a block that draws nothing (from_equinox): one copy, tiled
            params = jax.tree.map(
                lambda a: jnp.broadcast_to(a, (num, *jnp.shape(a))),
                one(None),  # the key-free init of the contract
            )
        else:
            params = jax.vmap(one)(initializers.split_array(key, num))
        if box["shape"] != input_shape:
            raise ShapeError(
                f"{desc}: the block must keep the shape of its input to be stacked; "
                f"it maps {fmt_shape(input_shape)} to {fmt_shape(box['shape'])}. "
                "Put shape-changing layers before or after the Stack in a serial."
            )
        return input_shape, params

    def keys_for(key: PRNGKey | None) -> Any:
        return None if key is None else jax.random.split(key, num)

    def block_apply(kw: dict[str, Any]) -> Callable[..., Any]:
        def run(p: Params, x: Any, k: PRNGKey | None) -> Any:
            with in_sublayer("Stack", "block", nest=False):
                return layer.apply(p, x, key=k, **kw)

        return _checkpointed(run, pol)

    def slice_(tree: Any, i: int) -> Any:
        return jax.tree.map(lambda a: a[i], tree)

    def forward(params: Params, x: Any, key: PRNGKey | None, kw: dict[str, Any]) -> Any:
        """``(output, inputs of every block stacked)``."""
        _leading(desc, params, num)
        run, keys = block_apply(kw), keys_for(key)
        if unroll:
            xs = []
            for i in range(num):
                xs.append(x)
                x = run(slice_(params, i), x, None if keys is None else keys[i])
            return x, jax.tree.map(lambda *a: jnp.stack(a), *xs)

        # The carry must keep one dtype: a block may widen its input (complex-step
        # parameters, float64 weights on float32 data), so start from its output's.
        first = jax.eval_shape(
            run, slice_(params, 0), x, None if keys is None else keys[0]
        )
        x = jax.tree.map(lambda a, o: a.astype(o.dtype), x, first)

        def body(carry: Any, pk: Any) -> tuple[Any, Any]:
            p, k = pk
            return run(p, carry, k), carry

        return jax.lax.scan(body, x, (params, keys), length=num)

    def apply(params: Params, x: Any, *, key: PRNGKey | None = None, **kw: Any) -> Any:
        return forward(params, as_inputs(desc, x), key, kw)[0]

    def backward(
        params: Params, x: Any, y: Any, g: Any, *, key: PRNGKey | None = None, **kw: Any
    ) -> tuple[Params, Any]:
        layer_backward = layer.backward
        if layer_backward is None:
            raise NotImplementedError(
                f"{desc}: the block {layer.desc} has no hand-written backward; use "
                "jax.grad."
            )
        _, xs = forward(params, x, key, kw)
        # Block i maps xs[i] to xs[i + 1]; the last block's output is y.
        ys = jax.tree.map(lambda a, last: jnp.concatenate([a[1:], last[None]]), xs, y)

        def body(g: Any, per: Any) -> tuple[Any, Any]:
            p, xi, yi, k = per
            with in_sublayer("Stack", "block", nest=False):
                dp, g = layer_backward(p, xi, yi, g, key=k, **kw)
            return g, dp

        g, dparams = jax.lax.scan(
            body,
            g,
            (params, xs, ys, keys_for(key)),
            length=num,
            reverse=True,
            unroll=unroll,
        )
        return dparams, g

    return Layer("stack", init, apply, backward, desc, options=layer.options)
