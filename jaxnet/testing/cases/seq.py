"""Registry cases of the seq layer family (joined into ``LAYER_CASES``)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ... import _seq as S
from ..._types import Array, PRNGKey
from .._case import LayerCase

_VOCAB = 5


def _ids(key: PRNGKey, shape: tuple[int, ...], dtype: Any) -> Array:
    """Integer token ids in ``[0, _VOCAB)`` (``dtype``, the float dtype, is unused)."""
    return jax.random.randint(key, shape, 0, _VOCAB)


def _qkv(d_q: int, d_kv: int, qkv: int, out: int) -> dict[str, Any]:
    return {
        "query": {"w": (d_q, qkv), "b": (qkv,)},
        "key": {"w": (d_kv, qkv), "b": (qkv,)},
        "value": {"w": (d_kv, qkv), "b": (qkv,)},
        "out": {"w": (qkv, out), "b": (out,)},
    }


SEQ_CASES: tuple[LayerCase, ...] = (
    LayerCase(
        "Embedding",
        lambda dt: S.Embedding(_VOCAB, 4, dtype=dt),
        (None, 3),
        draw=_ids,
        batch=2,
        param_shapes={"embedding": (_VOCAB, 4)},
    ),
    LayerCase(
        "LearnedPositionalEmbedding",
        lambda dt: S.LearnedPositionalEmbedding(5, dtype=dt),
        (None, 3, 4),
        "complex",
        batch=2,
        param_shapes={"embedding": (5, 4)},
    ),
    LayerCase(
        "SinusoidalPositionalEmbedding",
        lambda dt: S.SinusoidalPositionalEmbedding(),
        (None, 3, 4),
        "complex",
        batch=2,
        param_shapes={},
    ),
    LayerCase(
        "RotaryEmbedding",
        lambda dt: S.RotaryEmbedding(),
        (None, 3, 2, 4),
        "complex",
        batch=2,
        param_shapes={},
    ),
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
