"""Registry cases of the transformer block (:mod:`jaxnet.nn._transformer`), joined
into ``LAYER_CASES``."""

from __future__ import annotations

from ...nn._transformer import TransformerBlock
from .._case import LayerCase

TRANSFORMER_CASES: tuple[LayerCase, ...] = (
    LayerCase(
        "TransformerBlock(causal)",
        lambda dt: TransformerBlock(2, 4, mlp_ratio=2, causal=True, dtype=dt),
        (None, 3, 4),
        batch=2,
        param_shapes={
            "attention": {
                "layer_norm_0": {"scale": (4,), "offset": (4,)},
                "mha": {
                    name: {"w": (4, 4), "b": (4,)}
                    for name in ("query", "key", "value", "out")
                },
            },
            "mlp": {
                "layer_norm_0": {"scale": (4,), "offset": (4,)},
                "dense_1": {"w": (4, 8), "b": (8,)},
                "gelu_2": {},
                "dense_3": {"w": (8, 4), "b": (4,)},
            },
        },
    ),
)
