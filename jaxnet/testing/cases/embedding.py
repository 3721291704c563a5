"""Registry cases of the embedding family (:mod:`jaxnet.nn._embedding`), joined into
``LAYER_CASES``."""

from __future__ import annotations

from typing import Any

import jax

from ..._types import Array, PRNGKey
from ...nn import _embedding as S
from .._case import LayerCase

_VOCAB = 5


def _ids(key: PRNGKey, shape: tuple[int, ...], dtype: Any) -> Array:
    """Integer token ids in ``[0, _VOCAB)`` (``dtype``, the float dtype, is unused)."""
    return jax.random.randint(key, shape, 0, _VOCAB)


EMBEDDING_CASES: tuple[LayerCase, ...] = (
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
)
