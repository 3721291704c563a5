"""Registry cases of the conv layer family (joined into ``LAYER_CASES``).

Convolutions and sum/average pools are linear in ``x`` and bilinear in ``(w, x)``,
written with complex-safe ops: the complex step applies. Max pooling is piecewise
linear: its inputs are a shuffled grid of distinct, well-separated values (no ties
within a window, so central differences never straddle a switch of the argmax).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from ... import _conv as C
from ..._types import Array, PRNGKey
from .._case import LayerCase


def distinct(key: PRNGKey, shape: tuple[int, ...], dtype: Any) -> Array:
    """A random permutation of evenly spaced values in [-2, 2]: no two are equal."""
    size = 1
    for d in shape:
        size *= d
    grid = jnp.linspace(-2.0, 2.0, size, dtype=dtype)
    return jax.random.permutation(key, grid).reshape(shape)


_CASE = functools.partial(LayerCase, batch=2)

CONV_CASES: tuple[LayerCase, ...] = (
    _CASE(
        "Conv1d",
        lambda dt: C.Conv(3, 3, dtype=dt),
        (None, 5, 2),
        "complex",
        param_shapes={"w": (3, 2, 3), "b": (3,)},
    ),
    _CASE(
        "Conv2d(SAME)",
        lambda dt: C.Conv(3, (3, 3), dtype=dt),
        (None, 5, 5, 2),
        "complex",
        param_shapes={"w": (3, 3, 2, 3), "b": (3,)},
    ),
    _CASE(
        "Conv2d(VALID, strides=2, dilation=2)",
        lambda dt: C.Conv(3, (2, 2), strides=2, padding="VALID", dilation=2, dtype=dt),
        (None, 5, 6, 2),
        "complex",
        param_shapes={"w": (2, 2, 2, 3), "b": (3,)},
    ),
    _CASE(
        "Conv2d(groups=2)",
        lambda dt: C.Conv(
            4, (3, 2), strides=(2, 1), padding=((1, 0), (0, 1)), groups=2, dtype=dt
        ),
        (None, 5, 4, 4),
        "complex",
        param_shapes={"w": (3, 2, 2, 4), "b": (4,)},
    ),
    _CASE(
        "Conv2d(depthwise)",
        lambda dt: C.Conv(6, (3, 3), groups=3, use_bias=False, dtype=dt),
        (None, 4, 4, 3),
        "complex",
        param_shapes={"w": (3, 3, 1, 6)},
    ),
    _CASE(
        "Conv3d",
        lambda dt: C.Conv(2, (2, 2, 2), dtype=dt),
        (None, 3, 3, 3, 2),
        "complex",
        param_shapes={"w": (2, 2, 2, 2, 2), "b": (2,)},
    ),
    _CASE(
        "ConvTranspose2d(strides=2)",
        lambda dt: C.ConvTranspose(2, (3, 3), strides=2, dtype=dt),
        (None, 3, 3, 2),
        "complex",
        param_shapes={"w": (3, 3, 2, 2), "b": (2,)},
    ),
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
