"""Type aliases and the typed layer contract shared by every jaxnet module (defined
once, here).

The four functions a :class:`~jaxnet.Layer` holds are typed by the aliases below::

    out_shape, params = layer.init(key, input_shape)       # InitFn
    y = layer.apply(params, x, *, key=None, **options)      # ApplyFn
    dparams, dx = layer.backward(params, x, y, g, **options)  # BackwardFn
    out_shape, state = layer.init_state(input_shape)        # InitStateFn

The leading arguments are positional (a layer may name them as it likes); the options
that follow are keyword-only, and each layer declares the ones it reads (``...`` in the
aliases: ``Layer`` reads them from the signature).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate

import jax

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
#: A key from ``jax.random.key`` (or a legacy ``jax.random.PRNGKey``).
PRNGKey = jax.Array
#: Any nested structure of containers and arrays that ``jax.tree_util`` can walk.
PyTree = Any
#: A nested dict of arrays, e.g. ``{"dense_0": {"w": ..., "b": ...}, "relu_1": {}}``.
#: State (running statistics) has the same form.
Params = dict[str, Any]
#: An input or output shape such as ``(None, 784)`` (``None``, or ``-1`` on input,
#: marks a free batch axis), or a tuple of such shapes for layers with several inputs
#: or outputs (``parallel``, fan-ins, recurrent cells' ``(carry, x)``).
ShapeTree = Any


#: ``init(key, input_shape) -> (output_shape, params)``: ``input_shape`` may be a
#: shape, an example array or a tuple of either; the output shape is inferred without
#: running the layer.
InitFn = Callable[[PRNGKey, ShapeTree], tuple[ShapeTree, Params]]
#: ``apply(params, x, *, key=None, **options) -> y``: ``x`` is an array or a tuple of
#: arrays; a stateful layer takes ``state=`` and returns ``(y, new_state)``.
ApplyFn = Callable[Concatenate[Params, PyTree, ...], Any]
#: ``backward(params, x, y, g, *, key=None, **options) -> (dparams, dx)``: the
#: hand-written vector-Jacobian product of ``apply``, where ``y = apply(params, x)``
#: and ``g`` is the cotangent of ``y``.
BackwardFn = Callable[
    Concatenate[Params, PyTree, PyTree, PyTree, ...], tuple[Params, PyTree]
]
#: ``init_state(input_shape) -> (output_shape, state)`` of a stateful layer.
InitStateFn = Callable[[ShapeTree], tuple[ShapeTree, Params]]


def same_structure(
    a: Any, b: Any, is_leaf: Callable[[Any], bool] | None = None
) -> bool:
    """Whether pytrees ``a`` and ``b`` have the same structure (see
    :func:`same_treedef`).

    Examples:
      >>> same_structure({"w": 1, "b": 2}, {"b": 0.0, "w": 0.0})
      True
      >>> same_structure((1, 2), [1, 2])
      False
    """
    return same_treedef(
        jax.tree.structure(a, is_leaf=is_leaf), jax.tree.structure(b, is_leaf=is_leaf)
    )


def same_treedef(a: Any, b: Any) -> bool:
    """Whether two ``PyTreeDef`` values are equal.

    One place for the comparison: jax's type stubs leave ``PyTreeDef`` unresolved for
    mypy, which then refuses ``==`` between two of them.

    Examples:
      >>> same_treedef(jax.tree.structure([1, 2]), jax.tree.structure([0.0, 0.0]))
      True
    """
    return bool(a == b)
