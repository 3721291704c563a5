"""Registry cases of the conv family (:mod:`jaxnet.nn._conv`), joined into ``LAYER_CASES``.

Convolutions are linear in ``x`` and bilinear in ``(w, x)``, written with complex-safe
ops: the complex step applies.
"""

from __future__ import annotations

import functools

from ...nn import _conv as C
from .._case import LayerCase

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
)
