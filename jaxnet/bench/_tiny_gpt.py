"""The tiny GPT of ``examples/tiny_gpt.py`` (data and model), for the verify family.

``examples/`` is not installed with the package, so the few functions the verify
family needs are copied here, unchanged: the text of ``pydoc_data.topics`` (ships
with every Python), its character vocabulary, evenly spaced evaluation windows, the
model and its per-position loss. ``tests/bench/test_verify.py`` checks that they
still give what the example gives.
"""

from __future__ import annotations

import jax
import numpy as np

import jaxnet
from jaxnet import losses


def load_text() -> str:
    """The help topics of ``pydoc_data.topics``, joined in sorted topic order."""
    from pydoc_data.topics import topics

    return "".join(topics[name] for name in sorted(topics))


def make_vocab(text: str) -> str:
    """The distinct characters of ``text``, sorted: character ``i`` has id ``i``."""
    return "".join(sorted(set(text)))


def encode(text: str, vocab: str) -> np.ndarray:
    """Character ids (int32) of ``text``.

    Raises:
      ValueError: a character is not in ``vocab``.
    """
    index = {c: i for i, c in enumerate(vocab)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise ValueError(
            f"tiny_gpt.encode: characters {''.join(missing)!r} are not in the "
            f"{len(vocab)}-character vocabulary; use only characters from {vocab!r}."
        )
    return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))


def windows(ids: np.ndarray, starts: np.ndarray, seq: int) -> tuple[np.ndarray, ...]:
    """Inputs ``ids[s : s + seq]`` and next-character targets, one row per start."""
    idx = np.asarray(starts, np.int64)[:, None] + np.arange(seq, dtype=np.int64)
    return ids[idx], ids[idx + 1]


def eval_starts(n: int, seq: int, count: int) -> np.ndarray:
    """``count`` evenly spaced window starts over a split of ``n`` characters."""
    return np.linspace(0, n - seq - 1, count).round().astype(np.int64)


def make_model(
    vocab_size: int,
    width: int,
    depth: int,
    heads: int,
    seq: int,
    *,
    drop: float = 0.0,
    remat: bool = False,
) -> jaxnet.Layer:
    """The GPT: ids ``(batch, seq)`` -> logits ``(batch, seq, vocab_size)``."""
    return jaxnet.serial(
        jaxnet.Embedding(vocab_size, width),
        jaxnet.LearnedPositionalEmbedding(seq),
        jaxnet.Stack(
            jaxnet.TransformerBlock(heads, width, causal=True, drop_rate=drop),
            depth,
            remat=remat,
        ),
        jaxnet.LayerNorm(),
        jaxnet.Dense(vocab_size),
    )


def char_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-position cross-entropy (the train step averages it)."""
    return losses.softmax_cross_entropy_with_integer_labels(logits, labels)
