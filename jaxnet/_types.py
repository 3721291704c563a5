"""Type aliases shared by every jaxnet module (defined once, here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
PRNGKey = jax.Array
#: A nested dict of arrays, e.g. ``{"dense_0": {"w": ..., "b": ...}, "relu_1": {}}``.
Params = dict[str, Any]
#: An input or output shape. ``None`` (or ``-1`` on input) marks a free batch axis.
Shape = tuple[int | None, ...]
#: A shape, or a tuple of shapes for layers with several inputs or outputs.
ShapeTree = Any
InitFn = Callable[..., tuple[ShapeTree, Params]]
ApplyFn = Callable[..., Any]
BackwardFn = Callable[..., tuple[Params, Any]]
