"""Registry cases of the combinators (:mod:`jaxnet.nn._combinators`), joined into
``LAYER_CASES``."""

from __future__ import annotations

from typing import Any

from ...nn import _combinators as C
from ...nn import _core as Ly
from ...nn._layer import Layer
from .._case import LayerCase


def _mlp(dt: Any) -> Layer:
    return C.serial(
        Ly.Dense(6, dtype=dt),
        Ly.Tanh(),
        ("head", Ly.Dense(3, dtype=dt)),
        Ly.LogSoftmax(),
    )


def _branches(dt: Any) -> Layer:
    return C.serial(
        C.FanOut(3),
        C.parallel(Ly.Dense(4, dtype=dt), C.Identity(), Ly.Sigmoid()),
        C.FanInConcat(),
        Ly.Dense(2, dtype=dt),
    )


def _fan_in_sum(dt: Any) -> Layer:
    return C.serial(
        C.FanOut(2), C.parallel(Ly.Dense(4, dtype=dt), Ly.Tanh()), C.FanInSum()
    )


COMBINATOR_CASES: tuple[LayerCase, ...] = (
    LayerCase("Identity", lambda dt: C.Identity(), (None, 4), "complex"),
    LayerCase("serial(MLP)", _mlp, (None, 4)),
    LayerCase("FanOut/parallel/FanInConcat", _branches, (None, 3)),
    LayerCase("FanInSum", _fan_in_sum, (None, 4), "complex"),
    LayerCase(
        "residual",
        lambda dt: C.residual(Ly.Dense(4, dtype=dt), Ly.Tanh()),
        (None, 4),
        "complex",
    ),
)
