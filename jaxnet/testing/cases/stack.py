"""Registry cases of Stack and remat (:mod:`jaxnet.nn._stack`), joined into
``LAYER_CASES``."""

from __future__ import annotations

from ...nn import _combinators as C
from ...nn import _core as Ly
from ...nn._stack import Stack, remat
from .._case import LayerCase

STACK_CASES: tuple[LayerCase, ...] = (
    LayerCase(
        "Stack(residual, 3)",
        lambda dt: Stack(C.residual(Ly.Dense(4, dtype=dt), Ly.Tanh()), 3),
        (None, 4),
        "complex",
        param_shapes={"dense_0": {"w": (3, 4, 4), "b": (3, 4)}, "tanh_1": {}},
    ),
    LayerCase(
        "Stack(dropout block, remat)",
        lambda dt: Stack(
            C.serial(Ly.Dense(4, dtype=dt), Ly.Tanh(), Ly.Dropout(0.3)), 2, remat=True
        ),
        (None, 2, 4),
        "complex",
        options={"train": True},
        key_seed=5,
        param_shapes={
            "dense_0": {"w": (2, 4, 4), "b": (2, 4)},
            "tanh_1": {},
            "dropout_2": {},
        },
    ),
    LayerCase(
        "remat(serial)",
        lambda dt: remat(
            C.serial(Ly.Dense(3, dtype=dt), Ly.Sigmoid()), "dots_saveable"
        ),
        (None, 4),
        "complex",
        param_shapes={"dense_0": {"w": (4, 3), "b": (3,)}, "sigmoid_1": {}},
    ),
)
