"""Registry cases of the attention family (:mod:`jaxnet.nn._attention`), joined into
``LAYER_CASES``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...nn import _attention as S
from .._case import LayerCase


def _qkv(d_q: int, d_kv: int, qkv: int, out: int) -> dict[str, Any]:
    return {
        "query": {"w": (d_q, qkv), "b": (qkv,)},
        "key": {"w": (d_kv, qkv), "b": (qkv,)},
        "value": {"w": (d_kv, qkv), "b": (qkv,)},
        "out": {"w": (qkv, out), "b": (out,)},
    }


ATTENTION_CASES: tuple[LayerCase, ...] = (
    # Softmax with max-subtraction is not complex-safe: central differences.
    LayerCase(
        "MultiHeadAttention",
        lambda dt: S.MultiHeadAttention(2, dtype=dt),
        (None, 3, 4),
        batch=2,
        param_shapes=_qkv(4, 4, 4, 4),
    ),
    LayerCase(
        "MultiHeadAttention(causal, padding mask)",
        lambda dt: S.MultiHeadAttention(2, causal=True, dtype=dt),
        (None, 4, 4),
        batch=2,
        # NumPy, not jax: built at import. Broadcasts over batch and heads.
        options={"mask": np.array([True, True, False, True]).reshape(1, 1, 1, 4)},
        param_shapes=_qkv(4, 4, 4, 4),
    ),
    LayerCase(
        "MultiHeadAttention(cross)",
        lambda dt: S.MultiHeadAttention(2, qkv_features=6, out_features=5, dtype=dt),
        ((None, 3, 4), (None, 4, 6)),
        batch=2,
        param_shapes=_qkv(4, 6, 6, 5),
    ),
)
