"""The default initialisers, drawn on the host: ``jax.nn.initializers``' signature
``(key, shape, dtype)`` and distributions, no XLA program compiled per shape.

The built-in layers use these by default; a layer's ``w_init=...`` takes any
``jax.nn.initializers`` function instead and calls it exactly as given. What the
values are (a pure function of the key's words, the shape and the dtype; the same
eagerly, under ``jit`` and under ``vmap``): see ``docs/layers/initializers.md``.
"""

from .nn._init import lecun_normal as lecun_normal
from .nn._init import normal as normal
from .nn._init import ones as ones
from .nn._init import orthogonal as orthogonal
from .nn._init import split as split
from .nn._init import split_array as split_array
from .nn._init import zeros as zeros

__all__ = [
    "lecun_normal",
    "normal",
    "ones",
    "orthogonal",
    "split",
    "split_array",
    "zeros",
]
