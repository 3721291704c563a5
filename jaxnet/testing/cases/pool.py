"""Registry cases of the pool family (:mod:`jaxnet.nn._pool`), joined into ``LAYER_CASES``.

Sum and average pools are linear, written with complex-safe ops: the complex step
applies. Max pooling is piecewise linear: its inputs are a shuffled grid of distinct,
well-separated values (no ties within a window, so central differences never straddle
a switch of the argmax).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from ..._types import Array, PRNGKey
from ...nn import _pool as C
from .._case import LayerCase


def distinct(key: PRNGKey, shape: tuple[int, ...], dtype: Any) -> Array:
    """A random permutation of evenly spaced values in [-2, 2]: no two are equal."""
    size = 1
    for d in shape:
        size *= d
    grid = jnp.linspace(-2.0, 2.0, size, dtype=dtype)
    return jax.random.permutation(key, grid).reshape(shape)


_CASE = functools.partial(LayerCase, batch=2)

POOL_CASES: tuple[LayerCase, ...] = (
    _CASE(
        "MaxPool2d",
        lambda dt: C.MaxPool((3, 3), strides=2, padding="SAME"),
        (None, 5, 5, 2),
        draw=distinct,
        param_shapes={},
    ),
    _CASE(
        "AvgPool2d(SAME)",
        lambda dt: C.AvgPool((3, 3), strides=2, padding="SAME"),
        (None, 5, 5, 2),
        "complex",
        param_shapes={},
    ),
    _CASE(
        "SumPool1d",
        lambda dt: C.SumPool(2, strides=1),
        (None, 5, 3),
        "complex",
        param_shapes={},
    ),
    _CASE(
        "GlobalAvgPool",
        lambda dt: C.GlobalAvgPool(),
        (None, 4, 4, 3),
        "complex",
        param_shapes={},
    ),
)
