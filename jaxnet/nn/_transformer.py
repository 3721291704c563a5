"""A pre-LayerNorm transformer block, composed from jaxnet layers."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from ._attention import Implementation, MultiHeadAttention
from ._checks import check_int, is_number
from ._combinators import residual, serial
from ._core import Dense, Dropout, Gelu
from ._layer import Layer, constructor
from ._norm import LayerNorm


@constructor
def TransformerBlock(
    num_heads: int,
    d_model: int,
    *,
    mlp_ratio: int = 4,
    causal: bool = False,
    drop_rate: float = 0.0,
    approximate_gelu: bool = True,
    dtype: Any = jnp.float32,
    attention_implementation: Implementation = None,
) -> Layer:
    """A pre-LayerNorm transformer block (GPT-2 style), ``(batch, seq, d) -> same``::

        x = x + Dropout(MHA(LayerNorm(x)))
        x = x + Dropout(Dense(d)(Gelu(Dense(mlp_ratio * d)(LayerNorm(x)))))

    It is only a composition (``serial`` of two ``residual`` branches), so its
    hand-written backward is the layers' backwards chained: nothing new to derive.
    Options reach every sub-layer: ``mask=`` goes to the attention, ``train=True``
    and ``key=`` to the dropouts.

    Args:
      num_heads: attention heads; must divide ``d_model``.
      d_model: the model width (the input's last axis).
      mlp_ratio: the MLP's hidden width is ``mlp_ratio * d_model``.
      causal: causal self-attention (a decoder block).
      drop_rate: dropout probability after attention and after the MLP (0: none).
      approximate_gelu: the tanh GELU (GPT-2's) or the exact erf one.
      dtype: parameter dtype.
      attention_implementation: the attention's ``implementation``
        (:func:`~jaxnet.MultiHeadAttention`): ``None``, ``"xla"`` or ``"cudnn"``.

    Returns:
      A :class:`~jaxnet.Layer` with params ``{"attention": {"layer_norm_0", "mha"},
      "mlp": {"layer_norm_0", "dense_1", "gelu_2", "dense_3"}}`` (plus empty dropout
      entries when ``drop_rate > 0``).

    Examples:
      >>> import jax, jaxnet
      >>> block = jaxnet.TransformerBlock(num_heads=2, d_model=8, causal=True)
      >>> block.init(jax.random.key(0), (None, 5, 8))[0]
      (None, 5, 8)
    """
    desc = f"TransformerBlock(num_heads={num_heads!r}, d_model={d_model!r})"
    check_int(desc, "num_heads", num_heads)
    check_int(desc, "d_model", d_model)
    check_int(f"TransformerBlock(mlp_ratio={mlp_ratio!r})", "mlp_ratio", mlp_ratio)
    if d_model % num_heads:
        raise ValueError(
            f"TransformerBlock(num_heads={num_heads}, d_model={d_model}): num_heads must "
            f"divide d_model, got d_model % num_heads = {d_model % num_heads}. Each "
            "head gets d_model / num_heads features."
        )
    if not (is_number(drop_rate) and 0.0 <= drop_rate < 1.0):
        raise ValueError(
            f"TransformerBlock(drop_rate={drop_rate!r}): drop_rate is the probability "
            "of zeroing an element and must lie in [0, 1)."
        )
    attention: list[Any] = [
        LayerNorm(dtype=dtype),
        (
            "mha",
            MultiHeadAttention(
                num_heads,
                causal=causal,
                dtype=dtype,
                implementation=attention_implementation,
            ),
        ),
    ]
    mlp: list[Any] = [
        LayerNorm(dtype=dtype),
        Dense(mlp_ratio * d_model, dtype=dtype),
        Gelu(approximate=approximate_gelu),
        Dense(d_model, dtype=dtype),
    ]
    if drop_rate > 0:
        attention.append(Dropout(drop_rate))
        mlp.append(Dropout(drop_rate))
    return serial(("attention", residual(*attention)), ("mlp", residual(*mlp)))
