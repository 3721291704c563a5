"""Registry cases of the core family (:mod:`jaxnet.nn._core`: Dense, the activations,
Flatten, Reshape, Dropout, Lambda), joined into ``LAYER_CASES``."""

from __future__ import annotations

import functools

import jax.numpy as jnp

from ...nn import _core as Ly
from .._case import LayerCase, away_from

_ACT = functools.partial(LayerCase, input_shape=(None, 5))

CORE_CASES: tuple[LayerCase, ...] = (
    LayerCase("Dense", lambda dt: Ly.Dense(5, dtype=dt), (None, 4), "complex"),
    LayerCase(
        "Dense(use_bias=False)",
        lambda dt: Ly.Dense(3, use_bias=False, dtype=dt),
        (None, 2, 4),
        "complex",
    ),
    _ACT(id="Relu", make=lambda dt: Ly.Relu(), draw=away_from(0.0)),
    _ACT(id="Sigmoid", make=lambda dt: Ly.Sigmoid(), method="complex"),
    _ACT(id="Tanh", make=lambda dt: Ly.Tanh(), method="complex"),
    _ACT(id="Gelu(exact)", make=lambda dt: Ly.Gelu()),
    _ACT(id="Gelu(tanh)", make=lambda dt: Ly.Gelu(approximate=True), method="complex"),
    _ACT(id="Silu", make=lambda dt: Ly.Silu(), method="complex"),
    _ACT(id="Softplus", make=lambda dt: Ly.Softplus()),
    _ACT(id="LeakyRelu", make=lambda dt: Ly.LeakyRelu(0.1), draw=away_from(0.0)),
    _ACT(id="Elu", make=lambda dt: Ly.Elu(0.7), draw=away_from(0.0)),
    _ACT(id="Selu", make=lambda dt: Ly.Selu(), draw=away_from(0.0)),
    _ACT(id="Softmax", make=lambda dt: Ly.Softmax()),
    _ACT(id="LogSoftmax", make=lambda dt: Ly.LogSoftmax()),
    LayerCase("Flatten", lambda dt: Ly.Flatten(), (None, 2, 3), "complex"),
    LayerCase("Reshape", lambda dt: Ly.Reshape((3, -1)), (None, 6), "complex"),
    LayerCase(
        "Dropout",
        lambda dt: Ly.Dropout(0.5),
        (None, 6),
        "complex",
        options={"train": True},
        key_seed=7,
    ),
    LayerCase(
        "Lambda(square)",
        lambda dt: Ly.Lambda(
            jnp.square, name="square", backward=lambda x, y, g: 2 * x * g
        ),
        (None, 4),
        "complex",
    ),
)
