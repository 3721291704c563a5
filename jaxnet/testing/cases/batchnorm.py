"""Registry cases of BatchNorm (:mod:`jaxnet.nn._batchnorm`), joined into
``LAYER_CASES``."""

from __future__ import annotations

from ...nn import _combinators as C
from ...nn import _core as Ly
from ...nn._batchnorm import BatchNorm
from .._case import LayerCase

BATCHNORM_CASES: tuple[LayerCase, ...] = (
    LayerCase(
        "BatchNorm(train)",
        lambda dt: BatchNorm(dtype=dt),
        (None, 4),
        options={"train": True},
        batch=5,
        param_shapes={"scale": (4,), "offset": (4,)},
    ),
    LayerCase(
        "BatchNorm(train, NHWC)",
        lambda dt: BatchNorm(use_bias=False, dtype=dt),
        (None, 3, 3, 2),
        options={"train": True},
        batch=2,
        param_shapes={"scale": (2,)},
    ),
    LayerCase(
        "BatchNorm(eval)",
        lambda dt: BatchNorm(dtype=dt),
        (None, 4),
        param_shapes={"scale": (4,), "offset": (4,)},
    ),
    LayerCase(
        "serial(MLP with BatchNorm)",
        lambda dt: C.serial(
            Ly.Dense(5, dtype=dt), BatchNorm(dtype=dt), Ly.Tanh(), Ly.Dense(2, dtype=dt)
        ),
        (None, 3),
        options={"train": True},
        batch=4,
        param_shapes={
            "dense_0": {"w": (3, 5), "b": (5,)},
            "batch_norm_1": {"scale": (5,), "offset": (5,)},
            "tanh_2": {},
            "dense_3": {"w": (5, 2), "b": (2,)},
        },
    ),
)
