"""The registry's building blocks: a layer case, a loss case, and input drawers.

Each layer family keeps its cases in its own ``cases/<family>.py`` and the registry
(``_registry.py``) joins them, so families can grow without touching each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._types import Array, PRNGKey
from ..nn._layer import Layer

Draw = Callable[[PRNGKey, tuple[int, ...], Any], Array]


def host_rng(key: PRNGKey) -> np.random.Generator:
    """A NumPy generator seeded by a concrete JAX key.

    The battery draws its inputs on the host: an eager ``jax.random`` draw compiles a
    Threefry program for every new shape and dtype (0.1-0.5 s each on the CPU, most
    of the battery's time), a NumPy draw compiles nothing.
    """
    data = (
        jax.random.key_data(key)
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        else key
    )
    return np.random.default_rng(np.asarray(data).ravel().tolist())


def _traced(key: PRNGKey) -> bool:
    return isinstance(key, jax.core.Tracer)


def normal(key: PRNGKey, shape: tuple[int, ...], dtype: Any) -> Array:
    """Standard normal inputs (drawn on the host; ``jax.random`` under a trace)."""
    return away_from()(key, shape, dtype)


def away_from(*kinks: float, margin: float = 0.1) -> Draw:
    """Normal inputs pushed at least ``margin`` away from each kink."""

    def draw(key: PRNGKey, shape: tuple[int, ...], dtype: Any) -> Array:
        dtype = jnp.dtype(dtype)
        xp: Any  # jax.numpy under a trace, numpy otherwise
        x: Any
        if _traced(key):
            xp, x = jnp, jax.random.normal(key, shape, dtype)
        else:
            xp, x = np, host_rng(key).standard_normal(shape).astype(dtype)
        for k in kinks:
            d = x - k
            x = xp.where(
                xp.abs(d) < margin, k + xp.where(d >= 0, margin, -margin) * 2, x
            )
        return x if xp is jnp else jax.device_put(x.astype(dtype))

    return draw


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """One layer configuration in the battery."""

    id: str
    make: Callable[[Any], Layer]
    input_shape: Any  # a shape with None batch, or a tuple of such shapes
    method: str = "central"
    draw: Draw = normal
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    batch: int = 3
    #: Stochastic layers are applied with ``key=jax.random.key(key_seed)``.
    key_seed: int | None = None
    #: The exact parameter tree as shapes by path (e.g. ``{"w": (4, 5), "b": (5,)}``),
    #: pinned by the battery; ``None`` for the core cases pinned in tests/nn/test_layers.py.
    param_shapes: Any = None

    def apply_options(self) -> dict[str, Any]:
        """Keyword options for ``apply`` (a fresh key is made here, not at import)."""
        if self.key_seed is None:
            return dict(self.options)
        return {**self.options, "key": jax.random.key(self.key_seed)}

    def options_for(self, layer: Layer) -> dict[str, Any]:
        """:meth:`apply_options`, plus a fresh ``state`` for a stateful layer."""
        opts = self.apply_options()
        if layer.init_state is not None:  # a stateful layer
            opts["state"] = layer.init_state(self.input_shape)[1]
        return opts

    def concrete_shape(self, shape: Any = None) -> Any:
        """The input shape with the free batch axis set to ``batch``."""
        s = self.input_shape if shape is None else shape
        if s and isinstance(s[0], tuple):
            return tuple(self.concrete_shape(e) for e in s)
        return tuple(self.batch if d is None else d for d in s)

    def inputs(self, key: PRNGKey, dtype: Any, shape: Any = None) -> Any:
        """Draw an input of the case's shape (tuples of shapes may nest)."""
        shape = self.concrete_shape() if shape is None else shape
        if shape and isinstance(shape[0], tuple):
            keys = jax.random.split(key, len(shape))
            return tuple(self.inputs(k, dtype, s) for k, s in zip(keys, shape))
        return self.draw(key, shape, dtype)


@dataclasses.dataclass(frozen=True)
class LossCase:
    """One loss configuration: ``make_args(key, dtype) -> (predictions, targets)``."""

    id: str
    loss: Callable[..., Array]
    make_args: Callable[[PRNGKey, Any], tuple[Array, Array]]
    method: str = "central"
