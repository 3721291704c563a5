"""Self-attention case (:mod:`jaxnet.nn._attention`): ``mha``.

The protocol, the three implementations and the FLOP convention are those of
:mod:`jaxnet.bench.cases._common`. The case and why those shapes:

* ``mha``: causal self-attention, d_model 256, 4 heads, seq 128, batch 8.
* ``mha_bf16``: the same in bfloat16 (parameters and data), the precision a GPU
  user trains attention in; on a GPU it adds ``autodiff_cudnn``, the layer with
  ``implementation="cudnn"`` (``jax.nn.dot_product_attention``'s fused cuDNN kernel
  and JAX's own backward for it), gated and timed beside the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet

from .._case import Case
from ._common import _dense_flops, _mse_flops, _params, _step, _steps_and_grads, _target

#: For the agreement check: d loss / d b_key is 0 in exact arithmetic.
KEY_BIAS_NOTE = (
    " The key bias's gradient is exactly 0 in exact arithmetic (adding q . b_k to a "
    "whole row of scores leaves the softmax unchanged): its float32 values are "
    "rounding noise (~1e-9) and agree only absolutely; compare gradients with "
    "atol + rtol |ref|, not a per-leaf max relative error."
)


def _attention_core_flops(b: int, h: int, t: int, hd: int) -> tuple[int, int]:
    s, r = b * h * t * t, b * h * t
    # q k^T, scale, causal where, softmax (max, sub, exp, sum, div), P v
    fwd = 2 * s * hd + s + s + (5 * s - 2 * r) + 2 * s * hd
    # dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dP P)) (4 s - r), where,
    # dQ = c dS K, dK = c dS^T Q (matmuls + the two scalings)
    bwd = 4 * s * hd + (4 * s - r) + s + 4 * s * hd + 2 * b * t * h * hd
    return fwd, bwd


def _mha_flops(b: int, t: int, d: int, heads: int, *, dx: bool) -> tuple[int, int]:
    m = b * t
    fq, bq = _dense_flops(m, d, d, dx=dx)  # each of q, k, v
    fc, bc = _attention_core_flops(b, heads, t, d // heads)
    fo, bo = _dense_flops(m, d, d, dx=True)  # dO is always needed
    fwd = 3 * fq + fc + fo
    bwd = 3 * bq + bc + bo + (2 * m * d if dx else 0)  # dxq + dxk + dxv
    return fwd, bwd


def _raw_proj(p: Any, x: Any) -> Any:
    return jnp.einsum("btd,de->bte", x, p["w"]) + p["b"][None, None, :]


def _raw_mha(p: Any, x: Any, heads: int) -> Any:
    b, t, d = x.shape
    hd = d // heads

    def split(a):
        return a.reshape(b, t, heads, hd)

    q = split(_raw_proj(p["query"], x))
    k = split(_raw_proj(p["key"], x))
    v = split(_raw_proj(p["value"], x))
    dt = q.dtype  # float32, or bfloat16 for mha_bf16 (its scores in bfloat16)
    s = jnp.einsum("btnh,bsnh->bnts", q, k) * jnp.asarray(1.0 / math.sqrt(hd), dt)
    causal = jnp.tril(jnp.ones((t, t), jnp.bool_))[None, None]
    s = jnp.where(causal, s, jnp.asarray(-0.7 * float(jnp.finfo(dt).max), dt))
    w = jax.nn.softmax(s, axis=-1)
    o = jnp.einsum("bnts,bsnh->btnh", w, v).reshape(b, t, d)
    return _raw_proj(p["out"], o)


def _seq_shapes(small: bool) -> tuple[int, int, int, int]:
    """(batch, seq, d_model, heads)."""
    return (2, 16, 32, 4) if small else (8, 128, 256, 4)


def _cast(tree: Any, dtype: Any) -> Any:
    """``tree`` cast to ``dtype`` on the host (building a case compiles nothing)."""
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a).astype(dtype)), tree)


def _cudnn_available() -> bool:
    """A GPU backend: ``jax[cuda12]`` ships cuDNN with it."""
    return jax.default_backend() == "gpu"


def _mha_case(name: str, dtype: Any, small: bool, notes: str) -> Case:
    """Causal self-attention in ``dtype`` (parameters and data); in bfloat16 on a
    GPU also ``autodiff_cudnn``."""
    b, t, d, heads = _seq_shapes(small)
    model = jaxnet.MultiHeadAttention(heads, causal=True, dtype=dtype)
    params = _cast(_params(model, (None, t, d)), dtype)
    x = _cast(_target(1, (b, t, d)), dtype)
    y = _cast(_target(2, (b, t, d)), dtype)
    raw = lambda p, x: _raw_mha(p, x, heads)  # noqa: E731
    forward, steps, grads = _steps_and_grads(name, model, raw)
    if jnp.dtype(dtype) == jnp.bfloat16 and _cudnn_available():
        fused = jaxnet.MultiHeadAttention(
            heads, causal=True, dtype=dtype, implementation="cudnn"
        )
        _, f_steps, f_grads = _steps_and_grads(f"{name}_cudnn", fused, raw)
        steps["autodiff_cudnn"] = f_steps["autodiff"]
        grads["autodiff_cudnn"] = f_grads["autodiff"]
        notes += " autodiff_cudnn: implementation='cudnn' under jax.grad."
    f_a, b_a = _mha_flops(b, t, d, heads, dx=False)
    f_l, b_l = _mse_flops(b * t * d, b * t)
    suffix = "" if jnp.dtype(dtype) == jnp.float32 else f", {jnp.dtype(dtype).name}"
    return Case(
        name=name,
        family="layers",
        description=f"causal MHA d_model {d}, {heads} heads, seq {t}, batch {b}{suffix}",
        dtype=jnp.dtype(dtype).name,
        shapes={"x": (b, t, d), "w_qkvo": (d, d)},
        args=(params, x, y),
        forward=forward,
        steps=steps,
        grads=grads,
        flops=_step(f_a + f_l, b_a + b_l, params),
        quick=False,
        notes=notes + KEY_BIAS_NOTE,
    )


def mha(quick: bool, *, small: bool = False) -> Case:
    """Causal multi-head self-attention, d_model 256, 4 heads, seq 128, batch 8."""
    return _mha_case(
        "mha",
        jnp.float32,
        small,
        "jaxnet's forward calls jax.nn.dot_product_attention (XLA backend); the "
        "causal mask is applied to the full T x T scores, counted in full.",
    )


def mha_bf16(quick: bool, *, small: bool = False) -> Case:
    """``mha`` in bfloat16; with ``autodiff_cudnn`` on a GPU."""
    return _mha_case(
        "mha_bf16",
        jnp.bfloat16,
        small,
        "bfloat16 parameters and data; scores and softmax in float32 (as "
        "jax.nn.dot_product_attention), the raw version's in bfloat16. Agreement "
        "is checked at the bfloat16 analytic tolerance.",
    )


#: ``name -> build(quick, *, small=False) -> Case``, in run order.
CASES: dict[str, Callable[..., Case]] = {"mha": mha, "mha_bf16": mha_bf16}
