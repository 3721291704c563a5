"""Registry cases of the norm layer family (joined into ``LAYER_CASES``).

Scale and offset are drawn at random (not the ones/zeros defaults), so that a
backward which forgot to multiply by ``scale`` or mixed up channels cannot pass.
"""

from __future__ import annotations

import jax

from ...nn import _norm as N
from .._case import LayerCase

# Random per-channel params: scale around 1 (never 0), offset around 0.
_SCALE = jax.nn.initializers.truncated_normal(0.5, lower=1.0, upper=3.0)
_OFFSET = jax.nn.initializers.normal(1.0)
_RAND = {"scale_init": _SCALE, "offset_init": _OFFSET}

NORM_CASES: tuple[LayerCase, ...] = (
    LayerCase(
        "LayerNorm",
        lambda dt: N.LayerNorm(**_RAND, dtype=dt),
        (None, 5),
        "complex",
        param_shapes={"scale": (5,), "offset": (5,)},
    ),
    LayerCase(
        "LayerNorm(rank 3)",
        lambda dt: N.LayerNorm(epsilon=1e-3, **_RAND, dtype=dt),
        (None, 2, 4),
        "complex",
        param_shapes={"scale": (4,), "offset": (4,)},
    ),
    LayerCase(
        "LayerNorm(use_scale=False, use_bias=False)",
        lambda dt: N.LayerNorm(use_scale=False, use_bias=False, dtype=dt),
        (None, 4),
        "complex",
        param_shapes={},
    ),
    LayerCase(
        "RMSNorm",
        lambda dt: N.RMSNorm(scale_init=_SCALE, dtype=dt),
        (None, 2, 5),
        "complex",
        param_shapes={"scale": (5,)},
    ),
    LayerCase(
        "RMSNorm(use_scale=False)",
        lambda dt: N.RMSNorm(use_scale=False, dtype=dt),
        (None, 4),
        "complex",
        param_shapes={},
    ),
    LayerCase(
        "GroupNorm",
        lambda dt: N.GroupNorm(2, **_RAND, dtype=dt),
        (None, 3, 2, 4),
        "complex",
        batch=2,
        param_shapes={"scale": (4,), "offset": (4,)},
    ),
    LayerCase(
        "GroupNorm(group_size=1, use_bias=False)",
        lambda dt: N.GroupNorm(
            None, group_size=1, use_bias=False, scale_init=_SCALE, dtype=dt
        ),
        (None, 3, 2),
        "complex",
        batch=2,
        param_shapes={"scale": (2,)},
    ),
)
